"""Admin keys: who is calling (constant-time lookup) and what they may do."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from gatekeeper.config import AdminKey, AdminRole

ADMIN_KEY = web.RequestKey("admin_key", AdminKey)


class BadRequest(Exception):
    """A client error in an admin call: becomes a 400 with this code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def json_object(request: web.Request, message: str) -> dict[str, Any]:
    """The request's JSON object body; `BadRequest("invalid_body", message)` otherwise
    (not JSON, an unknown charset, not an object, or strings that are not valid Unicode,
    which the store could not encode)."""
    try:
        raw: Any = await request.json()
    except (ValueError, LookupError) as exc:  # LookupError: an unknown charset
        raise BadRequest("invalid_body", message) from exc
    if not isinstance(raw, dict) or not is_unicode(json.dumps(raw, ensure_ascii=False)):
        raise BadRequest("invalid_body", message)
    return raw


def is_unicode(text: str) -> bool:
    """False for text with lone surrogates (JSON allows `"\\ud800"`; UTF-8 does not)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


class Forbidden(Exception):
    """The key is valid but its role or scopes do not cover the call (403)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _digest(secret: str) -> bytes:
    # Fixed-length digests, so comparison time does not depend on the secrets' lengths.
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


class KeyRing:
    """The configured admin keys, looked up in constant time per key."""

    def __init__(self, keys: Iterable[AdminKey]) -> None:
        self._keys = [(_digest(k.secret), k) for k in keys]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def find(self, given: str) -> AdminKey | None:
        """The key whose secret is `given` (every key is compared, no early exit)."""
        wanted = _digest(given)
        found: AdminKey | None = None
        for digest, key in self._keys:
            if hmac.compare_digest(digest, wanted):
                found = key
        return found


def authorize(request: web.Request, role: AdminRole, *scopes: str) -> AdminKey:
    """The calling key, if its role and scopes cover the call; else `Forbidden`."""
    key = request[ADMIN_KEY]
    if not key.allows(role):
        raise Forbidden(f"Key '{key.name}' is read-only.")
    for scope in scopes:
        if not key.permits(scope):
            raise Forbidden(f"Key '{key.name}' may not touch scope '{scope}'.")
    return key

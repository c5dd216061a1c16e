"""Credentials a request carries, read as leniently as a gateway reads them.

Identities map to scopes (`upstreams[].credentials`), so a credential Gatekeeper fails
to read would send a request out without its tenant's lists: the scheme is matched in
any case, surrounding and inner whitespace is ignored, and Basic credentials decode
with or without `=` padding, in the standard or URL-safe alphabet. Tokens are never kept
in clear: they are known by their SHA-256 (`digest_of`). Account ids are compared
case-insensitively (`identity_key`), since a gateway may take them in either case.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from functools import lru_cache


def header(headers: Mapping[str, str], name: str) -> str:
    """A header's value, from a case-insensitive mapping or a plain dict."""
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    return value or ""


def _credentials(authorization: str, scheme: str) -> str | None:
    given, _, rest = authorization.strip().partition(" ")
    if given.lower() != scheme.lower():
        return None
    token = "".join(rest.split())
    return token or None


def basic_user(headers: Mapping[str, str]) -> str | None:
    """The user name of `Authorization: Basic ...`, if any."""
    return _basic_user(header(headers, "Authorization"))


@lru_cache(maxsize=1024)
def _basic_user(authorization: str) -> str | None:
    # Cached: a sender's few credentials come back on every request.
    token = _credentials(authorization, "Basic")
    if token is None:
        return None
    token = token.rstrip("=")
    padded = token + "=" * (-len(token) % 4)
    try:
        raw = base64.b64decode(padded.translate(_URLSAFE), validate=True)
        user = raw.decode("utf-8").partition(":")[0].strip()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return user or None


_URLSAFE = str.maketrans("-_", "+/")


def digest_of(token: str) -> str:
    """`sha256:<hex>` of a credential: how tokens appear in config and logs."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def token_digest(headers: Mapping[str, str], scheme: str = "Bearer") -> str | None:
    """`sha256:<hex>` of the token in `Authorization: <scheme> <token>`, if any."""
    token = _credentials(header(headers, "Authorization"), scheme)
    return None if token is None else digest_of(token)


def identity_key(identity: str) -> str:
    """How identities are compared: digests exactly, account ids in any case."""
    text = identity.strip()
    return text if text.startswith("sha256:") else text.casefold()

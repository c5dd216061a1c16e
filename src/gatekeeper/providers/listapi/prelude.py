"""Prelude's verification management list API, answered from Gatekeeper's store.

`/v2/verification/management/phone-numbers/{allow|block}` with `Authorization: Bearer`:
- POST `{"phone_number": "+30123456789"}` -> 201 `{"phone_number": "<E.164>"}` (idempotent)
- DELETE, same body -> 202 `{"phone_number": "<E.164>"}` (idempotent: absent is fine)
- GET -> 200 `{"phone_numbers": [{"phone_number", "created_at"}, ...]}` (the SDK's
  model requires `created_at`, the entry's added time)

A number is checked by the core rule (E.164 by syntax with a known country code, so the
docs' `+30123456789` is accepted); prefixes are no phone numbers here. A bad number or
body is Prelude's 400 `invalid_phone_number`; a token that maps to no scope is a 401
(`missing_api_token` / `invalid_api_key`, as Prelude's error list names them), which the
SDK raises as `AuthenticationError`. Entries apply to every channel. DELETE removes
only an entry this API added: an operator's entry stays and the caller gets Prelude's
404 `not_found` (the SDK's `NotFoundError`). GET lists the exact
numbers of the list that apply to sms (every-channel or sms-only entries), the channel
Prelude's verifications count as; prefixes and voice-only entries are left out.
"""

from __future__ import annotations

import re
import time
from typing import cast

from gatekeeper.numbers import Entry, parse_entry
from gatekeeper.providers.credentials import token_digest
from gatekeeper.providers.listapi import ListCall, ListReply, Logger, remove_own
from gatekeeper.providers.locators import load_json
from gatekeeper.replies import Reply, json_reply
from gatekeeper.store import EntryMeta, ListItem, Store
from gatekeeper.times import iso
from gatekeeper.types import ListName

SOURCE = "prelude"
INVALID_NUMBER = "The provided phone number is invalid. Provide a valid E.164 phone number."
MISSING_AUTH = ("You forgot to include your API token. Add it to the Authorization header "
                "using Bearer authentication, like this: 'Authorization: Bearer YOUR_SECRET_KEY'.")
INVALID_KEY = "The provided API key is invalid. You can get your API key from the Dashboard."
NOT_FOUND = "The phone number was not added through this API and cannot be removed here."
_PATH = re.compile(r"^/v2/verification/management/phone-numbers/(?P<list>allow|block)$", re.I)
_METHODS = frozenset({"GET", "POST", "DELETE"})


def _error(call: ListCall, status: int, code: str, message: str, kind: str) -> ListReply:
    """Prelude's error shape, with the request id Gatekeeper assigned."""
    return call.answer(json_reply(status, {"code": code, "message": message, "type": kind,
                                           "request_id": call.request_id}))


def _iso(timestamp: float) -> str:
    """RFC 3339 in UTC with a `Z`."""
    return iso(timestamp).replace("+00:00", "Z")


def _number(body: bytes) -> str | None:
    """The E.164 number of a `{"phone_number": ...}` body, or None when unusable."""
    doc = load_json(body)
    raw = doc.get("phone_number") if isinstance(doc, dict) else None
    if not isinstance(raw, str):
        return None
    entry = parse_entry(raw)
    if not isinstance(entry, Entry) or entry.is_prefix:
        return None
    return entry.value


class PreludeLists:
    """The `prelude` preset's list API."""

    def matches(self, method: str, path: str) -> bool:
        # Matched as loosely as send routes are, so no spelling of the path slips past to
        # the provider when mirroring is off.
        return method in _METHODS and _PATH.match(path) is not None

    async def handle(self, call: ListCall, store: Store, log: Logger) -> ListReply:
        found = _PATH.match(call.path)
        if found is None:  # matches() said yes; kept for type narrowing
            return _error(call, 404, "not_found", "Not found.", "not_found")
        name = cast(ListName, found.group("list").lower())
        identity = token_digest(call.headers)
        if identity is None:
            return _error(call, 401, "missing_api_token", MISSING_AUTH, "unauthorized")
        scope = call.scope_for(identity)
        if scope is None:
            return _error(call, 401, "invalid_api_key", INVALID_KEY, "unauthorized")
        if call.method == "GET":
            return call.answer(await _listing(store, name, scope))
        number = _number(call.body)
        if number is None:
            return _error(call, 400, "invalid_phone_number", INVALID_NUMBER, "bad_request")
        added_by = f"{call.upstream}:api_token"
        if call.method == "POST":
            added, existing = await store.add(name, scope, [ListItem(number)], EntryMeta(
                source=SOURCE, added_at=time.time(), added_by=added_by))
            log.info("list_changed", key_name=added_by, upstream=call.upstream, scope=scope,
                     list=name, op="add", source=SOURCE, added=len(added),
                     existing=len(existing), failed=0)
            return call.answer(json_reply(201, {"phone_number": number}), wrote=True)
        removed = await remove_own(call, store, log, name, scope, number, SOURCE)
        if removed is False:
            return _error(call, 404, "not_found", NOT_FOUND, "not_found")
        log.info("list_changed", key_name=added_by, upstream=call.upstream, scope=scope,
                 list=name, op="remove", source=SOURCE, removed=int(bool(removed)),
                 missing=int(removed is None), failed=0)
        return call.answer(json_reply(202, {"phone_number": number}), wrote=True)


async def _listing(store: Store, name: ListName, scope: str) -> Reply:
    """Every exact number of the list that applies to sms, with its added time."""
    rows: list[dict[str, str]] = []
    last = ""
    async for listed in store.scan_entries(name, scope):
        entry = listed.item.entry
        # Members are ordered, so `+30…` and its `+30…#sms` variant come one after the other.
        if entry.endswith("*") or listed.item.channel == "voice" or entry == last:
            continue
        last = entry
        added = listed.meta.added_at if listed.meta else 0.0
        rows.append({"phone_number": entry, "created_at": _iso(added)})
    return json_reply(200, {"phone_numbers": rows})

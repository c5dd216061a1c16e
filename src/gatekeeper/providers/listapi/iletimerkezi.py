"""iletiMerkezi's blacklist API, answered from Gatekeeper's store (the block list).

All three calls are POST with JSON `{"request": {"authentication": {"key", "hash"},
"blacklist": {...}}}`; every reply carries its status code in the HTTP status and in
`response.status.code` alike:
- `/v1/add-blacklist/json`, `blacklist.number`: 200 (idempotent).
- `/v1/delete-blacklist/json`, `blacklist.number`: 200, or 474 "Bu numara üzerindeki
  engelleme kaldırılamaz" when the number is not on the list (not idempotent).
- `/v1/get-blacklist/json`, optional `blacklist.filter.start` / `.end` ("YYYY-MM-DD
  HH:MM:SS", Turkey time, on the entry's added time, both ends included), `blacklist.page`
  (default "1") and `blacklist.rowCount` (default "1000", at most "1000"): 200 with
  `blacklist.count` (every number on the account's list, whatever the filter and page, as
  the docs define it) and `blacklist.number` (this page's numbers, `+90...`, in list
  order). Prefix and voice-only entries are not listed.

Numbers: `905XXXXXXXXX`, `+905XXXXXXXXX`, `5XXXXXXXXX` and `05XXXXXXXXX` all mean
+905XXXXXXXXX; anything that is not a Turkish mobile number (country 90, phonenumbers
type MOBILE: `905999000000` is refused) is 466 "Hatalı numara". A key that maps to no
scope, or an authentication without key or hash, is 401 "Üyelik bilgileri hatalı";
Gatekeeper cannot check the hash (it never holds the secret), so the key alone selects
the scope. Delete lifts only a block this API added: an operator's entry stays and the
caller gets 474. A body that is not such a request, or a bad page, rowCount or filter, is 400
"İstek çözümlenemedi", iletiMerkezi's code for a request it cannot parse.
"""  # noqa: RUF002 (Turkish dotless i)

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import phonenumbers

from gatekeeper.providers.listapi import ListCall, ListReply, Logger, remove_own
from gatekeeper.providers.locators import load_json
from gatekeeper.replies import Reply
from gatekeeper.store import EntryMeta, ListItem, Store

SOURCE = "iletimerkezi"
BAD_REQUEST = (400, "İstek çözümlenemedi")
AUTH_FAILED = (401, "Üyelik bilgileri hatalı")  # noqa: RUF001
INVALID_NUMBER = (466, "Hatalı numara")  # noqa: RUF001
# "Request successful": also the send API's success text (providers/iletimerkezi.py).
SUCCESS_MESSAGE = "İşlem başarılı"  # noqa: RUF001
NOT_LISTED = (474, "Bu numara üzerindeki engelleme kaldırılamaz")  # noqa: RUF001
MAX_ROWS = 1000
# Turkey keeps UTC+3 all year (no daylight saving since 2016).
TURKEY = timezone(timedelta(hours=3), "TRT")
_PATH = re.compile(r"^/v1/(?P<op>add|get|delete)-blacklist/json$", re.I)
_FORMS = re.compile(r"\+?[0-9]{10,14}")
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
_CONTENT_TYPE = "application/json; charset=utf-8"


def _reply(status: tuple[int, str], blacklist: dict[str, object] | None = None) -> Reply:
    code, message = status
    payload: dict[str, object] = {"status": {"code": code, "message": message}}
    if blacklist is not None:
        payload["blacklist"] = blacklist
    return Reply(code, json.dumps({"response": payload}, ensure_ascii=False).encode(),
                 _CONTENT_TYPE)


def turkish_mobile(raw: object) -> str | None:
    """`+905XXXXXXXXX` for a Turkish mobile number in any accepted form, else None."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        return None
    text = "".join(raw.split())
    if _FORMS.fullmatch(text) is None:
        return None
    try:
        parsed = phonenumbers.parse(text, "TR")
    except phonenumbers.NumberParseException:
        return None
    if parsed.country_code != 90 or \
            phonenumbers.number_type(parsed) != phonenumbers.PhoneNumberType.MOBILE:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


class _Refused(Exception):
    """A request answered with an iletiMerkezi error status."""

    def __init__(self, status: tuple[int, str]) -> None:
        super().__init__(status[1])
        self.status = status


@dataclass(frozen=True, slots=True)
class _Query:
    """A get-blacklist page request."""

    page: int = 1
    rows: int = MAX_ROWS
    start: float | None = None
    end: float | None = None

    def admits(self, added_at: float | None) -> bool:
        """True when an entry added at `added_at` passes the date filter."""
        if self.start is None and self.end is None:
            return True
        if added_at is None:
            return False
        return (self.start is None or added_at >= self.start) and \
            (self.end is None or added_at <= self.end)


def _positive(value: object, default: int, top: int | None = None) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1 or \
            (top is not None and value > top):
        raise _Refused(BAD_REQUEST)
    return value


def _instant(value: object) -> float | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _Refused(BAD_REQUEST)
    try:
        return datetime.strptime(value.strip(), _DATE_FORMAT).replace(tzinfo=TURKEY).timestamp()
    except ValueError as exc:
        raise _Refused(BAD_REQUEST) from exc


def _query(blacklist: object) -> _Query:
    if blacklist is None:
        return _Query()
    if not isinstance(blacklist, dict):
        raise _Refused(BAD_REQUEST)
    window = blacklist.get("filter")
    if window is not None and window != "" and not isinstance(window, dict):
        raise _Refused(BAD_REQUEST)
    window = window if isinstance(window, dict) else {}
    # The end second is included: "23:59:59" covers the whole of that second.
    end = _instant(window.get("end"))
    return _Query(_positive(blacklist.get("page"), 1),
                  _positive(blacklist.get("rowCount"), MAX_ROWS, MAX_ROWS),
                  _instant(window.get("start")), None if end is None else end + 0.999999)


class IletiMerkeziLists:
    """The `iletimerkezi` preset's blacklist API."""

    def matches(self, method: str, path: str) -> bool:
        # Matched as loosely as send routes are, so no spelling of the path slips past to
        # the provider when mirroring is off.
        return method == "POST" and _PATH.match(path) is not None

    async def handle(self, call: ListCall, store: Store, log: Logger) -> ListReply:
        found = _PATH.match(call.path)
        if found is None:  # matches() said yes; kept for type narrowing
            return call.answer(_reply(BAD_REQUEST))
        op = found.group("op").lower()
        try:
            doc = load_json(call.body)
            request = doc.get("request") if isinstance(doc, dict) else None
            if not isinstance(request, dict):
                raise _Refused(BAD_REQUEST)
            auth = request.get("authentication")
            key = auth.get("key") if isinstance(auth, dict) else None
            secret = auth.get("hash") if isinstance(auth, dict) else None
            if not isinstance(key, str) or not key or not isinstance(secret, str) or not secret:
                raise _Refused(AUTH_FAILED)
            scope = call.scope_for(key)
            if scope is None:
                raise _Refused(AUTH_FAILED)
            blacklist = request.get("blacklist")
            if op == "get":
                return call.answer(await _page(store, scope, _query(blacklist)))
            if not isinstance(blacklist, dict) or blacklist.get("number") in (None, ""):
                raise _Refused(BAD_REQUEST)
            number = turkish_mobile(blacklist["number"])
            if number is None:
                raise _Refused(INVALID_NUMBER)
        except _Refused as refused:
            return call.answer(_reply(refused.status))
        added_by = f"{call.upstream}:api_key"
        if op == "add":
            added, existing = await store.add("block", scope, [ListItem(number)], EntryMeta(
                source=SOURCE, added_at=time.time(), added_by=added_by))
            log.info("list_changed", key_name=added_by, upstream=call.upstream, scope=scope,
                     list="block", op="add", source=SOURCE, added=len(added),
                     existing=len(existing), failed=0)
            return call.answer(_reply((200, SUCCESS_MESSAGE)), wrote=True)
        removed = await remove_own(call, store, log, "block", scope, number, SOURCE)
        if not removed:
            # Absent, or added by an operator (kept): iletiMerkezi's "cannot be lifted".
            return call.answer(_reply(NOT_LISTED))
        log.info("list_changed", key_name=added_by, upstream=call.upstream, scope=scope,
                 list="block", op="remove", source=SOURCE, removed=1, missing=0, failed=0)
        return call.answer(_reply((200, SUCCESS_MESSAGE)), wrote=True)


async def _page(store: Store, scope: str, query: _Query) -> Reply:
    """One page of the block list's numbers, and how many the list holds in all."""
    total = matched = 0
    first = (query.page - 1) * query.rows
    numbers: list[str] = []
    last = ""
    async for listed in store.scan_entries("block", scope):
        entry = listed.item.entry
        # Members are ordered, so `+90…` and its `+90…#sms` variant come one after the other.
        if entry.endswith("*") or listed.item.channel == "voice" or entry == last:
            continue
        last = entry
        total += 1
        if not query.admits(listed.meta.added_at if listed.meta else None):
            continue
        if first <= matched < first + query.rows:
            numbers.append(entry)
        matched += 1
    return _reply((200, SUCCESS_MESSAGE), {"count": total, "number": numbers})

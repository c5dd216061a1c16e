"""The blocked-attempts log API under /admin/v1: recent attempts and counts over a window.

Attempts come from the capped Redis stream (`store.attempts_max_len`), read newest first
in batches with XREVRANGE, so every call's work is bounded by the stream's length.

Scope semantics: an attempt belongs to the scope of the entry that blocked it (its
matched scope, `matched.scope`), not to every scope that applied to the request. The
`scope` filter, the summary's `by_scope` and the permission filter of scoped keys all
use the matched scope, so a `tenant:acme*` key sees what its own lists blocked, and not
what `global` entries blocked in its traffic.

Times: attempts are filtered by their stream id's millisecond time (the Redis server's
clock at append), which is also the `at` shown; `since` is inclusive, `until` exclusive.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from gatekeeper.admin.auth import BadRequest, authorize
from gatekeeper.admin.params import region_param, scope_param
from gatekeeper.config import AdminKey
from gatekeeper.numbers import (
    Entry,
    parse_destination,
    parse_entry,
)
from gatekeeper.resources import RESOURCES
from gatekeeper.store import Store
from gatekeeper.times import iso, parse_instant
from gatekeeper.types import CHANNELS

DIRECTIONS = ("outbound", "inbound")
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
# Entries read per XREVRANGE when filtering (unfiltered pages read just what they need).
SCAN_BATCH = 1000
SUMMARY_WINDOW = 24 * 3600
TOP_ENTRIES = 100
# The largest sequence part of a stream id (a 64-bit unsigned integer).
_MAX_SEQ = 2**64 - 1
# 9999-12-31T23:59:59Z: later instants cannot be shown (and NaN compares false).
_STREAM_ID = re.compile(r"^([0-9]{1,20})-([0-9]{1,20})$")

LIST_PARAMS = frozenset({"scope", "number", "region", "channel", "direction", "upstream",
                         "since", "until", "limit", "cursor"})
SUMMARY_PARAMS = frozenset({"scope", "upstream", "since", "until"})
# An upstream's name as the config allows it.
_UPSTREAM = re.compile(r"[a-z][a-z0-9_-]{0,62}")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt as read back from the stream."""

    id: str
    fields: Mapping[str, str]

    def get(self, name: str) -> str:
        """A field's value ('' when absent)."""
        return self.fields.get(name, "")

    @property
    def millis(self) -> int:
        """The stream id's millisecond time."""
        return int(self.id.partition("-")[0])

    def shown(self) -> dict[str, Any]:
        """The attempt as the API shows it (the number in full: this is the operator's
        tool, behind admin keys)."""
        scope, listed, entry = self.get("scope"), self.get("list"), self.get("entry")
        return {
            "id": self.id,
            "at": iso(self.millis / 1000, "milliseconds"),
            "request_id": self.get("request_id"),
            "upstream": self.get("upstream"),
            "channel": self.get("channel"),
            "direction": self.get("direction"),
            "number": self.get("number"),
            "scopes": [s for s in self.get("scopes").split(",") if s],
            "matched": {"scope": scope, "list": listed, "entry": entry} if entry else None,
            # What blocked it: `list` (the entry above), or a policy rule (rules.py).
            "rule": {"kind": self.get("rule") or "list", "scope": scope,
                     "detail": self.get("detail")},
            "action": self.get("action"),
        }


Keep = Callable[[Attempt], bool]


def _params(query: MultiMapping[str], known: frozenset[str]) -> dict[str, str]:
    """The query as a dict; unknown or repeated parameters are refused (a mistyped
    filter must not silently return everything)."""
    for name in query:
        if name not in known:
            raise BadRequest("invalid_parameter",
                             f"Unknown parameter {name!r}: expected one of "
                             f"{', '.join(sorted(known))}.")
        if len(query.getall(name)) > 1:
            raise BadRequest("invalid_parameter", f"Parameter {name!r} is given more than once.")
    return {name: query[name] for name in query}


def _choice(params: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    value = params.get(name) or None
    if value is not None and value not in allowed:
        raise BadRequest(f"invalid_{name}", f"'{name}' must be one of {', '.join(allowed)}.")
    return value


def _upstream(params: Mapping[str, str]) -> Keep | None:
    """The `upstream` filter (a name as the config allows one), if given."""
    value = params.get("upstream") or None
    if value is None:
        return None
    if not _UPSTREAM.fullmatch(value):
        raise BadRequest("invalid_upstream", "'upstream' must be an upstream's name "
                         "(lower-case letters, digits, '_' and '-').")
    return lambda a: a.get("upstream") == value


def _number(value: str | None, region: str | None) -> str | None:
    """The E.164 number to match, from any spelling an operator might paste."""
    if not value:
        return None
    region = region_param(region)
    text = value
    if text.startswith(" ") and text.strip()[:1].isdigit():
        # `?number=+336...` unencoded: the query decodes `+` as a space.
        text = "+" + text.strip()
    destination = parse_destination(text, region)
    if destination.e164 is not None:
        return destination.e164
    # E.164 by syntax but not a possible number (`+30123456789`): still listable.
    entry = parse_entry(text, region)
    if isinstance(entry, Entry) and not entry.is_prefix:
        return entry.value
    raise BadRequest("invalid_number", f"Not a phone number: {value!r} (expected E.164, "
                     "or a national number with 'region').")


def _instant(value: str | None, name: str) -> float | None:
    """An ISO 8601 date-time (no zone: UTC) or epoch seconds, from a query string."""
    if not value:
        return None
    # An unencoded `+01:00` arrives as ` 01:00`: try the last space as a `+` too.
    head, space, tail = value.rpartition(" ")
    for text in (value, f"{head}+{tail}") if space else (value,):
        instant = parse_instant(text)
        if instant is not None:
            return instant
    raise BadRequest("invalid_time", f"'{name}' must be an ISO 8601 date-time or epoch "
                     "seconds, from 1970 to 9999.")


def _millis(instant: float) -> int:
    """The first stream-id millisecond at or after `instant` (rounded to the microsecond
    first, so 12.345 is 12345 ms despite binary floats)."""
    return math.ceil(round(instant * 1000, 3))


def _before(stream_id: str) -> str:
    """The stream id just before `stream_id`, or '' when none is (ids start at 0-0)."""
    millis, seq = (int(part) for part in stream_id.split("-"))
    if seq > 0:
        return f"{millis}-{seq - 1}"
    return f"{millis - 1}-{_MAX_SEQ}" if millis > 0 else ""


def _cursor(value: str | None) -> str | None:
    """Where the page after cursor `value` starts (the cursor itself was shown)."""
    if not value:
        return None
    found = _STREAM_ID.match(value)
    if found is None or int(found.group(1)) > _MAX_SEQ or int(found.group(2)) > _MAX_SEQ:
        raise BadRequest("invalid_cursor", "'cursor' must be a 'next_cursor' from a reply.")
    return _before(value)


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError as exc:
        raise BadRequest("invalid_limit", "'limit' must be an integer.") from exc
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest("invalid_limit", f"'limit' must be between 1 and {MAX_LIMIT}.")
    return limit


@dataclass(frozen=True, slots=True)
class Window:
    """The stream ids to read between (both inclusive); empty when `newest` is ''."""

    newest: str
    oldest: str

    @classmethod
    def of(cls, since: float | None, until: float | None, before: str | None = None
           ) -> Window:
        """[since, until) in time, and strictly older than a cursor when one is given."""
        if since is not None and until is not None and since >= until:
            raise BadRequest("invalid_time", "'since' must be before 'until'.")
        oldest = "-" if since is None else f"{_millis(since)}-0"
        newest = "+"
        if until is not None:
            last = _millis(until) - 1
            newest = f"{last}-{_MAX_SEQ}" if last >= 0 else ""
        if before is not None and (newest == "+" or _older(before, newest)):
            newest = before
        return cls(newest, oldest)


def _older(a: str, b: str) -> bool:
    """True when stream id `a` is older than `b` ('' is older than anything)."""
    def key(stream_id: str) -> tuple[int, int]:
        millis, _, seq = stream_id.partition("-")
        return (int(millis), int(seq)) if stream_id else (-1, -1)
    return key(a) < key(b)


async def _scan(store: Store, window: Window, batch: int) -> AsyncIterator[Attempt]:
    """Every attempt in the window, newest first, read `batch` at a time."""
    newest = window.newest
    while newest:
        found = await store.read_attempts(newest, window.oldest, batch)
        for stream_id, fields in found:
            yield Attempt(stream_id, fields)
        if len(found) < batch:
            return
        newest = _before(found[-1][0])


def _visible(key: AdminKey, scope: str | None) -> Keep | None:
    """The filter for what a key may see and the `scope` asked for (None: everything)."""
    restricted = "*" not in key.scopes
    if scope is not None:
        return lambda a: a.get("scope") == scope
    if restricted:
        return lambda a: key.permits(a.get("scope"))
    return None


async def list_attempts(request: web.Request) -> web.Response:
    """GET /attempts?scope=&number=&region=&channel=&direction=&upstream=&since=&until=
    &limit=&cursor=:
    blocked attempts, newest first; `next_cursor` (exclusive) is null on the last page."""
    params = _params(request.query, LIST_PARAMS)
    scope = scope_param(params["scope"]) if params.get("scope") else None
    key = authorize(request, "read", *([scope] if scope else []))
    number = _number(params.get("number"), params.get("region") or None)
    channel = _choice(params, "channel", CHANNELS)
    direction = _choice(params, "direction", DIRECTIONS)
    limit = _limit(params.get("limit"))
    window = Window.of(_instant(params.get("since"), "since"),
                       _instant(params.get("until"), "until"), _cursor(params.get("cursor")))
    tests: list[Keep] = []
    visible = _visible(key, scope)
    if visible is not None:
        tests.append(visible)
    if number is not None:
        tests.append(lambda a: a.get("number") == number)
    if channel is not None:
        tests.append(lambda a: a.get("channel") == channel)
    if direction is not None:
        tests.append(lambda a: a.get("direction") == direction)
    upstream = _upstream(params)
    if upstream is not None:
        tests.append(upstream)
    # One more than the page, to know whether another page follows.
    wanted = limit + 1
    found: list[Attempt] = []
    async for attempt in _scan(request.app[RESOURCES].store, window,
                               max(wanted, SCAN_BATCH) if tests else wanted):
        if all(test(attempt) for test in tests):
            found.append(attempt)
            if len(found) == wanted:
                break
    page = found[:limit]
    more = len(found) > limit
    return web.json_response({"attempts": [a.shown() for a in page],
                              "next_cursor": page[-1].id if more else None})


async def summary(request: web.Request) -> web.Response:
    """GET /attempts/summary?since=&until=&scope=&upstream=: counts over a window
    (default: the last 24 hours) by matched scope, channel, direction, action, upstream,
    rule, matched entry and number."""
    params = _params(request.query, SUMMARY_PARAMS)
    scope = scope_param(params["scope"]) if params.get("scope") else None
    key = authorize(request, "read", *([scope] if scope else []))
    until = _instant(params.get("until"), "until")
    since = _instant(params.get("since"), "since")
    if until is None:
        until = time.time()
    if since is None:
        since = max(0.0, until - SUMMARY_WINDOW)
    visible = _visible(key, scope)
    upstream = _upstream(params)
    by_scope: Counter[str] = Counter()
    by_upstream: Counter[str] = Counter()
    by_rule: Counter[str] = Counter()
    by_number: Counter[str] = Counter()
    by_channel: Counter[str] = Counter()
    by_direction: Counter[str] = Counter()
    by_action: Counter[str] = Counter()
    by_entry: Counter[tuple[str, str, str]] = Counter()
    async for attempt in _scan(request.app[RESOURCES].store, Window.of(since, until),
                               SCAN_BATCH):
        if visible is not None and not visible(attempt):
            continue
        if upstream is not None and not upstream(attempt):
            continue
        by_scope[attempt.get("scope")] += 1
        by_upstream[attempt.get("upstream")] += 1
        by_rule[attempt.get("rule") or "list"] += 1
        by_number[attempt.get("number")] += 1
        by_channel[attempt.get("channel")] += 1
        by_direction[attempt.get("direction")] += 1
        by_action[attempt.get("action")] += 1
        by_entry[(attempt.get("scope"), attempt.get("list"), attempt.get("entry"))] += 1
    # Most frequent first; ties in a stable order so the top 100 do not flicker.
    top = sorted(by_entry.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_ENTRIES]
    return web.json_response({
        "since": iso(since, "milliseconds"),
        "until": iso(until, "milliseconds"),
        "total": by_scope.total(),
        "by_scope": dict(by_scope.most_common()),
        "by_channel": dict(by_channel.most_common()),
        "by_direction": dict(by_direction.most_common()),
        "by_action": dict(by_action.most_common()),
        "by_upstream": dict(by_upstream.most_common()),
        "by_rule": dict(by_rule.most_common()),
        "by_entry": [{"scope": s, "list": n, "entry": e, "count": c}
                     for (s, n, e), c in top],
        "by_number": [{"number": n, "count": c} for n, c in
                      sorted(by_number.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_ENTRIES]],
    })


def add_routes(app: web.Application) -> None:
    """Install this module's routes on the /admin/v1 application."""
    app.router.add_get("/attempts", list_attempts)
    app.router.add_get("/attempts/summary", summary)

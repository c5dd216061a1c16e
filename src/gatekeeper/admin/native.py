"""The native admin API under /admin/v1: list entries and decision checks."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from aiohttp.typedefs import Middleware

from gatekeeper.admin import attempts, bulk, control, openapi, policy
from gatekeeper.admin.auth import ADMIN_KEY, BadRequest, Forbidden, KeyRing, authorize, json_object
from gatekeeper.admin.explain import Asked, described, explain
from gatekeeper.admin.params import region_param, scope_param
from gatekeeper.freshness import assess
from gatekeeper.numbers import (
    EntryError,
    parse_entry,
)
from gatekeeper.observability import REQUEST_ID
from gatekeeper.policy import ListName
from gatekeeper.replies import error_response
from gatekeeper.resources import RESOURCES, Resources
from gatekeeper.rules import INTENTS
from gatekeeper.store import MAX_NOTE, EntryMeta, Listed, ListItem, StoreUnavailable
from gatekeeper.times import MAX_TTL, expiry_instant, iso
from gatekeeper.types import CHANNELS, Channel

MAX_ENTRIES_PER_CALL = 10_000
MAX_PAGE = 1000
DEFAULT_PAGE = 100

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(request: web.Request, status: int, code: str, message: str) -> web.Response:
    return error_response(status, code, message, request.get(REQUEST_ID, ""))


def auth_middleware(resources: Resources) -> Middleware:
    """Bearer-key check (constant time); turns BadRequest, Forbidden and store faults
    into JSON replies."""
    admin = resources.config.admin
    ring = KeyRing(admin.keys)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.handler is openapi.serve_document:
            return await handler(request)  # documentation: served without a key
        if not ring:
            return _error(request, 401, "unauthorized",
                          f"The admin API is disabled: no key is configured ({admin.key_source}).")
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        key = ring.find(given.strip()) if scheme.lower() == "bearer" else None
        if key is None:
            return _error(request, 401, "unauthorized",
                          "Missing or wrong admin key: send 'Authorization: Bearer <key>'.")
        request[ADMIN_KEY] = key
        try:
            return await handler(request)
        except BadRequest as exc:
            return _error(request, 400, exc.code, exc.message)
        except Forbidden as exc:
            return _error(request, 403, "forbidden", exc.message)
        except StoreUnavailable as exc:
            resources.store_fault("admin", str(exc))
            return _error(request, 503, "store_unavailable", "The list store is unavailable.")

    return middleware


def _list_name(request: web.Request) -> ListName:
    return cast(ListName, request.match_info["list"])


@dataclass(frozen=True, slots=True)
class EntriesBody:
    """A validated add/remove body."""

    scope: str
    items: tuple[ListItem, ...]
    failed: tuple[EntryError, ...]
    note: str | None = None
    expires_at: float | None = None


def expiry_of(ttl: object, expires: object) -> float | None:
    """The expiry instant from `ttl_seconds` or `expires_at` (at most one, in the future)."""
    if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool)):
        raise BadRequest("invalid_body", f"'ttl_seconds' must be an integer from 1 to {MAX_TTL}.")
    try:
        return expiry_instant(ttl, expires, time.time())
    except ValueError as exc:
        raise BadRequest("invalid_body", f"{str(exc)[0].upper()}{str(exc)[1:]}.") from exc


def _item(raw: object, region: str | None) -> ListItem | EntryError:
    """A body entry: `"+33*"` (every channel) or `{"entry": "+33*", "channel": "voice"}`."""
    channel: object = "both"
    if isinstance(raw, dict):
        unknown = sorted(set(raw) - {"entry", "channel"})
        if unknown:
            return EntryError(json.dumps(raw), f"unknown field {unknown[0]!r}")
        channel = raw.get("channel", "both")
        raw = raw.get("entry")
    if not isinstance(raw, str):
        return EntryError(json.dumps(raw), "an entry is a string or {entry, channel}")
    if channel not in (*CHANNELS, "both"):
        return EntryError(raw, "channel must be sms, voice or both")
    parsed = parse_entry(raw, region)
    if isinstance(parsed, EntryError):
        return parsed
    return ListItem(parsed.value, None if channel == "both" else cast(Channel, channel))


async def _entries_body(request: web.Request) -> EntriesBody:
    raw = await json_object(request, "Expected a JSON object with 'entries' and 'scope'.")
    unknown = sorted(set(raw) - {"entries", "scope", "region", "note", "ttl_seconds",
                                 "expires_at"})
    if unknown:
        raise BadRequest("invalid_body", f"Unknown field {unknown[0]!r}.")
    entries = raw.get("entries")
    if not isinstance(entries, list) or not entries or \
            not all(isinstance(i, str | dict) for i in entries):
        raise BadRequest("invalid_body", "'entries' must be a non-empty array of strings "
                         "or {entry, channel} objects.")
    if len(entries) > MAX_ENTRIES_PER_CALL:
        raise BadRequest("too_many_entries",
                         f"At most {MAX_ENTRIES_PER_CALL} entries per call.")
    scope = scope_param(raw.get("scope", "global"))
    region = region_param(raw.get("region"))
    good: list[ListItem] = []
    failed: list[EntryError] = []
    for entry in entries:
        parsed = _item(entry, region)
        if isinstance(parsed, ListItem):
            good.append(parsed)
        else:
            failed.append(parsed)
    note = raw.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
        raise BadRequest("invalid_body", f"'note' must be a string of at most {MAX_NOTE} "
                         "characters, valid Unicode.")
    return EntriesBody(scope, tuple(dict.fromkeys(good)), tuple(failed), note or None,
                       expiry_of(raw.get("ttl_seconds"), raw.get("expires_at")))


def _failed(errors: tuple[EntryError, ...]) -> list[dict[str, str]]:
    return [{"entry": e.entry, "reason": e.reason} for e in errors]


def shown(item: ListItem) -> str | dict[str, str]:
    """An entry as replies show it: the string, or {entry, channel} when channel-limited."""
    return item.entry if item.channel is None else {"entry": item.entry,
                                                     "channel": item.channel}


def listed(entry: Listed) -> dict[str, Any]:
    """A listing row: entry, channel and what is known of its origin."""
    return {"entry": entry.item.entry, "channel": entry.item.channel or "both",
            **described(entry.meta)}


async def add_entries(request: web.Request) -> web.Response:
    """POST /lists/{list}/entries: add entries (idempotent)."""
    resources = request.app[RESOURCES]
    body = await _entries_body(request)
    key = authorize(request, "write", body.scope)
    added, existing = await resources.store.add(
        _list_name(request), body.scope, body.items,
        EntryMeta(source="api", added_at=time.time(), added_by=key.name, note=body.note,
                  expires_at=body.expires_at))
    resources.log.info("list_changed", key_name=key.name, scope=body.scope,
                       list=_list_name(request), op="add", added=len(added),
                       existing=len(existing), failed=len(body.failed))
    return web.json_response({"added": [shown(i) for i in added],
                              "existing": [shown(i) for i in existing],
                              "failed": _failed(body.failed)})


async def remove_entries(request: web.Request) -> web.Response:
    """DELETE /lists/{list}/entries: remove entries (idempotent).

    A plain entry removes it for every channel; `{entry, channel}` only that channel's.
    """
    resources = request.app[RESOURCES]
    body = await _entries_body(request)
    key = authorize(request, "write", body.scope)
    removed, missing = await resources.store.remove(_list_name(request), body.scope,
                                                    body.items, every_channel=True)
    resources.log.info("list_changed", key_name=key.name, scope=body.scope,
                       list=_list_name(request), op="remove", removed=len(removed),
                       missing=len(missing), failed=len(body.failed))
    return web.json_response({"removed": [shown(i) for i in removed],
                              "missing": [shown(i) for i in missing],
                              "failed": _failed(body.failed)})


async def list_entries(request: web.Request) -> web.Response:
    """GET /lists/{list}/entries?scope=&prefix=&cursor=&limit=: one page, ordered by
    entry; with `prefix`, only entries starting with it (a search)."""
    query = request.query
    scope = scope_param(query.get("scope", "global"))
    authorize(request, "read", scope)
    # `.strip()`: an unencoded `+` in a query reads as a space.
    prefix = query.get("prefix", "").strip() or None
    if prefix is not None:
        digits = prefix[1:] if prefix.startswith("+") else prefix
        if not (digits.isascii() and digits.isdigit() and 1 <= len(digits) <= 15) \
                or digits.startswith("0"):
            raise BadRequest("invalid_prefix", "'prefix' must be the first digits of an "
                             "E.164 number: '+' then 1 to 15 digits, not starting with 0.")
        prefix = f"+{digits}"
    try:
        limit = int(query.get("limit", DEFAULT_PAGE))
    except ValueError as exc:
        raise BadRequest("invalid_limit", "'limit' must be an integer.") from exc
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest("invalid_limit", f"'limit' must be between 1 and {MAX_PAGE}.")
    page = await request.app[RESOURCES].store.page(_list_name(request), scope,
                                                   query.get("cursor") or None, limit,
                                                   prefix)
    return web.json_response({"entries": [listed(e) for e in page.entries],
                              "next_cursor": page.next_cursor})


async def check(request: web.Request) -> web.Response:
    """GET /check?number=&scope=&channel=&region=&intent=&at=: the decision and why,
    every policy rule evaluated included."""
    query = request.query
    number = query.get("number", "")
    if number.startswith(" ") and number.strip().isdigit():
        # `?number=+336...` unencoded: the query decodes `+` as a space.
        number = "+" + number.strip()
    scopes = [scope_param(s.strip()) for value in query.getall("scope", [])
              for s in value.split(",") if s.strip()]
    channel = query.get("channel")
    if channel is not None and channel not in CHANNELS:
        raise BadRequest("invalid_channel", f"'channel' must be one of {', '.join(CHANNELS)}.")
    intent = query.get("intent", "marketing")
    if intent not in INTENTS:
        raise BadRequest("invalid_intent", f"'intent' must be one of {', '.join(INTENTS)}.")
    # `global` always applies to a decision; the key must cover the scopes it names.
    authorize(request, "read", *scopes)
    resources = request.app[RESOURCES]
    try:
        result = await explain(resources.store, number, scopes,
                               region_param(query.get("region")), channel,
                               Asked(resources.policy, intent, query.get("at")))
    except ValueError as exc:
        raise BadRequest("invalid_at", str(exc)) from exc
    if result is None:
        raise BadRequest("invalid_phone_number", f"Not a phone number: {number!r}.")
    if channel is not None:
        result["channel"] = channel
    return web.json_response(result)


async def lists(request: web.Request) -> web.Response:
    """GET /lists: every list the key may read, with its size and freshness."""
    if request.query:
        raise BadRequest("invalid_query", f"Unknown parameter {sorted(request.query)[0]!r}.")
    key = authorize(request, "read")
    resources = request.app[RESOURCES]
    store = resources.store
    sources = {(s.name, s.scope): s for s in await store.sources()}
    now = time.time()
    shown: list[dict[str, object]] = []
    for name, scope in await store.list_names():
        if not key.permits(scope):
            continue
        source = sources.get((name, scope))
        fresh = assess(source, resources.config.list_policy(scope), now)
        shown.append({
            "list": name, "scope": scope, "size": await store.count(name, scope),
            "origin": source.origin if source else None,
            "as_of": iso(source.as_of) if source else None,
            "loaded_at": iso(source.loaded_at) if source else None,
            "age_seconds": None if fresh.age_seconds is None else round(fresh.age_seconds),
            "max_age_days": fresh.max_age_days, "state": fresh.state,
            "on_stale": fresh.on_stale})
    return web.json_response({"lists": shown})


async def calling_key(request: web.Request) -> web.Response:
    """GET /key: the calling key's name, role and scope globs (never its secret), so
    that a client (the console) shows what the key may do."""
    if request.query:
        raise BadRequest("invalid_query", f"Unknown parameter {sorted(request.query)[0]!r}.")
    key = authorize(request, "read")
    return web.json_response({"name": key.name, "role": key.role,
                              "scopes": list(key.scopes)})


def create_native_app(resources: Resources) -> web.Application:
    """The /admin/v1 sub-application."""
    app = web.Application(middlewares=[auth_middleware(resources)])
    app[RESOURCES] = resources
    entries = "/lists/{list:block|allow}/entries"
    app.router.add_post(entries, add_entries)
    app.router.add_delete(entries, remove_entries)
    app.router.add_get(entries, list_entries)
    app.router.add_get("/check", check)
    app.router.add_get("/lists", lists)
    app.router.add_get("/key", calling_key)
    bulk.add_routes(app)
    attempts.add_routes(app)
    policy.add_routes(app)
    control.add_routes(app)
    openapi.add_routes(app)
    return app

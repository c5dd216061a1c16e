"""The per-agent block-list API (seed 001): `/api/agent-block-list` on the admin listener.

A drop-in for a frontend API that manages one agent's blocked phone numbers with
`X-Authorization: <key>`. An agent's block list is Gatekeeper's block list of scope
`agent:<agentId>`, shared with the native API; this API sees its exact numbers (on any
channel) and writes every-channel entries. Prefix entries (`+33*`) are refused here: the
contract is phone numbers, and a prefix would block a whole range while the reply says a
"number" was added; agent prefixes are managed through the native API.

Unlike the native API, adding a number that is already listed fails for that number
("Number already in block list") and removing an absent one fails too; every refusal of
the key (missing, wrong, read-only, scope not covered) is a 401, as the seed documents.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from gatekeeper.admin.auth import ADMIN_KEY, BadRequest, Forbidden, KeyRing, authorize, json_object
from gatekeeper.config import AdminKey, AdminRole
from gatekeeper.numbers import Entry, is_valid_scope, parse_entry
from gatekeeper.observability import REQUEST_ID
from gatekeeper.replies import error_response
from gatekeeper.resources import RESOURCES
from gatekeeper.store import EntryMeta, ListItem, StoreUnavailable

PATH = "/api/agent-block-list"
AUTH_HEADER = "X-Authorization"
SOURCE = "agent-api"
MAX_NUMBERS = 10_000
MAX_UID = 256

UNAUTHORIZED = "Invalid or missing API key, or insufficient permissions."
INVALID_FORMAT = "Invalid phone number format"
ALREADY_LISTED = "Number already in block list"
NOT_LISTED = "Number not found in block list"


class Unauthorized(Exception):
    """The seed's 401: no key, a wrong key, or one that does not cover the call."""


@dataclass(frozen=True, slots=True)
class Target:
    """Whose list a call is about: the caller's user id and the agent's scope."""

    uid: str
    scope: str


@dataclass(frozen=True, slots=True)
class Parsed:
    """The `numbers` of a body: (as given, normalised number or None when invalid)."""

    numbers: tuple[tuple[str, str | None], ...]

    @property
    def valid(self) -> list[str]:
        """The distinct normalised numbers, in the order given."""
        return list(dict.fromkeys(n for _, n in self.numbers if n is not None))

    def failures(self, refused: set[str], reason: str) -> list[dict[str, str]]:
        """Per-number failures in the order given: invalid ones (as given), repeats and
        `refused` numbers (normalised) with `reason`."""
        failed: list[dict[str, str]] = []
        seen: set[str] = set()
        for given, number in self.numbers:
            if number is None:
                failed.append({"number": given, "reason": INVALID_FORMAT})
                continue
            if number in seen or number in refused:
                failed.append({"number": number, "reason": reason})
            seen.add(number)
        return failed


def _target(uid: object, agent_id: object) -> Target | None:
    """The uid and scope `agent:<agentId>`, or None when either is missing or unusable."""
    if not isinstance(uid, str) or not uid.strip() or len(uid) > MAX_UID:
        return None
    if not isinstance(agent_id, str):
        return None
    scope = f"agent:{agent_id}"
    # The id becomes part of a scope (and a Redis key): only ids a scope can carry.
    return Target(uid, scope) if is_valid_scope(scope) else None


def _number(raw: str) -> str | None:
    """The normalised number, or None: E.164 by syntax (core rule), no region, no prefix."""
    parsed = parse_entry(raw, None)
    if not isinstance(parsed, Entry) or parsed.is_prefix:
        return None
    return parsed.value


async def _body(request: web.Request) -> tuple[Target, Parsed]:
    """A POST/DELETE body: `uid`, `agentId` and `numbers` (string[]); other fields ignored."""
    raw = await json_object(request, "Invalid request body: expected a JSON object.")
    target = _target(raw.get("uid"), raw.get("agentId"))
    if target is None:
        raise BadRequest("invalid_body", "Invalid request body: 'uid' and 'agentId' are "
                         "required strings; 'agentId' may hold letters, digits and ._@+- "
                         "(at most 128).")
    numbers = raw.get("numbers")
    if not isinstance(numbers, list) or not numbers or \
            not all(isinstance(n, str) for n in numbers):
        raise BadRequest("invalid_numbers", "Invalid numbers parameter: expected a non-empty "
                         "array of phone numbers (strings).")
    if len(numbers) > MAX_NUMBERS:
        raise BadRequest("invalid_numbers",
                         f"Invalid numbers parameter: at most {MAX_NUMBERS} numbers per call.")
    return target, Parsed(tuple((n, _number(n)) for n in numbers))


class AgentBlockList:
    """The three handlers, sharing the admin key ring."""

    def __init__(self, ring: KeyRing, key_source: str) -> None:
        self.ring = ring
        self.key_source = key_source

    def _key(self, request: web.Request, role: AdminRole) -> AdminKey:
        """The calling key if it has `role`; scopes are checked once the agent is known."""
        if not self.ring:
            raise Unauthorized(f"{UNAUTHORIZED} The admin API is disabled: no key is "
                               f"configured ({self.key_source}).")
        key = self.ring.find(request.headers.get(AUTH_HEADER, "").strip())
        if key is None or not key.allows(role):
            raise Unauthorized(UNAUTHORIZED)
        request[ADMIN_KEY] = key
        return key

    @staticmethod
    def _cover(request: web.Request, role: AdminRole, scope: str) -> AdminKey:
        """`authorize` for the agent's scope, refusals turned into the seed's 401."""
        try:
            return authorize(request, role, scope)
        except Forbidden as exc:
            raise Unauthorized(UNAUTHORIZED) from exc

    def route(self, role: AdminRole, handler: Callable[[web.Request], Awaitable[web.Response]]
              ) -> Callable[[web.Request], Awaitable[web.Response]]:
        """Key check first (401 before any 400), then errors as JSON replies."""

        async def run(request: web.Request) -> web.Response:
            request_id = request.get(REQUEST_ID, "")
            resources = request.app[RESOURCES]
            try:
                self._key(request, role)
                return await handler(request)
            except Unauthorized as exc:
                return error_response(401, "unauthorized", str(exc), request_id)
            except BadRequest as exc:
                return error_response(400, exc.code, exc.message, request_id)
            except StoreUnavailable as exc:
                resources.metrics.store_errors.labels("admin").inc()
                resources.log.error("store_unavailable", operation="agent_block_list",
                                    error=str(exc))
                return error_response(503, "store_unavailable",
                                      "The list store is unavailable.", request_id)

        return run

    async def get(self, request: web.Request) -> web.Response:
        """GET ?uid=&agentId=: the agent's blocked numbers (each once, in order)."""
        target = _target(request.query.get("uid"), request.query.get("agentId"))
        if target is None:
            raise BadRequest("invalid_search_params", "Invalid search params: 'uid' and "
                             "'agentId' are required; 'agentId' may hold letters, digits "
                             "and ._@+- (at most 128).")
        self._cover(request, "read", target.scope)
        store = request.app[RESOURCES].store
        numbers: dict[str, None] = {}
        async for listed in store.scan_entries("block", target.scope):
            # Channel variants of one number follow each other; prefixes are not numbers.
            if not listed.item.entry.endswith("*"):
                numbers[listed.item.entry] = None
        return web.json_response({"message": f"Block list retrieved: {len(numbers)} "
                                  "number(s).", "numbers": list(numbers)})

    async def post(self, request: web.Request) -> web.Response:
        """POST {uid, agentId, numbers}: add; duplicates and bad numbers fail one by one."""
        target, parsed = await _body(request)
        key = self._cover(request, "write", target.scope)
        resources = request.app[RESOURCES]
        added, existing = await resources.store.add(
            "block", target.scope, [ListItem(n) for n in parsed.valid],
            EntryMeta(source=SOURCE, added_at=time.time(), added_by=key.name,
                      note=f"uid={target.uid}"))
        # A repeat within the call fails too: its first occurrence put it on the list.
        failed = parsed.failures({i.entry for i in existing}, ALREADY_LISTED)
        resources.log.info("list_changed", key_name=key.name, scope=target.scope, list="block",
                           op="add", api="agent", uid=target.uid, added=len(added),
                           existing=len(existing), failed=len(failed))
        return web.json_response({
            "message": f"Block list updated: {len(added)} added, {len(failed)} failed.",
            "added": [i.entry for i in added], "failed": failed})

    async def delete(self, request: web.Request) -> web.Response:
        """DELETE {uid, agentId, numbers}: remove (on every channel); absent ones fail."""
        target, parsed = await _body(request)
        key = self._cover(request, "write", target.scope)
        resources = request.app[RESOURCES]
        removed, missing = await resources.store.remove(
            "block", target.scope, [ListItem(n) for n in parsed.valid], every_channel=True)
        # A repeat within the call fails too: its first occurrence took it off the list.
        failed = parsed.failures({i.entry for i in missing}, NOT_LISTED)
        resources.log.info("list_changed", key_name=key.name, scope=target.scope, list="block",
                           op="remove", api="agent", uid=target.uid, removed=len(removed),
                           missing=len(missing), failed=len(failed))
        return web.json_response({
            "message": f"Block list updated: {len(removed)} removed, {len(failed)} failed.",
            "removed": [i.entry for i in removed], "failed": failed})


def add_routes(app: web.Application) -> None:
    """Install this module's routes on the admin listener's application."""
    admin = app[RESOURCES].config.admin
    api = AgentBlockList(KeyRing(admin.keys), admin.key_source)
    app.router.add_get(PATH, api.route("read", api.get))
    app.router.add_post(PATH, api.route("write", api.post))
    app.router.add_delete(PATH, api.route("write", api.delete))

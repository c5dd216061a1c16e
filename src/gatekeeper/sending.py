"""What happens to a request that can send: its destinations decided, then forwarded,
edited, refused or answered without sending.

Two ways in: a known send route (`check`: the route's recipients, plus any phone number
in the query string of a send that does not read its query) and an unknown write
(`scan`: every phone number anywhere in the request, decided on both channels, never
edited). Both refuse before anything reaches the upstream when a destination is
blocked, unless the upstream is in `monitor`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web

from gatekeeper.forwarding import REMOVED_HEADER, relay
from gatekeeper.numbers import Destination
from gatekeeper.observability import OUTCOME, REQUEST_ID, Outcome
from gatekeeper.providers.credentials import header
from gatekeeper.providers.preset import (
    Blocked,
    BodyError,
    Message,
    Recipients,
    ReplyFn,
    Route,
)
from gatekeeper.replies import Reply, error_response, json_reply, to_response
from gatekeeper.resources import Resources
from gatekeeper.scan import ScanError, is_phone_like, scan_request
from gatekeeper.screening import Screened, Screener, attempt_for, parse_all
from gatekeeper.types import Channel

if TYPE_CHECKING:
    from gatekeeper.proxy import Mount

_ACTIONS = {"reject": "rejected", "skip": "skipped", "monitor": "monitored"}
# Bodies larger than this are read in a worker thread: parsing a large batch must not hold
# the event loop (and every other request) for tens of milliseconds.
OFF_LOOP_BYTES = 64 * 1024
T = TypeVar("T")


async def off_loop(size: int, work: Callable[[], T]) -> T:
    """Run pure `work` on the loop when `size` is small, else in a worker thread."""
    if size <= OFF_LOOP_BYTES:
        return work()
    return await asyncio.to_thread(work)
_SCAN_ERRORS = {"too_many_values": 413}


def skip_unknown(blocked: Blocked) -> Reply:
    """The skip reply of a write no route describes: Gatekeeper's generic success."""
    return json_reply(200, {"id": blocked.request_id, "status": "skipped"})


def masked(raw: str) -> str:
    """A destination as error replies show it: never the whole number."""
    text = raw.strip()
    if len(text) <= 6:
        return "****"
    return f"{text[:4]}****{text[-2:]}"


class Sending:
    """Decides and acts on requests that can send."""

    def __init__(self, resources: Resources, screener: Screener) -> None:
        self.resources = resources
        self.screener = screener
        config = resources.config
        self.on_invalid = config.proxy.on_invalid
        self.max_recipients = config.proxy.max_recipients
        self.mask = config.log.mask_numbers

    async def check(self, request: web.Request, mount: Mount, forward: str, message: Message,
                    route: Route, params: Mapping[str, str], scopes: tuple[str, ...]
                    ) -> web.StreamResponse:
        """A send route: decide its recipients, then act."""
        channel = route.channel
        refuse = self._refuser(request, mount, channel or "any", scopes)
        recipients = await off_loop(len(message.body), lambda: route.locator.find(message))
        if isinstance(recipients, BodyError):
            return refuse(400, recipients.code, recipients.message, "malformed_request")
        if message.query and not route.reads_query:
            # A number in the query of a send may be read by the gateway too.
            found = scan_request(message.query, b"", "", bare_digits=mount.preset.msisdn,
                                 max_values=self.max_recipients)
            if isinstance(found, ScanError):
                return refuse(_SCAN_ERRORS.get(found.code, 400), found.code, found.message,
                              "malformed_request")
            if found:
                recipients = Recipients((*recipients.values, *found))
        if len(recipients.values) > self.max_recipients:
            return refuse(413, "too_many_recipients",
                          f"{len(recipients.values)} recipients; at most "
                          f"{self.max_recipients} per request (proxy.max_recipients).",
                          "malformed_request")
        raws = list(dict.fromkeys(recipients.values))
        parsed = await parse_all(raws, mount.region, mount.preset.msisdn)
        screened = await self.screener.screen(request[REQUEST_ID], parsed, scopes, channel)
        blocked = screened.blocked
        invalid = [raw for raw, d in parsed.items() if d.kind == "invalid" and raw not in blocked]
        if invalid and self.on_invalid == "reject":
            shown = masked(invalid[0]) if self.mask else invalid[0]
            return refuse(400, "invalid_phone_number", f"Not a possible phone number: "
                          f"{shown!r}.", "invalid_number")
        if screened.store_failed and not screened.fail_open:
            return refuse(503, "store_unavailable",
                          "The list store is unavailable; the send was not forwarded.",
                          "store_unavailable")
        # One count per distinct number, however many spellings of it the request holds.
        distinct = {(d.keys[0] if d.keys else raw): raw for raw, d in parsed.items()}
        reasons = [_reason(parsed[raw], screened, raw) for raw in distinct.values()]
        context = _Context(request, mount, forward, message, scopes, channel, params,
                           route.reject, route.skip)
        return await self._act(context, screened, reasons, recipients)

    async def scan(self, request: web.Request, mount: Mount, forward: str, message: Message,
                   scopes: tuple[str, ...], path: str) -> web.StreamResponse:
        """An unknown write: every phone number in it (query, body, and path segments
        such as `/lookup/{number}/hlr`) decided; any blocked one refuses the whole request
        (`on_block`); never edited."""
        refuse = self._refuser(request, mount, "any", scopes)
        # Digits alone are numbers where the gateway writes them so (msisdn presets, and
        # iletiMerkezi's national `905...`).
        msisdn = mount.preset.msisdn or mount.preset.default_region is not None
        found = await off_loop(len(message.body), lambda: scan_request(
            message.query, message.body, header(message.headers, "Content-Type"),
            bare_digits=msisdn, max_values=self.max_recipients))
        if not isinstance(found, ScanError):
            found += [s for s in path.split("/") if is_phone_like(s, bare_digits=msisdn)]
        if isinstance(found, ScanError):
            code = "too_many_recipients" if found.code == "too_many_values" else found.code
            return refuse(_SCAN_ERRORS.get(found.code, 400), code, found.message,
                          "malformed_request")
        raws = list(dict.fromkeys(found))
        parsed = {raw: d for raw, d in
                  (await parse_all(raws, mount.region, mount.preset.msisdn)).items() if d.keys}
        screened = await self.screener.screen(request[REQUEST_ID], parsed, scopes, None)
        if screened.store_failed and not screened.fail_open:
            return refuse(503, "store_unavailable",
                          "The list store is unavailable; the request was not forwarded.",
                          "store_unavailable")
        numbers = {d.keys[0] for d in parsed.values()}
        reasons = ["store_unavailable" if screened.store_failed else "scanned"
                   for _ in numbers] or ["scanned"]
        context = _Context(request, mount, forward, message, scopes, None, {},
                           mount.preset.refuse, skip_unknown)
        return await self._act(context, screened, reasons, None)

    async def _act(self, c: _Context, screened: Screened, reasons: list[str],
                   recipients: Recipients | None) -> web.StreamResponse:
        """Forward, edit, refuse or skip, by what was blocked and the upstream's on_block."""
        request, name = c.request, c.mount.upstream.name
        request_id = request[REQUEST_ID]
        blocked = screened.blocked
        if not blocked:
            request[OUTCOME] = Outcome(name, c.label, "forwarded", tuple(reasons), c.scopes)
            return await self._forward(c, c.message, "forwarded")
        decisions = tuple({d.number: d for d in blocked.values()}.values())
        action = _ACTIONS[c.mount.upstream.on_block]
        rewritten: Message | None = None
        if action != "monitored" and recipients is not None and \
                len(blocked) < len(screened.parsed):
            gone = frozenset(blocked)
            rewritten = await off_loop(len(c.message.body), lambda: recipients.without(gone))
            if rewritten is not None:
                action = "partial"
        request[OUTCOME] = Outcome(name, c.label, action, tuple(reasons), c.scopes, decisions)
        for decision in decisions:
            self.screener.record(attempt_for(
                request_id, name, c.label, "outbound", c.scopes, decision,
                "removed" if action == "partial" else action))
        if action == "monitored":
            return await self._forward(c, c.message, action)
        if rewritten is not None:
            return await self._forward(c, rewritten, action,
                                       {REMOVED_HEADER: str(len(decisions))})
        first = next(iter(blocked))
        context = Blocked(request_id, c.channel, first, c.params, c.message, tuple(blocked))
        reply = c.reject(context) if action == "rejected" else c.skip(context)
        return to_response(reply, action)

    async def _forward(self, c: _Context, message: Message, decision: str,
                       extra: Mapping[str, str] | None = None) -> web.StreamResponse:
        forward = c.forward
        if message.query != c.message.query:
            forward = forward.partition("?")[0] + (f"?{message.query}" if message.query else "")
        return await relay(self.resources, c.request, c.mount.upstream.name, forward,
                           message.body, c.mount.upstream.timeout, decision, extra)

    def _refuser(self, request: web.Request, mount: Mount, channel: str,
                 scopes: tuple[str, ...]) -> Callable[[int, str, str, str], web.Response]:
        def refuse(status: int, code: str, text: str, reason: str) -> web.Response:
            request[OUTCOME] = Outcome(mount.upstream.name, channel, "rejected", (reason,),
                                       scopes)
            return error_response(status, code, text, request[REQUEST_ID], "rejected")
        return refuse


class _Context:
    """What acting on one request needs."""

    __slots__ = ("channel", "forward", "label", "message", "mount", "params", "reject",
                 "request", "scopes", "skip")

    def __init__(self, request: web.Request, mount: Mount, forward: str, message: Message,
                 scopes: tuple[str, ...], channel: Channel | None, params: Mapping[str, str],
                 reject: ReplyFn, skip: ReplyFn) -> None:
        self.request, self.mount, self.forward, self.message = request, mount, forward, message
        self.scopes, self.channel, self.params = scopes, channel, params
        self.label = channel or "any"  # the metric label of a send by either channel
        self.reject, self.skip = reject, skip


def _reason(destination: Destination, screened: Screened, raw: str) -> str:
    """The counted reason for one distinct destination."""
    decision = screened.decisions.get(raw)
    if decision is not None and decision.verdict == "blocked":
        return "blocked"
    if destination.kind == "invalid":
        return "invalid_number"
    if destination.kind != "phone":
        return "not_a_phone_number"
    if screened.store_failed:
        return "store_unavailable"
    return decision.verdict if decision is not None else "unlisted"



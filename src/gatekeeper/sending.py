"""What happens to a request that can send: its destinations decided, then forwarded,
edited, refused or answered without sending.

Two ways in: a known send route (`check`) and an unknown write (`scan`); what each
decides is `examine.examine`, run on the event loop, or for a body over
`OFF_LOOP_BYTES` in the screening helper process (`bigscreen`) when there is one. Both
refuse before anything reaches the upstream when a destination is blocked, unless the
upstream is in `monitor`. Replies, metrics, logs and the attempts stream are made here,
on the loop, whichever place screened the request.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web

from gatekeeper.examine import Examined, Job, Refusal, Rules, examine
from gatekeeper.forwarding import INTENT_HEADER, REMOVED_HEADER, relay
from gatekeeper.observability import OUTCOME, REQUEST_ID, Outcome
from gatekeeper.providers.preset import Blocked, Message, ReplyFn, Route
from gatekeeper.replies import Reply, error_response, json_reply, to_response
from gatekeeper.resources import Resources
from gatekeeper.rules import INTENTS, Intent
from gatekeeper.screener import Screener, attempt_for
from gatekeeper.types import Channel

if TYPE_CHECKING:
    from gatekeeper.proxy import Mount

_ACTIONS = {"reject": "rejected", "skip": "skipped", "monitor": "monitored"}
# Bodies larger than this are screened in the helper process, so that a large batch does
# not hold the event loop (and every other request) for hundreds of milliseconds; without
# a helper, they are read and rewritten in a worker thread.
OFF_LOOP_BYTES = 64 * 1024
T = TypeVar("T")


async def off_loop(size: int, work: Callable[[], T]) -> T:
    """Run pure `work` on the loop when `size` is small, else in a worker thread."""
    if size <= OFF_LOOP_BYTES:
        return work()
    return await asyncio.to_thread(work)


_BAD_INTENT = Refusal(400, "invalid_intent", f"{INTENT_HEADER} must be one of "
                      f"{', '.join(INTENTS)}.", "malformed_request")


def _intent(request: web.Request, default: Intent) -> Intent | None:
    """The send's intent: its header (once, a known value), else `default`; None when
    the header is there but unusable (refused, never guessed)."""
    values = request.headers.getall(INTENT_HEADER, ())
    if not values:
        return default
    value = values[0].strip().lower()
    if len(values) > 1 or value not in INTENTS:
        return None
    return value


def skip_unknown(blocked: Blocked) -> Reply:
    """The skip reply of a write no route describes: Gatekeeper's generic success."""
    return json_reply(200, {"id": blocked.request_id, "status": "skipped"})


class Sending:
    """Decides and acts on requests that can send."""

    def __init__(self, resources: Resources, screener: Screener) -> None:
        self.resources = resources
        self.screener = screener
        self.rules = Rules.of(resources.config)

    async def check(self, request: web.Request, mount: Mount, forward: str, message: Message,
                    route: Route, params: Mapping[str, str], scopes: tuple[str, ...]
                    ) -> web.StreamResponse:
        """A send route: decide its recipients, then act."""
        channel = route.channel
        intent = _intent(request, route.intent or mount.upstream.intent)
        if intent is None:
            return self._refuse(request, mount, channel or "any", scopes, _BAD_INTENT)
        job = Job(mount.upstream.name, message, scopes, intent=intent)
        examined = await self._examine(request, mount, job, route)
        if examined.refusal is not None:
            return self._refuse(request, mount, channel or "any", scopes, examined.refusal)
        context = _Context(request, mount, forward, message, scopes, channel, params,
                           route.reject, route.skip)
        return await self._act(context, examined)

    async def scan(self, request: web.Request, mount: Mount, forward: str, message: Message,
                   scopes: tuple[str, ...], path: str) -> web.StreamResponse:
        """An unknown write: every phone number in it (query, body, and path segments
        such as `/lookup/{number}/hlr`) decided; any blocked one refuses the whole request
        (`on_block`); never edited."""
        intent = _intent(request, mount.upstream.intent)
        if intent is None:
            return self._refuse(request, mount, "any", scopes, _BAD_INTENT)
        job = Job(mount.upstream.name, message, scopes, path, intent)
        examined = await self._examine(request, mount, job, None)
        if examined.refusal is not None:
            return self._refuse(request, mount, "any", scopes, examined.refusal)
        context = _Context(request, mount, forward, message, scopes, None, {},
                           mount.preset.refuse, skip_unknown)
        return await self._act(context, examined)

    async def _examine(self, request: web.Request, mount: Mount, job: Job,
                       route: Route | None) -> Examined:
        """Screen the request: on the loop, or in the helper process when its body is
        large (and the store has a URL the helper can reach)."""
        stale = self.resources.stale_closed
        if stale and not stale.isdisjoint(job.scopes):
            # A list this send depends on is older than its max_age, with on_stale closed.
            return Examined(Refusal(503, "list_stale", "A list this send is checked against "
                                    "is stale (older than its max_age); the send was not "
                                    "forwarded.", "list_stale"))
        live = self.resources.policy
        if live is not self.rules.policy:  # changed through the admin API
            self.rules = replace(self.rules, policy=live)
        helper, url = self.resources.screen_helper, self.resources.store_url
        if helper is not None and url is not None and len(job.message.body) > OFF_LOOP_BYTES:
            if live is not self.resources.config.policy:
                job = replace(job, policy=live)  # the helper knows the config's alone
            # The helper rebuilds the routes: it is told which one by its place.
            index = None if route is None else \
                next(i for i, r in enumerate(mount.routes) if r is route)
            examined = await helper.examine(request[REQUEST_ID], url, job, index)
        else:
            examined = await examine(job, mount, route, self.rules,
                                     self.resources.store.lookup, off_loop,
                                     count=self.resources.store)
        if examined.store_error is not None:
            self.screener.store_fault(request[REQUEST_ID], examined.store_error)
        if examined.uncount:
            self.screener.uncount(request[REQUEST_ID], examined.uncount)
        if examined.guards:
            self.screener.guarded(request[REQUEST_ID], examined.guards)
        return examined

    async def _act(self, c: _Context, examined: Examined) -> web.StreamResponse:
        """Forward, edit, refuse or skip, by what was blocked and the upstream's on_block."""
        request, name = c.request, c.mount.upstream.name
        request_id = request[REQUEST_ID]
        blocked = examined.blocked
        reasons = examined.reason_list()
        if examined.monitored:
            self.screener.monitored(request_id, name, examined.monitored)
        if not blocked:
            request[OUTCOME] = Outcome(name, c.label, "forwarded", reasons, c.scopes)
            return await self._forward(c, c.message, "forwarded")
        decisions = tuple({d.number: d for d in blocked.values()}.values())
        action = _ACTIONS[c.mount.upstream.on_block]
        # Made only when some recipients are left and the request can be edited exactly.
        rewritten = examined.rewritten if action != "monitored" else None
        if rewritten is not None:
            action = "partial"
        request[OUTCOME] = Outcome(name, c.label, action, reasons, c.scopes, decisions)
        if action in ("rejected", "skipped") and examined.counted:
            # Nothing of the request is sent: its velocity counts are taken back.
            self.screener.uncount(request_id, examined.counted)
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
        rule = blocked[first].rule
        context = Blocked(request_id, c.channel, first, c.params, c.message, tuple(blocked),
                          rule)
        reply = c.reject(context) if action == "rejected" else c.skip(context)
        if rule is not None and rule.kind == "velocity" and action == "rejected":
            # Too many sends to the destination: 429, in the gateway's own error shape.
            reply = Reply(429, reply.body, reply.content_type)
        response = to_response(reply, action)
        if rule is not None and rule.retry_after is not None and action == "rejected":
            # When the send would next be allowed (quiet hours end), in whole seconds.
            response.headers["Retry-After"] = str(max(1, math.ceil(rule.retry_after)))
        return response

    async def _forward(self, c: _Context, message: Message, decision: str,
                       extra: Mapping[str, str] | None = None) -> web.StreamResponse:
        forward = c.forward
        if message.query != c.message.query:
            forward = forward.partition("?")[0] + (f"?{message.query}" if message.query else "")
        return await relay(self.resources, c.request, c.mount.upstream.name, forward,
                           message.body, c.mount.upstream.timeout, decision, extra)

    def _refuse(self, request: web.Request, mount: Mount, channel: str,
                scopes: tuple[str, ...], refusal: Refusal) -> web.Response:
        request[OUTCOME] = Outcome(mount.upstream.name, channel, "rejected",
                                   (refusal.reason,), scopes)
        return error_response(refusal.status, refusal.code, refusal.text,
                              request[REQUEST_ID], "rejected")


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

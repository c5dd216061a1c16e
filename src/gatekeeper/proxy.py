"""The proxy: one catch-all handler that checks sends and forwards everything else.

A request under an upstream's mount is forwarded to the upstream's URL with the same
method, path rest, query, body and end-to-end headers. On an intercepted route the
recipients are found, normalised and decided first (one store round trip for all of
them); blocked recipients are removed when the request can be edited, otherwise the
upstream's `on_block` action applies. Calls of a provider's own list API (see
admin/compat.py) are answered from the store instead, and with `mirror` also forwarded
once. Nothing is ever retried.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from aiohttp import web

from gatekeeper.admin.compat import COMPAT, CompatCall, CompatHandler
from gatekeeper.config import UpstreamConfig
from gatekeeper.numbers import Destination, is_valid_scope, parse_destination
from gatekeeper.observability import OUTCOME, PASSTHROUGH, REQUEST_ID, Outcome, Passthrough
from gatekeeper.policy import Decision, decide
from gatekeeper.providers import PRESETS, Preset
from gatekeeper.providers.base import Blocked, BodyError, Message, Route, match_route
from gatekeeper.replies import DECISION_HEADER, error_response, to_response
from gatekeeper.resources import RESOURCES, Resources
from gatekeeper.store import BlockedAttempt, StoreUnavailable
from gatekeeper.types import Channel
from gatekeeper.upstream import UpstreamError

SCOPE_HEADER = "X-Gatekeeper-Scope"
REMOVED_HEADER = "X-Gatekeeper-Removed"
# On a provider list-API reply: the provider's status for the mirrored call, or `failed`.
MIRROR_HEADER = "X-Gatekeeper-Mirror"
# RFC 9110 7.6.1 hop-by-hop headers, plus ones this proxy sets or has consumed itself.
_HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization",
    b"proxy-connection", b"te", b"trailer", b"trailers", b"transfer-encoding", b"upgrade",
})
_NOT_FORWARDED = _HOP_BY_HOP | {
    # The upstream client sets Host and Content-Length; the server already answered
    # Expect and decoded any Content-Encoding of the body it read. X-Forwarded-For is
    # rebuilt with the peer appended.
    b"host", b"content-length", b"expect", b"content-encoding", b"x-forwarded-for",
    SCOPE_HEADER.lower().encode(),
}
# Ours replace the upstream's: the decision headers and the request id.
_NOT_RETURNED = _HOP_BY_HOP | {
    b"content-length", b"x-request-id", DECISION_HEADER.lower().encode(),
    REMOVED_HEADER.lower().encode(),
}
_ACTIONS = {"reject": "rejected", "skip": "skipped", "monitor": "monitored"}
_UPSTREAM_FAILURES = {
    "timeout": (504, "upstream_timeout", "The upstream '{}' did not answer in time."),
    "unavailable": (502, "upstream_unavailable", "The upstream '{}' could not be reached."),
    "broken_reply": (502, "upstream_unavailable", "The upstream '{}' reply broke off."),
}


@dataclass(frozen=True, slots=True)
class Mount:
    """An upstream with everything the handler needs, computed once at start-up."""

    upstream: UpstreamConfig
    preset: Preset
    routes: tuple[Route, ...]
    scopes: tuple[str, ...]
    timeout: float
    base_path: str  # the upstream URL's path, put in front of the path below the mount
    region: str | None
    credentials: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    compat: CompatHandler | None = None  # the preset's own list API, if it has one

    @classmethod
    def build(cls, upstream: UpstreamConfig) -> Mount:
        """Resolve the preset and precompute routes, scopes, credentials and timeout."""
        preset = PRESETS[upstream.preset]
        return cls(upstream, preset, preset.routes(upstream),
                   tuple(dict.fromkeys(("global", *upstream.scopes))),
                   upstream.timeout, urlsplit(upstream.url).path,
                   upstream.region or preset.default_region,
                   {c.identity: c.scopes for c in upstream.credentials},
                   COMPAT.get(preset.name))

    def target(self, rest: str) -> str:
        """The upstream's request target for a path (and query) below the mount."""
        target = self.base_path + rest
        return target if target.startswith("/") else "/" + target

    def rest(self, raw_path: str) -> str | None:
        """The path below the mount, or None when the path is not under it."""
        mount = self.upstream.mount
        if raw_path == mount:
            return ""
        if raw_path.startswith(mount + "/"):
            return raw_path[len(mount):]
        return None


def _has_dot_segment(raw_path: str) -> bool:
    # A `.` segment starts right after a `/`; encoded ones need a `%`. Most paths
    # (`.../Messages.json`) have neither, so they skip the decoding.
    if "/." not in raw_path and "%" not in raw_path:
        return False
    return any(segment in (".", "..") for segment in unquote(raw_path).split("/"))


def _connection_named(headers: Sequence[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Header names listed in Connection: hop-by-hop for this message only."""
    return frozenset(token.strip().lower() for name, value in headers
                     if name.lower() == b"connection" for token in value.split(b","))


def forward_headers(request: web.Request) -> list[tuple[bytes, bytes]]:
    """End-to-end request headers for the upstream, byte for byte as received, with the
    peer appended to X-Forwarded-For."""
    raw = request.raw_headers
    named = _connection_named(raw)
    headers: list[tuple[bytes, bytes]] = []
    forwarded_for: list[bytes] = []
    for name, value in raw:
        lower = name.lower()
        if lower in _NOT_FORWARDED or lower in named:
            if lower == b"x-forwarded-for":
                forwarded_for.append(value)
            continue
        headers.append((name, value))
    forwarded_for.append((request.remote or "unknown").encode("ascii", "replace"))
    headers.append((b"X-Forwarded-For", b", ".join(forwarded_for)))
    return headers


def reply_headers(raw: Sequence[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """The upstream's reply headers less hop-by-hop ones, as text for the response."""
    named = _connection_named(raw)
    return [(name.decode("latin-1"), value.decode("utf-8", "replace"))
            for name, value in raw
            if (lower := name.lower()) not in _NOT_RETURNED and lower not in named]


def requested_scopes(request: web.Request) -> list[str] | str:
    """Scopes named in `X-Gatekeeper-Scope` (comma-separated), or the first invalid one."""
    scopes: list[str] = []
    for value in request.headers.getall(SCOPE_HEADER, ()):
        for part in value.split(","):
            scope = part.strip()
            if not scope:
                continue
            if not is_valid_scope(scope):
                return scope
            scopes.append(scope)
    return scopes


async def relay(resources: Resources, request: web.Request, name: str, target: str,
                body: bytes, time_limit: float, decision: str | None,
                extra_headers: Mapping[str, str] | None = None) -> web.StreamResponse:
    """Send the request on to upstream `name` once (never retried); pass the reply back.

    `time_limit` is the upstream's timeout in seconds, up to the reply's last byte.
    """
    request_id = request[REQUEST_ID]
    metrics = resources.metrics
    started = time.perf_counter()
    try:
        reply = await resources.upstreams[name].send(
            request.method, target, forward_headers(request), body, time_limit)
    except UpstreamError as exc:
        metrics.upstream_errors.labels(name, exc.kind).inc()
        if exc.kind != "timeout":
            resources.log.warning("upstream_error", request_id=request_id, upstream=name,
                                  error=str(exc))
        status, code, text = _UPSTREAM_FAILURES[exc.kind]
        failure = error_response(status, code, text.format(name), request_id, decision)
        failure.headers.update(extra_headers or {})
        return failure
    metrics.upstream_answered(name, time.perf_counter() - started)
    headers = reply_headers(reply.headers)
    if decision is not None:
        headers.append((DECISION_HEADER, decision))
    if extra_headers:
        headers.extend(extra_headers.items())
    if reply.body is not None:
        return web.Response(status=reply.status, reason=reply.reason, body=reply.body,
                            headers=headers)
    # Too long to hold, or of unknown length: streamed as it comes.
    headers.append(("X-Request-Id", request_id))
    response = web.StreamResponse(status=reply.status, reason=reply.reason, headers=headers)
    try:
        await response.prepare(request)
        while chunk := await reply.read():
            await response.write(chunk)
    except UpstreamError as exc:
        # Headers are gone already: the client sees a cut-off reply, never a retry.
        metrics.upstream_errors.labels(name, "broken_reply").inc()
        resources.log.warning("upstream_error", request_id=request_id, upstream=name,
                              error=str(exc), during="reply")
        if request.transport is not None:
            request.transport.close()
        return response
    finally:
        reply.close()  # a no-op once the body was read to its end
    await response.write_eof()
    return response


@dataclass(frozen=True, slots=True)
class Screened:
    """Decisions for a set of numbers, or the store fault that prevented them."""

    decisions: tuple[Decision, ...]
    store_failed: bool = False

    @property
    def blocked(self) -> tuple[Decision, ...]:
        """The blocked ones."""
        return tuple(d for d in self.decisions if d.verdict == "blocked")


class Screener:
    """Decides numbers against the lists; the one place store faults become open/closed."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self.fail_closed = resources.config.store.on_error == "closed"

    async def screen(self, request_id: str, numbers: Sequence[str], scopes: Sequence[str],
                     channel: Channel) -> Screened:
        """One store round trip for all numbers; a fault is logged, counted and returned."""
        if not numbers:
            return Screened(())
        try:
            matches = await self.resources.store.lookup(numbers, scopes, channel)
        except StoreUnavailable as exc:
            self.resources.metrics.store_errors.labels("lookup").inc()
            self.resources.log.error(
                "store_unavailable", request_id=request_id, operation="lookup",
                error=str(exc), on_error="closed" if self.fail_closed else "open")
            return Screened((), store_failed=True)
        return Screened(tuple(decide(n, scopes, matches[n]) for n in numbers))

    def record(self, attempt: BlockedAttempt) -> None:
        """Append a blocked attempt to the stream without holding up the reply."""
        self.resources.spawn(self._append(attempt))

    async def _append(self, attempt: BlockedAttempt) -> None:
        try:
            await self.resources.store.append_attempt(attempt)
        except StoreUnavailable as exc:
            self.resources.metrics.store_errors.labels("append_attempt").inc()
            self.resources.log.error("store_unavailable", request_id=attempt.request_id,
                                     operation="append_attempt", error=str(exc))


def attempt_for(request_id: str, upstream: str, channel: str, direction: str,
                scopes: Sequence[str], decision: Decision, action: str) -> BlockedAttempt:
    """The attempts-stream record of a blocked decision."""
    cause = decision.cause
    return BlockedAttempt(
        request_id=request_id, upstream=upstream, channel=channel, direction=direction,
        number=decision.number, scopes=",".join(scopes),
        scope=cause.scope if cause else "", list=cause.list if cause else "",
        entry=cause.entry if cause else "", action=action)


class Proxy:
    """The catch-all handler of the proxy listener."""

    def __init__(self, resources: Resources, screener: Screener,
                 mounts: tuple[Mount, ...]) -> None:
        self.resources = resources
        self.screener = screener
        # Longest mount first, so `/twilio-eu` is not taken for `/twilio`.
        self.mounts = tuple(sorted(mounts, key=lambda m: len(m.upstream.mount), reverse=True))
        self.on_invalid = resources.config.proxy.on_invalid
        self.max_body = resources.config.proxy.max_body_bytes

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Route the request to its upstream, checking it first when it is a send."""
        request_id = request[REQUEST_ID]
        # The request target exactly as sent: yarl would re-quote the query (%2F -> /).
        raw_path, sep, query = request.raw_path.partition("?")
        if _has_dot_segment(raw_path):
            # `..` could climb out of the mount into the upstream's base path, where no
            # route check sees it; no SDK sends such paths.
            return error_response(400, "invalid_path",
                                  "Paths with '.' or '..' segments are refused.", request_id)
        for mount in self.mounts:
            rest = mount.rest(raw_path)
            if rest is not None:
                break
        else:
            return error_response(404, "no_upstream",
                                  f"No upstream is mounted at {request.path}.", request_id)
        if mount.compat is not None and mount.compat.matches(request.method, rest):
            # The provider's own list API: answered from the store, before route matching.
            return await self._compat(request, mount, mount.compat, rest, sep + query)
        found = match_route(mount.routes, request.method, rest)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            decision = None
            if found is not None:
                decision = "rejected"
                request[OUTCOME] = Outcome(mount.upstream.name, found[0].channel, decision,
                                           ("malformed_request",))
            return error_response(413, "body_too_large",
                                  f"The body exceeds {self.max_body} bytes.", request_id,
                                  decision)
        if found is None:
            request[PASSTHROUGH] = Passthrough(mount.upstream.name)
            return await self._send(request, mount, rest + sep + query, body, None)
        route, params = found
        return await self._check(request, mount, rest, Message(body, query, request.headers),
                                 route, params)

    async def _compat(self, request: web.Request, mount: Mount, handler: CompatHandler,
                      rest: str, query: str) -> web.StreamResponse:
        """A list-API call: the local change and reply, then (`mirror`) the provider's copy."""
        request_id, name = request[REQUEST_ID], mount.upstream.name
        # Logged and timed as `list_api`; no destination was decided.
        request[OUTCOME] = Outcome(name, "", "list_api", ())
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return error_response(413, "body_too_large",
                                  f"The body exceeds {self.max_body} bytes.", request_id)
        call = CompatCall(request_id, request.method, rest, request.headers, body, name,
                          mount.credentials)
        try:
            result = await handler.handle(call, self.resources.store, self.resources.log)
        except StoreUnavailable as exc:
            self.resources.metrics.store_errors.labels("list_api").inc()
            self.resources.log.error("store_unavailable", request_id=request_id,
                                     operation="list_api", error=str(exc))
            return error_response(503, "store_unavailable",
                                  "The list store is unavailable; nothing was changed.",
                                  request_id)
        response = to_response(result.reply)
        if result.wrote and mount.upstream.mirror:
            response.headers[MIRROR_HEADER] = await self._mirror(request, mount, rest + query,
                                                                 body)
        return response

    async def _mirror(self, request: web.Request, mount: Mount, target: str, body: bytes
                      ) -> str:
        """Forward a list change once (never retried); the provider's status or `failed`.

        The local change stands whatever happens here.
        """
        name = mount.upstream.name
        try:
            reply = await self.resources.upstreams[name].send(
                request.method, mount.target(target), forward_headers(request), body,
                mount.timeout)
        except UpstreamError as exc:
            self.resources.metrics.upstream_errors.labels(name, "mirror").inc()
            self.resources.log.warning("mirror_failed", request_id=request[REQUEST_ID],
                                       upstream=name, error=exc.kind)
            return "failed"
        reply.close()
        status = reply.status
        if status >= 400:
            self.resources.log.warning("mirror_failed", request_id=request[REQUEST_ID],
                                       upstream=name, status=status)
        return str(status)

    async def _send(self, request: web.Request, mount: Mount, target: str, body: bytes,
                    decision: str | None, extra: Mapping[str, str] | None = None
                    ) -> web.StreamResponse:
        return await relay(self.resources, request, mount.upstream.name,
                           mount.target(target), body, mount.timeout, decision, extra)

    def _scopes(self, request: web.Request, mount: Mount, message: Message,
                params: Mapping[str, str]) -> tuple[str, ...] | str:
        """global + the upstream's + the credentials' + the header's (if allowed)."""
        # With no credentials configured there is nothing to look up.
        from_credentials = [scope for identity in mount.preset.identities(message, params)
                            for scope in mount.credentials.get(identity, ())] \
            if mount.credentials else []
        extra: list[str] | str = []
        if mount.upstream.scope_header:
            extra = requested_scopes(request)
            if isinstance(extra, str):
                return extra
        return tuple(dict.fromkeys((*mount.scopes, *from_credentials, *extra)))

    async def _check(self, request: web.Request, mount: Mount, rest: str, message: Message,
                     route: Route, params: Mapping[str, str]) -> web.StreamResponse:
        request_id = request[REQUEST_ID]
        upstream = mount.upstream.name

        def refuse(status: int, code: str, text: str, reason: str,
                   scopes: tuple[str, ...] = ()) -> web.Response:
            request[OUTCOME] = Outcome(upstream, route.channel, "rejected", (reason,), scopes)
            return error_response(status, code, text, request_id, "rejected")

        recipients = route.locator.find(message)
        if isinstance(recipients, BodyError):
            return refuse(400, recipients.code, recipients.message, "malformed_request")
        scopes = self._scopes(request, mount, message, params)
        if isinstance(scopes, str):
            return refuse(400, "invalid_scope", f"Invalid scope in {SCOPE_HEADER}: {scopes!r}; "
                          "expected 'global' or 'kind:id'.", "malformed_request")

        # Duplicate recipients are checked once.
        parsed: dict[str, Destination] = {
            raw: parse_destination(raw, mount.region, mount.preset.msisdn)
            for raw in dict.fromkeys(recipients.values)}
        invalid = [d for d in parsed.values() if d.kind == "invalid"]
        if invalid and self.on_invalid == "reject":
            return refuse(400, "invalid_phone_number",
                          f"Not a possible phone number: {invalid[0].raw!r}.",
                          "invalid_number", scopes)
        reasons = ["invalid_number" if d.kind == "invalid" else "not_a_phone_number"
                   for d in parsed.values() if d.kind != "phone"]
        numbers = list(dict.fromkeys(d.e164 for d in parsed.values() if d.e164))
        screened = await self.screener.screen(request_id, numbers, scopes, route.channel)
        if screened.store_failed:
            if self.screener.fail_closed:
                return refuse(503, "store_unavailable",
                              "The list store is unavailable; the send was not forwarded.",
                              "store_unavailable", scopes)
            reasons.extend("store_unavailable" for _ in numbers)
        reasons.extend(d.verdict for d in screened.decisions)

        blocked = screened.blocked
        if not blocked:
            request[OUTCOME] = Outcome(upstream, route.channel, "forwarded", tuple(reasons),
                                       scopes)
            return await self._send(request, mount, rest + _query(message.query),
                                    message.body, "forwarded")
        blocked_numbers = {d.number for d in blocked}
        blocked_raws = frozenset(raw for raw, d in parsed.items() if d.e164 in blocked_numbers)
        action = _ACTIONS[mount.upstream.on_block]
        rewritten: Message | None = None
        if action != "monitored" and len(blocked_raws) < len(parsed):
            rewritten = recipients.without(blocked_raws)
            if rewritten is not None:
                action = "partial"
        request[OUTCOME] = Outcome(upstream, route.channel, action, tuple(reasons), scopes,
                                   blocked)
        for decision in blocked:
            self.screener.record(attempt_for(
                request_id, upstream, route.channel, "outbound", scopes, decision,
                "removed" if action == "partial" else action))
        if action == "monitored":
            return await self._send(request, mount, rest + _query(message.query),
                                    message.body, action)
        if rewritten is not None:
            return await self._send(request, mount, rest + _query(rewritten.query),
                                    rewritten.body, action,
                                    {REMOVED_HEADER: str(len(blocked_numbers))})
        first = next(raw for raw in parsed if raw in blocked_raws)
        context = Blocked(request_id, route.channel, first, params, message,
                          tuple(blocked_raws))
        reply = mount.preset.reject(context) if action == "rejected" else \
            mount.preset.skip(context)
        return to_response(reply, action)


def _query(query: str) -> str:
    return f"?{query}" if query else ""


def create_proxy_routes(app: web.Application, screener: Screener) -> None:
    """Install the catch-all handler (last); mounts are resolved once, here."""
    resources = app[RESOURCES]
    proxy = Proxy(resources, screener,
                  tuple(Mount.build(u) for u in resources.config.upstreams))
    app.router.add_route("*", "/{tail:.*}", proxy.handle)

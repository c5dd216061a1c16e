"""The proxy: one catch-all handler that checks sends and forwards everything else.

A request under an upstream's mount is forwarded to the upstream's URL with the same
method, path rest, query, body and end-to-end headers. On an intercepted route the
recipients are found, normalised and decided first (one store round trip), and the
upstream's `on_block` action applies to a blocked request. Nothing is ever retried.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gatekeeper.config import UpstreamConfig
from gatekeeper.numbers import is_valid_scope, parse_destination
from gatekeeper.observability import OUTCOME, PASSTHROUGH, REQUEST_ID, Outcome, Passthrough
from gatekeeper.policy import Decision, decide
from gatekeeper.providers import PRESETS, Preset
from gatekeeper.providers.base import (
    Blocked,
    BodyError,
    FormField,
    Route,
    match_route,
    parse_form,
)
from gatekeeper.replies import DECISION_HEADER, error_response, to_response
from gatekeeper.resources import RESOURCES, Resources
from gatekeeper.store import BlockedAttempt, StoreUnavailable

SCOPE_HEADER = "X-Gatekeeper-Scope"
# RFC 9110 7.6.1 hop-by-hop headers, plus ones this proxy sets or has consumed itself.
_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "proxy-connection", "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})
_NOT_FORWARDED = _HOP_BY_HOP | {
    # aiohttp sets Host and Content-Length for the upstream; the server already answered
    # Expect and decoded any Content-Encoding of the body it read.
    "host", "content-length", "expect", "content-encoding", SCOPE_HEADER.lower(),
}
_NOT_RETURNED = _HOP_BY_HOP | {"content-length"}
_ACTIONS = {"reject": "rejected", "skip": "skipped", "monitor": "monitored"}
# Upstream replies up to this size are read whole and sent with a Content-Length.
_BUFFER_LIMIT = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Mount:
    """An upstream with everything the handler needs, computed once at start-up."""

    upstream: UpstreamConfig
    preset: Preset
    routes: tuple[Route, ...]
    scopes: tuple[str, ...]
    timeout: aiohttp.ClientTimeout

    @classmethod
    def build(cls, upstream: UpstreamConfig) -> Mount:
        """Resolve the preset and precompute routes, scopes and timeout."""
        preset = PRESETS[upstream.preset]
        return cls(upstream, preset, preset.routes(upstream),
                   tuple(dict.fromkeys(("global", *upstream.scopes))),
                   aiohttp.ClientTimeout(total=upstream.timeout))

    def rest(self, raw_path: str) -> str | None:
        """The path below the mount, or None when the path is not under it."""
        mount = self.upstream.mount
        if raw_path == mount:
            return ""
        if raw_path.startswith(mount + "/"):
            return raw_path[len(mount):]
        return None


def _has_dot_segment(raw_path: str) -> bool:
    if "." not in raw_path and "%" not in raw_path:
        return False
    return any(segment in (".", "..") for segment in unquote(raw_path).split("/"))


def forward_headers(request: web.Request) -> CIMultiDict[str]:
    """End-to-end request headers for the upstream, with X-Forwarded-For appended."""
    named = {token.strip().lower() for value in request.headers.getall("Connection", ())
             for token in value.split(",")}
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in request.headers.items():
        lower = name.lower()
        if lower not in _NOT_FORWARDED and lower not in named:
            headers.add(name, value)
    peer = request.remote or "unknown"
    previous = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{previous}, {peer}" if previous else peer
    return headers


def reply_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The upstream's reply headers less hop-by-hop ones."""
    named = {token.strip().lower() for value in headers.getall("Connection", ())
             for token in value.split(",")}
    return CIMultiDict((k, v) for k, v in headers.items()
                       if k.lower() not in _NOT_RETURNED and k.lower() not in named)


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


class Proxy:
    """The catch-all handler of the proxy listener."""

    def __init__(self, resources: Resources, mounts: tuple[Mount, ...]) -> None:
        self.resources = resources
        # Longest mount first, so `/twilio-eu` is not taken for `/twilio`.
        self.mounts = tuple(sorted(mounts, key=lambda m: len(m.upstream.mount), reverse=True))
        self.on_invalid = resources.config.proxy.on_invalid
        self.on_store_error = resources.config.store.on_error
        self.metrics = resources.metrics
        self.log = resources.log

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
        found = match_route(mount.routes, request.method, rest)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            limit = self.resources.config.proxy.max_body_bytes
            decision = None
            if found is not None:
                decision = "rejected"
                request[OUTCOME] = Outcome(mount.upstream.name, found[0].channel, decision,
                                           ("malformed_request",))
            return error_response(413, "body_too_large", f"The body exceeds {limit} bytes.",
                                  request_id, decision)
        target = rest + sep + query
        if found is None:
            request[PASSTHROUGH] = Passthrough(mount.upstream.name)
            return await self._forward(request, mount, target, body, None)
        route, params = found
        return await self._check(request, mount, target, body, route, params)

    async def _check(self, request: web.Request, mount: Mount, target: str, body: bytes,
                     route: Route, params: Mapping[str, str]) -> web.StreamResponse:
        request_id = request[REQUEST_ID]
        upstream = mount.upstream.name

        def refuse(status: int, code: str, message: str, reason: str,
                   scopes: tuple[str, ...] = ()) -> web.Response:
            request[OUTCOME] = Outcome(upstream, route.channel, "rejected", (reason,), scopes)
            return error_response(status, code, message, request_id, "rejected")

        found = route.locator.find(body)
        if isinstance(found, BodyError):
            return refuse(400, found.code, found.message, "malformed_request")
        extra = requested_scopes(request)
        if isinstance(extra, str):
            return refuse(400, "invalid_scope", f"Invalid scope in {SCOPE_HEADER}: {extra!r}; "
                          "expected 'global' or 'kind:id'.", "malformed_request")
        scopes = tuple(dict.fromkeys((*mount.scopes, *extra)))

        region = mount.upstream.region
        destinations = [parse_destination(raw, region) for raw in dict.fromkeys(found)]
        invalid = [d for d in destinations if d.kind == "invalid"]
        if invalid and self.on_invalid == "reject":
            return refuse(400, "invalid_phone_number",
                          f"Not a possible phone number: {invalid[0].raw!r}.",
                          "invalid_number", scopes)
        reasons = ["invalid_number" if d.kind == "invalid" else "not_a_phone_number"
                   for d in destinations if d.kind != "phone"]
        raw_of: dict[str, str] = {}
        for d in destinations:
            if d.e164 is not None:
                raw_of.setdefault(d.e164, d.raw)
        decisions: list[Decision] = []
        if raw_of:
            try:
                matches = await self.resources.store.lookup(list(raw_of), scopes)
            except StoreUnavailable as exc:
                self.metrics.store_errors.labels("lookup").inc()
                self.log.error("store_unavailable", request_id=request_id, operation="lookup",
                               error=str(exc), on_error=self.on_store_error)
                # The one place a store fault turns into fail-closed or fail-open.
                if self.on_store_error == "closed":
                    return refuse(503, "store_unavailable",
                                  "The list store is unavailable; the send was not forwarded.",
                                  "store_unavailable", scopes)
                reasons.extend("store_unavailable" for _ in raw_of)
            else:
                decisions = [decide(number, scopes, matches[number]) for number in raw_of]
                reasons.extend(d.verdict for d in decisions)

        blocked = tuple(d for d in decisions if d.verdict == "blocked")
        action = _ACTIONS[mount.upstream.on_block] if blocked else "forwarded"
        request[OUTCOME] = Outcome(upstream, route.channel, action, tuple(reasons), scopes,
                                   blocked)
        for decision in blocked:
            self._log_attempt(request_id, mount, route, scopes, decision, action)
        if action in ("forwarded", "monitored"):
            return await self._forward(request, mount, target, body, action)
        fields = {}
        if isinstance(route.locator, FormField):
            form = parse_form(body)
            fields = {} if isinstance(form, BodyError) else {k: v[0] for k, v in form.items()}
        context = Blocked(request_id, route.channel, raw_of[blocked[0].number], params, fields)
        reply = mount.preset.reject(context) if action == "rejected" else \
            mount.preset.skip(context)
        return to_response(reply, action)

    def _log_attempt(self, request_id: str, mount: Mount, route: Route,
                     scopes: tuple[str, ...], decision: Decision, action: str) -> None:
        cause = decision.cause
        attempt = BlockedAttempt(
            request_id=request_id, upstream=mount.upstream.name, channel=route.channel,
            direction="outbound", number=decision.number, scopes=",".join(scopes),
            scope=cause.scope if cause else "", list=cause.list if cause else "",
            entry=cause.entry if cause else "", action=action)
        self.resources.spawn(self._append(attempt))

    async def _append(self, attempt: BlockedAttempt) -> None:
        try:
            await self.resources.store.append_attempt(attempt)
        except StoreUnavailable as exc:
            self.metrics.store_errors.labels("append_attempt").inc()
            self.log.error("store_unavailable", request_id=attempt.request_id,
                           operation="append_attempt", error=str(exc))

    async def _forward(self, request: web.Request, mount: Mount, target: str, body: bytes,
                       decision: str | None) -> web.StreamResponse:
        request_id = request[REQUEST_ID]
        name = mount.upstream.name
        url = URL(mount.upstream.url + target, encoded=True)
        session = self.resources.sessions[name]
        started = time.perf_counter()
        try:
            upstream = await session.request(
                request.method, url, headers=forward_headers(request), data=body or None,
                allow_redirects=False, timeout=mount.timeout,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        except TimeoutError:
            return self._upstream_failed(name, "timeout", 504, "upstream_timeout",
                                         f"The upstream '{name}' did not answer in time.",
                                         request_id, decision)
        except aiohttp.ClientError as exc:
            self.log.warning("upstream_error", request_id=request_id, upstream=name,
                             error=type(exc).__name__)
            return self._upstream_failed(name, "unavailable", 502, "upstream_unavailable",
                                         f"The upstream '{name}' could not be reached.",
                                         request_id, decision)
        async with upstream:
            headers = reply_headers(upstream.headers)
            if decision is not None:
                headers[DECISION_HEADER] = decision
            length = upstream.content_length
            if length is not None and length <= _BUFFER_LIMIT:
                try:
                    payload = await upstream.read()
                except (TimeoutError, aiohttp.ClientError):
                    return self._upstream_failed(name, "broken_reply", 502,
                                                 "upstream_unavailable",
                                                 f"The upstream '{name}' reply broke off.",
                                                 request_id, decision)
                self.metrics.upstream_duration.labels(name).observe(
                    time.perf_counter() - started)
                return web.Response(status=upstream.status, reason=upstream.reason,
                                    body=payload, headers=headers)
            self.metrics.upstream_duration.labels(name).observe(time.perf_counter() - started)
            headers["X-Request-Id"] = request_id
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                          headers=headers)
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_chunked(65536):
                    await response.write(chunk)
            except (TimeoutError, aiohttp.ClientError) as exc:
                # Headers are gone already: the client sees a cut-off reply, never a retry.
                self.metrics.upstream_errors.labels(name, "broken_reply").inc()
                self.log.warning("upstream_error", request_id=request_id, upstream=name,
                                 error=type(exc).__name__, during="reply")
                if request.transport is not None:
                    request.transport.close()
                return response
            await response.write_eof()
            return response

    def _upstream_failed(self, name: str, kind: str, status: int, code: str, message: str,
                         request_id: str, decision: str | None) -> web.Response:
        self.metrics.upstream_errors.labels(name, kind).inc()
        return error_response(status, code, message, request_id, decision)


def create_proxy_routes(app: web.Application) -> None:
    """Install the catch-all handler; mounts are resolved once, here."""
    resources = app[RESOURCES]
    proxy = Proxy(resources, tuple(Mount.build(u) for u in resources.config.upstreams))
    app.router.add_route("*", "/{tail:.*}", proxy.handle)


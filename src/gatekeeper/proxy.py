"""The proxy: one catch-all handler that checks every request able to send, then forwards.

The request target is read once (`target.read_target`); routing, forwarding and logging
use that reading. Under an upstream's mount:
- a call of the provider's own list API is answered from the store (`providers.listapi`);
- a send route (`providers.preset.Route`) has its recipients found, every reading of
  each decided, and blocked ones removed when the request can be edited exactly, or the
  upstream's `on_block` applied to the whole request;
- any other write (not GET/HEAD/OPTIONS, or with a body) follows `unknown_writes`:
  deep-scanned for phone numbers (`scan`), refused (`reject`) or forwarded (`forward`);
  writes the preset knows to send nothing pass;
- reads pass through unchanged.
Nothing is ever retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from aiohttp import web

from gatekeeper.config import UnknownWrites, UpstreamConfig
from gatekeeper.forwarding import MIRROR_HEADER, SCOPE_HEADER, forward_headers, relay
from gatekeeper.numbers import is_valid_scope
from gatekeeper.observability import OUTCOME, PASSTHROUGH, REQUEST_ID, Outcome, Passthrough
from gatekeeper.providers import PRESETS, Preset
from gatekeeper.providers.credentials import identity_key
from gatekeeper.providers.listapi import ListApi, ListCall
from gatekeeper.providers.preset import Message, Route, match_route
from gatekeeper.replies import error_response, to_response
from gatekeeper.resources import RESOURCES, Resources
from gatekeeper.screener import Screener
from gatekeeper.sending import Sending
from gatekeeper.store import StoreUnavailable
from gatekeeper.target import Target, match_path, read_target
from gatekeeper.upstream import UpstreamError

# Methods that never send (without a body); everything else is a write.
READS = frozenset({"GET", "HEAD", "OPTIONS"})
# Content codings the server decodes before the checks read the body.
DECODED_CODINGS = frozenset({"", "identity", "gzip", "deflate"})
# Headers some frameworks honour to change the method: the upstream might read a GET as
# a POST, so a request carrying one for another method is refused as ambiguous.
METHOD_OVERRIDES = ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override")


def _with_intents(routes: tuple[Route, ...], upstream: UpstreamConfig) -> tuple[Route, ...]:
    """The preset's routes with the intents `route_intents` gives them."""
    if not upstream.route_intents:
        return routes
    out = []
    for route in routes:
        templates = {t.template for t in route.paths}
        intent = next((w.intent for w in upstream.route_intents
                       if w.method in route.methods and w.path in templates), route.intent)
        out.append(replace(route, intent=intent))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Mount:
    """An upstream with everything the handler needs, computed once at start-up."""

    upstream: UpstreamConfig
    preset: Preset
    routes: tuple[Route, ...]
    scopes: tuple[str, ...]
    base_path: str  # the upstream URL's path, put in front of the path below the mount
    region: str | None
    credentials: Mapping[str, tuple[str, ...]]  # identity_key -> scopes
    unknown_writes: UnknownWrites

    @classmethod
    def build(cls, upstream: UpstreamConfig, unknown_writes: UnknownWrites) -> Mount:
        """Resolve the preset and precompute routes, scopes and credentials."""
        preset = PRESETS[upstream.preset]
        return cls(upstream, preset, _with_intents(preset.routes(upstream), upstream),
                   tuple(dict.fromkeys(("global", *upstream.scopes))),
                   urlsplit(upstream.url).path, upstream.region or preset.default_region,
                   {identity_key(c.identity): c.scopes for c in upstream.credentials},
                   upstream.unknown_writes or unknown_writes)

    @property
    def list_api(self) -> ListApi | None:
        """The provider's own list API, if the preset has one."""
        return self.preset.list_api

    def target(self, rest: str) -> str:
        """The upstream's request target for a path (and query) below the mount."""
        target = self.base_path + rest
        return target if target.startswith("/") else "/" + target

    def rest(self, path: str) -> str | None:
        """The path below the mount as sent, or None when the path is not under it."""
        mount = self.upstream.mount
        if path == mount:
            return ""
        if path.startswith(mount + "/"):
            return path[len(mount):]
        return None


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

    def __init__(self, resources: Resources, screener: Screener,
                 mounts: tuple[Mount, ...]) -> None:
        self.resources = resources
        self.sending = Sending(resources, screener)
        # Longest mount first, so `/twilio-eu` is not taken for `/twilio`.
        self.mounts = tuple(sorted(mounts, key=lambda m: len(m.upstream.mount), reverse=True))
        self.max_body = resources.config.proxy.max_body_bytes
        self.max_scopes = resources.config.proxy.max_scopes

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Route the request to its upstream, checking it first when it can send."""
        request_id = request[REQUEST_ID]
        target = read_target(request.raw_path)
        if not isinstance(target, Target):
            return error_response(400, "invalid_path", f"Refused path: {target.reason}.",
                                  request_id)
        for mount in self.mounts:
            rest = mount.rest(target.path)
            if rest is not None:
                break
        else:
            return error_response(404, "no_upstream", "No upstream is mounted at this path.",
                                  request_id)
        below = match_path(rest or "/")
        assert isinstance(below, str)  # the whole path was accepted, so is its tail
        method = request.method
        overrides = [v for name in METHOD_OVERRIDES for v in request.headers.getall(name, ())]
        if any(v.strip().upper() != method for v in overrides):
            return error_response(400, "ambiguous_request", "A method-override header names "
                                  "another method; the upstream might read it either way.",
                                  request_id, "rejected")
        coding = ",".join(request.headers.getall("Content-Encoding", ())).strip().lower()
        if coding not in DECODED_CODINGS:
            # aiohttp decodes one gzip or deflate coding; any other (x-gzip, stacked,
            # br) would reach the checks still encoded, unreadable, and the gateway
            # might decode it: refused rather than passed on unread.
            return error_response(415, "unsupported_content_encoding",
                                  "Send the body with no Content-Encoding, or gzip or "
                                  "deflate alone.", request_id, "rejected")
        list_api = mount.list_api
        if list_api is not None and list_api.matches(method, below):
            return await self._list_api(request, mount, list_api, below, rest, target)
        found = match_route(mount.routes, method, below)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            decision = None
            if found is not None or method not in READS:
                decision = "rejected"
                request[OUTCOME] = Outcome(mount.upstream.name,
                                           _label(found[0]) if found else "any", decision,
                                           ("malformed_request",))
            return error_response(413, "body_too_large",
                                  f"The body exceeds {self.max_body} bytes.", request_id,
                                  decision)
        message = Message(body, target.query, request.headers)
        forward = mount.target(rest + _query(target.query))
        if found is not None:
            route, params = found
            scopes = self._scopes(request, mount, message, below)
            if isinstance(scopes, web.StreamResponse):
                return scopes
            return await self.sending.check(request, mount, forward, message, route, params,
                                            scopes)
        if (method in READS and not body) or any(p.match(below) is not None
                                               for p in mount.preset.quiet_writes):
            request[PASSTHROUGH] = Passthrough(mount.upstream.name)
            return await relay(self.resources, request, mount.upstream.name, forward, body,
                               mount.upstream.timeout, None)
        return await self._unknown_write(request, mount, forward, message, below)

    async def _unknown_write(self, request: web.Request, mount: Mount, forward: str,
                             message: Message, below: str) -> web.StreamResponse:
        """A write on no send route: scanned, refused or forwarded (`unknown_writes`)."""
        name = mount.upstream.name
        if mount.unknown_writes == "forward":
            request[PASSTHROUGH] = Passthrough(name)
            return await relay(self.resources, request, name, forward, message.body,
                               mount.upstream.timeout, None)
        if mount.unknown_writes == "reject":
            request[OUTCOME] = Outcome(name, "any", "rejected", ("unknown_route",))
            return error_response(403, "unknown_route", "This upstream refuses writes to "
                                  "paths Gatekeeper does not know (unknown_writes: reject).",
                                  request[REQUEST_ID], "rejected")
        scopes = self._scopes(request, mount, message, below)
        if isinstance(scopes, web.StreamResponse):
            return scopes
        return await self.sending.scan(request, mount, forward, message, scopes, below)

    def _scopes(self, request: web.Request, mount: Mount, message: Message, path: str
                ) -> tuple[str, ...] | web.StreamResponse:
        """global + the upstream's + the credentials' + the header's (if allowed), or
        the refusal: a credential that cannot be read on a mount that maps credentials,
        an unmapped one with `require_credential`, a bad or too long scope list."""
        name, request_id = mount.upstream.name, request[REQUEST_ID]
        mapped: list[str] = []
        if mount.credentials:
            identities = mount.preset.identities(message, path)
            mapped = [scope for identity in identities
                      for scope in mount.credentials.get(identity_key(identity), ())]
            if not identities or (mount.upstream.require_credential and not mapped):
                reason = "unmapped_credential" if identities else "unreadable_credential"
                request[OUTCOME] = Outcome(name, "any", "rejected", (reason,))
                return to_response(mount.preset.unauthorized(request_id), "rejected")
        extra: list[str] | str = []
        if mount.upstream.scope_header:
            extra = requested_scopes(request)
            if isinstance(extra, str):
                request[OUTCOME] = Outcome(name, "any", "rejected", ("malformed_request",))
                return error_response(400, "invalid_scope",
                                      f"Invalid scope in {SCOPE_HEADER}: {extra[:80]!r}; "
                                      "expected 'global' or 'kind:id'.", request_id,
                                      "rejected")
        scopes = tuple(dict.fromkeys((*mount.scopes, *mapped, *extra)))
        if len(scopes) > self.max_scopes:
            request[OUTCOME] = Outcome(name, "any", "rejected", ("malformed_request",))
            return error_response(400, "too_many_scopes",
                                  f"{len(scopes)} scopes apply; at most {self.max_scopes} "
                                  "may (proxy.max_scopes).", request_id, "rejected")
        return scopes

    async def _list_api(self, request: web.Request, mount: Mount, handler: ListApi,
                        below: str, rest: str, target: Target) -> web.StreamResponse:
        """A list-API call: the local change and reply, then (`mirror`) the provider's copy."""
        request_id, name = request[REQUEST_ID], mount.upstream.name
        # Logged and timed as `list_api`; no destination was decided.
        request[OUTCOME] = Outcome(name, "", "list_api", ())
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return error_response(413, "body_too_large",
                                  f"The body exceeds {self.max_body} bytes.", request_id)
        call = ListCall(request_id, request.method, below, request.headers, body, name,
                        mount.credentials)
        try:
            result = await handler.handle(call, self.resources.store, self.resources.log)
        except StoreUnavailable as exc:
            self.resources.store_fault("list_api", str(exc), request_id=request_id)
            return error_response(503, "store_unavailable",
                                  "The list store is unavailable; nothing was changed.",
                                  request_id)
        response = to_response(result.reply)
        if result.wrote and mount.upstream.mirror:
            response.headers[MIRROR_HEADER] = await self._mirror(
                request, mount, mount.target(rest + _query(target.query)), body)
        return response

    async def _mirror(self, request: web.Request, mount: Mount, target: str, body: bytes
                      ) -> str:
        """Forward a list change once (never retried); the provider's status or `failed`.

        The local change stands whatever happens here.
        """
        name = mount.upstream.name
        try:
            with self.resources.drain.sending_upstream():
                reply = await self.resources.upstreams[name].send(
                    request.method, target, forward_headers(request), body,
                    mount.upstream.timeout)
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


def _label(route: Route) -> str:
    """A route's channel as a metric label (`any` for a send by either channel)."""
    return route.channel or "any"


def _query(query: str) -> str:
    return f"?{query}" if query else ""


def create_proxy_routes(app: web.Application, screener: Screener) -> None:
    """Install the catch-all handler (last); mounts are resolved once, here."""
    resources = app[RESOURCES]
    unknown = resources.config.proxy.unknown_writes
    proxy = Proxy(resources, screener,
                  tuple(Mount.build(u, unknown) for u in resources.config.upstreams))
    app.router.add_route("*", "/{tail:.*}", proxy.handle)

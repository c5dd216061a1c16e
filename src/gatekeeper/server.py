"""The listeners: aiohttp's HTTP/1.1 server with head, body and idle timeouts and
Gatekeeper's JSON errors for malformed requests; each connection is a `GuardedHandler`
(client_connection.py: the head and body clocks; client_errors.py: the errors).

Private aiohttp API used (checked against 3.12 to 3.14), in this module: `Server._kwargs`
(the handler options aiohttp's `Application` chose, carried over to our server),
`BaseRunner._make_server` (the hook `ServerRunner` overrides) and, for TLS only, the
`TCPSite` fields its `start` reads; client_connection.py lists the rest.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import structlog
from aiohttp import web
from aiohttp.web_request import BaseRequest

from gatekeeper.app import ADMIN_APP, tls_context
from gatekeeper.client_connection import GuardedHandler
from gatekeeper.client_errors import UnsupportedTarget
from gatekeeper.config import Config, Timeouts
from gatekeeper.drain import GRACE, Drain, DrainReport
from gatekeeper.resources import RESOURCES

BACKLOG = 1024  # pending connections per listener (aiohttp's 128 drops bursts)

Handler = Callable[[BaseRequest], Awaitable[web.StreamResponse]]


class GuardedServer(web.Server):
    """aiohttp's server making `GuardedHandler`s for one named listener. It serves
    whichever application `use` gave it last (a reload swaps it for every connection,
    kept-alive ones included: each connection holds this server's entry points, which
    look the application up per request)."""

    def __init__(self, base: web.Server, listener: str, timeouts: Timeouts) -> None:
        self._app_handler: Handler = base.request_handler
        self._app_factory: Callable[..., BaseRequest] = base.request_factory
        super().__init__(self._handle_current, request_factory=self._make_current,
                         handler_cancellation=base.handler_cancellation,
                         loop=asyncio.get_running_loop(), **base._kwargs)
        self.listener = listener
        self.timeouts = timeouts
        # Looked up per server, not per module: the logging set-up may change before it.
        self.log: structlog.typing.FilteringBoundLogger = structlog.get_logger("gatekeeper")

    def __call__(self) -> GuardedHandler:
        return GuardedHandler(self, loop=self._loop, **self._kwargs)

    async def _handle_current(self, request: BaseRequest) -> web.StreamResponse:
        # Targets that are not a path are refused, so the proxy and the routers see one form.
        if not request.raw_path.startswith("/"):
            raise UnsupportedTarget
        return await self._app_handler(request)

    def _make_current(self, *args: Any) -> BaseRequest:
        return self._app_factory(*args)

    def use(self, app: web.Application) -> None:
        """Serve `app` (started) from the next request on."""
        # aiohttp's own entry points of an application, as its AppRunner uses them.
        self._app_handler = cast(Handler, app._handle)
        self._app_factory = app._make_request


class GuardedRunner(web.AppRunner):
    """An AppRunner whose connections have the listener's timeouts (`idle` is aiohttp's
    keep-alive timeout) and whose errors are Gatekeeper's."""

    def __init__(self, app: web.Application, listener: str, timeouts: Timeouts,
                 **kwargs: Any) -> None:
        # What is left when the listener closes (after a drain: nothing that is sending)
        # is cut after GRACE seconds.
        kwargs.setdefault("shutdown_timeout", GRACE)
        super().__init__(app, handle_signals=False, access_log=None,
                         keepalive_timeout=timeouts.idle, **kwargs)
        self.listener = listener
        self.timeouts = timeouts

    async def _make_server(self) -> web.Server:
        server = GuardedServer(await super()._make_server(), self.listener, self.timeouts)
        resources = self.app.get(RESOURCES)
        if resources is not None and resources.reloader is not None:
            resources.reloader.listeners[self.listener] = server  # a reload swaps its app
        return server


class GuardedSite(web.TCPSite):
    """A TCP site with a longer backlog and, on TLS, the head timeout as handshake timeout
    (asyncio's default is 60 s, time a slow client holds a connection before HTTP)."""

    def __init__(self, runner: GuardedRunner, host: str, port: int, *,
                 ssl_context: ssl.SSLContext | None = None, reuse_port: bool = False) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context, backlog=BACKLOG,
                         reuse_port=reuse_port or None)
        self._handshake_timeout = runner.timeouts.header

    async def start(self) -> None:
        """Listen (aiohttp's `TCPSite.start`, plus the TLS handshake timeout)."""
        if self._ssl_context is None:
            await super().start()
            return
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            server, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port,
            ssl_handshake_timeout=self._handshake_timeout)
        self._bound_port = self._server.sockets[0].getsockname()[1]


@dataclass
class Listeners:
    """The running proxy listener and (worker 0) the admin listener."""

    proxy: GuardedRunner
    admin: GuardedRunner | None
    proxy_site: GuardedSite | None = None
    admin_site: GuardedSite | None = None

    @property
    def proxy_port(self) -> int:
        """The proxy's bound port (useful with port 0)."""
        assert self.proxy_site is not None
        return self.proxy_site.port

    @property
    def admin_port(self) -> int:
        """The admin listener's bound port."""
        assert self.admin_site is not None
        return self.admin_site.port

    async def drain(self, drain: Drain, drain_seconds: float, longest_upstream: float
                    ) -> DrainReport:
        """Stop accepting proxy connections, close kept-alive ones after their current
        reply, and wait for in-flight requests (drain.py); `stop` closes the rest."""
        if self.proxy_site is not None:
            await self.proxy_site.stop()
        if self.proxy.server is not None:
            self.proxy.server.pre_shutdown()
        return await drain.run(drain_seconds, longest_upstream)

    async def stop(self) -> None:
        """Stop listening, finish in-flight requests, then stop the resources."""
        for runner in (self.admin, self.proxy):
            if runner is not None and runner.server is not None:  # set up, not yet stopped
                await runner.cleanup()


async def start_listeners(config: Config, app: web.Application, *, admin: bool = True,
                          reuse_port: bool = False) -> Listeners:
    """Start `app` (from `create_app`) on the proxy listener and, with `admin`, its admin
    application on the admin listener, with each listener's timeouts."""
    listeners = Listeners(GuardedRunner(app, "proxy", config.proxy.timeouts),
                          GuardedRunner(app[ADMIN_APP], "admin", config.admin.timeouts,
                                        shutdown_timeout=config.proxy.drain_timeout)
                          if admin else None)
    try:
        await listeners.proxy.setup()  # starts the resources (and the embedded store)
        proxy = config.proxy.listen
        tls = tls_context(config.proxy.tls) if config.proxy.tls else None
        listeners.proxy_site = GuardedSite(listeners.proxy, proxy.host, proxy.port,
                                           ssl_context=tls, reuse_port=reuse_port)
        await listeners.proxy_site.start()
        if listeners.admin is not None:
            await listeners.admin.setup()
            listen = config.admin.listen
            listeners.admin_site = GuardedSite(listeners.admin, listen.host, listen.port,
                                               reuse_port=reuse_port)
            await listeners.admin_site.start()
    except BaseException:
        await listeners.stop()
        raise
    return listeners

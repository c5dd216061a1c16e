"""The Upstream: a pool of kept-alive connections to one origin, and the request each
forward writes on one of them."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from collections.abc import Iterable
from urllib.parse import urlsplit

from gatekeeper.upstream.connection import _Connection
from gatekeeper.upstream.errors import UpstreamError
from gatekeeper.upstream.reply import Reply

# Replies with a Content-Length up to this are read whole; longer or unsized ones stream.
BUFFER_LIMIT = 1024 * 1024
# Idle connections older than this are closed instead of reused (aiohttp's default too).
KEEPALIVE = 15.0
# RFC 9110 9.3: methods whose requests carry a Content-Length even when empty.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class Upstream:
    """Kept-alive connections to one origin (`scheme://host:port`), at most `limit` open."""

    def __init__(self, url: str, limit: int = 256, keepalive: float = KEEPALIVE,
                 buffer_limit: int = BUFFER_LIMIT,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        default_port = 443 if parts.scheme == "https" else 80
        self.port = parts.port or default_port
        host = f"[{self.host}]" if ":" in self.host else self.host
        authority = host if self.port == default_port else f"{host}:{self.port}"
        self._host_header = authority.encode("idna") if not authority.isascii() \
            else authority.encode("ascii")
        self.ssl = (ssl_context or ssl.create_default_context()) \
            if parts.scheme == "https" else None
        self.limit = limit
        self.keepalive = keepalive
        self.buffer_limit = buffer_limit
        self._idle: list[_Connection] = []
        self._count = 0  # connections open or opening
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the pool serves (the first one it was used on)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    async def send(self, method: str, target: str, headers: Iterable[tuple[bytes, bytes]],
                   body: bytes, time_limit: float) -> Reply:
        """Send one request (never retried) and return the reply's head and body.

        `target` is the path and query as they go on the request line; `headers` are
        end-to-end headers (Host and Content-Length are set here). `time_limit` (seconds)
        covers everything up to the last byte of the body; it is one timer on the
        connection, which also drops the connection when it fires. Raises UpstreamError.
        """
        loop = self.loop
        deadline = loop.time() + time_limit
        connection = self._take_idle(loop.time())
        if connection is None:
            connection = await self._open(deadline)
        lines = [method.encode("ascii"), b" ", target.encode("utf-8", "surrogateescape"),
                 b" HTTP/1.1\r\nHost: ", self._host_header, b"\r\n"]
        for name, value in headers:
            lines += (name, b": ", value, b"\r\n")
        if body or method in _BODY_METHODS:
            lines += (b"Content-Length: ", str(len(body)).encode("ascii"), b"\r\n")
        lines += (b"\r\n", body)
        waiter = connection.start(b"".join(lines), method == "HEAD", deadline)
        try:
            return await waiter
        except asyncio.CancelledError:
            # The caller went away mid-exchange: what the connection holds is unknown.
            connection.abort(UpstreamError("unavailable", "cancelled"))
            raise

    def _take_idle(self, now: float) -> _Connection | None:
        idle = self._idle
        while idle:
            connection = idle.pop()
            if connection.usable(now):
                return connection
            connection.abort(UpstreamError("unavailable", "idle too long"))
        return None

    async def _open(self, deadline: float) -> _Connection:
        loop = self.loop
        try:
            async with asyncio.timeout_at(deadline):
                while self._count >= self.limit:
                    waiter = loop.create_future()
                    self._waiters.append(waiter)
                    try:
                        await waiter
                    except BaseException:
                        if waiter.done() and not waiter.cancelled():
                            self._wake_one()  # woken but leaving: pass the turn on
                        else:
                            self._remove_waiter(waiter)
                        raise
                    connection = self._take_idle(loop.time())
                    if connection is not None:
                        return connection
                if self._closed:
                    raise UpstreamError("unavailable", "closed")
                self._count += 1
                try:
                    _, connection = await loop.create_connection(
                        lambda: _Connection(self), self.host, self.port, ssl=self.ssl,
                        server_hostname=self.host if self.ssl is not None else None)
                except BaseException:
                    self._count -= 1
                    self._wake_one()
                    raise
        except TimeoutError as exc:
            raise UpstreamError("timeout", "no connection in time") from exc
        except OSError as exc:
            raise UpstreamError("unavailable", f"cannot connect: {exc}") from exc
        return connection

    def _remove_waiter(self, waiter: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def release(self, connection: _Connection) -> None:
        """Take a connection back after a complete exchange."""
        if self._closed:
            connection.abort(UpstreamError("unavailable", "closed"))
            return
        connection.idle_since = self.loop.time()
        self._idle.append(connection)
        self._wake_one()

    def forget(self, connection: _Connection) -> None:
        """A connection is closed: free its slot."""
        self._count -= 1
        if connection in self._idle:
            self._idle.remove(connection)
        self._wake_one()

    @property
    def open_connections(self) -> int:
        """Connections open or being opened."""
        return self._count

    def close(self) -> None:
        """Close idle connections now and the busy ones when their exchange ends."""
        self._closed = True
        for connection in list(self._idle):
            connection.abort(UpstreamError("unavailable", "closed"))
        self._idle.clear()

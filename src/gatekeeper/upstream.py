"""Forwarding to an upstream: a lean HTTP/1.1 client over a pool of kept-alive connections.

Every forwarded request goes through here, so it does only what a proxy needs: write the
request head and body in one `write`, parse the reply with llhttp (`httptools`) and hand
back the status, the raw headers and the body. aiohttp's `ClientSession` spends about
100 us of CPU per request on things a proxy never uses (a cookie jar, redirects, automatic
headers, a task to write the body); this path costs a fraction of that.

Nothing is ever retried. Once a request has been written it is never written again, so
an upstream that closes a kept-alive connection just as a request leaves costs a 502, not
a possible double send. Idle connections are dropped after `keepalive` seconds, before
upstreams usually time them out, to keep that race rare.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, cast
from urllib.parse import urlsplit

import httptools

ErrorKind = Literal["timeout", "unavailable", "broken_reply"]
# Replies with a Content-Length up to this are read whole; longer or unsized ones stream.
BUFFER_LIMIT = 1024 * 1024
# A streamed reply stops reading from the upstream while this much waits for the client.
_STREAM_HIGH_WATER = 256 * 1024
# A reply head (status line and headers) larger than this is refused as unparsable.
HEAD_LIMIT = 64 * 1024
# Idle connections older than this are closed instead of reused (aiohttp's default too).
KEEPALIVE = 15.0
# RFC 9110 9.3: methods whose requests carry a Content-Length even when empty.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _Unsolicited(Exception):
    """Raised inside the parser when a reply starts with no request outstanding."""


class _TooLarge(Exception):
    """Raised inside the parser when a reply's head passes HEAD_LIMIT."""


class UpstreamError(Exception):
    """A forward that failed. `kind` is a bounded label: timeout, unavailable (nothing
    usable came back) or broken_reply (the reply started and then broke off)."""

    def __init__(self, kind: ErrorKind, detail: str) -> None:
        super().__init__(detail)
        self.kind: ErrorKind = kind


@dataclass(slots=True, eq=False)
class Reply:
    """An upstream's reply: status, reason and raw headers; the body whole or streamed."""

    status: int
    reason: str
    headers: list[tuple[bytes, bytes]]
    body: bytes | None  # the whole body, or None when it streams through `read()`
    _stream: _Stream | None = None

    async def read(self) -> bytes:
        """The next piece of a streamed body; b"" at its end. Raises UpstreamError."""
        if self._stream is None:
            return b""
        return await self._stream.read()

    def close(self) -> None:
        """Give up on a streamed body that was not read to its end (drops the connection)."""
        if self._stream is not None:
            self._stream.abandon()


class _Stream:
    """The body of a streamed reply, between the connection and the reader."""

    def __init__(self, connection: _Connection) -> None:
        self._connection: _Connection | None = connection
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._done = False
        self._error: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > _STREAM_HIGH_WATER and self._connection is not None:
            self._connection.pause()
        self._wake()

    def finish(self) -> None:
        self._done, self._connection = True, None
        self._wake()

    def fail(self, error: UpstreamError) -> None:
        if not self._done:
            self._error, self._done, self._connection = error, True, None
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self) -> bytes:
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._done:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
            self._waiter = None
        chunk = self._chunks.popleft()
        self._size -= len(chunk)
        if self._size <= _STREAM_HIGH_WATER // 2 and self._connection is not None:
            self._connection.resume()
        return chunk

    def abandon(self) -> None:
        if self._connection is not None:
            self._connection.abort(UpstreamError("broken_reply", "abandoned"))
        self._done, self._chunks = True, collections.deque()


class _Connection(asyncio.Protocol):
    """One kept-alive connection: at most one exchange at a time, replies parsed by llhttp."""

    def __init__(self, pool: Upstream) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.idle_since = 0.0
        self.gone = False
        self._busy = False
        self._head = False
        self._waiter: asyncio.Future[Reply] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._reason = b""
        self._head_size = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._length: int | None = None
        self._chunked = False
        self._parts: list[bytes] = []
        self._stream: _Stream | None = None
        self._headers_done = False
        self._paused = False

    # -- the pool's side

    def start(self, payload: bytes, head: bool, deadline: float) -> asyncio.Future[Reply]:
        """Write one request; the future resolves with the reply (or an UpstreamError)."""
        assert self.transport is not None
        loop = self.pool.loop
        self._busy, self._head = True, head
        self._reason, self._headers, self._parts, self._head_size = b"", [], [], 0
        self._length, self._chunked, self._stream, self._headers_done = None, False, None, False
        waiter = self._waiter = loop.create_future()
        self._timer = loop.call_at(deadline, self._timed_out)
        self.transport.write(payload)
        return waiter

    def usable(self, now: float) -> bool:
        """Still open and not idle for too long."""
        return not self.gone and now - self.idle_since < self.pool.keepalive

    def abort(self, error: UpstreamError) -> None:
        """Fail the exchange in progress, if any, and close the connection for good."""
        self._fail(error)
        self._discard()

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.gone:
            self._paused = False
            self.transport.resume_reading()

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self._busy:
            self._discard()  # bytes nobody asked for
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.abort(self._broken(f"unparsable reply: {exc}"))
        except httptools.HttpParserUpgrade:
            self.abort(self._broken("the upstream switched protocols"))

    def eof_received(self) -> bool | None:
        self._ended()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended()

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        if not self._busy:
            # A reply nobody asked for: the connection cannot be trusted any more.
            raise _Unsolicited

    def on_status(self, status: bytes) -> None:
        self._reason += status
        self._head_size += len(status)
        if self._head_size > HEAD_LIMIT:
            raise _TooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if self._head_size > HEAD_LIMIT:
            raise _TooLarge
        self._headers.append((name, value))
        lower = name.lower()
        if lower == b"content-length":
            try:
                self._length = int(value)
            except ValueError:
                self._length = None
        elif lower == b"transfer-encoding":
            self._chunked = value.rstrip().lower().endswith(b"chunked")

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            # 1xx interim replies are dropped; llhttp goes on to the final one.
            self._reason, self._headers, self._length, self._chunked = b"", [], None, False
            self._head_size = 0
            return
        self._headers_done = True
        length = self._length
        if self._head or status in (204, 304):
            # No body follows. llhttp cannot be told a reply is to HEAD, so a HEAD
            # connection is not reused.
            self._settle(Reply(status, self._reason_text(), self._headers, b""))
            if self._head:
                self.abort(UpstreamError("unavailable", "not reused after HEAD"))
            return
        if length is not None and length <= self.pool.buffer_limit and not self._chunked:
            return  # read whole; settled in on_message_complete
        self._stream = _Stream(self)
        self._settle(Reply(status, self._reason_text(), self._headers, None, self._stream))

    def on_body(self, body: bytes) -> None:
        if not self._busy:
            return
        if self._stream is not None:
            self._stream.feed(body)
        else:
            self._parts.append(body)

    def on_message_complete(self) -> None:
        if not self._busy or not self._headers_done:
            return  # after an abort, or the end of a 1xx reply
        if self._stream is not None:
            self._stream.finish()
        elif self._waiter is not None and not self._waiter.done():
            status = self.parser.get_status_code()
            self._settle(Reply(status, self._reason_text(), self._headers,
                               b"".join(self._parts)))
        self._done_exchange()

    # -- internals

    def _reason_text(self) -> str:
        return self._reason.decode("latin-1")

    def _broken(self, detail: str) -> UpstreamError:
        # Before the reply's head arrived nothing usable came back; after, it broke off.
        return UpstreamError("broken_reply" if self._headers_done else "unavailable", detail)

    def _settle(self, reply: Reply) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)

    def _done_exchange(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._busy, self._waiter, self._stream = False, None, None
        if self._paused:
            self.resume()  # the body is all read; a paused connection would stall the next
        if self.gone or not self.parser.should_keep_alive():
            self._discard()
        else:
            self.pool.release(self)

    def _fail(self, error: UpstreamError) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        if self._stream is not None:
            self._stream.fail(error)
        self._busy, self._waiter, self._stream = False, None, None

    def _timed_out(self) -> None:
        self._timer = None
        self.abort(UpstreamError("timeout", "no complete reply in time"))

    def _ended(self) -> None:
        if self._busy:
            if self._stream is not None and self._length is None and not self._chunked:
                # A body without a length ends where the connection does.
                self._stream.finish()
                self._busy, self._stream = False, None
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
            else:
                self._fail(self._broken("the upstream closed the connection"))
        self._discard()

    def _discard(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()
        if not self.gone:
            self.gone = True
            self.pool.forget(self)


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

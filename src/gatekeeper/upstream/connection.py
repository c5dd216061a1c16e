"""One kept-alive connection to an upstream: an asyncio protocol that writes a request
and parses its reply with llhttp (`httptools`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

import httptools

from gatekeeper.upstream.errors import UpstreamError
from gatekeeper.upstream.reply import Reply, _Stream

if TYPE_CHECKING:
    from gatekeeper.upstream.pool import Upstream

# A reply head (status line and headers) larger than this is refused as unparsable.
HEAD_LIMIT = 64 * 1024


class _Unsolicited(Exception):
    """Raised inside the parser when a reply starts with no request outstanding."""


class _TooLarge(Exception):
    """Raised inside the parser when a reply's head passes HEAD_LIMIT."""


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

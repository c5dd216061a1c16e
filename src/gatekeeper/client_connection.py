"""A client's connection on a listener: aiohttp's HTTP/1.1 connection handler with head
and body timeouts and Gatekeeper's JSON errors for malformed requests (client_errors.py).

aiohttp closes idle kept-alive connections (`keepalive_timeout`, our `idle`) but has no
read timeout on a request head or body: a client that dribbles a head a byte at a time
holds its connection, one file descriptor, for ever. `GuardedHandler` adds both clocks:

- head: from the connection's opening, or on a kept-alive connection from the first byte
  of the next request (before that byte the connection is idle and `idle` applies), to a
  complete head; then the connection is closed, after a JSON 408 if some of the head came;
- body: from the complete head to the end of the body; the handler's read then raises
  `BodyTimeout`, answered 408 `request_timeout` unless a reply has begun, and the
  connection is closed.

aiohttp's own error page for a malformed request echoes the offending bytes (a header that
may hold a credential) and logs a traceback; here the reply is Gatekeeper's JSON error with
a fixed message, and the log one `malformed_request` event.

Private aiohttp API used (checked against 3.12 to 3.14), in this module:
`RequestHandler._request_count` and `._messages` (a head completed in `data_received`, and
its body stream) and `RequestHandler._waiter` (the connection waits for its next request,
the check aiohttp's own keep-alive timer makes); server.py lists the rest.
"""

from __future__ import annotations

import asyncio
import random
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_request import BaseRequest

from gatekeeper.client_errors import BodyTimeout, Fault, classify
from gatekeeper.observability import REQUEST_ID, request_id_for
from gatekeeper.replies import ERROR_TYPES, Reply, gatekeeper_error, to_response

if TYPE_CHECKING:
    from gatekeeper.server import GuardedServer


def _raw_reply(status: int, phrase: str, reply: Reply, request_id: str) -> bytes:
    """A whole HTTP/1.1 reply that closes the connection, for writing straight to it."""
    head = (f"HTTP/1.1 {status} {phrase}\r\nContent-Type: {reply.content_type}\r\n"
            f"Content-Length: {len(reply.body)}\r\nX-Request-Id: {request_id}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode("ascii") + reply.body


def _new_request_id() -> str:
    # As observability.request_id_for makes one: 128 random bits.
    return f"{random.getrandbits(128):032x}"


class _BodyClock:
    """The body timer of one request: its deadline, pushed back by the time reading was
    paused because the handler had not consumed the body yet; whether the handler has
    replied."""

    __slots__ = ("answered", "deadline", "paused_at", "payload", "timer")

    def __init__(self, payload: StreamReader, deadline: float) -> None:
        self.payload = payload
        self.deadline = deadline
        self.paused_at: float | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.answered = False


# How long a connection refused with a 408 is kept half-closed (see GuardedHandler._linger).
LINGER_SECONDS = 2.0


class GuardedHandler(web.RequestHandler):
    """aiohttp's connection handler with head and body timeouts and JSON client errors."""

    __slots__ = ("_body_clock", "_guard", "_head_bytes", "_head_count", "_head_timer",
                 "_linger_timer")

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = manager
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._head_count = 0
        self._body_clock: _BodyClock | None = None
        self._linger_timer: asyncio.TimerHandle | None = None

    def _peer(self) -> str | None:
        peer = self.peername
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        if self._body_clock is not None and self._body_clock.timer is not None:
            self._body_clock.timer.cancel()
        self._body_clock = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._linger_timer is not None:
            return  # refused already: what the client still sends is discarded
        clock = self._body_clock
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads:
            message, payload = self._messages[-1]
            if clock is not None and not clock.payload.is_eof() and \
                    not isinstance(message, RawRequestMessage):
                self._body_broken(clock, getattr(message, "exc", None))
            self._stop_head()
            if not payload.is_eof():
                self._start_body(payload)
        elif data and clock is None:
            self._head_bytes += len(data)
            if self._head_timer is None:
                self._arm_head()  # the next head on a kept-alive connection has begun

    # -- the head clock

    def _arm_head(self) -> None:
        self._head_count = self._request_count
        self._head_timer = self._loop.call_later(self._guard.timeouts.header,
                                                 self._head_expired)

    def _stop_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._head_bytes = 0

    def _head_expired(self) -> None:
        self._head_timer = None
        transport = self.transport
        if transport is None or self._request_count != self._head_count:
            # Gone, or a head completed meanwhile outside `data_received` (aiohttp parses
            # bytes held back behind a declined Upgrade request after its reply).
            return
        if self._waiter is None or self._waiter.done():
            # Still answering an earlier request (this head is pipelined behind it): its
            # clock starts again.
            self._arm_head()
            return
        self._guard.log.info("client_timeout", listener=self._guard.listener,
                             peer=self._peer(), phase="header", received=self._head_bytes)
        if self._head_bytes:
            request_id = _new_request_id()
            reply = gatekeeper_error(408, "request_timeout", "The request head did not "
                                     f"arrive within {self._guard.timeouts.header:g} s.",
                                     request_id, "request_timeout")
            transport.write(_raw_reply(408, "Request Timeout", reply, request_id))
            if transport.can_write_eof():
                self._linger(transport)
                return
        self.force_close()  # the transport sends what was written before closing

    def _linger(self, transport: asyncio.Transport) -> None:
        """Send the end of the stream after the reply, then discard what the client still
        sends until it closes or LINGER_SECONDS pass. Closing at once would answer its
        next bytes with a reset, which can destroy the reply before the client reads it."""
        transport.write_eof()
        self._linger_timer = self._loop.call_later(LINGER_SECONDS, self.force_close)

    # -- the body clock

    def _start_body(self, payload: StreamReader) -> None:
        clock = _BodyClock(payload, self._loop.time() + self._guard.timeouts.body)
        clock.timer = self._loop.call_at(clock.deadline, self._body_expired, clock)
        self._body_clock = clock
        payload.on_eof(partial(self._body_done, clock))

    def pause_reading(self) -> None:
        """aiohttp's flow control: the body buffer is full, the handler is behind. The
        client cannot send meanwhile, so the body clock stops."""
        super().pause_reading()
        clock = self._body_clock
        if clock is not None and clock.paused_at is None:
            clock.paused_at = self._loop.time()

    def resume_reading(self, resume_parser: bool = True) -> None:
        """aiohttp's flow control: reading again; the body clock goes on where it was."""
        clock = self._body_clock
        if clock is not None and clock.paused_at is not None:
            clock.deadline += self._loop.time() - clock.paused_at
            clock.paused_at = None
        super().resume_reading(resume_parser)

    def _body_done(self, clock: _BodyClock) -> None:
        if clock.timer is not None:
            clock.timer.cancel()
        if self._body_clock is clock:
            self._body_clock = None

    def _fail_body(self, clock: _BodyClock, exc: BaseException) -> None:
        """Make the handler's read of a body that will not complete raise `exc`; the
        connection closes after the reply."""
        self._body_done(clock)
        self.close()  # no further request on this connection, nor data read
        clock.payload.set_exception(exc)
        # At end of stream, aiohttp does not linger on the rest of the body after the reply.
        clock.payload.feed_eof()

    def _body_expired(self, clock: _BodyClock) -> None:
        now = self._loop.time()
        if clock.paused_at is not None or now < clock.deadline:
            # Reading is (or was) held back by the handler: not the client's time.
            later = clock.deadline if clock.paused_at is None else \
                now + self._guard.timeouts.body
            clock.timer = self._loop.call_at(later, self._body_expired, clock)
            return
        self._body_done(clock)
        payload = clock.payload
        if payload.is_eof() or payload.exception() is not None or self.transport is None:
            return
        self._guard.log.info("client_timeout", listener=self._guard.listener,
                             peer=self._peer(), phase="body", received=payload.total_bytes)
        if clock.answered:
            # The reply is out and aiohttp reads the rest of the body to discard it.
            self.force_close()
            payload.feed_eof()  # ends that read
        else:
            self._fail_body(clock, BodyTimeout(f"no complete body within "
                                               f"{self._guard.timeouts.body:g} s"))

    def _body_broken(self, clock: _BodyClock, cause: object) -> None:
        # aiohttp queues a parse error inside a body as an error reply for after the
        # current request's, and leaves the handler reading that body waiting for ever.
        if clock.answered:
            self._body_done(clock)
            clock.payload.feed_eof()  # the queued error reply follows the handler's
            return
        exc = web.RequestPayloadError("the request body is malformed")
        exc.__cause__ = cause if isinstance(cause, BaseException) else None
        self._fail_body(clock, exc)  # the handler's read fails and answers it instead

    # -- replies

    async def finish_response(self, request: BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        """aiohttp's, noting that the request's body is no longer awaited by its handler."""
        clock = self._body_clock
        payload = request.content
        if clock is not None and payload is clock.payload:
            clock.answered = True
        if not payload.is_eof() and payload.exception() is not None:
            # A body the parser failed on: after the reply aiohttp would read on to discard
            # it, get the parser's error, and log it as unhandled. Close instead.
            self.close()
            payload.feed_eof()
        return await super().finish_response(request, resp, start_time)

    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """Gatekeeper's JSON error for a request aiohttp or a handler failed on."""
        if isinstance(exc, ConnectionError) and self.transport is None:
            # The client went away (mid-body, say): nobody to answer, nothing to report.
            raise ConnectionError("the client went away") from exc
        request_id = request.get(REQUEST_ID) or request_id_for(cast(web.Request, request))
        if isinstance(exc, BodyTimeout):  # logged when the clock ran out
            fault = Fault(408, "request_timeout", "The request body did not arrive within "
                          f"{self._guard.timeouts.body:g} s.")
            code = "request_timeout"
        elif (found := classify(exc)) is not None:
            fault, error = found
            code = "malformed_request"
            self._guard.log.warning("malformed_request", listener=self._guard.listener,
                                    peer=self._peer(), error=error, status=fault.status,
                                    message=fault.message, request_id=request_id)
        else:
            # Not the client's fault: aiohttp's handling and logging, in our JSON shape.
            status = super().handle_error(request, status, exc, message).status
            fault = Fault(status, ERROR_TYPES.get(status) or
                          ("internal_error" if status == 500 else "error"),
                          "The request could not be handled.")
            code = {500: "internal_error", 504: "handler_timeout"}.get(status, "error")
        if request.writer.output_size > 0:
            # A reply has begun: nothing is left but closing (aiohttp does the same).
            raise ConnectionError("a reply was already started")
        response = to_response(gatekeeper_error(fault.status, code, fault.message,
                                                request_id, fault.type))
        response.headers["X-Request-Id"] = request_id
        response.force_close()
        return response

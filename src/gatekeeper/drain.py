"""A graceful stop of the proxy listener: what is in flight, and the drain itself.

On SIGTERM the listener stops accepting and keep-alive connections close after their
current reply; in-flight requests get `proxy.drain_timeout` seconds to finish. After
that, a request that has not reached its upstream yet is answered 503 `draining` (it was
not sent: the client may retry elsewhere), while an upstream exchange already under way is
never cut: it runs to its reply or its upstream timeout, so that the client learns what
happened to its send. Requests still reading a slow body are then cut (nothing was sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

# After the drain timeout, how long requests that are not with an upstream get to reach
# their 503 (a lookup is milliseconds; a body still arriving is not waited for).
GRACE = 1.0


@dataclass(frozen=True, slots=True)
class DrainReport:
    """How a drain went (logged with `gatekeeper_drained`)."""

    seconds: float
    in_flight_at_start: int
    refused: int       # answered 503 `draining` once the drain timed out (not sent)
    left: int          # still running when the listener closed (cut; none was sending)


class Drain:
    """Counts proxy requests in flight and those whose upstream exchange has started;
    `run` waits for them as the module docstring says."""

    def __init__(self) -> None:
        self.requests = 0
        self.sending = 0
        self.draining = False
        self.expired = False
        self.refused = 0
        self._ended = asyncio.Event()  # set when a request or an exchange ends

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Around a proxy request."""
        self.requests += 1
        try:
            yield
        finally:
            self.requests -= 1
            if self.draining:
                self._ended.set()

    @contextlib.contextmanager
    def sending_upstream(self) -> Iterator[None]:
        """Around an upstream exchange (never cut by a drain)."""
        self.sending += 1
        try:
            yield
        finally:
            self.sending -= 1
            if self.draining:
                self._ended.set()

    def refuse(self) -> bool:
        """Whether a request about to reach its upstream must not (the drain timed out);
        counted."""
        if self.expired:
            self.refused += 1
        return self.expired

    async def _until(self, deadline: float, done: Callable[[], bool]) -> None:
        """Wait until `done()` or the monotonic `deadline`, waking as requests end."""
        while not done() and (left := deadline - time.monotonic()) > 0:
            self._ended.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._ended.wait()

    async def run(self, drain_seconds: float, longest_upstream: float) -> DrainReport:
        """Wait for in-flight requests: all of them up to `drain_seconds`, then only
        upstream exchanges under way (each ends within `longest_upstream`)."""
        started = time.monotonic()
        at_start = self.requests
        self.draining = True
        await self._until(started + drain_seconds, lambda: not self.requests)
        if self.requests:
            self.expired = True
            # Requests not sending reach their 503 within moments; exchanges run out.
            await self._until(time.monotonic() + GRACE, lambda: not self.requests)
            await self._until(time.monotonic() + longest_upstream,
                              lambda: not self.sending)
        return DrainReport(round(time.monotonic() - started, 3), at_start, self.refused,
                           self.requests)


def tracked(drain: Drain) -> Middleware:
    """Middleware (outermost on the proxy): counts the request in flight; while stopping,
    its reply closes the connection (the client reconnects to a process that serves)."""

    @web.middleware
    async def middleware(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        with drain.request():
            response = await handler(request)
        if drain.draining and not response.prepared:
            response.force_close()
        return response

    return middleware

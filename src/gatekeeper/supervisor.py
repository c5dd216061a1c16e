"""Supervision of the embedded redis-server: restart it whenever it dies, with back-off.

Where the server stays on its port (the usual case), clients reconnect by themselves; the
owner follows `server.endpoint` when the port had to change. Events: `embedded_store_exited`
(error), `embedded_store_restart_failed` (warning, per failed attempt) and
`embedded_store_restarted` (warning, with the exit code or signal of the death and the
attempt that succeeded).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import structlog

from gatekeeper.embedded import EmbeddedError, EmbeddedRedis, Endpoint, exit_fields

Logger = structlog.typing.FilteringBoundLogger


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays before restart attempts: `first`, doubled after every failed attempt and
    every death soon after a restart, at most `limit`; back to `first` once the server
    has stayed up `stable_after` seconds."""

    first: float = 0.1
    limit: float = 5.0
    stable_after: float = 30.0

    def after(self, delay: float) -> float:
        """The delay that follows `delay`."""
        return min(delay * 2, self.limit)


class Supervisor:
    """Restarts the embedded server whenever it dies, with back-off, and never gives up.

    Non-blocking: the owner calls `step()` every ~0.1 s (the event loop of a single
    process, or the parent of `--workers`), on the thread that started the server, since
    the child's die-with-parent signal is tied to the thread that forks it. The only wait
    is a loopback PING of a server being started (0.1 s at most). `restarts` counts
    successful restarts.
    """

    def __init__(self, server: EmbeddedRedis, log: Logger, backoff: Backoff = Backoff(),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.server = server
        self.log = log
        self.restarts = 0
        self._backoff = backoff
        self._clock = clock
        self._state: Literal["running", "waiting", "starting"] = "running"
        self._delay = backoff.first
        self._due = 0.0           # when the next attempt may start (waiting)
        self._deadline = 0.0      # when the attempt under way has failed (starting)
        self._up_since = clock()
        self._down_since = 0.0
        self._attempt = 0         # attempts in the current outage
        self._death: dict[str, object] = {}
        self._launch: Endpoint | None = None  # the server being started

    @property
    def down(self) -> bool:
        """True from the server's death until it answers again."""
        return self._state != "running"

    def step(self) -> None:
        """Notice a death, start an attempt when due, or see an attempt through."""
        now = self._clock()
        if self._state == "running":
            self._check_running(now)
        if self._state == "waiting" and now >= self._due:
            self._attempt += 1
            try:
                self._launch = self.server.relaunch()
            except (EmbeddedError, OSError) as exc:
                self._failed(now, str(exc))
                return
            self._state, self._deadline = "starting", now + self.server.start_timeout
            return  # give it a moment before the first probe
        if self._state == "starting":
            self._check_starting(now)

    def _check_running(self, now: float) -> None:
        code = self.server.exit_status()
        if code is None:
            if now - self._up_since >= self._backoff.stable_after:
                self._delay = self._backoff.first
            return
        self._death = exit_fields(code)
        self._state, self._down_since, self._attempt = "waiting", now, 0
        self._due = now + self._delay
        self.log.error("embedded_store_exited", data_dir=str(self.server.data_dir),
                       restart_in=round(self._delay, 3), **self._death)
        self._delay = self._backoff.after(self._delay)

    def _check_starting(self, now: float) -> None:
        code = self.server.exit_status()
        if code is None and self._launch is not None and self.server.answers():
            previous = self.server.endpoint
            try:
                self.server.confirm()
            except OSError as exc:
                # Serving matters more than the state file (`gatekeeper check` and the
                # workers read it): carry on without it.
                self.log.error("embedded_store_state_unwritten", error=str(exc))
            endpoint = self._launch
            self._state, self._up_since = "running", now
            self.restarts += 1
            self.log.warning(
                "embedded_store_restarted", attempt=self._attempt, port=endpoint.port,
                port_changed=previous is not None and previous.port != endpoint.port,
                pid=endpoint.pid, down_seconds=round(now - self._down_since, 3),
                **self._death)
            return
        if code is not None:
            end = exit_fields(code)
            how = f"signal {end['signal']}" if end["signal"] else f"exit code {code}"
            self._failed(now, f"exited at start ({how}): {self.server.log_tail()}")
        elif now > self._deadline:
            self._failed(now, f"no answer within {self.server.start_timeout} s")

    def _failed(self, now: float, why: str) -> None:
        self.server.discard()
        self._state, self._due = "waiting", now + self._delay
        self.log.warning("embedded_store_restart_failed", attempt=self._attempt, error=why,
                         retry_in=round(self._delay, 3))
        self._delay = self._backoff.after(self._delay)

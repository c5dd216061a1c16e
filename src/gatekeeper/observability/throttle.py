"""Rate-limited log lines for faults that repeat on every request (a store outage):
at most one line per `interval` seconds per kind, each carrying how many were left out
since the previous one. The counters (metrics) count every occurrence regardless."""

from __future__ import annotations

import time
from collections.abc import Callable


class Throttle:
    """Decides which occurrences of a repeated event are logged."""

    def __init__(self, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._left_out: dict[str, int] = {}

    def admit(self, kind: str) -> int | None:
        """None: leave this occurrence out of the log; else log it, with the returned
        number of occurrences left out since the last logged one."""
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._left_out[kind] = self._left_out.get(kind, 0) + 1
            return None
        self._last[kind] = now
        return self._left_out.pop(kind, 0)

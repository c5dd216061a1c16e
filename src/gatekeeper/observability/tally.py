"""Counters the send path adds to as plain integers (`Tally`), settled into their
Prometheus counters when read.

Why: prometheus_client's `inc` checks its argument and takes a lock on every call
(about 60 Python opcodes with the child's lookup); adding to a dict entry is about 10,
and a send counts its decision and, at night, a quiet-hours monitor hit. What is
pending is settled before every read of the registry (`Settler`, registered ahead of the
counters), every second by each process's jobs (so that with `run --workers N` each
worker's files, which one /metrics sums, are at most a second behind), and when the
process closes. Every add and every settle runs on the event loop's thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import Counter
from prometheus_client.metrics_core import Metric

Key = tuple[str, ...]


class Tally:
    """Pending counts of one labelled counter, by label values, until `settle`."""

    __slots__ = ("_children", "_counter", "pending")

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._children: dict[Key, Counter] = {}
        # Added to directly by `Metrics` (one dict operation a count).
        self.pending: dict[Key, int] = {}

    def settle(self) -> None:
        """Add every pending count to its labelled child, then forget them."""
        pending = self.pending
        if not pending:
            return
        for key, count in pending.items():
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self._counter.labels(*key)
            child.inc(count)
        pending.clear()


class Settler:
    """A collector that exports nothing and settles pending counts: registered first,
    it runs before the registry's counters are read, whoever reads them."""

    def __init__(self, settle: Callable[[], None]) -> None:
        self._settle = settle

    def describe(self) -> Iterable[Metric]:
        """No metrics of its own (and registering it must not settle)."""
        return ()

    def collect(self) -> Iterable[Metric]:
        """Settle, then export nothing."""
        self._settle()
        return ()

"""The batch load of bench/batches.py: the batch bodies (distinct numbers, some blocked),
the client keeping batches in flight (`BatchLoad`), what it saw of each (`BatchResult`),
and the share of a window a batch was in flight."""

from __future__ import annotations

import http.client
import itertools
import json
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.batch_params import (
    BATCH_PATH,
    BATCH_SENDER,
    BATCH_TEXT,
    MAX_BODY_BYTES,
    BatchParams,
)
from bench.run import HOST, BenchError, ListFiles


@dataclass(frozen=True)
class BatchBody:
    """One batch request body and what Gatekeeper should do with it."""

    body: bytes
    recipients: int
    blocked: tuple[str, ...]   # its blocked recipients (cut out: decision `partial`)


def pool_blocked(lists: ListFiles) -> tuple[list[str], list[str]]:
    """The blocked destinations of bench/run.py's pool: (exact entries, under a prefix)."""
    blocked = [line.split()[1] for line in lists.pool.read_text().splitlines()
               if line.startswith("b ")]
    exact = int(lists.manifest.get("blocked_pool_exact", len(blocked) // 2))
    return blocked[:exact], blocked[exact:]


def batch_bodies(params: BatchParams, lists: ListFiles) -> list[BatchBody]:
    """`--batch-pool` bodies of `--recipients` distinct unlisted numbers each (+1 area
    codes 200-299, which no entry matches: see bench/run.py's number plan), no number in
    two bodies; every 1/`--batch-blocked`-th body has one exact entry and one number under
    a prefix among them, at random places."""
    rng = random.Random(params.seed + 1)  # noqa: S311 - reproducible test data
    exact, prefixed = pool_blocked(lists)
    total = params.batch_pool * params.recipients
    unlisted = rng.sample(range(1_000_000_000), total)
    bodies = []
    for i in range(params.batch_pool):
        numbers = [f"+1{2_000_000_000 + n}"
                   for n in unlisted[i * params.recipients:(i + 1) * params.recipients]]
        blocked: tuple[str, ...] = ()
        if int((i + 1) * params.batch_blocked) > int(i * params.batch_blocked) and \
                exact and prefixed:
            blocked = (rng.choice(exact), rng.choice(prefixed))
            for number, at in zip(blocked, rng.sample(range(len(numbers)), len(blocked)),
                                  strict=True):
                numbers[at] = number
        doc = {"from": BATCH_SENDER,
               "messages": [{"to": n, "text": BATCH_TEXT} for n in numbers]}
        body = json.dumps(doc, separators=(",", ":")).encode()
        if len(body) > MAX_BODY_BYTES:
            raise BenchError(f"a batch of {params.recipients} recipients is {len(body):,} "
                             f"bytes, over Gatekeeper's {MAX_BODY_BYTES:,}: lower "
                             "--recipients")
        bodies.append(BatchBody(body, len(numbers), blocked))
    return bodies


@dataclass(frozen=True)
class BatchResult:
    """One batch as the client saw it (monotonic seconds)."""

    started: float
    ended: float
    status: int
    decision: str
    removed: int
    recipients: int
    blocked: int
    error: str = ""

    @property
    def expected(self) -> bool:
        """Forwarded whole, or with exactly its blocked recipients cut out."""
        if self.error or not 200 <= self.status < 300:
            return False
        if self.blocked:
            return self.decision == "partial" and self.removed == self.blocked
        return self.decision == "forwarded"


class BatchLoad:
    """Keeps `concurrency` batches in flight, one thread and kept-alive connection each,
    the next batch sent as soon as the previous reply is in, until `stop`."""

    def __init__(self, port: int, bodies: Sequence[BatchBody], concurrency: int) -> None:
        self.port = port
        self.bodies = bodies
        self.concurrency = concurrency
        self.results: list[BatchResult] = []
        self.first_sent = threading.Event()
        self._stop = threading.Event()
        self._next = itertools.count()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start sending."""
        self._stop.clear()
        self.first_sent.clear()
        self._threads = [threading.Thread(target=self._worker, name=f"batches-{i}",
                                          daemon=True) for i in range(self.concurrency)]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 120.0) -> None:
        """Send no more; wait for the batches in flight."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            raise BenchError(f"a batch was still in flight {timeout:.0f} s after the stop")
        self._threads = []

    def take(self) -> list[BatchResult]:
        """The results so far, cleared."""
        with self._lock:
            out, self.results = self.results, []
        return out

    def send(self, conn: http.client.HTTPConnection, batch: BatchBody) -> BatchResult:
        """One batch on `conn`."""
        started = time.monotonic()
        try:
            conn.request("POST", BATCH_PATH, body=batch.body, headers={
                "Content-Type": "application/json",
                "Authorization": "Bearer bench-batches"})
            self.first_sent.set()
            reply = conn.getresponse()
            reply.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            return BatchResult(started, time.monotonic(), 0, "", 0, batch.recipients,
                               len(batch.blocked), f"{type(exc).__name__}: {exc}")
        ended = time.monotonic()
        removed = reply.getheader("X-Gatekeeper-Removed") or "0"
        return BatchResult(started, ended, reply.status,
                           reply.getheader("X-Gatekeeper-Decision") or "",
                           int(removed) if removed.isdigit() else -1, batch.recipients,
                           len(batch.blocked))

    def _worker(self) -> None:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
        try:
            while not self._stop.is_set():
                batch = self.bodies[next(self._next) % len(self.bodies)]
                result = self.send(conn, batch)
                with self._lock:
                    self.results.append(result)
                if result.error:
                    self.first_sent.set()
                    time.sleep(0.2)
        finally:
            conn.close()


def covered(intervals: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """Share of [start, end] during which at least one interval was open."""
    total, reach = 0.0, start
    for opened, closed in sorted(intervals):
        a, b = max(opened, reach), min(closed, end)
        if b > a:
            total += b - a
            reach = b
    return total / max(end - start, 1e-9)


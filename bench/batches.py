"""Small sends while large batches run: the latency of one-recipient sends through
`gatekeeper run`, without (phase A) and with (phase B) large batches in flight, measured
side by side in one run, the phases alternating A B A B ...

    .venv/bin/python -m bench.batches             # 4 x (A, B) of 10 s: about 2 minutes
    .venv/bin/python -m bench.batches --quick     # CI smoke: a few seconds
    .venv/bin/python -m bench.batches --concurrency 2 --repeat 6

Gatekeeper runs as in bench/run.py (`gatekeeper run` on uvloop, pinned to CPU 0, a real
redis-server on CPU 1, block lists imported with `gatekeeper lists import`, the bench's
fake gateways on loopback). Small sends: wrk with bench/wrk/post.lua, Twilio form sends
paced at a fixed rate, 5% to blocked numbers (403 expected). Batches: a separate client
keeps `--concurrency` generic JSON batches in flight, each `{"from", "messages":
[{"to", "text"}, ...]}` with `--recipients` distinct numbers never seen before (so no
cache helps), half of them with two blocked numbers, which Gatekeeper cuts out
(`X-Gatekeeper-Decision: partial`). The figure to read is p99(B) / p99(A) of the small
sends, per repetition and its median. `--anatomy` (on by default) then times the stages
of one batch in this process with Gatekeeper's own code. Benchmarks measure; nothing
here asserts a timing. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import http.client
import itertools
import json
import logging
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO, cast

import structlog

from bench.run import (
    CLK_TCK,
    HOST,
    LOAD_CPU,
    PROCESS_CPU,
    REPO,
    SCOPES,
    SEND_PATH,
    Bench,
    BenchError,
    ListFiles,
    Params,
    Probe,
    Process,
    Snapshot,
    WrkResult,
    gatekeeper_command,
    generate_lists,
    loadavg,
    log,
    machine_info,
    prepare_runner,
    run_wrk,
    tree_pids,
    wait_http,
)
from bench.upstream import loop_factory
from gatekeeper.embedded import free_port

DEFAULT_OUTPUT = REPO / "bench" / "results" / "batches.json"
BATCH_MOUNT = "/bulk"
BATCH_PATH = BATCH_MOUNT + "/v1/messages"
BATCH_SENDER = "+15005550006"
BATCH_TEXT = "Your appointment is tomorrow at 10:00"
MAX_BODY_BYTES = 1_048_576   # Gatekeeper's default proxy.max_body_bytes, kept here
BLOCKED_PER_BATCH = 2        # one exact entry, one number under a prefix
TARGET_RATIO = 2.0           # the figure, reported against, never asserted


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class BatchParams:
    """What one run measures."""

    duration: int
    warmup: int
    repeat: int
    rate: int
    connections: int
    blocked_fraction: float
    numbers: int
    prefixes: int
    recipients: int
    concurrency: int
    batch_blocked: float
    batch_pool: int
    anatomy: bool
    quick: bool
    seed: int
    output: str
    keep_logs: bool
    helper_cpus: str | None = None


def parse_args(argv: Sequence[str] | None) -> BatchParams:
    """Command-line options; --quick changes the defaults to CI-smoke sizes."""
    p = argparse.ArgumentParser(prog="python -m bench.batches", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, help="seconds of each phase's timed window "
                   "(default 10; --quick: 2)")
    p.add_argument("--warmup", type=int, help="seconds of small sends (and two batches) "
                   "before the first phase (default 3; --quick: 1)")
    p.add_argument("--repeat", type=int, help="A/B pairs (default 4; --quick: 1)")
    p.add_argument("--rate", type=int, help="small sends per second offered, paced as in "
                   "bench/run.py's rate mode (default 500; --quick: 200)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    p.add_argument("--blocked-fraction", type=float, default=0.05,
                   help="share of small sends to blocked numbers, 403 expected (0.05)")
    p.add_argument("--numbers", type=int, help="exact numbers in the block lists over the "
                   "3 scopes (default 100000; --quick: 10000)")
    p.add_argument("--prefixes", type=int, help="prefixes in the block lists over the "
                   "3 scopes (default 1000; --quick: 100)")
    p.add_argument("--recipients", type=int, default=10_000,
                   help="recipients per batch (10000, Gatekeeper's default "
                   "proxy.max_recipients)")
    p.add_argument("--concurrency", type=int, default=1,
                   help="batches kept in flight during phase B (1)")
    p.add_argument("--batch-blocked", type=float, default=0.5,
                   help="share of batches holding blocked numbers, cut out by a partial "
                   "rewrite (0.5)")
    p.add_argument("--batch-pool", type=int,
                   help="distinct batch bodies, sent in turn; all their numbers are "
                   "distinct, so at the default no batch finds its numbers in "
                   "Gatekeeper's caches of 65,536 (default 16; --quick: 4)")
    p.add_argument("--no-anatomy", dest="anatomy", action="store_false",
                   help="skip timing the stages of one batch at the end")
    p.add_argument("--quick", action="store_true",
                   help="CI smoke: one A/B pair of 2 s, 10k numbers")
    p.add_argument("--seed", type=int, default=20240601, help="generation seed")
    p.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON results file "
                   f"(default {DEFAULT_OUTPUT.relative_to(REPO)})")
    p.add_argument("--helper-cpus", help="CPUs for Gatekeeper's screening helper process "
                   "(e.g. 0,1), which otherwise inherits Gatekeeper's pin to CPU 0")
    p.add_argument("--keep-logs", action="store_true",
                   help="keep the temporary directory with process logs")
    a = p.parse_args(argv)
    quick = bool(a.quick)

    def pick(value: int | None, normal: int, small: int) -> int:
        return value if value is not None else (small if quick else normal)

    params = BatchParams(
        duration=pick(a.duration, 10, 2), warmup=pick(a.warmup, 3, 1),
        repeat=pick(a.repeat, 4, 1), rate=pick(a.rate, 500, 200),
        connections=a.connections, blocked_fraction=a.blocked_fraction,
        numbers=pick(a.numbers, 100_000, 10_000), prefixes=pick(a.prefixes, 1_000, 100),
        recipients=a.recipients, concurrency=a.concurrency,
        batch_blocked=a.batch_blocked, batch_pool=pick(a.batch_pool, 16, 4),
        anatomy=a.anatomy, quick=quick, seed=a.seed, output=a.output,
        keep_logs=a.keep_logs, helper_cpus=a.helper_cpus)
    if params.duration < 1 or params.warmup < 0 or params.repeat < 1:
        p.error("--duration and --repeat must be at least 1, --warmup at least 0")
    if params.rate < 1 or params.connections < 1:
        p.error("--rate and --connections must be at least 1")
    if not 0 <= params.blocked_fraction < 1 or not 0 <= params.batch_blocked <= 1:
        p.error("--blocked-fraction must be in [0, 1), --batch-blocked in [0, 1]")
    if params.recipients < 2 * BLOCKED_PER_BATCH or params.concurrency < 1 or \
            params.batch_pool < 1:
        p.error("need --recipients >= 4, --concurrency >= 1, --batch-pool >= 1")
    if params.numbers < len(SCOPES) or params.prefixes < len(SCOPES):
        p.error("--numbers and --prefixes must be at least 3 (one per scope)")
    return params


def run_params(params: BatchParams) -> Params:
    """bench/run.py's parameters, for what is borrowed from it: the lists, wrk in its
    rate mode, the process handling."""
    return Params(
        duration=params.duration, warmup=params.warmup, connections=params.connections,
        threads=1, rate=params.rate, blocked_fraction=params.blocked_fraction,
        numbers=params.numbers, prefixes=params.prefixes,
        unlisted_pool=2_000 if params.quick else 10_000,
        blocked_pool=200 if params.quick else 1_000, gk_workers=None,
        rows=("gatekeeper-lists",), modes=("rate",), quick=params.quick, seed=params.seed,
        output=params.output, keep_logs=params.keep_logs, repeat=params.repeat)


# --------------------------------------------------------------------------- batches


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


# --------------------------------------------------------------------------- phases


@dataclass
class Phase:
    """One timed window: the small sends' figures, and the batches' in phase B."""

    repetition: int
    phase: str                       # "A": small sends only; "B": with batches
    seconds: float
    small: dict[str, Any]
    batches: dict[str, Any] | None
    cpu_percent: dict[str, float]    # gatekeeper, redis-server, and each CPU's busy share
    evalsha: dict[str, float]        # the lookup script's calls and time in redis-server
    checks: list[str] = field(default_factory=list)


def small_figures(result: WrkResult, params: BatchParams) -> tuple[dict[str, Any], list[str]]:
    """wrk's BENCH_RESULT as figures, and what was unexpected in it."""
    status, errors = result.status, result.errors
    socket_errors = sum(errors[k] for k in ("connect", "read", "write", "timeout"))
    unexpected = socket_errors + result.requests - status["2xx"] - status["403_rejected"]
    checks = []
    if unexpected:
        checks.append(f"{unexpected} unexpected small-send outcomes: {errors} {status}")
    missing = result.sent["blocked"] - status["403_rejected"]
    if not 0 <= missing <= params.connections:
        checks.append(f"{result.sent['blocked']} small sends to blocked numbers but "
                      f"{status['403_rejected']} rejections")
    seconds = result.duration_us / 1e6
    lat = result.latency_us
    return {
        "requests": result.requests,
        "requests_per_s": round(result.requests / max(seconds, 1e-9), 1),
        "latency_ms": {k: round(lat[k] / 1000, 3)
                       for k in ("p50", "p90", "p99", "max", "mean")},
        "unexpected_errors": unexpected, "expected_rejections": status["403_rejected"],
        "status": status, "errors": errors,
    }, checks


def batch_figures(results: Sequence[BatchResult], start: float, end: float
                  ) -> tuple[dict[str, Any], list[str]]:
    """The batches that overlapped the window [start, end]."""
    inside = [r for r in results if r.ended > start and r.started < end]
    done = [r for r in inside if start <= r.ended <= end and not r.error]
    seconds = [r.ended - r.started for r in inside if not r.error]
    bad = [r for r in results if not r.expected]
    checks = [f"{len(bad)} batches with unexpected outcomes, e.g. status {bad[0].status} "
              f"decision {bad[0].decision!r} removed {bad[0].removed} of "
              f"{bad[0].blocked} blocked {bad[0].error}"] if bad else []
    if not inside:
        checks.append("no batch was in flight during the window")
    window = max(end - start, 1e-9)
    return {
        "sent": len(results), "overlapping_window": len(inside),
        "completed_in_window": len(done),
        "per_s": round(len(done) / window, 2),
        "recipients_per_s": round(sum(r.recipients for r in done) / window),
        "latency_s": ({"p50": round(statistics.median(seconds), 3),
                       "max": round(max(seconds), 3),
                       "min": round(min(seconds), 3)} if seconds else {}),
        "in_flight_percent": round(100 * covered(
            [(r.started, r.ended) for r in inside], start, end), 1),
        "partial": sum(r.decision == "partial" for r in results),
        "forwarded": sum(r.decision == "forwarded" for r in results),
        "unexpected": len(bad),
    }, checks


class Scenario:
    """Gatekeeper with the lists, the two fake gateways, the loads; phases on demand."""

    def __init__(self, params: BatchParams, wrk: str, workdir: Path, pinned: bool) -> None:
        self.params = params
        self.rp = run_params(params)
        self.wrk_binary = wrk
        self.pinned = pinned
        self.bench = Bench(self.rp, wrk, workdir, pinned)
        self.workdir = workdir
        self.gatekeeper: Process | None = None
        self.proxy_port = 0
        self.config_path = workdir / "gatekeeper-batches.yaml"
        self.lists: ListFiles | None = None
        self.extra: dict[str, Any] = {}

    def close(self) -> None:
        self.bench.close()

    def start(self, lists: ListFiles) -> None:
        """Fake gateways, redis-server, the lists, then Gatekeeper pinned to CPU 0."""
        self.lists = lists
        load_cpus = self.bench.cpus(str(LOAD_CPU))
        _, small_port = self.bench.start_upstream("upstream-small", load_cpus)
        _, batch_port = self.bench.start_upstream("upstream-batches", load_cpus)
        self.bench.start_redis()
        self.extra["import_seconds"] = self.bench.load_lists(lists, small_port)
        self.extra["store_settle_seconds"] = self.bench.wait_store_idle()
        self.proxy_port, admin_port = free_port(), free_port()
        write_config(self.config_path, self.bench.redis_url, small_port, batch_port,
                     self.proxy_port, admin_port, self.workdir / "gk-data")
        cpus = self.bench.cpus(str(PROCESS_CPU))
        self.gatekeeper = self.bench.spawn(
            "gatekeeper", [*gatekeeper_command(), "run", "--config", str(self.config_path)],
            cpus)
        wait_http(self.gatekeeper, admin_port, "/readyz", want_ok=True)
        wait_http(self.gatekeeper, self.proxy_port, "/healthz-bench")
        if self.params.helper_cpus and self.pinned:
            self.extra["helper_cpus"] = self.params.helper_cpus
            cpus_set = {int(c) for c in self.params.helper_cpus.split(",")}
            for pid in tree_pids(self.gatekeeper.pid)[1:]:
                with contextlib.suppress(ProcessLookupError):
                    os.sched_setaffinity(pid, cpus_set)

    def small_sends(self, seconds: int) -> WrkResult:
        """Small sends for `seconds`, paced at --rate (bench/run.py's rate mode)."""
        assert self.lists is not None
        pace_ms = self.params.connections * 1000 / self.params.rate
        return run_wrk(self.wrk_binary, f"http://{HOST}:{self.proxy_port}{SEND_PATH}",
                       self.rp, seconds, pace_ms, self.lists.pool, self.pinned)

    def phase(self, repetition: int, name: str, load: BatchLoad | None) -> Phase:
        """One window of small sends; with `load`, batches in flight all through it."""
        assert self.gatekeeper is not None
        probe = Probe(self.gatekeeper, self.bench.redis_pid)
        if load is not None:
            load.take()
            load.start()
            if not load.first_sent.wait(30):
                raise BenchError("the batch client sent nothing within 30 s")
        stats0 = evalsha_stats(self.bench.redis_url)
        before = Snapshot.take(probe)
        start = time.monotonic()
        try:
            result = self.small_sends(self.params.duration)
        finally:
            end = time.monotonic()
            after = Snapshot.take(probe)
            stats1 = evalsha_stats(self.bench.redis_url)
            if load is not None:
                load.stop()
        small, checks = small_figures(result, self.params)
        batches = None
        if load is not None:
            batches, more = batch_figures(load.take(), start, end)
            checks += more
        if self.gatekeeper.exited() is not None:
            raise BenchError(f"gatekeeper exited during the run:\n"
                             f"{self.gatekeeper.log_tail()}")
        calls = stats1["calls"] - stats0["calls"]
        usec = stats1["usec"] - stats0["usec"]
        return Phase(repetition, name, round(end - start, 2), small, batches,
                     cpu_percent(before, after, end - start),
                     {"calls": calls, "usec_per_call": round(usec / calls, 1) if calls else 0.0,
                      "busy_percent": round(usec / 1e4 / max(end - start, 1e-9), 1)},
                     checks)


def write_config(path: Path, redis_url: str, small_port: int, batch_port: int,
                 proxy_port: int, admin_port: int, data_dir: Path) -> None:
    """As bench/run.py's config (same store, key prefix, scopes and log level), plus a
    generic upstream taking JSON batches at `messages[].to`."""
    scopes = [s for s in SCOPES if s != "global"]
    config = {
        "proxy": {"host": HOST, "port": proxy_port, "on_invalid": "reject"},
        "admin": {"host": HOST, "port": admin_port, "key_env": "GATEKEEPER_BENCH_ADMIN_KEY"},
        "redis": {"url": redis_url, "data_dir": str(data_dir), "key_prefix": "bench:",
                  "timeout": 2.0},
        "store": {"on_error": "closed"},
        "log": {"level": "warning", "format": "json"},
        "upstreams": [
            {"name": "twilio", "url": f"http://{HOST}:{small_port}", "preset": "twilio",
             "region": "US", "on_block": "reject", "timeout": 30, "scopes": scopes},
            {"name": "bulk", "url": f"http://{HOST}:{batch_port}", "preset": "generic",
             "mount": BATCH_MOUNT, "region": "US", "on_block": "reject", "timeout": 30,
             "scopes": scopes,
             "routes": [{"method": "POST", "path": "/v1/messages", "channel": "sms",
                         "destination": {"json": "messages[].to"}}]},
        ],
    }
    path.write_text(json.dumps(config, indent=2) + "\n")   # JSON is YAML


def evalsha_stats(url: str) -> dict[str, int]:
    """The lookup script's calls and microseconds so far in redis-server."""
    import redis  # noqa: PLC0415

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats").get("cmdstat_evalsha", {})
    finally:
        client.close()
    return {"calls": int(stats.get("calls", 0)), "usec": int(stats.get("usec", 0))}


def cpu_percent(before: Snapshot, after: Snapshot, seconds: float) -> dict[str, float]:
    """Gatekeeper's and redis-server's CPU over the window (% of one CPU), and how busy
    each CPU was."""
    def share(a: int | None, b: int | None) -> float:
        return 0.0 if a is None or b is None else round(100 * (b - a) / CLK_TCK / seconds, 1)

    out = {"gatekeeper": share(before.target, after.target),
           "redis": share(before.redis, after.redis)}
    for cpu, (b1, _s1, t1) in after.cpus.items():
        b0, _s0, t0 = before.cpus.get(cpu, (b1, _s1, t1))
        out[cpu] = round(100 * (b1 - b0) / max(t1 - t0, 1), 1)
    return out


# --------------------------------------------------------------------------- anatomy


def anatomy(config_path: Path, body: BatchBody) -> dict[str, Any]:
    """The stages of one batch, run in this process with Gatekeeper's own code on uvloop,
    caches cleared as for numbers never seen. Pass 1 times each stage (CPU, and the
    longest piece run without yielding); pass 2 runs the stages on the loop as
    `Sending.check` does without a helper process (find and rewrite through `off_loop`),
    pass 3 has the helper process screen the batch as `gatekeeper run` does, both beside
    a ticker that yields at every loop iteration, which reports per stage the longest
    time the loop could not run anything else: what a small send arriving then would
    wait."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(_anatomy(config_path, body))


class _Stages:
    """Stage timings, in milliseconds."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, Any]] = {}

    def add(self, name: str, where: str, total: float, longest: float, **more: Any) -> None:
        self.stages[name] = {"where": where, "ms": round(total * 1000, 2),
                             "longest_piece_ms": round(longest * 1000, 2), **more}


async def _anatomy(config_path: Path, batch: BatchBody) -> dict[str, Any]:
    # Imported here: the rest of the bench does not need Gatekeeper in-process.
    from gatekeeper.bigscreen import ScreenHelper  # noqa: PLC0415
    from gatekeeper.config import load_config  # noqa: PLC0415
    from gatekeeper.examine import Job  # noqa: PLC0415
    from gatekeeper.numbers import parse_destination  # noqa: PLC0415
    from gatekeeper.providers.locators import JsonPath  # noqa: PLC0415
    from gatekeeper.providers.preset import Message, Recipients, match_route  # noqa: PLC0415
    from gatekeeper.proxy import Mount  # noqa: PLC0415
    from gatekeeper.screening import (  # noqa: PLC0415
        DECIDE_SLICE,
        LOOKUP_SLICE,
        PARSE_SLICE,
        Screener,
        parse_all,
    )
    from gatekeeper.sending import OFF_LOOP_BYTES, off_loop  # noqa: PLC0415
    from gatekeeper.store import Store, connect  # noqa: PLC0415
    from gatekeeper.store import lookup as lookup_module  # noqa: PLC0415

    config = load_config(str(config_path), env={"GATEKEEPER_BENCH_ADMIN_KEY": "x" * 32})
    upstream = next(u for u in config.upstreams if u.name == "bulk")
    region = upstream.region
    scopes = ("global", *upstream.scopes)
    store = Store(connect(config.redis), config.redis, config.store,
                  lookup_url=config.redis.url)
    await store.prepare()
    await store.lookup(["+12025550100"], scopes, "sms")   # the lookup connection
    transport = store._transport
    # (lookup start, transport start, transport end, lookup end, CPU) per slice
    marks: list[list[float]] = []

    class TimedTransport:
        """The store's lookup transport, the wait for redis-server noted."""

        async def lookup(self, call: Any, candidates: Sequence[str], encoded: bytes
                         ) -> list[list[str]]:
            marks[-1].append(time.perf_counter())
            try:
                return await transport.lookup(call, candidates, encoded)
            finally:
                marks[-1].append(time.perf_counter())

        def __getattr__(self, name: str) -> Any:
            return getattr(transport, name)

    class TimedStore:
        """The store, each lookup's start and end noted."""

        async def lookup(self, numbers: Sequence[str], scopes_: Sequence[str],
                         channel: Any = None) -> Any:
            marks.append([time.perf_counter()])
            try:
                return await store.lookup(numbers, scopes_, channel)
            finally:
                marks[-1].append(time.perf_counter())

    store._transport = cast(Any, TimedTransport())
    screener = Screener(cast(Any, SimpleNamespace(config=config, store=TimedStore())))
    message = Message(batch.body, "", {"Content-Type": "application/json"})
    locator = JsonPath("messages[].to")
    in_thread = len(batch.body) > OFF_LOOP_BYTES
    where = "worker thread" if in_thread else "event loop"
    out = _Stages()

    def cold() -> None:
        parse_destination.cache_clear()
        lookup_module._candidates.cache_clear()

    # As `gatekeeper run` does after start-up (serve.tune_collector): what exists now
    # is never collected.
    gc.collect()
    gc.freeze()
    # Pass 1: each stage's own time.
    cold()
    t0 = time.perf_counter()
    json.loads(batch.body)
    spent = time.perf_counter() - t0
    out.add("(json.loads alone)", "C, GIL held", spent, spent)
    t0 = time.perf_counter()
    recipients = locator.find(message)
    spent = time.perf_counter() - t0
    assert isinstance(recipients, Recipients)
    out.add("find recipients", where, spent, spent)
    raws = list(dict.fromkeys(recipients.values))
    parsed: dict[str, Any] = {}
    longest = total = 0.0
    for start in range(0, len(raws), PARSE_SLICE):
        t0 = time.perf_counter()
        for raw in raws[start:start + PARSE_SLICE]:
            parsed[raw] = parse_destination(raw, region, False)
        spent = time.perf_counter() - t0
        total, longest = total + spent, max(longest, spent)
    out.add("parse destinations", f"event loop, slices of {PARSE_SLICE}", total, longest,
            slices=-(-len(raws) // PARSE_SLICE))
    marks.clear()
    w0 = time.perf_counter()
    screened = await screener.screen("bench", parsed, scopes, "sms")
    screen_s = time.perf_counter() - w0
    before = [m[1] - m[0] for m in marks]
    redis_s = [m[2] - m[1] for m in marks]
    after = [m[3] - m[2] for m in marks]
    out.add("lookups: encode", f"event loop, slices of {LOOKUP_SLICE}", sum(before),
            max(before), slices=len(marks))
    out.add("lookups: redis-server", "waiting (loop free)", sum(redis_s), max(redis_s))
    out.add("lookups: read replies", "event loop", sum(after), max(after))
    # The rest of screen(): between two slices, merging a slice's matches and starting
    # the next call; after the last one, the decisions, in slices.
    between = [b[0] - a[3] for a, b in itertools.pairwise(marks)]
    decide_s = w0 + screen_s - marks[-1][3]
    out.add("between lookup slices", "event loop", sum(between), max(between, default=0.0))
    pieces = -(-len(parsed) // DECIDE_SLICE)
    out.add("decide", f"event loop, after the last lookup, slices of {DECIDE_SLICE}; "
            "longest piece: their mean", decide_s, decide_s / pieces, slices=pieces)
    blocked = frozenset(screened.blocked)
    t0 = time.perf_counter()
    rewritten = recipients.without(blocked)
    spent = time.perf_counter() - t0
    out.add("rewrite without the blocked", where, spent, spent, removed=len(blocked),
            ok=rewritten is not None)

    # Pass 2: the loop's longest stalls per stage, the stages run as Gatekeeper runs them.
    del parsed, screened, recipients, rewritten
    cold()
    gc.collect()
    stage = ["idle"]
    stalls: dict[str, list[float]] = {}
    stop = asyncio.Event()
    # The ticker's nap between ticks: none on the loop (pass 2); 1 ms while the helper
    # works (pass 3), since a ticker spinning on CPU 0 would starve the niced helper
    # there, as an event loop with idle moments does not.
    nap = [0.0]

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(nap[0])
            now = time.perf_counter()
            stalls.setdefault(stage[0], []).append(max(0.0, now - last - nap[0]))
            last = now

    async def enter(name: str) -> None:
        # Yield first, so the ticker books the stall that just ended to the stage that
        # caused it.
        await asyncio.sleep(0)
        stage[0] = name

    async def batch_like_gatekeeper() -> float:
        t0 = time.perf_counter()
        await enter("find recipients")
        found = await off_loop(len(batch.body), lambda: locator.find(message))
        assert isinstance(found, Recipients)
        await enter("parse destinations")
        parsed2 = await parse_all(list(dict.fromkeys(found.values)), region, False)
        await enter("lookups and decide")
        result = await screener.screen("bench", parsed2, scopes, "sms")
        await enter("rewrite without the blocked")
        await off_loop(len(batch.body), lambda: found.without(frozenset(result.blocked)))
        await enter("idle")
        return time.perf_counter() - t0

    pauses: list[tuple[str, int, float]] = []   # (stage, generation, seconds)
    began = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses.append((stage[0], int(info["generation"]), time.perf_counter() - began[0]))

    # Pass 3: the batch as `gatekeeper run` screens it, in the helper process (started
    # and made ready first, as at start-up; its caches are cold).
    quiet = structlog.wrap_logger(structlog.PrintLogger(sys.stderr),
                                  wrapper_class=structlog.make_filtering_bound_logger(
                                      logging.WARNING))
    helper = ScreenHelper(config, quiet)
    await helper.start()
    mount = Mount.build(upstream, config.proxy.unknown_writes)
    found_route = match_route(mount.routes, "POST", "/v1/messages")
    assert found_route is not None
    route = next(i for i, r in enumerate(mount.routes) if r is found_route[0])
    warm = Message(b'{"messages": [{"to": "+12025550100"}]}', "", message.headers)
    await helper.examine("bench", config.redis.url, Job("bulk", warm, scopes), route)

    async def batch_in_helper() -> float:
        # The ticker alone first: its gaps with a 1 ms nap, for reference.
        await enter("(ticker alone, 1 ms naps)")
        await asyncio.sleep(0.5)
        t0 = time.perf_counter()
        await enter("screened in the helper process")
        done = await helper.examine("bench", config.redis.url,
                                    Job("bulk", message, scopes), route)
        await enter("idle")
        if done.refusal is not None or len(done.blocked) != len(blocked) or \
                done.rewritten is None:
            raise BenchError(f"the helper process screened the batch wrongly: refusal "
                             f"{done.refusal}, {len(done.blocked)} blocked, rewritten "
                             f"{done.rewritten is not None}")
        return time.perf_counter() - t0

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    gc.callbacks.append(on_gc)
    try:
        wall = await batch_like_gatekeeper()
        nap[0] = 0.001
        helper_wall = await batch_in_helper()
    finally:
        gc.callbacks.remove(on_gc)
        await helper.close()
    stop.set()
    await tick
    await store.close()
    gc.unfreeze()
    holds = {name: {"max_ms": round(max(gaps) * 1000, 2),
                    "p99_ms": round(sorted(gaps)[int(len(gaps) * 0.99)] * 1000, 3),
                    "over_2ms": sum(g > 0.002 for g in gaps),
                    "over_2ms_total_ms": round(sum(g for g in gaps if g > 0.002) * 1000, 1),
                    "gc_full_collections": sum(1 for n, g, _ in pauses if n == name and g == 2),
                    "gc_longest_ms": round(max((d for n, _, d in pauses if n == name),
                                               default=0.0) * 1000, 2)}
             for name, gaps in stalls.items() if name != "idle"}
    return {"recipients": batch.recipients, "body_bytes": len(batch.body),
            "blocked": len(blocked), "stages": out.stages, "loop_stalls": holds,
            "batch_wall_ms": round(wall * 1000, 1),
            "helper_wall_ms": round(helper_wall * 1000, 1),
            "switch_interval_ms": sys.getswitchinterval() * 1000}


# --------------------------------------------------------------------------- report


def ratio(b: float, a: float) -> float | None:
    return round(b / a, 2) if a > 0 else None


def repetitions(phases: Sequence[Phase]) -> list[dict[str, Any]]:
    """Per repetition: A's and B's p50/p99/max of the small sends, and B/A ratios."""
    out = []
    for rep in sorted({p.repetition for p in phases}):
        a = next((p for p in phases if p.repetition == rep and p.phase == "A"), None)
        b = next((p for p in phases if p.repetition == rep and p.phase == "B"), None)
        if a is None or b is None:
            continue
        la, lb = a.small["latency_ms"], b.small["latency_ms"]
        out.append({"repetition": rep, **{f"{k}_ratio": ratio(lb[k], la[k])
                                          for k in ("p50", "p99", "max")}})
    return out


def print_report(phases: Sequence[Phase], ratios: Sequence[dict[str, Any]],
                 summary: dict[str, Any], params: BatchParams, pinned: bool,
                 out: TextIO) -> None:
    """The terminal table, the ratios and the anatomy."""
    headers = ("rep", "phase", "sends/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors",
               "batches", "batch p50 s", "batch max s", "recip./s", "batch in %",
               "gk cpu%", "redis cpu%", "evalsha us", "p99 B/A")
    by_rep = {r["repetition"]: r for r in ratios}
    lines = []
    for p in phases:
        lat, b = p.small["latency_ms"], p.batches
        blat = b["latency_s"] if b else {}
        lines.append((
            str(p.repetition), p.phase, f"{p.small['requests_per_s']:,.0f}",
            f"{lat['p50']:.2f}", f"{lat['p90']:.2f}", f"{lat['p99']:.2f}",
            f"{lat['max']:.2f}", str(p.small["unexpected_errors"]),
            str(b["completed_in_window"]) if b else "-",
            f"{blat['p50']:.3f}" if blat else "-", f"{blat['max']:.3f}" if blat else "-",
            f"{b['recipients_per_s']:,}" if b else "-",
            f"{b['in_flight_percent']:.0f}" if b else "-",
            f"{p.cpu_percent['gatekeeper']:.0f}", f"{p.cpu_percent['redis']:.0f}",
            f"{p.evalsha['usec_per_call']:.0f}",
            f"{by_rep[p.repetition]['p99_ratio']:.2f}"
            if p.phase == "B" and by_rep.get(p.repetition, {}).get("p99_ratio") else ""))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for line in lines:
        print("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)), file=out)
    med = summary["median_p99_ratio"]
    verdict = "n/a" if med is None else (
        f"within {TARGET_RATIO:g}x" if med <= TARGET_RATIO else f"ABOVE {TARGET_RATIO:g}x")
    print(f"\nsmall sends p99(B)/p99(A), median of {len(ratios)} repetition(s): "
          f"{_fmt(med)} ({verdict}); per repetition: "
          f"{', '.join(_fmt(r['p99_ratio']) for r in ratios)}", file=out)
    print(f"p50(B)/p50(A) median {_fmt(summary['median_p50_ratio'])}, "
          f"max(B)/max(A) median {_fmt(summary['median_max_ratio'])}", file=out)
    print(f"\nA: small sends only; B: the same while {params.concurrency} batch(es) of "
          f"{params.recipients:,} recipients are kept in flight (generic JSON, "
          f"{summary['batch_body_bytes']:,} bytes; {params.batch_blocked:.0%} with "
          f"{BLOCKED_PER_BATCH} blocked numbers cut out). Small sends: wrk, Twilio form, "
          f"paced closed loop at {params.rate} req/s offered over {params.connections} "
          f"connections, {params.blocked_fraction:.0%} blocked (403 expected). "
          f"{params.duration} s per phase. Lists: {params.numbers:,} numbers + "
          f"{params.prefixes:,} prefixes over {len(SCOPES)} scopes. "
          + ("Gatekeeper on CPU 0; wrk, gateways, redis-server, batch client on CPU 1."
             if pinned else "NOT pinned (fewer than 2 CPUs)."), file=out)
    print("'batches': completed inside the window; 'batch in %': share of the window "
          "with a batch in flight; 'evalsha us': mean time of one lookup call in "
          "redis-server (batch slices included).", file=out)
    anat = summary.get("anatomy")
    if anat:
        print(f"\nOne batch ({anat['recipients']:,} recipients, {anat['body_bytes']:,} "
              f"bytes, {anat['blocked']} blocked), in this process with Gatekeeper's code "
              "on CPU 0, caches cold. Stage times:", file=out)
        for name, s in anat["stages"].items():
            extra = "".join(f", {k} {v}" for k, v in s.items()
                            if k not in ("where", "ms", "longest_piece_ms"))
            print(f"  {name:<30} {s['ms']:>8.1f} ms  longest piece "
                  f"{s['longest_piece_ms']:>6.1f} ms  [{s['where']}{extra}]", file=out)
        print(f"Loop stalls while the batch is screened on the loop as without a helper "
              f"process ({anat['batch_wall_ms']:.0f} ms; worker threads share the GIL, "
              f"switch interval {anat['switch_interval_ms']:g} ms), then in the helper "
              f"process as `gatekeeper run` does ({anat['helper_wall_ms']:.0f} ms, the "
              "helper at idle priority on the same CPU):", file=out)
        for name, h in anat["loop_stalls"].items():
            print(f"  {name:<30} longest {h['max_ms']:>6.1f} ms"
                  f"  {h['over_2ms']:>4} stalls over 2 ms ({h['over_2ms_total_ms']:.0f} ms);"
                  f" garbage collector: {h['gc_full_collections']} full collections, "
                  f"longest pause {h['gc_longest_ms']:.1f} ms", file=out)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 2) if present else None


# --------------------------------------------------------------------------- the run


def run(params: BatchParams) -> int:
    """The whole run; the exit status (1 on a failed check, never on a timing)."""
    prepared = prepare_runner("bench.batches")
    if prepared is None:
        return 2
    wrk, pinned = prepared
    info = machine_info(wrk)
    rp = run_params(params)
    lists = generate_lists(rp)
    bodies = batch_bodies(params, lists)
    workdir = Path(tempfile.mkdtemp(prefix="gatekeeper-batches-"))
    scenario = Scenario(params, wrk, workdir, pinned)
    started = time.time()
    phases: list[Phase] = []
    anat: dict[str, Any] | None = None
    try:
        scenario.start(lists)
        load = BatchLoad(scenario.proxy_port, bodies, params.concurrency)
        log(f"warm-up: {params.warmup} s of small sends, then two batches ...")
        if params.warmup:
            scenario.small_sends(params.warmup)
        warm = http.client.HTTPConnection(HOST, scenario.proxy_port, timeout=60)
        try:
            for body in bodies[-2:]:
                result = load.send(warm, body)
                if not result.expected:
                    raise BenchError(f"warm-up batch: unexpected outcome {result}")
        finally:
            warm.close()
        for rep in range(1, params.repeat + 1):
            for name in ("A", "B"):
                log(f"repetition {rep} of {params.repeat}, phase {name} ...")
                phase = scenario.phase(rep, name, load if name == "B" else None)
                phases.append(phase)
                lat = phase.small["latency_ms"]
                b = phase.batches
                log(f"  small sends p50 {lat['p50']:.2f} p99 {lat['p99']:.2f} max "
                    f"{lat['max']:.2f} ms" + (f"; {b['completed_in_window']} batches, "
                                              f"in flight {b['in_flight_percent']:.0f}%"
                                              if b else ""))
                time.sleep(0.5)
        if params.anatomy:
            if scenario.gatekeeper is not None:   # CPU 0 to itself
                scenario.bench.stop(scenario.gatekeeper)
            log("anatomy of one batch ...")
            blocked_body = next((b for b in bodies if b.blocked), bodies[0])
            if pinned:
                os.sched_setaffinity(0, {PROCESS_CPU})   # where Gatekeeper ran
            try:
                anat = anatomy(scenario.config_path, blocked_body)
            finally:
                if pinned:
                    os.sched_setaffinity(0, {LOAD_CPU})
    except BenchError as exc:
        print(f"bench.batches: {exc}", file=sys.stderr)
        print(f"bench.batches: logs kept in {workdir}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench.batches: interrupted", file=sys.stderr)
        return 130
    finally:
        scenario.close()
    ratios = repetitions(phases)
    summary: dict[str, Any] = {
        "median_p99_ratio": _median([r["p99_ratio"] for r in ratios]),
        "median_p50_ratio": _median([r["p50_ratio"] for r in ratios]),
        "median_max_ratio": _median([r["max_ratio"] for r in ratios]),
        "target_ratio": TARGET_RATIO,
        "batch_body_bytes": max(len(b.body) for b in bodies),
        "anatomy": anat,
    }
    print()
    print_report(phases, ratios, summary, params, pinned, sys.stdout)
    failures = [f"repetition {p.repetition} phase {p.phase}: {c}"
                for p in phases for c in p.checks]
    notes = [f"repetition {p.repetition} phase {p.phase}: {p.small['requests_per_s']:.0f} "
             f"of {params.rate} small sends/s offered: a slow reply delays its connection's "
             "next send (paced closed loop), so this phase's latencies are understated"
             for p in phases if p.small["requests_per_s"] < 0.8 * params.rate]
    for note in notes:
        print(f"note: {note}")
    for failure in failures:
        print(f"FAILED: {failure}")
    report = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "loadavg_at_end": loadavg(),
        "machine": info,
        "parameters": {**asdict(params), "send_path": SEND_PATH, "batch_path": BATCH_PATH,
                       "scopes": list(SCOPES), "blocked_per_batch": BLOCKED_PER_BATCH},
        "pinning": ({"gatekeeper": f"taskset -c {PROCESS_CPU}",
                     "load_side": f"CPU {LOAD_CPU}: wrk, fake gateways, redis-server, "
                                  "batch client, runner"} if pinned else "none"),
        "lists": lists.manifest,
        **scenario.extra,
        "summary": summary,
        "repetitions": ratios,
        "phases": [asdict(p) for p in phases],
        "notes": notes,
        "failures": failures,
    }
    output = Path(params.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults: {output}")
    if params.keep_logs:
        print(f"logs: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failures else 0


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    params = parse_args(argv)
    with _sigterm_as_interrupt():
        return run(params)


if __name__ == "__main__":
    sys.exit(main())

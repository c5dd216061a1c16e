"""The scenario of bench/batches.py: Gatekeeper with the lists and two fake gateways
(`Scenario`), one timed window of small sends with or without batches (`Phase`), the
figures of both, Gatekeeper's config, and redis-server's and the CPUs' counters."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.batch_load import BatchLoad, BatchResult, covered
from bench.batch_params import BATCH_MOUNT, BatchParams, run_params
from bench.run import (
    CLK_TCK,
    HOST,
    LOAD_CPU,
    PROCESS_CPU,
    SCOPES,
    SEND_PATH,
    Bench,
    BenchError,
    ListFiles,
    Probe,
    Process,
    Snapshot,
    WrkResult,
    gatekeeper_command,
    run_wrk,
    tree_pids,
    wait_http,
)
from gatekeeper.embedded import free_port


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


"""Measurements: what a window reads (`Probe`, `Snapshot`), wrk's run (`run_wrk`,
`WrkResult`), the rows (`RowSpec`) and one row's figures in one mode (`measure`, `tally`,
`Measurement`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.lists import ListFiles
from bench.params import (
    CLK_TCK,
    LOAD_CPU,
    PROCESS_CPU,
    SEND_PATH,
    WRK_SCRIPT,
    BenchError,
    Params,
)
from bench.procs import (
    Process,
    allowed_cpus,
    collector_seconds,
    cpu_set,
    cpu_times,
    process_ticks,
    syscalls,
    tree_pids,
    tree_ticks,
    waits,
)


@dataclass
class Probe:
    """Whose CPU time a window reads."""

    target: Process
    redis_pid: int | None = None
    load_upstream: Process | None = None
    pinned_to: str | None = None   # the target's expected Cpus_allowed_list
    metrics_url: str | None = None  # a Gatekeeper's /metrics (its collector's time)


@dataclass
class Snapshot:
    """CPU counters at one instant."""

    target: int
    redis: int | None
    load_upstream: int | None
    cpus: dict[str, tuple[int, int, int]]
    pids: list[int]
    affinity: dict[int, str | None]
    gc_seconds: float | None = None
    syscalls: int = 0
    waits: int = 0

    @classmethod
    def take(cls, probe: Probe) -> Snapshot:
        """Read them all now."""
        pids = tree_pids(probe.target.pid, frozenset({"redis-server"}))
        return cls(
            gc_seconds=collector_seconds(probe.metrics_url) if probe.metrics_url else None,
            syscalls=syscalls(pids), waits=waits(pids),
            target=tree_ticks(probe.target.pid, frozenset({"redis-server"})),
            redis=process_ticks(probe.redis_pid) if probe.redis_pid else None,
            load_upstream=(tree_ticks(probe.load_upstream.pid)
                           if probe.load_upstream else None),
            cpus=cpu_times(), pids=pids, affinity={pid: allowed_cpus(pid) for pid in pids})


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    """What post.lua's done() printed."""

    requests: int
    duration_us: int
    errors: dict[str, int]
    sent: dict[str, int]
    status: dict[str, int]
    latency_us: dict[str, float]


def run_wrk(wrk: str, url: str, params: Params, seconds: int, pace_ms: float,
            pool: Path, pinned: bool) -> WrkResult:
    """One wrk run on the load CPU; its BENCH_RESULT line."""
    argv = [wrk, "-t", str(params.threads), "-c", str(params.connections),
            "-d", f"{seconds}s", "--timeout", "5s", "-s", str(WRK_SCRIPT), url,
            "--", str(pool), str(params.blocked_fraction), f"{pace_ms:.3f}", SEND_PATH]
    taskset = shutil.which("taskset")
    if taskset and pinned:
        argv = [taskset, "-c", str(LOAD_CPU), *argv]
    try:
        done = subprocess.run(  # noqa: S603 - our own argv, no shell
            argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish within {seconds + 60} s") from exc
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            raw = json.loads(line.removeprefix("BENCH_RESULT "))
            return WrkResult(raw["requests"], raw["duration_us"], raw["errors"],
                             raw["sent"], raw["status"], raw["latency_us"])
    raise BenchError(f"wrk printed no result (exit {done.returncode}):\n"
                     f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


# --------------------------------------------------------------------------- rows


@dataclass
class RowSpec:
    """One row: the process under test and what it is compared on."""

    name: str
    label: str
    description: str
    lists: bool = False       # 403 from Gatekeeper for blocked numbers is expected
    cpus: str = str(PROCESS_CPU)
    workers: int | None = None
    policy: dict[str, Any] | None = None  # the policy configured (BENCH_POLICY...)


@dataclass
class Measurement:
    """One row in one mode."""

    row: str
    label: str
    mode: str
    offered_rate: int | None
    requests: int
    duration_s: float
    requests_per_s: float
    latency_ms: dict[str, float]
    unexpected_errors: int
    errors: dict[str, int]
    expected_rejections: int
    status: dict[str, int]
    sent: dict[str, int]
    cpu_us_per_req: float
    redis_cpu_us_per_req: float | None
    load_upstream_cpu_us_per_req: float | None
    cpu_busy_percent: dict[str, float]
    cpu_steal_percent: dict[str, float]
    measured_pids: list[int]
    affinity: dict[int, str | None]
    checks: list[str] = field(default_factory=list)
    round: int = 1
    rounds: int = 1
    cpu_ratio_to_passthrough: float | None = None
    p99_ratio_to_passthrough: float | None = None
    gc_us_per_req: float | None = None  # of cpu_us_per_req, in Python's collector
    syscalls_per_req: float | None = None  # its read()s and write()s (see syscalls)
    waits_per_req: float | None = None  # its sleeps for want of work (see waits)


def measure(row: RowSpec, mode: str, url: str, probe: Probe, params: Params, wrk: str,
            lists: ListFiles, pinned: bool) -> Measurement:
    """Warm up, then one timed window with CPU counters read before and after it."""
    pace_ms = params.connections * 1000 / params.rate if mode == "rate" else 0.0
    if params.warmup:
        run_wrk(wrk, url, params, params.warmup, pace_ms, lists.pool, pinned)
    before = Snapshot.take(probe)
    result = run_wrk(wrk, url, params, params.duration, pace_ms, lists.pool, pinned)
    after = Snapshot.take(probe)
    return tally(row, mode, params, probe, before, after, result)


def tally(row: RowSpec, mode: str, params: Params, probe: Probe, before: Snapshot,
          after: Snapshot, result: WrkResult) -> Measurement:
    """One timed window's figures, from the counters read around it and wrk's result."""
    requests = max(result.requests, 1)

    def per_request(a: int | None, b: int | None) -> float | None:
        if a is None or b is None:
            return None
        return (b - a) * 1_000_000 / CLK_TCK / requests

    status, errors = result.status, result.errors
    socket_errors = sum(errors[k] for k in ("connect", "read", "write", "timeout"))
    expected = status["403_rejected"] if row.lists else 0
    non_2xx = result.requests - status["2xx"]
    unexpected = socket_errors + non_2xx - expected
    checks = []
    if probe.pinned_to is not None:
        for snapshot in (before, after):
            for pid, cpus in snapshot.affinity.items():
                if cpus is not None and cpu_set(cpus) != cpu_set(probe.pinned_to):
                    checks.append(f"pid {pid} was allowed on CPUs {cpus}, not "
                                  f"{probe.pinned_to}: something changed its affinity")
    if row.lists:
        # Every blocked destination must be refused, nothing else (a few requests may be
        # in flight when wrk stops, hence the tolerance of one per connection).
        missing = result.sent["blocked"] - status["403_rejected"]
        if not 0 <= missing <= params.connections:
            checks.append(f"{result.sent['blocked']} requests to blocked numbers but "
                          f"{status['403_rejected']} rejections")
    duration_s = result.duration_us / 1e6
    busy, steal = {}, {}
    for cpu, (b1, s1, t1) in after.cpus.items():
        b0, s0, t0 = before.cpus.get(cpu, (b1, s1, t1))
        busy[cpu] = round(100 * (b1 - b0) / max(t1 - t0, 1), 1)
        steal[cpu] = round(100 * (s1 - s0) / max(t1 - t0, 1), 1)
    target_us = per_request(before.target, after.target)
    lat = result.latency_us
    return Measurement(
        row=row.name, label=row.label, mode=mode,
        offered_rate=params.rate if mode == "rate" else None,
        requests=result.requests, duration_s=round(duration_s, 3),
        requests_per_s=round(result.requests / max(duration_s, 1e-9), 1),
        latency_ms={k: round(lat[k] / 1000, 3) for k in ("p50", "p90", "p99", "max", "mean")},
        unexpected_errors=unexpected, errors={**errors, "non_2xx": non_2xx},
        expected_rejections=expected, status=status, sent=result.sent,
        cpu_us_per_req=round(target_us or 0.0, 1),
        gc_us_per_req=None if before.gc_seconds is None or after.gc_seconds is None
        else round((after.gc_seconds - before.gc_seconds) * 1e6 / requests, 1),
        syscalls_per_req=round((after.syscalls - before.syscalls) / requests, 2),
        waits_per_req=round((after.waits - before.waits) / requests, 3),
        redis_cpu_us_per_req=_round(per_request(before.redis, after.redis)),
        load_upstream_cpu_us_per_req=_round(per_request(before.load_upstream,
                                                        after.load_upstream)),
        cpu_busy_percent=busy, cpu_steal_percent=steal,
        measured_pids=sorted(set(before.pids) | set(after.pids)),
        affinity={**before.affinity, **after.affinity},
        checks=checks)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)

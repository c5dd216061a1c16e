"""The summary of a run: rounds combined (`combine`, `summarize`), ratios to the
passthrough row (`add_ratios`) and the terminal table (`print_table`)."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import TextIO

from bench.measure import Measurement
from bench.params import ROW_GK_WORKERS, ROW_PASSTHROUGH, Params


def _median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 3)


def combine(windows: list[Measurement]) -> Measurement:
    """One row and mode over several rounds: the median of each figure (separately),
    counts summed, every check kept."""
    if len(windows) == 1:
        return windows[0]
    first = windows[0]

    def med(get: Callable[[Measurement], float | None]) -> float | None:
        values = [v for v in map(get, windows) if v is not None]
        return _median(values) if values else None

    def total(get: Callable[[Measurement], dict[str, int]]) -> dict[str, int]:
        out: dict[str, int] = {}
        for w in windows:
            for k, v in get(w).items():
                out[k] = out.get(k, 0) + v
        return out

    return Measurement(
        row=first.row, label=first.label, mode=first.mode, offered_rate=first.offered_rate,
        requests=sum(w.requests for w in windows),
        duration_s=round(sum(w.duration_s for w in windows), 3),
        requests_per_s=round(statistics.median(w.requests_per_s for w in windows), 1),
        latency_ms={k: _median([w.latency_ms[k] for w in windows]) for k in first.latency_ms},
        unexpected_errors=sum(w.unexpected_errors for w in windows),
        errors=total(lambda w: w.errors),
        expected_rejections=sum(w.expected_rejections for w in windows),
        status=total(lambda w: w.status), sent=total(lambda w: w.sent),
        cpu_us_per_req=round(statistics.median(w.cpu_us_per_req for w in windows), 1),
        redis_cpu_us_per_req=med(lambda w: w.redis_cpu_us_per_req),
        gc_us_per_req=med(lambda w: w.gc_us_per_req),
        syscalls_per_req=med(lambda w: w.syscalls_per_req),
        waits_per_req=med(lambda w: w.waits_per_req),
        load_upstream_cpu_us_per_req=med(lambda w: w.load_upstream_cpu_us_per_req),
        cpu_busy_percent={cpu: _median([w.cpu_busy_percent.get(cpu, 0.0) for w in windows])
                          for cpu in first.cpu_busy_percent},
        cpu_steal_percent={cpu: _median([w.cpu_steal_percent.get(cpu, 0.0) for w in windows])
                           for cpu in first.cpu_steal_percent},
        measured_pids=sorted({p for w in windows for p in w.measured_pids}),
        affinity={k: v for w in windows for k, v in w.affinity.items()},
        checks=[f"round {w.round}: {c}" for w in windows for c in w.checks],
        round=0, rounds=len(windows))


def summarize(windows: list[Measurement]) -> list[Measurement]:
    """Per row and mode, in first-seen order: the combined figures of all its rounds."""
    groups: dict[tuple[str, str], list[Measurement]] = {}
    for w in windows:
        groups.setdefault((w.row, w.mode), []).append(w)
    return [combine(group) for group in groups.values()]


def add_ratios(results: list[Measurement]) -> None:
    """CPU/request and p99 of each row relative to the passthrough row of the same mode
    (and round)."""
    base = {(m.mode, m.round): m for m in results if m.row == ROW_PASSTHROUGH}
    for m in results:
        ref = base.get((m.mode, m.round))
        if ref is None:
            continue
        if ref.cpu_us_per_req > 0:
            m.cpu_ratio_to_passthrough = round(m.cpu_us_per_req / ref.cpu_us_per_req, 2)
        if ref.latency_ms["p99"] > 0:
            m.p99_ratio_to_passthrough = round(m.latency_ms["p99"] / ref.latency_ms["p99"], 2)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(results: list[Measurement], params: Params, pinned: bool, out: TextIO
                ) -> None:
    """The terminal table."""
    headers = ("row", "mode", "req/s", "p50 ms", "p99 ms", "errors", "403 exp",
               "CPU us/req", "gc us/req", "sys/req", "waits/req", "redis us/req", "CPU x pt",
               "p99 x pt", "cpu0%", "cpu1%")
    lines = []
    for m in results:
        mode = "conc" if m.mode == "concurrency" else f"rate {m.offered_rate}"
        lines.append((
            m.label, mode, f"{m.requests_per_s:,.0f}", f"{m.latency_ms['p50']:.2f}",
            f"{m.latency_ms['p99']:.2f}", str(m.unexpected_errors),
            str(m.expected_rejections), f"{m.cpu_us_per_req:,.0f}",
            _fmt(m.gc_us_per_req, ",.1f"), _fmt(m.syscalls_per_req, ".2f"),
            _fmt(m.waits_per_req, ".3f"),
            _fmt(m.redis_cpu_us_per_req, ",.0f"),
            _fmt(m.cpu_ratio_to_passthrough, ".2f"),
            _fmt(m.p99_ratio_to_passthrough, ".2f"),
            _fmt(m.cpu_busy_percent.get("cpu0"), ".0f"),
            _fmt(m.cpu_busy_percent.get("cpu1"), ".0f")))
    widths = [max(len(h), *(len(row[i]) for row in lines)) if lines else len(h)
              for i, h in enumerate(headers)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    print(fmt(headers), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in lines:
        print(fmt(row), file=out)
    rounds = f"median of {params.repeat} rounds; " if params.repeat > 1 else ""
    workers = (f" gatekeeper N={params.gk_workers} has both CPUs, shared with the load "
               "side." if params.gk_workers and ROW_GK_WORKERS in params.rows else "")
    print(f"\n{params.connections} connections, {params.threads} wrk thread(s); "
          f"{params.duration} s timed after {params.warmup} s warm-up per row and mode; "
          f"{rounds}"
          f"rate mode: paced closed loop at {params.rate} req/s offered. 'x pt' = ratio "
          "to the passthrough row (same mode). CPU us/req: the process under test "
          "(and its workers), utime+stime over the timed window; "
          + (f"process under test on CPU 0, wrk/upstream/redis on CPU 1.{workers}"
             if pinned else "NOT pinned (fewer than 2 CPUs)."), file=out)

"""bench.cluster's report: the B/A ratios per repetition, their medians, and the
terminal table."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from bench.cluster_params import ClusterParams
from bench.cluster_scenario import Phase, Scenario
from bench.run import SCOPES

TARGET_RATIO = 1.2            # the question's figure, reported against, never asserted


def ratio(b: float | None, a: float | None) -> float | None:
    """b / a, rounded; None without both."""
    return round(b / a, 2) if a and b is not None else None


RATIO_FIGURES: dict[str, Callable[[Phase], float | None]] = {
    "requests_per_s": lambda p: p.measurement.requests_per_s,
    "p50": lambda p: p.measurement.latency_ms["p50"],
    "p99": lambda p: p.measurement.latency_ms["p99"],
    "gatekeeper_cpu": lambda p: p.measurement.cpu_us_per_req,
    "redis_cpu": lambda p: p.measurement.redis_cpu_us_per_req,
    "redis_net_cpu": lambda p: p.redis_net_cpu_us_per_req,
    "total_cpu": lambda p: p.total_cpu_us_per_req,
}


def repetitions(phases: Sequence[Phase]) -> list[dict[str, Any]]:
    """Per repetition: B/A of each figure."""
    out = []
    for rep in sorted({p.repetition for p in phases}):
        a = next((p for p in phases if p.repetition == rep and p.phase == "A"), None)
        b = next((p for p in phases if p.repetition == rep and p.phase == "B"), None)
        if a is not None and b is not None:
            out.append({"repetition": rep, **{name: ratio(get(b), get(a))
                                              for name, get in RATIO_FIGURES.items()}})
    return out


def median_ratios(ratios: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """The median of each B/A ratio over the repetitions."""
    out: dict[str, float | None] = {}
    for name in RATIO_FIGURES:
        values = [r[name] for r in ratios if r[name] is not None]
        out[name] = round(statistics.median(values), 2) if values else None
    return out


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def print_report(phases: Sequence[Phase], ratios: Sequence[dict[str, Any]],
                 medians: dict[str, float | None], scenario: Scenario,
                 params: ClusterParams, out: TextIO) -> None:
    """The terminal table and what it was measured on."""
    headers = ("rep", "phase", "req/s", "p50 ms", "p99 ms", "errors", "403 exp",
               "gk us/req", "redis us/req", "redis net", "total us/req", "cpu0%", "cpu1%")
    by_rep = {r["repetition"]: r for r in ratios}
    lines: list[tuple[str, ...]] = []

    def ratio_line(label: str, r: dict[str, Any]) -> tuple[str, ...]:
        return (label, "B/A", _fmt(r["requests_per_s"]), _fmt(r["p50"]), _fmt(r["p99"]),
                "", "", _fmt(r["gatekeeper_cpu"]), _fmt(r["redis_cpu"]),
                _fmt(r["redis_net_cpu"]), _fmt(r["total_cpu"]), "", "")

    for p in phases:
        m = p.measurement
        lines.append((
            str(p.repetition), f"{p.phase} {p.store}", f"{m.requests_per_s:,.0f}",
            f"{m.latency_ms['p50']:.2f}", f"{m.latency_ms['p99']:.2f}",
            str(m.unexpected_errors), str(m.expected_rejections),
            f"{m.cpu_us_per_req:,.0f}", _fmt(m.redis_cpu_us_per_req, ",.0f"),
            _fmt(p.redis_net_cpu_us_per_req, ",.0f"), f"{p.total_cpu_us_per_req:,.0f}",
            _fmt(m.cpu_busy_percent.get("cpu0"), ".0f"),
            _fmt(m.cpu_busy_percent.get("cpu1"), ".0f")))
        if p.phase == "B" and p.repetition in by_rep:
            lines.append(ratio_line(str(p.repetition), by_rep[p.repetition]))
    if len(ratios) > 1:
        lines.append(ratio_line("median", medians))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    print(fmt(headers), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for line in lines:
        print(fmt(line), file=out)
    med = medians["total_cpu"]
    verdict = "n/a" if med is None else (
        f"within {TARGET_RATIO:g}x" if med <= TARGET_RATIO else f"ABOVE {TARGET_RATIO:g}x")
    print(f"\nCPU per request (gatekeeper + redis) B/A, median of {len(ratios)} "
          f"repetition(s): {_fmt(med)} ({verdict}); gatekeeper alone "
          f"{_fmt(medians['gatekeeper_cpu'])}, redis {_fmt(medians['redis_cpu'])} (net of "
          f"idle {_fmt(medians['redis_net_cpu'])}), p99 {_fmt(medians['p99'])}", file=out)
    single, cluster = scenario.stores["A"], scenario.stores["B"]
    masters = cluster.details.get("scope_masters", {})
    idle = " ".join(f"{s.phase} {s.details['idle_cpu_ms_per_s']:.1f}"
                    for s in (single, cluster) if "idle_cpu_ms_per_s" in s.details)
    print(f"\nA: one redis-server; B: a Redis Cluster of 3 masters + 3 replicas "
          f"(scopes on masters: {', '.join(f'{s} :{p}' for s, p in masters.items())}; "
          f"{len(set(masters.values()))} master(s) per lookup). Gatekeeper fresh per phase, "
          f"{params.warmup} s warm-up, {params.duration} s timed; wrk paced closed loop at "
          f"{params.rate} req/s offered over {params.connections} connections, "
          f"{params.blocked_fraction:.0%} blocked (403 expected). Lists: "
          f"{params.numbers:,} numbers + {params.prefixes:,} prefixes over {len(SCOPES)} "
          f"scopes. redis us/req: every redis-server of the store (cluster: all 6 nodes); "
          f"'redis net': less the idle CPU (ms/s: {idle or 'not measured'}). "
          + ("Gatekeeper on CPU 0; wrk, gateway, every redis-server on CPU 1."
             if scenario.pinned else "NOT pinned (fewer than 2 CPUs)."), file=out)

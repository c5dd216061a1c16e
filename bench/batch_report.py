"""The report of bench/batches.py: the B/A ratios per repetition, their median, and the
terminal table with the anatomy."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any, TextIO

from bench.batch_params import BLOCKED_PER_BATCH, TARGET_RATIO, BatchParams
from bench.batch_scenario import Phase
from bench.run import SCOPES


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

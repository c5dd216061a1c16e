"""The Gatekeeper rows side by side: lists, lists+rules and lists+policy served at once,
each by its own process on CPU 0 and loaded by its own wrk on CPU 1, in the same timed
windows; each row's CPU per request against the lists row's of the same window.

    .venv/bin/python -m bench.together [--windows 5] [--duration 10] [--warmup 24]
        [--connections 16] [--numbers N] [--against TREE] [--alternate] [--output FILE]

Why: `bench.run --repeat` runs the rows one after the other, and on this shared machine
a row's CPU per request drifts by up to 40% between rounds (lists 172, 190, 253 us in
the three rounds of one run); run at once, whatever slows the machine slows the three
alike, and their ratio is what is left. What differs from the solo rows: the three
processes share CPU 0 (each gets what its closed loop takes of it), so their absolute
figures are not the solo rows'; read the ratios.

`--against TREE` adds a fourth process: the policy row run from another source tree
(`PYTHONPATH=TREE/src`, e.g. a `git worktree` of the code before a change), so that a
change's effect is read within the same windows rather than across runs.

`--alternate` loads one row at a time instead (every row still started, warmed up at
once, and measured in every window, in an order that turns by one each window): each
row then has CPU 0 to itself while measured, as a worker with a CPU of its own has,
rather than sharing it with the other rows and finding its caches filled by them after
each switch, which costs a row with more code and data per request more. Slower drift
of the machine still reaches every row within a window.

Loopback only, bounded in time; measures and prints, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench.params import BENCH_POLICY, SCOPES
from bench.run import (
    LOAD_CPU,
    REPO,
    ROW_GK_LISTS,
    ROW_GK_POLICY,
    ROW_GK_RULES,
    Bench,
    BenchError,
    Measurement,
    Params,
    Probe,
    Snapshot,
    WrkResult,
    generate_lists,
    log,
    parse_args,
    prepare_runner,
    run_wrk,
    tally,
)
from gatekeeper.config import parse_config
from gatekeeper.rules import Intent, judge

ROWS = (ROW_GK_LISTS, ROW_GK_RULES, ROW_GK_POLICY)
MARKETING: Intent = "marketing"  # the bench upstream's intent: Gatekeeper's default
DEFAULT_OUTPUT = REPO / "bench" / "results" / "together.json"


@dataclass(frozen=True)
class Options:
    """What to run: the bench's parameters, the windows, the other tree, the output."""

    params: Params
    windows: int
    against: Path | None
    output: Path
    reverse: bool = False
    alternate: bool = False


def options(argv: Sequence[str] | None) -> Options:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m bench.together", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--windows", type=int, default=5, help="timed windows (5)")
    p.add_argument("--duration", type=int, default=10, help="seconds per window (10)")
    # Each row gets about a third of what it would alone: three times the solo rows'
    # --warmup 8, so that each has sent to about as much of the number pool first.
    p.add_argument("--warmup", type=int, default=24, help="untimed seconds first (24)")
    p.add_argument("--connections", type=int, default=16,
                   help="wrk connections per row (16)")
    p.add_argument("--numbers", type=int, default=1_000_000,
                   help="exact numbers in the block lists (1000000)")
    p.add_argument("--against", type=Path, metavar="TREE",
                   help="also run the policy row from this source tree (its src/)")
    p.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON results file")
    p.add_argument("--reverse", action="store_true",
                   help="start the rows in the reverse order (the last row first), to "
                   "see what a row's place does to its figure")
    p.add_argument("--alternate", action="store_true",
                   help="load one row at a time in each window (each has CPU 0 to itself "
                   "while measured), the order turning each window")
    a = p.parse_args(argv)
    if a.against is not None and not (a.against / "src" / "gatekeeper").is_dir():
        p.error(f"--against: no src/gatekeeper in {a.against}")
    if a.windows < 1:
        p.error("--windows must be at least 1")
    params = parse_args([
        "--only", ",".join(ROWS), "--modes", "concurrency", "--duration", str(a.duration),
        "--warmup", str(a.warmup), "--connections", str(a.connections),
        "--numbers", str(a.numbers)])
    return Options(params, a.windows, a.against, Path(a.output), a.reverse, a.alternate)


def all_at_once(bench: Bench, started: list[tuple[str, Probe]], seconds: int,
                pool: Path) -> list[tuple[Snapshot, Snapshot, WrkResult]]:
    """One wrk per row, all at once, with every row's counters read just before and
    just after; (before, after, wrk result) per row."""
    before = [Snapshot.take(probe) for _, probe in started]
    with ThreadPoolExecutor(len(started)) as pool_:
        results = list(pool_.map(
            lambda url: run_wrk(bench.wrk, url, bench.params, seconds, 0.0, pool,
                                bench.pinned),
            [url for url, _ in started]))
    after = [Snapshot.take(probe) for _, probe in started]
    return list(zip(before, after, results, strict=True))


def turned(rows: int, window: int) -> list[int]:
    """The order the rows are loaded in, one at a time, in window `window` (from 1):
    turned by one each window, so that each row comes first, second, ... in turn."""
    return [(window - 1 + i) % rows for i in range(rows)]


def one_at_a_time(bench: Bench, started: list[tuple[str, Probe]], seconds: int,
                  pool: Path, order: list[int]
                  ) -> list[tuple[Snapshot, Snapshot, WrkResult]]:
    """One wrk per row, one row after the other in `order`, each row's counters read
    just before and after its own; (before, after, wrk result) per row, in rows' order."""
    read: dict[int, tuple[Snapshot, Snapshot, WrkResult]] = {}
    for i in order:
        url, probe = started[i]
        before = Snapshot.take(probe)
        result = run_wrk(bench.wrk, url, bench.params, seconds, 0.0, pool, bench.pinned)
        read[i] = (before, Snapshot.take(probe), result)
    return [read[i] for i in range(len(started))]


def run(opts: Options, bench: Bench) -> tuple[list[str], list[list[Measurement]]]:
    """Start the store, the lists and the rows; measure the windows. The rows' names,
    and per window their figures (the lists row first)."""
    params = opts.params
    lists = generate_lists(params)
    load_upstream, upstream_port = bench.start_upstream("upstream-load",
                                                        bench.cpus(str(LOAD_CPU)))
    bench.start_redis()
    bench.load_lists(lists, upstream_port)
    bench.wait_store_idle()
    rows = bench.row_specs()
    if opts.against is not None:
        rows.append(replace(rows[-1], name=f"{ROW_GK_POLICY}-against",
                            label=f"{rows[-1].label} ({opts.against.name})"))
    if opts.reverse:
        rows.reverse()
    base_row = [row.name for row in rows].index(ROW_GK_LISTS)
    started: list[tuple[str, Probe]] = []
    own_env = bench.env
    for row in rows:
        if row.name.endswith("-against"):
            bench.env = {**own_env, "PYTHONPATH": str((opts.against or REPO) / "src")}
        try:
            _, url, probe = bench.start_row(row, 0, upstream_port, load_upstream)
        finally:
            bench.env = own_env
        started.append((url, probe))
    log(f"warm-up, {params.warmup} s, the {len(rows)} rows at once ...")
    if params.warmup:
        all_at_once(bench, started, params.warmup, lists.pool)
    measured: list[list[Measurement]] = []
    for window in range(1, opts.windows + 1):
        read = one_at_a_time(bench, started, params.duration, lists.pool,
                             turned(len(started), window)) if opts.alternate else \
            all_at_once(bench, started, params.duration, lists.pool)
        figures = []
        for row, (_, probe), (before, after, result) in zip(rows, started, read,
                                                            strict=True):
            m = tally(row, "concurrency", params, probe, before, after, result)
            m.round = window
            figures.append(m)
        measured.append(figures)
        base = figures[base_row].cpu_us_per_req
        log(f"window {window}: " + ", ".join(
            f"{m.label} {m.cpu_us_per_req:.0f} us ({m.cpu_us_per_req / base:.2f}x, "
            f"{m.requests_per_s:,.0f} req/s)" for m in figures))
    return [row.name for row in rows], measured


@dataclass(frozen=True)
class RowSummary:
    """One row over the windows: medians, and its ratio to the lists row per window."""

    cpu_us_per_req: float
    ratio_to_lists: float
    ratios: list[float]
    requests_per_s: float
    waits_per_req: float
    gc_us_per_req: float
    unexpected_errors: int
    checks: list[str]


def report(names: list[str], measured: list[list[Measurement]]
           ) -> dict[str, RowSummary]:
    """Per row, in the rows' usual order (the lists row first, whatever order they were
    started in): the median CPU per request and the median of its per-window ratios to
    the lists row."""
    out: dict[str, RowSummary] = {}
    base = names.index(ROW_GK_LISTS)
    for name in sorted(names, key=lambda n: ROWS.index(n) if n in ROWS else len(ROWS)):
        i = names.index(name)
        ratios = [w[i].cpu_us_per_req / w[base].cpu_us_per_req for w in measured]
        out[name] = RowSummary(
            statistics.median(w[i].cpu_us_per_req for w in measured),
            round(statistics.median(ratios), 3), [round(r, 3) for r in ratios],
            statistics.median(w[i].requests_per_s for w in measured),
            statistics.median(w[i].waits_per_req or 0.0 for w in measured),
            statistics.median(w[i].gc_us_per_req or 0.0 for w in measured),
            sum(w[i].unexpected_errors for w in measured),
            [c for w in measured for c in w[i].checks])
    return out


def monitored_share(pool: Path, at: float) -> float:
    """The share of the pool's destinations that the bench policy's rules only monitor
    at `at`: each send to one is a monitor hit, counted (and logged as `policy_monitored`
    at level info, below the bench's `warning`) in the rules and policy rows, not the
    lists row. The quiet hours, in monitor mode, hit a US number through its night, so
    those rows' work depends a little on the hour the bench runs at."""
    policy = parse_config({"policy": BENCH_POLICY}).policy
    numbers = [line.split()[-1] for line in pool.read_text().splitlines() if line.strip()]
    hit = sum(1 for number in numbers
              if judge(number, SCOPES, policy, "sms", MARKETING, at).monitored)
    return round(hit / max(1, len(numbers)), 3)


def main(argv: Sequence[str] | None = None) -> int:
    opts = options(argv)
    prepared = prepare_runner("together")
    if prepared is None:
        return 2
    wrk, pinned = prepared
    workdir = Path(tempfile.mkdtemp(prefix="gatekeeper-together-"))
    bench = Bench(opts.params, wrk, workdir, pinned)
    started = time.time()
    try:
        names, measured = run(opts, bench)
        pool = generate_lists(opts.params).pool  # kept from the run: read, not made
        shares = [monitored_share(pool, started), monitored_share(pool, time.time())]
    except BenchError as exc:
        print(f"together: {exc}\ntogether: logs kept in {workdir}", file=sys.stderr)
        return 1
    finally:
        bench.close()
    summary = report(names, measured)
    print()
    for name, row in summary.items():
        print(f"{name:<26} {row.cpu_us_per_req:>7.1f} us/req  {row.ratio_to_lists:.3f}x "
              f"lists (windows: {', '.join(f'{r:.2f}' for r in row.ratios)})  "
              f"{row.requests_per_s:,.0f} req/s  waits/req {row.waits_per_req:.3f}  "
              f"errors {row.unexpected_errors}")
    print(f"destinations the rules only monitor (monitor hits): "
          f"{shares[0]:.0%} at the start, {shares[1]:.0%} at the end")
    output = opts.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1), "pinned": pinned,
        "parameters": asdict(opts.params), "windows": opts.windows, "reverse": opts.reverse,
        "alternate": opts.alternate,
        "against": None if opts.against is None else str(opts.against),
        "monitored_share": {"start": shares[0], "end": shares[1]},
        "summary": {name: asdict(row) for name, row in summary.items()},
        "measured": [[asdict(m) for m in w] for w in measured]}, indent=2) + "\n")
    print(f"\nresults: {output}")
    shutil.rmtree(workdir, ignore_errors=True)
    failed = any(row.unexpected_errors or row.checks for row in summary.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

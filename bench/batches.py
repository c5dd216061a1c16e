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
import contextlib
import http.client
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.batch_anatomy import anatomy
from bench.batch_load import BatchLoad, batch_bodies
from bench.batch_params import (
    BATCH_PATH,
    BLOCKED_PER_BATCH,
    DEFAULT_OUTPUT,
    TARGET_RATIO,
    BatchParams,
    run_params,
)
from bench.batch_report import _median, print_report, repetitions
from bench.batch_scenario import Phase, Scenario
from bench.run import (
    HOST,
    LOAD_CPU,
    PROCESS_CPU,
    REPO,
    SCOPES,
    SEND_PATH,
    BenchError,
    generate_lists,
    loadavg,
    log,
    machine_info,
    prepare_runner,
)

# --------------------------------------------------------------------------- parameters


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

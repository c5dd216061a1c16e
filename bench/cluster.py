"""Gatekeeper on one redis-server (phase A) and on a local Redis Cluster (phase B): the
same send benchmark side by side in one run, the phases alternating A B A B ...

    .venv/bin/python -m bench.cluster                 # 3 x (A, B) of 10 s: about 2 minutes
    .venv/bin/python -m bench.cluster --quick         # CI smoke: one A/B pair of 2 s
    .venv/bin/python -m bench.cluster --repeat 5 --rate 300

The question: "the same send benchmark on the local cluster: CPU per request <= 1.2x of
one node". Both phases are bench/run.py's `gatekeeper lists` row in its fixed-rate mode:
`gatekeeper run` (uvloop) pinned to CPU 0, wrk with bench/wrk/post.lua sending Twilio
form sends paced at `--rate` (default 500/s over 32 connections: a paced closed loop),
5% to blocked numbers (403 expected), the bench's fake gateway on loopback; wrk, the
gateway, every redis-server and this runner on CPU 1. Only the store differs:

- **A**: one redis-server (`redis.url: redis://...`), the one bench/run.py starts
  (Gatekeeper's embedded server configuration: AOF every second, big intsets).
- **B**: a Redis Cluster of 3 masters and 3 replicas (tests/topologies.py's ClusterRig,
  same redis-server binary), `redis.url: redis+cluster://<3 masters>`. Its nodes are
  given A's settings (`appendonly yes`, `appendfsync everysec`,
  `set-max-intset-entries`) and Redis's default `cluster-node-timeout` of 15 s (the
  rig's 1 s suits failover tests; here a busy moment on a shared machine must cause no
  failover).

Both stores run all through the run and hold the same lists (bench/run.py's number
plan: `--numbers` exact numbers and `--prefixes` prefixes over `global`, `tenant:acme`,
`tenant:beta`), imported with `gatekeeper lists import --mode replace` before the first
phase; the bench then waits until no node is rewriting its AOF and every replica has
caught up. Each phase starts a fresh Gatekeeper on its store, warms it up (`--warmup`),
measures one `--duration` window, stops it. On one server a lookup is one script call
over the three scopes; on the cluster it is one call per scope, sent to the master of
each scope's hash slot (the report says which masters those are).

Reading the figures (per phase; then B/A per repetition, and the median of those):

- **req/s**, **p50/p99 ms**: from wrk (403s included); **errors**: unexpected outcomes
  (socket errors, any non-2xx but the expected 403s), as bench/run.py.
- **gk us/req**: Gatekeeper's CPU time (its process tree: the screening helper too) over
  the timed window, utime+stime from /proc in 1/SC_CLK_TCK ticks, per request.
- **redis us/req**: the same summed over ALL redis-server processes of the phase's store
  (the one server, or all six nodes: replicas included, reaped fork children too).
- **redis net**: redis us/req less the store's idle CPU (measured once, `--idle` seconds
  with no Gatekeeper running, both stores in the same window) over the window: what the
  requests cost, without the cluster's own gossip and timers. At a fixed rate the idle
  share counts per request; it is in the plain figure, since a deployment pays it too.
- **total**: gk + redis us/req: "CPU per request". The figure to read is its B/A median;
  the question's 1.2 is reported against, never asserted.
- **cpu0% / cpu1%**: how busy each CPU was (everyone's processes).

The machine is shared and noisy: compare ratios within one run, and do not believe a
difference of a few percent. At 500 req/s a 10 s window holds ~5,000 requests and a
tick is 10 ms: redis us/req moves in steps of 2 us. Benchmarks measure; nothing here
asserts a timing (the run fails only on wrong answers, a dead process or a failover).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from tests.topologies import RigError

from bench.cluster_params import ClusterParams, run_params
from bench.cluster_report import (
    TARGET_RATIO,
    _fmt,
    median_ratios,
    print_report,
    repetitions,
)
from bench.cluster_scenario import Phase, Scenario, notable
from bench.run import (
    CLK_TCK,
    LOAD_CPU,
    PROCESS_CPU,
    REPO,
    SCOPES,
    SEND_PATH,
    WRK_SCRIPT,
    BenchError,
    _sigterm_as_interrupt,
    generate_lists,
    loadavg,
    log,
    machine_info,
    prepare_runner,
)

DEFAULT_OUTPUT = REPO / "bench" / "results" / "cluster.json"
PHASES = (("A", "single"), ("B", "cluster"))


# --------------------------------------------------------------------------- parameters


def parse_args(argv: Sequence[str] | None) -> ClusterParams:
    """Command-line options; --quick changes the defaults to CI-smoke sizes."""
    p = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, help="timed seconds per phase "
                   "(default 10; --quick: 2)")
    p.add_argument("--warmup", type=int, help="untimed seconds of sends before each "
                   "phase's window, Gatekeeper being new (default 3; --quick: 1; 0: none)")
    p.add_argument("--repeat", type=int, help="A/B pairs (default 3; --quick: 1)")
    p.add_argument("--rate", type=int, help="sends per second offered, paced as in "
                   "bench/run.py's rate mode (default 500; --quick: 200)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    p.add_argument("--blocked-fraction", type=float, default=0.05,
                   help="share of sends to blocked numbers, 403 expected (0.05)")
    p.add_argument("--numbers", type=int, help="exact numbers in the block lists over the "
                   "3 scopes (default 100000; --quick: 10000)")
    p.add_argument("--prefixes", type=int, help="prefixes in the block lists over the "
                   "3 scopes (default 1000; --quick: 100)")
    p.add_argument("--idle", type=int, help="seconds of measuring both stores' CPU with "
                   "no load, once, before the phases (default 5; --quick: 1; 0: skip)")
    p.add_argument("--quick", action="store_true",
                   help="CI smoke: one A/B pair of 2 s, 10k numbers")
    p.add_argument("--seed", type=int, default=20240601, help="list generation seed")
    p.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON results file "
                   f"(default {DEFAULT_OUTPUT.relative_to(REPO)})")
    p.add_argument("--keep-logs", action="store_true",
                   help="keep the temporary directory with process and node logs")
    a = p.parse_args(argv)
    quick = bool(a.quick)

    def pick(value: int | None, normal: int, small: int) -> int:
        return value if value is not None else (small if quick else normal)

    params = ClusterParams(
        duration=pick(a.duration, 10, 2), warmup=pick(a.warmup, 3, 1),
        repeat=pick(a.repeat, 3, 1), rate=pick(a.rate, 500, 200),
        connections=a.connections, blocked_fraction=a.blocked_fraction,
        numbers=pick(a.numbers, 100_000, 10_000), prefixes=pick(a.prefixes, 1_000, 100),
        idle=pick(a.idle, 5, 1), quick=quick, seed=a.seed, output=a.output,
        keep_logs=a.keep_logs)
    if params.duration < 1 or params.repeat < 1 or params.warmup < 0 or params.idle < 0:
        p.error("--duration and --repeat must be at least 1, --warmup and --idle at least 0")
    if params.rate < 1 or params.connections < 1:
        p.error("--rate and --connections must be at least 1")
    if not 0 <= params.blocked_fraction < 1:
        p.error("--blocked-fraction must be in [0, 1)")
    if params.numbers < len(SCOPES) or params.prefixes < len(SCOPES):
        p.error("--numbers and --prefixes must be at least 3 (one per scope)")
    return params


# --------------------------------------------------------------------------- the run


def run(params: ClusterParams) -> int:
    """The whole run; the exit status (1 on a failed check, never on a timing)."""
    prepared = prepare_runner("bench.cluster")
    if prepared is None:
        return 2
    wrk, pinned = prepared
    info_ = machine_info(wrk)
    lists = generate_lists(run_params(params))
    workdir = Path(tempfile.mkdtemp(prefix="gatekeeper-cluster-"))
    scenario = Scenario(params, wrk, workdir, pinned)
    started = time.time()
    phases: list[Phase] = []
    try:
        scenario.start(lists)
        for rep in range(1, params.repeat + 1):
            for key, name in PHASES:
                log(f"repetition {rep} of {params.repeat}, phase {key} ({name}) ...")
                phase = scenario.phase(rep, key, lists)
                phases.append(phase)
                m = phase.measurement
                log(f"  {m.requests_per_s:,.0f} req/s  p50 {m.latency_ms['p50']:.2f}  p99 "
                    f"{m.latency_ms['p99']:.2f} ms  gk {m.cpu_us_per_req:,.0f}  redis "
                    f"{_fmt(m.redis_cpu_us_per_req, ',.0f')} us/req  errors "
                    f"{m.unexpected_errors}")
    except (BenchError, RigError) as exc:
        print(f"bench.cluster: {exc}", file=sys.stderr)
        print(f"bench.cluster: logs kept in {workdir}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bench.cluster: interrupted (logs kept in {workdir})", file=sys.stderr)
        return 130
    finally:
        scenario.close()
    ratios = repetitions(phases)
    medians = median_ratios(ratios)
    print()
    print_report(phases, ratios, medians, scenario, params, sys.stdout)
    failures = [f"repetition {p.repetition} phase {p.phase}: {c}"
                for p in phases for c in p.checks]
    notes = list(scenario.notes)
    notes += [f"repetition {p.repetition} phase {p.phase}: "
              f"{p.measurement.requests_per_s:.0f} of {params.rate} req/s offered: "
              "saturated, lower --rate" for p in phases
              if p.measurement.requests_per_s < 0.8 * params.rate]
    notes += [f"repetition {p.repetition} phase {p.phase}: Gatekeeper logged "
              f"{notable(p.gatekeeper_log)}" for p in phases if notable(p.gatekeeper_log)]
    for note in notes:
        print(f"note: {note}")
    for failure in failures:
        print(f"FAILED: {failure}")
    report = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "loadavg_at_end": loadavg(),
        "machine": info_,
        "parameters": {**asdict(params), "send_path": SEND_PATH, "scopes": list(SCOPES),
                       "wrk_script": str(WRK_SCRIPT.relative_to(REPO)),
                       "rate_pacing_ms": params.connections * 1000 / params.rate},
        "pinning": ({"gatekeeper": f"taskset -c {PROCESS_CPU}",
                     "load_side": f"CPU {LOAD_CPU}: wrk, fake gateway, every redis-server "
                                  "(all threads), runner"} if pinned else "none"),
        "cpu_measurement": "utime+stime from /proc/<pid>/stat in ticks of "
                           f"1/{CLK_TCK} s over the timed window, per request: Gatekeeper's "
                           "process tree (+ reaped children); redis: the sum over every "
                           "redis-server of the store (+ reaped children); redis net: less "
                           "the store's idle CPU per second times the window",
        "lists": lists.manifest,
        "stores": {s.phase: {"name": s.name, **s.details} for s in scenario.stores.values()},
        "target_ratio": TARGET_RATIO,
        "summary": {"median_ratios": medians},
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    params = parse_args(argv)
    with _sigterm_as_interrupt():
        return run(params)


if __name__ == "__main__":
    sys.exit(main())

"""The benchmark's parameters: `Params`, `parse_args`, the row names, the paths and
constants every part of the run shares, and `BenchError`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DEFAULT_OUTPUT = BENCH_DIR / "results" / "latest.json"
WRK_SCRIPT = BENCH_DIR / "wrk" / "post.lua"
HOST = "127.0.0.1"
ACCOUNT_SID = "AC" + "0" * 32
SEND_PATH = f"/twilio/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
SCOPES = ("global", "tenant:acme", "tenant:beta")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROCESS_CPU = 0   # the process under test
LOAD_CPU = 1      # wrk, the fake upstream, redis-server, this runner

ROW_DIRECT = "direct"
ROW_PASSTHROUGH = "passthrough"
ROW_GK_EMPTY = "gatekeeper-empty"
ROW_GK_LISTS = "gatekeeper-lists"
ROW_GK_WORKERS = "gatekeeper-workers"
ROW_GK_RULES = "gatekeeper-rules"
ROW_GK_POLICY = "gatekeeper-policy"
ROWS = (ROW_DIRECT, ROW_PASSTHROUGH, ROW_GK_EMPTY, ROW_GK_LISTS, ROW_GK_WORKERS,
        ROW_GK_RULES, ROW_GK_POLICY)
# The policy of the gatekeeper-policy row: every rule kind, none of them blocking the
# bench's US numbers. Quiet hours (the shipped windows) are evaluated in monitor mode:
# the bench draws area codes 201 to 989, unassigned ones too, whose time zone is
# unknown, so every zone's window applies and some zone is always quiet at some hour
# of the day; blocking would make the row's refusals depend on when it runs.
BENCH_POLICY = {"global": {
    "countries": {"block": ["KP", "IR", "CU", "SY"], "monitor": ["NG"]},
    "number_types": {"premium_rate": "block", "shared_cost": "block", "uan": "monitor"},
    "quiet_hours": {"action": "block", "intents": ["marketing"]},
    "mode": {"quiet_hours": "monitor"},
    "safe": ["+15005550006"],
    # Two velocity limits, counted on every send (high enough never to refuse one).
    "velocity": [{"per": "number", "limit": "1000000/hour"},
                 {"per": "block", "digits": 8, "limit": "1000000/hour"}],
}}
# The gatekeeper-rules row's: the same without the velocity limits (what they cost).
BENCH_RULES = {"global": {k: v for k, v in BENCH_POLICY["global"].items()
                          if k != "velocity"}}
MODES = ("concurrency", "rate")


class BenchError(Exception):
    """The bench could not run a step (message for the terminal)."""


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Params:
    """What one run measures."""

    duration: int
    warmup: int
    connections: int
    threads: int
    rate: int
    blocked_fraction: float
    numbers: int
    prefixes: int
    unlisted_pool: int
    blocked_pool: int
    gk_workers: int | None
    rows: tuple[str, ...]
    modes: tuple[str, ...]
    quick: bool
    seed: int
    output: str
    keep_logs: bool
    repeat: int


def parse_args(argv: Sequence[str] | None, description: str | None) -> Params:
    """Command-line options; --quick changes the defaults to CI-smoke sizes. `description`
    heads --help (bench.run passes its docstring)."""
    p = argparse.ArgumentParser(prog="python -m bench.run", description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, help="timed seconds per row and mode "
                   "(default 10; --quick: 1)")
    p.add_argument("--warmup", type=int, help="untimed seconds before each timed window "
                   "(default 3; --quick: 1; 0: none)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    p.add_argument("--threads", type=int, default=1,
                   help="wrk threads, all pinned to the load CPU (default 1)")
    p.add_argument("--rate", type=int, help="offered req/s of the fixed-rate mode "
                   "(default 500; --quick: 200; 0 skips the mode)")
    p.add_argument("--blocked-fraction", type=float, default=0.05,
                   help="share of requests to blocked numbers (0.05)")
    p.add_argument("--numbers", type=int, help="exact numbers in the block lists, over "
                   "the 3 scopes (default 1000000; --quick: 10000)")
    p.add_argument("--prefixes", type=int, help="prefixes in the block lists, over the "
                   "3 scopes (default 10000; --quick: 100)")
    p.add_argument("--gk-workers", type=int, metavar="N",
                   help="also run the row 'gatekeeper N=<N>': `gatekeeper run --workers N` "
                   "with the lists, given both CPUs")
    p.add_argument("--only", help="comma-separated rows to run, of: " + ", ".join(ROWS))
    p.add_argument("--modes", default=",".join(MODES),
                   help="comma-separated modes: concurrency, rate (default both)")
    p.add_argument("--quick", action="store_true",
                   help="CI smoke: 1 s windows, 10k numbers, small pools")
    p.add_argument("--seed", type=int, default=20240601, help="list generation seed")
    p.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON results file "
                   f"(default {DEFAULT_OUTPUT.relative_to(REPO)})")
    p.add_argument("--repeat", type=int, default=1, metavar="R",
                   help="run all rows R times in turn (ABCD ABCD ...) and report the "
                   "median of each figure; every window is in the JSON (default 1)")
    p.add_argument("--keep-logs", action="store_true",
                   help="keep the temporary directory with process logs")
    a = p.parse_args(argv)
    quick = bool(a.quick)

    def pick(value: int | None, normal: int, small: int) -> int:
        return value if value is not None else (small if quick else normal)

    rows = tuple(r.strip() for r in a.only.split(",") if r.strip()) if a.only else \
        (ROW_DIRECT, ROW_PASSTHROUGH, ROW_GK_EMPTY, ROW_GK_LISTS)
    if a.gk_workers is not None and not a.only:
        rows = (*rows, ROW_GK_WORKERS)
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        p.error(f"unknown row {unknown[0]!r}; rows: {', '.join(ROWS)}")
    if ROW_GK_WORKERS in rows and a.gk_workers is None:
        p.error(f"row {ROW_GK_WORKERS} needs --gk-workers N")
    modes = tuple(m.strip() for m in a.modes.split(",") if m.strip())
    if not modes or any(m not in MODES for m in modes):
        p.error(f"--modes: expected a comma-separated subset of {', '.join(MODES)}")
    rate = pick(a.rate, 500, 200)
    if rate <= 0:
        modes = tuple(m for m in modes if m != "rate")
    duration, warmup = pick(a.duration, 10, 1), pick(a.warmup, 3, 1)
    if duration < 1 or warmup < 0:
        p.error("--duration must be at least 1 s and --warmup at least 0")
    if a.connections < 1 or not 1 <= a.threads <= a.connections:
        p.error("need connections >= threads >= 1")
    if not 0 <= a.blocked_fraction < 1:
        p.error("--blocked-fraction must be in [0, 1)")
    if a.repeat < 1:
        p.error("--repeat must be at least 1")
    if a.gk_workers is not None and a.gk_workers < 1:
        p.error("--gk-workers must be at least 1")
    numbers, prefixes = pick(a.numbers, 1_000_000, 10_000), pick(a.prefixes, 10_000, 100)
    if numbers < len(SCOPES) or prefixes < len(SCOPES):
        p.error("--numbers and --prefixes must be at least 3 (one per scope)")
    return Params(
        duration=duration, warmup=warmup, connections=a.connections, threads=a.threads,
        rate=rate, blocked_fraction=a.blocked_fraction, numbers=numbers, prefixes=prefixes,
        unlisted_pool=2_000 if quick else 10_000, blocked_pool=200 if quick else 1_000,
        gk_workers=a.gk_workers, rows=rows, modes=modes, quick=quick, seed=a.seed,
        output=a.output, keep_logs=a.keep_logs, repeat=a.repeat)

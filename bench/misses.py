"""Cache misses per request, simulated by valgrind's cachegrind: bench.instructions'
in-process request (client, Gatekeeper, fake gateway, one embedded redis-server, the
judging clock held) for each row, a short and a long run, the difference per request;
with two rows, the C functions whose misses differ most.

    .venv/bin/python -m bench.misses [--rows lists,policy] [--requests 1000]
        [--pool 2000] [--top 20] [--against TREE] [--output FILE]

Why: the full policy runs about 2-3% more instructions a request than lists alone
(bench.instructions, bench.opcodes) but costs 6-12% more CPU time (bench.together),
and this machine's VM exposes no hardware counters (`perf stat`: not supported).
cachegrind simulates the caches instead: its last level is set to this CPU's L2 (2 MiB,
16-way; the 32 MiB L3 is shared with every other process), so `LL misses` are the
requests' trips past their core's own cache. A simulation of one process alone, not
the machine: it says which row touches more memory a request, and where, not what a
miss costs. Each child runs under valgrind (about 50x slower): keep --pool small
enough to warm up (the child sends to the whole pool once before it is measured).
`--against TREE` runs the last row from TREE/src too (an A/B). Run nothing else
meanwhile: the simulation is exact, but what the request does depends on timing (how
many requests one loop turn serves, one pipe write carries), and a busy machine moved
a row's counts by 2%. Measures and prints, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from bench.instructions import REPO, ROWS, checked_options, child_env, per_request

# This CPU's L2 (lscpu: 2 MiB per core), as cachegrind's last level.
L2 = "--LL=2097152,16,64"
SUMMARY = ("I refs", "D refs", "D1 misses", "LL misses")
_SUMMARY_LINE = re.compile(r"==\d+== ([A-Za-z1 ]+?):\s+([\d,]+)")
MISS_EVENTS = ("DLmr", "DLmw")  # last-level data misses, read and write


def summary(returncode: int, stderr: str) -> dict[str, int]:
    """cachegrind's totals (references and misses), from its report; a failed child
    stops the bench with its output."""
    totals: dict[str, int] = {}
    for line in stderr.splitlines():
        found = _SUMMARY_LINE.match(line)
        if found:
            # Its names are padded ("I   refs"): compared with single spaces.
            name = " ".join(found.group(1).split())
            totals.setdefault(name, int(found.group(2).replace(",", "")))
    if returncode != 0 or not all(name in totals for name in SUMMARY):
        raise SystemExit(f"the child failed (exit {returncode}):\n{stderr[-3000:]}")
    return {name: totals[name] for name in SUMMARY}


def misses_by_function(lines: Iterable[str]) -> Counter[str]:
    """Last-level data misses by C function, from a cachegrind out file."""
    events: list[str] = []
    function = ""
    out: Counter[str] = Counter()
    for line in lines:
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("fn="):
            function = line[3:].strip()
        elif line[:1].isdigit() and events:
            values = dict(zip(events, line.split()[1:], strict=False))
            out[function] += sum(int(values.get(e, 0)) for e in MISS_EVENTS)
    return out


def simulated(tree: Path, row: str, url: str, requests: int, pool: int, out: Path
              ) -> tuple[dict[str, int], Counter[str]]:
    """One child run under cachegrind (Gatekeeper from `tree`): its totals and its
    misses by function."""
    argv = ["valgrind", "--tool=cachegrind", "--cache-sim=yes", L2,
            f"--cachegrind-out-file={out}", sys.executable, "-m", "bench.instructions",
            "--child", row, "--url", url, "--requests", str(requests), "--pool", str(pool)]
    done = subprocess.run(argv, capture_output=True, text=True, env=child_env(tree),  # noqa: S603
                          cwd=REPO, timeout=3600, check=False)
    totals = summary(done.returncode, done.stderr)
    with out.open() as f:
        return totals, misses_by_function(f)


def measure(runs: Sequence[tuple[str, Path, str]], url: str, requests: int, pool: int,
            tmp: Path) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Per run (label, tree, row): totals per request, and misses per request by
    function."""
    totals: dict[str, dict[str, float]] = {}
    functions: dict[str, dict[str, float]] = {}
    for label, tree, row in runs:
        short, short_fns = simulated(tree, row, url, requests // 4, pool, tmp / "short.cg")
        long, long_fns = simulated(tree, row, url, requests // 4 + requests, pool,
                                   tmp / "long.cg")
        totals[label] = {k: per_request(short[k], long[k], requests) for k in SUMMARY}
        functions[label] = {f: per_request(short_fns[f], long_fns[f], requests)
                            for f in set(short_fns) | set(long_fns)}
        print(f"{label:16} " + "  ".join(f"{k} {v:,.0f}" for k, v in totals[label].items()),
              flush=True)
    return totals, functions


def compare(totals: dict[str, dict[str, float]], functions: dict[str, dict[str, float]],
            first: str, last: str, top: int) -> list[tuple[str, float, float]]:
    """Print `last` against `first`: totals, then the functions that differ most."""
    for name in SUMMARY:
        print(f"{name:11} {first} {totals[first][name]:12,.1f}  {last} "
              f"{totals[last][name]:12,.1f}  {totals[last][name] / totals[first][name]:.3f}x")
    shown = differences(functions[first], functions[last], top)
    print(f"L2 data misses a request by function, {first} -> {last}:")
    for function, before, after in shown:
        print(f"  {after - before:+8.1f}  {before:8.1f} -> {after:8.1f}  {function}")
    return shown


def differences(a: dict[str, float], b: dict[str, float], top: int
                ) -> list[tuple[str, float, float]]:
    """The `top` functions whose misses a request differ most from `a` to `b`."""
    names = sorted(set(a) | set(b), key=lambda f: -abs(b.get(f, 0.0) - a.get(f, 0.0)))
    return [(f, a.get(f, 0.0), b.get(f, 0.0)) for f in names[:top]]


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default="lists,policy",
                   help=f"comma-separated, of {', '.join(ROWS)} (default lists,policy)")
    p.add_argument("--requests", type=int, default=1000,
                   help="measured requests (the long run's extra; default 1000)")
    p.add_argument("--pool", type=int, default=2000, help="distinct destinations (2000)")
    p.add_argument("--top", type=int, default=20, help="functions shown (20)")
    p.add_argument("--against", type=Path, metavar="TREE",
                   help="also run the last row from TREE/src (e.g. a git worktree)")
    p.add_argument("--output", type=Path, help="JSON results file")
    a = p.parse_args(argv)
    rows = checked_options(p, a, "bench.misses")
    from gatekeeper.embedded import EmbeddedRedis  # noqa: PLC0415

    runs = [(row, REPO, row) for row in rows]
    if a.against is not None:
        runs.append((f"{rows[-1]} ({a.against.name})", a.against, rows[-1]))
    with tempfile.TemporaryDirectory(prefix="gk-misses-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        url = server.start().url
        try:
            totals, functions = measure(runs, url, a.requests, a.pool, Path(tmp))
        finally:
            server.stop()
    pairs = [(runs[0][0], runs[-1][0])] if len(runs) > 1 else []
    if a.against is not None and len(rows) > 1:
        pairs = [(runs[0][0], runs[-2][0]), (runs[-1][0], runs[-2][0])]
    compared = {f"{x} -> {y}": [{"function": f, x: b, y: c}
                                for f, b, c in compare(totals, functions, x, y, a.top)]
                for x, y in pairs}
    if a.output:
        a.output.write_text(json.dumps({
            "requests": a.requests, "pool": a.pool, "last_level": L2,
            "per_request": totals, "by_function": compared}, indent=1) + "\n")


if __name__ == "__main__":
    main()

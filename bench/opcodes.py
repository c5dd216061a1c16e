"""Python bytecodes executed per request, by function: bench.instructions' in-process
request (client, Gatekeeper, fake gateway, one embedded redis-server) run under a
tracer that counts every opcode each code object executes, for two rows or two trees,
side by side.

    .venv/bin/python -m bench.opcodes [--rows lists,policy] [--against TREE]
        [--requests 2000] [--pool 1000] [--top 25] [--output FILE]

Why: bench.instructions counts machine instructions exactly but per process, and its
runs differ by about 0.4% (6,000 instructions a request), as much as a change to the
velocity path is worth; it cannot say where. Opcodes are counted exactly (the same
code gives the same count, but for the histogram buckets the latency picks and a few
background redis-py calls) and per function, so a change shows where it saved, from
one run. An opcode is not a fixed cost (a dict lookup and a string format are one
each); on this path they averaged about 105 machine instructions each (callgrind).
Each row runs twice (a short and a long timed part, the difference per request), in a
child with PYTHONHASHSEED=0 and the judging clock held, as bench.instructions' child.
The tracer slows the request about 20 times: figures are counts, not time. Loopback
only; measures and prints, asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from bench.instructions import REPO, ROWS, child_env

# (file, qualified name) of a code object, its file relative to the tree: a function
# keeps its name when lines move (comprehensions of one function are counted together).
Where = tuple[str, str]


def _short(filename: str) -> str:
    for mark in ("/site-packages/", "/src/"):
        if mark in filename:
            return filename.split(mark, 1)[1]
    if "/lib/python3" in filename:  # the standard library: lib/python3.X/...
        return filename.split("/lib/python3", 1)[1].partition("/")[2]
    return filename


def count_opcodes(row: str, url: str, requests: int, pool: int) -> dict[Where, int]:
    """Run bench.instructions' child in this process under an opcode tracer."""
    import uvloop  # noqa: PLC0415 - as `gatekeeper run` runs

    from bench.instructions import serve_and_send  # noqa: PLC0415
    from gatekeeper.config import LogConfig  # noqa: PLC0415
    from gatekeeper.observability import configure_logging  # noqa: PLC0415

    # What the child imports, imported before the tracer starts (both runs would count
    # it alike, but slowly).
    for module in ("aiohttp", "prometheus_client", "gatekeeper.app", "gatekeeper.examine",
                   "gatekeeper.config", "gatekeeper.serve"):
        importlib.import_module(module)

    counts: collections.Counter[Any] = collections.Counter()

    def local(frame: FrameType, event: str, _arg: object) -> Any:
        if event == "opcode":
            counts[frame.f_code] += 1
        return local

    def called(frame: FrameType, event: str, _arg: object) -> Any:
        if event != "call":
            return None
        frame.f_trace_opcodes = True
        return local

    with open(os.devnull, "w") as devnull:
        configure_logging(LogConfig(level="warning"), devnull)
        sys.settrace(called)
        try:
            uvloop.run(serve_and_send(row, url, requests, pool))
        finally:
            sys.settrace(None)
    out: dict[Where, int] = collections.Counter()
    for code, n in counts.items():
        out[(_short(code.co_filename), code.co_qualname)] += n
    return out


def per_request(short: dict[Where, int], long: dict[Where, int], extra: int
                ) -> dict[Where, float]:
    """Opcodes per request by function: the long run's over the short one's."""
    return {k: (long.get(k, 0) - short.get(k, 0)) / extra for k in {*short, *long}}


def child_counts(tree: Path, row: str, url: str, requests: int, pool: int,
                 out: Path) -> dict[Where, int]:
    """One child run's counts (a fresh process, fixed hash seed)."""
    env = child_env(tree)
    argv = [sys.executable, "-m", "bench.opcodes", "--child", row, "--url", url,
            "--requests", str(requests), "--pool", str(pool), "--output", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO,  # noqa: S603
                          timeout=1800, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the child failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return {(f, name): n for f, name, n in json.loads(out.read_text())}


def table(a: dict[Where, float], b: dict[Where, float], top: int) -> list[str]:
    """The functions whose counts differ most, B against A, and the totals."""
    lines = [f"total opcodes a request: {sum(a.values()):,.0f} -> {sum(b.values()):,.0f} "
             f"({sum(b.values()) - sum(a.values()):+,.0f})"]
    for key in sorted({*a, *b}, key=lambda k: (-abs(b.get(k, 0) - a.get(k, 0)), k))[:top]:
        diff = b.get(key, 0) - a.get(key, 0)
        if abs(diff) < 0.5:
            break
        lines.append(f"{diff:+8.1f} {a.get(key, 0):8.1f} -> {b.get(key, 0):8.1f}  "
                     f"{key[0]} {key[1]}")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.opcodes", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default="lists,policy",
                   help="two rows, A then B (lists,policy); with --against, one row")
    p.add_argument("--against", type=Path, metavar="TREE",
                   help="compare the row(s) run from TREE/src (A) with this tree (B)")
    p.add_argument("--requests", type=int, default=2000,
                   help="requests in the long run beyond the short one's (2000)")
    p.add_argument("--pool", type=int, default=1000, help="distinct destinations (1000)")
    p.add_argument("--top", type=int, default=25, help="functions listed (25)")
    p.add_argument("--output", type=Path, help="JSON results file")
    p.add_argument("--child", choices=sorted(ROWS), help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        counts = count_opcodes(a.child, a.url, a.requests, a.pool)
        a.output.write_text(json.dumps([[*k, n] for k, n in counts.items()]))
        return
    rows = [r.strip() for r in a.rows.split(",") if r.strip()]
    if any(r not in ROWS for r in rows) or len(rows) != (1 if a.against else 2):
        p.error(f"--rows: two of {', '.join(ROWS)} (one with --against)")
    if a.requests < 4 or a.pool < 1:
        p.error("--requests must be at least 4 and --pool at least 1")
    if a.against is not None and not (a.against / "src" / "gatekeeper").is_dir():
        p.error(f"--against: no src/gatekeeper in {a.against}")
    runs = [(a.against, rows[0]), (REPO, rows[0])] if a.against else \
        [(REPO, rows[0]), (REPO, rows[1])]
    from gatekeeper.embedded import EmbeddedRedis  # noqa: PLC0415

    figures: list[dict[Where, float]] = []
    with tempfile.TemporaryDirectory(prefix="gk-opcodes-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        url = server.start().url
        try:
            for tree, row in runs:
                short = child_counts(tree, row, url, a.requests // 4, a.pool,
                                     Path(tmp) / "short.json")
                long = child_counts(tree, row, url, a.requests // 4 + a.requests, a.pool,
                                    Path(tmp) / "long.json")
                figures.append(per_request(short, long, a.requests))
        finally:
            server.stop()
    names = [f"{row} ({tree.name if tree != REPO else 'this tree'})" for tree, row in runs]
    print(f"A: {names[0]}\nB: {names[1]}")
    print("\n".join(table(figures[0], figures[1], a.top)))
    if a.output:
        a.output.write_text(json.dumps({
            "runs": names, "requests": a.requests, "pool": a.pool,
            "per_request": [[[*k, round(v, 2)] for k, v in sorted(f.items()) if v]
                            for f in figures]}, indent=1) + "\n")


if __name__ == "__main__":
    main()

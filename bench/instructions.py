"""Instructions per request, counted by valgrind: the lists, rules and policy rows'
whole HTTP request (aiohttp server, screening, the lean lookup pipe, the upstream
client and an in-process client and fake gateway, alike in every row; the `direct` row
is the client and the gateway alone, taken out to give Gatekeeper's own share) in one
child process per row, under `valgrind --tool=callgrind`; each row run twice, with a short and
a long timed part, so that start-up and warm-up cancel out.

    .venv/bin/python -m bench.instructions [--requests 2000] [--pool 1000]
        [--rows direct,lists,rules,policy] [--against TREE] [--output FILE]

Why: CPU time per request differs by a few per cent from one process to the next on
this shared machine (README, "What the rules cost"), as much as a change to the hot
path is worth. User-space instructions are counted exactly: a change's effect shows
from one run, either way round. They are not CPU time: cache misses, system calls and
the kernel's share are not in them, so a row's time ratio is higher than its
instruction ratio; read both (bench.together for time).

The child runs with PYTHONHASHSEED=0 and OPENBLAS_NUM_THREADS=1 (numpy's idle BLAS
thread spins a varying amount), on uvloop as `gatekeeper run` is, against one embedded
redis-server that the parent starts (loopback only). `--against TREE` runs each row
from TREE/src too, in the same run. Measures and prints, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.params import BENCH_POLICY, BENCH_RULES, SEND_PATH

REPO = Path(__file__).resolve().parent.parent
# "direct": the client straight to the fake gateway, no Gatekeeper (what the other rows'
# counts hold besides Gatekeeper's own).
ROWS: dict[str, dict[str, Any] | None] = {
    "direct": None, "lists": None, "rules": BENCH_RULES, "policy": BENCH_POLICY}
SCOPES = ("tenant:acme", "tenant:beta")
IN_FLIGHT = 16
AUTH = "Basic QUMwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDpiZW5jaA=="
AT = datetime(2026, 12, 4, 6, 0, tzinfo=UTC).timestamp()  # 01:00 in New York
_COLLECTED = re.compile(r"Collected : (\d+)")


def row_config(row: str, url: str, port: int, upstream: int) -> dict[str, Any]:
    """The bench rows' configuration (bench/gatekeeper_cli.py), in process."""
    config: dict[str, Any] = {
        "proxy": {"host": "127.0.0.1", "port": port, "on_invalid": "reject"},
        "admin": {"host": "127.0.0.1", "port": port + 1,
                  "key_env": "GATEKEEPER_BENCH_ADMIN_KEY"},
        "redis": {"url": url, "key_prefix": f"ins-{row}:", "timeout": 2.0},
        "store": {"on_error": "closed"},
        "log": {"level": "warning", "format": "json"},
        "upstreams": [{"name": "twilio", "url": f"http://127.0.0.1:{upstream}",
                       "preset": "twilio", "region": "US", "on_block": "reject",
                       "timeout": 30, "scopes": list(SCOPES)}],
    }
    policy = ROWS[row]
    if policy:
        config["policy"] = policy
    return config


def pool_of(size: int) -> list[str]:
    """Destinations drawn like the bench's (US numbers, no 9xx area codes)."""
    rng = random.Random(1)  # noqa: S311 - test data
    return [f"1{rng.randint(201, 889)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
            for _ in range(size)]


async def serve_and_send(row: str, url: str, requests: int, pool: int) -> None:
    """The child: one row served in process, sent to the pool once (warm-up), then
    `requests` more, 16 at a time."""
    from aiohttp import ClientSession, web  # noqa: PLC0415 - the child's only
    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    from gatekeeper import examine  # noqa: PLC0415
    from gatekeeper.app import create_app  # noqa: PLC0415
    from gatekeeper.config import parse_config  # noqa: PLC0415
    from gatekeeper.serve import GC_YOUNG_THRESHOLD  # noqa: PLC0415

    # One instant for every judgement: until 2026-12-07 verdicts were kept for the
    # minute they were made in, and a run that crossed one more minute than another
    # judged the pool once more (a cost this held clock therefore never counted: see
    # docs/policy-cost.md, ninth session); a verdict is now kept until the number's quiet
    # hours change, and one instant still keeps runs alike. At this instant the quiet
    # hours hold the pool's US numbers (their night), as they do for bench.together's
    # runs between about 02:00 and 16:00 UTC.
    examine.time = SimpleNamespace(time=lambda: AT)  # type: ignore[attr-defined,assignment]

    async def accepted(_request: web.Request) -> web.Response:
        return web.json_response({"sid": "SM" + "0" * 32, "status": "queued"}, status=201)

    gateway = web.Application()
    gateway.router.add_post("/{tail:.*}", accepted)
    gateway_runner = web.AppRunner(gateway, access_log=None)
    await gateway_runner.setup()
    site = web.TCPSite(gateway_runner, "127.0.0.1", 0)
    await site.start()
    upstream = gateway_runner.addresses[0][1]
    os.environ.setdefault("GATEKEEPER_BENCH_ADMIN_KEY", "k" * 40)
    runner = None
    if row == "direct":
        target = f"http://127.0.0.1:{upstream}{SEND_PATH}"
    else:
        config = parse_config(row_config(row, url, 0, upstream))
        runner = web.AppRunner(create_app(config, registry=CollectorRegistry()),
                               access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        target = f"http://127.0.0.1:{runner.addresses[0][1]}{SEND_PATH}"
    gc.freeze()  # as serve.py sets the collector
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    numbers = pool_of(pool)
    rng = random.Random(2)  # noqa: S311 - test data
    headers = {"Authorization": AUTH, "Content-Type": "application/x-www-form-urlencoded"}
    async with ClientSession() as session:
        async def one(digits: str) -> None:
            async with session.post(target, headers=headers,
                                    data=f"To=%2B{digits}&From=%2B15005550006&Body=hi"
                                    ) as reply:
                await reply.read()
                if reply.status not in (201, 403):
                    raise SystemExit(f"unexpected {reply.status}: {await reply.text()}")

        async def send(batch: list[str]) -> None:
            for start in range(0, len(batch), IN_FLIGHT):
                await asyncio.gather(*(one(d) for d in batch[start:start + IN_FLIGHT]))

        await send(numbers)
        await send([numbers[rng.randrange(pool)] for _ in range(requests)])
    if runner is not None:
        await runner.cleanup()
    await gateway_runner.cleanup()


def child_env(tree: Path) -> dict[str, str]:
    """A child's environment: Gatekeeper from `tree`, the bench from this repository,
    a fixed hash seed and one BLAS thread (counts that repeat)."""
    return {**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{REPO}",
            "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1"}


def counted(tree: Path, row: str, url: str, requests: int, pool: int, out: Path) -> int:
    """Instructions valgrind counted in one child run."""
    env = child_env(tree)
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            sys.executable, "-m", "bench.instructions", "--child", row, "--url", url,
            "--requests", str(requests), "--pool", str(pool)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO,  # noqa: S603
                          timeout=3600, check=False)
    return collected(done.returncode, done.stderr)


def collected(returncode: int, stderr: str) -> int:
    """valgrind's count of instructions, from its report."""
    found = _COLLECTED.findall(stderr)
    if returncode != 0 or not found:
        raise SystemExit(f"the child failed (exit {returncode}):\n{stderr[-3000:]}")
    return int(found[-1])


def per_request(short: int, long: int, extra: int) -> float:
    """Instructions per request: the long run's over the short one's, `extra`
    requests more."""
    return (long - short) / extra


def measure(trees: Sequence[tuple[str, Path]], rows: Sequence[str], url: str,
            requests: int, pool: int, tmp: Path) -> dict[str, dict[str, float]]:
    """Instructions per request, by tree and row."""
    out: dict[str, dict[str, float]] = {}
    for name, tree in trees:
        out[name] = {}
        for row in rows:
            short = counted(tree, row, url, requests // 4, pool, tmp / "cg.short")
            long = counted(tree, row, url, requests // 4 + requests, pool, tmp / "cg.long")
            out[name][row] = per_request(short, long, requests)
            print(f"{name:8} {row:7} {out[name][row]:10,.0f} instructions a request "
                  f"({out[name][row] / out[name][rows[0]]:.4f}x {rows[0]})", flush=True)
        for row, own in gatekeepers_own(out[name]).items():
            print(f"{name:8} {row:7} {own:10,.0f} of them Gatekeeper's own "
                  f"({own / gatekeepers_own(out[name])['lists']:.4f}x lists)")
    return out


def gatekeepers_own(counts: dict[str, float]) -> dict[str, float]:
    """Each Gatekeeper row's count less the direct row's (the client and the gateway),
    when both it and the lists row were measured."""
    if "direct" not in counts or "lists" not in counts:
        return {}
    return {row: count - counts["direct"] for row, count in counts.items()
            if row != "direct"}


def checked_options(p: argparse.ArgumentParser, a: argparse.Namespace, tool: str
                    ) -> list[str]:
    """The rows asked for, once `--rows`, `--requests`, `--pool` and `--against` are
    sound (a usage error otherwise) and valgrind is there (shared with bench.misses)."""
    rows = [r.strip() for r in a.rows.split(",") if r.strip()]
    if not rows or any(r not in ROWS for r in rows):
        p.error(f"--rows: a comma-separated list of {', '.join(ROWS)}")
    if a.requests < 4 or a.pool < 1:
        p.error("--requests must be at least 4 and --pool at least 1")
    if a.against is not None and not (a.against / "src" / "gatekeeper").is_dir():
        p.error(f"--against: no src/gatekeeper in {a.against}")
    if shutil.which("valgrind") is None:
        raise SystemExit(f"{tool} needs valgrind: apt-get install valgrind")
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=2000,
                   help="requests in the long run beyond the short one's (2000)")
    p.add_argument("--pool", type=int, default=1000, help="distinct destinations (1000)")
    p.add_argument("--rows", default="direct,lists,rules,policy",
                   help="rows, the first the base (direct,lists,rules,policy); with "
                   "direct and lists, Gatekeeper's own share is printed too")
    p.add_argument("--against", type=Path, metavar="TREE",
                   help="also run every row from this source tree (its src/)")
    p.add_argument("--output", type=Path, help="JSON results file")
    p.add_argument("--child", choices=sorted(ROWS), help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        import uvloop  # noqa: PLC0415 - as `gatekeeper run` runs

        from gatekeeper.config import LogConfig  # noqa: PLC0415
        from gatekeeper.observability import configure_logging  # noqa: PLC0415

        with open(os.devnull, "w") as devnull:
            configure_logging(LogConfig(level="warning"), devnull)
            uvloop.run(serve_and_send(a.child, a.url, a.requests, a.pool))
            return
    rows = checked_options(p, a, "bench.instructions")
    from gatekeeper.embedded import EmbeddedRedis  # noqa: PLC0415

    trees = [("this", REPO), *([("against", a.against)] if a.against else [])]
    with tempfile.TemporaryDirectory(prefix="gk-instructions-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        url = server.start().url
        try:
            results = measure(trees, rows, url, a.requests, a.pool, Path(tmp))
        finally:
            server.stop()
    if a.output:
        a.output.write_text(json.dumps({"requests": a.requests, "pool": a.pool,
                                        "instructions_per_request": results}, indent=1))


if __name__ == "__main__":
    main()

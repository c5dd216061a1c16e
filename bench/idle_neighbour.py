"""What an idle-priority neighbour alone does to the p99 of sends.

    .venv/bin/python -m bench.idle_neighbour [--rounds 3] [--sends 4000]

`gatekeeper run` on the embedded store serves Twilio sends (one after another, as
bench.scale's probe sends them); each round measures their p99 with nothing else
running, beside a pure-Python busy loop under SCHED_IDLE (`chrt --idle 0`), and beside a
numpy sort loop under SCHED_IDLE (an importer's kind of work: large arrays, memory
bound). No import and no Redis writes: what is left is the neighbour's use of the
machine below the scheduler (caches, memory bandwidth). Loopback only; measures,
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

from bench.run import Bench
from bench.scale import Sender, _bench_params, p99_ms, start_gatekeeper
from gatekeeper.embedded import EmbeddedRedis

NEIGHBOURS = {
    "none": None,
    "python-idle": "while True: pass",
    "numpy-idle": "import numpy as np\nrng = np.random.default_rng(1)\n"
                  "while True: np.sort(rng.integers(0, 10**10, 2_000_000))",
}


async def measure(port: int, rounds: int, sends: int) -> dict[str, list[float]]:
    """Each neighbour in turn, `rounds` times: the sends' p99 in ms."""
    sender = Sender(port)
    probes = [f"+1202555{i:04d}" for i in range(1000)]
    await sender.timed(probes, None, 500)  # warm-up
    p99s: dict[str, list[float]] = {name: [] for name in NEIGHBOURS}
    try:
        for _ in range(rounds):
            for name, code in NEIGHBOURS.items():
                neighbour = None if code is None else await asyncio.create_subprocess_exec(
                    "chrt", "--idle", "0", sys.executable, "-c", code)
                await asyncio.sleep(0.3)
                try:
                    timed = await sender.timed(probes, None, sends)
                finally:
                    if neighbour is not None:
                        neighbour.kill()
                        await neighbour.wait()
                p99s[name].append(p99_ms([seconds for _, seconds in timed]))
                print(f"{name}: p99 {p99s[name][-1]} ms", flush=True)
    finally:
        await sender.close()
    return p99s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sends", type=int, default=4000)
    parser.add_argument("--output", default="bench/results/idle-neighbour.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gk-idle-") as tmp:
        work = Path(tmp)
        server = EmbeddedRedis(work / "redis")
        url = server.start().url
        bench = Bench(_bench_params(), "", work, pinned=False)
        try:
            port, _ = start_gatekeeper(bench, url, work)
            p99s = asyncio.run(measure(port, args.rounds, args.sends))
        finally:
            bench.close()
            server.stop()
    Path(args.output).write_text(json.dumps({"send_p99_ms": p99s}, indent=2) + "\n")
    print(f"results: {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""One mode of `bench.screen_cost` (lists, rules or policy) screened in a loop for a
given time, in one process, for a sampling profiler to read where the time goes (the
cProfile of `screen_cost --profile` adds more to small functions than they cost):

    py-spy record -r 500 -f raw -o rules.txt -- .venv/bin/python -m bench.screen_loop rules 20
    py-spy record -r 500 -f raw -o policy.txt -- .venv/bin/python -m bench.screen_loop policy 20

py-spy is a tool beside the project, not one of its dependencies: `pip install py-spy`
into any environment. Prints this process's CPU per request (profiler included). The
requests are screen_cost's (`screen_cost.sender`: one number parsed and screened), over
10,000 US numbers, 16 in flight, on the embedded redis-server (loopback). Measures and
prints, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
from pathlib import Path

from bench.params import BENCH_POLICY, BENCH_RULES
from bench.screen_cost import MODES, sender
from gatekeeper.config import RedisConfig, StoreConfig, parse_config
from gatekeeper.embedded import EmbeddedRedis
from gatekeeper.store import Store, connect

IN_FLIGHT = 16


async def loop(url: str, mode: str, seconds: float, count: int) -> float:
    """CPU microseconds per request of `mode`, screened for `seconds` after one pass."""
    config = RedisConfig(url=url, key_prefix="sl:")
    store = Store(connect(config), config, StoreConfig(), url)
    await store.prepare()
    policy = None if mode == "lists" else parse_config(
        {"policy": BENCH_RULES if mode == "rules" else BENCH_POLICY}).policy
    numbers = [f"+1{201 + i * 7 % 789}{200 + i * 13 % 800}{i * 37 % 10000:04d}"
               for i in range(count)]

    send = sender(store, policy, mode)

    async def run(part: list[str]) -> None:
        for number in part:
            await send(number)

    async def one_pass() -> None:
        await asyncio.gather(*(run(numbers[i::IN_FLIGHT]) for i in range(IN_FLIGHT)))

    gc.freeze()
    await one_pass()  # every number seen once: the steady state
    sent, end, cpu = 0, time.monotonic() + seconds, time.process_time()
    while time.monotonic() < end:
        await one_pass()
        sent += count
    used = time.process_time() - cpu
    await store.close()
    return used / max(sent, 1) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("seconds", type=float)
    parser.add_argument("--numbers", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gk-loop-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        url = server.start().url
        try:
            us = asyncio.run(loop(url, args.mode, args.seconds, args.numbers))
        finally:
            server.stop()
    print(f"{args.mode}: {us:.1f} us of CPU per request")


if __name__ == "__main__":
    main()

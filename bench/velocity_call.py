"""What velocity counts cost the store, and what counting them in the lookup's own script
call saves: the store's lookup alone (no counts), and the lookup with
the bench policy's velocity counts (BENCH_POLICY, three scopes, one counting of two
limits per number) made apart (`count_sends` queued in the same write as `lookup`, as
before the fold) and together (`lookup_counting`), alternated round by round.

    .venv/bin/python -m bench.velocity_call [--numbers 2000] [--rounds 4] [--url URL]

Per send: this process's CPU (the Store's client work on the lean pipe, 32 sends in
flight) and the redis-server's CPU (INFO cpu): the embedded one, or a running one
at `--url` (a server of your own on 127.0.0.1: keys under `vc:` are written).
Loopback only; measures and prints the medians, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aioredis

from bench.run import BENCH_POLICY
from gatekeeper.config import RedisConfig, StoreConfig, parse_config
from gatekeeper.embedded import EmbeddedRedis
from gatekeeper.store import Store, connect
from gatekeeper.velocity import plan

SCOPES = ("global", "tenant:acme", "tenant:beta")
IN_FLIGHT = 32


async def measure(url: str, count: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    config = RedisConfig(url=url, key_prefix="vc:")
    store = Store(connect(config), config, StoreConfig(), url)
    await store.prepare()
    admin = aioredis.from_url(url)
    policy = parse_config({"policy": BENCH_POLICY}).policy
    rng = random.Random(1)  # noqa: S311 - test data
    numbers = [f"+1{rng.randint(200, 299)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
               for _ in range(count)]
    plans = {n: plan({n: True}, SCOPES, policy, "sms", "transactional", time.time())
             for n in numbers}

    async def apart(number: str) -> None:
        counting = store.count_sends(plans[number])
        await store.lookup([number], SCOPES, "sms")
        await counting

    async def alone(number: str) -> None:
        await store.lookup([number], SCOPES, "sms")

    async def together(number: str) -> None:
        await store.lookup_counting([number], SCOPES, "sms", plans[number])

    async def server_cpu() -> float:
        info = await admin.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    async def run(way: Callable[[str], Awaitable[None]], part: list[str]) -> None:
        for number in part:
            await way(number)

    out: dict[str, list[tuple[float, float]]] = {"alone": [], "apart": [], "together": []}
    sends = count * 3
    for _ in range(rounds):
        for name, way in (("alone", alone), ("apart", apart), ("together", together)):
            before, started = await server_cpu(), time.process_time()
            await asyncio.gather(*(run(way, numbers[i::IN_FLIGHT] * 3)
                                   for i in range(IN_FLIGHT)))
            client = (time.process_time() - started) / sends * 1e6
            server = (await server_cpu() - before) / sends * 1e6
            out[name].append((client, server))
    await admin.aclose()
    await store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numbers", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--url", help="a running redis-server (default: the embedded one)")
    args = parser.parse_args()
    if args.url:
        report = asyncio.run(measure(args.url, args.numbers, args.rounds))
    else:
        with tempfile.TemporaryDirectory(prefix="gk-velocity-") as tmp:
            server = EmbeddedRedis(Path(tmp) / "redis")
            url = server.start().url
            try:
                report = asyncio.run(measure(url, args.numbers, args.rounds))
            finally:
                server.stop()
    for name, rows in report.items():
        client = statistics.median(c for c, _ in rows)
        redis_cpu = statistics.median(s for _, s in rows)
        each = ", ".join(f"{c:.1f}/{s:.1f}" for c, s in rows)
        print(f"{name:9} client {client:5.1f} us, redis {redis_cpu:5.1f} us per send "
              f"(rounds, client/redis: {each})")


if __name__ == "__main__":
    main()

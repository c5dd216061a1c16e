"""What the policy costs the decision itself, without HTTP: one request's parse and
screening (`screening.parse_all` + `screening.screen`, the store's lean lookup path on
a real redis-server) with lists alone, with the bench's rules (`BENCH_RULES`) and with
the full bench policy (`BENCH_POLICY`, two velocity limits counted), alternated round
by round in one process, 32 requests in flight.

    .venv/bin/python -m bench.screen_cost [--numbers 10000] [--rounds 5] [--profile MODE]

Per request: this process's CPU (time.process_time), the part of it spent in the
garbage collector (gc.callbacks, the collector set as a serving process sets it), and
the redis-server's (INFO cpu). The numbers are drawn like the bench's pool; each round
sends to every number once, so after the first round every number has been seen (the
HTTP bench's steady state); a first round per mode over numbers never seen gives the
cost of a new number ("cold"). `--profile MODE` prints cProfile's top functions for
one more round of MODE.
Loopback only; measures and prints medians, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aioredis

from bench.run import BENCH_POLICY, BENCH_RULES
from gatekeeper.config import RedisConfig, StoreConfig, parse_config
from gatekeeper.embedded import EmbeddedRedis
from gatekeeper.rules import Policy
from gatekeeper.screening import Judging, parse_all, screen
from gatekeeper.serve import GC_YOUNG_THRESHOLD
from gatekeeper.store import Store, connect

SCOPES = ("global", "tenant:acme", "tenant:beta")
IN_FLIGHT = 32
MODES = ("lists", "rules", "policy")


def sender(store: Store, policy: Policy | None, mode: str
           ) -> Callable[[str], Awaitable[None]]:
    """One request of `mode`: one number parsed and screened in SCOPES, judged by
    `policy` (rules and policy), its velocity counted by `store` (policy only)."""
    async def send(number: str) -> None:
        judging = None if policy is None else Judging(
            policy, "transactional", time.time(), store if mode == "policy" else None)
        parsed = await parse_all([number], None, False)
        await screen(store.lookup, parsed, SCOPES, "sms", fail_closed=True,
                     judging=judging)
    return send


class Collections:
    """Seconds spent in the garbage collector, from gc.callbacks."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


async def measure(url: str, count: int, rounds: int, profile: str | None,
                  profile_cold: bool = False
                  ) -> dict[str, list[tuple[float, float, float]]]:
    config = RedisConfig(url=url, key_prefix="sc:")
    store = Store(connect(config), config, StoreConfig(), url)
    await store.prepare()
    admin = aioredis.from_url(url)
    policies = {"rules": parse_config({"policy": BENCH_RULES}).policy,
                "policy": parse_config({"policy": BENCH_POLICY}).policy}
    rng = random.Random(1)  # noqa: S311 - test data

    def draw() -> list[str]:
        return [f"+1{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
                for _ in range(count)]

    numbers = draw()

    def one(mode: str) -> Callable[[str], Awaitable[None]]:
        return sender(store, policies.get(mode), mode)

    async def server_cpu() -> float:
        info = await admin.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    async def run(send: Callable[[str], Awaitable[None]], part: list[str]) -> None:
        for number in part:
            await send(number)

    collections = Collections()
    gc.callbacks.append(collections)

    async def timed(mode: str, pool: list[str] = numbers) -> tuple[float, float, float]:
        send = one(mode)
        before, started = await server_cpu(), time.process_time()
        collected = collections.seconds
        await asyncio.gather(*(run(send, pool[i::IN_FLIGHT]) for i in range(IN_FLIGHT)))
        client = (time.process_time() - started) / count * 1e6
        in_gc = (collections.seconds - collected) / count * 1e6
        return client, (await server_cpu() - before) / count * 1e6, in_gc

    # The collector set as a serving process sets it (serve.py).
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    out: dict[str, list[tuple[float, float, float]]] = {mode: [] for mode in MODES}
    out.update({f"{mode} cold": [] for mode in MODES})
    for mode in MODES:  # warm-up: every number seen once in every mode
        await timed(mode)
    for _ in range(rounds):
        for mode in MODES:
            out[mode].append(await timed(mode))
    for mode in MODES:  # numbers never seen by any mode: what a new number costs
        out[f"{mode} cold"].append(await timed(mode, draw()))
    if profile:
        if not profile_cold:
            await timed(profile)  # the cold rounds may have emptied the caches
        profiler = cProfile.Profile()
        profiler.enable()
        await timed(profile, draw() if profile_cold else numbers)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    gc.callbacks.remove(collections)
    await admin.aclose()
    await store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numbers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", choices=MODES)
    parser.add_argument("--cold", action="store_true",
                        help="with --profile: profile numbers never seen")
    parser.add_argument("--url", help="a running redis-server (default: the embedded one)")
    args = parser.parse_args()
    if args.url:
        report = asyncio.run(measure(args.url, args.numbers, args.rounds, args.profile,
                                   args.cold))
    else:
        with tempfile.TemporaryDirectory(prefix="gk-screen-") as tmp:
            server = EmbeddedRedis(Path(tmp) / "redis")
            url = server.start().url
            try:
                report = asyncio.run(measure(url, args.numbers, args.rounds,
                                             args.profile, args.cold))
            finally:
                server.stop()
    base = statistics.median(c for c, _, _ in report["lists"])
    for mode, rows in report.items():
        client = statistics.median(c for c, _, _ in rows)
        redis_cpu = statistics.median(s for _, s, _ in rows)
        in_gc = statistics.median(g for _, _, g in rows)
        each = ", ".join(f"{c:.1f}/{s:.1f}" for c, s, _ in rows)
        print(f"{mode:11} client {client:6.1f} us ({client - base:+5.1f} over lists; "
              f"gc {in_gc:4.1f}), redis {redis_cpu:5.1f} us per request (rounds, "
              f"client/redis: {each})")


if __name__ == "__main__":
    main()

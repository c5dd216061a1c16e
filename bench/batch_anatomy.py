"""The anatomy of one batch for bench/batches.py: its stages timed in this process with
Gatekeeper's own code, and the event loop's stalls while it is screened on the loop and
in the helper process."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import structlog

from bench.batch_load import BatchBody
from bench.run import BenchError
from bench.upstream import loop_factory


def anatomy(config_path: Path, body: BatchBody) -> dict[str, Any]:
    """The stages of one batch, run in this process with Gatekeeper's own code on uvloop,
    caches cleared as for numbers never seen. Pass 1 times each stage (CPU, and the
    longest piece run without yielding); pass 2 runs the stages on the loop as
    `Sending.check` does without a helper process (find and rewrite through `off_loop`),
    pass 3 has the helper process screen the batch as `gatekeeper run` does, both beside
    a ticker that yields at every loop iteration, which reports per stage the longest
    time the loop could not run anything else: what a small send arriving then would
    wait."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(_anatomy(config_path, body))


class _Stages:
    """Stage timings, in milliseconds."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, Any]] = {}

    def add(self, name: str, where: str, total: float, longest: float, **more: Any) -> None:
        self.stages[name] = {"where": where, "ms": round(total * 1000, 2),
                             "longest_piece_ms": round(longest * 1000, 2), **more}


async def _anatomy(config_path: Path, batch: BatchBody) -> dict[str, Any]:
    # Imported here: the rest of the bench does not need Gatekeeper in-process.
    from gatekeeper.bigscreen import ScreenHelper  # noqa: PLC0415
    from gatekeeper.config import load_config  # noqa: PLC0415
    from gatekeeper.examine import Job  # noqa: PLC0415
    from gatekeeper.numbers import parse_destination  # noqa: PLC0415
    from gatekeeper.providers.locators import JsonPath  # noqa: PLC0415
    from gatekeeper.providers.preset import Message, Recipients, match_route  # noqa: PLC0415
    from gatekeeper.proxy import Mount  # noqa: PLC0415
    from gatekeeper.screener import Screener  # noqa: PLC0415
    from gatekeeper.screening import (  # noqa: PLC0415
        DECIDE_SLICE,
        LOOKUP_SLICE,
        PARSE_SLICE,
        parse_all,
    )
    from gatekeeper.sending import OFF_LOOP_BYTES, off_loop  # noqa: PLC0415
    from gatekeeper.store import Store, connect  # noqa: PLC0415
    from gatekeeper.store import lookup as lookup_module  # noqa: PLC0415

    config = load_config(str(config_path), env={"GATEKEEPER_BENCH_ADMIN_KEY": "x" * 32})
    upstream = next(u for u in config.upstreams if u.name == "bulk")
    region = upstream.region
    scopes = ("global", *upstream.scopes)
    store = Store(connect(config.redis), config.redis, config.store,
                  lookup_url=config.redis.url)
    await store.prepare()
    await store.lookup(["+12025550100"], scopes, "sms")   # the lookup connection
    transport = store._transport
    # (lookup start, transport start, transport end, lookup end, CPU) per slice
    marks: list[list[float]] = []

    class TimedTransport:
        """The store's lookup transport, the wait for redis-server noted."""

        async def lookup(self, call: Any, candidates: Sequence[str], encoded: bytes
                         ) -> list[list[str]]:
            marks[-1].append(time.perf_counter())
            try:
                return await transport.lookup(call, candidates, encoded)
            finally:
                marks[-1].append(time.perf_counter())

        def __getattr__(self, name: str) -> Any:
            return getattr(transport, name)

    class TimedStore:
        """The store, each lookup's start and end noted."""

        async def lookup(self, numbers: Sequence[str], scopes_: Sequence[str],
                         channel: Any = None) -> Any:
            marks.append([time.perf_counter()])
            try:
                return await store.lookup(numbers, scopes_, channel)
            finally:
                marks[-1].append(time.perf_counter())

    store._transport = cast(Any, TimedTransport())
    screener = Screener(cast(Any, SimpleNamespace(config=config, store=TimedStore())))
    message = Message(batch.body, "", {"Content-Type": "application/json"})
    locator = JsonPath("messages[].to")
    in_thread = len(batch.body) > OFF_LOOP_BYTES
    where = "worker thread" if in_thread else "event loop"
    out = _Stages()

    def cold() -> None:
        parse_destination.cache_clear()
        lookup_module._candidates.cache_clear()

    # As `gatekeeper run` does after start-up (serve.tune_collector): what exists now
    # is never collected.
    gc.collect()
    gc.freeze()
    # Pass 1: each stage's own time.
    cold()
    t0 = time.perf_counter()
    json.loads(batch.body)
    spent = time.perf_counter() - t0
    out.add("(json.loads alone)", "C, GIL held", spent, spent)
    t0 = time.perf_counter()
    recipients = locator.find(message)
    spent = time.perf_counter() - t0
    assert isinstance(recipients, Recipients)
    out.add("find recipients", where, spent, spent)
    raws = list(dict.fromkeys(recipients.values))
    parsed: dict[str, Any] = {}
    longest = total = 0.0
    for start in range(0, len(raws), PARSE_SLICE):
        t0 = time.perf_counter()
        for raw in raws[start:start + PARSE_SLICE]:
            parsed[raw] = parse_destination(raw, region, False)
        spent = time.perf_counter() - t0
        total, longest = total + spent, max(longest, spent)
    out.add("parse destinations", f"event loop, slices of {PARSE_SLICE}", total, longest,
            slices=-(-len(raws) // PARSE_SLICE))
    marks.clear()
    w0 = time.perf_counter()
    screened = await screener.screen("bench", parsed, scopes, "sms")
    screen_s = time.perf_counter() - w0
    before = [m[1] - m[0] for m in marks]
    redis_s = [m[2] - m[1] for m in marks]
    after = [m[3] - m[2] for m in marks]
    out.add("lookups: encode", f"event loop, slices of {LOOKUP_SLICE}", sum(before),
            max(before), slices=len(marks))
    out.add("lookups: redis-server", "waiting (loop free)", sum(redis_s), max(redis_s))
    out.add("lookups: read replies", "event loop", sum(after), max(after))
    # The rest of screen(): between two slices, merging a slice's matches and starting
    # the next call; after the last one, the decisions, in slices.
    between = [b[0] - a[3] for a, b in itertools.pairwise(marks)]
    decide_s = w0 + screen_s - marks[-1][3]
    out.add("between lookup slices", "event loop", sum(between), max(between, default=0.0))
    pieces = -(-len(parsed) // DECIDE_SLICE)
    out.add("decide", f"event loop, after the last lookup, slices of {DECIDE_SLICE}; "
            "longest piece: their mean", decide_s, decide_s / pieces, slices=pieces)
    blocked = frozenset(screened.blocked)
    t0 = time.perf_counter()
    rewritten = recipients.without(blocked)
    spent = time.perf_counter() - t0
    out.add("rewrite without the blocked", where, spent, spent, removed=len(blocked),
            ok=rewritten is not None)

    # Pass 2: the loop's longest stalls per stage, the stages run as Gatekeeper runs them.
    del parsed, screened, recipients, rewritten
    cold()
    gc.collect()
    stage = ["idle"]
    stalls: dict[str, list[float]] = {}
    stop = asyncio.Event()
    # The ticker's nap between ticks: none on the loop (pass 2); 1 ms while the helper
    # works (pass 3), since a ticker spinning on CPU 0 would starve the niced helper
    # there, as an event loop with idle moments does not.
    nap = [0.0]

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(nap[0])
            now = time.perf_counter()
            stalls.setdefault(stage[0], []).append(max(0.0, now - last - nap[0]))
            last = now

    async def enter(name: str) -> None:
        # Yield first, so the ticker books the stall that just ended to the stage that
        # caused it.
        await asyncio.sleep(0)
        stage[0] = name

    async def batch_like_gatekeeper() -> float:
        t0 = time.perf_counter()
        await enter("find recipients")
        found = await off_loop(len(batch.body), lambda: locator.find(message))
        assert isinstance(found, Recipients)
        await enter("parse destinations")
        parsed2 = await parse_all(list(dict.fromkeys(found.values)), region, False)
        await enter("lookups and decide")
        result = await screener.screen("bench", parsed2, scopes, "sms")
        await enter("rewrite without the blocked")
        await off_loop(len(batch.body), lambda: found.without(frozenset(result.blocked)))
        await enter("idle")
        return time.perf_counter() - t0

    pauses: list[tuple[str, int, float]] = []   # (stage, generation, seconds)
    began = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses.append((stage[0], int(info["generation"]), time.perf_counter() - began[0]))

    # Pass 3: the batch as `gatekeeper run` screens it, in the helper process (started
    # and made ready first, as at start-up; its caches are cold).
    quiet = structlog.wrap_logger(structlog.PrintLogger(sys.stderr),
                                  wrapper_class=structlog.make_filtering_bound_logger(
                                      logging.WARNING))
    helper = ScreenHelper(config, quiet)
    await helper.start()
    mount = Mount.build(upstream, config.proxy.unknown_writes)
    found_route = match_route(mount.routes, "POST", "/v1/messages")
    assert found_route is not None
    route = next(i for i, r in enumerate(mount.routes) if r is found_route[0])
    warm = Message(b'{"messages": [{"to": "+12025550100"}]}', "", message.headers)
    await helper.examine("bench", config.redis.url, Job("bulk", warm, scopes), route)

    async def batch_in_helper() -> float:
        # The ticker alone first: its gaps with a 1 ms nap, for reference.
        await enter("(ticker alone, 1 ms naps)")
        await asyncio.sleep(0.5)
        t0 = time.perf_counter()
        await enter("screened in the helper process")
        done = await helper.examine("bench", config.redis.url,
                                    Job("bulk", message, scopes), route)
        await enter("idle")
        if done.refusal is not None or len(done.blocked) != len(blocked) or \
                done.rewritten is None:
            raise BenchError(f"the helper process screened the batch wrongly: refusal "
                             f"{done.refusal}, {len(done.blocked)} blocked, rewritten "
                             f"{done.rewritten is not None}")
        return time.perf_counter() - t0

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    gc.callbacks.append(on_gc)
    try:
        wall = await batch_like_gatekeeper()
        nap[0] = 0.001
        helper_wall = await batch_in_helper()
    finally:
        gc.callbacks.remove(on_gc)
        await helper.close()
    stop.set()
    await tick
    await store.close()
    gc.unfreeze()
    holds = {name: {"max_ms": round(max(gaps) * 1000, 2),
                    "p99_ms": round(sorted(gaps)[int(len(gaps) * 0.99)] * 1000, 3),
                    "over_2ms": sum(g > 0.002 for g in gaps),
                    "over_2ms_total_ms": round(sum(g for g in gaps if g > 0.002) * 1000, 1),
                    "gc_full_collections": sum(1 for n, g, _ in pauses if n == name and g == 2),
                    "gc_longest_ms": round(max((d for n, _, d in pauses if n == name),
                                               default=0.0) * 1000, 2)}
             for name, gaps in stalls.items() if name != "idle"}
    return {"recipients": batch.recipients, "body_bytes": len(batch.body),
            "blocked": len(blocked), "stages": out.stages, "loop_stalls": holds,
            "batch_wall_ms": round(wall * 1000, 1),
            "helper_wall_ms": round(helper_wall * 1000, 1),
            "switch_interval_ms": sys.getswitchinterval() * 1000}


"""bench.scale's imports: one import of a numbers file in a fresh process (or posted
to a running Gatekeeper's admin API), and its figures: memory, rate, importer RSS,
latency meanwhile."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from collections.abc import AsyncIterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

from bench.run import HOST
from bench.scale_latency import Sender, _nothing, latency, timed_lookups
from bench.scale_numbers import LOOKUPS, chunks
from gatekeeper.bulk import Importer, ImportOptions, Mode
from gatekeeper.config import RedisConfig, StoreConfig
from gatekeeper.store import Store, connect

# `--importer-nice idle`: the importer under SCHED_IDLE (as `chrt --idle 0` runs it).
IDLE = 99


async def used_memory(store: Store) -> int:
    info = await store.client.info("memory")
    return int(info["used_memory"])


def rss_kib(field: str = "VmHWM") -> int:
    """This process's peak (VmHWM) or current (VmRSS) resident size, KiB. Read from
    /proc: getrusage's peak would include the parent's from before the exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Admin:
    """Where a running Gatekeeper's admin API listens, and its key."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.key = key

    async def post(self, path: str, mode: Mode, phases: list[float]) -> int:
        """POST the file to the admin import endpoint (streamed); the entries added.
        `phases` gets when the body's last byte went out and when the reply came."""
        url = (f"http://{HOST}:{self.port}/admin/v1/lists/block/import"
               f"?scope=global&mode={mode}")

        async def body() -> AsyncIterator[bytes]:
            async for block in chunks(Path(path)):
                yield block
            phases.append(time.time())

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) \
                as session, session.post(url, data=body(), headers={
                    "Authorization": f"Bearer {self.key}",
                    "Content-Type": "text/plain"}) as resp:
            answer = await resp.json()
            phases.append(time.time())
            if resp.status != 200:
                raise RuntimeError(f"admin import answered {resp.status}: {answer}")
            return int(answer["added"])


def _import_child(url: str, path: str, mode: Mode, out: Connection, nice: int = 0,
                  admin: Admin | None = None) -> None:
    """Run one import in this (fresh) process (at niceness `nice`, or under SCHED_IDLE
    when `nice` is IDLE), or post it to `admin` (this process, the uploading client,
    at that priority); send back its figures. An admin import's phases are the upload
    and what follows it (the end of the parse and the write, in Gatekeeper's child)."""
    if nice == IDLE:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    elif nice:
        os.nice(nice)
    if admin is not None:
        phases: list[float] = []
        started = time.perf_counter()
        added = asyncio.run(admin.post(path, mode, phases))
        out.send((time.perf_counter() - started, added, rss_kib("VmRSS"), rss_kib(),
                  phases[:2]))
        return
    writing: list[float] = []

    async def go() -> tuple[float, int]:
        redis_config = RedisConfig(url=url, timeout=60.0)
        store = Store(connect(redis_config), redis_config, StoreConfig(), url)
        write_packed = store.write_packed

        async def timed_write(*args: Any) -> int:
            # When the packed load goes to Redis (after the whole file is parsed).
            writing.append(time.time())
            try:
                return await write_packed(*args)
            finally:
                writing.append(time.time())

        setattr(store, "write_packed", timed_write)  # noqa: B010 - a bench probe
        try:
            started = time.perf_counter()
            report = await Importer(store, ImportOptions("block", "global", mode)).run(
                chunks(Path(path)))
            return time.perf_counter() - started, report.added
        finally:
            await store.close()

    baseline = rss_kib("VmRSS")
    seconds, added = asyncio.run(go())
    out.send((seconds, added, baseline, rss_kib(), writing[:2]))


async def import_file(store: Store, url: str, path: Path, mode: Mode, lines: int,
                      sender: Sender | None = None, nice: int = 0,
                      steady_lookups: int = LOOKUPS, lookups: bool = True,
                      admin: Admin | None = None) -> dict[str, Any]:
    """Empty the server, import `path` in a fresh process, and report Redis memory
    growth per line, lines per second, and the importer's peak RSS; and the p99 of
    lookups (unless not `lookups`) and of whole sends (with `sender`) made one after
    another meanwhile against the same before it started (`steady_lookups` lookups, and
    2 sends for every 5 of them)."""
    await store.client.flushdb()
    await asyncio.sleep(0.5)
    before = await used_memory(store)
    probes = [f"+1202555{n:04d}" for n in range(1000)]
    # Both at once, as during the import (they share this process's loop).
    steady, sends_steady = await asyncio.gather(
        timed_lookups(store, probes, None, steady_lookups) if lookups else _nothing(),
        sender.timed(probes, None, max(1, steady_lookups * 2 // 5)) if sender is not None
        else _nothing())
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_import_child,
                            args=(url, str(path), mode, send, nice, admin))
    child.start()
    done = asyncio.Event()
    during_task = asyncio.ensure_future(
        timed_lookups(store, probes, done, 0) if lookups else _nothing())
    sends_task = None if sender is None else \
        asyncio.ensure_future(sender.timed(probes, done, 0))
    seconds, added, baseline, peak, writing = await asyncio.to_thread(receive.recv)
    done.set()
    during = await during_task
    sends_during = [] if sends_task is None else await sends_task
    child.join()
    grown = await used_memory(store) - before
    names = ("parsing", "writing") if admin is None else ("uploading", "after_upload")
    return {"mode": mode, "lines": lines, "added": added,
            "via": "process" if admin is None else "admin", "importer_nice": nice,
            "seconds": round(seconds, 2),
            "lines_per_s": round(lines / seconds), "bytes_per_entry": round(grown / lines, 2),
            "importer_rss_mib": {"before": round(baseline / 1024, 1),
                                 "peak": round(peak / 1024, 1)},
            **({"lookup_p99_ms": latency(steady, during, writing, names)}
               if lookups else {}),
            **({"send_p99_ms": latency(sends_steady, sends_during, writing, names)}
               if sender else {})}

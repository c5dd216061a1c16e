"""National-scale lists: memory per entry, import rate and lookup cost, measured side by
side on one redis-server.

    .venv/bin/python -m bench.scale                     # 1M numbers, embedded store
    .venv/bin/python -m bench.scale --numbers 1000000,10000000
    .venv/bin/python -m bench.scale --redis-url redis://127.0.0.1:6379/0   # external

For each size: a file of random numbers over every US area code (one per line, E.164),
imported twice into an emptied server: as a replace (packed loads) and as an add (one
sorted-set member with its metadata per number, the layout every entry had before).
Figures: Redis `used_memory` growth per number (persistence off), lines per second of
the import (file read, parsed, written; run in a fresh process), the importer's RSS
before and at its peak; then Redis CPU and Gatekeeper CPU per lookup, of unlisted and
of listed numbers, with the list loaded against the same lookups in a scope with no
list. With `--sends` (on by default), `gatekeeper run` serves Twilio sends on the same
server (to the bench's fake gateway), and the p99 of whole HTTP sends, one after
another, is taken before and during each import too. Both probes run at once by
default (`--probes both`); `--probes sends` leaves the lookup loop out, so that the
sends' p99 is not also measuring the bench's own busy loop competing for the CPUs.
`--via admin` makes each import a POST of the file to that Gatekeeper's admin import
endpoint (read by the process that serves the sends, parsed by its import child)
instead of an importer process; the sends' p99 is then split into the upload and what
follows it, and `--importer-nice` sets the uploading client's priority.
Loopback only; measures, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

from bench.run import (
    HOST,
    SEND_PATH,
    Bench,
    Params,
    gatekeeper_command,
    wait_http,
    write_gatekeeper_config,
)
from gatekeeper.bulk import Importer, ImportOptions, Mode
from gatekeeper.config import RedisConfig, StoreConfig
from gatekeeper.embedded import EmbeddedRedis, free_port
from gatekeeper.store import Store, connect

READ_CHUNK = 1 << 20
# `--importer-nice idle`: the importer under SCHED_IDLE (as `chrt --idle 0` runs it).
IDLE = 99
LOOKUPS = 5_000


# US area codes drawn from: 201 to 989, or the first `--area-codes` of them.
AREA_CODES = 789


def write_numbers(path: Path, count: int, seed: int, lookups: int = LOOKUPS,
                  area_codes: int = AREA_CODES) -> list[str]:
    """`count` distinct random US numbers in E.164 over `area_codes` area codes, one per
    line; a sample of them."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    seen: set[int] = set()
    while len(seen) < count:
        need = count - len(seen)
        seen.update(int(f"1{rng.randint(201, 200 + area_codes)}{rng.randint(200, 999)}"
                        f"{rng.randint(0, 9999):04d}") for _ in range(need))
    numbers = list(seen)
    rng.shuffle(numbers)
    with path.open("w") as out:
        for start in range(0, count, 100_000):
            out.write("".join(f"+{n}\n" for n in numbers[start:start + 100_000]))
    return [f"+{n}" for n in rng.sample(numbers, min(lookups, count))]


async def chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as source:
        while block := source.read(READ_CHUNK):
            yield block


async def used_memory(store: Store) -> int:
    info = await store.client.info("memory")
    return int(info["used_memory"])


async def redis_cpu(store: Store) -> float:
    info = await store.client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


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


Timed = list[tuple[float, float]]
"""(wall-clock start, seconds) of each call."""


async def timed_lookups(store: Store, probes: list[str], until: asyncio.Event | None,
                        count: int) -> Timed:
    """One lookup after another (in scope global), `count` of them, or until `until` is
    set: when each started, and its seconds."""
    seconds: Timed = []
    i = 0
    while (until is None and len(seconds) < count) or (until is not None
                                                        and not until.is_set()):
        wall, started = time.time(), time.perf_counter()
        await store.lookup([probes[i % len(probes)]], ["global"], "sms")
        seconds.append((wall, time.perf_counter() - started))
        i += 1
    return seconds


class Sender:
    """Whole sends through a running Gatekeeper, one after another."""

    def __init__(self, port: int) -> None:
        self.url = f"http://{HOST}:{port}{SEND_PATH}"
        self.session: aiohttp.ClientSession | None = None

    async def timed(self, probes: list[str], until: asyncio.Event | None, count: int
                    ) -> Timed:
        """One send after another, `count` of them or until `until`: when each started,
        and its seconds."""
        if self.session is None:
            self.session = aiohttp.ClientSession()
        seconds: Timed = []
        i = 0
        while (until is None and len(seconds) < count) or (until is not None
                                                            and not until.is_set()):
            number = probes[i % len(probes)]
            wall, started = time.time(), time.perf_counter()
            async with self.session.post(self.url, data={
                    "To": number, "From": "+15005550006", "Body": "hi"}) as resp:
                await resp.read()
                if resp.status not in (201, 403):
                    raise RuntimeError(f"send answered {resp.status}")
            seconds.append((wall, time.perf_counter() - started))
            i += 1
        return seconds

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


async def _nothing() -> Timed:
    return []


def p99_ms(seconds: list[float], share: float = 0.99) -> float:
    ordered = sorted(seconds)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000, 2)


def latency(steady_calls: Timed, during_calls: Timed, writing: list[float],
            names: tuple[str, str] = ("parsing", "writing")) -> dict[str, Any]:
    """p99 (and more) of calls before and during an import; and during the import,
    split into the calls while it parsed the file and those while it wrote its packed
    load to Redis (`writing`: its start and end, when known; through the admin API,
    `names` are the upload and what follows it)."""
    steady = [s for _, s in steady_calls]
    during = [s for _, s in during_calls]
    phases: dict[str, Any] = {}
    if len(writing) == 2:
        first, second = names
        parse = [s for t, s in during_calls if t < writing[0]]
        write = [s for t, s in during_calls if writing[0] <= t <= writing[1]]
        phases = {f"p99_while_{first}": p99_ms(parse) if parse else None,
                  f"p99_while_{second}": p99_ms(write) if write else None,
                  f"while_{second}": len(write),
                  f"{second}_seconds": round(writing[1] - writing[0], 2)}
    return {"steady": p99_ms(steady), "during_import": p99_ms(during), **phases,
            "ratio": round(p99_ms(during) / p99_ms(steady), 2),
            "p999_steady": p99_ms(steady, 0.999), "p999_during": p99_ms(during, 0.999),
            "max_steady": round(max(steady) * 1000, 2),
            "max_during": round(max(during) * 1000, 2), "during": len(during)}


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


async def lookup_cost(store: Store, numbers: list[str], scopes: list[str]) -> dict[str, float]:
    """CPU per lookup (Redis, and this process) over `numbers`, one lookup each; and
    Redis's own time in the lookup script per call (INFO commandstats, EVALSHA's
    usec_per_call: the script alone, without the network work that dominates Redis's
    CPU and its noise)."""
    await store.client.config_resetstat()
    cpu_redis, cpu_self = await redis_cpu(store), time.process_time()
    for number in numbers:
        await store.lookup([number], scopes, "sms")
    count = len(numbers)
    scripts = (await store.client.info("commandstats")).get("cmdstat_evalsha", {})
    return {"redis_us": round((await redis_cpu(store) - cpu_redis) / count * 1e6, 2),
            "gatekeeper_us": round((time.process_time() - cpu_self) / count * 1e6, 2),
            "script_us": round(float(scripts.get("usec_per_call", 0.0)), 3)}


async def compare_lookups(store: Store, work: Path, sample: list[str]
                          ) -> dict[str, Any]:
    """CPU per lookup with the big list loaded (scope global), against a list of 1,000
    numbers (scope tenant:small) and no list at all (tenant:none): the same numbers
    each time, caches warm, the three alternated over three rounds (medians); the
    store holds the loads' filter copies."""
    small = work / "small.txt"
    small.write_text("".join(f"{n}\n" for n in sample[:1000]))
    async def load_small() -> None:
        await Importer(store, ImportOptions("block", "tenant:small", "replace")).run(
            chunks(small))
    await load_small()
    scopes = {"big": "global", "small": "tenant:small", "empty": "tenant:none"}
    # Each process takes up the filters of the loads its lookups meet (Resources polls
    # every FILTER_POLL seconds): as a running Gatekeeper would hold them.
    for scope in scopes.values():
        await store.lookup([sample[0]], [scope], "sms")
    await store.refresh_filters()
    result: dict[str, Any] = {"filter_copies": store.filter_copies()}
    # Unlisted: the next number after a listed one; listed: the sample itself.
    for label, probes in (("unlisted", [f"+1{int(n[2:]) + 1}" for n in sample]),
                          ("listed", sample)):
        for scope in scopes.values():
            await lookup_cost(store, probes, [scope])  # warm-up: caches, connections
        rounds: dict[str, list[dict[str, float]]] = {k: [] for k in scopes}
        for _ in range(3):
            for name, scope in scopes.items():
                rounds[name].append(await lookup_cost(store, probes, [scope]))
        medians = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                   for name, runs in rounds.items()}
        result[label] = {**medians, "ratios_big_to_small": {
            k: round(medians["big"][k] / medians["small"][k], 3) for k in medians["big"]},
            "ratios_big_to_empty": {
            k: round(medians["big"][k] / medians["empty"][k], 3) for k in medians["big"]}}
    return result


async def measure(url: str, sizes: list[int], seed: int, work: Path, add_up_to: int,
                  lookups: int = LOOKUPS, sender: Sender | None = None, nice: int = 0,
                  area_codes: int = AREA_CODES, lookup_probe: bool = True,
                  admin: Admin | None = None) -> dict[str, Any]:
    redis_config = RedisConfig(url=url, timeout=60.0)
    store = Store(connect(redis_config), redis_config, StoreConfig(), url)
    await store.prepare()
    # Persistence off while measuring: an append-only rewrite's buffers would count in
    # used_memory. (Only on the bench's own server, or one given to be flushed.)
    await store.client.config_set("appendonly", "no")
    results: list[dict[str, Any]] = []
    try:
        for size in sizes:
            path = work / f"numbers-{size}.txt"
            sample = write_numbers(path, size, seed, lookups, area_codes)
            row: dict[str, Any] = {"numbers": size, "area_codes": area_codes}
            modes: tuple[Mode, ...] = ("add", "replace") if size <= add_up_to else ("replace",)
            for mode in modes:
                print(f"{size:,} numbers, {mode} import ...", flush=True)
                row[mode] = await import_file(store, url, path, mode, size, sender, nice,
                                              lookups, lookup_probe, admin)
                print(f"  {row[mode]}", flush=True)
            # The list is loaded (replace, packed): lookups of listed and unlisted numbers.
            row["lookup"] = await compare_lookups(store, work, sample)
            print(f"  lookups: {row['lookup']}", flush=True)
            results.append(row)
            path.unlink()
    finally:
        await store.close()
        if sender is not None:
            await sender.close()
    return {"redis_url": url.rsplit("@", 1)[-1], "rows": results}


def _bench_params() -> Params:
    """bench/run.py's parameters, for its process handling only."""
    return Params(duration=1, warmup=0, connections=1, threads=1, rate=1,
                  blocked_fraction=0.0, numbers=1, prefixes=1, unlisted_pool=1,
                  blocked_pool=1, gk_workers=None, rows=(), modes=(), quick=True, seed=0,
                  output="", keep_logs=False, repeat=1)


def start_gatekeeper(bench: Bench, url: str, work: Path) -> tuple[int, Admin]:
    """`gatekeeper run` on the store at `url` (the lists' own prefix), with the fake
    gateway as its Twilio upstream; its proxy port and its admin API."""
    _, upstream_port = bench.start_upstream("upstream", None)
    proxy_port, admin_port = free_port(), free_port()
    config = work / "gatekeeper.json"
    write_gatekeeper_config(config, url, RedisConfig().key_prefix, upstream_port,
                            proxy_port, admin_port, work / "gk-data")
    process = bench.spawn("gatekeeper", [*gatekeeper_command(), "run", "--config",
                                         str(config)], None)
    wait_http(process, admin_port, "/readyz", want_ok=True)
    return proxy_port, Admin(admin_port, bench.env["GATEKEEPER_BENCH_ADMIN_KEY"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numbers", default="1000000",
                        help="comma-separated list sizes (default 1000000)")
    parser.add_argument("--redis-url", help="an external Redis to measure (it is FLUSHED)")
    parser.add_argument("--add-up-to", type=int, default=1_000_000,
                        help="import in add mode too (the set layout, for comparison) "
                        "only for sizes up to this (default 1000000: 200 bytes a number)")
    parser.add_argument("--lookups", type=int, default=LOOKUPS,
                        help=f"numbers looked up per measurement (default {LOOKUPS})")
    parser.add_argument("--area-codes", type=int, default=AREA_CODES, metavar="K",
                        help="draw numbers from the first K US area codes only (default all "
                        f"{AREA_CODES}): 10M numbers over 32 are as dense per exchange as "
                        "250M over all")
    parser.add_argument("--importer-nice", type=lambda v: IDLE if v == "idle" else int(v),
                        default=0, metavar="N",
                        help="run the importer at this niceness (as `nice -n N gatekeeper "
                        "lists import` would; default 0), or `idle`: under SCHED_IDLE "
                        "(as `chrt --idle 0`); with --via admin, the uploading client "
                        "(an operator's curl, elsewhere in production)")
    parser.add_argument("--no-sends", dest="sends", action="store_false",
                        help="skip the whole-send latency (no `gatekeeper run`)")
    parser.add_argument("--probes", choices=("both", "sends", "lookups"), default="both",
                        help="latency probes during imports: store lookups and whole "
                        "sends at once (default), or only one of them")
    parser.add_argument("--via", choices=("process", "admin"), default="process",
                        help="import in an importer process of its own, as `gatekeeper "
                        "lists import` does (default), or by a POST to the running "
                        "Gatekeeper's admin import endpoint (needs the sends)")
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--output", default="bench/results-scale.json")
    args = parser.parse_args()
    sizes = [int(s) for s in args.numbers.split(",")]
    if args.probes == "lookups":
        args.sends = False
    elif args.probes == "sends" and not args.sends:
        parser.error("--probes sends needs the sends (drop --no-sends)")
    if args.via == "admin" and not args.sends:
        parser.error("--via admin needs the running Gatekeeper (drop --no-sends)")
    with tempfile.TemporaryDirectory(prefix="gk-scale-") as tmp:
        work = Path(tmp)
        server = None
        url = args.redis_url
        if url is None:
            server = EmbeddedRedis(work / "redis")
            url = server.start().url
        bench = Bench(_bench_params(), "", work, pinned=False)
        try:
            port, admin = start_gatekeeper(bench, url, work) if args.sends \
                else (None, None)
            report = asyncio.run(measure(url, sizes, args.seed, work, args.add_up_to,
                                         args.lookups, None if port is None
                                         else Sender(port), args.importer_nice,
                                         args.area_codes, args.probes != "sends",
                                         admin if args.via == "admin" else None))
        finally:
            bench.close()
            if server is not None:
                server.stop()
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()

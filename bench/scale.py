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
`--pin` runs Gatekeeper on CPU 0 and everything else (redis-server, the importer, the
fake gateway, this process) on CPU 1: an importer on a core the proxy does not use.
Loopback only; measures, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.params import LOAD_CPU, PROCESS_CPU
from bench.run import (
    Bench,
    Params,
    gatekeeper_command,
    wait_http,
    write_gatekeeper_config,
)
from bench.scale_import import IDLE, Admin, import_file
from bench.scale_latency import Sender, p99_ms
from bench.scale_lookups import compare_lookups
from bench.scale_numbers import AREA_CODES, LOOKUPS, chunks, write_numbers
from gatekeeper.bulk import Mode
from gatekeeper.config import RedisConfig, StoreConfig
from gatekeeper.embedded import EmbeddedRedis, free_port
from gatekeeper.store import Store, connect

# What the other bench modules import from here (defined in the modules above).
__all__ = [
    "Sender", "_bench_params", "chunks", "main", "measure", "p99_ms", "start_gatekeeper",
    "write_numbers",
]


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
    gateway as its Twilio upstream; its proxy port and its admin API. Pinned to CPU 0
    (the gateway to CPU 1) when the bench is."""
    _, upstream_port = bench.start_upstream("upstream", bench.cpus(str(LOAD_CPU)))
    proxy_port, admin_port = free_port(), free_port()
    config = work / "gatekeeper.json"
    write_gatekeeper_config(config, url, RedisConfig().key_prefix, upstream_port,
                            proxy_port, admin_port, work / "gk-data")
    process = bench.spawn("gatekeeper", [*gatekeeper_command(), "run", "--config",
                                         str(config)], bench.cpus(str(PROCESS_CPU)))
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
    parser.add_argument("--pin", action="store_true",
                        help=f"Gatekeeper on CPU {PROCESS_CPU}, everything else (the "
                        f"importer included) on CPU {LOAD_CPU}")
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
    if args.pin:
        # Inherited by redis-server and the importer, started from here.
        os.sched_setaffinity(0, {LOAD_CPU})
    with tempfile.TemporaryDirectory(prefix="gk-scale-") as tmp:
        work = Path(tmp)
        server = None
        url = args.redis_url
        if url is None:
            server = EmbeddedRedis(work / "redis")
            url = server.start().url
        bench = Bench(_bench_params(), "", work, pinned=args.pin)
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
    report["pinned"] = (f"gatekeeper on CPU {PROCESS_CPU}, the rest on CPU {LOAD_CPU}"
                        if args.pin else "none")
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Where the lookup script's time goes with a packed load: Redis's own time per call
(INFO commandstats, EVALSHA's usec_per_call) of the lookup script as shipped and of
variants of it, in a scope holding a packed load and in a scope with no list.

    .venv/bin/python -m bench.script_cost                    # 1M numbers, 5 rounds
    .venv/bin/python -m bench.script_cost --numbers 200000 --rounds 3

Variants: `shipped` (store/lookup_scripts.py's LOOKUP_LUA); `no-sismember` (the packed check
without its SISMEMBER); `no-packed` (the packed part skipped: a load is never read).
Cases: listed numbers in the scope with the load; unlisted ones (the next number after
each listed one) there, with the store's filter copy naming the load to skip when it
rules the number out (as `Store.lookup` does), and without a copy; and the scope with no
list. Each variant and case runs over the same numbers, alternated, for `--rounds`
rounds; medians printed and written as JSON. The embedded redis-server, loopback only; measures,
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.scale import chunks, write_numbers
from gatekeeper.bulk import Importer, ImportOptions
from gatekeeper.config import RedisConfig, StoreConfig
from gatekeeper.embedded import EmbeddedRedis
from gatekeeper.numbers import lookup_candidates
from gatekeeper.store import Store, connect
from gatekeeper.store.lookup import _ARGV_SLICE as ARGV_SLICE
from gatekeeper.store.scripts import LOOKUP_LUA
from gatekeeper.types import LISTS

SHIPPED_SISMEMBER = "return redis.call('SISMEMBER', load[1] .. head, rest) == 1"
SHIPPED_LOAD = "    load = packed_load(KEYS[i + 2])"
VARIANTS = {
    "shipped": LOOKUP_LUA,
    "no-sismember": LOOKUP_LUA.replace(SHIPPED_SISMEMBER, "return false"),
    "no-packed": LOOKUP_LUA.replace(SHIPPED_LOAD, "    load = nil"),
}
# Cases: (scope, which numbers, whether the store's filter copy may skip the load).
CASES = {
    "packed, listed": ("global", "listed", True),
    "packed, unlisted": ("global", "unlisted", True),
    "packed, unlisted, no copy": ("global", "unlisted", False),
    "no list": ("tenant:none", "unlisted", True),
}


def lookup_args(store: Store, number: str, scope: str, skip: bool
                ) -> tuple[list[str], list[str]]:
    """KEYS and ARGV of a lookup of `number` in `scope` for an SMS, as the store's lookup
    sends them: each list's (set, expiry, packed record); the slice; the number of lists;
    per list the base of a packed load the store's filter copy rules the number out of,
    or '' (always '' when not `skip`); '0' (no velocity counts); then the candidates
    (the number and its prefixes, each also limited to the channel)."""
    calls = store._skipping(store._probe((scope,)), [number]) if skip else \
        store._probe((scope,)).calls
    (call,) = calls
    candidates = [m for c in lookup_candidates(number) for m in (c, f"{c}#sms")]
    return list(call.keys), [str(ARGV_SLICE), *call.fixed, *candidates]


async def measure(url: str, work: Path, numbers: int, sample: int, rounds: int
                  ) -> dict[str, Any]:
    path = work / "numbers.txt"
    listed = write_numbers(path, numbers, 20261204, sample)
    # The next number after a listed one: unlisted but for a rare coincidence.
    probes = {"listed": listed, "unlisted": [f"+1{int(n[2:]) + 1}" for n in listed]}
    config = RedisConfig(url=url, timeout=60.0)
    store = Store(connect(config), config, StoreConfig(), url)
    await store.prepare()
    try:
        await Importer(store, ImportOptions("block", "global", "replace")).run(chunks(path))
        for scope in {scope for scope, _, _ in CASES.values()}:
            await store.lookup([listed[0]], [scope], "sms")
        await store.refresh_filters()
        client = store.client
        shas = {name: await client.script_load(text) for name, text in VARIANTS.items()}
        times: dict[str, dict[str, list[float]]] = {v: {c: [] for c in CASES}
                                                    for v in VARIANTS}
        skipped = {case: sum(any(lookup_args(store, n, scope, skip)[1][2:2 + len(LISTS)])
                             for n in probes[which])
                   for case, (scope, which, skip) in CASES.items()}
        for _ in range(rounds):
            for variant, sha in shas.items():
                for case, (scope, which, skip) in CASES.items():
                    await client.config_resetstat()
                    for number in probes[which]:
                        keys, argv = lookup_args(store, number, scope, skip)
                        await client.evalsha(sha, len(keys), *keys, *argv)
                    stats = (await client.info("commandstats"))["cmdstat_evalsha"]
                    times[variant][case].append(float(stats["usec_per_call"]))
        medians = {v: {c: round(statistics.median(t), 2) for c, t in by.items()}
                   for v, by in times.items()}
        return {"numbers": numbers, "lookups": len(listed), "rounds": rounds,
                "filter_copies": store.filter_copies(), "lookups_skipping_the_load": skipped,
                "usec_per_call_median": medians, "usec_per_call": times}
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numbers", type=int, default=1_000_000,
                        help="numbers in the packed load (default 1000000)")
    parser.add_argument("--lookups", type=int, default=2000,
                        help="listed numbers looked up per measurement (default 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds alternated (5)")
    parser.add_argument("--output", default="bench/results-script-cost.json")
    args = parser.parse_args()
    for name, text in VARIANTS.items():
        if name != "shipped" and text == LOOKUP_LUA:
            raise SystemExit(f"variant {name}: the shipped script no longer holds the line "
                             "it replaces (update bench/script_cost.py)")
    with tempfile.TemporaryDirectory(prefix="gk-script-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        url = server.start().url
        try:
            report = asyncio.run(measure(url, Path(tmp), args.numbers, args.lookups,
                                         args.rounds))
        finally:
            server.stop()
    for variant, by in report["usec_per_call_median"].items():
        print(f"{variant:14} " + "  ".join(f"{case}: {us:6.2f} us" for case, us
                                           in by.items()))
    print(f"lookups naming the load to skip: {report['lookups_skipping_the_load']}")
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()

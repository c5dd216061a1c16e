"""bench.scale's lookup cost: CPU per lookup (Redis, Gatekeeper, the lookup script)
with the big list loaded, against a small list and none."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from bench.scale_numbers import chunks
from gatekeeper.bulk import Importer, ImportOptions
from gatekeeper.store import Store


async def redis_cpu(store: Store) -> float:
    info = await store.client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


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

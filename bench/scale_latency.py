"""bench.scale's latency probes: lookups and whole sends timed one after another,
and their p99 before and during an import."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from bench.run import HOST, SEND_PATH
from gatekeeper.store import Store

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

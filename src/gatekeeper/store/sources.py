"""Where each list's data came from and when it is as of (its freshness record), and
the inventory of every list the store holds."""

from __future__ import annotations

import time
from typing import cast

from gatekeeper.freshness import ListSource
from gatekeeper.store.base import StoreBase
from gatekeeper.store.faults import guarded
from gatekeeper.types import ListName

# Keys scanned per SCAN call when listing the lists.
_SCAN_COUNT = 1000


class SourcesMixin(StoreBase):
    """The freshness records and the list inventory of the Store."""

    @guarded
    async def record_source(self, name: ListName, scope: str, origin: str,
                            as_of: float | None, max_age_days: float | None) -> None:
        """Record what a completed import loaded: its origin, the date its data is as of
        (now when not given) and the age after which it is stale."""
        now = time.time()
        key = self.keys.source(name, scope)
        await self.client.hset(key, mapping={
            "origin": origin, "as_of": repr(now if as_of is None else as_of),
            "max_age_days": "" if max_age_days is None else repr(max_age_days),
            "loaded_at": repr(now)})
        await self._settle(key)  # an import's last write: the whole import is on disk

    @guarded
    async def sources(self) -> list[ListSource]:
        """Every list's freshness record."""
        found: list[ListSource] = []
        async for key in self.client.scan_iter(match=f"{self.keys.prefix}source:*",
                                               count=_SCAN_COUNT):
            named = self.keys.list_of(key, "source")
            if named is None:
                continue
            raw = cast(dict[str, str], await self.client.hgetall(key))
            try:
                days = raw.get("max_age_days") or None
                found.append(ListSource(
                    named[0], named[1], raw.get("origin", ""), float(raw["as_of"]),
                    None if days is None else float(days),
                    float(raw.get("loaded_at") or raw["as_of"])))
            except (KeyError, ValueError):
                continue  # a record written by hand: no freshness rather than a fault
        return found

    @guarded
    async def list_names(self) -> list[tuple[ListName, str]]:
        """Every (list, scope) with entries, a packed load or a freshness record."""
        names: set[tuple[ListName, str]] = set()
        for kind in ("list", "packed", "source"):
            async for key in self.client.scan_iter(match=f"{self.keys.prefix}{kind}:*",
                                                   count=_SCAN_COUNT):
                named = self.keys.list_of(key, kind)
                if named is not None:
                    names.add(named)
        return sorted(names)

"""List writes and reads: add, remove, opt-in removal, expiry sweep, listings, metadata."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import replace
from typing import cast

from gatekeeper.store.base import StoreBase
from gatekeeper.store.entries import EntryMeta, Listed, ListItem, Page
from gatekeeper.store.faults import guarded
from gatekeeper.store.keys import LOAD_MARK_SECONDS, ListKeys
from gatekeeper.types import CHANNELS, ListName


class ListsMixin(StoreBase):
    """The list operations of the Store."""

    @guarded
    async def add(self, name: ListName, scope: str, items: Iterable[ListItem],
                  meta: EntryMeta) -> tuple[list[ListItem], list[ListItem]]:
        """Add entries; returns (added, already present). Idempotent; metadata and
        expiry are recorded for the added ones only."""
        return await self.add_to(self.keys.of(name, scope), items, meta.to_json(),
                                 meta.expires_at)

    @guarded
    async def add_to(self, keys: ListKeys, items: Iterable[ListItem], meta_value: str,
                     expires_at: float | None, loading: bool = False
                     ) -> tuple[list[ListItem], list[ListItem]]:
        """`add` into explicit keys, with stored metadata text. `loading`: the keys are a
        copy being loaded for a replace, which vanishes unless swapped in within
        LOAD_MARK_SECONDS."""
        wanted = list(dict.fromkeys(items))
        if not wanted:
            return [], []
        expiry = "" if expires_at is None else repr(float(expires_at))
        flags = await self._scripts.add(
            keys=[*keys.all, keys.loading, keys.journal],
            args=[meta_value, expiry, LOAD_MARK_SECONDS,
                  LOAD_MARK_SECONDS if loading else "",
                  *(self.keys.member(i) for i in wanted)])
        pairs = list(zip(wanted, cast(list[int], flags), strict=True))
        return [i for i, f in pairs if f], [i for i, f in pairs if not f]

    @guarded
    async def remove(self, name: ListName, scope: str, items: Iterable[ListItem],
                     every_channel: bool = False) -> tuple[list[ListItem], list[ListItem]]:
        """Remove entries; returns (removed, not present). Idempotent.

        With `every_channel`, an entry for every channel also takes its channel-limited
        variants with it.
        """
        wanted = list(dict.fromkeys(items))
        if not wanted:
            return [], []
        keys = self.keys.of(name, scope)
        groups: list[list[str]] = []
        for item in wanted:
            variants = [item]
            if every_channel and item.channel is None:
                variants += [ListItem(item.entry, c) for c in CHANNELS]
            groups.append([self.keys.member(v) for v in variants])
        async with self.client.pipeline(transaction=True) as pipe:
            for members in groups:
                pipe.zrem(keys.list, *members)
                pipe.hdel(keys.meta, *members)
                pipe.zrem(keys.expiry, *members)
            counts = await pipe.execute()
        removed = counts[::3]
        pairs = list(zip(wanted, removed, strict=True))
        return [i for i, n in pairs if n], [i for i, n in pairs if not n]

    @guarded
    async def remove_if_source(self, name: ListName, scope: str, item: ListItem,
                               source: str) -> bool:
        """Remove an entry only if it was added by `source` (an opt-in never lifts a
        manual block). True when removed."""
        done = await self._scripts.remove_if_source(
            keys=list(self.keys.of(name, scope).all),
            args=[self.keys.member(item), source, self.keys.batch_prefix])
        return bool(done)

    @guarded
    async def sweep_expired(self, per_call: int = 1000) -> int:
        """Remove expired entries from every list; returns how many went."""
        removed = 0
        async for key in self.client.scan_iter(match=self.keys.expiry_pattern, count=500):
            keys = self.keys.from_expiry(key)
            if keys is None:
                continue
            while True:
                gone = int(await self._scripts.sweep(keys=list(keys.all), args=[per_call]))
                removed += gone
                if gone < per_call:
                    break
        return removed

    async def _metas(self, values: Sequence[str | None]) -> list[EntryMeta | None]:
        """Decode stored metadata values, fetching shared bulk-load metadata once each."""
        batches = sorted({v[1:] for v in values if v and v.startswith("@")})
        shared: dict[str, str | None] = {}
        if batches:
            found = await self.client.mget([self.keys.batch_prefix + b for b in batches])
            shared = dict(zip(batches, cast(list[str | None], found), strict=True))
        return [EntryMeta.from_json(shared.get(v[1:]) if v and v.startswith("@") else v)
                for v in values]

    @guarded
    async def page(self, name: ListName, scope: str, cursor: str | None, limit: int) -> Page:
        """Up to `limit` live entries after `cursor` (a member), in order, with metadata."""
        keys = self.keys.of(name, scope)
        start = f"({cursor}" if cursor else "-"
        members = cast(list[str], await self.client.zrangebylex(
            keys.list, start, "+", start=0, num=limit + 1))
        shown = members[:limit]
        entries: list[Listed] = []
        if shown:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hmget(keys.meta, shown)
                pipe.zmscore(keys.expiry, shown)
                pipe.time()  # the server's clock, as lookups use: both agree on expiry
                values, expiries, (seconds, micros) = await pipe.execute()
            now = seconds + micros / 1_000_000
            metas = await self._metas(values)
            for member, meta, expiry in zip(shown, metas, expiries, strict=True):
                if expiry is not None and float(expiry) <= now:
                    continue  # expired: gone from listings at that instant
                shown_meta = meta if meta is None or expiry is None else \
                    replace(meta, expires_at=float(expiry))
                entries.append(Listed(self.keys.item(member), shown_meta))
        more = len(members) > limit
        return Page(tuple(entries), shown[-1] if more and shown else None)

    async def scan_entries(self, name: ListName, scope: str, chunk: int = 1000
                           ) -> AsyncIterator[Listed]:
        """Every live entry of a list in order, fetched a chunk at a time (bounded memory).
        Each chunk is one `page` call (so its faults are StoreUnavailable too)."""
        cursor: str | None = None
        while True:
            page = await self.page(name, scope, cursor, chunk)
            for entry in page.entries:
                yield entry
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    @guarded
    async def metadata(self, name: ListName, scope: str, items: Sequence[ListItem]
                       ) -> list[EntryMeta | None]:
        """The metadata of some entries of one list (None where unknown)."""
        if not items:
            return []
        keys = self.keys.of(name, scope)
        members = [self.keys.member(i) for i in items]
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.meta, members)
            pipe.zmscore(keys.expiry, members)
            values, expiries = await pipe.execute()
        metas = await self._metas(values)
        return [m if m is None or e is None else replace(m, expires_at=float(e))
                for m, e in zip(metas, expiries, strict=True)]

    @guarded
    async def count(self, name: ListName, scope: str) -> int:
        """How many members a list holds (expired ones not yet swept included)."""
        return int(await self.client.zcard(self.keys.list(name, scope)))

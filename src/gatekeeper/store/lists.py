"""List writes and reads: add, remove, opt-in removal, expiry sweep, listings, metadata."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import replace
from typing import cast

from gatekeeper.store.entries import EntryMeta, Listed, ListItem, Page
from gatekeeper.store.faults import guarded
from gatekeeper.store.keys import LOAD_MARK_SECONDS, ListKeys
from gatekeeper.store.packed import PackedMixin
from gatekeeper.types import CHANNELS, ListName

# A cursor into the packed part of a listing: this mark, then the last number shown.
_PACKED_CURSOR = "~"


class ListsMixin(PackedMixin):
    """The list operations of the Store."""

    @guarded
    async def add(self, name: ListName, scope: str, items: Iterable[ListItem],
                  meta: EntryMeta) -> tuple[list[ListItem], list[ListItem]]:
        """Add entries; returns (added, already present). Idempotent; metadata and
        expiry are recorded for the added ones only."""
        keys = self.keys.of(name, scope)
        added, existing = await self.add_to(keys, items, meta.to_json(), meta.expires_at)
        if added or existing:  # nothing asked, nothing sent
            await self._settle(keys.list)
        return added, existing

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
            keys=[*keys.all, keys.loading, keys.journal, keys.packed],
            args=[meta_value, expiry, LOAD_MARK_SECONDS,
                  LOAD_MARK_SECONDS if loading else "",
                  *(self.keys.member(i) for i in wanted)])
        pairs = list(zip(wanted, cast(list[int], flags), strict=True))
        return [i for i, f in pairs if f], [i for i, f in pairs if not f]

    @guarded
    async def remove(self, name: ListName, scope: str, items: Iterable[ListItem],
                     every_channel: bool = False, settle: bool = True
                     ) -> tuple[list[ListItem], list[ListItem]]:
        """Remove entries; returns (removed, not present). Idempotent.

        With `every_channel`, an entry for every channel also takes its channel-limited
        variants with it. `settle=False`: do not wait for the AOF (store/durability.py);
        the caller acknowledges later (an import, whose last write waits for it all).
        """
        wanted = list(dict.fromkeys(items))
        if not wanted:
            return [], []
        keys = self.keys.of(name, scope)
        args: list[str | int] = []
        for item in wanted:
            variants = [item]
            if every_channel and item.channel is None:
                variants += [ListItem(item.entry, c) for c in CHANNELS]
            args += [len(variants), *(self.keys.member(v) for v in variants)]
        removed = cast(list[int], await self._scripts.remove(
            keys=[*keys.all, keys.packed], args=args))
        if settle:
            await self._settle(keys.list)
        pairs = list(zip(wanted, removed, strict=True))
        return [i for i, n in pairs if n], [i for i, n in pairs if not n]

    @guarded
    async def remove_if_source(self, name: ListName, scope: str, item: ListItem,
                               source: str) -> bool:
        """Remove an entry only if it was added by `source` (an opt-in never lifts a
        manual block). True when removed."""
        keys = self.keys.of(name, scope)
        done = await self._scripts.remove_if_source(
            keys=list(keys.all),
            args=[self.keys.member(item), source, self.keys.batch_prefix(scope)])
        await self._settle(keys.list)
        return bool(done)

    @guarded
    async def sweep_expired(self, per_call: int = 1000) -> int:
        """Remove expired entries from every list; returns how many went. Also deletes
        the buckets of replaced packed loads left in the trash."""
        await self.purge_packed()
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

    async def _metas(self, values: Sequence[str | None], scope: str
                     ) -> list[EntryMeta | None]:
        """Decode stored metadata values of a scope's list, fetching shared bulk-load
        metadata once each."""
        batches = sorted({v[1:] for v in values if v and v.startswith("@")})
        shared: dict[str, str | None] = {}
        if batches:
            prefix = self.keys.batch_prefix(scope)
            found = await self.client.mget([prefix + b for b in batches])
            shared = dict(zip(batches, cast(list[str | None], found), strict=True))
        return [EntryMeta.from_json(shared.get(v[1:]) if v and v.startswith("@") else v)
                for v in values]

    async def page(self, name: ListName, scope: str, cursor: str | None, limit: int,
                   prefix: str | None = None) -> Page:
        """Up to `limit` live entries after `cursor`, with metadata: the list's set in
        member order, then its packed load in number order (cursor `~` + number); with
        `prefix` (`+` and digits), only entries starting with it."""
        keys = self.keys.of(name, scope)
        entries: list[Listed] = []
        after: str | None = None
        if cursor is not None and cursor.startswith(_PACKED_CURSOR):
            after = cursor[len(_PACKED_CURSOR):] or None
        else:
            entries, following = await self._set_page(keys, scope, cursor, limit, prefix)
            if following is not None:
                return Page(tuple(entries), following)
            if len(entries) == limit:  # the set ends here: the packed load may follow
                load = await self.packed_load(keys)
                more = load is not None and load.count > 0
                return Page(tuple(entries), _PACKED_CURSOR if more else None)
        packed, more = await self.packed_listing(keys, after, limit - len(entries), prefix)
        entries += packed
        last = packed[-1].item.entry if packed else ""
        return Page(tuple(entries), f"{_PACKED_CURSOR}{last}" if more else None)

    @guarded
    async def _set_page(self, keys: ListKeys, scope: str, cursor: str | None, limit: int,
                        prefix: str | None = None) -> tuple[list[Listed], str | None]:
        """Up to `limit` live entries of the list's set after `cursor` (a member), with
        metadata (only members starting with `prefix`, when given); and the cursor of the
        next page when the set has more."""
        start = f"({cursor}" if cursor else "-"
        end = "+"
        if prefix is not None:
            # Members are ASCII: every one starting with the prefix sorts below \xff.
            end = f"[{prefix}\xff"
            if cursor is None or cursor < prefix:
                start = f"[{prefix}"
        members = cast(list[str], await self.client.zrangebylex(
            keys.list, start, end, start=0, num=limit + 1))
        shown = members[:limit]
        entries: list[Listed] = []
        if shown:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hmget(keys.meta, shown)
                pipe.zmscore(keys.expiry, shown)
                pipe.time()  # the server's clock, as lookups use: both agree on expiry
                values, expiries, (seconds, micros) = await pipe.execute()
            now = seconds + micros / 1_000_000
            metas = await self._metas(values, scope)
            for member, meta, expiry in zip(shown, metas, expiries, strict=True):
                if expiry is not None and float(expiry) <= now:
                    continue  # expired: gone from listings at that instant
                shown_meta = meta if meta is None or expiry is None else \
                    replace(meta, expires_at=float(expiry))
                entries.append(Listed(self.keys.item(member), shown_meta))
        more = len(members) > limit
        return entries, (shown[-1] if more and shown else None)

    async def scan_entries(self, name: ListName, scope: str, chunk: int = 1000
                           ) -> AsyncIterator[Listed]:
        """Every live entry of a list in order (the set, then the packed load), fetched
        a chunk or a bucket at a time (bounded memory); faults are StoreUnavailable."""
        async for entry in self.own_entries(name, scope, chunk):
            yield entry
        load = await self.packed_load(self.keys.of(name, scope))
        if load is not None:
            async for number in self.packed_entries(load):
                yield Listed(ListItem(number), load.meta)

    async def own_entries(self, name: ListName, scope: str, chunk: int = 1000
                          ) -> AsyncIterator[Listed]:
        """Every live entry of a list's set (those added one by one or with metadata of
        their own; not its packed load), in order, a chunk at a time."""
        keys = self.keys.of(name, scope)
        cursor: str | None = None
        while True:
            entries, cursor = await self._set_page(keys, scope, cursor, chunk)
            for entry in entries:
                yield entry
            if cursor is None:
                break

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
        metas = await self._metas(values, scope)
        shown = [m if m is None or e is None else replace(m, expires_at=float(e))
                 for m, e in zip(metas, expiries, strict=True)]
        if any(m is None for m in shown):
            load, packed = await self.packed_members(keys, items)
            if load is not None:
                shown = [load.meta if m is None and p else m
                         for m, p in zip(shown, packed, strict=True)]
        return shown

    @guarded
    async def counts(self, lists: Sequence[tuple[ListName, str]]) -> list[int]:
        """`count` of several lists, in one round trip."""
        async with self.client.pipeline(transaction=False) as pipe:
            for name, scope in lists:
                keys = self.keys.of(name, scope)
                pipe.zcard(keys.list)
                pipe.hget(keys.packed, "count")
            replies = await pipe.execute()
        return [int(size) + int(packed or 0)
                for size, packed in zip(replies[::2], replies[1::2], strict=True)]

    @guarded
    async def count(self, name: ListName, scope: str) -> int:
        """How many entries a list holds (expired ones not yet swept included)."""
        keys = self.keys.of(name, scope)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.list)
            pipe.hget(keys.packed, "count")
            size, packed = await pipe.execute()
        return int(size) + int(packed or 0)

"""Packed loads in Redis: writing one (for a replace import), reading its record and its
members (listings, export, metadata), and deleting replaced ones. The encoding itself is
store/packing.py; the lookup, add, remove and swap scripts read it in Lua."""

from __future__ import annotations

import asyncio
import contextlib
import time
from bisect import bisect_right
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ResponseError

from gatekeeper.store.base import StoreBase
from gatekeeper.store.dumps import RESTORE_MAX, intset_dump, restore_command
from gatekeeper.store.entries import EntryMeta, Listed, ListItem
from gatekeeper.store.faults import StoreUnavailable, guarded
from gatekeeper.store.filter import FilterBuilder, NumberFilter, words_of
from gatekeeper.store.filter import spec as filter_spec
from gatekeeper.store.keys import LOAD_MARK_SECONDS, ListKeys
from gatekeeper.store.packing import (
    DEFAULT_INTSET_ENTRIES,
    MAX_DIGITS,
    REST_DIGITS,
    PackedBuilder,
    command,
    joined,
    sadd_commands,
    split,
)
from gatekeeper.store.pipe import resp
from gatekeeper.store.writer import _Writer

# Buckets named per ZADD to a load's index.
_INDEX_BATCH = 1000
# Buckets deleted per call when a replaced load is purged.
_PURGE_SLICE = 500
# Bytes of a load's filter per field of its hash: each written and read by one call.
# Fields, not one string grown by APPEND: growing a big string makes Redis copy it
# (measured: 8 to 20 ms calls on Redis 7 past 10 MiB), holding every lookup up.
_FILTER_PIECE = 1 << 20
# Fields deleted per call when a replaced load's filter goes (each frees a piece).
_FILTER_PURGE = 8


@dataclass(frozen=True, slots=True)
class PackedLoad:
    """The record of a list's packed load."""

    base: str
    count: int
    meta: EntryMeta
    rest: int = REST_DIGITS
    """Trailing digits its members hold (store/packing.py)."""

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> PackedLoad | None:
        """From the record's hash; None when there is none."""
        base = raw.get("base")
        if not base:
            return None
        note = raw.get("note") or None
        return cls(base, int(raw.get("count") or 0), EntryMeta(
            source=raw.get("source") or "import", added_at=float(raw.get("loaded_at") or 0),
            added_by=raw.get("loaded_by") or None, note=note),
            int(raw.get("rest") or REST_DIGITS))


async def _restores(connection: AbstractConnection, probe: str) -> bool:
    """Whether the server takes a bucket as RESTORE (store/dumps.py): one tried on
    `probe` (a key of the load's own, so of its slot on a cluster), then deleted. An
    ACL or a renamed command refuses it: the load goes as SADD."""
    dump = intset_dump(np.array([1], dtype=np.int32))
    if dump is None:
        return False
    await connection.send_packed_command([restore_command(probe, dump),
                                          command("DEL", probe)], check_health=False)
    try:
        await connection.read_response()
    except ResponseError:
        return False
    finally:
        await connection.read_response()
    return True


class PackedMixin(StoreBase):
    """The packed-load operations of the Store."""

    @guarded
    async def write_packed(self, target: ListKeys, builder: PackedBuilder,
                           meta: EntryMeta) -> int:
        """Write a load's numbers as packed buckets under `target` (a copy being
        loaded), split as suits the server's intset limit; returns how many distinct
        numbers it holds. The load is registered as pending first: if it is never
        swapped in or dropped (its importer died), the expiry sweep deletes it after
        LOAD_MARK_SECONDS."""
        limit = await self.intset_limit() or DEFAULT_INTSET_ENTRIES
        rest = builder.plan(limit)
        base, ttl = target.base, str(LOAD_MARK_SECONDS)
        count = 0
        sieve = FilterBuilder(builder.distinct())
        async with self._connection_for(target.packed) as connection:
            restore = await _restores(connection, f"{base}probe")
            writer = _Writer(connection)
            await writer.send(command("ZADD", target.pending,
                                      repr(time.time() + LOAD_MARK_SECONDS), base))
            heads: list[str] = []
            passes = 0
            for head, bucket in builder.bucket_arrays(sieve.add):
                if sieve.passes != passes:  # a few ms of numpy: let requests in
                    passes = sieve.passes
                    await asyncio.sleep(0)
                key = f"{base}{head}"
                count += len(bucket)
                dump = intset_dump(bucket[:RESTORE_MAX]) if restore else None
                # The first RESTORE_MAX members restored, the rest (or all) added.
                tail = bucket if dump is None else bucket[RESTORE_MAX:]
                if dump is not None:
                    await writer.send(restore_command(key, dump))
                for payload in sadd_commands(key, tail):
                    await writer.send(payload)
                heads += (str(head), str(head))
                if len(heads) >= 2 * _INDEX_BATCH:
                    await writer.send(command("ZADD", f"{base}index", *heads))
                    heads = []
            if heads:
                await writer.send(command("ZADD", f"{base}index", *heads))
            # Written before the record names it, in pieces (no call holds Redis long).
            data = sieve.payload()
            for index, start in enumerate(range(0, len(data), _FILTER_PIECE)):
                await writer.send(resp(["HSET", f"{base}filter", str(index),
                                        data[start:start + _FILTER_PIECE]]))
            fields = {"base": base, "count": str(count), "rest": str(rest),
                      "filter": filter_spec(sieve.size),
                      "source": meta.source, "loaded_at": repr(meta.added_at),
                      "loaded_by": meta.added_by or "", "note": meta.note or ""}
            await writer.send(command("HSET", target.packed,
                                      *(x for kv in fields.items() for x in kv)))
            await writer.send(command("EXPIRE", target.packed, ttl))
            await writer.drain()
        return count

    @contextlib.asynccontextmanager
    async def _connection_for(self, key: str) -> AsyncIterator[AbstractConnection]:
        """A connection of the client's own to the server holding `key` (on a cluster,
        the master of its slot: every key of a load shares it), dropped on any error
        (replies may be left unread on it)."""
        if not self.keys.cluster:
            pool = self.client.connection_pool
            connection = await pool.get_connection()  # type: ignore[no-untyped-call]
            try:
                yield connection
            except BaseException:
                await connection.disconnect()
                raise
            finally:
                await pool.release(connection)
            return
        cluster = cast(RedisCluster, self.client)
        await cluster.initialize()
        node = cluster.get_node_from_key(key)
        if node is None:
            raise StoreUnavailable(f"no cluster node serves {key!r}")
        own = node.acquire_connection()
        try:
            yield own
        except BaseException:
            await own.disconnect()
            raise
        finally:
            node.release(own)

    @guarded
    async def intset_limit(self) -> int | None:
        """The server's `set-max-intset-entries`: a packed bucket bigger than this is a
        hash table (about 15 times the memory, still exact). None when CONFIG is
        refused (a managed Redis)."""
        try:
            found = cast(dict[str, str], await self.client.config_get(
                "set-max-intset-entries"))
        except ResponseError:
            return None
        value = found.get("set-max-intset-entries")
        return int(value) if value and value.isdigit() else None

    @guarded
    async def packed_load(self, keys: ListKeys) -> PackedLoad | None:
        """The record of a list's packed load, if it has one."""
        raw = cast(dict[str, str], await self.client.hgetall(keys.packed))
        return PackedLoad.from_hash(raw)

    @guarded
    async def packed_filter_fields(self, records: Sequence[str]
                                   ) -> list[tuple[str | None, int | None]]:
        """For each packed-load record: its load's base and the size in words of the
        load's filter (None where there is no load, or a load with no filter)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for record in records:
                pipe.hmget(record, ["base", "filter"])
            rows = cast(list[list[str | None]], await pipe.execute())
        return [(base or None, words_of(field) if base else None) for base, field in rows]

    @guarded
    async def packed_filter(self, record: str, base: str, words: int) -> NumberFilter | None:
        """The filter of the packed load `base` (the load of `record`), read a piece (a
        field of its hash) per call; None when it is gone (its load replaced and purged
        meanwhile)."""
        size = words * 8
        pieces: list[bytes] = []
        async with self._connection_for(record) as connection:
            for index in range(-(-size // _FILTER_PIECE)):
                await connection.send_command("HGET", f"{base}filter", index)
                piece = await connection.read_response(disable_decoding=True)
                if piece is None:
                    return None  # gone: the load was replaced and purged meanwhile
                pieces.append(cast(bytes, piece))
        data = b"".join(pieces)
        return NumberFilter(data) if len(data) == size else None

    @guarded
    async def packed_heads(self, load: PackedLoad, after: int | None, limit: int,
                           until: int | None = None) -> list[int]:
        """Up to `limit` bucket heads of a load, in order, after `after` (and at most
        `until`)."""
        low = "-inf" if after is None else f"({after}"
        heads = cast(list[str], await self.client.zrangebyscore(
            f"{load.base}index", low, "+inf" if until is None else str(until), start=0,
            num=limit))
        return [int(h) for h in heads]

    @guarded
    async def packed_bucket(self, load: PackedLoad, head: int) -> list[int]:
        """The members of one bucket, sorted."""
        members = await self.client.smembers(f"{load.base}{head}")
        return sorted(int(m) for m in members)

    async def packed_entries(self, load: PackedLoad, after: str | None = None
                             ) -> AsyncIterator[str]:
        """Every number of a packed load, in order (after the number `after`), a bucket
        at a time."""
        start = split(after, load.rest) if after else None
        head_after = None if start is None else start[0] - 1
        while True:
            heads = await self.packed_heads(load, head_after, 64)
            if not heads:
                return
            for head in heads:
                members = await self.packed_bucket(load, head)
                first = 0
                if start is not None and head == start[0]:
                    first = bisect_right(members, start[1])
                for member in members[first:]:
                    yield joined(head, member, load.rest)
            head_after = heads[-1]

    async def packed_prefixed(self, load: PackedLoad, prefix: str, after: str | None
                              ) -> AsyncIterator[str]:
        """The numbers of a packed load that start with `prefix` (`+` and digits), in
        order, after the number `after`. For each length they can have, they are one
        range of integers, so only the buckets in those ranges are read."""
        digits = prefix[1:]
        floor = int(after[1:]) if after else -1
        scale = 10 ** load.rest
        for extra in range(MAX_DIGITS - len(digits) + 1):
            low, high = int(digits) * 10 ** extra, (int(digits) + 1) * 10 ** extra - 1
            if high <= floor:
                continue
            low = max(low, floor + 1)
            head_after = low // scale - 1
            while heads := await self.packed_heads(load, head_after, 64, high // scale):
                for head in heads:
                    for member in await self.packed_bucket(load, head):
                        if low <= head * scale + member <= high:
                            yield joined(head, member, load.rest)
                head_after = heads[-1]

    async def packed_listing(self, keys: ListKeys, after: str | None, limit: int,
                             prefix: str | None = None) -> tuple[list[Listed], bool]:
        """Up to `limit` entries of the packed load after the number `after` (only those
        starting with `prefix`, when given); and whether more follow."""
        load = await self.packed_load(keys)
        if load is None:
            return [], False
        shown: list[Listed] = []
        numbers = self.packed_entries(load, after) if prefix is None else \
            self.packed_prefixed(load, prefix, after)
        async for number in numbers:
            if len(shown) == limit:
                return shown, True
            shown.append(Listed(ListItem(number), load.meta))
        return shown, False

    @guarded
    async def packed_members(self, keys: ListKeys, items: Sequence[ListItem]
                             ) -> tuple[PackedLoad | None, list[bool]]:
        """Which of `items` the list's packed load holds (and the load's record)."""
        load = await self.packed_load(keys)
        if load is None:
            return None, [False] * len(items)
        parts = [None if i.channel is not None else split(i.entry, load.rest)
                 for i in items]
        async with self.client.pipeline(transaction=False) as pipe:
            for part in parts:
                if part is not None:
                    pipe.sismember(f"{load.base}{part[0]}", str(part[1]))
            found = iter(await pipe.execute())
        return load, [part is not None and bool(next(found)) for part in parts]

    @guarded
    async def purge_packed(self, limit: int = 64) -> int:
        """Delete the buckets of up to `limit` replaced or abandoned packed loads (the
        trash); returns how many loads went."""
        await self._abandon_stale_loads()
        gone = 0
        async for trash in self._trashes():
            bases = cast(list[str], await self.client.srandmember(trash, limit - gone))
            for base in bases:
                while True:
                    heads = cast(list[str], await self.client.zrange(
                        f"{base}index", 0, _PURGE_SLICE - 1))
                    if not heads:
                        break
                    await self.client.unlink(*(f"{base}{h}" for h in heads))
                    await self.client.zrem(f"{base}index", *heads)
                await self._purge_filter(f"{base}filter")
                await self.client.srem(trash, base)
            gone += len(bases)
            if gone >= limit:
                break
        return gone

    async def _purge_filter(self, key: str) -> None:
        """Delete a load's filter a few pieces per call (each call frees little)."""
        fields = cast(list[str], await self.client.hkeys(key))
        for start in range(0, len(fields), _FILTER_PURGE):
            await self.client.hdel(key, *fields[start:start + _FILTER_PURGE])

    async def _abandon_stale_loads(self) -> None:
        """Loads still pending past their instant (their importer died) go to the
        trash."""
        if self.keys.cluster:
            pendings = [k async for k in self.client.scan_iter(
                match=self.keys.pending_pattern, count=500)]
        else:
            pendings = [self.keys.pending_pattern]
        now = time.time()
        for pending in pendings:
            stale = cast(list[str], await self.client.zrangebyscore(pending, "-inf", now))
            for base in stale:
                await self.client.sadd(self.keys.trash_of(pending), base)
                await self.client.zrem(pending, base)

    async def _trashes(self) -> AsyncIterator[str]:
        """The trash key, or on a cluster every scope's (found by SCAN on every node)."""
        if not self.keys.cluster:
            yield self.keys.trash_pattern
            return
        async for key in self.client.scan_iter(match=self.keys.trash_pattern, count=500):
            yield key


def load_meta(source: str, added_by: str | None, note: str | None) -> EntryMeta:
    """The metadata a packed load records (now)."""
    return EntryMeta(source=source, added_at=time.time(), added_by=added_by, note=note)

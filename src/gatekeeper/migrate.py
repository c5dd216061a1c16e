"""`gatekeeper store migrate --to URL`: copy every list of the configured store into
another store (for example from one Redis to a Redis Cluster, whose keys are laid out
differently), each list swapped in whole on the target as a replace import is.

Entries keep their metadata and expiry; a packed load is copied as a packed load (with
its load record); freshness records keep their origin, `as_of` and `max_age_days`. The
attempts stream (history, not lists) is not copied. Each list is counted on both sides
afterwards: a difference is reported as a failure, never passed over.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace

from gatekeeper.store import EntryMeta, ListItem, ListKeys, PackedBuilder, Store
from gatekeeper.types import ListName

# Entries of the source's set layout read (and written) per page.
PAGE = 2000


@dataclass(frozen=True, slots=True)
class Copied:
    """One list copied: its entries on each side after the copy."""

    name: ListName
    scope: str
    source_count: int
    target_count: int

    @property
    def ok(self) -> bool:
        """Whether the target holds as many entries as the source."""
        return self.source_count == self.target_count


async def copy_list(source: Store, target: Store, name: ListName, scope: str) -> Copied:
    """Copy one list; the target's list is replaced whole (old or new, never half)."""
    live = target.keys.of(name, scope)
    staging = target.keys.staging(name, scope)
    await target.begin_load(live, staging)
    try:
        groups: dict[tuple[EntryMeta | None, float | None], list[ListItem]] = {}
        async for entry in source.own_entries(name, scope, PAGE):
            meta = entry.meta
            key = (None, None) if meta is None else (replace(meta, expires_at=None),
                                                     meta.expires_at)
            groups.setdefault(key, []).append(entry.item)
            if sum(len(items) for items in groups.values()) >= PAGE:
                await _write(target, staging, scope, groups)
                groups = {}
        await _write(target, staging, scope, groups)
        load = await source.packed_load(source.keys.of(name, scope))
        if load is not None:
            builder = PackedBuilder()
            async for number in source.packed_entries(load):
                builder.add(number)
            if len(builder):
                await target.write_packed(staging, builder, load.meta)
        await target.swap(live, staging)
    except BaseException:
        with contextlib.suppress(Exception):
            await target.drop(live, staging)
        raise
    return Copied(name, scope, await source.count(name, scope),
                  await target.count(name, scope))


async def _write(target: Store, staging: ListKeys, scope: str,
                 groups: dict[tuple[EntryMeta | None, float | None], list[ListItem]]
                 ) -> None:
    """Add a page of entries to the copy being loaded, one call per metadata; metadata
    shared by several entries is stored once (as a bulk load's is)."""
    for (meta, expires_at), items in groups.items():
        if meta is None:
            value = ""  # the source knew nothing about these entries: nor does the copy
        elif len(items) > 1:
            value = await target.save_batch(meta, scope)
        else:
            value = meta.to_json()
        await target.add_to(staging, items, value, expires_at, loading=True)


async def migrate(source: Store, target: Store,
                  on_list: Callable[[Copied], None] | None = None) -> list[Copied]:
    """Copy every list of `source` (and its freshness record) into `target`."""
    copied: list[Copied] = []
    for name, scope in await source.list_names():
        done = await copy_list(source, target, name, scope)
        copied.append(done)
        if on_list is not None:
            on_list(done)
    for record in await source.sources():
        await target.record_source(record.name, record.scope, record.origin,
                                   record.as_of, record.max_age_days)
    return copied

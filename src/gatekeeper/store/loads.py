"""Replace imports: a list loaded beside the live one and swapped in whole, and the
metadata such a bulk load shares."""

from __future__ import annotations

import uuid

from gatekeeper.store.entries import EntryMeta
from gatekeeper.store.faults import guarded
from gatekeeper.store.keys import LOAD_MARK_SECONDS, ListKeys
from gatekeeper.store.packed import PackedMixin


class LoadsMixin(PackedMixin):
    """The bulk-load operations of the Store."""

    @guarded
    async def save_batch(self, meta: EntryMeta, scope: str) -> str:
        """Store metadata shared by a bulk load into a scope once; returns the value
        entries carry."""
        batch = uuid.uuid4().hex
        await self.client.set(self.keys.batch_prefix(scope) + batch, meta.to_json())
        return "@" + batch

    @guarded
    async def begin_load(self, live: ListKeys, loaded: ListKeys) -> None:
        """Mark a replace of `live` by `loaded` as under way: from now on, entries added
        to the live list are journaled and survive the swap."""
        await self._scripts.begin_load(keys=[live.loading],
                                       args=[loaded.list, LOAD_MARK_SECONDS])

    @guarded
    async def swap(self, live: ListKeys, loaded: ListKeys) -> int:
        """Atomically replace a list by a loaded copy (its set and its packed load),
        keeping entries added to the live list since `begin_load`; returns the new list's
        size. The replaced packed load goes to the trash (see `purge_packed`)."""
        size, old = await self._scripts.swap(
            keys=[*live.all, *loaded.all, live.loading, live.journal, live.packed,
                  loaded.packed, live.trash, live.pending],
            args=[loaded.list])
        await self._settle(live.list)
        if old:
            await self.purge_packed()
        return int(size)

    @guarded
    async def drop(self, live: ListKeys, loaded: ListKeys) -> None:
        """Delete an abandoned load's keys and unmark it (its packed buckets, if any,
        go to the trash). Safe after a swap whose
        reply was lost: a load that is live is kept."""
        await self._scripts.drop_packed(
            keys=[live.packed, loaded.packed, live.trash, live.pending], args=[loaded.base])
        await self.client.delete(*loaded.all)  # gone already if the swap happened
        await self._scripts.end_load(keys=[live.loading, live.journal], args=[loaded.list])
        await self.purge_packed()

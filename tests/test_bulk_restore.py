"""Restoring an export at the store level: rows keep their own metadata, grouped into
shared records, first row wins, refusals (a note or expiry with an export, expired rows,
nothing to load), and bounded memory whatever the number of distinct metadata."""

from __future__ import annotations

import asyncio
import json
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

import fakeredis
import pytest

from gatekeeper import bulk
from gatekeeper.bulk import (
    EmptyImport,
    Importer,
    ImportOptions,
    MetadataConflict,
    NoValidEntries,
)
from gatekeeper.config import RedisConfig, StoreConfig
from gatekeeper.store import EntryMeta, Keys, ListItem, ListKeys, Store, StoreUnavailable
from gatekeeper.times import iso
from tests.conftest import leftovers, list_members

PREFIX = "r:"
KEYS = Keys(PREFIX)
E = ListItem
HEADER = "entry,channel,source,added_at,added_by,note,expires_at\n"
T = "2024-01-01T00:00:00+00:00"
T_AT = 1704067200.0
SOON_AT = float(int(time.time()) + 30 * 24 * 3600)
SOON = iso(SOON_AT)


@pytest.fixture
def store() -> Store:
    """A store on an empty fakeredis."""
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)
    return Store(client, RedisConfig(key_prefix=PREFIX, timeout=10.0), StoreConfig())


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """`data` as an async stream of chunks."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


def export(*rows: str) -> bytes:
    """An export file: the header, then these rows."""
    return (HEADER + "".join(f"{r}\n" for r in rows)).encode()


async def restore(store: Store, data: bytes, *, mode: Any = "add", batch_size: int = 5000,
                  **options: Any) -> bulk.ImportReport:
    """Import `data` into block/global as the key `restorer`."""
    importer = Importer(store, ImportOptions("block", "global", mode, added_by="restorer",
                                             **options), batch_size=batch_size)
    return await importer.run(chunks_of(data))


async def stored_values(store: Store) -> dict[str, str]:
    """Each member's stored metadata value (inline JSON, `@record` or empty)."""
    return cast(dict[str, str], await store.client.hgetall(KEYS.of("block", "global").meta))


def counting(monkeypatch: pytest.MonkeyPatch, store: Store, method: str) -> list[int]:
    """Count the calls to one of the store's methods (one element per call)."""
    calls: list[int] = []
    real = getattr(store, method)

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return await real(*args, **kwargs)

    monkeypatch.setattr(store, method, counted)
    return calls


async def test_rows_keep_their_metadata_in_shared_records(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows with the same metadata go in one store call and share one stored record; a
    lone row keeps its metadata inline; a row without metadata stores none. The file's
    `added_by` is kept, not the importing key's."""
    adds = counting(monkeypatch, store, "add_to")
    report = await restore(store, export(
        f"+33612345678,both,opt-out,{T},sms-in,STOP,",
        f"+33612345679,sms,api,{T},ops,\"a, b\",{SOON}",
        f"+33612345680,both,opt-out,{T},sms-in,STOP,",
        "+33612345681,voice,,,,,",
        f"+33612345682,both,opt-out,{T},sms-in,STOP,"))
    assert (report.added, report.failed, report.restored) == (5, 0, True)
    assert len(adds) == 3
    values = await stored_values(store)
    shared = {values[m] for m in ("+33612345678", "+33612345680", "+33612345682")}
    assert len(shared) == 1
    [record] = shared
    assert record.startswith("@")
    assert json.loads(str(await store.client.get(KEYS.batch_prefix("global") + record[1:]))) == {
        "source": "opt-out", "added_at": T_AT, "added_by": "sms-in", "note": "STOP"}
    assert json.loads(values["+33612345679#sms"])["note"] == "a, b"
    assert values["+33612345681#voice"] == ""
    metas = await store.metadata("block", "global", [
        E("+33612345678"), E("+33612345679", "sms"), E("+33612345681", "voice")])
    assert metas == [EntryMeta("opt-out", T_AT, "sms-in", "STOP"),
                     EntryMeta("api", T_AT, "ops", "a, b", SOON_AT), None]


async def test_a_shared_record_is_reused_by_later_batches(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows of one metadata spread over several batches still share one record."""
    saves = counting(monkeypatch, store, "save_batch")
    rows = [f"+336123456{n:02d},both,import,{T},ops,,"for n in range(10)]
    report = await restore(store, export(*rows), batch_size=3)
    assert report.added == 10
    assert len(saves) == 1
    assert len(set((await stored_values(store)).values())) == 1


@pytest.mark.parametrize("batch_size", [1, 2, 5000])
async def test_a_repeated_entry_keeps_its_first_row(store: Store, batch_size: int) -> None:
    """The first row of an entry wins, as an add's first occurrence does; the repeat
    counts as existing."""
    report = await restore(store, export(
        f"+33612345678,both,api,{T},first,,",
        f"+33612345679,both,import,{T},other,,",
        f"+33612345678,both,import,{T},other,,"), batch_size=batch_size)
    assert (report.added, report.existing) == (2, 1)
    [meta] = await store.metadata("block", "global", [E("+33612345678")])
    assert meta is not None
    assert meta.added_by == "first"


async def test_restore_in_add_mode_leaves_listed_entries_as_they_are(store: Store) -> None:
    """An add is idempotent with an export too: a listed entry keeps its metadata."""
    await store.add("block", "global", [E("+33612345678")],
                    EntryMeta("api", 5.0, "admin", "kept"))
    report = await restore(store, export(f"+33612345678,both,import,{T},ops,new,",
                                         f"+33612345679,both,import,{T},ops,new,"))
    assert (report.added, report.existing) == (1, 1)
    metas = await store.metadata("block", "global", [E("+33612345678"), E("+33612345679")])
    assert [m.note if m else None for m in metas] == ["kept", "new"]


@pytest.mark.parametrize("mode", ["add", "replace"])
@pytest.mark.parametrize("given", [{"note": "x"}, {"expires_at": time.time() + 3600}],
                         ids=["note", "expiry"])
async def test_a_note_or_expiry_with_an_export_is_refused(
        store: Store, mode: str, given: dict[str, Any]) -> None:
    """Rows bring their own: which would apply is a guess. Refused at the header, before
    anything is written."""
    with pytest.raises(MetadataConflict, match="export"):
        await restore(store, export(f"+33612345678,both,api,{T},ops,,"), mode=mode,
                      **given)
    assert await store.client.keys("*") == []


async def test_rows_expired_at_import_fail_and_the_others_load(store: Store) -> None:
    """A row whose expiry has passed is not loaded (it would never match): a failure
    naming the expiry, with its line number."""
    report = await restore(store, export(
        f"+33612345678,both,api,{T},ops,,2020-01-01T00:00:00+00:00",
        f"+33612345679,both,api,{T},ops,,{SOON}"), mode="replace")
    assert (report.added, report.failed, report.size) == (1, 1, 1)
    assert report.failures[0].to_json() == {
        "line": 2, "entry": "+33612345678",
        "reason": "expired at 2020-01-01T00:00:00+00:00: not loaded"}


async def test_a_replace_by_expired_rows_only_is_refused_even_with_allow_empty(
        store: Store) -> None:
    """Every row failed (expired): not an empty file, so allow_empty does not apply."""
    await store.add("block", "global", [E("+4479*")], EntryMeta("api", 1.0))
    with pytest.raises(NoValidEntries):
        await restore(store, export(f"+33612345678,both,api,{T},ops,,2020-01-01"),
                      mode="replace", allow_empty=True)
    assert await list_members(store) == {"+4479*"}


async def test_a_replace_by_an_export_of_an_empty_list_needs_allow_empty(
        store: Store) -> None:
    """The export of an empty list is its header: refused, unless allow_empty."""
    await store.add("block", "global", [E("+4479*")], EntryMeta("api", 1.0))
    with pytest.raises(EmptyImport):
        await restore(store, export(), mode="replace")
    assert await store.count("block", "global") == 1
    report = await restore(store, export(), mode="replace", allow_empty=True)
    assert (report.size, report.restored) == (0, True)
    assert await store.count("block", "global") == 0


async def test_a_store_fault_among_concurrent_writes_leaves_the_list(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows of distinct metadata are written several at a time: a fault in one of them
    is raised as itself, after the others ended, and the replace leaves the live list
    and no staging keys."""
    await store.add("block", "global", [E("+4479*")], EntryMeta("api", 1.0))
    real_add_to = store.add_to
    calls = 0

    async def failing(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 20:
            raise StoreUnavailable("connection reset")
        await asyncio.sleep(0.001)
        return await real_add_to(*args, **kwargs)

    monkeypatch.setattr(store, "add_to", failing)
    rows = [f"+3361234{n:04d},both,api,{n},ops,,"for n in range(60)]
    with pytest.raises(StoreUnavailable):
        await restore(store, export(*rows), mode="replace", batch_size=30)
    await asyncio.sleep(0.01)
    assert await list_members(store) == {"+4479*"}
    assert await leftovers(store.client, PREFIX) == []


async def _peak_memory(store: Store, count: int) -> int:
    """Restore `count` rows, each metadata shared by two consecutive rows (so a new
    shared record every two rows); the peak traced memory."""
    async def body() -> AsyncIterator[bytes]:
        yield HEADER.encode()
        for start in range(0, count, 2000):
            yield b"".join(b"+3361%07d,sms,import,%d,ops,note %d,\n" % (n, n // 2, n // 2)
                           for n in range(start, start + 2000))

    tracemalloc.start()
    try:
        report = await Importer(store, ImportOptions("block", "global"),
                                batch_size=2000).run(body())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (report.added, report.failed) == (count, 0)
    return peak


async def test_restore_memory_stays_bounded(monkeypatch: pytest.MonkeyPatch,
                                            store: Store) -> None:
    """Tens of thousands of distinct metadata: the importer's memory (store writes
    stubbed out) does not grow with them, the records it remembers being bounded."""
    saved = 0

    async def discard(_keys: ListKeys, items: Iterable[ListItem], _meta: str,
                      _expires: float | None, loading: bool = False
                      ) -> tuple[list[ListItem], list[ListItem]]:
        return list(items), []

    async def save(_meta: EntryMeta, _scope: str) -> str:
        nonlocal saved
        saved += 1
        return f"@{saved:032x}"

    monkeypatch.setattr(store, "add_to", discard)
    monkeypatch.setattr(store, "save_batch", save)
    small_peak = await _peak_memory(store, 6_000)
    peak = await _peak_memory(store, 40_000)
    assert saved == 23_000  # far more records than the importer remembers
    assert peak < small_peak * 1.25 + 50_000, (peak, small_peak)

"""migrate.py (`gatekeeper store migrate --to URL`): every list of one store copied into
another, entries with their metadata and expiry, packed loads as packed loads, freshness
records; each target list replaced whole; and no entry lost, whatever the lists hold."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import fakeredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.bulk import Importer, export_csv
from gatekeeper.bulk_options import ImportOptions
from gatekeeper.config import RedisConfig, StoreConfig
from gatekeeper.migrate import migrate
from gatekeeper.store import EntryMeta, ListItem, Store
from gatekeeper.types import ListName

API = EntryMeta(source="api", added_at=10.0, added_by="ops", note="complaint 41")
OPT_OUT = EntryMeta(source="opt-out", added_at=20.0)


def fresh_store() -> Store:
    """A store on an empty fakeredis of its own."""
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)
    return Store(client, RedisConfig(), StoreConfig())


async def body(lines: list[str]) -> AsyncIterator[bytes]:
    """An import body."""
    yield "".join(f"{line}\n" for line in lines).encode()


async def export(store: Store, name: ListName, scope: str) -> bytes:
    """A list's export (entries, channels, metadata, expiry), as a comparable whole."""
    return b"".join([chunk async for chunk in export_csv(store, name, scope)])


async def test_every_list_is_copied_with_its_metadata_expiry_and_packed_load() -> None:
    """Hand-added entries (with note, channel, expiry), prefixes, opt-outs, a packed
    national load and its freshness record all arrive; the exports are identical."""
    source, target = fresh_store(), fresh_store()
    later = time.time() + 3600
    await source.add("block", "global", [ListItem("+33612345678"), ListItem("+44*", "voice")],
                     API)
    await source.add("block", "tenant:acme", [ListItem("+15551230000", "sms")],
                     EntryMeta(source="api", added_at=1.0, expires_at=later))
    await source.add("block", "agent:7", [ListItem(f"+3161234{i:04d}") for i in range(50)],
                     OPT_OUT)
    await source.add("allow", "tenant:acme", [ListItem("+33612345678")], API)
    await Importer(source, ImportOptions("block", "global", "replace", origin="us-dnc",
                                         as_of=1_700_000_000.0, max_age_days=31)).run(
        body([f"+1202555{i:04d}" for i in range(3000)]))
    await source.add("block", "global", [ListItem("+33612345678")], API)
    copied = await migrate(source, target)
    assert {(c.name, c.scope) for c in copied} == set(await source.list_names())
    assert all(c.ok for c in copied)
    for name, scope in await source.list_names():
        assert await export(target, name, scope) == await export(source, name, scope)
    load = await target.packed_load(target.keys.of("block", "global"))
    assert load is not None
    assert load.count == 3000
    [record] = await target.sources()
    assert (record.origin, record.as_of, record.max_age_days) == (
        "us-dnc", 1_700_000_000.0, 31.0)


async def test_a_target_list_is_replaced_whole() -> None:
    """What the target's list held before is gone; its other lists are untouched."""
    source, target = fresh_store(), fresh_store()
    await source.add("block", "global", [ListItem("+33612345678")], API)
    await target.add("block", "global", [ListItem("+49301234567")], API)
    await target.add("block", "tenant:other", [ListItem("+49301234568")], API)
    await migrate(source, target)
    found = await target.lookup(["+33612345678", "+49301234567", "+49301234568"],
                                ["global", "tenant:other"])
    assert [m.entry for m in found["+33612345678"]] == ["+33612345678"]
    assert found["+49301234567"] == []
    assert [m.scope for m in found["+49301234568"]] == ["tenant:other"]


numbers = st.integers(min_value=2_000_000_000, max_value=9_999_999_999).map(
    lambda n: f"+1{n}")
entries = st.one_of(numbers, numbers.map(lambda n: n[:6] + "*"))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(own=st.lists(st.tuples(entries, st.sampled_from([None, "sms", "voice"])),
                    max_size=30),
       packed=st.lists(numbers, max_size=60),
       probes=st.lists(numbers, max_size=20))
async def test_no_entry_is_lost(own: list[tuple[str, str | None]], packed: list[str],
                                probes: list[str]) -> None:
    """Whatever a list holds (packed numbers, own entries, prefixes, channels), every
    number is decided the same on the target as on the source after the copy."""
    source, target = fresh_store(), fresh_store()
    if packed:
        await Importer(source, ImportOptions("block", "global", "replace")).run(
            body(packed))
    if own:
        items = [ListItem(entry, channel) for entry, channel in own]  # type: ignore[arg-type]
        await source.add("block", "global", items, API)
    copied = await migrate(source, target)
    assert all(c.ok for c in copied)
    asked = [*packed[:10], *probes, *(e for e, _ in own if not e.endswith("*"))]
    for channel in (None, "sms", "voice"):
        before = await source.lookup(asked, ["global"], channel)
        after = await target.lookup(asked, ["global"], channel)
        assert {n: sorted(map(repr, m)) for n, m in after.items()} == \
            {n: sorted(map(repr, m)) for n, m in before.items()}

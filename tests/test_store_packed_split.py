"""How a packed load is split (store/packing.py `plan`): the trailing digits its members
hold are chosen per load for the server's intset limit, lookups, listings and removals
read each load with its own split, and a load being written is registered so that an
abandoned one is deleted while a swapped-in one has no per-bucket work."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.bulk import Importer, ImportOptions, export_csv
from gatekeeper.store import EntryMeta, ListItem, Store
from gatekeeper.store.packing import SPLITS, PackedBuilder, joined, member_bytes
from tests.test_store import make_store

META = EntryMeta(source="import", added_at=1.0)


@pytest.fixture
def store(client: Any) -> Store:
    """A store on the parametrized backend (fakeredis, the real redis-server)."""
    return make_store(client)


def numbers_in(exchanges: int, per: int, seed: int = 3) -> list[str]:
    """`per` random numbers in each of `exchanges` US exchanges (+1 NPA NXX)."""
    rng = random.Random(seed)
    out: set[str] = set()
    for e in range(exchanges):
        head = f"+1{202 + e // 800}{200 + e % 800}"
        out.update(f"{head}{n:04d}" for n in rng.sample(range(10_000), per))
    return sorted(out)


def built(numbers: list[str]) -> PackedBuilder:
    """A builder holding `numbers`."""
    builder = PackedBuilder()
    for number in numbers:
        assert builder.add(number)
    return builder


async def body(lines: list[str]) -> AsyncIterator[bytes]:
    """An import body."""
    yield "".join(f"{line}\n" for line in lines).encode()


# --- the plan (pure) ---------------------------------------------------------------------

@pytest.mark.parametrize(("numbers", "limit", "expected"), [
    (numbers_in(3000, 3), 1_000_000, 7),
    (numbers_in(20, 5000), 1_000_000, 4),
    (numbers_in(300, 40), 512, 5),
    (numbers_in(3, 400), 512, 4),
], ids=["sparse-big-limit", "dense-big-limit", "default-limit", "dense-default-limit"])
def test_plan_takes_the_fewest_bytes_whose_buckets_stay_intsets(
        numbers: list[str], limit: int, expected: int) -> None:
    """Sparse lists keep 7 digits (few buckets); dense ones 4 (2-byte members); a
    server keeping small intsets gets buckets no bigger than its limit."""
    builder = built(numbers)
    assert builder.plan(limit) == expected
    sizes = [len(members) for _, members in builder.buckets()]
    assert max(sizes) <= limit
    assert sum(sizes) == len(numbers)


@settings(max_examples=60, deadline=None)
@given(digits=st.sampled_from(SPLITS),
       numbers=st.lists(st.integers(min_value=10**7, max_value=10**15 - 1), max_size=200))
def test_every_split_hands_back_exactly_the_numbers(digits: int, numbers: list[int]) -> None:
    """Whatever the split: heads ascending, members sorted below 10**digits, and the
    numbers they stand for are exactly those taken, each once."""
    builder = built([f"+{n}" for n in numbers])
    builder.plan(10**6)
    builder.rest_digits = digits
    out: list[str] = []
    heads: list[int] = []
    for head, members in builder.buckets():
        heads.append(head)
        assert members == sorted(set(members))
        assert all(0 <= m < 10**digits for m in members)
        out += [joined(head, m, digits) for m in members]
    assert heads == sorted(heads)
    assert sorted(out) == sorted({f"+{n}" for n in numbers})


def test_member_bytes_are_two_up_to_four_digits() -> None:
    """Members below 32,768 take 2 bytes in an intset."""
    assert [member_bytes(d) for d in SPLITS] == [4, 4, 4, 2]


# --- in the store -----------------------------------------------------------------------

@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(digits=st.sampled_from(SPLITS), data=st.data())
async def test_a_load_of_any_split_is_found_listed_and_removed_exactly(
        store: Store, digits: int, data: st.DataObject,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Forced to each split: lookups hit exactly the loaded numbers, the export lists
    them in order, and a removed one stops matching."""
    await store.client.flushdb()
    loaded = data.draw(st.lists(st.integers(2012000000, 2012999999), min_size=1,
                                max_size=40, unique=True))
    probes = data.draw(st.lists(st.integers(2012000000, 2012999999), max_size=10))
    plan = PackedBuilder.plan

    def forced(builder: PackedBuilder, limit: int) -> int:
        plan(builder, limit)
        builder.rest_digits = digits
        return digits

    monkeypatch.setattr(PackedBuilder, "plan", forced)
    await Importer(store, ImportOptions("block", "global", "replace")).run(
        body([f"+1{n}" for n in loaded]))
    load = await store.packed_load(store.keys.of("block", "global"))
    assert load is not None
    assert load.rest == digits
    asked = [f"+1{n}" for n in {*loaded[:10], *probes}]
    found = await store.lookup(asked, ["global"])
    assert {n for n, m in found.items() if m} == {f"+1{n}" for n in loaded} & set(asked)
    rows = b"".join([c async for c in export_csv(store, "block", "global")]).decode()
    assert [r.split(",")[0] for r in rows.splitlines()[1:]] == sorted(
        f"+1{n}" for n in loaded)
    gone = f"+1{loaded[0]}"
    assert await store.remove("block", "global", [ListItem(gone)]) == ([ListItem(gone)], [])
    assert (await store.lookup([gone], ["global"]))[gone] == []


async def test_a_server_with_the_default_intset_limit_gets_intset_buckets(
        real_redis: Any) -> None:
    """On a server keeping intsets of up to 512 members (Redis's default), a load is
    split so that every bucket is an intset."""
    store = make_store(real_redis)
    await real_redis.config_set("set-max-intset-entries", 512)
    try:
        await Importer(store, ImportOptions("block", "global", "replace")).run(
            body(numbers_in(200, 300)))
        load = await store.packed_load(store.keys.of("block", "global"))
        assert load is not None
        assert load.rest < 7
        heads = await store.packed_heads(load, None, 10_000)
        encodings = {await real_redis.object("encoding", f"{load.base}{h}") for h in heads}
        assert encodings == {"intset"}, (load.rest, len(heads))
    finally:
        await real_redis.config_set("set-max-intset-entries", 1_000_000)


async def test_an_abandoned_load_is_deleted_after_its_mark_and_a_swapped_one_kept(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A load written but never swapped in nor dropped (its importer died) stays
    pending, then is deleted by the sweep once LOAD_MARK_SECONDS have passed; a load
    swapped in leaves the registry at the swap and its buckets carry no expiry."""
    live, staging = store.keys.of("block", "global"), store.keys.staging("block", "global")
    await store.write_packed(staging, built(numbers_in(3, 50)), META)
    pending = await store.client.zrange(live.pending, 0, -1)
    assert pending == [staging.base]
    await store.purge_packed()
    assert await store.client.zrange(f"{staging.base}index", 0, -1)  # not yet
    later = time.time() + 25 * 3600
    monkeypatch.setattr("gatekeeper.store.packed.time.time", lambda: later)
    await store.purge_packed()
    assert await store.client.zcard(live.pending) == 0
    assert [k async for k in store.client.scan_iter(match=f"{staging.base}*")] == []
    monkeypatch.undo()
    again = store.keys.staging("block", "global")
    await store.begin_load(live, again)
    await store.write_packed(again, built(numbers_in(3, 50)), META)
    await store.swap(live, again)
    assert await store.client.zcard(live.pending) == 0
    heads = await store.client.zrange(f"{again.base}index", 0, -1)
    assert heads
    assert {await store.client.ttl(f"{again.base}{h}") for h in heads} == {-1}


async def test_a_load_written_before_splits_existed_is_made_permanent_at_the_swap(
        store: Store) -> None:
    """A copy written by an earlier version (no `rest` in its record, buckets expiring)
    swapped in by this one: its buckets are made permanent and its numbers found."""
    live, staging = store.keys.of("block", "global"), store.keys.staging("block", "global")
    await store.begin_load(live, staging)
    await store.client.sadd(f"{staging.base}1202", 5551234, 5555678)
    await store.client.expire(f"{staging.base}1202", 3600)
    await store.client.zadd(f"{staging.base}index", {"1202": 1202})
    await store.client.expire(f"{staging.base}index", 3600)
    await store.client.hset(staging.packed, mapping={
        "base": staging.base, "count": "2", "source": "import", "loaded_at": "1.0"})
    await store.client.expire(staging.packed, 3600)
    assert await store.swap(live, staging) == 2
    assert await store.client.ttl(f"{staging.base}1202") == -1
    assert await store.client.ttl(f"{staging.base}index") == -1
    found = await store.lookup(["+12025551234", "+12025550001"], ["global"])
    assert [m.entry for m in found["+12025551234"]] == ["+12025551234"]
    assert found["+12025550001"] == []

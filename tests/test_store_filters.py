"""Packed loads' filters in the store: each process takes up a copy, lookups of numbers
the copy rules out leave the load's buckets unread, and nothing about which numbers
match changes: a listed number is always found, a replaced load is read in full until
its successor's filter is taken, and no copy is kept beyond `store.filter_memory_mb`.

Each table test runs on fakeredis and on the suite's real redis-server; the bucket
reads are counted on the real server through the production lookup path (the pipe)."""

from __future__ import annotations

import asyncio
import io
import random
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper import resources
from gatekeeper.config import StoreConfig
from gatekeeper.resources import RESOURCES
from gatekeeper.store import Keys, Store, StoreUnavailable, connect, packed
from gatekeeper.store.filter import words_for
from tests.conftest import (
    AUTH,
    TWILIO_MESSAGES,
    FakeUpstream,
    StartGatekeeper,
    log_events,
    make_config,
)
from tests.conftest import Running as Gatekeeper
from tests.test_store import PREFIX, REDIS, make_store
from tests.test_store_packed import US, hits, replace, us_numbers

RECORD = Keys(PREFIX).of("block", "global").packed


@pytest.fixture
def store(client: Any) -> Store:
    """A store on the parametrized backend (fakeredis, the real redis-server)."""
    return make_store(client)


def absent(listed: list[str], count: int, seed: int = 3) -> list[str]:
    """`count` US numbers that are not in `listed`."""
    taken = set(listed)
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < count:
        number = f"+1{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
        if number not in taken:
            out.append(number)
    return out


async def test_each_process_takes_up_the_filter_of_a_load_it_looks_in(store: Store) -> None:
    """Until a lookup meets the list nothing is copied; then one copy of the load's
    filter (its stored size), and every listed number is still found, none other."""
    listed = us_numbers(2000)
    await replace(store, listed)
    assert await store.refresh_filters() == 0  # no lookup has met the list yet
    await hits(store, listed[0])
    assert await store.refresh_filters() == 1
    assert store.filter_copies() == (1, words_for(len(listed)) * 8)
    assert await store.refresh_filters() == 0  # the same load: nothing taken again
    for number in listed:
        assert number in await hits(store, number)
    for number in absent(listed, 300):
        assert await hits(store, number) == set()


async def test_a_replaced_load_is_read_until_its_successors_filter_is_taken(
        store: Store, client: Any) -> None:
    """The copy names the load it was taken from; a replace makes a new load, which the
    script reads in full (the copy says nothing of it) until the next refresh; the old
    load's filter goes with its buckets."""
    first, second = us_numbers(1500, seed=1), us_numbers(1500, seed=2)
    await replace(store, first)
    await hits(store, first[0])
    await store.refresh_filters()
    old_base = await client.hget(RECORD, "base")
    await replace(store, second)
    assert not await client.exists(f"{old_base}filter")
    for number in second[:400]:
        assert number in await hits(store, number)
    for number in sorted(set(first) - set(second))[:200]:
        assert await hits(store, number) == set()
    assert await store.refresh_filters() == 1
    for number in second[:400]:
        assert number in await hits(store, number)


@pytest.mark.parametrize(("budget_mb", "copies"), [(0, 0), (1, 1)])
async def test_copies_stop_at_the_memory_budget(client: Any, budget_mb: int,
                                                copies: int) -> None:
    """`store.filter_memory_mb: 0` keeps no copy (every lookup reads the buckets); a
    budget the filter fits in keeps it. Lookups are the same either way."""
    store = Store(client, REDIS, StoreConfig(filter_memory_mb=budget_mb))
    listed = us_numbers(1000)
    await replace(store, listed)
    await hits(store, listed[0])
    await store.refresh_filters()
    assert store.filter_copies()[0] == copies
    for number in listed[:300]:
        assert number in await hits(store, number)


async def test_a_load_without_a_filter_is_always_read(store: Store, client: Any) -> None:
    """A load written before filters (its record names none) gets no copy."""
    listed = us_numbers(800)
    await replace(store, listed)
    await hits(store, listed[0])
    await client.hdel(RECORD, "filter")
    assert await store.refresh_filters() == 0
    assert store.filter_copies() == (0, 0)
    for number in listed[:200]:
        assert number in await hits(store, number)


async def test_the_copy_is_dropped_when_the_load_is(store: Store) -> None:
    """A replace with no exact number left drops the packed load: and the copy."""
    listed = us_numbers(500)
    await replace(store, listed)
    await hits(store, listed[0])
    await store.refresh_filters()
    await replace(store, ["+4479*"])
    assert await store.refresh_filters() == 1
    assert store.filter_copies() == (0, 0)
    assert await hits(store, listed[0]) == set()


async def sismembers(real_redis: Any) -> int:
    """SISMEMBER calls the server has run (the lookup script's bucket reads)."""
    stats = await real_redis.info("commandstats")
    return int(stats.get("cmdstat_sismember", {}).get("calls", 0))


async def test_absent_numbers_leave_the_buckets_unread_on_the_production_path(
        redis_server: str, real_redis: Any) -> None:
    """On the lean pipe: before the copy, each lookup reads a bucket; with it, about 2%
    of absent numbers do (false "maybe"), while every listed number is still read and
    found. Several numbers at once are skipped only when all are ruled out."""
    client = connect(REDIS, redis_server)
    store = Store(client, REDIS, StoreConfig(), redis_server)
    try:
        listed = us_numbers(5000)
        await replace(store, listed)
        others = absent(listed, 400)
        before = await sismembers(real_redis)
        for number in others:
            assert await hits(store, number) == set()
        assert await sismembers(real_redis) - before == len(others)
        assert await store.refresh_filters() == 1
        before = await sismembers(real_redis)
        for number in others:
            assert await hits(store, number) == set()
        assert await sismembers(real_redis) - before <= 0.05 * len(others)
        before = await sismembers(real_redis)
        for number in listed[:300]:
            assert number in await hits(store, number)
        assert await sismembers(real_redis) - before == 300
        pair = [others[0], listed[7]]
        found = await store.lookup(pair, ("global",), "sms")
        assert [m.entry for m in found[listed[7]]] == [listed[7]]
        assert found[others[0]] == []
    finally:
        await store.close()


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(loaded=st.sets(US, min_size=1, max_size=80), probes=st.lists(US, max_size=30))
async def test_with_a_copy_a_number_matches_iff_it_was_loaded(loaded: set[int],
                                                              probes: list[int]) -> None:
    """Property: with the filter's copy in use, a number matches iff it was loaded (a
    blocked number is never skipped)."""
    store = make_store(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(),
                                                decode_responses=True))
    entries = [f"+{n}" for n in sorted(loaded)]
    await replace(store, entries)
    await hits(store, entries[0])
    assert await store.refresh_filters() == 1
    for n in [*probes, *loaded]:
        number = f"+{n}"
        assert (number in await hits(store, number)) == (n in loaded)


async def sms(gk: Gatekeeper, to: str) -> int:
    """A Twilio SMS through the proxy; its status."""
    return (await gk.proxy.post(TWILIO_MESSAGES, data={"To": to, "Body": "x"})).status


async def test_a_running_gatekeeper_takes_up_the_filter_and_still_blocks(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        log_output: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the app: after an admin replace import and a first send, the background
    poll takes up the copy (logged); then a listed number is still refused and an
    unlisted one forwarded."""
    monkeypatch.setattr(resources, "FILTER_POLL", 0.05)
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path))
    listed = us_numbers(3000)
    imported = await gk.admin.post("/admin/v1/lists/block/import", params={
        "mode": "replace"}, data="".join(f"{n}\n" for n in listed), headers=AUTH)
    assert imported.status == 200, await imported.text()
    assert await sms(gk, listed[5]) == 403
    for _ in range(200):
        if any(e["event"] == "packed_filters_taken" for e in log_events(log_output)):
            break
        await asyncio.sleep(0.05)
    [event] = [e for e in log_events(log_output) if e["event"] == "packed_filters_taken"]
    assert (event["loads"], event["bytes"]) == (1, words_for(3000) * 8)
    for number in listed[:20]:
        assert await sms(gk, number) == 403
    assert await sms(gk, absent(listed, 1)[0]) == 201


async def test_a_filter_of_many_pieces_is_written_read_and_purged_whole(
        store: Store, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """With 64-byte pieces (a 2,000-number filter in 40 fields of its hash, each written
    and read by one call): the copy equals what was built, every listed number is
    found, and the replaced load's filter goes a few fields per call."""
    monkeypatch.setattr(packed, "_FILTER_PIECE", 64)
    listed = us_numbers(2000)
    await replace(store, listed)
    base = await client.hget(RECORD, "base")
    assert await client.hlen(f"{base}filter") == -(-words_for(2000) * 8 // 64)
    await hits(store, listed[0])
    assert await store.refresh_filters() == 1
    assert store.filter_copies() == (1, words_for(2000) * 8)
    for number in listed:
        assert number in await hits(store, number)
    await replace(store, us_numbers(10, seed=9))
    assert not await client.exists(f"{base}filter")


async def test_a_store_fault_while_polling_filters_is_counted_and_logged(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        log_output: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    """The filter poll meets a store fault: a `store_unavailable` line (operation
    `filters`) and the store-error counter, and the poll goes on (it is tried again)."""
    monkeypatch.setattr(resources, "FILTER_POLL", 0.02)
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path))
    tries = 0

    async def failing() -> int:
        nonlocal tries
        tries += 1
        raise StoreUnavailable("connection refused")

    monkeypatch.setattr(gk.app[RESOURCES].store, "refresh_filters", failing)
    for _ in range(200):
        if tries >= 3:
            break
        await asyncio.sleep(0.02)
    assert tries >= 3
    lines = [e for e in log_events(log_output) if e["event"] == "store_unavailable"
             and e.get("operation") == "filters"]
    assert lines
    assert lines[0]["error"] == "connection refused"
    counted = gk.registry.get_sample_value("gatekeeper_store_errors_total",
                                           {"operation": "filters"})
    assert counted is not None
    assert counted >= 3

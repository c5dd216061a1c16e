"""Packed loads: a replace import's plain exact numbers kept ~4 bytes each in intsets,
exact (never probabilistic), and invisible from outside: lookups, adds, removals,
listings, export, metadata and the next replace behave as with the set layout.

Each test runs on fakeredis and on the suite's real redis-server (the production
lookup path included: the lean pipe when `piped`)."""

from __future__ import annotations

import io
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.bulk import Importer, ImportOptions, export_csv
from gatekeeper.store import EntryMeta, Keys, ListItem, Store, StoreUnavailable
from gatekeeper.store.packing import (
    INTSET_ENTRIES,
    REST,
    PackedBuilder,
    joined,
    sadd_commands,
    split,
)
from tests.conftest import (
    FakeUpstream,
    StartGatekeeper,
    leftovers,
    list_members,
    log_events,
    make_config,
)
from tests.test_store import PREFIX, make_store

E = ListItem


@pytest.fixture
def store(client: Any) -> Store:
    """A store on the parametrized backend (fakeredis, the real redis-server)."""
    return make_store(client)


API = EntryMeta(source="api", added_at=1.0, added_by="ops", note="asked")


async def replace(store: Store, entries: list[str], scope: str = "global",
                  **options: Any) -> int:
    """A replace import of `entries` (one per line); the list's size after it."""
    async def body() -> AsyncIterator[bytes]:
        yield "".join(f"{e}\n" for e in entries).encode()

    report = await Importer(store, ImportOptions("block", scope, "replace", **options)
                            ).run(body())
    assert report.size is not None
    return report.size


async def hits(store: Store, number: str, scopes: tuple[str, ...] = ("global",)
               ) -> set[str]:
    """The entries matching `number` in `scopes`."""
    found = await store.lookup([number], scopes, "sms")
    return {m.entry for m in found[number]}


def us_numbers(count: int, seed: int = 7) -> list[str]:
    """Random numbers over US area codes, like a national registry's."""
    rng = random.Random(seed)
    return sorted({f"+1{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
                   for _ in range(count)})


# --- the encoding (pure) ----------------------------------------------------------------


@given(st.integers(min_value=1, max_value=10 ** 15 - 1))
def test_split_and_joined_round_trip_every_number(n: int) -> None:
    """Every digit string without a leading zero maps to one (head, member) and back."""
    e164 = f"+{n}"
    parts = split(e164)
    assert parts is not None
    head, member = parts
    assert 0 <= member < REST
    assert joined(head, member) == e164


@pytest.mark.parametrize("entry", ["+33*", "+336*", "33612345678", "+3361234567a", "+",
                                   "+٣٣٦١٢٣٤٥٦٧٨"])
def test_only_exact_ascii_numbers_are_packed(entry: str) -> None:
    """Prefixes, numbers without `+`, letters and non-ASCII digits are never packed."""
    assert split(entry) is None
    assert PackedBuilder().add(entry) is False


def test_builder_hands_out_buckets_sorted_and_without_repeats() -> None:
    """Buckets come in head order, members sorted and each once."""
    builder = PackedBuilder()
    for number in ["+33612345679", "+33612345678", "+33612345679", "+12025550123"]:
        builder.add(number)
    assert len(builder) == 4
    assert list(builder.buckets()) == [(1202, [5550123]), (3361, [2345678, 2345679])]


# --- in Redis -----------------------------------------------------------------------------


async def test_replace_packs_plain_numbers_and_lookups_find_exactly_them(store: Store) -> None:
    """Imported numbers match, their neighbours do not; prefixes and channel-limited
    lines keep working beside them."""
    numbers = us_numbers(300)
    size = await replace(store, [*numbers, "+4479*", "+447700900123,voice"])
    assert size == 302
    base = await store.client.hget(Keys(PREFIX).of("block", "global").packed, "base")
    assert base  # the numbers went to a packed load
    for number in numbers[:50]:
        assert await hits(store, number) == {number}
    taken = set(numbers)
    for number in numbers[:50]:
        neighbour = f"+{int(number[1:]) + 1}"
        if neighbour not in taken:
            assert await hits(store, neighbour) == set()
    assert await hits(store, "+447911123456") == {"+4479*"}
    assert await hits(store, "+447700900123") == set()  # voice only; looked up for sms
    assert await store.count("block", "global") == 302


US = st.builds(lambda a, b, c: int(f"1{a}{b}{c:04d}"), st.integers(201, 989),
               st.integers(200, 999), st.integers(0, 9999))


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(loaded=st.sets(US, max_size=60), probes=st.lists(US, max_size=20))
async def test_lookup_hits_exactly_the_loaded_numbers(loaded: set[int], probes: list[int]
                                                      ) -> None:
    """Property: after a replace, a number matches iff it was loaded (no lost entry, no
    false match), whatever the buckets they fall into."""
    store = make_store(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(),
                                                decode_responses=True))
    entries = [f"+{n}" for n in sorted(loaded)]
    await replace(store, entries or ["+4479*"])
    # Near misses too: the next number, and the same member in the next bucket.
    near = [m for n in sorted(loaded)[:10] for m in (n, n + 1, n - 1, n + REST)]
    for n in [*probes, *near]:
        number = f"+{n}"
        assert (number in await hits(store, number)) == (n in loaded)


async def test_packed_numbers_are_intsets_on_the_real_server(real_redis: Any) -> None:
    """The embedded server keeps a bucket of a few thousand numbers as an intset, about
    4 bytes a number."""
    store = make_store(real_redis)
    numbers = [f"+1202{n:07d}" for n in range(0, 10_000_000, 2000)]  # one bucket, 5000
    await replace(store, numbers)
    base = await real_redis.hget(Keys(PREFIX).of("block", "global").packed, "base")
    assert await real_redis.object("encoding", f"{base}1202") == "intset"
    assert await real_redis.memory_usage(f"{base}1202") < 5000 * 4 + 200


async def test_removing_a_packed_number_stops_it_matching(store: Store) -> None:
    """Remove takes a number out of the packed load (reported removed, counted once)."""
    numbers = us_numbers(20)
    await replace(store, numbers)
    removed, missing = await store.remove("block", "global",
                                          [E(numbers[3]), E("+33612345678")])
    assert (removed, missing) == ([E(numbers[3])], [E("+33612345678")])
    assert await hits(store, numbers[3]) == set()
    assert await hits(store, numbers[4]) == {numbers[4]}
    assert await store.count("block", "global") == 19
    assert numbers[3] not in await list_members(store)


async def test_adding_a_packed_number_is_existing_and_not_listed_twice(store: Store) -> None:
    """An operator's add of a number the load holds is `existing`: no second entry."""
    numbers = us_numbers(10)
    await replace(store, numbers)
    assert await store.add("block", "global", [E(numbers[0]), E("+33612345678")], API) == (
        [E("+33612345678")], [E(numbers[0])])
    listed = [x.item.entry async for x in store.scan_entries("block", "global")]
    assert sorted(listed) == sorted([*numbers, "+33612345678"])


async def test_listing_pages_through_the_set_then_the_packed_load(store: Store) -> None:
    """Pages of 3 give every entry once: the set's members, then the numbers in order;
    the last page has no cursor."""
    numbers = us_numbers(17)
    await replace(store, numbers)
    await store.add("block", "global", [E("+4479*"), E("+33612345678", "voice")], API)
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(20):
        page = await store.page("block", "global", cursor, 3)
        seen += [Keys.member(x.item) for x in page.entries]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ["+33612345678#voice", "+4479*", *numbers]


async def test_packed_entries_show_their_load_as_metadata(store: Store) -> None:
    """Check/explain and listings show the load's record: source, author, note, when."""
    numbers = us_numbers(5)
    await replace(store, numbers, added_by="ops-key", note="DNC 2026-12")
    [meta] = await store.metadata("block", "global", [E(numbers[2])])
    assert meta is not None
    assert (meta.source, meta.added_by, meta.note) == ("import", "ops-key", "DNC 2026-12")
    assert meta.added_at > 0
    page = await store.page("block", "global", None, 10)
    assert {x.meta for x in page.entries} == {meta}


async def test_export_lists_packed_numbers(store: Store) -> None:
    """The export has a row per packed number, with the load's metadata."""
    numbers = us_numbers(30)
    await replace(store, numbers, added_by="ops-key")
    text = b"".join([c async for c in export_csv(store, "block", "global")]).decode()
    rows = text.strip().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == numbers
    assert all(",import," in r and ",ops-key," in r for r in rows)


async def test_next_replace_takes_the_place_of_the_packed_load(store: Store) -> None:
    """A second replace: only its numbers match, the first load's buckets are deleted,
    nothing is left behind."""
    first, second = us_numbers(200, seed=1), us_numbers(150, seed=2)
    await replace(store, first)
    assert await replace(store, second) == len(second)
    for number in first[:30]:
        assert (await hits(store, number) == {number}) == (number in second)
    assert await leftovers(store.client, PREFIX) == []
    base = await store.client.hget(Keys(PREFIX).of("block", "global").packed, "base")
    assert all(k.startswith(base) for k in await store.client.keys(f"{PREFIX}pk:*"))


async def test_replace_without_numbers_drops_the_packed_load(store: Store) -> None:
    """A replace holding only prefixes leaves no packed load behind."""
    await replace(store, us_numbers(20))
    assert await replace(store, ["+4479*"]) == 1
    assert await list_members(store) == {"+4479*"}
    assert await store.client.keys(f"{PREFIX}pk:*") == []


async def test_entry_added_during_a_load_is_not_doubled_by_it(store: Store) -> None:
    """An add journaled during a replace whose file has the same number: one entry."""
    numbers = us_numbers(10)

    async def body() -> AsyncIterator[bytes]:
        yield "".join(f"{e}\n" for e in numbers).encode()
        await store.add("block", "global", [E(numbers[0]), E("+33612345678")], API)
        yield b""

    await Importer(store, ImportOptions("block", "global", "replace")).run(body())
    listed = [x.item.entry async for x in store.scan_entries("block", "global")]
    assert sorted(listed) == sorted([*numbers, "+33612345678"])


async def test_expiring_replace_is_never_packed(store: Store) -> None:
    """Entries with an expiry keep it: a replace with a TTL writes the set, not a load."""
    await replace(store, us_numbers(5), expires_at=4102444800.0)
    assert not await store.client.exists(Keys(PREFIX).of("block", "global").packed)
    [meta] = await store.metadata("block", "global", [E(us_numbers(5)[0])])
    assert meta is not None
    assert meta.expires_at == 4102444800.0


async def test_lookup_in_several_scopes_reads_each_packed_load(store: Store) -> None:
    """A number packed in two scopes matches in both, in one lookup."""
    numbers = us_numbers(5)
    await replace(store, numbers, scope="tenant:a")
    await replace(store, numbers[:2], scope="tenant:b")
    found = await store.lookup([numbers[1], numbers[3]], ["tenant:a", "tenant:b"], None)
    assert sorted(m.scope for m in found[numbers[1]]) == ["tenant:a", "tenant:b"]
    assert [m.scope for m in found[numbers[3]]] == ["tenant:a"]


async def test_a_fault_while_writing_packed_numbers_is_store_unavailable(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection error mid-load becomes StoreUnavailable and the list is untouched."""
    await replace(store, us_numbers(5, seed=3))
    before = await list_members(store)

    async def broken(*_args: Any, **_kwargs: Any) -> None:
        raise ConnectionError("reset by peer")

    pool = store.client.connection_pool
    monkeypatch.setattr(pool, "get_connection", broken)
    with pytest.raises(StoreUnavailable):
        await replace(store, us_numbers(50))
    monkeypatch.undo()
    assert await list_members(store) == before


@given(st.lists(st.integers(min_value=0, max_value=REST - 1), unique=True, max_size=20_000))
@settings(max_examples=30, deadline=None)
def test_sadd_commands_carry_every_member_in_order(members: list[int]) -> None:
    """The RESP SADD commands hold exactly the members, ascending, in chunks."""
    members.sort()
    carried: list[int] = []
    for payload in sadd_commands("k", members):
        parts = payload.decode().split("\r\n")
        assert parts[0] == f"*{int(parts[0][1:])}"
        assert parts[1:5] == ["$4", "SADD", "$1", "k"]
        values = parts[6::2][:int(parts[0][1:]) - 2]
        assert all(p == f"${len(v)}" for p, v in zip(parts[5::2], values, strict=False))
        carried += [int(v) for v in values]
    assert carried == members


def test_builder_takes_many_numbers_at_once() -> None:
    """add_numbers files each number under its bucket, as add does one by one."""
    numbers = [int(n[1:]) for n in us_numbers(500)]
    one, many = PackedBuilder(), PackedBuilder()
    for n in numbers:
        one.add(f"+{n}")
    many.add_numbers(list(reversed(numbers)))
    assert list(one.buckets()) == list(many.buckets())


@settings(max_examples=40, deadline=None)
@given(numbers=st.lists(st.integers(min_value=10**6, max_value=10**18 - 1), max_size=300),
       sizes=st.lists(st.integers(1, 9), min_size=1, max_size=10))
def test_builder_hands_back_each_number_once_however_it_was_fed(
        numbers: list[int], sizes: list[int]) -> None:
    """Numbers fed in chunks of any size (many chunks: a bucket's pieces are merged on
    the way), repeats included: the buckets hold exactly the distinct numbers, sorted."""
    builder = PackedBuilder()
    fed = numbers + numbers[::3]
    start, turn = 0, 0
    while start < len(fed):
        size = sizes[turn % len(sizes)]
        builder.add_numbers(fed[start:start + size])
        start, turn = start + size, turn + 1
    out = [joined(head, m) for head, members in builder.buckets() for m in members]
    assert out == [f"+{n}" for n in sorted(set(numbers))]


@given(st.lists(st.integers(min_value=0, max_value=10**18 - 1), unique=True, max_size=300))
@settings(max_examples=60, deadline=None)
def test_sadd_commands_spell_members_of_any_width(members: list[int]) -> None:
    """Members of 1 to 18 digits are spelled as Redis reads integers: no leading zero,
    the length prefix right."""
    members.sort()
    payload = b"".join(sadd_commands("k", members)).decode()
    expected = "".join(f"${len(str(m))}\r\n{m}\r\n" for m in members)
    assert expected in payload or not members


async def test_embedded_server_keeps_big_buckets_as_intsets(real_redis: Any) -> None:
    """The suite's (embedded) server is configured for packed loads: the limit is the
    one Gatekeeper wants."""
    assert await make_store(real_redis).intset_limit() == INTSET_ENTRIES


async def test_a_low_intset_limit_is_logged_at_start(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        real_redis: Any, log_output: io.StringIO) -> None:
    """An external Redis with the default limit (512): Gatekeeper says so at start-up,
    once, with the value it wants (packed buckets would be hash tables there)."""
    await real_redis.config_set("set-max-intset-entries", 512)
    try:
        await start_gatekeeper(make_config(upstream.url, tmp_path), redis=real_redis)
    finally:
        await real_redis.config_set("set-max-intset-entries", INTSET_ENTRIES)
    [event] = [e for e in log_events(log_output) if e["event"] == "store_intset_limit_low"]
    assert (event["set_max_intset_entries"], event["wanted"]) == (512, INTSET_ENTRIES)


async def test_no_intset_warning_when_config_is_refused(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        log_output: io.StringIO) -> None:
    """A server refusing CONFIG (fakeredis here, a managed Redis elsewhere): no warning,
    no failure; the limit is unknown."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path))
    assert gk is not None
    assert not [e for e in log_events(log_output) if e["event"] == "store_intset_limit_low"]


async def test_a_swap_whose_reply_was_lost_keeps_the_new_load(store: Store) -> None:
    """The swap ran but its caller saw a fault and abandons the load: the drop finds the
    load live and keeps it (its buckets are not trashed); lookups still find it."""
    numbers = us_numbers(50)
    live = store.keys.of("block", "global")
    staging = store.keys.staging("block", "global")
    builder = PackedBuilder()
    for number in numbers:
        builder.add(number)
    await store.begin_load(live, staging)
    await store.write_packed(staging, builder, API)
    await store.swap(live, staging)
    await store.drop(live, staging)  # as the importer's clean-up would after a lost reply
    assert await hits(store, numbers[7]) == {numbers[7]}
    assert await store.count("block", "global") == 50
    assert await leftovers(store.client, PREFIX) == []


async def walk(store: Store, prefix: str, size: int) -> list[str]:
    """Every entry a prefix search shows, page by page."""
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(500):
        page = await store.page("block", "global", cursor, size, prefix)
        seen += [Keys.member(x.item) for x in page.entries]
        cursor = page.next_cursor
        if cursor is None:
            return seen
    raise AssertionError("the search never ended")


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(loaded=st.sets(st.one_of(
           US.map(str),
           st.integers(0, 999).map(lambda n: f"12125550{n:03d}"),      # +1 212 555 0...
           st.integers(0, 10 ** 9 - 1).map(lambda n: f"447{n:09d}"),   # UK mobiles: 12
           st.integers(0, 10 ** 8 - 1).map(lambda n: f"336{n:08d}")),  # FR mobiles: 11
       max_size=40),
       own=st.sets(st.sampled_from(["+1212*", "+12125550100", "+1212555#sms", "+33*",
                                    "+331", "+44"]), max_size=4),
       prefix=st.sampled_from(["+1", "+12", "+1212", "+121255", "+3", "+33", "+4", "+9"]),
       size=st.integers(1, 7))
async def test_a_prefix_search_shows_exactly_the_entries_starting_with_it(
        loaded: set[str], own: set[str], prefix: str, size: int) -> None:
    """Property: paging a prefix search (any page size) over a list's set and its packed
    load (numbers of many lengths) shows each entry starting with the prefix once, in
    listing order, and nothing else."""
    store = make_store(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(),
                                                decode_responses=True))
    numbers = sorted(f"+{d}" for d in loaded)
    await replace(store, numbers or ["+4479*"])
    items = [E(m.split("#")[0], m.split("#")[1] if "#" in m else None) for m in own]
    if items:
        await store.add("block", "global", items, API)
    # A number the packed load holds already is not added to the set again.
    set_part = sorted(m for m in own if m.startswith(prefix) and m not in numbers)
    packed = sorted((n for n in numbers if n.startswith(prefix)), key=lambda n: int(n[1:]))
    if not numbers and "+4479*".startswith(prefix):
        set_part = sorted([*set_part, "+4479*"])
    assert await walk(store, prefix, size) == [*set_part, *packed]

"""The Redis list store: keys, add/remove, lookups in one round trip, paging, the attempts
stream and store faults, on fakeredis and on the real redis-server started by the suite."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import fakeredis
import pytest
from redis.asyncio.connection import AbstractConnection

from gatekeeper import store as store_module
from gatekeeper.admin.native import explain
from gatekeeper.config import RedisConfig, StoreConfig
from gatekeeper.numbers import lookup_candidates
from gatekeeper.policy import Match, decide
from gatekeeper.store import (
    LOOKUP_LUA,
    BlockedAttempt,
    Keys,
    Page,
    Store,
    StoreIncompatible,
    StoreUnavailable,
    connect,
)

PREFIX = "t:"
REDIS = RedisConfig(key_prefix=PREFIX, timeout=5.0)
SCOPES3 = ["global", "tenant:acme", "agent:42"]
TWELVE_DIGITS = "+447911123456"


def make_store(client: Any, attempts_max_len: int = 1000) -> Store:
    """A store on `client` with the test key prefix."""
    return Store(client, REDIS, StoreConfig(attempts_max_len=attempts_max_len))


def attempt(number: str = "+33612345678", request_id: str = "req-1") -> BlockedAttempt:
    """A blocked attempt with plausible field values."""
    return BlockedAttempt(request_id=request_id, upstream="twilio", channel="sms",
                          direction="outbound", number=number, scopes="global",
                          scope="global", list="block", entry="+33*", action="reject")


@pytest.fixture(params=["fakeredis", "redis-server"])
def client(request: pytest.FixtureRequest) -> Any:
    """An empty async client: fakeredis (unit) or the suite's real redis-server."""
    if request.param == "fakeredis":
        return fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)
    return request.getfixturevalue("real_redis")


@pytest.fixture
def store(client: Any) -> Store:
    """A store on the parametrized backend."""
    return make_store(client)


@dataclass
class Wire:
    """Every batch of commands written to a Redis connection (one write = one round trip)."""

    writes: list[bytes] = field(default_factory=list)

    def clear(self) -> None:
        self.writes.clear()

    def commands(self) -> list[str]:
        """The first word of every command written, upper-case, in order."""
        names: list[str] = []
        for payload in self.writes:
            # RESP: each command is "*N" then N pairs of "$len", value.
            lines = payload.split(b"\r\n")
            i = 0
            while i < len(lines) and lines[i].startswith(b"*"):
                names.append(lines[i + 2].decode().upper())
                i += 1 + 2 * int(lines[i][1:])
        return names
        return names


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Wire:
    """Records what every redis-py connection (real or fakeredis) sends."""
    recorded = Wire()
    original = AbstractConnection.send_packed_command

    async def send_packed_command(self: AbstractConnection, command: Any,
                                  check_health: bool = True) -> None:
        chunks = [command] if isinstance(command, (bytes, str)) else list(command)
        payload = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)
        recorded.writes.append(payload)
        await original(self, payload, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", send_packed_command)
    return recorded


# --- keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(("prefix", "name", "scope", "expected"), [
    ("gk:", "block", "global", "gk:list:block:global"),
    ("gk:", "allow", "tenant:acme", "gk:list:allow:tenant:acme"),
    ("other/", "block", "agent:42", "other/list:block:agent:42"),
], ids=["global-block", "tenant-allow", "custom-prefix"])
def test_keys_build_list_names_from_prefix_list_and_scope(
        prefix: str, name: Any, scope: str, expected: str) -> None:
    """List set names are {prefix}list:{list}:{scope}."""
    assert Keys(prefix).list(name, scope) == expected


def test_keys_attempts_stream_name() -> None:
    """The attempts stream is {prefix}attempts."""
    assert Keys("gk:").attempts == "gk:attempts"


async def test_store_writes_only_keys_built_by_keys(store: Store, client: Any) -> None:
    """Every key the store creates is one Keys names, under the configured prefix."""
    await store.add("block", "global", ["+33*"])
    await store.add("allow", "tenant:acme", ["+33612345678"])
    await store.append_attempt(attempt())
    keys = Keys(PREFIX)
    assert set(await client.keys("*")) == {
        keys.list("block", "global"), keys.list("allow", "tenant:acme"), keys.attempts}


# --- add / remove ---------------------------------------------------------------------


async def test_add_reports_added_then_existing_and_stores_score_zero(
        store: Store, client: Any) -> None:
    """add returns (added, existing), is idempotent and stores members with score 0."""
    added, existing = await store.add("block", "global", ["+33*", "+33612345678"])
    assert (added, existing) == (["+33*", "+33612345678"], [])
    added, existing = await store.add("block", "global", ["+33612345678", "+44*"])
    assert (added, existing) == (["+44*"], ["+33612345678"])
    members = await client.zrange(Keys(PREFIX).list("block", "global"), 0, -1, withscores=True)
    assert sorted(members) == [("+33*", 0.0), ("+33612345678", 0.0), ("+44*", 0.0)]


async def test_add_dedupes_input_keeping_first_order(store: Store) -> None:
    """Repeated entries in one call are added once and reported once."""
    added, existing = await store.add("allow", "global", ["+44*", "+33*", "+44*", "+33*"])
    assert (added, existing) == (["+44*", "+33*"], [])


async def test_add_and_remove_with_no_entries_send_nothing(store: Store, wire: Wire) -> None:
    """Empty input is a no-op that does not touch Redis."""
    await store.ping()  # open the connection so only the calls below are recorded
    wire.clear()
    assert await store.add("block", "global", []) == ([], [])
    assert await store.remove("block", "global", iter([])) == ([], [])
    assert wire.writes == []


async def test_remove_reports_removed_then_missing(store: Store, client: Any) -> None:
    """remove returns (removed, not present), dedupes input and is idempotent."""
    await store.add("block", "global", ["+33*", "+44*"])
    removed, missing = await store.remove("block", "global", ["+33*", "+33*", "+1*"])
    assert (removed, missing) == (["+33*"], ["+1*"])
    removed, missing = await store.remove("block", "global", ["+33*"])
    assert (removed, missing) == ([], ["+33*"])
    assert await client.zrange(Keys(PREFIX).list("block", "global"), 0, -1) == ["+44*"]


async def test_lists_and_scopes_are_independent(store: Store) -> None:
    """An entry added to one list of one scope is absent from the others."""
    await store.add("block", "tenant:acme", ["+33*"])
    assert await store.add("allow", "tenant:acme", ["+33*"]) == (["+33*"], [])
    assert await store.add("block", "tenant:other", ["+33*"]) == (["+33*"], [])
    assert await store.remove("block", "global", ["+33*"]) == ([], ["+33*"])


async def test_add_is_one_transaction_round_trip(store: Store, wire: Wire) -> None:
    """Many entries are added in one MULTI/EXEC batch, written once."""
    await store.ping()
    wire.clear()
    await store.add("block", "global", [f"+3361234{i:04d}" for i in range(50)])
    assert len(wire.writes) == 1
    names = wire.commands()
    assert names[0] == "MULTI"
    assert names[-1] == "EXEC"
    assert names.count("ZADD") == 50


# --- lookup ---------------------------------------------------------------------------

LOOKUP_CASES: list[tuple[str, dict[tuple[Any, str], list[str]], str, list[str], set[Match]]] = [
    ("exact", {("block", "global"): ["+33612345678"]}, "+33612345678", ["global"],
     {Match("global", "block", "+33612345678")}),
    ("one-digit-prefix", {("block", "global"): ["+3*"]}, "+33612345678", ["global"],
     {Match("global", "block", "+3*")}),
    ("every-matching-prefix-and-exact",
     {("block", "global"): ["+33*", "+336*", "+33612345678", "+34*"]}, "+33612345678",
     ["global"],
     {Match("global", "block", "+33*"), Match("global", "block", "+336*"),
      Match("global", "block", "+33612345678")}),
    ("full-length-prefix", {("allow", "global"): ["+33612345678*"]}, "+33612345678",
     ["global"], {Match("global", "allow", "+33612345678*")}),
    ("fourteen-digit-prefix-of-15-digit-number", {("block", "global"): ["+12345678901234*"]},
     "+123456789012345", ["global"], {Match("global", "block", "+12345678901234*")}),
    ("longer-prefix-does-not-match", {("block", "global"): ["+336123456789*"]},
     "+33612345678", ["global"], set()),
    ("sibling-prefix-does-not-match", {("block", "global"): ["+34*", "+3361234567*"]},
     "+33612345670", ["global"], {Match("global", "block", "+3361234567*")}),
    ("other-number-does-not-match", {("block", "global"): ["+33612345679"]}, "+33612345678",
     ["global"], set()),
    ("scope-not-asked-is-ignored", {("block", "tenant:acme"): ["+33*"]}, "+33612345678",
     ["global", "tenant:other"], set()),
    ("both-lists-both-scopes",
     {("block", "global"): ["+33*"], ("allow", "global"): ["+336*"],
      ("allow", "tenant:acme"): ["+33612345678"], ("block", "tenant:acme"): ["+44*"]},
     "+33612345678", ["global", "tenant:acme"],
     {Match("global", "block", "+33*"), Match("global", "allow", "+336*"),
      Match("tenant:acme", "allow", "+33612345678")}),
]


@pytest.mark.parametrize(("entries", "number", "scopes", "expected"),
                         [case[1:] for case in LOOKUP_CASES],
                         ids=[case[0] for case in LOOKUP_CASES])
async def test_lookup_returns_every_matching_entry(
        store: Store, entries: dict[tuple[Any, str], list[str]], number: str,
        scopes: list[str], expected: set[Match]) -> None:
    """lookup finds exact and prefix entries per list and scope, and nothing else."""
    for (name, scope), values in entries.items():
        await store.add(name, scope, values)
    found = await store.lookup([number], scopes)
    assert set(found) == {number}
    assert Counter(found[number]) == Counter(expected)


async def test_lookup_returns_each_match_once_for_repeated_numbers(store: Store) -> None:
    """A number given twice gets each matching entry once, not once per repetition."""
    await store.add("block", "global", ["+33*", "+33612345678"])
    found = await store.lookup(["+33612345678", "+33612345678", "+14155550100"], ["global"])
    assert Counter(found["+33612345678"]) == Counter(
        [Match("global", "block", "+33*"), Match("global", "block", "+33612345678")])
    assert found["+14155550100"] == []


async def test_lookup_with_nothing_to_probe_sends_nothing(store: Store, wire: Wire) -> None:
    """No numbers or no scopes: empty results without a Redis call."""
    await store.ping()
    wire.clear()
    assert await store.lookup([], ["global"]) == {}
    assert await store.lookup(["+33612345678"], []) == {"+33612345678": []}
    assert wire.writes == []


async def test_decision_for_three_scopes_and_twelve_digit_number_is_one_round_trip(
        store: Store, wire: Wire) -> None:
    """A decision over three scopes and a 12-digit number writes exactly one EVALSHA."""
    await store.add("allow", "global", ["+44*"])
    await store.add("block", "tenant:acme", ["+4479*"])
    await store.add("allow", "agent:42", [TWELVE_DIGITS])
    await store.add("block", "agent:42", ["+447911*"])
    await store.lookup(["+10000000000"], ["global"])  # the script is cached from here on
    wire.clear()

    result = await explain(store, TWELVE_DIGITS, SCOPES3[1:], None)

    assert wire.commands() == ["EVALSHA"]
    assert len(wire.writes) == 1
    assert result is not None
    assert result["decision"] == "blocked"
    assert result["matched"] == [
        {"scope": "global", "list": "allow", "entry": "+44*"},
        {"scope": "tenant:acme", "list": "block", "entry": "+4479*"},
        # the exact allow outranks the longer block prefix within agent:42
        {"scope": "agent:42", "list": "allow", "entry": TWELVE_DIGITS},
    ]


async def test_one_round_trip_seen_by_the_real_server(
        redis_server: str, real_redis: Any) -> None:
    """MONITOR on the real server shows one command from the store: EVALSHA, the probes
    running inside the script."""
    client = connect(REDIS, redis_server)
    store = make_store(client)
    try:
        await store.prepare()  # connects and loads the script
        await store.add("block", "tenant:acme", ["+4479*"])
        await store.add("allow", "agent:42", [TWELVE_DIGITS])
        await store.add("allow", "global", ["+1*"])
        async with monitor(redis_server) as seen:
            found = await store.lookup([TWELVE_DIGITS], SCOPES3)
            lines = await seen.until_marker(real_redis)
    finally:
        await client.aclose()

    from_clients = [line for line in lines if line.client != "lua"]
    assert [line.command for line in from_clients] == ["EVALSHA"], lines
    evalsha = from_clients[0]
    assert evalsha.args[2] == "6"  # numkeys: 3 scopes x 2 lists, all in this one call
    assert evalsha.args[10:] == list(lookup_candidates(TWELVE_DIGITS))
    inside = [line.command for line in lines if line.client == "lua"]
    assert inside.count("EXISTS") == 6
    assert inside.count("ZMSCORE") == 3  # only the three sets that exist are probed
    assert Counter(found[TWELVE_DIGITS]) == Counter([
        Match("tenant:acme", "block", "+4479*"), Match("agent:42", "allow", TWELVE_DIGITS)])
    decision = decide(TWELVE_DIGITS, SCOPES3, found[TWELVE_DIGITS])
    assert decision.verdict == "blocked"
    assert decision.cause == Match("tenant:acme", "block", "+4479*")


async def test_thousand_numbers_three_scopes_is_one_round_trip_and_correct(
        store: Store, wire: Wire) -> None:
    """1000 recipients x 3 scopes (~12k candidates, several ARGV slices) in one EVALSHA."""
    # Numbers diverge early, so most of their candidates are distinct.
    numbers = [f"+447{i:03d}{i * 7919 % 1_000_000:06d}" for i in range(1000)]
    await store.add("block", "tenant:acme", ["+4475*"])  # numbers 500-599
    await store.add("allow", "agent:42", [numbers[0], numbers[501], numbers[999]])
    await store.add("block", "global", ["+33*"])
    await store.lookup(["+10000000000"], ["global"])
    wire.clear()

    found = await store.lookup(numbers, SCOPES3)

    assert wire.commands() == ["EVALSHA"]
    candidates = {c for n in numbers for c in lookup_candidates(n)}
    assert len(candidates) > 2 * store_module._ARGV_SLICE  # really sliced
    assert set(found) == set(numbers)
    block = Match("tenant:acme", "block", "+4475*")
    for i, number in enumerate(numbers):
        expected = []
        if 500 <= i < 600:
            expected.append(block)
        if i in (0, 501, 999):
            expected.append(Match("agent:42", "allow", number))
        assert Counter(found[number]) == Counter(expected), number
    verdicts = Counter(decide(n, SCOPES3, found[n]).verdict for n in numbers)
    assert verdicts == {"blocked": 100, "allowed": 2, "unlisted": 898}


@pytest.mark.parametrize("slice_size", [1, 2, 7, 13, 14, 4000],
                         ids=lambda n: f"slice-{n}")
async def test_lookup_is_correct_at_every_argv_slice_boundary(
        store: Store, monkeypatch: pytest.MonkeyPatch, slice_size: int) -> None:
    """The script maps ZMSCORE replies back to the right candidates whatever the slice."""
    monkeypatch.setattr(store_module, "_ARGV_SLICE", slice_size)
    numbers = ["+33612345678", "+33612345679", "+4420794600000", "+14155550100"]
    await store.add("block", "global", ["+3*", "+33612345679", "+442079460000*"])
    await store.add("allow", "tenant:acme", ["+1415555*", "+33612345678"])
    found = await store.lookup(numbers, ["global", "tenant:acme"])
    assert Counter(found["+33612345678"]) == Counter(
        [Match("global", "block", "+3*"), Match("tenant:acme", "allow", "+33612345678")])
    assert Counter(found["+33612345679"]) == Counter(
        [Match("global", "block", "+3*"), Match("global", "block", "+33612345679")])
    assert found["+4420794600000"] == [Match("global", "block", "+442079460000*")]
    assert found["+14155550100"] == [Match("tenant:acme", "allow", "+1415555*")]


async def test_lookup_reloads_the_script_when_the_server_forgot_it(
        store: Store, client: Any) -> None:
    """After SCRIPT FLUSH (e.g. a Redis restart) lookups still work."""
    await store.add("block", "global", ["+33*"])
    await store.lookup(["+33612345678"], ["global"])
    await client.script_flush()
    found = await store.lookup(["+33612345678"], ["global"])
    assert found == {"+33612345678": [Match("global", "block", "+33*")]}


async def test_lookup_on_a_key_of_the_wrong_type_is_store_unavailable(
        store: Store, client: Any) -> None:
    """A list key clobbered with a string fails as StoreUnavailable, not a crash."""
    await client.set(Keys(PREFIX).list("block", "global"), "oops")
    with pytest.raises(StoreUnavailable):
        await store.lookup(["+33612345678"], ["global"])


# --- page -----------------------------------------------------------------------------


async def walk(store: Store, limit: int, name: Any = "block", scope: str = "global"
               ) -> list[Page]:
    """Every page of a listing, following next_cursor (bounded)."""
    pages = [await store.page(name, scope, None, limit)]
    while pages[-1].next_cursor is not None:
        assert len(pages) < 1000, "paging does not end"
        pages.append(await store.page(name, scope, pages[-1].next_cursor, limit))
    return pages


@pytest.mark.parametrize(("count", "limit", "sizes"), [
    (25, 10, [10, 10, 5]),
    (20, 10, [10, 10]),
    (10, 10, [10]),
    (9, 10, [9]),
    (3, 1, [1, 1, 1]),
    (0, 5, [0]),
], ids=["partial-last", "exact-multiple", "exactly-one-page", "short", "limit-1", "empty"])
async def test_page_walks_all_entries_in_member_order_with_exact_limit(
        store: Store, count: int, limit: int, sizes: list[int]) -> None:
    """Pages hold exactly `limit` entries, in order; next_cursor is None on the last."""
    entries = [f"+3361234{i:04d}" for i in range(count)]
    if entries:
        await store.add("block", "global", reversed(entries))
    pages = await walk(store, limit)
    assert [len(p.entries) for p in pages] == sizes
    assert [e for p in pages for e in p.entries] == entries
    assert pages[-1].next_cursor is None
    for page in pages[:-1]:
        assert page.next_cursor == page.entries[-1]


async def test_page_orders_prefixes_and_numbers_by_member(store: Store) -> None:
    """Member order is bytewise: '*' sorts before digits, so '+336*' precedes '+3361...'."""
    await store.add("allow", "tenant:acme", ["+4*", "+33612345678", "+33*", "+1*", "+336*"])
    page = await store.page("allow", "tenant:acme", None, 100)
    assert page == Page(("+1*", "+33*", "+336*", "+33612345678", "+4*"), None)


async def test_page_continues_after_a_cursor_that_was_removed(store: Store) -> None:
    """A cursor is a position: removing that entry does not break the next page."""
    await store.add("block", "global", ["+1*", "+2*", "+3*", "+4*"])
    first = await store.page("block", "global", None, 2)
    assert first == Page(("+1*", "+2*"), "+2*")
    await store.remove("block", "global", ["+2*"])
    assert await store.page("block", "global", first.next_cursor, 2) == Page(("+3*", "+4*"),
                                                                             None)


async def test_page_only_lists_its_own_list_and_scope(store: Store) -> None:
    """Other lists and scopes do not leak into a listing."""
    await store.add("block", "global", ["+1*"])
    await store.add("allow", "global", ["+2*"])
    await store.add("block", "tenant:acme", ["+3*"])
    assert await store.page("block", "global", None, 10) == Page(("+1*",), None)
    assert await store.page("block", "tenant:other", None, 10) == Page((), None)


# --- attempts stream ------------------------------------------------------------------


async def test_append_attempt_records_every_field_and_a_timestamp(
        store: Store, client: Any) -> None:
    """The stream entry holds the attempt's fields plus ts; the id is returned."""
    before = time.time()
    stream_id = await store.append_attempt(attempt(request_id="req-42"))
    entries = await client.xrange(Keys(PREFIX).attempts)
    assert [entry_id for entry_id, _ in entries] == [stream_id]
    fields = entries[0][1]
    assert fields["request_id"] == "req-42"
    assert fields["number"] == "+33612345678"
    assert fields["entry"] == "+33*"
    assert set(fields) == {"ts", "request_id", "upstream", "channel", "direction", "number",
                           "scopes", "scope", "list", "entry", "action"}
    assert before - 1 <= float(fields["ts"]) <= time.time() + 1


async def test_attempts_stream_is_capped(client: Any) -> None:
    """With attempts_max_len=10, 1000 appends leave a stream bounded near 10 (MAXLEN ~)."""
    store = make_store(client, attempts_max_len=10)
    for i in range(1000):
        await store.append_attempt(attempt(request_id=f"req-{i}"))
    length = await client.xlen(Keys(PREFIX).attempts)
    # Approximate trimming removes whole stream nodes (100 entries each by default).
    assert 10 <= length <= 200
    newest = await client.xrevrange(Keys(PREFIX).attempts, count=1)
    assert newest[0][1]["request_id"] == "req-999"


async def test_append_attempt_sends_maxlen_approximate(store: Store, wire: Wire) -> None:
    """XADD carries MAXLEN ~ attempts_max_len."""
    await store.ping()
    wire.clear()
    await store.append_attempt(attempt())
    assert wire.commands() == ["XADD"]
    assert b"$6\r\nMAXLEN\r\n$1\r\n~\r\n$4\r\n1000\r\n" in wire.writes[0]


# --- prepare / ping -------------------------------------------------------------------


async def test_prepare_on_the_real_server_loads_the_script(real_redis: Any) -> None:
    """prepare() accepts the suite's redis-server and loads the lookup script."""
    sha = hashlib.sha1(LOOKUP_LUA.encode()).hexdigest()
    await real_redis.script_flush()
    assert await real_redis.script_exists(sha) == [False]
    await make_store(real_redis).prepare()
    assert await real_redis.script_exists(sha) == [True]


@pytest.mark.parametrize(("info", "compatible"), [
    ({"redis_version": "5.0.7"}, False),
    ({"redis_version": "6.0.16"}, False),
    ({"redis_version": "6.2.0"}, True),
    ({"redis_version": "7.4.1"}, True),
    ({"redis_version": "10.0.0"}, True),
    ({"redis_version": "7.2.4", "valkey_version": "8.1.0"}, True),
], ids=["5.0", "6.0", "6.2", "7.4", "10.0-not-string-compared", "valkey"])
async def test_prepare_refuses_servers_older_than_6_2(
        monkeypatch: pytest.MonkeyPatch, info: dict[str, str], compatible: bool) -> None:
    """prepare() raises StoreIncompatible below 6.2 and accepts newer versions."""
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)

    async def fake_info(section: str | None = None) -> dict[str, str]:
        return info

    monkeypatch.setattr(client, "info", fake_info)
    store = make_store(client)
    if compatible:
        await store.prepare()
        sha = hashlib.sha1(LOOKUP_LUA.encode()).hexdigest()
        assert await client.script_exists(sha) == [True]
    else:
        with pytest.raises(StoreIncompatible, match=r"too old: 6\.2 or newer"):
            await store.prepare()


async def test_ping_is_true_when_the_store_answers(store: Store) -> None:
    """ping() is True on a reachable server."""
    assert await store.ping() is True


# --- faults ---------------------------------------------------------------------------

StoreCall = Callable[[Store], Awaitable[object]]
CALLS: list[tuple[str, StoreCall]] = [
    ("lookup", lambda s: s.lookup(["+33612345678"], ["global", "tenant:acme"])),
    ("add", lambda s: s.add("block", "global", ["+33*"])),
    ("remove", lambda s: s.remove("block", "global", ["+33*"])),
    ("page", lambda s: s.page("block", "global", None, 10)),
    ("append_attempt", lambda s: s.append_attempt(attempt())),
    ("prepare", lambda s: s.prepare()),
]


@pytest.fixture
async def closed_port_store() -> AsyncIterator[Store]:
    """A store whose client points at a closed loopback port."""
    config = RedisConfig(timeout=0.2)
    store = Store(connect(config, "redis://127.0.0.1:1/0"), config, StoreConfig())
    yield store
    await store.close()


@pytest.mark.parametrize("call", [c[1] for c in CALLS], ids=[c[0] for c in CALLS])
async def test_closed_port_raises_store_unavailable(
        closed_port_store: Store, call: StoreCall) -> None:
    """Every store call against a closed port fails fast as StoreUnavailable."""
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:1"):
        await call(closed_port_store)
    assert time.monotonic() - started < 2.0


async def test_ping_is_false_on_a_closed_port(closed_port_store: Store) -> None:
    """ping() reports False instead of raising."""
    assert await closed_port_store.ping() is False


@pytest.mark.parametrize("call", [c[1] for c in CALLS[:-1]], ids=[c[0] for c in CALLS[:-1]])
async def test_server_that_never_answers_times_out_as_store_unavailable(
        call: StoreCall) -> None:
    """A server that accepts but never replies costs at most ~2 x timeout, then fails."""
    server = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = RedisConfig(timeout=0.2)
    store = Store(connect(config, f"redis://127.0.0.1:{port}/0"), config, StoreConfig())
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await call(store)
        assert time.monotonic() - started < 2.0
        assert await store.ping() is False
    finally:
        await store.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("call", [c[1] for c in CALLS[:-1]], ids=[c[0] for c in CALLS[:-1]])
async def test_connection_lost_mid_life_raises_store_unavailable(call: StoreCall) -> None:
    """A store that worked and then lost its server raises StoreUnavailable."""
    server = fakeredis.FakeServer()
    store = make_store(fakeredis.FakeAsyncRedis(server=server, decode_responses=True))
    await store.add("block", "global", ["+33*"])
    server.connected = False
    with pytest.raises(StoreUnavailable):
        await call(store)
    assert await store.ping() is False
    server.connected = True
    assert await store.ping() is True


# --- MONITOR helper -------------------------------------------------------------------


@dataclass(frozen=True)
class Monitored:
    """One MONITOR line: which client (`lua` inside scripts) sent which command."""

    client: str
    command: str
    args: list[str]


def parse_monitor_line(line: str) -> Monitored:
    """Parse `+<ts> [<db> <client>] "CMD" "arg" ...`."""
    head, _, rest = line.partition("] ")
    client = head.split("[", 1)[1].split(" ", 1)[1]
    args: list[str] = []
    i = 0
    while i < len(rest):
        if rest[i] == '"':
            j = i + 1
            value = []
            while rest[j] != '"':
                if rest[j] == "\\":
                    j += 1
                value.append(rest[j])
                j += 1
            args.append("".join(value))
            i = j + 1
        else:
            i += 1
    return Monitored(client, args[0].upper(), args)


class MonitorSession:
    """Lines MONITOR reported until a marker command sent by another client."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    async def until_marker(self, other_client: Any) -> list[Monitored]:
        marker = f"gatekeeper-test-marker-{time.monotonic_ns()}"
        await other_client.echo(marker)
        seen: list[Monitored] = []
        async with asyncio.timeout(5):
            while True:
                raw = await self._reader.readline()
                assert raw, "MONITOR connection closed"
                line = parse_monitor_line(raw.decode().rstrip("\r\n"))
                if line.command == "ECHO" and line.args[1:] == [marker]:
                    return seen
                seen.append(line)


@contextlib.asynccontextmanager
async def monitor(url: str) -> AsyncIterator[MonitorSession]:
    """A raw MONITOR connection to the real server at `url`."""
    parts = urlsplit(url)
    assert parts.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", parts.port)
    try:
        password = parts.password or ""
        writer.write(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*1\r\n$7\r\nMONITOR\r\n"
                     % (len(password), password.encode()))
        await writer.drain()
        async with asyncio.timeout(5):
            assert await reader.readline() == b"+OK\r\n"
            assert await reader.readline() == b"+OK\r\n"
        yield MonitorSession(reader)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def test_parse_monitor_line_reads_client_and_arguments() -> None:
    """The MONITOR parser used above understands quoting and the lua pseudo-client."""
    line = parse_monitor_line('+1.5 [0 127.0.0.1:5000] "EVALSHA" "ab" "1" "k:\\"x" "+33*"')
    assert line == Monitored("127.0.0.1:5000", "EVALSHA", ["EVALSHA", "ab", "1", 'k:"x', "+33*"])
    assert parse_monitor_line('+1.5 [0 lua] "zmscore" "k"').client == "lua"

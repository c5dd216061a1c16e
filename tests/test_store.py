"""The Redis list store: keys and members, add/remove with channels and metadata, opt-in
removal by source, lookups in one round trip, paging, the attempts stream and store
faults, on fakeredis and on the real redis-server started by the suite."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import fakeredis
import pytest
from redis.asyncio.connection import AbstractConnection

from gatekeeper.admin.native import explain
from gatekeeper.config import RedisConfig, StoreConfig
from gatekeeper.numbers import lookup_candidates
from gatekeeper.policy import ListName, Match, decide
from gatekeeper.store import (
    ADD_LUA,
    BEGIN_LOAD_LUA,
    DROP_PACKED_LUA,
    END_LOAD_LUA,
    LOAD_MARK_SECONDS,
    LOOKUP_LUA,
    REMOVE_IF_SOURCE_LUA,
    REMOVE_LUA,
    SWAP_LUA,
    SWEEP_LUA,
    BlockedAttempt,
    EntryMeta,
    Keys,
    Listed,
    ListItem,
    ListKeys,
    Page,
    Store,
    StoreIncompatible,
    StoreUnavailable,
    connect,
)
from gatekeeper.store import lookup as lookup_module
from gatekeeper.types import Channel

PREFIX = "t:"
REDIS = RedisConfig(key_prefix=PREFIX, timeout=5.0)
SCOPES3 = ["global", "tenant:acme", "agent:42"]
TWELVE_DIGITS = "+447911123456"
T0 = 1_700_000_000.0
MANUAL = EntryMeta(source="api", added_at=T0, added_by="admin")
OPT_OUT = EntryMeta(source="opt-out", added_at=T0 + 60, added_by="twilio-inbound",
                    note="STOP")
SCRIPTS = {"lookup": LOOKUP_LUA, "add": ADD_LUA, "remove_if_source": REMOVE_IF_SOURCE_LUA,
           "sweep": SWEEP_LUA, "swap": SWAP_LUA, "begin_load": BEGIN_LOAD_LUA,
           "end_load": END_LOAD_LUA, "remove": REMOVE_LUA, "drop_packed": DROP_PACKED_LUA}


def make_store(client: Any, attempts_max_len: int = 1000) -> Store:
    """A store on `client` with the test key prefix."""
    return Store(client, REDIS, StoreConfig(attempts_max_len=attempts_max_len))


def items(*entries: str, channel: Channel | None = None) -> list[ListItem]:
    """ListItems for `entries`, all for one channel (None: every channel)."""
    return [ListItem(entry, channel) for entry in entries]


def voice(entry: str) -> ListItem:
    """A voice-only entry."""
    return ListItem(entry, "voice")


def sms(entry: str) -> ListItem:
    """An sms-only entry."""
    return ListItem(entry, "sms")


async def put(store: Store, name: ListName, scope: str, *entries: str | ListItem,
              meta: EntryMeta = MANUAL) -> None:
    """Add entries (strings are every-channel entries) and check they were all new."""
    wanted = [e if isinstance(e, ListItem) else ListItem(e) for e in entries]
    added, existing = await store.add(name, scope, wanted, meta)
    assert (added, existing) == (list(dict.fromkeys(wanted)), [])


async def members(client: Any, name: ListName = "block", scope: str = "global"
                  ) -> list[str]:
    """The raw members of one list set, in set order."""
    return list(await client.zrange(Keys(PREFIX).list(name, scope), 0, -1))


async def stored_meta(client: Any, name: ListName = "block", scope: str = "global"
                      ) -> dict[str, dict[str, Any]]:
    """The metadata hash of one list, decoded."""
    raw = await client.hgetall(Keys(PREFIX).of(name, scope).meta)
    return {member: json.loads(text) for member, text in raw.items()}


def attempt(number: str = "+33612345678", request_id: str = "req-1") -> BlockedAttempt:
    """A blocked attempt with plausible field values."""
    return BlockedAttempt(request_id=request_id, upstream="twilio", channel="sms",
                          direction="outbound", number=number, scopes="global",
                          scope="global", list="block", entry="+33*", action="reject")


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
        return [command[0].upper() for command in self.parsed()]

    def parsed(self) -> list[list[str]]:
        """Every command written, as its list of arguments, in order."""
        found: list[list[str]] = []
        for payload in self.writes:
            # RESP: each command is "*N" then N pairs of "$len", value.
            lines = payload.split(b"\r\n")
            i = 0
            while i < len(lines) and lines[i].startswith(b"*"):
                count = int(lines[i][1:])
                found.append([lines[i + 2 + 2 * k].decode() for k in range(count)])
                i += 1 + 2 * count
        return found


def the_write(wire: Wire) -> list[list[str]]:
    """The commands of an acknowledged write, one round trip, without the INFO
    persistence and INFO replication that follow it (store/durability.py: on a server
    keeping an AOF, whose replicas, if any, are then waited for; INFO persistence also
    the first time on fakeredis, which refuses it and is not asked again)."""
    commands = wire.parsed()
    checks = 0
    for check in (["INFO", "replication"], ["INFO", "persistence"]):
        if len(commands) > checks and commands[-1 - checks] == check:
            checks += 1
    assert len(wire.writes) == 1 + checks, commands
    return commands[:len(commands) - checks]


def record_wire(monkeypatch: pytest.MonkeyPatch) -> Wire:
    """Record what every redis-py connection (real or fakeredis) sends from now on."""
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


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Wire:
    """Records what every redis-py connection (real or fakeredis) sends."""
    return record_wire(monkeypatch)


async def warm_up(store: Store) -> None:
    """Connect and load every script, so later calls are plain EVALSHAs."""
    await store.ping()
    for script in SCRIPTS.values():
        await store.client.script_load(script)


def test_wire_parses_every_command_of_a_batch() -> None:
    """The RESP reader used above splits a pipelined write into its commands."""
    wire = Wire([b"*1\r\n$5\r\nMULTI\r\n*3\r\n$4\r\nZREM\r\n$1\r\nk\r\n$4\r\n+33*\r\n"
                 b"*1\r\n$4\r\nEXEC\r\n"])
    assert wire.parsed() == [["MULTI"], ["ZREM", "k", "+33*"], ["EXEC"]]
    assert wire.commands() == ["MULTI", "ZREM", "EXEC"]


# --- keys and members -----------------------------------------------------------------


@pytest.mark.parametrize(("prefix", "name", "scope", "expected"), [
    ("gk:", "block", "global", "gk:list:block:global"),
    ("gk:", "allow", "tenant:acme", "gk:list:allow:tenant:acme"),
    ("other/", "block", "agent:42", "other/list:block:agent:42"),
], ids=["global-block", "tenant-allow", "custom-prefix"])
def test_keys_build_list_names_from_prefix_list_and_scope(
        prefix: str, name: ListName, scope: str, expected: str) -> None:
    """List set names are {prefix}list:{list}:{scope}."""
    assert Keys(prefix).list(name, scope) == expected


@pytest.mark.parametrize(("prefix", "name", "scope", "expected"), [
    ("gk:", "block", "global",
     ListKeys("gk:list:block:global", "gk:meta:block:global", "gk:exp:block:global",
              "gk:loading:block:global", "gk:journal:block:global",
              "gk:packed:block:global", "gk:pk:live:block:global:", "gk:pktrash",
              "gk:pkpending")),
    ("gk:", "allow", "tenant:acme",
     ListKeys("gk:list:allow:tenant:acme", "gk:meta:allow:tenant:acme",
              "gk:exp:allow:tenant:acme", "gk:loading:allow:tenant:acme",
              "gk:journal:allow:tenant:acme", "gk:packed:allow:tenant:acme",
              "gk:pk:live:allow:tenant:acme:", "gk:pktrash",
              "gk:pkpending")),
    ("other/", "block", "agent:42",
     ListKeys("other/list:block:agent:42", "other/meta:block:agent:42",
              "other/exp:block:agent:42", "other/loading:block:agent:42",
              "other/journal:block:agent:42", "other/packed:block:agent:42",
              "other/pk:live:block:agent:42:", "other/pktrash",
              "other/pkpending")),
], ids=["global-block", "tenant-allow", "custom-prefix"])
def test_keys_of_a_list_are_its_set_metadata_hash_expiry_set_mark_journal_and_record(
        prefix: str, name: ListName, scope: str, expected: ListKeys) -> None:
    """A list's keys are {prefix}list|meta|exp|loading|journal|packed:{list}:{scope};
    `all` is the first three in script order."""
    keys = Keys(prefix).of(name, scope)
    assert keys == expected
    assert keys.list == Keys(prefix).list(name, scope)
    assert keys.all == (expected.list, expected.meta, expected.expiry)


@pytest.mark.parametrize(("key", "expected"), [
    ("gk:exp:block:global", ("block", "global")),
    ("gk:exp:allow:tenant:acme", ("allow", "tenant:acme")),
    ("gk:exp:deny:global", None),
    ("gk:exp:block", None),
    ("gk:exp:block:", None),
], ids=["global-block", "scope-with-colon", "unknown-list", "no-scope", "empty-scope"])
def test_keys_from_expiry_finds_the_list_an_expiry_set_belongs_to(
        key: str, expected: tuple[ListName, str] | None) -> None:
    """The sweeper maps each expiry set found by SCAN back to its list; stray keys that
    only look like expiry sets are skipped."""
    keys = Keys("gk:")
    assert keys.from_expiry(key) == (None if expected is None else keys.of(*expected))
    assert keys.expiry_pattern == "gk:exp:*"


def test_keys_staging_are_fresh_and_apart_from_live_keys() -> None:
    """Each load gets its own tmp keys, never a live key nor one the sweeper scans."""
    keys = Keys("gk:")
    first, second = keys.staging("block", "global"), keys.staging("block", "global")
    assert first != second
    for staged in (first, second):
        assert all(k.startswith("gk:tmp:") for k in staged.all)
        assert not set(staged.all) & set(keys.of("block", "global").all)
        assert keys.from_expiry(staged.expiry) is None


def test_keys_attempts_stream_name() -> None:
    """The attempts stream is {prefix}attempts."""
    assert Keys("gk:").attempts == "gk:attempts"


@pytest.mark.parametrize(("item", "member"), [
    (ListItem("+33*"), "+33*"),
    (ListItem("+33612345678"), "+33612345678"),
    (ListItem("+33*", "sms"), "+33*#sms"),
    (ListItem("+33612345678", "voice"), "+33612345678#voice"),
], ids=["prefix-every-channel", "number-every-channel", "prefix-sms", "number-voice"])
def test_keys_member_and_item_round_trip(item: ListItem, member: str) -> None:
    """An entry for every channel is stored as written; a channel-limited one gets
    `#sms`/`#voice`; parsing the member gives the item back."""
    assert Keys.member(item) == member
    assert Keys.item(member) == item


async def test_store_writes_only_keys_built_by_keys(store: Store, client: Any) -> None:
    """Every key the store creates is one Keys names, under the configured prefix."""
    await put(store, "block", "global", "+33*", voice("+44*"))
    await put(store, "allow", "tenant:acme", "+33612345678")
    await put(store, "allow", "agent:42", "+1*",
              meta=replace(MANUAL, expires_at=time.time() + 3600))
    batch = await store.save_batch(MANUAL, "agent:42")
    await store.append_attempt(attempt())
    keys = Keys(PREFIX)
    assert set(await client.keys("*")) == {
        *keys.of("block", "global").all[:2], *keys.of("allow", "tenant:acme").all[:2],
        *keys.of("allow", "agent:42").all, keys.batch_prefix("agent:42") + batch.removeprefix("@"),
        keys.attempts}


# --- metadata -------------------------------------------------------------------------


@pytest.mark.parametrize(("meta", "text"), [
    (EntryMeta("api", 1.5), '{"source":"api","added_at":1.5}'),
    (EntryMeta("api", T0, "admin"),
     '{"source":"api","added_at":1700000000.0,"added_by":"admin"}'),
    (EntryMeta("opt-out", 2.0, "twilio-inbound", "STOP"),
     '{"source":"opt-out","added_at":2.0,"added_by":"twilio-inbound","note":"STOP"}'),
    (EntryMeta("api", 2.0, "ops", "fraud ring", 3.5),
     '{"source":"api","added_at":2.0,"added_by":"ops","note":"fraud ring",'
     '"expires_at":3.5}'),
    (EntryMeta("api", 2.0, note="Grüße, 日本"),
     '{"source":"api","added_at":2.0,"note":"Grüße, 日本"}'),
], ids=["minimal", "with-added-by", "with-note", "every-field", "non-ascii-note"])
def test_entry_meta_json_round_trip(meta: EntryMeta, text: str) -> None:
    """Metadata is compact JSON without unset fields, and parses back unchanged."""
    assert meta.to_json() == text
    assert EntryMeta.from_json(text) == meta


@pytest.mark.parametrize("text", [None, "", "not json", "[]", '"api"', "7", "{}",
                                  '{"source":"api"}', '{"added_at":1}',
                                  '{"source":"api","added_at":"soon"}',
                                  '{"source":"api","added_at":1,"expires_at":"later"}'],
                         ids=["none", "empty", "garbage", "array", "string", "number",
                              "empty-object", "no-time", "no-source", "bad-time",
                              "bad-expiry"])
def test_entry_meta_from_unreadable_json_is_none(text: str | None) -> None:
    """Absent or unreadable metadata parses as None instead of raising."""
    assert EntryMeta.from_json(text) is None


# --- add / remove ---------------------------------------------------------------------


async def test_add_reports_added_then_existing_and_stores_score_zero(
        store: Store, client: Any) -> None:
    """add returns (added, existing), is idempotent and stores members with score 0."""
    added, existing = await store.add("block", "global", items("+33*", "+33612345678"),
                                      MANUAL)
    assert (added, existing) == (items("+33*", "+33612345678"), [])
    added, existing = await store.add("block", "global", items("+33612345678", "+44*"),
                                      MANUAL)
    assert (added, existing) == (items("+44*"), items("+33612345678"))
    scored = await client.zrange(Keys(PREFIX).list("block", "global"), 0, -1, withscores=True)
    assert sorted(scored) == [("+33*", 0.0), ("+33612345678", 0.0), ("+44*", 0.0)]


async def test_add_dedupes_input_keeping_first_order(store: Store) -> None:
    """Repeated entries in one call are added once and reported once."""
    added, existing = await store.add(
        "allow", "global", [*items("+44*", "+33*", "+44*"), voice("+33*"), *items("+33*"),
                            voice("+33*")], MANUAL)
    assert (added, existing) == ([ListItem("+44*"), ListItem("+33*"), voice("+33*")], [])


async def test_add_keeps_channel_variants_of_one_entry_apart(store: Store,
                                                             client: Any) -> None:
    """`+33*`, `+33*#sms` and `+33*#voice` are three members; each is added once."""
    added, existing = await store.add(
        "block", "global", [ListItem("+33*"), sms("+33*"), voice("+33*")], MANUAL)
    assert (added, existing) == ([ListItem("+33*"), sms("+33*"), voice("+33*")], [])
    assert await members(client) == ["+33*", "+33*#sms", "+33*#voice"]
    added, existing = await store.add("block", "global", [voice("+33*"), voice("+44*")],
                                      MANUAL)
    assert (added, existing) == ([voice("+44*")], [voice("+33*")])


async def test_add_records_metadata_for_each_added_member(store: Store,
                                                          client: Any) -> None:
    """Each added member gets the call's metadata as JSON in the list's meta hash."""
    await put(store, "block", "tenant:acme", "+33*", sms("+33612345678"), meta=OPT_OUT)
    expected = {"source": "opt-out", "added_at": T0 + 60, "added_by": "twilio-inbound",
                "note": "STOP"}
    assert await stored_meta(client, "block", "tenant:acme") == {
        "+33*": expected, "+33612345678#sms": expected}
    assert await stored_meta(client, "block", "global") == {}


async def test_re_adding_by_another_source_keeps_the_first_metadata(
        store: Store, client: Any) -> None:
    """An opt-out of an entry that is already there (manually) does not relabel it, while
    the entries that call does add get the opt-out's metadata."""
    await put(store, "block", "global", sms("+33612345678"), meta=MANUAL)
    added, existing = await store.add(
        "block", "global", [sms("+33612345678"), sms("+33612345679")], OPT_OUT)
    assert (added, existing) == ([sms("+33612345679")], [sms("+33612345678")])
    meta = await stored_meta(client)
    assert meta["+33612345678#sms"]["source"] == "api"
    assert meta["+33612345678#sms"]["added_at"] == T0
    assert meta["+33612345679#sms"]["source"] == "opt-out"


async def test_add_and_remove_with_no_entries_send_nothing(store: Store, wire: Wire) -> None:
    """Empty input is a no-op that does not touch Redis."""
    await store.ping()  # open the connection so only the calls below are recorded
    wire.clear()
    assert await store.add("block", "global", [], MANUAL) == ([], [])
    assert await store.remove("block", "global", iter([])) == ([], [])
    assert await store.remove("block", "global", [], every_channel=True) == ([], [])
    assert wire.writes == []


async def test_remove_reports_removed_then_missing(store: Store, client: Any) -> None:
    """remove returns (removed, not present), dedupes input and is idempotent."""
    await put(store, "block", "global", "+33*", "+44*")
    removed, missing = await store.remove("block", "global", items("+33*", "+33*", "+1*"))
    assert (removed, missing) == (items("+33*"), items("+1*"))
    removed, missing = await store.remove("block", "global", items("+33*"))
    assert (removed, missing) == ([], items("+33*"))
    assert await members(client) == ["+44*"]


async def test_remove_deletes_the_metadata_of_what_it_removes(store: Store,
                                                              client: Any) -> None:
    """Removed members lose their metadata; the others keep theirs."""
    await put(store, "block", "global", "+33*", voice("+44*"), "+1*")
    await store.remove("block", "global", [ListItem("+33*"), voice("+44*")])
    assert set(await stored_meta(client)) == {"+1*"}
    await store.remove("block", "global", items("+1*"), every_channel=True)
    assert await client.exists(Keys(PREFIX).of("block", "global").meta) == 0


REMOVE_CASES: list[tuple[str, list[ListItem], bool, list[ListItem], list[str]]] = [
    ("plain-only-plain", items("+33*"), False, items("+33*"), ["+33*#sms", "+33*#voice"]),
    ("plain-every-channel", items("+33*"), True, items("+33*"), []),
    ("voice-only-voice", [voice("+33*")], False, [voice("+33*")], ["+33*", "+33*#sms"]),
    ("voice-every-channel-still-only-voice", [voice("+33*")], True, [voice("+33*")],
     ["+33*", "+33*#sms"]),
    ("sms-and-voice", [sms("+33*"), voice("+33*")], False, [sms("+33*"), voice("+33*")],
     ["+33*"]),
]


@pytest.mark.parametrize(("remove", "every_channel", "removed", "left"),
                         [c[1:] for c in REMOVE_CASES], ids=[c[0] for c in REMOVE_CASES])
async def test_remove_with_channels(store: Store, client: Any, remove: list[ListItem],
                                    every_channel: bool, removed: list[ListItem],
                                    left: list[str]) -> None:
    """A channel item removes only its variant; a plain one removes only the plain member,
    unless `every_channel`, when it takes its #sms/#voice variants with it."""
    await put(store, "block", "global", "+33*", sms("+33*"), voice("+33*"), voice("+44*"))
    assert await store.remove("block", "global", remove, every_channel) == (removed, [])
    assert await members(client) == [*left, "+44*#voice"]
    assert sorted(await stored_meta(client)) == [*left, "+44*#voice"]


async def test_remove_every_channel_of_a_plain_entry_present_only_for_one_channel(
        store: Store, client: Any) -> None:
    """With every_channel a plain entry counts as removed when only a variant was there;
    without it, it is missing and the variant stays."""
    await put(store, "allow", "global", voice("+33612345678"))
    assert await store.remove("allow", "global", items("+33612345678")) == (
        [], items("+33612345678"))
    assert await members(client, "allow") == ["+33612345678#voice"]
    assert await store.remove("allow", "global", items("+33612345678"),
                              every_channel=True) == (items("+33612345678"), [])
    assert await members(client, "allow") == []


async def test_lists_and_scopes_are_independent(store: Store) -> None:
    """An entry added to one list of one scope is absent from the others."""
    await put(store, "block", "tenant:acme", "+33*")
    assert await store.add("allow", "tenant:acme", items("+33*"), MANUAL) == (
        items("+33*"), [])
    assert await store.add("block", "tenant:other", items("+33*"), MANUAL) == (
        items("+33*"), [])
    assert await store.remove("block", "global", items("+33*"), every_channel=True) == (
        [], items("+33*"))


async def test_add_is_one_round_trip(store: Store, wire: Wire) -> None:
    """Many entries are added by one EVALSHA (set, metadata hash, expiry set, load mark,
    journal and packed-load record as its keys; metadata, an empty expiry and the
    journal's lifetime as its first arguments), written once (then the AOF check)."""
    await warm_up(store)
    wire.clear()
    wanted = [ListItem(f"+3361234{i:04d}", ("sms", "voice", None)[i % 3]) for i in range(50)]
    await store.add("block", "global", wanted, MANUAL)
    [command] = the_write(wire)
    keys = Keys(PREFIX)
    assert command[0].upper() == "EVALSHA"
    assert command[1] == hashlib.sha1(ADD_LUA.encode()).hexdigest()
    live = keys.of("block", "global")
    assert command[2:9] == ["6", *live.all, live.loading, live.journal, live.packed]
    assert json.loads(command[9]) == {"source": "api", "added_at": T0, "added_by": "admin"}
    assert command[10] == ""  # no expiry
    assert command[11] == str(LOAD_MARK_SECONDS)
    assert command[12] == ""  # a live list: no lifetime
    assert command[13:] == [Keys.member(i) for i in wanted]


async def test_remove_is_one_script_round_trip(store: Store, wire: Wire) -> None:
    """Many entries (each with its channel variants) are removed, metadata, expiry and
    packed load included, by one EVALSHA: a count then the members, per entry."""
    await warm_up(store)
    wire.clear()
    await store.remove("block", "global", items(*(f"+3361234{i:04d}" for i in range(50))),
                       every_channel=True)
    [command] = the_write(wire)
    keys = Keys(PREFIX).of("block", "global")
    assert command[0].upper() == "EVALSHA"
    assert command[1] == hashlib.sha1(REMOVE_LUA.encode()).hexdigest()
    assert command[2:7] == ["4", *keys.all, keys.packed]
    assert command[7 + 4 * 7:7 + 4 * 8] == [
        "3", "+33612340007", "+33612340007#sms", "+33612340007#voice"]
    assert len(command) == 7 + 4 * 50


# --- remove_if_source -----------------------------------------------------------------


async def seed_unreadable(client: Any, member: str, meta_text: str | None) -> None:
    """A member put in by hand, with raw metadata text (or none at all)."""
    await client.zadd(Keys(PREFIX).list("block", "global"), {member: 0})
    if meta_text is not None:
        await client.hset(Keys(PREFIX).of("block", "global").meta, member, meta_text)


REMOVE_IF_SOURCE_CASES: list[tuple[str, EntryMeta | str | None, ListItem, bool]] = [
    ("opt-out-entry", OPT_OUT, sms("+33612345678"), True),
    ("manual-entry", MANUAL, sms("+33612345678"), False),
    ("manual-by-another-opt-out-like-source", EntryMeta("import", T0), sms("+33612345678"),
     False),
    ("no-metadata", None, sms("+33612345678"), False),
    ("unreadable-metadata", "not json", sms("+33612345678"), False),
    ("metadata-not-an-object", '"opt-out"', sms("+33612345678"), False),
    ("metadata-without-source", '{"added_at":1}', sms("+33612345678"), False),
    ("other-channel-variant", OPT_OUT, voice("+33612345678"), False),
    ("every-channel-variant", OPT_OUT, ListItem("+33612345678"), False),
]


@pytest.mark.parametrize(("meta", "asked", "removed"),
                         [c[1:] for c in REMOVE_IF_SOURCE_CASES],
                         ids=[c[0] for c in REMOVE_IF_SOURCE_CASES])
async def test_remove_if_source_only_lifts_entries_of_that_source(
        store: Store, client: Any, meta: EntryMeta | str | None, asked: ListItem,
        removed: bool) -> None:
    """An opt-in removes the sms entry an opt-out added, and never a manual entry, one
    without (readable) metadata, or another channel's variant."""
    member = "+33612345678#sms"
    if isinstance(meta, EntryMeta):
        await put(store, "block", "global", sms("+33612345678"), meta=meta)
    else:
        await seed_unreadable(client, member, meta)
    before = await client.hget(Keys(PREFIX).of("block", "global").meta, member)

    assert await store.remove_if_source("block", "global", asked, "opt-out") is removed

    if removed:
        assert await members(client) == []
        assert await stored_meta(client) == {}
    else:
        assert await members(client) == [member]
        assert await client.hget(Keys(PREFIX).of("block", "global").meta, member) == before


async def test_remove_if_source_on_an_absent_entry_is_false(store: Store,
                                                            client: Any) -> None:
    """Nothing to remove: False, and no key is created."""
    assert await store.remove_if_source("block", "global", sms("+33612345678"),
                                        "opt-out") is False
    assert await client.keys("*") == []


async def test_opt_out_then_opt_in_never_touches_a_manual_block(store: Store,
                                                                client: Any) -> None:
    """A manual sms block survives an opt-out (already there, stays manual) and the
    opt-in that follows; a number only the opt-out blocked is lifted by the opt-in."""
    await put(store, "block", "global", sms("+33612345678"), meta=MANUAL)
    both = [sms("+33612345678"), sms("+33612345679")]
    assert await store.add("block", "global", both, OPT_OUT) == (both[1:], both[:1])
    for item in both:
        await store.remove_if_source("block", "global", item, "opt-out")
    assert await members(client) == ["+33612345678#sms"]
    assert (await stored_meta(client))["+33612345678#sms"]["source"] == "api"
    found = await store.lookup(["+33612345678", "+33612345679"], ["global"], "sms")
    assert found == {"+33612345678": [Match("global", "block", "+33612345678", "sms")],
                     "+33612345679": []}


async def test_remove_if_source_is_one_round_trip(store: Store, wire: Wire) -> None:
    """The check and the removal happen in one EVALSHA."""
    await put(store, "block", "tenant:acme", sms("+33612345678"), meta=OPT_OUT)
    await warm_up(store)
    wire.clear()
    assert await store.remove_if_source("block", "tenant:acme", sms("+33612345678"),
                                        "opt-out") is True
    keys = Keys(PREFIX)
    assert the_write(wire) == [[
        "EVALSHA", hashlib.sha1(REMOVE_IF_SOURCE_LUA.encode()).hexdigest(), "3",
        *keys.of("block", "tenant:acme").all, "+33612345678#sms", "opt-out",
        keys.batch_prefix("tenant:acme")]]


# --- lookup ---------------------------------------------------------------------------

Seed = dict[tuple[ListName, str], list[str | ListItem]]


async def seed(store: Store, entries: Seed) -> None:
    """Add entries by list and scope (strings are every-channel entries)."""
    for (name, scope), values in entries.items():
        await put(store, name, scope, *values)


LOOKUP_CASES: list[tuple[str, Seed, str, list[str], set[Match]]] = [
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
    ("channel-entries-ignored-without-a-channel",
     {("block", "global"): [voice("+33*"), sms("+33612345678")],
      ("allow", "global"): ["+336*"]},
     "+33612345678", ["global"], {Match("global", "allow", "+336*")}),
]


@pytest.mark.parametrize(("entries", "number", "scopes", "expected"),
                         [case[1:] for case in LOOKUP_CASES],
                         ids=[case[0] for case in LOOKUP_CASES])
async def test_lookup_returns_every_matching_entry(
        store: Store, entries: Seed, number: str, scopes: list[str],
        expected: set[Match]) -> None:
    """lookup finds exact and prefix entries per list and scope, and nothing else."""
    await seed(store, entries)
    found = await store.lookup([number], scopes)
    assert set(found) == {number}
    assert Counter(found[number]) == Counter(expected)


N = "+33612345678"
CHANNEL_CASES: list[tuple[str, Seed, Channel | None, set[Match], str]] = [
    ("voice-block-blocks-voice", {("block", "global"): [voice("+33*")]}, "voice",
     {Match("global", "block", "+33*", "voice")}, "blocked"),
    ("voice-block-not-sms", {("block", "global"): [voice("+33*")]}, "sms", set(),
     "unlisted"),
    ("voice-block-not-without-channel", {("block", "global"): [voice("+33*")]}, None,
     set(), "unlisted"),
    ("sms-block-blocks-sms", {("block", "global"): [sms(N)]}, "sms",
     {Match("global", "block", N, "sms")}, "blocked"),
    ("sms-block-not-voice", {("block", "global"): [sms(N)]}, "voice", set(), "unlisted"),
    ("every-channel-block-on-voice", {("block", "global"): ["+33*"]}, "voice",
     {Match("global", "block", "+33*")}, "blocked"),
    ("every-channel-block-on-sms", {("block", "global"): ["+33*"]}, "sms",
     {Match("global", "block", "+33*")}, "blocked"),
    ("plain-and-variant-both-match", {("block", "global"): ["+33*", voice("+33*")]},
     "voice", {Match("global", "block", "+33*"), Match("global", "block", "+33*", "voice")},
     "blocked"),
    ("only-the-asked-variant", {("block", "global"): [sms("+33*"), voice("+33*")]}, "sms",
     {Match("global", "block", "+33*", "sms")}, "blocked"),
    ("longer-voice-allow-beats-every-channel-block",
     {("block", "global"): ["+33*"], ("allow", "global"): [voice("+336*")]}, "voice",
     {Match("global", "block", "+33*"), Match("global", "allow", "+336*", "voice")},
     "allowed"),
    ("longer-voice-allow-not-for-sms",
     {("block", "global"): ["+33*"], ("allow", "global"): [voice("+336*")]}, "sms",
     {Match("global", "block", "+33*")}, "blocked"),
    ("tie-voice-allow-vs-every-channel-block-block-wins",
     {("block", "global"): ["+33*"], ("allow", "global"): [voice("+33*")]}, "voice",
     {Match("global", "block", "+33*"), Match("global", "allow", "+33*", "voice")},
     "blocked"),
    ("tie-every-channel-allow-vs-voice-block-block-wins",
     {("allow", "global"): ["+33*"], ("block", "global"): [voice("+33*")]}, "voice",
     {Match("global", "allow", "+33*"), Match("global", "block", "+33*", "voice")},
     "blocked"),
    ("exact-allow-beats-voice-prefix-block",
     {("allow", "global"): [N], ("block", "global"): [voice("+3*")]}, "voice",
     {Match("global", "allow", N), Match("global", "block", "+3*", "voice")}, "allowed"),
    ("voice-block-in-other-scope-still-blocks",
     {("allow", "global"): [N], ("block", "tenant:acme"): [voice("+33*")]}, "voice",
     {Match("global", "allow", N), Match("tenant:acme", "block", "+33*", "voice")},
     "blocked"),
    ("voice-block-in-scope-not-asked", {("block", "tenant:other"): [voice("+33*")]},
     "voice", set(), "unlisted"),
]


@pytest.mark.parametrize(("entries", "channel", "expected", "verdict"),
                         [c[1:] for c in CHANNEL_CASES], ids=[c[0] for c in CHANNEL_CASES])
async def test_lookup_and_decide_with_channel_entries(
        store: Store, entries: Seed, channel: Channel | None, expected: set[Match],
        verdict: str) -> None:
    """Every-channel entries always apply, channel-limited ones only for their channel;
    decide() ranks them by the usual rule (specificity, then block wins a tie)."""
    await seed(store, entries)
    scopes = ["global", "tenant:acme"]
    found = await store.lookup([N], scopes, channel)
    assert Counter(found[N]) == Counter(expected)
    assert decide(N, scopes, found[N]).verdict == verdict


async def test_lookup_returns_each_match_once_for_repeated_numbers(store: Store) -> None:
    """A number given twice gets each matching entry once, not once per repetition."""
    await put(store, "block", "global", "+33*", "+33612345678", voice("+33612345678"))
    found = await store.lookup(["+33612345678", "+33612345678", "+14155550100"], ["global"],
                               "voice")
    assert Counter(found["+33612345678"]) == Counter(
        [Match("global", "block", "+33*"), Match("global", "block", "+33612345678"),
         Match("global", "block", "+33612345678", "voice")])
    assert found["+14155550100"] == []


async def test_lookup_with_nothing_to_probe_sends_nothing(store: Store, wire: Wire) -> None:
    """No numbers or no scopes: empty results without a Redis call."""
    await store.ping()
    wire.clear()
    assert await store.lookup([], ["global"]) == {}
    assert await store.lookup([], ["global"], "voice") == {}
    assert await store.lookup(["+33612345678"], [], "sms") == {"+33612345678": []}
    assert wire.writes == []


ROUND_TRIP_CASES: list[tuple[Channel | None, str, list[dict[str, str]]]] = [
    (None, "allowed", [
        {"scope": "global", "list": "allow", "entry": "+44*", "channel": "both"},
        {"scope": "tenant:acme", "list": "allow", "entry": "+4479*", "channel": "both"},
        # the exact allow outranks the longer block prefix within agent:42
        {"scope": "agent:42", "list": "allow", "entry": TWELVE_DIGITS, "channel": "both"},
    ]),
    ("voice", "blocked", [
        {"scope": "global", "list": "allow", "entry": "+44*", "channel": "both"},
        # the longer voice-only block outranks the every-channel allow
        {"scope": "tenant:acme", "list": "block", "entry": "+44791*", "channel": "voice"},
        {"scope": "agent:42", "list": "allow", "entry": TWELVE_DIGITS, "channel": "both"},
    ]),
    ("sms", "blocked", [
        {"scope": "global", "list": "allow", "entry": "+44*", "channel": "both"},
        {"scope": "tenant:acme", "list": "allow", "entry": "+4479*", "channel": "both"},
        # an exact sms block ties the exact allow, and block wins the tie
        {"scope": "agent:42", "list": "block", "entry": TWELVE_DIGITS, "channel": "sms"},
    ]),
]


@pytest.mark.parametrize(("channel", "decision", "matched"), ROUND_TRIP_CASES,
                         ids=["no-channel", "voice", "sms"])
async def test_decision_for_three_scopes_and_twelve_digit_number_is_one_round_trip(
        store: Store, wire: Wire, channel: Channel | None, decision: str,
        matched: list[dict[str, str]]) -> None:
    """A decision over three scopes and a 12-digit number, with or without a channel,
    writes exactly one EVALSHA; `explain` then only reads the matched entries' metadata."""
    await put(store, "allow", "global", "+44*")
    await put(store, "allow", "tenant:acme", "+4479*")
    await put(store, "block", "tenant:acme", voice("+44791*"))
    await put(store, "allow", "agent:42", TWELVE_DIGITS)
    await put(store, "block", "agent:42", "+447911*", sms(TWELVE_DIGITS))
    await store.lookup(["+10000000000"], ["global"])  # the script is cached from here on
    wire.clear()

    found = await store.lookup([TWELVE_DIGITS], SCOPES3, channel)

    assert wire.commands() == ["EVALSHA"]
    assert len(wire.writes) == 1
    assert decide(TWELVE_DIGITS, SCOPES3, found[TWELVE_DIGITS]).verdict == decision

    wire.clear()
    result = await explain(store, TWELVE_DIGITS, SCOPES3[1:], None, channel)

    commands = wire.commands()
    assert commands[0] == "EVALSHA"
    assert set(commands[1:]) <= {"HMGET", "ZMSCORE"}  # metadata of what matched, read only
    assert result is not None
    assert result["decision"] == decision
    assert [{k: m[k] for k in ("scope", "list", "entry", "channel")}
            for m in result["matched"]] == matched
    assert {(m["source"], m["added_by"]) for m in result["matched"]} == {("api", "admin")}


@pytest.mark.parametrize("channel", [None, "voice"], ids=["no-channel", "voice"])
async def test_one_round_trip_seen_by_the_real_server(
        redis_server: str, real_redis: Any, channel: Channel | None) -> None:
    """MONITOR on the real server shows one command from the store: EVALSHA, the probes
    running inside the script; with a channel, the channel's members ride along in it.
    Each list travels with its expiry set; with none present, no expiry is read."""
    client = connect(REDIS, redis_server)
    store = make_store(client)
    try:
        await store.prepare()  # connects and loads the scripts
        await put(store, "block", "tenant:acme", "+4479*")
        await put(store, "allow", "agent:42", TWELVE_DIGITS)
        await put(store, "block", "agent:42", voice(TWELVE_DIGITS), sms("+44*"))
        await put(store, "allow", "global", "+1*")
        async with monitor(redis_server) as seen:
            found = await store.lookup([TWELVE_DIGITS], SCOPES3, channel)
            lines = await seen.until_marker(real_redis)
    finally:
        await client.aclose()

    from_clients = [line for line in lines if line.client != "lua"]
    assert [line.command for line in from_clients] == ["EVALSHA"], lines
    evalsha = from_clients[0]
    # numkeys: 3 scopes x 2 lists, each with its expiry set and packed-load record, all
    # in this one call
    assert evalsha.args[2] == "18"
    keys = Keys(PREFIX)
    assert evalsha.args[3:21] == [k for scope in SCOPES3 for name in ("block", "allow")
                                  for k in (keys.of(name, scope).list,
                                            keys.of(name, scope).expiry,
                                            keys.of(name, scope).packed)]
    candidates = list(lookup_candidates(TWELVE_DIGITS))
    if channel is not None:
        candidates += [f"{c}#{channel}" for c in candidates]
    # the number of lists, then one '' per list: no packed load is skipped (no filter
    # copies are held); then no velocity counts
    assert evalsha.args[22:30] == ["6", *[""] * 6, "0"]
    assert sorted(evalsha.args[30:]) == sorted(candidates)
    inside = [line.command for line in lines if line.client == "lua"]
    assert inside.count("TIME") == 1
    # 6 list sets; then the expiry set of each of the four that exist
    assert inside.count("EXISTS") == 6 + 4
    assert inside.count("ZMSCORE") == 4  # only the four sets that exist are probed
    assert inside.count("ZSCORE") == 0  # no expiry set exists
    assert inside.count("HMGET") == 6  # each list's packed-load record: none exists
    expected = [Match("tenant:acme", "block", "+4479*"),
                Match("agent:42", "allow", TWELVE_DIGITS)]
    if channel == "voice":
        expected.append(Match("agent:42", "block", TWELVE_DIGITS, "voice"))
    assert Counter(found[TWELVE_DIGITS]) == Counter(expected)
    decision = decide(TWELVE_DIGITS, SCOPES3, found[TWELVE_DIGITS])
    assert decision.verdict == "blocked"
    assert decision.cause == Match("tenant:acme", "block", "+4479*")
    agent = [m for m in decision.matched if m.scope == "agent:42"]
    assert agent == [expected[-1] if channel == "voice" else expected[1]]


@pytest.mark.parametrize("channel", [None, "sms"], ids=["no-channel", "sms"])
async def test_thousand_numbers_three_scopes_is_one_round_trip_and_correct(
        store: Store, wire: Wire, channel: Channel | None) -> None:
    """1000 recipients x 3 scopes (~12k candidates, ~24k with a channel: several ARGV
    slices) in one EVALSHA."""
    # Numbers diverge early, so most of their candidates are distinct.
    numbers = [f"+447{i:03d}{i * 7919 % 1_000_000:06d}" for i in range(1000)]
    await put(store, "block", "tenant:acme", "+4475*")  # numbers 500-599
    await put(store, "block", "tenant:acme", sms("+4476*"))  # numbers 600-699, sms only
    await put(store, "allow", "agent:42", numbers[0], numbers[501], numbers[999])
    await put(store, "block", "global", "+33*")
    await store.lookup(["+10000000000"], ["global"])
    wire.clear()

    found = await store.lookup(numbers, SCOPES3, channel)

    assert wire.commands() == ["EVALSHA"]
    candidates = {c for n in numbers for c in lookup_candidates(n)}
    assert len(candidates) > 2 * lookup_module._ARGV_SLICE  # really sliced
    assert set(found) == set(numbers)
    block = Match("tenant:acme", "block", "+4475*")
    sms_block = Match("tenant:acme", "block", "+4476*", "sms")
    for i, number in enumerate(numbers):
        expected = []
        if 500 <= i < 600:
            expected.append(block)
        if 600 <= i < 700 and channel == "sms":
            expected.append(sms_block)
        if i in (0, 501, 999):
            expected.append(Match("agent:42", "allow", number))
        assert Counter(found[number]) == Counter(expected), number
    verdicts = Counter(decide(n, SCOPES3, found[n]).verdict for n in numbers)
    blocked = 200 if channel == "sms" else 100
    assert verdicts == {"blocked": blocked, "allowed": 2, "unlisted": 998 - blocked}


@pytest.mark.parametrize("slice_size", [1, 2, 7, 13, 14, 4000],
                         ids=lambda n: f"slice-{n}")
async def test_lookup_is_correct_at_every_argv_slice_boundary(
        store: Store, monkeypatch: pytest.MonkeyPatch, slice_size: int) -> None:
    """The script maps ZMSCORE replies back to the right candidates whatever the slice."""
    monkeypatch.setattr(lookup_module, "_ARGV_SLICE", slice_size)
    numbers = ["+33612345678", "+33612345679", "+4420794600000", "+14155550100"]
    await put(store, "block", "global", "+3*", "+33612345679", "+442079460000*",
              voice("+14155550100"))
    await put(store, "allow", "tenant:acme", "+1415555*", "+33612345678",
              voice("+3361234567*"))
    found = await store.lookup(numbers, ["global", "tenant:acme"], "voice")
    assert Counter(found["+33612345678"]) == Counter(
        [Match("global", "block", "+3*"), Match("tenant:acme", "allow", "+33612345678"),
         Match("tenant:acme", "allow", "+3361234567*", "voice")])
    assert Counter(found["+33612345679"]) == Counter(
        [Match("global", "block", "+3*"), Match("global", "block", "+33612345679"),
         Match("tenant:acme", "allow", "+3361234567*", "voice")])
    assert found["+4420794600000"] == [Match("global", "block", "+442079460000*")]
    assert Counter(found["+14155550100"]) == Counter(
        [Match("global", "block", "+14155550100", "voice"),
         Match("tenant:acme", "allow", "+1415555*")])


async def test_lookup_reloads_the_script_when_the_server_forgot_it(
        store: Store, client: Any) -> None:
    """After SCRIPT FLUSH (e.g. a Redis restart) lookups, adds and opt-in removals still
    work."""
    await put(store, "block", "global", "+33*")
    await store.lookup(["+33612345678"], ["global"])
    await client.script_flush()
    found = await store.lookup(["+33612345678"], ["global"])
    assert found == {"+33612345678": [Match("global", "block", "+33*")]}
    await client.script_flush()
    await put(store, "block", "global", sms("+44*"), meta=OPT_OUT)
    await client.script_flush()
    assert await store.remove_if_source("block", "global", sms("+44*"), "opt-out") is True


async def test_lookup_on_a_key_of_the_wrong_type_is_store_unavailable(
        store: Store, client: Any) -> None:
    """A list key clobbered with a string fails as StoreUnavailable, not a crash."""
    await client.set(Keys(PREFIX).list("block", "global"), "oops")
    with pytest.raises(StoreUnavailable):
        await store.lookup(["+33612345678"], ["global"], "voice")


# --- page -----------------------------------------------------------------------------


async def walk(store: Store, limit: int, name: ListName = "block", scope: str = "global"
               ) -> list[Page]:
    """Every page of a listing, following next_cursor (bounded)."""
    pages = [await store.page(name, scope, None, limit)]
    while pages[-1].next_cursor is not None:
        assert len(pages) < 1000, "paging does not end"
        pages.append(await store.page(name, scope, pages[-1].next_cursor, limit))
    return pages


def entries_of(page: Page) -> list[str]:
    """The entries of a page, channel variants marked `entry#channel`."""
    return [Keys.member(listed.item) for listed in page.entries]


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
        await put(store, "block", "global", *reversed(entries))
    pages = await walk(store, limit)
    assert [len(p.entries) for p in pages] == sizes
    assert [e for p in pages for e in entries_of(p)] == entries
    assert pages[-1].next_cursor is None
    for page in pages[:-1]:
        assert page.next_cursor == entries_of(page)[-1]


async def test_page_orders_prefixes_and_numbers_by_member(store: Store) -> None:
    """Member order is bytewise: '*' sorts before digits, so '+336*' precedes '+3361...';
    a channel variant follows its plain entry ('#' sorts before '*' and digits)."""
    await put(store, "allow", "tenant:acme", "+4*", "+33612345678", "+33*", "+1*", "+336*",
              voice("+33*"), sms("+33612345678"))
    page = await store.page("allow", "tenant:acme", None, 100)
    assert entries_of(page) == ["+1*", "+33*", "+33*#voice", "+336*", "+33612345678",
                                "+33612345678#sms", "+4*"]
    assert page.next_cursor is None


async def test_page_carries_channel_and_metadata(store: Store, client: Any) -> None:
    """Each listed entry has its ListItem (with channel) and its metadata; entries without
    readable metadata list with None."""
    await put(store, "block", "global", "+33*", meta=MANUAL)
    await put(store, "block", "global", sms("+33612345678"), meta=OPT_OUT)
    await seed_unreadable(client, "+44*", None)
    await seed_unreadable(client, "+44*#voice", "garbage")
    page = await store.page("block", "global", None, 10)
    assert page == Page((
        Listed(ListItem("+33*"), MANUAL),
        Listed(sms("+33612345678"), OPT_OUT),
        Listed(ListItem("+44*"), None),
        Listed(voice("+44*"), None),
    ), None)


async def test_page_cursor_can_be_a_channel_variant(store: Store) -> None:
    """A page may end on a `#voice` member; the next page starts right after it."""
    await put(store, "block", "global", "+33*", sms("+33*"), voice("+33*"), "+34*")
    first = await store.page("block", "global", None, 2)
    assert (entries_of(first), first.next_cursor) == (["+33*", "+33*#sms"], "+33*#sms")
    second = await store.page("block", "global", first.next_cursor, 2)
    assert (entries_of(second), second.next_cursor) == (["+33*#voice", "+34*"], None)


async def test_page_continues_after_a_cursor_that_was_removed(store: Store) -> None:
    """A cursor is a position: removing that entry does not break the next page."""
    await put(store, "block", "global", "+1*", "+2*", "+3*", "+4*")
    first = await store.page("block", "global", None, 2)
    assert (entries_of(first), first.next_cursor) == (["+1*", "+2*"], "+2*")
    await store.remove("block", "global", items("+2*"))
    second = await store.page("block", "global", first.next_cursor, 2)
    assert (entries_of(second), second.next_cursor) == (["+3*", "+4*"], None)


async def test_page_only_lists_its_own_list_and_scope(store: Store) -> None:
    """Other lists and scopes do not leak into a listing."""
    await put(store, "block", "global", "+1*")
    await put(store, "allow", "global", "+2*")
    await put(store, "block", "tenant:acme", "+3*")
    assert entries_of(await store.page("block", "global", None, 10)) == ["+1*"]
    assert await store.page("block", "tenant:other", None, 10) == Page((), None)


# --- bulk replace: staging keys, swap, drop --------------------------------------------


async def test_swap_replaces_a_list_with_its_metadata_and_expiry_in_one_step(
        store: Store, client: Any) -> None:
    """A list loaded into staging keys (shared batch metadata, an expiry) replaces the
    live list whole: old members, metadata and expiries go, the staging keys vanish."""
    later = time.time() + 3600
    await put(store, "block", "global", "+1*", "+2*")
    await put(store, "block", "global", "+3*", meta=replace(MANUAL, expires_at=later))
    live = store.keys.of("block", "global")
    staged = store.keys.staging("block", "global")
    batch = await store.save_batch(OPT_OUT, "global")
    assert await store.add_to(staged, [ListItem("+2*"), sms("+44*")], batch, later) == (
        [ListItem("+2*"), sms("+44*")], [])
    assert await store.add_to(staged, items("+5*"), MANUAL.to_json(), None) == (
        items("+5*"), [])
    assert entries_of(await store.page("block", "global", None, 10)) == ["+1*", "+2*", "+3*"]

    assert await store.swap(live, staged) == 3

    page = await store.page("block", "global", None, 10)
    assert page.entries == (
        Listed(ListItem("+2*"), replace(OPT_OUT, expires_at=later)),
        Listed(sms("+44*"), replace(OPT_OUT, expires_at=later)),
        Listed(ListItem("+5*"), MANUAL))
    assert set(await client.zrange(live.expiry, 0, -1)) == {"+2*", "+44*#sms"}
    assert await client.exists(*staged.all) == 0
    found = await store.lookup(["+33612345678", "+5123456789"], ["global"])
    assert found == {"+33612345678": [], "+5123456789": [Match("global", "block", "+5*")]}


async def test_swap_without_expiries_drops_the_old_expiry_set(store: Store,
                                                              client: Any) -> None:
    """A loaded list with no expiring entry leaves no stale expiry set behind, so an old
    expiry cannot later sweep a reloaded entry of the same name."""
    await put(store, "block", "global", "+1*", meta=replace(MANUAL, expires_at=time.time() + 1))
    live, staged = store.keys.of("block", "global"), store.keys.staging("block", "global")
    await store.add_to(staged, items("+1*"), MANUAL.to_json(), None)
    assert await store.swap(live, staged) == 1
    assert await client.exists(live.expiry) == 0
    assert await store.metadata("block", "global", items("+1*")) == [MANUAL]


async def test_swap_with_an_empty_load_empties_the_list(store: Store, client: Any) -> None:
    """Swapping in a load with no entries (its keys never created) clears the list."""
    await put(store, "allow", "tenant:acme", "+1*", meta=replace(MANUAL, expires_at=T0 * 2))
    live = store.keys.of("allow", "tenant:acme")
    assert await store.swap(live, store.keys.staging("allow", "tenant:acme")) == 0
    assert await client.exists(*live.all) == 0


async def test_drop_deletes_an_abandoned_load_only(store: Store, client: Any) -> None:
    """drop() removes the staging keys of a load and leaves the live list alone."""
    await put(store, "block", "global", "+1*")
    staged = store.keys.staging("block", "global")
    await store.add_to(staged, items("+2*"), MANUAL.to_json(), T0 * 2)
    assert await client.exists(*staged.all) == 3
    await store.drop(store.keys.of("block", "global"), staged)
    assert await client.exists(*staged.all) == 0
    assert await members(client) == ["+1*"]


# --- entries added while a replace import loads ----------------------------------------


async def test_entries_added_during_a_replace_survive_the_swap(store: Store,
                                                              client: Any) -> None:
    """Adds to the live list between begin_load and swap (an opt-out, an operator's block)
    are in the new list, with their metadata and expiry; the journal is gone after."""
    live = store.keys.of("block", "global")
    await put(store, "block", "global", "+1*", "+2*")
    staged = store.keys.staging("block", "global")
    await store.begin_load(live, staged)
    await store.add_to(staged, items("+2*", "+3*"), MANUAL.to_json(), None)
    expiring = replace(OPT_OUT, expires_at=time.time() + 3600)
    await put(store, "block", "global", sms("+33612345678"), meta=expiring)
    await put(store, "block", "global", "+3*")  # already in the file: the file's wins
    assert await store.swap(live, staged) == 3
    assert sorted(await members(client)) == ["+2*", "+3*", "+33612345678#sms"]
    meta = await stored_meta(client)
    assert meta["+33612345678#sms"]["source"] == "opt-out"
    assert meta["+3*"] == json.loads(MANUAL.to_json())
    assert await client.zscore(live.expiry, "+33612345678#sms") == pytest.approx(
        expiring.expires_at)
    assert await client.exists(live.loading, live.journal) == 0


async def test_entry_added_then_removed_during_a_replace_stays_removed(
        store: Store, client: Any) -> None:
    """The journal carries only what is still live at the swap."""
    live = store.keys.of("block", "global")
    staged = store.keys.staging("block", "global")
    await store.begin_load(live, staged)
    await store.add_to(staged, items("+2*"), MANUAL.to_json(), None)
    await put(store, "block", "global", "+44*")
    await store.remove("block", "global", [ListItem("+44*")])
    await store.swap(live, staged)
    assert await members(client) == ["+2*"]


async def test_a_copy_being_loaded_expires_unless_swapped_in(store: Store,
                                                              client: Any) -> None:
    """A replace's copy carries a lifetime (a killed import leaves nothing for good);
    swapped in, the list, its metadata and expiry set are permanent again. Live lists
    never get a lifetime."""
    live = store.keys.of("block", "global")
    await store.add_to(live, items("+1*"), MANUAL.to_json(), T0 * 2)
    assert [await client.ttl(k) for k in live.all] == [-1, -1, -1]
    staged = store.keys.staging("block", "global")
    await store.add_to(staged, items("+2*"), MANUAL.to_json(), T0 * 2, loading=True)
    for key in staged.all:
        assert 0 < await client.ttl(key) <= LOAD_MARK_SECONDS
    await store.swap(live, staged)
    assert [await client.ttl(k) for k in live.all] == [-1, -1, -1]
    assert await members(client) == ["+2*"]


async def test_without_a_load_adds_keep_no_journal(store: Store, client: Any) -> None:
    """Outside a replace, nothing is journaled; an abandoned load unmarks itself."""
    live = store.keys.of("block", "global")
    await put(store, "block", "global", "+1*")
    assert await client.exists(live.loading, live.journal) == 0
    staged = store.keys.staging("block", "global")
    await store.begin_load(live, staged)
    await put(store, "block", "global", "+2*")
    assert await client.exists(live.journal) == 1
    assert 0 < await client.ttl(live.journal) <= LOAD_MARK_SECONDS
    assert 0 < await client.ttl(live.loading) <= LOAD_MARK_SECONDS
    await store.drop(live, staged)
    assert await client.exists(live.loading, live.journal) == 0
    await put(store, "block", "global", "+3*")
    assert await client.exists(live.journal) == 0
    assert sorted(await members(client)) == ["+1*", "+2*", "+3*"]


async def test_overlapping_replaces_both_keep_the_adds_made_meanwhile(
        store: Store, client: Any) -> None:
    """Two replaces of one list at once: the first swap keeps the journal for the
    second, which keeps the adds too."""
    live = store.keys.of("block", "global")
    first, second = store.keys.staging("block", "global"), store.keys.staging("block", "global")
    await store.begin_load(live, first)
    await store.begin_load(live, second)
    await store.add_to(first, items("+1*"), MANUAL.to_json(), None)
    await store.add_to(second, items("+2*"), MANUAL.to_json(), None)
    await put(store, "block", "global", "+44*")
    await store.swap(live, first)
    assert sorted(await members(client)) == ["+1*", "+44*"]
    assert await client.exists(live.journal) == 1
    await store.swap(live, second)
    assert sorted(await members(client)) == ["+2*", "+44*"]
    assert await client.exists(live.loading, live.journal) == 0


async def test_scan_entries_walks_every_live_entry_in_chunks(store: Store) -> None:
    """scan_entries yields every entry once, in order, whatever the chunk size."""
    entries = [f"+3361234{i:04d}" for i in range(23)]
    await put(store, "block", "global", *entries)
    for chunk in (1, 5, 23, 100):
        seen = [Keys.member(e.item) async for e in store.scan_entries("block", "global", chunk)]
        assert seen == entries, chunk
    assert await store.count("block", "global") == 23


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
                           "scopes", "scope", "list", "entry", "action", "rule", "detail"}
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


def shas() -> list[str]:
    """The SHA1 of every script the store uses."""
    return [hashlib.sha1(script.encode()).hexdigest() for script in SCRIPTS.values()]


async def test_prepare_on_the_real_server_loads_the_scripts(real_redis: Any) -> None:
    """prepare() accepts the suite's redis-server and loads every script (lookup, add,
    remove-if-source, sweep, swap)."""
    await real_redis.script_flush()
    assert await real_redis.script_exists(*shas()) == [False] * len(SCRIPTS)
    await make_store(real_redis).prepare()
    assert await real_redis.script_exists(*shas()) == [True] * len(SCRIPTS)


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
        assert await client.script_exists(*shas()) == [True] * len(SCRIPTS)
    else:
        with pytest.raises(StoreIncompatible, match=r"too old: 6\.2 or newer"):
            await store.prepare()
        assert await client.script_exists(*shas()) == [False] * len(SCRIPTS)


async def test_ping_is_true_when_the_store_answers(store: Store) -> None:
    """ping() is True on a reachable server."""
    assert await store.ping() is True


# --- faults ---------------------------------------------------------------------------

StoreCall = Callable[[Store], Awaitable[object]]
CALLS: list[tuple[str, StoreCall]] = [
    ("lookup", lambda s: s.lookup(["+33612345678"], ["global", "tenant:acme"])),
    ("lookup-channel", lambda s: s.lookup(["+33612345678"], ["global"], "voice")),
    ("add", lambda s: s.add("block", "global", items("+33*"), MANUAL)),
    ("remove", lambda s: s.remove("block", "global", items("+33*"), every_channel=True)),
    ("remove-if-source",
     lambda s: s.remove_if_source("block", "global", sms("+33612345678"), "opt-out")),
    ("page", lambda s: s.page("block", "global", None, 10)),
    ("metadata", lambda s: s.metadata("block", "global", items("+33*"))),
    ("count", lambda s: s.count("block", "global")),
    ("sweep-expired", lambda s: s.sweep_expired()),
    ("save-batch", lambda s: s.save_batch(MANUAL, "global")),
    ("swap", lambda s: s.swap(s.keys.of("block", "global"), s.keys.staging("block", "global"))),
    ("drop", lambda s: s.drop(s.keys.of("block", "global"), s.keys.staging("block", "global"))),
    ("begin_load", lambda s: s.begin_load(s.keys.of("block", "global"),
                                          s.keys.staging("block", "global"))),
    ("append_attempt", lambda s: s.append_attempt(attempt())),
    ("read-attempts", lambda s: s.read_attempts()),
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
    config = RedisConfig(timeout=0.05)  # any timeout shows it; short keeps the tier fast
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
    await put(store, "block", "global", "+33*")
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

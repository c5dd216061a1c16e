"""Entry metadata and expiry: expiring entries stop matching at their instant (server
clock) and leave listings and checks at the same time; sweeping, re-adding and removing
expired entries; shared bulk-load metadata (`@batch`); the admin API's `note`,
`ttl_seconds` and `expires_at`; lookups still one round trip. Store tests run on fakeredis
and on the suite's real redis-server."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest

from gatekeeper.config import RedisConfig
from gatekeeper.policy import ListName, Match
from gatekeeper.store import EntryMeta, Keys, Listed, ListItem, Store, connect
from gatekeeper.store import attempts as store_module
from gatekeeper.times import MAX_TTL
from tests.conftest import (
    AUTH,
    TWILIO_MESSAGES,
    FakeUpstream,
    Running,
    StartGatekeeper,
    eventually,
    log_events,
    make_config,
)
from tests.test_store import (
    MANUAL,
    OPT_OUT,
    PREFIX,
    REDIS,
    SCOPES3,
    TWELVE_DIGITS,
    Wire,
    make_store,
    members,
    monitor,
    put,
    record_wire,
    sms,
    voice,
    warm_up,
)

N = "+33612345678"
UK = "+447911123456"
SOON = 0.3
BLOCK = "/admin/v1/lists/block/entries"
CHECK = "/admin/v1/check"
OPS_SECRET = "ops-secret-0123456789"
RO_SECRET = "read-only-secret-0123"


def soon() -> float:
    """An expiry instant a moment ahead."""
    return time.time() + SOON


async def pass_instant(instant: float) -> None:
    """Sleep until `instant` has passed, with a small margin."""
    await asyncio.sleep(max(0.0, instant - time.time()) + 0.05)


def until(instant: float, meta: EntryMeta = MANUAL) -> EntryMeta:
    """`meta` expiring at `instant`."""
    return replace(meta, expires_at=instant)


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


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Wire:
    """Records what every redis-py connection sends."""
    return record_wire(monkeypatch)


async def expiring(client: Any, name: ListName = "block", scope: str = "global"
                   ) -> dict[str, float]:
    """The raw expiry set of one list: member -> expires_at."""
    keys = Keys(PREFIX).of(name, scope)
    return dict(await client.zrange(keys.expiry, 0, -1, withscores=True))


async def listed_members(store: Store, name: ListName = "block", scope: str = "global"
                         ) -> list[str]:
    """The members a listing shows (`entry#channel` for channel-limited entries)."""
    page = await store.page(name, scope, None, 100)
    return [Keys.member(e.item) for e in page.entries]


# --- expiry instant -----------------------------------------------------------------


async def test_entry_matches_until_its_instant_then_stops(store: Store, client: Any) -> None:
    """Before its instant an expiring entry (every-channel or channel-limited) matches and
    lists with its expiry; after it, lookups, listings and scans skip it while permanent
    entries stay; the members are still stored until swept."""
    expires = soon()
    await put(store, "block", "global", "+33*", voice("+336*"), meta=until(expires))
    await put(store, "block", "global", "+44*")

    before = await store.lookup([N, UK], ["global"], "voice")
    assert Counter(before[N]) == Counter([Match("global", "block", "+33*"),
                                          Match("global", "block", "+336*", "voice")])
    assert before[UK] == [Match("global", "block", "+44*")]
    page = await store.page("block", "global", None, 10)
    assert page.entries == (Listed(ListItem("+33*"), until(expires)),
                            Listed(voice("+336*"), until(expires)),
                            Listed(ListItem("+44*"), MANUAL))

    await pass_instant(expires)

    assert await store.lookup([N, UK], ["global"], "voice") == {
        N: [], UK: [Match("global", "block", "+44*")]}
    assert await listed_members(store) == ["+44*"]
    assert [Keys.member(e.item) async for e in store.scan_entries("block", "global", 1)] == [
        "+44*"]
    assert await members(client) == ["+33*", "+336*#voice", "+44*"]  # not swept yet
    assert await store.count("block", "global") == 3


async def test_expired_allow_no_longer_overrides_a_block(store: Store) -> None:
    """A temporary exception (an expiring allow) stops overriding the block at its
    instant."""
    expires = soon()
    await put(store, "block", "tenant:acme", "+33*")
    await put(store, "allow", "tenant:acme", N, meta=until(expires))
    before = await store.lookup([N], ["global", "tenant:acme"])
    assert Match("tenant:acme", "allow", N) in before[N]
    await pass_instant(expires)
    assert await store.lookup([N], ["global", "tenant:acme"]) == {
        N: [Match("tenant:acme", "block", "+33*")]}


@pytest.mark.parametrize("skew", [-7200.0, 7200.0], ids=["client-behind", "client-ahead"])
async def test_expiry_follows_the_server_clock_not_the_clients(
        store: Store, monkeypatch: pytest.MonkeyPatch, skew: float) -> None:
    """Lookups and listings decide expiry on the server's clock: a client clock two hours
    off changes nothing, neither for a live entry nor for an expired one."""
    expires = soon()
    await put(store, "block", "global", "+33*", meta=until(expires))
    await put(store, "block", "global", "+44*", meta=until(time.time() + 3600))
    await pass_instant(expires)
    real = time.time
    monkeypatch.setattr(store_module, "time", SimpleNamespace(time=lambda: real() + skew))
    assert await store.lookup([N, UK], ["global"]) == {
        N: [], UK: [Match("global", "block", "+44*")]}
    assert await listed_members(store) == ["+44*"]


async def test_metadata_carries_the_stored_expiry(store: Store) -> None:
    """metadata() reports each entry's expires_at from the expiry set; permanent and
    unknown entries have none / None."""
    later = time.time() + 3600
    await put(store, "block", "global", "+33*", meta=until(later, OPT_OUT))
    await put(store, "block", "global", "+44*")
    assert await store.metadata("block", "global", [
        ListItem("+33*"), ListItem("+44*"), ListItem("+1*"), voice("+33*")]) == [
        until(later, OPT_OUT), MANUAL, None, None]
    assert await store.metadata("block", "global", []) == []


# --- sweeping -----------------------------------------------------------------------


async def test_sweep_expired_removes_only_expired_entries(store: Store, client: Any) -> None:
    """sweep_expired removes expired members with their metadata and expiry, in every
    list and scope, and leaves permanent and later-expiring entries alone."""
    expires, later = soon(), time.time() + 3600
    await put(store, "block", "global", "+33*", sms("+34*"), meta=until(expires))
    await put(store, "block", "global", "+44*")
    await put(store, "block", "global", "+45*", meta=until(later))
    await put(store, "allow", "tenant:acme", N, meta=until(expires))
    await put(store, "allow", "tenant:acme", "+1*")
    assert await store.sweep_expired() == 0  # nothing is due yet
    await pass_instant(expires)

    assert await store.sweep_expired() == 3

    assert await members(client) == ["+44*", "+45*"]
    assert await expiring(client) == {"+45*": later}
    assert set(await client.hkeys(Keys(PREFIX).of("block", "global").meta)) == {"+44*", "+45*"}
    assert await members(client, "allow", "tenant:acme") == ["+1*"]
    assert not await client.exists(Keys(PREFIX).of("allow", "tenant:acme").expiry)
    assert await store.sweep_expired() == 0


@pytest.mark.parametrize("per_call", [1, 2, 5, 1000], ids=lambda n: f"per-call-{n}")
async def test_sweep_expired_takes_every_expired_entry_whatever_the_batch(
        store: Store, client: Any, per_call: int) -> None:
    """Sweeping in batches smaller than the backlog still removes all of it."""
    expires = soon()
    await put(store, "block", "global", *(f"+3{i}*" for i in range(5)), meta=until(expires))
    await put(store, "block", "global", "+44*")
    await pass_instant(expires)
    assert await store.sweep_expired(per_call) == 5
    assert await members(client) == ["+44*"]


async def test_sweep_expired_skips_keys_that_only_look_like_expiry_sets(
        store: Store, client: Any) -> None:
    """A stray `{prefix}exp:` key that names no list is left alone."""
    await client.zadd(f"{PREFIX}exp:deny:global", {"+33*": 1})
    assert await store.sweep_expired() == 0
    assert await client.zcard(f"{PREFIX}exp:deny:global") == 1


# --- re-adding and removing -----------------------------------------------------------


async def test_re_adding_an_expired_unswept_entry_counts_as_added(store: Store,
                                                                  client: Any) -> None:
    """An entry past its instant but not yet swept is gone: adding it again reports it
    added, with the new call's metadata, and without the old expiry."""
    expires = soon()
    await put(store, "block", "global", sms(N), meta=until(expires, OPT_OUT))
    await pass_instant(expires)
    assert await store.add("block", "global", [sms(N)], MANUAL) == ([sms(N)], [])
    assert await store.metadata("block", "global", [sms(N)]) == [MANUAL]
    assert await expiring(client) == {}
    assert await store.lookup([N], ["global"], "sms") == {
        N: [Match("global", "block", N, "sms")]}
    assert await store.sweep_expired() == 0
    assert await members(client) == [f"{N}#sms"]


async def test_re_adding_an_expired_entry_with_a_new_expiry_takes_the_new_one(
        store: Store, client: Any) -> None:
    """An expired entry added again with an expiry gets that expiry."""
    expires, later = soon(), time.time() + 3600
    await put(store, "block", "global", "+33*", meta=until(expires))
    await pass_instant(expires)
    assert await store.add("block", "global", [ListItem("+33*")], until(later, OPT_OUT)) == (
        [ListItem("+33*")], [])
    assert await expiring(client) == {"+33*": later}
    assert await store.metadata("block", "global", [ListItem("+33*")]) == [
        until(later, OPT_OUT)]


async def test_re_adding_a_live_expiring_entry_keeps_its_metadata_and_expiry(
        store: Store, client: Any) -> None:
    """While an entry is live, adding it again (with or without an expiry) is `existing`
    and changes neither its metadata nor its expiry."""
    later = time.time() + 3600
    await put(store, "block", "global", "+33*", meta=until(later, OPT_OUT))
    for meta in (MANUAL, until(later + 60)):
        assert await store.add("block", "global", [ListItem("+33*")], meta) == (
            [], [ListItem("+33*")])
    assert await expiring(client) == {"+33*": later}
    assert await store.metadata("block", "global", [ListItem("+33*")]) == [
        until(later, OPT_OUT)]


async def test_remove_cleans_the_expiry_set(store: Store, client: Any) -> None:
    """remove takes each removed member (channel variants included) out of the expiry
    set too; the other expiring entries keep theirs."""
    later = time.time() + 3600
    await put(store, "block", "global", "+33*", sms("+33*"), voice("+33*"), "+44*",
              meta=until(later))
    assert await store.remove("block", "global", [ListItem("+33*")], every_channel=True) == (
        [ListItem("+33*")], [])
    assert await expiring(client) == {"+44*": later}
    await store.remove("block", "global", [ListItem("+44*")])
    assert not await client.exists(*Keys(PREFIX).of("block", "global").all)


@pytest.mark.parametrize(("meta", "removed"), [(OPT_OUT, True), (MANUAL, False)],
                         ids=["opt-out-removed", "manual-kept"])
async def test_remove_if_source_cleans_the_expiry_set(
        store: Store, client: Any, meta: EntryMeta, removed: bool) -> None:
    """An opt-in lifting an expiring opt-out entry removes its expiry too; a manual
    expiring entry keeps entry, metadata and expiry."""
    later = time.time() + 3600
    await put(store, "block", "global", sms(N), meta=until(later, meta))
    assert await store.remove_if_source("block", "global", sms(N), "opt-out") is removed
    if removed:
        assert not await client.exists(*Keys(PREFIX).of("block", "global").all)
    else:
        assert await expiring(client) == {f"{N}#sms": later}
        assert await store.metadata("block", "global", [sms(N)]) == [until(later, meta)]


# --- shared bulk-load metadata (@batch) -------------------------------------------------


async def test_save_batch_stores_the_metadata_once(store: Store, client: Any) -> None:
    """save_batch keeps the JSON under {prefix}batch:<id> and returns `@<id>`; each call
    gets its own id."""
    first = await store.save_batch(OPT_OUT, "global")
    second = await store.save_batch(MANUAL, "global")
    assert first.startswith("@")
    assert first != second
    assert await client.get(f"{PREFIX}batch:{first[1:]}") == OPT_OUT.to_json()
    assert await client.get(f"{PREFIX}batch:{second[1:]}") == MANUAL.to_json()


async def test_metadata_and_page_resolve_batch_references(store: Store, client: Any) -> None:
    """Entries carrying `@<id>` report the batch's metadata (with their own expiry) in
    metadata() and listings, next to entries with inline metadata; a reference to a
    missing batch reads as unknown."""
    later = time.time() + 3600
    keys = store.keys.of("block", "global")
    loaded = EntryMeta("import", 1_700_000_000.0, "ops", "carrier list")
    batch = await store.save_batch(loaded, "global")
    assert await store.add_to(keys, [ListItem("+1*"), sms("+2*")], batch, None) == (
        [ListItem("+1*"), sms("+2*")], [])
    await store.add_to(keys, [ListItem("+3*")], batch, later)
    await put(store, "block", "global", "+4*")
    await store.add_to(keys, [ListItem("+5*")], "@no-such-batch", None)
    # the stored value is the reference, not a copy
    assert await client.hget(keys.meta, "+1*") == batch

    assert await store.metadata("block", "global", [
        ListItem("+1*"), sms("+2*"), ListItem("+3*"), ListItem("+4*"), ListItem("+5*")]) == [
        loaded, loaded, until(later, loaded), MANUAL, None]
    page = await store.page("block", "global", None, 10)
    assert [e.meta for e in page.entries] == [loaded, loaded, until(later, loaded), MANUAL,
                                              None]


async def test_page_fetches_each_batch_once(store: Store, wire: Wire) -> None:
    """A page of entries sharing a batch reads the batch key once (one MGET)."""
    keys = store.keys.of("block", "global")
    batch = await store.save_batch(OPT_OUT, "global")
    await store.add_to(keys, [ListItem(f"+3{i}*") for i in range(10)], batch, None)
    wire.clear()
    page = await store.page("block", "global", None, 100)
    assert {e.meta for e in page.entries} == {OPT_OUT}
    mgets = [c for c in wire.parsed() if c[0].upper() == "MGET"]
    assert mgets == [["MGET", f"{PREFIX}batch:{batch[1:]}"]]


@pytest.mark.parametrize(("batch_meta", "removed"), [(OPT_OUT, True), (MANUAL, False),
                                                     (None, False)],
                         ids=["opt-out-batch", "manual-batch", "missing-batch"])
async def test_remove_if_source_reads_batch_metadata(
        store: Store, client: Any, batch_meta: EntryMeta | None, removed: bool) -> None:
    """The opt-in check follows `@<id>` to the batch's source; a missing batch is an
    unknown source and nothing is removed."""
    batch = "@gone" if batch_meta is None else await store.save_batch(batch_meta, "global")
    await store.add_to(store.keys.of("block", "global"), [sms(N)], batch, None)
    assert await store.remove_if_source("block", "global", sms(N), "opt-out") is removed
    assert await members(client) == ([] if removed else [f"{N}#sms"])


# --- one round trip -----------------------------------------------------------------


async def test_lookup_with_expiry_sets_is_one_round_trip(store: Store, wire: Wire) -> None:
    """Expiry sets in every probed scope do not add a call: one EVALSHA, written once,
    with the right (live-only) answer."""
    expires, later = soon(), time.time() + 3600
    await put(store, "block", "tenant:acme", "+4479*", meta=until(later))
    await put(store, "block", "agent:42", "+447911*", sms(TWELVE_DIGITS), meta=until(expires))
    await put(store, "allow", "agent:42", TWELVE_DIGITS)
    await put(store, "allow", "global", "+44*", meta=until(later))
    await warm_up(store)
    await pass_instant(expires)
    wire.clear()

    found = await store.lookup([TWELVE_DIGITS], SCOPES3, "sms")

    assert wire.commands() == ["EVALSHA"]
    assert len(wire.writes) == 1
    assert Counter(found[TWELVE_DIGITS]) == Counter([
        Match("global", "allow", "+44*"), Match("tenant:acme", "block", "+4479*"),
        Match("agent:42", "allow", TWELVE_DIGITS)])


async def test_expiry_checks_run_inside_the_script_on_the_real_server(
        redis_server: str, real_redis: Any) -> None:
    """MONITOR: the client sends only EVALSHA; the server reads its clock once and the
    expiry of each hit in a list that has an expiry set, and nothing for lists without."""
    client = connect(REDIS, redis_server)
    store = make_store(client)
    expires, later = soon(), time.time() + 3600
    try:
        await store.prepare()
        await put(store, "block", "tenant:acme", "+4479*", meta=until(later))
        await put(store, "block", "agent:42", "+447911*", meta=until(expires))
        await put(store, "allow", "agent:42", TWELVE_DIGITS)
        await pass_instant(expires)
        async with monitor(redis_server) as seen:
            found = await store.lookup([TWELVE_DIGITS], SCOPES3)
            lines = await seen.until_marker(real_redis)
    finally:
        await client.aclose()

    from_clients = [line for line in lines if line.client != "lua"]
    assert [line.command for line in from_clients] == ["EVALSHA"], lines
    inside = [line for line in lines if line.client == "lua"]
    assert [line.command for line in inside].count("TIME") == 1
    keys = Keys(PREFIX)
    assert sorted(line.args[1:] for line in inside if line.command == "ZSCORE") == [
        [keys.of("block", "agent:42").expiry, "+447911*"],
        [keys.of("block", "tenant:acme").expiry, "+4479*"]]
    assert Counter(found[TWELVE_DIGITS]) == Counter([
        Match("tenant:acme", "block", "+4479*"), Match("agent:42", "allow", TWELVE_DIGITS)])


# --- admin API ----------------------------------------------------------------------


async def call(gk: Running, method: str, path: str, *, body: Any = None,
               params: Any = None, headers: dict[str, str] | None = None
               ) -> tuple[int, Any]:
    """One admin request; the status and the decoded JSON body."""
    kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
    resp = await gk.admin.request(method, path, params=params,
                                  headers=AUTH if headers is None else headers, **kwargs)
    text = await resp.text()
    assert resp.content_type == "application/json", text
    return resp.status, json.loads(text)


async def add(gk: Running, body: dict[str, Any], headers: dict[str, str] | None = None
              ) -> dict[str, Any]:
    """Add entries, expecting 200."""
    status, payload = await call(gk, "POST", BLOCK, body=body, headers=headers)
    assert status == 200, payload
    return dict(payload)


async def rows(gk: Running, scope: str = "global", headers: dict[str, str] | None = None
               ) -> list[dict[str, Any]]:
    """Every row of the block listing of `scope`."""
    status, payload = await call(gk, "GET", BLOCK, params={"scope": scope, "limit": "1000"},
                                 headers=headers)
    assert status == 200, payload
    return list(payload["entries"])


async def check(gk: Running, params: dict[str, str], headers: dict[str, str] | None = None
                ) -> dict[str, Any]:
    """A decision check, expecting 200."""
    status, payload = await call(gk, "GET", CHECK, params=params, headers=headers)
    assert status == 200, payload
    return dict(payload)


def instant(text: str) -> float:
    """An ISO 8601 UTC instant shown by the API, to the second."""
    when = datetime.fromisoformat(text)
    assert when.utcoffset() == timedelta(0), text
    assert when.microsecond == 0, text
    return when.timestamp()


async def test_ttl_seconds_expiry_and_note_show_in_listing_and_check(
        gatekeeper: Running) -> None:
    """`ttl_seconds` sets the expiry (now + ttl); listing rows and matched items show it
    with the note, and the store keeps it in the expiry set."""
    before = time.time()
    payload = await add(gatekeeper, {"entries": [N, {"entry": "+44*", "channel": "voice"}],
                                     "ttl_seconds": 3600, "note": "chargeback"})
    after = time.time()
    assert payload["added"] == [N, {"entry": "+44*", "channel": "voice"}]
    listed = await rows(gatekeeper)
    for row in listed:
        assert row["note"] == "chargeback"
        assert int(before) + 3600 <= instant(row["expires_at"]) <= after + 3600
    stored = await gatekeeper.redis.zrange("gk:exp:block:global", 0, -1, withscores=True)
    assert [m for m, _ in stored] == ["+33612345678", "+44*#voice"]
    assert all(before + 3600 <= at <= after + 3600 for _, at in stored)
    [matched] = (await check(gatekeeper, {"number": N}))["matched"]
    assert (matched["note"], matched["expires_at"]) == ("chargeback", listed[0]["expires_at"])


def _at(shift: timezone | None, fmt: str = "iso") -> Callable[[datetime], Any]:
    """A renderer of an instant as a client might send `expires_at`."""
    def render(when: datetime) -> Any:
        if fmt == "epoch-int":
            return int(when.timestamp())
        if fmt == "epoch-float":
            return when.timestamp() + 0.75
        if fmt == "z":
            return when.strftime("%Y-%m-%dT%H:%M:%SZ")
        if shift is None:
            return when.replace(tzinfo=None).isoformat()
        return when.astimezone(shift).isoformat()
    return render


@pytest.mark.parametrize("render", [
    _at(None, "z"), _at(timezone(timedelta(hours=2))), _at(timezone(timedelta(hours=-5))),
    _at(None), _at(None, "epoch-int"), _at(None, "epoch-float"),
], ids=["iso-z", "iso-plus-2", "iso-minus-5", "iso-naive-is-utc", "epoch-int",
        "epoch-float"])
async def test_expires_at_accepts_iso_and_epoch(gatekeeper: Running,
                                                render: Callable[[datetime], Any]) -> None:
    """`expires_at` is an ISO 8601 date-time (a zone, `Z`, or none meaning UTC) or epoch
    seconds; listings show it in UTC."""
    when = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    await add(gatekeeper, {"entries": ["+33*"], "expires_at": render(when)})
    [row] = await rows(gatekeeper)
    assert row["expires_at"] == when.isoformat()
    [(_, stored)] = await gatekeeper.redis.zrange("gk:exp:block:global", 0, -1,
                                                  withscores=True)
    assert when.timestamp() <= stored < when.timestamp() + 1


async def test_null_ttl_and_expires_at_mean_no_expiry(gatekeeper: Running) -> None:
    """Explicit nulls are the same as leaving the fields out."""
    await add(gatekeeper, {"entries": ["+33*"], "ttl_seconds": None, "expires_at": None,
                           "note": None})
    [row] = await rows(gatekeeper)
    assert "expires_at" not in row
    assert "note" not in row
    assert not await gatekeeper.redis.exists("gk:exp:block:global")


BAD_EXPIRY: list[tuple[str, Any]] = [
    ("expires-past-iso", {"expires_at": "2020-01-01T00:00:00Z"}),
    ("expires-past-epoch", {"expires_at": 1_000_000_000}),
    ("expires-zero", {"expires_at": 0}),
    ("both", {"ttl_seconds": 60, "expires_at": "2999-01-01T00:00:00Z"}),
    ("ttl-zero", {"ttl_seconds": 0}),
    ("ttl-negative", {"ttl_seconds": -5}),
    ("ttl-too-large", {"ttl_seconds": MAX_TTL + 1}),
    ("ttl-fraction", {"ttl_seconds": 1.5}),
    ("ttl-string", {"ttl_seconds": "60"}),
    ("ttl-bool", {"ttl_seconds": True}),
    ("ttl-list", {"ttl_seconds": [60]}),
    ("expires-too-far-iso", {"expires_at": "9999-12-31T23:59:59Z"}),
    ("expires-in-milliseconds", {"expires_at": 1_900_000_000_000}),
    ("expires-garbage", {"expires_at": "tomorrow"}),
    ("expires-blank", {"expires_at": ""}),
    ("expires-bool", {"expires_at": True}),
    ("expires-list", {"expires_at": [2_000_000_000]}),
    ("expires-object", {"expires_at": {"epoch": 2_000_000_000}}),
    ("expires-nan", b'{"entries": ["+33*"], "expires_at": NaN}'),
    ("expires-infinity", b'{"entries": ["+33*"], "expires_at": Infinity}'),
    ("ttl-infinity", b'{"entries": ["+33*"], "ttl_seconds": Infinity}'),
    ("expires-huge-integer", {"expires_at": 10**400}),
    ("note-too-long", {"note": "x" * 501}),
    ("note-number", {"note": 7}),
]


@pytest.mark.parametrize("extra", [c[1] for c in BAD_EXPIRY], ids=[c[0] for c in BAD_EXPIRY])
async def test_bad_expiry_or_note_is_400_and_writes_nothing(
        gatekeeper: Running, log_output: io.StringIO, extra: Any) -> None:
    """A past, doubled, out-of-range or mistyped expiry, or a bad note, refuses the whole
    call with 400 `invalid_body`; nothing is written or logged as a change."""
    body = extra if isinstance(extra, bytes) else {"entries": ["+33*"], **extra}
    status, payload = await call(gatekeeper, "POST", BLOCK, body=body)
    assert status == 400, payload
    assert payload["code"] == "invalid_body"
    assert payload["message"]
    assert await gatekeeper.redis.keys("*") == []
    assert [e for e in log_events(log_output) if e["event"] == "list_changed"] == []


async def test_largest_ttl_is_accepted(gatekeeper: Running) -> None:
    """ttl_seconds at its maximum (ten years) is fine."""
    await add(gatekeeper, {"entries": ["+33*"], "ttl_seconds": MAX_TTL})
    [row] = await rows(gatekeeper)
    assert instant(row["expires_at"]) >= int(time.time()) + MAX_TTL - 5


@pytest.fixture
async def two_keys(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream,
                   tmp_path: Path) -> Running:
    """Gatekeeper with a named write key `ops` and a read-only key `auditor`."""
    admin = {"keys": [{"name": "ops", "secret": OPS_SECRET, "role": "write"},
                      {"name": "auditor", "secret": RO_SECRET}]}
    return await start_gatekeeper(make_config(upstream.url, tmp_path, admin=admin))


async def test_listing_and_check_show_who_when_why_and_until(
        two_keys: Running, log_output: io.StringIO) -> None:
    """Rows and matched items say where an entry came from (`api`), which key added it,
    when, why (the note) and until when; the audit log names the key too."""
    ops = {"Authorization": f"Bearer {OPS_SECRET}"}
    auditor = {"Authorization": f"Bearer {RO_SECRET}"}
    before = int(time.time())
    await add(two_keys, {"entries": ["+33*"], "scope": "tenant:acme", "ttl_seconds": 86400,
                         "note": "fraud ring #12"}, headers=ops)
    after = time.time()

    [row] = await rows(two_keys, "tenant:acme", headers=auditor)
    assert set(row) == {"entry", "channel", "source", "added_at", "added_by", "note",
                        "expires_at"}
    assert (row["entry"], row["channel"], row["source"], row["added_by"], row["note"]) == (
        "+33*", "both", "api", "ops", "fraud ring #12")
    assert before <= instant(row["added_at"]) <= after
    assert before + 86400 <= instant(row["expires_at"]) <= after + 86400

    result = await check(two_keys, {"number": N, "scope": "tenant:acme"}, headers=auditor)
    assert (result["decision"], result["label"]) == ("blocked", "Blacklisted")
    assert result["matched"] == [{"scope": "tenant:acme", "list": "block", **row}]
    [change] = [e for e in log_events(log_output) if e["event"] == "list_changed"]
    assert (change["key_name"], change["scope"], change["list"]) == ("ops", "tenant:acme",
                                                                       "block")
    assert OPS_SECRET not in log_output.getvalue()


async def test_expiring_entry_leaves_check_listing_and_proxy_at_its_instant(
        gatekeeper: Running, upstream: FakeUpstream) -> None:
    """An entry with `expires_at` a moment ahead blocks sends and shows in check and
    listing until then; right after, sends go through, check says unlisted and the
    listing is empty, although nothing has swept it yet."""
    expires = soon()
    await add(gatekeeper, {"entries": [N], "expires_at": expires})
    assert (await check(gatekeeper, {"number": N}))["decision"] == "blocked"
    assert [r["entry"] for r in await rows(gatekeeper)] == [N]
    blocked = await gatekeeper.proxy.post(TWILIO_MESSAGES, data={"To": N, "Body": "x"})
    assert blocked.status == 403
    assert upstream.received == []

    await pass_instant(expires)

    after = await check(gatekeeper, {"number": N})
    assert {k: after[k] for k in ("number", "possible", "decision", "label", "scopes",
                                  "matched", "decided_by")} == {
        "number": N, "possible": True, "decision": "unlisted", "label": None,
        "scopes": ["global"], "matched": [], "decided_by": {"rule": "default"}}
    assert await rows(gatekeeper) == []
    sent = await gatekeeper.proxy.post(TWILIO_MESSAGES, data={"To": N, "Body": "x"})
    assert sent.status == 201
    assert len(upstream.received) == 1
    assert await gatekeeper.redis.zcard("gk:list:block:global") == 1  # unswept


async def test_api_re_add_after_expiry_is_added_with_the_new_metadata(
        gatekeeper: Running) -> None:
    """Adding an entry again after it expired reports it `added`; the listing shows the
    new call's note and no expiry."""
    expires = soon()
    await add(gatekeeper, {"entries": [N], "expires_at": expires, "note": "first"})
    assert (await add(gatekeeper, {"entries": [N], "note": "again"}))["existing"] == [N]
    await pass_instant(expires)
    assert await add(gatekeeper, {"entries": [N], "note": "second"}) == {
        "added": [N], "existing": [], "failed": []}
    [row] = await rows(gatekeeper)
    assert row["note"] == "second"
    assert "expires_at" not in row


async def test_api_remove_of_an_expiring_entry_cleans_its_expiry(gatekeeper: Running) -> None:
    """DELETE takes an expiring entry and its expiry out."""
    await add(gatekeeper, {"entries": [N, "+44*"], "ttl_seconds": 600})
    status, payload = await call(gatekeeper, "DELETE", BLOCK, body={"entries": [N]})
    assert (status, payload["removed"]) == (200, [N])
    assert await gatekeeper.redis.zrange("gk:exp:block:global", 0, -1) == ["+44*"]


async def test_periodic_sweeper_removes_expired_entries(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        log_output: io.StringIO) -> None:
    """With store.sweep_interval small, expired entries leave Redis on their own (list,
    metadata and expiry) and the sweep is logged; permanent entries stay."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path,
                                            store={"sweep_interval": 0.05}))
    expires = soon()
    await add(gk, {"entries": [N, "+1*"], "expires_at": expires})
    await add(gk, {"entries": ["+44*"]})

    async def swept() -> bool:
        return not await gk.redis.exists("gk:exp:block:global")

    await eventually(swept)
    assert time.time() >= expires - 0.05  # not swept before its instant
    assert await gk.redis.zrange("gk:list:block:global", 0, -1) == ["+44*"]
    assert await gk.redis.hkeys("gk:meta:block:global") == ["+44*"]
    logged = [e for e in log_events(log_output) if e["event"] == "entries_expired"]
    assert [e["removed"] for e in logged] == [2]


async def test_periodic_sweeper_survives_store_faults(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        log_output: io.StringIO) -> None:
    """A store that is down makes each sweep fail, logged and counted, and the sweeper
    keeps trying instead of dying."""
    client = connect(RedisConfig(timeout=0.1), "redis://127.0.0.1:1/0")
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path,
                                            store={"sweep_interval": 0.05}), redis=client)

    async def failed_thrice() -> bool:
        value = gk.registry.get_sample_value("gatekeeper_store_errors_total",
                                             {"operation": "sweep"})
        return (value or 0.0) >= 3

    await eventually(failed_thrice)
    logged = [e for e in log_events(log_output)
              if e["event"] == "store_unavailable" and e.get("operation") == "sweep"]
    assert len(logged) >= 3
    resp = await gk.admin.get("/healthz")
    assert resp.status == 200

"""The store on a real Redis Cluster (three masters, three replicas) through the
production path: `connect()` with a `redis+cluster://` URL and the lean
`ClusterTransport` for lookups. Every key of a scope shares its hash slot; lookups over
scopes on several nodes answer in one call; replace imports, expiry sweeps and the
attempts stream work; `MOVED` and `ASK` are followed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from redis.crc import key_slot

from gatekeeper.bulk import Importer
from gatekeeper.bulk_options import ImportOptions
from gatekeeper.cli import main
from gatekeeper.config import RedisConfig, StoreConfig
from gatekeeper.rules import VelocityLimit
from gatekeeper.store import EntryMeta, ListItem, Store, StoreUnavailable, connect
from gatekeeper.store.cluster import ClusterTransport
from gatekeeper.store.pipe import LookupPipe
from gatekeeper.velocity import Counting
from tests.conftest import eventually
from tests.topologies import ClusterRig, query

pytestmark = [pytest.mark.integration]  # slow: listed in conftest's SLOW_MODULES

META = EntryMeta(source="test", added_at=1.0, added_by="pytest")


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    """An import body in one chunk."""
    yield data


@pytest.fixture
async def store(cluster_rig: ClusterRig, request: pytest.FixtureRequest
                ) -> AsyncIterator[Store]:
    """A Store on the cluster with a key prefix of its own (tests do not meet)."""
    config = RedisConfig(url=cluster_rig.url, timeout=1.0,
                         key_prefix=f"gk{abs(hash(request.node.name)) % 10**8}:")
    store = Store(connect(config), config, StoreConfig(), config.url)
    await store.prepare()
    yield store
    await store.close()


async def test_cluster_mode_tags_every_key_with_its_scope(store: Store) -> None:
    """On a cluster, the key layout is tagged: `gk:list:block:{tenant:a}`."""
    assert store.keys.cluster
    keys = store.keys.of("block", "tenant:a")
    assert keys.list.endswith(":list:block:{tenant:a}")
    assert isinstance(store._transport, ClusterTransport)


async def test_lookup_over_scopes_on_three_nodes_finds_each_scopes_entries(
        store: Store, cluster_rig: ClusterRig) -> None:
    """Entries in scopes served by three masters are all found by one lookup, which
    asks every one of those masters."""
    scopes = cluster_rig.spread_scopes()
    for i, scope in enumerate(scopes):
        await store.add("block", scope, [ListItem(f"+3361234567{i}")], META)
        await store.add("allow", scope, [ListItem("+3361*")], META)
    numbers = [f"+3361234567{i}" for i in range(3)] + ["+33700000000"]
    found = await store.lookup(numbers, ["global", *scopes], "sms")
    for i, scope in enumerate(scopes):
        hits = {(m.scope, m.list, m.entry) for m in found[f"+3361234567{i}"]}
        assert (scope, "block", f"+3361234567{i}") in hits
        assert {(s, "allow", "+3361*") for s in scopes} <= hits
    assert found["+33700000000"] == []
    transport = store._transport
    assert isinstance(transport, ClusterTransport)
    assert len(transport._pipes) >= 3


async def test_lookup_counting_counts_each_scopes_sends_on_its_node(
        store: Store, cluster_rig: ClusterRig) -> None:
    """A lookup that counts sends in scopes on three masters: each scope's counts go
    in its own scope's script call (its keys share the scope's slot), each counter
    holds the send, and a second look at a full limit refuses it."""
    scopes = cluster_rig.spread_scopes()
    limit = VelocityLimit("number", 1, 3600.0)
    number = "+33612345670"
    await store.add("block", scopes[0], [ListItem(number)], META)
    countings = [Counting(number, scope, "sms", ((limit, number[1:]),)) for scope in scopes]
    found, counted = await store.lookup_counting([number], ["global", *scopes], "sms",
                                                 countings)
    assert {(m.scope, m.list) for m in found[number]} == {(scopes[0], "block")}
    assert [c.over for c in counted] == [None, None, None]
    assert {c.counting.scope for c in counted} == set(scopes)
    for scope in scopes:
        key = store.keys.velocity(scope, "sms", limit.spec, number[1:])[0]
        assert await store.client.zcard(key) == 1
    _, again = await store.lookup_counting([number], ["global", *scopes], "sms", countings)
    assert [c.over for c in again] == [limit] * 3
    await store.uncount(counted)
    for scope in scopes:
        key = store.keys.velocity(scope, "sms", limit.spec, number[1:])[0]
        assert await store.client.zcard(key) == 0


async def test_replace_import_packs_and_swaps_on_the_scopes_node(
        store: Store, cluster_rig: ClusterRig) -> None:
    """A replace import (packed load) lands in the scope's slot and is found; a second
    replace swaps it out and the old buckets are purged."""
    scope = cluster_rig.spread_scopes(1)[0]
    first = "".join(f"+1415555{i:04d}\n" for i in range(2000)).encode()
    report = await Importer(store, ImportOptions("block", scope, "replace")).run(
        chunks(first))
    assert report.added == 2000
    found = await store.lookup(["+14155550007", "+14155559999"], [scope])
    assert [m.entry for m in found["+14155550007"]] == ["+14155550007"]
    assert found["+14155559999"] == []
    second = b"+14155559999\n"
    await Importer(store, ImportOptions("block", scope, "replace")).run(chunks(second))
    found = await store.lookup(["+14155550007", "+14155559999"], [scope])
    assert found["+14155550007"] == []
    assert [m.entry for m in found["+14155559999"]] == ["+14155559999"]
    await store.purge_packed()
    assert await store.count("block", scope) == 1
    leftovers = [k async for k in store.client.scan_iter(match=f"{store.keys.prefix}pk:*")]
    live = await store.packed_load(store.keys.of("block", scope))
    assert live is not None
    assert all(k.startswith(live.base) for k in leftovers), leftovers


async def test_filter_copies_skip_each_scopes_load_on_its_node(
        store: Store, cluster_rig: ClusterRig) -> None:
    """Packed loads in scopes on three masters: each load's filter is read from its
    scope's node, and a lookup over all of them names, per node's call, the loads the
    copies rule a number out of; listed numbers are still found in every scope."""
    scopes = cluster_rig.spread_scopes()
    for i, scope in enumerate(scopes):
        body = "".join(f"+1415{i}55{n:04d}\n" for n in range(1500)).encode()
        await Importer(store, ImportOptions("block", scope, "replace")).run(chunks(body))
    await store.lookup(["+14150550000"], scopes, "sms")
    assert await store.refresh_filters() == len(scopes)
    absent = "+19995550100"
    calls = store._skipping(store._probe(tuple(scopes)), [absent])
    assert len(calls) == len(scopes)
    assert all(any(call.fixed) for call in calls)  # every node's call names its load
    found = await store.lookup([absent, *(f"+1415{i}550007" for i in range(3))],
                               scopes, "sms")
    assert found[absent] == []
    for i, scope in enumerate(scopes):
        assert [(m.scope, m.entry) for m in found[f"+1415{i}550007"]] == [
            (scope, f"+1415{i}550007")]


async def test_expiry_sweep_and_attempts_stream_work(
        store: Store, cluster_rig: ClusterRig) -> None:
    """Expired entries stop matching and are swept on every node; attempts append and
    read back."""
    scopes = cluster_rig.spread_scopes()
    for scope in scopes:
        await store.add("block", scope, [ListItem("+442071234567")],
                        EntryMeta(source="test", added_at=1.0, expires_at=time.time() + 0.3))
    assert all(await store.lookup(["+442071234567"], scopes))

    async def expired() -> bool:
        return (await store.lookup(["+442071234567"], scopes))["+442071234567"] == []

    await eventually(expired)
    assert await store.sweep_expired() == 3
    for scope in scopes:
        assert await store.count("block", scope) == 0


async def test_moved_slot_is_followed_without_a_restart(
        store: Store, cluster_rig: ClusterRig) -> None:
    """A scope's slot moved to another master after the transport read the map: the
    next lookup gets MOVED, follows it, and finds the entry; so do later ones."""
    scope = cluster_rig.spread_scopes(1)[0]
    await store.add("block", scope, [ListItem("+33612345678")], META)
    assert (await store.lookup(["+33612345678"], [scope]))["+33612345678"]
    slot = key_slot(scope.encode())
    source = cluster_rig.master_for_slot(slot)
    target = next(p for p in cluster_rig.masters() if p != source)
    move_slot(cluster_rig, slot, source, target)
    transport = store._transport
    assert isinstance(transport, ClusterTransport)
    assert transport._slots[slot] == ("127.0.0.1", source)  # the map is behind
    for _ in range(2):
        found = await store.lookup(["+33612345678"], [scope])
        assert [m.entry for m in found["+33612345678"]] == ["+33612345678"]
    assert transport._slots[slot] == ("127.0.0.1", target)


async def test_ask_during_a_migration_is_followed(
        store: Store, cluster_rig: ClusterRig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mid-migration, every key of the scope already on the importing node but the slot
    still owned by the source: the source answers ASK, and the lookup follows it with
    ASKING to the importing node."""
    scope = cluster_rig.spread_scopes(1)[0]
    await fill_every_key(store, scope)
    slot = key_slot(scope.encode())
    source = cluster_rig.master_for_slot(slot)
    target = next(p for p in cluster_rig.masters() if p != source)
    move_slot(cluster_rig, slot, source, target, finish=False)
    asked: list[Any] = []
    real = LookupPipe.call_after

    async def spy(pipe: LookupPipe, first: Any, payload: bytes) -> Any:
        asked.append(first)
        return await real(pipe, first, payload)

    monkeypatch.setattr(LookupPipe, "call_after", spy)
    try:
        found = await store.lookup(["+33612345679", "+14155550001"], [scope])
        assert asked == [["ASKING"]]
        assert {m.list for m in found["+33612345679"]} == {"block", "allow"}
        assert {m.list for m in found["+14155550001"]} == {"block", "allow"}
    finally:
        finish_move(cluster_rig, slot, target)


async def test_a_lookup_that_meets_a_half_moved_slot_is_refused_not_guessed(
        store: Store, cluster_rig: ClusterRig) -> None:
    """With the scope's keys split between two nodes mid-migration (TRYAGAIN), the
    lookup is retried briefly, then fails as StoreUnavailable (store.on_error decides);
    once the move completes it answers again."""
    scope = cluster_rig.spread_scopes(1)[0]
    await store.add("block", scope, [ListItem("+33612345670")], META)
    slot = key_slot(scope.encode())
    source = cluster_rig.master_for_slot(slot)
    target = next(p for p in cluster_rig.masters() if p != source)
    move_slot(cluster_rig, slot, source, target, finish=False, first_only=True)
    try:
        with pytest.raises(StoreUnavailable, match="TRYAGAIN"):
            await store.lookup(["+33612345670"], [scope])
    finally:
        move_slot(cluster_rig, slot, source, target, resume=True)
    found = await store.lookup(["+33612345670"], [scope])
    assert [m.entry for m in found["+33612345670"]] == ["+33612345670"]


async def fill_every_key(store: Store, scope: str) -> None:
    """Give both lists of `scope` every key a lookup reads: set, expiry, packed load."""
    later = time.time() + 3600
    for name in ("block", "allow"):
        await Importer(store, ImportOptions(name, scope, "replace")).run(
            chunks(b"+14155550001\n+14155550002\n"))
        await store.add(name, scope, [ListItem("+33612345679")],
                        EntryMeta(source="test", added_at=1.0, expires_at=later))


def node_id(port: int) -> str:
    """A node's cluster id."""
    return str(query(port, "CLUSTER", "MYID"))


def move_slot(rig: ClusterRig, slot: int, source: int, target: int, finish: bool = True,
              first_only: bool = False, resume: bool = False) -> None:
    """Migrate a slot and its keys from `source` to `target` (as redis-cli reshard
    does): `first_only` moves one key and stops; `resume` carries on a started move;
    with `finish`, the slot is then handed over on every master."""
    if not resume:
        query(target, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", node_id(source))
        query(source, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", node_id(target))
    while True:
        keys = query(source, "CLUSTER", "GETKEYSINSLOT", str(slot), "1" if first_only
                     else "100")
        assert isinstance(keys, list)
        if not keys:
            break
        query(source, "MIGRATE", "127.0.0.1", str(target), "", "0", "5000", "KEYS",
              *[str(k) for k in keys])
        if first_only:
            return
    if finish:
        finish_move(rig, slot, target)


def finish_move(rig: ClusterRig, slot: int, target: int) -> None:
    """Give `slot` to `target` on every master."""
    owner = node_id(target)
    for port in rig.masters():
        query(port, "CLUSTER", "SETSLOT", str(slot), "NODE", owner)
    deadline = time.monotonic() + 10
    while rig.master_for_slot(slot) != target:
        assert time.monotonic() < deadline, "the slot move did not spread"
        time.sleep(0.05)


def test_rig_query_speaks_to_nodes(cluster_rig: ClusterRig) -> None:
    """(Sanity) the helper used to move slots reaches the nodes."""
    assert redis.Redis(port=cluster_rig.masters()[0]).ping()


async def test_store_migrate_copies_a_single_servers_lists_onto_the_cluster(
        cluster_rig: ClusterRig, redis_server: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`gatekeeper store migrate --to redis+cluster://...` copies every list of the
    configured single server (its untagged layout) into the cluster's tagged one: the
    same numbers are blocked there, and each list's count is reported equal."""
    prefix = f"mig{abs(hash(tmp_path)) % 10**6}:"
    config = RedisConfig(url=redis_server, key_prefix=prefix)
    source = Store(connect(config), config, StoreConfig(), config.url)
    await source.add("block", "tenant:acme", [ListItem("+33612345678")], META)
    await Importer(source, ImportOptions("block", "global", "replace")).run(
        chunks(b"".join(b"+1202555%04d\n" % i for i in range(500))))
    await source.close()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "redis": {"url": redis_server, "key_prefix": prefix},
        "upstreams": [{"name": "twilio", "url": "http://127.0.0.1:9", "preset": "twilio"}],
        "log": {"level": "warning"}}))
    code = await asyncio.to_thread(
        main, ["store", "migrate", "--config", str(path), "--to", cluster_rig.url])
    assert code == 0, capsys.readouterr().err
    assert "MISMATCH" not in capsys.readouterr().err
    target_config = RedisConfig(url=cluster_rig.url, key_prefix=prefix)
    target = Store(connect(target_config), target_config, StoreConfig(), target_config.url)
    try:
        found = await target.lookup(["+33612345678", "+12025550042"],
                                    ["global", "tenant:acme"])
        assert [m.scope for m in found["+33612345678"]] == ["tenant:acme"]
        assert [m.scope for m in found["+12025550042"]] == ["global"]
        assert await target.count("block", "global") == 500
    finally:
        await target.close()
    # `gatekeeper check` on the cluster (redis-py's path, one script call per scope).
    path.write_text(yaml.safe_dump({
        "redis": {"url": cluster_rig.url, "key_prefix": prefix},
        "upstreams": [{"name": "twilio", "url": "http://127.0.0.1:9", "preset": "twilio"}],
        "log": {"level": "warning"}}))
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["check", "--config", str(path), "+33612345678",
                                          "--scope", "tenant:acme"])
    assert code == 0
    assert '"decision": "blocked"' in capsys.readouterr().out


def calls(rig: ClusterRig, port: int, command: str) -> int:
    """`command`s a node answered since its stats were reset."""
    stats = query(port, "INFO", "commandstats", tls=rig.tls)
    assert isinstance(stats, dict)
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_an_acknowledged_change_waits_on_the_master_of_its_scope(
        store: Store, cluster_rig: ClusterRig) -> None:
    """An add asks INFO persistence and INFO replication (store/durability.py) of the
    master serving its scope's slot, where the change was written, and waits there for
    its replica (WAIT); no other master is asked anything."""
    scope = cluster_rig.spread_scopes(1)[0]
    owner = cluster_rig.master_for_slot(key_slot(scope.encode()))
    masters = cluster_rig.masters()
    for port in masters:
        query(port, "CONFIG", "RESETSTAT", tls=cluster_rig.tls)
    await store.add("block", scope, [ListItem("+33612345670")], META)
    asked = {port: (calls(cluster_rig, port, "info"), calls(cluster_rig, port, "wait"))
             for port in masters}
    # A node counts a command once it has answered it: the reading INFO is not in it.
    assert asked[owner][0] == 2, asked
    assert asked[owner][1] >= 1, asked
    assert all(c == (0, 0) for port, c in asked.items() if port != owner), asked

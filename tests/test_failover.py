"""Gatekeeper's sends on a real Redis Cluster and a real Sentinel group, through the
production path (Gatekeeper connects from its configured `redis.url`), while the master
holding the lists is killed: each send is refused (`closed`) or forwarded unchecked
(`open`) while the group fails over, none is forwarded twice, a blocked number is never
forwarded under `closed`, and sends are screened again after the promotion without a
restart of Gatekeeper. The time to recover is printed (run with -s to read it)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry
from redis.crc import key_slot

from gatekeeper.app import ADMIN_APP, create_app
from gatekeeper.config import Config
from gatekeeper.sending import OFF_LOOP_BYTES
from tests.conftest import (
    AUTH,
    TWILIO_MESSAGES,
    FakeUpstream,
    ListenerTestServer,
    Running,
    make_config,
)
from tests.topologies import ClusterRig, SentinelRig, info, wait_for

pytestmark = [pytest.mark.integration]  # slow: listed in conftest's SLOW_MODULES

BLOCKED = "+33612345678"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# Sends go on for at most this long after the kill, waiting for the promotion.
RECOVERY_LIMIT = 30.0

Client = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
def sentinel_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelRig]:
    """A master, a replica and three sentinels for one test (a killed master comes back
    empty and takes Sentinel about 10 s to turn into a replica: a new group is faster)."""
    rig = SentinelRig(tmp_path_factory.mktemp("sentinel"))
    rig.start()
    try:
        yield rig
    finally:
        rig.stop()


async def start_on(aiohttp_client: Client, config: Config) -> Running:
    """Gatekeeper connecting to its configured store itself (no client passed in)."""
    registry = CollectorRegistry()
    app = create_app(config, registry=registry)
    proxy = await aiohttp_client(ListenerTestServer(app, "proxy", config.proxy.timeouts))
    admin = await aiohttp_client(ListenerTestServer(app[ADMIN_APP], "admin",
                                                    config.admin.timeouts))
    return Running(proxy, admin, app, registry, None)


def config_for(url: str, upstream: FakeUpstream, tmp_path: Path, on_error: str) -> Config:
    """Twilio sends screened in `global` on the store at `url`."""
    return make_config(upstream.url, tmp_path, redis={"url": url, "timeout": 0.5},
                       store={"on_error": on_error})


def wait_replicated(master: int, replica: int) -> None:
    """Until the replica has applied everything the master has written."""
    wanted = int(info(master, "replication")["master_repl_offset"])
    wait_for(lambda: int(info(replica, "replication").get("slave_repl_offset", -1))
             >= wanted, 10, "the replica to catch up")


@dataclass
class Outcome:
    """What the sends during and after a failover met."""

    statuses: list[tuple[str, int]] = field(default_factory=list)
    recovered_after: float | None = None


async def send(gk: Running, number: str) -> int:
    """A Twilio SMS send to `number`; its status."""
    resp = await gk.proxy.post(TWILIO_MESSAGES, headers=FORM,
                               data=f"To={quote(number)}&From=%2B15005550006&Body=hi".encode())
    await resp.read()
    return resp.status


async def through_failover(gk: Running, kill: Callable[[], None]) -> Outcome:
    """Kill the master, then send (a fresh allowed number and the blocked one, in turn)
    until an allowed send is forwarded again; the statuses and the time that took."""
    outcome = Outcome()
    kill()
    killed_at = time.monotonic()
    i = 0
    while time.monotonic() - killed_at < RECOVERY_LIMIT:
        i += 1
        number = f"+4477009{i:05d}"
        status = await send(gk, number)
        outcome.statuses.append((number, status))
        outcome.statuses.append((BLOCKED, await send(gk, BLOCKED)))
        if status == 201 and outcome.statuses[-1][1] == 403:
            outcome.recovered_after = time.monotonic() - killed_at
            break
        await asyncio.sleep(0.05)
    return outcome


def check(outcome: Outcome, upstream: FakeUpstream, on_error: str, what: str,
          logs: io.StringIO, state: Callable[[], object]) -> None:
    """The failover's invariants, for either store (`logs` and `state` explain a failure:
    Gatekeeper's last store events, and the group's view of its master)."""
    if outcome.recovered_after is None:
        events = [line for line in logs.getvalue().splitlines() if "store" in line]
        try:
            seen = state()
        except Exception as exc:  # a diagnostic only
            seen = repr(exc)
        raise AssertionError(f"{what}: no recovery within the limit; the group says "
                             f"{seen}; Gatekeeper's last store events: {events[-5:]}")
    print(f"\n{what}, on_error={on_error}: screened sends again "
          f"{outcome.recovered_after:.2f} s after the master was killed "
          f"({len(outcome.statuses)} sends meanwhile)")
    sent = [number for number, status in outcome.statuses if status == 201]
    # Every forwarded send reached the gateway exactly once, and nothing else did.
    assert len(upstream.received) == len(sent), (len(upstream.received), sent)
    statuses = {status for _, status in outcome.statuses}
    if on_error == "closed":
        assert statuses <= {201, 403, 503}, statuses
        assert 503 in statuses  # the outage was seen, and refused
        assert all(status in (403, 503) for number, status in outcome.statuses
                   if number == BLOCKED)
    else:
        assert statuses <= {201, 403}, statuses
        # Forwarded unchecked while the store was down: the blocked number too.
        assert any(status == 201 for number, status in outcome.statuses if number == BLOCKED)


@pytest.mark.parametrize("on_error", ["closed", "open"])
async def test_cluster_master_killed(
        on_error: str, cluster_rig: ClusterRig, aiohttp_client: Client,
        upstream: FakeUpstream, tmp_path: Path, log_output: io.StringIO) -> None:
    """Kill the cluster master holding the `global` lists mid-traffic: refused or
    forwarded as `on_error` says, never twice, screened again after the promotion."""
    gk = await start_on(aiohttp_client, config_for(cluster_rig.url, upstream, tmp_path,
                                                   on_error))
    await gk.block(BLOCKED)
    assert await send(gk, BLOCKED) == 403
    assert await send(gk, "+447700900001") == 201
    upstream.received.clear()
    master = cluster_rig.master_for_slot(key_slot(b"global"))
    # After an earlier kill the restarted node may still be rejoining as this one's replica.
    wait_for(lambda: cluster_rig.replica_of(master) > 0, 30, "the master to have a replica")
    wait_replicated(master, cluster_rig.replica_of(master))
    outcome = await through_failover(gk, lambda: cluster_rig.kill(master))
    try:
        check(outcome, upstream, on_error, "cluster", log_output,
              cluster_rig.masters)
    finally:
        cluster_rig.wait_promoted(master)
        cluster_rig.restart(master)


@pytest.mark.parametrize("on_error", ["closed", "open"])
async def test_sentinel_master_killed(
        on_error: str, sentinel_rig: SentinelRig, aiohttp_client: Client,
        upstream: FakeUpstream, tmp_path: Path, log_output: io.StringIO) -> None:
    """Kill the Sentinel group's master mid-traffic: refused or forwarded as `on_error`
    says, never twice, screened again once Sentinel promotes the replica."""
    gk = await start_on(aiohttp_client, config_for(sentinel_rig.url, upstream, tmp_path,
                                                   on_error))
    await gk.block(BLOCKED)
    assert await send(gk, BLOCKED) == 403
    assert await send(gk, "+447700900001") == 201
    upstream.received.clear()
    master = sentinel_rig.master_port()
    replica = next(p for p in sentinel_rig.data_ports if p != master)
    wait_replicated(master, replica)
    outcome = await through_failover(gk, lambda: sentinel_rig.kill(master))
    check(outcome, upstream, on_error, "sentinel", log_output,
          lambda: (sentinel_rig.master_port(), sentinel_rig.data_ports))


async def acknowledged_then_killed(gk: Running, upstream: FakeUpstream,
                                   replica: subprocess.Popen[bytes],
                                   kill: Callable[[], None]) -> None:
    """Add a block entry while the master's replica is stopped: the add must wait for
    it; let go, the add answers, and the master is killed at once (`kill`, which waits
    for the promotion): the number is refused after the failover, never forwarded."""
    with stopped(replica):
        adding = asyncio.ensure_future(gk.block(BLOCKED))
        await asyncio.sleep(0.5)
        assert not adding.done()  # waiting for the replica to hold it
    await asyncio.wait_for(adding, 10)
    kill()
    deadline = time.monotonic() + RECOVERY_LIMIT
    while (status := await send(gk, BLOCKED)) != 403 and time.monotonic() < deadline:
        assert status == 503, status  # refused while it fails over, never forwarded
        await asyncio.sleep(0.2)
    assert status == 403
    assert upstream.received == []


async def test_sentinel_an_acknowledged_entry_survives_the_master_killed_at_once(
        sentinel_rig: SentinelRig, aiohttp_client: Client, upstream: FakeUpstream,
        tmp_path: Path) -> None:
    """A block entry is acknowledged only once the replica holds it (WAIT), so the
    promoted replica has it even when the master dies the moment the add answers."""
    gk = await start_on(aiohttp_client, config_for(sentinel_rig.url, upstream, tmp_path,
                                                   "closed"))
    await gk.block("+447700900001")  # connected, scripts loaded
    master = sentinel_rig.master_port()
    replica = next(p for p in sentinel_rig.data_ports if p != master)

    def kill() -> None:
        sentinel_rig.kill(master)
        sentinel_rig.wait_promoted(master)

    await acknowledged_then_killed(gk, upstream, sentinel_rig.process(replica), kill)


async def test_cluster_an_acknowledged_entry_survives_the_master_killed_at_once(
        cluster_rig: ClusterRig, aiohttp_client: Client, upstream: FakeUpstream,
        tmp_path: Path) -> None:
    """The same on the cluster: the master serving the `global` slot waits for its
    replica (WAIT on that node) before the add answers."""
    gk = await start_on(aiohttp_client, config_for(cluster_rig.url, upstream, tmp_path,
                                                   "closed"))
    await gk.block("+447700900001")
    master = cluster_rig.master_for_slot(key_slot(b"global"))
    wait_for(lambda: cluster_rig.replica_of(master) > 0, 30, "the master to have a replica")
    replica = cluster_rig.replica_of(master)

    def kill() -> None:
        cluster_rig.kill(master)
        cluster_rig.wait_promoted(master)

    try:
        await acknowledged_then_killed(gk, upstream, cluster_rig.process(replica), kill)
    finally:
        if master in cluster_rig.dead:
            cluster_rig.restart(master)


async def on_sentinel_waiting(sentinel_rig: SentinelRig, aiohttp_client: Client,
                              upstream: FakeUpstream, tmp_path: Path, replica_wait: float
                              ) -> tuple[Running, subprocess.Popen[bytes]]:
    """Gatekeeper on the Sentinel group with `store.replica_wait`, connected (one entry
    added); and the replica's process."""
    gk = await start_on(aiohttp_client, make_config(
        upstream.url, tmp_path, redis={"url": sentinel_rig.url, "timeout": 0.5},
        store={"on_error": "closed", "replica_wait": replica_wait}))
    await gk.block("+447700900001")
    master = sentinel_rig.master_port()
    replica = next(p for p in sentinel_rig.data_ports if p != master)
    return gk, sentinel_rig.process(replica)


@contextlib.contextmanager
def stopped(process: subprocess.Popen[bytes]) -> Iterator[None]:
    """`process` stopped (SIGSTOP) for the block, continued after it."""
    os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)


async def test_sentinel_a_change_no_replica_holds_in_time_is_not_acknowledged(
        sentinel_rig: SentinelRig, aiohttp_client: Client, upstream: FakeUpstream,
        tmp_path: Path) -> None:
    """The replica stopped past the wait (`store.replica_wait: 0.5`): the add answers 503
    `store_unavailable`, not 200; the entry stands on the master, and adding it again
    once the replica is back is acknowledged (nothing added twice)."""
    gk, replica = await on_sentinel_waiting(sentinel_rig, aiohttp_client, upstream,
                                            tmp_path, 0.5)
    with stopped(replica):
        resp = await gk.admin.post("/admin/v1/lists/block/entries", headers=AUTH,
                                   json={"entries": [BLOCKED], "scope": "global"})
        assert resp.status == 503
        assert (await resp.json())["code"] == "store_unavailable"
    assert await gk.block(BLOCKED) == {"added": [], "existing": [BLOCKED], "failed": []}


async def test_sentinel_with_no_replica_wait_the_master_alone_acknowledges(
        sentinel_rig: SentinelRig, aiohttp_client: Client, upstream: FakeUpstream,
        tmp_path: Path) -> None:
    """`store.replica_wait: 0`: with the replica stopped, the add answers at once (the
    operator's choice: a failover may then lose the last changes)."""
    gk, replica = await on_sentinel_waiting(sentinel_rig, aiohttp_client, upstream,
                                            tmp_path, 0)
    with stopped(replica):
        started = time.monotonic()
        await asyncio.wait_for(gk.block(BLOCKED), 0.4)
        assert time.monotonic() - started < 0.4


async def batch(gk: Running, numbers: list[str], scopes: list[str]) -> tuple[int, str]:
    """A generic JSON batch (large enough for the screening helper when `numbers` is
    long); its status and decision header."""
    body = {"from": "+15005550006",
            "messages": [{"to": n, "text": "hi"} for n in numbers]}
    resp = await gk.proxy.post("/generic/v1/sms", json=body,
                               headers={"X-Gatekeeper-Scope": ",".join(scopes)})
    await resp.read()
    return resp.status, resp.headers.get("X-Gatekeeper-Decision", "")


async def sends_in_scopes(gk: Running, upstream: FakeUpstream, scopes: list[str]) -> None:
    """The proxy's send behaviours with entries in several scopes: each scope's block
    applies to sends carrying it; a tenant's allow entry does not beat a block; a small
    and a large batch (the screening helper's) lose exactly their blocked recipients."""
    for i, scope in enumerate(scopes):
        await gk.block(f"+3361234560{i}", scope=scope)
    await gk.block(BLOCKED)
    await gk.allow(BLOCKED, scope=scopes[0])
    headers = {**FORM, "X-Gatekeeper-Scope": ",".join(scopes)}
    for i, scope in enumerate(scopes):
        number = f"+3361234560{i}"
        resp = await gk.proxy.post(TWILIO_MESSAGES, headers=headers,
                                   data=f"To={quote(number)}&Body=hi".encode())
        assert resp.status == 403, (scope, await resp.text())
        other = [s for s in scopes if s != scope]
        resp = await gk.proxy.post(TWILIO_MESSAGES, headers={
            **FORM, "X-Gatekeeper-Scope": ",".join(other)},
            data=f"To={quote(number)}&Body=hi".encode())
        assert resp.status == 201, (scope, await resp.text())
    assert await send(gk, BLOCKED) == 403
    upstream.received.clear()
    small = ["+447700900101", "+33612345600", "+447700900102"]
    assert await batch(gk, small, scopes) == (201, "partial")
    large = [f"+4477009{i:05d}" for i in range(2000)] + ["+33612345601", BLOCKED]
    assert len(json.dumps([{"to": n, "text": "hi"} for n in large])) > OFF_LOOP_BYTES
    assert await batch(gk, large, scopes) == (201, "partial")
    assert len(upstream.received) == 2
    forwarded = [upstream.received[0].body, upstream.received[1].body]
    assert all(b"+336123456" not in body for body in forwarded)
    assert BLOCKED.encode() not in forwarded[1]
    # The admin side on the same store: the inventory (scanned on every node) and the
    # attempts stream the blocked sends appended to.
    resp = await gk.admin.get("/admin/v1/lists", headers=AUTH)
    listed = {(row["list"], row["scope"]) for row in (await resp.json())["lists"]}
    assert {("block", scope) for scope in scopes} | {("block", "global")} <= listed
    resp = await gk.admin.get("/admin/v1/attempts", headers=AUTH, params={"limit": "100"})
    attempts = (await resp.json())["attempts"]
    assert len(attempts) >= len(scopes) + 1


async def test_cluster_sends_in_scopes_on_three_nodes(
        cluster_rig: ClusterRig, aiohttp_client: Client, upstream: FakeUpstream,
        tmp_path: Path) -> None:
    """On the cluster, with each scope's lists on a different master: sends, small and
    large batches are screened in every scope."""
    gk = await start_on(aiohttp_client, config_for(cluster_rig.url, upstream, tmp_path,
                                                   "closed"))
    await sends_in_scopes(gk, upstream, cluster_rig.spread_scopes())


async def test_sentinel_sends_in_scopes(
        sentinel_rig: SentinelRig, aiohttp_client: Client, upstream: FakeUpstream,
        tmp_path: Path) -> None:
    """Through Sentinel: sends, small and large batches are screened in every scope."""
    gk = await start_on(aiohttp_client, config_for(sentinel_rig.url, upstream, tmp_path,
                                                   "closed"))
    await sends_in_scopes(gk, upstream, ["tenant:a", "tenant:b", "agent:7"])

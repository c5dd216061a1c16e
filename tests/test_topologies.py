"""The local Redis Cluster and Sentinel rigs (tests/topologies.py): they form, fail over
within bounds, and keep a write acknowledged by a replica."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from tests.topologies import ClusterRig, SentinelRig, query, wait_for

pytestmark = [pytest.mark.integration]  # slow: listed in conftest's SLOW_MODULES

FAILOVER_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def cluster_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterRig]:
    """A 3-master, 3-replica cluster, stopped at the end of the module."""
    rig = ClusterRig(tmp_path_factory.mktemp("cluster"))
    rig.start()
    try:
        yield rig
    finally:
        rig.stop()


@pytest.fixture(scope="module")
def sentinel_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelRig]:
    """A master, a replica and 3 sentinels, stopped at the end of the module."""
    rig = SentinelRig(tmp_path_factory.mktemp("sentinel"))
    rig.start()
    try:
        yield rig
    finally:
        rig.stop()


def _direct(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, decode_responses=True,
                       socket_timeout=2, socket_connect_timeout=2)


def _write_replicated(port: int, key: str, value: str) -> None:
    """SET on the server at `port`, then WAIT until one replica has it."""
    client = _direct(port)
    try:
        assert client.set(key, value)
        assert client.wait(1, 1000) >= 1
    finally:
        client.close()


def _role(port: int) -> list[object]:
    """ROLE of the server at `port`."""
    role = query(port, "ROLE")
    assert isinstance(role, list)
    return role


def test_cluster_forms_and_serves_every_slot(cluster_rig: ClusterRig) -> None:
    """The cluster forms with 3 masters and 3 replicas and RedisCluster reads and writes
    keys on every master."""
    nodes = cluster_rig.nodes()
    masters = cluster_rig.masters()
    assert len(masters) == 3
    assert len([n for n in nodes if n.is_replica]) == 3
    assert {cluster_rig.replica_of(m) for m in masters} == set(cluster_rig.ports) - set(masters)
    assert cluster_rig.url == "redis+cluster://" + ",".join(
        f"127.0.0.1:{p}" for p in cluster_rig.ports[:3])

    client = RedisCluster(host="127.0.0.1", port=cluster_rig.ports[0], decode_responses=True)
    try:
        by_master: dict[int, str] = {}
        for i in range(100):
            key = f"key-{i}"
            by_master.setdefault(cluster_rig.master_for_slot(key_slot(key.encode())), key)
        assert set(by_master) == set(masters)
        for key in by_master.values():
            assert client.set(key, f"value of {key}")
        for key in by_master.values():
            assert client.get(key) == f"value of {key}"
    finally:
        client.close()


def test_cluster_failover_keeps_replicated_write(cluster_rig: ClusterRig) -> None:
    """Killing a slot's master promotes its replica in time, a replicated write survives,
    and the old master rejoins as a replica of the new one."""
    client = RedisCluster(host="127.0.0.1", port=cluster_rig.ports[0], decode_responses=True)
    try:
        key = "failover-key"
        old = cluster_rig.master_for_slot(key_slot(key.encode()))
        replica = cluster_rig.replica_of(old)
        _write_replicated(old, key, "kept")

        cluster_rig.kill(old)
        took = cluster_rig.wait_promoted(old, timeout=FAILOVER_TIMEOUT)
        print(f"cluster failover: {took:.2f} s")
        assert took < FAILOVER_TIMEOUT
        assert cluster_rig.master_for_slot(key_slot(key.encode())) == replica
        assert old not in cluster_rig.masters()
        assert client.get(key) == "kept"  # the client made before the kill finds the new master

        cluster_rig.restart(old)
        wait_for(lambda: cluster_rig.replica_of(replica) == old, 15,
                 f"127.0.0.1:{old} to come back as a replica of 127.0.0.1:{replica}")
        assert len(cluster_rig.masters()) == 3
    finally:
        client.close()


def test_sentinel_failover_keeps_replicated_write(sentinel_rig: SentinelRig) -> None:
    """The sentinels name a master, name another one in time after it is killed (that one
    has the write the replica acknowledged), and turn the restarted old one into a replica."""
    ports = sentinel_rig.sentinel_ports
    assert sentinel_rig.url == (
        "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in ports) + "/mymaster/0")
    old = sentinel_rig.master_port()
    assert _role(old)[0] == "master"
    _write_replicated(old, "sentinel-key", "kept")

    assert sentinel_rig.kill_master() == old
    took = sentinel_rig.wait_promoted(old, timeout=FAILOVER_TIMEOUT)
    print(f"sentinel failover: {took:.2f} s")
    assert took < FAILOVER_TIMEOUT
    new = sentinel_rig.master_port()
    assert new != old
    client = _direct(new)
    try:
        assert client.get("sentinel-key") == "kept"
    finally:
        client.close()

    sentinel_rig.restart(old)
    wait_for(lambda: _role(old)[:3] == ["slave", "127.0.0.1", new], 20,
             f"the sentinels to turn 127.0.0.1:{old} into a replica of 127.0.0.1:{new}")

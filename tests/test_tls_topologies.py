"""`rediss+cluster://` and `rediss+sentinel://`: Gatekeeper on a real Redis Cluster and
a real Sentinel group that listen on TLS only and require a client certificate (a
private CA, `tests/topologies.py`'s `Tls`; Debian's redis-server, built with TLS).

Through the production path (Gatekeeper connects from its configured `redis.url`: the
lean lookup connections, redis-py's cluster and Sentinel clients, the sentinels
themselves), the proxy's send behaviours hold in several scopes; without the client
certificate the store cannot be reached, and sends are refused, never forwarded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gatekeeper.redis_url import parse
from gatekeeper.resources import RESOURCES
from gatekeeper.store.cluster import ClusterTransport
from tests.conftest import FakeUpstream
from tests.test_failover import BLOCKED, Client, config_for, send, sends_in_scopes, start_on
from tests.topologies import ClusterRig, SentinelRig, Tls

pytestmark = [pytest.mark.integration]  # slow: listed in conftest's SLOW_MODULES


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A private CA with a server and a client certificate."""
    return Tls.make(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory, tls: Tls) -> Iterator[ClusterRig]:
    """A cluster of 3 masters and 3 replicas on TLS only (the bus and replication too)."""
    rig = ClusterRig(tmp_path_factory.mktemp("tls-cluster"), tls)
    rig.start()
    try:
        yield rig
    finally:
        rig.stop()


@pytest.fixture(scope="module")
def tls_sentinel(tmp_path_factory: pytest.TempPathFactory, tls: Tls) -> Iterator[SentinelRig]:
    """A master, a replica and three sentinels, all on TLS only."""
    rig = SentinelRig(tmp_path_factory.mktemp("tls-sentinel"), tls=tls)
    rig.start()
    try:
        yield rig
    finally:
        rig.stop()


def without_client_certificate(url: str) -> str:
    """The URL with its CA only: the servers then refuse the handshake."""
    head, _, query = url.partition("?")
    kept = [part for part in query.split("&") if part.startswith("ssl_ca_certs=")]
    return f"{head}?{'&'.join(kept)}"


async def test_tls_cluster_screens_sends_in_every_scope(
        tls_cluster: ClusterRig, aiohttp_client: Client, upstream: FakeUpstream,
        tmp_path: Path) -> None:
    """On a TLS-only cluster, each scope's lists on a different master: sends, small and
    large batches are screened in every scope, lookups on the lean path."""
    assert tls_cluster.url.startswith("rediss+cluster://")
    gk = await start_on(aiohttp_client, config_for(tls_cluster.url, upstream, tmp_path,
                                                   "closed"))
    assert isinstance(gk.app[RESOURCES].store._transport, ClusterTransport)
    await sends_in_scopes(gk, upstream, tls_cluster.spread_scopes())


async def test_tls_sentinel_screens_sends_in_every_scope(
        tls_sentinel: SentinelRig, aiohttp_client: Client, upstream: FakeUpstream,
        tmp_path: Path) -> None:
    """Through TLS-only sentinels to a TLS-only master: sends, small and large batches
    are screened in every scope."""
    gk = await start_on(aiohttp_client, config_for(tls_sentinel.url, upstream, tmp_path,
                                                   "closed"))
    await sends_in_scopes(gk, upstream, ["tenant:a", "tenant:b", "agent:7"])


@pytest.mark.parametrize("rig_name", ["tls_cluster", "tls_sentinel"])
async def test_without_the_client_certificate_sends_are_refused(
        rig_name: str, request: pytest.FixtureRequest, aiohttp_client: Client,
        upstream: FakeUpstream, tmp_path: Path) -> None:
    """The servers require a client certificate: with the CA alone every connection is
    refused, so under `closed` a send gets 503 and the gateway receives nothing."""
    rig = request.getfixturevalue(rig_name)
    url = without_client_certificate(rig.url)
    assert parse(url).tls_options == (("ssl_ca_certs", str(rig.tls.ca)),)
    gk = await start_on(aiohttp_client, config_for(url, upstream, tmp_path, "closed"))
    assert await send(gk, BLOCKED) == 503
    assert await send(gk, "+447700900123") == 503
    assert upstream.received == []

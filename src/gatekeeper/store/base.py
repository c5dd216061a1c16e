"""What every part of the Store shares: its clients, keys and scripts; connecting,
checking the server, readiness, closing and re-pointing at a moved server."""

from __future__ import annotations

import math
import re
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from gatekeeper import redis_url
from gatekeeper.config import RedisConfig, StoreConfig
from gatekeeper.store.cluster import ClusterTransport
from gatekeeper.store.durability import InfoRefused, settle
from gatekeeper.store.faults import StoreIncompatible, StoreUnavailable, guarded, store_faults
from gatekeeper.store.keys import Keys
from gatekeeper.store.pipe import ClientTransport, LookupPipe, LookupTransport, PipeTransport
from gatekeeper.store.scripts import SCRIPTS, Scripts, register
from gatekeeper.store.sentinel import MasterAddress, master_client, sentinels

MIN_REDIS_VERSION = (6, 2)


def connect(config: RedisConfig, url: str | None = None) -> aioredis.Redis:
    """A client for `url` (default: the configured one) with the store's timeouts: a
    server's, a cluster's (typed as a server's: the store uses only commands both
    have) or a Sentinel group's master.

    One retry without back-off: a pooled connection broken by a Redis restart is replaced
    at once, while a Redis that is really down fails fast so `on_error` can apply.
    """
    url = url or config.url
    topology = redis_url.parse(url)
    if topology.kind == "cluster":
        return cast(aioredis.Redis, RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in topology.nodes],
            username=topology.username, password=topology.password,
            decode_responses=True, socket_timeout=config.timeout,
            socket_connect_timeout=config.timeout, retry=Retry(NoBackoff(), 1),
            **topology.tls_kwargs()))  # type: ignore[arg-type]
    if topology.kind == "sentinel":
        return master_client(sentinels(topology, config.timeout), topology, config.timeout)
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=config.timeout,
        socket_connect_timeout=config.timeout,
        retry=Retry(NoBackoff(), 1),
    )


class StoreBase:
    """The Store's shared state. Every public method of the Store's parts runs inside
    `store_faults` (mostly through `guarded`): whatever fault Redis, the socket or the
    loop raises comes out as StoreUnavailable."""

    def __init__(self, client: aioredis.Redis, redis_config: RedisConfig,
                 store_config: StoreConfig, lookup_url: str | None = None, *,
                 transport: LookupTransport | None = None) -> None:
        self.client = client
        self.keys = Keys(redis_config.key_prefix,
                         cluster=redis_config.topology.kind == "cluster")
        self._redis_config = redis_config
        self._attempts_max_len = store_config.attempts_max_len
        # A change is acknowledged once written to the server's AOF (store/durability.py)
        # and held by a replica, if its master has any, within this many seconds.
        self._settles = True
        self._replica_wait = store_config.replica_wait
        self._filter_budget = store_config.filter_memory_mb << 20
        # Velocity countings met lately, encoded (store/velocity.py), by identity.
        self._velocity_encodings: dict[int, Any] = {}
        # Lookup calls that also count some countings, by their identities.
        self._counting_calls: dict[int | tuple[int, ...], Any] = {}
        self._scripts: Scripts = register(client)
        # Lookups go through the lean pipelined connection when the store's URL is known
        # (a client passed in, as in tests on fakeredis, is used for everything).
        self._lookup_url = lookup_url
        self._transport: LookupTransport = transport or self._transport_for(client, lookup_url)

    def _transport_for(self, client: aioredis.Redis, url: str | None) -> LookupTransport:
        if url is None:
            return ClientTransport(client, self._scripts.lookup)
        topology, timeout = redis_url.parse(url), self._redis_config.timeout
        if topology.kind == "cluster":
            return ClusterTransport(topology, timeout)
        if topology.kind == "sentinel":
            master = MasterAddress(sentinels(topology, timeout), topology.service)
            return PipeTransport(LookupPipe(topology.node_url("localhost", 6379), timeout,
                                            master))
        return PipeTransport(LookupPipe(url, timeout))

    @guarded
    async def prepare(self) -> None:
        """Check the server version and load the scripts ahead of the first request."""
        info = await self.client.info("server")
        version = str(info.get("redis_version") or info.get("valkey_version") or "")
        parts = re.findall(r"\d+", version)[:2]
        # An unparsable version (a dev build) is given the benefit of the doubt.
        if len(parts) == 2 and (int(parts[0]), int(parts[1])) < MIN_REDIS_VERSION:
            raise StoreIncompatible(f"Redis {version} is too old: 6.2 or newer is needed")
        for script in SCRIPTS:
            await self.client.script_load(script)

    async def _settle(self, key: str) -> None:
        """Wait until the server holding `key` has written the changes made so far to its
        AOF (on a cluster, the master serving the key's slot, which every key of one
        change shares) and until one of its replicas holds them, if it has any; a
        server that refuses INFO (fakeredis) or WAIT is not asked again."""
        if not self._settles:
            return
        client = self.client
        node = cast(RedisCluster, client).get_node_from_key(key) if self.keys.cluster \
            else None

        async def info() -> dict[str, Any]:
            if node is None:
                return await client.info("persistence")
            return await cast(RedisCluster, client).info("persistence", target_nodes=node)

        try:
            await settle(info)
        except InfoRefused:
            self._settles = False
            return
        await self._replicated(key, node)

    async def _replicated(self, key: str, node: ClusterNode | None) -> None:
        """When the master holding `key` has replicas, return once one of them holds
        every change made so far: a failover then loses no acknowledged change. Past
        `store.replica_wait` seconds (0: not waited for), StoreUnavailable (the change
        stands on the master; retrying it is harmless)."""
        if not self._replica_wait:
            return
        cluster = cast(RedisCluster, self.client)
        info = await (self.client.info("replication") if node is None
                      else cluster.info("replication", target_nodes=node))
        if int(info.get("connected_slaves", 0)) < 1:
            return
        commands = _incr_and_waits(self.keys.replicated_beside(key),
                                   self._redis_config.timeout, self._replica_wait)
        try:
            replies = await (self._pipelined(commands) if node is None
                             else _on_node(node, commands))
        except ResponseError:  # WAIT refused (a managed service): asked no more
            self._settles = False
            return
        if max(int(reply) for reply in replies[1:]) < 1:
            raise StoreUnavailable(f"no replica acknowledged the change within "
                                   f"{self._replica_wait:g} s (store.replica_wait; the "
                                   f"change stands on the master, and a failover now "
                                   f"could lose it)")

    async def _pipelined(self, commands: list[tuple[str | int, ...]]) -> list[Any]:
        """`commands` on one connection of the client (a pipeline), their replies."""
        async with self.client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return list(await pipe.execute())

    async def ping(self) -> bool:
        """True when the store answers; False on any fault (never raises one)."""
        try:
            with store_faults():
                return bool(await self.client.ping())
        except StoreUnavailable:
            return False

    async def close(self) -> None:
        """Release the connection pool and the lean connection."""
        self._transport.close()
        await self.client.aclose()

    async def retarget(self, url: str) -> None:
        """Point the store at a server that moved (the embedded one restarted on another
        port): new connections to `url`; calls in flight on the old ones fail."""
        old_client, old_transport = self.client, self._transport
        self.client = connect(self._redis_config, url)
        self._scripts = register(self.client)
        pipe_url = url if self._lookup_url is not None else None
        self._lookup_url = pipe_url
        self._transport = self._transport_for(self.client, pipe_url)
        old_transport.close()
        # The old server is gone: whatever closing its connections raises is moot.
        try:
            with store_faults():
                await old_client.aclose()
        except StoreUnavailable:
            pass


def _incr_and_waits(marker: str, read_timeout: float, seconds: float
                    ) -> list[tuple[str | int, ...]]:
    """INCR `marker`, then WAIT 1 as often as it takes to fill `seconds`, each
    well within one read's timeout (the store's `redis.timeout`): sent at once on one
    connection, they are answered in turn, and once a replica holds the write the
    remaining WAITs answer at once. WAIT covers the writes of its own connection: an
    ack of our INCR, the replication stream being in order, acks the change before it."""
    each = max(1, int(read_timeout * 800))  # ms
    count = max(1, math.ceil(seconds * 1000 / each))
    return [("INCR", marker), *[("WAIT", 1, each)] * count]


async def _on_node(node: ClusterNode, commands: list[tuple[str | int, ...]]) -> list[Any]:
    """`commands` on one connection of a cluster `node`, their replies (a reply that
    is an error is raised; the connection is then dropped, its other replies unread)."""
    connection = node.acquire_connection()
    try:
        await connection.send_packed_command(connection.pack_commands(commands))
        return [await connection.read_response() for _ in commands]
    except BaseException:
        await connection.disconnect()
        raise
    finally:
        node.release(connection)

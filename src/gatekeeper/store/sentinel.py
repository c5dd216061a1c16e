"""A Sentinel-managed master: redis-py's Sentinel client for the store's commands, and
the address of the current master for the lean lookup connection.

Both ask the sentinels at each new connection, so after a failover (the old master's
connections are dropped by the failure, or by Sentinel when it demotes it) the next
connection goes to the promoted replica without a restart. The lean connection also
checks `ROLE` and refuses a server that is not a master (store/pipe.py).
"""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from gatekeeper.redis_url import Topology
from gatekeeper.store.faults import store_faults


def sentinels(topology: Topology, timeout: float) -> Sentinel:
    """The Sentinel group a `redis+sentinel://` URL names."""
    # Over TLS (rediss+sentinel) the sentinels are reached with the same TLS options as
    # the data servers: a group that encrypts one usually encrypts both.
    # No retry against a sentinel: redis-py's default (three, with back-off of up to
    # seconds) made one unreachable sentinel cost each new connection about 4 s (measured
    # with a sentinel refusing the TLS handshake), while the next sentinel in the list is
    # asked anyway.
    own: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
                           "retry": Retry(NoBackoff(), 0), **topology.tls_kwargs()}
    if topology.sentinel_password is not None:
        own["password"] = topology.sentinel_password
        if topology.sentinel_username:
            own["username"] = topology.sentinel_username
    return Sentinel(  # type: ignore[no-untyped-call]
        list(topology.nodes), sentinel_kwargs=own, socket_timeout=timeout)


def master_client(group: Sentinel, topology: Topology, timeout: float) -> aioredis.Redis:
    """A client whose every new connection goes to the master the sentinels name now."""
    tls: dict[str, Any] = topology.tls_kwargs()
    return cast(aioredis.Redis, group.master_for(
        topology.service, redis_class=aioredis.Redis, db=topology.db,
        username=topology.username, password=topology.password, decode_responses=True,
        socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1), **tls))


class MasterAddress:
    """Asks the sentinels for the master's address (for `LookupPipe`)."""

    def __init__(self, group: Sentinel, service: str) -> None:
        self._group = group
        self._service = service

    async def __call__(self) -> tuple[str, int]:
        """The master's (host, port), as the first sentinel that knows it says."""
        # MasterNotFoundError (no sentinel answers, or none names a master) is a fault.
        with store_faults(f"sentinels, master {self._service!r}"):
            host, port = await self._group.discover_master(self._service)
        return str(host), int(port)

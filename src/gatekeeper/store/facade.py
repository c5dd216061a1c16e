"""The Store: allow and block lists in Redis, plus the attempts stream, assembled from
its parts (one module each) over the shared state of `StoreBase`."""

from __future__ import annotations

import redis.asyncio as aioredis

from gatekeeper.config import RedisConfig, StoreConfig
from gatekeeper.store.attempts import AttemptsMixin
from gatekeeper.store.lists import ListsMixin
from gatekeeper.store.loads import LoadsMixin
from gatekeeper.store.pipe import LookupTransport
from gatekeeper.store.policydoc import PolicyDocMixin
from gatekeeper.store.sources import SourcesMixin
from gatekeeper.store.velocity import VelocityMixin


class Store(VelocityMixin, ListsMixin, LoadsMixin, SourcesMixin, AttemptsMixin,
            PolicyDocMixin):
    """Allow and block lists in Redis, plus the attempts stream.

    Every call either answers or raises `StoreUnavailable` (never a raw Redis, socket or
    event-loop error); `ping()` answers False instead.
    """

    def __init__(self, client: aioredis.Redis, redis_config: RedisConfig,
                 store_config: StoreConfig, lookup_url: str | None = None, *,
                 transport: LookupTransport | None = None) -> None:
        """`lookup_url`: the store's URL, for the lean lookup connection (None: lookups
        go through `client`); `transport`: a lookup transport to use instead."""
        super().__init__(client, redis_config, store_config, lookup_url,
                         transport=transport)
        self._probe_cache = {}
        self._filters = {}
        self._filters_version = 0  # 0: no copy was ever taken

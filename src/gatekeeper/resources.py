"""The long-lived things both listeners share: store, upstream pools, metrics, logger.

Built empty at composition time; `lifespan` (a `cleanup_ctx`) starts them and stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import structlog
from aiohttp import web

from gatekeeper.config import Config
from gatekeeper.embedded import EmbeddedRedis
from gatekeeper.observability import Metrics
from gatekeeper.store import Store, StoreUnavailable, connect
from gatekeeper.upstream import Upstream

Logger = structlog.typing.FilteringBoundLogger


class Resources:
    """Shared state of one Gatekeeper process."""

    def __init__(self, config: Config, metrics: Metrics, logger: Logger,
                 redis_client: Any | None = None, housekeeping: bool = True) -> None:
        self.config = config
        self.metrics = metrics
        self.log = logger
        self._client = redis_client
        self._store: Store | None = None
        self._embedded: EmbeddedRedis | None = None
        # Connection pools by upstream or webhook name.
        self.upstreams: dict[str, Upstream] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._housekeeping = housekeeping

    @property
    def store(self) -> Store:
        """The list store (available once started)."""
        if self._store is None:
            raise RuntimeError("resources not started")
        return self._store

    async def start(self) -> None:
        """Start the embedded store if configured, connect, and set up one connection pool
        per upstream and per webhook application."""
        client = self._client
        lookup_url: str | None = None
        if client is None:
            url = self.config.redis.url
            if self.config.redis.embedded:
                self._embedded = EmbeddedRedis(self.config.redis.data_dir,
                                               self.config.redis.server_binary)
                # Started on the loop's own thread, before serving: the child's
                # die-with-parent signal is tied to the thread that forks it.
                url = self._embedded.start().url
                self.log.info("embedded_store_started", data_dir=str(self._embedded.data_dir),
                              port=self._embedded.endpoint.port if self._embedded.endpoint
                              else None)
            client = connect(self.config.redis, url)
            lookup_url = url
        self._store = Store(client, self.config.redis, self.config.store, lookup_url)
        try:
            await self._store.prepare()
        except StoreUnavailable as exc:
            # Not fatal: /readyz reports it and store.on_error governs requests meanwhile.
            self.log.warning("store_unavailable", operation="prepare", error=str(exc))
        if self._housekeeping:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())
        for name, url in [(u.name, u.url) for u in self.config.upstreams] + \
                [(h.name, h.url) for h in self.config.webhooks]:
            self.upstreams[name] = Upstream(url)

    async def _sweep_forever(self) -> None:
        """Tidy expired entries out of Redis (lookups already ignore them)."""
        while True:
            await asyncio.sleep(self.config.store.sweep_interval)
            try:
                removed = await self.store.sweep_expired()
            except StoreUnavailable as exc:
                self.metrics.store_errors.labels("sweep").inc()
                self.log.warning("store_unavailable", operation="sweep", error=str(exc))
                continue
            if removed:
                self.log.info("entries_expired", removed=removed)

    def spawn(self, job: Coroutine[Any, Any, None]) -> None:
        """Run a side job (e.g. an attempts-log append) without holding up the reply."""
        task = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Finish side jobs, close upstream pools and the store, stop the embedded server."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for pool in self.upstreams.values():
            pool.close()
        self.upstreams.clear()
        if self._store is not None:
            await self._store.close()
        if self._embedded is not None:
            self._embedded.stop()
            self.log.info("embedded_store_stopped")

    async def lifespan(self, _app: web.Application) -> AsyncIterator[None]:
        """`cleanup_ctx` entry: start, yield while serving, close."""
        try:
            await self.start()
            yield
        finally:
            await self.close()


RESOURCES = web.AppKey("resources", Resources)

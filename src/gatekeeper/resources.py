"""The long-lived things both listeners share: store, upstream pools, metrics, logger.

Built empty at composition time; `lifespan` (a `cleanup_ctx`) starts them and stops them.
With a store URL, that includes the screening helper process (`bigscreen`), where
requests with large bodies are screened.
The background jobs it starts, none of which may die for good (the expiry sweep, the
supervision of the embedded redis-server, ...), are its base class's: background_jobs.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any, ClassVar

import structlog
from aiohttp import web

from gatekeeper.background_jobs import BackgroundJobs, unexpected
from gatekeeper.bigscreen import ScreenHelper
from gatekeeper.config import Config
from gatekeeper.drain import Drain
from gatekeeper.embedded import EmbeddedRedis
from gatekeeper.facts import load_geocoder
from gatekeeper.observability import Metrics
from gatekeeper.observability.throttle import Throttle
from gatekeeper.rules import Policy
from gatekeeper.store import Store, StoreUnavailable, connect
from gatekeeper.store.packing import INTSET_ENTRIES as INTSET_WANTED
from gatekeeper.supervisor import Backoff, Supervisor
from gatekeeper.upstream import Upstream

if TYPE_CHECKING:
    from gatekeeper.reload import Reloader

Logger = structlog.typing.FilteringBoundLogger

# How often every process looks for packed loads replaced (their filters: store/filter.py).
FILTER_POLL = 2.0
# Seconds between settlings of the counts kept as plain integers (observability.tally)
# and of the collector's time: how far behind a worker's files may be.
SETTLE_INTERVAL = 1.0


class Resources(BackgroundJobs):
    """Shared state of one Gatekeeper process."""

    # Restart back-off of the embedded server (tests slow it down to watch the outage).
    restart_backoff: ClassVar[Backoff] = Backoff()

    def __init__(self, config: Config, metrics: Metrics, logger: Logger,
                 redis_client: Any | None = None, housekeeping: bool = True) -> None:
        self.config = config
        self.metrics = metrics
        self.log = logger
        self._client = redis_client
        self._store: Store | None = None
        self._embedded: EmbeddedRedis | None = None
        self._store_url: str | None = None
        # The URL of the server `redis_client` talks to, when known (tests on a real
        # redis-server set it before start): lookups then take the lean connection and
        # large requests the screening helper, as with a configured store. Without it, a
        # client passed in is used for everything and every request is screened here.
        self.client_url: str | None = None
        # Where large requests are screened (started when the store has a URL).
        self.screen_helper: ScreenHelper | None = None
        # Scopes with a stale list whose on_stale is `closed` (their sends get 503), and
        # the stale lists last seen (a log line at each change); see check_freshness.
        self.stale_closed: frozenset[str] = frozenset()
        # The policy rules in force: the config's, or the admin API's (polled; see
        # refresh_policy), and the stored version they came from (-1: not read yet).
        self.policy: Policy = config.policy
        self._policy_version = -1
        self._preloading = asyncio.Lock()
        self._refreshing = asyncio.Lock()  # refresh_policy, one at a time
        self._stale: set[tuple[str, str]] = set()
        # Connection pools by upstream or webhook name, and the URL each was opened for.
        self.upstreams: dict[str, Upstream] = {}
        self._pool_urls: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._jobs: list[asyncio.Task[None]] = []
        self._housekeeping = housekeeping
        # Proxy requests in flight, and the graceful stop (drain.py).
        self.drain = Drain()
        # Live reload (reload.py), once the process serves (serve.py).
        self.reloader: Reloader | None = None
        self._fault_lines = Throttle()

    def store_fault(self, operation: str, error: str, level: str = "error",
                    **fields: object) -> None:
        """Count a store fault of a request-driven operation and log it, at most one line
        per second per operation (with `left_out`: the faults not logged since the last
        line), so that an outage does not write a line per request."""
        self.metrics.store_errors.labels(operation).inc()
        left_out = self._fault_lines.admit(operation)
        if left_out is not None:
            getattr(self.log, level)("store_unavailable", operation=operation, error=error,
                                     left_out=left_out, **fields)

    @property
    def store(self) -> Store:
        """The list store (available once started)."""
        if self._store is None:
            raise RuntimeError("resources not started")
        return self._store

    @property
    def store_url(self) -> str | None:
        """The store's current URL (it changes when the embedded server moves); None for
        a client passed in without `client_url`."""
        return self._store_url

    @property
    def embedded(self) -> EmbeddedRedis | None:
        """The embedded redis-server this process owns, if any."""
        return self._embedded

    async def start(self) -> None:
        """Start the embedded store if configured, connect, and set up one connection pool
        per upstream and per webhook application."""
        client = self._client
        lookup_url: str | None = None
        loop = asyncio.get_running_loop()
        if client is None:
            url = self.config.redis.url
            if self.config.redis.embedded:
                self._embedded = EmbeddedRedis(self.config.redis.data_dir,
                                               self.config.redis.server_binary)
                # Started on the loop's own thread, before serving: the child's
                # die-with-parent signal is tied to the thread that forks it (restarts
                # happen on this thread too).
                url = self._embedded.start().url
                self.log.info("embedded_store_started", data_dir=str(self._embedded.data_dir),
                              port=self._embedded.endpoint.port if self._embedded.endpoint
                              else None)
                supervisor = Supervisor(self._embedded, self.log, self.restart_backoff)
                self._jobs.append(loop.create_task(self._supervise(supervisor)))
            elif self._parent_owns(url):
                self._jobs.append(loop.create_task(self._follow_parent()))
            client = connect(self.config.redis, url)
            lookup_url = self._store_url = url
        else:
            lookup_url = self._store_url = self.client_url
        self._store = Store(client, self.config.redis, self.config.store, lookup_url)
        try:
            await self._store.prepare()
            limit = await self._store.intset_limit()
            if limit is not None and limit < INTSET_WANTED:
                # Correct either way; only the memory of packed loads is at stake.
                self.log.warning("store_intset_limit_low", set_max_intset_entries=limit,
                                 wanted=INTSET_WANTED)
        except StoreUnavailable as exc:
            # Not fatal: /readyz reports it and store.on_error governs requests meanwhile.
            self.log.warning("store_unavailable", operation="prepare", error=str(exc))
        # Every process (each worker of `run --workers N`) refuses sends on a `closed` stale
        # list itself; only the housekeeping one logs the changes.
        with contextlib.suppress(StoreUnavailable):  # logged; the next check retries
            await self.check_freshness()
        self._jobs.append(loop.create_task(self._freshness_forever()))
        with contextlib.suppress(StoreUnavailable):  # the poll below retries
            await self.refresh_policy()
        self._jobs.append(loop.create_task(self._policy_forever()))
        self._jobs.append(loop.create_task(self._every(FILTER_POLL, self._take_filters,
                                                       "filters")))
        self._jobs.append(loop.create_task(self._every(SETTLE_INTERVAL,
                                                       self._settle_metrics, "metrics")))
        if self._housekeeping:
            self._jobs.append(loop.create_task(self._sweep_forever()))
        self._pools(self.config)
        if lookup_url is not None:
            # Started now, so that the first large request does not wait for its imports.
            helper = ScreenHelper(self.config, self.log)
            try:
                await helper.start()
            except Exception as exc:  # not fatal: the next large request starts one
                unexpected(self.log, "screen_helper_start_failed", exc)
            self.screen_helper = helper

    def _pools(self, config: Config) -> None:
        """One connection pool per upstream and webhook application of `config`: pools
        of names gone or of a changed URL are closed (each busy connection when its
        exchange ends), new ones opened."""
        wanted = {u.name: u.url for u in config.upstreams} | \
            {h.name: h.url for h in config.webhooks}
        for name in list(self.upstreams):
            if self._pool_urls.get(name) != wanted.get(name):
                self.upstreams.pop(name).close()
        for name, url in wanted.items():
            if name not in self.upstreams:
                self.upstreams[name] = Upstream(url)
        self._pool_urls = wanted

    def apply(self, config: Config) -> None:
        """Take up a reloaded config (reload.py checked that nothing it cannot change
        did, and preloaded its policy): its pools, and its policy unless one set
        through the admin API is in force."""
        old, self.config = self.config, config
        self._pools(config)
        if self.policy is old.policy:
            self.policy = config.policy

    async def preload(self, policy: Policy) -> None:
        """Load what `policy`'s rules read before they run on a send (the geocoder's
        data, for quiet hours: seconds of CPU, logged), once, before the policy is
        put in force. In a thread: a policy changed live must not stall the sends
        meanwhile (they get turns of the loop while the import runs); the lock makes
        a second caller wait for the data rather than find it half imported."""
        if not policy.quiet_hours:
            return
        async with self._preloading:
            took = await asyncio.to_thread(load_geocoder)
        if took:
            self.log.info("geocoder_loaded", seconds=round(took, 2))

    def spawn(self, job: Coroutine[Any, Any, None]) -> None:
        """Run a side job (e.g. an attempts-log append) without holding up the reply."""
        task = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Finish side jobs, close upstream pools and the store, stop the embedded server."""
        jobs, self._jobs = self._jobs, []
        for job in jobs:
            job.cancel()
        for job in jobs:
            with contextlib.suppress(asyncio.CancelledError):
                await job
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        # Into the counters (and a worker's files) before the process goes.
        self.metrics.settle()
        if self.screen_helper is not None:
            await self.screen_helper.close()
            self.screen_helper = None
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

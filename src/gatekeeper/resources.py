"""The long-lived things both listeners share: store, upstream pools, metrics, logger.

Built empty at composition time; `lifespan` (a `cleanup_ctx`) starts them and stops them.
With a store URL, that includes the screening helper process (`bigscreen`), where
requests with large bodies are screened.
Background jobs, none of which may die for good: the expiry sweep, the supervision of
the embedded redis-server (restarted with back-off if it dies), and, in a worker of
`run --workers N`, following the parent's embedded server if it moves to another port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, ClassVar

import structlog
from aiohttp import web

from gatekeeper.bigscreen import ScreenHelper
from gatekeeper.config import Config, ConfigError
from gatekeeper.config.policy import policy_from_json
from gatekeeper.drain import Drain
from gatekeeper.embedded import EmbeddedRedis, read_state
from gatekeeper.facts import load_geocoder
from gatekeeper.freshness import DAY, assess
from gatekeeper.observability import Metrics
from gatekeeper.observability.throttle import Throttle
from gatekeeper.rules import Policy
from gatekeeper.store import Store, StoreUnavailable, connect
from gatekeeper.store.packing import INTSET_ENTRIES as INTSET_WANTED
from gatekeeper.supervisor import Backoff, Supervisor
from gatekeeper.times import iso
from gatekeeper.upstream import Upstream

if TYPE_CHECKING:
    from gatekeeper.reload import Reloader

Logger = structlog.typing.FilteringBoundLogger

# How often the embedded server's process is checked (a waitpid, microseconds).
SUPERVISE_INTERVAL = 0.1
# How often a worker re-reads the parent's embedded.json for a moved server.
FOLLOW_INTERVAL = 0.5


# How often every process looks for a policy changed through the admin API.
POLICY_POLL = 1.0
# How often every process looks for packed loads replaced (their filters: store/filter.py).
FILTER_POLL = 2.0
# Seconds between additions of the collector's time to gatekeeper_gc_seconds_total.
GC_COUNT_INTERVAL = 5.0


def _unexpected(log: Logger, event: str, exc: Exception, **fields: object) -> None:
    """Log an exception a background job survives, with its type and where it came from."""
    where = traceback.extract_tb(exc.__traceback__)[-3:]
    log.error(event, error=str(exc) or type(exc).__name__, error_type=type(exc).__name__,
              where=[f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in where],
              **fields)


def _stop_if_cancelled() -> None:
    """Stop a forever loop that was cancelled while a client turned the cancellation
    into an error of its own: close() awaits the loop, which would otherwise sleep on
    (seen: a test's teardown waiting for ever on the sweeper)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Resources:
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
        self._jobs.append(loop.create_task(self._every(GC_COUNT_INTERVAL,
                                                       self._count_collections, "gc")))
        if self._housekeeping:
            self._jobs.append(loop.create_task(self._sweep_forever()))
        self._pools(self.config)
        if lookup_url is not None:
            # Started now, so that the first large request does not wait for its imports.
            helper = ScreenHelper(self.config, self.log)
            try:
                await helper.start()
            except Exception as exc:  # not fatal: the next large request starts one
                _unexpected(self.log, "screen_helper_start_failed", exc)
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
        did): its pools, and its policy unless one set through the admin API is in force."""
        old, self.config = self.config, config
        self._pools(config)
        if self.policy is old.policy:
            self.preload(config.policy)
            self.policy = config.policy

    def preload(self, policy: Policy) -> None:
        """Load what `policy`'s rules read before they run on a send (the geocoder's
        data, for quiet hours): a one-time stall of seconds, logged, here rather than
        on a request."""
        if policy.quiet_hours:
            took = load_geocoder()
            if took:
                self.log.info("geocoder_loaded", seconds=round(took, 2))

    def _parent_owns(self, url: str) -> bool:
        """True in a worker of `run --workers N`: `url` is the embedded server that the
        parent process started (and restarts) for this data directory."""
        endpoint = read_state(self.config.redis.data_dir)
        return endpoint is not None and endpoint.url == url and \
            endpoint.owner_pid == os.getppid()

    async def _sweep_forever(self) -> None:
        """Tidy expired entries out of Redis (lookups already ignore them). Never ends but
        by cancellation: every failure is logged, counted, and the next sweep goes on."""
        while True:
            _stop_if_cancelled()  # a client may have swallowed the cancellation whole
            await asyncio.sleep(self.config.store.sweep_interval)
            try:
                removed = await self.store.sweep_expired()
            except StoreUnavailable as exc:
                _stop_if_cancelled()
                self.metrics.store_errors.labels("sweep").inc()
                self.log.warning("store_unavailable", operation="sweep", error=str(exc))
                continue
            except Exception as exc:  # a bug must not end the sweeps for good
                _stop_if_cancelled()
                self.metrics.store_errors.labels("sweep").inc()
                _unexpected(self.log, "sweep_failed", exc, operation="sweep")
                continue
            if removed:
                self.log.info("entries_expired", removed=removed)

    async def _freshness_forever(self) -> None:
        """check_freshness every `store.sweep_interval`; never ends but by cancellation."""
        while True:
            _stop_if_cancelled()  # a client may have swallowed the cancellation whole
            await asyncio.sleep(self.config.store.sweep_interval)
            try:
                await self.check_freshness()
            except StoreUnavailable:
                _stop_if_cancelled()
                continue  # counted and logged by check_freshness
            except Exception as exc:  # a bug must not end the checks for good
                _stop_if_cancelled()
                self.metrics.store_errors.labels("freshness").inc()
                _unexpected(self.log, "freshness_failed", exc, operation="freshness")

    async def _every(self, seconds: float, job: Callable[[], Awaitable[object]],
                     operation: str) -> None:
        """`job` every `seconds`; never ends but by cancellation. A store fault is
        counted and logged (throttled; the next run retries); a bug is too."""
        while True:
            _stop_if_cancelled()  # a client may have swallowed the cancellation whole
            await asyncio.sleep(seconds)
            try:
                await job()
            except StoreUnavailable as exc:
                _stop_if_cancelled()
                self.store_fault(operation, str(exc), level="warning")
            except Exception as exc:  # a bug must not end the job for good
                _stop_if_cancelled()
                self.metrics.store_errors.labels(operation).inc()
                _unexpected(self.log, f"{operation}_failed", exc, operation=operation)

    async def _count_collections(self) -> None:
        # With --workers, /metrics reads every worker's files: each adds its own.
        self.metrics.count_collections()

    async def _take_filters(self) -> None:
        """Take up packed loads' filters for lookups (store/filter.py), logging a change."""
        if await self.store.refresh_filters():
            loads, size = self.store.filter_copies()
            self.log.info("packed_filters_taken", loads=loads, bytes=size)

    async def _policy_forever(self) -> None:
        """refresh_policy every POLICY_POLL seconds; never ends but by cancellation."""
        while True:
            _stop_if_cancelled()  # a client may have swallowed the cancellation whole
            await asyncio.sleep(POLICY_POLL)
            try:
                await self.refresh_policy()
            except StoreUnavailable:
                _stop_if_cancelled()  # the policy in force stays; the next poll retries
            except Exception as exc:  # a bug must not end the polling for good
                _stop_if_cancelled()
                _unexpected(self.log, "policy_refresh_failed", exc, operation="policy")

    async def refresh_policy(self) -> bool:
        """Take up a policy set (or cleared) through the admin API since the last look;
        whether it changed. A stored policy this process cannot read is logged and the
        one in force stays."""
        version = await self.store.policy_version()
        if version == self._policy_version:
            return False
        stored = await self.store.policy_document()
        self._policy_version = version
        try:
            policy = self.config.policy if stored is None or stored.doc is None else \
                policy_from_json(stored.doc)
        except ConfigError as exc:
            self.log.error("policy_invalid", version=version, error=str(exc))
            return False
        changed = policy is not self.policy
        self.preload(policy)
        self.policy = policy
        if changed:
            self.log.info("policy_changed", version=version,
                          source="config" if policy is self.config.policy else "admin",
                          updated_by=stored.updated_by if stored else None)
        return changed

    async def check_freshness(self) -> None:
        """Measure every list's age against its max_age: the age gauge, one log line when
        a list turns stale (info for `enforce`, warning for `warn`, error for `closed`)
        or fresh again, and the scopes whose sends are refused (`closed`)."""
        try:
            sources = await self.store.sources()
        except StoreUnavailable as exc:
            self.metrics.store_errors.labels("freshness").inc()
            self.log.warning("store_unavailable", operation="freshness", error=str(exc))
            raise
        now = time.time()
        stale: set[tuple[str, str]] = set()
        closed: set[str] = set()
        for source in sources:
            fresh = assess(source, self.config.list_policy(source.scope), now)
            self.metrics.list_age.labels(source.scope, source.name).set(
                fresh.age_seconds or 0.0)
            if fresh.max_age_days is not None:
                self.metrics.list_max_age.labels(source.scope, source.name).set(
                    fresh.max_age_days * DAY)
            key = (source.scope, source.name)
            if fresh.state == "stale":
                stale.add(key)
                if fresh.on_stale == "closed":
                    closed.add(source.scope)
                if key not in self._stale and self._housekeeping:
                    level = {"enforce": "info", "warn": "warning", "closed": "error"}[
                        fresh.on_stale]
                    getattr(self.log, level)(
                        "list_stale", scope=source.scope, list=source.name,
                        origin=source.origin, as_of=iso(source.as_of),
                        age_days=round((fresh.age_seconds or 0.0) / DAY, 1),
                        max_age_days=fresh.max_age_days, on_stale=fresh.on_stale)
            elif key in self._stale and self._housekeeping:
                self.log.info("list_fresh", scope=source.scope, list=source.name,
                              origin=source.origin, as_of=iso(source.as_of))
        self._stale, self.stale_closed = stale, frozenset(closed)
        if self._housekeeping and sources:
            named = [(source.name, source.scope) for source in sources]
            for (name, scope), size in zip(named, await self.store.counts(named),
                                           strict=True):
                self.metrics.list_entries.labels(scope, name).set(size)

    async def _supervise(self, supervisor: Supervisor) -> None:
        """Restart the embedded server whenever it dies; count each restart, and point the
        store at the new port if the old one was taken meanwhile."""
        counted = 0
        while True:
            _stop_if_cancelled()  # a client may have swallowed the cancellation whole
            await asyncio.sleep(SUPERVISE_INTERVAL)
            try:
                supervisor.step()
                if supervisor.restarts != counted:
                    self.metrics.store_restarts.inc(supervisor.restarts - counted)
                    counted = supervisor.restarts
                endpoint = supervisor.server.endpoint
                if endpoint is not None and endpoint.url != self._store_url:
                    await self._retarget(endpoint.url, endpoint.port)
            except Exception as exc:  # supervision must outlive any surprise
                _unexpected(self.log, "embedded_supervision_failed", exc)

    async def _follow_parent(self) -> None:
        """In a worker: the parent restarts the embedded server, on the same port unless
        it was taken; then its embedded.json names the new one, which the store follows."""
        while True:
            _stop_if_cancelled()  # a client may have swallowed the cancellation whole
            await asyncio.sleep(FOLLOW_INTERVAL)
            try:
                endpoint = read_state(self.config.redis.data_dir)
                if endpoint is not None and endpoint.url != self._store_url:
                    await self._retarget(endpoint.url, endpoint.port)
            except Exception as exc:  # following must outlive any surprise
                _unexpected(self.log, "embedded_follow_failed", exc)

    async def _retarget(self, url: str, port: int) -> None:
        await self.store.retarget(url)
        self._store_url = url
        self.log.warning("store_retargeted", port=port)

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

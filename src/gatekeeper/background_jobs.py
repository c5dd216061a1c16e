"""The background jobs of a Gatekeeper process (`Resources` runs them), none of which may
die for good: the expiry sweep, the freshness checks, the polls for a policy changed
through the admin API and for packed loads' filters, the count of the collector's time,
the supervision of the embedded redis-server (restarted with back-off if it dies), and,
in a worker of `run --workers N`, following the parent's embedded server if it moves to
another port.
"""

from __future__ import annotations

import asyncio
import os
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

from gatekeeper.config import ConfigError
from gatekeeper.config.policy import policy_from_json
from gatekeeper.embedded import read_state
from gatekeeper.freshness import DAY, assess
from gatekeeper.store import StoreUnavailable
from gatekeeper.supervisor import Supervisor
from gatekeeper.times import iso

if TYPE_CHECKING:
    from gatekeeper.config import Config
    from gatekeeper.observability import Metrics
    from gatekeeper.rules import Policy
    from gatekeeper.store import Store

Logger = structlog.typing.FilteringBoundLogger

# How often the embedded server's process is checked (a waitpid, microseconds).
SUPERVISE_INTERVAL = 0.1
# How often a worker re-reads the parent's embedded.json for a moved server.
FOLLOW_INTERVAL = 0.5


# How often every process looks for a policy changed through the admin API.
POLICY_POLL = 1.0


def unexpected(log: Logger, event: str, exc: Exception, **fields: object) -> None:
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


class BackgroundJobs:
    """The background jobs that `Resources` (a subclass) starts, and the checks they
    repeat, also called on their own (at start, and by the admin API)."""

    if TYPE_CHECKING:  # what the jobs use of Resources (resources.py)
        config: Config
        metrics: Metrics
        log: Logger
        policy: Policy
        stale_closed: frozenset[str]
        _policy_version: int
        _refreshing: asyncio.Lock
        _stale: set[tuple[str, str]]
        _housekeeping: bool
        _store_url: str | None

        @property
        def store(self) -> Store: ...

        def store_fault(self, operation: str, error: str, level: str = "error",
                        **fields: object) -> None: ...

        async def preload(self, policy: Policy) -> None: ...

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
                unexpected(self.log, "sweep_failed", exc, operation="sweep")
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
                unexpected(self.log, "freshness_failed", exc, operation="freshness")

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
                unexpected(self.log, f"{operation}_failed", exc, operation=operation)

    async def _settle_metrics(self) -> None:
        # With --workers, /metrics reads every worker's files: each settles its own.
        self.metrics.settle()

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
                unexpected(self.log, "policy_refresh_failed", exc, operation="policy")

    async def refresh_policy(self) -> bool:
        """Take up a policy set (or cleared) through the admin API since the last look;
        whether it changed. A stored policy this process cannot read is logged and the
        one in force stays. One at a time (the poll, PUT and DELETE /policy): an older
        look must not put its policy in force after a newer one."""
        async with self._refreshing:
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
            await self.preload(policy)
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
                unexpected(self.log, "embedded_supervision_failed", exc)

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
                unexpected(self.log, "embedded_follow_failed", exc)

    async def _retarget(self, url: str, port: int) -> None:
        await self.store.retarget(url)
        self._store_url = url
        self.log.warning("store_retargeted", port=port)

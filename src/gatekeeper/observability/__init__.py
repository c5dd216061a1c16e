"""Logging and metrics: structlog set-up (secrets redacted, phone numbers masked, stdlib
`logging` routed through the same steps; see `logs`), Prometheus metrics on an injected
registry, and the middleware that reads each request's recorded outcome once to log and
count it."""

from __future__ import annotations

import collections
import os
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.multiprocess import MultiProcessCollector

from gatekeeper.numbers import mask_number
from gatekeeper.observability.logs import (
    NEVER_MASKED,
    PREFIX_SHOWN_DIGITS,
    REDACTED,
    configure_logging,
    mask_entry,
    mask_phone_numbers,
    mask_text,
    numbers_shown,
    redact_secrets,
    redact_text,
)
from gatekeeper.observability.tally import Settler, Tally
from gatekeeper.policy import Decision

__all__ = [
    "NEVER_MASKED", "OUTCOME", "PASSTHROUGH", "PREFIX_SHOWN_DIGITS", "REDACTED",
    "REQUEST_ID", "Metrics", "Outcome", "Passthrough", "configure_logging", "mask_entry",
    "mask_phone_numbers", "mask_text", "numbers_shown", "observe", "redact_secrets",
    "redact_text", "request_id_for", "share_metrics", "with_request_id",
]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def share_metrics(directory: str) -> None:
    """Have this process's metrics written to files in `directory`, which every worker of
    one `run --workers N` shares, so that one /metrics sums them all (prometheus_client's
    multiprocess mode). Call in each worker before its metrics are created, and give the
    same directory to `Metrics`."""
    # prometheus_client reads its multiprocess directory from the environment only.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    # prometheus_client picks its value storage once, at import time, from the
    # environment; the workers are forked after that import.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


class CollectorClock:
    """A `gc.callbacks` hook timing Python's cyclic garbage collector, by generation.
    It only adds to plain floats: taking a metric's lock inside a collection that began
    while this thread held that lock would deadlock."""

    __slots__ = ("_started", "seconds")

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._started


class Metrics:
    """Gatekeeper's Prometheus metrics, registered on the registry given."""

    def __init__(self, registry: CollectorRegistry, shared_dir: str | None = None) -> None:
        self.registry = registry
        # Ahead of every metric: whoever reads the registry reads settled counts.
        registry.register(Settler(self.settle))
        # What /metrics shows: this registry, or every worker's files (`share_metrics`).
        self.exposed = registry
        if shared_dir is not None:
            self.exposed = CollectorRegistry()
            self.exposed.register(Settler(self.settle))
            MultiProcessCollector(self.exposed, shared_dir)  # type: ignore[no-untyped-call]
        self.decisions = Counter(
            "gatekeeper_decisions_total", "Destination decisions by action and reason.",
            ["upstream", "channel", "direction", "action", "reason"], registry=registry)
        self.request_duration = Histogram(
            "gatekeeper_request_duration_seconds", "Time to answer a proxied request.",
            ["upstream", "decision"], registry=registry)
        self.upstream_duration = Histogram(
            "gatekeeper_upstream_duration_seconds", "Time the upstream took to answer.",
            ["upstream"], registry=registry)
        self.upstream_errors = Counter(
            "gatekeeper_upstream_errors_total", "Upstream requests that got no reply.",
            ["upstream", "kind"], registry=registry)
        self.policy_hits = Counter(
            "gatekeeper_policy_rule_hits_total", "Destinations a policy rule (country, "
            "number_type, quiet_hours) blocked or, in monitor, would have blocked.",
            ["rule", "outcome"], registry=registry)
        self.store_errors = Counter(
            "gatekeeper_store_errors_total", "Store operations that failed.",
            ["operation"], registry=registry)
        self.store_restarts = Counter(
            "gatekeeper_store_restarts_total", "Restarts of the embedded redis-server after "
            "it died.", registry=registry)
        self.list_age = Gauge(
            "gatekeeper_list_age_seconds", "Age of each list's data (now minus the as_of "
            "date its last import recorded), by scope and list.", ["scope", "list"],
            registry=registry, multiprocess_mode="max")
        self.list_max_age = Gauge(
            "gatekeeper_list_max_age_seconds", "The age at which each list turns stale "
            "(its import's max_age, else the config's), where one is set.",
            ["scope", "list"], registry=registry, multiprocess_mode="max")
        # Set by the housekeeping process only; gone with it (`livemax`).
        self.list_entries = Gauge(
            "gatekeeper_list_entries", "Entries in each imported list (a list with a load "
            "record), by scope and list.", ["scope", "list"], registry=registry,
            multiprocess_mode="livemax")
        self.config_reloads = Counter(
            "gatekeeper_config_reloads_total", "Config reloads (SIGHUP, POST "
            "/admin/v1/reload) by outcome: applied or refused.", ["outcome"],
            registry=registry)
        # With --workers each worker reports itself alive (its file is dropped when it
        # dies) and how many there should be; the parent counts the restarts.
        self.workers_alive = Gauge(
            "gatekeeper_workers_alive", "Proxy worker processes running.",
            registry=registry, multiprocess_mode="livesum")
        self.workers_expected = Gauge(
            "gatekeeper_workers_expected", "Proxy worker processes there should be.",
            registry=registry, multiprocess_mode="max")
        self.worker_restarts = Counter(
            "gatekeeper_worker_restarts_total", "Workers restarted after they died, by "
            "cause: exit (an exit code) or signal.", ["cause"], registry=registry)
        self.build_info = Gauge(
            "gatekeeper_build_info", "Always 1; the running version in its label.",
            ["version"], registry=registry, multiprocess_mode="max")
        self.gc_seconds = Counter(
            "gatekeeper_gc_seconds_total", "Seconds a serving process spent in Python's "
            "cyclic garbage collector, by generation collected (0 young, 2 full).",
            ["generation"], registry=registry)
        # Installed by `serve` (gc.callbacks); counted by `settle`.
        self.collector_clock = CollectorClock()
        self._gc_children = [self.gc_seconds.labels(str(g)) for g in range(3)]
        self._gc_counted = [0.0, 0.0, 0.0]
        # Series that exist from the start at 0, so that rate() and increase() see their
        # first event.
        for outcome in ("applied", "refused"):
            self.config_reloads.labels(outcome)
        for cause in ("exit", "signal"):
            self.worker_restarts.labels(cause)
        # Counted on the send path as plain integers, settled when read (`tally`).
        self._decisions_tally = Tally(self.decisions)
        self._policy_hits_tally = Tally(self.policy_hits)
        self._decided = self._decisions_tally.pending
        self._policy_hit = self._policy_hits_tally.pending
        # Monitor hits by a request's whole (kind, count) tuple, one dict add a request
        # (the same tuple most of the night); spread over their kinds when settled.
        self._monitored: dict[tuple[tuple[str, int], ...], int] = {}
        # Label children looked up once: `labels()` takes a lock and builds a key each call.
        self._timed: dict[tuple[str, str], Any] = {}
        self._upstream_timed: dict[str, Any] = {}

    def settle(self) -> None:
        """Add what the send path counted since the last call, and the collector's
        time, to their metrics (on the loop, never from inside a collection)."""
        monitored = self._monitored
        for hits, requests in monitored.items():
            for kind, count in hits:
                self.policy_hit(kind, "monitor", count * requests)
        monitored.clear()
        self._decisions_tally.settle()
        self._policy_hits_tally.settle()
        for generation, total in enumerate(self.collector_clock.seconds):
            counted = self._gc_counted[generation]
            if total > counted:
                self._gc_children[generation].inc(total - counted)
                self._gc_counted[generation] = total

    def decided(self, upstream: str, channel: str, direction: str, action: str,
                reason: str, count: int = 1) -> None:
        """Count `count` destination decisions (one, usually)."""
        key = (upstream, channel, direction, action, reason)
        pending = self._decided
        pending[key] = pending.get(key, 0) + count

    def policy_hit(self, rule: str, outcome: str, count: int = 1) -> None:
        """Count `count` destinations a policy rule blocked (or would have, `monitor`)."""
        key = (rule, outcome)
        pending = self._policy_hit
        pending[key] = pending.get(key, 0) + count

    def monitored(self, hits: tuple[tuple[str, int], ...]) -> None:
        """Count destinations policy rules would have blocked but only monitor: `hits`
        is (rule kind, destinations) pairs, one request's."""
        pending = self._monitored
        pending[hits] = pending.get(hits, 0) + 1

    def upstream_answered(self, upstream: str, seconds: float) -> None:
        """Time one upstream exchange."""
        child = self._upstream_timed.get(upstream)
        if child is None:
            child = self._upstream_timed[upstream] = self.upstream_duration.labels(upstream)
        child.observe(seconds)

    def answered(self, upstream: str, decision: str, seconds: float) -> None:
        """Time one proxied request."""
        key = (upstream, decision)
        child = self._timed.get(key)
        if child is None:
            child = self._timed[key] = self.request_duration.labels(*key)
        child.observe(seconds)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the proxy did with one intercepted request; recorded once on the request."""

    upstream: str                   # the upstream's (or inbound webhook's) name
    channel: str
    action: str                     # forwarded | partial | rejected | skipped | monitored
    reasons: tuple[str, ...]        # one per distinct destination
    scopes: tuple[str, ...] = ()
    blocked: tuple[Decision, ...] = ()
    direction: str = "outbound"     # outbound sends, inbound calls and messages


@dataclass(frozen=True, slots=True)
class Passthrough:
    """A request forwarded on a mount without being checked (not a send route)."""

    upstream: str


REQUEST_ID = web.RequestKey("request_id", str)
OUTCOME = web.RequestKey("outcome", Outcome)
PASSTHROUGH = web.RequestKey("passthrough", Passthrough)


def request_id_for(request: web.Request) -> str:
    """The caller's `X-Request-Id` when it is sane, else a new one."""
    given = request.headers.get("X-Request-Id", "")
    # 128 random bits like a UUID4, without its getrandom() call per request; `random`
    # reseeds itself in forked workers.
    return given if _REQUEST_ID.match(given) else f"{random.getrandbits(128):032x}"


@web.middleware
async def with_request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Middleware for the admin listener: request id in and out."""
    request_id = request[REQUEST_ID] = request_id_for(request)
    response = await handler(request)
    if not response.prepared:
        response.headers["X-Request-Id"] = request_id
    return response


def observe(metrics: Metrics, logger: structlog.typing.FilteringBoundLogger,
            mask_numbers: bool, access_log: bool = False) -> Middleware:
    """Middleware: request id in and out, then log and count the recorded outcome.

    Blocked attempts are always logged; the per-request `request` event only with
    `log.access` (it costs more than the rest of this middleware together). Without
    `mask_numbers`, events logged while serving a request show numbers even if the
    process's logging masks them.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = request[REQUEST_ID] = request_id_for(request)
        started = time.perf_counter()
        response = await handler(request)
        if not response.prepared:
            response.headers["X-Request-Id"] = request_id
        elapsed = time.perf_counter() - started
        outcome = request.get(OUTCOME)
        if outcome is not None:
            _record(outcome, request_id, elapsed, metrics, logger, mask_numbers)
            label = outcome.action
            upstream = outcome.upstream
        else:
            passthrough = request.get(PASSTHROUGH)
            upstream = passthrough.upstream if passthrough else "none"
            label = "passthrough" if passthrough else "error"
        metrics.answered(upstream, label, elapsed)
        if access_log:
            logger.info("request", request_id=request_id, method=request.method,
                        path=request.path, upstream=upstream, decision=label,
                        status=response.status, duration_ms=round(elapsed * 1000, 3))
        return response

    if mask_numbers:
        return middleware

    @web.middleware
    async def unmasked(request: web.Request, handler: Handler) -> web.StreamResponse:
        with numbers_shown():
            return await middleware(request, handler)

    return unmasked


def _record(outcome: Outcome, request_id: str, elapsed: float, metrics: Metrics,
            logger: structlog.typing.FilteringBoundLogger, mask_numbers: bool) -> None:
    reasons = outcome.reasons
    # Equal reasons in one step: a batch of 10,000 recipients would otherwise hold the
    # event loop for ~5 ms here.
    counted = ((r, 1) for r in reasons) if len(reasons) < 8 else \
        collections.Counter(reasons).items()
    for reason, count in counted:
        metrics.decided(outcome.upstream, outcome.channel, outcome.direction, outcome.action,
                        reason, count)
    for decision in outcome.blocked:
        if decision.rule is not None:
            metrics.policy_hit(decision.rule.kind, "block")
        cause = decision.cause
        number, entry = decision.number, cause.entry if cause else None
        if mask_numbers:
            number = mask_number(number)
            # A prefix's digits past the masked number's head would, with its visible
            # tail, give the number away: the prefix shows no more than that head.
            entry = entry and mask_entry(entry, shown=len(number.partition("*")[0]) - 1)
        logger.warning(
            "destination_blocked", request_id=request_id, upstream=outcome.upstream,
            channel=outcome.channel, direction=outcome.direction, scopes=list(outcome.scopes),
            matched_entry=entry, matched_scope=cause.scope if cause else None,
            list=cause.list if cause else None,
            action="removed" if outcome.action == "partial" else outcome.action,
            number=number)

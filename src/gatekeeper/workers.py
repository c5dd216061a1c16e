"""`run --workers N`: the parent process.

It pre-forks N workers that share the proxy and admin ports (SO_REUSEPORT), owns the
embedded store (restarting it if it dies), and keeps the workers running:

- A worker that dies is logged with its exit cause (`worker_exited`), counted
  (`gatekeeper_worker_restarts_total{cause}`) and restarted with back-off
  (`worker_restarted`); the others, and so both listeners, serve on meanwhile.
- A worker that keeps dying soon after it starts (a port taken, a broken environment)
  is a failure the parent cannot repair: it stops the others and exits 1
  (`workers_failing`), so that a supervisor (systemd, Kubernetes) sees the failure.
- SIGHUP is passed on: every worker reloads its config from the file (reload.py).
- SIGTERM/SIGINT is passed on: every worker drains (drain.py); what still runs after
  `config.stop_seconds` and a margin is killed. An operator's stop exits 0.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.process import BaseProcess

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import mark_process_dead

from gatekeeper.config import Config, ConfigError, load_config
from gatekeeper.embedded import EmbeddedRedis, exit_fields
from gatekeeper.facts import load_geocoder
from gatekeeper.observability import Metrics, configure_logging, share_metrics
from gatekeeper.reload import restart_needed
from gatekeeper.resources import Resources
from gatekeeper.serve import hold_sighup, run_loop, serve
from gatekeeper.supervisor import Backoff, Supervisor

Logger = structlog.typing.FilteringBoundLogger

EXIT_FAILED = 1
# A worker that dies before it has run this long died "early"; this many early deaths
# in a row of one worker and the parent gives up.
STABLE_SECONDS = 10.0
EARLY_DEATHS = 5
# Beyond config.stop_seconds, what a stop waits before killing what is left.
STOP_MARGIN = 5.0
POLL = 0.1


class ParentMetrics:
    """The parent's own counts, written into the workers' shared metrics directory (where
    a worker's /metrics sums them with theirs); made at the first count."""

    def __init__(self, metrics_dir: str) -> None:
        self._dir = metrics_dir
        self._metrics: Metrics | None = None

    def __call__(self) -> Metrics:
        if self._metrics is None:
            share_metrics(self._dir)
            self._metrics = Metrics(CollectorRegistry(), self._dir)
        return self._metrics


class ParentSupervision:
    """The parent owns the embedded server: it restarts it (the workers reconnect, or
    follow embedded.json to a new port), logs and counts each restart. Call `step()`
    every ~0.1 s from the parent's main thread."""

    def __init__(self, embedded: EmbeddedRedis, metrics: Callable[[], Metrics],
                 log: Logger) -> None:
        self._supervisor = Supervisor(embedded, log, Resources.restart_backoff)
        self._metrics = metrics
        self._counted = 0
        self._log = log

    def step(self) -> None:
        """Check the server; restart it when due; count a restart that succeeded."""
        try:
            self._supervisor.step()
            if self._supervisor.restarts != self._counted:
                self._metrics().store_restarts.inc(self._supervisor.restarts - self._counted)
                self._counted = self._supervisor.restarts
        except Exception as exc:  # the parent must outlive any surprise
            self._log.error("embedded_supervision_failed", error=str(exc),
                            error_type=type(exc).__name__)


@dataclass
class _Slot:
    """One worker's place: its process now, and its record of deaths."""

    index: int
    process: BaseProcess | None = None
    started: float = 0.0
    due: float = 0.0          # when a dead worker is started again
    early: int = 0            # early deaths in a row
    delay: float = field(default=0.0)


# Blocked in the parent while it forks a worker: a signal sent to a worker that has
# only just started stays pending until the worker has its own handlers, rather than
# running the parent's (copied by the fork) or the default action.
_FORK_BLOCKED = frozenset({signal.SIGHUP, signal.SIGTERM, signal.SIGINT})


def _worker(config: Config, index: int, workers: int, metrics_dir: str) -> None:
    # The parent's handlers came with the fork: a worker still starting keeps a SIGHUP
    # for serve() and stops at once on SIGTERM/SIGINT.
    hold_sighup()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORK_BLOCKED)
    configure_logging(config.log)
    share_metrics(metrics_dir)
    with contextlib.suppress(KeyboardInterrupt):
        run_loop(serve(config, index, workers, metrics_dir))


class Pool:
    """The parent's loop (see the module docstring)."""

    backoff = Backoff(first=0.5, limit=10.0, stable_after=STABLE_SECONDS)

    def __init__(self, config: Config, workers: int) -> None:
        self.config = config
        self.workers = workers
        self.log: Logger = structlog.get_logger("gatekeeper")
        self._context = multiprocessing.get_context("fork")
        self._slots = [_Slot(i, delay=self.backoff.first) for i in range(workers)]
        self._stopping = False
        self._reload = False
        self._metrics_dir = ""
        self._metrics: ParentMetrics | None = None

    def run(self) -> int:
        """Serve until stopped; the exit status."""
        # First: a SIGHUP while starting (the store, the geocoder, the workers) must not
        # end the parent, and a stop then must not be lost.
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        embedded: EmbeddedRedis | None = None
        if self.config.redis.embedded:
            embedded = EmbeddedRedis(self.config.redis.data_dir,
                                     self.config.redis.server_binary)
            url = embedded.start().url
            self.config = replace(self.config, redis=replace(self.config.redis, url=url))
        # Every worker counts into files here; a worker's /metrics sums them.
        self._metrics_dir = tempfile.mkdtemp(prefix="gatekeeper-metrics-")
        self._metrics = ParentMetrics(self._metrics_dir)
        supervision = None if embedded is None else \
            ParentSupervision(embedded, self._metrics, self.log)
        if self.config.policy.quiet_hours:
            # Once, before the fork: the workers inherit it instead of each loading
            # ~100 MB for seconds (their pages shared until written).
            self.log.info("geocoder_loaded", seconds=round(load_geocoder(), 2))
        try:
            for slot in self._slots:
                if not self._stopping:  # stopped while starting: start no more
                    self._start(slot)
            failed = self._loop(supervision)
            return EXIT_FAILED if failed else 0
        finally:
            self._finish()
            shutil.rmtree(self._metrics_dir, ignore_errors=True)
            if embedded is not None:
                embedded.stop()

    def _on_stop(self, _signum: int, _frame: object) -> None:
        self._stopping = True

    def _on_reload(self, _signum: int, _frame: object) -> None:
        self._reload = True

    def _start(self, slot: _Slot) -> None:
        process = self._context.Process(
            target=_worker, args=(self.config, slot.index, self.workers, self._metrics_dir),
            daemon=False)
        signal.pthread_sigmask(signal.SIG_BLOCK, _FORK_BLOCKED)
        try:
            process.start()
        finally:  # what came meanwhile for the parent is delivered now
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORK_BLOCKED)
        slot.process, slot.started = process, time.monotonic()

    def _live(self) -> list[BaseProcess]:
        return [s.process for s in self._slots
                if s.process is not None and s.process.is_alive()]

    def _loop(self, supervision: ParentSupervision | None) -> bool:
        """Until stopped (False) or failing beyond repair (True)."""
        while not self._stopping:
            sentinels = [s.process.sentinel for s in self._slots if s.process is not None]
            multiprocessing.connection.wait(sentinels, timeout=POLL)
            if self._reload:
                self._reload = False
                self._pass_reload()
            now = time.monotonic()
            for slot in self._slots:
                if slot.process is not None and slot.process.exitcode is not None \
                        and not self._stopping and self._died(slot, now):
                    self.log.error("workers_failing", worker=slot.index,
                                   early_deaths=slot.early,
                                   message="a worker keeps dying at start; stopping")
                    return True
                if slot.process is None and now >= slot.due and not self._stopping:
                    self._start(slot)
                    self.log.warning("worker_restarted", worker=slot.index,
                                     pid=slot.process.pid if slot.process else None)
            if supervision is not None and not self._stopping:
                supervision.step()
        return False

    def _died(self, slot: _Slot, now: float) -> bool:
        """Log and count a worker's death and schedule its restart; True when it keeps
        dying at start (the parent gives up)."""
        process = slot.process
        assert process is not None
        assert process.exitcode is not None
        code = process.exitcode
        fields = exit_fields(code)
        uptime = now - slot.started
        if uptime >= STABLE_SECONDS:
            slot.early, slot.delay = 0, self.backoff.first
        else:
            slot.early += 1
        if process.pid is not None:
            mark_process_dead(process.pid, self._metrics_dir)  # type: ignore[no-untyped-call]
        assert self._metrics is not None
        self._metrics().worker_restarts.labels("signal" if code < 0 else "exit").inc()
        slot.process, slot.due = None, now + slot.delay
        self.log.error("worker_exited", worker=slot.index, pid=process.pid,
                       uptime=round(uptime, 3), restart_in=round(slot.delay, 3), **fields)
        slot.delay = self.backoff.after(slot.delay)
        return slot.early >= EARLY_DEATHS

    def _pass_reload(self) -> None:
        """SIGHUP to every worker (each reloads from the file); when the file is one
        they take up, the parent keeps it too: its stop time, and the config of workers
        it starts from now on."""
        try:
            new = load_config(self.config.source)
        except (ConfigError, OSError):
            pass  # the workers log why they refuse it
        else:
            if not restart_needed(self.config, new):
                self.config = replace(new, redis=self.config.redis)
        for process in self._live():
            if process.pid is not None:
                os.kill(process.pid, signal.SIGHUP)
        self.log.info("reload_passed_on", workers=len(self._live()))

    def _finish(self) -> None:
        """Stop every worker (each drains), killing what outlives the stop time."""
        for process in self._live():
            if process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.config.stop_seconds + STOP_MARGIN
        for slot in self._slots:
            if slot.process is None:
                continue
            slot.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                self.log.error("worker_killed", worker=slot.index, pid=slot.process.pid,
                               message="still running after the stop time")
                slot.process.kill()
                slot.process.join(timeout=5)

"""Serving in one process (alone, or as a worker of `run --workers N`): the listeners,
the start-up banner, SIGTERM/SIGINT (drain, then stop: drain.py) and SIGHUP (reload:
reload.py)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import platform
import signal
import threading
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

import structlog

from gatekeeper import __version__
from gatekeeper.app import create_app
from gatekeeper.config import Config
from gatekeeper.fdlimit import check_fd_limit
from gatekeeper.observability import Metrics
from gatekeeper.reload import Reloader
from gatekeeper.resources import RESOURCES
from gatekeeper.server import start_listeners

GC_YOUNG_THRESHOLD = 20_000
"""Net new container objects between young collections in a serving process."""


def tune_collector(metrics: Metrics) -> None:
    """Set the garbage collector as a serving process wants it (once started), and time
    it (gatekeeper_gc_seconds_total)."""
    # Start-up objects (config, routes, presets, the geocoder's data) never die: keep
    # them out of the collector's way, so full collections stay short under load.
    gc.freeze()
    # A request allocates hundreds of container objects and frees nearly all by
    # reference counting; at the default 700 the young generation was collected ~190
    # times a second, promoting the requests in flight, so that full collections (100 ms
    # each, through the per-process caches of numbers) ran every second: 32 us of CPU a
    # request with lists, 65 with the full policy, and most of the closed loop's p99
    # (bench.run, README "Garbage collection").
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    if metrics.collector_clock not in gc.callbacks:
        gc.callbacks.append(metrics.collector_clock)


def store_kind(config: Config) -> str:
    """What the store is, for the banner (never its address or credentials)."""
    if config.redis.embedded:
        return "embedded"
    return urlsplit(config.redis.url).scheme or "redis"


async def serve(config: Config, worker: int = 0, workers: int = 1,
                metrics_dir: str | None = None) -> None:
    """Serve until SIGINT/SIGTERM, then drain and stop. With several workers, each
    serves both listeners on shared ports (SO_REUSEPORT): the admin listener outlives
    any one worker; worker 0 alone runs the housekeeping (expiry sweeps)."""
    log = structlog.get_logger("gatekeeper").bind(worker=worker) if workers > 1 else \
        structlog.get_logger("gatekeeper")
    check_fd_limit(config, log)  # before the first connection, so its warning comes first
    app = create_app(config, housekeeping=worker == 0, metrics_dir=metrics_dir, logger=log)
    resources = app[RESOURCES]
    await resources.preload(resources.policy)  # before the listeners take the first request
    # Both listeners with their head, body and idle timeouts (server.py); this starts the
    # resources (and the embedded store) first.
    listeners = await start_listeners(config, app, reuse_port=workers > 1)
    try:
        metrics = resources.metrics
        metrics.workers_alive.set(1)
        metrics.workers_expected.set(workers)
        metrics.build_info.labels(__version__).set(1)

        reloader = resources.reloader
        assert reloader is not None  # made by create_app
        if workers > 1:
            parent = os.getppid()
            reloader.workers = workers
            reloader.fan_out = lambda: os.kill(parent, signal.SIGHUP)
        if config.admin.key is None and worker == 0:
            log.warning("admin_key_missing", message="the admin list API refuses every call "
                        f"until a key is set ({config.admin.key_source})")
        tune_collector(metrics)
        scheme = "https" if config.proxy.tls else "http"
        proxy, admin = config.proxy.listen, config.admin.listen
        log.info("gatekeeper_started", version=__version__,
                 python=platform.python_version(), pid=os.getpid(), workers=workers,
                 proxy=f"{scheme}://{proxy.host}:{listeners.proxy_port}",
                 admin=f"http://{admin.host}:{listeners.admin_port}",
                 mounts={u.mount: u.url for u in config.upstreams},
                 webhooks=[h.path for h in config.webhooks], store=store_kind(config),
                 policy_scopes=sorted(config.policy.scopes),
                 drain_timeout=config.proxy.drain_timeout, stop_seconds=config.stop_seconds,
                 config=config.source)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        handle_sighup(loop, lambda: resources.spawn(_reload(reloader, "SIGHUP")))
        await stop.wait()
        current = resources.config  # a reload may have changed it
        log.info("gatekeeper_draining", in_flight=resources.drain.requests,
                 drain_timeout=current.proxy.drain_timeout)
        report = await listeners.drain(resources.drain, current.proxy.drain_timeout,
                                       current.stop_seconds - current.proxy.drain_timeout)
        log.info("gatekeeper_stopping", **asdict(report))
    finally:
        with contextlib.suppress(ValueError):  # not installed if starting failed
            gc.callbacks.remove(resources.metrics.collector_clock)
        hold_sighup()  # the loop is going: one now must not reach it
        await listeners.stop()


# A SIGHUP that comes before `serve` handles it (a process still starting) is kept here
# rather than ending the process (its default action).
_EARLY_SIGHUP = threading.Event()


def hold_sighup() -> None:
    """Keep a SIGHUP that arrives before serving starts, for `handle_sighup` to act on."""
    signal.signal(signal.SIGHUP, lambda _signum, _frame: _EARLY_SIGHUP.set())


def handle_sighup(loop: asyncio.AbstractEventLoop, act: Callable[[], None]) -> None:
    """From now on, `act` on the loop once per SIGHUP; once now if one came while held.

    A Python-level handler, not `loop.add_signal_handler`: that one also reads the
    loop's wake-up pipe, so a SIGHUP caught by the hold handler just before it was
    installed reached both, and one SIGHUP reloaded twice. Python runs exactly one
    handler per signal (whichever is installed when it runs), in the loop's thread."""
    signal.signal(signal.SIGHUP, lambda _signum, _frame: loop.call_soon_threadsafe(act))
    if _EARLY_SIGHUP.is_set():  # asked while starting: the file may have changed since
        _EARLY_SIGHUP.clear()
        act()


async def _reload(reloader: Reloader, origin: str) -> None:
    await reloader.reload(origin)  # logged and counted there


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed (a faster event loop), else asyncio's."""
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)

"""Live reload (SIGHUP, `POST /admin/v1/reload`): read the config file again, validate
it, and swap it in without dropping a connection or an in-flight request.

A request in flight finishes on the config it started with; the next request on any
connection, kept-alive ones included, gets the new one (server.py `GuardedServer.use`).
The store, its connections and the screening helper stay; upstream pools follow the new
upstreams (resources.py `apply`). What a running process cannot change is refused with
the key named, and the old config stays: the listeners (address, TLS, timeouts), the
store connection (`redis.*`) and logging (`log.*`: loggers are bound at start). With
`--workers N` every worker reloads itself from the same file (the parent passes SIGHUP
on), so all take the same config or all refuse it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Protocol

from aiohttp import web

from gatekeeper.config import Config, ConfigError, load_config
from gatekeeper.providers import check_presets
from gatekeeper.resources import Resources

Build = Callable[[Resources], tuple[web.Application, web.Application]]
"""`app.build_apps`: the proxy and admin applications for the resources' config."""


class Listener(Protocol):
    """A listener's server (server.py `GuardedServer`): serves the application given."""

    def use(self, app: web.Application) -> None:
        """Serve `app` (started) from the next request on."""


@dataclass(frozen=True, slots=True)
class Reloaded:
    """A reload's outcome: applied (with the sections that changed) or refused (why)."""

    applied: bool
    changed: tuple[str, ...] = ()
    reason: str = ""
    restart: bool = False  # refused because a value that needs a restart changed


def restart_needed(old: Config, new: Config) -> list[str]:
    """The keys whose change a running process cannot take up."""
    keys = []
    for section, names in (("proxy", ("listen", "tls", "timeouts")),
                           ("admin", ("listen", "timeouts"))):
        for name in names:
            if getattr(getattr(old, section), name) != getattr(getattr(new, section), name):
                keys.append(f"{section}.{'host/port' if name == 'listen' else name}")
    # The embedded store's URL is set once it runs (`--workers`: by the parent): the
    # file's `embedded` with the same settings is the same store.
    unchanged = new.redis.embedded and replace(new.redis, url=old.redis.url) == old.redis
    if old.redis != new.redis and not unchanged:
        keys.append("redis")
    if old.log != new.log:  # loggers are bound at start (structlog caches them)
        keys.append("log")
    return keys


def changed_sections(old: Config, new: Config) -> tuple[str, ...]:
    """The top-level sections that differ (`source` aside)."""
    return tuple(f.name for f in fields(Config)
                 if f.name != "source" and getattr(old, f.name) != getattr(new, f.name))


class Reloader:
    """Reloads one process's config; the listeners serving its applications register
    themselves in `listeners` (by name: `proxy`, `admin`) to be given the new ones."""

    def __init__(self, resources: Resources, build: Build) -> None:
        self.resources = resources
        self.listeners: dict[str, Listener] = {}
        self.workers = 1
        # With --workers: asks the parent to have every worker reload (SIGHUP).
        self.fan_out: Callable[[], None] | None = None
        self._build = build
        self._lock = asyncio.Lock()

    def read(self) -> Config | Reloaded:
        """The config file as it is now, or why it cannot be taken up."""
        current = self.resources.config
        try:
            new = check_presets(load_config(current.source))
        except ConfigError as exc:
            return Reloaded(False, reason=f"invalid configuration: {exc}")
        except OSError as exc:
            return Reloaded(False, reason=f"cannot read {current.source}: {exc}")
        keys = restart_needed(current, new)
        if keys:
            return Reloaded(False, reason=f"{', '.join(keys)} cannot change without a "
                            "restart; the running config stays", restart=True)
        return new

    async def reload(self, origin: str) -> Reloaded:
        """Read, validate and apply the config file; logged and counted either way."""
        resources = self.resources
        async with self._lock:
            found = self.read()
            if isinstance(found, Reloaded):
                resources.metrics.config_reloads.labels("refused").inc()
                resources.log.error("config_reload_refused", origin=origin,
                                    reason=found.reason, config=resources.config.source)
                return found
            old = resources.config
            changed = changed_sections(old, found)
            if changed:
                await resources.preload(found.policy)  # before it can be in force
                resources.apply(found)
                try:  # both applications ready before either is swapped in
                    apps = self._build(resources)
                    for app in apps:
                        await _started(app)
                except Exception as exc:  # a bug must not leave the config half-applied
                    resources.apply(old)
                    failed = Reloaded(False, reason="the new config could not be applied "
                                      f"({type(exc).__name__}: {exc}); the running config "
                                      "stays")
                    resources.metrics.config_reloads.labels("refused").inc()
                    resources.log.error("config_reload_refused", origin=origin,
                                        reason=failed.reason, config=found.source)
                    return failed
                for name, app in zip(("proxy", "admin"), apps, strict=True):
                    if name in self.listeners:
                        self.listeners[name].use(app)
            resources.metrics.config_reloads.labels("applied").inc()
            resources.log.info("config_reloaded", origin=origin, changed=list(changed),
                               config=found.source)
            return Reloaded(True, changed)


async def _started(app: web.Application) -> None:
    """Freeze and start an application built after start-up, as its runner would (it has
    no start-up or clean-up work of its own)."""
    app.on_startup.freeze()
    await app.startup()
    app.freeze()

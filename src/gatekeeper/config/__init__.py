"""Configuration: frozen dataclasses parsed once from YAML and the environment.

This package is the only code that reads YAML or environment variables. Everything after
`load_config()` works on the typed objects of this package, never on raw dictionaries.

Its modules: `base` (the error and the section reader), `listeners` (proxy and admin),
`upstreams` (upstreams, routes, credentials, webhooks), `policy` (the `policy:` section)
and `warnings` (`gatekeeper config check`); this one holds the store, the log, the
lists, the whole `Config` and the loader, and re-exports the names callers import.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from gatekeeper import redis_url
from gatekeeper.config.base import ConfigError as ConfigError
from gatekeeper.config.base import Section as _Section
from gatekeeper.config.base import positive as _positive
from gatekeeper.config.listeners import DEFAULT_ADMIN_KEY_ENV as DEFAULT_ADMIN_KEY_ENV
from gatekeeper.config.listeners import ON_INVALID as ON_INVALID
from gatekeeper.config.listeners import UNKNOWN_WRITES as UNKNOWN_WRITES
from gatekeeper.config.listeners import AdminConfig as AdminConfig
from gatekeeper.config.listeners import AdminKey as AdminKey
from gatekeeper.config.listeners import AdminRole as AdminRole
from gatekeeper.config.listeners import Listen as Listen
from gatekeeper.config.listeners import OnInvalid as OnInvalid
from gatekeeper.config.listeners import ProxyConfig as ProxyConfig
from gatekeeper.config.listeners import Timeouts as Timeouts
from gatekeeper.config.listeners import TlsConfig as TlsConfig
from gatekeeper.config.listeners import UnknownWrites as UnknownWrites
from gatekeeper.config.listeners import read_admin, read_proxy
from gatekeeper.config.policy import DEFAULT_POLICY, read_policy
from gatekeeper.config.upstreams import HTTP_METHODS as HTTP_METHODS
from gatekeeper.config.upstreams import ON_BLOCK as ON_BLOCK
from gatekeeper.config.upstreams import WEBHOOK_TYPES as WEBHOOK_TYPES
from gatekeeper.config.upstreams import CredentialScopes as CredentialScopes
from gatekeeper.config.upstreams import DestinationField as DestinationField
from gatekeeper.config.upstreams import OnBlock as OnBlock
from gatekeeper.config.upstreams import RouteConfig as RouteConfig
from gatekeeper.config.upstreams import RouteIntent as RouteIntent
from gatekeeper.config.upstreams import UpstreamConfig as UpstreamConfig
from gatekeeper.config.upstreams import WebhookConfig as WebhookConfig
from gatekeeper.config.upstreams import WebhookType as WebhookType
from gatekeeper.config.upstreams import read_upstreams, read_webhooks
from gatekeeper.freshness import ON_STALE, ListPolicy
from gatekeeper.numbers import is_valid_scope
from gatekeeper.redis_url import Topology
from gatekeeper.rules import Policy

OnStoreError = Literal["closed", "open"]
ImportPriority = Literal["idle", "normal"]

ON_STORE_ERROR: tuple[OnStoreError, ...] = ("closed", "open")
IMPORT_PRIORITIES: tuple[ImportPriority, ...] = ("idle", "normal")
DEFAULT_CONFIG_PATH = "config.yaml"
CONFIG_ENV = "GATEKEEPER_CONFIG"


@dataclass(frozen=True, slots=True)
class RedisConfig:
    """Where the lists live: `embedded` (a private child redis-server) or a redis URL."""

    url: str = "embedded"
    data_dir: Path = Path("data")
    key_prefix: str = "gk:"
    timeout: float = 1.0
    server_binary: str | None = None

    @property
    def embedded(self) -> bool:
        """True when Gatekeeper runs its own redis-server."""
        return self.url == "embedded"

    @property
    def topology(self) -> Topology:
        """One server, a cluster or a Sentinel group (redis_url.py)."""
        return Topology("single") if self.embedded else redis_url.parse(self.url)


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """How store faults are handled and how many blocked attempts are kept."""

    on_error: OnStoreError = "closed"
    attempts_max_len: int = 100_000
    sweep_interval: float = 5.0
    filter_memory_mb: int = 512
    """Memory each process may give copies of packed loads' filters (store/filter.py);
    0: none kept, every lookup reads the packed buckets."""
    import_priority: ImportPriority = "idle"
    """CPU priority of `gatekeeper lists import` (idle: Linux SCHED_IDLE, so that a
    proxy on the same machine keeps its latency while a large list loads)."""
    replica_wait: float = 5.0
    """Seconds an acknowledged change waits for a replica of its master to hold it
    (when the master has replicas); past them the change answers 503. 0: changes are
    acknowledged by the master alone (a failover may then lose the last ones)."""


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Logging: level, renderer and whether phone numbers are masked."""

    level: str = "info"
    format: Literal["json", "console"] = "json"
    mask_numbers: bool = True
    access: bool = False


@dataclass(frozen=True, slots=True)
class Config:
    """The whole, validated configuration."""

    # Frozen dataclasses (listeners.py), shared safely as defaults.
    proxy: ProxyConfig = ProxyConfig()  # noqa: RUF009
    admin: AdminConfig = AdminConfig()  # noqa: RUF009
    redis: RedisConfig = RedisConfig()
    store: StoreConfig = StoreConfig()
    log: LogConfig = LogConfig()
    upstreams: tuple[UpstreamConfig, ...] = ()
    webhooks: tuple[WebhookConfig, ...] = ()
    lists: tuple[tuple[str, ListPolicy], ...] = ()  # per scope (see freshness.py)
    policy: Policy = DEFAULT_POLICY                   # rules beyond lists (rules.py)
    policy_json: str = "{}"                           # the `policy:` section as written
    source: str = "<defaults>"

    def list_policy(self, scope: str) -> ListPolicy:
        """The config's word on one scope's lists (the default policy if none)."""
        for name, policy in self.lists:
            if name == scope:
                return policy
        return _LIST_POLICY

    @property
    def stop_seconds(self) -> float:
        """The longest a stop (SIGTERM) can take: the drain, then the longest upstream
        or webhook exchange already under way (never cut)."""
        timeouts = [u.timeout for u in self.upstreams] + [w.timeout for w in self.webhooks]
        longest = max(timeouts, default=0.0)
        return self.proxy.drain_timeout + longest


# Defaults to read from: slotted dataclasses keep no class-level default values.
_REDIS = RedisConfig()
_STORE = StoreConfig()
_LOG = LogConfig()
_LIST_POLICY = ListPolicy()


def _read_redis(s: _Section, base: Path) -> RedisConfig:
    url = s.get("url", str, _REDIS.url)
    if url != "embedded":
        try:
            redis_url.parse(url)
        except ValueError as exc:
            raise ConfigError(s.path("url"), redis_url.redacted(url), f"expected 'embedded' or a "
                              f"redis://, rediss://, unix://, redis+cluster://, "
                              f"redis+sentinel:// (rediss+... over TLS) URL: {exc}") from None
    data_dir = Path(s.get("data_dir", str, str(_REDIS.data_dir)))
    timeout = s.get("timeout", float, _REDIS.timeout)
    _positive(s.path("timeout"), timeout)
    prefix = s.get("key_prefix", str, _REDIS.key_prefix)
    if not prefix or any(c.isspace() for c in prefix):
        raise ConfigError(s.path("key_prefix"), prefix, "expected a non-empty string, no spaces")
    cfg = RedisConfig(
        url=url,
        data_dir=data_dir if data_dir.is_absolute() else base / data_dir,
        key_prefix=prefix,
        timeout=timeout,
        server_binary=s.optional_str("server_binary"),
    )
    s.finish()
    return cfg


def _read_store(s: _Section) -> StoreConfig:
    max_len = s.get("attempts_max_len", int, _STORE.attempts_max_len)
    _positive(s.path("attempts_max_len"), max_len)
    sweep = s.get("sweep_interval", float, _STORE.sweep_interval)
    _positive(s.path("sweep_interval"), sweep)
    filters = s.get("filter_memory_mb", int, _STORE.filter_memory_mb)
    if filters < 0:
        raise ConfigError(s.path("filter_memory_mb"), filters, "must be 0 or more")
    replica_wait = s.get("replica_wait", float, _STORE.replica_wait)
    if not 0 <= replica_wait <= 60:
        raise ConfigError(s.path("replica_wait"), replica_wait,
                          "must be from 0 (no wait) to 60 seconds")
    cfg = StoreConfig(
        on_error=s.choice("on_error", ON_STORE_ERROR, _STORE.on_error),
        attempts_max_len=max_len,
        sweep_interval=sweep,
        filter_memory_mb=filters,
        import_priority=s.choice("import_priority", IMPORT_PRIORITIES,
                                 _STORE.import_priority),
        replica_wait=replica_wait,
    )
    s.finish()
    return cfg


def _read_lists(s: _Section) -> tuple[tuple[str, ListPolicy], ...]:
    """`lists: {<scope>: {max_age_days, on_stale}}`."""
    policies: list[tuple[str, ListPolicy]] = []
    for scope in list(s.raw):
        if not isinstance(scope, str) or not is_valid_scope(scope):
            raise ConfigError(s.path(str(scope)), scope, "expected a scope: 'global' or "
                              "'kind:id'")
        entry = s.section(scope)
        days = entry.raw.get("max_age_days")
        entry.seen.add("max_age_days")
        if days is not None:
            if isinstance(days, bool) or not isinstance(days, int | float):
                raise ConfigError(entry.path("max_age_days"), days, "expected a number")
            _positive(entry.path("max_age_days"), float(days))
        policies.append((scope, ListPolicy(
            None if days is None else float(days),
            entry.choice("on_stale", ON_STALE, _LIST_POLICY.on_stale))))
        entry.finish()
    s.finish()
    return tuple(policies)


def _read_log(s: _Section) -> LogConfig:
    level = s.choice("level", ("debug", "info", "warning", "error"), _LOG.level)
    cfg = LogConfig(
        level=level,
        format=s.choice("format", ("json", "console"), _LOG.format),
        mask_numbers=s.get("mask_numbers", bool, _LOG.mask_numbers),
        access=s.get("access", bool, _LOG.access),
    )
    s.finish()
    return cfg


def parse_config(
    raw: object, *, env: Mapping[str, str] | None = None, base: Path | None = None,
    source: str = "<memory>",
) -> Config:
    """Validate a decoded YAML document into a `Config`; raise `ConfigError` naming the key."""
    env = os.environ if env is None else env
    root = _Section("", raw)
    upstreams = read_upstreams("upstreams", root.raw.get("upstreams"))
    cfg = Config(
        proxy=read_proxy(root.section("proxy"), base or Path.cwd()),
        admin=read_admin(root.section("admin"), env, base or Path.cwd()),
        redis=_read_redis(root.section("redis"), base or Path.cwd()),
        store=_read_store(root.section("store")),
        log=_read_log(root.section("log")),
        upstreams=upstreams,
        webhooks=read_webhooks("webhooks", root.raw.get("webhooks"), upstreams),
        lists=_read_lists(root.section("lists")),
        policy=read_policy(root.section("policy")),
        policy_json=json.dumps(root.raw.get("policy") or {}, sort_keys=True, default=str),
        source=source,
    )
    root.seen.update(("upstreams", "webhooks"))
    root.finish()
    return cfg


def resolve_path(path: str | None, env: Mapping[str, str] | None = None) -> Path:
    """The config file to read: the argument, else `$GATEKEEPER_CONFIG`, else ./config.yaml."""
    env = os.environ if env is None else env
    return Path(path or env.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def load_config(path: str | None = None, *, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the config file (see `resolve_path`)."""
    file = resolve_path(path, env)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("--config", str(file), f"cannot read file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("--config", str(file), f"not UTF-8 text: {exc.reason}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("<file>", str(file), f"not valid YAML: {exc}") from exc
    return parse_config(raw, env=env, base=file.resolve().parent, source=str(file))

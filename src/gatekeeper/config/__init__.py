"""Configuration: frozen dataclasses parsed once from YAML and the environment.

This is the only module that reads YAML or environment variables. Everything after
`load_config()` works on the typed objects below, never on raw dictionaries.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal, cast
from urllib.parse import urlsplit

import yaml

from gatekeeper import redis_url
from gatekeeper.config.base import ConfigError as ConfigError
from gatekeeper.config.base import Section as _Section
from gatekeeper.config.base import positive as _positive
from gatekeeper.config.policy import DEFAULT_POLICY, read_policy
from gatekeeper.freshness import ON_STALE, ListPolicy
from gatekeeper.numbers import is_known_region, is_valid_scope
from gatekeeper.redis_url import Topology
from gatekeeper.rules import INTENTS, Intent, Policy
from gatekeeper.types import CHANNELS, Channel

OnBlock = Literal["reject", "skip", "monitor"]
OnInvalid = Literal["reject", "forward"]
OnStoreError = Literal["closed", "open"]
AdminRole = Literal["read", "write"]
UnknownWrites = Literal["scan", "reject", "forward"]

ON_BLOCK: tuple[OnBlock, ...] = ("reject", "skip", "monitor")
ON_INVALID: tuple[OnInvalid, ...] = ("reject", "forward")
ON_STORE_ERROR: tuple[OnStoreError, ...] = ("closed", "open")
ImportPriority = Literal["idle", "normal"]
IMPORT_PRIORITIES: tuple[ImportPriority, ...] = ("idle", "normal")
UNKNOWN_WRITES: tuple[UnknownWrites, ...] = ("scan", "reject", "forward")
WebhookType = Literal["twilio-voice", "vonage-answer", "twilio-sms"]
WEBHOOK_TYPES: tuple[WebhookType, ...] = ("twilio-voice", "vonage-answer", "twilio-sms")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
DEFAULT_CONFIG_PATH = "config.yaml"
CONFIG_ENV = "GATEKEEPER_CONFIG"
DEFAULT_ADMIN_KEY_ENV = "GATEKEEPER_ADMIN_KEY"

_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IDENTITY_RE = re.compile(r"sha256:[0-9a-f]{64}|[^\s:]+")
_DEST_PATH_RE = re.compile(r"^[A-Za-z0-9_$@-]+(\[\])?(\.[A-Za-z0-9_$@-]+(\[\])?)*$")


@dataclass(frozen=True, slots=True)
class Listen:
    """A host and port to listen on."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """A certificate chain and key for a TLS listener (PEM files)."""

    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long a listener waits on a client, in seconds."""

    header: float = 10.0   # from the connection (or the previous reply) to a full request head
    body: float = 30.0     # to read a request's whole body
    idle: float = 60.0     # a kept-alive connection with no request in progress


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """The proxy listener and its request limits."""

    listen: Listen = Listen("127.0.0.1", 8080)
    max_body_bytes: int = 1024 * 1024
    on_invalid: OnInvalid = "reject"
    tls: TlsConfig | None = None
    # Writes on a mount that match no send route: deep-scanned, refused, or forwarded.
    unknown_writes: UnknownWrites = "scan"
    max_recipients: int = 10_000
    max_scopes: int = 16
    timeouts: Timeouts = Timeouts()
    # Seconds a stop (SIGTERM) waits for in-flight requests before answering those not
    # yet sent 503 `draining`; a request whose upstream exchange has started is never
    # cut, so a stop takes at most this plus the longest upstream timeout.
    drain_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class AdminKey:
    """An admin API key: its name (for audit), secret, role and the scopes it may touch.

    `scopes` are globs (`tenant:acme*`, `*`); `read` keys may only read.
    """

    name: str
    secret: str = field(repr=False)
    role: AdminRole = "write"
    scopes: tuple[str, ...] = ("*",)

    def permits(self, scope: str) -> bool:
        """True when `scope` matches one of the key's scope globs."""
        return any(fnmatchcase(scope, pattern) for pattern in self.scopes)

    def allows(self, role: AdminRole) -> bool:
        """True when the key's role covers `role` (write covers read)."""
        return self.role == "write" or role == "read"


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """The admin listener and its keys (none: the list API refuses every call)."""

    listen: Listen = Listen("127.0.0.1", 8081)
    keys: tuple[AdminKey, ...] = ()
    key_source: str = f"${DEFAULT_ADMIN_KEY_ENV}"
    timeouts: Timeouts = Timeouts()

    @property
    def key(self) -> str | None:
        """The secret of the first key (the single-key set-up's key)."""
        return self.keys[0].secret if self.keys else None


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


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Logging: level, renderer and whether phone numbers are masked."""

    level: str = "info"
    format: Literal["json", "console"] = "json"
    mask_numbers: bool = True
    access: bool = False


@dataclass(frozen=True, slots=True)
class DestinationField:
    """Where a generic route finds its destinations: a JSON dotted path or a form field."""

    source: Literal["json", "form"]
    path: str


@dataclass(frozen=True, slots=True)
class RouteConfig:
    """A generic preset route: which requests are sends and where the recipient is."""

    method: str
    path: str
    channel: Channel
    destination: DestinationField
    intent: Intent | None = None  # None: the upstream's


@dataclass(frozen=True, slots=True)
class RouteIntent:
    """The intent of one of a built-in preset's routes (its method and path template)."""

    method: str
    path: str
    intent: Intent


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """One gateway the proxy forwards to."""

    name: str
    url: str
    preset: str
    mount: str
    region: str | None = None
    on_block: OnBlock = "reject"
    timeout: float = 30.0
    scopes: tuple[str, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    credentials: tuple[CredentialScopes, ...] = ()
    scope_header: bool = True
    # Also forward list changes made through the provider's list API to the provider.
    mirror: bool = False
    # None: `proxy.unknown_writes` applies.
    unknown_writes: UnknownWrites | None = None
    # Refuse checked requests whose credential maps to no scope (not only unreadable ones).
    require_credential: bool = False
    # What its sends are when no X-Gatekeeper-Intent header says (policy rules apply by
    # intent: quiet hours to marketing only, unless configured otherwise).
    intent: Intent = "marketing"
    # The same per route of a built-in preset (checked against its routes at start-up).
    route_intents: tuple[RouteIntent, ...] = ()


@dataclass(frozen=True, slots=True)
class CredentialScopes:
    """Scopes that apply whenever a request carries this credential.

    `identity` is an account id as sent (Twilio account SID, Vonage api_key, Plivo auth
    id, iletiMerkezi key) or `sha256:<hex>` of a Bearer token, never the token itself.
    """

    identity: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """An inbound webhook screened on the proxy and forwarded to the application."""

    name: str
    type: WebhookType
    path: str
    url: str
    scopes: tuple[str, ...] = ()
    region: str | None = None
    timeout: float = 10.0
    opt_out_scope: str = "global"


@dataclass(frozen=True, slots=True)
class Config:
    """The whole, validated configuration."""

    proxy: ProxyConfig = ProxyConfig()
    admin: AdminConfig = AdminConfig()
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
_PROXY = ProxyConfig()
_ADMIN = AdminConfig()
_REDIS = RedisConfig()
_STORE = StoreConfig()
_LOG = LogConfig()
_LIST_POLICY = ListPolicy()
_UPSTREAM = UpstreamConfig(name="", url="", preset="", mount="")

def _http_url(s: _Section, url: str, query: bool) -> str:
    """An upstream or application URL: http(s), a host, a valid port, no credentials
    (those travel in the caller's Authorization header)."""
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok or \
            parts.username is not None or parts.fragment or (parts.query and not query):
        raise ConfigError(s.path("url"), url, "expected an http(s) URL without credentials"
                          + ("" if query else " or a query"))
    return url


def _listen(section: _Section, default: Listen) -> Listen:
    host = section.get("host", str, default.host)
    port = section.get("port", int, default.port)
    if not 0 <= port <= 65535:
        raise ConfigError(section.path("port"), port, "expected a port number 0-65535")
    return Listen(host, port)


def _read_proxy(s: _Section, base: Path) -> ProxyConfig:
    max_body = s.get("max_body_bytes", int, _PROXY.max_body_bytes)
    _positive(s.path("max_body_bytes"), max_body)
    tls = None
    if s.raw.get("tls") is not None:
        t = s.section("tls")
        tls = TlsConfig(_file(t, "cert", base), _file(t, "key", base))
        t.finish()
    s.seen.add("tls")
    max_recipients = s.get("max_recipients", int, _PROXY.max_recipients)
    _positive(s.path("max_recipients"), max_recipients)
    max_scopes = s.get("max_scopes", int, _PROXY.max_scopes)
    _positive(s.path("max_scopes"), max_scopes)
    drain_timeout = s.get("drain_timeout", float, _PROXY.drain_timeout)
    _positive(s.path("drain_timeout"), drain_timeout)
    cfg = ProxyConfig(
        listen=_listen(s, _PROXY.listen),
        max_body_bytes=max_body,
        on_invalid=s.choice("on_invalid", ON_INVALID, _PROXY.on_invalid),
        tls=tls,
        unknown_writes=s.choice("unknown_writes", UNKNOWN_WRITES, _PROXY.unknown_writes),
        max_recipients=max_recipients,
        max_scopes=max_scopes,
        timeouts=_read_timeouts(s.section("timeouts")),
        drain_timeout=drain_timeout,
    )
    s.finish()
    return cfg


def _read_timeouts(s: _Section) -> Timeouts:
    default = Timeouts()
    values = {}
    for name in ("header", "body", "idle"):
        value = s.get(name, float, getattr(default, name))
        _positive(s.path(name), value)
        values[name] = value
    s.finish()
    return Timeouts(**values)


def _file(s: _Section, name: str, base: Path) -> Path:
    given = s.get(name, str, "")
    if not given:  # Path("") is ".": the error would name the config's directory
        raise ConfigError(s.path(name), given, "expected the path of a PEM file")
    path = Path(given)
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise ConfigError(s.path(name), str(path), "expected a readable file")
    return path


def _read_admin(s: _Section, env: Mapping[str, str], base: Path) -> AdminConfig:
    listen = _listen(s, _ADMIN.listen)
    timeouts = _read_timeouts(s.section("timeouts"))
    literal = s.optional_str("key")
    key_env = s.get("key_env", str, DEFAULT_ADMIN_KEY_ENV)
    if not _ENV_NAME_RE.fullmatch(key_env):
        raise ConfigError(s.path("key_env"), key_env, "expected an environment variable name")
    s.seen.add("keys")
    raw_keys = s.raw.get("keys")
    if "keys" in s.raw:
        if literal is not None or "key_env" in s.raw:
            raise ConfigError(s.path("keys"), "...", "use either 'keys' or 'key'/'key_env'")
        if not isinstance(raw_keys, list) or not raw_keys:
            raise ConfigError(s.path("keys"), raw_keys, "expected a non-empty list of keys")
        keys = tuple(_read_key(_Section(f"{s.path('keys')}[{i}]", k), env, base)
                     for i, k in enumerate(raw_keys))
        names = [k.name for k in keys]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ConfigError(f"{s.path('keys')}[{i}].name", name, "duplicate key name")
        secrets = [k.secret for k in keys]
        for i, secret in enumerate(secrets):
            if secret in secrets[:i]:
                raise ConfigError(f"{s.path('keys')}[{i}]", names[i],
                                  "two keys have the same secret")
        s.finish()
        return AdminConfig(listen=listen, keys=keys, key_source=s.path("keys"),
                           timeouts=timeouts)
    s.finish()
    if literal is not None:
        _check_secret(s.path("key"), "<hidden>", literal)
        return AdminConfig(listen=listen, keys=(AdminKey("admin", literal),),
                           key_source=s.path("key"), timeouts=timeouts)
    from_env = env.get(key_env)
    if from_env:
        _check_secret(f"${key_env}", "<hidden>", from_env)
    return AdminConfig(listen=listen, keys=(AdminKey("admin", from_env),) if from_env else (),
                       key_source=f"${key_env}", timeouts=timeouts)


def _check_secret(key: str, shown: str, secret: str) -> None:
    """Secrets are compared exactly against a trimmed header: refuse ones that never match."""
    if secret != secret.strip():
        raise ConfigError(key, shown, "the secret has leading or trailing whitespace")
    if len(secret) < 16:
        raise ConfigError(key, shown, "a key secret needs at least 16 characters")


_KEY_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SCOPE_GLOB_RE = re.compile(r"\*|global|[a-z][a-z0-9_-]{0,31}(\*|:[A-Za-z0-9._@+*-]{1,128})")


def _read_key(s: _Section, env: Mapping[str, str], base: Path) -> AdminKey:
    name = s.get("name", str, "")
    if not _KEY_NAME_RE.fullmatch(name):
        raise ConfigError(s.path("name"), name, "expected a key name like 'ops'")
    sources = [k for k in ("secret", "secret_env", "secret_file") if k in s.raw]
    if len(sources) != 1:
        raise ConfigError(s.key, name, "expected exactly one of secret, secret_env, secret_file")
    source = sources[0]
    if source == "secret" and not isinstance(s.raw[source], str):
        # An unquoted number is still a secret: never echo it in the error.
        raise ConfigError(s.path(source), "<hidden>", "expected str")
    value = s.get(source, str, "")
    if source == "secret_env":
        if not _ENV_NAME_RE.fullmatch(value):
            raise ConfigError(s.path(source), value, "expected an environment variable name")
        secret = env.get(value, "")
        if not secret:
            raise ConfigError(s.path(source), value, "the environment variable is not set")
    elif source == "secret_file":
        path = Path(value) if Path(value).is_absolute() else base / value
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(s.path(source), str(path), "cannot read the key file") from exc
    else:
        secret = value
    _check_secret(s.path(source), value if source != "secret" else "<hidden>", secret)
    role: AdminRole = s.choice("role", ("read", "write"), "read")
    s.seen.add("scopes")
    raw_scopes = s.raw.get("scopes", ["*"])
    if not isinstance(raw_scopes, list) or not raw_scopes:
        raise ConfigError(s.path("scopes"), raw_scopes, "expected a non-empty list of globs")
    for i, glob in enumerate(raw_scopes):
        if not isinstance(glob, str) or not _SCOPE_GLOB_RE.fullmatch(glob):
            raise ConfigError(f"{s.path('scopes')}[{i}]", glob,
                              "expected a scope or a glob like 'tenant:acme*' or '*'")
    s.finish()
    return AdminKey(name, secret, role, tuple(raw_scopes))


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
    cfg = StoreConfig(
        on_error=s.choice("on_error", ON_STORE_ERROR, _STORE.on_error),
        attempts_max_len=max_len,
        sweep_interval=sweep,
        filter_memory_mb=filters,
        import_priority=s.choice("import_priority", IMPORT_PRIORITIES,
                                 _STORE.import_priority),
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


def _method(s: _Section) -> str:
    """A route's `method` (default POST), upper-case, one of HTTP_METHODS."""
    method = s.get("method", str, "POST").upper()
    if method not in HTTP_METHODS:
        raise ConfigError(s.path("method"), method, f"expected one of {', '.join(HTTP_METHODS)}")
    return method


def _read_route(s: _Section) -> RouteConfig:
    method = _method(s)
    path = s.get("path", str, "")
    if not path.startswith("/"):
        raise ConfigError(s.path("path"), path, "expected a path starting with '/'")
    channel = s.choice("channel", CHANNELS, cast(Channel, ""))
    dest = s.section("destination")
    json_path = dest.optional_str("json")
    form_field = dest.optional_str("form")
    dest.finish()
    if (json_path is None) == (form_field is None):
        raise ConfigError(dest.key, dict(dest.raw), "expected exactly one of 'json' or 'form'")
    if json_path is not None:
        if not _DEST_PATH_RE.fullmatch(json_path):
            raise ConfigError(dest.path("json"), json_path, "expected a dotted path like a.b[].c")
        destination = DestinationField("json", json_path)
    else:
        destination = DestinationField("form", cast(str, form_field))
    intent = s.choice("intent", INTENTS, cast(Intent, "")) if "intent" in s.raw else None
    s.finish()
    return RouteConfig(method=method, path=path, channel=channel, destination=destination,
                       intent=intent)


def _read_scopes(key: str, raw: object) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(key, raw, "expected a list of scopes")
    for i, scope in enumerate(raw):
        if not isinstance(scope, str) or not is_valid_scope(scope):
            raise ConfigError(f"{key}[{i}]", scope, "expected 'global' or 'kind:id'")
    return tuple(dict.fromkeys(raw))


def _read_upstream(s: _Section) -> UpstreamConfig:
    name = s.get("name", str, "")
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(s.path("name"), name, "expected a lower-case name like 'twilio'")
    url = _http_url(s, s.get("url", str, "").rstrip("/"), query=False)
    # Checked against the registry of presets by `providers.check_presets`.
    preset = s.get("preset", str, "")
    if not _NAME_RE.fullmatch(preset):
        raise ConfigError(s.path("preset"), preset, "expected a preset name like 'twilio'")
    mount = s.get("mount", str, f"/{name}").rstrip("/")
    if not mount.startswith("/") or "//" in mount or any(c in mount for c in "?#{}*%") or \
            any(part in (".", "..") for part in mount.split("/")):
        raise ConfigError(s.path("mount"), mount, "expected a path prefix like '/twilio'")
    region = _read_region(s)
    timeout = s.get("timeout", float, _UPSTREAM.timeout)
    _positive(s.path("timeout"), timeout)
    s.seen.update(("scopes", "routes", "credentials"))
    scopes = _read_scopes(s.path("scopes"), s.raw.get("scopes"))
    credentials = _read_credentials(s.path("credentials"), s.raw.get("credentials"))
    raw_routes = s.raw.get("routes") or []
    if not isinstance(raw_routes, list):
        raise ConfigError(s.path("routes"), raw_routes, "expected a list of routes")
    routes = tuple(_read_route(_Section(f"{s.path('routes')}[{i}]", r)) for i, r in
                   enumerate(raw_routes))
    cfg = UpstreamConfig(
        name=name,
        url=url,
        preset=preset,
        mount=mount,
        region=region,
        on_block=s.choice("on_block", ON_BLOCK, _UPSTREAM.on_block),
        timeout=timeout,
        scopes=scopes,
        routes=routes,
        credentials=credentials,
        scope_header=s.get("scope_header", bool, _UPSTREAM.scope_header),
        mirror=s.get("mirror", bool, _UPSTREAM.mirror),
        unknown_writes=s.choice("unknown_writes", UNKNOWN_WRITES, "scan")
        if "unknown_writes" in s.raw else None,
        require_credential=s.get("require_credential", bool, _UPSTREAM.require_credential),
        intent=s.choice("intent", INTENTS, _UPSTREAM.intent),
        route_intents=_read_route_intents(s),
    )
    s.finish()
    return cfg


def _read_route_intents(s: _Section) -> tuple[RouteIntent, ...]:
    """`route_intents: [{method, path, intent}]` (paths as the preset's route templates)."""
    s.seen.add("route_intents")
    raw = s.raw.get("route_intents") or []
    if not isinstance(raw, list):
        raise ConfigError(s.path("route_intents"), raw, "expected a list")
    out: list[RouteIntent] = []
    for i, item in enumerate(raw):
        one = _Section(f"{s.path('route_intents')}[{i}]", item)
        method = _method(one)
        path = one.get("path", str, "")
        intent = one.choice("intent", INTENTS, cast(Intent, ""))
        one.finish()
        out.append(RouteIntent(method, path, intent))
    return tuple(out)


def _read_credentials(key: str, raw: object) -> tuple[CredentialScopes, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise ConfigError(key, raw, "expected a mapping of credential to scopes")
    out = []
    for key_value, scopes in raw.items():
        # An all-digit id (a Vonage api_key, say) reads as a YAML integer: it is still an id.
        is_int = isinstance(key_value, int) and not isinstance(key_value, bool)
        identity = str(key_value) if is_int else key_value
        if not isinstance(identity, str) or not _IDENTITY_RE.fullmatch(identity):
            raise ConfigError(f"{key}.{identity}", identity,
                              "expected an account id or 'sha256:<64 hex>' of a token")
        read = _read_scopes(f"{key}.{identity}", scopes)
        if not read:
            raise ConfigError(f"{key}.{identity}", scopes, "expected at least one scope")
        out.append(CredentialScopes(identity, read))
    return tuple(out)


def _read_region(s: _Section) -> str | None:
    region = s.optional_str("region")
    if region is not None:
        region = region.upper()
        if not is_known_region(region):
            raise ConfigError(s.path("region"), region, "expected a two-letter region like 'TR'")
    return region


def _read_webhook(s: _Section) -> WebhookConfig:
    name = s.get("name", str, "")
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(s.path("name"), name, "expected a lower-case name")
    kind = s.choice("type", WEBHOOK_TYPES, cast(WebhookType, ""))
    path = s.get("path", str, f"/hooks/{name}").rstrip("/")
    if not path.startswith("/") or "//" in path or any(c in path for c in "?#{}*%") or \
            any(part in (".", "..") for part in path.split("/")):
        raise ConfigError(s.path("path"), path, "expected a path like '/hooks/voice'")
    url = _http_url(s, s.get("url", str, ""), query=True)
    timeout = s.get("timeout", float, 10.0)
    _positive(s.path("timeout"), timeout)
    s.seen.add("scopes")
    opt_out_scope = s.get("opt_out_scope", str, "global")
    if not is_valid_scope(opt_out_scope):
        raise ConfigError(s.path("opt_out_scope"), opt_out_scope, "expected 'global' or 'kind:id'")
    cfg = WebhookConfig(name=name, type=kind, path=path, url=url,
                        scopes=_read_scopes(s.path("scopes"), s.raw.get("scopes")),
                        region=_read_region(s), timeout=timeout, opt_out_scope=opt_out_scope)
    s.finish()
    return cfg


def _read_webhooks(key: str, raw: object, upstreams: tuple[UpstreamConfig, ...]
                   ) -> tuple[WebhookConfig, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(key, raw, "expected a list of webhooks")
    hooks = tuple(_read_webhook(_Section(f"{key}[{i}]", h)) for i, h in enumerate(raw))
    seen: set[str] = set()
    for i, hook in enumerate(hooks):
        if hook.path in seen or hook.name in {h.name for h in hooks[:i]}:
            raise ConfigError(f"{key}[{i}]", hook.name, "duplicate webhook name or path")
        if hook.name in {u.name for u in upstreams}:
            raise ConfigError(f"{key}[{i}].name", hook.name, "is also an upstream's name")
        for up in upstreams:
            if hook.path == up.mount or hook.path.startswith(up.mount + "/"):
                raise ConfigError(f"{key}[{i}].path", hook.path,
                                  f"is under the mount of upstream '{up.name}'")
        seen.add(hook.path)
    return hooks


def _read_upstreams(key: str, raw: object) -> tuple[UpstreamConfig, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(key, raw, "expected a list of upstreams")
    upstreams = tuple(_read_upstream(_Section(f"{key}[{i}]", u)) for i, u in enumerate(raw))
    names: set[str] = set()
    mounts: set[str] = set()
    for i, up in enumerate(upstreams):
        if up.name in names:
            raise ConfigError(f"{key}[{i}].name", up.name, "duplicate upstream name")
        if up.mount in mounts:
            raise ConfigError(f"{key}[{i}].mount", up.mount, "duplicate mount")
        names.add(up.name)
        mounts.add(up.mount)
    return upstreams


def parse_config(
    raw: object, *, env: Mapping[str, str] | None = None, base: Path | None = None,
    source: str = "<memory>",
) -> Config:
    """Validate a decoded YAML document into a `Config`; raise `ConfigError` naming the key."""
    env = os.environ if env is None else env
    root = _Section("", raw)
    upstreams = _read_upstreams("upstreams", root.raw.get("upstreams"))
    cfg = Config(
        proxy=_read_proxy(root.section("proxy"), base or Path.cwd()),
        admin=_read_admin(root.section("admin"), env, base or Path.cwd()),
        redis=_read_redis(root.section("redis"), base or Path.cwd()),
        store=_read_store(root.section("store")),
        log=_read_log(root.section("log")),
        upstreams=upstreams,
        webhooks=_read_webhooks("webhooks", root.raw.get("webhooks"), upstreams),
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

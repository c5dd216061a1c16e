"""The proxy and admin listeners: where they listen, TLS, client timeouts, request
limits, and the admin API's keys (with their roles and scopes)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from gatekeeper.config.base import ConfigError
from gatekeeper.config.base import Section as _Section
from gatekeeper.config.base import positive as _positive

OnInvalid = Literal["reject", "forward"]
AdminRole = Literal["read", "write"]
UnknownWrites = Literal["scan", "reject", "forward"]

ON_INVALID: tuple[OnInvalid, ...] = ("reject", "forward")
UNKNOWN_WRITES: tuple[UnknownWrites, ...] = ("scan", "reject", "forward")
DEFAULT_ADMIN_KEY_ENV = "GATEKEEPER_ADMIN_KEY"

_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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


# Defaults to read from: slotted dataclasses keep no class-level default values.
_PROXY = ProxyConfig()
_ADMIN = AdminConfig()


def _listen(section: _Section, default: Listen) -> Listen:
    host = section.get("host", str, default.host)
    port = section.get("port", int, default.port)
    if not 0 <= port <= 65535:
        raise ConfigError(section.path("port"), port, "expected a port number 0-65535")
    return Listen(host, port)


def read_proxy(s: _Section, base: Path) -> ProxyConfig:
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


def read_admin(s: _Section, env: Mapping[str, str], base: Path) -> AdminConfig:
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

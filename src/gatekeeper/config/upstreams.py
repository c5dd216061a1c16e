"""The upstreams (the gateways the proxy forwards to) and what hangs off them: generic
routes, built-in routes' intents, credential scopes, and the inbound webhooks."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast
from urllib.parse import urlsplit

from gatekeeper.config.base import ConfigError
from gatekeeper.config.base import Section as _Section
from gatekeeper.config.base import positive as _positive
from gatekeeper.config.listeners import UNKNOWN_WRITES, UnknownWrites
from gatekeeper.numbers import is_known_region, is_valid_scope
from gatekeeper.rules import INTENTS, Intent
from gatekeeper.types import CHANNELS, Channel

OnBlock = Literal["reject", "skip", "monitor"]
WebhookType = Literal["twilio-voice", "vonage-answer", "twilio-sms"]

ON_BLOCK: tuple[OnBlock, ...] = ("reject", "skip", "monitor")
WEBHOOK_TYPES: tuple[WebhookType, ...] = ("twilio-voice", "vonage-answer", "twilio-sms")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_IDENTITY_RE = re.compile(r"sha256:[0-9a-f]{64}|[^\s:]+")
_DEST_PATH_RE = re.compile(r"^[A-Za-z0-9_$@-]+(\[\])?(\.[A-Za-z0-9_$@-]+(\[\])?)*$")


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


# Defaults to read from: slotted dataclasses keep no class-level default values.
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


def read_webhooks(key: str, raw: object, upstreams: tuple[UpstreamConfig, ...]
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


def read_upstreams(key: str, raw: object) -> tuple[UpstreamConfig, ...]:
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

"""Configuration parsing (gatekeeper.config): bad values, defaults, environment, files."""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.config import (
    WEBHOOK_TYPES,
    AdminConfig,
    AdminKey,
    Config,
    ConfigError,
    CredentialScopes,
    DestinationField,
    Listen,
    LogConfig,
    ProxyConfig,
    RedisConfig,
    RouteConfig,
    StoreConfig,
    TlsConfig,
    UpstreamConfig,
    WebhookConfig,
    load_config,
    parse_config,
    resolve_path,
)
from gatekeeper.providers import PRESETS, check_presets

REPO = Path(__file__).resolve().parents[1]
KEY = "secret-admin-key"
ENV = {"GATEKEEPER_ADMIN_KEY": KEY}
ROUTE = {"method": "POST", "path": "/v2/messages", "channel": "sms",
         "destination": {"json": "to"}}
SID = "AC" + "0" * 32
DIGEST = "sha256:" + "0123456789abcdef" * 4


def base_raw() -> dict[str, Any]:
    """A complete, valid raw config with every section and two upstreams."""
    return {
        "proxy": {"host": "127.0.0.1", "port": 8080, "max_body_bytes": 1048576,
                  "on_invalid": "reject"},
        "admin": {"host": "127.0.0.1", "port": 8081, "key_env": "GATEKEEPER_ADMIN_KEY"},
        "redis": {"url": "embedded", "data_dir": "data", "key_prefix": "gk:", "timeout": 1.0},
        "store": {"on_error": "closed", "attempts_max_len": 100000},
        "log": {"level": "info", "format": "json", "mask_numbers": True},
        "upstreams": [
            {"name": "twilio", "url": "https://api.twilio.com", "preset": "twilio",
             "region": "US", "on_block": "reject", "timeout": 30, "scopes": ["global"],
             "credentials": {SID: ["tenant:acme"], DIGEST: ["tenant:beta", "agent:7"]},
             "scope_header": True},
            {"name": "telnyx", "url": "https://api.telnyx.com", "preset": "generic",
             "routes": [copy.deepcopy(ROUTE)]},
        ],
        "webhooks": [
            {"name": "voice", "type": "twilio-voice", "url": "https://app.example/voice",
             "scopes": ["tenant:acme"], "region": "US", "timeout": 5,
             "opt_out_scope": "tenant:acme"},
            {"name": "sms", "type": "twilio-sms", "path": "/in/sms",
             "url": "http://10.0.0.2:8000/sms"},
        ],
    }


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE: Any = _Delete()
SAME: Any = object()
_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def with_value(path: str, value: Any) -> dict[str, Any]:
    """base_raw() with the key at `path` (written like a ConfigError key) set or deleted."""
    raw = base_raw()
    tokens: list[str | int] = [
        int(index) if index else name for name, index in _TOKEN.findall(path)
    ]
    node: Any = raw
    for token in tokens[:-1]:
        node = node[token]
    if value is DELETE:
        del node[tokens[-1]]
    else:
        node[tokens[-1]] = value
    return raw


def parse(raw: object, tmp_path: Path, env: dict[str, str] | None = None) -> Config:
    """parse_config with a fixed environment and base directory."""
    return parse_config(raw, env=ENV if env is None else env, base=tmp_path)


def test_base_config_is_valid(tmp_path: Path) -> None:
    """The table's starting point parses, so each bad case fails for its own reason."""
    cfg = parse(base_raw(), tmp_path)
    assert [u.name for u in cfg.upstreams] == ["twilio", "telnyx"]
    assert [h.name for h in cfg.webhooks] == ["voice", "sms"]


# (id, key path to set, value, key the error names (None: the same), value shown (SAME))
BAD: list[tuple[str, str, Any, str | None, Any]] = [
    # Unknown keys, at every level.
    ("unknown-root-key", "extra", 1, None, SAME),
    ("unknown-proxy-key", "proxy.listen_port", 8080, None, SAME),
    ("unknown-admin-key", "admin.token", "x", None, SAME),
    ("unknown-redis-key", "redis.host", "localhost", None, SAME),
    ("unknown-store-key", "store.retention", 5, None, SAME),
    ("unknown-log-key", "log.colour", True, None, SAME),
    ("unknown-upstream-key", "upstreams[0].api_key", "x", None, SAME),
    ("unknown-route-key", "upstreams[1].routes[0].verb", "POST", None, SAME),
    ("unknown-destination-key", "upstreams[1].routes[0].destination.xml", "to", None, SAME),
    # Sections of the wrong shape.
    ("proxy-not-a-mapping", "proxy", ["x"], None, SAME),
    ("admin-not-a-mapping", "admin", "x", None, SAME),
    ("redis-not-a-mapping", "redis", 5, None, SAME),
    ("upstreams-not-a-list", "upstreams", {"name": "twilio"}, None, SAME),
    ("upstream-not-a-mapping", "upstreams[0]", "twilio", None, SAME),
    ("routes-not-a-list", "upstreams[1].routes", "POST /v2/messages", None, SAME),
    ("route-not-a-mapping", "upstreams[1].routes[0]", "POST /v2/messages", None, SAME),
    ("destination-not-a-mapping", "upstreams[1].routes[0].destination", "to", None, SAME),
    ("scopes-not-a-list", "upstreams[0].scopes", "global", None, SAME),
    # Wrong scalar types, including bool where an int or float is expected.
    ("bool-for-port", "proxy.port", True, None, SAME),
    ("bool-false-for-admin-port", "admin.port", False, None, SAME),
    ("string-for-port", "proxy.port", "8080", None, SAME),
    ("float-for-port", "proxy.port", 8080.0, None, SAME),
    ("null-for-port", "proxy.port", None, None, SAME),
    ("int-for-host", "proxy.host", 127, None, SAME),
    ("bool-for-max-body-bytes", "proxy.max_body_bytes", True, None, SAME),
    ("float-for-max-body-bytes", "proxy.max_body_bytes", 1.5, None, SAME),
    ("bool-for-attempts-max-len", "store.attempts_max_len", False, None, SAME),
    ("bool-for-redis-timeout", "redis.timeout", True, None, SAME),
    ("string-for-redis-timeout", "redis.timeout", "1s", None, SAME),
    ("bool-for-upstream-timeout", "upstreams[0].timeout", True, None, SAME),
    ("int-for-mask-numbers", "log.mask_numbers", 1, None, SAME),
    ("string-for-mask-numbers", "log.mask_numbers", "yes", None, SAME),
    ("int-for-data-dir", "redis.data_dir", 5, None, SAME),
    ("int-for-admin-key", "admin.key", 12345, None, SAME),
    ("empty-admin-key", "admin.key", "", None, SAME),
    ("empty-server-binary", "redis.server_binary", "", None, SAME),
    ("int-for-upstream-url", "upstreams[0].url", 42, None, SAME),
    ("bool-for-region-norway-problem", "upstreams[0].region", False, None, SAME),
    ("bool-for-on-block", "upstreams[0].on_block", True, None, SAME),
    ("int-scope", "upstreams[0].scopes[0]", 1, None, SAME),
    # Ports.
    ("negative-port", "proxy.port", -1, None, SAME),
    ("port-too-large", "proxy.port", 65536, None, SAME),
    ("admin-port-too-large", "admin.port", 70000, None, SAME),
    # Upstream URLs.
    ("upstream-url-ftp", "upstreams[0].url", "ftp://api.twilio.com", None, SAME),
    ("upstream-url-no-scheme", "upstreams[0].url", "api.twilio.com", None, SAME),
    ("upstream-url-no-host", "upstreams[0].url", "https://", None, "https:"),
    ("upstream-url-query", "upstreams[0].url", "https://api.twilio.com/?x=1", None, SAME),
    ("upstream-url-missing", "upstreams[0].url", DELETE, None, ""),
    ("upstream-url-credentials", "upstreams[0].url", "https://u:p@api.twilio.com", None,
     SAME),
    ("upstream-url-bad-port", "upstreams[0].url", "https://api.twilio.com:99999", None, SAME),
    ("upstream-url-port-zero", "upstreams[0].url", "https://api.twilio.com:0", None, SAME),
    ("upstream-url-fragment", "upstreams[0].url", "https://api.twilio.com/#x", None, SAME),
    # Redis URLs.
    ("redis-url-host-port", "redis.url", "localhost:6379", None, SAME),
    ("redis-url-http", "redis.url", "http://localhost:6379", None, SAME),
    ("redis-url-bare-word", "redis.url", "redis", None, SAME),
    ("redis-url-empty", "redis.url", "", None, SAME),
    ("redis-url-embedded-typo", "redis.url", "Embedded", None, SAME),
    ("redis-key-prefix-empty", "redis.key_prefix", "", None, SAME),
    ("redis-key-prefix-space", "redis.key_prefix", "gk :", None, SAME),
    # Presets and routes.
    ("unknown-preset", "upstreams[0].preset", "nexmo", None, SAME),
    ("preset-case-sensitive", "upstreams[0].preset", "Twilio", None, SAME),
    ("missing-preset", "upstreams[0].preset", DELETE, None, ""),
    ("generic-without-routes", "upstreams[1].routes", DELETE, None, []),
    ("generic-with-empty-routes", "upstreams[1].routes", [], None, SAME),
    # The registry's own checks (`check_presets`) name the key; the routes are not echoed.
    ("routes-on-twilio-preset", "upstreams[0].routes", [ROUTE], None, "..."),
    ("route-method-unknown", "upstreams[1].routes[0].method", "fetch", None, "FETCH"),
    ("route-path-relative", "upstreams[1].routes[0].path", "v2/messages", None, SAME),
    ("route-path-missing", "upstreams[1].routes[0].path", DELETE, None, ""),
    ("route-channel-unknown", "upstreams[1].routes[0].channel", "fax", None, SAME),
    ("route-channel-missing", "upstreams[1].routes[0].channel", DELETE, None, ""),
    ("route-destination-both", "upstreams[1].routes[0].destination",
     {"json": "to", "form": "To"}, None, SAME),
    ("route-destination-neither", "upstreams[1].routes[0].destination", {}, None, SAME),
    ("route-destination-missing", "upstreams[1].routes[0].destination", DELETE, None, {}),
    ("route-destination-json-empty", "upstreams[1].routes[0].destination.json", "", None,
     SAME),
    ("route-destination-json-bad-path", "upstreams[1].routes[0].destination.json", "a..b",
     None, SAME),
    ("route-destination-json-space", "upstreams[1].routes[0].destination.json", "a b", None,
     SAME),
    ("route-destination-json-trailing-newline", "upstreams[1].routes[0].destination.json",
     "to\n", None, SAME),
    # Names, mounts, duplicates.
    ("name-upper-case", "upstreams[0].name", "Twilio", None, SAME),
    ("name-starts-with-digit", "upstreams[0].name", "1twilio", None, SAME),
    ("name-missing", "upstreams[0].name", DELETE, None, ""),
    ("name-trailing-newline", "upstreams[0].name", "twilio\n", None, SAME),
    ("duplicate-name", "upstreams[1].name", "twilio", None, SAME),
    ("duplicate-mount", "upstreams[1].mount", "/twilio", None, SAME),
    ("duplicate-mount-trailing-slash", "upstreams[1].mount", "/twilio/", None, "/twilio"),
    ("mount-without-slash", "upstreams[0].mount", "twilio", None, SAME),
    ("mount-root", "upstreams[0].mount", "/", None, ""),
    ("mount-double-slash", "upstreams[0].mount", "/a//b", None, SAME),
    ("mount-query", "upstreams[0].mount", "/a?b", None, SAME),
    ("mount-template", "upstreams[0].mount", "/{account}", None, SAME),
    ("mount-glob", "upstreams[0].mount", "/a*", None, SAME),
    # Scopes and regions.
    ("scope-with-space", "upstreams[0].scopes", ["global", "tenant acme"],
     "upstreams[0].scopes[1]", "tenant acme"),
    ("scope-with-glob", "upstreams[0].scopes", ["tenant:*"], "upstreams[0].scopes[0]",
     "tenant:*"),
    ("scope-with-comma", "upstreams[0].scopes", ["global,tenant:acme"],
     "upstreams[0].scopes[0]", "global,tenant:acme"),
    ("scope-without-id", "upstreams[0].scopes", ["tenant:"], "upstreams[0].scopes[0]",
     "tenant:"),
    ("region-unknown", "upstreams[0].region", "XX", None, SAME),
    ("region-unknown-shown-upper-cased", "upstreams[0].region", "zz", None, "ZZ"),
    ("region-three-letters", "upstreams[0].region", "USA", None, SAME),
    ("region-empty", "upstreams[0].region", "", None, SAME),
    # Enumerated values.
    ("bad-on-block", "upstreams[0].on_block", "drop", None, SAME),
    ("on-block-case-sensitive", "upstreams[0].on_block", "Reject", None, SAME),
    ("bad-on-invalid", "proxy.on_invalid", "allow", None, SAME),
    ("bad-on-error", "store.on_error", "fail", None, SAME),
    ("bad-log-level", "log.level", "verbose", None, SAME),
    ("log-level-case-sensitive", "log.level", "INFO", None, SAME),
    ("bad-log-format", "log.format", "text", None, SAME),
    ("bad-admin-key-env", "admin.key_env", "NOT-A-NAME", None, SAME),
    ("admin-key-env-trailing-newline", "admin.key_env", "GATEKEEPER_ADMIN_KEY\n", None, SAME),
    # Non-positive timeouts and sizes.
    ("zero-max-body-bytes", "proxy.max_body_bytes", 0, None, SAME),
    ("negative-max-body-bytes", "proxy.max_body_bytes", -1, None, SAME),
    ("zero-attempts-max-len", "store.attempts_max_len", 0, None, SAME),
    ("zero-redis-timeout", "redis.timeout", 0, None, 0.0),
    ("negative-redis-timeout", "redis.timeout", -0.5, None, SAME),
    ("nan-redis-timeout", "redis.timeout", math.nan, None, SAME),
    ("zero-upstream-timeout", "upstreams[0].timeout", 0, None, 0.0),
    ("negative-upstream-timeout", "upstreams[1].timeout", -30, None, -30.0),
    ("nan-upstream-timeout", "upstreams[0].timeout", math.nan, None, SAME),
    ("zero-sweep-interval", "store.sweep_interval", 0, None, 0.0),
    ("negative-sweep-interval", "store.sweep_interval", -1, None, -1.0),
    ("nan-sweep-interval", "store.sweep_interval", math.nan, None, SAME),
    ("bool-sweep-interval", "store.sweep_interval", True, None, SAME),
    ("string-sweep-interval", "store.sweep_interval", "5s", None, SAME),
    ("negative-filter-memory", "store.filter_memory_mb", -1, None, SAME),
    ("float-filter-memory", "store.filter_memory_mb", 1.5, None, SAME),
    ("string-filter-memory", "store.filter_memory_mb", "512MB", None, SAME),
    ("unknown-import-priority", "store.import_priority", "low", None, SAME),
    ("numeric-import-priority", "store.import_priority", 19, None, SAME),
    ("negative-replica-wait", "store.replica_wait", -1, None, -1.0),
    ("replica-wait-over-a-minute", "store.replica_wait", 61, None, 61.0),
    ("nan-replica-wait", "store.replica_wait", math.nan, None, SAME),
    ("string-replica-wait", "store.replica_wait", "5s", None, SAME),
    # Upstream credentials: identity -> scopes.
    ("credentials-not-a-mapping", "upstreams[0].credentials", [SID], None, SAME),
    ("credentials-string", "upstreams[0].credentials", SID, None, SAME),
    ("credential-identity-space", "upstreams[0].credentials", {"AC 1": ["global"]},
     "upstreams[0].credentials.AC 1", "AC 1"),
    ("credential-identity-colon", "upstreams[0].credentials", {"user:pw": ["global"]},
     "upstreams[0].credentials.user:pw", "user:pw"),
    ("credential-identity-empty", "upstreams[0].credentials", {"": ["global"]},
     "upstreams[0].credentials.", ""),
    ("credential-identity-newline", "upstreams[0].credentials", {"AC1\n": ["global"]},
     "upstreams[0].credentials.AC1\n", "AC1\n"),
    ("credential-identity-float", "upstreams[0].credentials", {1.5: ["global"]},
     "upstreams[0].credentials.1.5", 1.5),
    ("credential-digest-upper-hex", "upstreams[0].credentials", {DIGEST.upper(): ["global"]},
     f"upstreams[0].credentials.{DIGEST.upper()}", DIGEST.upper()),
    ("credential-digest-prefix-upper", "upstreams[0].credentials",
     {"SHA256:" + DIGEST[7:]: ["global"]}, f"upstreams[0].credentials.SHA256:{DIGEST[7:]}",
     "SHA256:" + DIGEST[7:]),
    ("credential-digest-short", "upstreams[0].credentials", {DIGEST[:-1]: ["global"]},
     f"upstreams[0].credentials.{DIGEST[:-1]}", DIGEST[:-1]),
    ("credential-digest-long", "upstreams[0].credentials", {DIGEST + "0": ["global"]},
     f"upstreams[0].credentials.{DIGEST}0", DIGEST + "0"),
    ("credential-digest-not-hex", "upstreams[0].credentials",
     {"sha256:" + "g" * 64: ["global"]}, "upstreams[0].credentials.sha256:" + "g" * 64,
     "sha256:" + "g" * 64),
    ("credential-other-hash", "upstreams[0].credentials", {"sha1:" + "a" * 40: ["global"]},
     "upstreams[0].credentials.sha1:" + "a" * 40, "sha1:" + "a" * 40),
    ("credential-scopes-empty", f"upstreams[0].credentials.{SID}", [], None, SAME),
    ("credential-scopes-null", f"upstreams[0].credentials.{SID}", None, None, SAME),
    ("credential-scopes-string", f"upstreams[0].credentials.{SID}", "global", None, SAME),
    ("credential-scope-invalid", f"upstreams[0].credentials.{SID}", ["global", "tenant acme"],
     f"upstreams[0].credentials.{SID}[1]", "tenant acme"),
    ("credential-scope-glob", f"upstreams[0].credentials.{DIGEST}", ["tenant:*"],
     f"upstreams[0].credentials.{DIGEST}[0]", "tenant:*"),
    ("scope-header-string", "upstreams[0].scope_header", "no", None, SAME),
    ("scope-header-int", "upstreams[0].scope_header", 0, None, SAME),
    ("scope-header-null", "upstreams[0].scope_header", None, None, SAME),
    # Webhooks.
    ("webhooks-not-a-list", "webhooks", {"name": "voice"}, None, SAME),
    ("webhook-not-a-mapping", "webhooks[0]", "voice", None, SAME),
    ("unknown-webhook-key", "webhooks[0].method", "GET", None, SAME),
    ("webhook-name-upper-case", "webhooks[0].name", "Voice", None, SAME),
    ("webhook-name-missing", "webhooks[0].name", DELETE, None, ""),
    ("webhook-name-int", "webhooks[0].name", 7, None, SAME),
    ("webhook-type-unknown", "webhooks[0].type", "plivo-answer", None, SAME),
    ("webhook-type-case-sensitive", "webhooks[0].type", "Twilio-Voice", None, SAME),
    ("webhook-type-missing", "webhooks[0].type", DELETE, None, ""),
    ("webhook-path-relative", "webhooks[0].path", "hooks/voice", None, SAME),
    ("webhook-path-root", "webhooks[0].path", "/", None, ""),
    ("webhook-path-double-slash", "webhooks[0].path", "/hooks//voice", None, SAME),
    ("webhook-path-query", "webhooks[0].path", "/hooks/voice?x=1", None, SAME),
    ("webhook-path-fragment", "webhooks[0].path", "/hooks/voice#x", None, SAME),
    ("webhook-path-template", "webhooks[0].path", "/hooks/{name}", None, SAME),
    ("webhook-path-glob", "webhooks[0].path", "/hooks/*", None, SAME),
    ("webhook-path-int", "webhooks[0].path", 5, None, SAME),
    ("webhook-path-equals-mount", "webhooks[0].path", "/twilio", None, SAME),
    ("webhook-path-under-mount", "webhooks[0].path", "/twilio/voice", None, SAME),
    ("webhook-path-under-mount-trailing-slash", "webhooks[1].path", "/telnyx/sms/",
     None, "/telnyx/sms"),
    ("webhook-default-path-under-mount", "upstreams[1].mount", "/hooks", "webhooks[0].path",
     "/hooks/voice"),
    ("webhook-url-missing", "webhooks[0].url", DELETE, None, ""),
    ("webhook-url-ftp", "webhooks[0].url", "ftp://app.example/voice", None, SAME),
    ("webhook-url-no-scheme", "webhooks[0].url", "app.example/voice", None, SAME),
    ("webhook-url-relative", "webhooks[0].url", "/voice", None, SAME),
    ("webhook-url-no-host", "webhooks[0].url", "https://", None, SAME),
    ("webhook-url-int", "webhooks[0].url", 80, None, SAME),
    ("webhook-url-credentials", "webhooks[0].url", "https://u@app.example/voice", None, SAME),
    ("webhook-url-bad-port", "webhooks[0].url", "https://app.example:x/voice", None, SAME),
    ("webhook-timeout-zero", "webhooks[0].timeout", 0, None, 0.0),
    ("webhook-timeout-negative", "webhooks[0].timeout", -1.5, None, SAME),
    ("webhook-timeout-nan", "webhooks[0].timeout", math.nan, None, SAME),
    ("webhook-timeout-bool", "webhooks[0].timeout", True, None, SAME),
    ("webhook-timeout-string", "webhooks[0].timeout", "10s", None, SAME),
    ("webhook-scopes-not-a-list", "webhooks[0].scopes", "tenant:acme", None, SAME),
    ("webhook-scope-invalid", "webhooks[0].scopes", ["global", "tenant:*"],
     "webhooks[0].scopes[1]", "tenant:*"),
    ("webhook-region-unknown", "webhooks[0].region", "XX", None, SAME),
    ("webhook-region-shown-upper-cased", "webhooks[0].region", "zz", None, "ZZ"),
    ("webhook-region-bool", "webhooks[0].region", False, None, SAME),
    ("webhook-opt-out-scope-capitalised", "webhooks[0].opt_out_scope", "Global", None, SAME),
    ("webhook-opt-out-scope-glob", "webhooks[0].opt_out_scope", "tenant:*", None, SAME),
    ("webhook-opt-out-scope-list", "webhooks[0].opt_out_scope", ["global"], None, SAME),
    ("webhook-opt-out-scope-null", "webhooks[0].opt_out_scope", None, None, SAME),
    ("webhook-duplicate-name", "webhooks[1].name", "voice", "webhooks[1]", "voice"),
    ("webhook-duplicate-path", "webhooks[1].path", "/hooks/voice", "webhooks[1]", "sms"),
    ("webhook-duplicate-path-trailing-slash", "webhooks[1].path", "/hooks/voice/",
     "webhooks[1]", "sms"),
    ("webhook-name-is-an-upstream-name", "webhooks[1].name", "telnyx", None, SAME),
]


@pytest.mark.parametrize(
    ("path", "value", "key", "shown"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD],
)
def test_bad_config_names_key_and_value(
    path: str, value: Any, key: str | None, shown: Any, tmp_path: Path
) -> None:
    """Each bad value raises ConfigError whose message names the key path and the value,
    from parsing or from the preset registry's checks (as the app loads a config)."""
    raw = with_value(path, value)
    key = path if key is None else key
    shown = value if shown is SAME else shown
    with pytest.raises(ConfigError) as caught:
        check_presets(parse(raw, tmp_path))
    err = caught.value
    assert err.key == key
    assert repr(err.value) == repr(shown)
    assert f"config key '{key}'" in str(err)
    assert repr(shown) in str(err)
    assert err.problem
    assert err.problem in str(err)


@pytest.mark.parametrize(
    ("section", "key"),
    [pytest.param("proxy", "proxy.True", id="proxy"),
     pytest.param("log", "log.True", id="log")],
)
def test_unknown_non_string_key_beside_string_key(
    section: str, key: str, tmp_path: Path
) -> None:
    """Unknown keys of mixed types (YAML `on:` is True) still give a ConfigError."""
    raw = base_raw()
    raw[section].update({True: "x", "zzz": 1})
    with pytest.raises(ConfigError) as caught:
        parse(raw, tmp_path)
    assert caught.value.key == key
    assert caught.value.value == "x"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        pytest.param([], "<root>", id="root-list"),
        pytest.param("proxy: {}", "<root>", id="root-string"),
        pytest.param(42, "<root>", id="root-int"),
    ],
)
def test_root_must_be_a_mapping(raw: object, key: str, tmp_path: Path) -> None:
    """A document that is not a mapping is refused as `<root>`."""
    with pytest.raises(ConfigError) as caught:
        parse(raw, tmp_path)
    assert caught.value.key == key
    assert caught.value.value == raw


# --------------------------------------------------------------------------- defaults

@pytest.mark.parametrize("raw", [pytest.param(None, id="none"), pytest.param({}, id="empty")])
def test_empty_config_gives_defaults(raw: object, tmp_path: Path) -> None:
    """An empty document yields every documented default and no upstreams."""
    cfg = parse(raw, tmp_path)
    assert cfg.proxy == ProxyConfig(Listen("127.0.0.1", 8080), 1024 * 1024, "reject")
    assert cfg.admin.listen == Listen("127.0.0.1", 8081)
    assert cfg.redis == RedisConfig("embedded", tmp_path / "data", "gk:", 1.0, None)
    assert cfg.redis.embedded is True
    assert cfg.store == StoreConfig("closed", 100_000)
    assert cfg.log == LogConfig("info", "json", True)
    assert cfg.upstreams == ()
    assert cfg.webhooks == ()
    assert cfg.proxy.tls is None
    assert cfg.source == "<memory>"


def test_upstream_defaults(tmp_path: Path) -> None:
    """A minimal upstream gets mount `/<name>`, no region, reject, 30 s, no scopes."""
    cfg = parse({"upstreams": [{"name": "twilio", "url": "https://api.twilio.com",
                                "preset": "twilio"}]}, tmp_path)
    assert cfg.upstreams == (UpstreamConfig(
        name="twilio", url="https://api.twilio.com", preset="twilio", mount="/twilio",
        region=None, on_block="reject", timeout=30.0, scopes=(), routes=(),
        credentials=(), scope_header=True),)


@pytest.mark.parametrize(
    ("path", "value", "attribute", "expected"),
    [
        pytest.param("upstreams[0].name", "sms-gw_2", "mount", "/sms-gw_2",
                     id="mount-defaults-to-name"),
        pytest.param("upstreams[0].mount", "/gw/twilio/", "mount", "/gw/twilio",
                     id="mount-trailing-slash-dropped"),
        pytest.param("upstreams[0].url", "https://api.twilio.com/", "url",
                     "https://api.twilio.com", id="url-trailing-slash-dropped"),
        pytest.param("upstreams[0].url", "http://10.0.0.5:8443/base", "url",
                     "http://10.0.0.5:8443/base", id="url-http-with-port-and-path"),
        pytest.param("upstreams[0].region", "tr", "region", "TR", id="region-upper-cased"),
        pytest.param("upstreams[0].region", "Gb", "region", "GB", id="region-mixed-case"),
        pytest.param("upstreams[0].region", DELETE, "region", None, id="region-optional"),
        pytest.param("upstreams[0].timeout", 5, "timeout", 5.0, id="int-timeout-as-float"),
        pytest.param("upstreams[0].timeout", 0.25, "timeout", 0.25, id="float-timeout"),
        pytest.param("upstreams[0].on_block", "monitor", "on_block", "monitor",
                     id="on-block-monitor"),
        pytest.param("upstreams[0].on_block", "skip", "on_block", "skip", id="on-block-skip"),
        pytest.param("upstreams[0].scopes", ["tenant:acme", "global", "tenant:acme"],
                     "scopes", ("tenant:acme", "global"), id="scopes-deduplicated-in-order"),
        pytest.param("upstreams[0].scopes", None, "scopes", (), id="scopes-null"),
        pytest.param("upstreams[0].routes", [], "routes", (), id="twilio-empty-routes-ok"),
        pytest.param("upstreams[0].scope_header", False, "scope_header", False,
                     id="scope-header-off"),
        pytest.param("upstreams[0].scope_header", DELETE, "scope_header", True,
                     id="scope-header-defaults-on"),
        pytest.param("upstreams[0].credentials", None, "credentials", (),
                     id="credentials-null"),
        pytest.param("upstreams[0].credentials", {}, "credentials", (),
                     id="credentials-empty"),
        pytest.param("upstreams[0].credentials", DELETE, "credentials", (),
                     id="credentials-absent"),
        pytest.param("upstreams[0].credentials",
                     {SID: ["tenant:acme", "global", "tenant:acme"]}, "credentials",
                     (CredentialScopes(SID, ("tenant:acme", "global")),),
                     id="credential-scopes-deduplicated-in-order"),
        pytest.param("upstreams[0].credentials",
                     {"SK" + "1" * 32: ["agent:7"], "a1b2c3d4": ["tenant:acme"],
                      "MAXXXXXXXXXXXXXXXXXX": ["global"], "user@example.com": ["global"]},
                     "credentials",
                     (CredentialScopes("SK" + "1" * 32, ("agent:7",)),
                      CredentialScopes("a1b2c3d4", ("tenant:acme",)),
                      CredentialScopes("MAXXXXXXXXXXXXXXXXXX", ("global",)),
                      CredentialScopes("user@example.com", ("global",))),
                     id="account-ids-of-several-gateways"),
    ],
)
def test_upstream_values(
    path: str, value: Any, attribute: str, expected: Any, tmp_path: Path
) -> None:
    """Upstream values are normalised as documented."""
    cfg = parse(with_value(path, value), tmp_path)
    assert getattr(cfg.upstreams[0], attribute) == expected


def test_timeout_is_always_a_float(tmp_path: Path) -> None:
    """Integer timeouts become floats (not ints that merely compare equal)."""
    cfg = parse(with_value("redis.timeout", 2), tmp_path)
    assert type(cfg.redis.timeout) is float
    assert type(cfg.upstreams[0].timeout) is float


def test_upstream_credentials_keep_their_order(tmp_path: Path) -> None:
    """Credentials map identities (account ids or token digests) to scopes, in order."""
    cfg = parse(base_raw(), tmp_path)
    assert cfg.upstreams[0].credentials == (
        CredentialScopes(SID, ("tenant:acme",)),
        CredentialScopes(DIGEST, ("tenant:beta", "agent:7")),
    )
    assert cfg.upstreams[0].scope_header is True
    assert cfg.upstreams[1].credentials == ()


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_is_accepted(preset: str, tmp_path: Path) -> None:
    """All ten presets parse and pass the registry's checks; only `generic` takes routes."""
    upstream: dict[str, Any] = {"name": "gw", "url": "https://gw.example", "preset": preset}
    if preset == "generic":
        upstream["routes"] = [ROUTE]
    cfg = check_presets(parse({"upstreams": [upstream]}, tmp_path))
    assert cfg.upstreams[0].preset == preset
    assert len(PRESETS) == 10


@pytest.mark.parametrize(("upstream", "key"), [
    ({"preset": "nexmo"}, "upstreams[0].preset"),
    ({"preset": "generic"}, "upstreams[0].routes"),
    ({"preset": "generic", "routes": []}, "upstreams[0].routes"),
    ({"preset": "twilio", "routes": [ROUTE]}, "upstreams[0].routes"),
    ({"preset": "twilio", "mirror": True}, "upstreams[0].mirror"),
], ids=["unknown-preset", "generic-without-routes", "generic-with-empty-routes",
        "routes-on-twilio", "mirror-without-list-api"])
def test_parsing_checks_only_the_preset_names_syntax(upstream: dict[str, Any], key: str,
                                                     tmp_path: Path) -> None:
    """`parse_config` leaves what needs the registry to `check_presets`, which refuses it
    naming the key."""
    cfg = parse({"upstreams": [{"name": "gw", "url": "https://gw.example", **upstream}]},
                tmp_path)
    with pytest.raises(ConfigError) as caught:
        check_presets(cfg)
    assert caught.value.key == key


@pytest.mark.parametrize("preset", ["Twilio", "", "twi lio", "1twilio", 7])
def test_preset_name_syntax_is_checked_when_parsing(preset: object, tmp_path: Path) -> None:
    """A preset that is not a lower-case name is refused by `parse_config` itself."""
    with pytest.raises(ConfigError) as caught:
        parse({"upstreams": [{"name": "gw", "url": "https://gw.example",
                              "preset": preset}]}, tmp_path)
    assert caught.value.key == "upstreams[0].preset"


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        pytest.param(ROUTE, RouteConfig("POST", "/v2/messages", "sms",
                                         DestinationField("json", "to")), id="json"),
        pytest.param({"method": "post", "path": "/v1/{account}/call", "channel": "voice",
                      "destination": {"form": "To"}},
                     RouteConfig("POST", "/v1/{account}/call", "voice",
                                 DestinationField("form", "To")), id="form-method-upper-cased"),
        pytest.param({"path": "/v1/sms", "channel": "sms",
                      "destination": {"json": "messages[].to"}},
                     RouteConfig("POST", "/v1/sms", "sms",
                                 DestinationField("json", "messages[].to")),
                     id="method-defaults-to-post"),
        pytest.param({"method": "PUT", "path": "/x", "channel": "sms",
                      "destination": {"json": "a.b[].c_d-$e@f"}},
                     RouteConfig("PUT", "/x", "sms", DestinationField("json", "a.b[].c_d-$e@f")),
                     id="dotted-json-path"),
    ],
)
def test_generic_routes(route: dict[str, Any], expected: RouteConfig, tmp_path: Path) -> None:
    """Generic routes parse into RouteConfig with a json or form destination."""
    cfg = parse(with_value("upstreams[1].routes", [route]), tmp_path)
    assert cfg.upstreams[1].routes == (expected,)


@pytest.mark.parametrize(
    ("data_dir", "expected"),
    [
        pytest.param("data", "{base}/data", id="relative"),
        pytest.param("./var/redis", "{base}/var/redis", id="dot-relative"),
        pytest.param("/srv/gatekeeper/data", "/srv/gatekeeper/data", id="absolute"),
    ],
)
def test_data_dir_relative_to_base(data_dir: str, expected: str, tmp_path: Path) -> None:
    """redis.data_dir is resolved against `base`; absolute paths are kept."""
    cfg = parse(with_value("redis.data_dir", data_dir), tmp_path)
    assert cfg.redis.data_dir == Path(expected.format(base=tmp_path))


@pytest.mark.parametrize(
    "url",
    ["redis://localhost:6379/0", "rediss://cache.example:6380", "unix:///run/redis.sock"],
)
def test_redis_url_accepted(url: str, tmp_path: Path) -> None:
    """redis://, rediss:// and unix:// URLs are accepted and mean an external server."""
    cfg = parse(with_value("redis.url", url), tmp_path)
    assert cfg.redis.url == url
    assert cfg.redis.embedded is False


@pytest.mark.parametrize("port", [0, 1, 65535])
def test_port_range_bounds_accepted(port: int, tmp_path: Path) -> None:
    """Ports 0 to 65535 are accepted."""
    assert parse(with_value("proxy.port", port), tmp_path).proxy.listen.port == port


# --------------------------------------------------------------------------- TLS

def _pem_files(directory: Path) -> tuple[Path, Path]:
    """A certificate and a key file (contents are not checked by the config)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    key.write_text("-----BEGIN PRIVATE KEY-----\n", encoding="utf-8")
    return cert, key


@pytest.mark.parametrize(
    ("cert", "key"),
    [
        pytest.param("tls/cert.pem", "tls/key.pem", id="relative"),
        pytest.param("./tls/cert.pem", "tls/../tls/key.pem", id="dot-relative"),
        pytest.param("{base}/tls/cert.pem", "{base}/tls/key.pem", id="absolute"),
    ],
)
def test_proxy_tls_files_resolved_against_base(cert: str, key: str, tmp_path: Path) -> None:
    """proxy.tls names a certificate and a key; relative paths start at the config's dir."""
    _pem_files(tmp_path / "tls")
    raw = {"proxy": {"tls": {"cert": cert.format(base=tmp_path),
                             "key": key.format(base=tmp_path)}}}
    tls = parse(raw, tmp_path).proxy.tls
    assert tls is not None
    assert tls.cert.resolve() == tmp_path / "tls" / "cert.pem"
    assert tls.key.resolve() == tmp_path / "tls" / "key.pem"
    assert tls.cert.is_absolute()
    assert tls.key.is_absolute()


def test_proxy_tls_null_means_plain_http(tmp_path: Path) -> None:
    """`tls: null` (or no tls key) keeps the listener plain HTTP."""
    assert parse({"proxy": {"tls": None}}, tmp_path).proxy.tls is None
    assert parse({"proxy": {}}, tmp_path).proxy.tls is None


def test_proxy_tls_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loaded from a file, TLS paths are relative to that file, not the working directory."""
    conf_dir = tmp_path / "etc"
    cert, key = _pem_files(conf_dir / "certs")
    (conf_dir / "gk.yaml").write_text(
        "proxy:\n  tls:\n    cert: certs/cert.pem\n    key: certs/key.pem\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config("../etc/gk.yaml", env=ENV)
    assert cfg.proxy.tls == TlsConfig(cert, key)


@pytest.mark.parametrize(
    ("tls", "key", "shown"),
    [
        pytest.param("tls.pem", "proxy.tls", "tls.pem", id="not-a-mapping"),
        pytest.param(["cert.pem", "key.pem"], "proxy.tls", ["cert.pem", "key.pem"],
                     id="list"),
        pytest.param({}, "proxy.tls.cert", "", id="empty-mapping"),
        pytest.param({"key": "tls/key.pem"}, "proxy.tls.cert", "", id="cert-missing"),
        pytest.param({"cert": "tls/cert.pem"}, "proxy.tls.key", "", id="key-missing"),
        pytest.param({"cert": "", "key": "tls/key.pem"}, "proxy.tls.cert", "",
                     id="cert-empty"),
        pytest.param({"cert": "tls/nope.pem", "key": "tls/key.pem"}, "proxy.tls.cert",
                     "{base}/tls/nope.pem", id="cert-file-absent"),
        pytest.param({"cert": "tls/cert.pem", "key": "/nonexistent/key.pem"},
                     "proxy.tls.key", "/nonexistent/key.pem", id="key-file-absent"),
        pytest.param({"cert": "tls", "key": "tls/key.pem"}, "proxy.tls.cert", "{base}/tls",
                     id="cert-is-a-directory"),
        pytest.param({"cert": 5, "key": "tls/key.pem"}, "proxy.tls.cert", 5, id="cert-int"),
        pytest.param({"cert": "tls/cert.pem", "key": None}, "proxy.tls.key", None,
                     id="key-null"),
        pytest.param({"cert": "tls/cert.pem", "key": "tls/key.pem", "ca": "tls/ca.pem"},
                     "proxy.tls.ca", "tls/ca.pem", id="unknown-key"),
    ],
)
def test_bad_proxy_tls_names_key_and_value(tls: Any, key: str, shown: Any,
                                           tmp_path: Path) -> None:
    """Bad TLS settings raise ConfigError naming the key and the value (file as resolved)."""
    _pem_files(tmp_path / "tls")
    if isinstance(shown, str):
        shown = shown.format(base=tmp_path)
    with pytest.raises(ConfigError) as caught:
        parse({"proxy": {"tls": tls}}, tmp_path)
    assert caught.value.key == key
    assert caught.value.value == shown
    assert f"config key '{key}'" in str(caught.value)
    assert repr(shown) in str(caught.value)


def test_proxy_tls_file_removed_after_writing_is_refused(tmp_path: Path) -> None:
    """The files must exist when the config is read."""
    cert, _ = _pem_files(tmp_path / "tls")
    shutil.rmtree(tmp_path / "tls")
    with pytest.raises(ConfigError) as caught:
        parse({"proxy": {"tls": {"cert": "tls/cert.pem", "key": "tls/key.pem"}}}, tmp_path)
    assert caught.value.key == "proxy.tls.cert"
    assert caught.value.value == str(cert)


# --------------------------------------------------------------------------- webhooks

def test_webhooks_parse_with_defaults(tmp_path: Path) -> None:
    """A webhook gets path /hooks/<name>, no scopes or region, 10 s and opt-outs to global."""
    cfg = parse(base_raw(), tmp_path)
    assert cfg.webhooks == (
        WebhookConfig(name="voice", type="twilio-voice", path="/hooks/voice",
                      url="https://app.example/voice", scopes=("tenant:acme",), region="US",
                      timeout=5.0, opt_out_scope="tenant:acme"),
        WebhookConfig(name="sms", type="twilio-sms", path="/in/sms",
                      url="http://10.0.0.2:8000/sms", scopes=(), region=None, timeout=10.0,
                      opt_out_scope="global"),
    )
    assert type(cfg.webhooks[0].timeout) is float


@pytest.mark.parametrize("kind", WEBHOOK_TYPES)
def test_every_webhook_type_is_accepted(kind: str, tmp_path: Path) -> None:
    """twilio-voice, vonage-answer and twilio-sms are the webhook types."""
    cfg = parse({"webhooks": [{"name": "in", "type": kind, "url": "https://app.example/"}]},
                tmp_path)
    assert cfg.webhooks[0].type == kind
    assert cfg.webhooks[0].path == "/hooks/in"


@pytest.mark.parametrize(
    ("path", "value", "attribute", "expected"),
    [
        pytest.param("webhooks[0].path", "/in/voice/", "path", "/in/voice",
                     id="path-trailing-slash-dropped"),
        pytest.param("webhooks[0].path", "/twilio-hooks/voice", "path", "/twilio-hooks/voice",
                     id="path-beside-mount-not-under-it"),
        pytest.param("webhooks[0].path", "/twilio2", "path", "/twilio2",
                     id="path-mount-as-prefix-of-segment"),
        pytest.param("webhooks[0].name", "call-in_2", "path", "/hooks/call-in_2",
                     id="default-path-from-name"),
        pytest.param("webhooks[0].region", "tr", "region", "TR", id="region-upper-cased"),
        pytest.param("webhooks[0].region", None, "region", None, id="region-null"),
        pytest.param("webhooks[0].timeout", 0.5, "timeout", 0.5, id="float-timeout"),
        pytest.param("webhooks[0].scopes", ["tenant:acme", "global", "tenant:acme"],
                     "scopes", ("tenant:acme", "global"), id="scopes-deduplicated-in-order"),
        pytest.param("webhooks[0].scopes", None, "scopes", (), id="scopes-null"),
        pytest.param("webhooks[0].opt_out_scope", "global", "opt_out_scope", "global",
                     id="opt-out-scope-global"),
        pytest.param("webhooks[0].opt_out_scope", DELETE, "opt_out_scope", "global",
                     id="opt-out-scope-default"),
        pytest.param("webhooks[0].url", "http://127.0.0.1:9000/voice?app=1", "url",
                     "http://127.0.0.1:9000/voice?app=1", id="url-with-port-and-query"),
        pytest.param("webhooks[0].type", "vonage-answer", "type", "vonage-answer",
                     id="vonage-answer"),
    ],
)
def test_webhook_values(path: str, value: Any, attribute: str, expected: Any,
                        tmp_path: Path) -> None:
    """Webhook values are normalised as documented."""
    cfg = parse(with_value(path, value), tmp_path)
    assert getattr(cfg.webhooks[0], attribute) == expected


@pytest.mark.parametrize("webhooks", [pytest.param(None, id="null"), pytest.param([], id="empty")])
def test_no_webhooks(webhooks: Any, tmp_path: Path) -> None:
    """`webhooks: null` or `[]` means no webhooks."""
    assert parse(with_value("webhooks", webhooks), tmp_path).webhooks == ()


# --------------------------------------------------------------------------- admin key

K1, K2, LITERAL = "k1-secret-0123456789", "k2-secret-0123456789", "literal-secret-0123456789"

@pytest.mark.parametrize(
    ("admin", "env", "key", "source"),
    [
        pytest.param({}, {"GATEKEEPER_ADMIN_KEY": K1}, K1, "$GATEKEEPER_ADMIN_KEY",
                     id="default-env-var"),
        pytest.param({}, {}, None, "$GATEKEEPER_ADMIN_KEY", id="default-env-var-unset"),
        pytest.param({}, {"GATEKEEPER_ADMIN_KEY": ""}, None, "$GATEKEEPER_ADMIN_KEY",
                     id="default-env-var-empty"),
        pytest.param({"key_env": "MY_KEY"}, {"MY_KEY": K2, "GATEKEEPER_ADMIN_KEY": K1},
                     K2, "$MY_KEY", id="key-env-names-the-variable"),
        pytest.param({"key_env": "MY_KEY"}, {"GATEKEEPER_ADMIN_KEY": K1}, None, "$MY_KEY",
                     id="key-env-unset-no-fallback"),
        pytest.param({"key": LITERAL}, {}, LITERAL, "admin.key", id="literal-key"),
        pytest.param({"key": LITERAL, "key_env": "MY_KEY"},
                     {"MY_KEY": K2, "GATEKEEPER_ADMIN_KEY": K1}, LITERAL, "admin.key",
                     id="literal-key-wins"),
    ],
)
def test_admin_key(
    admin: dict[str, Any], env: dict[str, str], key: str | None, source: str, tmp_path: Path
) -> None:
    """The admin key comes from a literal, else the env var named by key_env."""
    cfg = parse({"admin": admin}, tmp_path, env=env)
    assert cfg.admin.key == key
    assert cfg.admin.key_source == source


def test_admin_key_read_from_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without `env=`, $GATEKEEPER_ADMIN_KEY is read from os.environ."""
    monkeypatch.setenv("GATEKEEPER_ADMIN_KEY", "from-os-environ-0123456789")
    cfg = parse_config({}, base=tmp_path)
    assert cfg.admin.key == "from-os-environ-0123456789"


def test_admin_key_not_in_repr(tmp_path: Path) -> None:
    """The admin key never shows in the config's repr (and so not in logs)."""
    cfg = parse({}, tmp_path, env={"GATEKEEPER_ADMIN_KEY": "super-secret-value"})
    assert cfg.admin.key == "super-secret-value"
    assert "super-secret-value" not in repr(cfg)


def test_legacy_admin_key_is_one_write_key_for_every_scope(tmp_path: Path) -> None:
    """The single key (`key`/`key_env`) is an `admin` key that may write any scope."""
    cfg = parse({}, tmp_path, env={"GATEKEEPER_ADMIN_KEY": K1})
    assert cfg.admin.keys == (AdminKey("admin", K1, "write", ("*",)),)
    assert AdminConfig().keys == ()


# --------------------------------------------------------------------------- admin keys

OPS_SECRET = "ops-secret-0123456789"
RO_SECRET = "read-only-secret-0123"


def admin_keys(*keys: dict[str, Any], **admin: Any) -> dict[str, Any]:
    """A raw config whose admin section lists `keys` (plus any other admin settings)."""
    return {"admin": {"keys": list(keys), **admin}}


def test_admin_keys_with_defaults(tmp_path: Path) -> None:
    """A listed key defaults to role `read` and scopes `["*"]`; the keys keep their
    order, `key` is the first one's secret, and the source names `admin.keys`."""
    cfg = parse(admin_keys({"name": "ro", "secret": RO_SECRET},
                           {"name": "ops", "secret": OPS_SECRET, "role": "write",
                            "scopes": ["tenant:acme*", "global"]}), tmp_path)
    assert cfg.admin.keys == (AdminKey("ro", RO_SECRET, "read", ("*",)),
                              AdminKey("ops", OPS_SECRET, "write", ("tenant:acme*", "global")))
    assert isinstance(cfg.admin.keys[1].scopes, tuple)
    assert cfg.admin.key == RO_SECRET
    assert cfg.admin.key_source == "admin.keys"


def test_admin_keys_ignore_the_legacy_variable(tmp_path: Path) -> None:
    """With `keys`, $GATEKEEPER_ADMIN_KEY is not a key as well."""
    cfg = parse(admin_keys({"name": "ops", "secret": OPS_SECRET}), tmp_path,
                env={"GATEKEEPER_ADMIN_KEY": "legacy-key-0123456789"})
    assert [k.secret for k in cfg.admin.keys] == [OPS_SECRET]


def test_admin_key_secret_from_env_and_file(tmp_path: Path) -> None:
    """`secret_env` names a variable; `secret_file` is read (relative to the config's
    directory, or absolute) and stripped of surrounding whitespace."""
    (tmp_path / "ops.key").write_text(f"  {OPS_SECRET}\n", encoding="utf-8")
    absolute = tmp_path / "keys" / "audit.key"
    absolute.parent.mkdir()
    absolute.write_text("audit-secret-0123456789\n", encoding="utf-8")
    cfg = parse(admin_keys({"name": "env", "secret_env": "ENV_KEY"},
                           {"name": "file", "secret_file": "ops.key"},
                           {"name": "abs", "secret_file": str(absolute)}),
                tmp_path, env={"ENV_KEY": RO_SECRET})
    assert [(k.name, k.secret) for k in cfg.admin.keys] == [
        ("env", RO_SECRET), ("file", OPS_SECRET), ("abs", "audit-secret-0123456789")]


def test_admin_key_secret_of_exactly_16_characters_is_accepted(tmp_path: Path) -> None:
    """16 characters is the minimum length of a listed key's secret."""
    cfg = parse(admin_keys({"name": "ops", "secret": "x" * 16}), tmp_path)
    assert cfg.admin.key == "x" * 16


def test_admin_key_secrets_not_in_repr(tmp_path: Path) -> None:
    """Listed keys' secrets never show in the config's repr; their names do."""
    cfg = parse(admin_keys({"name": "ops", "secret": OPS_SECRET},
                           {"name": "ro", "secret_env": "RO"}), tmp_path, env={"RO": RO_SECRET})
    assert OPS_SECRET not in repr(cfg)
    assert RO_SECRET not in repr(cfg)
    assert "'ops'" in repr(cfg.admin)


@pytest.mark.parametrize(("scopes", "allowed", "refused"), [
    (["*"], ["global", "tenant:acme", "agent:42"], []),
    (["tenant:acme*"], ["tenant:acme", "tenant:acme-eu"], ["global", "tenant:beta"]),
    (["tenant*", "global"], ["global", "tenant:acme"], ["agent:42"]),
    (["agent:42"], ["agent:42"], ["agent:420", "agent:4", "global"]),
], ids=["everything", "tenant-glob", "kind-glob-and-global", "one-scope"])
def test_admin_key_scope_globs(scopes: list[str], allowed: list[str], refused: list[str],
                               tmp_path: Path) -> None:
    """A key's scopes are globs matched against the whole scope name."""
    [key] = parse(admin_keys({"name": "ops", "secret": OPS_SECRET, "scopes": scopes}),
                  tmp_path).admin.keys
    assert [s for s in allowed + refused if key.permits(s)] == allowed


@pytest.mark.parametrize(("role", "read", "write"), [("read", True, False),
                                                    ("write", True, True)])
def test_admin_key_roles(role: str, read: bool, write: bool, tmp_path: Path) -> None:
    """`write` covers reading; `read` only reads."""
    [key] = parse(admin_keys({"name": "k", "secret": OPS_SECRET, "role": role}),
                  tmp_path).admin.keys
    assert (key.allows("read"), key.allows("write")) == (read, write)


OPS = {"name": "ops", "secret": OPS_SECRET}
# (id, keys, env, key the error names, value shown)
BAD_KEYS: list[tuple[str, Any, dict[str, str], str, Any]] = [
    ("keys-empty", [], {}, "admin.keys", []),
    ("keys-not-a-list", "ops", {}, "admin.keys", "ops"),
    ("keys-mapping", {"name": "ops"}, {}, "admin.keys", {"name": "ops"}),
    ("key-not-a-mapping", ["ops"], {}, "admin.keys[0]", "ops"),
    ("no-name", [{"secret": OPS_SECRET}], {}, "admin.keys[0].name", ""),
    ("name-with-space", [{**OPS, "name": "ops team"}], {}, "admin.keys[0].name", "ops team"),
    ("name-not-a-string", [{**OPS, "name": 7}], {}, "admin.keys[0].name", 7),
    ("no-secret", [{"name": "ops"}], {}, "admin.keys[0]", "ops"),
    ("secret-and-env", [{**OPS, "secret_env": "OPS_KEY"}], {"OPS_KEY": RO_SECRET},
     "admin.keys[0]", "ops"),
    ("env-and-file", [{"name": "ops", "secret_env": "OPS_KEY", "secret_file": "ops.key"}],
     {"OPS_KEY": RO_SECRET}, "admin.keys[0]", "ops"),
    ("secret-too-short", [{**OPS, "secret": "x" * 15}], {}, "admin.keys[0].secret",
     "<hidden>"),
    ("secret-empty", [{**OPS, "secret": ""}], {}, "admin.keys[0].secret", "<hidden>"),
    ("secret-not-a-string", [{**OPS, "secret": ["x" * 16]}], {}, "admin.keys[0].secret",
     "<hidden>"),
    ("secret-unquoted-number", [{**OPS, "secret": 123456789012345678}], {},
     "admin.keys[0].secret", "<hidden>"),
    ("env-unset", [{"name": "ops", "secret_env": "OPS_KEY"}], {},
     "admin.keys[0].secret_env", "OPS_KEY"),
    ("env-empty", [{"name": "ops", "secret_env": "OPS_KEY"}], {"OPS_KEY": ""},
     "admin.keys[0].secret_env", "OPS_KEY"),
    ("env-too-short", [{"name": "ops", "secret_env": "OPS_KEY"}], {"OPS_KEY": "short"},
     "admin.keys[0].secret_env", "OPS_KEY"),
    ("file-missing", [{"name": "ops", "secret_file": "missing.key"}], {},
     "admin.keys[0].secret_file", "<tmp>/missing.key"),
    ("file-too-short", [{"name": "ops", "secret_file": "short.key"}], {},
     "admin.keys[0].secret_file", "short.key"),
    ("bad-role", [{**OPS, "role": "admin"}], {}, "admin.keys[0].role", "admin"),
    ("role-case", [{**OPS, "role": "Write"}], {}, "admin.keys[0].role", "Write"),
    ("scopes-empty", [{**OPS, "scopes": []}], {}, "admin.keys[0].scopes", []),
    ("scopes-not-a-list", [{**OPS, "scopes": "tenant:*"}], {}, "admin.keys[0].scopes",
     "tenant:*"),
    ("scope-uppercase", [{**OPS, "scopes": ["global", "Tenant:acme"]}], {},
     "admin.keys[0].scopes[1]", "Tenant:acme"),
    ("scope-with-space", [{**OPS, "scopes": ["tenant acme"]}], {},
     "admin.keys[0].scopes[0]", "tenant acme"),
    ("scope-not-a-string", [{**OPS, "scopes": [7]}], {}, "admin.keys[0].scopes[0]", 7),
    ("scope-empty", [{**OPS, "scopes": [""]}], {}, "admin.keys[0].scopes[0]", ""),
    ("unknown-field", [{**OPS, "expires": "never"}], {}, "admin.keys[0].expires", "never"),
    ("duplicate-name", [OPS, {"name": "ops", "secret": RO_SECRET}], {},
     "admin.keys[1].name", "ops"),
    ("duplicate-secret", [OPS, {"name": "ro", "secret_env": "RO"}], {"RO": OPS_SECRET},
     "admin.keys[1]", "ro"),
]


@pytest.mark.parametrize(("keys", "env", "key", "shown"), [c[1:] for c in BAD_KEYS],
                         ids=[c[0] for c in BAD_KEYS])
def test_bad_admin_keys_name_key_and_value_but_never_a_secret(
        keys: Any, env: dict[str, str], key: str, shown: Any, tmp_path: Path) -> None:
    """Each bad listed key raises ConfigError naming the key path and value; no secret
    (of any key) appears in the message."""
    (tmp_path / "short.key").write_text("short\n", encoding="utf-8")
    if shown == "<tmp>/missing.key":
        shown = str(tmp_path / "missing.key")
    with pytest.raises(ConfigError) as caught:
        parse({"admin": {"keys": keys}}, tmp_path, env=env)
    assert caught.value.key == key
    assert caught.value.value == shown
    assert f"config key '{key}'" in str(caught.value)
    for secret in (OPS_SECRET, RO_SECRET, "x" * 15, "123456789012345678"):
        assert secret not in str(caught.value)


@pytest.mark.parametrize("legacy", [{"key": "literal-key-0123456789"},
                                    {"key_env": "GATEKEEPER_ADMIN_KEY"},
                                    {"key": "literal-key-0123456789", "key_env": "OTHER"}],
                         ids=["key", "key-env", "both"])
def test_admin_keys_cannot_mix_with_the_single_key(legacy: dict[str, str],
                                                   tmp_path: Path) -> None:
    """`keys` and `key`/`key_env` are two ways to say the same thing: not both."""
    with pytest.raises(ConfigError) as caught:
        parse(admin_keys(OPS, **legacy), tmp_path)
    assert caught.value.key == "admin.keys"
    assert "either" in caught.value.problem
    assert "literal-key-0123456789" not in str(caught.value)


def test_admin_key_file_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    """An unreadable secret_file is a ConfigError naming it, not a crash."""
    (tmp_path / "keys").mkdir()
    with pytest.raises(ConfigError) as caught:
        parse(admin_keys({"name": "ops", "secret_file": "keys"}), tmp_path)
    assert caught.value.key == "admin.keys[0].secret_file"
    assert caught.value.value == str(tmp_path / "keys")


# --------------------------------------------------------------------------- store

@pytest.mark.parametrize(("value", "expected"), [(None, 5.0), (1, 1.0), (0.05, 0.05),
                                                 (3600, 3600.0)],
                         ids=["default", "int", "fraction", "hour"])
def test_store_sweep_interval(value: float | None, expected: float, tmp_path: Path) -> None:
    """store.sweep_interval is seconds between sweeps of expired entries (default 5),
    always a float."""
    raw = {} if value is None else {"store": {"sweep_interval": value}}
    interval = parse(raw, tmp_path).store.sweep_interval
    assert interval == expected
    assert isinstance(interval, float)


@pytest.mark.parametrize(("value", "expected"), [(None, 512), (0, 0), (4096, 4096)],
                         ids=["default", "none", "big"])
def test_store_filter_memory(value: int | None, expected: int, tmp_path: Path) -> None:
    """store.filter_memory_mb caps each process's copies of packed loads' filters
    (default 512; 0 keeps none)."""
    raw = {} if value is None else {"store": {"filter_memory_mb": value}}
    assert parse(raw, tmp_path).store.filter_memory_mb == expected


@pytest.mark.parametrize(("value", "expected"),
                         [(None, "idle"), ("idle", "idle"), ("normal", "normal")],
                         ids=["default", "idle", "normal"])
def test_store_import_priority(value: str | None, expected: str, tmp_path: Path) -> None:
    """store.import_priority: `gatekeeper lists import` runs at idle CPU priority unless
    configured `normal`."""
    raw = {} if value is None else {"store": {"import_priority": value}}
    assert parse(raw, tmp_path).store.import_priority == expected


@pytest.mark.parametrize(("value", "expected"), [(None, 5.0), (0, 0.0), (0.5, 0.5)],
                         ids=["default", "no-wait", "half-a-second"])
def test_store_replica_wait(value: float | None, expected: float, tmp_path: Path) -> None:
    """store.replica_wait: an acknowledged change waits up to 5 s for a replica of its
    master to hold it, unless configured otherwise (0: not at all)."""
    raw = {} if value is None else {"store": {"replica_wait": value}}
    assert parse(raw, tmp_path).store.replica_wait == expected


# --------------------------------------------------------------------------- files

YAML_TEXT = """\
redis:
  data_dir: ./store
upstreams:
  - name: twilio
    url: https://api.twilio.com
    preset: twilio
    region: tr
"""


def test_load_config_reads_file_relative_to_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """data_dir is relative to the config file's directory, not the working directory."""
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    (conf_dir / "gk.yaml").write_text(YAML_TEXT, encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config("../etc/gk.yaml", env=ENV)
    assert cfg.redis.data_dir == conf_dir / "store"
    assert cfg.upstreams[0].region == "TR"
    assert cfg.admin.key == KEY
    assert cfg.source == "../etc/gk.yaml"


def test_load_config_uses_gatekeeper_config_env(tmp_path: Path) -> None:
    """With no path given, $GATEKEEPER_CONFIG names the file."""
    path = tmp_path / "from-env.yaml"
    path.write_text(YAML_TEXT, encoding="utf-8")
    cfg = load_config(env={"GATEKEEPER_CONFIG": str(path)})
    assert cfg.source == str(path)
    assert cfg.upstreams[0].name == "twilio"


def test_load_config_path_argument_beats_env(tmp_path: Path) -> None:
    """An explicit path wins over $GATEKEEPER_CONFIG."""
    path = tmp_path / "arg.yaml"
    path.write_text("log: {level: debug}\n", encoding="utf-8")
    cfg = load_config(str(path), env={"GATEKEEPER_CONFIG": str(tmp_path / "missing.yaml")})
    assert cfg.log.level == "debug"


def test_load_config_defaults_to_config_yaml_in_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a path or $GATEKEEPER_CONFIG, ./config.yaml is read."""
    (tmp_path / "config.yaml").write_text("log: {format: console}\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(env={})
    assert cfg.log.format == "console"
    assert cfg.redis.data_dir == tmp_path / "data"


@pytest.mark.parametrize(
    ("path", "env", "expected"),
    [
        pytest.param("a.yaml", {"GATEKEEPER_CONFIG": "b.yaml"}, "a.yaml", id="argument"),
        pytest.param(None, {"GATEKEEPER_CONFIG": "b.yaml"}, "b.yaml", id="env"),
        pytest.param(None, {"GATEKEEPER_CONFIG": ""}, "config.yaml", id="empty-env"),
        pytest.param(None, {}, "config.yaml", id="default"),
        pytest.param("", {"GATEKEEPER_CONFIG": "b.yaml"}, "b.yaml", id="empty-argument"),
    ],
)
def test_resolve_path(path: str | None, env: dict[str, str], expected: str) -> None:
    """resolve_path: argument, else $GATEKEEPER_CONFIG, else config.yaml."""
    assert resolve_path(path, env) == Path(expected)


@pytest.mark.parametrize(
    ("content", "key"),
    [
        pytest.param(None, "--config", id="missing-file"),
        pytest.param("DIR", "--config", id="directory"),
        pytest.param(b"\xff\xfe\x00bad", "--config", id="not-utf8"),
        pytest.param("proxy: [unclosed\n", "<file>", id="invalid-yaml-flow"),
        pytest.param("proxy:\n  port: 1\n bad-indent: 2\n", "<file>", id="invalid-yaml-indent"),
        pytest.param("- just\n- a list\n", "<root>", id="yaml-list-document"),
        pytest.param("proxy:\n  on: reject\n  extra: 1\n", "proxy.True",
                     id="yaml-boolean-key-on"),
    ],
)
def test_unreadable_or_bad_files_raise_config_error(
    content: str | bytes | None, key: str, tmp_path: Path
) -> None:
    """Missing, unreadable or malformed files raise ConfigError, never something else."""
    path = tmp_path / "gk.yaml"
    if content == "DIR":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), env=ENV)
    assert caught.value.key == key
    if key in ("--config", "<file>"):
        assert caught.value.value == str(path)
        assert str(path) in str(caught.value)


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    """An empty config file is a valid config with every default."""
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    cfg = load_config(str(path), env={})
    assert cfg.proxy == ProxyConfig()
    assert cfg.upstreams == ()


def test_shipped_config_yaml_loads() -> None:
    """The repository's config.yaml is valid and says what its comments say."""
    cfg = check_presets(load_config(str(REPO / "config.yaml"), env=ENV))
    assert cfg.proxy.listen == Listen("127.0.0.1", 8080)
    assert cfg.admin.listen == Listen("127.0.0.1", 8081)
    assert cfg.admin.key == KEY
    assert cfg.redis.embedded
    assert cfg.redis.data_dir == REPO / "data"
    by_name = {u.name: u for u in cfg.upstreams}
    # Every preset but generic is mounted at its provider's real base URL.
    assert {u.preset for u in cfg.upstreams} == set(PRESETS) - {"generic"}
    assert by_name["twilio"].url == "https://api.twilio.com"
    assert (by_name["twilio"].mount, by_name["twilio"].region) == ("/twilio", "US")
    assert by_name["telnyx"].url == "https://api.telnyx.com"
    assert by_name["prelude"].url == "https://api.prelude.dev"
    assert by_name["iletimerkezi"].url == "https://api.iletimerkezi.com"
    assert all(u.url.startswith("https://") for u in cfg.upstreams)
    assert all(u.mount == f"/{u.name}" for u in cfg.upstreams)


# --------------------------------------------------------------------------- immutability

def _instances(tmp_path: Path) -> list[tuple[str, object]]:
    cert, key = _pem_files(tmp_path / "tls")
    raw = base_raw()
    raw["proxy"]["tls"] = {"cert": str(cert), "key": str(key)}
    cfg = parse(raw, tmp_path)
    route = cfg.upstreams[1].routes[0]
    assert cfg.proxy.tls is not None
    return [("config", cfg), ("proxy", cfg.proxy), ("listen", cfg.proxy.listen),
            ("admin", cfg.admin), ("redis", cfg.redis), ("store", cfg.store),
            ("log", cfg.log), ("upstream", cfg.upstreams[0]), ("route", route),
            ("destination", route.destination), ("tls", cfg.proxy.tls),
            ("credential", cfg.upstreams[0].credentials[0]), ("webhook", cfg.webhooks[0])]


@pytest.mark.parametrize(
    "name",
    ["config", "proxy", "listen", "admin", "redis", "store", "log", "upstream", "route",
     "destination", "tls", "credential", "webhook"],
)
def test_config_dataclasses_are_frozen(name: str, tmp_path: Path) -> None:
    """Every config object refuses assignment to its fields."""
    obj = dict(_instances(tmp_path))[name]
    assert dataclasses.is_dataclass(obj)
    first = dataclasses.fields(obj)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, first, getattr(obj, first))


def test_config_collections_are_tuples(tmp_path: Path) -> None:
    """Upstreams, scopes and routes are tuples, so nothing inside can be appended to."""
    cfg = parse(base_raw(), tmp_path)
    assert isinstance(cfg.upstreams, tuple)
    assert isinstance(cfg.upstreams[0].scopes, tuple)
    assert isinstance(cfg.upstreams[1].routes, tuple)
    assert isinstance(cfg.upstreams[0].credentials, tuple)
    assert isinstance(cfg.upstreams[0].credentials[1].scopes, tuple)
    assert isinstance(cfg.webhooks, tuple)
    assert isinstance(cfg.webhooks[0].scopes, tuple)


def test_config_error_attributes() -> None:
    """ConfigError keeps key, value and problem, and its message shows all three."""
    err = ConfigError("upstreams[0].on_block", "drop", "expected one of reject, skip, monitor")
    assert (err.key, err.value, err.problem) == (
        "upstreams[0].on_block", "drop", "expected one of reject, skip, monitor")
    assert str(err) == ("config key 'upstreams[0].on_block': expected one of reject, skip, "
                        "monitor (got 'drop')")


def test_admin_config_default_source() -> None:
    """AdminConfig's default source names the default environment variable."""
    assert AdminConfig().key_source == "$GATEKEEPER_ADMIN_KEY"
    assert AdminConfig().key is None


def test_all_digit_credential_ids_are_read_as_ids() -> None:
    """An unquoted all-digit api_key (a YAML integer) is still an account id."""
    raw = {"upstreams": [{"name": "v", "url": "https://x.example", "preset": "vonage",
                          "credentials": {12345678: ["tenant:acme"]}}]}
    [credential] = parse_config(raw, env={}).upstreams[0].credentials
    assert credential.identity == "12345678"
    assert credential.scopes == ("tenant:acme",)


@pytest.mark.parametrize("path", ["/hooks/../twilio", "/hooks/./x", "/a%2Fb"],
                         ids=["dotdot", "dot", "percent"])
def test_webhook_paths_and_mounts_refuse_dot_segments(path: str) -> None:
    """Paths that would be resolved or decoded differently from how they are written fail."""
    with pytest.raises(ConfigError) as hook:
        parse_config({"webhooks": [{"name": "h", "type": "twilio-voice", "path": path,
                                    "url": "https://app.example/x"}]}, env={})
    assert hook.value.key == "webhooks[0].path"
    with pytest.raises(ConfigError) as mount:
        parse_config({"upstreams": [{"name": "t", "url": "https://x.example",
                                     "preset": "twilio", "mount": path}]}, env={})
    assert mount.value.key == "upstreams[0].mount"


@pytest.mark.parametrize(("admin", "env", "key"), [
    ({}, {"GATEKEEPER_ADMIN_KEY": "change-me"}, "$GATEKEEPER_ADMIN_KEY"),
    ({}, {"GATEKEEPER_ADMIN_KEY": "a-long-enough-secret\n"}, "$GATEKEEPER_ADMIN_KEY"),
    ({"key": "short"}, {}, "admin.key"),
    ({"keys": None}, {}, "admin.keys"),
    ({"keys": [{"name": "k", "secret": " padded-secret-0123456789 "}]}, {},
     "admin.keys[0].secret"),
    ({"keys": [{"name": "k", "secret_env": "not a name"}]}, {}, "admin.keys[0].secret_env"),
    ({"keys": [{"name": "k", "secret": "a-long-enough-secret", "scopes": ["tenant:"]}]}, {},
     "admin.keys[0].scopes[0]"),
], ids=["legacy-too-short", "legacy-trailing-newline", "literal-too-short", "keys-null",
        "padded-secret", "bad-env-name", "empty-scope-id"])
def test_admin_secrets_that_could_never_match_are_refused(
        admin: dict[str, object], env: dict[str, str], key: str) -> None:
    """Short, padded or unusable keys fail at start-up, naming the key, hiding the secret."""
    with pytest.raises(ConfigError) as raised:
        parse_config({"admin": admin}, env=env)
    assert raised.value.key == key
    assert "a-long-enough" not in str(raised.value)

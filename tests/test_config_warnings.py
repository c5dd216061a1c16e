"""`gatekeeper config check` warnings (config/warnings.py): settings that are valid but
risky each give one warning; a plain config gives none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gatekeeper.cli import main
from gatekeeper.config import parse_config
from gatekeeper.config.warnings import config_warnings

UPSTREAM = {"name": "twilio", "url": "https://api.twilio.com", "preset": "twilio"}
KEY = {"admin": {"key": "k" * 24}}


def config(**raw: Any) -> Any:
    return parse_config({"upstreams": [UPSTREAM], **KEY, **raw})


@pytest.mark.parametrize(("raw", "expected"), [
    ({}, None),
    ({"upstreams": [{**UPSTREAM, "on_block": "monitor"}]}, "on_block monitor"),
    ({"upstreams": [{**UPSTREAM, "credentials": {"AC1": ["tenant:acme"]}}]},
     "X-Gatekeeper-Scope is accepted"),
    ({"upstreams": [{**UPSTREAM, "credentials": {"AC1": ["tenant:acme"]},
                     "scope_header": False}]}, None),
    ({"upstreams": [{**UPSTREAM, "unknown_writes": "forward"}]}, "unknown_writes forward"),
    ({"store": {"on_error": "open"}}, "store.on_error open"),
    ({"proxy": {"on_invalid": "forward"}}, "proxy.on_invalid forward"),
    ({"admin": {"key": "k" * 24, "host": "0.0.0.0"}}, "is not loopback"),
])
def test_each_risky_setting_gives_its_warning(raw: dict[str, Any], expected: str | None
                                              ) -> None:
    """Table: a setting and the warning it gives (None: no warning)."""
    found = config_warnings(config(**raw))
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1
        assert expected in found[0]


def test_no_admin_key_is_a_warning() -> None:
    """Without any admin key the list API refuses every call: said once."""
    found = config_warnings(parse_config({"upstreams": [UPSTREAM]}, env={}))
    assert len(found) == 1
    assert "no admin key" in found[0]


@pytest.mark.parametrize(("stop", "warned"), [(39.0, True), (40.0, False), (None, False)])
def test_a_stop_timeout_shorter_than_a_stop_can_take_is_a_warning(
        stop: float | None, warned: bool) -> None:
    """drain 10 s + upstream timeout 30 s = 40 s: a shorter stop timeout warns."""
    found = config_warnings(config(), stop_timeout=stop)
    assert any("stop timeout" in w for w in found) == warned


@pytest.mark.parametrize(("limit", "warned"), [(1024, True), (65536, False), (-1, False)])
def test_an_open_file_limit_below_the_need_is_a_warning(limit: int, warned: bool) -> None:
    """The limit against what 1,000 clients and full pools need (-1: unlimited)."""
    found = config_warnings(config(), open_files=limit, open_files_needed=1384)
    assert any("open-file limit" in w for w in found) == warned


def test_config_check_prints_ok_then_the_warnings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Exit 0 with warnings on stderr; the summary says how long a stop can take."""
    monkeypatch.delenv("GATEKEEPER_CONFIG", raising=False)
    monkeypatch.setenv("GATEKEEPER_ADMIN_KEY", "k" * 24)
    # This machine's open-file limit must not add a warning of its own.
    monkeypatch.setattr("gatekeeper.cli.resource.getrlimit", lambda _which: (65536, 65536))
    path = tmp_path / "c.yaml"
    path.write_text('upstreams: [{name: t, url: "https://api.twilio.com", preset: twilio, '
                    'on_block: monitor}]\n')
    assert main(["config", "check", "--config", str(path), "--stop-timeout", "20"]) == 0
    out, err = capsys.readouterr()
    assert "OK (1 upstreams, 2 warnings; a stop takes at most 40 s)" in out
    assert err.count("warning: ") == 2


def test_version_names_the_package_and_python(capsys: pytest.CaptureFixture[str]) -> None:
    """`gatekeeper version` prints one line with the versions."""
    assert main(["version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("gatekeeper 0.1.0 (Python 3.")

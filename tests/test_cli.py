"""The `gatekeeper` command line: config check, check NUMBER (external and embedded
stores) and `run` end to end as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatekeeper.cli import EXIT_CONFIG, EXIT_RUNTIME, main
from gatekeeper.config import RedisConfig, StoreConfig
from gatekeeper.embedded import STATE_FILE, EmbeddedRedis, free_port, read_running
from gatekeeper.policy import ListName
from gatekeeper.store import EntryMeta, ListItem, Store, connect
from tests.conftest import ADMIN_KEY

REPO = Path(__file__).resolve().parent.parent
SHIPPED_CONFIG = REPO / "config.yaml"
GATEKEEPER = Path(sys.executable).parent / "gatekeeper"
UPSTREAMS = [{"name": "twilio", "url": "https://api.twilio.com", "preset": "twilio",
              "region": "US"}]


@pytest.fixture(autouse=True)
def no_config_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """$GATEKEEPER_CONFIG from the caller's shell must not leak into these tests."""
    monkeypatch.delenv("GATEKEEPER_CONFIG", raising=False)


def write_config(path: Path, **sections: Any) -> Path:
    """A YAML config at `path` with one upstream; keyword arguments replace sections."""
    raw: dict[str, Any] = {"upstreams": UPSTREAMS, "log": {"level": "warning"}}
    raw.update(sections)
    path.write_text(yaml.safe_dump(raw))
    return path


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """main(argv) with its exit code, stdout and stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def redis_pids(data_dir: Path) -> list[int]:
    """Live processes whose working directory is `data_dir` (redis-server chdirs to its
    `dir`; it rewrites its own command line, so that cannot be matched)."""
    wanted = str(data_dir.resolve())
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if os.readlink(proc / "cwd") == wanted:
                pids.append(int(proc.name))
    return pids


Seed = dict[tuple[ListName, str], list[ListItem]]


async def seed(url: str, prefix: str, entries: Seed) -> None:
    """Add entries (by list and scope) through a Store on `url` with `prefix`."""
    config = RedisConfig(key_prefix=prefix, timeout=5.0)
    store = Store(connect(config, url), config, StoreConfig())
    meta = EntryMeta(source="api", added_at=time.time(), added_by="test")
    try:
        for (name, scope), values in entries.items():
            added, _ = await store.add(name, scope, values, meta)
            assert added == values
    finally:
        await store.close()


SEED: Seed = {
    ("block", "tenant:acme"): [ListItem("+4479*")],
    ("allow", "agent:42"): [ListItem("+447911123456")],
    ("block", "global"): [ListItem("+905321234567"), ListItem("+33612345678", "voice")],
    ("allow", "global"): [ListItem("+1415555*"), ListItem("+4479*", "sms")],
}


def hit(scope: str, list_name: str, entry: str, channel: str = "both") -> dict[str, str]:
    """One matched item as `check` prints it, without its metadata (see `reasons`)."""
    return {"scope": scope, "list": list_name, "entry": entry, "channel": channel}


def reasons(result: dict[str, Any], added_by: str = "test") -> list[dict[str, str]]:
    """A check's matched items without their metadata, after checking that each names
    its source, who added it and when (ISO 8601 UTC)."""
    for item in result["matched"]:
        assert (item["source"], item["added_by"]) == ("api", added_by), item
        assert datetime.fromisoformat(item["added_at"]).utcoffset() == timedelta(0), item
    return [{k: item[k] for k in ("scope", "list", "entry", "channel")}
            for item in result["matched"]]


# --- config check ---------------------------------------------------------------------


def test_config_check_accepts_the_shipped_config(capsys: pytest.CaptureFixture[str]) -> None:
    """`config check` on config.yaml prints OK and exits 0."""
    code, out, err = run_main(capsys, "config", "check", "--config", str(SHIPPED_CONFIG))
    assert code == 0, err
    assert out.startswith(f"{SHIPPED_CONFIG}: OK (10 upstreams, ")
    assert "a stop takes at most 40 s)" in out


def test_installed_command_checks_the_shipped_config() -> None:
    """The installed `gatekeeper` script runs `config check` as a process."""
    assert GATEKEEPER.exists(), f"console script missing: {GATEKEEPER}"
    env = {k: v for k, v in os.environ.items() if k != "GATEKEEPER_CONFIG"}
    done = subprocess.run([str(GATEKEEPER), "config", "check", "--config", str(SHIPPED_CONFIG)],
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout


def test_config_check_reads_gatekeeper_config_env(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Without --config, $GATEKEEPER_CONFIG names the file."""
    path = write_config(tmp_path / "from-env.yaml")
    monkeypatch.setenv("GATEKEEPER_CONFIG", str(path))
    code, out, _ = run_main(capsys, "config", "check")
    assert code == 0
    assert out.startswith(f"{path}: OK (1 upstreams, ")


@pytest.mark.parametrize(("sections", "key", "value"), [
    ({"proxy": {"port": "eighty"}}, "proxy.port", "'eighty'"),
    ({"proxy": {"port": 70000}}, "proxy.port", "70000"),
    ({"log": {"level": "loud"}}, "log.level", "'loud'"),
    ({"redis": {"timeout": 0}}, "redis.timeout", "0.0"),
    ({"redis": {"url": "http://localhost:6379"}}, "redis.url", "'http://localhost:6379'"),
    ({"store": {"on_error": "maybe"}}, "store.on_error", "'maybe'"),
    ({"upstreams": [{**UPSTREAMS[0], "region": "XX"}]}, "upstreams[0].region", "'XX'"),
    ({"bogus": 1}, "bogus", "1"),
], ids=["port-not-int", "port-range", "log-level", "redis-timeout", "redis-url",
        "on-error", "region", "unknown-key"])
def test_config_check_names_the_bad_key_and_value(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], sections: dict[str, Any],
        key: str, value: str) -> None:
    """A bad config exits 2 and stderr names the key and the offending value."""
    path = write_config(tmp_path / "bad.yaml", **sections)
    code, out, err = run_main(capsys, "config", "check", "--config", str(path))
    assert code == EXIT_CONFIG
    assert out == ""
    assert f"config key '{key}'" in err
    assert f"(got {value})" in err


def test_config_check_on_a_missing_file_names_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing config file exits 2 naming --config and the path."""
    missing = tmp_path / "nope.yaml"
    code, out, err = run_main(capsys, "config", "check", "--config", str(missing))
    assert code == EXIT_CONFIG
    assert out == ""
    assert "'--config'" in err
    assert str(missing) in err
    assert "cannot read file" in err


def test_config_check_on_invalid_yaml_fails(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file that is not YAML exits 2 and says so."""
    path = tmp_path / "broken.yaml"
    path.write_text("proxy: [unclosed\n")
    code, _, err = run_main(capsys, "config", "check", "--config", str(path))
    assert code == EXIT_CONFIG
    assert "not valid YAML" in err


# --- check NUMBER on an external store ------------------------------------------------


@pytest.fixture
def external_config(tmp_path: Path, redis_server: str) -> Path:
    """A config on the suite's redis-server with a key prefix of its own, seeded."""
    prefix = f"cli-{uuid.uuid4().hex[:8]}:"
    asyncio.run(seed(redis_server, prefix, SEED))
    return write_config(tmp_path / "external.yaml",
                        redis={"url": redis_server, "key_prefix": prefix})


CHECKS: list[tuple[str, list[str], str, str, list[dict[str, str]]]] = [
    ("prefix-block-in-scope", ["+447911123456", "--scope", "tenant:acme"], "+447911123456",
     "blocked", [hit("tenant:acme", "block", "+4479*")]),
    ("block-beats-allow-elsewhere",
     ["+447911123456", "--scope", "tenant:acme", "--scope", "agent:42"], "+447911123456",
     "blocked", [hit("tenant:acme", "block", "+4479*"),
                 hit("agent:42", "allow", "+447911123456")]),
    ("exact-allow", ["+447911123456", "--scope", "agent:42"], "+447911123456", "allowed",
     [hit("agent:42", "allow", "+447911123456")]),
    ("scope-not-given", ["+447911123456"], "+447911123456", "unlisted", []),
    ("global-prefix-allow", ["+1 415 555 0100"], "+14155550100", "allowed",
     [hit("global", "allow", "+1415555*")]),
    ("national-with-region", ["0532 123 45 67", "--region", "tr"], "+905321234567",
     "blocked", [hit("global", "block", "+905321234567")]),
    ("unlisted", ["+33612345678"], "+33612345678", "unlisted", []),
]


@pytest.mark.parametrize(("argv", "number", "decision", "matched"),
                         [c[1:] for c in CHECKS], ids=[c[0] for c in CHECKS])
def test_check_prints_the_decision(
        external_config: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
        number: str, decision: str, matched: list[dict[str, str]]) -> None:
    """`check NUMBER` prints number, decision and matched entries as JSON, exit 0."""
    code, out, err = run_main(capsys, "check", *argv, "--config", str(external_config))
    assert code == 0, err
    result = json.loads(out)
    assert result["number"] == number
    assert result["decision"] == decision
    assert result["label"] == ("Blacklisted" if decision == "blocked" else None)
    assert reasons(result) == matched
    assert "channel" not in result


def test_check_echoes_the_channel(external_config: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """--channel is carried into the output."""
    code, out, _ = run_main(capsys, "check", "+447911123456", "--channel", "voice",
                            "--scope", "tenant:acme", "--config", str(external_config))
    assert code == 0
    assert json.loads(out)["channel"] == "voice"
    assert json.loads(out)["scopes"] == ["global", "tenant:acme"]


CHANNEL_CHECKS: list[tuple[str, list[str], str, str, list[dict[str, str]]]] = [
    ("voice-block-with-voice", ["+33612345678"], "voice", "blocked",
     [hit("global", "block", "+33612345678", "voice")]),
    ("voice-block-not-with-sms", ["+33612345678"], "sms", "unlisted", []),
    ("sms-allow-with-sms", ["+447911123456"], "sms", "allowed",
     [hit("global", "allow", "+4479*", "sms")]),
    ("sms-allow-not-with-voice", ["+447911123456"], "voice", "unlisted", []),
    ("sms-allow-and-tenant-block", ["+447911123456", "--scope", "tenant:acme"], "sms",
     "blocked", [hit("global", "allow", "+4479*", "sms"),
                 hit("tenant:acme", "block", "+4479*")]),
]


@pytest.mark.parametrize(("argv", "channel", "decision", "matched"),
                         [c[1:] for c in CHANNEL_CHECKS], ids=[c[0] for c in CHANNEL_CHECKS])
def test_check_passes_the_channel_to_the_lookup(
        external_config: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
        channel: str, decision: str, matched: list[dict[str, str]]) -> None:
    """With --channel, entries limited to that channel count (and only those); without
    it they never do (see the `unlisted` and `scope-not-given` checks above)."""
    code, out, err = run_main(capsys, "check", *argv, "--channel", channel,
                              "--config", str(external_config))
    assert code == 0, err
    result = json.loads(out)
    assert result["decision"] == decision
    assert reasons(result) == matched
    assert result["channel"] == channel


@pytest.mark.parametrize(("argv", "message"), [
    (["hello"], "not a phone number: 'hello'"),
    (["0612345678"], "not a phone number: '0612345678'"),
    (["+33*"], "not a phone number: '+33*'"),
    (["+33612345678", "--scope", "Bad Scope"], "invalid scope 'Bad Scope'"),
    (["+33612345678", "--scope", "tenant:"], "invalid scope 'tenant:'"),
    (["+33612345678", "--region", "ZZ"], "unknown region 'ZZ'"),
], ids=["word", "national-without-region", "prefix", "scope-space", "scope-no-id",
        "region"])
def test_check_rejects_bad_input_with_a_clear_message(
        external_config: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
        message: str) -> None:
    """Invalid number, scope or region: exit 2, a one-line reason, nothing on stdout."""
    code, out, err = run_main(capsys, "check", *argv, "--config", str(external_config))
    assert code == EXIT_CONFIG
    assert out == ""
    assert f"gatekeeper: {message}" in err


def test_check_rejects_an_unknown_channel(external_config: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """--channel outside sms|voice is a usage error (exit 2)."""
    with pytest.raises(SystemExit) as exited:
        main(["check", "+33612345678", "--channel", "fax", "--config", str(external_config)])
    assert exited.value.code == 2
    assert "invalid choice: 'fax'" in capsys.readouterr().err


def test_check_with_an_unreachable_store_fails_cleanly(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A store that cannot be reached exits 1 with the connection error."""
    path = write_config(tmp_path / "down.yaml",
                        redis={"url": "redis://127.0.0.1:1/0", "timeout": 0.2})
    code, out, err = run_main(capsys, "check", "+33612345678", "--config", str(path))
    assert code == EXIT_RUNTIME
    assert out == ""
    assert err.startswith("gatekeeper: ")
    assert "127.0.0.1:1" in err


def test_check_with_a_bad_config_fails_before_anything_else(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`check` validates the config first (exit 2, key named)."""
    path = write_config(tmp_path / "bad.yaml", redis={"key_prefix": "has space"})
    code, _, err = run_main(capsys, "check", "+33612345678", "--config", str(path))
    assert code == EXIT_CONFIG
    assert "redis.key_prefix" in err


# --- check NUMBER on the embedded store -----------------------------------------------


def embedded_config(tmp_path: Path) -> tuple[Path, Path]:
    """A config using the embedded store in tmp_path/data; (config, data_dir)."""
    data_dir = tmp_path / "data"
    path = write_config(tmp_path / "embedded.yaml",
                        redis={"url": "embedded", "data_dir": str(data_dir)})
    return path, data_dir


@pytest.mark.parametrize(("args", "decided"), [
    (["+12125550123", "--at", "23:30", "--channel", "sms"], "quiet_hours"),
    (["+12125550123", "--at", "23:30", "--intent", "otp", "--channel", "sms"], "default"),
    (["+85023812345", "--at", "2026-12-03T12:00:00+09:00"], "country"),
], ids=["quiet-at-night", "otp-exempt", "country"])
def test_check_explains_the_policy_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         args: list[str], decided: str) -> None:
    """`gatekeeper check --intent --at` judges the configured policy at that instant."""
    path = write_config(tmp_path / "policy.yaml",
                        redis={"url": "embedded", "data_dir": str(tmp_path / "data")},
                        policy={"global": {"countries": {"block": ["KP"]},
                                           "quiet_hours": {"action": "block"}}})
    code, out, err = run_main(capsys, "check", *args, "--config", str(path))
    assert code == 0, err
    assert json.loads(out)["decided_by"]["rule"] == decided
    code, _, err = run_main(capsys, "check", args[0], "--at", "tonight", "--config",
                            str(path))
    assert code == 2
    assert "'at'" in err


def test_check_starts_and_stops_the_embedded_store_when_none_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With no server running, `check` starts one on the data dir's AOF, then stops it."""
    path, data_dir = embedded_config(tmp_path)
    server = EmbeddedRedis(data_dir)
    try:
        endpoint = server.start()
        asyncio.run(seed(endpoint.url, "gk:", SEED))
    finally:
        server.stop()
    assert read_running(data_dir) is None

    code, out, err = run_main(capsys, "check", "+447911123456", "--scope", "tenant:acme",
                              "--config", str(path))

    assert code == 0, err
    assert json.loads(out)["decision"] == "blocked"
    assert reasons(json.loads(out)) == [hit("tenant:acme", "block", "+4479*")]
    assert not (data_dir / STATE_FILE).exists()
    assert read_running(data_dir) is None
    assert redis_pids(data_dir) == []


def test_check_uses_the_running_embedded_store(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With a server running for the data dir, `check` uses it and leaves it running."""
    path, data_dir = embedded_config(tmp_path)
    server = EmbeddedRedis(data_dir)
    try:
        endpoint = server.start()
        asyncio.run(seed(endpoint.url, "gk:", SEED))

        code, out, err = run_main(capsys, "check", "+447911123456", "--scope", "agent:42",
                                  "--config", str(path))

        assert code == 0, err  # starting a second server here would have been refused
        assert json.loads(out)["decision"] == "allowed"
        assert read_running(data_dir) == endpoint
        assert redis_pids(data_dir) == [endpoint.pid]
    finally:
        server.stop()


def test_check_starts_an_empty_embedded_store_in_a_new_data_dir(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A fresh data dir is created and every number is unlisted."""
    path, data_dir = embedded_config(tmp_path)
    code, out, err = run_main(capsys, "check", "+33612345678", "--config", str(path))
    assert code == 0, err
    result = json.loads(out)
    assert {k: result[k] for k in ("number", "possible", "decision", "label", "scopes",
                                   "matched", "decided_by")} == {
        "number": "+33612345678", "possible": True, "decision": "unlisted", "label": None,
        "scopes": ["global"], "matched": [], "decided_by": {"rule": "default"}}
    assert data_dir.is_dir()
    assert redis_pids(data_dir) == []


# --- run ------------------------------------------------------------------------------




def http(method: str, url: str, body: object = None, timeout: float = 5.0
         ) -> tuple[int, Any]:
    """A JSON request with the admin key; (status, decoded body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_healthy(process: subprocess.Popen[bytes], admin: str, log: Path,
                 timeout: float = 30.0) -> None:
    """Poll /healthz until it answers 200; fail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gatekeeper exited with {process.returncode}: {log.read_text()}")
        with contextlib.suppress(OSError):
            if http("GET", f"{admin}/healthz", timeout=1)[0] == 200:
                return
        time.sleep(0.05)
    pytest.fail(f"gatekeeper did not become healthy in {timeout}s: {log.read_text()}")


@contextlib.contextmanager
def gatekeeper_process(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`gatekeeper run` as a child process; killed if still running at the end."""
    env = {k: v for k, v in os.environ.items() if k != "GATEKEEPER_CONFIG"}
    env["GATEKEEPER_ADMIN_KEY"] = ADMIN_KEY
    with log.open("ab") as output:
        process = subprocess.Popen([str(GATEKEEPER), "run", "--config", str(config)],
                                   stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                   env=env)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def stop(process: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM and expect a clean exit 0."""
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"gatekeeper ignored SIGTERM: {log.read_text()}")
    assert code == 0, log.read_text()


def test_run_serves_persists_and_stops_cleanly(tmp_path: Path) -> None:
    """`gatekeeper run`: healthy, admin add works, SIGTERM exits 0 and stops the embedded
    redis-server, and a second run on the same data dir still has the entries, with their
    channel and metadata."""
    data_dir = tmp_path / "data"
    admin_port = free_port()
    config = write_config(
        tmp_path / "run.yaml",
        proxy={"host": "127.0.0.1", "port": free_port()},
        admin={"host": "127.0.0.1", "port": admin_port},
        redis={"url": "embedded", "data_dir": str(data_dir)},
        log={"level": "info", "format": "json"},
    )
    admin = f"http://127.0.0.1:{admin_port}"
    log = tmp_path / "gatekeeper.log"

    with gatekeeper_process(config, log) as first:
        wait_healthy(first, admin, log)
        voice_only = {"entry": "+44*", "channel": "voice"}
        status, body = http("POST", f"{admin}/admin/v1/lists/block/entries",
                            {"entries": ["+33612345678", voice_only], "scope": "tenant:acme"})
        assert (status, body["added"]) == (200, ["+33612345678", voice_only])
        status, body = http("GET", f"{admin}/admin/v1/lists/block/entries?scope=tenant:acme")
        assert status == 200, body
        rows_before = body["entries"]
        running = read_running(data_dir)
        assert running is not None
        assert running.owner_pid == first.pid
        stop(first, log)
    assert redis_pids(data_dir) == []
    assert not (data_dir / STATE_FILE).exists()
    with contextlib.suppress(ProcessLookupError):
        os.kill(running.pid, 0)
        pytest.fail(f"embedded redis-server {running.pid} outlived gatekeeper")

    with gatekeeper_process(config, log) as second:
        wait_healthy(second, admin, log)
        status, body = http("GET", f"{admin}/admin/v1/check?number=%2B33612345678"
                                   "&scope=tenant:acme")
        assert status == 200, body
        assert body["decision"] == "blocked"
        assert reasons(body, added_by="admin") == [hit("tenant:acme", "block", "+33612345678")]
        status, body = http("GET", f"{admin}/admin/v1/check?number=%2B447911123456"
                                   "&scope=tenant:acme&channel=voice")
        assert (status, body["decision"]) == (200, "blocked")
        assert reasons(body, added_by="admin") == [hit("tenant:acme", "block", "+44*", "voice")]
        status, body = http("GET", f"{admin}/admin/v1/lists/block/entries?scope=tenant:acme")
        assert status == 200, body
        assert body["entries"] == rows_before
        assert [(r["entry"], r["channel"], r["source"]) for r in rows_before] == [
            ("+33612345678", "both", "api"), ("+44*", "voice", "api")]
        stop(second, log)
    assert redis_pids(data_dir) == []
    events = [json.loads(line) for line in log.read_text().splitlines()
              if line.startswith("{")]
    assert [e["event"] for e in events].count("gatekeeper_started") == 2
    assert "geocoder_loaded" not in [e["event"] for e in events]  # no quiet hours


def test_run_loads_the_geocoder_before_serving_when_quiet_hours_are_on(
        tmp_path: Path) -> None:
    """A policy with quiet hours: the geocoder's data (seconds to load) is loaded, and
    logged, before the listeners start, not on the first send that needs a state."""
    admin_port = free_port()
    config = write_config(
        tmp_path / "run.yaml",
        proxy={"host": "127.0.0.1", "port": free_port()},
        admin={"host": "127.0.0.1", "port": admin_port},
        redis={"url": "embedded", "data_dir": str(tmp_path / "data")},
        log={"level": "info", "format": "json"},
        policy={"global": {"quiet_hours": {"action": "block"}}},
    )
    log = tmp_path / "gatekeeper.log"
    with gatekeeper_process(config, log) as process:
        wait_healthy(process, f"http://127.0.0.1:{admin_port}", log)
        stop(process, log)
    events = [json.loads(line) for line in log.read_text().splitlines()
              if line.startswith("{")]
    names = [e["event"] for e in events]
    assert names.index("geocoder_loaded") < names.index("gatekeeper_started")
    assert events[names.index("geocoder_loaded")]["seconds"] > 0


def test_run_on_a_busy_port_exits_1_and_stops_the_embedded_store(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A listener that cannot bind ends `run` with exit 1 and no redis-server left over."""
    data_dir = tmp_path / "data"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config = write_config(
            tmp_path / "busy.yaml",
            proxy={"host": "127.0.0.1", "port": busy.getsockname()[1]},
            admin={"host": "127.0.0.1", "port": free_port()},
            redis={"url": "embedded", "data_dir": str(data_dir)},
        )
        code, _, err = run_main(capsys, "run", "--config", str(config))
    assert code == EXIT_RUNTIME
    assert err.startswith("gatekeeper: ")
    assert "address already in use" in err.lower()
    assert redis_pids(data_dir) == []
    assert not (data_dir / STATE_FILE).exists()

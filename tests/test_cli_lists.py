"""`gatekeeper lists import|export`: straight on the configured store (external or
embedded), summary JSON on stdout, progress and summary on stderr, audit as `cli`."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatekeeper.cli import EXIT_CONFIG, EXIT_RUNTIME, ProgressBar, main
from gatekeeper.cli import lists as cli_lists
from gatekeeper.config import RedisConfig, StoreConfig
from gatekeeper.embedded import EmbeddedRedis, read_running
from gatekeeper.policy import ListName
from gatekeeper.store import EntryMeta, Listed, ListItem, Store, connect
from tests.conftest import list_members

UPSTREAMS = [{"name": "twilio", "url": "https://api.twilio.com", "preset": "twilio",
              "region": "US"}]
NOT_E164 = "not E.164: write '+' and the country code, or give a region"


@pytest.fixture(autouse=True)
def no_config_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """$GATEKEEPER_CONFIG from the caller's shell must not leak into these tests."""
    monkeypatch.delenv("GATEKEEPER_CONFIG", raising=False)


def write_config(path: Path, **sections: Any) -> Path:
    """A YAML config with one upstream, info-level JSON logs and imports at normal
    priority (at idle priority, an import beside the suite's other busy workers would
    wait for a free CPU); keyword arguments replace sections."""
    raw: dict[str, Any] = {"upstreams": UPSTREAMS, "log": {"level": "info"},
                           "store": {"import_priority": "normal"}}
    raw.update(sections)
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own on the shared redis-server."""
    return f"cli-lists-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def config(tmp_path: Path, redis_server: str, prefix: str) -> Path:
    """A config on the suite's real redis-server with this test's prefix."""
    return write_config(tmp_path / "config.yaml",
                        redis={"url": redis_server, "key_prefix": prefix})


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """main(argv) with its exit code, stdout and stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def on_store(url: str, prefix: str) -> Store:
    """A store on `url` with `prefix`."""
    redis = RedisConfig(key_prefix=prefix, timeout=5.0)
    return Store(connect(redis, url), redis, StoreConfig())


async def _members(url: str, prefix: str, name: ListName, scope: str) -> set[str]:
    store = on_store(url, prefix)
    try:
        return await list_members(store, name, scope)
    finally:
        await store.close()


def members(url: str, prefix: str, name: ListName = "block", scope: str = "global"
            ) -> set[str]:
    """The raw members of a list on the server."""
    return asyncio.run(_members(url, prefix, name, scope))


async def _metadata(url: str, prefix: str, item: ListItem) -> EntryMeta | None:
    store = on_store(url, prefix)
    try:
        [meta] = await store.metadata("block", "global", [item])
        return meta
    finally:
        await store.close()


def events(err: str, name: str = "list_changed") -> list[dict[str, Any]]:
    """JSON log events of one kind found on stderr."""
    found = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return [e for e in found if e.get("event") == name]


def write(path: Path, text: str | bytes) -> Path:
    """Write a file; its path."""
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


# ------------------------------------------------------------------------ import


def test_import_adds_a_csv_file(tmp_path: Path, config: Path, redis_server: str,
                                prefix: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Counts as JSON on stdout, a one-line summary (no bar: not a TTY) and the audit
    event on stderr, entries stored with import metadata naming `cli`."""
    source = write(tmp_path / "in.csv", "entry,channel\r\n+33612345678,sms\r\n# skip\r\n"
                   "+4479*\r\nhello\r\n")
    code, out, err = run_main(capsys, "lists", "import", str(source), "--list", "block",
                              "--scope", "global", "--note", "from CRM",
                              "--config", str(config))
    assert code == 0, err
    assert json.loads(out) == {
        "mode": "add", "scope": "global", "list": "block", "lines": 5, "added": 2,
        "existing": 0, "failed": 1,
        "failures": [{"line": 5, "entry": "hello", "reason": NOT_E164}]}
    assert "\r" not in err
    [summary] = [line for line in err.splitlines() if line.startswith("imported ")]
    assert "imported 5 lines" in summary
    assert "2 added, 0 existing, 1 failed" in summary
    assert "lines/s" in summary
    [event] = events(err)
    assert {k: event[k] for k in ("key_name", "scope", "list", "mode", "added", "failed",
                                  "outcome")} == {
        "key_name": "cli", "scope": "global", "list": "block", "mode": "add", "added": 2,
        "failed": 1, "outcome": "applied"}
    assert members(redis_server, prefix) == {"+33612345678#sms", "+4479*"}
    meta = asyncio.run(_metadata(redis_server, prefix, ListItem("+4479*")))
    assert meta is not None
    assert (meta.source, meta.added_by, meta.note) == ("import", "cli", "from CRM")


def test_import_idle_runs_at_idle_priority(tmp_path: Path, config: Path, redis_server: str,
                                          prefix: str) -> None:
    """--idle: the import runs under SCHED_IDLE (its summary says so only when the kernel
    reports that policy) and stores its entries as any import. In a child process: the
    policy would stay on the test's own."""
    source = write(tmp_path / "in.txt", "+33612345678\n+4479*\n")
    done = subprocess.run(
        [sys.executable, "-m", "gatekeeper", "lists", "import", str(source), "--list",
         "block", "--scope", "global", "--idle", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["added"] == 2
    [summary] = [line for line in done.stderr.splitlines() if line.startswith("imported ")]
    assert "at idle priority" in summary
    assert members(redis_server, prefix) == {"+33612345678", "+4479*"}


def test_import_is_idle_by_default(tmp_path: Path, redis_server: str, prefix: str) -> None:
    """With no priority asked for and none configured, the import runs under SCHED_IDLE
    (store.import_priority defaults to idle). In a child process."""
    config = write_config(tmp_path / "default.yaml", store={},
                          redis={"url": redis_server, "key_prefix": prefix})
    source = write(tmp_path / "in.txt", "+33612345678\n")
    done = subprocess.run(
        [sys.executable, "-m", "gatekeeper", "lists", "import", str(source), "--list",
         "block", "--scope", "global", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    [summary] = [line for line in done.stderr.splitlines() if line.startswith("imported ")]
    assert summary.endswith("lines/s")
    assert "at idle priority" in summary
    assert members(redis_server, prefix) == {"+33612345678"}


@pytest.mark.parametrize("how", [("--priority", "normal"), ("config",)])
def test_import_at_normal_priority_keeps_the_callers(
        how: tuple[str, ...], tmp_path: Path, config: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`--priority normal` (over a config asking for idle) or the config's
    `import_priority: normal` keep the caller's priority; the summary says nothing of
    it."""
    if how[0] == "config":
        flags: tuple[str, ...] = ()
    else:
        flags = how
        config = write_config(tmp_path / "idle.yaml", store={"import_priority": "idle"},
                              redis=yaml.safe_load(config.read_text())["redis"])
    source = write(tmp_path / "in.txt", "+33612345678\n")
    code, _, err = run_main(capsys, "lists", "import", str(source), "--list", "block",
                            "--scope", "global", *flags, "--config", str(config))
    assert code == 0, err
    assert "idle priority" not in err
    assert os.sched_getscheduler(0) != os.SCHED_IDLE


def test_import_replace_swaps_the_list(tmp_path: Path, config: Path, redis_server: str,
                                       prefix: str, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    """--mode replace leaves exactly the file's entries and reports the new size."""
    first = write(tmp_path / "a.txt", "+33612345678\n+4479*\n")
    second = write(tmp_path / "b.txt", "+34600000000\n+4479*\n+34600000000\n")
    base = ["--list", "allow", "--scope", "tenant:acme", "--config", str(config)]
    assert run_main(capsys, "lists", "import", str(first), *base)[0] == 0
    code, out, err = run_main(capsys, "lists", "import", str(second), *base,
                              "--mode", "replace")
    assert code == 0, err
    reply = json.loads(out)
    assert (reply["mode"], reply["added"], reply["existing"], reply["size"]) == \
        ("replace", 2, 1, 2)
    assert "list size 2" in err
    assert members(redis_server, prefix, "allow", "tenant:acme") == {"+34600000000",
                                                                     "+4479*"}


def test_import_channel_region_and_stdin(config: Path, redis_server: str, prefix: str,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """`-` reads stdin; --channel fills lines without one; --region reads national
    numbers."""
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(
        b"0532 123 45 67\n05321234568,both\n")))
    code, out, err = run_main(capsys, "lists", "import", "-", "--list", "block",
                              "--scope", "global", "--channel", "voice", "--region", "tr",
                              "--config", str(config))
    assert code == 0, err
    assert json.loads(out)["added"] == 2
    assert members(redis_server, prefix) == {"+905321234567#voice", "+905321234568"}


def test_import_ttl_entries_stop_matching(tmp_path: Path, config: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Entries imported with --ttl-seconds 1 block, then after a second no longer."""
    source = write(tmp_path / "in.txt", "+33612345678\n")
    code, _, err = run_main(capsys, "lists", "import", str(source), "--list", "block",
                            "--scope", "global", "--ttl-seconds", "1",
                            "--config", str(config))
    assert code == 0, err
    code, out, _ = run_main(capsys, "check", "+33612345678", "--config", str(config))
    assert (code, json.loads(out)["decision"]) == (0, "blocked")
    deadline = time.monotonic() + 5  # polled until the entry's second has passed
    while json.loads(out)["decision"] == "blocked" and time.monotonic() < deadline:
        time.sleep(0.05)
        code, out, _ = run_main(capsys, "check", "+33612345678", "--config", str(config))
    assert (code, json.loads(out)["decision"]) == (0, "unlisted")


def test_replace_with_no_valid_entry_is_refused(tmp_path: Path, config: Path,
                                                redis_server: str, prefix: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A replace whose every line failed exits 1 and leaves the list as it was; the
    report (with the failures) is still printed."""
    good = write(tmp_path / "good.txt", "+33612345678\n")
    bad = write(tmp_path / "bad.txt", "0612345678\n")
    base = ["--list", "block", "--scope", "global", "--config", str(config)]
    assert run_main(capsys, "lists", "import", str(good), *base)[0] == 0
    code, out, err = run_main(capsys, "lists", "import", str(bad), *base,
                              "--mode", "replace")
    assert code == EXIT_RUNTIME
    assert json.loads(out)["failures"] == [{"line": 1, "entry": "0612345678",
                                            "reason": NOT_E164}]
    assert "import refused, the list was left as it was" in err
    assert [e["outcome"] for e in events(err)] == ["refused"]
    assert members(redis_server, prefix) == {"+33612345678"}


@pytest.mark.parametrize(("extra", "message"), [
    (["--scope", "Bad Scope"], "invalid scope 'Bad Scope'"),
    (["--ttl-seconds", "0"], "--ttl-seconds must be an integer from 1 to"),
    (["--ttl-seconds", "60", "--expires-at", "2100-01-01"], "give --ttl-seconds or "
     "--expires-at, not both"),
    (["--expires-at", "2000-01-01T00:00:00Z"], "--expires-at is in the past"),
    (["--region", "ZZ"], "unknown region 'ZZ'"),
    (["--note", "x" * 501], "--note is longer than 500 characters"),
], ids=["scope", "ttl-zero", "ttl-and-expiry", "expiry-past", "region", "note"])
def test_import_usage_errors_exit_2(tmp_path: Path, config: Path, redis_server: str,
                                    prefix: str, capsys: pytest.CaptureFixture[str],
                                    extra: list[str], message: str) -> None:
    """Bad arguments: exit 2 with a one-line reason, nothing written."""
    source = write(tmp_path / "in.txt", "+33612345678\n")
    argv = ["lists", "import", str(source), "--list", "block", "--scope", "global",
            "--config", str(config), *extra]
    code, out, err = run_main(capsys, *argv)
    assert code == EXIT_CONFIG
    assert out == ""
    assert f"gatekeeper: {message}" in err
    assert members(redis_server, prefix) == set()


@pytest.mark.parametrize("flag", [("--idle",), ("--priority", "idle")])
def test_import_idle_asked_for_and_refused_by_the_system_exits_2(
        flag: tuple[str, ...], tmp_path: Path, config: Path, redis_server: str,
        prefix: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Idle priority asked for on the command line where the system refuses SCHED_IDLE:
    exit 2 saying so, nothing imported (never an import at the caller's priority that
    was asked to be idle)."""
    def refuse(*_args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    source = write(tmp_path / "in.txt", "+33612345678\n")
    code, out, err = run_main(capsys, "lists", "import", str(source), "--list", "block",
                              "--scope", "global", *flag, "--config", str(config))
    assert code == EXIT_CONFIG
    assert out == ""
    assert "gatekeeper: --priority idle: cannot run at idle priority here" in err
    assert members(redis_server, prefix) == set()


def test_import_idle_by_config_refused_by_the_system_goes_on_saying_so(
        tmp_path: Path, redis_server: str, prefix: str,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The configured (default) idle priority refused by the system: a note on stderr
    naming the setting, and the import runs at normal priority."""
    def refuse(*_args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    config = write_config(tmp_path / "default.yaml", store={},
                          redis={"url": redis_server, "key_prefix": prefix})
    source = write(tmp_path / "in.txt", "+33612345678\n")
    code, _, err = run_main(capsys, "lists", "import", str(source), "--list", "block",
                            "--scope", "global", "--config", str(config))
    assert code == 0, err
    assert ("gatekeeper: cannot run at idle priority here ([Errno 1] Operation not "
            "permitted); importing at normal priority (store.import_priority)") in err
    assert "at idle priority;" not in err
    assert members(redis_server, prefix) == {"+33612345678"}


def test_import_of_a_missing_file_exits_2(tmp_path: Path, config: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """An unreadable input names the file."""
    missing = tmp_path / "nope.csv"
    code, _, err = run_main(capsys, "lists", "import", str(missing), "--list", "block",
                            "--scope", "global", "--config", str(config))
    assert code == EXIT_CONFIG
    assert f"gatekeeper: cannot read {missing}" in err


def test_import_needs_list_and_scope(config: Path, capsys: pytest.CaptureFixture[str]
                                     ) -> None:
    """--list and --scope are required (argparse exits 2)."""
    with pytest.raises(SystemExit) as exited:
        main(["lists", "import", "x.csv", "--list", "block", "--config", str(config)])
    assert exited.value.code == 2
    assert "--scope" in capsys.readouterr().err


def test_import_with_the_store_down_exits_1(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """An unreachable store: exit 1 with the connection error."""
    path = write_config(tmp_path / "down.yaml",
                        redis={"url": "redis://127.0.0.1:1/0", "timeout": 0.2})
    source = write(tmp_path / "in.txt", "+33612345678\n")
    code, out, err = run_main(capsys, "lists", "import", str(source), "--list", "block",
                              "--scope", "global", "--config", str(path))
    assert code == EXIT_RUNTIME
    assert out == ""
    assert "127.0.0.1:1" in err


# ------------------------------------------------------------------------ export


def test_export_to_stdout_and_round_trip_through_a_file(
        tmp_path: Path, config: Path, redis_server: str, prefix: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Export prints CSV; --output writes a file (no partial file left) that imports back
    into another scope as the same entries."""
    source = write(tmp_path / "in.txt", "".join(f"+3361{n:07d}\n" for n in range(1500))
                   + "+4479*,sms\n+34*,voice\n")
    assert run_main(capsys, "lists", "import", str(source), "--list", "block", "--scope",
                    "global", "--note", "a, b", "--config", str(config))[0] == 0
    code, out, err = run_main(capsys, "lists", "export", "--list", "block", "--scope",
                              "global", "--config", str(config))
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["entry", "channel", "source", "added_at", "added_by", "note",
                       "expires_at"]
    assert len(rows) == 1503
    assert rows[-2][:3] == ["+34*", "voice", "import"]
    assert (rows[-1][0], rows[-1][1], rows[-1][4], rows[-1][5]) == \
        ("+4479*", "sms", "cli", "a, b")
    assert "exported 1,502 rows" in err

    target = tmp_path / "out.csv"
    code, out, err = run_main(capsys, "lists", "export", "--list", "block", "--scope",
                              "global", "--output", str(target), "--config", str(config))
    assert code == 0, err
    assert json.loads(out) == {"list": "block", "scope": "global", "rows": 1502,
                               "output": str(target)}
    assert list(tmp_path.glob("*.part")) == []
    code, out, err = run_main(capsys, "lists", "import", str(target), "--list", "block",
                              "--scope", "tenant:copy", "--mode", "replace",
                              "--config", str(config))
    assert code == 0, err
    assert (json.loads(out)["failed"], json.loads(out)["size"]) == (0, 1502)
    assert members(redis_server, prefix, scope="tenant:copy") == \
        members(redis_server, prefix)


def test_failed_export_leaves_no_file(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """An export that fails (store down) exits 1 and leaves neither file nor part."""
    path = write_config(tmp_path / "down.yaml",
                        redis={"url": "redis://127.0.0.1:1/0", "timeout": 0.2})
    target = tmp_path / "out.csv"
    code, _, _ = run_main(capsys, "lists", "export", "--list", "block", "--scope", "global",
                          "--output", str(target), "--config", str(path))
    assert code == EXIT_RUNTIME
    assert list(tmp_path.glob("out.csv*")) == []


# ------------------------------------------------------------------------ restore, empty replace

EXPORT_HEADER = "entry,channel,source,added_at,added_by,note,expires_at\n"


async def _seed_and_list(url: str, prefix: str, scope: str, seeded: bool
                         ) -> list[Listed]:
    """Seed block/<scope> with awkward metadata (when `seeded`); its entries listed."""
    store = on_store(url, prefix)
    try:
        if seeded:
            soon = time.time() + 86_400.5
            await store.add("block", scope, [ListItem("+33612345678"),
                                             ListItem("+4479*", "sms")],
                            EntryMeta("api", 1.5, "=ops", 'STOP, "no"\r\nsaid \'=1+1',
                                      soon))
            await store.add("block", scope, [ListItem("+905321234567", "voice")],
                            EntryMeta("opt-out", 2.0, "sms-in", "numéro ✓ 😀, ''x"))
            keys = store.keys.of("block", scope)
            shared = await store.save_batch(EntryMeta("import", 3.0, "cli", "-5; x\ty"), scope)
            await store.add_to(keys, [ListItem("+34*"), ListItem("+1415555*", "voice")],
                               shared, None)
            await store.add_to(keys, [ListItem("+49301234567")], "", None)
        return [entry async for entry in store.scan_entries("block", scope)]
    finally:
        await store.close()


def test_export_then_replace_import_restores_the_list(
        tmp_path: Path, config: Path, redis_server: str, prefix: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """On the real server: export to a file, replace the list by it, export again: the
    same bytes and the same entries with the same metadata (the file's authors kept, the
    audit naming `cli`)."""
    before = asyncio.run(_seed_and_list(redis_server, prefix, "tenant:r", True))
    base = ["--list", "block", "--scope", "tenant:r", "--config", str(config)]
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    assert run_main(capsys, "lists", "export", *base, "--output", str(first))[0] == 0
    code, out, err = run_main(capsys, "lists", "import", str(first), *base,
                              "--mode", "replace")
    assert code == 0, err
    assert (json.loads(out)["failed"], json.loads(out)["size"]) == (0, 6)
    [event] = events(err)
    assert (event["key_name"], event["restored"]) == ("cli", True)
    assert run_main(capsys, "lists", "export", *base, "--output", str(second))[0] == 0
    assert second.read_bytes() == first.read_bytes()
    after = asyncio.run(_seed_and_list(redis_server, prefix, "tenant:r", False))
    whole_seconds = [Listed(e.item, e.meta and replace(
        e.meta, added_at=float(int(e.meta.added_at)),
        expires_at=e.meta.expires_at and float(int(e.meta.expires_at)))) for e in before]
    assert after == whole_seconds


@pytest.mark.parametrize("body", [b"", b"\xef\xbb\xbfentry,channel\r\n", b"# none\n\n",
                                  EXPORT_HEADER.encode()],
                         ids=["empty", "header", "comments", "export-header"])
def test_replace_with_no_entry_exits_2_unless_allow_empty(
        tmp_path: Path, config: Path, redis_server: str, prefix: str,
        capsys: pytest.CaptureFixture[str], body: bytes) -> None:
    """Refused with exit 2 and a message naming --allow-empty, the list as it was;
    with --allow-empty the list is emptied."""
    base = ["--list", "block", "--scope", "global", "--config", str(config)]
    assert run_main(capsys, "lists", "import", str(write(tmp_path / "a.txt", "+4479*\n")),
                    *base)[0] == 0
    source = write(tmp_path / "empty.csv", body)
    code, out, err = run_main(capsys, "lists", "import", str(source), *base,
                              "--mode", "replace")
    assert code == EXIT_CONFIG
    assert json.loads(out)["added"] == 0
    assert "import refused, the list was left as it was" in err
    assert "give --allow-empty" in err
    assert [e["outcome"] for e in events(err)] == ["refused"]
    assert members(redis_server, prefix) == {"+4479*"}
    code, out, err = run_main(capsys, "lists", "import", str(source), *base,
                              "--mode", "replace", "--allow-empty")
    assert code == 0, err
    assert json.loads(out)["size"] == 0
    assert members(redis_server, prefix) == set()


def test_replace_of_garbage_with_allow_empty_still_exits_1(
        tmp_path: Path, config: Path, redis_server: str, prefix: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Every line failed: refused (exit 1) whatever --allow-empty says."""
    base = ["--list", "block", "--scope", "global", "--config", str(config)]
    assert run_main(capsys, "lists", "import", str(write(tmp_path / "a.txt", "+4479*\n")),
                    *base)[0] == 0
    code, _, err = run_main(capsys, "lists", "import",
                            str(write(tmp_path / "bad.txt", "0612345678\n")), *base,
                            "--mode", "replace", "--allow-empty")
    assert code == EXIT_RUNTIME
    assert "no line of the input is a valid entry" in err
    assert members(redis_server, prefix) == {"+4479*"}


@pytest.mark.parametrize(("body", "extra", "message"), [
    ("+33612345678\n", ["--allow-empty"], "--allow-empty applies to --mode replace only"),
    (EXPORT_HEADER + "+33612345678,both,api,2024-01-01T00:00:00+00:00,ops,,\n",
     ["--note", "x"], "import refused: the input is an export"),
], ids=["allow-empty-with-add", "note-with-an-export"])
def test_import_option_conflicts_exit_2(tmp_path: Path, config: Path, redis_server: str,
                                        prefix: str, capsys: pytest.CaptureFixture[str],
                                        body: str, extra: list[str], message: str) -> None:
    """Options that make no sense with the mode or the file: exit 2, nothing written."""
    code, out, err = run_main(capsys, "lists", "import", str(write(tmp_path / "in", body)),
                              "--list", "block", "--scope", "global", "--config",
                              str(config), *extra)
    assert code == EXIT_CONFIG
    assert out == ""
    assert f"gatekeeper: {message}" in err
    assert members(redis_server, prefix) == set()


# ------------------------------------------------------------------------ embedded store


@pytest.fixture
def embedded(tmp_path: Path) -> tuple[Path, Path]:
    """A config using the embedded store in tmp_path/data; (config, data_dir)."""
    data_dir = tmp_path / "data"
    return write_config(tmp_path / "embedded.yaml",
                        redis={"url": "embedded", "data_dir": str(data_dir)}), data_dir


def test_import_then_export_on_the_embedded_store(
        tmp_path: Path, embedded: tuple[Path, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    """With no server running, each call starts the embedded store and stops it; the
    import persists (AOF) for the export."""
    path, data_dir = embedded
    source = write(tmp_path / "in.txt", "+33612345678\n+4479*\n")
    code, out, err = run_main(capsys, "lists", "import", str(source), "--list", "block",
                              "--scope", "global", "--config", str(path))
    assert code == 0, err
    assert json.loads(out)["added"] == 2
    assert read_running(data_dir) is None
    code, out, err = run_main(capsys, "lists", "export", "--list", "block", "--scope",
                              "global", "--config", str(path))
    assert code == 0, err
    assert [r[0] for r in csv.reader(io.StringIO(out))][1:] == ["+33612345678", "+4479*"]
    assert read_running(data_dir) is None


def test_import_uses_the_running_embedded_store(
        tmp_path: Path, embedded: tuple[Path, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    """With the embedded server already running (a Gatekeeper up), the import goes to it
    and leaves it running."""
    path, data_dir = embedded
    server = EmbeddedRedis(data_dir)
    try:
        endpoint = server.start()
        source = write(tmp_path / "in.txt", "+33612345678\n")
        code, _, err = run_main(capsys, "lists", "import", str(source), "--list", "block",
                                "--scope", "global", "--config", str(path))
        assert code == 0, err
        assert read_running(data_dir) == endpoint
        assert members(endpoint.url, "gk:") == {"+33612345678"}
    finally:
        server.stop()


# ------------------------------------------------------------------------ progress


class TtyBuffer(io.StringIO):
    """A text buffer that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def clock() -> list[float]:
    """A settable clock for the progress bar."""
    return [100.0]


def test_progress_bar_on_a_terminal_is_rewritten_in_place(clock: list[float]) -> None:
    """Updates at most every 0.25 s, with `\\r`, lines and bytes of the total and a rate;
    the summary replaces the bar."""
    stream = TtyBuffer()
    bar = ProgressBar(stream, total_bytes=2_000_000, clock=lambda: clock[0])
    clock[0] += 1.0
    bar.update(50_000, "lines", 500_000)
    clock[0] += 0.1
    bar.update(60_000, "lines", 600_000)  # too soon: not shown
    clock[0] += 0.2
    bar.update(100_000, "lines", 1_000_000)
    bar.finish("imported 100,000 lines")
    shown = stream.getvalue()
    frames = shown.split("\r")
    assert frames[1].rstrip() == "50,000 lines  500.0 KB of 2.0 MB (25%)  50,000 lines/s"
    assert frames[2].rstrip() == \
        "100,000 lines  1.0 MB of 2.0 MB (50%)  76,923 lines/s"
    assert "60,000" not in shown
    assert shown.endswith("\rimported 100,000 lines\n")


def test_progress_bar_off_a_terminal_writes_only_the_summary(clock: list[float]) -> None:
    """Not a TTY: no bar, just the final line."""
    stream = io.StringIO()
    bar = ProgressBar(stream, total_bytes=1000, clock=lambda: clock[0])
    for step in range(10):
        clock[0] += 1.0
        bar.update(step, "lines", step * 100)
    bar.finish("imported 9 lines")
    assert stream.getvalue() == "imported 9 lines\n"


def test_import_shows_progress_on_a_terminal(
        tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """On a TTY the import draws the bar (lines, bytes of the file's size, rate)."""
    monkeypatch.setattr(cli_lists, "PROGRESS_INTERVAL", 0.0)
    monkeypatch.setattr(cli_lists, "READ_CHUNK", 4096)
    terminal = TtyBuffer()
    monkeypatch.setattr("sys.stderr", terminal)
    source = write(tmp_path / "in.txt", "".join(f"+3361{n:07d}\n" for n in range(3000)))
    code = main(["lists", "import", str(source), "--list", "block", "--scope", "global",
                 "--config", str(config)])
    assert code == 0, terminal.getvalue()
    shown = terminal.getvalue()
    assert shown.count("\r") >= 5
    assert "of 39.0 KB (" in shown
    assert "lines/s" in shown
    assert json.loads(capsys.readouterr().out)["added"] == 3000

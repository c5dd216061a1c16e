"""A change is acknowledged only once the server has written it to its append-only file:
`settle` against scripted INFO replies (a table and a property), every acknowledged
Store write asking a real redis-server after its write, and an acknowledged entry
surviving kill -9 of a redis-server whose disk syncs slowly."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.exceptions import ResponseError

from gatekeeper.config import RedisConfig
from gatekeeper.embedded import EmbeddedRedis
from gatekeeper.store import EntryMeta, ListItem, Store, StoreUnavailable, connect
from gatekeeper.store.durability import InfoRefused, settle
from tests.test_store import make_store
from tests.test_store_outage import kill, restart


def aof(written: int, waiting: int) -> dict[str, Any]:
    """An INFO persistence reply of a server keeping an AOF."""
    return {"aof_enabled": 1, "aof_current_size": written, "aof_buffer_length": waiting}


NO_AOF: dict[str, Any] = {"aof_enabled": 0}


@dataclass
class Script:
    """INFO replies in order (the last repeats), on a clock moved only by sleeps."""

    replies: list[dict[str, Any]]
    asked: int = 0
    now: float = 0.0

    async def info(self) -> dict[str, Any]:
        reply = self.replies[min(self.asked, len(self.replies) - 1)]
        self.asked += 1
        return reply

    async def sleep(self, seconds: float) -> None:
        self.now += seconds

    def clock(self) -> float:
        return self.now

    async def run(self) -> None:
        await settle(self.info, sleep=self.sleep, clock=self.clock)


# name: (INFO replies, INFO calls before settle returns)
RETURNS: dict[str, tuple[list[dict[str, Any]], int]] = {
    "no AOF: nothing to wait for": ([NO_AOF], 1),
    "nothing waiting: one INFO": ([aof(500, 0)], 1),
    "waiting bytes written later": ([aof(500, 80), aof(500, 80), aof(580, 0)], 3),
    "written while others wait: the file grew by what waited": (
        [aof(500, 80), aof(580, 30)], 2),
    "grew by less than what waited: not yet": (
        [aof(500, 80), aof(560, 40), aof(600, 10)], 3),
    "rewritten smaller: counted from the new file": (
        [aof(500, 80), aof(200, 90), aof(250, 40), aof(290, 5)], 4),
    "AOF turned off meanwhile": ([aof(500, 80), NO_AOF], 2),
}


@pytest.mark.parametrize(("replies", "asked"), list(RETURNS.values()), ids=list(RETURNS))
async def test_settle_returns_once_the_earlier_changes_are_written(
        replies: list[dict[str, Any]], asked: int) -> None:
    script = Script(replies)
    await script.run()
    assert script.asked == asked


async def test_settle_gives_up_as_store_unavailable_when_nothing_is_written() -> None:
    """A server that never writes its buffer: StoreUnavailable after the limit (5 s),
    polling at most every 50 ms meanwhile."""
    script = Script([aof(500, 80)])
    with pytest.raises(StoreUnavailable, match="append-only file within 5 s"):
        await script.run()
    assert 5.0 <= script.now < 5.1
    assert 5.0 / 0.05 <= script.asked <= 5.0 / 0.05 + 10


async def test_settle_reports_a_server_that_refuses_info() -> None:
    """fakeredis (or INFO renamed away) refuses the command: InfoRefused, not a fault."""
    async def refused() -> dict[str, Any]:
        raise ResponseError("unknown command 'info'")

    with pytest.raises(InfoRefused):
        await settle(refused)


@dataclass
class Server:
    """A model of Redis's AOF under `everysec`: commands append to a buffer; each turn
    either writes the whole buffer or (a background fsync running) postpones it."""

    written: int = 0
    buffer: int = 0
    turns: list[tuple[int, bool]] = field(default_factory=list)

    async def info(self) -> dict[str, Any]:
        reply = aof(self.written, self.buffer)
        appended, flushed = self.turns.pop(0) if self.turns else (0, True)
        self.buffer += appended  # others' commands after this INFO, in the same turn
        if flushed:
            self.written, self.buffer = self.written + self.buffer, 0
        return reply


@given(before=st.integers(0, 10_000), waiting=st.integers(1, 500),
       turns=st.lists(st.tuples(st.integers(0, 300), st.booleans()), max_size=40))
async def test_settle_never_returns_before_the_changes_it_follows_are_written(
        before: int, waiting: int, turns: list[tuple[int, bool]]) -> None:
    """Whatever others append and whenever the server postpones its writes, settle
    returns only when every byte appended before it was called is in the file."""
    server = Server(before, waiting, list(turns))
    appended_before_call = before + waiting
    seen: list[int] = []

    async def info() -> dict[str, Any]:
        reply = await server.info()
        seen.append(int(reply["aof_current_size"]))
        return reply

    await settle(info, sleep=_no_wait, clock=_frozen)
    assert seen[-1] >= appended_before_call


async def _no_wait(_seconds: float) -> None:
    return None


def _frozen() -> float:
    return 0.0


# --- on a real redis-server -------------------------------------------------------------

MANUAL = EntryMeta(source="api", added_at=1.0)


async def _add(store: Store) -> None:
    await store.add("block", "global", [ListItem("+33612345678")], MANUAL)


async def _remove(store: Store) -> None:
    await store.remove("block", "global", [ListItem("+33612345678")])


async def _remove_if_source(store: Store) -> None:
    await store.remove_if_source("block", "global", ListItem("+33612345678"), "api")


async def _swap(store: Store) -> None:
    live, staged = store.keys.of("block", "global"), store.keys.staging("block", "global")
    await store.begin_load(live, staged)
    await store.add_to(staged, [ListItem("+33612345678")], MANUAL.to_json(), None,
                       loading=True)
    await store.swap(live, staged)


async def _record_source(store: Store) -> None:
    await store.record_source("block", "global", "import", None, None)


async def _policy(store: Store) -> None:
    await store.put_policy_document("{}", "ops")


WRITES: dict[str, Callable[[Store], Awaitable[None]]] = {
    "add": _add, "remove": _remove, "remove_if_source": _remove_if_source,
    "swap (a replace import)": _swap, "record_source (an import's last write)": _record_source,
    "put_policy_document": _policy,
}


@pytest.mark.parametrize("write", list(WRITES.values()), ids=list(WRITES))
async def test_each_acknowledged_write_waits_for_the_aof_of_a_real_server(
        write: Callable[[Store], Awaitable[None]], real_redis: Any) -> None:
    """The suite's redis-server keeps an AOF (as the embedded store does): the write is
    followed by INFO persistence before it returns."""
    store = make_store(real_redis)
    assert (await real_redis.info("persistence"))["aof_enabled"] == 1
    await real_redis.config_resetstat()
    await write(store)
    stats = await real_redis.info("commandstats")
    assert stats.get("cmdstat_info", {}).get("calls", 0) >= 1, sorted(stats)


# --- a slow disk, kill -9 -------------------------------------------------------------

# Makes every fsync and fdatasync of a process take 3 s: redis-server's background
# fsync of its AOF then runs long enough for the next change to be postponed.
SLOW_SYNC_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <unistd.h>
static int slow(const char *name, int fd) {
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, name);
    usleep(3000000);
    return real(fd);
}
int fdatasync(int fd) { return slow("fdatasync", fd); }
int fsync(int fd) { return slow("fsync", fd); }
"""


@pytest.fixture
def slow_disk_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                     ) -> Iterator[EmbeddedRedis]:
    """A real redis-server (the embedded store's config: AOF, everysec) whose syncs take
    3 s, also once restarted."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.fail("this test builds a small shared library: it needs a C compiler "
                    "(`apt-get install gcc`, or `make test`, which installs it)")
    source, shim = tmp_path / "slowsync.c", tmp_path / "slowsync.so"
    source.write_text(SLOW_SYNC_C)
    subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-o", str(shim), str(source),
                    "-ldl"], check=True, capture_output=True, timeout=60)
    monkeypatch.setenv("LD_PRELOAD", str(shim))
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


async def sync_under_way(client: Any) -> None:
    """A change, then wait until the server's background fsync of its AOF runs."""
    await client.set("durability-test:before", "x")
    deadline = time.monotonic() + 5
    while int((await client.info("persistence"))["aof_pending_bio_fsync"]) == 0:
        assert time.monotonic() < deadline, "redis-server started no background fsync"
        await asyncio.sleep(0.01)


@pytest.mark.slow
@pytest.mark.integration
async def test_an_acknowledged_entry_survives_kill_9_while_the_disk_is_slow(
        slow_disk_server: EmbeddedRedis) -> None:
    """A plain write acknowledged while a background fsync runs is lost to kill -9 (the
    hazard, shown first); an entry the Store acknowledged at the same moment is not."""
    assert slow_disk_server.endpoint is not None
    client = connect(RedisConfig(timeout=5.0), slow_disk_server.endpoint.url)
    store = make_store(client)
    try:
        await sync_under_way(client)
        await client.set("durability-test:plain", "x")
        assert int((await client.info("persistence"))["aof_buffer_length"]) > 0, \
            "the write was not postponed: the hazard is not reproduced"
        kill(slow_disk_server)
        restart(slow_disk_server)
        assert await client.get("durability-test:plain") is None  # acknowledged, lost

        await sync_under_way(client)
        await store.add("block", "global", [ListItem("+33612345678")], MANUAL)
        kill(slow_disk_server)
        restart(slow_disk_server)
        found = await store.lookup(["+33612345678"], ["global"], "sms")
        assert [m.entry for m in found["+33612345678"]] == ["+33612345678"]
    finally:
        await client.aclose()


async def test_a_removal_inside_an_import_leaves_the_wait_to_its_last_write(
        real_redis: Any) -> None:
    """A change file's deletions (`settle=False`) do not ask INFO each chunk: the
    import's last write (record_source) waits for everything before it."""
    store = make_store(real_redis)
    await real_redis.config_resetstat()
    await store.remove("block", "global", [ListItem("+33612345678")], settle=False)
    stats = await real_redis.info("commandstats")
    assert "cmdstat_info" not in stats, sorted(stats)

"""Admin imports of large bodies in a child process (bulk_child.py), through the
production path: Gatekeeper connected to a real redis-server by its URL, bodies POSTed to
the admin endpoint. The child gives what the import in process gives; a body cut short,
a refusal or a dead child never changes a list a replace was replacing."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gatekeeper import bulk_child
from gatekeeper.bulk_child import OFFLOAD_BYTES
from gatekeeper.resources import RESOURCES
from tests.conftest import (
    AUTH,
    FakeUpstream,
    Running,
    leftovers,
    list_members,
    log_events,
    make_config,
)
from tests.test_admin_bulk import IMPORT, lines, numbers
from tests.test_failover import Client, start_on

pytestmark = [pytest.mark.integration]  # slow: listed in conftest's SLOW_MODULES

BIG = 90_000  # lines: about 1.2 MB, over OFFLOAD_BYTES


@pytest.fixture
async def gk(aiohttp_client: Client, upstream: FakeUpstream, tmp_path: Path,
             real_redis: Any, redis_server: str) -> Running:
    """Gatekeeper on the suite's real redis-server, connected by its URL (as `gatekeeper
    run` is: the store's URL is known, so a child can reach it)."""
    gk = await start_on(aiohttp_client, make_config(upstream.url, tmp_path, redis={
        "url": redis_server, "timeout": 5.0}, store={"import_priority": "normal"}))
    assert gk.app[RESOURCES].store_url == redis_server
    return gk


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """The child processes started (their argv), recorded."""
    started: list[tuple[str, ...]] = []
    spawn = asyncio.create_subprocess_exec

    async def recorded(*argv: str, **kwargs: Any) -> asyncio.subprocess.Process:
        started.append(argv)
        return await spawn(*argv, **kwargs)

    monkeypatch.setattr(bulk_child.asyncio, "create_subprocess_exec", recorded)
    return started


async def post(gk: Running, body: bytes, **params: str) -> tuple[int, dict[str, Any]]:
    """POST an import; the status and the JSON reply."""
    resp = await gk.admin.post(IMPORT.format("block"), data=body, params=params,
                               headers=AUTH)
    return resp.status, dict(await resp.json())


async def block_list(gk: Running) -> set[str]:
    """The global block list's entries."""
    return await list_members(gk.app[RESOURCES].store, "block", "global")


def test_the_big_body_is_over_the_offload_size() -> None:
    """The bodies below go to the child, the small ones stay in process."""
    assert len(lines(numbers(BIG))) > OFFLOAD_BYTES
    assert len(lines(numbers(1000))) < OFFLOAD_BYTES


@pytest.mark.parametrize("mode", ["replace", "add"])
async def test_a_large_import_runs_in_a_child_and_gives_what_one_in_process_gives(
        gk: Running, children: list[tuple[str, ...]], log_output: io.StringIO,
        mode: str) -> None:
    """Same reply and same list as the import in process would give (with a failed
    line and a repeat); the audit event names the key and says applied."""
    await post(gk, lines(["+33699999999"]), mode="replace")
    assert children == []  # a small body: in process
    body = lines([*numbers(BIG), "not a number", "+33610000001"])
    status, reply = await post(gk, body, mode=mode)
    assert status == 200, reply
    assert len(children) == 1
    assert children[0][1:] == ("-m", "gatekeeper.bulk_child")
    kept = {"+33699999999"} if mode == "add" else set()
    assert (reply["lines"], reply["added"], reply["existing"], reply["failed"]) == (
        BIG + 2, BIG, 1, 1)
    assert reply["failures"][0]["line"] == BIG + 1
    if mode == "replace":
        assert reply["size"] == BIG
    assert await block_list(gk) == set(numbers(BIG)) | kept
    [event] = [e for e in log_events(log_output) if e["event"] == "list_changed"
               and e.get("lines") == BIG + 2]
    assert (event["outcome"], event["key_name"], event["added"]) == ("applied", "admin", BIG)


async def test_a_refused_replace_in_a_child_is_400_and_leaves_the_list(
        gk: Running, children: list[tuple[str, ...]]) -> None:
    """No valid line in a large replace: the same 400 as in process, list untouched."""
    await post(gk, lines(["+33699999999"]), mode="replace")
    status, reply = await post(gk, b"not a number\n" * 100_000, mode="replace")
    assert len(children) == 1
    assert status == 400
    assert reply["code"] == "no_valid_entries"
    assert await block_list(gk) == {"+33699999999"}
    assert await leftovers(gk.app[RESOURCES].store.client, "gk:") == []


async def test_a_body_cut_short_never_replaces_the_list(
        gk: Running, children: list[tuple[str, ...]], log_output: io.StringIO) -> None:
    """The client goes away after 1.2 MB of a body announced as twice that: the child
    never gets the end frame and abandons the replace; nothing is left behind and the
    child is gone."""
    await post(gk, lines(["+33699999999"]), mode="replace")
    sent = lines(numbers(BIG))
    assert gk.admin.server.port is not None
    _, writer = await asyncio.open_connection("127.0.0.1", gk.admin.server.port)
    writer.write((f"POST {IMPORT.format('block')}?mode=replace HTTP/1.1\r\nHost: a\r\n"
                  f"Authorization: {AUTH['Authorization']}\r\n"
                  f"Content-Length: {2 * len(sent)}\r\n\r\n").encode() + sent)
    await writer.drain()
    for _ in range(100):  # until the child has started
        if children:
            break
        await asyncio.sleep(0.05)
    writer.close()
    client = gk.app[RESOURCES].store.client
    for _ in range(200):  # the child abandons the import, then exits
        events = [e for e in log_events(log_output) if e["event"] == "list_changed"
                  and e.get("outcome") == "aborted"]
        if events and not bulk_child._CHILDREN and not await leftovers(client, "gk:"):
            break
        await asyncio.sleep(0.05)
    assert len(children) == 1
    assert events
    assert not bulk_child._CHILDREN
    assert await leftovers(client, "gk:") == []
    assert await block_list(gk) == {"+33699999999"}


async def test_a_child_that_dies_is_500_import_failed_and_leaves_the_list(
        gk: Running, monkeypatch: pytest.MonkeyPatch, log_output: io.StringIO) -> None:
    """A child that exits without an answer (here: not Python at all): 500
    `import_failed`, logged; the replace never happened."""
    await post(gk, lines(["+33699999999"]), mode="replace")
    spawn: Callable[..., Awaitable[asyncio.subprocess.Process]] = \
        asyncio.create_subprocess_exec

    async def broken(*_argv: str, **kwargs: Any) -> asyncio.subprocess.Process:
        return await spawn("sh", "-c", "echo crashed >&2; exit 3", **kwargs)

    monkeypatch.setattr(bulk_child.asyncio, "create_subprocess_exec", broken)
    status, reply = await post(gk, lines(numbers(BIG)), mode="replace")
    assert status == 500
    assert reply["code"] == "import_failed"
    assert await block_list(gk) == {"+33699999999"}
    [failed] = [e for e in log_events(log_output) if e["event"] == "import_failed"]
    assert failed["error"] == "the import process exited with code 3: crashed"


NOISY_CHILD = """
import gatekeeper.bulk_child as child
real = child._child
async def noisy():
    print("something printed by the importer")
    return await real()
child._child = noisy
child.main()
"""


async def test_output_printed_in_the_child_does_not_spoil_its_answer(
        gk: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """The child's stdout carries its answer alone: a print during the import goes to
    stderr, and the import is applied as usual."""
    spawn = asyncio.create_subprocess_exec

    async def noisy(executable: str, *_argv: str, **kwargs: Any
                    ) -> asyncio.subprocess.Process:
        return await spawn(executable, "-c", NOISY_CHILD, **kwargs)

    monkeypatch.setattr(bulk_child.asyncio, "create_subprocess_exec", noisy)
    status, reply = await post(gk, lines(numbers(BIG)), mode="replace")
    assert status == 200, reply
    assert reply["size"] == BIG
    assert await block_list(gk) == set(numbers(BIG))

"""A real redis-server killed under Gatekeeper: every admin path (native, bulk, attempts,
per-agent), the proxy's sends and its drop-in list APIs answer 503 `store_unavailable`,
never 500, and all of them work again once the server is back on its port."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.config import Config, RedisConfig, StoreConfig
from gatekeeper.embedded import EmbeddedRedis
from gatekeeper.store import EntryMeta, ListItem, Store, StoreUnavailable, connect
from tests.conftest import (
    ADMIN_KEY,
    AUTH,
    TWILIO_MESSAGES,
    FakeUpstream,
    Running,
    StartGatekeeper,
    log_events,
    make_config,
    sample,
)

NUMBER = "+33612345678"
PRELUDE_TOKEN = "prelude-api-token-not-real"
ILETI_KEY = "API_KEY_ACME"
AGENT = {"X-Authorization": ADMIN_KEY}
PRELUDE = {"Authorization": f"Bearer {PRELUDE_TOKEN}", "Content-Type": "application/json"}


def ileti(blacklist: dict[str, Any]) -> bytes:
    """An iletiMerkezi list-API request body."""
    return json.dumps({"request": {"authentication": {"key": ILETI_KEY, "hash": "HASH"},
                                   "blacklist": blacklist}}).encode()


@dataclass(frozen=True)
class Call:
    """One HTTP call on a listener, and the statuses it may answer once the store is up."""

    listener: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    json_body: Any = None
    data: bytes | None = None
    params: dict[str, str] = field(default_factory=dict)
    healthy: tuple[int, ...] = (200,)


CALLS: dict[str, Call] = {
    "readyz": Call("admin", "GET", "/readyz"),
    "native-add": Call("admin", "POST", "/admin/v1/lists/block/entries", AUTH,
                       {"entries": ["+447700900123"]}),
    "native-remove": Call("admin", "DELETE", "/admin/v1/lists/block/entries", AUTH,
                          {"entries": ["+447700900123"]}),
    "native-list": Call("admin", "GET", "/admin/v1/lists/block/entries", AUTH),
    "native-check": Call("admin", "GET", "/admin/v1/check", AUTH, params={"number": NUMBER}),
    "bulk-import-add": Call("admin", "POST", "/admin/v1/lists/block/import", AUTH,
                            data=b"+447700900124\n+447700900125\n",
                            params={"scope": "tenant:acme", "mode": "add"}),
    "bulk-import-replace": Call("admin", "POST", "/admin/v1/lists/block/import", AUTH,
                                data=b"+447700900126\n",
                                params={"scope": "tenant:beta", "mode": "replace"}),
    "bulk-export": Call("admin", "GET", "/admin/v1/lists/block/export", AUTH),
    "attempts": Call("admin", "GET", "/admin/v1/attempts", AUTH),
    "attempts-summary": Call("admin", "GET", "/admin/v1/attempts/summary", AUTH),
    "agent-get": Call("admin", "GET", "/api/agent-block-list", AGENT,
                      params={"uid": "u1", "agentId": "42"}),
    "agent-add": Call("admin", "POST", "/api/agent-block-list", AGENT,
                      {"uid": "u1", "agentId": "42", "numbers": ["+447700900127"]}),
    "agent-remove": Call("admin", "DELETE", "/api/agent-block-list", AGENT,
                         {"uid": "u1", "agentId": "42", "numbers": ["+447700900127"]}),
    "proxy-send-blocked": Call("proxy", "POST", TWILIO_MESSAGES,
                               data=b"To=%2B33612345678&From=%2B15005550006&Body=hi",
                               headers={"Content-Type": "application/x-www-form-urlencoded"},
                               healthy=(403,)),
    "proxy-send": Call("proxy", "POST", TWILIO_MESSAGES,
                       data=b"To=%2B447700900999&From=%2B15005550006&Body=hi",
                       headers={"Content-Type": "application/x-www-form-urlencoded"},
                       healthy=(201,)),
    "prelude-add": Call("proxy", "POST",
                        "/prelude/v2/verification/management/phone-numbers/block",
                        PRELUDE, {"phone_number": "+30123456789"}, healthy=(200, 201)),
    "prelude-list": Call("proxy", "GET",
                         "/prelude/v2/verification/management/phone-numbers/block", PRELUDE),
    "prelude-remove": Call("proxy", "DELETE",
                           "/prelude/v2/verification/management/phone-numbers/block",
                           PRELUDE, {"phone_number": "+30123456789"}, healthy=(200, 202)),
    "ileti-add": Call("proxy", "POST", "/iletimerkezi/v1/add-blacklist/json",
                      {"Content-Type": "application/json"},
                      data=ileti({"number": "905330000099"})),
    "ileti-list": Call("proxy", "POST", "/iletimerkezi/v1/get-blacklist/json",
                       {"Content-Type": "application/json"},
                       data=ileti({"page": 1, "rowCount": 10})),
    "ileti-remove": Call("proxy", "POST", "/iletimerkezi/v1/delete-blacklist/json",
                         {"Content-Type": "application/json"},
                         data=ileti({"number": "905330000099"}), healthy=(200, 474)),
}


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A real redis-server of this test's own, which it may kill."""
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def kill(server: EmbeddedRedis) -> None:
    """kill -9 the server and wait until it is gone."""
    assert server.endpoint is not None
    os.kill(server.endpoint.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while server.exit_status() is None:
        assert time.monotonic() < deadline, "redis-server did not die"
        time.sleep(0.01)


def restart(server: EmbeddedRedis) -> None:
    """Start the killed server again on its data directory, port and password."""
    before = server.endpoint
    assert before is not None
    server.relaunch()
    deadline = time.monotonic() + 10
    while not server.answers():
        assert time.monotonic() < deadline, "redis-server did not come back"
        time.sleep(0.02)
    after = server.confirm()
    assert (after.port, after.password) == (before.port, before.password)


def outage_config(upstream: FakeUpstream, tmp_path: Path) -> Config:
    """Twilio for sends, and the two drop-in list APIs, each credential in tenant:acme."""
    digest = "sha256:" + hashlib.sha256(PRELUDE_TOKEN.encode()).hexdigest()
    return make_config(upstream.url, tmp_path, upstreams=[
        {"name": "twilio", "url": upstream.url, "preset": "twilio", "region": "US"},
        {"name": "prelude", "url": upstream.url, "preset": "prelude",
         "credentials": {digest: ["tenant:acme"]}},
        {"name": "iletimerkezi", "url": upstream.url, "preset": "iletimerkezi",
         "credentials": {ILETI_KEY: ["tenant:acme"]}},
    ])


async def start_on(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream,
                   tmp_path: Path, server: EmbeddedRedis) -> Running:
    """Gatekeeper on the real server (short timeout), with NUMBER blocked globally."""
    assert server.endpoint is not None
    client = connect(RedisConfig(timeout=0.5), server.endpoint.url)
    gk = await start_gatekeeper(outage_config(upstream, tmp_path), redis=client)
    await gk.block(NUMBER)
    return gk


async def perform(gk: Running, call: Call) -> tuple[int, Any]:
    """Make the call; its status and its reply (JSON when it is JSON)."""
    client = gk.admin if call.listener == "admin" else gk.proxy
    resp = await client.request(call.method, call.path, headers=call.headers,
                                json=call.json_body, data=call.data, params=call.params)
    body = await resp.read()
    try:
        return resp.status, json.loads(body)
    except ValueError:
        return resp.status, body


@pytest.mark.parametrize("name", list(CALLS))
async def test_store_down_is_503_on_every_path_and_back_after_restart(
        name: str, own_server: EmbeddedRedis, start_gatekeeper: StartGatekeeper,
        upstream: FakeUpstream, tmp_path: Path, log_output: io.StringIO) -> None:
    """With the server killed the call answers 503 (`store_unavailable`), logged as a
    store fault; once the server is back on its port the same call works again."""
    call = CALLS[name]
    gk = await start_on(start_gatekeeper, upstream, tmp_path, own_server)
    kill(own_server)
    status, reply = await perform(gk, call)
    assert status == 503, reply
    if name == "readyz":
        assert reply == {"status": "store_unavailable"}
    elif call.listener == "admin" or name.startswith(("prelude", "ileti")):
        assert reply["code"] == "store_unavailable"
        assert any(e["event"] == "store_unavailable" for e in log_events(log_output))
    restart(own_server)
    status, reply = await perform(gk, call)
    assert status in call.healthy, reply


async def test_admin_store_faults_are_counted(
        own_server: EmbeddedRedis, start_gatekeeper: StartGatekeeper,
        upstream: FakeUpstream, tmp_path: Path) -> None:
    """Each admin call refused for a store fault counts once in store_errors{admin}."""
    gk = await start_on(start_gatekeeper, upstream, tmp_path, own_server)
    kill(own_server)
    admin_calls = [c for n, c in CALLS.items() if c.listener == "admin" and n != "readyz"]
    for call in admin_calls:
        assert (await perform(gk, call))[0] == 503
    assert sample(gk.registry, "gatekeeper_store_errors_total", operation="admin") == \
        len(admin_calls)


async def test_killed_mid_traffic_never_500_and_recovers(
        own_server: EmbeddedRedis, start_gatekeeper: StartGatekeeper,
        upstream: FakeUpstream, tmp_path: Path) -> None:
    """Sends, checks and adds keep coming while the server is killed and restarted: no
    reply is a 500, some are 503, and after the restart every call succeeds and the
    entry added before the kill is still there (AOF reloaded)."""
    gk = await start_on(start_gatekeeper, upstream, tmp_path, own_server)
    mix = [CALLS["proxy-send"], CALLS["proxy-send-blocked"], CALLS["native-check"],
           CALLS["native-add"], CALLS["agent-get"], CALLS["prelude-list"]]
    seen: list[tuple[str, int]] = []
    running = True

    async def traffic(call: Call) -> None:
        while running:
            status, _ = await perform(gk, call)
            seen.append((call.path, status))
            await asyncio.sleep(0.005)

    tasks = [asyncio.create_task(traffic(c)) for c in mix for _ in range(3)]
    try:
        await asyncio.sleep(0.3)
        kill(own_server)
        await asyncio.sleep(0.3)
        restart(own_server)
        await asyncio.sleep(0.3)
    finally:
        running = False
        await asyncio.gather(*tasks)
    statuses = {status for _, status in seen}
    assert 500 not in statuses
    assert 503 in statuses
    assert statuses <= {200, 201, 403, 503}
    for call in mix:
        status, reply = await perform(gk, call)
        assert status in call.healthy, (call.path, reply)
    status, reply = await perform(gk, CALLS["native-check"])
    assert reply["decision"] == "blocked"


async def test_lean_pipe_lookups_fail_as_store_unavailable_and_recover(
        own_server: EmbeddedRedis) -> None:
    """Lookups on the lean pipelined connection raise only StoreUnavailable while the
    server is killed, and find the same entries once it is back."""
    assert own_server.endpoint is not None
    url = own_server.endpoint.url
    config = RedisConfig(timeout=0.5)
    store = Store(connect(config, url), config, StoreConfig(), lookup_url=url)
    await store.add("block", "global", [ListItem("+336*")], EntryMeta("api", time.time()))
    errors: list[BaseException] = []
    running = True

    async def lookups() -> None:
        while running:
            try:
                await store.lookup([NUMBER], ["global", "tenant:acme"], "sms")
            except Exception as exc:  # every error is collected and checked below
                errors.append(exc)
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(lookups()) for _ in range(8)]
    try:
        await asyncio.sleep(0.1)
        kill(own_server)
        await asyncio.sleep(0.2)
        restart(own_server)
    finally:
        running = False
        await asyncio.gather(*tasks)
    try:
        assert errors
        assert {type(e) for e in errors} == {StoreUnavailable}
        found = await store.lookup([NUMBER], ["global"])
        assert [m.entry for m in found[NUMBER]] == ["+336*"]
    finally:
        await store.close()

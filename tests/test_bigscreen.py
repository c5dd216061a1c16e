"""The screening helper process (`gatekeeper.bigscreen`) on a real redis-server: requests
with bodies over 64 KiB are screened there with the same outcome as on the event loop
(byte for byte), and its failures (store outage, a killed or hung helper) refuse the
request, never forward it; the helper comes back for the next one."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from gatekeeper.app import ADMIN_APP, create_app
from gatekeeper.bigscreen import ScreenHelper
from gatekeeper.bulk import Importer, ImportOptions
from gatekeeper.config import Config, RedisConfig
from gatekeeper.embedded import EmbeddedRedis
from gatekeeper.resources import RESOURCES
from gatekeeper.sending import OFF_LOOP_BYTES
from gatekeeper.store import connect
from tests.conftest import (
    TWILIO_SID,
    FakeUpstream,
    ListenerTestServer,
    Running,
    log_events,
    make_config,
    sample,
)

pytestmark = pytest.mark.integration

SMS = "/generic/v1/sms"
UNKNOWN = f"/twilio/2010-04-01/Accounts/{TWILIO_SID}/Unknown/Thing.json"
TEXT = "Your appointment is tomorrow at 10:00, reply STOP to opt out"
BLOCKED = "+14155550007"
UNDER_PREFIX = "+13035550123"   # under the blocked prefix +1303*
JSON = {"Content-Type": "application/json"}

StartHelper = Callable[..., Awaitable[Running]]


def numbers(count: int, start: int = 0) -> list[str]:
    """Distinct unlisted US numbers."""
    return [f"+1415{2_000_000 + start + i}" for i in range(count)]


def batch(recipients: list[str]) -> bytes:
    """A generic JSON batch; over OFF_LOOP_BYTES from about 900 recipients."""
    return json.dumps({"messages": [{"to": n, "text": TEXT} for n in recipients]}).encode()


def large_batch() -> bytes:
    """A batch of 1,200 recipients, two of them blocked (one exact, one by prefix)."""
    recipients = numbers(1200)
    recipients[100], recipients[900] = BLOCKED, UNDER_PREFIX
    body = batch(recipients)
    assert len(body) > OFF_LOOP_BYTES
    return body


@pytest.fixture
async def start_helper(
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
) -> StartHelper:
    """Start Gatekeeper on `client` (as conftest's `start_gatekeeper`, on the production
    listeners); with `url`, the client's server, large requests go to the helper
    process, without it they are screened on the loop."""

    async def start(config: Config, client: Any, url: str | None) -> Running:
        registry = CollectorRegistry()
        app = create_app(config, registry=registry, redis_client=client)
        app[RESOURCES].client_url = url
        proxy = await aiohttp_client(ListenerTestServer(app, "proxy", config.proxy.timeouts))
        admin = await aiohttp_client(ListenerTestServer(app[ADMIN_APP], "admin",
                                                        config.admin.timeouts))
        return Running(proxy, admin, app, registry, client)

    return start


def helper_of(gk: Running) -> ScreenHelper:
    """The running Gatekeeper's screening helper."""
    helper = gk.app[RESOURCES].screen_helper
    assert helper is not None
    return helper


async def eventually(check: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait until `check()` holds."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A real redis-server of this test's own, which it may stop."""
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


async def test_without_a_url_large_requests_stay_on_the_loop(
        start_helper: StartHelper, real_redis: Any, upstream: FakeUpstream,
        tmp_path: Path) -> None:
    """A store given as a client object alone (as fakeredis is) has no URL for a helper:
    there is none, and large batches are screened in this process, as before."""
    gk = await start_helper(make_config(upstream.url, tmp_path), real_redis, None)
    assert gk.app[RESOURCES].screen_helper is None
    await gk.block(BLOCKED, "+1303*")
    resp = await gk.proxy.post(SMS, data=large_batch(), headers=JSON)
    assert resp.status == 201, await resp.text()
    assert resp.headers["X-Gatekeeper-Decision"] == "partial"
    assert resp.headers["X-Gatekeeper-Removed"] == "2"


async def test_large_batch_rewritten_in_the_helper_as_on_the_loop(
        start_helper: StartHelper, real_redis: Any, redis_server: str,
        upstream: FakeUpstream, tmp_path: Path) -> None:
    """The partial rewrite of a large batch in the helper is byte for byte the one made
    on the loop; replies, metrics and the attempts stream are the same."""
    config = make_config(upstream.url, tmp_path)
    on_loop = await start_helper(config, real_redis, None)
    in_helper = await start_helper(config, real_redis, redis_server)
    await in_helper.block(BLOCKED, "+1303*")
    body = large_batch()
    replies = []
    for gk in (on_loop, in_helper):
        resp = await gk.proxy.post(SMS, data=body, headers=JSON)
        replies.append((resp.status, resp.headers["X-Gatekeeper-Decision"],
                        resp.headers["X-Gatekeeper-Removed"], await resp.read()))
    assert replies[0] == replies[1]
    assert replies[1][:3] == (201, "partial", "2")
    assert helper_of(in_helper).answered == 1
    loop_sent, helper_sent = upstream.received
    assert loop_sent.body == helper_sent.body
    assert loop_sent.path_qs == helper_sent.path_qs
    sent = json.loads(helper_sent.body)["messages"]
    assert len(sent) == 1198
    assert {m["to"] for m in sent}.isdisjoint({BLOCKED, UNDER_PREFIX})
    for reason in ("blocked", "unlisted"):
        counts = [sample(gk.registry, "gatekeeper_decisions_total", upstream="generic",
                         channel="sms", direction="outbound", action="partial",
                         reason=reason) for gk in (on_loop, in_helper)]
        assert counts[0] == counts[1] > 0, reason
    deadline = time.monotonic() + 5
    while len(attempts := await real_redis.xrange("gk:attempts")) < 4:
        assert time.monotonic() < deadline, attempts
        await asyncio.sleep(0.02)
    removed = sorted((f["number"], f["action"]) for _, f in attempts)
    assert removed == sorted([(BLOCKED, "removed"), (UNDER_PREFIX, "removed")] * 2)


async def test_policy_rules_apply_in_the_helper_as_on_the_loop(
        start_helper: StartHelper, real_redis: Any, redis_server: str,
        upstream: FakeUpstream, tmp_path: Path) -> None:
    """A country rule (compiled config crossing to the helper process) removes the
    same recipient from a large batch there as on the loop, counted by rule."""
    config = make_config(upstream.url, tmp_path,
                         policy={"global": {"countries": {"block": ["KP"]}}})
    on_loop = await start_helper(config, real_redis, None)
    in_helper = await start_helper(config, real_redis, redis_server)
    recipients = numbers(1200)
    recipients[500] = "+85023812345"
    body = batch(recipients)
    replies = []
    for gk in (on_loop, in_helper):
        resp = await gk.proxy.post(SMS, data=body, headers=JSON)
        replies.append((resp.status, resp.headers["X-Gatekeeper-Decision"],
                        resp.headers["X-Gatekeeper-Removed"]))
        assert sample(gk.registry, "gatekeeper_decisions_total", upstream="generic",
                      channel="sms", direction="outbound", action="partial",
                      reason="policy_country") == 1
    assert replies == [(201, "partial", "1")] * 2
    assert helper_of(in_helper).answered == 1
    assert upstream.received[0].body == upstream.received[1].body



async def test_velocity_limits_count_a_large_batch_in_the_helper(
        start_helper: StartHelper, real_redis: Any, redis_server: str,
        upstream: FakeUpstream, tmp_path: Path) -> None:
    """1,200 recipients against 1,000 sends per hour to one country: the helper counts
    in slices, the last 200 are removed (429 would be a whole refusal), and exactly the
    1,000 forwarded stay counted."""
    config = make_config(upstream.url, tmp_path, policy={"global": {"velocity": [
        {"per": "country", "limit": "1000/hour"}]}})
    gk = await start_helper(config, real_redis, redis_server)
    resp = await gk.proxy.post(SMS, data=batch(numbers(1200)), headers=JSON)
    assert resp.status == 201, await resp.text()
    assert (resp.headers["X-Gatekeeper-Decision"], resp.headers["X-Gatekeeper-Removed"]) \
        == ("partial", "200")
    assert helper_of(gk).answered == 1
    [sent] = upstream.received
    assert len(json.loads(sent.body)["messages"]) == 1000
    [counter] = [k async for k in real_redis.scan_iter("gk:vel:*")]
    assert await real_redis.zcard(counter) == 1000


@pytest.mark.parametrize("helper", [False, True], ids=["on-loop", "in-helper"])
async def test_large_batch_finds_numbers_of_a_packed_load(
        start_helper: StartHelper, real_redis: Any, redis_server: str,
        upstream: FakeUpstream, tmp_path: Path, helper: bool) -> None:
    """A blocked number loaded by a replace import (a packed load) is cut out of a large
    batch, on the loop and in the helper, as one added by the API is."""
    gk = await start_helper(make_config(upstream.url, tmp_path), real_redis,
                            redis_server if helper else None)

    async def body() -> AsyncIterator[bytes]:
        yield f"{BLOCKED}\n+14155550008\n+4479*\n".encode()

    store = gk.app[RESOURCES].store
    await Importer(store, ImportOptions("block", "global", "replace")).run(body())
    assert await real_redis.hget("gk:packed:block:global", "count") == "2"
    await gk.block("+1303*")
    resp = await gk.proxy.post(SMS, data=large_batch(), headers=JSON)
    assert resp.status == 201, await resp.text()
    assert (resp.headers["X-Gatekeeper-Decision"], resp.headers["X-Gatekeeper-Removed"]) == (
        "partial", "2")
    [sent] = upstream.received
    assert BLOCKED not in {m["to"] for m in json.loads(sent.body)["messages"]}


async def test_large_unknown_write_with_a_blocked_number_is_refused(
        start_helper: StartHelper, real_redis: Any, redis_server: str,
        upstream: FakeUpstream, tmp_path: Path) -> None:
    """A large write on no send route is scanned in the helper: one blocked number in it
    refuses the whole request in the gateway's shape, nothing forwarded."""
    gk = await start_helper(make_config(upstream.url, tmp_path), real_redis, redis_server)
    await gk.block(BLOCKED)
    values = "&".join(f"Item{i}={n.replace('+', '%2B')}"
                      for i, n in enumerate([*numbers(5000), BLOCKED]))
    body = f"{values}&Note={'x' * 1000}".encode()
    assert len(body) > OFF_LOOP_BYTES
    resp = await gk.proxy.post(f"{UNKNOWN}?Mode=batch", data=body,
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 403, await resp.text()
    assert resp.headers["X-Gatekeeper-Decision"] == "rejected"
    assert (await resp.json())["code"] == 21610
    assert upstream.received == []
    assert helper_of(gk).answered == 1
    assert sample(gk.registry, "gatekeeper_decisions_total", upstream="twilio",
                  channel="any", direction="outbound", action="rejected",
                  reason="scanned") == 5001


@pytest.mark.parametrize(("on_error", "recipients", "status"), [
    ("closed", 1200, 503),
    # A request looked up in more than one slice never fails open...
    ("open", 1200, 503),
    # ...one in a single slice may, large body or not (as on the loop).
    ("open", 1, 201),
])
async def test_store_outage_during_a_large_request(
        start_helper: StartHelper, own_server: EmbeddedRedis, upstream: FakeUpstream,
        tmp_path: Path, log_output: Any, on_error: str, recipients: int,
        status: int) -> None:
    """The helper's lookups fail on a stopped server: the request is refused with 503
    `store_unavailable` (logged and counted once, by the loop's process) and never
    forwarded, unless `on_error: open` applies, which it does as on the loop."""
    assert own_server.endpoint is not None
    url = own_server.endpoint.url
    client = connect(RedisConfig(timeout=0.5), url)
    config = make_config(upstream.url, tmp_path, store={"on_error": on_error},
                         redis={"data_dir": str(tmp_path / "data"), "timeout": 0.5})
    gk = await start_helper(config, client, url)
    await gk.block(BLOCKED)
    body = batch(numbers(recipients)) if recipients > 1 else \
        json.dumps({"messages": [{"to": numbers(1)[0], "text": "x" * OFF_LOOP_BYTES}]}).encode()
    assert len(body) > OFF_LOOP_BYTES
    own_server.stop()
    resp = await gk.proxy.post(SMS, data=body, headers=JSON)
    assert resp.status == status, await resp.text()
    assert helper_of(gk).answered == 1
    faults = [e for e in log_events(log_output) if e["event"] == "store_unavailable"]
    assert [(e["operation"], e["on_error"]) for e in faults] == [("lookup", on_error)]
    assert sample(gk.registry, "gatekeeper_store_errors_total", operation="lookup") == 1
    if status == 503:
        assert (await resp.json())["code"] == "store_unavailable"
        assert upstream.received == []
    else:
        assert resp.headers["X-Gatekeeper-Decision"] == "forwarded"
        assert len(upstream.received) == 1
        assert sample(gk.registry, "gatekeeper_decisions_total", upstream="generic",
                      channel="sms", direction="outbound", action="forwarded",
                      reason="store_unavailable") == 1


async def _stall_lookups(redis: Any, milliseconds: int) -> None:
    """Hold every write (EVALSHA included) on the server for a while; reads still run."""
    await redis.execute_command("CLIENT", "PAUSE", str(milliseconds), "WRITE")


async def test_helper_killed_mid_request_refuses_it_and_comes_back(
        start_helper: StartHelper, real_redis: Any, redis_server: str,
        upstream: FakeUpstream, tmp_path: Path, log_output: Any) -> None:
    """kill -9 of the helper while it screens a batch: that request gets 503
    `screening_unavailable` (counted, logged), nothing is forwarded; a new helper is
    started and the next large batch is screened as usual."""
    gk = await start_helper(make_config(upstream.url, tmp_path), real_redis, redis_server)
    await gk.block(BLOCKED, "+1303*")
    helper = helper_of(gk)
    resp = await gk.proxy.post(SMS, data=large_batch(), headers=JSON)  # ready, and warm
    assert resp.headers["X-Gatekeeper-Decision"] == "partial"
    first = helper.pid
    assert first is not None
    await _stall_lookups(real_redis, 5000)
    try:
        sending = asyncio.create_task(gk.proxy.post(SMS, data=large_batch(), headers=JSON))
        await asyncio.sleep(0.5)
        assert not sending.done()
        os.kill(first, signal.SIGKILL)
        resp = await sending
    finally:
        await real_redis.execute_command("CLIENT", "UNPAUSE")
    assert resp.status == 503
    assert resp.headers["X-Gatekeeper-Decision"] == "rejected"
    assert (await resp.json())["code"] == "screening_unavailable"
    assert len(upstream.received) == 1  # the first batch only
    assert sample(gk.registry, "gatekeeper_decisions_total", upstream="generic",
                  channel="sms", direction="outbound", action="rejected",
                  reason="screening_unavailable") == 1
    assert any(e["event"] == "screening_unavailable" for e in log_events(log_output))
    await eventually(lambda: any(
        e["event"] == "screen_helper_exited" and e["signal"] == "SIGKILL"
        for e in log_events(log_output)))
    await eventually(lambda: helper.pid not in (None, first))
    resp = await gk.proxy.post(SMS, data=large_batch(), headers=JSON)
    assert resp.status == 201
    assert resp.headers["X-Gatekeeper-Decision"] == "partial"
    assert helper.starts == 2


async def test_hung_helper_is_killed_and_its_request_refused(
        start_helper: StartHelper, real_redis: Any, redis_server: str,
        upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A helper that does not answer within its timeout is killed: 503, nothing sent,
    and the next request gets a new helper."""
    monkeypatch.setattr(ScreenHelper, "job_timeout", 1.0)
    gk = await start_helper(make_config(upstream.url, tmp_path), real_redis, redis_server)
    helper = helper_of(gk)
    resp = await gk.proxy.post(SMS, data=large_batch(), headers=JSON)
    assert resp.status == 201
    first = helper.pid
    await _stall_lookups(real_redis, 3000)
    try:
        started = time.monotonic()
        resp = await gk.proxy.post(SMS, data=large_batch(), headers=JSON)
        assert time.monotonic() - started < 2.5
    finally:
        await real_redis.execute_command("CLIENT", "UNPAUSE")
    assert resp.status == 503
    assert (await resp.json())["code"] == "screening_unavailable"
    assert len(upstream.received) == 1
    resp = await gk.proxy.post(SMS, data=large_batch(), headers=JSON)
    assert resp.status == 201
    assert helper.pid != first

"""A graceful stop (drain.py): the listener stops accepting, requests in flight finish,
an upstream exchange under way is never cut, and what has not been sent by the drain
timeout gets 503 `draining` (nothing reaches the upstream)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import fakeredis
import pytest
from prometheus_client import CollectorRegistry

from gatekeeper.app import create_app
from gatekeeper.config import Config, Listen
from gatekeeper.drain import Drain
from gatekeeper.embedded import free_port
from gatekeeper.resources import RESOURCES
from gatekeeper.server import Listeners, start_listeners
from tests.conftest import AUTH, TWILIO_MESSAGES, FakeUpstream, make_config

SEND = {"To": "+12125550123", "Body": "hi"}


async def reached(upstream: FakeUpstream, within: float = 5.0) -> None:
    """Wait until the fake upstream has received a request."""
    async with asyncio.timeout(within):
        while not upstream.received:  # noqa: ASYNC110 - the fake records, no event
            await asyncio.sleep(0.01)

# --------------------------------------------------------------------- the Drain alone


async def test_nothing_in_flight_ends_at_once() -> None:
    """No request in flight: the drain returns at once, nothing refused or left."""
    report = await Drain().run(5.0, 30.0)
    assert (report.in_flight_at_start, report.refused, report.left) == (0, 0, 0)
    assert report.seconds < 0.5


async def test_a_request_that_ends_in_time_is_waited_for() -> None:
    """A request ending before the drain timeout is waited for; the drain ends with it."""
    drain = Drain()

    async def request() -> None:
        with drain.request():
            await asyncio.sleep(0.2)

    task = asyncio.create_task(request())
    await asyncio.sleep(0)
    report = await drain.run(5.0, 30.0)
    await task
    assert (report.in_flight_at_start, report.left, drain.expired) == (1, 0, False)
    assert 0.15 <= report.seconds < 1.0


async def test_past_the_timeout_a_request_not_yet_sent_is_refused() -> None:
    """Once the drain times out, a request about to reach its upstream is refused
    (`refuse()` is true and counted), and the drain ends when it has answered."""
    drain = Drain()
    answered: list[bool] = []

    async def request() -> None:
        with drain.request():
            await asyncio.sleep(0.4)  # still screening when the drain times out
            answered.append(drain.refuse())

    task = asyncio.create_task(request())
    await asyncio.sleep(0)
    report = await drain.run(0.1, 30.0)
    await task
    assert answered == [True]
    assert (report.refused, report.left) == (1, 0)


async def test_an_upstream_exchange_under_way_is_never_cut() -> None:
    """An exchange that started before the timeout runs to its end, past the timeout."""
    drain = Drain()

    async def request() -> None:
        with drain.request(), drain.sending_upstream():
            await asyncio.sleep(0.6)

    task = asyncio.create_task(request())
    await asyncio.sleep(0)
    report = await drain.run(0.1, 30.0)
    assert task.done()
    assert (report.refused, report.left) == (0, 0)
    assert report.seconds >= 0.55


async def test_a_request_stuck_before_sending_is_left_after_the_grace() -> None:
    """A request that neither ends nor sends (a body still arriving) is left to be cut
    when the listener closes, one grace second after the timeout."""
    drain = Drain()

    async def request() -> None:
        with drain.request():
            await asyncio.sleep(10)

    task = asyncio.create_task(request())
    await asyncio.sleep(0)
    report = await drain.run(0.1, 30.0)
    task.cancel()
    assert report.left == 1
    assert 1.0 <= report.seconds < 2.0


# --------------------------------------------------------------- through the listeners



@pytest.fixture
async def served(upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[
        tuple[Config, Listeners, aiohttp.ClientSession]]:
    """Gatekeeper on its production listeners (free ports, fakeredis), drain 0.3 s."""
    config = make_config(upstream.url, tmp_path)
    config = replace(config, proxy=replace(config.proxy, listen=Listen("127.0.0.1",
                                                                        free_port()),
                                           drain_timeout=0.3),
                     admin=replace(config.admin, listen=Listen("127.0.0.1", free_port())))
    app = create_app(config, registry=CollectorRegistry(),
                     redis_client=fakeredis.FakeAsyncRedis(decode_responses=True))
    listeners = await start_listeners(config, app)
    async with aiohttp.ClientSession() as session:
        try:
            yield config, listeners, session
        finally:
            await listeners.stop()


async def test_a_send_with_the_upstream_when_the_stop_comes_gets_its_reply(
        served: tuple[Config, Listeners, aiohttp.ClientSession],
        upstream: FakeUpstream) -> None:
    """SIGTERM's drain while a send waits on a slow upstream (1 s, drain 0.3 s): the
    client gets the upstream's own reply, with Connection: close; the drain waited."""
    config, listeners, session = served
    upstream.delay = 1.0
    url = f"http://127.0.0.1:{listeners.proxy_port}{TWILIO_MESSAGES}"
    sending = asyncio.create_task(session.post(url, data=SEND))
    await reached(upstream)
    resources = listeners.proxy.app[RESOURCES]
    report = await listeners.drain(resources.drain, config.proxy.drain_timeout, 30.0)
    response = await sending
    assert response.status == 201
    assert await response.json() == {"sid": "SM123", "status": "queued"}
    assert response.headers.get("Connection", "").lower() == "close"
    assert (report.in_flight_at_start, report.refused, report.left) == (1, 0, 0)
    assert report.seconds >= 0.8


async def test_once_draining_new_connections_are_refused_and_readyz_says_so(
        served: tuple[Config, Listeners, aiohttp.ClientSession]) -> None:
    """After the drain starts the proxy port accepts nothing, and /readyz is 503
    `draining` (load balancers stop sending)."""
    config, listeners, session = served
    resources = listeners.proxy.app[RESOURCES]
    await listeners.drain(resources.drain, config.proxy.drain_timeout, 30.0)
    with pytest.raises(aiohttp.ClientConnectionError):
        await session.post(f"http://127.0.0.1:{listeners.proxy_port}{TWILIO_MESSAGES}",
                           data=SEND)
    ready = await session.get(f"http://127.0.0.1:{listeners.admin_port}/readyz")
    assert ready.status == 503
    assert await ready.json() == {"status": "draining"}


async def test_past_the_drain_timeout_a_send_gets_503_draining_and_is_not_sent(
        served: tuple[Config, Listeners, aiohttp.ClientSession],
        upstream: FakeUpstream) -> None:
    """A send that reaches the forwarding step after the drain timed out is answered
    503 `draining` (Retry-After, Connection: close) and never reaches the upstream."""
    _, listeners, session = served
    resources = listeners.proxy.app[RESOURCES]
    resources.drain.draining = resources.drain.expired = True
    response = await session.post(
        f"http://127.0.0.1:{listeners.proxy_port}{TWILIO_MESSAGES}", data=SEND,
        headers=AUTH)
    assert response.status == 503
    assert (await response.json())["code"] == "draining"
    assert response.headers["Retry-After"] == "1"
    assert response.headers.get("Connection", "").lower() == "close"
    assert upstream.received == []
    assert resources.drain.refused == 1


async def test_the_stop_takes_about_the_drain_when_a_client_idles_kept_alive(
        served: tuple[Config, Listeners, aiohttp.ClientSession]) -> None:
    """An idle kept-alive connection does not hold the stop up: the drain ends at once."""
    config, listeners, session = served
    first = await session.post(
        f"http://127.0.0.1:{listeners.proxy_port}{TWILIO_MESSAGES}", data=SEND)
    assert first.status == 201
    started = time.monotonic()
    resources = listeners.proxy.app[RESOURCES]
    report = await listeners.drain(resources.drain, config.proxy.drain_timeout, 30.0)
    await listeners.stop()
    assert report.in_flight_at_start == 0
    assert time.monotonic() - started < 0.5

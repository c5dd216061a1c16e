"""A thousand slow and idle clients against a real proxy listener: other clients are still
served promptly, and the held connections are closed at the head timeout.

Bounded: 1000 connections, a 1.5 s head timeout, about 3 s in all. The attacking clients
(bench/slow_clients.py) run in a forked process with plain sockets, so that neither they
nor the loop under test wait for the other's interpreter lock. `bench.slow_clients`
measures the same against `gatekeeper run`.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
from pathlib import Path

import pytest
from bench.slow_clients import start_attack

from gatekeeper.server import Listeners
from tests.conftest import TWILIO_MESSAGES, FakeUpstream
from tests.test_server import FORM, post, serving, timed_config

IDLE, SLOW = 500, 500        # connections that send nothing / a head byte by byte
DRIBBLE = 0.25               # seconds between two bytes of a slow head
HEADER_TIMEOUT = 1.5


async def timed_send(port: int) -> float:
    """One send on a new connection, answered 201 through the proxy; its seconds."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(post(TWILIO_MESSAGES, FORM, b"Connection: close"))
    reply = await asyncio.wait_for(reader.read(), 5.0)
    writer.close()
    assert reply.startswith(b"HTTP/1.1 201"), reply
    return loop.time() - started


def enough_descriptors(needed: int) -> None:
    """Raise this process's soft open-file limit for the test, or skip where the hard
    limit does not allow it (the environment's limit, not a fault of the code)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"needs {needed} open files, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def summary(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    if not ms:
        return f"{name}: no sends"
    return (f"{name}: median {statistics.median(ms):.1f} ms, max {ms[-1]:.1f} ms "
            f"over {len(ms)} sends")


async def held_connections(gk: Listeners, at_least: int) -> int:
    """The proxy listener's open connections, once it holds `at_least` (or after 2 s)."""
    server = gk.proxy.server
    assert server is not None
    for _ in range(200):
        if len(server.connections) >= at_least:
            break
        await asyncio.sleep(0.01)
    return len(server.connections)


async def test_thousand_slow_and_idle_clients_do_not_stop_service(
        tmp_path: Path, upstream: FakeUpstream) -> None:
    """1000 held connections: sends made all along stay prompt; every held connection is
    closed at the head timeout (the slow ones after a 408), none earlier."""
    enough_descriptors(2 * (IDLE + SLOW) + 512)  # both ends of each connection, and more
    config = timed_config(tmp_path, upstream.url, header=HEADER_TIMEOUT, idle=5.0)
    async with serving(config) as gk:
        quiet = [await timed_send(gk.proxy_port) for _ in range(20)]
        attacking = start_attack(gk.proxy_port, IDLE, SLOW, DRIBBLE, HEADER_TIMEOUT + 3.0)
        assert await asyncio.to_thread(attacking.connected.wait, 30.0), "never connected"
        held = await held_connections(gk, IDLE + SLOW)
        loaded = []
        while not attacking.done():  # through the dribbling and the mass close
            loaded.append(await timed_send(gk.proxy_port))
            await asyncio.sleep(0.02)
        closed, received = await asyncio.to_thread(attacking.finish, 10.0)
        await asyncio.sleep(0.1)
        remaining = await held_connections(gk, 0)
    print(f"\n{summary('without', quiet)}\n{summary(f'with {held} held', loaded)}")
    assert held >= IDLE + SLOW
    assert len(loaded) >= 20, summary("with", loaded)
    assert max(loaded) < 1.0, summary("with", loaded)
    assert remaining == 0
    assert all(c is not None for c in closed), sum(c is None for c in closed)
    times = [c for c in closed if c is not None]
    assert min(times) > HEADER_TIMEOUT - 0.1
    assert max(times) < HEADER_TIMEOUT + 1.5
    assert all(r == b"" for r in received[:IDLE])
    assert all(r.startswith(b"HTTP/1.1 408") for r in received[IDLE:])

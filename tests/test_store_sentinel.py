"""The Sentinel group's clients (store/sentinel.py), against stand-in sentinels on
loopback: how often an unreachable sentinel is tried, and what the fault says."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gatekeeper.redis_url import parse
from gatekeeper.store.faults import StoreUnavailable
from gatekeeper.store.sentinel import MasterAddress, sentinels


class Hangup:
    """A TCP server on loopback that accepts each connection and closes it at once (a
    sentinel that refuses us, as one refusing a TLS handshake does); counts them."""

    def __init__(self) -> None:
        self.accepted = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        async def hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            writer.close()

        self._server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def hangups() -> AsyncIterator[list[Hangup]]:
    """Three stand-in sentinels that hang up."""
    servers = [Hangup() for _ in range(3)]
    for server in servers:
        await server.start()
    yield servers
    for server in servers:
        await server.stop()


async def test_each_unreachable_sentinel_is_tried_once_per_discovery(
        hangups: list[Hangup]) -> None:
    """No retry with back-off against a sentinel (redis-py's default tried each 4 times,
    about 4 s): one discovery asks each sentinel once, then fails as StoreUnavailable."""
    nodes = ",".join(f"127.0.0.1:{server.port}" for server in hangups)
    topology = parse(f"redis+sentinel://{nodes}/mymaster/0")
    address = MasterAddress(sentinels(topology, 0.5), topology.service)
    with pytest.raises(StoreUnavailable, match="mymaster"):
        await address()
    assert [server.accepted for server in hangups] == [1, 1, 1]


async def test_the_fault_of_an_unreachable_group_is_one_bounded_line(
        hangups: list[Hangup]) -> None:
    """MasterNotFoundError lists every sentinel's client repr; the store's fault keeps a
    one-line head of it."""
    nodes = ",".join(f"127.0.0.1:{server.port}" for server in hangups)
    topology = parse(f"redis+sentinel://{nodes}/mymaster/0")
    with pytest.raises(StoreUnavailable) as raised:
        await MasterAddress(sentinels(topology, 0.5), topology.service)()
    text = str(raised.value)
    assert "\n" not in text
    assert len(text) < 400
    assert text.startswith("sentinels, master 'mymaster': MasterNotFoundError: No master")

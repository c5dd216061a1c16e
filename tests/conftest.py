"""Shared fixtures: configs, a recording fake upstream, Gatekeeper on fakeredis or a real
redis-server started by the suite (never skipped: no server is a failure)."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from ssl import SSLContext
from typing import Any

import fakeredis
import pytest
from aiohttp import TCPConnector, web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_runner import BaseRunner
from hypothesis import settings
from prometheus_client import CollectorRegistry

from gatekeeper.app import ADMIN_APP, create_app
from gatekeeper.config import Config, LogConfig, RedisConfig, Timeouts, parse_config
from gatekeeper.embedded import EmbeddedError, EmbeddedRedis, find_binary
from gatekeeper.observability import configure_logging
from gatekeeper.server import GuardedRunner
from gatekeeper.store import Keys, Store, connect
from gatekeeper.types import ListName
from tests.topologies import ClusterRig

# Property tests state what must hold, not how fast: hypothesis's default 200 ms
# deadline per example failed a pure one on this shared 2-CPU machine (257 ms once,
# 0.3 ms when repeated). Tests that need a bound set their own.
settings.register_profile("gatekeeper", deadline=None)
settings.load_profile("gatekeeper")

ADMIN_KEY = "test-admin-key-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
TWILIO_SID = "AC" + "0" * 32
TWILIO_MESSAGES = f"/twilio/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
TWILIO_CALLS = f"/twilio/2010-04-01/Accounts/{TWILIO_SID}/Calls.json"


@pytest.fixture(autouse=True)
def log_output() -> io.StringIO:
    """Every test logs JSON lines into its own buffer."""
    buffer = io.StringIO()
    configure_logging(LogConfig(level="debug"), buffer)
    return buffer


@pytest.fixture(params=["fakeredis", "redis-server"])
def client(request: pytest.FixtureRequest) -> Any:
    """An empty async client: fakeredis (unit) or the suite's real redis-server."""
    if request.param == "fakeredis":
        return fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)
    return request.getfixturevalue("real_redis")


async def list_members(store: Store, name: ListName = "block", scope: str = "global"
                       ) -> set[str]:
    """Every entry of a list as its member (`+33*#voice`), whatever its layout (set or
    packed load)."""
    return {Keys.member(listed.item) async for listed in store.scan_entries(name, scope)}


async def leftovers(client: Any, prefix: str) -> list[str]:
    """What replace imports left behind: staging keys, the trash of packed loads, and
    packed buckets that no live list's record points at."""
    left = [str(k) for k in await client.keys(f"{prefix}tmp:*")]
    left += [str(b) for b in await client.smembers(f"{prefix}pktrash")]
    live = [await client.hget(k, "base") for k in await client.keys(f"{prefix}packed:*")]
    for key in await client.keys(f"{prefix}pk:*"):
        if not any(base and str(key).startswith(base) for base in live):
            left.append(str(key))
    return sorted(left)


def log_events(buffer: io.StringIO) -> list[dict[str, Any]]:
    """The JSON log events written so far."""
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A metric sample's value (0 when absent)."""
    return registry.get_sample_value(name, labels) or 0.0


def decisions(registry: CollectorRegistry, upstream: str, channel: str, action: str,
              reason: str, direction: str = "outbound") -> float:
    """gatekeeper_decisions_total for one label set."""
    return sample(registry, "gatekeeper_decisions_total", upstream=upstream, channel=channel,
                  direction=direction, action=action, reason=reason)


def make_config(upstream_url: str, tmp_path: Path, **sections: Any) -> Config:
    """A config with a `twilio` and a `generic` upstream pointing at `upstream_url`.

    Keyword arguments replace top-level sections; `twilio={...}` / `generic={...}` update
    those upstreams.
    """
    twilio = {"name": "twilio", "url": upstream_url, "preset": "twilio", "region": "US"}
    twilio.update(sections.pop("twilio", {}))
    generic = {
        "name": "generic", "url": upstream_url + "/base", "preset": "generic",
        "routes": [
            {"method": "POST", "path": "/v1/sms", "channel": "sms",
             "destination": {"json": "messages[].to"}},
            {"method": "POST", "path": "/v1/{account}/call", "channel": "voice",
             "destination": {"form": "to"}},
        ],
    }
    generic.update(sections.pop("generic", {}))
    raw: dict[str, Any] = {
        "redis": {"data_dir": str(tmp_path / "data")},
        "upstreams": [twilio, generic],
    }
    raw.update(sections)
    return parse_config(raw, env={"GATEKEEPER_ADMIN_KEY": ADMIN_KEY}, base=tmp_path)


@dataclass
class Recorded:
    """One request as the fake upstream received it."""

    method: str
    path_qs: str
    headers: dict[str, str]
    raw_headers: list[tuple[str, str]]
    body: bytes


@dataclass
class FakeUpstream:
    """A loopback gateway that records requests and answers as told."""

    url: str
    received: list[Recorded] = field(default_factory=list)
    status: int = 201
    reply: bytes = b'{"sid": "SM123", "status": "queued"}'
    reply_headers: dict[str, str] = field(
        default_factory=lambda: {"Content-Type": "application/json"})
    delay: float = 0.0


@pytest.fixture
async def upstream(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> FakeUpstream:
    """A fake gateway on 127.0.0.1 recording every request byte for byte."""
    state = FakeUpstream(url="")

    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        state.received.append(Recorded(
            request.method, request.raw_path, dict(request.headers),
            list(request.headers.items()), body))
        if state.delay:
            await asyncio.sleep(state.delay)
        return web.Response(status=state.status, body=state.reply, headers=state.reply_headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = await aiohttp_server(app, host="127.0.0.1")
    state.url = str(server.make_url("")).rstrip("/")
    return state


class ListenerTestServer(TestServer):
    """aiohttp's test server running Gatekeeper's own listener code (server.py)."""

    def __init__(self, app: web.Application, listener: str, timeouts: Timeouts) -> None:
        super().__init__(app, host="127.0.0.1")
        self.listener = listener
        self.timeouts = timeouts

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return GuardedRunner(self.app, self.listener, self.timeouts, **kwargs)


@dataclass
class Running:
    """A Gatekeeper under test: proxy and admin clients sharing one store."""

    proxy: TestClient[web.Request, web.Application]
    admin: TestClient[web.Request, web.Application]
    app: web.Application
    registry: CollectorRegistry
    redis: Any

    async def block(self, *entries: str, scope: str = "global", list_name: str = "block"
                    ) -> dict[str, Any]:
        """Add entries through the admin API."""
        resp = await self.admin.post(f"/admin/v1/lists/{list_name}/entries",
                                     json={"entries": list(entries), "scope": scope},
                                     headers=AUTH)
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())

    async def allow(self, *entries: str, scope: str = "global") -> dict[str, Any]:
        """Add entries to the allow list through the admin API."""
        return await self.block(*entries, scope=scope, list_name="allow")


StartGatekeeper = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_gatekeeper(
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
) -> StartGatekeeper:
    """Start Gatekeeper for a config, on fakeredis unless a client is given."""

    async def start(config: Config, redis: Any = None, ssl: SSLContext | None = None,
                    housekeeping: bool = True) -> Running:
        client = redis if redis is not None else fakeredis.FakeAsyncRedis(decode_responses=True)
        registry = CollectorRegistry()
        app = create_app(config, registry=registry, redis_client=client,
                         housekeeping=housekeeping)
        # The production listeners (timeouts, malformed-request replies), not aiohttp's.
        server = ListenerTestServer(app, "proxy", config.proxy.timeouts)
        if ssl is None:
            proxy = await aiohttp_client(server)
        else:
            # A TLS proxy listener (e.g. for SDKs that only speak HTTPS); the test client
            # itself does not verify the certificate.
            await server.start_server(ssl=ssl)
            proxy = await aiohttp_client(server, connector=TCPConnector(ssl=False))
        admin = await aiohttp_client(ListenerTestServer(app[ADMIN_APP], "admin",
                                                        config.admin.timeouts))
        return Running(proxy, admin, app, registry, client)

    return start


@pytest.fixture
async def gatekeeper(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream,
                     tmp_path: Path) -> Running:
    """Gatekeeper with the default test config on fakeredis."""
    return await start_gatekeeper(make_config(upstream.url, tmp_path))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for the session, on a free loopback port; its URL.

    Fails (never skips) when no redis-server can be found.
    """
    try:
        find_binary(None)
    except EmbeddedError as exc:
        pytest.fail(f"integration tests need a real redis-server: {exc}")
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis-server"))
    endpoint = server.start()
    yield endpoint.url
    server.stop()


@pytest.fixture
async def real_redis(redis_server: str) -> AsyncIterator[Any]:
    """An empty database on the session's real redis-server."""
    client = connect(RedisConfig(timeout=5.0), redis_server)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture(scope="module")
def cluster_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterRig]:
    """A real Redis Cluster (3 masters, 3 replicas; tests/topologies.py) for a module."""
    rig = ClusterRig(tmp_path_factory.mktemp("cluster"))
    rig.start()
    try:
        yield rig
    finally:
        rig.stop()


# The fast tier (`make test-fast`) leaves out what starts processes or servers, loads
# data in bulk, or fuzzes: those modules, and every test on a real redis-server.
SLOW_MODULES = frozenset({
    "test_invariant_fuzz", "test_invariant_regressions", "test_bench", "test_bench_decide",
    "test_server_load", "test_cli", "test_cli_workers", "test_cli_lists", "test_bigscreen",
    "test_bigscreen_equivalence", "test_store_outage", "test_store_supervision",
    "test_embedded", "test_openapi", "test_bulk", "test_admin_bulk", "test_bulk_restore",
    "test_admin_restore", "test_jsonedit", "test_logging_properties", "test_scan_properties",
    "test_server", "test_expiry", "test_store_cluster", "test_failover",
    "test_tls_topologies", "test_bulk_child", "test_bench_profiles",
})
# Run alone (`make test` runs them after the parallel part): benchmarks, the load test
# whose latency bound must not compete with another worker for the two CPUs, and the
# failovers, whose recovery is bounded in time (one failed once beside another worker).
SERIAL_MODULES = frozenset({"test_bench", "test_bench_decide", "test_server_load",
                            "test_failover"})


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under `-m serial` (make test's second part), leave the other test modules
    unimported: collecting the whole suite only to deselect it costs about 10 s."""
    if (config.getoption("markexpr") == "serial" and collection_path.suffix == ".py"
            and collection_path.name.startswith("test_")
            and collection_path.stem not in SERIAL_MODULES):
        return True
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark slow tests (see SLOW_MODULES), real-redis ones (integration) and those that
    must run alone (SERIAL_MODULES)."""
    for item in items:
        if item.path.stem in SERIAL_MODULES:
            item.add_marker(pytest.mark.serial)
        real = bool({"redis_server", "real_redis"} & set(getattr(item, "fixturenames", ())))
        # The `client` fixture's real-server variant asks for `real_redis` at run time.
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("client") == "redis-server":
            real = True
        if real:
            item.add_marker(pytest.mark.integration)
        if real or item.path.stem in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


async def eventually(condition: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    """Wait (polling) until `condition` holds, rather than sleeping a fixed time; fail
    after `within` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)

"""The admin listener's last line against store faults: a StoreUnavailable escaping any
handler is a 503 `store_unavailable` (logged and counted), never a 500."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from pathlib import Path

import fakeredis
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from gatekeeper.app import ADMIN_APP, create_app
from gatekeeper.resources import RESOURCES
from gatekeeper.store import StoreUnavailable
from tests.conftest import AUTH, FakeUpstream, log_events, make_config, sample

Client = TestClient[web.Request, web.Application]


async def escaping(_request: web.Request) -> web.Response:
    """A handler that lets a store fault out (as a future one might)."""
    raise StoreUnavailable("ConnectionError: Error 111 connecting to 127.0.0.1:6379.")


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_store_unavailable_escaping_a_handler_is_503(
        aiohttp_client: Callable[..., Awaitable[Client]], upstream: FakeUpstream,
        tmp_path: Path, log_output: io.StringIO, method: str) -> None:
    """503 with Gatekeeper's error shape and the request id; one `store_unavailable`
    event naming the path; one count under store_errors{operation="admin"}."""
    registry = CollectorRegistry()
    app = create_app(make_config(upstream.url, tmp_path), registry=registry,
                     redis_client=fakeredis.FakeAsyncRedis(decode_responses=True))
    app[ADMIN_APP].router.add_route(method, "/escaping", escaping)
    await aiohttp_client(app)
    admin = await aiohttp_client(app[ADMIN_APP])
    resp = await admin.request(method, "/escaping", headers={"X-Request-Id": "req-42"})
    assert resp.status == 503
    assert await resp.json() == {
        "code": "store_unavailable", "message": "The list store is unavailable.",
        "type": "service_unavailable", "request_id": "req-42"}
    assert resp.headers["X-Request-Id"] == "req-42"
    [event] = [e for e in log_events(log_output)
               if e["event"] == "store_unavailable" and e["operation"] == "admin"]
    assert (event["path"], event["method"], event["request_id"]) == \
        ("/escaping", method, "req-42")
    assert "Error 111" in event["error"]
    assert sample(registry, "gatekeeper_store_errors_total", operation="admin") == 1


async def test_readyz_is_503_while_the_store_fails_and_200_after(
        aiohttp_client: Callable[..., Awaitable[Client]], upstream: FakeUpstream,
        tmp_path: Path) -> None:
    """/readyz follows the store: 503 while it is away, 200 once it answers again;
    /healthz stays 200 (the process is up)."""
    server = fakeredis.FakeServer()
    app = create_app(make_config(upstream.url, tmp_path),
                     redis_client=fakeredis.FakeAsyncRedis(server=server,
                                                           decode_responses=True))
    await aiohttp_client(app)
    admin = await aiohttp_client(app[ADMIN_APP])
    assert (await admin.get("/readyz")).status == 200
    server.connected = False
    resp = await admin.get("/readyz")
    assert (resp.status, await resp.json()) == (503, {"status": "store_unavailable"})
    assert (await admin.get("/healthz")).status == 200
    listing = await admin.get("/admin/v1/lists/block/entries", headers=AUTH)
    assert listing.status == 503
    server.connected = True
    assert (await admin.get("/readyz")).status == 200
    assert app[RESOURCES].store is not None

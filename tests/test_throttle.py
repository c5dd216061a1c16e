"""Fault log lines are rate-limited (observability/throttle.py), and a store outage
writes a bounded number of lines while every fault is counted."""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import fakeredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from gatekeeper.app import create_app
from gatekeeper.observability.throttle import Throttle
from tests.conftest import (
    TWILIO_MESSAGES,
    FakeUpstream,
    ListenerTestServer,
    make_config,
    sample,
)


def test_one_line_per_interval_per_kind_with_what_was_left_out() -> None:
    """Table: (kind, instant) -> admitted with the count left out, or None."""
    now = [0.0]
    throttle = Throttle(1.0, clock=lambda: now[0])
    steps = [("lookup", 0.0, 0), ("lookup", 0.1, None), ("lookup", 0.5, None),
             ("admin", 0.6, 0), ("lookup", 1.0, 2), ("lookup", 1.2, None),
             ("lookup", 5.0, 1), ("admin", 5.0, 0)]
    for kind, instant, expected in steps:
        now[0] = instant
        assert throttle.admit(kind) == expected, (kind, instant)


async def test_a_store_outage_logs_a_line_a_second_and_counts_every_fault(
        aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
        upstream: FakeUpstream, tmp_path: Path, log_output: io.StringIO) -> None:
    """50 sends while the store is down: 50 refusals counted, at most two
    `store_unavailable` lines (the second, if any, saying how many were left out)."""
    server = fakeredis.FakeServer()
    config = make_config(upstream.url, tmp_path)
    registry = CollectorRegistry()
    app = create_app(config, registry=registry,
                     redis_client=fakeredis.FakeAsyncRedis(server=server,
                                                           decode_responses=True))
    proxy = await aiohttp_client(ListenerTestServer(app, "proxy", config.proxy.timeouts))
    server.connected = False
    for _ in range(50):
        resp = await proxy.post(TWILIO_MESSAGES, data={"To": "+12125550123", "Body": "x"})
        assert resp.status == 503
    lines = [json.loads(line) for line in log_output.getvalue().splitlines()]
    faults = [r for r in lines if r["event"] == "store_unavailable"
              and r.get("operation") == "lookup"]
    assert 1 <= len(faults) <= 2
    assert faults[0]["left_out"] == 0
    assert sum(r["left_out"] for r in faults) + len(faults) <= 50
    assert sample(registry, "gatekeeper_store_errors_total", operation="lookup") == 50

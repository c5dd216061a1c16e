"""The expiry sweep never dies for good: store outages and unexpected exceptions are
logged and counted, and the next sweep runs as usual."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import fakeredis
import pytest

from gatekeeper.resources import RESOURCES
from gatekeeper.store import StoreUnavailable
from tests.conftest import (
    AUTH,
    FakeUpstream,
    StartGatekeeper,
    eventually,
    log_events,
    make_config,
    sample,
)

SWEEP = {"sweep_interval": 0.02}


def failures() -> list[BaseException | int]:
    """One sweep's outcome per element: raise it, or return that many removed."""
    return [StoreUnavailable("Error 111 connecting"), ValueError("a bug in the sweep"),
            KeyError("another"), RuntimeError("resources not started"), 2]


async def test_sweeper_survives_outages_and_unexpected_exceptions(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        log_output: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each failure is one structured event and one count under operation=sweep; the
    sweep after them runs and reports what it removed."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path, store=SWEEP))
    resources = gk.app[RESOURCES]
    script = failures()
    calls = 0

    async def scripted(per_call: int = 1000) -> int:
        nonlocal calls
        calls += 1
        outcome = script.pop(0) if script else 0
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(resources.store, "sweep_expired", scripted)

    async def swept_after_failures() -> bool:
        return calls >= 7

    await eventually(swept_after_failures)
    events = log_events(log_output)
    outage = [e for e in events if e["event"] == "store_unavailable"
              and e.get("operation") == "sweep"]
    assert len(outage) == 1
    unexpected = [e for e in events if e["event"] == "sweep_failed"]
    assert [e["error_type"] for e in unexpected] == ["ValueError", "KeyError", "RuntimeError"]
    assert all(e["level"] == "error" and e["where"] for e in unexpected)
    assert [e["removed"] for e in events if e["event"] == "entries_expired"] == [2]
    assert sample(gk.registry, "gatekeeper_store_errors_total", operation="sweep") == 4
    assert (await gk.admin.get("/healthz")).status == 200


async def test_sweeper_sweeps_again_once_the_store_is_back(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        log_output: io.StringIO) -> None:
    """Sweeps fail while the store is away, and once it is back an entry that expired
    meanwhile is swept out of Redis."""
    server = fakeredis.FakeServer()
    client = fakeredis.FakeAsyncRedis(server=server, decode_responses=True)
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path, store=SWEEP),
                                redis=client)
    resp = await gk.admin.post("/admin/v1/lists/block/entries", headers=AUTH, json={
        "entries": ["+33612345678", "+44*"], "ttl_seconds": 1})
    assert resp.status == 200, await resp.text()
    server.connected = False

    async def failed_twice() -> bool:
        return sample(gk.registry, "gatekeeper_store_errors_total", operation="sweep") >= 2

    await eventually(failed_twice)
    await asyncio.sleep(1.1)  # the entries expire while the store is away
    server.connected = True

    async def swept() -> bool:
        return not await client.exists("gk:exp:block:global", "gk:list:block:global")

    await eventually(swept)
    assert [e["removed"] for e in log_events(log_output)
            if e["event"] == "entries_expired"] == [2]


@pytest.mark.parametrize("swallowed", [StoreUnavailable("cancelled"), ValueError("x"), None],
                         ids=["as-store-error", "as-other-error", "whole"])
async def test_close_ends_a_sweep_whose_cancellation_a_client_swallowed(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, swallowed: Exception | None) -> None:
    """A sweep cancelled mid-call whose client turns the cancellation into an error of
    its own: the sweeper stops anyway, and close() returns instead of waiting for ever
    (a test teardown once hung so)."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path,
                                            store={"sweep_interval": 0.01}))
    resources = gk.app[RESOURCES]
    inside = asyncio.Event()

    async def swallowing(per_call: int = 1000) -> int:
        inside.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if swallowed is None:
                return 0  # as if the call had simply answered
            raise swallowed from None
        return 0

    monkeypatch.setattr(resources.store, "sweep_expired", swallowing)
    await asyncio.wait_for(inside.wait(), 5)
    await asyncio.wait_for(resources.close(), 5)

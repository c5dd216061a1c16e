"""Writes on a mount that match no send route: deep-scanned by default (any blocked
phone number refuses the whole request), or refused, or forwarded, per
`unknown_writes`; writes a preset knows to send nothing, and reads, pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeUpstream, StartGatekeeper, decisions
from tests.enforcement_helpers import ALLOWED, BLOCKED, FORM, JSON, SID, config

ACCOUNT = f"/twilio/2010-04-01/Accounts/{SID}"
CASES: list[tuple[str, str, bytes, str]] = [
    (f"{ACCOUNT}/Future.json", "", f"Phone={BLOCKED}".replace("+", "%2B").encode(), FORM),
    ("/twilio/v1/Services/IS1/Notifications", "",
     b"ToBinding=" + json.dumps({"binding_type": "sms", "address": BLOCKED}).replace(
         "+", "%2B").replace('"', "%22").encode(), FORM),
    ("/telnyx/v2/fax", "", json.dumps({"a": [{"b": {"c": f"tel:{BLOCKED}"}}]}).encode(), JSON),
    ("/telnyx/v2/something", "", f"<Call><Target number='{BLOCKED}'/></Call>".encode(),
     "application/xml"),
    ("/plivo/v1/Account/MA1/Future/", "", json.dumps({"dst": "33612345678"}).encode(), JSON),
    ("/messagebird/lookup/33612345678/hlr", "", b"", JSON),
    ("/telnyx/v2/unknown", f"to={BLOCKED}".replace("+", "%2B"), b"{}", JSON),
]
IDS = ["twilio-unknown-form", "json-inside-form", "nested-json-tel-uri", "xml-attribute",
       "msisdn-bare-digits", "number-in-path", "number-in-query"]


def _cfg(upstream: FakeUpstream, tmp_path: Path, **proxy: Any) -> Any:
    return config(upstream.url, tmp_path, proxy=proxy)


@pytest.mark.parametrize(("path", "query", "body", "content_type"), CASES, ids=IDS)
async def test_scan_refuses_an_unknown_write_holding_a_blocked_number(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path, path: str,
        query: str, body: bytes, content_type: str) -> None:
    """The default `scan`: the number is found wherever it is and the upstream's on_block
    applies to the whole request, counted with reason `scanned`."""
    gk = await start_gatekeeper(_cfg(upstream, tmp_path))
    await gk.block(BLOCKED)
    target = path + (f"?{query}" if query else "")
    resp = await gk.proxy.post(target, data=body, headers={"Content-Type": content_type})
    assert resp.headers["X-Gatekeeper-Decision"] == "rejected", await resp.text()
    assert resp.status in (403, 400, 422)
    assert upstream.received == []
    name = path.split("/")[1]
    assert decisions(gk.registry, name, "any", "rejected", "scanned") >= 1


@pytest.mark.parametrize(("path", "query", "body", "content_type"), CASES, ids=IDS)
async def test_scan_forwards_an_unknown_write_without_blocked_numbers(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path, path: str,
        query: str, body: bytes, content_type: str) -> None:
    """Nothing blocked in it: the write goes through unchanged."""
    gk = await start_gatekeeper(_cfg(upstream, tmp_path))
    target = path + (f"?{query}" if query else "")
    resp = await gk.proxy.post(target, data=body, headers={"Content-Type": content_type})
    assert resp.headers["X-Gatekeeper-Decision"] == "forwarded"
    [got] = upstream.received
    assert got.body == body


async def test_scan_ignores_numbers_inside_message_text(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Only whole values that are numbers count, not digits in free text."""
    gk = await start_gatekeeper(_cfg(upstream, tmp_path))
    await gk.block(BLOCKED)
    resp = await gk.proxy.post("/telnyx/v2/notes", json={"text": f"call me on {BLOCKED}"})
    assert resp.headers["X-Gatekeeper-Decision"] == "forwarded"


async def test_reject_mode_refuses_every_unknown_write(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """unknown_writes: reject -> 403 unknown_route, even without a number; reads pass."""
    gk = await start_gatekeeper(_cfg(upstream, tmp_path, unknown_writes="reject"))
    resp = await gk.proxy.post("/telnyx/v2/anything", json={"x": 1})
    assert resp.status == 403
    assert (await resp.json())["code"] == "unknown_route"
    read = await gk.proxy.get("/telnyx/v2/anything")
    assert read.status == 201
    assert len(upstream.received) == 1


async def test_forward_mode_is_opt_in_per_upstream(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """unknown_writes: forward on one upstream forwards there only; send routes are still
    checked."""
    gk = await start_gatekeeper(config(upstream.url, tmp_path,
                                       telnyx={"unknown_writes": "forward"}))
    await gk.block(BLOCKED)
    passed = await gk.proxy.post("/telnyx/v2/fax", json={"to": BLOCKED})
    assert "X-Gatekeeper-Decision" not in passed.headers
    assert len(upstream.received) == 1
    send = await gk.proxy.post("/telnyx/v2/messages", json={"to": BLOCKED})
    assert send.headers["X-Gatekeeper-Decision"] == "rejected"
    other = await gk.proxy.post("/plivo/v1/Account/MA1/Future/", json={"dst": BLOCKED})
    assert other.headers["X-Gatekeeper-Decision"] == "rejected"
    assert len(upstream.received) == 1


async def test_known_non_sending_writes_pass_unscanned(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Buying a number that happens to be on a block list is not a send."""
    gk = await start_gatekeeper(_cfg(upstream, tmp_path))
    await gk.block(BLOCKED)
    resp = await gk.proxy.post(f"{ACCOUNT}/IncomingPhoneNumbers.json",
                               data={"PhoneNumber": BLOCKED})
    assert "X-Gatekeeper-Decision" not in resp.headers
    assert len(upstream.received) == 1


async def test_scan_on_store_fault_follows_on_error(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A store fault during a scan: 503 with on_error closed."""
    gk = await start_gatekeeper(_cfg(upstream, tmp_path))
    from gatekeeper.resources import RESOURCES  # noqa: PLC0415
    from gatekeeper.store import StoreUnavailable  # noqa: PLC0415

    async def down(*_args: object, **_kwargs: object) -> None:
        raise StoreUnavailable("down")

    monkeypatch.setattr(gk.app[RESOURCES].store, "lookup", down)
    resp = await gk.proxy.post("/telnyx/v2/fax", json={"to": ALLOWED})
    assert resp.status == 503
    assert upstream.received == []

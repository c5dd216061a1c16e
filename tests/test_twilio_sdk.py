"""The official Twilio SDK driven through the proxy against a fake upstream on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from tests.conftest import TWILIO_SID, FakeUpstream, Running

TOKEN = "auth-token-not-real"


def sdk_client(gatekeeper: Running, monkeypatch: pytest.MonkeyPatch) -> Client:
    """A Twilio client whose base URL is the proxy's /twilio mount."""
    for name in ("TWILIO_REGION", "TWILIO_EDGE"):
        monkeypatch.delenv(name, raising=False)
    client = Client(TWILIO_SID, TOKEN)
    client.api.base_url = str(gatekeeper.proxy.make_url("/twilio")).rstrip("/")
    return client


async def call(fn: Callable[..., Any], **kwargs: Any) -> Any:
    """Run a blocking SDK call off the event loop (the proxy runs on it)."""
    return await asyncio.to_thread(fn, **kwargs)


@pytest.mark.parametrize(("resource", "kwargs", "reply"), [
    ("messages", {"to": "+14155550100", "from_": "+15005550006", "body": "hello"},
     {"sid": "SM" + "1" * 32, "status": "queued", "to": "+14155550100"}),
    ("calls", {"to": "+14155550100", "from_": "+15005550006",
               "url": "https://example.com/voice.xml"},
     {"sid": "CA" + "1" * 32, "status": "queued", "to": "+14155550100"}),
], ids=["message", "call"])
async def test_allowed_send_arrives_and_sdk_gets_the_upstream_reply(
        gatekeeper: Running, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch,
        resource: str, kwargs: dict[str, str], reply: dict[str, str]) -> None:
    """An unlisted number goes through: the upstream gets it with the SDK's credentials."""
    upstream.reply = json.dumps(reply).encode()
    client = sdk_client(gatekeeper, monkeypatch)
    created = await call(getattr(client, resource).create, **kwargs)
    assert created.sid == reply["sid"]
    [got] = upstream.received
    assert got.path_qs.endswith(f"/{resource.capitalize()}.json")
    assert b"To=%2B14155550100" in got.body
    basic = base64.b64encode(f"{TWILIO_SID}:{TOKEN}".encode()).decode()
    assert got.headers["Authorization"] == f"Basic {basic}"


@pytest.mark.parametrize(("resource", "kwargs"), [
    ("messages", {"to": "+33612345678", "from_": "+15005550006", "body": "hello"}),
    ("calls", {"to": "+33612345678", "from_": "+15005550006",
               "url": "https://example.com/voice.xml"}),
], ids=["message", "call"])
async def test_blocked_send_raises_twilio_rest_exception(
        gatekeeper: Running, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch,
        resource: str, kwargs: dict[str, str]) -> None:
    """A blocked number makes the SDK raise its normal exception; nothing is sent."""
    await gatekeeper.block("+336*")
    client = sdk_client(gatekeeper, monkeypatch)
    with pytest.raises(TwilioRestException) as raised:
        await call(getattr(client, resource).create, **kwargs)
    assert raised.value.status == 403
    assert raised.value.code == 21610
    assert upstream.received == []

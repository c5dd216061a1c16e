"""The official Plivo SDK driven through the proxy against a fake upstream on loopback.

plivo 4.x has no base-URL option: every request goes through `client.session` (a
`requests.Session`), so a transport adapter mounted for `https://api.plivo.com`
rewrites each request to the proxy's `/plivo` mount and records what was sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from plivo import RestClient
from plivo.exceptions import ValidationError
from requests.adapters import HTTPAdapter

from tests.conftest import FakeUpstream, Running, StartGatekeeper, decisions, make_config

PLIVO_API = "https://api.plivo.com"
AUTH_ID = "MA" + "A" * 18
TOKEN = "auth-token-not-real"
SENDER = "14155550199"
MESSAGE_REPLY = {"api_id": "db342550-7a1c-11e4-a5e6-22000ac5040c",
                 "message": "message(s) queued",
                 "message_uuid": ["db3ce55a-7a1c-11e4-90a6-0a34d8c68c2f"]}
CALL_REPLY = {"api_id": "97ceeb52-58b6-11e1-86da-77300b68f8bb",
              "message": "call fired",
              "request_uuid": "75cfd7e4-7e1a-4b8f-a2b3-1d2c3e4f5a6b"}


class ToProxy(HTTPAdapter):
    """Sends Plivo's requests to the proxy mount instead; keeps what went out and back."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base
        self.sent: list[requests.PreparedRequest] = []
        self.replies: list[requests.Response] = []

    def send(self, request: requests.PreparedRequest, *args: Any,
             **kwargs: Any) -> requests.Response:
        assert request.url is not None
        assert request.url.startswith(PLIVO_API)
        request.url = self.base + request.url.removeprefix(PLIVO_API)
        self.sent.append(request)
        response = super().send(request, *args, **kwargs)
        self.replies.append(response)
        return response


def sdk_client(gk: Running, monkeypatch: pytest.MonkeyPatch) -> tuple[RestClient, ToProxy]:
    """A Plivo client whose requests reach the proxy's /plivo mount."""
    for name in ("PLIVO_AUTH_ID", "PLIVO_AUTH_TOKEN", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    client = RestClient(AUTH_ID, TOKEN)
    adapter = ToProxy(str(gk.proxy.make_url("/plivo")).rstrip("/"))
    client.session.mount(PLIVO_API, adapter)
    return client, adapter


async def start(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
                **extra: Any) -> Running:
    """Gatekeeper with one `plivo` upstream (the fake gateway)."""
    return await start_gatekeeper(make_config(upstream.url, tmp_path, upstreams=[
        {"name": "plivo", "url": upstream.url, "preset": "plivo", **extra}]))


async def call(fn: Callable[..., Any], **kwargs: Any) -> Any:
    """Run a blocking SDK call off the event loop (the proxy runs on it)."""
    return await asyncio.to_thread(fn, **kwargs)


def send_message(client: RestClient, dst: str) -> Callable[[], Any]:
    """A message send as an application writes it."""
    return lambda: client.messages.create(src=SENDER, dst=dst, text="hello")


def place_call(client: RestClient, to: str) -> Callable[[], Any]:
    """A call as an application places it."""
    return lambda: client.calls.create(from_=SENDER, to_=to,
                                       answer_url="https://example.com/answer.xml")


BASIC = "Basic " + base64.b64encode(f"{AUTH_ID}:{TOKEN}".encode()).decode()


async def test_allowed_message_arrives_unchanged(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An unlisted number goes through byte for byte; the SDK gets the upstream's reply."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    client, adapter = sdk_client(gk, monkeypatch)
    upstream.status, upstream.reply = 202, json.dumps(MESSAGE_REPLY).encode()
    result = await call(send_message(client, "14155550100"))
    assert result.message_uuid == MESSAGE_REPLY["message_uuid"]
    [got] = upstream.received
    assert got.method == "POST"
    assert got.path_qs == f"/v1/Account/{AUTH_ID}/Message/"
    assert got.body == adapter.sent[0].body
    assert json.loads(got.body)["dst"] == "14155550100"
    assert got.headers["Authorization"] == BASIC
    assert decisions(gk.registry, "plivo", "sms", "forwarded", "unlisted") == 1


async def test_allowed_call_arrives_unchanged(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An unlisted call (with a SIP endpoint) goes through; the SDK gets `call fired`."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    client, adapter = sdk_client(gk, monkeypatch)
    upstream.status, upstream.reply = 201, json.dumps(CALL_REPLY).encode()
    result = await call(place_call(client, "14155550100<sip:john1234@phone.plivo.com"))
    assert result.request_uuid == CALL_REPLY["request_uuid"]
    [got] = upstream.received
    assert got.path_qs == f"/v1/Account/{AUTH_ID}/Call/"
    assert got.body == adapter.sent[0].body
    assert json.loads(got.body)["to"] == "14155550100<sip:john1234@phone.plivo.com"
    assert got.headers["Authorization"] == BASIC


@pytest.mark.parametrize(("channel", "send"), [
    ("sms", send_message),
    ("voice", place_call),
], ids=["message", "call"])
async def test_blocked_send_raises_validation_error(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, channel: str,
        send: Callable[[RestClient, str], Callable[[], Any]]) -> None:
    """Every destination blocked: the SDK raises its ValidationError; nothing is sent."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    await gk.block("+336*")
    client, adapter = sdk_client(gk, monkeypatch)
    with pytest.raises(ValidationError, match="block list"):
        await call(send(client, "33612345678<33698765432"))
    assert upstream.received == []
    assert adapter.replies[0].status_code == 400
    assert adapter.replies[0].headers["X-Gatekeeper-Decision"] == "rejected"
    # One count per blocked destination.
    assert decisions(gk.registry, "plivo", channel, "rejected", "blocked") == 2


async def test_partly_blocked_message_goes_to_the_others(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`dst="a<b<c"` with b blocked arrives as `a<c`, other fields intact, marked partial."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    await gk.block("+33612345678")
    client, adapter = sdk_client(gk, monkeypatch)
    upstream.status, upstream.reply = 202, json.dumps(MESSAGE_REPLY).encode()
    result = await call(send_message(client, "14155550100<33612345678<447700900123"))
    assert result.message_uuid == MESSAGE_REPLY["message_uuid"]
    [got] = upstream.received
    sent_body = adapter.sent[0].body
    assert isinstance(sent_body, bytes)
    sent = json.loads(sent_body)
    assert json.loads(got.body) == {**sent, "dst": "14155550100<447700900123"}
    assert got.headers["Authorization"] == BASIC
    reply = adapter.replies[0]
    assert reply.headers["X-Gatekeeper-Decision"] == "partial"
    assert reply.headers["X-Gatekeeper-Removed"] == "1"
    assert decisions(gk.registry, "plivo", "sms", "partial", "blocked") == 1


async def test_partly_blocked_call_keeps_the_others(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A bulk call drops the blocked number and still rings the rest."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    await gk.block("+33612345678")
    client, adapter = sdk_client(gk, monkeypatch)
    upstream.status, upstream.reply = 201, json.dumps(CALL_REPLY).encode()
    await call(place_call(client, "33612345678<sip:john1234@phone.plivo.com<14155550100"))
    [got] = upstream.received
    assert json.loads(got.body)["to"] == "sip:john1234@phone.plivo.com<14155550100"
    assert adapter.replies[0].headers["X-Gatekeeper-Decision"] == "partial"


async def test_skip_answers_plivo_success_without_sending(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """on_block: skip gives the SDK a normal `message(s) queued` reply; nothing is sent."""
    gk = await start(start_gatekeeper, upstream, tmp_path, on_block="skip")
    await gk.block("+336*")
    client, adapter = sdk_client(gk, monkeypatch)
    result = await call(send_message(client, "33612345678<33698765432"))
    assert result.message == "message(s) queued"
    assert len(result.message_uuid) == 2
    assert upstream.received == []
    assert adapter.replies[0].status_code == 202
    assert decisions(gk.registry, "plivo", "sms", "skipped", "blocked") == 2


@pytest.mark.parametrize(("channel", "send"), [
    # A Verify code may go by SMS or a call: counted on the `any` channel.
    ("any", lambda client, to: lambda: client.verify_session.create(
        recipient=to, channel="sms")),
    ("voice", lambda client, to: lambda: client.multi_party_calls.add_participant(
        role="Agent", friendly_name="sales", from_=SENDER, to_=to)),
], ids=["verify-session", "mpc-participant"])
async def test_verify_and_participant_sends_are_checked(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, channel: str,
        send: Callable[[RestClient, str], Callable[[], Any]]) -> None:
    """A Verify code or a dialled participant to a blocked number: the SDK raises its
    ValidationError and nothing reaches Plivo; an allowed one goes through."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    await gk.block("+336*")
    client, adapter = sdk_client(gk, monkeypatch)
    with pytest.raises(ValidationError, match="block list"):
        await call(send(client, "+33612345678"))
    assert upstream.received == []
    assert adapter.replies[0].headers["X-Gatekeeper-Decision"] == "rejected"
    assert decisions(gk.registry, "plivo", channel, "rejected", "blocked") == 1
    upstream.status, upstream.reply = 202, b'{"api_id": "a1", "message": "ok"}'
    await call(send(client, "+14155550100"))
    assert len(upstream.received) == 1
    assert adapter.replies[1].headers["X-Gatekeeper-Decision"] == "forwarded"

"""The official Telnyx SDK driven through the proxy against a fake upstream on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from telnyx import Telnyx, UnprocessableEntityError

from tests.conftest import FakeUpstream, Running, StartGatekeeper, decisions, make_config

API_KEY = "KEY0123456789ABCDEF_not_real"
SENDER = "+14155550199"
MESSAGE_REPLY = {"data": {
    "record_type": "message", "id": "40385f64-5717-4562-b3fc-2c963f66afa6",
    "direction": "outbound", "type": "SMS", "text": "hello",
    "from": {"phone_number": SENDER, "carrier": "Telnyx", "line_type": "Wireless"},
    "to": [{"phone_number": "+14155550100", "status": "queued", "carrier": "T-Mobile USA",
            "line_type": "Wireless"}],
    "parts": 1, "received_at": "2030-01-01T10:00:00.000+00:00", "errors": []}}
CALL_REPLY = {"data": {
    "call_control_id": "v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg",
    "call_leg_id": "2dc6fc34-f9e0-11ea-b68e-02420a0f7768",
    "call_session_id": "2dc1b3c8-f9e0-11ea-bc5a-02420a0f7768",
    "is_alive": False, "record_type": "call"}}


class Recorder:
    """httpx event hooks keeping what the SDK sent and what came back."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.responses: list[httpx.Response] = []

    def client(self) -> httpx.Client:
        return httpx.Client(event_hooks={"request": [self.requests.append],
                                         "response": [self.responses.append]})


def sdk_client(gk: Running, monkeypatch: pytest.MonkeyPatch) -> tuple[Telnyx, Recorder]:
    """A Telnyx client whose base URL is the proxy's /telnyx mount (with `/v2`)."""
    for name in ("TELNYX_API_KEY", "TELNYX_BASE_URL", "TELNYX_CUSTOM_HEADERS",
                 "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    recorder = Recorder()
    base = str(gk.proxy.make_url("/telnyx")).rstrip("/") + "/v2"
    return Telnyx(api_key=API_KEY, base_url=base, http_client=recorder.client()), recorder


async def start(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
                **extra: Any) -> Running:
    """Gatekeeper with one `telnyx` upstream (the fake gateway)."""
    return await start_gatekeeper(make_config(upstream.url, tmp_path, upstreams=[
        {"name": "telnyx", "url": upstream.url, "preset": "telnyx", **extra}]))


async def call(fn: Callable[[], Any]) -> Any:
    """Run a blocking SDK call off the event loop (the proxy runs on it)."""
    return await asyncio.to_thread(fn)


def answer(upstream: FakeUpstream, reply: dict[str, Any]) -> None:
    """Make the fake gateway answer like Telnyx."""
    upstream.status, upstream.reply = 200, json.dumps(reply).encode()


async def test_allowed_message_arrives_unchanged(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An unlisted number goes through byte for byte with the SDK's API key."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    client, recorder = sdk_client(gk, monkeypatch)
    answer(upstream, MESSAGE_REPLY)
    sent = await call(lambda: client.messages.send(to="+14155550100", from_=SENDER,
                                                   text="hello"))
    assert sent.data.id == MESSAGE_REPLY["data"]["id"]
    assert sent.data.to[0].status == "queued"
    [got] = upstream.received
    assert (got.method, got.path_qs) == ("POST", "/v2/messages")
    assert got.body == recorder.requests[0].content
    assert json.loads(got.body)["to"] == "+14155550100"
    assert got.headers["Authorization"] == f"Bearer {API_KEY}"
    assert decisions(gk.registry, "telnyx", "sms", "forwarded", "unlisted") == 1


async def test_allowed_call_arrives_unchanged(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An unlisted dial goes through byte for byte; the SDK gets the call resource."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    client, recorder = sdk_client(gk, monkeypatch)
    answer(upstream, CALL_REPLY)
    dialled = await call(lambda: client.calls.dial(
        connection_id="1494404757140276705", from_=SENDER, to="+14155550100,ww200"))
    assert dialled.data.call_control_id == CALL_REPLY["data"]["call_control_id"]
    [got] = upstream.received
    assert (got.method, got.path_qs) == ("POST", "/v2/calls")
    assert got.body == recorder.requests[0].content
    assert got.headers["Authorization"] == f"Bearer {API_KEY}"
    assert decisions(gk.registry, "telnyx", "voice", "forwarded", "unlisted") == 1


def _send(client: Telnyx) -> Any:
    return client.messages.send(to="+33612345678", from_=SENDER, text="hello")


def _long_code(client: Telnyx) -> Any:
    return client.messages.send_long_code(to="+33612345678", from_=SENDER, text="hello")


def _group_mms(client: Telnyx) -> Any:
    return client.messages.send_group_mms(to=["+33612345678", "+33698765432"], from_=SENDER,
                                          media_urls=["https://example.com/a.png"])


def _dial(client: Telnyx) -> Any:
    return client.calls.dial(connection_id="1494404757140276705", from_=SENDER,
                             to="+33612345678")


def _dial_many(client: Telnyx) -> Any:
    return client.calls.dial(connection_id="1494404757140276705", from_=SENDER,
                             to=["+33612345678", "+33698765432"])


def _transfer(client: Telnyx) -> Any:
    return client.calls.actions.transfer("v3:abc", to="+33612345678")


def _texml_call(client: Telnyx) -> Any:
    # This method sends `body` as given: Telnyx's own capitalised names.
    return client.texml.accounts.calls.calls("ACb1", body=cast(Any, {
        "ApplicationSid": "1494404757140276705", "From": SENDER, "To": "+33612345678",
        "Url": "https://app.example/texml.xml"}))


def _texml_connection_call(client: Telnyx) -> Any:
    return client.texml.calls.create("1494404757140276705", from_=SENDER, to="+33612345678",
                                     url="https://app.example/texml.xml")


@pytest.mark.parametrize(("channel", "send", "count"), [
    ("sms", _send, 1),
    ("sms", _long_code, 1),
    ("sms", _group_mms, 2),
    ("voice", _dial, 1),
    ("voice", _dial_many, 2),
    ("voice", _transfer, 1),
    ("voice", _texml_call, 1),
    ("voice", _texml_connection_call, 1),
], ids=["message", "long-code", "group-mms", "call", "call-array", "transfer", "texml-call",
        "texml-connection-call"])
async def test_blocked_send_raises_unprocessable_entity(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, channel: str, send: Callable[[Telnyx], Any],
        count: int) -> None:
    """Every recipient blocked: the SDK raises its own error, once; nothing is sent."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    await gk.block("+336*")
    client, recorder = sdk_client(gk, monkeypatch)
    with pytest.raises(UnprocessableEntityError) as raised:
        await call(lambda: send(client))
    assert raised.value.status_code == 422
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["errors"][0]["code"] == "40300"
    assert upstream.received == []
    [response] = recorder.responses  # a 422 is not retried
    assert response.headers["X-Gatekeeper-Decision"] == "rejected"
    assert decisions(gk.registry, "telnyx", channel, "rejected", "blocked") == count


async def test_partly_blocked_group_mms_goes_to_the_others(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A group MMS arrives without the blocked member, other fields intact, marked partial."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    await gk.block("+33612345678")
    client, recorder = sdk_client(gk, monkeypatch)
    answer(upstream, MESSAGE_REPLY)
    sent = await call(lambda: client.messages.send_group_mms(
        to=["+14155550100", "+33612345678", "+447700900123"], from_=SENDER, text="hi",
        media_urls=["https://example.com/a.png"]))
    assert sent.data.id == MESSAGE_REPLY["data"]["id"]
    [got] = upstream.received
    assert got.path_qs == "/v2/messages/group_mms"
    original = json.loads(recorder.requests[0].content)
    assert json.loads(got.body) == {**original, "to": ["+14155550100", "+447700900123"]}
    assert got.headers["Authorization"] == f"Bearer {API_KEY}"
    [response] = recorder.responses
    assert response.headers["X-Gatekeeper-Decision"] == "partial"
    assert response.headers["X-Gatekeeper-Removed"] == "1"
    assert decisions(gk.registry, "telnyx", "sms", "partial", "blocked") == 1


async def test_partly_blocked_dial_rings_the_others(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A dial to several destinations drops the blocked one and keeps SIP endpoints."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    await gk.block("+33612345678")
    client, recorder = sdk_client(gk, monkeypatch)
    answer(upstream, CALL_REPLY)
    await call(lambda: client.calls.dial(
        connection_id="1494404757140276705", from_=SENDER,
        to=["+33612345678", "sip:alice@example.com", "+14155550100"]))
    [got] = upstream.received
    assert json.loads(got.body)["to"] == ["sip:alice@example.com", "+14155550100"]
    assert recorder.responses[0].headers["X-Gatekeeper-Decision"] == "partial"
    assert decisions(gk.registry, "telnyx", "voice", "partial", "blocked") == 1


async def test_skip_answers_a_message_that_was_not_sent(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """on_block: skip gives the SDK a normal message whose recipient is `sending_failed`."""
    gk = await start(start_gatekeeper, upstream, tmp_path, on_block="skip")
    await gk.block("+336*")
    client, recorder = sdk_client(gk, monkeypatch)
    sent = await call(lambda: _send(client))
    assert [(t.phone_number, t.status) for t in sent.data.to] == [
        ("+33612345678", "sending_failed")]
    assert upstream.received == []
    assert recorder.responses[0].headers["X-Gatekeeper-Decision"] == "skipped"
    assert decisions(gk.registry, "telnyx", "sms", "skipped", "blocked") == 1

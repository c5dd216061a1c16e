"""The official Infobip SDK (infobip-api-python-client 6.x) driven through the proxy.

`Configuration(host=..., api_key=...)` takes the proxy's `/infobip` mount as its base URL
(plain http is allowed for 127.0.0.1) and sends `Authorization: App <key>`. Most of this
file's wall time is importing the SDK (hundreds of generated models), not the tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from infobip_api_client import ApiClient, Configuration
from infobip_api_client.api.sms_api import SmsApi
from infobip_api_client.api.voice_api import VoiceApi
from infobip_api_client.exceptions import BadRequestException
from infobip_api_client.models.calls_single_body import CallsSingleBody
from infobip_api_client.models.sms_destination import SmsDestination
from infobip_api_client.models.sms_message import SmsMessage
from infobip_api_client.models.sms_message_content import SmsMessageContent
from infobip_api_client.models.sms_request import SmsRequest
from infobip_api_client.models.sms_text_content import SmsTextContent

from tests.conftest import FakeUpstream, Running, StartGatekeeper, decisions, make_config

KEY = "infobip-api-key-not-real"
ALLOWED, OTHER, BLOCKED = "41793026727", "41793026728", "33612345678"
SENDER = "InfoSMS"


def sms_reply(*destinations: str) -> bytes:
    """Infobip's 200 for `/sms/3/messages`: each destination PENDING."""
    return json.dumps({"bulkId": "2034072219640523072", "messages": [
        {"messageId": f"msg-{to}", "destination": to, "details": {"messageCount": 1},
         "status": {"groupId": 1, "groupName": "PENDING", "id": 26,
                    "name": "PENDING_ACCEPTED", "description": "Message sent to next instance"}}
        for to in destinations]}).encode()


def sms_request(*messages: list[str]) -> SmsRequest:
    """A v3 request with one message per list of destinations."""
    return SmsRequest(messages=[
        SmsMessage(sender=SENDER, destinations=[SmsDestination(to=to) for to in tos],
                   content=SmsMessageContent(SmsTextContent(text="hello")))
        for tos in messages])


def sent_json(*messages: list[str]) -> dict[str, Any]:
    """The JSON the SDK sends for `sms_request(*messages)`."""
    return {"messages": [{"sender": SENDER, "destinations": [{"to": to} for to in tos],
                          "content": {"text": "hello"}} for tos in messages]}


async def start(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
                **extra: Any) -> Running:
    """Gatekeeper with one `infobip` upstream (the fake gateway) and +336... blocked."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path, upstreams=[
        {"name": "infobip", "url": upstream.url, "preset": "infobip", **extra}]))
    await gk.block("+336*")
    return gk


def api_client(gk: Running) -> ApiClient:
    """An SDK client whose base URL is the proxy's /infobip mount."""
    host = str(gk.proxy.make_url("/infobip")).rstrip("/")
    return ApiClient(Configuration(host=host, api_key=KEY))


async def call(fn: Callable[[], Any]) -> Any:
    """Run a blocking SDK call off the event loop (the proxy runs on it)."""
    return await asyncio.to_thread(fn)


async def test_allowed_send_arrives_unchanged(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Unlisted numbers go through byte for byte; the SDK returns the upstream's reply."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    upstream.status, upstream.reply = 200, sms_reply(ALLOWED, OTHER)
    sms = SmsApi(api_client(gk))
    response = await call(lambda: sms.send_sms_messages(sms_request([ALLOWED, OTHER])))
    assert [m.destination for m in response.messages] == [ALLOWED, OTHER]
    assert response.messages[0].status.group_name.value == "PENDING"
    [got] = upstream.received
    assert (got.method, got.path_qs) == ("POST", "/sms/3/messages")
    assert got.body == json.dumps(sent_json([ALLOWED, OTHER])).encode()
    assert got.headers["Authorization"] == f"App {KEY}"
    assert decisions(gk.registry, "infobip", "sms", "forwarded", "unlisted") == 2


async def test_blocked_send_raises_bad_request(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Every destination blocked: the SDK raises BadRequestException; nothing is sent."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    sms = SmsApi(api_client(gk))
    with pytest.raises(BadRequestException) as raised:
        await call(lambda: sms.send_sms_messages(sms_request([BLOCKED], ["33698765432"])))
    assert raised.value.status == 400
    assert raised.value.data.error_code == "E400"
    assert "block list" in raised.value.data.violations[0].violation
    assert upstream.received == []
    assert decisions(gk.registry, "infobip", "sms", "rejected", "blocked") == 2


async def test_partly_blocked_send_drops_destinations_and_emptied_messages(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Blocked destinations go, a message left without any goes; the rest is sent."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    upstream.status, upstream.reply = 200, sms_reply(ALLOWED, OTHER)
    sms = SmsApi(api_client(gk))
    request = sms_request([ALLOWED, BLOCKED], ["33698765432"], [OTHER])
    response = await call(lambda: sms.send_sms_messages_with_http_info(request))
    assert response.status_code == 200
    assert response.headers["X-Gatekeeper-Decision"] == "partial"
    assert response.headers["X-Gatekeeper-Removed"] == "2"
    [got] = upstream.received
    assert json.loads(got.body) == sent_json([ALLOWED], [OTHER])
    assert got.headers["Authorization"] == f"App {KEY}"
    assert decisions(gk.registry, "infobip", "sms", "partial", "blocked") == 2


async def test_skip_returns_rejected_destinations(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """on_block: skip gives the SDK a normal SmsResponse, each destination REJECTED."""
    gk = await start(start_gatekeeper, upstream, tmp_path, on_block="skip")
    sms = SmsApi(api_client(gk))
    response = await call(lambda: sms.send_sms_messages(sms_request([BLOCKED])))
    [message] = response.messages
    assert message.destination == BLOCKED
    assert message.status.group_name.value == "REJECTED"
    assert upstream.received == []


async def test_blocked_voice_message_raises_bad_request(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A TTS call to a blocked number is refused the same way, counted as voice."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    voice = VoiceApi(api_client(gk))
    body = CallsSingleBody(var_from="41793026700", to=BLOCKED, text="hello", language="en")
    with pytest.raises(BadRequestException) as raised:
        await call(lambda: voice.send_single_voice_tts(body))
    assert raised.value.data.request_error.service_exception.message_id == "BAD_REQUEST"
    assert upstream.received == []
    assert decisions(gk.registry, "infobip", "voice", "rejected", "blocked") == 1


async def test_api_key_maps_to_its_scope(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """The App key's digest maps to a tenant scope whose list then applies."""
    digest = "sha256:" + hashlib.sha256(KEY.encode()).hexdigest()
    gk = await start(start_gatekeeper, upstream, tmp_path,
                     credentials={digest: ["tenant:acme"]})
    await gk.block("+" + ALLOWED, scope="tenant:acme")
    sms = SmsApi(api_client(gk))
    with pytest.raises(BadRequestException):
        await call(lambda: sms.send_sms_messages(sms_request([ALLOWED])))
    assert upstream.received == []


async def test_calls_api_checks_phone_callees_only(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Calls API through the proxy: a blocked PHONE callee is refused and not sent; a
    WEBRTC callee, which has no number, goes through."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    headers = {"Authorization": f"App {KEY}", "Content-Type": "application/json"}
    refused = await gk.proxy.post("/infobip/calls/1/calls", headers=headers, json={
        "endpoint": {"type": "PHONE", "phoneNumber": "33612345678"},
        "from": "41793026834", "callsConfigurationId": "c1"})
    assert refused.status == 400
    assert refused.headers["X-Gatekeeper-Decision"] == "rejected"
    assert upstream.received == []
    webrtc = await gk.proxy.post("/infobip/calls/1/calls", headers=headers, json={
        "endpoint": {"type": "WEBRTC", "identity": "alice"}, "callsConfigurationId": "c1"})
    assert webrtc.status == upstream.status
    assert webrtc.headers["X-Gatekeeper-Decision"] == "forwarded"
    assert len(upstream.received) == 1

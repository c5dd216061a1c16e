"""The official MessageBird SDK (messagebird 2.x) driven through the proxy.

`messagebird.Client(key, http_client=HttpClient(<proxy>/messagebird/, key, USER_AGENT))`
sends every REST request to the proxy's mount; the SDK serialises bodies with
`messagebird.serde.json_serialize`, so the bytes it sent are known exactly.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import messagebird
import pytest
from messagebird.client import USER_AGENT, ErrorException
from messagebird.http_client import HttpClient
from messagebird.serde import json_serialize

from tests.conftest import FakeUpstream, Running, StartGatekeeper, decisions, make_config

KEY = "live-access-key-not-real"
ALLOWED, OTHER, BLOCKED = "31612345678", "31612345679", "33612345678"
MESSAGE_ID = "e8077d803532c0b5937c639b60216938"


def message_reply(*recipients: str) -> bytes:
    """MessageBird's 201 for a created message."""
    return json.dumps({
        "id": MESSAGE_ID, "href": f"https://rest.messagebird.com/messages/{MESSAGE_ID}",
        "direction": "mt", "type": "sms", "originator": "Sender", "body": "hello",
        "reference": None, "validity": None, "gateway": 10, "typeDetails": {},
        "datacoding": "plain", "mclass": 1, "scheduledDatetime": None,
        "createdDatetime": "2026-01-05T10:00:00+00:00",
        "recipients": {"totalCount": len(recipients), "totalSentCount": len(recipients),
                       "totalDeliveredCount": 0, "totalDeliveryFailedCount": 0,
                       "items": [{"recipient": int(r), "status": "sent",
                                  "statusDatetime": "2026-01-05T10:00:00+00:00"}
                                 for r in recipients]}}).encode()


async def start(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
                **extra: Any) -> Running:
    """Gatekeeper with one `messagebird` upstream (the fake gateway) and +336... blocked."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path, upstreams=[
        {"name": "messagebird", "url": upstream.url, "preset": "messagebird", **extra}]))
    await gk.block("+336*")
    return gk


def sdk_client(gk: Running, monkeypatch: pytest.MonkeyPatch) -> messagebird.Client:
    """A MessageBird client whose requests reach the proxy's /messagebird mount."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    base = str(gk.proxy.make_url("/messagebird")).rstrip("/") + "/"
    return messagebird.Client(KEY, http_client=HttpClient(base, KEY, USER_AGENT))


async def call(fn: Callable[[], Any]) -> Any:
    """Run a blocking SDK call off the event loop (the proxy runs on it)."""
    return await asyncio.to_thread(fn)


async def test_allowed_message_arrives_unchanged(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Unlisted numbers go through byte for byte; the SDK returns the upstream's message."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    client = sdk_client(gk, monkeypatch)
    upstream.status, upstream.reply = 201, message_reply(ALLOWED, OTHER)
    message = await call(lambda: client.message_create("Sender", [ALLOWED, OTHER], "hello"))
    assert message.id == MESSAGE_ID
    assert [r.recipient for r in message.recipients["items"]] == [int(ALLOWED), int(OTHER)]
    [got] = upstream.received
    assert (got.method, got.path_qs) == ("POST", "/messages")
    assert got.body == json_serialize({"originator": "Sender", "body": "hello",
                                       "recipients": f"{ALLOWED},{OTHER}"})
    assert got.headers["Authorization"] == f"AccessKey {KEY}"
    assert decisions(gk.registry, "messagebird", "sms", "forwarded", "unlisted") == 2


@pytest.mark.parametrize(("send", "channel", "numbers"), [
    (lambda c: c.message_create("Sender", [BLOCKED, "33698765432"], "hello"), "sms", 2),
    (lambda c: c.voice_message_create([BLOCKED], "hello"), "voice", 1),
    (lambda c: c.verify_create(BLOCKED), "any", 1),  # by SMS or a TTS call
], ids=["message", "voice-message", "verify"])
async def test_blocked_send_raises_error_exception(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, send: Callable[[messagebird.Client], Any],
        channel: str, numbers: int) -> None:
    """Every recipient blocked: the SDK raises ErrorException (code 9); nothing is sent."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    client = sdk_client(gk, monkeypatch)
    with pytest.raises(ErrorException) as raised:
        await call(lambda: send(client))
    assert raised.value.errors[0].code == 9
    assert "block list" in raised.value.errors[0].description
    assert upstream.received == []
    assert decisions(gk.registry, "messagebird", channel, "rejected", "blocked") == numbers


async def test_partly_blocked_message_arrives_without_the_blocked(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocked numbers leave the comma-joined `recipients`; the rest is sent."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    client = sdk_client(gk, monkeypatch)
    upstream.status, upstream.reply = 201, message_reply(ALLOWED, OTHER)
    message = await call(lambda: client.message_create(
        "Sender", [BLOCKED, ALLOWED, "33698765432", OTHER], "hello"))
    assert message.id == MESSAGE_ID
    [got] = upstream.received
    assert json.loads(got.body) == {"originator": "Sender", "body": "hello",
                                    "recipients": f"{ALLOWED},{OTHER}"}
    assert got.headers["Authorization"] == f"AccessKey {KEY}"
    assert decisions(gk.registry, "messagebird", "sms", "partial", "blocked") == 2


async def test_partly_blocked_voice_message(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Voice messages lose their blocked recipients the same way."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    client = sdk_client(gk, monkeypatch)
    upstream.status, upstream.reply = 201, b'{"id":"v1","recipients":{"items":[]}}'
    voice = await call(lambda: client.voice_message_create([ALLOWED, BLOCKED], "hello"))
    assert voice.id == "v1"
    [got] = upstream.received
    assert (got.path_qs, json.loads(got.body)["recipients"]) == ("/voicemessages", ALLOWED)
    assert decisions(gk.registry, "messagebird", "voice", "partial", "blocked") == 1


async def test_skip_returns_a_failed_message(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """on_block: skip hands the SDK a message whose recipient failed; nothing is sent."""
    gk = await start(start_gatekeeper, upstream, tmp_path, on_block="skip")
    client = sdk_client(gk, monkeypatch)
    message = await call(lambda: client.message_create("Sender", BLOCKED, "hello"))
    [item] = message.recipients["items"]
    assert (item.recipient, item.status) == (int(BLOCKED), "delivery_failed")
    assert message.body == "hello"
    assert upstream.received == []


async def test_access_key_maps_to_its_scope(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The access key's digest maps to a tenant scope whose list then applies."""
    digest = "sha256:" + hashlib.sha256(KEY.encode()).hexdigest()
    gk = await start(start_gatekeeper, upstream, tmp_path,
                     credentials={digest: ["tenant:acme"]})
    await gk.block("+" + ALLOWED, scope="tenant:acme")
    client = sdk_client(gk, monkeypatch)
    with pytest.raises(ErrorException):
        await call(lambda: client.message_create("Sender", ALLOWED, "hello"))
    assert upstream.received == []


async def test_method_override_send_is_checked_too(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A GET with `?_method=POST` (no SDK sends one, the API takes it) is refused alike."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    resp = await gk.proxy.get(
        "/messagebird/messages",
        params={"_method": "POST", "originator": "Sender", "body": "hi",
                "recipients": f"{BLOCKED}"},
        headers={"Authorization": f"AccessKey {KEY}"})
    assert resp.status == 422
    assert (await resp.json())["errors"][0]["code"] == 9
    assert upstream.received == []
    listing = await gk.proxy.get("/messagebird/messages", params={"limit": "10"})
    assert listing.status == 201  # the fake upstream's status: a plain GET goes through
    [got] = upstream.received
    assert got.path_qs == "/messages?limit=10"

"""The official Sinch SDK (sinch 2.x) driven through the proxy against a fake upstream.

The SDK's SMS origin for service-plan authentication is
`configuration.sms_domain_with_service_plan_id`; pointing it at the proxy's `/sinch`
mount sends every SMS request there (over plain HTTP on loopback).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from sinch import SinchClient
from sinch.domains.sms.api.v1.exceptions import SmsException

from tests.conftest import FakeUpstream, Running, StartGatekeeper, decisions, make_config

PLAN = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
TOKEN = "sms-api-token-not-real"
SENDER = "+12025550123"
ALLOWED = "+46701234567"
OTHER = "46701234568"
BLOCKED = "+33612345678"
BATCH_ID = "01FC66621XXXXX119Z8PMV1QPQ"


def batch_reply(*to: str) -> bytes:
    """Sinch's 201 for a created text batch."""
    return json.dumps({
        "id": BATCH_ID, "to": list(to), "from": SENDER, "body": "hello", "type": "mt_text",
        "canceled": False, "created_at": "2026-01-05T10:00:00.000Z",
        "modified_at": "2026-01-05T10:00:00.000Z", "delivery_report": "none",
        "expire_at": "2026-01-08T10:00:00.000Z", "flash_message": False}).encode()


async def start(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
                **extra: Any) -> Running:
    """Gatekeeper with one `sinch` upstream (the fake gateway) and +336... blocked."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path, upstreams=[
        {"name": "sinch", "url": upstream.url, "preset": "sinch", **extra}]))
    await gk.block("+336*")
    return gk


def sdk_client(gk: Running, monkeypatch: pytest.MonkeyPatch
               ) -> tuple[SinchClient, list[requests.Response]]:
    """A Sinch client whose SMS requests reach the proxy; also the exchanges it had."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    client = SinchClient(service_plan_id=PLAN, sms_api_token=TOKEN, sms_region="us")
    client.configuration.sms_domain_with_service_plan_id = \
        str(gk.proxy.make_url("/sinch")).rstrip("/")
    exchanges: list[requests.Response] = []
    client.configuration.transport.http_session.hooks["response"].append(
        lambda response, *args, **kwargs: exchanges.append(response))
    return client, exchanges


def sent_body(exchange: requests.Response) -> bytes:
    """The body the SDK sent (requests keeps a `data=` string as str)."""
    raw = exchange.request.body
    assert isinstance(raw, str | bytes)
    return raw.encode() if isinstance(raw, str) else raw


async def call(fn: Callable[[], Any]) -> Any:
    """Run a blocking SDK call off the event loop (the proxy runs on it)."""
    return await asyncio.to_thread(fn)


def send(client: SinchClient, *to: str) -> Callable[[], Any]:
    """A text batch as an application sends it."""
    return lambda: client.sms.batches.send_sms(to=list(to), from_=SENDER, body="hello")


async def test_allowed_send_arrives_unchanged(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Unlisted numbers go through byte for byte; the SDK returns the upstream's batch."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    client, exchanges = sdk_client(gk, monkeypatch)
    upstream.status, upstream.reply = 201, batch_reply(ALLOWED, OTHER)
    batch = await call(send(client, ALLOWED, OTHER))
    assert batch.id == BATCH_ID
    assert batch.canceled is False
    [got] = upstream.received
    assert (got.method, got.path_qs) == ("POST", f"/xms/v1/{PLAN}/batches")
    assert got.body == sent_body(exchanges[0])
    assert json.loads(got.body) == {"to": [ALLOWED, OTHER], "from": SENDER, "body": "hello",
                                    "type": "mt_text"}
    assert got.headers["Authorization"] == f"Bearer {TOKEN}"
    assert decisions(gk.registry, "sinch", "sms", "forwarded", "unlisted") == 2


async def test_blocked_send_raises_sms_exception(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every recipient blocked: the SDK raises SmsException (403); nothing is sent."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    client, _ = sdk_client(gk, monkeypatch)
    with pytest.raises(SmsException) as raised:
        await call(send(client, BLOCKED, "33698765432"))
    assert raised.value.response_status_code == 403
    assert raised.value.http_response.body["code"] == "forbidden"
    assert raised.value.http_response.headers["X-Gatekeeper-Decision"] == "rejected"
    assert upstream.received == []
    assert decisions(gk.registry, "sinch", "sms", "rejected", "blocked") == 2


async def test_partly_blocked_send_arrives_without_the_blocked(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocked recipients are dropped from `to`; the rest is sent and the SDK succeeds."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    client, exchanges = sdk_client(gk, monkeypatch)
    upstream.status, upstream.reply = 201, batch_reply(ALLOWED, OTHER)
    batch = await call(send(client, ALLOWED, BLOCKED, OTHER, BLOCKED))
    assert batch.id == BATCH_ID
    [got] = upstream.received
    assert json.loads(got.body) == {"to": [ALLOWED, OTHER], "from": SENDER, "body": "hello",
                                    "type": "mt_text"}
    assert got.headers["Authorization"] == f"Bearer {TOKEN}"
    [exchange] = exchanges
    assert exchange.headers["X-Gatekeeper-Decision"] == "partial"
    assert exchange.headers["X-Gatekeeper-Removed"] == "1"
    assert decisions(gk.registry, "sinch", "sms", "partial", "blocked") == 1
    assert decisions(gk.registry, "sinch", "sms", "partial", "unlisted") == 2


@pytest.mark.parametrize(("request_fn", "method", "path", "field"), [
    (lambda c: c.sms.batches.dry_run_sms(to=[ALLOWED, BLOCKED], from_=SENDER, body="x"),
     "POST", f"/xms/v1/{PLAN}/batches/dry_run", "to"),
    (lambda c: c.sms.batches.replace_sms(batch_id=BATCH_ID, to=[BLOCKED, ALLOWED],
                                         from_=SENDER, body="x"),
     "PUT", f"/xms/v1/{PLAN}/batches/{BATCH_ID}", "to"),
    (lambda c: c.sms.batches.update_sms(batch_id=BATCH_ID, to_add=[BLOCKED, ALLOWED]),
     "POST", f"/xms/v1/{PLAN}/batches/{BATCH_ID}", "to_add"),
    (lambda c: c.sms.groups.create(name="friends", members=[ALLOWED, BLOCKED]),
     "POST", f"/xms/v1/{PLAN}/groups", "members"),
    (lambda c: c.sms.groups.update(group_id=BATCH_ID, add=[BLOCKED, ALLOWED]),
     "POST", f"/xms/v1/{PLAN}/groups/{BATCH_ID}", "add"),
], ids=["dry-run", "replace-batch", "update-batch", "create-group", "update-group"])
async def test_other_requests_adding_recipients_are_checked(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, request_fn: Callable[[SinchClient], Any],
        method: str, path: str, field: str) -> None:
    """Dry runs, batch replace/update and group members lose their blocked numbers."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    client, _ = sdk_client(gk, monkeypatch)
    upstream.status = 200
    upstream.reply = (b'{"number_of_recipients":1,"number_of_messages":1}'
                      if "dry_run" in path else batch_reply(ALLOWED) if "batches" in path
                      else b'{"id":"01FC66621XXXXX119Z8PMV1QPQ","name":"friends","size":1}')
    await call(lambda: request_fn(client))
    [got] = upstream.received
    assert (got.method, got.path_qs.partition("?")[0]) == (method, path)
    assert json.loads(got.body)[field] == [ALLOWED]


async def test_update_without_new_recipients_is_not_checked(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Changing a scheduled batch's text adds nobody: forwarded as is."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    client, exchanges = sdk_client(gk, monkeypatch)
    upstream.status, upstream.reply = 200, batch_reply(ALLOWED)
    await call(lambda: client.sms.batches.update_sms(batch_id=BATCH_ID, body="new text"))
    [got] = upstream.received
    assert got.body == sent_body(exchanges[0])
    assert "to_add" not in json.loads(got.body)


async def test_skip_returns_a_canceled_batch(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """on_block: skip hands the SDK a normal batch marked canceled; nothing is sent."""
    gk = await start(start_gatekeeper, upstream, tmp_path, on_block="skip")
    client, _ = sdk_client(gk, monkeypatch)
    batch = await call(send(client, BLOCKED))
    assert batch.canceled is True
    assert batch.to == [BLOCKED]
    assert batch.body == "hello"
    assert len(batch.id) == 26
    assert upstream.received == []
    assert decisions(gk.registry, "sinch", "sms", "skipped", "blocked") == 1


async def test_plan_credentials_add_their_scope(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The token's digest maps to a tenant scope whose list then applies."""
    digest = "sha256:" + hashlib.sha256(TOKEN.encode()).hexdigest()
    gk = await start(start_gatekeeper, upstream, tmp_path,
                     credentials={digest: ["tenant:acme"]})
    await gk.block(ALLOWED, scope="tenant:acme")
    client, _ = sdk_client(gk, monkeypatch)
    with pytest.raises(SmsException):
        await call(send(client, ALLOWED))
    assert upstream.received == []

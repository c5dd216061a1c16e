"""The official Prelude SDK driven through the proxy against a fake upstream on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
from prelude_python_sdk import BadRequestError, Prelude

from tests.conftest import FakeUpstream, Running, StartGatekeeper, decisions, make_config

TOKEN = "prelude-api-token-not-real"
ALLOWED = "+33612345678"
BLOCKED = "+447700900123"
OTHER = "+14155550100"
TEMPLATE = "template_01hynq6xyz0123456789abcdef"
VERIFY_OK = {"id": "vrf_01jc0t6fwwfgfsq1md24mhyztj", "method": "message",
             "status": "success", "channels": ["sms"],
             "request_id": "3d19215e-2991-4a05-a41a-527314e6ff6a"}
NOTIFY_OK = {"id": "msg_01jc0t6fwwfgfsq1md24mhyztj", "to": ALLOWED, "template_id": TEMPLATE,
             "variables": {"name": "Ada"}, "created_at": "2026-05-01T10:00:00Z",
             "expires_at": "2026-05-02T10:00:00Z"}
# Environment variables the SDK reads (token, base URL, extra headers) or that would send
# httpx through a proxy.
_SDK_ENV = ("API_TOKEN", "PRELUDE_BASE_URL", "PRELUDE_CUSTOM_HEADERS", "HTTP_PROXY",
            "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


async def start(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
                on_block: str = "reject") -> Running:
    """Gatekeeper with one `prelude` upstream, +44 7700 900123 blocked."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path, upstreams=[
        {"name": "prelude", "url": upstream.url, "preset": "prelude", "on_block": on_block}]))
    await gk.block(BLOCKED)
    return gk


def client(gk: Running, monkeypatch: pytest.MonkeyPatch, strict: bool = False) -> Prelude:
    """A Prelude client on the proxy's /prelude mount.

    `max_retries=0`: the SDK retries twice by default on connection errors, timeouts,
    408/409/429 and 5xx, with no idempotency key for Prelude, so a retried POST could send
    an OTP or message twice; it also keeps a failing test fast. `strict` makes the SDK
    validate replies against its own models.
    """
    for name in _SDK_ENV:
        monkeypatch.delenv(name, raising=False)
    base = str(gk.proxy.make_url("/prelude")).rstrip("/")
    return Prelude(api_token=TOKEN, base_url=base, max_retries=0,
                   _strict_response_validation=strict)


async def call(fn: Callable[..., Any], **kwargs: Any) -> Any:
    """Run a blocking SDK call off the event loop (the proxy runs on it)."""
    return await asyncio.to_thread(fn, **kwargs)


def sent(upstream: FakeUpstream) -> dict[str, Any]:
    """The one request the upstream received, parsed; checks the credentials too."""
    [got] = upstream.received
    assert got.headers["Authorization"] == f"Bearer {TOKEN}"
    return dict(json.loads(got.body))


# --------------------------------------------------------------------------- verification


async def test_allowed_verification_arrives_and_sdk_returns_success(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An unlisted number goes through unchanged; the SDK gets the upstream's success."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    upstream.status, upstream.reply = 200, json.dumps(VERIFY_OK).encode()
    result = await call(client(gk, monkeypatch).verification.create,
                        target={"type": "phone_number", "value": ALLOWED},
                        options={"locale": "fr-FR"})
    assert (result.id, result.status) == (VERIFY_OK["id"], "success")
    assert sent(upstream) == {"target": {"type": "phone_number", "value": ALLOWED},
                              "options": {"locale": "fr-FR"}}
    assert upstream.received[0].path_qs == "/v2/verification"
    # A verification may go by SMS, WhatsApp or a call: counted on the `any` channel.
    assert decisions(gk.registry, "prelude", "any", "forwarded", "unlisted") == 1


async def test_blocked_verification_returns_blocked_status_and_sends_nothing(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Prelude's own way: a normal result with status `blocked`, reason `in_block_list`."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    result = await call(client(gk, monkeypatch, strict=True).verification.create,
                        target={"type": "phone_number", "value": BLOCKED},
                        metadata={"correlation_id": "signup-42"})
    assert (result.status, result.reason, result.method) == ("blocked", "in_block_list",
                                                             "message")
    assert result.id.startswith("vrf_")
    assert result.metadata is not None
    assert result.metadata.correlation_id == "signup-42"
    assert upstream.received == []


async def test_email_verification_is_forwarded(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An email target is no phone number: forwarded, not refused as invalid."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    upstream.status, upstream.reply = 200, json.dumps(VERIFY_OK | {"method": "email"}).encode()
    result = await call(client(gk, monkeypatch).verification.create,
                        target={"type": "email_address", "value": "ada@example.com"})
    assert result.method == "email"
    assert sent(upstream)["target"] == {"type": "email_address", "value": "ada@example.com"}


# --------------------------------------------------------------------------- notify


async def test_allowed_notify_arrives_and_sdk_returns_the_message(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A notify send to an unlisted number arrives with the SDK's exact body."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    upstream.status, upstream.reply = 200, json.dumps(NOTIFY_OK).encode()
    result = await call(client(gk, monkeypatch).notify.send, template_id=TEMPLATE, to=ALLOWED,
                        variables={"name": "Ada"})
    assert (result.id, result.to) == (NOTIFY_OK["id"], ALLOWED)
    assert sent(upstream) == {"template_id": TEMPLATE, "to": ALLOWED,
                              "variables": {"name": "Ada"}}
    # Byte for byte what the SDK wrote (compact JSON), not a re-encoding.
    assert upstream.received[0].body == (
        f'{{"template_id":"{TEMPLATE}","to":"{ALLOWED}","variables":{{"name":"Ada"}}}}'
        .encode())
    assert upstream.received[0].path_qs == "/v2/notify"


@pytest.mark.parametrize("send", ["notify", "transactional"])
async def test_blocked_message_raises_bad_request_error(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, send: str) -> None:
    """Notify (and the deprecated transactional send) raise the SDK's BadRequestError."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    prelude = client(gk, monkeypatch)
    fn = prelude.notify.send if send == "notify" else prelude.transactional.send
    # The SDK marks transactional.send deprecated (use Notify), but it still sends.
    deprecated = pytest.deprecated_call() if send == "transactional" else nullcontext()
    with deprecated, pytest.raises(BadRequestError) as raised:
        await call(fn, template_id=TEMPLATE, to=BLOCKED)
    assert raised.value.status_code == 400
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["code"] == "blocked_number"
    assert raised.value.body["type"] == "bad_request"
    assert raised.value.response.headers["X-Gatekeeper-Decision"] == "rejected"
    assert upstream.received == []


async def test_partly_blocked_batch_arrives_without_the_blocked_number(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch reaches Prelude with only the allowed numbers; the reply says partial."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    upstream.status = 200
    upstream.reply = json.dumps({
        "total_count": 2, "success_count": 2, "error_count": 0,
        "results": [{"phone_number": n, "success": True, "message": {"id": f"msg_{i}"}}
                    for i, n in enumerate((ALLOWED, OTHER))]}).encode()
    raw = await call(client(gk, monkeypatch).notify.with_raw_response.send_batch,
                     template_id=TEMPLATE, to=[ALLOWED, BLOCKED, OTHER])
    assert raw.headers["X-Gatekeeper-Decision"] == "partial"
    assert raw.headers["X-Gatekeeper-Removed"] == "1"
    assert raw.parse().success_count == 2
    assert sent(upstream) == {"template_id": TEMPLATE, "to": [ALLOWED, OTHER]}
    # The rewritten body keeps the SDK's compact encoding.
    assert upstream.received[0].body == (
        f'{{"template_id":"{TEMPLATE}","to":["{ALLOWED}","{OTHER}"]}}'.encode())
    assert upstream.received[0].path_qs == "/v2/notify/batch"


async def test_fully_blocked_batch_raises_bad_request_error(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch of blocked numbers only is refused whole."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    with pytest.raises(BadRequestError):
        await call(client(gk, monkeypatch).notify.send_batch, template_id=TEMPLATE,
                   to=[BLOCKED, BLOCKED])
    assert upstream.received == []


# --------------------------------------------------------------------------- skip


async def test_skip_replies_parse_strictly_in_the_sdk(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With on_block=skip every send returns a result the SDK validates against its models."""
    gk = await start(start_gatekeeper, upstream, tmp_path, on_block="skip")
    prelude = client(gk, monkeypatch, strict=True)
    verification = await call(prelude.verification.create,
                              target={"type": "phone_number", "value": BLOCKED})
    assert (verification.status, verification.channels) == ("success", ["sms"])
    message = await call(prelude.notify.send, template_id=TEMPLATE, to=BLOCKED,
                         variables={"code": "123"}, correlation_id="c-1")
    assert (message.to, message.template_id, message.variables, message.correlation_id) == (
        BLOCKED, TEMPLATE, {"code": "123"}, "c-1")
    assert message.id.startswith("msg_")
    batch = await call(prelude.notify.send_batch, template_id=TEMPLATE, to=[BLOCKED])
    assert (batch.total_count, batch.success_count, batch.error_count) == (1, 0, 1)
    assert batch.results[0].phone_number == BLOCKED
    assert batch.results[0].success is False
    reply = await call(prelude.notify.reply, reply_to="im_01abc", text="hi", to=BLOCKED)
    assert (reply.reply_to, reply.text, reply.to) == ("im_01abc", "hi", BLOCKED)
    assert upstream.received == []
    assert decisions(gk.registry, "prelude", "sms", "skipped", "blocked") == 3
    assert decisions(gk.registry, "prelude", "any", "skipped", "blocked") == 1


async def test_token_digest_maps_the_sdk_to_its_scope(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A number blocked for the token's tenant only is blocked for this SDK client."""
    digest = "sha256:" + hashlib.sha256(TOKEN.encode()).hexdigest()
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path, upstreams=[
        {"name": "prelude", "url": upstream.url, "preset": "prelude",
         "credentials": {digest: ["tenant:acme"]}}]))
    await gk.block(OTHER, scope="tenant:acme")
    with pytest.raises(BadRequestError):
        await call(client(gk, monkeypatch).notify.send, template_id=TEMPLATE, to=OTHER)
    assert upstream.received == []

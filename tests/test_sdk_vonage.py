"""The official Vonage SDK (4.x) driven through the proxy against a fake upstream on loopback.

vonage 4.x only speaks HTTPS, so the proxy gets a TLS listener with a certificate from a
test CA (`trustme`) that `requests` trusts through REQUESTS_CA_BUNDLE. The SDK builds
URLs as `https://{host}{path}` with no base-path option, but its `api_host`/`rest_host`
may carry a path: `127.0.0.1:PORT/vonage` lands every call on the proxy's `/vonage`
mount, one upstream for both Vonage hosts, as the preset serves all their routes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from vonage import Auth, HttpClientOptions, Vonage
from vonage_http_client.errors import ForbiddenError
from vonage_messages import Sms, WhatsappText
from vonage_sms import SmsError, SmsMessage
from vonage_voice import Connect, CreateCallRequest, PhoneEndpoint

from tests.conftest import FakeUpstream, Running, StartGatekeeper, decisions, make_config

API_KEY = "abcd1234"
API_SECRET = "Secret-not-real-1"
SIGNATURE_SECRET = "signature-secret-not-real"
APP_ID = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
A, B, C = "447700900000", "33612345678", "14155550100"
SMS_OK = {"message-count": "1", "messages": [{
    "to": A, "message-id": "0A0000000123ABCD1", "status": "0",
    "remaining-balance": "3.14159265", "message-price": "0.03330000", "network": "23410"}]}
CALL_OK = {"uuid": "63f61863-4a51-4f6b-86e1-46edebcf9356", "status": "started",
           "direction": "outbound", "conversation_uuid": "CON-f972836a-550f-45fa-956c"}
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "CURL_CA_BUNDLE")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 and the test CA's bundle file."""
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    bundle = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return ctx, bundle


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    """The application's private key (the SDK signs a JWT with it for Voice)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def gk(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
             tls: tuple[ssl.SSLContext, Path], monkeypatch: pytest.MonkeyPatch) -> Running:
    """Gatekeeper on TLS with one `vonage` upstream; the app's JWTs map to tenant:acme."""
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls[1]))
    config = make_config(upstream.url, tmp_path, upstreams=[{
        "name": "vonage", "url": upstream.url, "preset": "vonage",
        "credentials": {APP_ID: ["tenant:acme"]}}])
    return await start_gatekeeper(config, ssl=tls[0])


def sdk(gk: Running, auth: Auth) -> Vonage:
    """A Vonage client whose API and REST hosts are the proxy's `/vonage` mount."""
    host = f"127.0.0.1:{gk.proxy.make_url('/').port}/vonage"
    return Vonage(auth, HttpClientOptions(api_host=host, rest_host=host, max_retries=0))


def basic() -> Auth:
    return Auth(api_key=API_KEY, api_secret=API_SECRET)


def app(key: rsa.RSAPrivateKey) -> Auth:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return Auth(application_id=APP_ID, private_key=pem)


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a blocking SDK call off the event loop (the proxy runs on it)."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def basic_header() -> str:
    return "Basic " + base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()


def create_call(*to: dict[str, str]) -> CreateCallRequest:
    return CreateCallRequest(to=list(to), from_={"type": "phone", "number": "447700900001"},
                             ncco=[{"action": "talk", "text": "Hello"}])


# --------------------------------------------------------------------------- legacy SMS


async def test_legacy_sms_allowed_arrives_unchanged(gk: Running, upstream: FakeUpstream) -> None:
    """An unlisted number: the form body and Basic credentials reach the upstream as sent."""
    upstream.status, upstream.reply = 200, json.dumps(SMS_OK).encode()
    client = sdk(gk, basic())
    sent = await call(client.sms.send, SmsMessage(to=A, from_="AcmeInc", text="Hello"))
    assert sent.messages[0].message_id == "0A0000000123ABCD1"
    [got] = upstream.received
    assert (got.method, got.path_qs) == ("POST", "/sms/json")
    assert got.body == b"to=447700900000&from=AcmeInc&text=Hello"
    assert got.headers["Authorization"] == basic_header()
    assert decisions(gk.registry, "vonage", "sms", "forwarded", "unlisted") == 1


async def test_legacy_sms_blocked_raises_sms_error(gk: Running, upstream: FakeUpstream) -> None:
    """A blocked number: the SDK raises SmsError for status 7; nothing is sent."""
    await gk.block("+336*")
    client = sdk(gk, basic())
    with pytest.raises(SmsError, match="error code 7: Number barred"):
        await call(client.sms.send, SmsMessage(to=B, from_="AcmeInc", text="Hello"))
    assert upstream.received == []
    assert decisions(gk.registry, "vonage", "sms", "rejected", "blocked") == 1


async def test_signed_legacy_sms(gk: Running, upstream: FakeUpstream) -> None:
    """Signed sends (`sig`): allowed ones arrive byte for byte, blocked ones raise."""
    upstream.status, upstream.reply = 200, json.dumps(SMS_OK).encode()
    await gk.block("+336*")
    client = sdk(gk, Auth(api_key=API_KEY, signature_secret=SIGNATURE_SECRET))
    await call(client.sms.send, SmsMessage(to=A, from_="AcmeInc", text="Hello"))
    [got] = upstream.received
    assert got.body.startswith(b"to=447700900000&from=AcmeInc&text=Hello&sig=")
    assert client.http_client.last_request.body == got.body.decode()
    with pytest.raises(SmsError, match="Number barred"):
        await call(client.sms.send, SmsMessage(to=B, from_="AcmeInc", text="Hello"))
    assert len(upstream.received) == 1


async def test_partly_blocked_signed_request_is_blocked_whole(
        gk: Running, upstream: FakeUpstream) -> None:
    """Two `to` in a signed request, one blocked: not rewritten, the whole send is refused.

    The SDK sends one `to` only, so this one is written by hand in the SDK's shape.
    """
    await gk.block("+336*")
    body = f"to={A}&to={B}&from=AcmeInc&text=Hello&api_key={API_KEY}&timestamp=1&sig=" \
           "cb30cc6bdb28b4e3e11cc6061d2d5385"
    resp = await gk.proxy.post("/vonage/sms/json", data=body, headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 200
    assert resp.headers["X-Gatekeeper-Decision"] == "rejected"
    assert (await resp.json())["messages"][0]["status"] == "7"
    assert upstream.received == []


# ----------------------------------------------------------------------------- Messages


async def test_messages_allowed_arrives_unchanged(gk: Running, upstream: FakeUpstream) -> None:
    """Messages API (Basic auth): the JSON body reaches the upstream as the SDK sent it."""
    upstream.status, upstream.reply = 202, b'{"message_uuid": "aaaaaaaa-bbbb-cccc-dddd-0"}'
    client = sdk(gk, basic())
    sent = await call(client.messages.send, Sms(to=A, from_="AcmeInc", text="Hi"))
    assert sent.message_uuid == "aaaaaaaa-bbbb-cccc-dddd-0"
    [got] = upstream.received
    assert got.path_qs == "/v1/messages"
    assert json.loads(got.body) == {"to": A, "from": "AcmeInc", "text": "Hi",
                                    "channel": "sms", "message_type": "text"}
    assert got.body == client.http_client.last_request.body
    assert got.headers["Authorization"] == basic_header()


async def test_messages_blocked_raises_forbidden(gk: Running, upstream: FakeUpstream) -> None:
    """A blocked WhatsApp recipient: 403 problem+json, the SDK raises ForbiddenError."""
    await gk.block("+" + B)
    client = sdk(gk, basic())
    with pytest.raises(ForbiddenError) as raised:
        await call(client.messages.send, WhatsappText(to=B, from_="447700900001", text="Hi"))
    assert raised.value.response.status_code == 403
    assert raised.value.response.headers["Content-Type"] == "application/problem+json"
    assert raised.value.response.json()["title"] == "Forbidden"
    assert upstream.received == []


async def test_messages_blocked_failover_is_dropped(gk: Running,
                                                    upstream: FakeUpstream) -> None:
    """A failover message to a blocked number is removed; the primary still goes."""
    upstream.status = 202
    upstream.reply = b'{"message_uuid": "m1", "workflow_id": "w1"}'
    await gk.block("+" + B)
    client = sdk(gk, basic())
    sent = await call(client.messages.send,
                      WhatsappText(to=A, from_="447700900001", text="Hi"),
                      failover=[Sms(to=B, from_="AcmeInc", text="Hi")])
    assert sent.workflow_id == "w1"
    [got] = upstream.received
    assert json.loads(got.body) == {"to": A, "from": "447700900001", "channel": "whatsapp",
                                    "text": "Hi", "message_type": "text"}
    assert client.http_client.last_response.headers["X-Gatekeeper-Decision"] == "partial"


# -------------------------------------------------------------------------------- Voice


async def test_call_allowed_arrives_with_its_jwt(gk: Running, upstream: FakeUpstream,
                                                 app_key: rsa.RSAPrivateKey) -> None:
    """create_call (JWT auth): body and a verifiable token reach the upstream."""
    upstream.status, upstream.reply = 201, json.dumps(CALL_OK).encode()
    client = sdk(gk, app(app_key))
    created = await call(client.voice.create_call, create_call({"type": "phone", "number": A}))
    assert created.uuid == CALL_OK["uuid"]
    [got] = upstream.received
    assert got.path_qs == "/v1/calls"
    assert json.loads(got.body)["to"] == [{"number": A, "type": "phone"}]
    scheme, _, token = got.headers["Authorization"].partition(" ")
    claims = jwt.decode(token, app_key.public_key(), algorithms=["RS256"])
    assert (scheme, claims["application_id"]) == ("Bearer", APP_ID)


async def test_call_blocked_raises_forbidden(gk: Running, upstream: FakeUpstream,
                                             app_key: rsa.RSAPrivateKey) -> None:
    """A blocked callee: ForbiddenError from the SDK, no call reaches the upstream."""
    await gk.block("+336*")
    client = sdk(gk, app(app_key))
    with pytest.raises(ForbiddenError):
        await call(client.voice.create_call, create_call({"type": "phone", "number": B}))
    assert upstream.received == []
    assert decisions(gk.registry, "vonage", "voice", "rejected", "blocked") == 1


async def test_partly_blocked_call_keeps_the_allowed_endpoints(
        gk: Running, upstream: FakeUpstream, app_key: rsa.RSAPrivateKey) -> None:
    """Several `to` endpoints, one blocked (as a SIP URI): only the others are called."""
    upstream.status, upstream.reply = 201, json.dumps(CALL_OK).encode()
    await gk.block("+" + B)
    client = sdk(gk, app(app_key))
    await call(client.voice.create_call, create_call(
        {"type": "phone", "number": A},
        {"type": "sip", "uri": f"sip:+{B}@sip.example.com"},
        {"type": "websocket", "uri": "wss://example.com/socket"}))
    [got] = upstream.received
    sent = json.loads(client.http_client.last_request.body)
    assert [e["type"] for e in sent["to"]] == ["phone", "sip", "websocket"]
    assert json.loads(got.body) == dict(sent, to=[sent["to"][0], sent["to"][2]])
    headers = client.http_client.last_response.headers
    assert (headers["X-Gatekeeper-Decision"], headers["X-Gatekeeper-Removed"]) == ("partial",
                                                                                   "1")


async def test_application_jwt_brings_its_tenant_scope(
        gk: Running, upstream: FakeUpstream, app_key: rsa.RSAPrivateKey) -> None:
    """The JWT's application id maps to tenant:acme, whose block list then applies."""
    upstream.status, upstream.reply = 202, b'{"message_uuid": "m1"}'
    await gk.block("+" + A, scope="tenant:acme")
    with pytest.raises(ForbiddenError):
        await call(sdk(gk, app(app_key)).messages.send, Sms(to=A, from_="Acme", text="Hi"))
    assert upstream.received == []
    await call(sdk(gk, basic()).messages.send, Sms(to=A, from_="Acme", text="Hi"))
    assert len(upstream.received) == 1


async def test_call_updates_pass_and_transfers_are_checked(
        gk: Running, upstream: FakeUpstream, app_key: rsa.RSAPrivateKey) -> None:
    """hangup carries no recipient and passes; a transfer that dials a blocked number
    raises ForbiddenError."""
    upstream.status, upstream.reply = 204, b""
    await gk.block("+" + B)
    client = sdk(gk, app(app_key))
    await call(client.voice.hangup, CALL_OK["uuid"])
    [got] = upstream.received
    assert (got.method, got.path_qs) == ("PUT", f"/v1/calls/{CALL_OK['uuid']}")
    assert json.loads(got.body) == {"action": "hangup"}
    connect = Connect(endpoint=[PhoneEndpoint(number=B)], from_=A)
    with pytest.raises(ForbiddenError):
        await call(client.voice.transfer_call_ncco, CALL_OK["uuid"], [connect])
    assert len(upstream.received) == 1


# ------------------------------------------------------------------------------- Verify


async def test_verify_blocked_step_is_dropped_and_fully_blocked_is_refused(
        gk: Running, upstream: FakeUpstream, app_key: rsa.RSAPrivateKey) -> None:
    """Verify v2 through the SDK: a blocked number's step leaves the workflow and the
    code goes by the other; with every number blocked the SDK gets a 403 and nothing is
    sent."""
    from vonage_verify import SmsChannel, VerifyRequest, VoiceChannel  # noqa: PLC0415

    upstream.status = 202
    upstream.reply = b'{"request_id": "c11236f4-00bf-4b89-84ba-88b25df97315"}'
    await gk.block("+" + A)
    client = sdk(gk, app(app_key))
    started = await call(client.verify.start_verification, VerifyRequest(
        brand="Acme", workflow=[SmsChannel(to=A), VoiceChannel(to=C)]))
    assert started.request_id == "c11236f4-00bf-4b89-84ba-88b25df97315"
    [got] = upstream.received
    assert json.loads(got.body)["workflow"] == [{"channel": "voice", "to": C}]
    assert client.http_client.last_response.headers["X-Gatekeeper-Decision"] == "partial"
    with pytest.raises(ForbiddenError):
        await call(client.verify.start_verification,
                   VerifyRequest(brand="Acme", workflow=[SmsChannel(to=A)]))
    assert len(upstream.received) == 1


async def test_legacy_verify_blocked_raises_verify_error(gk: Running,
                                                        upstream: FakeUpstream) -> None:
    """Legacy Verify to a blocked number: status 7, the SDK raises VerifyError, nothing is
    sent; an allowed number goes through."""
    from vonage_verify_legacy import VerifyRequest as LegacyVerifyRequest  # noqa: PLC0415
    from vonage_verify_legacy.errors import VerifyError  # noqa: PLC0415

    await gk.block("+" + A)
    client = sdk(gk, basic())
    with pytest.raises(VerifyError):
        await call(client.verify_legacy.start_verification,
                   LegacyVerifyRequest(number=A, brand="Acme"))
    assert upstream.received == []
    upstream.status, upstream.reply = 200, b'{"request_id": "abcdef0123456789", "status": "0"}'
    started = await call(client.verify_legacy.start_verification,
                         LegacyVerifyRequest(number=C, brand="Acme"))
    assert started.request_id == "abcdef0123456789"
    assert len(upstream.received) == 1

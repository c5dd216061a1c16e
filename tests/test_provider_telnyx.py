"""The `telnyx` preset on recorded request shapes: routes, recipients, rewriting, replies."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import httpx
import pytest
from telnyx import AuthenticationError, Telnyx, UnprocessableEntityError

from gatekeeper.config import UpstreamConfig
from gatekeeper.numbers import parse_destination
from gatekeeper.providers import PRESETS
from gatekeeper.providers.preset import Blocked, BodyError, Message, Recipients, Route
from gatekeeper.providers.telnyx import PRESET, whatsapp_recipient
from gatekeeper.replies import Reply
from gatekeeper.types import Channel
from tests.presets_helpers import PASSES, REFUSED, canonical, match, outcome, route_for

API_KEY = "KEY0123456789ABCDEF_not_real"
UPSTREAM = UpstreamConfig(name="telnyx", url="https://api.telnyx.com", preset="telnyx",
                          mount="/telnyx")
ROUTES = PRESET.routes(UPSTREAM)
BSUID = "US.13491208655302741918"


def body(**fields: Any) -> bytes:
    """A JSON body as the SDK (httpx `json=`) sends it: compact separators."""
    return json.dumps(fields, separators=(",", ":")).encode()


def message(to: object = "+33612345678", **fields: Any) -> bytes:
    """A message send."""
    return body(**{"from": "+14155550199", "to": to, "text": "hello", **fields})


def dial(to: object, **fields: Any) -> bytes:
    """A Call Control dial."""
    return body(**{"connection_id": "1494404757140276705", "from": "+14155550199",
                   "to": to, **fields})


def texml(to: str, **fields: Any) -> bytes:
    """A TeXML call, with Telnyx's (Twilio-style) capitalised field names."""
    return body(**{"ApplicationSid": "1494404757140276705", "From": "+14155550199",
                   "To": to, "Url": "https://app.example/texml.xml", **fields})


def locate(path: str, raw: bytes) -> tuple[Route, dict[str, str], Recipients | BodyError]:
    """Match a POST and locate its recipients."""
    found = match(ROUTES, "POST", path)
    assert found is not None, path
    route, params = found
    return route, params, route.locator.find(Message(raw))


def recipients(path: str, raw: bytes) -> Recipients:
    """The recipients of a well-formed request."""
    result = locate(path, raw)[2]
    assert isinstance(result, Recipients), result
    return result


def blocked(channel: Channel | None, raw: bytes, destination: str = "+33612345678",
            params: dict[str, str] | None = None) -> Blocked:
    """The context of a refused send."""
    return Blocked("req-1", channel, destination, params or {}, Message(raw), (destination,))


def sender_path(sender: str | None) -> str:
    """`/v2/messages` or its `/v2/messages/<sender>` variant."""
    return "/v2/messages" + (f"/{sender}" if sender else "")


def payload(reply: Reply) -> Any:
    """A reply's JSON body."""
    assert reply.content_type == "application/json"
    return json.loads(reply.body)


def sdk_answering(reply: Reply) -> Telnyx:
    """A Telnyx client whose transport answers every request with `reply` (no network).

    Strict response validation: the reply must fit the SDK's own response models.
    """
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(reply.status, content=reply.body,
                              headers={"Content-Type": reply.content_type})

    return Telnyx(api_key=API_KEY, base_url="http://telnyx.invalid/v2", max_retries=0,
                  http_client=httpx.Client(transport=httpx.MockTransport(answer)),
                  _strict_response_validation=True)


# ------------------------------------------------------------------------------ routes


def test_registered_under_its_name() -> None:
    """The registry holds this module's preset under `telnyx`."""
    assert PRESETS["telnyx"] is PRESET


@pytest.mark.parametrize(("method", "path", "channel", "params"), [
    ("POST", "/v2/messages", "sms", {}),
    ("POST", "/v2/messages/", "sms", {}),
    ("POST", "/V2/Messages", "sms", {}),
    ("POST", "//v2//messages//", "sms", {}),
    ("POST", "/v2/messages/long_code", "sms", {}),
    ("POST", "/v2/messages/long-code", "sms", {}),
    ("POST", "/v2/messages/short_code", "sms", {}),
    ("POST", "/v2/messages/number_pool", "sms", {}),
    ("POST", "/v2/messages/alphanumeric_sender_id", "sms", {}),
    ("POST", "/v2/messages/schedule", "sms", {}),
    ("POST", "/v2/messages/rcs", "sms", {}),
    ("POST", "/v2/messages/whatsapp", "sms", {}),
    ("POST", "/v2/messages/group_mms", "sms", {}),
    ("POST", "/v2/messages/Group-MMS/", "sms", {}),
    ("POST", "/v2/messages/%6Cong_code", "sms", {}),
    ("PUT", "/v2/messages", "sms", {}),
    ("POST", "/v2/profiles/../messages", REFUSED, None),
    ("POST", "/v2/messages%2Flong_code", REFUSED, None),
    ("POST", "/v2/calls", "voice", {}),
    ("POST", "/v2/calls/", "voice", {}),
    ("POST", "/V2/CALLS", "voice", {}),
    ("GET", "/v2/messages", PASSES, None),
    ("GET", "/v2/calls", PASSES, None),
    ("POST", "/v2/messages/40385f64-5717-4562-b3fc-2c963f66afa6", PASSES, None),
    ("POST", "/v2/messages/rcs/deeplinks/agent-1", PASSES, None),
    ("POST", "/v2/messages/long_code/extra", PASSES, None),
    ("POST", "/v2/messaging_profiles", PASSES, None),
    ("POST", "/v2/calls/v3:abc/actions/hangup", PASSES, None),
    ("POST", "/v1/messages", PASSES, None),
    ("POST", "/v2/calls/v3:abc/actions/transfer", "voice", {"call_control_id": "v3:abc"}),
    ("POST", "/v2/calls/v3:abc/Actions/Transfer/", "voice", {"call_control_id": "v3:abc"}),
    ("POST", "/v2/texml/Accounts/ACb1/Calls", "voice", {"account_sid": "ACb1"}),
    ("POST", "/v2/texml/accounts/ACb1/calls.json", "voice", {"account_sid": "ACb1"}),
    ("POST", "/v2/texml/calls/1494404757140276705", "voice",
     {"connection_id": "1494404757140276705"}),
    ("POST", "/v2/texml/Accounts/ACb1/Calls/CA1", "voice",
     {"account_sid": "ACb1", "call_sid": "CA1"}),
    ("POST", "/v2/texml/Accounts/ACb1/Conferences/CF1/Participants", "voice",
     {"account_sid": "ACb1", "conference_sid": "CF1"}),
    ("POST", "/v2/texml/ai_calls/1494404757140276705", "voice",
     {"connection_id": "1494404757140276705"}),
    ("POST", "/v2/verifications/sms", "sms", {}),
    ("POST", "/v2/verifications/whatsapp", "sms", {}),
    ("POST", "/v2/verifications/call", "voice", {}),
    ("POST", "/v2/verifications/flashcall", "voice", {}),
    ("POST", "/v2/verifications/by_phone_number/+33612345678/actions/verify", PASSES, None),
    ("GET", "/v2/texml/Accounts/ACb1/Calls", PASSES, None),
], ids=["messages", "messages-slash", "messages-case", "messages-doubled-slashes",
        "long-code", "long-code-hyphen", "short-code", "number-pool", "alphanumeric",
        "schedule", "rcs", "whatsapp", "group-mms", "group-mms-odd-spelling",
        "percent-encoded", "put-messages", "dot-dot", "encoded-slash", "calls", "calls-slash",
        "calls-case", "get-messages", "get-calls", "message-id", "rcs-deeplink",
        "variant-subpath", "profiles", "call-action", "v1", "transfer",
        "transfer-odd-spelling", "texml-account-call", "texml-account-call-json-suffix",
        "texml-connection-call", "texml-call-update", "texml-conference-participant",
        "texml-ai-call", "verify-sms", "verify-whatsapp", "verify-call", "verify-flashcall",
        "verify-code-check", "texml-list-calls"])
def test_routes(method: str, path: str, channel: str | None,
                params: dict[str, str] | None) -> None:
    """Every send endpoint is intercepted however it is spelled (or the spelling is
    refused); nothing else. Only real captures come back as parameters."""
    assert outcome(ROUTES, method, path) == channel
    if params is not None:
        found = match(ROUTES, method, path)
        assert found is not None
        assert found[1] == params


@pytest.mark.parametrize(("path", "quiet"), [
    ("/v2/number_orders", True), ("/v2/number_reservations/1", True),
    ("/v2/phone_numbers/123/voice", False), ("/v2/messages", False),
], ids=["number-order", "number-reservation", "number-voice-settings", "messages"])
def test_number_management_is_a_quiet_write(path: str, quiet: bool) -> None:
    """Ordering and reserving numbers sends nothing: those writes are not scanned. A
    number's voice settings can forward calls, so they are scanned."""
    assert any(p.match(canonical(path)) is not None for p in PRESET.quiet_writes) is quiet


# --------------------------------------------------------------------------- recipients


@pytest.mark.parametrize(("path", "raw", "expected"), [
    ("/v2/messages", message(), ("+33612345678",)),
    ("/v2/messages/long_code", message(type="SMS"), ("+33612345678",)),
    ("/v2/messages/number_pool",
     body(messaging_profile_id="4001", to="+33612345678", text="hi"), ("+33612345678",)),
    ("/v2/messages/alphanumeric_sender_id",
     body(**{"from": "ACME", "messaging_profile_id": "4001", "to": "+33612345678",
             "text": "hi"}), ("+33612345678",)),
    ("/v2/messages/schedule", message(send_at="2030-01-01T10:00:00Z"), ("+33612345678",)),
    ("/v2/messages/rcs", body(agent_id="agent-1", messaging_profile_id="4001",
                              to="+33612345678", agent_message={}), ("+33612345678",)),
    ("/v2/messages/whatsapp", message(whatsapp_message={"type": "text"}), ("+33612345678",)),
    ("/v2/messages/whatsapp", message(BSUID), (f"client:whatsapp-bsuid:{BSUID}",)),
    ("/v2/messages/group_mms", message(["+33612345678", "+14155550100", "+447700900123"]),
     ("+33612345678", "+14155550100", "+447700900123")),
    ("/v2/calls", dial("+33612345678"), ("+33612345678",)),
    ("/v2/calls", dial("+18004247767,ww200"), ("+18004247767,ww200",)),
    ("/v2/calls", dial(["+33612345678", "sip:alice@example.com;secure=true"]),
     ("+33612345678", "sip:alice@example.com;secure=true")),
    ("/v2/calls/v3:abc/actions/transfer", body(to="+33612345678,ww1"), ("+33612345678,ww1",)),
    ("/v2/texml/Accounts/ACb1/Calls", texml("+33612345678"), ("+33612345678",)),
    ("/v2/texml/calls/1494404757140276705", texml("+33612345678"), ("+33612345678",)),
], ids=["message", "long-code", "number-pool", "alphanumeric", "schedule", "rcs",
        "whatsapp-number", "whatsapp-user-id", "group-mms", "call", "call-dtmf-suffix",
        "call-array-with-sip", "transfer", "texml-account-call", "texml-connection-call"])
def test_recipients_found(path: str, raw: bytes, expected: tuple[str, ...]) -> None:
    """`to` as a string or an array, in order, as written (a dial string keeps its DTMF
    suffix: the number before it is what parse_destination checks)."""
    assert recipients(path, raw).values == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("+33612345678", ("phone", "+33612345678")),
    ("33612345678", ("invalid", None)),
    ("+33612345678,1w2", ("phone", "+33612345678")),
    ("+18004247767,ww200", ("phone", "+18004247767")),
    (",123", ("invalid", None)),
    ("sip:+33612345678@sip.telnyx.com", ("phone", "+33612345678")),
    ("sip:alice@example.com;secure=true", ("not_phone", None)),
    (whatsapp_recipient(BSUID), ("not_phone", None)),
    (whatsapp_recipient("+33612345678"), ("phone", "+33612345678")),
], ids=["e164", "digits-not-msisdn", "dtmf-with-pauses", "pauses-then-dtmf", "only-dtmf",
        "sip-number", "sip-user", "whatsapp-user-id", "whatsapp-number"])
def test_how_recipients_are_checked(raw: str, expected: tuple[str, str | None]) -> None:
    """Telnyx numbers are +E.164 (`msisdn` off); DTMF suffixes and user ids do not hide."""
    assert PRESET.msisdn is False
    found = parse_destination(raw, UPSTREAM.region or PRESET.default_region, PRESET.msisdn)
    assert (found.kind, found.e164) == expected


@pytest.mark.parametrize(("path", "raw", "code"), [
    ("/v2/messages", b"to=%2B33612345678", "invalid_json"),
    ("/v2/messages", b"\xff", "invalid_json"),
    ("/v2/messages", b"", "invalid_json"),
    ("/v2/messages", body(text="hi"), "missing_destination"),
    ("/v2/messages", message(""), "missing_destination"),
    ("/v2/messages", message(33612345678), "invalid_destination_field"),
    ("/v2/messages", message({"phone_number": "+33612345678"}), "invalid_destination_field"),
    ("/v2/messages", message(None), "invalid_destination_field"),
    ("/v2/messages/group_mms", message([]), "missing_destination"),
    ("/v2/messages/group_mms", message(["+33612345678", 7]), "invalid_destination_field"),
    ("/v2/messages/whatsapp", b"{", "invalid_json"),
    ("/v2/calls", dial([["+33612345678"]]), "invalid_destination_field"),
    ("/v2/calls", body(connection_id="1"), "missing_destination"),
    ("/v2/calls", b"[]", "missing_destination"),
    ("/v2/messages", b'{"to": "+33612345678", "To": 7}', "invalid_destination_field"),
], ids=["form-body", "not-utf8", "empty", "no-to", "empty-to", "to-number", "to-object",
        "to-null", "group-empty", "group-number-inside", "whatsapp-bad-json",
        "call-nested-array", "call-no-to", "array-document", "case-variant-not-a-string"])
def test_malformed_bodies(path: str, raw: bytes, code: str) -> None:
    """Unusable bodies are refused with a code, never forwarded unchecked."""
    result = locate(path, raw)[2]
    assert isinstance(result, BodyError)
    assert result.code == code


# --------------------------------------------------------------------------- rewriting


@pytest.mark.parametrize(("path", "raw", "drop", "expected"), [
    ("/v2/messages/group_mms",
     message(["+33612345678", "+14155550100", "+447700900123"], media_urls=["https://x/a.png"]),
     {"+14155550100"},
     b'{"from":"+14155550199","to":["+33612345678","+447700900123"],"text":"hello",'
     b'"media_urls":["https://x/a.png"]}'),
    ("/v2/messages/group_mms",
     message(["+33612345678", "+14155550100", "+33612345678"], text="h\u00e9llo \u2713"),
     {"+33612345678"},
     b'{"from":"+14155550199","to":["+14155550100"],"text":"h\\u00e9llo \\u2713"}'),
    ("/v2/calls", dial(["+33612345678", "sip:alice@example.com", "+14155550100"]),
     {"+33612345678"},
     b'{"connection_id":"1494404757140276705","from":"+14155550199",'
     b'"to":["sip:alice@example.com","+14155550100"]}'),
    ("/v2/calls", dial(["+33612345678,1", "+14155550100", "+33612345678"]),
     {"+33612345678,1", "+33612345678"},
     b'{"connection_id":"1494404757140276705","from":"+14155550199",'
     b'"to":["+14155550100"]}'),
], ids=["group-mms", "group-mms-duplicates-unicode", "call-array", "call-dtmf-and-plain"])
def test_partial_removal_rewrites_the_body(path: str, raw: bytes, drop: set[str],
                                           expected: bytes) -> None:
    """Blocked recipients (the raw values the proxy found blocked) leave the `to` array;
    every other byte is kept as sent (the SDK's compact spacing, `\\u` escapes)."""
    rewritten = recipients(path, raw).without(frozenset(drop))
    assert rewritten is not None
    assert rewritten.body == expected


@pytest.mark.parametrize(("path", "raw"), [
    ("/v2/messages", message()),
    ("/v2/messages/short_code", message()),
    ("/v2/messages/whatsapp", message()),
    ("/v2/calls", dial("+33612345678")),
    ("/v2/calls", dial("+33612345678,200")),
    ("/v2/messages/group_mms", b'{"to": ["+33612345678", "+14155550100"], '
                               b'"TO": ["+447700900123"]}'),
    ("/v2/calls", b'{"to": ["+33612345678", "+14155550100"], "to": "+447700900123"}'),
], ids=["message", "short-code", "whatsapp", "call", "call-dtmf", "group-to-in-two-cases",
        "call-to-duplicated"])
def test_single_blocked_recipient_cannot_be_rewritten(path: str, raw: bytes) -> None:
    """A lone `to` string cannot be dropped, nor a `to` servers could read two ways: the
    upstream's on_block applies."""
    assert recipients(path, raw).without(frozenset({"+33612345678", "+33612345678,200"})) \
        is None


def test_removal_of_nothing_blocked_keeps_every_recipient() -> None:
    """Dropping a number that is not there leaves the recipients as they were."""
    raw = message(["+33612345678", "+14155550100"])
    rewritten = recipients("/v2/messages/group_mms", raw).without(frozenset({"+15550000000"}))
    assert rewritten is not None
    assert json.loads(rewritten.body) == json.loads(raw)


# -------------------------------------------------------------------------- identities


@pytest.mark.parametrize(("headers", "expected"), [
    ({"Authorization": f"Bearer {API_KEY}"},
     ("sha256:" + hashlib.sha256(API_KEY.encode()).hexdigest(),)),
    ({"Authorization": f"bearer  {API_KEY} "},
     ("sha256:" + hashlib.sha256(API_KEY.encode()).hexdigest(),)),
    ({}, ()),
    ({"Authorization": "Bearer "}, ()),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, ()),
], ids=["bearer", "bearer-spacing", "none", "empty-token", "basic"])
def test_identities(headers: dict[str, str], expected: tuple[str, ...]) -> None:
    """Only the digest of the Bearer API key identifies the caller; never the key."""
    identities = PRESET.identities(Message(message(), "", headers), "/v2/messages")
    assert identities == expected
    assert all(API_KEY not in i for i in identities)


# ------------------------------------------------------------------------------ replies


def _send_message(client: Telnyx) -> Any:
    return client.messages.send(to="+33612345678", from_="+14155550199", text="hello")


def _dial(client: Telnyx) -> Any:
    return client.calls.dial(connection_id="1", from_="+14155550199", to="+33612345678")


@pytest.mark.parametrize(("channel", "send"), [
    ("sms", _send_message),
    ("voice", _dial),
], ids=["sms", "voice"])
def test_reject_is_telnyx_error_and_sdk_raises_unprocessable_entity(
        channel: Channel, send: Callable[[Telnyx], Any]) -> None:
    """Reject: 422 `{"errors": [...]}` code 40300; the SDK raises UnprocessableEntityError."""
    route = route_for(ROUTES, "POST", "/v2/messages" if channel == "sms" else "/v2/calls")
    reply = route.reject(blocked(channel, message()))
    assert reply.status == 422
    [error] = payload(reply)["errors"]
    assert error["code"] == "40300"
    assert error["title"] == "Destination blocked"
    assert "block rule" in error["detail"]
    assert error["source"] == {"pointer": "/to"}
    with pytest.raises(UnprocessableEntityError) as raised:
        send(sdk_answering(reply))
    assert raised.value.status_code == 422
    assert raised.value.body == payload(reply)


@pytest.mark.parametrize(("sender", "raw", "kind", "to"), [
    (None, message(), "SMS", ["+33612345678"]),
    (None, message(media_urls=["https://x/a.png"]), "MMS", ["+33612345678"]),
    ("long_code", message(type="MMS"), "MMS", ["+33612345678"]),
    ("whatsapp", message(BSUID), "WHATSAPP", [BSUID]),
    ("rcs", body(agent_id="a", to="+33612345678"), "RCS", ["+33612345678"]),
    ("Group-MMS", message(["+33612345678", "+33698765432"]), "MMS",
     ["+33612345678", "+33698765432"]),
    (None, b"not json", "SMS", ["+33612345678"]),
], ids=["sms", "media-is-mms", "type-from-body", "whatsapp", "rcs", "group-mms",
        "unreadable-body"])
def test_skip_message_is_a_message_that_was_not_sent(
        sender: str | None, raw: bytes, kind: str, to: list[str]) -> None:
    """Skip (sms): 200 message resource; every recipient `sending_failed`, block in errors."""
    reply = route_for(ROUTES, "POST", sender_path(sender)).skip(blocked("sms", raw))
    assert reply.status == 200
    data = payload(reply)["data"]
    assert data["record_type"] == "message"
    assert data["direction"] == "outbound"
    UUID(data["id"])
    assert data["type"] == kind
    assert data["to"] == [{"phone_number": t, "status": "sending_failed"} for t in to]
    assert [e["code"] for e in data["errors"]] == ["40300"]
    assert datetime.fromisoformat(data["received_at"]).tzinfo is not None


def test_skip_message_keeps_the_request_fields() -> None:
    """The skipped message echoes sender, text, profile and media as Telnyx does."""
    raw = message(messaging_profile_id="4001", media_urls=["https://x/a.png"], subject="S")
    data = payload(route_for(ROUTES, "POST", "/v2/messages").skip(blocked("sms", raw)))["data"]
    assert data["from"] == {"phone_number": "+14155550199"}
    assert data["text"] == "hello"
    assert data["subject"] == "S"
    assert data["messaging_profile_id"] == "4001"
    assert data["media"] == [{"url": "https://x/a.png"}]


def test_sdk_reads_the_skipped_message() -> None:
    """The SDK parses the skip into its message model (strict validation)."""
    reply = route_for(ROUTES, "POST", "/v2/messages").skip(blocked("sms", message()))
    sent = _send_message(sdk_answering(reply))
    assert sent.data is not None
    assert sent.data.id == payload(reply)["data"]["id"]
    assert sent.data.to is not None
    assert [(t.phone_number, t.status) for t in sent.data.to] == [
        ("+33612345678", "sending_failed")]
    assert sent.data.errors is not None
    assert sent.data.errors[0].code == "40300"


def test_skip_call_is_a_call_that_is_not_alive() -> None:
    """Skip (voice): 200 call resource, `is_alive: false`, fresh ids, client_state echoed."""
    reply = route_for(ROUTES, "POST", "/v2/calls").skip(
        blocked("voice", dial("+33612345678", client_state="aGk=")))
    assert reply.status == 200
    data = payload(reply)["data"]
    assert data["record_type"] == "call"
    assert data["is_alive"] is False
    assert data["call_control_id"].startswith("v3:")
    UUID(data["call_leg_id"])
    UUID(data["call_session_id"])
    assert data["client_state"] == "aGk="
    dialled_call = _dial(sdk_answering(reply))
    assert dialled_call.data is not None
    assert dialled_call.data.call_control_id == data["call_control_id"]
    assert dialled_call.data.is_alive is False


def test_skip_gives_each_send_its_own_ids() -> None:
    """Two skips never share an id."""
    send = route_for(ROUTES, "POST", "/v2/messages")
    dial_route = route_for(ROUTES, "POST", "/v2/calls")
    ids = {payload(send.skip(blocked("sms", message())))["data"]["id"] for _ in range(20)}
    calls = {payload(dial_route.skip(blocked("voice", dial("+33612345678"))))["data"][
        "call_control_id"] for _ in range(20)}
    assert len(ids) == len(calls) == 20


@pytest.mark.parametrize(("raw", "expected"), [
    (b"To=%2B33612345678&From=%2B14155550199", ("+33612345678",)),
    (b"To=%2B33612345678&Texml=%3CResponse%3E%3CDial%3E%2B14155550100%3C%2FDial%3E"
     b"%3C%2FResponse%3E", ("+33612345678", "+14155550100")),
], ids=["to", "to-and-inline-script"])
def test_texml_call_in_a_form_body_is_read(raw: bytes, expected: tuple[str, ...]) -> None:
    """TeXML also takes a form: its `To` and inline `Texml` targets are recipients."""
    assert recipients("/v2/texml/Accounts/ACb1/Calls", raw).values == expected


@pytest.mark.parametrize("raw", [
    b"From=%2B14155550199", body(From="+14155550199"), b"To=%2B1;x",
], ids=["form-without-To", "json-without-To", "ambiguous-form"])
def test_texml_call_without_a_readable_To_is_refused_not_forwarded(raw: bytes) -> None:
    """A TeXML call whose `To` cannot be read is malformed (refused), never passed on."""
    _, _, found = locate("/v2/texml/Accounts/ACb1/Calls", raw)
    assert isinstance(found, BodyError)


def test_texml_call_with_a_lower_case_to_is_checked_never_edited() -> None:
    """Some reader may take `to` for `To`: it is a recipient, and the call is decided whole."""
    found = recipients("/v2/texml/Accounts/ACb1/Calls", body(to="+33612345678"))
    assert found.values == ("+33612345678",)
    assert found.remover is None


def test_skip_transfer_is_the_command_result_the_sdk_reads() -> None:
    """Skip (transfer): 200 `{"data": {"result": "ok"}}`, as the SDK's model reads it."""
    route = route_for(ROUTES, "POST", "/v2/calls/v3:abc/actions/transfer")
    reply = route.skip(blocked("voice", body(to="+33612345678"),
                               params={"call_control_id": "v3:abc"}))
    assert payload(reply) == {"data": {"result": "ok"}}
    done = sdk_answering(reply).calls.actions.transfer("v3:abc", to="+33612345678")
    assert done.data is not None
    assert done.data.result == "ok"


def test_skip_texml_call_is_a_canceled_call_the_sdk_reads() -> None:
    """Skip (TeXML): 200 with From and To echoed and `status: canceled`."""
    route = route_for(ROUTES, "POST", "/v2/texml/Accounts/ACb1/Calls")
    reply = route.skip(blocked("voice", texml("+33612345678"), params={"account_sid": "ACb1"}))
    data = payload(reply)
    assert data["call_sid"].startswith("v3:")
    assert {k: data[k] for k in ("from", "to", "status")} == {
        "from": "+14155550199", "to": "+33612345678", "status": "canceled"}
    call = sdk_answering(reply).texml.accounts.calls.calls("ACb1", body=cast(Any, {
        "ApplicationSid": "1", "From": "+14155550199", "To": "+33612345678"}))
    assert (call.to, call.status) == ("+33612345678", "canceled")


def test_reject_texml_call_points_at_To() -> None:
    """Reject (TeXML): the error's pointer names the capitalised field."""
    route = route_for(ROUTES, "POST", "/v2/texml/calls/1")
    reply = route.reject(blocked("voice", texml("+33612345678"),
                                 params={"connection_id": "1"}))
    assert reply.status == 422
    assert payload(reply)["errors"][0]["source"] == {"pointer": "/To"}


def test_texml_call_checks_the_targets_of_an_inline_script() -> None:
    """A TeXML call's inline `Texml` dials too: its targets are recipients."""
    raw = texml("+33612345678", Texml="<Response><Dial>+14155550100</Dial></Response>")
    assert recipients("/v2/texml/calls/1", raw).values == ("+33612345678", "+14155550100")


# ------------------------------------------------------------------- unauthorized, refuse


def test_unauthorized_is_telnyx_authentication_error() -> None:
    """401 with Telnyx's `errors[]` (code 10009); the SDK raises AuthenticationError."""
    reply = PRESET.unauthorized("req-9")
    assert reply.status == 401
    assert payload(reply) == {"errors": [{"code": "10009", "title": "Authentication failed",
                                          "detail": "The API key is missing or invalid."}]}
    with pytest.raises(AuthenticationError):
        _send_message(sdk_answering(reply))


@pytest.mark.parametrize(("channel", "detail"), [
    (None, "Calls cannot be placed"), ("sms", "Messages cannot be sent"),
], ids=["scanned-write", "sms"])
def test_refuse_is_the_reject_shape(channel: Channel | None, detail: str) -> None:
    """A scanned unknown write is refused with the same 422 code 40300 as a blocked send."""
    reply = PRESET.refuse(blocked(channel, b"{}"))
    assert reply.status == 422
    [error] = payload(reply)["errors"]
    assert (error["code"], error["source"]) == ("40300", {"pointer": "/to"})
    assert error["detail"].startswith(detail)
    with pytest.raises(UnprocessableEntityError):
        _send_message(sdk_answering(reply))

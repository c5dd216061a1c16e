"""The `infobip` preset on recorded request shapes: routes, recipients, rewriting, replies."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any
from uuid import UUID

import pytest
from infobip_api_client.models.api_error import ApiError
from infobip_api_client.models.api_exception import ApiException as ApiExceptionModel
from infobip_api_client.models.calls_voice_response import CallsVoiceResponse
from infobip_api_client.models.sms_response import SmsResponse
from infobip_api_client.models.tfa_start_authentication_response import (
    TfaStartAuthenticationResponse,
)

from gatekeeper.config import UpstreamConfig
from gatekeeper.numbers import parse_destination
from gatekeeper.providers import PRESETS
from gatekeeper.providers.infobip import PRESET, REJECTED_STATUS
from gatekeeper.providers.preset import Blocked, BodyError, Message, Recipients, Route
from gatekeeper.replies import Reply
from gatekeeper.types import Channel
from tests.presets_helpers import PASSES, REFUSED, canonical, match, outcome, route_for

KEY = "infobip-api-key-not-real"
UPSTREAM = UpstreamConfig(name="infobip", url="https://xyz.api.infobip.com",
                          preset="infobip", mount="/infobip")
ROUTES = PRESET.routes(UPSTREAM)
A, B, C = "41793026727", "41793026728", "41793026729"


def body(**fields: Any) -> bytes:
    """A JSON body as the SDK sends it (`json.dumps`, default separators)."""
    return json.dumps(fields).encode()


def v3(*destinations: list[str]) -> bytes:
    """`/sms/3/messages` exactly as the SDK's `send_sms_messages` serialises it."""
    return body(messages=[{"sender": "InfoSMS", "destinations": [{"to": to} for to in tos],
                           "content": {"text": "hi"}} for tos in destinations])


def v2(*destinations: list[str]) -> bytes:
    """`/sms/2/text/advanced` as Infobip documents it (with a bulk id and message ids)."""
    return body(bulkId="bulk-1", messages=[
        {"destinations": [{"to": to, "messageId": f"m-{to}"} for to in tos],
         "from": "InfoSMS", "text": "hi"} for tos in destinations])


def find(method: str, path: str, raw: bytes, query: str = ""
         ) -> tuple[Route, dict[str, str], Recipients | BodyError]:
    """Match a request and locate its recipients."""
    found = match(ROUTES, method, path)
    assert found is not None, (method, path)
    route, params = found
    return route, params, route.locator.find(Message(raw, query, {}))


def recipients(method: str, path: str, raw: bytes, query: str = "") -> Recipients:
    """The recipients of a well-formed request."""
    result = find(method, path, raw, query)[2]
    assert isinstance(result, Recipients), result
    return result


def payload(reply: Reply) -> Any:
    """A reply's JSON body."""
    assert reply.content_type == "application/json"
    return json.loads(reply.body)


def blocked(channel: Channel | None, *destinations: str) -> Blocked:
    """The context of a refused send."""
    return Blocked("req-1", channel, destinations[0], {}, Message(b"{}"), destinations)


def reject(path: str, *destinations: str) -> Reply:
    """The reject of the route POST `path` matches."""
    route = route_for(ROUTES, "POST", path)
    return route.reject(blocked(route.channel, *destinations))


def skip(path: str, *destinations: str) -> Reply:
    """The skip of the route POST `path` matches."""
    route = route_for(ROUTES, "POST", path)
    return route.skip(blocked(route.channel, *destinations))


# ------------------------------------------------------------------------------ routes


def test_registered_under_its_name() -> None:
    """The registry holds this module's preset under `infobip`."""
    assert PRESETS["infobip"] is PRESET


@pytest.mark.parametrize(("method", "path", "channel"), [
    ("POST", "/sms/3/messages", "sms"),
    ("POST", "/sms/3/messages/", "sms"),
    ("POST", "/SMS/3/Messages", "sms"),
    ("POST", "//sms//3/messages", "sms"),
    ("POST", "/sms/3/%6Dessages", "sms"),
    ("PUT", "/sms/3/messages", "sms"),
    ("POST", "/sms/2/messages", "sms"),
    ("POST", "/sms/12/messages", "sms"),
    ("POST", "/sms/2/text/advanced", "sms"),
    ("POST", "/sms/2/binary/advanced", "sms"),
    ("POST", "/sms/1/text/advanced", "sms"),
    ("POST", "/sms/1/binary/advanced", "sms"),
    ("POST", "/sms/1/text/single", "sms"),
    ("POST", "/sms/2/text/single", "sms"),
    ("POST", "/sms/1/binary/single", "sms"),
    ("POST", "/sms/1/text/multi", "sms"),
    ("POST", "/sms/1/binary/multi", "sms"),
    ("GET", "/sms/1/text/query", "sms"),
    ("POST", "/sms/1/text/query", "sms"),
    ("POST", "/tts/3/single", "voice"),
    ("POST", "/tts/3/multi", "voice"),
    ("POST", "/tts/3/advanced", "voice"),
    ("POST", "/voice/ivr/1/messages", "voice"),
    ("POST", "/2fa/2/pin", "sms"),
    ("POST", "/2fa/2/pin/voice", "voice"),
    ("POST", "/calls/1/calls", "voice"),
    ("POST", "/sms/1/logs/../text/advanced", REFUSED),
    ("POST", "/sms/3%2Fmessages", REFUSED),
], ids=["v3", "v3-trailing-slash", "v3-mixed-case", "v3-doubled-slashes", "v3-percent",
        "v3-put", "v2-messages", "v12-messages", "v2-text", "v2-binary", "v1-text-advanced",
        "v1-binary-advanced", "v1-text-single", "v2-text-single", "v1-binary-single",
        "v1-text-multi", "v1-binary-multi", "query", "query-post", "tts-single", "tts-multi",
        "tts-advanced", "ivr-messages", "2fa-pin-sms", "2fa-pin-voice", "calls",
        "v1-dot-dot", "v3-encoded-slash"])
def test_routes_intercepted(method: str, path: str, channel: str) -> None:
    """Every send that takes numbers is intercepted, in every version and spelling (or the
    spelling is refused); no path parameters are captured."""
    assert outcome(ROUTES, method, path) == channel
    if channel != REFUSED:
        found = match(ROUTES, method, path)
        assert found is not None
        assert found[1] == {}


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/sms/3/messages"),
    ("GET", "/sms/3/reports"),
    ("GET", "/sms/3/logs"),
    ("GET", "/sms/1/inbox/reports"),
    ("POST", "/sms/1/preview"),
    ("PUT", "/sms/1/bulks"),
    ("PUT", "/sms/1/bulks/status"),
    ("POST", "/2fa/2/pin/ABC123/verify"),
    ("POST", "/2fa/2/pin/ABC123/resend"),
    ("POST", "/2fa/2/applications"),
    ("GET", "/tts/3/logs"),
], ids=["list", "reports", "logs", "inbox", "preview", "reschedule", "bulk-status",
        "2fa-verify", "2fa-resend", "2fa-application", "tts-logs"])
def test_routes_passed_through(method: str, path: str) -> None:
    """Reports, logs, previews and PIN checks send nothing to a new number."""
    assert outcome(ROUTES, method, path) == PASSES


# --------------------------------------------------------------------------- recipients


@pytest.mark.parametrize(("method", "path", "raw", "query", "expected"), [
    ("POST", "/sms/3/messages", v3([A, B]), "", (A, B)),
    ("POST", "/sms/3/messages", v3([A], [B, A]), "", (A, B, A)),
    ("POST", "/sms/2/text/advanced", v2([A, B], [C]), "", (A, B, C)),
    ("POST", "/sms/2/binary/advanced",
     body(messages=[{"binary": {"hex": "54 65"}, "destinations": [{"to": A}]}]), "", (A,)),
    ("POST", "/sms/1/text/single", body(**{"from": "InfoSMS"}, to=A, text="hi"), "", (A,)),
    ("POST", "/sms/1/text/single", body(**{"from": "InfoSMS"}, to=[A, B], text="hi"), "",
     (A, B)),
    ("POST", "/sms/1/text/multi", body(messages=[
        {"from": "InfoSMS", "to": A, "text": "hi"},
        {"from": "InfoSMS", "to": [B, C], "text": "hey"}]), "", (A, B, C)),
    ("GET", "/sms/1/text/query", b"", f"username=user&password=pass&to={A},{B}&text=hi",
     (A, B)),
    ("GET", "/sms/1/text/query", b"", f"username=user&to={A}&to={B}&text=hi", (A, B)),
    ("GET", "/sms/1/text/query", b"", f"username=user&to={A}%2C{B}&text=hi", (A, B)),
    ("POST", "/tts/3/single", body(text="hello", language="en", to=A,
                                   **{"from": "41793026700"}), "", (A,)),
    ("POST", "/tts/3/multi", body(messages=[{"text": "hi", "to": [A, B],
                                             "from": "41793026700"}]), "", (A, B)),
    ("POST", "/tts/3/advanced", body(messages=[{"text": "hi", "destinations": [{"to": A}],
                                                "from": "41793026700"}]), "", (A,)),
    ("POST", "/voice/ivr/1/messages", body(messages=[
        {"scenarioId": "S1", "from": "41793026700", "destinations": [{"to": A}, {"to": B}]}]),
     "", (A, B)),
    ("POST", "/2fa/2/pin", body(applicationId="HJ675435E3A6EA43432G5F37A635KJ8B",
                                messageId="0130269F44AFD07AEBC2FEFEB30398A0",
                                **{"from": "ServiceSMS"}, to=A), "", (A,)),
], ids=["v3", "v3-two-messages-duplicate", "v2", "v2-binary", "single-string",
        "single-array", "multi", "query-comma", "query-repeated", "query-encoded-comma",
        "tts-single", "tts-multi", "tts-advanced", "ivr", "2fa-pin"])
def test_recipients_found(method: str, path: str, raw: bytes, query: str,
                          expected: tuple[str, ...]) -> None:
    """Destinations are read where each endpoint keeps them, in order."""
    assert recipients(method, path, raw, query).values == expected


@pytest.mark.parametrize(("raw", "expected"), [
    (A, ("phone", "+41793026727")),
    ("+41793026727", ("phone", "+41793026727")),
    ("0041793026727", ("phone", "+41793026727")),
], ids=["msisdn", "e164", "msisdn-00"])
def test_infobip_numbers_are_international_without_plus(
        raw: str, expected: tuple[str, str | None]) -> None:
    """With the preset's `msisdn`, Infobip's digits-only numbers are international."""
    assert PRESET.msisdn is True
    found = parse_destination(raw, UPSTREAM.region or PRESET.default_region, PRESET.msisdn)
    assert (found.kind, found.e164) == expected


@pytest.mark.parametrize(("method", "path", "raw", "query", "code"), [
    ("POST", "/sms/3/messages", b"to=41793026727", "", "invalid_json"),
    ("POST", "/sms/3/messages", b"", "", "invalid_json"),
    ("POST", "/sms/3/messages", body(messages=[]), "", "missing_destination"),
    ("POST", "/sms/3/messages", body(messages=[{"destinations": []}]), "",
     "missing_destination"),
    ("POST", "/sms/3/messages", body(messages={"destinations": [{"to": A}]}), "",
     "invalid_destination_field"),
    ("POST", "/sms/3/messages", body(messages=[{"destinations": {"to": A}}]), "",
     "invalid_destination_field"),
    ("POST", "/sms/3/messages", body(messages=[{"destinations": [{"to": 41793026727}]}]),
     "", "invalid_destination_field"),
    ("POST", "/sms/2/text/advanced", body(messages=[{"destinations": [{"to": None}]}]), "",
     "invalid_destination_field"),
    ("POST", "/sms/1/text/single", body(text="hi"), "", "missing_destination"),
    ("POST", "/sms/1/text/multi", body(messages=[{"text": "hi"}]), "", "missing_destination"),
    ("GET", "/sms/1/text/query", b"", "username=user&text=hi", "missing_destination"),
    ("GET", "/sms/1/text/query", b"", "username=user&to=%FF&text=hi", "invalid_form"),
    ("POST", "/2fa/2/pin", body(applicationId="x", to=[[A]]), "",
     "invalid_destination_field"),
    ("GET", "/sms/1/text/query", b"", f"username=user&to={A};{B}", "ambiguous_request"),
], ids=["form-body", "empty", "no-messages", "no-destinations", "messages-object",
        "destinations-object", "to-number", "to-null", "single-no-to", "multi-no-to",
        "query-no-to", "query-not-utf8", "pin-nested-array",
        "query-raw-semicolon"])
def test_malformed_requests(method: str, path: str, raw: bytes, query: str, code: str
                            ) -> None:
    """Unusable requests are refused with a code, never forwarded unchecked."""
    result = find(method, path, raw, query)[2]
    assert isinstance(result, BodyError)
    assert result.code == code


# --------------------------------------------------------------------------- rewriting


@pytest.mark.parametrize(("path", "raw", "drop", "expected"), [
    ("/sms/3/messages", v3([A, B]), {A},
     {"messages": [{"sender": "InfoSMS", "destinations": [{"to": B}],
                    "content": {"text": "hi"}}]}),
    ("/sms/3/messages", v3([A], [B, C]), {A},
     {"messages": [{"sender": "InfoSMS", "destinations": [{"to": B}, {"to": C}],
                    "content": {"text": "hi"}}]}),
    ("/sms/3/messages", v3([A, B], [A, C]), {A},
     {"messages": [{"sender": "InfoSMS", "destinations": [{"to": B}],
                    "content": {"text": "hi"}},
                   {"sender": "InfoSMS", "destinations": [{"to": C}],
                    "content": {"text": "hi"}}]}),
    ("/sms/2/text/advanced", v2([A, B], [C]), {B, C},
     {"bulkId": "bulk-1", "messages": [
         {"destinations": [{"to": A, "messageId": f"m-{A}"}], "from": "InfoSMS",
          "text": "hi"}]}),
    ("/sms/1/text/single", body(**{"from": "InfoSMS"}, to=[A, B, A], text="hi"), {A},
     {"from": "InfoSMS", "to": [B], "text": "hi"}),
    ("/sms/1/text/multi", body(messages=[{"from": "S", "to": A, "text": "1"},
                                         {"from": "S", "to": [B, C], "text": "2"}]), {A, B},
     {"messages": [{"from": "S", "to": [C], "text": "2"}]}),
    ("/tts/3/multi", body(messages=[{"text": "hi", "to": [A, B]}]), {B},
     {"messages": [{"text": "hi", "to": [A]}]}),
    ("/voice/ivr/1/messages", body(messages=[{"scenarioId": "S1",
                                              "destinations": [{"to": A}, {"to": B}]}]), {A},
     {"messages": [{"scenarioId": "S1", "destinations": [{"to": B}]}]}),
], ids=["v3-one-destination", "v3-message-emptied-dropped", "v3-both-messages",
        "v2-keeps-bulk-and-ids", "single-array-with-duplicate", "multi-string-message-dropped",
        "tts-multi", "ivr"])
def test_blocked_destinations_removed(path: str, raw: bytes, drop: set[str],
                                      expected: dict[str, Any]) -> None:
    """Destinations go with their objects; a message left with none goes too. The rest of
    the body keeps its bytes as the SDK sent them."""
    rewritten = recipients("POST", path, raw).without(frozenset(drop))
    assert rewritten is not None
    assert json.loads(rewritten.body) == expected
    assert rewritten.body == json.dumps(expected).encode()


def test_query_send_loses_blocked_numbers_and_keeps_the_rest() -> None:
    """The query string is rewritten field by field; credentials, text and the kept part's
    separators stay as sent."""
    query = f"username=user&password=p%26ss&to={A},{B},{C}&text=Hello+world"
    rewritten = recipients("GET", "/sms/1/text/query", b"", query).without(frozenset({B}))
    assert rewritten is not None
    assert rewritten.query == f"username=user&password=p%26ss&to={A},{C}&text=Hello+world"
    assert rewritten.body == b""


@pytest.mark.parametrize(("raw", "query"), [
    (b"", f"username=user&to={A},{B}&to={C}"),
    (b"", f"username=user&to={A},{B}&TO={C}"),
    (b'{"messages": [{"destinations": [{"to": "41793026727"}, {"to": "41793026728"}], '
     b'"Destinations": [{"to": "41793026729"}]}]}', ""),
], ids=["query-to-repeated", "query-to-in-two-cases", "json-key-in-two-cases"])
def test_recipients_read_two_ways_are_never_edited(raw: bytes, query: str) -> None:
    """Every reading's recipients count; such a request is decided whole."""
    path = "/sms/1/text/query" if query else "/sms/3/messages"
    found = recipients("GET" if query else "POST", path, raw, query)
    assert set(found.values) == {A, B, C}
    assert found.without(frozenset({B})) is None


def test_lone_recipient_cannot_be_removed() -> None:
    """A string `to` cannot be emptied: the whole send falls to on_block."""
    found = recipients("POST", "/sms/1/text/single", body(to=A, text="hi"))
    assert found.without(frozenset({A})) is None


# --------------------------------------------------------------------------- identities


def digest(token: str) -> str:
    """What a token's identity looks like."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


@pytest.mark.parametrize(("headers", "query", "expected"), [
    ({"Authorization": f"App {KEY}"}, "", (digest(KEY),)),
    ({"Authorization": f"app {KEY}"}, "", (digest(KEY),)),
    ({"Authorization": "IBSSO sso-token"}, "", (digest("sso-token"),)),
    ({"Authorization": "Bearer oauth-token"}, "", (digest("oauth-token"),)),
    ({"Authorization": "Basic " + base64.b64encode(b"acme-user:secret").decode()}, "",
     ("acme-user",)),
    ({}, "username=acme-user&password=secret&to=41793026727", ("acme-user",)),
    ({}, "", ()),
], ids=["app-key", "app-lowercase", "ibsso", "bearer", "basic", "query-username", "none"])
def test_identities(headers: dict[str, str], query: str, expected: tuple[str, ...]) -> None:
    """Token digests and user names, never a key or password in clear."""
    found = PRESET.identities(Message(b"", query, headers), canonical("/sms/1/text/query"))
    assert found == expected
    assert KEY not in "".join(found)
    assert "secret" not in "".join(found)


# ------------------------------------------------------------------------------ replies


def test_reject_v3_is_the_api_error_the_sdk_parses() -> None:
    """`/sms/3` errors use Infobip's newer shape, which the SDK reads as ApiError."""
    reply = reject("/sms/3/messages", A)
    assert reply.status == 400
    error = ApiError.from_dict(payload(reply))
    assert error is not None
    assert error.error_code == "E400"
    assert error.violations[0].var_property == "messages[].destinations[].to"
    assert "block list" in (error.violations[0].violation or "")


@pytest.mark.parametrize("path", [
    "/sms/2/text/advanced", "/sms/1/text/single", "/sms/2/messages", "/tts/3/single",
    "/voice/ivr/1/messages", "/2fa/2/pin", "/2fa/2/pin/voice",
], ids=["sms-v2", "sms-v1", "sms-messages-before-v3", "voice", "ivr", "2fa", "2fa-voice"])
def test_reject_elsewhere_is_a_request_error(path: str) -> None:
    """Other endpoints get `requestError.serviceException` (the SDK's ApiException model)."""
    reply = reject(path, A)
    assert reply.status == 400
    error = ApiExceptionModel.from_dict(payload(reply))
    assert error is not None
    assert error.request_error is not None
    details = error.request_error.service_exception
    assert details is not None
    assert details.message_id == "BAD_REQUEST"
    assert "block list" in (details.text or "")


def test_skip_v3_rejects_every_destination() -> None:
    """A v3 skip is an SmsResponse whose destinations all carry the REJECTED status."""
    reply = skip("/sms/3/messages", B, A)
    assert reply.status == 200
    response = SmsResponse.from_dict(payload(reply))
    assert response is not None
    assert [m.destination for m in response.messages] == [B, A]
    for message in response.messages:
        assert message.status is not None
        assert message.status.group_id == 5
        assert message.status.group_name is not None
        assert message.status.group_name.value == "REJECTED"
        assert message.details is not None
        assert message.details.message_count == 0
        UUID(message.message_id)
    UUID(response.bulk_id)


def test_skip_v1_v2_uses_to_and_counts_no_sms() -> None:
    """Older SMS endpoints answer with `to` and `smsCount` per message."""
    data = payload(skip("/sms/2/text/advanced", A, B))
    assert [m["to"] for m in data["messages"]] == [A, B]
    assert all(m["status"] == REJECTED_STATUS and m["smsCount"] == 0
               for m in data["messages"])
    assert len({m["messageId"] for m in data["messages"]}) == 2


def test_skip_voice_is_a_calls_voice_response() -> None:
    """TTS and IVR skips parse as the SDK's CallsVoiceResponse, no SMS count."""
    data = payload(skip("/tts/3/advanced", A))
    assert "smsCount" not in data["messages"][0]
    response = CallsVoiceResponse.from_dict(data)
    assert response is not None
    assert response.messages is not None
    assert response.messages[0].to == A
    assert response.messages[0].status is not None
    assert response.messages[0].status.group_name == "REJECTED"


@pytest.mark.parametrize(("path", "field"), [("/2fa/2/pin", "sms_status"),
                                             ("/2fa/2/pin/voice", "call_status")],
                         ids=["sms", "voice"])
def test_skip_2fa_pin_says_not_sent(path: str, field: str) -> None:
    """A skipped PIN has an id and says the message was not sent."""
    reply = skip(path, A)
    response = TfaStartAuthenticationResponse.from_dict(payload(reply))
    assert response is not None
    assert response.to == A
    assert getattr(response, field) == "MESSAGE_NOT_SENT"
    assert response.pin_id
    assert len(response.pin_id) == 32


# ------------------------------------------------------------------------------ Calls API


@pytest.mark.parametrize(("endpoint", "expected"), [
    ({"type": "PHONE", "phoneNumber": "41792036727"}, ("41792036727",)),
    ({"type": "VIBER", "phoneNumber": "41792036727"}, ("41792036727",)),
    ({"type": "WEBRTC", "identity": "alice"}, ("client:webrtc",)),
    ({"type": "SIP", "username": "alice", "host": "sip.example.com"}, ("client:sip",)),
], ids=["phone", "viber", "webrtc", "sip"])
def test_calls_api_callee(endpoint: dict[str, str], expected: tuple[str, ...]) -> None:
    """The callee of a Calls API call: the number of a PHONE or VIBER endpoint; other
    endpoints have none and pass."""
    raw = body(endpoint=endpoint, **{"from": "41793026834", "callsConfigurationId": "c1"})
    assert recipients("POST", "/calls/1/calls", raw).values == expected


@pytest.mark.parametrize(("raw", "code"), [
    (body(callsConfigurationId="c1"), "missing_destination"),
    (body(endpoint={"type": "PHONE"}), "missing_destination"),
    (body(endpoint={"type": "PHONE", "phoneNumber": 41792036727}),
     "invalid_destination_field"),
    (b"endpoint=x", "invalid_json"),
], ids=["no-endpoint", "phone-without-number", "number-not-string", "form-body"])
def test_calls_api_unreadable_callee_is_refused(raw: bytes, code: str) -> None:
    """A call whose callee cannot be read is malformed, never forwarded unchecked."""
    found = find("POST", "/calls/1/calls", raw)[2]
    assert isinstance(found, BodyError)
    assert found.code == code


def test_calls_api_routes_and_replies() -> None:
    """Creating a call is a voice send (actions on it are not); reject is Infobip's
    error document, skip a call resource already CANCELLED."""
    assert outcome(ROUTES, "POST", "/calls/1/calls") == "voice"
    assert outcome(ROUTES, "POST", "/calls/1/calls/abc/hangup") == PASSES
    assert outcome(ROUTES, "GET", "/calls/1/calls") == PASSES
    refused = reject("/calls/1/calls", "41792036727")
    assert refused.status == 400
    assert payload(refused)["violations"][0]["property"] == "endpoint.phoneNumber"
    skipped = payload(skip("/calls/1/calls", "41792036727"))
    assert (skipped["state"], skipped["endpoint"]["phoneNumber"]) == ("CANCELLED",
                                                                      "41792036727")


def test_calls_api_reads_every_endpoint_and_number_spelling() -> None:
    """Duplicate or case-variant `endpoint` and `phoneNumber` keys all count."""
    raw = (b'{"endpoint": {"type": "PHONE", "phoneNumber": "41792036727", '
           b'"PhoneNumber": "41792036728"}, "Endpoint": {"type": "PHONE", '
           b'"phoneNumber": "41792036729"}}')
    assert recipients("POST", "/calls/1/calls", raw).values == (
        "41792036727", "41792036728", "41792036729")


# ------------------------------------------------------------------- unauthorized, refuse


@pytest.mark.parametrize(("reply", "status", "message_id"), [
    (PRESET.unauthorized("req-9"), 401, "UNAUTHORIZED"),
    (PRESET.refuse(blocked(None, A)), 400, "BAD_REQUEST"),
], ids=["unauthorized", "refuse"])
def test_unauthorized_and_refuse_are_request_errors(reply: Reply, status: int,
                                                    message_id: str) -> None:
    """401 and the scanned-write refusal use `requestError.serviceException`, which the
    SDK's ApiException model reads."""
    assert reply.status == status
    error = ApiExceptionModel.from_dict(payload(reply))
    assert error is not None
    assert error.request_error is not None
    details = error.request_error.service_exception
    assert details is not None
    assert details.message_id == message_id
    assert details.text


def test_query_api_posted_with_a_form_body_reads_the_body_too() -> None:
    """POST /sms/1/text/query with `to` in a form body: servers that merge query and form
    parameters read it, so it is a recipient (and the request is never edited)."""
    result = find("POST", "/sms/1/text/query", f"to={A}&text=hi".encode(), "username=user")[2]
    assert isinstance(result, Recipients)
    assert result.values == (A,)
    assert result.remover is None

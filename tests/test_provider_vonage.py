"""The `vonage` preset: routes, recipient extraction and rewriting, identities, replies."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, cast

import pytest
from vonage_messages.responses import SendMessageResponse
from vonage_sms.responses import SmsResponse
from vonage_voice.models.responses import CreateCallResponse

from gatekeeper.config import UpstreamConfig
from gatekeeper.numbers import parse_destination
from gatekeeper.providers import PRESETS
from gatekeeper.providers.preset import Blocked, BodyError, Message, Recipients, Route
from gatekeeper.providers.vonage import INBOUND_END_CALL, PRESET
from gatekeeper.replies import Reply
from gatekeeper.types import Channel
from tests.presets_helpers import PASSES, REFUSED, outcome, route_for

UPSTREAM = UpstreamConfig(name="vonage", url="https://api.nexmo.com", preset="vonage",
                          mount="/vonage")
ROUTES = PRESET.routes(UPSTREAM)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
A, B, C = "447700900000", "33612345678", "14155550100"
# Bodies as vonage 4.x sends them (captured from the SDK's own serialisation).
SMS_FORM = b"to=447700900000&from=AcmeInc&text=Hello+from+Acme"
SIGNED_FORM = (b"to=447700900000&from=AcmeInc&text=Hello+from+Acme"
               b"&sig=cb30cc6bdb28b4e3e11cc6061d2d5385&api_key=abcd1234&timestamp=1795290430")
MESSAGES_SMS = {"to": A, "from": "AcmeInc", "text": "Hi", "channel": "sms",
                "message_type": "text"}
CALL: dict[str, Any] = {
    "ncco": [{"text": "Hello", "action": "talk"}],
    "to": [{"number": A, "type": "phone"},
           {"uri": "sip:+33612345678@sip.example.com", "type": "sip"},
           {"uri": "wss://example.com/socket", "content-type": "audio/l16;rate=16000",
            "type": "websocket"},
           {"extension": "1234", "type": "vbc"}],
    "from": {"number": "447700900001", "type": "phone"}}


def _route(method: str, path: str) -> Route:
    return route_for(ROUTES, method, path)


def _find(method: str, path: str, body: bytes | dict[str, Any] | list[Any], query: str = "",
          headers: dict[str, str] | None = None) -> Recipients | BodyError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    default = FORM if isinstance(body, bytes) else JSON
    message = Message(raw, query, default if headers is None else headers)
    return _route(method, path).locator.find(message)


def _recipients(*args: Any, **kwargs: Any) -> Recipients:
    found = _find(*args, **kwargs)
    assert isinstance(found, Recipients), found
    return found


def _blocked(channel: Channel | None = "sms", destination: str = A, body: bytes = b""
             ) -> Blocked:
    return Blocked("req-1", channel, destination, {}, Message(body), (destination,))


def _reject(method: str, path: str, blocked: Blocked) -> Reply:
    """The reject of the route a request matches."""
    return _route(method, path).reject(blocked)


def _skip(method: str, path: str, blocked: Blocked) -> Reply:
    """The skip of the route a request matches."""
    return _route(method, path).skip(blocked)


def _json(reply: Reply) -> Any:
    return json.loads(reply.body)


# ------------------------------------------------------------------------------- routes


def test_preset_is_registered_as_msisdn_gateway() -> None:
    """The registry holds this preset; digits-only recipients are international."""
    assert PRESETS["vonage"] is PRESET
    assert PRESET.msisdn is True
    assert parse_destination(A, None, PRESET.msisdn).e164 == "+447700900000"


@pytest.mark.parametrize(("method", "path", "channel"), [
    ("POST", "/sms/json", "sms"),
    ("POST", "/sms/xml", "sms"),
    ("GET", "/sms/json", "sms"),
    ("POST", "/SMS/JSON/", "sms"),
    ("POST", "//sms//json", "sms"),
    ("POST", "/sms/%6Ason", "sms"),
    ("POST", "/sms", "sms"),
    ("POST", "/sc/us/alert/json", "sms"),
    ("GET", "/sc/us/2fa/xml", "sms"),
    ("POST", "/v1/messages", "sms"),
    ("POST", "/v1/Messages/", "sms"),
    ("POST", "/v0.1/messages", "sms"),
    ("POST", "/v0.1/dispatch", "sms"),
    # Verify v2 may call as well as text: decided on both channels.
    ("POST", "/v2/verify", None),
    ("POST", "/V2/Verify/", None),
    ("POST", "/v2/verify/c11236f4-00bf-4b89-84ba-88b25df97315", PASSES),
    ("POST", "/v2/verify/c11236f4-00bf-4b89-84ba-88b25df97315/next_workflow", PASSES),
    ("GET", "/v2/verify/c11236f4-00bf-4b89-84ba-88b25df97315", PASSES),
    ("POST", "/v1/calls", "voice"),
    ("POST", "/V1/CALLS/", "voice"),
    ("PUT", "/v1/calls/63f61863-4a51-4f6b-86e1-46edebcf9356", "voice"),
    # A PUT or PATCH on a POST send is checked like the POST.
    ("PUT", "/v1/messages", "sms"),
    ("PATCH", "/v1/calls", "voice"),
    ("PUT", "/sms/json", "sms"),
    ("GET", "/v1/calls", PASSES),
    ("GET", "/v1/calls/63f61863", PASSES),
    ("DELETE", "/v1/calls/63f61863", PASSES),
    ("POST", "/v1/calls/63f61863", PASSES),
    ("GET", "/v1/messages", PASSES),
    ("POST", "/sms/json/extra", PASSES),
    ("POST", "/conversions/sms", PASSES),
    ("POST", "/account/get-balance", PASSES),
    ("POST", "/number/buy", PASSES),
    ("POST", "/account/../sms/json", REFUSED),
    ("POST", "/sms%2Fjson", REFUSED),
], ids=str)
def test_route_matching(method: str, path: str, channel: str | None) -> None:
    """Every send endpoint (and its harmless spellings) is intercepted; spellings a server
    could read differently are refused; nothing else is a send."""
    assert outcome(ROUTES, method, path) == channel


def test_number_purchases_are_quiet_writes() -> None:
    """Buying or cancelling a number sends nothing: not scanned as a send. Updating one
    can forward its calls, so it is scanned."""
    assert [any(p.match(path) is not None for p in PRESET.quiet_writes)
            for path in ("/number/buy", "/number/cancel", "/number/update", "/sms/json")] == [
        True, True, False, False]


# --------------------------------------------------------------------------- legacy SMS


@pytest.mark.parametrize(("method", "body", "query", "headers", "expected"), [
    ("POST", SMS_FORM, "", FORM, (A,)),
    ("POST", SIGNED_FORM, "", FORM, (A,)),
    ("POST", json.dumps({"api_key": "k", "to": A, "text": "x"}).encode(), "", JSON, (A,)),
    ("POST", b'{"to": 447700900000, "text": "x"}', "", JSON, (A,)),
    ("POST", json.dumps({"to": A}).encode(), "", {"Content-Type": "application/json; "
                                                  "charset=utf-8"}, (A,)),
    ("GET", b"", f"api_key=k&api_secret=s&to={A}&from=Acme&text=hi", {}, (A,)),
    ("POST", b"from=Acme&text=hi", f"to={A}", FORM, (A,)),
    ("POST", f"to={B}&text=hi".encode(), f"to={A}", FORM, (A, B)),
    ("POST", json.dumps({"to": B}).encode(), f"to={A}", JSON, (A, B)),
    ("POST", json.dumps({"to": A}).encode(), "", {}, (A,)),
    ("POST", f"to={A}".encode(), "", {}, (A,)),
    ("POST", f"to={A}&to={B}".encode(), "", FORM, (A, B)),
    ("POST", f"to={A}&to={A}".encode(), "", FORM, (A, A)),
    ("POST", f"to=%2B{A}".encode(), "", FORM, (f"+{A}",)),
], ids=["sdk-form", "sdk-signed", "json", "json-number", "json-charset", "get-query",
        "post-to-in-query", "post-query-and-form", "post-query-and-json", "sniff-json",
        "sniff-form", "two-to", "duplicate", "plus-encoded"])
def test_legacy_sms_finds_to_in_query_and_body(method: str, body: bytes, query: str,
                                               headers: dict[str, str],
                                               expected: tuple[str, ...]) -> None:
    """`to` counts wherever Vonage reads it: query string, form body or JSON body."""
    assert _recipients(method, "/sms/json", body, query, headers).values == expected


@pytest.mark.parametrize(("body", "query", "headers", "code"), [
    (b"from=Acme&text=hi", "", FORM, "missing_destination"),
    (b"", "text=hi", {}, "missing_destination"),
    (b'{"text": "hi"}', "", JSON, "missing_destination"),
    (b'{"to": ', "", JSON, "invalid_json"),
    (b'{"to": {"number": "447700900000"}}', "", JSON, "invalid_destination_field"),
    (b"to", "", FORM, "missing_destination"),
    (b"to=%ff", "", FORM, "invalid_form"),
    (f"to={A};to={B}".encode(), "", FORM, "ambiguous_request"),
    (b"", f"to={A}&x=%zz", {}, "ambiguous_request"),
    (b"--x\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n33612345678\r\n--x--",
     f"to={A}", {"Content-Type": "multipart/form-data; boundary=x"}, "invalid_form"),
], ids=["no-to", "get-no-to", "json-no-to", "bad-json", "to-object", "field-without-eq",
        "bad-utf8", "raw-semicolon", "query-bad-escape", "multipart"])
def test_legacy_sms_bad_requests(body: bytes, query: str, headers: dict[str, str],
                                 code: str) -> None:
    """Unusable legacy SMS requests are refused with a code, never forwarded unchecked."""
    found = _find("POST", "/sms/json", body, query, headers)
    assert isinstance(found, BodyError)
    assert found.code == code


@pytest.mark.parametrize(("body", "query", "headers", "blocked", "expected"), [
    (json.dumps({"to": [A, B], "text": "hi"}).encode(), "x=%2F", JSON, {B},
     (json.dumps({"to": [A], "text": "hi"}).encode(), "x=%2F")),
    (f'{{"to":["{A}","{B}","{C}"],"text":"caf\\u00e9"}}'.encode(), "", JSON, {A, C},
     (f'{{"to":["{B}"],"text":"caf\\u00e9"}}'.encode(), "")),
], ids=["json-array", "json-array-compact-escapes-kept"])
def test_legacy_sms_partial_removal(body: bytes, query: str, headers: dict[str, str],
                                    blocked: set[str], expected: tuple[bytes, str]) -> None:
    """A blocked `to` is dropped where it sits; everything else keeps its bytes."""
    edited = _recipients("POST", "/sms/json", body, query, headers).without(
        frozenset(blocked))
    assert edited is not None
    assert (edited.body, edited.query) == expected


@pytest.mark.parametrize(("body", "query", "headers"), [
    (f"to={A}&to={B}&api_key=k&timestamp=1&sig=abcdef0123456789".encode(), "", FORM),
    (f"to={B}&text=hi".encode(), f"to={A}&sig=abcdef0123456789", FORM),
    (json.dumps({"to": [A, B], "sig": "abcdef0123456789"}).encode(), "", JSON),
    (b"", f"to={A}&to={B}&sig=abcdef0123456789", {}),
    (json.dumps({"to": B}).encode(), f"to={A}", JSON),
    (f"to={A}&to={B}&text=hi".encode(), "", FORM),
    (f"to={A}&TO={B}&text=hi".encode(), "", FORM),
    (f"from=Acme&to={B}&text=Hello+there".encode(), f"to={A}", FORM),
    (f"to={A}&text=caf%C3%A9".encode(), f"to={B}&x=%2F", FORM),
    (json.dumps({"to": [A, B], "text": "hi"}).encode(), f"to={A}", JSON),
    (b"", f"to={A}&to={B}", {}),
    (f'{{"to": ["{A}"], "to": ["{B}"]}}'.encode(), "", JSON),
], ids=["signed-form", "sig-in-query-form-body", "signed-json", "signed-get",
        "lone-json-to", "form-two-to", "form-to-in-two-cases", "form-body-and-query",
        "query-and-form-body", "json-array-and-query", "query-two-to", "json-duplicate-key"])
def test_legacy_sms_that_cannot_be_edited(body: bytes, query: str,
                                          headers: dict[str, str]) -> None:
    """Signed requests, a `to` named in both the query and the body, repeated or
    case-variant `to` fields (servers differ on which counts) are never rewritten:
    handled whole."""
    found = _recipients("POST", "/sms/json", body, query, headers)
    assert set(found.values) == {A, B}
    assert found.without(frozenset({B})) is None


def test_signature_rule_holds_on_every_route() -> None:
    """A `sig` anywhere makes any Vonage request uneditable, not only legacy SMS."""
    call = dict(CALL, sig="abcdef0123456789")
    found = _recipients("POST", "/v1/calls", call)
    assert found.without(frozenset({A})) is None
    found = _recipients("POST", "/v1/calls", CALL, query="sig=abcdef0123456789")
    assert found.without(frozenset({A})) is None
    found = _recipients("POST", "/v1/calls", CALL, query="junk&sig=abcdef0123456789")
    assert found.without(frozenset({A})) is None  # a malformed pair does not hide `sig`
    assert _recipients("POST", "/v1/calls", CALL).without(frozenset({A})) is not None


# ----------------------------------------------------------------------------- Messages


@pytest.mark.parametrize(("body", "expected"), [
    (MESSAGES_SMS, (A,)),
    ({"to": A, "from": "447700900001", "channel": "whatsapp", "text": "Hi",
      "message_type": "text"}, (A,)),
    ({"to": A, "from": "Acme", "channel": "viber_service", "text": "Hi",
      "message_type": "text"}, (A,)),
    ({"to": "0123456789", "from": "page", "channel": "messenger", "text": "Hi",
      "message_type": "text"}, ("client:messenger",)),
    ({"to": 447700900000, "channel": "sms", "text": "Hi"}, (A,)),
    (dict(MESSAGES_SMS, channel="whatsapp",
          failover=[dict(MESSAGES_SMS, to=B), dict(MESSAGES_SMS, to=C)]), (A, B, C)),
], ids=["sms", "whatsapp", "viber", "messenger", "number", "failover"])
def test_messages_recipients(body: dict[str, Any], expected: tuple[str, ...]) -> None:
    """`to` of the message and of each failover message; Messenger ids are not numbers."""
    assert _recipients("POST", "/v1/messages", body).values == expected
    for value in expected:
        kind = parse_destination(value, None, PRESET.msisdn).kind
        assert kind == ("not_phone" if value.startswith("client:") else "phone")


@pytest.mark.parametrize(("body", "code"), [
    (b"{", "invalid_json"),
    (b"[]", "missing_destination"),
    (json.dumps({"from": "A", "text": "x"}).encode(), "missing_destination"),
    (json.dumps({"to": {"type": "sms", "number": A}}).encode(), "invalid_destination_field"),
    (json.dumps({"to": None}).encode(), "invalid_destination_field"),
    (json.dumps(dict(MESSAGES_SMS, failover={"to": B})).encode(), "invalid_destination_field"),
    (json.dumps(dict(MESSAGES_SMS, failover=[B])).encode(), "invalid_destination_field"),
    (json.dumps(dict(MESSAGES_SMS, failover=[{"text": "x"}])).encode(),
     "missing_destination"),
], ids=["bad-json", "array", "no-to", "to-object", "to-null", "failover-object",
        "failover-string", "failover-no-to"])
def test_messages_bad_bodies(body: bytes, code: str) -> None:
    """Malformed Messages bodies get a code."""
    found = _find("POST", "/v1/messages", body, headers=JSON)
    assert isinstance(found, BodyError)
    assert found.code == code


@pytest.mark.parametrize(("blocked", "expected"), [
    ({B}, dict(MESSAGES_SMS, failover=[dict(MESSAGES_SMS, to=C)])),
    ({B, C}, MESSAGES_SMS),
    ({A}, None),
], ids=["one-failover", "every-failover", "primary"])
def test_messages_partial_removal(blocked: set[str], expected: dict[str, Any] | None) -> None:
    """Blocked failover messages are dropped; a blocked primary `to` cannot be removed."""
    body = dict(MESSAGES_SMS, failover=[dict(MESSAGES_SMS, to=B), dict(MESSAGES_SMS, to=C)])
    edited = _recipients("POST", "/v1/messages", body).without(frozenset(blocked))
    if expected is None:
        assert edited is None
    else:
        assert edited is not None
        assert edited.body == json.dumps(expected).encode()  # the body as sent, cut


@pytest.mark.parametrize(("path", "body", "expected"), [
    ("/v0.1/messages", {"from": {"type": "sms", "number": "Acme"},
                        "to": {"type": "sms", "number": A},
                        "message": {"content": {"type": "text", "text": "Hi"}}}, (A,)),
    ("/v0.1/messages", {"to": {"type": "messenger", "id": "0123456789"}},
     ("client:messenger",)),
    ("/v0.1/dispatch", {"template": "failover", "workflow": [
        {"to": {"type": "whatsapp", "number": A}, "message": {}},
        {"to": {"type": "sms", "number": B}, "message": {}}]}, (A, B)),
], ids=["v0.1-sms", "v0.1-messenger", "dispatch"])
def test_older_message_apis_are_checked_never_rewritten(
        path: str, body: dict[str, Any], expected: tuple[str, ...]) -> None:
    """The v0.1 Messages and Dispatch spellings are checked and handled whole."""
    found = _recipients("POST", path, body)
    assert found.values == expected
    assert found.without(frozenset({B})) is None


@pytest.mark.parametrize(("path", "body", "code"), [
    ("/v0.1/messages", {"to": {"type": "sms"}}, "invalid_destination_field"),
    ("/v0.1/messages", {"from": {"type": "sms", "number": A}}, "missing_destination"),
    ("/v0.1/dispatch", {"workflow": {"to": {"number": A}}}, "invalid_destination_field"),
], ids=["no-number", "no-to", "workflow-object"])
def test_older_message_apis_bad_bodies(path: str, body: dict[str, Any], code: str) -> None:
    """Unusable v0.1 bodies get a code."""
    found = _find("POST", path, body)
    assert isinstance(found, BodyError)
    assert found.code == code


# -------------------------------------------------------------------------------- Voice


def test_call_endpoints_from_the_sdk_body() -> None:
    """Phone numbers, SIP URIs, and non-phone endpoints as `client:<type>`."""
    found = _recipients("POST", "/v1/calls", CALL)
    assert found.values == (A, "sip:+33612345678@sip.example.com", "client:websocket",
                            "client:vbc")
    kinds = [parse_destination(v, None, PRESET.msisdn) for v in found.values]
    assert [(d.kind, d.e164) for d in kinds] == [
        ("phone", "+447700900000"), ("phone", "+33612345678"), ("not_phone", None),
        ("not_phone", None)]


@pytest.mark.parametrize(("to", "expected"), [
    ([{"type": "app", "user": "alice"}], ("client:app",)),
    ([{"type": "sip", "uri": "sip:alice@example.com"}], ("sip:alice@example.com",)),
    ([{"type": "PHONE", "number": A}], (A,)),
    ([{"number": A}], (A,)),
    ([{"type": "phone", "number": 447700900000}], (A,)),
    ({"type": "phone", "number": A}, (A,)),
    (A, (A,)),
    ([A], (A,)),
    ([{"type": "phone", "number": A}, {"type": "phone", "number": A}], (A, A)),
], ids=["app", "sip-user", "type-case", "no-type", "number-int", "lone-object",
        "string", "string-array", "duplicate"])
def test_call_to_shapes(to: object, expected: tuple[str, ...]) -> None:
    """Every shape `to` could take is read; anything carrying a number is checked."""
    assert _recipients("POST", "/v1/calls", {"to": to, "answer_url": ["u"]}).values == expected


def test_inline_ncco_connect_endpoints_are_recipients() -> None:
    """A connect action in the inline NCCO dials too, so its numbers are checked."""
    body = {"to": [{"type": "phone", "number": A}], "ncco": [
        {"action": "talk", "text": "Connecting"},
        {"action": "connect", "from": A, "endpoint": [{"type": "phone", "number": B}]},
        {"action": "connect", "endpoint": {"type": "app", "user": "bob"}}]}
    assert _recipients("POST", "/v1/calls", body).values == (A, B, "client:app")


@pytest.mark.parametrize(("body", "code"), [
    ({"answer_url": ["u"]}, "missing_destination"),
    ({"to": []}, "missing_destination"),
    ({"to": [{"type": "phone"}]}, "invalid_destination_field"),
    ({"to": [{"type": "sip"}]}, "invalid_destination_field"),
    ({"to": [{"user": "x"}]}, "invalid_destination_field"),
    ({"to": [None]}, "invalid_destination_field"),
    ({"to": [{"number": A}], "ncco": [{"action": "connect"}]}, "invalid_destination_field"),
    ([{"to": A}], "missing_destination"),
], ids=["no-to", "empty-to", "phone-no-number", "sip-no-uri", "no-type", "null",
        "connect-no-endpoint", "array-body"])
def test_call_bad_bodies(body: object, code: str) -> None:
    """Unusable call bodies get a code."""
    found = _find("POST", "/v1/calls", body)  # type: ignore[arg-type]
    assert isinstance(found, BodyError)
    assert found.code == code


@pytest.mark.parametrize(("body", "blocked", "expected"), [
    (CALL, {"sip:+33612345678@sip.example.com"}, dict(CALL, to=[
        CALL["to"][0], CALL["to"][2], CALL["to"][3]])),
    ({"to": [{"type": "phone", "number": A}, {"type": "phone", "number": B},
             {"type": "phone", "number": B}], "answer_url": ["u"]}, {B},
     {"to": [{"type": "phone", "number": A}], "answer_url": ["u"]}),
    ({"to": [{"type": "phone", "number": A}], "ncco": [
        {"action": "connect", "endpoint": [{"type": "phone", "number": B},
                                           {"type": "phone", "number": C}]}]}, {B},
     {"to": [{"type": "phone", "number": A}], "ncco": [
         {"action": "connect", "endpoint": [{"type": "phone", "number": C}]}]}),
    ({"to": [{"type": "phone", "number": A}], "ncco": [
        {"action": "talk", "text": "hi"},
        {"action": "connect", "endpoint": [{"type": "phone", "number": B}]}]}, {B},
     {"to": [{"type": "phone", "number": A}], "ncco": [{"action": "talk", "text": "hi"}]}),
    ({"to": [{"type": "phone", "number": A}], "ncco": [
        {"action": "talk", "text": "hi"},
        {"action": "connect", "endpoint": {"type": "phone", "number": B}}]}, {B},
     {"to": [{"type": "phone", "number": A}], "ncco": [{"action": "talk", "text": "hi"}]}),
    ({"to": [{"type": "phone", "number": A}, {"type": "app", "user": "x"}]}, {A},
     {"to": [{"type": "app", "user": "x"}]}),
    ({"to": [{"type": "phone", "number": A}, {"type": "phone", "number": C}], "ncco": [
        {"action": "connect", "endpoint": [{"type": "phone", "number": B}]}]}, {A, C}, None),
    ({"to": [{"type": "phone", "number": A}], "ncco": [
        {"action": "connect", "endpoint": [{"type": "phone", "number": B}]}]}, {B}, None),
    ({"to": [{"type": "phone", "number": A}, {"type": "phone", "number": C}],
      "ncco": [{"action": "connect", "endpoint": [{"type": "phone", "number": A}]}]},
     {A}, None),
], ids=["sip-endpoint", "duplicates", "one-connect-endpoint", "connect-action-dropped",
        "lone-connect-endpoint", "app-endpoint-left", "every-to-blocked", "ncco-emptied",
        "connect-and-to-same-number-ncco-emptied"])
def test_call_partial_removal(body: dict[str, Any], blocked: set[str],
                              expected: dict[str, Any] | None) -> None:
    """Blocked endpoints are removed; a call left with nobody or nothing to do is not."""
    edited = _recipients("POST", "/v1/calls", body).without(frozenset(blocked))
    if expected is None:
        assert edited is None
    else:
        assert edited is not None
        assert edited.body == json.dumps(expected).encode()  # the body as sent, cut


@pytest.mark.parametrize(("body", "expected"), [
    (b'{"action": "hangup"}', ()),
    (b'{"action": "mute"}', ()),
    (b"", ()),
    (json.dumps({"action": "transfer", "destination": {"type": "ncco", "url": ["u"]}})
     .encode(), ()),
    (json.dumps({"action": "transfer", "destination": {"type": "ncco", "ncco": [
        {"action": "connect", "endpoint": [{"type": "phone", "number": B},
                                           {"type": "phone", "number": C}]}]}}).encode(),
     (B, C)),
], ids=["hangup", "mute", "empty", "transfer-url", "transfer-ncco"])
def test_call_update_recipients(body: bytes, expected: tuple[str, ...]) -> None:
    """Only a transfer to an inline NCCO dials anyone; other updates pass unchecked."""
    path = "/v1/calls/63f61863-4a51-4f6b-86e1-46edebcf9356"
    assert _recipients("PUT", path, body, headers=JSON).values == expected


def test_call_transfer_partial_removal() -> None:
    """A transfer loses its blocked connect endpoints and keeps the others."""
    body = {"action": "transfer", "destination": {"type": "ncco", "ncco": [
        {"action": "connect", "endpoint": [{"type": "phone", "number": B},
                                           {"type": "phone", "number": C}]}]}}
    found = _recipients("PUT", "/v1/calls/u1", body)
    edited = found.without(frozenset({B}))
    assert edited is not None
    assert json.loads(edited.body)["destination"]["ncco"][0]["endpoint"] == [
        {"type": "phone", "number": C}]


# --------------------------------------------------------------------------- identities


def _jwt(claims: dict[str, Any]) -> str:
    def part(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


APP_ID = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
TOKEN = _jwt({"application_id": APP_ID, "iat": 1, "jti": "x"})


@pytest.mark.parametrize(("body", "query", "headers", "expected"), [
    (SIGNED_FORM, "", FORM, ("abcd1234",)),
    (b'{"api_key": "k1", "to": "1"}', "", JSON, ("k1",)),
    (b"", "api_key=k2&to=1", {}, ("k2",)),
    (SMS_FORM, "", {**FORM, "Authorization": "Basic "
                    + base64.b64encode(b"abcd1234:secret").decode()}, ("abcd1234",)),
    (b"api_key=abcd1234", "", {"Authorization": "Basic "
                                + base64.b64encode(b"abcd1234:secret").decode()},
     ("abcd1234",)),
    (b"{}", "", {"Authorization": f"Bearer {TOKEN}"},
     (APP_ID, "sha256:" + hashlib.sha256(TOKEN.encode()).hexdigest())),
    (b"{}", "", {"Authorization": "Bearer opaque-token"},
     ("sha256:" + hashlib.sha256(b"opaque-token").hexdigest(),)),
    (b"{}", "", {"Authorization": "Bearer a.!!!.c"},
     ("sha256:" + hashlib.sha256(b"a.!!!.c").hexdigest(),)),
    (SMS_FORM, "", FORM, ()),
], ids=["form-api-key", "json-api-key", "query-api-key", "basic", "deduplicated",
        "jwt", "opaque-bearer", "broken-jwt", "none"])
def test_identities(body: bytes, query: str, headers: dict[str, str],
                    expected: tuple[str, ...]) -> None:
    """api_key anywhere, the Basic user, a JWT's application id and its digest."""
    assert PRESET.identities(Message(body, query, headers), "/sms/json") == expected


# ------------------------------------------------------------------------------ replies


def test_legacy_sms_reject_is_number_barred() -> None:
    """Status 7 in the SMS API's own shape; the SDK turns it into SmsError."""
    reply = _reject("POST", "/sms/json", _blocked())
    assert (reply.status, reply.content_type) == (200, "application/json")
    assert _json(reply) == {"message-count": "1", "messages": [
        {"to": A, "status": "7", "error-text": "Number barred."}]}


def test_legacy_sms_reject_in_xml_for_the_xml_path() -> None:
    """`/sms/xml` gets the XML shape of the same answer."""
    reply = _reject("POST", "/sms/xml", _blocked(destination="44<7"))
    assert reply.content_type == "text/xml"
    assert b"<status>7</status><errorText>Number barred.</errorText>" in reply.body
    assert b"<to>44&lt;7</to>" in reply.body


@pytest.mark.parametrize("path", ["/sms/json", "/sms", "/sc/us/alert/json"],
                         ids=["json", "bare-sms-path", "short-code"])
def test_legacy_sms_skip_is_a_success(path: str) -> None:
    """Skip: status "0" with a message id, accepted by the SDK's response model."""
    reply = _skip("POST", path, _blocked())
    parsed = SmsResponse(**_json(reply))
    assert reply.status == 200
    assert parsed.messages[0].status == "0"
    assert parsed.messages[0].to == A
    assert parsed.messages[0].message_id


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/v1/messages"), ("POST", "/v0.1/messages"), ("POST", "/v1/calls"),
    ("PUT", "/v1/calls/u1"), ("POST", "/v0.1/dispatch"), ("POST", "/v2/verify"),
], ids=["messages", "messages-v0.1", "calls", "transfer", "dispatch", "verify"])
def test_reject_is_a_problem_document(method: str, path: str) -> None:
    """Messages, Voice and Verify v2 refusals: 403 problem+json (the SDK raises
    ForbiddenError)."""
    route = _route(method, path)
    reply = route.reject(_blocked(route.channel))
    assert (reply.status, reply.content_type) == (403, "application/problem+json")
    problem = _json(reply)
    assert set(problem) == {"type", "title", "detail", "instance"}
    assert problem["instance"] == "req-1"


def test_messages_skip() -> None:
    """Messages skip: 202 with a message UUID (and a workflow id with failover)."""
    reply = _skip("POST", "/v1/messages", _blocked(body=json.dumps(MESSAGES_SMS).encode()))
    assert reply.status == 202
    assert SendMessageResponse(**_json(reply)).workflow_id is None
    body = json.dumps(dict(MESSAGES_SMS, failover=[MESSAGES_SMS])).encode()
    assert SendMessageResponse(**_json(_skip("POST", "/v1/messages", _blocked(body=body)))
                               ).workflow_id


def test_call_skips() -> None:
    """Voice skip: 201 started call (create), 204 (transfer), 202 dispatch."""
    reply = _skip("POST", "/v1/calls", _blocked("voice"))
    created = CreateCallResponse(**_json(reply))
    assert (reply.status, created.status, created.direction) == (201, "started", "outbound")
    assert created.conversation_uuid.startswith("CON-")
    assert _skip("PUT", "/v1/calls/u1", _blocked("voice")) == Reply(204, b"")
    dispatch = _skip("POST", "/v0.1/dispatch", _blocked())
    assert dispatch.status == 202
    assert "dispatch_uuid" in _json(dispatch)


def test_inbound_end_call_is_a_valid_ending_ncco() -> None:
    """A blocked inbound caller gets an NCCO whose only action is a short talk."""
    assert (INBOUND_END_CALL.status, INBOUND_END_CALL.content_type) == (200,
                                                                        "application/json")
    ncco = json.loads(INBOUND_END_CALL.body)
    assert [action["action"] for action in ncco] == ["talk"]
    assert ncco[0]["text"]


# ------------------------------------------------------------------------------- Verify

VERIFY = {"brand": "Acme", "workflow": [
    {"channel": "sms", "to": A},
    {"channel": "whatsapp", "to": B, "from": "447700900001"},
    {"channel": "email", "to": "alice@example.com"},
    {"channel": "voice", "to": C},
]}


def test_verify_workflow_numbers_are_checked_and_emails_pass() -> None:
    """Every step's `to` is a recipient; an email step's address is not a phone number."""
    found = _recipients("POST", "/v2/verify", VERIFY)
    assert found.values == (A, B, "client:email:alice@example.com", C)
    assert [parse_destination(v, None, PRESET.msisdn).kind for v in found.values] == [
        "phone", "phone", "not_phone", "phone"]


def test_verify_sdk_body_is_read() -> None:
    """The body the Vonage SDK sends for Verify v2 is read as sent."""
    from vonage_verify import SmsChannel, VerifyRequest, VoiceChannel  # noqa: PLC0415

    request = VerifyRequest(brand="Acme", workflow=[SmsChannel(to=A), VoiceChannel(to=C)])
    body = request.model_dump(by_alias=True, exclude_none=True)
    assert _recipients("POST", "/v2/verify", body).values == (A, C)


@pytest.mark.parametrize(("blocked", "steps"), [
    ({A}, [B, "alice@example.com", C]),
    ({A, C}, [B, "alice@example.com"]),
], ids=["first-step", "two-steps"])
def test_verify_blocked_steps_are_dropped(blocked: set[str], steps: list[str]) -> None:
    """A blocked number's steps leave the workflow; the other steps stay in order."""
    edited = _recipients("POST", "/v2/verify", VERIFY).without(frozenset(blocked))
    assert edited is not None
    assert [step["to"] for step in json.loads(edited.body)["workflow"]] == steps


def test_verify_signed_request_is_never_edited() -> None:
    """A `sig` makes Verify uneditable too."""
    found = _recipients("POST", "/v2/verify", VERIFY, query="sig=abcdef0123456789")
    assert found.without(frozenset({A})) is None


@pytest.mark.parametrize(("body", "code"), [
    ({"brand": "Acme"}, "missing_destination"),
    ({"brand": "Acme", "workflow": {"channel": "sms", "to": A}}, "invalid_destination_field"),
    ({"brand": "Acme", "workflow": [{"channel": "sms", "to": 447700900000}]},
     "invalid_destination_field"),
], ids=["no-workflow", "workflow-not-array", "number-not-string"])
def test_verify_bad_bodies(body: dict[str, Any], code: str) -> None:
    """A Verify request whose recipients cannot be read is refused, never forwarded."""
    found = _find("POST", "/v2/verify", body)
    assert isinstance(found, BodyError)
    assert found.code == code


def test_verify_skip_and_reject() -> None:
    """Skip: 202 with a fresh request id the SDK reads; reject: 403 problem document."""
    from vonage_verify.responses import StartVerificationResponse  # noqa: PLC0415

    reply = _skip("POST", "/v2/verify", _blocked(None))
    assert reply.status == 202
    started = StartVerificationResponse(**_json(reply))
    assert started.request_id
    assert started.request_id != _json(_skip("POST", "/v2/verify", _blocked(None)))[
        "request_id"]
    refused = _reject("POST", "/v2/verify", _blocked(None))
    assert (refused.status, refused.content_type) == (403, "application/problem+json")


# ------------------------------------------------------------------------ legacy Verify


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/verify/json"), ("GET", "/verify/json"), ("POST", "/Verify/XML"),
    ("POST", "/verify/psd2/json"),
])
def test_legacy_verify_routes_read_number(method: str, path: str) -> None:
    """Legacy Verify and PSD2 requests are sends to `number`, query or body."""
    assert outcome(ROUTES, method, path) is None  # an SMS, then calls: either channel
    assert _recipients(method, path, b"number=447700900000&brand=Acme",
                       headers=FORM).values == (A,)
    assert _recipients(method, path, b"", query=f"number={A}&brand=Acme").values == (A,)


@pytest.mark.parametrize("path", [
    "/verify/check/json", "/verify/control/json", "/verify/search/json",
], ids=["check", "control", "search"])
def test_legacy_verify_follow_ups_pass(path: str) -> None:
    """Checking a code, cancelling or searching sends nothing to a number."""
    assert outcome(ROUTES, "POST", path) == PASSES


def test_legacy_verify_replies_are_read_by_the_sdk() -> None:
    """Reject: status 7, the SDK raises VerifyError; skip: status 0 with a request id."""
    from vonage_verify_legacy.errors import VerifyError  # noqa: PLC0415
    from vonage_verify_legacy.responses import StartVerificationResponse  # noqa: PLC0415
    from vonage_verify_legacy.verify_legacy import VerifyLegacy  # noqa: PLC0415

    refused = _json(_reject("POST", "/verify/json", _blocked()))
    assert refused["status"] == "7"
    with pytest.raises(VerifyError):
        VerifyLegacy._check_for_error(cast(Any, None), refused)
    started = StartVerificationResponse(**_json(_skip("POST", "/verify/psd2/json", _blocked())))
    assert started.status == "0"
    assert len(started.request_id) == 32
    xml = _reject("POST", "/verify/xml", _blocked())
    assert xml.content_type == "text/xml"
    assert b"<status>7</status>" in xml.body


# ------------------------------------------------------------------- unauthorized, refuse


@pytest.mark.parametrize(("reply", "status", "payload"), [
    (PRESET.unauthorized("req-9"), 401,
     {"type": "https://developer.vonage.com/api-errors#unauthorized", "title": "Unauthorized",
      "detail": "You did not provide correct credentials.", "instance": "req-9"}),
    (PRESET.refuse(_blocked(None)), 403,
     {"type": "https://developer.vonage.com/api-errors#forbidden", "title": "Forbidden",
      "detail": "The destination is on a block list; the request was not sent.",
      "instance": "req-1"}),
], ids=["unauthorized", "refuse"])
def test_unauthorized_and_refuse_are_problem_documents(reply: Reply, status: int,
                                                       payload: dict[str, str]) -> None:
    """401 and the scanned-write refusal are problem+json, as the Vonage SDKs read them."""
    assert (reply.status, reply.content_type) == (status, "application/problem+json")
    assert _json(reply) == payload

"""Gateway presets: intercepted routes, recipient locators and replies (pure, no server)."""

from __future__ import annotations

import json
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.base.version import Version
from twilio.http.response import Response
from twilio.rest import Client
from twilio.rest.api.v2010.account.call import CallInstance
from twilio.rest.api.v2010.account.message import MessageInstance

from gatekeeper import config
from gatekeeper.config import DestinationField, RouteConfig, UpstreamConfig
from gatekeeper.providers import PRESETS, generic, twilio
from gatekeeper.providers.base import (
    Blocked,
    BodyError,
    FormField,
    JsonPath,
    Reply,
    match_route,
    normalise_path,
)

SID = "AC" + "0" * 32
BASE = f"/2010-04-01/Accounts/{SID}"
TWILIO_UPSTREAM = UpstreamConfig(name="twilio", url="https://api.twilio.com",
                                 preset="twilio", mount="/twilio")
TWILIO_ROUTES = twilio.PRESET.routes(TWILIO_UPSTREAM)


def _json(reply: Reply) -> Any:
    return json.loads(reply.body)


# --------------------------------------------------------------------------- registry


def test_registry_names_match_the_configurable_presets() -> None:
    """Every preset config accepts is registered, and nothing else."""
    assert sorted(PRESETS) == sorted(config.PRESETS)


@pytest.mark.parametrize("name", config.PRESETS)
def test_registered_preset_carries_its_own_name(name: str) -> None:
    """The registry key is the preset's `name`."""
    assert PRESETS[name].name == name


# ------------------------------------------------------------------------ path matching


@pytest.mark.parametrize(("raw", "expected"), [
    ("", "/"),
    ("/", "/"),
    ("/a/b", "/a/b"),
    ("/a/b/", "/a/b"),
    ("//a///b//", "/a/b"),
    ("/a/%62", "/a/b"),
    ("/a%2Fb", "/a/b"),
    ("/a/./b", "/a/b"),
    ("/a/x/../b", "/a/b"),
    ("/a/x/%2E%2E/b", "/a/b"),
    ("/a/x/%2e%2e/b", "/a/b"),
    ("/a/b/.", "/a/b"),
    ("/a/b/..", "/a"),
    ("/../../a", "/a"),
    ("/a/...", "/a/..."),
], ids=["empty", "root", "plain", "trailing-slash", "doubled-slashes", "percent-char",
        "percent-slash", "dot", "dot-dot", "encoded-dot-dot", "encoded-dot-dot-lower",
        "trailing-dot", "trailing-dot-dot", "dot-dot-above-root", "three-dots-literal"])
def test_normalise_path(raw: str, expected: str) -> None:
    """Paths are decoded, slashes collapsed, dot segments resolved, trailing slash dropped."""
    assert normalise_path(raw) == expected


TWILIO_CASES: list[tuple[str, str, str, str | None]] = [
    # (id, method, path, channel or None when not intercepted)
    ("messages-json", "POST", f"{BASE}/Messages.json", "sms"),
    ("calls-json", "POST", f"{BASE}/Calls.json", "voice"),
    ("messages-xml", "POST", f"{BASE}/Messages.xml", "sms"),
    ("calls-xml", "POST", f"{BASE}/Calls.xml", "voice"),
    ("messages-no-ext", "POST", f"{BASE}/Messages", "sms"),
    ("calls-no-ext", "POST", f"{BASE}/Calls", "voice"),
    ("sms-messages-json", "POST", f"{BASE}/SMS/Messages.json", "sms"),
    ("sms-messages-no-ext", "POST", f"{BASE}/SMS/Messages", "sms"),
    ("sms-messages-xml", "POST", f"{BASE}/SMS/Messages.xml", "sms"),
    ("lower-case", "POST", f"/2010-04-01/accounts/{SID}/messages.json", "sms"),
    ("upper-case", "POST", f"/2010-04-01/ACCOUNTS/{SID}/CALLS.JSON", "voice"),
    ("mixed-case-ext", "POST", f"{BASE}/Messages.Json", "sms"),
    ("lower-sms-prefix", "POST", f"{BASE}/sms/messages.json", "sms"),
    ("trailing-slash", "POST", f"{BASE}/Messages.json/", "sms"),
    ("doubled-slashes", "POST", f"//2010-04-01//Accounts//{SID}//Calls.json", "voice"),
    ("percent-letter", "POST", f"{BASE}/%4Dessages.json", "sms"),
    ("percent-dot", "POST", f"{BASE}/Calls%2Ejson", "voice"),
    ("percent-slash", "POST", f"/2010-04-01/Accounts/{SID}%2FMessages.json", "sms"),
    ("all-percent", "POST", "".join(f"%{b:02X}" for b in f"{BASE}/Messages.json".encode()),
     "sms"),
    ("dot-segment", "POST", f"{BASE}/./Messages.json", "sms"),
    ("dot-dot-segment", "POST", f"{BASE}/Usage/../Messages.json", "sms"),
    ("encoded-dot-dot", "POST", f"{BASE}/Usage/%2E%2E/Calls.json", "voice"),
    ("dot-dot-between-resources", "POST", f"{BASE}/Calls/../Messages.json", "sms"),
    ("dot-dot-above-root", "POST", f"/../..{BASE}/Messages.json", "sms"),
    # Not sends: reads, other resources, other methods, other versions.
    ("get-messages", "GET", f"{BASE}/Messages.json", None),
    ("get-calls", "GET", f"{BASE}/Calls.json", None),
    ("delete-messages", "DELETE", f"{BASE}/Messages.json", None),
    ("put-calls", "PUT", f"{BASE}/Calls.json", None),
    ("update-message", "POST", f"{BASE}/Messages/SM1.json", None),
    ("get-message", "GET", f"{BASE}/Messages/SM1.json", None),
    ("update-call", "POST", f"{BASE}/Calls/CA1.json", None),
    ("message-media", "POST", f"{BASE}/Messages/SM1/Media.json", None),
    ("account", "POST", f"{BASE}.json", None),
    ("other-resource", "POST", f"{BASE}/IncomingPhoneNumbers.json", None),
    ("other-version", "POST", f"/2008-08-01/Accounts/{SID}/SMS/Messages.json", None),
    ("no-account", "POST", "/2010-04-01/Accounts/Messages.json", None),
    ("other-extension", "POST", f"{BASE}/Messages.csv", None),
    ("suffix-in-name", "POST", f"{BASE}/MessagesX.json", None),
    ("dot-dot-away", "POST", f"{BASE}/Messages.json/..", None),
    ("root", "POST", "/", None),
]


@pytest.mark.parametrize(("method", "path", "channel"), [c[1:] for c in TWILIO_CASES],
                         ids=[c[0] for c in TWILIO_CASES])
def test_twilio_routes(method: str, path: str, channel: str | None) -> None:
    """Sends are intercepted however the path is spelt; anything else passes through."""
    found = match_route(TWILIO_ROUTES, method, path)
    if channel is None:
        assert found is None
    else:
        assert found is not None
        route, params = found
        assert route.channel == channel
        assert params == {"account_sid": SID}
        assert route.locator == FormField("To")


def test_twilio_route_names_the_account_the_path_resolves_to() -> None:
    """`..` leaving one account's folder is matched as the account it lands in."""
    found = match_route(TWILIO_ROUTES, "POST", f"{BASE}/Messages/../../ACother/Calls.json")
    assert found is not None
    assert found[0].channel == "voice"
    assert found[1] == {"account_sid": "ACother"}


@pytest.mark.parametrize(("pattern", "path", "groups"), [
    ("/v1/sms", "/v1/sms", {}),
    ("/v1/sms", "/v1/sms/x", None),
    ("/v1/sms", "/v1/smsx", None),
    ("/v1/sms", "/v1", None),
    ("/v1/sms", "/x/v1/sms", None),
    ("/v1/sms/", "/v1/sms", {}),
    ("/", "/", {}),
    ("/v1/{account}/call", "/v1/acme/call", {"account": "acme"}),
    ("/v1/{account}/call", "/v1/a/b/call", None),
    ("/v1/{account}/call", "/v1//call", None),
    ("/v1/{account}/call", "/v1/call", None),
    ("/v1/*/send", "/v1/anything/send", {}),
    ("/v1/*/send", "/v1/a/b/send", None),
    ("/v1/*/send", "/v1//send", None),
    ("/v1/{a}/x/{b}", "/v1/one/x/two", {"a": "one", "b": "two"}),
    ("/v1/{id}.json", "/v1/42.json", {"id": "42"}),
    ("/v1/{id}.json", "/v1/42xjson", None),
    ("/v1/a.b", "/v1/aXb", None),
    ("/v1/sms+mms", "/v1/sms+mms", {}),
    ("/v1/sms+mms", "/v1/smssmsmms", None),
    ("/v1/{bad-name}", "/v1/{bad-name}", {}),
    ("/v1/{bad-name}", "/v1/x", None),
], ids=["literal", "literal-longer", "literal-suffix", "literal-shorter", "literal-prefixed",
        "pattern-trailing-slash", "root", "param", "param-two-segments", "param-empty",
        "param-missing", "star", "star-two-segments", "star-empty", "two-params",
        "param-with-ext", "ext-dot-is-literal", "dot-is-literal", "plus-is-literal",
        "plus-not-quantifier", "invalid-param-name-literal", "invalid-param-name-no-match"])
def test_compile_path(pattern: str, path: str, groups: dict[str, str] | None) -> None:
    """`{name}` and `*` match exactly one segment; everything else is literal."""
    found = generic.compile_path(pattern).match(path)
    if groups is None:
        assert found is None
    else:
        assert found is not None
        assert found.groupdict() == groups


GENERIC_UPSTREAM = UpstreamConfig(
    name="gw", url="https://gw.example", preset="generic", mount="/gw",
    routes=(
        RouteConfig("POST", "/v1/sms", "sms", DestinationField("json", "messages[].to")),
        RouteConfig("POST", "/v1/{account}/call", "voice", DestinationField("form", "to")),
        RouteConfig("PUT", "/v2/{account}/*/send", "sms", DestinationField("json", "to")),
    ),
)
GENERIC_ROUTES = generic.PRESET.routes(GENERIC_UPSTREAM)


@pytest.mark.parametrize(("method", "path", "index", "params"), [
    ("POST", "/v1/sms", 0, {}),
    ("POST", "/v1/sms/", 0, {}),
    ("POST", "//v1//sms", 0, {}),
    ("POST", "/v1/%73ms", 0, {}),
    ("POST", "/v1/x/../sms", 0, {}),
    ("POST", "/v1/acme/call", 1, {"account": "acme"}),
    ("POST", "/v1/%61cme/call/", 1, {"account": "acme"}),
    ("PUT", "/v2/acme/eu/send", 2, {"account": "acme"}),
    ("GET", "/v1/sms", None, None),
    ("PUT", "/v1/sms", None, None),
    ("POST", "/v1/acme/call/x", None, None),
    ("POST", "/v2/acme/send", None, None),
], ids=["exact", "trailing-slash", "doubled-slashes", "percent", "dot-dot", "param",
        "param-percent-trailing", "param-and-star", "wrong-method", "other-method",
        "longer-path", "star-missing"])
def test_generic_routes_match_with_named_groups(method: str, path: str, index: int | None,
                                                params: dict[str, str] | None) -> None:
    """Configured routes match on method and normalised path; named groups come back."""
    found = match_route(GENERIC_ROUTES, method, path)
    if index is None:
        assert found is None
    else:
        assert found == (GENERIC_ROUTES[index], params)


def test_generic_routes_follow_config() -> None:
    """Each configured route keeps its method, channel and locator kind."""
    assert [(r.method, r.channel, r.locator) for r in GENERIC_ROUTES] == [
        ("POST", "sms", JsonPath("messages[].to")),
        ("POST", "voice", FormField("to")),
        ("PUT", "sms", JsonPath("to")),
    ]


# ----------------------------------------------------------------------------- locators

TWILIO_FORM = b"To=%2B14155550100&From=%2B15005550006&Body=Hello+there%21"


@pytest.mark.parametrize(("body", "expected"), [
    (TWILIO_FORM, ["+14155550100"]),
    (b"To=%2B14155550100&To=%2B33612345678", ["+14155550100", "+33612345678"]),
    (b"To=%2B1&From=x&To=%2B2&To=%2B3", ["+1", "+2", "+3"]),
    (b"To=&To=%2B14155550100", ["+14155550100"]),
    (b"To=%20%20&To=%2B14155550100", ["+14155550100"]),
    (b"To=%2B14155550100&", ["+14155550100"]),
    (b"&&To=%2B14155550100&&Body=x&&", ["+14155550100"]),
    (b"To=whatsapp%3A%2B14155550100", ["whatsapp:+14155550100"]),
    (b"To=%2B1+415+555+0100", ["+1 415 555 0100"]),
    (b"To=+14155550100", [" 14155550100"]),
    ("To=%2B14155550100&Body=caf\u00e9".encode(), ["+14155550100"]),
], ids=["twilio-send", "repeated-field", "interleaved", "blank-ignored",
        "whitespace-ignored", "trailing-amp", "empty-segments", "channel-address",
        "plus-means-space", "raw-plus-is-space", "utf8-elsewhere"])
def test_form_field_finds_every_occurrence(body: bytes, expected: list[str]) -> None:
    """Every non-blank occurrence of the field is a recipient, decoded as a form."""
    assert FormField("To").find(body) == expected


@pytest.mark.parametrize(("body", "code"), [
    (b"", "missing_destination"),
    (b"&", "missing_destination"),
    (b"From=%2B15005550006&Body=hi", "missing_destination"),
    (b"To=", "missing_destination"),
    (b"To=%20&To=", "missing_destination"),
    (b"Too=%2B1&XTo=%2B1", "missing_destination"),
    (b"To=\xff\xfe", "invalid_form"),
    (b"To=%FF", "invalid_form"),
    (b"Body=%C3&To=%2B1", "invalid_form"),
    (b"To", "invalid_form"),
    (b"To=%2B14155550100&junk", "invalid_form"),
    (b"\x80", "invalid_form"),
], ids=["empty", "only-amp", "missing", "blank", "all-blank", "similar-names",
        "raw-invalid-utf8", "encoded-invalid-utf8", "truncated-utf8-elsewhere",
        "no-equals", "trailing-no-equals", "lone-continuation-byte"])
def test_form_field_body_errors(body: bytes, code: str) -> None:
    """Unusable form bodies give a BodyError with a client-facing code, never raise."""
    found = FormField("To").find(body)
    assert isinstance(found, BodyError)
    assert found.code == code
    assert found.message


INFOBIP = {"messages": [
    {"destinations": [{"to": "+41793026727"}, {"to": "+41793026728", "messageId": "m2"}],
     "from": "InfoSMS", "text": "first"},
    {"destinations": [{"to": "+33612345678"}], "text": "second"},
]}
PRELUDE = {"target": {"type": "phone_number", "value": "+30123456789"},
           "template_id": "template_01hynrv4bmf1sbxvwn4gmb4tey"}


@pytest.mark.parametrize(("path", "doc", "expected"), [
    ("to", {"to": "+14155550100"}, ["+14155550100"]),
    ("to", {"to": ["+14155550100", "+33612345678"]}, ["+14155550100", "+33612345678"]),
    ("to", {"to": ["+14155550100", "", "  "]}, ["+14155550100"]),
    ("to", {"to": "+14155550100", "cc": "+33612345678"}, ["+14155550100"]),
    ("messages[].destinations[].to", INFOBIP, ["+41793026727", "+41793026728",
                                               "+33612345678"]),
    ("messages[].destinations[].to",
     {"messages": [{"text": "no destinations"}, {"destinations": [{"to": "+1"}]}]}, ["+1"]),
    ("messages[].destinations[].to",
     {"messages": [{"destinations": [{"to": ["+1", "+2"]}]}]}, ["+1", "+2"]),
    ("target.value", PRELUDE, ["+30123456789"]),
    ("messages[].to", {"messages": [{"to": "+1"}, {"to": ["+2", "+3"]}]}, ["+1", "+2", "+3"]),
    ("to[]", {"to": ["+1", "+2"]}, ["+1", "+2"]),
], ids=["string", "list", "blanks-ignored", "other-keys-ignored", "infobip",
        "infobip-message-without-destinations", "infobip-list-leaf", "prelude",
        "array-then-string-or-list", "explicit-array-leaf"])
def test_json_path_finds_recipients(path: str, doc: object, expected: list[str]) -> None:
    """A dotted path with `[]` collects every string recipient at its leaves, in order."""
    assert JsonPath(path).find(json.dumps(doc).encode()) == expected


@pytest.mark.parametrize(("path", "body", "code"), [
    ("to", b"", "invalid_json"),
    ("to", b"To=%2B14155550100", "invalid_json"),
    ("to", b'{"to": "+1"', "invalid_json"),
    ("to", b'{"to": "\xff"}', "invalid_json"),
    ("to", b"[" * 100_000, "invalid_json"),
    ("to", b'{"to":' * 100_000, "invalid_json"),
    ("to", b"{}", "missing_destination"),
    ("to", b'{"To": "+1"}', "missing_destination"),
    ("to", b'{"to": ""}', "missing_destination"),
    ("to", b'{"to": []}', "missing_destination"),
    ("to", b'["+1"]', "missing_destination"),
    ("to", b'"+1"', "missing_destination"),
    ("target.value", b'{"target": "+1"}', "missing_destination"),
    ("target.value", b'{"target": {"type": "phone_number"}}', "missing_destination"),
    ("messages[].destinations[].to", b'{"messages": []}', "missing_destination"),
    ("messages[].destinations[].to", b'{"messages": [{"destinations": []}]}',
     "missing_destination"),
    ("to", b'{"to": 14155550100}', "invalid_destination_field"),
    ("to", b'{"to": null}', "invalid_destination_field"),
    ("to", b'{"to": true}', "invalid_destination_field"),
    ("to", b'{"to": {"number": "+1"}}', "invalid_destination_field"),
    ("to", b'{"to": ["+1", 2]}', "invalid_destination_field"),
    ("to", b'{"to": [["+1"]]}', "invalid_destination_field"),
    ("target.value", b'{"target": {"value": 306912345678}}', "invalid_destination_field"),
    ("messages[].to", b'{"messages": {"to": "+1"}}', "invalid_destination_field"),
    ("messages[].destinations[].to", b'{"messages": [{"destinations": {"to": "+1"}}]}',
     "invalid_destination_field"),
    ("messages[].destinations[].to", b'{"messages": "+1"}', "invalid_destination_field"),
], ids=["empty", "form-body", "truncated", "invalid-utf8", "deep-array-nesting",
        "deep-object-nesting", "empty-object", "key-case-differs", "blank", "empty-list",
        "top-level-array", "top-level-string", "parent-is-string", "leaf-missing",
        "no-messages", "no-destinations", "number", "null", "bool", "object",
        "list-with-number", "nested-list", "prelude-number", "array-step-on-object",
        "inner-array-step-on-object", "array-step-on-string"])
def test_json_path_body_errors(path: str, body: bytes, code: str) -> None:
    """Unusable JSON bodies give a BodyError with a client-facing code, never raise."""
    found = JsonPath(path).find(body)
    assert isinstance(found, BodyError)
    assert found.code == code
    assert found.message


# ------------------------------------------------------------------------------ replies


def _blocked(channel: config.Channel, **extra: Any) -> Blocked:
    return Blocked(request_id="req-1", channel=channel, destination="+33612345678", **extra)


def _twilio_version() -> Version:
    return Client(SID, "token").api.v2010


def test_twilio_reject_is_twilio_error_shape() -> None:
    """Twilio reject: 403 JSON with numeric code 21610, message, more_info and status."""
    reply = twilio.PRESET.reject(_blocked("sms"))
    assert reply.status == 403
    assert reply.content_type == "application/json"
    payload = _json(reply)
    assert set(payload) == {"code", "message", "more_info", "status"}
    assert payload["code"] == 21610
    assert isinstance(payload["code"], int)
    assert payload["status"] == 403
    assert isinstance(payload["message"], str)
    assert payload["message"]
    assert payload["more_info"] == "https://www.twilio.com/docs/errors/21610"


@pytest.mark.parametrize("channel", ["sms", "voice"])
def test_twilio_sdk_raises_its_rest_exception_for_reject(channel: config.Channel) -> None:
    """The Twilio SDK turns the reject into TwilioRestException with code 21610."""
    reply = twilio.PRESET.reject(_blocked(channel))
    exc = Version.exception("POST", f"{BASE}/Messages.json",
                            Response(reply.status, reply.body.decode()),
                            "Unable to create record")
    assert isinstance(exc, TwilioRestException)
    assert exc.code == 21610
    assert exc.status == 403
    assert "blocked" in exc.msg


@pytest.mark.parametrize(("channel", "prefix", "kind"), [
    ("sms", "SM", "Messages"),
    ("voice", "CA", "Calls"),
], ids=["sms", "voice"])
def test_twilio_skip_is_a_canceled_resource(channel: config.Channel, prefix: str,
                                            kind: str) -> None:
    """Twilio skip: 201 with a message (SM...) or call (CA...) resource, status canceled."""
    blocked = _blocked(channel, path_params={"account_sid": SID},
                       fields={"From": "+15005550006", "Body": "Hello"})
    reply = twilio.PRESET.skip(blocked)
    assert reply.status == 201
    assert reply.content_type == "application/json"
    payload = _json(reply)
    sid = payload["sid"]
    assert sid.startswith(prefix)
    assert len(sid) == 34
    assert set(sid[2:]) <= set("0123456789abcdef")
    assert payload["account_sid"] == SID
    assert payload["to"] == "+33612345678"
    assert payload["from"] == "+15005550006"
    assert payload["status"] == "canceled"
    assert payload["direction"] == "outbound-api"
    assert payload["api_version"] == "2010-04-01"
    assert payload["uri"] == f"/2010-04-01/Accounts/{SID}/{kind}/{sid}.json"
    assert parsedate_to_datetime(payload["date_created"]).tzinfo is not None
    assert payload["date_updated"] == payload["date_created"]
    if channel == "sms":
        assert payload["body"] == "Hello"
        assert payload["num_segments"] == "0"
    else:
        assert "body" not in payload


def test_twilio_skip_sms_parses_as_sdk_message() -> None:
    """The SDK reads the skipped message as a MessageInstance."""
    reply = twilio.PRESET.skip(_blocked("sms", path_params={"account_sid": SID},
                                        fields={"From": "+15005550006", "Body": "Hi"}))
    message = MessageInstance(_twilio_version(), _json(reply), account_sid=SID)
    assert message.sid is not None
    assert message.sid.startswith("SM")
    assert message.status == MessageInstance.Status.CANCELED
    assert message.to == "+33612345678"
    assert message.from_ == "+15005550006"
    assert message.body == "Hi"
    assert isinstance(message.date_created, datetime)
    assert message.error_code is None


def test_twilio_skip_call_parses_as_sdk_call() -> None:
    """The SDK reads the skipped call as a CallInstance."""
    reply = twilio.PRESET.skip(_blocked("voice", path_params={"account_sid": SID},
                                        fields={"From": "+15005550006"}))
    call = CallInstance(_twilio_version(), _json(reply), account_sid=SID)
    assert call.sid is not None
    assert call.sid.startswith("CA")
    assert call.status == "canceled"
    assert call.to == "+33612345678"
    assert isinstance(call.date_created, datetime)


def test_twilio_skip_gives_each_send_its_own_sid() -> None:
    """Two skips never share a sid."""
    sids = {_json(twilio.PRESET.skip(_blocked("sms")))["sid"] for _ in range(20)}
    assert len(sids) == 20


def test_twilio_skip_without_form_fields() -> None:
    """Missing From/Body/account do not break the skip reply."""
    payload = _json(twilio.PRESET.skip(_blocked("sms")))
    assert payload["from"] is None
    assert payload["body"] == ""
    assert payload["account_sid"] == ""


@pytest.mark.parametrize("channel", ["sms", "voice"])
def test_generic_reject_is_gatekeeper_error(channel: config.Channel) -> None:
    """Generic reject: 403 {code, message, type, request_id}."""
    reply = generic.PRESET.reject(_blocked(channel))
    assert reply.status == 403
    assert reply.content_type == "application/json"
    payload = _json(reply)
    assert set(payload) == {"code", "message", "type", "request_id"}
    assert payload["code"] == "destination_blocked"
    assert payload["type"] == "forbidden"
    assert payload["request_id"] == "req-1"
    assert isinstance(payload["message"], str)
    assert payload["message"]


@pytest.mark.parametrize("channel", ["sms", "voice"])
def test_generic_skip_is_a_success(channel: config.Channel) -> None:
    """Generic skip: 200 JSON naming the request and the skip."""
    reply = generic.PRESET.skip(_blocked(channel))
    assert reply.status == 200
    assert reply.content_type == "application/json"
    assert _json(reply) == {"id": "req-1", "status": "skipped"}

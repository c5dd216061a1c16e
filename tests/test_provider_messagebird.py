"""The `messagebird` preset on recorded request shapes: routes, recipients, rewriting,
replies."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from messagebird.call import Call
from messagebird.message import Message as SdkMessage
from messagebird.mms import MMS
from messagebird.serde import json_serialize
from messagebird.verify import Verify
from messagebird.voicemessage import VoiceMessage

from gatekeeper.config import UpstreamConfig
from gatekeeper.numbers import parse_destination
from gatekeeper.providers import PRESETS
from gatekeeper.providers.messagebird import PRESET, is_json
from gatekeeper.providers.preset import Blocked, BodyError, Message, Recipients, Route
from gatekeeper.replies import Reply
from gatekeeper.types import Channel
from tests.presets_helpers import PASSES, REFUSED, canonical, match, outcome, route_for

KEY = "live-access-key-not-real"
UPSTREAM = UpstreamConfig(name="messagebird", url="https://rest.messagebird.com",
                          preset="messagebird", mount="/messagebird")
ROUTES = PRESET.routes(UPSTREAM)
A, B, C = "31612345678", "31612345679", "31612345670"
GROUP = "61afc0531573b08ddbe36e1c85602827"
JSON = {"Content-Type": "application/json; charset=UTF-8"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def sdk_body(**fields: Any) -> bytes:
    """A body exactly as the SDK's HttpClient serialises it."""
    return bytes(json_serialize(fields))


def find(path: str, raw: bytes, headers: dict[str, str]
         ) -> tuple[Route, dict[str, str], Recipients | BodyError]:
    """Match a POST and locate its recipients."""
    found = match(ROUTES, "POST", path)
    assert found is not None, path
    route, params = found
    return route, params, route.locator.find(Message(raw, "", headers))


def recipients(path: str, raw: bytes, headers: dict[str, str]) -> Recipients:
    """The recipients of a well-formed request."""
    result = find(path, raw, headers)[2]
    assert isinstance(result, Recipients), result
    return result


def payload(reply: Reply) -> Any:
    """A reply's JSON body."""
    assert reply.content_type == "application/json"
    return json.loads(reply.body)


def blocked(channel: Channel | None, raw: bytes, *destinations: str,
            headers: dict[str, str] | None = None) -> Blocked:
    """The context of a refused send."""
    return Blocked("req-1", channel, destinations[0], {},
                   Message(raw, "", JSON if headers is None else headers), destinations)


def send(resource: str) -> Route:
    """The POST route of a resource (`messages`, `voicemessages`, `messages/batches`...)."""
    return route_for(ROUTES, "POST", f"/{resource}")


# ------------------------------------------------------------------------------ routes


def test_registered_under_its_name() -> None:
    """The registry holds this module's preset under `messagebird`."""
    assert PRESETS["messagebird"] is PRESET


@pytest.mark.parametrize(("method", "path", "channel"), [
    ("POST", "/messages", "sms"),
    ("POST", "/messages/", "sms"),
    ("POST", "/Messages", "sms"),
    ("POST", "//messages", "sms"),
    ("POST", "/%6Dessages", "sms"),
    ("POST", "/mms", "sms"),
    ("POST", "/voicemessages", "voice"),
    ("POST", "/verify", None),  # a `type: tts` verification calls: either channel
    ("POST", "/calls/", "voice"),
    ("POST", "/messages/batches", "sms"),
    ("GET", "/messages", "sms"),
    ("PUT", "/voicemessages", "voice"),
    ("PATCH", "/verify", None),
    ("DELETE", "/mms", "sms"),
    ("PUT", "/messages/batches", "sms"),
    ("POST", "/balance/../messages", REFUSED),
    ("POST", "/messages;x", REFUSED),
], ids=["messages", "messages-trailing-slash", "messages-capital", "doubled-slash",
        "percent-encoded", "mms", "voicemessages", "verify", "calls", "batches",
        "get-override", "put-override", "patch-override", "delete-override", "put-batches",
        "dot-dot", "path-parameter"])
def test_routes_intercepted(method: str, path: str, channel: str) -> None:
    """Sends are intercepted however they are spelled (or the spelling is refused); no path
    parameters are captured."""
    assert outcome(ROUTES, method, path) == channel
    if channel != REFUSED:
        found = match(ROUTES, method, path)
        assert found is not None
        assert found[1] == {}


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/messages/abc123"),
    ("DELETE", "/messages/abc123"),
    ("GET", "/voicemessages/abc123"),
    ("GET", "/verify/abc123"),
    ("DELETE", "/verify/abc123"),
    ("POST", "/hlr"),
    ("POST", "/lookup/31612345678/hlr"),
    ("GET", "/balance"),
    ("GET", "/messages/batches"),
    ("GET", "/calls/abc123"),
], ids=["get", "delete", "get-voice", "check-token", "delete-verify", "hlr",
        "lookup-hlr", "balance", "get-batches", "get-call"])
def test_routes_passed_through(method: str, path: str) -> None:
    """Reads, deletes, token checks and lookups send nothing."""
    assert outcome(ROUTES, method, path) == PASSES


# --------------------------------------------------------------------------- recipients


@pytest.mark.parametrize(("path", "raw", "headers", "expected"), [
    ("/messages", sdk_body(originator="Sender", body="hello", recipients=A), JSON, (A,)),
    ("/messages", sdk_body(originator="Sender", body="hello", recipients=f"{A},{B},{A}"),
     JSON, (A, B, A)),
    ("/messages", sdk_body(originator="S", body="x", recipients=[A, int(B)]), JSON, (A, B)),
    ("/messages", sdk_body(originator="S", body="x", recipients=int(A)), JSON, (A,)),
    ("/messages", sdk_body(originator="S", body="x", recipients=f"{A}, ,{B},"), JSON, (A, B)),
    ("/messages", sdk_body(originator="S", body="x", recipients=f"{GROUP},{A}"), JSON,
     (f"client:group:{GROUP}", A)),
    ("/messages", f"recipients={A},{B}&originator=Sender&body=hi".encode(), FORM, (A, B)),
    ("/messages", f"recipients={A}%2C{B}&originator=Sender".encode(), FORM, (A, B)),
    ("/messages", f"recipients[]={A}&recipients%5B%5D={B}&recipients[2]={C}".encode(),
     FORM, (A, B, C)),
    ("/messages", f"recipients={A}&body=hi".encode(), {}, (A,)),
    ("/messages", sdk_body(recipients=A, body="hi"), {}, (A,)),
    ("/mms", sdk_body(originator="S", recipients=f"{A},{B}", body="x",
                      mediaUrls=["https://x/y.jpg"]), JSON, (A, B)),
    ("/voicemessages", sdk_body(recipients=f"{A},{B}", body="hi"), JSON, (A, B)),
    ("/verify", sdk_body(recipient=A), JSON, (A,)),
    ("/verify", sdk_body(recipient=int(A), type="tts"), JSON, (A,)),
    ("/verify", sdk_body(type="email", recipient="ann@example.com", originator="x@y.z"),
     JSON, ("client:email:ann@example.com",)),
    ("/calls", sdk_body(source="31644556677", destination=A,
                        callFlow={"steps": [{"action": "say"}]}), JSON, (A,)),
    ("/calls", sdk_body(source="31644556677", destination="sip:bob@example.com"), JSON,
     ("sip:bob@example.com",)),
    ("/calls", sdk_body(source="31644556677", destination=A, callFlow={"steps": [
        {"action": "transfer", "options": {"destination": B}}]}), JSON, (A, B)),
    ("/messages", b'{"recipients": "31612345678", "Recipients": [31612345679]}', JSON, (A, B)),
    ("/messages", f"RECIPIENTS={A}&recipients[]={B}".encode(), FORM, (A, B)),
], ids=["one", "comma-joined-with-duplicate", "array-mixed-number", "json-number",
        "blank-parts", "group-id", "form-comma", "form-encoded-comma", "form-array-fields",
        "form-without-content-type", "json-without-content-type", "mms", "voice", "verify",
        "verify-number", "verify-email", "call", "call-sip", "call-flow-transfer",
        "json-key-in-two-cases", "form-name-in-two-cases"])
def test_recipients_found(path: str, raw: bytes, headers: dict[str, str],
                          expected: tuple[str, ...]) -> None:
    """Recipients are read from JSON or forms, strings or numbers, split on commas."""
    assert recipients(path, raw, headers).values == expected


@pytest.mark.parametrize(("raw", "expected"), [
    (A, ("phone", "+31612345678")),
    ("+31612345678", ("phone", "+31612345678")),
    (f"client:group:{GROUP}", ("not_phone", None)),
    ("client:email:ann@example.com", ("not_phone", None)),
], ids=["msisdn", "e164", "group", "email"])
def test_messagebird_numbers_are_international_without_plus(
        raw: str, expected: tuple[str, str | None]) -> None:
    """MSISDNs without `+`; group ids and e-mail addresses are not phone numbers."""
    assert PRESET.msisdn is True
    found = parse_destination(raw, UPSTREAM.region or PRESET.default_region, PRESET.msisdn)
    assert (found.kind, found.e164) == expected


@pytest.mark.parametrize(("headers", "raw", "expected"), [
    (JSON, b"recipients=1", True),
    ({"content-type": "APPLICATION/JSON"}, b"", True),
    (FORM, b'{"recipients": "1"}', False),
    ({}, b'  {"recipients": "1"}', True),
    ({}, b"recipients=1", False),
    ({"Content-Type": "text/plain"}, b"[1]", True),
], ids=["json-header", "header-any-case", "form-header", "sniffed-json", "sniffed-form",
        "other-type-sniffed"])
def test_encoding_follows_content_type(headers: dict[str, str], raw: bytes,
                                       expected: bool) -> None:
    """The Content-Type decides, as it does for MessageBird; the body only without one."""
    assert is_json(Message(raw, "", headers)) is expected


@pytest.mark.parametrize(("path", "raw", "headers", "code"), [
    ("/messages", b"recipients=316", JSON, "invalid_json"),
    ("/messages", b"", JSON, "missing_destination"),
    ("/messages", sdk_body(originator="S", body="x"), JSON, "missing_destination"),
    ("/messages", sdk_body(recipients=""), JSON, "missing_destination"),
    ("/messages", sdk_body(recipients=",,"), JSON, "missing_destination"),
    ("/messages", sdk_body(recipients={"to": A}), JSON, "invalid_destination_field"),
    ("/messages", sdk_body(recipients=True), JSON, "invalid_destination_field"),
    ("/messages", sdk_body(recipients=3.1612345678e10), JSON, "invalid_destination_field"),
    ("/messages", sdk_body(recipients=None), JSON, "invalid_destination_field"),
    ("/messages", b"originator=S&body=hi", FORM, "missing_destination"),
    ("/messages", b"recipients", FORM, "missing_destination"),
    ("/messages", f"recipients={A};recipients={B}".encode(), FORM, "ambiguous_request"),
    ("/messages", b"recipients=%FF", FORM, "invalid_form"),
    ("/messages", b"\xff", FORM, "invalid_form"),
    ("/messages", b"recipientsX=316&recipient=316", FORM, "missing_destination"),
    ("/verify", sdk_body(originator="S"), JSON, "missing_destination"),
    ("/calls", sdk_body(source="31644556677"), JSON, "missing_destination"),
], ids=["form-as-json", "empty-json", "no-recipients", "empty-recipients", "only-commas",
        "object", "bool", "float", "null", "form-no-recipients", "form-no-equals-is-blank",
        "form-raw-semicolon", "form-not-utf8", "form-body-not-utf8", "form-lookalike-names",
        "verify-no-recipient", "call-no-destination"])
def test_malformed_bodies(path: str, raw: bytes, headers: dict[str, str], code: str) -> None:
    """Unusable bodies are refused with a code, never forwarded unchecked."""
    result = find(path, raw, headers)[2]
    assert isinstance(result, BodyError)
    assert result.code == code


@pytest.mark.parametrize(("method", "query", "expected"), [
    ("GET", "", ()),
    ("GET", "limit=10&offset=0&status=sent", ()),
    ("GET", "_method=GET&recipients=31612345678", ()),
    ("GET", f"_method=POST&originator=S&body=hi&recipients={A},{B}", (A, B)),
    ("GET", f"_method=post&recipients[]={A}", (A,)),
    ("GET", f"%5Fmethod=POST&recipients={A}", (A,)),
    ("DELETE", f"recipients={A}&_method=POST", (A,)),
    ("GET", f"odd&_method=POST&%ZZ&recipients={A}", "ambiguous_request"),
    ("GET", f"_method=POST&recipients={A}&recipients=%FF", "invalid_form"),
    ("GET", "_method=POST&originator=S&body=hi", "missing_destination"),
    ("GET", "_method=POST&recipients=", "missing_destination"),
], ids=["plain-list", "list-with-filters", "override-to-get", "override", "lowercase-post",
        "encoded-name", "delete-override", "malformed-query-fails-closed",
        "undecodable-query-fails-closed", "override-no-to", "override-empty-to"])
def test_method_override_makes_a_send(method: str, query: str,
                                      expected: tuple[str, ...] | str) -> None:
    """`?_method=POST` on another method is a send, read from the query; else a read."""
    result = route_for(ROUTES, method, "/messages").locator.find(Message(b"", query, {}))
    if isinstance(expected, str):
        assert isinstance(result, BodyError)
        assert result.code == expected
    else:
        assert isinstance(result, Recipients)
        assert result.values == expected


def test_query_recipients_on_a_post_are_checked_and_rewritten() -> None:
    """A POST naming recipients only in its query is checked; the query is rewritten."""
    message = Message(b"", f"recipients={A},{B}&originator=S&body=hi", JSON)
    result = send("messages").locator.find(message)
    assert isinstance(result, Recipients)
    assert result.values == (A, B)
    rewritten = result.without(frozenset({A}))
    assert rewritten is not None
    assert rewritten.query == f"recipients={B}&originator=S&body=hi"
    assert rewritten.body == b""


@pytest.mark.parametrize(("raw", "headers"), [
    (sdk_body(originator="S", body="hi", recipients=A), JSON),
    (f"recipients={A}&body=hi".encode(), FORM),
], ids=["json-body", "form-body"])
def test_recipients_in_query_and_body_are_all_checked_not_edited(
        raw: bytes, headers: dict[str, str]) -> None:
    """Both places count (either could be the one MessageBird reads); no partial edit."""
    result = send("messages").locator.find(Message(raw, f"recipients={B}", headers))
    assert isinstance(result, Recipients)
    assert result.values == (A, B)
    assert result.without(frozenset({B})) is None


def test_query_body_error_still_refused() -> None:
    """A broken body is refused even when the query names recipients."""
    result = send("messages").locator.find(Message(b"{broken", f"recipients={A}", JSON))
    assert isinstance(result, BodyError)
    assert result.code == "invalid_json"


BATCH = {"messages": [{"recipients": [A, B], "originator": "S", "body": "one"},
                      {"recipients": f"{C},{A}", "originator": "S", "body": "two"},
                      {"recipients": [int(B)], "originator": "S", "body": "three"}]}


def test_batch_recipients_found() -> None:
    """Every message's recipients, arrays, comma-joined strings and numbers alike."""
    assert recipients("/messages/batches", sdk_body(**BATCH), JSON).values == (A, B, C, A, B)


@pytest.mark.parametrize(("drop", "expected"), [
    ({A}, {"messages": [{"recipients": [B], "originator": "S", "body": "one"},
                        {"recipients": C, "originator": "S", "body": "two"},
                        {"recipients": [int(B)], "originator": "S", "body": "three"}]}),
    ({B}, {"messages": [{"recipients": [A], "originator": "S", "body": "one"},
                        {"recipients": f"{C},{A}", "originator": "S", "body": "two"}]}),
    ({C, A}, {"messages": [{"recipients": [B], "originator": "S", "body": "one"},
                           {"recipients": [int(B)], "originator": "S", "body": "three"}]}),
], ids=["from-array-and-string", "message-emptied-dropped", "string-emptied-dropped"])
def test_batch_rewrite_drops_emptied_messages(drop: set[str], expected: dict[str, Any]
                                              ) -> None:
    """Blocked numbers leave each message; a message left with none leaves the batch."""
    found = recipients("/messages/batches", sdk_body(**BATCH), JSON)
    rewritten = found.without(frozenset(drop))
    assert rewritten is not None
    assert rewritten.body == sdk_body(**expected)  # the body as sent, cut


# --------------------------------------------------------------------------- rewriting


@pytest.mark.parametrize(("raw", "headers", "drop", "expected"), [
    (sdk_body(originator="Sender", body="hello", recipients=f"{A},{B},{C}"), JSON, {B},
     b'{"originator": "Sender", "body": "hello", "recipients": "31612345678,31612345670"}'),
    (sdk_body(originator="Sender", body="hello", recipients=f"{A},{B},{A}"), JSON, {A},
     b'{"originator": "Sender", "body": "hello", "recipients": "31612345679"}'),
    (sdk_body(recipients=[int(A), B, int(C)], body="h\u00e9"), JSON, {A, B},
     '{"recipients": [31612345670], "body": "h\u00e9"}'.encode()),
    (sdk_body(recipients=[f"{A},{B}", C], body="x"), JSON, {A, B},
     b'{"recipients": ["31612345670"], "body": "x"}'),
    (sdk_body(recipients=f"{GROUP},{A}", body="x"), JSON, {A},
     b'{"recipients": "61afc0531573b08ddbe36e1c85602827", "body": "x"}'),
    (f"recipients={A},{B},{C}&originator=Sender&body=hi+there".encode(), FORM, {B},
     b"recipients=31612345678,31612345670&originator=Sender&body=hi+there"),
    (f"recipients={A}%2C{B}%2C{C}&originator=Sender".encode(), FORM, {A},
     b"recipients=31612345679%2C31612345670&originator=Sender"),
    (f"originator=Sender&recipients[]={A}&recipients[]={B}&body=hi".encode(), FORM, {A},
     b"originator=Sender&recipients[]=31612345679&body=hi"),
    (f"recipients%5B%5D={A}&recipients%5B%5D={B}&body=%E2%9C%93".encode(), FORM, {B},
     b"recipients%5B%5D=31612345678&body=%E2%9C%93"),
], ids=["comma-string", "duplicates", "numbers-kept-as-numbers", "array-of-joined",
        "group-kept", "form-comma", "form-encoded-comma-kept", "form-whole-field",
        "form-encoded-names-kept"])
def test_blocked_recipients_removed(raw: bytes, headers: dict[str, str], drop: set[str],
                                    expected: bytes) -> None:
    """Dropping recipients keeps the request's encoding and every other byte as sent."""
    rewritten = recipients("/messages", raw, headers).without(frozenset(drop))
    assert rewritten is not None
    assert rewritten.body == expected
    assert rewritten.headers == headers


@pytest.mark.parametrize(("raw", "headers"), [
    (f"originator=Sender&recipients={A}&recipients[]={B}&body=hi".encode(), FORM),
    (f"recipients[0]={A}&recipients[1]={B}".encode(), FORM),
    (f"recipients={A}&Recipients={B}".encode(), FORM),
    (b'{"recipients": ["31612345678"], "recipients": ["31612345679"]}', JSON),
], ids=["form-mixed-spellings", "form-indexed", "form-name-in-two-cases",
        "json-duplicate-key"])
def test_recipients_read_two_ways_are_checked_never_edited(raw: bytes,
                                                           headers: dict[str, str]) -> None:
    """Where servers could read the recipients differently, all of them count and the
    send is decided whole."""
    found = recipients("/messages", raw, headers)
    assert found.values == (A, B)
    assert found.without(frozenset({A})) is None


# --------------------------------------------------------------------------- identities


@pytest.mark.parametrize(("headers", "expected"), [
    ({"Authorization": f"AccessKey {KEY}"},
     ("sha256:" + hashlib.sha256(KEY.encode()).hexdigest(),)),
    ({"Authorization": f"accesskey {KEY}"},
     ("sha256:" + hashlib.sha256(KEY.encode()).hexdigest(),)),
    ({"Authorization": f"Bearer {KEY}"}, ()),
    ({}, ()),
], ids=["access-key", "scheme-any-case", "other-scheme", "none"])
def test_identities(headers: dict[str, str], expected: tuple[str, ...]) -> None:
    """The AccessKey token's digest, never the key itself."""
    assert PRESET.identities(Message(b"", "", headers), canonical("/messages")) == expected


# ------------------------------------------------------------------------------ replies


@pytest.mark.parametrize(("resource", "parameter"), [
    ("messages", "recipients"), ("mms", "recipients"), ("voicemessages", "recipients"),
    ("messages/batches", "recipients"), ("verify", "recipient"), ("calls", "destination"),
], ids=["messages", "mms", "voicemessages", "batches", "verify", "calls"])
def test_reject_is_a_422_with_messagebird_errors(resource: str, parameter: str) -> None:
    """422 with `errors[]`: the SDK's HttpClient accepts 422 and raises ErrorException."""
    route = send(resource)
    reply = route.reject(blocked(route.channel, sdk_body(recipients=A), A))
    assert reply.status == 422
    [error] = payload(reply)["errors"]
    assert error["code"] == 9
    assert error["parameter"] == parameter
    assert "block list" in error["description"]


def test_skip_message_reports_every_recipient_failed() -> None:
    """A skipped SMS is a message object; each recipient `delivery_failed`, none sent."""
    raw = sdk_body(originator="Sender", body="hello", recipients=f"{A},+{B}",
                   reference="ref-1")
    reply = send("messages").skip(blocked("sms", raw, A, "+" + B))
    assert reply.status == 201
    data = payload(reply)
    message = SdkMessage().load(data)
    assert message.originator == "Sender"
    assert message.body == "hello"
    assert message.reference == "ref-1"
    assert message.href.endswith("/messages/" + message.id)
    assert len(message.id) == 32
    assert [r.recipient for r in message.recipients["items"]] == [int(A), int(B)]
    assert {r.status for r in message.recipients["items"]} == {"delivery_failed"}
    assert data["recipients"]["totalSentCount"] == 0
    assert data["recipients"]["totalDeliveryFailedCount"] == 2


def test_skip_of_a_form_send_echoes_its_fields() -> None:
    """The fields echoed come from the form when the send was a form."""
    raw = f"recipients={A}&originator=Sender&body=hi+there".encode()
    data = payload(send("messages").skip(blocked("sms", raw, A, headers=FORM)))
    assert (data["originator"], data["body"]) == ("Sender", "hi there")


@pytest.mark.parametrize(("resource", "model", "status"), [
    ("voicemessages", VoiceMessage, "failed"),
    ("mms", MMS, "delivery_failed"),
], ids=["voice", "mms"])
def test_skip_other_messages(resource: str, model: type[VoiceMessage] | type[MMS],
                             status: str) -> None:
    """Voice messages and MMS get their own object, recipients failed."""
    raw = sdk_body(recipients=A, body="hello", originator="Sender")
    route = send(resource)
    reply = route.skip(blocked(route.channel, raw, A))
    assert reply.status == 201
    loaded = model().load(payload(reply))
    assert loaded.body == "hello"
    assert loaded.recipients["items"][0].status == status


def test_skip_verify_is_a_failed_verification() -> None:
    """A skipped verification exists with status `failed` (no token was sent)."""
    data = payload(send("verify").skip(blocked("sms", sdk_body(recipient=A), A)))
    verify = Verify().load(data)
    assert (verify.recipient, verify.status) == (int(A), "failed")


def test_skip_call_is_an_ended_call() -> None:
    """A skipped call comes back ended, to the number asked."""
    raw = sdk_body(source="31644556677", destination=A)
    call = Call().load(payload(send("calls").skip(blocked("voice", raw, A))))
    assert (call.data.status, call.data.destination, call.data.source) == (
        "ended", A, "31644556677")


def test_skip_batch_is_a_list_of_failed_messages() -> None:
    """A skipped batch answers one message object per message, recipients failed."""
    raw = sdk_body(messages=[{"recipients": [A], "originator": "S", "body": "one"},
                             {"recipients": f"{B},{C}", "originator": "S", "body": "two"}])
    reply = send("messages/batches").skip(blocked("sms", raw, A, B, C))
    assert reply.status == 201
    data = payload(reply)
    assert [m["body"] for m in data] == ["one", "two"]
    loaded = [SdkMessage().load(m) for m in data]
    assert [[r.recipient for r in m.recipients["items"]] for m in loaded] == [
        [int(A)], [int(B), int(C)]]
    assert len({m.id for m in loaded}) == 2


def test_skip_of_an_overridden_get_echoes_the_query() -> None:
    """For a `?_method=POST` send, the fields echoed come from the query."""
    context = Blocked("req-1", "sms", A, {},
                      Message(b"", f"_method=POST&recipients={A}&originator=Q&body=hey"), (A,))
    data = payload(route_for(ROUTES, "GET", "/messages").skip(context))
    assert (data["originator"], data["body"]) == ("Q", "hey")


# ------------------------------------------------------------------- unauthorized, refuse


@pytest.mark.parametrize(("reply", "status", "error"), [
    (PRESET.unauthorized("req-9"), 401,
     {"code": 2, "description": "Request not allowed (incorrect access_key)",
      "parameter": "access_key"}),
    (PRESET.refuse(blocked(None, b"{}", A)), 422,
     {"code": 9, "description": "no (correct) recipients found: the recipient is on a block "
      "list", "parameter": "recipients"}),
], ids=["unauthorized", "refuse"])
def test_unauthorized_and_refuse_are_messagebird_errors(reply: Reply, status: int,
                                                        error: dict[str, Any]) -> None:
    """401 and the scanned-write refusal carry MessageBird's `errors[]` (codes 2 and 9)."""
    assert reply.status == status
    assert payload(reply) == {"errors": [error]}

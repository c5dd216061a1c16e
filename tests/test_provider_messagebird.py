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
from gatekeeper.providers.base import (
    Blocked,
    BodyError,
    Message,
    Recipients,
    Reply,
    Route,
    match_route,
)
from gatekeeper.providers.messagebird import PRESET, is_json
from gatekeeper.types import Channel

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
    found = match_route(ROUTES, "POST", path)
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


def blocked(channel: Channel, resource: str, raw: bytes, *destinations: str,
            headers: dict[str, str] | None = None) -> Blocked:
    """The context of a refused send."""
    return Blocked("req-1", channel, destinations[0], {"resource": resource},
                   Message(raw, "", JSON if headers is None else headers), destinations)


# ------------------------------------------------------------------------------ routes


def test_registered_under_its_name() -> None:
    """The registry holds this module's preset under `messagebird`."""
    assert PRESETS["messagebird"] is PRESET


@pytest.mark.parametrize(("method", "path", "channel", "resource"), [
    ("POST", "/messages", "sms", "messages"),
    ("POST", "/messages/", "sms", "messages"),
    ("POST", "/Messages", "sms", "Messages"),
    ("POST", "//messages", "sms", "messages"),
    ("POST", "/%6Dessages", "sms", "messages"),
    ("POST", "/balance/../messages", "sms", "messages"),
    ("POST", "/mms", "sms", "mms"),
    ("POST", "/voicemessages", "voice", "voicemessages"),
    ("POST", "/verify", "sms", "verify"),
    ("POST", "/calls/", "voice", "calls"),
    ("POST", "/messages/batches", "sms", "batches"),
    ("GET", "/messages", "sms", "messages"),
    ("PUT", "/voicemessages", "voice", "voicemessages"),
    ("PATCH", "/verify", "sms", "verify"),
    ("DELETE", "/mms", "sms", "mms"),
], ids=["messages", "messages-trailing-slash", "messages-capital", "doubled-slash",
        "percent-encoded", "dot-dot", "mms", "voicemessages", "verify", "calls", "batches",
        "get-override", "put-override", "patch-override", "delete-override"])
def test_routes_intercepted(method: str, path: str, channel: str, resource: str) -> None:
    """Sends are intercepted however they are spelled."""
    found = match_route(ROUTES, method, path)
    assert found is not None
    assert found[0].channel == channel
    assert found[1] == {"resource": resource}


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
    assert match_route(ROUTES, method, path) is None


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
], ids=["one", "comma-joined-with-duplicate", "array-mixed-number", "json-number",
        "blank-parts", "group-id", "form-comma", "form-encoded-comma", "form-array-fields",
        "form-without-content-type", "json-without-content-type", "mms", "voice", "verify",
        "verify-number", "verify-email", "call", "call-sip"])
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
    ("/messages", b"", JSON, "invalid_json"),
    ("/messages", sdk_body(originator="S", body="x"), JSON, "missing_destination"),
    ("/messages", sdk_body(recipients=""), JSON, "missing_destination"),
    ("/messages", sdk_body(recipients=",,"), JSON, "missing_destination"),
    ("/messages", sdk_body(recipients={"to": A}), JSON, "invalid_destination_field"),
    ("/messages", sdk_body(recipients=True), JSON, "invalid_destination_field"),
    ("/messages", sdk_body(recipients=3.1612345678e10), JSON, "invalid_destination_field"),
    ("/messages", sdk_body(recipients=None), JSON, "invalid_destination_field"),
    ("/messages", b"originator=S&body=hi", FORM, "missing_destination"),
    ("/messages", b"recipients", FORM, "invalid_form"),
    ("/messages", b"recipients=%FF", FORM, "invalid_form"),
    ("/messages", b"\xff", FORM, "invalid_form"),
    ("/messages", b"recipientsX=316&recipient=316", FORM, "missing_destination"),
    ("/verify", sdk_body(originator="S"), JSON, "missing_destination"),
    ("/calls", sdk_body(source="31644556677"), JSON, "missing_destination"),
], ids=["form-as-json", "empty-json", "no-recipients", "empty-recipients", "only-commas",
        "object", "bool", "float", "null", "form-no-recipients", "form-no-equals",
        "form-not-utf8", "form-body-not-utf8", "form-lookalike-names", "verify-no-recipient",
        "call-no-destination"])
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
    ("GET", f"odd&_method=POST&%ZZ&recipients={A}", "invalid_form"),
    ("GET", "_method=POST&originator=S&body=hi", "missing_destination"),
    ("GET", "_method=POST&recipients=", "missing_destination"),
], ids=["plain-list", "list-with-filters", "override-to-get", "override", "lowercase-post",
        "encoded-name", "delete-override", "malformed-query-fails-closed", "override-no-to",
        "override-empty-to"])
def test_method_override_makes_a_send(method: str, query: str,
                                      expected: tuple[str, ...] | str) -> None:
    """`?_method=POST` on another method is a send, read from the query; else a read."""
    found = match_route(ROUTES, method, "/messages")
    assert found is not None
    result = found[0].locator.find(Message(b"", query, {}))
    if isinstance(expected, str):
        assert isinstance(result, BodyError)
        assert result.code == expected
    else:
        assert isinstance(result, Recipients)
        assert result.values == expected


def test_query_recipients_on_a_post_are_checked_and_rewritten() -> None:
    """A POST naming recipients only in its query is checked; the query is rewritten."""
    found = match_route(ROUTES, "POST", "/messages")
    assert found is not None
    message = Message(b"", f"recipients={A},{B}&originator=S&body=hi", JSON)
    result = found[0].locator.find(message)
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
    found = match_route(ROUTES, "POST", "/messages")
    assert found is not None
    result = found[0].locator.find(Message(raw, f"recipients={B}", headers))
    assert isinstance(result, Recipients)
    assert result.values == (A, B)
    assert result.without(frozenset({B})) is None


def test_query_body_error_still_refused() -> None:
    """A broken body is refused even when the query names recipients."""
    found = match_route(ROUTES, "POST", "/messages")
    assert found is not None
    result = found[0].locator.find(Message(b"{broken", f"recipients={A}", JSON))
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
    assert json.loads(rewritten.body) == expected


# --------------------------------------------------------------------------- rewriting


@pytest.mark.parametrize(("raw", "headers", "drop", "expected"), [
    (sdk_body(originator="Sender", body="hello", recipients=f"{A},{B},{C}"), JSON, {B},
     b'{"originator":"Sender","body":"hello","recipients":"31612345678,31612345670"}'),
    (sdk_body(originator="Sender", body="hello", recipients=f"{A},{B},{A}"), JSON, {A},
     b'{"originator":"Sender","body":"hello","recipients":"31612345679"}'),
    (sdk_body(recipients=[int(A), B, int(C)], body="h\u00e9"), JSON, {A, B},
     '{"recipients":[31612345670],"body":"h\u00e9"}'.encode()),
    (sdk_body(recipients=[f"{A},{B}", C], body="x"), JSON, {A, B},
     b'{"recipients":["31612345670"],"body":"x"}'),
    (sdk_body(recipients=f"{GROUP},{A}", body="x"), JSON, {A},
     b'{"recipients":"61afc0531573b08ddbe36e1c85602827","body":"x"}'),
    (f"recipients={A},{B},{C}&originator=Sender&body=hi+there".encode(), FORM, {B},
     b"recipients=31612345678%2C31612345670&originator=Sender&body=hi+there"),
    (f"originator=Sender&recipients={A}&recipients[]={B}&body=hi".encode(), FORM, {A},
     b"originator=Sender&recipients[]=31612345679&body=hi"),
    (f"recipients%5B%5D={A}&recipients%5B%5D={B}&body=%E2%9C%93".encode(), FORM, {B},
     b"recipients%5B%5D=31612345678&body=%E2%9C%93"),
], ids=["comma-string", "duplicates", "numbers-kept-as-numbers", "array-of-joined",
        "group-kept", "form-comma", "form-whole-field", "form-encoded-names-kept"])
def test_blocked_recipients_removed(raw: bytes, headers: dict[str, str], drop: set[str],
                                    expected: bytes) -> None:
    """Dropping recipients keeps the request's encoding and every other field."""
    rewritten = recipients("/messages", raw, headers).without(frozenset(drop))
    assert rewritten is not None
    assert rewritten.body == expected
    assert rewritten.headers == headers


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
    assert PRESET.identities(Message(b"", "", headers), {}) == expected


# ------------------------------------------------------------------------------ replies


@pytest.mark.parametrize(("resource", "parameter"), [
    ("messages", "recipients"), ("voicemessages", "recipients"), ("verify", "recipient"),
    ("calls", "destination"),
], ids=["messages", "voicemessages", "verify", "calls"])
def test_reject_is_a_422_with_messagebird_errors(resource: str, parameter: str) -> None:
    """422 with `errors[]`: the SDK's HttpClient accepts 422 and raises ErrorException."""
    reply = PRESET.reject(blocked("sms", resource, sdk_body(recipients=A), A))
    assert reply.status == 422
    [error] = payload(reply)["errors"]
    assert error["code"] == 9
    assert error["parameter"] == parameter
    assert "block list" in error["description"]


def test_skip_message_reports_every_recipient_failed() -> None:
    """A skipped SMS is a message object; each recipient `delivery_failed`, none sent."""
    raw = sdk_body(originator="Sender", body="hello", recipients=f"{A},+{B}",
                   reference="ref-1")
    reply = PRESET.skip(blocked("sms", "messages", raw, A, "+" + B))
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
    data = payload(PRESET.skip(blocked("sms", "messages", raw, A, headers=FORM)))
    assert (data["originator"], data["body"]) == ("Sender", "hi there")


@pytest.mark.parametrize(("resource", "model", "status"), [
    ("voicemessages", VoiceMessage, "failed"),
    ("mms", MMS, "delivery_failed"),
], ids=["voice", "mms"])
def test_skip_other_messages(resource: str, model: type[VoiceMessage] | type[MMS],
                             status: str) -> None:
    """Voice messages and MMS get their own object, recipients failed."""
    raw = sdk_body(recipients=A, body="hello", originator="Sender")
    reply = PRESET.skip(blocked("voice" if resource == "voicemessages" else "sms",
                                resource, raw, A))
    assert reply.status == 201
    loaded = model().load(payload(reply))
    assert loaded.body == "hello"
    assert loaded.recipients["items"][0].status == status


def test_skip_verify_is_a_failed_verification() -> None:
    """A skipped verification exists with status `failed` (no token was sent)."""
    data = payload(PRESET.skip(blocked("sms", "verify", sdk_body(recipient=A), A)))
    verify = Verify().load(data)
    assert (verify.recipient, verify.status) == (int(A), "failed")


def test_skip_call_is_an_ended_call() -> None:
    """A skipped call comes back ended, to the number asked."""
    raw = sdk_body(source="31644556677", destination=A)
    call = Call().load(payload(PRESET.skip(blocked("voice", "calls", raw, A))))
    assert (call.data.status, call.data.destination, call.data.source) == (
        "ended", A, "31644556677")


def test_skip_batch_is_a_list_of_failed_messages() -> None:
    """A skipped batch answers one message object per message, recipients failed."""
    raw = sdk_body(messages=[{"recipients": [A], "originator": "S", "body": "one"},
                             {"recipients": f"{B},{C}", "originator": "S", "body": "two"}])
    reply = PRESET.skip(blocked("sms", "batches", raw, A, B, C))
    assert reply.status == 201
    data = payload(reply)
    assert [m["body"] for m in data] == ["one", "two"]
    loaded = [SdkMessage().load(m) for m in data]
    assert [[r.recipient for r in m.recipients["items"]] for m in loaded] == [
        [int(A)], [int(B), int(C)]]
    assert len({m.id for m in loaded}) == 2


def test_skip_of_an_overridden_get_echoes_the_query() -> None:
    """For a `?_method=POST` send, the fields echoed come from the query."""
    context = Blocked("req-1", "sms", A, {"resource": "messages"},
                      Message(b"", f"_method=POST&recipients={A}&originator=Q&body=hey"), (A,))
    data = payload(PRESET.skip(context))
    assert (data["originator"], data["body"]) == ("Q", "hey")

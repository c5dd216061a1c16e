"""The `plivo` preset on recorded request shapes: routes, recipients, rewriting, replies."""

from __future__ import annotations

import base64
import json
from typing import Any
from uuid import UUID

import pytest
import requests
from plivo import RestClient
from plivo.exceptions import AuthenticationError, ValidationError

from gatekeeper.config import UpstreamConfig
from gatekeeper.numbers import parse_destination
from gatekeeper.providers import PRESETS
from gatekeeper.providers.plivo import PRESET
from gatekeeper.providers.preset import Blocked, BodyError, Message, Recipients, Route
from gatekeeper.replies import Reply
from gatekeeper.types import Channel
from tests.presets_helpers import PASSES, REFUSED, canonical, match, outcome, route_for

AUTH_ID = "MA" + "A" * 18
TOKEN = "auth-token-not-real"
UPSTREAM = UpstreamConfig(name="plivo", url="https://api.plivo.com", preset="plivo",
                          mount="/plivo")
ROUTES = PRESET.routes(UPSTREAM)
MESSAGE = f"/v1/Account/{AUTH_ID}/Message/"
CALL = f"/v1/Account/{AUTH_ID}/Call/"


def body(**fields: Any) -> bytes:
    """A JSON body as the SDK's `requests` sends it (`json=`: default separators)."""
    return json.dumps(fields).encode()


def find(path: str, raw: bytes, headers: dict[str, str] | None = None
         ) -> tuple[Route, dict[str, str], Recipients | BodyError]:
    """Match a POST and locate its recipients."""
    found = match(ROUTES, "POST", path)
    assert found is not None, path
    route, params = found
    return route, params, route.locator.find(Message(raw, "", headers or {}))


def recipients(path: str, raw: bytes) -> Recipients:
    """The recipients of a well-formed request."""
    result = find(path, raw)[2]
    assert isinstance(result, Recipients), result
    return result


def payload(reply: Reply) -> Any:
    """A reply's JSON body."""
    assert reply.content_type == "application/json"
    return json.loads(reply.body)


def blocked(channel: Channel | None, raw: bytes, destination: str = "33612345678") -> Blocked:
    """The context of a refused send."""
    return Blocked("req-1", channel, destination, {"auth_id": AUTH_ID},
                   Message(raw), (destination,))


def send_route(channel: Channel) -> Route:
    """The Message route (sms) or the Call route (voice)."""
    return route_for(ROUTES, "POST", MESSAGE if channel == "sms" else CALL)


def sdk_reads(reply: Reply) -> Any:
    """What the Plivo SDK makes of a reply (its own response handling, no network)."""
    response = requests.Response()
    response.status_code = reply.status
    response._content = reply.body
    response.url = "https://api.plivo.com" + MESSAGE
    return RestClient(AUTH_ID, TOKEN).process_response("POST", response)


# ------------------------------------------------------------------------------ routes


def test_registered_under_its_name() -> None:
    """The registry holds this module's preset under `plivo`."""
    assert PRESETS["plivo"] is PRESET


@pytest.mark.parametrize(("method", "path", "channel"), [
    ("POST", MESSAGE, "sms"),
    ("POST", MESSAGE.rstrip("/"), "sms"),
    ("POST", f"/v1/account/{AUTH_ID}/message/", "sms"),
    ("POST", f"/v1/Account/{AUTH_ID}/Messages/", "sms"),
    ("POST", f"//v1//Account/{AUTH_ID}//Message//", "sms"),
    ("POST", f"/v1/Account/{AUTH_ID}/%4Dessage/", "sms"),
    ("PUT", MESSAGE, "sms"),
    ("POST", f"/v1/Account/{AUTH_ID}/Number/../Message/", REFUSED),
    ("POST", f"/v1/Account/{AUTH_ID}%2FMessage/", REFUSED),
    ("POST", CALL, "voice"),
    ("POST", CALL.rstrip("/"), "voice"),
    ("POST", f"/V1/ACCOUNT/{AUTH_ID}/CALL/", "voice"),
    ("POST", f"/v1/Account/{AUTH_ID}/Calls/", "voice"),
    ("GET", MESSAGE, PASSES),
    ("GET", CALL, PASSES),
    ("DELETE", CALL, PASSES),
    ("POST", f"/v1/Account/{AUTH_ID}/Message/1a2b3c/", PASSES),
    ("POST", f"/v1/Account/{AUTH_ID}/Call/1a2b3c/", PASSES),
    ("POST", f"/v1/Account/{AUTH_ID}/Number/", PASSES),
    ("POST", f"/v1/Account/{AUTH_ID}/", PASSES),
    ("POST", "/v1/Message/", PASSES),
], ids=["message", "message-no-slash", "message-lowercase", "messages-plural",
        "message-doubled-slashes", "message-percent-encoded", "put-message",
        "message-dot-dot", "message-encoded-slash", "call", "call-no-slash",
        "call-uppercase", "calls-plural", "get-messages", "get-calls", "delete-call",
        "message-resource", "call-update", "numbers", "account", "no-account"])
def test_routes(method: str, path: str, channel: str | None) -> None:
    """Message and Call sends are intercepted however they are spelled (or the spelling is
    refused); nothing else."""
    assert outcome(ROUTES, method, path) == channel
    if channel in ("sms", "voice"):
        found = match(ROUTES, method, path)
        assert found is not None
        assert found[1] == {"auth_id": AUTH_ID}


@pytest.mark.parametrize(("path", "quiet"), [
    (f"/v1/Account/{AUTH_ID}/PhoneNumber/14155550100/", True),
    (f"/v1/Account/{AUTH_ID}/Number/14155550100/", True),
    (f"/v1/Account/{AUTH_ID}/Numbers", True),
    (MESSAGE, False),
], ids=["buy-number", "update-number", "numbers", "message"])
def test_number_management_is_a_quiet_write(path: str, quiet: bool) -> None:
    """Buying and updating numbers sends nothing: those writes are not scanned."""
    assert any(p.match(canonical(path)) is not None for p in PRESET.quiet_writes) is quiet


# --------------------------------------------------------------------------- recipients


@pytest.mark.parametrize(("path", "raw", "expected"), [
    (MESSAGE, body(src="14155550199", dst="33612345678", text="hi", type="sms"),
     ("33612345678",)),
    (MESSAGE, body(src="14155550199", dst="33612345678<14155550100<447700900123",
                   text="hi"), ("33612345678", "14155550100", "447700900123")),
    (MESSAGE, body(powerpack_uuid="pp-1", dst="33612345678<<14155550100<", text="hi"),
     ("33612345678", "14155550100")),
    (MESSAGE, body(src="14155550199", dst=33612345678, text="hi"), ("33612345678",)),
    (MESSAGE, body(src="14155550199", dst=["33612345678", "14155550100"], text="hi"),
     ("33612345678", "14155550100")),
    (CALL, body(**{"from": "14155550199", "to": "33612345678",
                   "answer_url": "https://example.com/answer"}), ("33612345678",)),
    (CALL, body(**{"from": "14155550199",
                   "to": "33612345678<sip:john1234@phone.plivo.com<14155550100",
                   "answer_url": "https://example.com/answer"}),
     ("33612345678", "sip:john1234@phone.plivo.com", "14155550100")),
], ids=["message", "message-bulk", "message-empty-parts", "message-json-number",
        "message-array", "call", "call-bulk-with-sip"])
def test_recipients_found(path: str, raw: bytes, expected: tuple[str, ...]) -> None:
    """`dst` / `to` split on `<`, in order."""
    assert recipients(path, raw).values == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("33612345678", ("phone", "+33612345678")),
    ("0033612345678", ("phone", "+33612345678")),
    ("+33612345678", ("phone", "+33612345678")),
    ("sip:john1234@phone.plivo.com", ("not_phone", None)),
    ("sip:+33612345678@phone.plivo.com", ("phone", "+33612345678")),
], ids=["msisdn", "msisdn-00", "e164", "sip-endpoint", "sip-number"])
def test_plivo_numbers_are_international_without_plus(
        raw: str, expected: tuple[str, str | None]) -> None:
    """With the preset's `msisdn`, Plivo's digits-only numbers are international."""
    assert PRESET.msisdn is True
    found = parse_destination(raw, UPSTREAM.region or PRESET.default_region, PRESET.msisdn)
    assert (found.kind, found.e164) == expected


@pytest.mark.parametrize(("path", "raw", "code"), [
    (MESSAGE, b"dst=33612345678&src=14155550199", "invalid_json"),
    (MESSAGE, b"\xff\xfe", "invalid_json"),
    (MESSAGE, b"", "invalid_json"),
    (MESSAGE, body(src="14155550199", text="hi"), "missing_destination"),
    (MESSAGE, body(src="14155550199", dst="", text="hi"), "missing_destination"),
    (MESSAGE, body(src="14155550199", dst="<<", text="hi"), "missing_destination"),
    (MESSAGE, b"[]", "missing_destination"),
    (MESSAGE, body(dst={"number": "33612345678"}), "invalid_destination_field"),
    (MESSAGE, body(dst=True), "invalid_destination_field"),
    (MESSAGE, body(dst=None), "invalid_destination_field"),
    (CALL, body(**{"from": "14155550199", "answer_url": "https://x"}), "missing_destination"),
    (CALL, body(to=[["33612345678"]]), "invalid_destination_field"),
], ids=["form-body", "not-utf8", "empty", "no-dst", "empty-dst", "only-separators",
        "array-document", "dst-object", "dst-bool", "dst-null", "call-no-to",
        "call-nested-array"])
def test_malformed_bodies(path: str, raw: bytes, code: str) -> None:
    """Unusable bodies are refused with a code, never forwarded unchecked."""
    result = find(path, raw)[2]
    assert isinstance(result, BodyError)
    assert result.code == code


# --------------------------------------------------------------------------- rewriting


@pytest.mark.parametrize(("path", "raw", "drop", "expected"), [
    (MESSAGE, body(src="14155550199", dst="33612345678<14155550100<447700900123",
                   text="hi", type="sms"),
     {"14155550100"},
     b'{"src": "14155550199", "dst": "33612345678<447700900123", "text": "hi", '
     b'"type": "sms"}'),
    (MESSAGE, body(src="14155550199", dst="33612345678<14155550100<447700900123",
                   text="hi"),
     {"33612345678", "447700900123"},
     b'{"src": "14155550199", "dst": "14155550100", "text": "hi"}'),
    (MESSAGE, body(src="14155550199", dst="33612345678<14155550100<33612345678",
                   text="h\u00e9llo \u2713"),
     {"33612345678"},
     b'{"src": "14155550199", "dst": "14155550100", "text": "h\\u00e9llo \\u2713"}'),
    (CALL, body(**{"from": "14155550199",
                   "to": "33612345678<sip:john1234@phone.plivo.com",
                   "answer_url": "https://example.com/answer"}),
     {"33612345678"},
     b'{"from": "14155550199", "to": "sip:john1234@phone.plivo.com", '
     b'"answer_url": "https://example.com/answer"}'),
    (MESSAGE, body(src="14155550199", dst=["33612345678", "14155550100"], text="hi"),
     {"33612345678"},
     b'{"src": "14155550199", "dst": ["14155550100"], "text": "hi"}'),
], ids=["message-middle", "message-keeps-one", "message-duplicates-and-unicode",
        "call-keeps-sip", "message-array"])
def test_partial_removal_rewrites_the_body(path: str, raw: bytes, drop: set[str],
                                           expected: bytes) -> None:
    """Blocked recipients leave the `<`-joined field; every other byte is kept as sent
    (the SDK's spacing, `\\u` escapes)."""
    rewritten = recipients(path, raw).without(frozenset(drop))
    assert rewritten is not None
    assert rewritten.body == expected
    assert rewritten.query == ""


@pytest.mark.parametrize(("path", "raw", "drop"), [
    (MESSAGE, body(src="14155550199", dst="33612345678", text="hi"), {"33612345678"}),
    (MESSAGE, body(src="14155550199", dst="33612345678<14155550100", text="hi"),
     {"33612345678", "14155550100"}),
    (MESSAGE, body(src="14155550199", dst=33612345678, text="hi"), {"33612345678"}),
    (CALL, body(**{"from": "14155550199", "to": "33612345678<447700900123",
                   "answer_url": "https://x"}), {"33612345678", "447700900123"}),
    (MESSAGE, b'{"dst": "33612345678<14155550100", "DST": "447700900123"}', {"14155550100"}),
    (MESSAGE, b'{"dst": "33612345678<14155550100", "dst": "447700900123"}', {"14155550100"}),
], ids=["message-single", "message-all", "message-json-number", "call-all",
        "dst-in-two-cases", "dst-duplicated"])
def test_every_recipient_blocked_cannot_be_rewritten(path: str, raw: bytes,
                                                     drop: set[str]) -> None:
    """A send left with no destination is not rewritten (the upstream's on_block applies),
    nor is one whose `dst` servers could read two ways."""
    assert recipients(path, raw).without(frozenset(drop)) is None


# -------------------------------------------------------------------------- identities


def _basic(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{TOKEN}".encode()).decode()}


@pytest.mark.parametrize(("headers", "expected"), [
    (_basic(AUTH_ID), (AUTH_ID,)),
    (_basic("SA" + "B" * 18), (AUTH_ID, "SA" + "B" * 18)),
    ({}, (AUTH_ID,)),
    ({"Authorization": "Bearer abc"}, (AUTH_ID,)),
    ({"Authorization": "Basic !!!"}, (AUTH_ID,)),
], ids=["same-auth-id", "other-basic-user", "no-auth", "bearer", "bad-basic"])
def test_identities(headers: dict[str, str], expected: tuple[str, ...]) -> None:
    """The path's auth id and the Basic user, once each; never the token."""
    identities = PRESET.identities(Message(b"", "", headers), canonical(MESSAGE))
    assert identities == expected
    assert all(TOKEN not in i for i in identities)


# ------------------------------------------------------------------------------ replies


@pytest.mark.parametrize(("channel", "field"), [("sms", "dst"), ("voice", "to")])
def test_reject_is_plivo_error_and_sdk_raises_validation_error(channel: Channel,
                                                                field: str) -> None:
    """Reject: 400 `{"api_id", "error"}` naming the field; the SDK raises ValidationError
    with the text."""
    reply = send_route(channel).reject(blocked(channel, body(dst="33612345678")))
    assert reply.status == 400
    data = payload(reply)
    assert set(data) == {"api_id", "error"}
    UUID(data["api_id"])
    assert "block list" in data["error"]
    assert f"'{field}' is blocked" in data["error"]
    with pytest.raises(ValidationError, match="block list"):
        sdk_reads(reply)


@pytest.mark.parametrize(("raw", "count"), [
    (body(src="14155550199", dst="33612345678", text="hi"), 1),
    (body(src="14155550199", dst="33612345678<447700900123<33612345678", text="hi"), 2),
    (b"not json", 1),
], ids=["single", "bulk-with-duplicate", "unreadable-body"])
def test_skip_message_is_queued_reply_with_a_uuid_per_destination(raw: bytes,
                                                                   count: int) -> None:
    """Skip (sms): 202 `message(s) queued` with one fresh message_uuid per destination."""
    reply = send_route("sms").skip(blocked("sms", raw))
    assert reply.status == 202
    data = payload(reply)
    assert set(data) == {"api_id", "message", "message_uuid"}
    assert data["message"] == "message(s) queued"
    assert len(data["message_uuid"]) == count
    assert len({UUID(u) for u in data["message_uuid"]} | {UUID(data["api_id"])}) == count + 1
    assert sdk_reads(reply).message_uuid == data["message_uuid"]


def test_skip_single_call_is_call_fired() -> None:
    """Skip (voice, one destination): 201 `call fired` with one request_uuid."""
    reply = send_route("voice").skip(blocked("voice", body(**{"from": "14155550199",
                                                             "to": "33612345678"})))
    assert reply.status == 201
    data = payload(reply)
    assert set(data) == {"api_id", "message", "request_uuid"}
    assert data["message"] == "call fired"
    UUID(data["request_uuid"])
    assert sdk_reads(reply).request_uuid == data["request_uuid"]


def test_skip_bulk_call_is_calls_fired_with_a_uuid_each() -> None:
    """Skip (voice, several destinations): `calls fired` with a list of request_uuid."""
    reply = send_route("voice").skip(blocked("voice", body(
        **{"from": "14155550199", "to": "33612345678<447700900123"})))
    assert reply.status == 201
    data = payload(reply)
    assert data["message"] == "calls fired"
    assert len({UUID(u) for u in data["request_uuid"]}) == 2


def test_skip_gives_each_send_its_own_ids() -> None:
    """Two skips never share an id."""
    ids = {payload(send_route("sms").skip(blocked("sms", body(dst="33612345678"))))[
        "message_uuid"][0] for _ in range(20)}
    assert len(ids) == 20


# ------------------------------------------------- Verify sessions, multi-party participants

VERIFY = f"/v1/Account/{AUTH_ID}/Verify/Session/"
PARTICIPANT = f"/v1/Account/{AUTH_ID}/MultiPartyCall/name_sales/Participant/"


@pytest.mark.parametrize(("path", "channel"), [
    # A Verify code goes out by SMS or by a call: decided on both channels.
    (VERIFY, None),
    (f"/v1/Account/{AUTH_ID}/verify/sessions", None),
    (PARTICIPANT, "voice"),
    (f"/v1/Account/{AUTH_ID}/MultiPartyCall/uuid_1234/participant", "voice"),
    (f"/v1/Account/{AUTH_ID}/Verify/Session/5b4c8a6f/", PASSES),
    (f"/v1/Account/{AUTH_ID}/MultiPartyCall/name_sales/Participant/abc/", PASSES),
    (f"/v1/Account/{AUTH_ID}/MultiPartyCall/name_sales/", PASSES),
], ids=["verify", "verify-odd-spelling", "participant", "participant-by-uuid",
        "verify-code-check", "participant-update", "mpc-start"])
def test_verify_and_participant_routes(path: str, channel: str | None) -> None:
    """A Verify session and a dialled participant are sends; their follow-ups are not."""
    assert outcome(ROUTES, "POST", path) == channel


@pytest.mark.parametrize(("path", "raw", "expected"), [
    (VERIFY, body(recipient="33612345678", channel="sms"), ("33612345678",)),
    (VERIFY, body(recipient="+33612345678", channel="voice"), ("+33612345678",)),
    (PARTICIPANT, body(role="Agent", to="33612345678<33698765432"),
     ("33612345678", "33698765432")),
    (PARTICIPANT, body(role="Customer", call_uuid="8b1f3d0e"), ()),
], ids=["verify-sms", "verify-voice", "participant-agents", "participant-existing-call"])
def test_verify_and_participant_recipients(path: str, raw: bytes,
                                           expected: tuple[str, ...]) -> None:
    """`recipient` for Verify; `to` for a participant, none when it joins by call_uuid."""
    assert recipients(path, raw).values == expected


def test_verify_without_a_recipient_is_refused_not_forwarded() -> None:
    """A Verify session with no readable `recipient` is malformed."""
    found = find(VERIFY, body(channel="sms"))[2]
    assert isinstance(found, BodyError)
    assert found.code == "missing_destination"


def test_verify_and_participant_replies() -> None:
    """Reject names the field; skips are Plivo's own successes, read by the SDK."""
    verify = route_for(ROUTES, "POST", VERIFY)
    session = Blocked("req-1", None, "33612345678", {"auth_id": AUTH_ID},
                      Message(body(recipient="33612345678")), ("33612345678",))
    refused = verify.reject(session)
    assert refused.status == 400
    assert "'recipient' is blocked" in payload(refused)["error"]
    skipped = verify.skip(session)
    assert skipped.status == 202
    read = sdk_reads(skipped)
    assert read.message == "Session initiated"
    assert read.session_uuid
    route = route_for(ROUTES, "POST", PARTICIPANT)
    participant = Blocked("req-1", "voice", "33612345678",
                          {"auth_id": AUTH_ID, "mpc_id": "name_sales"},
                          Message(body(role="Agent", to="33612345678")), ("33612345678",))
    assert "'to' is blocked" in payload(route.reject(participant))["error"]
    added = route.skip(participant)
    assert added.status == 201
    assert sdk_reads(added).message == "add participant action initiated"


# ------------------------------------------------------------------- unauthorized, refuse


@pytest.mark.parametrize(("reply", "status", "error", "raised"), [
    (PRESET.unauthorized("req-9"), 401, "Authentication credentials invalid.",
     AuthenticationError),
    (PRESET.refuse(blocked(None, b"{}")), 400,
     "'to' is blocked: the destination number is on a block list.", ValidationError),
], ids=["unauthorized", "refuse"])
def test_unauthorized_and_refuse_are_plivo_errors(reply: Reply, status: int, error: str,
                                                  raised: type[Exception]) -> None:
    """401 and the scanned-write refusal carry Plivo's `{"api_id", "error"}`; the SDK
    raises its AuthenticationError and ValidationError."""
    assert reply.status == status
    data = payload(reply)
    assert set(data) == {"api_id", "error"}
    UUID(data["api_id"])
    assert data["error"] == error
    with pytest.raises(raised):
        sdk_reads(reply)

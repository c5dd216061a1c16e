"""The `prelude` preset on recorded request shapes: routes, recipients, rewriting, replies."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
from prelude_python_sdk.types import (
    NotifyReplyResponse,
    NotifySendBatchResponse,
    NotifySendResponse,
    TransactionalSendResponse,
    VerificationCreateResponse,
)

from gatekeeper.config import UpstreamConfig
from gatekeeper.numbers import parse_destination
from gatekeeper.providers import PRESETS
from gatekeeper.providers.listapi.prelude import PreludeLists
from gatekeeper.providers.locators import JsonPath
from gatekeeper.providers.prelude import EMAIL_TARGET, PRESET, VerificationTarget, new_id
from gatekeeper.providers.preset import Blocked, BodyError, Message, Recipients
from gatekeeper.replies import Reply
from tests.presets_helpers import PASSES, REFUSED, canonical, match, outcome, route_for

UPSTREAM = UpstreamConfig(name="prelude", url="https://api.prelude.dev", preset="prelude",
                          mount="/prelude")
ROUTES = PRESET.routes(UPSTREAM)
TOKEN = "sk_prelude_not_real"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
TEMPLATE = "template_01hynq6xyz0123456789abcdef"
A, B, C = "+33612345678", "+447700900123", "+14155550100"


def body(**fields: Any) -> bytes:
    """A JSON body as the SDK writes it: compact, UTF-8."""
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()


def find(path: str, raw: bytes) -> tuple[dict[str, str], Recipients | BodyError]:
    """Match a POST and locate its recipients."""
    found = match(ROUTES, "POST", path)
    assert found is not None, path
    route, params = found
    return params, route.locator.find(Message(raw, "", BEARER))


def recipients(path: str, raw: bytes) -> Recipients:
    """The recipients of a well-formed request."""
    result = find(path, raw)[1]
    assert isinstance(result, Recipients), result
    return result


def blocked(path: str, raw: bytes, *destinations: str) -> Blocked:
    """The context the proxy hands to reject/skip for this request."""
    params, _ = find(path, raw)
    channel = route_for(ROUTES, "POST", path).channel
    return Blocked("req-123", channel, destinations[0], params, Message(raw, "", BEARER),
                   destinations)


def reject(path: str, raw: bytes, *destinations: str) -> Reply:
    """The reject of the route POST `path` matches."""
    return route_for(ROUTES, "POST", path).reject(blocked(path, raw, *destinations))


def skip(path: str, raw: bytes, *destinations: str) -> Reply:
    """The skip of the route POST `path` matches."""
    return route_for(ROUTES, "POST", path).skip(blocked(path, raw, *destinations))


def payload(reply: Reply) -> Any:
    """A reply's JSON body."""
    assert reply.content_type == "application/json"
    return json.loads(reply.body)


# --------------------------------------------------------------------------- routes


ROUTE_CASES: list[tuple[str, str, str, str | None]] = [
    # (id, method, path, channel; None: both channels; or PASSES / REFUSED)
    # A verification may go by SMS, WhatsApp, RCS or a call: decided on both channels.
    ("verification", "POST", "/v2/verification", None),
    ("notify", "POST", "/v2/notify", "sms"),
    ("notify-batch", "POST", "/v2/notify/batch", "sms"),
    ("notify-reply", "POST", "/v2/notify/reply", "sms"),
    ("transactional", "POST", "/v2/transactional", "sms"),
    ("upper-case", "POST", "/V2/VERIFICATION", None),
    ("mixed-case", "POST", "/v2/Notify/Batch", "sms"),
    ("trailing-slash", "POST", "/v2/notify/", "sms"),
    ("doubled-slashes", "POST", "//v2//notify//batch", "sms"),
    ("percent-letter", "POST", "/v2/%6Eotify", "sms"),
    # A PUT or PATCH on a send path is checked like the POST.
    ("put-notify", "PUT", "/v2/notify", "sms"),
    ("patch-verification", "PATCH", "/v2/verification", None),
    # Spellings some server would read differently are refused before routing.
    ("percent-slash", "POST", "/v2/notify%2Fbatch", REFUSED),
    ("dot-dot", "POST", "/v2/lookup/../transactional", REFUSED),
    # Not sends: checks, management, lookups, reads, other methods.
    ("verification-check", "POST", "/v2/verification/check", PASSES),
    ("management-block", "POST", "/v2/verification/management/phone-numbers/block", PASSES),
    ("management-list", "GET", "/v2/verification/management/phone-numbers/block", PASSES),
    ("subscriptions", "GET", "/v2/notify/management/subscriptions", PASSES),
    ("lookup", "GET", f"/v2/lookup/{A}", PASSES),
    ("watch-predict", "POST", "/v2/watch/predict", PASSES),
    ("get-verification", "GET", "/v2/verification", PASSES),
    ("delete-notify", "DELETE", "/v2/notify", PASSES),
    ("suffix-in-name", "POST", "/v2/notifyx", PASSES),
    ("other-version", "POST", "/v3/notify", PASSES),
    ("unversioned", "POST", "/notify", PASSES),
]


@pytest.mark.parametrize(("method", "path", "channel"), [c[1:] for c in ROUTE_CASES],
                         ids=[c[0] for c in ROUTE_CASES])
def test_routes(method: str, path: str, channel: str | None) -> None:
    """Every send is intercepted however it is spelt (or the spelling is refused);
    anything else passes through."""
    assert outcome(ROUTES, method, path) == channel
    if channel in (PASSES, REFUSED):
        return
    found = match(ROUTES, method, path)
    assert found is not None
    route, params = found
    assert params == {}
    verification = canonical(path).lower() == "/v2/verification"
    assert route.locator == (VerificationTarget() if verification else JsonPath("to"))


def test_preset_is_registered_with_its_settings() -> None:
    """Registered as `prelude`; numbers are E.164 with '+', no default region."""
    assert PRESETS["prelude"] is PRESET
    assert (PRESET.msisdn, PRESET.default_region) == (False, None)


# --------------------------------------------------------------------------- recipients


FIND_CASES: list[tuple[str, str, bytes, tuple[str, ...] | str]] = [
    # (id, path, body, recipients or the BodyError code)
    ("verify-phone", "/v2/verification",
     body(target={"type": "phone_number", "value": A}, options={"locale": "fr-FR"}), (A,)),
    ("verify-email", "/v2/verification",
     body(target={"type": "email_address", "value": "ada@example.com"}), (EMAIL_TARGET,)),
    ("verify-no-type-checked-as-phone", "/v2/verification", body(target={"value": A}), (A,)),
    ("verify-unknown-type-checked-as-phone", "/v2/verification",
     body(target={"type": "EMAIL_ADDRESS", "value": A}), (A,)),
    ("verify-no-target", "/v2/verification", body(dispatch_id="d-1"), "missing_destination"),
    ("verify-null-target", "/v2/verification", body(target=None), "missing_destination"),
    ("verify-target-string", "/v2/verification", body(target=A), "invalid_destination_field"),
    ("verify-value-number", "/v2/verification",
     body(target={"type": "phone_number", "value": 33612345678}), "invalid_destination_field"),
    ("verify-value-blank", "/v2/verification",
     body(target={"type": "phone_number", "value": " "}), "invalid_destination_field"),
    ("verify-array-body", "/v2/verification", b"[]", "missing_destination"),
    ("verify-bad-json", "/v2/verification", b'{"target":', "invalid_json"),
    ("notify", "/v2/notify", body(template_id=TEMPLATE, to=A, variables={"c": "1"}), (A,)),
    ("notify-no-to", "/v2/notify", body(template_id=TEMPLATE), "missing_destination"),
    ("notify-to-number", "/v2/notify", body(template_id=TEMPLATE, to=33612345678),
     "invalid_destination_field"),
    ("notify-bad-json", "/v2/notify", b"to=+33612345678", "invalid_json"),
    ("batch", "/v2/notify/batch", body(template_id=TEMPLATE, to=[A, B, C]), (A, B, C)),
    ("batch-duplicates", "/v2/notify/batch", body(template_id=TEMPLATE, to=[A, B, A]),
     (A, B, A)),
    ("batch-empty", "/v2/notify/batch", body(template_id=TEMPLATE, to=[]),
     "missing_destination"),
    ("batch-object-inside", "/v2/notify/batch", body(template_id=TEMPLATE, to=[{"n": A}]),
     "invalid_destination_field"),
    ("reply", "/v2/notify/reply", body(reply_to="im_01abc", text="hi", to=A), (A,)),
    ("transactional", "/v2/transactional", body(template_id=TEMPLATE, to=B), (B,)),
    ("verify-target-in-two-cases", "/v2/verification",
     b'{"target": {"type": "phone_number", "value": "+33612345678"}, '
     b'"Target": {"value": "+447700900123"}}', (A, B)),
    ("verify-value-duplicated", "/v2/verification",
     b'{"target": {"type": "phone_number", "value": "+33612345678", '
     b'"value": "+447700900123"}}', (A, B)),
    ("verify-email-type-duplicated", "/v2/verification",
     b'{"target": {"type": "email_address", "type": "phone_number", '
     b'"value": "+33612345678"}}', (A,)),
    ("notify-to-in-two-cases", "/v2/notify", b'{"to": "+33612345678", "TO": "+447700900123"}',
     (A, B)),
]


@pytest.mark.parametrize(("path", "raw", "expected"), [c[1:] for c in FIND_CASES],
                         ids=[c[0] for c in FIND_CASES])
def test_find_recipients(path: str, raw: bytes, expected: tuple[str, ...] | str) -> None:
    """Recipients as the SDK sends them, or the error code for a bad body."""
    result = find(path, raw)[1]
    if isinstance(expected, str):
        assert isinstance(result, BodyError)
        assert result.code == expected
    else:
        assert isinstance(result, Recipients)
        assert result.values == expected


def test_email_target_is_not_a_phone_number() -> None:
    """The email stand-in is forwarded as a non-phone destination, never as invalid."""
    assert parse_destination(EMAIL_TARGET).kind == "not_phone"


REMOVE_CASES: list[tuple[str, bytes, frozenset[str], bytes | None]] = [
    ("batch-one-of-three", body(template_id=TEMPLATE, to=[A, B, C]), frozenset({B}),
     body(template_id=TEMPLATE, to=[A, C])),
    ("batch-duplicates-all-go", body(template_id=TEMPLATE, to=[B, A, B], variables={"x": "é"}),
     frozenset({B}), body(template_id=TEMPLATE, to=[A], variables={"x": "é"})),
    ("batch-two-of-three", body(to=[A, B, C], template_id=TEMPLATE), frozenset({A, C}),
     body(to=[B], template_id=TEMPLATE)),
    ("batch-nothing-blocked", body(template_id=TEMPLATE, to=[A, B]), frozenset(),
     body(template_id=TEMPLATE, to=[A, B])),
]


@pytest.mark.parametrize(("raw", "removed", "expected"), [c[1:] for c in REMOVE_CASES],
                         ids=[c[0] for c in REMOVE_CASES])
def test_batch_partial_removal(raw: bytes, removed: frozenset[str], expected: bytes) -> None:
    """Blocked numbers leave the `to` array; every other byte stays as sent (compact, UTF-8)."""
    rewritten = recipients("/v2/notify/batch", raw).without(removed)
    assert rewritten is not None
    assert rewritten.body == expected
    assert rewritten.headers == BEARER


@pytest.mark.parametrize(("path", "raw"), [
    ("/v2/notify", body(template_id=TEMPLATE, to=A)),
    ("/v2/transactional", body(template_id=TEMPLATE, to=A)),
    ("/v2/notify/reply", body(reply_to="im_1", text="hi", to=A)),
    ("/v2/verification", body(target={"type": "phone_number", "value": A})),
    ("/v2/notify/batch", b'{"to": ["+33612345678", "+447700900123"], '
                         b'"To": ["+14155550100"]}'),
], ids=["notify", "transactional", "reply", "verification", "batch-to-in-two-cases"])
def test_single_recipient_sends_cannot_be_edited(path: str, raw: bytes) -> None:
    """A lone recipient is never removed on its own, nor one servers could read two ways:
    the whole send is decided."""
    assert recipients(path, raw).without(frozenset({A})) is None


# --------------------------------------------------------------------------- identities


@pytest.mark.parametrize(("headers", "expected"), [
    (BEARER, ("sha256:" + hashlib.sha256(TOKEN.encode()).hexdigest(),)),
    ({"Authorization": f"bearer  {TOKEN} "},
     ("sha256:" + hashlib.sha256(TOKEN.encode()).hexdigest(),)),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, ()),
    ({"Authorization": "Bearer "}, ()),
    ({}, ()),
], ids=["bearer", "bearer-lower-case-spaces", "basic", "empty-token", "none"])
def test_identities(headers: dict[str, str], expected: tuple[str, ...]) -> None:
    """Only the digest of the Bearer token, never the token itself."""
    found = PRESET.identities(Message(b"{}", "", headers), canonical("/v2/notify"))
    assert found == expected
    assert all(TOKEN not in identity for identity in found)


# --------------------------------------------------------------------------- replies


def test_new_id_is_a_prefixed_lower_case_ulid() -> None:
    """Ids look like Prelude's (`vrf_` + 26 Crockford base-32 characters) and differ."""
    ids = {new_id("vrf_") for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"vrf_[0-9a-hjkmnp-tv-z]{26}", i) for i in ids)


def test_verification_reject_is_a_blocked_verification() -> None:
    """HTTP 200 with status `blocked`: the SDK's normal result, validated by its model."""
    raw = body(target={"type": "phone_number", "value": B},
               metadata={"correlation_id": "signup-42"})
    reply = reject("/v2/verification", raw, B)
    assert reply.status == 200
    got = payload(reply)
    assert got["id"].startswith("vrf_")
    assert {k: v for k, v in got.items() if k != "id"} == {
        "method": "message", "status": "blocked", "reason": "in_block_list",
        "request_id": "req-123", "metadata": {"correlation_id": "signup-42"}}
    VerificationCreateResponse.model_validate(got, strict=True)


@pytest.mark.parametrize(("options", "method", "channels"), [
    (None, "message", ["sms"]),
    ({"method": "voice"}, "voice", ["voice"]),
    ({"preferred_channel": "whatsapp"}, "message", ["whatsapp"]),
    ({"channels": ["rcs", "sms"]}, "message", ["rcs"]),
    ({"preferred_channel": "carrier-pigeon"}, "message", ["sms"]),
], ids=["default", "voice", "preferred-channel", "channels-list", "unknown-channel"])
def test_verification_skip_is_a_success(options: dict[str, Any] | None, method: str,
                                        channels: list[str]) -> None:
    """HTTP 200 with status `success`, the method and channel the options asked for."""
    fields: dict[str, Any] = {"target": {"type": "phone_number", "value": B}}
    if options is not None:
        fields["options"] = options
    reply = skip("/v2/verification", body(**fields), B)
    assert reply.status == 200
    got = payload(reply)
    assert (got["status"], got["method"], got["channels"]) == ("success", method, channels)
    assert "reason" not in got
    VerificationCreateResponse.model_validate(got, strict=True)


@pytest.mark.parametrize(("path", "raw"), [
    ("/v2/notify", body(template_id=TEMPLATE, to=B)),
    ("/v2/notify/batch", body(template_id=TEMPLATE, to=[B])),
    ("/v2/notify/reply", body(reply_to="im_1", text="hi", to=B)),
    ("/v2/transactional", body(template_id=TEMPLATE, to=B)),
], ids=["notify", "batch", "reply", "transactional"])
def test_message_reject_is_a_bad_request(path: str, raw: bytes) -> None:
    """400 in Prelude's error shape (the SDK raises BadRequestError)."""
    reply = reject(path, raw, B)
    assert reply.status == 400
    assert payload(reply) == {
        "code": "blocked_number",
        "message": "The phone number is in the block list; the message was not sent.",
        "type": "bad_request", "request_id": "req-123"}


def test_notify_skip_echoes_the_send() -> None:
    """The notify resource with the request's own fields and a fresh `msg_` id."""
    raw = body(template_id=TEMPLATE, to=B, variables={"code": "123"}, correlation_id="c-1",
               callback_url="https://example.com/hook", **{"from": "Acme"},
               expires_at="2026-05-02T10:00:00Z")
    got = payload(skip("/v2/notify", raw, B))
    assert got["id"].startswith("msg_")
    assert {k: got[k] for k in ("to", "template_id", "variables", "correlation_id",
                                "callback_url", "from", "expires_at")} == {
        "to": B, "template_id": TEMPLATE, "variables": {"code": "123"},
        "correlation_id": "c-1", "callback_url": "https://example.com/hook", "from": "Acme",
        "expires_at": "2026-05-02T10:00:00Z"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", got["created_at"])
    NotifySendResponse.model_validate(got)


def test_transactional_skip_uses_its_own_shape() -> None:
    """A `tx_` id and the transactional fields; an expiry is made up when none was sent."""
    got = payload(skip("/v2/transactional", body(template_id=TEMPLATE, to=B), B))
    assert got["id"].startswith("tx_")
    assert got["expires_at"] > got["created_at"]
    TransactionalSendResponse.model_validate(got)


def test_reply_skip_echoes_the_reply() -> None:
    """The reply resource: reply_to, text and to as sent."""
    got = payload(skip("/v2/notify/reply", body(reply_to="im_01abc", text="hi", to=B), B))
    assert (got["reply_to"], got["text"], got["to"]) == ("im_01abc", "hi", B)
    NotifyReplyResponse.model_validate(got)


def test_batch_skip_reports_every_recipient_refused() -> None:
    """Honest counts: nothing sent, each blocked number listed once, in request order."""
    raw = body(template_id=TEMPLATE, to=[C, B, C], variables={"x": "1"})
    got = payload(skip("/v2/notify/batch", raw, B, C))
    assert (got["total_count"], got["success_count"], got["error_count"]) == (2, 0, 2)
    assert [(r["phone_number"], r["success"], r["error"]["code"]) for r in got["results"]] == [
        (C, False, "blocked_number"), (B, False, "blocked_number")]
    assert (got["template_id"], got["variables"], got["request_id"]) == (
        TEMPLATE, {"x": "1"}, "req-123")
    NotifySendBatchResponse.model_validate(got)


# ------------------------------------------------------------------- unauthorized, refuse


@pytest.mark.parametrize(("reply", "status", "expected"), [
    (PRESET.unauthorized("req-9"), 401,
     {"code": "invalid_api_key", "message": "The provided API key is invalid.",
      "type": "unauthorized", "request_id": "req-9"}),
    (PRESET.refuse(Blocked("req-9", None, B)), 400,
     {"code": "blocked_number",
      "message": "The phone number is in the block list; the message was not sent.",
      "type": "bad_request", "request_id": "req-9"}),
], ids=["unauthorized", "refuse"])
def test_unauthorized_and_refuse_are_prelude_errors(reply: Reply, status: int,
                                                    expected: dict[str, str]) -> None:
    """401 and the scanned-write refusal in Prelude's error shape (the SDK raises
    AuthenticationError and BadRequestError)."""
    assert reply.status == status
    assert payload(reply) == expected


# ----------------------------------------------------------------------------- list API


@pytest.mark.parametrize(("method", "path", "served"), [
    ("POST", "/v2/verification/management/phone-numbers/block", True),
    ("DELETE", "/v2/verification/management/phone-numbers/allow", True),
    ("GET", "/v2/verification/management/phone-numbers/block", True),
    ("POST", "/v2/verification/management/phone-numbers/BLOCK/", True),
    ("POST", "//v2/verification/management/phone-numbers//block", True),
    ("POST", "/v2/verification/management/phone-numbers/%62lock", True),
    ("PUT", "/v2/verification/management/phone-numbers/block", False),
    ("GET", "/v2/verification/management/phone-numbers/sandbox", False),
    ("POST", "/v2/verification", False),
], ids=["add-block", "delete-allow", "list", "upper-case-trailing-slash", "doubled-slashes",
        "percent-letter", "put", "sandbox", "send"])
def test_list_api_matches_the_canonical_management_paths(method: str, path: str,
                                                         served: bool) -> None:
    """The preset's list API answers its management calls, on the path as routes see it."""
    assert isinstance(PRESET.list_api, PreludeLists)
    assert PRESET.list_api.matches(method, canonical(path)) is served

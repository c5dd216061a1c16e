"""The `sinch` preset on recorded request shapes: routes, recipients, rewriting, replies."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
from sinch.domains.sms.models.v1.response.dry_run_response import DryRunResponse
from sinch.domains.sms.models.v1.response.group_response import GroupResponse
from sinch.domains.sms.models.v1.shared.text_response import TextResponse

from gatekeeper.config import UpstreamConfig
from gatekeeper.numbers import parse_destination
from gatekeeper.providers import PRESETS
from gatekeeper.providers.preset import Blocked, BodyError, Message, Recipients, Route
from gatekeeper.providers.sinch import PRESET, new_id
from gatekeeper.replies import Reply
from gatekeeper.types import Channel
from tests.presets_helpers import PASSES, REFUSED, canonical, match, outcome

PLAN = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
TOKEN = "sms-api-token-not-real"
BATCH_ID = "01FC66621XXXXX119Z8PMV1QPQ"
GROUP_ID = "01FC66621VHDBN119Z8Y0S4D5M"
UPSTREAM = UpstreamConfig(name="sinch", url="https://us.sms.api.sinch.com", preset="sinch",
                          mount="/sinch")
ROUTES = PRESET.routes(UPSTREAM)
BATCHES = f"/xms/v1/{PLAN}/batches"
GROUPS = f"/xms/v1/{PLAN}/groups"
ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


def body(**fields: Any) -> bytes:
    """A JSON body as the SDK sends it (`json.dumps`, default separators)."""
    return json.dumps(fields).encode()


def send_body(*to: str) -> bytes:
    """A text batch exactly as `client.sms.batches.send_sms` serialises it."""
    return body(to=list(to), **{"from": "+12025550123"}, body="hi", type="mt_text")


def find(method: str, path: str, raw: bytes) -> tuple[Route, dict[str, str],
                                                      Recipients | BodyError]:
    """Match a request and locate its recipients."""
    found = match(ROUTES, method, path)
    assert found is not None, (method, path)
    route, params = found
    return route, params, route.locator.find(Message(raw, "", {}))


def recipients(method: str, path: str, raw: bytes) -> Recipients:
    """The recipients of a well-formed request."""
    result = find(method, path, raw)[2]
    assert isinstance(result, Recipients), result
    return result


def payload(reply: Reply) -> Any:
    """A reply's JSON body."""
    assert reply.content_type == "application/json"
    return json.loads(reply.body)


def answer(kind: str, method: str, path: str, raw: bytes, *destinations: str) -> Reply:
    """The `reject` or `skip` of the route a request matches, given its context (the path's
    captures as the proxy hands them over)."""
    route, params, _ = find(method, path, raw)
    channel: Channel | None = route.channel
    context = Blocked("req-1", channel, destinations[0], params, Message(raw), destinations)
    return route.reject(context) if kind == "reject" else route.skip(context)


# ------------------------------------------------------------------------------ routes


def test_registered_under_its_name() -> None:
    """The registry holds this module's preset under `sinch`."""
    assert PRESETS["sinch"] is PRESET


@pytest.mark.parametrize(("method", "path", "params"), [
    ("POST", BATCHES, {}),
    ("POST", BATCHES + "/", {}),
    ("POST", f"/XMS/V1/{PLAN}/Batches", {}),
    ("POST", f"//xms//v1/{PLAN}//batches", {}),
    ("POST", f"/xms/v1/{PLAN}/%62atches", {}),
    ("POST", BATCHES + "/dry_run", {}),
    ("POST", BATCHES + "/DRY_RUN", {}),
    ("PUT", f"{BATCHES}/{BATCH_ID}", {"batch_id": BATCH_ID}),
    ("POST", f"{BATCHES}/{BATCH_ID}", {"batch_id": BATCH_ID}),
    ("PATCH", f"{BATCHES}/{BATCH_ID}", {"batch_id": BATCH_ID}),
    ("PUT", BATCHES, {}),
    ("POST", GROUPS, {}),
    ("PUT", f"{GROUPS}/{GROUP_ID}", {"group_id": GROUP_ID}),
    ("POST", f"{GROUPS}/{GROUP_ID}", {"group_id": GROUP_ID}),
    ("PATCH", f"{GROUPS}/{GROUP_ID}", {"group_id": GROUP_ID}),
], ids=["send", "send-trailing-slash", "send-uppercase", "send-doubled-slashes",
        "send-percent-encoded", "dry-run", "dry-run-uppercase", "replace", "update",
        "update-patch", "put-on-send", "group-create", "group-replace", "group-update",
        "group-update-patch"])
def test_routes_intercepted(method: str, path: str, params: dict[str, str]) -> None:
    """Every request that can add recipients is an sms route, however it is spelled; the
    plan id and the batch or group id are captured."""
    assert outcome(ROUTES, method, path) == "sms"
    found_route = match(ROUTES, method, path)
    assert found_route is not None
    assert found_route[1] == {"service_plan_id": PLAN, **params}


@pytest.mark.parametrize("path", [f"/xms/v1/{PLAN}/inbounds/../batches",
                                  f"/xms/v1/{PLAN}%2Fbatches"],
                         ids=["send-dot-dot", "send-encoded-slash"])
def test_odd_spellings_are_refused(path: str) -> None:
    """Spellings some server would read differently never reach the routes."""
    assert outcome(ROUTES, "POST", path) == REFUSED


@pytest.mark.parametrize(("method", "path", "field"), [
    ("POST", BATCHES, "to"), ("POST", BATCHES + "/dry_run", "to"),
    ("PUT", f"{BATCHES}/{BATCH_ID}", "to"), ("POST", f"{BATCHES}/{BATCH_ID}", "to_add"),
    ("PATCH", f"{BATCHES}/{BATCH_ID}", "to_add"), ("POST", GROUPS, "members"),
    ("PUT", f"{GROUPS}/{GROUP_ID}", "members"), ("POST", f"{GROUPS}/{GROUP_ID}", "add"),
    ("PATCH", f"{GROUPS}/{GROUP_ID}", "add"),
], ids=["send", "dry-run", "replace", "update", "update-patch", "group-create",
        "group-replace", "group-update", "group-update-patch"])
def test_each_route_reads_its_own_field(method: str, path: str, field: str) -> None:
    """Which array holds the recipients depends on the route."""
    raw = json.dumps({field: ["46701234567"]}).encode()
    assert recipients(method, path, raw).values == ("46701234567",)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", BATCHES),
    ("GET", f"{BATCHES}/{BATCH_ID}"),
    ("DELETE", f"{BATCHES}/{BATCH_ID}"),
    ("POST", f"{BATCHES}/{BATCH_ID}/delivery_feedback"),
    ("GET", f"{BATCHES}/{BATCH_ID}/delivery_report"),
    ("GET", f"{GROUPS}/{GROUP_ID}/members"),
    ("DELETE", f"{GROUPS}/{GROUP_ID}"),
    ("GET", f"/xms/v1/{PLAN}/inbounds"),
    ("POST", "/xms/v1/batches"),
], ids=["list-batches", "get-batch", "cancel-batch", "delivery-feedback", "delivery-report",
        "group-members", "delete-group", "inbounds", "no-plan"])
def test_routes_passed_through(method: str, path: str) -> None:
    """Reads, cancels and feedback send nothing: they are not checked."""
    assert outcome(ROUTES, method, path) == PASSES


# --------------------------------------------------------------------------- recipients


@pytest.mark.parametrize(("method", "path", "raw", "expected"), [
    ("POST", BATCHES, send_body("+46701234567"), ("+46701234567",)),
    ("POST", BATCHES, send_body("+46701234567", "46701234568", "+46701234567"),
     ("+46701234567", "46701234568", "+46701234567")),
    ("POST", BATCHES, send_body("46701234567", GROUP_ID),
     ("46701234567", f"client:group:{GROUP_ID}")),
    ("POST", BATCHES, body(to=["+46701234567"], body={"url": "https://x/y.jpg"},
                           type="mt_media"), ("+46701234567",)),
    ("POST", BATCHES + "/dry_run", send_body("+46701234567"), ("+46701234567",)),
    ("PUT", f"{BATCHES}/{BATCH_ID}", send_body("+46701234567"), ("+46701234567",)),
    ("POST", f"{BATCHES}/{BATCH_ID}", body(type="mt_text", to_add=["+46701234567"],
                                           body="y"), ("+46701234567",)),
    ("POST", f"{BATCHES}/{BATCH_ID}", body(type="mt_text", body="changed"), ()),
    ("POST", f"{BATCHES}/{BATCH_ID}", body(to_add=None, to_remove=["+46701234567"]), ()),
    ("POST", f"{BATCHES}/{BATCH_ID}", body(to_add=[], body="y"), ()),
    ("POST", GROUPS, body(name="g", members=["+46701234567", "46701234568"]),
     ("+46701234567", "46701234568")),
    ("POST", GROUPS, body(name="empty"), ()),
    ("PUT", f"{GROUPS}/{GROUP_ID}", body(members=["+46701234567"]), ("+46701234567",)),
    ("POST", f"{GROUPS}/{GROUP_ID}",
     body(add=["+46701234567"], remove=None, name=None, add_from_group=None,
          remove_from_group=None, auto_update=None), ("+46701234567",)),
    ("POST", f"{GROUPS}/{GROUP_ID}", body(remove=["+46701234567"], add=None), ()),
], ids=["send-one", "send-many-with-duplicate", "send-with-group-id", "send-mms",
        "dry-run", "replace", "update-adds", "update-text-only", "update-to-add-null",
        "update-to-add-empty", "group-create", "group-create-no-members", "group-replace",
        "group-update-sdk-shape", "group-update-removes-only"])
def test_recipients_found(method: str, path: str, raw: bytes,
                          expected: tuple[str, ...]) -> None:
    """`to`, `to_add`, `members` and `add` in order; requests adding nobody have none."""
    assert recipients(method, path, raw).values == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("46701234567", ("phone", "+46701234567")),
    ("+46701234567", ("phone", "+46701234567")),
    (f"client:group:{GROUP_ID}", ("not_phone", None)),
], ids=["msisdn", "e164", "group-id"])
def test_sinch_numbers_with_or_without_plus(raw: str, expected: tuple[str, str | None]
                                            ) -> None:
    """Sinch takes MSISDNs with or without `+`; group IDs are not phone numbers."""
    assert PRESET.msisdn is True
    found = parse_destination(raw, UPSTREAM.region or PRESET.default_region, PRESET.msisdn)
    assert (found.kind, found.e164) == expected


@pytest.mark.parametrize(("method", "path", "raw", "code"), [
    ("POST", BATCHES, b"to=46701234567&body=hi", "invalid_json"),
    ("POST", BATCHES, b"", "invalid_json"),
    ("POST", BATCHES, b"\xff", "invalid_json"),
    ("POST", BATCHES, body(body="hi"), "missing_destination"),
    ("POST", BATCHES, body(to=[], body="hi"), "missing_destination"),
    ("POST", BATCHES, body(to=[" "], body="hi"), "missing_destination"),
    ("POST", BATCHES, body(to=[46701234567], body="hi"), "invalid_destination_field"),
    ("POST", BATCHES, body(to=None, body="hi"), "invalid_destination_field"),
    ("POST", BATCHES, body(to=[{"number": "+46701234567"}]), "invalid_destination_field"),
    ("POST", BATCHES + "/dry_run", body(body="hi"), "missing_destination"),
    ("POST", f"{BATCHES}/{BATCH_ID}", b"{", "invalid_json"),
    ("POST", f"{BATCHES}/{BATCH_ID}", body(to_add=[True]), "invalid_destination_field"),
    ("POST", f"{GROUPS}/{GROUP_ID}", body(add=[["+46701234567"]]),
     "invalid_destination_field"),
    ("POST", BATCHES, b'{"to": ["+46701234567"], "TO": [46701234568]}',
     "invalid_destination_field"),
], ids=["form-body", "empty", "not-utf8", "no-to", "empty-to", "blank-to", "number-in-to",
        "null-to", "object-in-to", "dry-run-no-to", "update-broken-json",
        "update-to-add-bool", "group-add-nested-array", "case-variant-holds-a-number"])
def test_malformed_bodies(method: str, path: str, raw: bytes, code: str) -> None:
    """Unusable bodies are refused with a code, never forwarded unchecked."""
    result = find(method, path, raw)[2]
    assert isinstance(result, BodyError)
    assert result.code == code


def test_a_string_instead_of_an_array_is_one_value() -> None:
    """A comma-joined string is one value, an invalid number: it cannot hide a recipient."""
    result = find("POST", f"{BATCHES}/{BATCH_ID}", body(to_add="+46701234567,46701234568"))[2]
    assert isinstance(result, Recipients)
    assert result.values == ("+46701234567,46701234568",)
    decided = parse_destination(result.values[0], None, PRESET.msisdn)
    # Refused as invalid, or both numbers are looked up: the second cannot slip through.
    assert decided.kind == "invalid" or {"+46701234567", "+46701234568"} <= set(decided.keys)


# --------------------------------------------------------------------------- rewriting


@pytest.mark.parametrize(("method", "path", "raw", "drop", "expected"), [
    ("POST", BATCHES, send_body("+46701234567", "46701234568"), {"+46701234567"},
     b'{"to": ["46701234568"], "from": "+12025550123", "body": "hi", "type": "mt_text"}'),
    ("POST", BATCHES, send_body("+46701234567", "46701234568", "+46701234567"),
     {"+46701234567"},
     b'{"to": ["46701234568"], "from": "+12025550123", "body": "hi", "type": "mt_text"}'),
    ("POST", BATCHES, send_body("46701234567", GROUP_ID, "46701234568"), {"46701234567"},
     b'{"to": ["' + GROUP_ID.encode() + b'", "46701234568"], "from": "+12025550123", '
     b'"body": "hi", "type": "mt_text"}'),
    ("POST", BATCHES + "/dry_run", send_body("46701234567", "46701234568"),
     {"46701234568"},
     b'{"to": ["46701234567"], "from": "+12025550123", "body": "hi", "type": "mt_text"}'),
    ("PUT", f"{BATCHES}/{BATCH_ID}", send_body("46701234567", "46701234568"),
     {"46701234567"},
     b'{"to": ["46701234568"], "from": "+12025550123", "body": "hi", "type": "mt_text"}'),
    ("POST", f"{BATCHES}/{BATCH_ID}",
     body(type="mt_text", to_add=["+46701234567", "+46701234568"], body="y"),
     {"+46701234568"}, b'{"type": "mt_text", "to_add": ["+46701234567"], "body": "y"}'),
    ("POST", GROUPS, body(name="g", members=["+46701234567", "+46701234568"]),
     {"+46701234567"}, b'{"name": "g", "members": ["+46701234568"]}'),
    ("POST", f"{GROUPS}/{GROUP_ID}", body(add=["+46701234567", "+46701234568"], remove=None),
     {"+46701234567"}, b'{"add": ["+46701234568"], "remove": null}'),
    ("POST", BATCHES, body(to=["+46701234567", "46701234568"], body="h\u00e9 \u2713"),
     {"46701234568"}, b'{"to": ["+46701234567"], "body": "h\\u00e9 \\u2713"}'),
    ("POST", BATCHES, '{"to":["+46701234567","46701234568"],"body":"h\u00e9"}'.encode(),
     {"46701234568"}, '{"to":["+46701234567"],"body":"h\u00e9"}'.encode()),
], ids=["send", "send-duplicates", "send-keeps-group-id", "dry-run", "replace", "update",
        "group-create", "group-update", "unicode-escapes-kept", "raw-utf8-and-compact-kept"])
def test_blocked_recipients_removed(method: str, path: str, raw: bytes, drop: set[str],
                                    expected: bytes) -> None:
    """Dropping recipients keeps every other byte of the body as the client sent it."""
    rewritten = recipients(method, path, raw).without(frozenset(drop))
    assert rewritten is not None
    assert rewritten.body == expected


@pytest.mark.parametrize("raw", [
    b'{"to": ["46701234567", "46701234568"], "TO": ["46701234569"]}',
    b'{"to": ["46701234567", "46701234568"], "to": ["46701234569"]}',
], ids=["case-variant", "duplicate-key"])
def test_recipients_read_two_ways_are_all_checked_never_edited(raw: bytes) -> None:
    """Every duplicate and case variant of `to` counts, and such a batch is never edited."""
    found = recipients("POST", BATCHES, raw)
    assert set(found.values) == {"46701234567", "46701234568", "46701234569"}
    assert found.without(frozenset({"46701234567"})) is None


def test_rewrite_keeps_query_and_headers() -> None:
    """Only the body changes: a dry run's query options and the headers stay."""
    route, _, _ = find("POST", BATCHES + "/dry_run", b"{}")
    message = Message(send_body("46701234567", "46701234568"),
                      "per_recipient=true&number_of_recipients=2",
                      {"Authorization": f"Bearer {TOKEN}"})
    found = route.locator.find(message)
    assert isinstance(found, Recipients)
    rewritten = found.without(frozenset({"46701234567"}))
    assert rewritten is not None
    assert rewritten.query == message.query
    assert rewritten.headers == message.headers


# --------------------------------------------------------------------------- identities


@pytest.mark.parametrize(("headers", "expected"), [
    ({"Authorization": f"Bearer {TOKEN}"},
     (PLAN, "sha256:" + hashlib.sha256(TOKEN.encode()).hexdigest())),
    ({"Authorization": f"bearer  {TOKEN} "},
     (PLAN, "sha256:" + hashlib.sha256(TOKEN.encode()).hexdigest())),
    ({}, (PLAN,)),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, (PLAN,)),
    ({"Authorization": "Bearer "}, (PLAN,)),
], ids=["bearer", "bearer-lowercase-padded", "none", "basic-ignored", "empty-bearer"])
def test_identities(headers: dict[str, str], expected: tuple[str, ...]) -> None:
    """The plan id from the path and the Bearer token's digest, never the token itself."""
    found = PRESET.identities(Message(b"", "", headers), canonical(BATCHES))
    assert found == expected
    assert TOKEN not in "".join(found)


# ------------------------------------------------------------------------------ replies


def test_reject_is_sinch_forbidden() -> None:
    """403 with Sinch's error shape; the SDK raises SmsException on any 4xx."""
    for method, path in (("POST", BATCHES), ("POST", f"{GROUPS}/{GROUP_ID}")):
        reply = answer("reject", method, path, send_body("46701234567"), "46701234567")
        assert reply.status == 403
        assert payload(reply) == {
            "code": "forbidden",
            "text": "The recipient is on a block list: the request was not sent.",
        }


@pytest.mark.parametrize(("method", "path", "raw", "status", "to", "batch_id"), [
    ("POST", BATCHES, send_body("46701234567", "+46701234568"), 201,
     ["46701234567", "+46701234568"], None),
    ("PUT", f"{BATCHES}/{BATCH_ID}", send_body("46701234567"), 200, ["46701234567"],
     BATCH_ID),
    ("POST", f"{BATCHES}/{BATCH_ID}",
     body(type="mt_text", to_add=["46701234567"], body="hi", **{"from": "+12025550123"}),
     200, ["46701234567"], BATCH_ID),
], ids=["send", "replace", "update"])
def test_skip_is_a_canceled_batch(method: str, path: str, raw: bytes, status: int,
                                  to: list[str], batch_id: str | None) -> None:
    """A batch like Sinch's, echoing the request, canceled because nothing is sent."""
    reply = answer("skip", method, path, raw, *to)
    assert reply.status == status
    batch = payload(reply)
    assert batch["to"] == to
    assert batch["from"] == "+12025550123"
    assert batch["body"] == "hi"
    assert batch["type"] == "mt_text"
    assert batch["canceled"] is True
    if batch_id:
        assert batch["id"] == batch_id
    else:
        assert ULID.fullmatch(batch["id"])
    assert "to_add" not in batch
    parsed = TextResponse.model_validate(batch)  # what the SDK builds from it
    assert parsed.canceled is True
    assert parsed.created_at is not None


def test_skip_keeps_the_message_type() -> None:
    """An MMS batch is skipped as an MMS batch (the SDK picks its model by `type`)."""
    raw = body(to=["46701234567"], body={"url": "https://x/y.jpg"}, type="mt_media")
    batch = payload(answer("skip", "POST", BATCHES, raw, "46701234567"))
    assert batch["type"] == "mt_media"
    assert batch["body"] == {"url": "https://x/y.jpg"}


def test_skip_of_an_unreadable_body_still_answers() -> None:
    """Skip never fails on the body: the blocked destination stands in for `to`."""
    batch = payload(answer("skip", "POST", BATCHES, b"not json", "46701234567"))
    assert batch["to"] == ["46701234567"]
    assert batch["type"] == "mt_text"


def test_skip_of_a_dry_run_counts_nothing() -> None:
    """A skipped dry run says nothing would be sent."""
    reply = answer("skip", "POST", BATCHES + "/dry_run", send_body("46701234567"),
                   "46701234567")
    assert reply.status == 200
    assert DryRunResponse.model_validate(payload(reply)).number_of_recipients == 0


@pytest.mark.parametrize(("method", "path", "raw", "status", "group_id"), [
    ("POST", GROUPS, body(name="friends", members=["46701234567"]), 201, None),
    ("POST", f"{GROUPS}/{GROUP_ID}", body(add=["46701234567"]), 200, GROUP_ID),
    ("PUT", f"{GROUPS}/{GROUP_ID}", body(members=["46701234567"]), 200, GROUP_ID),
], ids=["create", "update", "replace"])
def test_skip_of_a_group_change(method: str, path: str, raw: bytes, status: int,
                                group_id: str | None) -> None:
    """A group reply with no member added (a new group's size is 0, an old one's unknown)."""
    reply = answer("skip", method, path, raw, "46701234567")
    assert reply.status == status
    group = GroupResponse.model_validate(payload(reply))
    assert group.size == (None if group_id else 0)
    if group_id:
        assert group.id == group_id
    else:
        assert ULID.fullmatch(group.id or "")


def test_new_ids_are_unique_ulids() -> None:
    """Generated ids look like Sinch's (26 Crockford base32 characters) and differ."""
    ids = {new_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(ULID.fullmatch(i) for i in ids)


# ------------------------------------------------------------------- unauthorized, refuse


@pytest.mark.parametrize(("reply", "status", "code"), [
    (PRESET.unauthorized("req-9"), 401, "unauthorized"),
    (PRESET.refuse(Blocked("req-9", None, "46701234567")), 403, "forbidden"),
], ids=["unauthorized", "refuse"])
def test_unauthorized_and_refuse_are_sinch_errors(reply: Reply, status: int,
                                                  code: str) -> None:
    """401 and the scanned-write refusal are `{code, text}`, Sinch's error shape."""
    assert reply.status == status
    data = payload(reply)
    assert set(data) == {"code", "text"}
    assert data["code"] == code
    assert data["text"]

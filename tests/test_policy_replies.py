"""Reject replies for sends a policy rule refused (country, number type, quiet hours):
every preset keeps its error shape and status, says why, never names the number, and
uses the provider's more specific code where one is documented. A list entry's reply
(`rule=None`) is unchanged."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from gatekeeper.config import DestinationField, RouteConfig, UpstreamConfig
from gatekeeper.providers import PRESETS, generic, prelude, twilio
from gatekeeper.providers.preset import Blocked, Message, Route
from gatekeeper.replies import Reply
from gatekeeper.rules import RULE_KINDS, RuleResult
from gatekeeper.types import Channel

NUMBER = "+14155550123"
DIGITS = NUMBER.removeprefix("+")
REQUEST_ID = "req-policy-1"
GENERIC_ROUTES = (
    RouteConfig("POST", "/v1/sms", "sms", DestinationField("json", "to")),
    RouteConfig("POST", "/v1/call", "voice", DestinationField("form", "to"), intent="otp"),
)
# What each rule kind's reply must say (from `Blocked.why`), and the rule's detail.
DETAILS = {"country": "KP", "number_type": "premium_rate",
           "quiet_hours": "Berlin Europe/Berlin at 23:10",
           "velocity": "number: 10 per 3600s"}
REASONS = {"country": "region KP", "number_type": "premium rate numbers",
           "quiet_hours": "quiet hours", "velocity": "velocity limit"}


def upstream(preset: str) -> UpstreamConfig:
    """A minimal upstream for `preset` (generic needs routes of its own)."""
    routes = GENERIC_ROUTES if preset == "generic" else ()
    return UpstreamConfig(name=preset, url="http://127.0.0.1:1", preset=preset, mount="/x",
                          routes=routes)


def rule(kind: str, channel: Channel | None, detail: str | None = None) -> RuleResult:
    return RuleResult(kind, scope="global", outcome="block",  # type: ignore[arg-type]
                      detail=DETAILS[kind] if detail is None else detail, channel=channel,
                      retry_after=1800.0 if kind in ("quiet_hours", "velocity") else None)


def blocked(route: Route | None, found: RuleResult | None,
            channel: Channel | None = None) -> Blocked:
    """A refused send of NUMBER on `route` (None: a scanned write, `refuse`)."""
    return Blocked(REQUEST_ID, route.channel if route else channel, NUMBER,
                   message=Message(b""), destinations=(NUMBER,), rule=found)


def rejects(name: str) -> list[tuple[str, Callable[[Blocked], Reply], Route | None]]:
    """Every reject builder of a preset: each route's `reject`, and its `refuse`."""
    preset = PRESETS[name]
    found: list[tuple[str, Callable[[Blocked], Reply], Route | None]] = [
        (f"{'/'.join(sorted(r.methods))} {r.paths[0].template}", r.reject, r)
        for r in preset.routes(upstream(name))]
    found.append(("refuse", preset.refuse, None))
    return found


def shape(reply: Reply) -> object:
    """The reply's structure without its values: top-level JSON keys (and those of a
    JSON array's first item), or the XML element tree's tags."""
    if "xml" in reply.content_type:
        def tags(node: ET.Element) -> tuple[str, tuple[object, ...]]:
            return node.tag, tuple(tags(child) for child in node)
        return tags(ET.fromstring(reply.body))
    doc = json.loads(reply.body)
    if isinstance(doc, list):
        return ["list", sorted(doc[0])]
    return sorted(doc)


def visible(name: str, reply: Reply) -> str:
    """The body's text, less the one place a provider's shape echoes the recipient: the
    Vonage legacy SMS API's `to` of the refused message (what Vonage itself answers)."""
    text = reply.body.decode()
    if name == "vonage":
        text = text.replace(f'"to": "{NUMBER}"', "").replace(f"<to>{NUMBER}</to>", "")
    return text


def code(name: str, reply: Reply) -> object:
    """The provider's error code in the reply (None: the shape has none)."""
    if "xml" in reply.content_type:
        root = ET.fromstring(reply.body)
        found = [root.findtext(f".//{tag}") for tag in ("code", "status")]
        return next(text for text in found if text)
    doc: Any = json.loads(reply.body)
    codes: dict[str, Callable[[Any], object]] = {
        "twilio": lambda d: d["code"],
        "generic": lambda d: d["code"],
        "vonage": lambda d: d.get("type") or d.get("status") or d["messages"][0]["status"],
        "plivo": lambda d: None,
        "telnyx": lambda d: d["errors"][0]["code"],
        "sinch": lambda d: d["code"],
        "infobip": lambda d: d.get("errorCode") or d["requestError"]["serviceException"][
            "messageId"],
        "messagebird": lambda d: d["errors"][0]["code"],
        "iletimerkezi": lambda d: d["response"]["status"]["code"],
        "prelude": lambda d: d.get("code") or d["reason"],
    }
    return codes[name](doc)


CASES = [(name, kind) for name in PRESETS for kind in (None, *RULE_KINDS)]


@pytest.mark.parametrize(("name", "kind"), CASES,
                         ids=[f"{name}-{kind or 'list'}" for name, kind in CASES])
def test_rule_reply_keeps_the_list_shape_and_status_and_says_why(name: str,
                                                                 kind: str | None) -> None:
    """For every reject builder of the preset: the list reply's status and shape, the
    reason in the text (for a rule), and never the number."""
    for where, reject, route in rejects(name):
        channel = route.channel if route else "sms"
        listed = reject(blocked(route, None, channel))
        found = None if kind is None else rule(kind, channel or "sms")
        reply = reject(blocked(route, found, channel))
        label = f"{name} {where}"
        assert reply.status == listed.status, label
        assert reply.content_type == listed.content_type, label
        assert shape(reply) == shape(listed), label
        text = visible(name, reply)
        assert NUMBER not in text, label
        assert DIGITS not in text, label
        if kind is None:
            continue
        if name == "prelude" and reply.status == 200:
            # A blocked verification is a result, not an error: no text, only a reason
            # (a premium-rate number is no mobile line).
            expected = "invalid_phone_line" if kind == "number_type" else "in_block_list"
            assert json.loads(reply.body)["reason"] == expected, label
        else:
            assert REASONS[kind] in text, label
            assert "block list" not in text, label


KEPT = [(name, kind) for name in PRESETS if name not in ("twilio", "generic")
        for kind in RULE_KINDS if (name, kind) != ("prelude", "number_type")]


@pytest.mark.parametrize(("name", "kind"), KEPT, ids=[f"{n}-{k}" for n, k in KEPT])
def test_rule_reply_keeps_the_code_where_no_better_one_is_documented(name: str,
                                                                     kind: str) -> None:
    """Presets without a more specific documented code answer a rule with their list
    code (Prelude's line-type codes are tested below)."""
    for where, reject, route in rejects(name):
        channel = route.channel if route else "sms"
        listed = reject(blocked(route, None, channel))
        reply = reject(blocked(route, rule(kind, channel or "sms"), channel))
        assert code(name, reply) == code(name, listed), f"{name} {where}"


def _twilio_route(channel: Channel) -> Route:
    routes = twilio.PRESET.routes(upstream("twilio"))
    return next(r for r in routes if r.channel == channel)


@pytest.mark.parametrize(("kind", "detail", "channel", "expected"), [
    ("country", None, "sms", 21408),
    ("country", None, "voice", 21215),
    ("number_type", "premium_rate", "sms", 21268),
    ("number_type", "premium_rate", "voice", 21202),
    ("number_type", "fixed_line", "sms", 21635),
    ("number_type", "voip", "sms", 21610),
    ("number_type", "toll_free", "voice", 21215),
    ("quiet_hours", None, "sms", 30610),
    ("quiet_hours", None, "voice", 21610),
], ids=["country-sms", "country-voice", "premium-sms", "premium-voice", "landline-sms",
        "other-type-sms", "other-type-voice", "quiet-sms", "quiet-voice"])
def test_twilio_rule_reply_uses_twilios_code_for_that_refusal(
        kind: str, detail: str | None, channel: Channel, expected: int) -> None:
    """Twilio's geo-permission, premium, landline and quiet-hours codes, with their docs."""
    route = _twilio_route(channel)
    doc = json.loads(route.reject(blocked(route, rule(kind, channel, detail))).body)
    assert doc["code"] == expected
    assert doc["status"] == 403
    assert doc["more_info"] == f"https://www.twilio.com/docs/errors/{expected}"
    assert doc["message"].startswith("Attempt to send to a blocked recipient: ")


def test_twilio_country_rule_message_reads_as_documented() -> None:
    """The message is Twilio's lead and why, as one sentence."""
    route = _twilio_route("sms")
    doc = json.loads(route.reject(blocked(route, rule("country", "sms"))).body)
    assert doc["message"] == ("Attempt to send to a blocked recipient: sending to region KP "
                              "is not permitted by policy.")


def test_twilio_verify_route_takes_the_rules_channel() -> None:
    """A route for either channel (Verify) uses the channel the rule was evaluated on."""
    routes = twilio.PRESET.routes(upstream("twilio"))
    verify = next(r for r in routes if r.channel is None)
    cases: tuple[tuple[Channel, int], ...] = (("sms", 21408), ("voice", 21215))
    for channel, expected in cases:
        reply = verify.reject(blocked(verify, rule("country", channel)))
        assert json.loads(reply.body)["code"] == expected


LIST_REPLIES: list[tuple[str, Callable[[Blocked], Reply], dict[str, Any]]] = [
    ("twilio", twilio.reject, {
        "code": 21610,
        "message": "Attempt to send to a blocked recipient: the number is on a block list.",
        "more_info": "https://www.twilio.com/docs/errors/21610", "status": 403}),
    ("generic", generic.reject, {
        "code": "destination_blocked", "message": "The destination is on a block list.",
        "type": "forbidden", "request_id": REQUEST_ID}),
    ("prelude", prelude.reject_message, {
        "code": "blocked_number",
        "message": "The phone number is in the block list; the message was not sent.",
        "type": "bad_request", "request_id": REQUEST_ID}),
]


@pytest.mark.parametrize(("name", "reject", "expected"), LIST_REPLIES,
                         ids=[n for n, _, _ in LIST_REPLIES])
@pytest.mark.parametrize("found", [None, RuleResult("list", "global", "block")],
                         ids=["no-rule", "list-kind-rule"])
def test_list_reply_is_byte_for_byte_unchanged(name: str, reject: Callable[[Blocked], Reply],
                                               expected: dict[str, Any],
                                               found: RuleResult | None) -> None:
    """A list entry's reply is what it always was (a rule of a list kind counts as one)."""
    assert reject(blocked(None, found, "sms")).body == json.dumps(expected).encode()


@pytest.mark.parametrize(("kind", "detail", "code_", "reason"), [
    ("number_type", "fixed_line", "invalid_line_type", "invalid_phone_line"),
    ("number_type", "premium_rate", "invalid_line_type", "invalid_phone_line"),
    ("number_type", "mobile", "blocked_number", "in_block_list"),
    ("number_type", "unknown", "blocked_number", "in_block_list"),
    ("country", None, "blocked_number", "in_block_list"),
    ("quiet_hours", None, "blocked_number", "in_block_list"),
], ids=["landline", "premium", "mobile", "unknown-type", "country", "quiet"])
def test_prelude_line_type_rule_uses_preludes_line_codes(kind: str, detail: str | None,
                                                         code_: str, reason: str) -> None:
    """A number known not to be a mobile line gets `invalid_line_type` (sends) and
    `invalid_phone_line` (verifications); other rules keep the block-list ones."""
    found = rule(kind, "sms", detail)
    message = json.loads(prelude.reject_message(blocked(None, found, "sms")).body)
    verification = json.loads(prelude.reject_verification(blocked(None, found, None)).body)
    assert message["code"] == code_
    assert message["message"].startswith("The message was not sent: ")
    assert verification["status"] == "blocked"
    assert verification["reason"] == reason


@pytest.mark.parametrize("kind", RULE_KINDS)
def test_generic_rule_reply_is_policy_blocked(kind: str) -> None:
    """The generic preset answers a rule with `policy_blocked` and why."""
    doc = json.loads(generic.reject(blocked(None, rule(kind, "sms"), "sms")).body)
    assert doc["code"] == "policy_blocked"
    assert doc["type"] == "forbidden"
    assert doc["request_id"] == REQUEST_ID
    assert doc["message"].startswith("The destination is blocked: ")
    assert REASONS[kind] in doc["message"]


def test_generic_routes_carry_their_configured_intent() -> None:
    """A generic route's `intent` reaches the route (None: the upstream's)."""
    routes = generic.PRESET.routes(upstream("generic"))
    assert [r.intent for r in routes] == [None, "otp"]

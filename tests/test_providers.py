"""Gateway presets: intercepted routes, recipient locators, removal, identities and replies
(pure, no server)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict
from twilio.base.exceptions import TwilioRestException
from twilio.base.version import Version
from twilio.http.response import Response
from twilio.rest import Client
from twilio.rest.api.v2010.account.call import CallInstance
from twilio.rest.api.v2010.account.message import MessageInstance

from gatekeeper import jsonedit
from gatekeeper.config import (
    ConfigError,
    DestinationField,
    RouteConfig,
    UpstreamConfig,
    parse_config,
)
from gatekeeper.numbers import is_known_region
from gatekeeper.providers import PRESETS, check_presets, generic, twilio
from gatekeeper.providers.credentials import basic_user, token_digest
from gatekeeper.providers.forms import FormPair, field_key, parse_pairs, read_field
from gatekeeper.providers.locators import FormField, JsonPath, json_leaves, plan_deletions
from gatekeeper.providers.preset import Blocked, BodyError, Message, Recipients
from gatekeeper.providers.routing import PathPattern, template
from gatekeeper.replies import Reply
from gatekeeper.types import Channel
from tests.presets_helpers import (
    PASSES,
    REFUSED,
    canonical,
    found,
    match,
    outcome,
    refused,
    route_for,
)

SID = "AC" + "0" * 32
API_KEY = "SK" + "1" * 32
BASE = f"/2010-04-01/Accounts/{SID}"
TWILIO_UPSTREAM = UpstreamConfig(name="twilio", url="https://api.twilio.com",
                                 preset="twilio", mount="/twilio")
TWILIO_ROUTES = twilio.PRESET.routes(TWILIO_UPSTREAM)
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
PRESET_NAMES = ("twilio", "generic", "vonage", "plivo", "telnyx", "sinch", "infobip",
                "messagebird", "iletimerkezi", "prelude")


def _json(reply: Reply) -> Any:
    return json.loads(reply.body)


def _basic(credentials: str | bytes) -> str:
    raw = credentials.encode() if isinstance(credentials, str) else credentials
    return "Basic " + base64.b64encode(raw).decode()


def _sha(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


# --------------------------------------------------------------------------- registry


def test_registry_holds_the_ten_presets() -> None:
    """Every preset a config may name is registered, and nothing else."""
    assert sorted(PRESETS) == sorted(PRESET_NAMES)
    assert len(PRESETS) == 10


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_registered_preset_carries_its_own_name(name: str) -> None:
    """The registry key is the preset's `name`."""
    assert PRESETS[name].name == name


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_registered_preset_declares_number_handling(name: str) -> None:
    """Each preset says whether bare digits are MSISDNs and names a real default region."""
    preset = PRESETS[name]
    assert isinstance(preset.msisdn, bool)
    assert preset.default_region is None or is_known_region(preset.default_region)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_registered_preset_declares_quiet_writes_and_list_api(name: str) -> None:
    """`quiet_writes` are path templates; only Prelude and iletiMerkezi have a list API."""
    preset = PRESETS[name]
    assert isinstance(preset.quiet_writes, tuple)
    assert all(isinstance(p, PathPattern) for p in preset.quiet_writes)
    assert (preset.list_api is not None) == (name in ("prelude", "iletimerkezi"))


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_registered_preset_answers_unauthorized_and_refuse(name: str) -> None:
    """Every preset has a 401 reply and a refusal for scanned writes (a 4xx, or Prelude's
    and iletiMerkezi's own refusal statuses)."""
    preset = PRESETS[name]
    unauthorized = preset.unauthorized("req-9")
    assert unauthorized.status == 401
    assert unauthorized.body
    refusal = preset.refuse(Blocked("req-9", None, "+33612345678"))
    assert 400 <= refusal.status < 500
    assert refusal.body


@pytest.mark.parametrize("preset", [twilio.PRESET, generic.PRESET], ids=["twilio", "generic"])
def test_twilio_and_generic_take_numbers_with_plus(preset: Any) -> None:
    """Twilio and generic recipients are E.164 (or national with the upstream's region)."""
    assert preset.msisdn is False
    assert preset.default_region is None


def _config(upstream: dict[str, Any], tmp_path: Path) -> Any:
    return parse_config({"upstreams": [upstream]}, env={}, base=tmp_path)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_check_presets_accepts_every_registered_preset(name: str, tmp_path: Path) -> None:
    """`check_presets` passes each registered preset (generic with its routes)."""
    upstream: dict[str, Any] = {"name": "gw", "url": "https://gw.example", "preset": name}
    if name == "generic":
        upstream["routes"] = [{"path": "/v1/sms", "channel": "sms",
                               "destination": {"json": "to"}}]
    cfg = _config(upstream, tmp_path)
    assert check_presets(cfg) is cfg


@pytest.mark.parametrize(("upstream", "key"), [
    ({"preset": "nexmo"}, "upstreams[0].preset"),
    ({"preset": "generic"}, "upstreams[0].routes"),
    ({"preset": "twilio", "routes": [{"path": "/v1/sms", "channel": "sms",
                                      "destination": {"json": "to"}}]}, "upstreams[0].routes"),
    ({"preset": "twilio", "mirror": True}, "upstreams[0].mirror"),
], ids=["unknown-preset", "generic-without-routes", "routes-on-twilio", "mirror-on-twilio"])
def test_check_presets_refusals_name_the_key(upstream: dict[str, Any], key: str,
                                             tmp_path: Path) -> None:
    """What the registry decides is refused with a ConfigError naming the key."""
    cfg = _config({"name": "gw", "url": "https://gw.example", **upstream}, tmp_path)
    with pytest.raises(ConfigError) as raised:
        check_presets(cfg)
    assert raised.value.key == key


# ------------------------------------------------------------------------ path matching


CONF = f"{BASE}/Conferences/CF" + "2" * 32
TWILIO_CASES: list[tuple[str, str, str, str | None]] = [
    # (id, method, path, channel, PASSES when not a send, REFUSED when the target is)
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
    ("all-percent", "POST", "".join(f"%{b:02X}" if b != ord("/") else "/"
                                    for b in f"{BASE}/Messages.json".encode()), "sms"),
    # Any suffix reaches the same resource, so any suffix is checked.
    ("other-extension", "POST", f"{BASE}/Messages.csv", "sms"),
    # A PUT or PATCH on a send path is checked like the POST.
    ("put-calls", "PUT", f"{BASE}/Calls.json", "voice"),
    ("patch-messages", "PATCH", f"{BASE}/Messages.json", "sms"),
    # Spellings some server would read differently are refused before routing.
    ("percent-slash", "POST", f"/2010-04-01/Accounts/{SID}%2FMessages.json", REFUSED),
    ("dot-segment", "POST", f"{BASE}/./Messages.json", REFUSED),
    ("dot-dot-segment", "POST", f"{BASE}/Usage/../Messages.json", REFUSED),
    ("encoded-dot-dot", "POST", f"{BASE}/Usage/%2E%2E/Calls.json", REFUSED),
    ("dot-dot-between-resources", "POST", f"{BASE}/Calls/../Messages.json", REFUSED),
    ("dot-dot-above-root", "POST", f"/../..{BASE}/Messages.json", REFUSED),
    ("dot-dot-into-another-account", "POST", f"{BASE}/Messages/../../ACother/Calls.json",
     REFUSED),
    ("dot-dot-away", "POST", f"{BASE}/Messages.json/..", REFUSED),
    ("path-parameter", "POST", f"{BASE}/Messages.json;x=1", REFUSED),
    # Adding a conference participant dials `To`: a voice send.
    ("participants-json", "POST", f"{CONF}/Participants.json", "voice"),
    ("participants-xml", "POST", f"{CONF}/Participants.xml", "voice"),
    ("participants-no-ext", "POST", f"{CONF}/Participants", "voice"),
    ("participants-friendly-name", "POST", f"{BASE}/Conferences/MyRoom/Participants.json",
     "voice"),
    ("participants-lower-case", "POST", f"{BASE}/conferences/CF1/participants.json", "voice"),
    ("participants-trailing-slash", "POST", f"{CONF}/Participants.json/", "voice"),
    ("participants-percent", "POST", f"{CONF}/%50articipants.json", "voice"),
    ("participants-dot-dot", "POST", f"{CONF}/Recordings/../Participants.json", REFUSED),
    # Not sends: reads, other resources, other methods, other versions.
    ("get-messages", "GET", f"{BASE}/Messages.json", PASSES),
    ("get-calls", "GET", f"{BASE}/Calls.json", PASSES),
    ("delete-messages", "DELETE", f"{BASE}/Messages.json", PASSES),
    ("update-message", "POST", f"{BASE}/Messages/SM1.json", PASSES),
    ("get-message", "GET", f"{BASE}/Messages/SM1.json", PASSES),
    ("message-media", "POST", f"{BASE}/Messages/SM1/Media.json", PASSES),
    ("account", "POST", f"{BASE}.json", PASSES),
    ("other-resource", "POST", f"{BASE}/IncomingPhoneNumbers.json", PASSES),
    ("other-version", "POST", f"/2008-08-01/Accounts/{SID}/SMS/Messages.json", PASSES),
    ("no-account", "POST", "/2010-04-01/Accounts/Messages.json", PASSES),
    ("suffix-in-name", "POST", f"{BASE}/MessagesX.json", PASSES),
    ("root", "POST", "/", PASSES),
    ("get-participants", "GET", f"{CONF}/Participants.json", PASSES),
    ("update-participant", "POST", f"{CONF}/Participants/CA1.json", PASSES),
    ("update-conference", "POST", f"{CONF}.json", PASSES),
    ("conferences-list", "POST", f"{BASE}/Conferences.json", PASSES),
    ("participants-without-conference", "POST", f"{BASE}/Conferences/Participants.json",
     PASSES),
    ("participants-nested-too-deep", "POST", f"{CONF}/x/Participants.json", PASSES),
    ("conference-recordings", "POST", f"{CONF}/Recordings.json", PASSES),
]


@pytest.mark.parametrize(("method", "path", "expected"), [c[1:] for c in TWILIO_CASES],
                         ids=[c[0] for c in TWILIO_CASES])
def test_twilio_routes(method: str, path: str, expected: str | None) -> None:
    """Sends are intercepted however the path is spelt (or the spelling is refused);
    anything else passes through."""
    assert outcome(TWILIO_ROUTES, method, path) == expected


@pytest.mark.parametrize("path", [c[2] for c in TWILIO_CASES if c[3] in ("sms", "voice")],
                         ids=[c[0] for c in TWILIO_CASES if c[3] in ("sms", "voice")])
def test_twilio_message_and_call_routes_read_to_and_name_the_account(path: str) -> None:
    """Each Messages, Calls and Participants route captures the account SID and reads `To`."""
    found_route = match(TWILIO_ROUTES, "POST", path)
    assert found_route is not None
    route, params = found_route
    assert params["account_sid"] == SID
    assert found(route.locator, Message(b"To=%2B14155550100&From=%2B15005550006")).values == (
        "+14155550100",)


VERIFY_SERVICE = "/v2/Services/VA" + "3" * 32
TWILIO_PRODUCT_CASES: list[tuple[str, str, str, str | None, bytes, tuple[str, ...]]] = [
    # (id, method, path, channel, body, recipients)
    ("call-update-twiml", "POST", f"{BASE}/Calls/CA1.json", "voice",
     b"Twiml=%3CResponse%3E%3CDial%3E%2B33612345678%3C%2FDial%3E%3C%2FResponse%3E",
     ("+33612345678",)),
    ("call-update-url", "POST", f"{BASE}/Calls/CA1.json", "voice",
     b"Url=https%3A%2F%2Fapp.example%2Fnext", ()),
    ("call-with-twiml", "POST", f"{BASE}/Calls.json", "voice",
     b"To=%2B14155550100&Twiml=%3CResponse%3E%3CDial%3E%2B33612345678%3C%2FDial%3E"
     b"%3C%2FResponse%3E", ("+14155550100", "+33612345678")),
    ("outgoing-caller-id", "POST", f"{BASE}/OutgoingCallerIds.json", "voice",
     b"PhoneNumber=%2B14155550100", ("+14155550100",)),
    ("verify-sms", "POST", f"{VERIFY_SERVICE}/Verifications", None,
     b"To=%2B14155550100&Channel=sms", ("+14155550100",)),
    ("verify-email", "POST", f"{VERIFY_SERVICE}/Verifications", None,
     b"To=ann%40example.com&Channel=email", ("client:email:ann@example.com",)),
    ("conversation-participant", "POST", "/v1/Conversations/CH1/Participants", "sms",
     b"MessagingBinding.Address=%2B14155550100", ("+14155550100",)),
    ("conversation-participant-chat", "POST", "/v1/Conversations/CH1/Participants", "sms",
     b"Identity=alice", ()),
    ("service-conversation-participant", "POST",
     "/v1/Services/IS1/Conversations/CH1/Participants", "sms",
     b"MessagingBinding.Address=%2B14155550100", ("+14155550100",)),
    ("proxy-participant", "POST", "/v1/Services/KS1/Sessions/KC1/Participants", None,
     b"Identifier=%2B14155550100", ("+14155550100",)),
    ("studio-execution", "POST", "/v2/Flows/FW1/Executions", None,
     b"To=%2B14155550100&From=%2B15005550006", ("+14155550100",)),
]


@pytest.mark.parametrize(("method", "path", "channel", "body", "expected"),
                         [c[1:] for c in TWILIO_PRODUCT_CASES],
                         ids=[c[0] for c in TWILIO_PRODUCT_CASES])
def test_twilio_other_sends(method: str, path: str, channel: str | None, body: bytes,
                            expected: tuple[str, ...]) -> None:
    """Call updates with inline TwiML, caller-id validation, Verify, Conversations, Proxy
    and Studio are sends too; Verify, Proxy and Studio are decided on both channels."""
    assert outcome(TWILIO_ROUTES, method, path) == channel
    route = route_for(TWILIO_ROUTES, method, path)
    assert found(route.locator, Message(body)).values == expected


@pytest.mark.parametrize(("pattern", "path", "groups"), [
    ("/v1/sms", "/v1/sms", {}),
    ("/v1/sms", "/v1/sms/x", None),
    ("/v1/sms", "/v1/smsx", None),
    ("/v1/sms", "/v1", None),
    ("/v1/sms", "/x/v1/sms", None),
    ("/v1/sms", "/V1/SMS", {}),
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
    ("/v1/{kind:sms|mms}", "/v1/MMS", {"kind": "MMS"}),
    ("/v1/{kind:sms|mms}", "/v1/fax", None),
    ("/v1/{:sms|mms}/send", "/v1/sms/send", {}),
], ids=["literal", "literal-longer", "literal-suffix", "literal-shorter", "literal-prefixed",
        "literal-any-case", "pattern-trailing-slash", "root", "param", "param-two-segments",
        "param-empty", "param-missing", "star", "star-two-segments", "star-empty", "two-params",
        "param-with-ext", "ext-dot-is-literal", "dot-is-literal", "plus-is-literal",
        "plus-not-quantifier", "invalid-param-name-literal", "invalid-param-name-no-match",
        "regex-param", "regex-param-no-match", "anonymous-regex"])
def test_template(pattern: str, path: str, groups: dict[str, str] | None) -> None:
    """`{name}`, `{name:regex}` and `*` match exactly one segment; everything else is
    literal, in any case."""
    assert template(pattern).match(path) == groups


@pytest.mark.parametrize(("pattern", "path", "ext", "prefix", "groups"), [
    ("/v1/Messages", "/v1/Messages.json", True, False, {}),
    ("/v1/Messages", "/v1/Messages.xml", True, False, {}),
    ("/v1/Messages", "/v1/Messages", True, False, {}),
    ("/v1/Messages", "/v1/Messages.json", False, False, None),
    ("/v1/Messages", "/v1/Messages.j-s", True, False, None),
    ("/v1/Numbers", "/v1/Numbers/x/y", False, True, {}),
    ("/v1/Numbers", "/v1/Numbers", False, True, {}),
    ("/v1/Numbers", "/v1/NumbersX", False, True, None),
], ids=["ext-json", "ext-xml", "ext-none", "no-ext-option", "ext-not-a-word", "prefix-below",
        "prefix-itself", "prefix-is-a-whole-segment"])
def test_template_ext_and_prefix(pattern: str, path: str, ext: bool, prefix: bool,
                                 groups: dict[str, str] | None) -> None:
    """`ext` lets the last segment carry a `.suffix`; `prefix` also matches below it."""
    assert template(pattern, ext=ext, prefix=prefix).match(path) == groups


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
    ("POST", "/V1/SMS", 0, {}),
    ("POST", "/v1/acme/call", 1, {"account": "acme"}),
    ("POST", "/v1/%61cme/call/", 1, {"account": "acme"}),
    ("PUT", "/v2/acme/eu/send", 2, {"account": "acme"}),
    ("PUT", "/v1/sms", 0, {}),
    ("PATCH", "/v1/acme/call", 1, {"account": "acme"}),
    ("GET", "/v1/sms", None, None),
    ("DELETE", "/v1/sms", None, None),
    ("POST", "/v2/acme/eu/send", None, None),
    ("POST", "/v1/acme/call/x", None, None),
    ("POST", "/v2/acme/send", None, None),
], ids=["exact", "trailing-slash", "doubled-slashes", "percent", "any-case", "param",
        "param-percent-trailing", "param-and-star", "put-on-a-post-route",
        "patch-on-a-post-route", "wrong-method", "delete", "post-on-a-put-route",
        "longer-path", "star-missing"])
def test_generic_routes_match_with_named_groups(method: str, path: str, index: int | None,
                                                params: dict[str, str] | None) -> None:
    """Configured routes match on method and canonical path; named groups come back. A PUT
    or PATCH on a POST route is checked as that send (not the other way round)."""
    found_route = match(GENERIC_ROUTES, method, path)
    if index is None:
        assert found_route is None
    else:
        assert found_route == (GENERIC_ROUTES[index], params)


def test_generic_route_with_a_dot_segment_is_refused_at_the_edge() -> None:
    """`/v1/x/../sms` is not resolved to `/v1/sms` any more: the target is refused."""
    assert outcome(GENERIC_ROUTES, "POST", "/v1/x/../sms") == REFUSED


def test_generic_routes_follow_config() -> None:
    """Each configured route keeps its method, channel and locator kind, and replies in
    Gatekeeper's own shape."""
    assert [(r.methods, r.channel, r.locator) for r in GENERIC_ROUTES] == [
        (frozenset({"POST"}), "sms", JsonPath("messages[].to")),
        (frozenset({"POST"}), "voice", FormField("to")),
        (frozenset({"PUT"}), "sms", JsonPath("to")),
    ]
    assert all((r.reject, r.skip) == (generic.reject, generic.skip) for r in GENERIC_ROUTES)


# --------------------------------------------------------------------------------- forms


@pytest.mark.parametrize(("text", "expected"), [
    ("", []),
    ("To=%2B1", [FormPair("To", "+1", "To=%2B1")]),
    ("a=1&&b=2&", [FormPair("a", "1", "a=1"), FormPair("b", "2", "b=2")]),
    ("Body=a%20b+c", [FormPair("Body", "a b c", "Body=a%20b+c")]),
    ("%54o=x", [FormPair("To", "x", "%54o=x")]),
    ("k=a=b", [FormPair("k", "a=b", "k=a=b")]),
    ("k=", [FormPair("k", "", "k=")]),
    ("=v", [FormPair("", "v", "=v")]),
    ("Body=caf%C3%A9", [FormPair("Body", "caf\u00e9", "Body=caf%C3%A9")]),
    ("To", [FormPair("To", "", "To")]),
    ("a=1&b", [FormPair("a", "1", "a=1"), FormPair("b", "", "b")]),
], ids=["empty", "one", "empty-segments-skipped", "space-spellings", "encoded-name",
        "equals-in-value", "empty-value", "empty-name", "utf8", "no-equals-is-empty-value",
        "second-no-equals"])
def test_parse_pairs_decodes_and_keeps_raw_text(text: str, expected: list[FormPair]) -> None:
    """Each field is decoded as a form (`+` is a space) and keeps its raw spelling; a field
    without '=' has an empty value."""
    assert parse_pairs(text) == expected


@pytest.mark.parametrize(("text", "code"), [
    ("To=%FF", "invalid_form"),
    ("To=%C3", "invalid_form"),
    ("%FF=1", "invalid_form"),
    ("To=%2B1;From=x", "ambiguous_request"),
    ("To=%2B1&Body=a;b", "ambiguous_request"),
    ("To=%ZZ", "ambiguous_request"),
    ("To=100%", "ambiguous_request"),
    ("To=%2", "ambiguous_request"),
    ("T%00o=%2B1", "ambiguous_request"),
    ("To%0A=%2B1", "ambiguous_request"),
], ids=["bad-utf8", "truncated-utf8", "bad-utf8-name", "raw-semicolon",
        "raw-semicolon-in-a-value", "bad-escape", "percent-at-end", "short-escape",
        "nul-in-name", "newline-in-name"])
def test_parse_pairs_errors(text: str, code: str) -> None:
    """Undecodable bytes are invalid_form; what servers read differently (a raw `;`, a
    malformed escape, control characters in a name) is ambiguous_request."""
    found_error = parse_pairs(text)
    assert isinstance(found_error, BodyError)
    assert found_error.code == code
    assert found_error.message


@pytest.mark.parametrize(("name", "key"), [
    ("To", "to"), ("TO", "to"), ("To[]", "to"), ("To[0]", "to"), ("To[x][y]", "to"),
    (" To ", "to"), ("MessagingBinding.Address", "messagingbinding_address"),
    ("MessagingBinding Address", "messagingbinding_address"),
    ("messagingbinding_address", "messagingbinding_address"),
], ids=["plain", "upper", "brackets", "index", "nested", "spaces", "dot", "space", "under"])
def test_field_key_is_what_every_reading_agrees_on(name: str, key: str) -> None:
    """Case, `[...]` suffixes, surrounding spaces and PHP's `.`/space -> `_` are folded."""
    assert field_key(name) == key


@pytest.mark.parametrize(("text", "name", "multi", "values", "exact"), [
    ("To=%2B1&Body=x", "To", False, ("+1",), True),
    ("To=%2B1&To=%2B2", "To", False, ("+1", "+2"), False),
    ("To=%2B1&to=%2B2", "To", False, ("+1", "+2"), False),
    ("to=%2B1", "To", False, ("+1",), False),
    ("To[]=%2B1", "To", False, ("+1",), False),
    ("Body=x", "To", False, (), True),
    ("To=%2B1&To=%2B2", "To", True, ("+1", "+2"), True),
    ("To[]=%2B1&To[]=%2B2", "To", True, ("+1", "+2"), True),
    ("To=%2B1&To[]=%2B2", "To", True, ("+1", "+2"), False),
    ("To[0]=%2B1", "To", True, ("+1",), False),
], ids=["one", "repeated", "case-variant", "other-case-only", "bracketed", "absent",
        "multi-repeated", "multi-brackets", "multi-mixed-spellings", "multi-indexed"])
def test_read_field_counts_every_reading(text: str, name: str, multi: bool,
                                         values: tuple[str, ...], exact: bool) -> None:
    """Every pair some server reads as the field counts; `exact` only when all agree."""
    pairs = parse_pairs(text)
    assert isinstance(pairs, list)
    read = read_field(pairs, name, multi=multi)
    assert (read.values, read.exact) == (values, exact)


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
    (b"%54o=%2B14155550100", ["+14155550100"]),
    (b"to=%2B1", ["+1"]),
    (b"To=%2B1&to=%2B2&TO=%2B3", ["+1", "+2", "+3"]),
    (b"To[]=%2B1&To[0]=%2B2", ["+1", "+2"]),
    (b"To=%2B14155550100&junk", ["+14155550100"]),
], ids=["twilio-send", "repeated-field", "interleaved", "blank-ignored",
        "whitespace-ignored", "trailing-amp", "empty-segments", "channel-address",
        "plus-means-space", "raw-plus-is-space", "utf8-elsewhere", "encoded-name",
        "name-case-differs", "every-case-variant", "bracketed-names", "pair-without-equals"])
def test_form_field_finds_every_occurrence(body: bytes, expected: list[str]) -> None:
    """Every non-blank occurrence of the field under any reading is a recipient, decoded
    as a form."""
    assert found(FormField("To"), Message(body)).values == tuple(expected)


@pytest.mark.parametrize(("body", "expected"), [
    (b"dst=%2B14155550100%3C%2B33612345678", ["+14155550100", "+33612345678"]),
    (b"dst=14155550100<33612345678<447700900123", ["14155550100", "33612345678",
                                                   "447700900123"]),
    (b"dst=a<<b<", ["a", "b"]),
    (b"dst=a<b&dst=c", ["a", "b", "c"]),
    (b"dst=a+<+b", ["a ", " b"]),
], ids=["encoded-separator", "raw-separator", "blank-parts-ignored", "repeated-field",
        "spaces-kept-for-parsing"])
def test_form_field_separator_splits_one_field(body: bytes, expected: list[str]) -> None:
    """With a separator, one field holds several recipients (Plivo's `a<b<c`)."""
    assert found(FormField("dst", separator="<"), Message(body)).values == tuple(expected)


@pytest.mark.parametrize(("body", "code"), [
    (b"", "missing_destination"),
    (b"&", "missing_destination"),
    (b"From=%2B15005550006&Body=hi", "missing_destination"),
    (b"To=", "missing_destination"),
    (b"To=%20&To=", "missing_destination"),
    (b"Too=%2B1&XTo=%2B1", "missing_destination"),
    (b"To", "missing_destination"),
    (b"To=\xff\xfe", "invalid_form"),
    (b"To=%FF", "invalid_form"),
    (b"Body=%C3&To=%2B1", "invalid_form"),
    (b"\x80", "invalid_form"),
    (b"To=%2B1;To=%2B2", "ambiguous_request"),
    (b"To=%2B1&Body=100%", "ambiguous_request"),
    (b"To=%2B1&B%01ody=x", "ambiguous_request"),
], ids=["empty", "only-amp", "missing", "blank", "all-blank", "similar-names",
        "no-equals-is-blank", "raw-invalid-utf8", "encoded-invalid-utf8",
        "truncated-utf8-elsewhere", "lone-continuation-byte", "raw-semicolon",
        "malformed-escape-elsewhere", "control-in-a-name"])
def test_form_field_body_errors(body: bytes, code: str) -> None:
    """Unusable form bodies give a BodyError with a client-facing code, never raise."""
    error = refused(FormField("To"), Message(body))
    assert error.code == code
    assert error.message


@pytest.mark.parametrize(("body", "query", "expected"), [
    (b"", "to=%2B14155550100", ["+14155550100"]),
    (b'{"to": "+33612345678"}', "api_key=k&to=%2B14155550100&to=%2B447700900123",
     ["+14155550100", "+447700900123"]),
    (b"to=%2B33612345678", "to=%2B14155550100", ["+14155550100"]),
    (b"\xff\xfe", "to=%2B14155550100", ["+14155550100"]),
    (b"", "to=%2B1&verbose", ["+1"]),
    (b";%ZZ", "to=%2B1", ["+1"]),
], ids=["query-only", "body-ignored", "body-field-ignored", "non-utf8-body-ignored",
        "field-without-equals", "ambiguous-body-ignored"])
def test_form_field_in_query_reads_only_the_query(body: bytes, query: str,
                                                  expected: list[str]) -> None:
    """`in_query` reads the query string; the body is not looked at."""
    assert found(FormField("to", in_query=True), Message(body, query)).values == \
        tuple(expected)


@pytest.mark.parametrize(("body", "query", "code"), [
    (b"to=%2B14155550100", "", "missing_destination"),
    (b"", "api_key=k&from=X", "missing_destination"),
    (b"", "to=", "missing_destination"),
    (b"", "to=%FF", "invalid_form"),
    (b"", "to=%2B1;x=1", "ambiguous_request"),
], ids=["only-in-body", "absent", "blank", "bad-utf8", "raw-semicolon"])
def test_form_field_in_query_errors(body: bytes, query: str, code: str) -> None:
    """A query without the parameter (or unreadable) is a BodyError naming the query."""
    error = refused(FormField("to", in_query=True), Message(body, query))
    assert error.code == code
    if code == "missing_destination":
        assert "query parameter 'to'" in error.message


@pytest.mark.parametrize(("locator", "optional_body"), [
    (FormField("To", optional=True), b"From=x"),
    (FormField("To", optional=True), b""),
    (FormField("to", in_query=True, optional=True), b"to=%2B1"),
], ids=["absent", "empty-body", "absent-from-query"])
def test_optional_form_field_absent_means_no_recipient(locator: FormField,
                                                       optional_body: bytes) -> None:
    """With `optional`, a missing field is no recipient rather than an error."""
    assert found(locator, Message(optional_body)).values == ()


TWILIO_REPEATED = (b"To=%2B14155550100&From=%2B15005550006&To=%2B33612345678"
                   b"&Body=Hello+there%21")
ODD_FORM = (b"Body=a%20b+c%2b&To=%2b14155550100&To=%2B33612345678"
            b"&MediaUrl=https%3a%2F%2Fx.example%2Fa%3Fb%3D1&StatusCallback=https://cb.example/x"
            b"&From=whatsapp:+15005550006")
PLIVO_FORM = (b"src=%2B15005550006&dst=%2B14155550100%3C%2B33612345678%3C%2B447700900123"
              b"&text=Hi+%F0%9F%91%8B")
# A list field: every `To` (or every `To[]`) is one more recipient, an exact reading.
TO_LIST = FormField("To", multi=True)

# (id, locator, body, blocked, expected body)
FORM_REMOVALS: list[tuple[str, FormField, bytes, set[str], bytes]] = [
    ("list-second-to", TO_LIST, TWILIO_REPEATED, {"+33612345678"},
     b"To=%2B14155550100&From=%2B15005550006&Body=Hello+there%21"),
    ("list-first-to", TO_LIST, TWILIO_REPEATED, {"+14155550100"},
     b"From=%2B15005550006&To=%2B33612345678&Body=Hello+there%21"),
    ("odd-encodings-kept", TO_LIST, ODD_FORM, {"+14155550100"},
     b"Body=a%20b+c%2b&To=%2B33612345678&MediaUrl=https%3a%2F%2Fx.example%2Fa%3Fb%3D1"
     b"&StatusCallback=https://cb.example/x&From=whatsapp:+15005550006"),
    ("odd-encodings-other-to", TO_LIST, ODD_FORM, {"+33612345678"},
     b"Body=a%20b+c%2b&To=%2b14155550100&MediaUrl=https%3a%2F%2Fx.example%2Fa%3Fb%3D1"
     b"&StatusCallback=https://cb.example/x&From=whatsapp:+15005550006"),
    ("same-number-twice", TO_LIST, b"To=%2B1&To=%2B2&To=%2B1&Body=x", {"+1"},
     b"To=%2B2&Body=x"),
    ("plus-means-space", TO_LIST, b"To=%2B1+415+555+0100&To=%2B33612345678",
     {"+1 415 555 0100"}, b"To=%2B33612345678"),
    ("blank-field-kept", TO_LIST, b"To=&To=%2B1&To=%2B2", {"+1"}, b"To=&To=%2B2"),
    ("raw-utf8-kept", TO_LIST, "To=%2B1&To=%2B2&Body=caf\u00e9 \u260e".encode(),
     {"+2"}, "To=%2B1&Body=caf\u00e9 \u260e".encode()),
    ("encoded-name-dropped", TO_LIST, b"%54o=%2B1&To=%2B2", {"+1"}, b"To=%2B2"),
    ("nothing-blocked-identical", TO_LIST, ODD_FORM, {"+999"}, ODD_FORM),
    ("empty-segments-dropped", TO_LIST, b"&To=%2B1&&To=%2B2&", {"+1"}, b"To=%2B2"),
    ("brackets-list", TO_LIST, b"To[]=%2B1&Body=x&To[]=%2B2", {"+2"}, b"To[]=%2B1&Body=x"),
    ("pair-without-equals-kept", TO_LIST, b"To=%2B1&To=%2B2&flag", {"+1"}, b"To=%2B2&flag"),
    ("plivo-middle-part", FormField("dst", "<"), PLIVO_FORM, {"+33612345678"},
     b"src=%2B15005550006&dst=%2B14155550100%3C%2B447700900123&text=Hi+%F0%9F%91%8B"),
    ("plivo-two-parts", FormField("dst", "<"), PLIVO_FORM, {"+14155550100", "+447700900123"},
     b"src=%2B15005550006&dst=%2B33612345678&text=Hi+%F0%9F%91%8B"),
    ("plivo-raw-separator-kept", FormField("dst", "<"),
     b"dst=14155550100<33612345678<447700900123&text=a+b", {"33612345678"},
     b"dst=14155550100<447700900123&text=a+b"),
    ("plivo-first-part", FormField("dst", "<"),
     b"dst=14155550100<33612345678&text=a+b", {"14155550100"}, b"dst=33612345678&text=a+b"),
    ("separator-keeps-encoded-name", FormField("dst", "<"),
     b"%64st=a%3Cb%3Cc", {"b"}, b"%64st=a%3Cc"),
    ("separator-keeps-each-part-spelling", FormField("dst", "<"),
     b"dst=%2B1%3C+2%3C%2b3", {"+1"}, b"dst=+2%3C%2b3"),
]


@pytest.mark.parametrize(("locator", "body", "blocked", "expected"),
                         [c[1:] for c in FORM_REMOVALS], ids=[c[0] for c in FORM_REMOVALS])
def test_form_field_removal_rewrites_exact_bytes(locator: FormField, body: bytes,
                                                 blocked: set[str], expected: bytes) -> None:
    """Blocked fields (or parts) go; every other field and part keeps its raw bytes, in
    order."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    message = Message(body, "PageSize=1&x=%2B1", headers)
    rewritten = found(locator, message).without(frozenset(blocked))
    assert rewritten is not None
    assert rewritten.body == expected
    assert rewritten.query == "PageSize=1&x=%2B1"
    assert rewritten.headers == headers


@pytest.mark.parametrize(("locator", "body"), [
    (FormField("To"), TWILIO_REPEATED),
    (FormField("To"), b"To=%2B14155550100&to=%2B33612345678"),
    (FormField("To"), b"To[]=%2B33612345678"),
    (FormField("To"), b"%54o=%2B14155550100&To=%2B33612345678"),
    (TO_LIST, b"To=%2B14155550100&To[]=%2B33612345678"),
    (TO_LIST, b"To=%2B14155550100&TO=%2B33612345678"),
    (FormField("dst", "<"), b"dst=%2B14155550100%3C%2B1&dst=%2B33612345678"),
], ids=["single-field-repeated", "case-variant", "bracketed", "encoded-name-repeated",
        "list-mixed-spellings", "list-case-variant", "separator-field-repeated"])
def test_form_field_read_inexactly_is_never_rewritten(locator: FormField,
                                                      body: bytes) -> None:
    """When servers could disagree on which pair counts, every value is a recipient and
    the request cannot be edited (on_block applies whole)."""
    recipients = found(locator, Message(body))
    assert "+33612345678" in recipients.values
    assert recipients.remover is None
    assert recipients.without(frozenset({"+33612345678"})) is None


def test_form_field_rewrite_finds_the_remaining_recipients() -> None:
    """The rewritten body, read again, holds exactly the recipients that were not blocked."""
    locator = FormField("dst", "<")
    rewritten = found(locator, Message(PLIVO_FORM)).without(frozenset({"+33612345678"}))
    assert rewritten is not None
    assert found(locator, rewritten).values == ("+14155550100", "+447700900123")


@pytest.mark.parametrize(("locator", "query", "blocked", "expected"), [
    (FormField("to", in_query=True, multi=True), "api_key=k&to=%2B1&to=%2B2&from=X", {"+1"},
     "api_key=k&to=%2B2&from=X"),
    (FormField("to", in_query=True, multi=True), "to=%2b1&text=a%20b+c&to=%2B2", {"+2"},
     "to=%2b1&text=a%20b+c"),
    (FormField("to", "<", in_query=True), "to=1%3C2%3C3&api_key=k", {"2"},
     "to=1%3C3&api_key=k"),
], ids=["repeated", "odd-encodings-kept", "separator"])
def test_form_field_in_query_removal_rewrites_the_query(locator: FormField, query: str,
                                                        blocked: set[str],
                                                        expected: str) -> None:
    """An `in_query` removal rewrites only the query; the body's bytes are untouched."""
    body = b'{"text": "hi", "to": "+1"}'
    rewritten = found(locator, Message(body, query)).without(frozenset(blocked))
    assert rewritten is not None
    assert rewritten.query == expected
    assert rewritten.body == body


def test_form_field_without_can_be_called_again() -> None:
    """Each `without` starts from the original request."""
    recipients = found(TO_LIST, Message(TWILIO_REPEATED))
    first = recipients.without(frozenset({"+14155550100"}))
    second = recipients.without(frozenset({"+33612345678"}))
    assert first is not None
    assert second is not None
    assert found(TO_LIST, first).values == ("+33612345678",)
    assert found(TO_LIST, second).values == ("+14155550100",)


def test_recipients_without_a_remover_cannot_be_edited() -> None:
    """Recipients with no remover answer None: the request cannot be rewritten."""
    assert Recipients(("+1", "+2")).without(frozenset({"+1"})) is None
    editable = found(TO_LIST, Message(TWILIO_REPEATED))
    assert editable.fixed().values == editable.values
    assert editable.fixed().without(frozenset({"+14155550100"})) is None


# ---------------------------------------------------------------------------------- JSON

INFOBIP = {"messages": [
    {"destinations": [{"to": "41793026727"}, {"to": "41793026728", "messageId": "m2"}],
     "from": "InfoSMS", "text": "first"},
    {"destinations": [{"to": "33612345678"}], "from": "InfoSMS", "text": "second"},
]}
PRELUDE = {"target": {"type": "phone_number", "value": "+30123456789"},
           "template_id": "template_01hynrv4bmf1sbxvwn4gmb4tey"}
ILETI_PATH = "request.order.message[].receipents.number[]"
ILETI_MANY = frozenset({"message"})


def _ileti(message: object) -> dict[str, Any]:
    return {"request": {"authentication": {"key": "k", "hash": "h"},
                        "order": {"sender": "ILETI", "sendDateTime": [], "message": message}}}


ILETI_ONE = _ileti({"text": "Merhaba", "receipents": {"number": ["5057023100", "5057023101"]}})
ILETI_TWO = _ileti([
    {"text": "bir", "receipents": {"number": ["5057023100", "5057023101"]}},
    {"text": "iki", "receipents": {"number": ["5057023102"]}},
])


@pytest.mark.parametrize(("path", "doc", "one_or_many", "expected", "exact"), [
    ("to", {"to": "+1"}, frozenset(), [("+1", ("to",))], True),
    ("to", {"to": ["+1", "+2"]}, frozenset(), [("+1", ("to", 0)), ("+2", ("to", 1))], True),
    ("to[]", {"to": ["+1", "+2"]}, frozenset(), [("+1", ("to", 0)), ("+2", ("to", 1))],
     True),
    ("to", {"cc": "+1"}, frozenset(), [], True),
    ("to", {"To": "+1"}, frozenset(), [("+1", ("To",))], False),
    ("to", {"to": "+1", "TO": "+2"}, frozenset(), [("+1", ("to",)), ("+2", ("TO",))], False),
    ("target.value", PRELUDE, frozenset(), [("+30123456789", ("target", "value"))], True),
    ("messages[].destinations[].to", INFOBIP, frozenset(), [
        ("41793026727", ("messages", 0, "destinations", 0, "to")),
        ("41793026728", ("messages", 0, "destinations", 1, "to")),
        ("33612345678", ("messages", 1, "destinations", 0, "to")),
    ], True),
    ("messages[].to", {"messages": [{"to": "+1"}, {"text": "x"}, {"to": ["+2"]}]}, frozenset(),
     [("+1", ("messages", 0, "to")), ("+2", ("messages", 2, "to", 0))], True),
    (ILETI_PATH, ILETI_ONE, ILETI_MANY, [
        ("5057023100", ("request", "order", "message", "receipents", "number", 0)),
        ("5057023101", ("request", "order", "message", "receipents", "number", 1)),
    ], True),
    (ILETI_PATH, ILETI_TWO, ILETI_MANY, [
        ("5057023100", ("request", "order", "message", 0, "receipents", "number", 0)),
        ("5057023101", ("request", "order", "message", 0, "receipents", "number", 1)),
        ("5057023102", ("request", "order", "message", 1, "receipents", "number", 0)),
    ], True),
    ("recipients", {"recipients": [31612345678, None]}, frozenset(),
     [(31612345678, ("recipients", 0)), (None, ("recipients", 1))], True),
], ids=["string", "leaf-array", "explicit-array-leaf", "absent", "key-in-other-case",
        "key-in-two-cases", "nested-object", "infobip", "string-or-array-per-element",
        "one-or-many-object", "one-or-many-array", "any-json-value"])
def test_json_leaves_gives_values_and_positions(
        path: str, doc: object, one_or_many: frozenset[str],
        expected: list[tuple[object, tuple[str | int, ...]]], exact: bool) -> None:
    """Every leaf comes with its concrete position (keys and indices from the root); a
    key matched in another case makes the read inexact."""
    leaves = json_leaves(doc, path, one_or_many)
    assert not isinstance(leaves, BodyError)
    assert (leaves.found, leaves.exact) == (expected, exact)


@pytest.mark.parametrize(("path", "doc", "one_or_many"), [
    ("messages[].to", {"messages": {"to": "+1"}}, frozenset()),
    ("messages[].to", {"messages": "+1"}, frozenset({"messages"})),
    ("a.b[].c", {"a": {"b": 3}}, frozenset()),
], ids=["object-not-array", "string-not-array-or-object", "number-not-array"])
def test_json_leaves_refuses_a_non_array_step(path: str, doc: object,
                                              one_or_many: frozenset[str]) -> None:
    """An `a[]` step on something that is not an array (nor an allowed object) is an error."""
    error = json_leaves(doc, path, one_or_many)
    assert isinstance(error, BodyError)
    assert error.code == "invalid_destination_field"
    assert path in error.message


# (id, document, positions, deletions planned or None, document after the edit)
PLAN_DELETIONS: list[tuple[str, Any, list[tuple[str | int, ...]],
                           set[tuple[str | int, ...]] | None, Any]] = [
    ("one-element", {"to": ["+1", "+2"]}, [("to", 0)], {("to", 0)}, {"to": ["+2"]}),
    ("several-in-one-array", {"to": [0, 1, 2, 3]}, [("to", 3), ("to", 1)],
     {("to", 3), ("to", 1)}, {"to": [0, 2]}),
    ("object-in-array", {"d": [{"to": "+1"}, {"to": "+2"}]}, [("d", 0, "to")], {("d", 0)},
     {"d": [{"to": "+2"}]}),
    ("emptied-array-removed-from-outer",
     {"m": [{"d": [{"to": 1}], "t": "a"}, {"d": [{"to": 2}], "t": "b"}]},
     [("m", 0, "d", 0, "to")], {("m", 0)}, {"m": [{"d": [{"to": 2}], "t": "b"}]}),
    ("cascade-two-levels", {"a": [{"b": [{"c": [1]}]}, {"b": [{"c": [2]}]}]},
     [("a", 1, "b", 0, "c", 0)], {("a", 1)}, {"a": [{"b": [{"c": [1]}]}]}),
    ("outermost-array-left-empty", {"m": [{"d": [1]}]}, [("m", 0, "d", 0)], {("m", 0)},
     {"m": []}),
    ("top-level-array", ["+1", "+2"], [(0,)], {(0,)}, ["+2"]),
    ("different-depths", {"m": [{"to": "+1"}, {"to": ["+2", "+3"]}]},
     [("m", 0, "to"), ("m", 1, "to", 1)], {("m", 0), ("m", 1, "to", 1)},
     {"m": [{"to": ["+2"]}]}),
    ("whole-array-emptied-at-two-depths", {"m": [{"to": "+1"}, {"to": ["+2", "+3"]}]},
     [("m", 1, "to", 0), ("m", 1, "to", 1)], {("m", 1)}, {"m": [{"to": "+1"}]}),
    ("duplicate-positions", {"to": ["+1", "+2"]}, [("to", 0), ("to", 0)], {("to", 0)},
     {"to": ["+2"]}),
    ("nothing", {"to": ["+1"]}, [], set(), {"to": ["+1"]}),
    ("lone-field", {"to": "+1"}, [("to",)], None, {"to": "+1"}),
    ("lone-field-beside-array-untouched", {"to": "+1", "cc": ["+2", "+3"]},
     [("cc", 0), ("to",)], None, {"to": "+1", "cc": ["+2", "+3"]}),
]


@pytest.mark.parametrize(("doc", "positions", "planned", "after"),
                         [c[1:] for c in PLAN_DELETIONS],
                         ids=[c[0] for c in PLAN_DELETIONS])
def test_plan_deletions(doc: Any, positions: list[tuple[str | int, ...]],
                        planned: set[tuple[str | int, ...]] | None, after: Any) -> None:
    """The innermost array element goes; emptied arrays go from the next array out; a
    position in no array refuses the whole edit. The document itself is never changed."""
    before = json.dumps(doc)
    deletions = plan_deletions(doc, positions)
    assert json.dumps(doc) == before
    if planned is None:
        assert deletions is None
        return
    assert deletions == frozenset(planned)
    edited = jsonedit.edit(before.encode(), deletions)
    assert edited is not None
    assert json.loads(edited) == after


@pytest.mark.parametrize(("locator", "doc", "expected"), [
    (JsonPath("to"), {"to": "+14155550100"}, ["+14155550100"]),
    (JsonPath("to"), {"to": ["+14155550100", "+33612345678"]},
     ["+14155550100", "+33612345678"]),
    (JsonPath("to"), {"to": ["+14155550100", "", "  "]}, ["+14155550100"]),
    (JsonPath("to"), {"to": "+14155550100", "cc": "+33612345678"}, ["+14155550100"]),
    (JsonPath("to"), {"To": "+14155550100"}, ["+14155550100"]),
    (JsonPath("messages[].destinations[].to"), INFOBIP,
     ["41793026727", "41793026728", "33612345678"]),
    (JsonPath("messages[].destinations[].to"),
     {"messages": [{"text": "no destinations"}, {"destinations": [{"to": "+1"}]}]}, ["+1"]),
    (JsonPath("messages[].destinations[].to"),
     {"messages": [{"destinations": [{"to": ["+1", "+2"]}]}]}, ["+1", "+2"]),
    (JsonPath("target.value"), PRELUDE, ["+30123456789"]),
    (JsonPath("messages[].to"), {"messages": [{"to": "+1"}, {"to": ["+2", "+3"]}]},
     ["+1", "+2", "+3"]),
    (JsonPath("to[]"), {"to": ["+1", "+2"]}, ["+1", "+2"]),
    (JsonPath("dst", separator="<"), {"dst": "14155550100<33612345678<447700900123"},
     ["14155550100", "33612345678", "447700900123"]),
    (JsonPath("dst", separator="<"), {"dst": "a<<b< "}, ["a", "b"]),
    (JsonPath("dst", separator="<"), {"dst": ["a<b", "c"]}, ["a", "b", "c"]),
    (JsonPath("recipients", numbers=True), {"recipients": [31612345678, 31612345679]},
     ["31612345678", "31612345679"]),
    (JsonPath("recipients", numbers=True), {"recipients": 31612345678}, ["31612345678"]),
    (JsonPath("recipients", numbers=True), {"recipients": ["31612345678", 31612345679]},
     ["31612345678", "31612345679"]),
    (JsonPath("recipients", separator=",", numbers=True),
     {"recipients": "31612345678,31612345679"}, ["31612345678", "31612345679"]),
    (JsonPath(ILETI_PATH, one_or_many=ILETI_MANY), ILETI_ONE, ["5057023100", "5057023101"]),
    (JsonPath(ILETI_PATH, one_or_many=ILETI_MANY), ILETI_TWO,
     ["5057023100", "5057023101", "5057023102"]),
    (JsonPath("to", optional=True), {"text": "x"}, []),
    (JsonPath("to", optional=True), {"to": None}, []),
], ids=["string", "list", "blanks-ignored", "other-keys-ignored", "key-case-differs",
        "infobip", "infobip-message-without-destinations", "infobip-list-leaf", "prelude",
        "array-then-string-or-list", "explicit-array-leaf", "plivo-separator",
        "separator-blank-parts-ignored", "separator-in-array", "messagebird-int-array",
        "messagebird-int", "messagebird-mixed", "messagebird-comma-string",
        "iletimerkezi-message-object", "iletimerkezi-message-array", "optional-absent",
        "optional-null"])
def test_json_path_finds_recipients(locator: JsonPath, doc: object,
                                    expected: list[str]) -> None:
    """A dotted path with `[]` collects every recipient at its leaves, in order."""
    assert found(locator, Message(json.dumps(doc).encode())).values == tuple(expected)


@pytest.mark.parametrize(("body", "expected"), [
    (b'{"to": "+1", "to": "+2"}', ("+1", "+2")),
    (b'{"to": ["+1"], "To": "+2"}', ("+1", "+2")),
    (b'{"messages": [{"to": "+1", "TO": "+2"}, {"to": "+3"}]}', ("+1", "+2", "+3")),
    (b'{"to": ["+1", "+2"], "to": ["+3"]}', ("+1", "+2", "+3")),
], ids=["duplicate-key", "key-in-another-case", "nested-case-variant", "duplicate-arrays"])
def test_json_path_counts_every_duplicate_and_case_variant_and_never_edits(
        body: bytes, expected: tuple[str, ...]) -> None:
    """Servers disagree on which duplicate counts: every value is a recipient, and such a
    request is never rewritten."""
    locator = JsonPath("messages[].to") if b"messages" in body else JsonPath("to")
    recipients = found(locator, Message(body))
    assert recipients.values == expected
    assert recipients.remover is None
    assert recipients.without(frozenset({"+1"})) is None


@pytest.mark.parametrize(("locator", "body", "code"), [
    (JsonPath("to"), b"", "invalid_json"),
    (JsonPath("to"), b"To=%2B14155550100", "invalid_json"),
    (JsonPath("to"), b'{"to": "+1"', "invalid_json"),
    (JsonPath("to"), b'{"to": "\xff"}', "invalid_json"),
    (JsonPath("to"), b"[" * 100_000, "invalid_json"),
    (JsonPath("to"), b'{"to":' * 100_000, "invalid_json"),
    (JsonPath("to"), b'{"to": "\\ud800"}', "invalid_json"),
    (JsonPath("recipients", numbers=True), b'{"recipients": [' + b"9" * 5000 + b"]}",
     "invalid_json"),
    (JsonPath("to"), b"{}", "missing_destination"),
    (JsonPath("to"), b'{"tO ": "+1"}', "missing_destination"),
    (JsonPath("to"), b'{"to": ""}', "missing_destination"),
    (JsonPath("to"), b'{"to": []}', "missing_destination"),
    (JsonPath("to"), b'["+1"]', "missing_destination"),
    (JsonPath("to"), b'"+1"', "missing_destination"),
    (JsonPath("target.value"), b'{"target": "+1"}', "missing_destination"),
    (JsonPath("target.value"), b'{"target": {"type": "phone_number"}}',
     "missing_destination"),
    (JsonPath("messages[].destinations[].to"), b'{"messages": []}', "missing_destination"),
    (JsonPath("messages[].destinations[].to"), b'{"messages": [{"destinations": []}]}',
     "missing_destination"),
    (JsonPath("dst", separator="<"), b'{"dst": "<<"}', "missing_destination"),
    (JsonPath("to"), b'{"to": 14155550100}', "invalid_destination_field"),
    (JsonPath("to"), b'{"to": null}', "invalid_destination_field"),
    (JsonPath("to"), b'{"to": true}', "invalid_destination_field"),
    (JsonPath("to"), b'{"to": {"number": "+1"}}', "invalid_destination_field"),
    (JsonPath("to"), b'{"to": ["+1", 2]}', "invalid_destination_field"),
    (JsonPath("to"), b'{"to": [["+1"]]}', "invalid_destination_field"),
    (JsonPath("to"), b'{"to": "+1", "To": 2}', "invalid_destination_field"),
    (JsonPath("target.value"), b'{"target": {"value": 306912345678}}',
     "invalid_destination_field"),
    (JsonPath("messages[].to"), b'{"messages": {"to": "+1"}}', "invalid_destination_field"),
    (JsonPath("messages[].destinations[].to"), b'{"messages": [{"destinations": {"to": "+1"}}]}',
     "invalid_destination_field"),
    (JsonPath("messages[].destinations[].to"), b'{"messages": "+1"}',
     "invalid_destination_field"),
    (JsonPath("recipients", numbers=True), b'{"recipients": [31612345678.0]}',
     "invalid_destination_field"),
    (JsonPath("recipients", numbers=True), b'{"recipients": [true]}',
     "invalid_destination_field"),
    (JsonPath("recipients", numbers=True), b'{"recipients": null}',
     "invalid_destination_field"),
    (JsonPath("recipients", numbers=True), b'{"recipients": {"msisdn": 31612345678}}',
     "invalid_destination_field"),
    (JsonPath(ILETI_PATH, one_or_many=ILETI_MANY),
     json.dumps(_ileti("5057023100")).encode(), "invalid_destination_field"),
    (JsonPath(ILETI_PATH), json.dumps(ILETI_ONE).encode(), "invalid_destination_field"),
], ids=["empty", "form-body", "truncated", "invalid-utf8", "deep-array-nesting",
        "deep-object-nesting", "lone-surrogate", "integer-too-long", "empty-object",
        "key-with-a-space", "blank", "empty-list", "top-level-array", "top-level-string",
        "parent-is-string", "leaf-missing", "no-messages", "no-destinations",
        "separator-only-blanks", "number", "null", "bool", "object", "list-with-number",
        "nested-list", "case-variant-is-a-number", "prelude-number", "array-step-on-object",
        "inner-array-step-on-object", "array-step-on-string", "numbers-float", "numbers-bool",
        "numbers-null", "numbers-object", "one-or-many-string", "object-without-one-or-many"])
def test_json_path_body_errors(locator: JsonPath, body: bytes, code: str) -> None:
    """Unusable JSON bodies give a BodyError with a client-facing code, never raise."""
    error = refused(locator, Message(body))
    assert error.code == code
    assert error.message


TELNYX_ONE = {"from": "+15005550006", "to": "+14155550100", "text": "hi"}
TELNYX_MANY = {"from": "+15005550006", "to": ["+14155550100", "+33612345678"], "text": "hi"}
SINCH = {"from": "12345", "to": ["447700900123", "447700900124", "447700900125"],
         "body": "Hi", "delivery_report": "none"}
PLIVO = {"src": "+15005550006", "dst": "14155550100<33612345678<447700900123",
         "text": "Merhaba d\u00fcnya"}
MB_STRING = {"originator": "MessageBird", "recipients": "31612345678,31612345679",
             "body": "Hi"}
MB_INTS = {"originator": "MessageBird", "recipients": [31612345678, 31612345679, 31612345680],
           "body": "Hi"}
MIXED = {"messages": [{"to": "+1", "text": "a"}, {"to": ["+2", "+3"], "text": "b"}]}
INFOBIP_PATH = JsonPath("messages[].destinations[].to")


def _with(doc: Any, **changes: Any) -> Any:
    return {**doc, **changes}


# (id, locator, document, blocked, expected document, or None when it cannot be edited)
JSON_REMOVALS: list[tuple[str, JsonPath, Any, set[str], Any]] = [
    ("infobip-one-destination", INFOBIP_PATH, INFOBIP, {"41793026728"}, {"messages": [
        {"destinations": [{"to": "41793026727"}], "from": "InfoSMS", "text": "first"},
        INFOBIP["messages"][1]]}),
    ("infobip-message-emptied-and-dropped", INFOBIP_PATH, INFOBIP, {"33612345678"},
     {"messages": [INFOBIP["messages"][0]]}),
    ("infobip-first-message-dropped", INFOBIP_PATH, INFOBIP, {"41793026727", "41793026728"},
     {"messages": [INFOBIP["messages"][1]]}),
    ("infobip-across-messages", INFOBIP_PATH, INFOBIP, {"41793026727", "33612345678"},
     {"messages": [{"destinations": [{"to": "41793026728", "messageId": "m2"}],
                    "from": "InfoSMS", "text": "first"}]}),
    ("infobip-list-leaf", INFOBIP_PATH,
     {"messages": [{"destinations": [{"to": ["+1", "+2"]}, {"to": "+3"}]}]}, {"+1"},
     {"messages": [{"destinations": [{"to": ["+2"]}, {"to": "+3"}]}]}),
    ("infobip-list-leaf-emptied", INFOBIP_PATH,
     {"messages": [{"destinations": [{"to": ["+1", "+2"]}, {"to": "+3"}]}]}, {"+1", "+2"},
     {"messages": [{"destinations": [{"to": "+3"}]}]}),
    ("sinch-array-step", JsonPath("to[]"), SINCH, {"447700900124"},
     _with(SINCH, to=["447700900123", "447700900125"])),
    ("sinch-array-leaf", JsonPath("to"), SINCH, {"447700900123", "447700900125"},
     _with(SINCH, to=["447700900124"])),
    ("sinch-nothing-blocked", JsonPath("to[]"), SINCH, {"999"}, SINCH),
    ("telnyx-string-cannot-be-removed", JsonPath("to"), TELNYX_ONE, {"+14155550100"}, None),
    ("telnyx-array", JsonPath("to"), TELNYX_MANY, {"+14155550100"},
     _with(TELNYX_MANY, to=["+33612345678"])),
    ("blank-entries-kept", JsonPath("to"), {"to": ["+1", "", "+2"]}, {"+1"},
     {"to": ["", "+2"]}),
    ("same-number-twice", JsonPath("to"), {"to": ["+1", "+2", "+1"]}, {"+1"}, {"to": ["+2"]}),
    ("plivo-middle", JsonPath("dst", separator="<"), PLIVO, {"33612345678"},
     _with(PLIVO, dst="14155550100<447700900123")),
    ("plivo-two", JsonPath("dst", separator="<"), PLIVO, {"14155550100", "447700900123"},
     _with(PLIVO, dst="33612345678")),
    ("plivo-blank-parts-dropped", JsonPath("dst", separator="<"), {"dst": "a<<b<c"}, {"b"},
     {"dst": "a<c"}),
    ("plivo-all-cannot-be-removed", JsonPath("dst", separator="<"), PLIVO,
     {"14155550100", "33612345678", "447700900123"}, None),
    ("separator-in-array-emptied", JsonPath("dst", separator="<"),
     {"dst": ["a<b", "c"]}, {"a", "b"}, {"dst": ["c"]}),
    ("iletimerkezi-object", JsonPath(ILETI_PATH, one_or_many=ILETI_MANY), ILETI_ONE,
     {"5057023100"}, _ileti({"text": "Merhaba", "receipents": {"number": ["5057023101"]}})),
    ("iletimerkezi-array", JsonPath(ILETI_PATH, one_or_many=ILETI_MANY), ILETI_TWO,
     {"5057023101"}, _ileti([
         {"text": "bir", "receipents": {"number": ["5057023100"]}},
         {"text": "iki", "receipents": {"number": ["5057023102"]}}])),
    ("iletimerkezi-message-dropped", JsonPath(ILETI_PATH, one_or_many=ILETI_MANY), ILETI_TWO,
     {"5057023102"}, _ileti([
         {"text": "bir", "receipents": {"number": ["5057023100", "5057023101"]}}])),
    ("iletimerkezi-first-message-dropped", JsonPath(ILETI_PATH, one_or_many=ILETI_MANY),
     ILETI_TWO, {"5057023100", "5057023101"},
     _ileti([{"text": "iki", "receipents": {"number": ["5057023102"]}}])),
    ("messagebird-comma-string", JsonPath("recipients", separator=",", numbers=True),
     MB_STRING, {"31612345678"}, _with(MB_STRING, recipients="31612345679")),
    ("messagebird-ints", JsonPath("recipients", separator=",", numbers=True), MB_INTS,
     {"31612345679"}, _with(MB_INTS, recipients=[31612345678, 31612345680])),
    ("messagebird-mixed", JsonPath("recipients", numbers=True),
     {"recipients": ["31612345678", 31612345679]}, {"31612345679"},
     {"recipients": ["31612345678"]}),
    ("messagebird-lone-int-cannot-be-removed", JsonPath("recipients", numbers=True),
     {"recipients": 31612345678}, {"31612345678"}, None),
    ("string-or-list-first", JsonPath("messages[].to"), MIXED, {"+1"},
     {"messages": [{"to": ["+2", "+3"], "text": "b"}]}),
    ("string-or-list-second-emptied", JsonPath("messages[].to"), MIXED, {"+2", "+3"},
     {"messages": [{"to": "+1", "text": "a"}]}),
    ("string-or-list-one-of-each", JsonPath("messages[].to"), MIXED, {"+1", "+3"},
     {"messages": [{"to": ["+2"], "text": "b"}]}),
]


@pytest.mark.parametrize(("locator", "doc", "blocked", "expected"),
                         [c[1:] for c in JSON_REMOVALS], ids=[c[0] for c in JSON_REMOVALS])
def test_json_path_removal(locator: JsonPath, doc: Any, blocked: set[str],
                           expected: Any) -> None:
    """Blocked leaves go with their innermost array element; emptied arrays go from the
    next array out; a recipient in no array cannot be removed (None). The rest of the
    body keeps its bytes: an indented body is still the same indented text."""
    headers = {"Content-Type": "application/json"}
    message = Message(json.dumps(doc, indent=2).encode(), "dry_run=1", headers)
    rewritten = found(locator, message).without(frozenset(blocked))
    if expected is None:
        assert rewritten is None
        return
    assert rewritten is not None
    # Also tells 31612345679 from 31612345679.0, which compare equal.
    assert rewritten.body == json.dumps(expected, indent=2).encode()
    assert rewritten.query == "dry_run=1"
    assert rewritten.headers == headers
    assert set(found(locator, rewritten).values).isdisjoint(blocked)


@pytest.mark.parametrize(("body", "expected"), [
    ('{"to": ["+1", "+2"], "text": "\u00c7a\u011fr\u0131 \u260e \U0001f44b"}'.encode(),
     '{"to": ["+2"], "text": "\u00c7a\u011fr\u0131 \u260e \U0001f44b"}'.encode()),
    (b'{"to": ["+1", "+2"], "text": "\\u00c7a\\u011fr\\u0131 \\u260e \\ud83d\\udc4b"}',
     b'{"to": ["+2"], "text": "\\u00c7a\\u011fr\\u0131 \\u260e \\ud83d\\udc4b"}'),
    (b'{ "to" :[ "+1" ,"+2" ], "n": 1.50, "e": 1E2, "s": "\\/" }',
     b'{ "to" :[ "+2" ], "n": 1.50, "e": 1E2, "s": "\\/" }'),
    (b'\xef\xbb\xbf{"to": ["+1", "+2"]}', b'\xef\xbb\xbf{"to": ["+2"]}'),
], ids=["raw-utf8-kept", "escapes-kept", "spacing-and-number-spellings-kept", "bom-kept"])
def test_json_path_removal_keeps_every_other_byte_as_sent(body: bytes,
                                                          expected: bytes) -> None:
    """The body is never re-encoded: UTF-8 stays UTF-8, `\\u` escapes stay escapes,
    spacing and number spellings stay as the client wrote them."""
    rewritten = found(JsonPath("to"), Message(body)).without(frozenset({"+1"}))
    assert rewritten is not None
    assert rewritten.body == expected


def test_json_path_without_can_be_called_again() -> None:
    """Each `without` starts from the original document, not from an earlier rewrite."""
    recipients = found(JsonPath("to"), Message(json.dumps(SINCH).encode()))
    first = recipients.without(frozenset({"447700900123"}))
    second = recipients.without(frozenset({"447700900125"}))
    assert first is not None
    assert second is not None
    assert json.loads(first.body)["to"] == ["447700900124", "447700900125"]
    assert json.loads(second.body)["to"] == ["447700900123", "447700900124"]


def test_json_path_refused_removal_leaves_later_removals_intact() -> None:
    """A refused edit (lone recipient) does not spoil the next call on the same request."""
    recipients = found(JsonPath("dst", separator="<"), Message(json.dumps(PLIVO).encode()))
    assert recipients.without(frozenset({"14155550100", "33612345678", "447700900123"})) \
        is None
    rewritten = recipients.without(frozenset({"14155550100"}))
    assert rewritten is not None
    assert json.loads(rewritten.body)["dst"] == "33612345678<447700900123"


# ---------------------------------------------------------------------------- identities

SID_BASIC = _basic(f"{SID}:auth-token")
SID_TOKEN = SID_BASIC.split()[1]


@pytest.mark.parametrize(("headers", "expected"), [
    ({"Authorization": SID_BASIC}, SID),
    ({"Authorization": _basic(f"{API_KEY}:secret")}, API_KEY),
    ({"Authorization": "basic " + SID_TOKEN}, SID),
    ({"Authorization": "BASIC " + SID_TOKEN}, SID),
    ({"Authorization": "Basic   " + SID_TOKEN + "  "}, SID),
    ({"Authorization": "  Basic " + SID_TOKEN}, SID),
    (CIMultiDict({"authorization": SID_BASIC}), SID),
    ({"authorization": SID_BASIC}, SID),
    ({"Authorization": _basic("AC1")}, "AC1"),
    ({"Authorization": _basic("AC1:a:b")}, "AC1"),
    ({"Authorization": _basic("kullan\u0131c\u0131:pw")}, "kullan\u0131c\u0131"),
    ({"Authorization": "Basic QUMxOnQ"}, "AC1"),
    ({"Authorization": "Basic " + SID_TOKEN.rstrip("=")}, SID),
    ({"Authorization": "Basic " + SID_TOKEN[:20] + " " + SID_TOKEN[20:]}, SID),
    ({"Authorization": "Basic " + base64.urlsafe_b64encode(b"ab?>:x").decode()}, "ab?>"),
    ({"Authorization": _basic(":secret")}, None),
    ({"Authorization": _basic(" :secret")}, None),
    ({"Authorization": _basic("")}, None),
    ({"Authorization": "Basic "}, None),
    ({"Authorization": "Basic"}, None),
    ({"Authorization": "Basic !!!not-base64"}, None),
    ({"Authorization": _basic(b"\xff\xfe:x")}, None),
    ({"Authorization": "Basic\t" + SID_TOKEN}, None),
    ({"Authorization": "Bearer " + SID_TOKEN}, None),
    ({"Authorization": ""}, None),
    ({}, None),
], ids=["account-sid", "api-key", "scheme-lower", "scheme-upper", "extra-spaces",
        "leading-spaces", "header-name-any-case", "plain-dict-lower-case-header",
        "no-password", "colons-in-password", "utf8-user", "missing-padding",
        "padding-stripped", "space-inside-token", "url-safe-alphabet",
        "empty-user", "blank-user", "empty-credentials", "empty-token", "scheme-only",
        "not-base64", "not-utf8", "tab-after-scheme", "bearer", "empty-header",
        "no-header"])
def test_basic_user(headers: Any, expected: str | None) -> None:
    """The user of `Authorization: Basic`, read as leniently as a gateway reads it; None
    when absent, empty or undecodable."""
    assert basic_user(headers) == expected


@pytest.mark.parametrize(("header", "scheme", "expected"), [
    ("Bearer abc", "Bearer",
     "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    ("Bearer KEY0123456789", "Bearer", _sha("KEY0123456789")),
    ("bearer KEY0123456789", "Bearer", _sha("KEY0123456789")),
    ("BEARER KEY0123456789", "bearer", _sha("KEY0123456789")),
    ("Bearer   KEY0123456789  ", "Bearer", _sha("KEY0123456789")),
    ("Bearer a b", "Bearer", _sha("ab")),
    ("Bearer KEY01 23456789", "Bearer", _sha("KEY0123456789")),
    ("App 003026bbc133714df1834b8638bb496e", "App", _sha("003026bbc133714df1834b8638bb496e")),
    ("App 003026bbc133714df1834b8638bb496e", "Bearer", None),
    ("Bearer KEY0123456789", "App", None),
    (SID_BASIC, "Basic", _sha(SID_TOKEN)),
    (SID_BASIC, "Bearer", None),
    ("Bearer ", "Bearer", None),
    ("Bearer    ", "Bearer", None),
    ("Bearer", "Bearer", None),
    ("BearerKEY", "Bearer", None),
    ("", "Bearer", None),
], ids=["known-vector", "bearer", "scheme-lower", "scheme-any-case", "spaces-stripped",
        "inner-space-ignored", "inner-space-same-digest", "custom-scheme",
        "custom-scheme-not-bearer", "bearer-not-custom", "basic-as-scheme", "basic-not-bearer",
        "empty-token", "blank-token", "scheme-only", "no-space", "empty-header"])
def test_token_digest(header: str, scheme: str, expected: str | None) -> None:
    """`sha256:<hex>` of the token for the given scheme (any case, whitespace ignored);
    None otherwise."""
    assert token_digest({"Authorization": header}, scheme) == expected


def test_token_digest_defaults_to_bearer_and_reads_any_header_case() -> None:
    """Without a scheme the token is a Bearer token; the header name's case is free."""
    headers = CIMultiDict({"AUTHORIZATION": "Bearer KEY0123456789"})
    digest = token_digest(headers)
    assert digest == _sha("KEY0123456789")
    assert digest is not None
    assert DIGEST_RE.fullmatch(digest)
    assert token_digest({"authorization": "Bearer KEY0123456789"}) == digest
    assert token_digest({}) is None


def test_token_digest_is_accepted_as_a_credentials_key(tmp_path: Path) -> None:
    """A digest can be pasted into `upstreams[].credentials` as it is."""
    digest = token_digest({"Authorization": "Bearer KEY0123456789"})
    cfg = parse_config({"upstreams": [{
        "name": "gw", "url": "https://gw.example", "preset": "generic",
        "routes": [{"path": "/v1/sms", "channel": "sms", "destination": {"json": "to"}}],
        "credentials": {digest: ["tenant:acme"]},
    }]}, env={}, base=tmp_path)
    assert cfg.upstreams[0].credentials[0].identity == digest


@pytest.mark.parametrize(("path", "headers", "expected"), [
    (f"{BASE}/Messages.json", {"Authorization": SID_BASIC}, (SID,)),
    (f"{BASE}/Messages.json", {"Authorization": _basic(f"{API_KEY}:secret")}, (SID, API_KEY)),
    (f"{BASE}/Calls.json", {}, (SID,)),
    (f"{BASE}/Messages.json", {"Authorization": "Bearer x"}, (SID,)),
    (f"/2010-04-01/accounts/{SID}/messages.json", {}, (SID,)),
    (f"{VERIFY_SERVICE}/Verifications", {"Authorization": _basic(f"{API_KEY}:secret")},
     (API_KEY,)),
    ("/2010-04-01/Accounts/ACother/Messages.json", {"Authorization": SID_BASIC},
     ("ACother", SID)),
    (f"{VERIFY_SERVICE}/Verifications", {}, ()),
], ids=["sid-in-path-and-auth", "api-key", "no-auth", "bearer-ignored",
        "path-in-lower-case", "no-account-in-path", "different-accounts", "nothing"])
def test_twilio_identities(path: str, headers: dict[str, str],
                           expected: tuple[str, ...]) -> None:
    """Twilio: the account SID in the (canonical) path, then the Basic user, without
    repeats."""
    message = Message(b"To=%2B14155550100", "", headers)
    assert twilio.PRESET.identities(message, canonical(path)) == expected


@pytest.mark.parametrize(("headers", "expected"), [
    ({"Authorization": _basic("acme:pw")}, ("acme",)),
    ({"Authorization": "Bearer KEY0123456789"}, (_sha("KEY0123456789"),)),
    ({"Authorization": "Token KEY0123456789"}, ()),
    ({"Authorization": "Basic %%%"}, ()),
    ({}, ()),
], ids=["basic-user", "bearer-digest", "other-scheme", "bad-basic", "no-auth"])
def test_generic_identities(headers: dict[str, str], expected: tuple[str, ...]) -> None:
    """Generic: the Basic user or the Bearer token's digest; the path is not used."""
    message = Message(b'{"to": "+1"}', "account=acme", headers)
    assert generic.PRESET.identities(message, "/v1/acme/call") == expected


# ------------------------------------------------------------------------------ replies

SEND_FORM = Message(b"To=%2B33612345678&From=%2B15005550006&Body=Hello+there%21")
MESSAGES = route_for(TWILIO_ROUTES, "POST", f"{BASE}/Messages.json")
CALLS = route_for(TWILIO_ROUTES, "POST", f"{BASE}/Calls.json")


def _blocked(channel: Channel | None, **extra: Any) -> Blocked:
    return Blocked(request_id="req-1", channel=channel, destination="+33612345678", **extra)


def _twilio_version() -> Version:
    return Client(SID, "token").api.v2010


def test_blocked_defaults() -> None:
    """A Blocked context without a request has an empty message and no destination list."""
    blocked = _blocked("sms")
    assert blocked.path_params == {}
    assert blocked.message == Message(b"")
    assert blocked.destinations == ()


@pytest.mark.parametrize("path", [f"{BASE}/Messages.json", f"{BASE}/Calls.json",
                                  f"{CONF}/Participants.json", f"{VERIFY_SERVICE}/Verifications",
                                  "/v2/Flows/FW1/Executions"],
                         ids=["messages", "calls", "participants", "verify", "studio"])
def test_twilio_reject_is_twilio_error_shape(path: str) -> None:
    """Twilio reject, on every route: 403 JSON with numeric code 21610, message, more_info
    and status."""
    route = route_for(TWILIO_ROUTES, "POST", path)
    reply = route.reject(_blocked(route.channel))
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


@pytest.mark.parametrize("route", [MESSAGES, CALLS], ids=["sms", "voice"])
def test_twilio_sdk_raises_its_rest_exception_for_reject(route: Any) -> None:
    """The Twilio SDK turns the reject into TwilioRestException with code 21610."""
    reply = route.reject(_blocked(route.channel))
    exc = Version.exception("POST", f"{BASE}/Messages.json",
                            Response(reply.status, reply.body.decode()),
                            "Unable to create record")
    assert isinstance(exc, TwilioRestException)
    assert exc.code == 21610
    assert exc.status == 403
    assert "blocked" in exc.msg


@pytest.mark.parametrize(("route", "prefix", "kind"), [
    (MESSAGES, "SM", "Messages"),
    (CALLS, "CA", "Calls"),
], ids=["sms", "voice"])
def test_twilio_skip_is_a_canceled_resource(route: Any, prefix: str, kind: str) -> None:
    """Twilio skip: 201 with a message (SM...) or call (CA...) resource, status canceled."""
    blocked = _blocked(route.channel, path_params={"account_sid": SID}, message=SEND_FORM,
                       destinations=("+33612345678",))
    reply = route.skip(blocked)
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
    if route is MESSAGES:
        assert payload["body"] == "Hello there!"
        assert payload["num_segments"] == "0"
    else:
        assert "body" not in payload


@pytest.mark.parametrize(("path", "expected"), [
    (f"{CONF}/Participants.json", "CA"),
    (f"{BASE}/Calls/CA1.json", "CA"),
], ids=["participant", "call-update"])
def test_twilio_skip_of_other_voice_sends_is_a_canceled_call(path: str, expected: str) -> None:
    """Participants and call updates answer with a call resource too."""
    route = route_for(TWILIO_ROUTES, "POST", path)
    payload = _json(route.skip(_blocked("voice", path_params={"account_sid": SID})))
    assert (payload["sid"][:2], payload["status"]) == (expected, "canceled")


def test_twilio_skip_sms_parses_as_sdk_message() -> None:
    """The SDK reads the skipped message as a MessageInstance."""
    reply = MESSAGES.skip(_blocked(
        "sms", path_params={"account_sid": SID},
        message=Message(b"To=%2B33612345678&From=%2B15005550006&Body=Hi")))
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
    reply = CALLS.skip(_blocked(
        "voice", path_params={"account_sid": SID},
        message=Message(b"To=%2B33612345678&From=%2B15005550006&Url=https%3A%2F%2Fx")))
    call = CallInstance(_twilio_version(), _json(reply), account_sid=SID)
    assert call.sid is not None
    assert call.sid.startswith("CA")
    assert call.status == "canceled"
    assert call.to == "+33612345678"
    assert _json(reply)["from"] == "+15005550006"
    assert isinstance(call.date_created, datetime)


def test_twilio_skip_gives_each_send_its_own_sid() -> None:
    """Two skips never share a sid."""
    sids = {_json(MESSAGES.skip(_blocked("sms")))["sid"] for _ in range(20)}
    assert len(sids) == 20


@pytest.mark.parametrize(("body", "sender", "text"), [
    (b"", None, ""),
    (b"To=%2B33612345678", None, ""),
    (b"\xff\xfe", None, ""),
    (b"To=%2B1&junk", None, ""),
    (b"To=%2B1;From=%2B2&Body=x", None, ""),
    (b"From=%2B1&From=%2B2&Body=a&Body=b", "+1", "a"),
    ("Body=Merhaba+d%C3%BCnya+\u260e&From=ACME".encode(), "ACME", "Merhaba d\u00fcnya \u260e"),
], ids=["empty", "no-from-or-body", "not-utf8", "pair-without-equals", "unreadable-form",
        "repeated-fields-first-wins", "utf8-and-plus"])
def test_twilio_skip_reads_from_and_body_from_the_message(body: bytes, sender: str | None,
                                                          text: str) -> None:
    """From and Body come from the blocked request's form; unreadable forms give defaults."""
    payload = _json(MESSAGES.skip(_blocked("sms", message=Message(body))))
    assert payload["from"] == sender
    assert payload["body"] == text
    assert payload["account_sid"] == ""


@pytest.mark.parametrize(("path", "body", "key", "value"), [
    (f"{VERIFY_SERVICE}/Verifications", b"To=%2B33612345678&Channel=call", "channel", "call"),
    (f"{BASE}/OutgoingCallerIds.json", b"PhoneNumber=%2B33612345678", "phone_number",
     "+33612345678"),
    ("/v1/Conversations/CH1/Participants", b"MessagingBinding.Address=%2B33612345678",
     "status", "canceled"),
    ("/v2/Flows/FW1/Executions", b"To=%2B33612345678", "status", "canceled"),
], ids=["verification", "caller-id", "conversation-participant", "studio-execution"])
def test_twilio_skip_of_other_products(path: str, body: bytes, key: str, value: str) -> None:
    """Verify, caller-id, Conversations and Studio sends skip with their own 201 resource."""
    route = route_for(TWILIO_ROUTES, "POST", path)
    reply = route.skip(_blocked(route.channel, message=Message(body)))
    assert reply.status == 201
    payload = _json(reply)
    assert payload[key] == value
    if "status" in payload and key != "status":
        assert payload["status"] == "canceled"


def test_twilio_unauthorized_is_its_authenticate_error() -> None:
    """401 with Twilio's code 20003, which the SDK raises as TwilioRestException."""
    reply = twilio.PRESET.unauthorized("req-1")
    assert (reply.status, reply.content_type) == (401, "application/json")
    assert _json(reply) == {"code": 20003, "message": "Authenticate",
                            "more_info": "https://www.twilio.com/docs/errors/20003",
                            "status": 401}
    exc = Version.exception("POST", f"{BASE}/Messages.json",
                            Response(reply.status, reply.body.decode()), "Unable to create")
    assert (exc.code, exc.status) == (20003, 401)


@pytest.mark.parametrize("channel", ["sms", "voice", None])
def test_twilio_refuse_is_its_reject(channel: Channel | None) -> None:
    """A scanned unknown write gets the same 403 21610 as a blocked send."""
    blocked = _blocked(channel)
    assert twilio.PRESET.refuse(blocked) == MESSAGES.reject(blocked)


@pytest.mark.parametrize("channel", ["sms", "voice", None])
def test_generic_reject_is_gatekeeper_error(channel: Channel | None) -> None:
    """Generic reject (every route, and refuse): 403 {code, message, type, request_id}."""
    for reply in [*(r.reject(_blocked(channel)) for r in GENERIC_ROUTES),
                  generic.PRESET.refuse(_blocked(channel))]:
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
def test_generic_skip_is_a_success(channel: Channel) -> None:
    """Generic skip: 200 JSON naming the request and the skip."""
    for route in GENERIC_ROUTES:
        reply = route.skip(_blocked(channel))
        assert reply.status == 200
        assert reply.content_type == "application/json"
        assert _json(reply) == {"id": "req-1", "status": "skipped"}


def test_generic_unauthorized_is_gatekeeper_error() -> None:
    """Generic 401: Gatekeeper's own error shape with the request id."""
    reply = generic.PRESET.unauthorized("req-7")
    assert (reply.status, reply.content_type) == (401, "application/json")
    payload = _json(reply)
    assert (payload["code"], payload["type"], payload["request_id"]) == (
        "unauthorized", "unauthorized", "req-7")
    assert payload["message"]

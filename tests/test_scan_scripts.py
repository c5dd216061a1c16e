"""Inline call scripts (gatekeeper.scan.script_targets): TwiML, TeXML, NCCO, MessageBird
call flows, Sinch SVAML. Every target counts; the caller id never does."""

from __future__ import annotations

import json

import pytest

from gatekeeper.scan import ScanError, script_targets

CALLER = "+14155550100"

TWIML = (f'<Response><Dial callerId="{CALLER}"><Number>+33611111111</Number>'
         "<Sip>sip:+33622222222@trunk.example</Sip></Dial><Dial>+33633333333</Dial>"
         f'<Message to="+33644444444" from="{CALLER}">hi</Message>'
         "<Refer><Sip>sip:+33655555555@pbx.example</Sip></Refer></Response>")


def targets(text: str, *, bare_digits: bool = False, max_values: int = 100
            ) -> list[str] | ScanError:
    return script_targets(text, bare_digits=bare_digits, max_values=max_values)


# (id, script, bare_digits, expected targets, exactly)
SCRIPTS: list[tuple[str, str, bool, list[str]]] = [
    ("twiml-brief-example", TWIML, False,
     ["+33611111111", "sip:+33622222222@trunk.example", "+33633333333", "+33644444444",
      "sip:+33655555555@pbx.example"]),
    ("twiml-national-number", "<Response><Dial><Number>415-123-4567</Number></Dial>"
     "</Response>", False, ["415-123-4567"]),
    ("twiml-dial-text-national", "<Response><Dial>(415) 123-4567</Dial></Response>", False,
     ["(415) 123-4567"]),
    ("twiml-send-digits-dropped", '<Response><Dial><Number sendDigits="wwww1928">'
     "+18004247767</Number></Dial></Response>", False, ["+18004247767"]),
    ("twiml-client-and-conference", "<Response><Dial><Client>alice</Client>"
     "<Conference>Room 1234</Conference><Queue>support</Queue></Dial></Response>", False,
     []),
    ("twiml-say-number", "<Response><Say>+33612345678</Say><Say>call 12345678</Say>"
     "</Response>", False, ["+33612345678"]),
    ("twiml-sms-legacy", f'<Response><Sms to="+33612345678" from="{CALLER}">x</Sms>'
     "</Response>", False, ["+33612345678"]),
    # Decoded once more, `+` reads as a space: the digits are kept too (a `To` target).
    ("twiml-redirect-query", "<Response><Redirect>https://h.example/next?To=%2B33612345678"
     "</Redirect></Response>", False, ["+33612345678", "33612345678"]),
    ("twiml-sip-display-name", '<Response><Dial><Sip>"Bob" &lt;sip:+33612345678@h&gt;</Sip>'
     "</Dial></Response>", False, ['"Bob" <sip:+33612345678@h>', "sip:+33612345678@h"]),
    ("texml-dial", f'<Response><Dial callerId="{CALLER}" fromDisplayName="{CALLER}">'
     "<Number>+33612345678</Number></Dial></Response>", False, ["+33612345678"]),
    ("ncco-connect", json.dumps([
        {"action": "talk", "text": "connecting"},
        {"action": "connect", "from": "447700900000", "endpoint": [
            {"type": "phone", "number": "447700900001", "dtmfAnswer": "2p02p"},
            {"type": "sip", "uri": "sip:+33612345678@sip.example.com"},
            {"type": "websocket", "uri": "wss://ws.example/socket"},
            {"type": "app", "user": "alice"},
            {"type": "vbc", "extension": "1234"}]}]), False,
     ["447700900001", "sip:+33612345678@sip.example.com"]),
    ("ncco-bare-digits-elsewhere", json.dumps([{"action": "talk", "text": "447700900002"}]),
     True, ["447700900002"]),
    ("ncco-int-number", json.dumps([{"action": "connect", "endpoint": [
        {"type": "phone", "number": 447700900001}]}]), False, ["447700900001"]),
    ("vonage-call-from-endpoint", json.dumps({
        "to": [{"type": "phone", "number": "447700900001"}],
        "from": {"type": "phone", "number": "447700900000"}}), True, ["447700900001"]),
    ("messagebird-transfer", json.dumps({
        "source": "+31600000000", "destination": "+31612345678",
        "callFlow": {"steps": [{"action": "say", "options": {"payload": "hi"}},
                               {"action": "transfer",
                                "options": {"destination": "+31687654321", "mask": True}}]}}),
     False, ["+31612345678", "+31687654321"]),
    ("messagebird-steps-only", json.dumps({"steps": [
        {"action": "transfer", "options": {"destination": "31612345678"}}]}), False,
     ["31612345678"]),
    ("svaml-connect-pstn", json.dumps({
        "instructions": [{"name": "say", "text": "hi"}],
        "action": {"name": "connectPstn", "number": "+46700000000", "cli": "+46700000001",
                   "dtmf": "ww1234#"}}), False, ["+46700000000"]),
    ("svaml-connect-sip", json.dumps({"action": {
        "name": "connectSip", "destination": {"type": "Sip", "endpoint": "sip:+46700000002@h"},
        "cli": "private"}}), False, ["sip:+46700000002@h"]),
    ("svaml-inline-string", json.dumps({"ice": json.dumps({"action": {
        "name": "connectPstn", "number": "+46700000003", "cli": "+46700000004"}})}), False,
     ["+46700000003"]),
    ("caller-name-spellings", json.dumps({"CallerId": CALLER, "caller_id": CALLER,
                                          "CALLERID": CALLER, "Caller-Id": CALLER,
                                          "From": CALLER, "CLI": CALLER,
                                          "originator": CALLER, "to": "+33612345678"}),
     False, ["+33612345678"]),
    ("plivo-xml", f'<Response><Message src="{CALLER}" dst="14155550199">hi</Message>'
     f'<Dial callerId="{CALLER}" callerName="{CALLER}"><Number>14155550198</Number></Dial>'
     "</Response>", False, ["14155550199", "14155550198"]),
    ("plain-text-script", "+33612345678\nsip:+33699999999@h", False,
     ["+33612345678", "sip:+33699999999@h"]),
]


@pytest.mark.parametrize(
    ("script", "bare_digits", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in SCRIPTS],
)
def test_script_targets(script: str, bare_digits: bool, expected: list[str]) -> None:
    """Every dial, transfer and message target is found; callers and names are not."""
    found = targets(script, bare_digits=bare_digits)
    assert not isinstance(found, ScanError), found
    assert sorted(found) == sorted(expected)
    assert CALLER not in found


@pytest.mark.parametrize(
    ("script", "code"),
    [
        pytest.param("<Response><Dial>+33612345678</Response>", "invalid_body",
                     id="malformed-xml"),
        pytest.param('[{"action": "connect"', "invalid_body", id="malformed-json"),
        pytest.param('<!DOCTYPE r [<!ENTITY n "+33612345678">]><Response><Dial>&n;</Dial>'
                     "</Response>", "ambiguous_request", id="entity"),
        pytest.param(json.dumps([{"to": f"+3361234{n:04d}"} for n in range(3)]),
                     "too_many_values", id="too-many"),
    ],
)
def test_script_refused(script: str, code: str) -> None:
    """A script that cannot be read, or names too many targets, is an error."""
    found = targets(script, max_values=2)
    assert isinstance(found, ScanError)
    assert found.code == code

"""Fields read every way a gateway could read them: duplicates, case variants, array
syntaxes, the query as well as the body, inline call scripts and every spelling of a
number. Such requests are decided whole and never edited; rewrites change no other byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import FakeUpstream, StartGatekeeper
from tests.enforcement_helpers import ALLOWED, BLOCKED, CALLS, FORM, JSON, MESSAGES, SEED, config

B = BLOCKED.replace("+", "%2B")
A = ALLOWED.replace("+", "%2B")
FULLWIDTH = "".join(chr(0xFF10 + int(d)) for d in BLOCKED[1:])  # the digits, fullwidth


@pytest.mark.parametrize(("path", "query", "body", "content_type"), [
    (MESSAGES, "", f"To={A}&To={B}", FORM),
    (MESSAGES, "", f"To={B}&To={A}", FORM),
    (MESSAGES, "", f"to={B}&Body=x", FORM),
    (MESSAGES, "", f"TO={B}&Body=x", FORM),
    (MESSAGES, "", f"To[]={B}&Body=x", FORM),
    (MESSAGES, "", f"To[0]={B}&Body=x", FORM),
    (MESSAGES, "", f"To[x]={B}&To={A}", FORM),
    (MESSAGES, f"To={B}", f"To={A}&Body=x", FORM),
    (MESSAGES, f"Extra={B}", f"To={A}&Body=x", FORM),
    (CALLS, "", f"To={A}&Twiml=%3CResponse%3E%3CDial%3E{B}%3C%2FDial%3E%3C%2FResponse%3E",
     FORM),
    (CALLS, "", f"To={A}&Twiml=%3CResponse%3E%3CDial%3E%3CSip%3Esip%3A{B}%40trunk.example"
                "%3C%2FSip%3E%3C%2FDial%3E%3C%2FResponse%3E", FORM),
    (CALLS, "", f"To={A}&Url=https%3A%2F%2Fhandler.twilio.com%2Ftwiml%2FEH1%3FTo%3D{B}", FORM),
    ("/twilio/v2/Flows/FW1/Executions", "",
     f"To={A}&Parameters=%7B%22transfer%22%3A%22{B}%22%7D", FORM),
    ("/telnyx/v2/messages", "", json.dumps({"to": ALLOWED}).replace(
        "}", f', "to": "{BLOCKED}"}}'), JSON),
    ("/telnyx/v2/messages", "", json.dumps({"TO": BLOCKED, "from": ALLOWED}), JSON),
    ("/telnyx/v2/texml/calls/conn1", "", json.dumps(
        {"To": ALLOWED, "Texml": f"<Response><Dial>{BLOCKED}</Dial></Response>"}), JSON),
    ("/generic/v1/sms", "", '{"messages": [{"to": "+14155550100"}, {"to": "+14155550100", '
                            f'"to": "{BLOCKED}"}}]}}', JSON),
    ("/telnyx/v2/messages", "", json.dumps({"to": f"sip:{BLOCKED[:6]}-{BLOCKED[6:]}@trunk"}),
     JSON),
    ("/telnyx/v2/messages", "", json.dumps({"to": f"tel:{BLOCKED};ext=12"}), JSON),
    ("/telnyx/v2/messages", "", json.dumps({"to": "+" + FULLWIDTH}), JSON),
    ("/vonage/v1/calls", "", json.dumps({"to": [{"type": "sip",
                                                 "uri": "sip:33612345678@trunk.example"}]}),
     JSON),
    ("/vonage/sms/json", "", "to=0033612345678&from=x&text=hi", FORM),
], ids=["twilio-duplicate-first-allowed", "twilio-duplicate-first-blocked", "twilio-lower",
        "twilio-upper", "twilio-brackets", "twilio-indexed", "twilio-keyed-and-plain",
        "twilio-query-and-body", "twilio-number-in-query", "twilio-twiml-dial",
        "twilio-twiml-sip", "twilio-twiml-bin-url-query", "studio-parameters",
        "telnyx-json-duplicate", "telnyx-json-case", "telnyx-texml",
        "generic-duplicate-inside-array", "sip-visual-separators", "tel-extension",
        "fullwidth-digits", "vonage-sip-msisdn", "vonage-00-prefix"])
async def test_every_reading_of_a_recipient_is_decided(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path, path: str,
        query: str, body: str, content_type: str) -> None:
    """Whichever reading the gateway takes, a blocked number in it stops the request."""
    gk = await start_gatekeeper(config(upstream.url, tmp_path))
    await gk.block(BLOCKED)
    target = path + (f"?{query}" if query else "")
    resp = await gk.proxy.post(target, data=body.encode(), headers={"Content-Type": content_type})
    assert resp.headers["X-Gatekeeper-Decision"] in ("rejected", "skipped"), await resp.text()
    assert upstream.received == []


@pytest.mark.parametrize("on_invalid", ["reject", "forward"])
async def test_a_listed_number_is_blocked_whatever_phonenumbers_says(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        on_invalid: str) -> None:
    """The seed's +1234567890 is not a possible number; on the list it is enforced anyway,
    and an unlisted impossible number follows proxy.on_invalid."""
    gk = await start_gatekeeper(config(upstream.url, tmp_path, proxy={"on_invalid": on_invalid}))
    await gk.block(SEED)
    for spelling in (SEED, "001234567890", "tel:+1-234-567-890"):
        resp = await gk.proxy.post("/telnyx/v2/messages", json={"to": spelling})
        assert resp.status == 422, spelling
    assert upstream.received == []
    other = await gk.proxy.post("/telnyx/v2/messages", json={"to": "+1234567891"})
    assert other.status == (400 if on_invalid == "reject" else 201)
    if on_invalid == "reject":
        message = (await other.json())["message"]
        assert "1234567891" not in message  # error replies mask numbers


async def test_partial_form_rewrite_changes_no_other_byte(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Plivo `<`-joined recipients: only the blocked part and one separator go."""
    gk = await start_gatekeeper(config(upstream.url, tmp_path))
    await gk.block(BLOCKED)
    body = (b'{ "src" : "14155550199",\n  "dst": "14155550100<33612345678<14155550101",'
            b' "text": "h\\u00e9llo" }')
    resp = await gk.proxy.post(f"/plivo/v1/Account/MA{'A' * 18}/Message/", data=body,
                               headers={"Content-Type": JSON})
    assert resp.headers["X-Gatekeeper-Decision"] == "partial"
    [got] = upstream.received
    assert got.body == body.replace(b"<33612345678", b"")


async def test_partial_json_rewrite_cuts_only_the_blocked_element(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Formatting, key order and escapes outside the removed element stay as sent."""
    gk = await start_gatekeeper(config(upstream.url, tmp_path))
    await gk.block(BLOCKED)
    body = (b'{"messages": [ {"to": "+14155550100"},\n  {"to": "+33612345678"},'
            b' {"to":"+14155550101", "t": "\\u00e9"} ] , "z":1}')
    resp = await gk.proxy.post("/generic/v1/sms", data=body, headers={"Content-Type": JSON})
    assert resp.headers["X-Gatekeeper-Decision"] == "partial"
    [got] = upstream.received
    assert got.body == (b'{"messages": [ {"to": "+14155550100"},\n  {"to":"+14155550101",'
                        b' "t": "\\u00e9"} ] , "z":1}')


async def test_form_field_rewrite_keeps_raw_bytes_of_other_fields(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """MessageBird `recipients[]` list: the blocked pair goes, every other pair is as sent."""
    gk = await start_gatekeeper(config(upstream.url, tmp_path))
    await gk.block(BLOCKED)
    body = b"recipients[]=14155550100&recipients[]=33612345678&body=h%c3%a9+llo&originator=x"
    resp = await gk.proxy.post("/messagebird/messages", data=body,
                               headers={"Content-Type": FORM})
    assert resp.headers["X-Gatekeeper-Decision"] == "partial"
    assert upstream.received[0].body == (b"recipients[]=14155550100&body=h%c3%a9+llo"
                                         b"&originator=x")


@pytest.mark.parametrize(("path", "body", "content_type", "code"), [
    (MESSAGES, b"To=%2B1415%FF5550100", FORM, "invalid_form"),
    (MESSAGES, b"To=\xc3\x28", FORM, "invalid_form"),
    (MESSAGES, b"To=%2B14155550100;Body=x", FORM, "ambiguous_request"),
    (MESSAGES, b"To=%2B14155550100&Bo%00dy=x", FORM, "ambiguous_request"),
    ("/telnyx/v2/messages", b'{"to": "\\ud800+14155550100"}', JSON, "invalid_json"),
    ("/telnyx/v2/messages", b'{"to": "+14155550100", "text": "\xff"}', JSON, "invalid_json"),
], ids=["form-bad-utf8-escape", "form-raw-bad-utf8", "form-semicolon", "form-nul-name",
        "json-lone-surrogate", "json-bad-utf8"])
async def test_unreadable_text_is_400_never_500(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path, path: str,
        body: bytes, content_type: str, code: str) -> None:
    """Invalid UTF-8, lone surrogates and separators some servers split on are refused."""
    gk = await start_gatekeeper(config(upstream.url, tmp_path))
    resp = await gk.proxy.post(path, data=body, headers={"Content-Type": content_type})
    assert resp.status == 400
    assert (await resp.json())["code"] == code
    assert upstream.received == []

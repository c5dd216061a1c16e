"""Every failure the invariant fuzzer (tests/test_invariant_fuzz.py) found, as a plain
regression test: one named row per concrete request, sent through the fuzzing config
(all ten presets, `on_invalid: forward`) to the recording upstream, then checked by the
same checker (tests/fuzz/checker.py): nothing the upstream received may hold a blocked
number's digits.

FINDINGS names every failure found, and each row the one it reproduces (rows without
are guards beside them: the same shape where it was read correctly all along). KNOWN
lists the failures still open: the fuzzer's checker reports leaks that match one instead
of failing (and counts them in its summary), and their rows (`known=`) are expected
failures, strict: once src/ is fixed the row passes, pytest reports the XPASS as a
failure, and the issue leaves KNOWN.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import FakeUpstream, StartGatekeeper
from tests.fuzz import Dest, Harness, KnownIssue, Num, Send, explain

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
BLOCKED = "+447700900461"     # tests/fuzz/lists.py GB_BLOCKED
US_BLOCKED = "+12025550143"   # tests/fuzz/lists.py US_BLOCKED
UNLISTED = "+14155550100"     # allow-listed in the fuzzing config: never blocked
TWILIO_FORM = b"To=%2B447700900461&From=%2B12125550187&Body=hi"


# Every failure the fuzzer found, by the name its rows carry (`finding`): what leaked
# and why. Fixed in 8d6a3dd ("Fuzzer findings: ..."), their rows now guarding the fixes,
# except the residual cases in KNOWN below.
FINDINGS: dict[str, str] = {
    "scan-joined-lists":
        "The deep scan of unknown writes reads a value holding several destinations only "
        "partly: `a<b` (Plivo's separator) not at all, `a;b` only `a`, `a,b` not when `a` "
        "is a SIP URI or both are bare MSISDNs (MessageBird's and Infobip's own list "
        "format, on msisdn presets), `whatsapp:a,whatsapp:b` not at all.",
    "messagebird-batches-query":
        "MessageBird POST /messages/batches is marked `reads_query` but its locator only "
        "reads `messages[].recipients`, so a `recipients` in the query is neither read nor "
        "scanned (every other MessageBird send reads it).",
    "verify-at-sign-is-email":
        "Twilio Verify `To` and Vonage Verify v2 `workflow[].to` take any value with an `@` "
        "for an e-mail address, so `sip:+number@host` passes unchecked whatever the channel "
        "(MessageBird's rule excepts `sip:`; parse_destination reads it as the number).",
    "messagebird-labelled-recipient-not-removed":
        "MessageBird recipients are relabelled before the decision (`_label`: a value with "
        "`@` that does not start with `sip:` becomes `client:email:...`), but "
        "parse_destination still reads the number inside `client:email:<sip:+N@h>` "
        "(name-addr is split first), so the recipient is blocked; the remover then compares "
        "the labels with the raw values, removes nothing, and the unchanged request is "
        "forwarded as `partial` (X-Gatekeeper-Removed: 1) with the blocked number in it.",
    "undecoded-content-coding":
        "A body whose Content-Encoding aiohttp does not decode (`x-gzip`, stacked codings "
        "such as `gzip, identity` or `gzip, gzip`) reaches the deep scan still compressed; "
        "without a JSON or form Content-Type the scan reads opaque bytes, finds nothing, "
        "and forwards it, header included, for the gateway to decode.",
    "query-send-ignores-body":
        "Infobip /sms/{n}/text/query and iletiMerkezi /v1/send-sms/get read recipients from "
        "the query only (reads_query), also for a POST; a form or JSON body naming `to` / "
        "`receipents` is neither read nor scanned, though servers that merge query and form "
        "parameters (servlets' getParameter, PHP's $_REQUEST) read it.",
    "body-read-by-content-type-only":
        "Vonage legacy SMS/Verify and MessageBird read the body only as its Content-Type "
        "says (sniffing only when it says nothing useful): a JSON body labelled "
        "`application/x-www-form-urlencoded`, with another recipient in the query, has its "
        "JSON `to`/`recipients` ignored and is forwarded; a gateway that sniffs JSON reads "
        "it.",
    "parser-400-without-request-id":
        "Requests refused by aiohttp's HTTP parser before Gatekeeper's handler (a space or "
        "a non-ASCII byte in the target, an asterisk target, a repeated Content-Length, "
        "Content-Length with Transfer-Encoding, a `br`/`zstd` body) get a text/plain 400 "
        "with no X-Request-Id, against 'every reply carries X-Request-Id' and Gatekeeper's "
        "JSON error shape. Nothing is forwarded.",
}



def _scan_joined(send: Send, leaks: list[tuple[str, str]]) -> bool:
    return not send.routed and "joined" in send.notes


def _mislabelled_body(send: Send, leaks: list[tuple[str, str]]) -> bool:
    kind = next((v.lower() for k, v in send.headers if k.lower() == "content-type"), "")
    json_body = send.body.lstrip()[:1] in (b"{", b"[")
    return send.info.preset in ("vonage", "messagebird") and send.routed and \
        ("mislabelled-body+query" in send.notes or
         (json_body and ("form" in kind or "multipart" in kind)))


# Failures still open: the fuzzer's checker skips leaks (or reply-shape problems) that
# match one and counts them in its summary; their rows are strict expected failures.
KNOWN: tuple[KnownIssue, ...] = ()  # every finding so far is fixed
_KNOWN_NAMES = {k.name for k in KNOWN}


@dataclass(frozen=True)
class Row:
    """One request: to `/<mount><target>`, and what must not arrive upstream."""

    name: str
    mount: str
    method: str
    target: str
    body: bytes
    content_type: str | None = JSON
    channel: str | None = None
    routed: bool = False       # a documented send route (national spellings count)
    finding: str | None = None  # the FINDINGS entry this row reproduces (None: a guard)
    known: str | None = None    # the open issue it still fails by (a KNOWN name)
    headers: tuple[tuple[str, str], ...] = ()
    framing: tuple[tuple[str, str], ...] = ()  # Content-Length/Transfer-Encoding as sent


ROWS = (
    # --- scan-joined-lists: writes to paths no route describes (deep scan)
    Row("plivo-unknown-write-lt-joined-msisdns", "plivo", "POST",
        "/v1/Account/MAfeed/Powerpack/", b'{"to": "14155550100<447700900461"}',
        finding="scan-joined-lists"),
    Row("unknown-write-lt-joined-e164", "twilio", "POST", "/x-send",
        b'{"to": "+14155550100<+447700900461"}', finding="scan-joined-lists"),
    Row("unknown-write-semicolon-second-number", "generic", "PUT", "/x-send",
        b'{"to": "+14155550100;+447700900461"}', finding="scan-joined-lists"),
    Row("messagebird-unknown-write-comma-msisdns", "messagebird", "POST", "/x-send",
        b'{"recipients": "14155550100,447700900461"}', finding="scan-joined-lists"),
    Row("infobip-unknown-write-comma-msisdns-form", "infobip", "POST", "/sms/9/x-send",
        b"to=14155550100%2C447700900461", FORM, finding="scan-joined-lists"),
    Row("unknown-write-sip-then-comma-number", "vonage", "DELETE", "/x-send",
        b'{"number": "sip:+14155550100@10.0.0.7:5060,+447700900461"}',
        finding="scan-joined-lists"),
    Row("unknown-write-whatsapp-comma-list", "telnyx", "POST", "/x-send",
        b'{"to": "whatsapp:+14155550100,whatsapp:+447700900461"}',
        finding="scan-joined-lists"),
    Row("plivo-call-json-suffix-lt-joined", "plivo", "POST",
        "/v1/Account/MAfeed/Call.json/", b'{"to": "+14155550100<+447700900461"}',
        finding="scan-joined-lists"),
    # residual, open
    Row("unknown-write-lt-joined-number-then-sip-uri", "twilio", "POST", "/x-send",
        b'{"to": "+447700900461<sip:+14155550100"}', finding="scan-joined-lists"),
    Row("unknown-write-lt-joined-number-then-tel-uri", "generic", "PUT", "/x-send",
        b'{"to": "+447700900461<tel:+14155550100"}', finding="scan-joined-lists"),
    Row("unknown-write-lt-joined-number-then-fullwidth", "telnyx", "POST", "/x-send",
        '{"to": "+447700900461<\uff0b\uff11\uff14\uff11\uff15\uff15\uff15\uff15'
        '\uff10\uff11\uff10\uff10"}'.encode(), finding="scan-joined-lists"),
    Row("unknown-write-lt-joined-bidi-wrapped-second", "vonage", "POST", "/x-send",
        '{"to": "+14155550100<\u202e+447700900461\u2069"}'.encode(),
        finding="scan-joined-lists"),
    # guards: the same lists where they are read today
    Row("guard-unknown-write-comma-e164", "twilio", "POST", "/x-send",
        b'{"to": "+14155550100,+447700900461"}'),
    Row("guard-plivo-message-lt-joined", "plivo", "POST", "/v1/Account/MAfeed/Message/",
        b'{"src": "12125550187", "dst": "14155550100<447700900461", "text": "hi"}',
        channel="sms", routed=True),
    Row("guard-messagebird-messages-comma-msisdns", "messagebird", "POST", "/messages",
        b'{"originator": "Acme", "recipients": "14155550100,447700900461", "body": "hi"}',
        channel="sms", routed=True),
    # --- messagebird-batches-query
    Row("messagebird-batches-query-keeps-second-spelling-partial", "messagebird", "POST",
        "/messages/batches?recipients=TEL%3A%2B447700900461",
        b'{"messages": [{"originator": "Acme", "recipients": ["tel:+44-7700-900461", '
        b'"14155550100"], "body": "hi"}]}', channel="sms", routed=True,
        finding="messagebird-batches-query"),
    Row("messagebird-batches-recipient-in-query", "messagebird", "POST",
        "/messages/batches?recipients=%2B447700900461",
        b'{"messages": [{"originator": "Acme", "recipients": "14155550100", "body": "hi"}]}',
        channel="sms", routed=True, finding="messagebird-batches-query"),
    Row("guard-messagebird-messages-recipient-in-query", "messagebird", "POST",
        "/messages?recipients=%2B447700900461",
        b'{"originator": "Acme", "recipients": "14155550100", "body": "hi"}',
        channel="sms", routed=True),
    # --- verify-at-sign-is-email
    Row("twilio-verify-sip-uri-to", "twilio", "POST", "/v2/Services/VAfeed/Verifications",
        b"To=sip%3A%2B12025550143%40trunk.example.com&Channel=sms", FORM, routed=True,
        finding="verify-at-sign-is-email"),
    Row("vonage-verify2-sip-uri-to", "vonage", "POST", "/v2/verify",
        b'{"brand": "Acme", "workflow": [{"channel": "voice", '
        b'"to": "sip:+12025550143@trunk.example.com"}]}', routed=True,
        finding="verify-at-sign-is-email"),
    Row("guard-twilio-call-sip-uri-to", "twilio", "POST",
        "/2010-04-01/Accounts/ACfeed/Calls.json",
        b"To=sip%3A%2B12025550143%40trunk.example.com&From=%2B12125550187"
        b"&Url=https%3A%2F%2Fapp.example.com%2Fv.xml", FORM, channel="voice", routed=True),
    # --- messagebird-labelled-recipient-not-removed (decision `partial`, body unchanged)
    Row("messagebird-name-addr-recipient-partial", "messagebird", "POST", "/messages",
        b'{"originator": "A", "recipients": ["<sip:+447700900461@h>", "14155550100"], '
        b'"body": "hi"}', channel="sms", routed=True,
        finding="messagebird-labelled-recipient-not-removed"),
    Row("messagebird-display-name-recipient-partial-form", "messagebird", "POST", "/messages",
        b"originator=A&recipients[]=%22Desk%22+%3Csip%3A%2B447700900461%40h%3E"
        b"&recipients[]=14155550100&body=hi", FORM, channel="sms", routed=True,
        finding="messagebird-labelled-recipient-not-removed"),
    Row("guard-messagebird-tel-display-name-removed", "messagebird", "POST", "/messages",
        b'{"originator": "A", "recipients": ["Desk <tel:+447700900461>", "14155550100"], '
        b'"body": "hi"}', channel="sms", routed=True),
    # --- undecoded-content-coding (unknown writes)
    Row("x-gzip-unknown-write", "messagebird", "PATCH", "/x-send",
        gzip.compress(b"to=%2B447700900461&text=hi"), None,
        finding="undecoded-content-coding", headers=(("Content-Encoding", "x-gzip"),)),
    Row("stacked-coding-unknown-write", "twilio", "POST", "/x-send",
        gzip.compress(b'{"to": "+447700900461"}'), None, finding="undecoded-content-coding",
        headers=(("Content-Encoding", "gzip, identity"),)),
    Row("guard-gzip-unknown-write-decided", "twilio", "POST", "/x-send",
        gzip.compress(b'{"to": "+447700900461"}'), None,
        headers=(("Content-Encoding", "gzip"),)),
    # --- query-send-ignores-body
    Row("infobip-query-send-post-form-body", "infobip", "POST",
        "/sms/1/text/query?username=u&password=p&to=14155550100&text=hi",
        b"to=447700900461", FORM, channel="sms", routed=True, finding="query-send-ignores-body"),
    Row("iletimerkezi-get-send-post-form-body", "iletimerkezi", "POST",
        "/v1/send-sms/get?key=k&hash=h&text=hi&receipents=905321112233&sender=ACME",
        b"receipents=905327654321", FORM, channel="sms", routed=True,
        finding="query-send-ignores-body"),
    # --- body-read-by-content-type-only
    Row("vonage-sms-json-body-labelled-form", "vonage", "POST", "/sms/json?to=14155550100",
        b'{"from": "Acme", "to": "447700900461", "text": "hi"}', FORM, channel="sms",
        routed=True, finding="body-read-by-content-type-only"),
    Row("messagebird-json-body-labelled-form", "messagebird", "POST",
        "/messages?recipients=14155550100",
        b'{"originator": "A", "recipients": "447700900461", "body": "hi"}', FORM,
        channel="sms", routed=True, finding="body-read-by-content-type-only"),
    Row("messagebird-call-json-body-labelled-multipart-partial", "messagebird", "POST",
        "/calls?destination=%2B447700900461&destination=%2B14155550100",
        b'{"source": "12125550187", "destination": "+447700900461"}',
        "multipart/form-data", channel="voice", routed=True,
        finding="body-read-by-content-type-only"),
    Row("messagebird-call-flow-json-labelled-form", "messagebird", "POST", "/calls",
        b'{"source": "12125550187", "destination": "+14155550100", "callFlow": {"title": '
        b'"f", "steps": [{"action": "transfer", "options": {"destination": '
        b'"+447700900461"}}]}}', FORM, channel="voice", routed=True,
        finding="body-read-by-content-type-only"),
    Row("guard-messagebird-call-flow-json", "messagebird", "POST", "/calls",
        b'{"source": "12125550187", "destination": "+14155550100", "callFlow": {"title": '
        b'"f", "steps": [{"action": "transfer", "options": {"destination": '
        b'"+447700900461"}}]}}', channel="voice", routed=True),
    Row("guard-vonage-sms-json-body-labelled-text", "vonage", "POST",
        "/sms/json?to=14155550100", b'{"from": "Acme", "to": "447700900461", "text": "hi"}',
        "text/plain", channel="sms", routed=True),
    # --- parser-400-without-request-id (nothing reaches the upstream; the reply's shape)
    Row("target-with-a-space", "twilio", "POST",
        "/2010-04-01/Accounts/ACfeed/Messages .json", TWILIO_FORM, FORM, channel="sms",
        routed=True, finding="parser-400-without-request-id"),
    Row("target-with-a-utf8-byte", "twilio", "POST",
        "/2010-04-01/Accounts/ACfeed/Messag\u00e9s.json", TWILIO_FORM, FORM, channel="sms",
        routed=True, finding="parser-400-without-request-id"),
    Row("duplicate-content-length", "twilio", "POST",
        "/2010-04-01/Accounts/ACfeed/Messages.json", TWILIO_FORM, FORM, channel="sms",
        routed=True, finding="parser-400-without-request-id",
        framing=(("Content-Length", str(len(TWILIO_FORM))),
                 ("Content-Length", str(len(TWILIO_FORM))))),
    Row("content-length-with-chunked", "twilio", "POST",
        "/2010-04-01/Accounts/ACfeed/Messages.json",
        f"{len(TWILIO_FORM):x}\r\n".encode() + TWILIO_FORM + b"\r\n0\r\n\r\n", FORM,
        channel="sms", routed=True, finding="parser-400-without-request-id",
        framing=(("Content-Length", "7"), ("Transfer-Encoding", "chunked"))),
    Row("brotli-body", "telnyx", "POST", "/v2/messages",
        b'{"from": "+12125550187", "to": "+447700900461", "text": "hi"}', channel="sms",
        routed=True, finding="parser-400-without-request-id",
        headers=(("Content-Encoding", "br"),)),
    Row("guard-gzip-body-decided", "telnyx", "POST", "/v2/messages",
        gzip.compress(b'{"from": "+12125550187", "to": "+447700900461", "text": "hi"}'),
        channel="sms", routed=True, headers=(("Content-Encoding", "gzip"),)),
    Row("guard-fragment-refused-as-json", "twilio", "POST",
        "/2010-04-01/Accounts/ACfeed/Messages.json#x", TWILIO_FORM, FORM, channel="sms",
        routed=True),
)


def _param(row: Row) -> object:
    assert row.known is None or row.known in _KNOWN_NAMES, row.known
    assert row.finding is None or row.finding in FINDINGS, row.finding
    marks = [pytest.mark.xfail(strict=True, reason=f"open: {row.known}")] if row.known \
        else []
    return pytest.param(row, id=row.name, marks=marks)


@pytest.mark.parametrize("row", [_param(r) for r in ROWS])
async def test_regression(row: Row, start_gatekeeper: StartGatekeeper,
                          upstream: FakeUpstream, tmp_path: Path) -> None:
    """The request reaches no upstream holding a blocked number, and every other
    promise the fuzzer checks holds for it (no 5xx, a request id, one upstream call)."""
    harness = await Harness.start(start_gatekeeper, upstream, tmp_path, on_invalid="forward",
                                  flip=False, monitor_preset="twilio")
    info = harness.infos[row.mount]
    headers = ((("Content-Type", row.content_type),) if row.content_type else ()) + \
        row.headers
    marker = Dest(Num(BLOCKED, "GB", "blocked"), "row", BLOCKED)
    send = Send(info, row.method, f"/{row.mount}{row.target}", headers, row.body,
                row.channel, row.routed, row.routed, False, (marker,), (row.name,),
                framing=row.framing)
    outcome, problems = await harness.check(send)
    assert not problems, explain(outcome, problems)

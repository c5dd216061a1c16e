"""Every failure the invariant fuzzer (tests/test_invariant_fuzz.py) found, as a plain
regression test: one named row per concrete request, sent through the fuzzing config
(all ten presets, `on_invalid: forward`) to the recording upstream, then checked by the
same checker (tests/fuzz_requests.py): nothing the upstream received may hold a blocked
number's digits.

KNOWN lists the failures still open. The fuzzer's checker reports leaks that match one
instead of failing (and counts them in its summary); their rows here are expected
failures, strict: once src/ is fixed the row passes, pytest reports XPASS as a failure,
and the issue must leave KNOWN (and the row lose its `known`). Rows without `known` are
guards next to them: the same shape on a path that is read correctly today.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.conftest import FakeUpstream, StartGatekeeper
from tests.fuzz_requests import Dest, Harness, KnownIssue, Num, Send, explain

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
BLOCKED = "+447700900461"     # fuzz_requests.GB_BLOCKED
US_BLOCKED = "+12025550143"   # fuzz_requests.US_BLOCKED
UNLISTED = "+14155550100"     # allow-listed in the fuzzing config: never blocked
TWILIO_FORM = b"To=%2B447700900461&From=%2B12125550187&Body=hi"


def _scan_joined(send: Send, leaks: list[tuple[str, str]]) -> bool:
    return not send.routed and "joined" in send.notes


def _path(send: Send) -> str:
    """The target's path as routes read it: decoded, lower-case, single slashes."""
    path = unquote(send.target.partition("?")[0]).lower()
    return "/" + "/".join(part for part in path.split("/") if part)


def _batches_query(send: Send, leaks: list[tuple[str, str]]) -> bool:
    return send.info.preset == "messagebird" and _path(send).endswith("/messages/batches") \
        and bool(send.target.partition("?")[2])


def _verify_at_sign(send: Send, leaks: list[tuple[str, str]]) -> bool:
    return send.info.preset in ("twilio", "vonage") and "verif" in _path(send) and \
        any("@" in d.text for d in send.dests)


def _labelled_not_removed(send: Send, leaks: list[tuple[str, str]]) -> bool:
    return send.info.preset == "messagebird" and send.routed and \
        any("<" in d.text and "@" in d.text for d in send.dests)


def _undecoded_coding(send: Send, leaks: list[tuple[str, str]]) -> bool:
    codings = [n.partition(":")[2] for n in send.notes if n.startswith("content-encoding:")]
    return not send.routed and any(c.strip().lower() not in ("gzip", "deflate")
                                   for c in codings)


def _query_send_body(send: Send, leaks: list[tuple[str, str]]) -> bool:
    return send.info.preset in ("infobip", "iletimerkezi") and "body-for-query" in send.notes


def _mislabelled_body(send: Send, leaks: list[tuple[str, str]]) -> bool:
    kind = next((v.lower() for k, v in send.headers if k.lower() == "content-type"), "")
    json_body = send.body.lstrip()[:1] in (b"{", b"[")
    return send.info.preset in ("vonage", "messagebird") and send.routed and \
        ("mislabelled-body+query" in send.notes or
         (json_body and ("form" in kind or "multipart" in kind)))


def _parser_refusal(send: Send, leaks: list[tuple[str, str]]) -> bool:
    return any(note.startswith("wire:") for note in send.notes)


KNOWN: tuple[KnownIssue, ...] = (
    KnownIssue(
        "scan-joined-lists",
        "The deep scan of unknown writes reads a value holding several destinations only "
        "partly: `a<b` (Plivo's separator) not at all, `a;b` only `a`, `a,b` not when `a` "
        "is a SIP URI or both are bare MSISDNs (MessageBird's and Infobip's own list "
        "format, on msisdn presets), `whatsapp:a,whatsapp:b` not at all.",
        _scan_joined),
    KnownIssue(
        "messagebird-batches-query",
        "MessageBird POST /messages/batches is marked `reads_query` but its locator only "
        "reads `messages[].recipients`, so a `recipients` in the query is neither read "
        "nor scanned (every other MessageBird send reads it).",
        _batches_query),
    KnownIssue(
        "verify-at-sign-is-email",
        "Twilio Verify `To` and Vonage Verify v2 `workflow[].to` take any value with an "
        "`@` for an e-mail address, so `sip:+number@host` passes unchecked whatever the "
        "channel (MessageBird's rule excepts `sip:`; parse_destination reads it as the "
        "number).",
        _verify_at_sign),
    KnownIssue(
        "messagebird-labelled-recipient-not-removed",
        "MessageBird recipients are relabelled before the decision (`_label`: a value with "
        "`@` that does not start with `sip:` becomes `client:email:...`), but "
        "parse_destination still reads the number inside `client:email:<sip:+N@h>` (name-"
        "addr is split first), so the recipient is blocked; the remover then compares the "
        "labels with the raw values, removes nothing, and the unchanged request is "
        "forwarded as `partial` (X-Gatekeeper-Removed: 1) with the blocked number in it.",
        _labelled_not_removed),
    KnownIssue(
        "undecoded-content-coding",
        "A body whose Content-Encoding aiohttp does not decode (`x-gzip`, stacked codings "
        "such as `gzip, identity` or `gzip, gzip`) reaches the deep scan still compressed; "
        "without a JSON or form Content-Type the scan reads opaque bytes, finds nothing, "
        "and forwards it, header included, for the gateway to decode.",
        _undecoded_coding),
    KnownIssue(
        "query-send-ignores-body",
        "Infobip /sms/{n}/text/query and iletiMerkezi /v1/send-sms/get read recipients from "
        "the query only (reads_query), also for a POST; a form or JSON body naming `to` / "
        "`receipents` is neither read nor scanned, though servers that merge query and "
        "form parameters (servlets' getParameter, PHP's $_REQUEST) read it.",
        _query_send_body),
    KnownIssue(
        "body-read-by-content-type-only",
        "Vonage legacy SMS/Verify and MessageBird read the body only as its Content-Type "
        "says (sniffing only when it says nothing useful): a JSON body labelled "
        "`application/x-www-form-urlencoded`, with another recipient in the query, has its "
        "JSON `to`/`recipients` ignored and is forwarded; a gateway that sniffs JSON reads it.",
        _mislabelled_body),
    KnownIssue(
        "parser-400-without-request-id",
        "Requests refused by aiohttp's HTTP parser before Gatekeeper's handler (a space or "
        "a non-ASCII byte in the target, an asterisk target, a repeated Content-Length, "
        "Content-Length with Transfer-Encoding, a `br`/`zstd` body) get a text/plain 400 "
        "with no X-Request-Id, against 'every reply carries X-Request-Id' and Gatekeeper's "
        "JSON error shape. Nothing is forwarded.",
        _parser_refusal, kind="reply"),
)
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
    known: str | None = None   # the open issue this row fails by (a KNOWN name)
    headers: tuple[tuple[str, str], ...] = ()
    framing: tuple[tuple[str, str], ...] = ()  # Content-Length/Transfer-Encoding as sent


ROWS = (
    # --- scan-joined-lists: writes to paths no route describes (deep scan)
    Row("plivo-unknown-write-lt-joined-msisdns", "plivo", "POST",
        "/v1/Account/MAfeed/Powerpack/", b'{"to": "14155550100<447700900461"}',
        known="scan-joined-lists"),
    Row("unknown-write-lt-joined-e164", "twilio", "POST", "/x-send",
        b'{"to": "+14155550100<+447700900461"}', known="scan-joined-lists"),
    Row("unknown-write-semicolon-second-number", "generic", "PUT", "/x-send",
        b'{"to": "+14155550100;+447700900461"}', known="scan-joined-lists"),
    Row("messagebird-unknown-write-comma-msisdns", "messagebird", "POST", "/x-send",
        b'{"recipients": "14155550100,447700900461"}', known="scan-joined-lists"),
    Row("infobip-unknown-write-comma-msisdns-form", "infobip", "POST", "/sms/9/x-send",
        b"to=14155550100%2C447700900461", FORM, known="scan-joined-lists"),
    Row("unknown-write-sip-then-comma-number", "vonage", "DELETE", "/x-send",
        b'{"number": "sip:+14155550100@10.0.0.7:5060,+447700900461"}',
        known="scan-joined-lists"),
    Row("unknown-write-whatsapp-comma-list", "telnyx", "POST", "/x-send",
        b'{"to": "whatsapp:+14155550100,whatsapp:+447700900461"}',
        known="scan-joined-lists"),
    Row("plivo-call-json-suffix-lt-joined", "plivo", "POST",
        "/v1/Account/MAfeed/Call.json/", b'{"to": "+14155550100<+447700900461"}',
        known="scan-joined-lists"),
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
        known="messagebird-batches-query"),
    Row("messagebird-batches-recipient-in-query", "messagebird", "POST",
        "/messages/batches?recipients=%2B447700900461",
        b'{"messages": [{"originator": "Acme", "recipients": "14155550100", "body": "hi"}]}',
        channel="sms", routed=True, known="messagebird-batches-query"),
    Row("guard-messagebird-messages-recipient-in-query", "messagebird", "POST",
        "/messages?recipients=%2B447700900461",
        b'{"originator": "Acme", "recipients": "14155550100", "body": "hi"}',
        channel="sms", routed=True),
    # --- verify-at-sign-is-email
    Row("twilio-verify-sip-uri-to", "twilio", "POST", "/v2/Services/VAfeed/Verifications",
        b"To=sip%3A%2B12025550143%40trunk.example.com&Channel=sms", FORM, routed=True,
        known="verify-at-sign-is-email"),
    Row("vonage-verify2-sip-uri-to", "vonage", "POST", "/v2/verify",
        b'{"brand": "Acme", "workflow": [{"channel": "voice", '
        b'"to": "sip:+12025550143@trunk.example.com"}]}', routed=True,
        known="verify-at-sign-is-email"),
    Row("guard-twilio-call-sip-uri-to", "twilio", "POST",
        "/2010-04-01/Accounts/ACfeed/Calls.json",
        b"To=sip%3A%2B12025550143%40trunk.example.com&From=%2B12125550187"
        b"&Url=https%3A%2F%2Fapp.example.com%2Fv.xml", FORM, channel="voice", routed=True),
    # --- messagebird-labelled-recipient-not-removed (decision `partial`, body unchanged)
    Row("messagebird-name-addr-recipient-partial", "messagebird", "POST", "/messages",
        b'{"originator": "A", "recipients": ["<sip:+447700900461@h>", "14155550100"], '
        b'"body": "hi"}', channel="sms", routed=True,
        known="messagebird-labelled-recipient-not-removed"),
    Row("messagebird-display-name-recipient-partial-form", "messagebird", "POST", "/messages",
        b"originator=A&recipients[]=%22Desk%22+%3Csip%3A%2B447700900461%40h%3E"
        b"&recipients[]=14155550100&body=hi", FORM, channel="sms", routed=True,
        known="messagebird-labelled-recipient-not-removed"),
    Row("guard-messagebird-tel-display-name-removed", "messagebird", "POST", "/messages",
        b'{"originator": "A", "recipients": ["Desk <tel:+447700900461>", "14155550100"], '
        b'"body": "hi"}', channel="sms", routed=True),
    # --- undecoded-content-coding (unknown writes)
    Row("x-gzip-unknown-write", "messagebird", "PATCH", "/x-send",
        gzip.compress(b"to=%2B447700900461&text=hi"), None,
        known="undecoded-content-coding", headers=(("Content-Encoding", "x-gzip"),)),
    Row("stacked-coding-unknown-write", "twilio", "POST", "/x-send",
        gzip.compress(b'{"to": "+447700900461"}'), None, known="undecoded-content-coding",
        headers=(("Content-Encoding", "gzip, identity"),)),
    Row("guard-gzip-unknown-write-decided", "twilio", "POST", "/x-send",
        gzip.compress(b'{"to": "+447700900461"}'), None,
        headers=(("Content-Encoding", "gzip"),)),
    # --- query-send-ignores-body
    Row("infobip-query-send-post-form-body", "infobip", "POST",
        "/sms/1/text/query?username=u&password=p&to=14155550100&text=hi",
        b"to=447700900461", FORM, channel="sms", routed=True, known="query-send-ignores-body"),
    Row("iletimerkezi-get-send-post-form-body", "iletimerkezi", "POST",
        "/v1/send-sms/get?key=k&hash=h&text=hi&receipents=905321112233&sender=ACME",
        b"receipents=905327654321", FORM, channel="sms", routed=True,
        known="query-send-ignores-body"),
    # --- body-read-by-content-type-only
    Row("vonage-sms-json-body-labelled-form", "vonage", "POST", "/sms/json?to=14155550100",
        b'{"from": "Acme", "to": "447700900461", "text": "hi"}', FORM, channel="sms",
        routed=True, known="body-read-by-content-type-only"),
    Row("messagebird-json-body-labelled-form", "messagebird", "POST",
        "/messages?recipients=14155550100",
        b'{"originator": "A", "recipients": "447700900461", "body": "hi"}', FORM,
        channel="sms", routed=True, known="body-read-by-content-type-only"),
    Row("messagebird-call-json-body-labelled-multipart-partial", "messagebird", "POST",
        "/calls?destination=%2B447700900461&destination=%2B14155550100",
        b'{"source": "12125550187", "destination": "+447700900461"}',
        "multipart/form-data", channel="voice", routed=True,
        known="body-read-by-content-type-only"),
    Row("guard-vonage-sms-json-body-labelled-text", "vonage", "POST",
        "/sms/json?to=14155550100", b'{"from": "Acme", "to": "447700900461", "text": "hi"}',
        "text/plain", channel="sms", routed=True),
    # --- parser-400-without-request-id (nothing reaches the upstream; the reply's shape)
    Row("target-with-a-space", "twilio", "POST",
        "/2010-04-01/Accounts/ACfeed/Messages .json", TWILIO_FORM, FORM, channel="sms",
        routed=True, known="parser-400-without-request-id"),
    Row("target-with-a-utf8-byte", "twilio", "POST",
        "/2010-04-01/Accounts/ACfeed/Messag\u00e9s.json", TWILIO_FORM, FORM, channel="sms",
        routed=True, known="parser-400-without-request-id"),
    Row("duplicate-content-length", "twilio", "POST",
        "/2010-04-01/Accounts/ACfeed/Messages.json", TWILIO_FORM, FORM, channel="sms",
        routed=True, known="parser-400-without-request-id",
        framing=(("Content-Length", str(len(TWILIO_FORM))),
                 ("Content-Length", str(len(TWILIO_FORM))))),
    Row("content-length-with-chunked", "twilio", "POST",
        "/2010-04-01/Accounts/ACfeed/Messages.json",
        f"{len(TWILIO_FORM):x}\r\n".encode() + TWILIO_FORM + b"\r\n0\r\n\r\n", FORM,
        channel="sms", routed=True, known="parser-400-without-request-id",
        framing=(("Content-Length", "7"), ("Transfer-Encoding", "chunked"))),
    Row("brotli-body", "telnyx", "POST", "/v2/messages",
        b'{"from": "+12125550187", "to": "+447700900461", "text": "hi"}', channel="sms",
        routed=True, known="parser-400-without-request-id",
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

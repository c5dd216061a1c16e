"""The proxy handler: forwarding, interception, actions, faults and bad input."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from yarl import URL

from gatekeeper.config import RedisConfig
from gatekeeper.embedded import free_port
from gatekeeper.providers.credentials import digest_of
from gatekeeper.store import connect
from tests.conftest import (
    AUTH,
    TWILIO_CALLS,
    TWILIO_MESSAGES,
    TWILIO_SID,
    FakeUpstream,
    Running,
    StartGatekeeper,
    decisions,
    log_events,
    make_config,
    sample,
)

FORM = "application/x-www-form-urlencoded"



async def attempts(redis: Any, expected: int) -> list[tuple[str, dict[str, str]]]:
    """The attempts stream once it holds `expected` entries (they are appended aside)."""
    for _ in range(100):
        entries = await redis.xrange("gk:attempts")
        if len(entries) >= expected:
            return list(entries)
        await asyncio.sleep(0.01)
    return list(await redis.xrange("gk:attempts"))


async def test_unlisted_send_reaches_upstream_byte_for_byte(gatekeeper: Running,
                                                            upstream: FakeUpstream) -> None:
    """Method, path, query, body and end-to-end headers arrive unchanged."""
    body = b"To=%2B14155550100&From=%2B15005550006&Body=Hello+%C3%A9"
    # An encoded URL, so the test client does not re-quote %2F before the proxy sees it.
    root = str(gatekeeper.proxy.make_url("/")).rstrip("/")
    url = URL(f"{root}{TWILIO_MESSAGES}?Trace=1&x=%2F", encoded=True)
    resp = await gatekeeper.proxy.session.post(
        url, data=body,
        headers={"Content-Type": FORM, "Authorization": "Basic QUM6dG9rZW4=",
                 "X-Custom": "kept", "User-Agent": "twilio-python/9"})
    assert resp.status == 201
    assert await resp.read() == upstream.reply
    assert resp.headers["X-Gatekeeper-Decision"] == "forwarded"
    assert resp.headers["X-Request-Id"]
    [got] = upstream.received
    assert got.method == "POST"
    assert got.path_qs == TWILIO_MESSAGES.removeprefix("/twilio") + "?Trace=1&x=%2F"
    assert got.body == body
    assert got.headers["Authorization"] == "Basic QUM6dG9rZW4="
    assert got.headers["X-Custom"] == "kept"
    assert got.headers["User-Agent"] == "twilio-python/9"
    assert got.headers["Content-Type"] == FORM
    assert got.headers["Host"] == upstream.url.removeprefix("http://")
    assert got.headers["X-Forwarded-For"] == "127.0.0.1"


async def test_hop_by_hop_and_gatekeeper_headers_are_not_forwarded(
        gatekeeper: Running, upstream: FakeUpstream) -> None:
    """Connection-named, hop-by-hop and X-Gatekeeper-Scope headers stop at the proxy."""
    resp = await gatekeeper.proxy.get(
        "/twilio/2010-04-01/Accounts/AC1/Messages/SM1.json",
        headers={"Connection": "keep-alive, X-Hop", "X-Hop": "secret", "TE": "trailers",
                 "Proxy-Authorization": "Basic eA==", "X-Gatekeeper-Scope": "tenant:acme",
                 "X-Forwarded-For": "203.0.113.9", "X-End": "1"})
    assert resp.status == 201
    headers = {k.lower() for k in upstream.received[0].headers}
    assert not headers & {"x-hop", "te", "proxy-authorization", "x-gatekeeper-scope"}
    assert upstream.received[0].headers["X-End"] == "1"
    assert upstream.received[0].headers["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"


async def test_non_send_route_passes_through_without_a_decision(
        gatekeeper: Running, upstream: FakeUpstream) -> None:
    """GET message status is forwarded unchecked, and says nothing about a decision."""
    upstream.status = 200
    resp = await gatekeeper.proxy.get("/twilio/2010-04-01/Accounts/AC1/Messages/SM1.json")
    assert resp.status == 200
    assert "X-Gatekeeper-Decision" not in resp.headers
    assert resp.headers["X-Request-Id"]
    assert upstream.received[0].path_qs == "/2010-04-01/Accounts/AC1/Messages/SM1.json"


async def test_path_under_no_mount_is_404_json(gatekeeper: Running,
                                               upstream: FakeUpstream) -> None:
    """Unknown mounts get a JSON 404 and nothing is forwarded."""
    for path in ("/nope/x", "/twilioX/2010-04-01", "/"):
        resp = await gatekeeper.proxy.post(path, data=b"To=%2B1")
        assert resp.status == 404
        assert (await resp.json())["code"] == "no_upstream"
    assert upstream.received == []


async def test_generic_upstream_url_path_is_joined(gatekeeper: Running,
                                                   upstream: FakeUpstream) -> None:
    """`<mount>/<rest>` goes to `<url>/<rest>` when the upstream URL has a path."""
    resp = await gatekeeper.proxy.get("/generic/v1/status?id=7")
    assert resp.status == 201
    assert upstream.received[0].path_qs == "/base/v1/status?id=7"


@pytest.mark.parametrize(("entry", "to"), [
    ("+33612345678", "+33612345678"),
    ("+336*", "+33612345678"),
    ("+1900*", "+19005550100"),
    ("+14155550100", "(415) 555-0100"),          # national format, upstream region US
    ("+33612345678", "whatsapp:+33612345678"),
    ("+33612345678", "sip:+33612345678@trunk.example.com"),
], ids=["exact", "prefix", "premium-prefix", "national", "whatsapp", "sip-with-number"])
async def test_blocked_send_is_rejected_in_twilio_shape(
        gatekeeper: Running, upstream: FakeUpstream, entry: str, to: str) -> None:
    """A blocked destination gets Twilio's 403 error and never reaches the upstream."""
    await gatekeeper.block(entry)
    resp = await gatekeeper.proxy.post(TWILIO_MESSAGES, data={"To": to, "Body": "x"})
    assert resp.status == 403
    assert resp.headers["X-Gatekeeper-Decision"] == "rejected"
    payload = await resp.json()
    assert payload["code"] == 21610
    assert payload["status"] == 403
    assert set(payload) >= {"code", "message", "more_info", "status"}
    assert upstream.received == []
    assert decisions(gatekeeper.registry, "twilio", "sms", "rejected", "blocked") == 1


async def test_blocked_call_counts_as_voice(gatekeeper: Running,
                                            upstream: FakeUpstream) -> None:
    """Calls.json is the voice channel."""
    await gatekeeper.block("+33*")
    resp = await gatekeeper.proxy.post(TWILIO_CALLS, data={"To": "+33612345678",
                                                           "Url": "https://x/y"})
    assert resp.status == 403
    assert decisions(gatekeeper.registry, "twilio", "voice", "rejected", "blocked") == 1


async def test_skip_answers_twilio_success_without_contacting_upstream(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """on_block: skip returns a Twilio-shaped 201 and sends nothing."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path,
                                            twilio={"on_block": "skip"}))
    await gk.block("+33612345678")
    resp = await gk.proxy.post(TWILIO_MESSAGES, data={"To": "+33612345678",
                                                      "From": "+15005550006", "Body": "hi"})
    assert resp.status == 201
    assert resp.headers["X-Gatekeeper-Decision"] == "skipped"
    payload = await resp.json()
    assert payload["sid"].startswith("SM")
    assert payload["account_sid"] == TWILIO_SID
    assert payload["to"] == "+33612345678"
    assert payload["from"] == "+15005550006"
    assert upstream.received == []
    assert decisions(gk.registry, "twilio", "sms", "skipped", "blocked") == 1


async def test_monitor_forwards_but_logs_and_counts_would_be_block(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        log_output: Any) -> None:
    """on_block: monitor forwards, marks the reply monitored, logs and counts it."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path,
                                            twilio={"on_block": "monitor"}))
    await gk.block("+33612345678")
    resp = await gk.proxy.post(TWILIO_MESSAGES, data={"To": "+33612345678"})
    assert resp.status == 201
    assert resp.headers["X-Gatekeeper-Decision"] == "monitored"
    assert len(upstream.received) == 1
    assert decisions(gk.registry, "twilio", "sms", "monitored", "blocked") == 1
    [event] = [e for e in log_events(log_output) if e["event"] == "destination_blocked"]
    assert event["action"] == "monitored"
    [(_, fields)] = await attempts(gk.redis, 1)
    assert fields["action"] == "monitored"


async def test_blocked_attempt_is_logged_masked_and_appended_to_stream(
        gatekeeper: Running, log_output: Any) -> None:
    """One destination_blocked event (number masked) and one stream entry per attempt."""
    await gatekeeper.block("+336*", scope="tenant:acme")
    resp = await gatekeeper.proxy.post(
        TWILIO_MESSAGES, data={"To": "+33612345789"},
        headers={"X-Gatekeeper-Scope": "tenant:acme", "X-Request-Id": "req-42"})
    assert resp.status == 403
    assert resp.headers["X-Request-Id"] == "req-42"
    [event] = [e for e in log_events(log_output) if e["event"] == "destination_blocked"]
    assert event == event | {
        "request_id": "req-42", "upstream": "twilio", "channel": "sms",
        "scopes": ["global", "tenant:acme"], "matched_entry": "+336*",
        "matched_scope": "tenant:acme", "list": "block", "action": "rejected",
        "number": "+3361****789"}
    assert "+33612345789" not in log_output.getvalue()
    [(_, fields)] = await attempts(gatekeeper.redis, 1)
    assert fields | {"ts": ""} == {
        "ts": "", "request_id": "req-42", "upstream": "twilio", "channel": "sms",
        "direction": "outbound", "number": "+33612345789", "scopes": "global,tenant:acme",
        "scope": "tenant:acme", "list": "block", "entry": "+336*", "action": "rejected",
        "rule": "list", "detail": ""}


async def test_unmasked_numbers_when_configured(start_gatekeeper: StartGatekeeper,
                                                upstream: FakeUpstream, tmp_path: Path,
                                                log_output: Any) -> None:
    """log.mask_numbers: false logs the full number."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path,
                                            log={"mask_numbers": False}))
    await gk.block("+33612345789")
    await gk.proxy.post(TWILIO_MESSAGES, data={"To": "+33612345789"})
    [event] = [e for e in log_events(log_output) if e["event"] == "destination_blocked"]
    assert event["number"] == "+33612345789"


@pytest.mark.parametrize(("blocks", "allows", "header", "expected"), [
    ([("+33*", "global")], [("+33612345678", "tenant:acme")], "tenant:acme", 403),
    ([("+33*", "tenant:acme")], [], "", 201),
    ([("+33*", "tenant:acme")], [], "tenant:acme", 403),
    ([("+33*", "tenant:acme")], [], " agent:7 , tenant:acme ", 403),
    ([("+336*", "global")], [("+33612345678", "global")], "", 201),
    ([("+33612345678", "global")], [("+33612345678", "global")], "", 403),
    ([], [("+33612345678", "global")], "", 201),
], ids=["block-in-one-scope-beats-allow-in-another", "scope-not-applicable",
        "header-adds-scope", "header-list-with-spaces", "exact-allow-beats-prefix-block",
        "tie-goes-to-block", "allowed-forwarded"])
async def test_decision_rule_through_the_proxy(
        gatekeeper: Running, upstream: FakeUpstream, blocks: list[tuple[str, str]],
        allows: list[tuple[str, str]], header: str, expected: int) -> None:
    """The decision rule holds end to end, with scopes from the request header."""
    for entry, scope in blocks:
        await gatekeeper.block(entry, scope=scope)
    for entry, scope in allows:
        await gatekeeper.allow(entry, scope=scope)
    headers = {"X-Gatekeeper-Scope": header} if header else {}
    resp = await gatekeeper.proxy.post(TWILIO_MESSAGES, data={"To": "+33612345678"},
                                       headers=headers)
    assert resp.status == expected
    assert len(upstream.received) == (1 if expected == 201 else 0)


async def test_upstream_scopes_always_apply(start_gatekeeper: StartGatekeeper,
                                            upstream: FakeUpstream, tmp_path: Path) -> None:
    """An upstream's configured scopes apply without any header."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path,
                                            twilio={"scopes": ["tenant:acme"]}))
    await gk.block("+33612345678", scope="tenant:acme")
    resp = await gk.proxy.post(TWILIO_MESSAGES, data={"To": "+33612345678"})
    assert resp.status == 403


async def test_invalid_scope_header_is_400(gatekeeper: Running,
                                           upstream: FakeUpstream) -> None:
    """A malformed X-Gatekeeper-Scope is refused, not ignored."""
    resp = await gatekeeper.proxy.post(TWILIO_MESSAGES, data={"To": "+33612345678"},
                                       headers={"X-Gatekeeper-Scope": "tenant acme"})
    assert resp.status == 400
    assert (await resp.json())["code"] == "invalid_scope"
    assert upstream.received == []


@pytest.mark.parametrize(("path", "body", "content_type", "code"), [
    (TWILIO_MESSAGES, b"Body=no+recipient", FORM, "missing_destination"),
    (TWILIO_MESSAGES, b"To=%2B1%zz&Body=x", FORM, "ambiguous_request"),
    (TWILIO_MESSAGES, b"To=\xff\xfe", FORM, "invalid_form"),
    ("/generic/v1/sms", b'{"messages": [{"to": "+3361', "application/json", "invalid_json"),
    ("/generic/v1/sms", b'{"messages": [{"text": "x"}]}', "application/json",
     "missing_destination"),
    ("/generic/v1/sms", b'{"messages": [{"to": 33612345678}]}', "application/json",
     "invalid_destination_field"),
    ("/generic/v1/sms", b'{"messages": {"to": "+33612345678"}}', "application/json",
     "invalid_destination_field"),
], ids=["form-no-to", "form-bad-percent-escape", "form-not-utf8", "json-truncated",
        "json-no-to", "json-number-not-string", "json-object-not-array"])
async def test_unreadable_send_is_400_and_never_forwarded(
        gatekeeper: Running, upstream: FakeUpstream, path: str, body: bytes,
        content_type: str, code: str) -> None:
    """Malformed bodies and missing destinations are refused with a code that says which."""
    resp = await gatekeeper.proxy.post(path, data=body, headers={"Content-Type": content_type})
    assert resp.status == 400
    assert resp.headers["X-Gatekeeper-Decision"] == "rejected"
    assert (await resp.json())["code"] == code
    assert upstream.received == []


async def test_body_over_limit_is_413(start_gatekeeper: StartGatekeeper,
                                      upstream: FakeUpstream, tmp_path: Path) -> None:
    """proxy.max_body_bytes caps every body; nothing is forwarded."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path,
                                            proxy={"max_body_bytes": 64}))
    resp = await gk.proxy.post(TWILIO_MESSAGES, data=b"To=%2B14155550100&Body=" + b"x" * 100,
                               headers={"Content-Type": FORM})
    assert resp.status == 413
    assert (await resp.json())["code"] == "body_too_large"
    assert resp.headers["X-Gatekeeper-Decision"] == "rejected"
    assert decisions(gk.registry, "twilio", "sms", "rejected", "malformed_request") == 1
    # A write on no send route is checked too (scanned), so it is a refusal as well.
    unknown = await gk.proxy.post("/twilio/upload", data=b"x" * 100)
    assert unknown.status == 413
    assert unknown.headers["X-Gatekeeper-Decision"] == "rejected"
    assert decisions(gk.registry, "twilio", "any", "rejected", "malformed_request") == 1
    ok = await gk.proxy.post(TWILIO_MESSAGES, data=b"To=%2B14155550100",
                             headers={"Content-Type": FORM})
    assert ok.status == 201
    assert len(upstream.received) == 1


async def test_impossible_number_is_rejected_by_default(gatekeeper: Running,
                                                        upstream: FakeUpstream) -> None:
    """on_invalid: reject answers 400 invalid_phone_number."""
    resp = await gatekeeper.proxy.post(TWILIO_MESSAGES, data={"To": "12"})
    assert resp.status == 400
    assert (await resp.json())["code"] == "invalid_phone_number"
    assert upstream.received == []
    assert decisions(gatekeeper.registry, "twilio", "sms", "rejected", "invalid_number") == 1


async def test_impossible_number_forwarded_when_configured(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """on_invalid: forward sends it on and counts it as invalid_number."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path,
                                            proxy={"on_invalid": "forward"}))
    resp = await gk.proxy.post(TWILIO_MESSAGES, data={"To": "12"})
    assert resp.status == 201
    assert len(upstream.received) == 1
    assert decisions(gk.registry, "twilio", "sms", "forwarded", "invalid_number") == 1


@pytest.mark.parametrize("to", ["client:alice", "sip:alice@example.com"])
async def test_non_phone_destinations_are_forwarded_and_counted(
        gatekeeper: Running, upstream: FakeUpstream, to: str) -> None:
    """client: and sip: destinations are not phone numbers: forwarded, counted as such."""
    await gatekeeper.block("+1*")
    resp = await gatekeeper.proxy.post(TWILIO_CALLS, data={"To": to})
    assert resp.status == 201
    assert len(upstream.received) == 1
    assert decisions(gatekeeper.registry, "twilio", "voice", "forwarded",
                     "not_a_phone_number") == 1


async def test_blocked_recipients_are_removed_and_the_rest_forwarded(
        gatekeeper: Running, upstream: FakeUpstream) -> None:
    """Partly blocked: the upstream gets the same shape without the blocked recipients."""
    await gatekeeper.block("+33612345678")
    body = {"messages": [{"to": "+14155550100", "text": "é"},
                         {"to": ["+44 7700 900123", "+33612345678"]}]}
    resp = await gatekeeper.proxy.post("/generic/v1/sms", json=body)
    assert resp.status == 201
    assert resp.headers["X-Gatekeeper-Decision"] == "partial"
    assert resp.headers["X-Gatekeeper-Removed"] == "1"
    [got] = upstream.received
    assert json.loads(got.body) == {"messages": [{"to": "+14155550100", "text": "é"},
                                                 {"to": ["+44 7700 900123"]}]}
    assert got.headers["Content-Type"] == "application/json"
    assert decisions(gatekeeper.registry, "generic", "sms", "partial", "blocked") == 1
    assert decisions(gatekeeper.registry, "generic", "sms", "partial", "unlisted") == 2
    [(_, fields)] = await attempts(gatekeeper.redis, 1)
    assert fields["action"] == "removed"


async def test_every_recipient_blocked_gets_the_upstream_action(
        gatekeeper: Running, upstream: FakeUpstream) -> None:
    """When nothing is left to send, on_block applies to the whole request."""
    await gatekeeper.block("+33612345678", "+4477*")
    body = {"messages": [{"to": "+33612345678"}, {"to": ["+44 7700 900123", "+33612345678"]}]}
    resp = await gatekeeper.proxy.post("/generic/v1/sms", json=body)
    assert resp.status == 403
    assert (await resp.json())["code"] == "destination_blocked"
    assert upstream.received == []


async def test_duplicate_recipients_are_checked_once(gatekeeper: Running,
                                                     upstream: FakeUpstream) -> None:
    """The same number twice is one decision, one blocked attempt, both copies removed."""
    await gatekeeper.block("+33612345678")
    body = {"messages": [{"to": ["+33612345678", "+14155550100", "+33612345678"]}]}
    resp = await gatekeeper.proxy.post("/generic/v1/sms", json=body)
    assert resp.headers["X-Gatekeeper-Removed"] == "1"
    assert json.loads(upstream.received[0].body) == {"messages": [{"to": ["+14155550100"]}]}
    assert decisions(gatekeeper.registry, "generic", "sms", "partial", "blocked") == 1


async def test_monitor_never_rewrites(start_gatekeeper: StartGatekeeper,
                                      upstream: FakeUpstream, tmp_path: Path) -> None:
    """on_block: monitor forwards the request untouched even when partly blocked."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path,
                                            generic={"on_block": "monitor"}))
    await gk.block("+33612345678")
    body = b'{"messages": [{"to": ["+33612345678", "+14155550100"]}]}'
    resp = await gk.proxy.post("/generic/v1/sms", data=body,
                               headers={"Content-Type": "application/json"})
    assert resp.headers["X-Gatekeeper-Decision"] == "monitored"
    assert upstream.received[0].body == body


async def test_generic_form_route_with_path_parameter(gatekeeper: Running,
                                                      upstream: FakeUpstream) -> None:
    """A generic form route with `{account}` in its path is intercepted."""
    await gatekeeper.block("+4477*")
    resp = await gatekeeper.proxy.post("/generic/v1/acct-9/call",
                                       data={"to": "+447700900123"})
    assert resp.status == 403
    assert decisions(gatekeeper.registry, "generic", "voice", "rejected", "blocked") == 1


async def test_twilio_path_spelling_does_not_bypass_the_check(gatekeeper: Running,
                                                              upstream: FakeUpstream) -> None:
    """Doubled slashes, a trailing slash or odd case still reach the check."""
    await gatekeeper.block("+33612345678")
    for path in (TWILIO_MESSAGES.replace("/Accounts", "//Accounts"), TWILIO_MESSAGES + "/",
                 TWILIO_MESSAGES.replace("Messages.json", "messages.JSON"),
                 TWILIO_MESSAGES.replace("Messages.json", "Messages")):
        resp = await gatekeeper.proxy.post(path, data={"To": "+33612345678"})
        assert resp.status == 403, path
    assert upstream.received == []


async def test_upstream_error_replies_are_passed_on(gatekeeper: Running,
                                                    upstream: FakeUpstream) -> None:
    """An upstream 4xx comes back unchanged (status, body, headers)."""
    upstream.status = 400
    upstream.reply = b'{"code": 21211, "message": "Invalid To"}'
    upstream.reply_headers = {"Content-Type": "application/json", "Twilio-Request-Id": "RQ1"}
    resp = await gatekeeper.proxy.post(TWILIO_MESSAGES, data={"To": "+14155550100"})
    assert resp.status == 400
    assert await resp.read() == upstream.reply
    assert resp.headers["Twilio-Request-Id"] == "RQ1"
    assert resp.headers["X-Gatekeeper-Decision"] == "forwarded"


async def test_forwarded_for_chain_and_upstream_decision_headers(
        gatekeeper: Running, upstream: FakeUpstream) -> None:
    """Several X-Forwarded-For headers make one chain; an upstream's own Gatekeeper
    decision header never reaches the client beside ours."""
    upstream.reply_headers = {"Content-Type": "application/json",
                              "X-Gatekeeper-Decision": "skipped", "X-Upstream": "kept"}
    resp = await gatekeeper.proxy.post(
        TWILIO_MESSAGES, data={"To": "+14155550100"},
        headers=[("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-For", "198.51.100.2")])
    assert resp.status == upstream.status
    assert resp.headers.getall("X-Gatekeeper-Decision") == ["forwarded"]
    assert resp.headers["X-Upstream"] == "kept"
    assert [v for k, v in upstream.received[0].raw_headers if k == "X-Forwarded-For"] == [
        "203.0.113.9, 198.51.100.2, 127.0.0.1"]


async def test_compressed_and_large_replies_pass_through_unchanged(
        gatekeeper: Running, upstream: FakeUpstream) -> None:
    """Encoded bodies are not decoded; replies over the buffer limit are streamed."""
    upstream.status = 200
    upstream.reply = gzip.compress(b'{"ok": true}')
    upstream.reply_headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    resp = await gatekeeper.proxy.get("/twilio/x", auto_decompress=False)
    assert resp.headers["Content-Encoding"] == "gzip"
    assert await resp.read() == upstream.reply
    upstream.reply = bytes(range(256)) * 8192  # 2 MiB
    upstream.reply_headers = {"Content-Type": "application/octet-stream"}
    resp = await gatekeeper.proxy.get("/twilio/media")
    assert await resp.read() == upstream.reply
    assert resp.headers["X-Request-Id"]


async def test_refused_upstream_is_502_and_counted(start_gatekeeper: StartGatekeeper,
                                                   upstream: FakeUpstream,
                                                   tmp_path: Path) -> None:
    """A closed upstream port gives 502 upstream_unavailable."""
    gk = await start_gatekeeper(make_config(
        upstream.url, tmp_path, twilio={"url": f"http://127.0.0.1:{free_port()}"}))
    resp = await gk.proxy.post(TWILIO_MESSAGES, data={"To": "+14155550100"})
    assert resp.status == 502
    assert (await resp.json())["code"] == "upstream_unavailable"
    assert sample(gk.registry, "gatekeeper_upstream_errors_total", upstream="twilio",
                  kind="unavailable") == 1


async def test_slow_upstream_is_504_and_not_retried(start_gatekeeper: StartGatekeeper,
                                                    upstream: FakeUpstream,
                                                    tmp_path: Path) -> None:
    """A timeout gives 504 upstream_timeout; the upstream saw the send exactly once."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path, twilio={"timeout": 0.2}))
    upstream.delay = 1.0
    resp = await gk.proxy.post(TWILIO_MESSAGES, data={"To": "+14155550100"})
    assert resp.status == 504
    assert (await resp.json())["code"] == "upstream_timeout"
    await asyncio.sleep(0.9)
    assert len(upstream.received) == 1
    assert sample(gk.registry, "gatekeeper_upstream_errors_total", upstream="twilio",
                  kind="timeout") == 1


def dead_store() -> Any:
    """A store client pointed at a closed loopback port."""
    return connect(RedisConfig(timeout=0.2), f"redis://127.0.0.1:{free_port()}/0")


async def test_store_down_fails_closed_by_default(start_gatekeeper: StartGatekeeper,
                                                  upstream: FakeUpstream,
                                                  tmp_path: Path) -> None:
    """store.on_error: closed refuses sends with 503 and forwards nothing."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path), redis=dead_store())
    resp = await gk.proxy.post(TWILIO_MESSAGES, data={"To": "+14155550100"})
    assert resp.status == 503
    assert (await resp.json())["code"] == "store_unavailable"
    assert upstream.received == []
    assert sample(gk.registry, "gatekeeper_store_errors_total", operation="lookup") == 1
    assert (await gk.admin.get("/readyz")).status == 503
    assert (await gk.admin.get("/healthz")).status == 200


async def test_store_down_fails_open_when_configured(start_gatekeeper: StartGatekeeper,
                                                     upstream: FakeUpstream,
                                                     tmp_path: Path) -> None:
    """store.on_error: open forwards and counts reason store_unavailable."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path,
                                            store={"on_error": "open"}), redis=dead_store())
    resp = await gk.proxy.post(TWILIO_MESSAGES, data={"To": "+14155550100"})
    assert resp.status == 201
    assert len(upstream.received) == 1
    assert decisions(gk.registry, "twilio", "sms", "forwarded", "store_unavailable") == 1


async def test_secrets_never_reach_the_logs(start_gatekeeper: StartGatekeeper,
                                            upstream: FakeUpstream, tmp_path: Path,
                                            log_output: Any) -> None:
    """Authorization headers and credentials in bodies are not logged (access log on)."""
    gatekeeper = await start_gatekeeper(make_config(upstream.url, tmp_path,
                                                    log={"access": True}))
    await gatekeeper.block("+33612345678")
    secret = "S3cr3tT0ken"
    for to in ("+33612345678", "+14155550100"):
        await gatekeeper.proxy.post(
            TWILIO_MESSAGES + f"?api_key={secret}", data={"To": to, "AuthToken": secret},
            headers={"Authorization": f"Bearer {secret}"})
    await gatekeeper.proxy.post("/generic/v1/sms", json={"api_key": secret,
                                                         "messages": [{"to": "bad"}]})
    text = log_output.getvalue()
    assert "request" in {e["event"] for e in log_events(log_output)}
    assert secret not in text


async def test_metrics_labels_never_carry_numbers(gatekeeper: Running) -> None:
    """The exposition has decisions by bounded labels and no phone number."""
    await gatekeeper.block("+33612345678")
    for to in ("+33612345678", "+14155550100", "12"):
        await gatekeeper.proxy.post(TWILIO_MESSAGES, data={"To": to})
    text = await (await gatekeeper.admin.get("/metrics")).text()
    assert 'gatekeeper_decisions_total{action="rejected",channel="sms",direction="outbound",' \
           'reason="blocked",upstream="twilio"} 1.0' in text
    assert 'reason="unlisted"' in text
    assert "gatekeeper_request_duration_seconds_bucket" in text
    assert "gatekeeper_upstream_duration_seconds_bucket" in text
    assert "3361234" not in text
    assert "4155550" not in text


async def test_upstream_receives_exactly_the_allowed_sends_on_real_redis(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        real_redis: Any) -> None:
    """End to end on a real redis-server: a mixed batch, the upstream sees only the allowed."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path), redis=real_redis)
    await gk.block("+33*", "+14155550199")
    await gk.allow("+33612345678", scope="tenant:vip")
    await gk.block("+4477*", scope="tenant:uk")
    sends = [
        ("+14155550100", "", True), ("+33612345678", "", False),
        ("+33612345678", "tenant:vip", False),  # a global prefix block beats a scoped allow
        ("+14155550199", "", False), ("+447700900123", "", True),
        ("+447700900123", "tenant:uk", False), ("+4915112345678", "tenant:uk", True),
        ("+14155550101", "tenant:vip", True),
    ]
    expected = []
    for i, (to, scope, allowed) in enumerate(sends):
        body = f"To={to.replace('+', '%2B')}&Body=msg-{i}".encode()
        headers = {"Content-Type": FORM, **({"X-Gatekeeper-Scope": scope} if scope else {})}
        resp = await gk.proxy.post(TWILIO_MESSAGES, data=body, headers=headers)
        assert resp.status == (201 if allowed else 403), (to, scope)
        if allowed:
            expected.append(body)
    assert [r.body for r in upstream.received] == expected
    logged = await attempts(real_redis, 4)
    assert sorted(f["number"] for _, f in logged) == sorted(
        to for to, _, allowed in sends if not allowed)


@pytest.mark.parametrize("path", [
    "/generic/../base/v1/sms", "/generic/%2E%2E/base/v1/sms", "/twilio/./2010-04-01/x",
    "/twilio/2010-04-01/Accounts/AC1/x/%2e%2e/Messages.json",
], ids=["dotdot-above-mount", "encoded-dotdot", "dot", "encoded-dotdot-inside"])
async def test_dot_segments_are_refused(gatekeeper: Running, upstream: FakeUpstream,
                                        path: str) -> None:
    """`.`/`..` segments could climb past the route check: 400, nothing forwarded."""
    await gatekeeper.block("+33612345678")
    url = URL(str(gatekeeper.proxy.make_url("/")).rstrip("/") + path, encoded=True)
    resp = await gatekeeper.proxy.session.post(url, json={"messages": [{"to": "+33612345678"}]})
    assert resp.status == 400
    assert (await resp.json())["code"] == "invalid_path"
    assert upstream.received == []


async def test_conference_participant_dial_out_is_checked(gatekeeper: Running,
                                                          upstream: FakeUpstream) -> None:
    """Adding a conference participant dials `To`, so it is a checked voice send."""
    await gatekeeper.block("+33612345678")
    path = f"/twilio/2010-04-01/Accounts/{TWILIO_SID}/Conferences/CF1/Participants.json"
    resp = await gatekeeper.proxy.post(path, data={"To": "+33612345678", "From": "+1500"})
    assert resp.status == 403
    assert upstream.received == []
    assert decisions(gatekeeper.registry, "twilio", "voice", "rejected", "blocked") == 1


@pytest.mark.parametrize(("path_sid", "basic_user", "blocked"), [
    (TWILIO_SID, None, True),
    ("AC" + "1" * 32, None, False),
    ("AC" + "1" * 32, TWILIO_SID, True),
], ids=["sid-in-path", "other-account", "basic-user"])
async def test_credentials_map_to_scopes(start_gatekeeper: StartGatekeeper,
                                         upstream: FakeUpstream, tmp_path: Path,
                                         path_sid: str, basic_user: str | None,
                                         blocked: bool) -> None:
    """A tenant's account SID brings its scope without any header (no way to dodge it)."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path, twilio={
        "credentials": {TWILIO_SID: ["tenant:acme"]}}))
    await gk.block("+33612345678", scope="tenant:acme")
    headers = {}
    if basic_user:
        headers["Authorization"] = "Basic " + base64.b64encode(
            f"{basic_user}:token".encode()).decode()
    resp = await gk.proxy.post(f"/twilio/2010-04-01/Accounts/{path_sid}/Messages.json",
                               data={"To": "+33612345678"}, headers=headers)
    assert resp.status == (403 if blocked else 201)


async def test_bearer_token_maps_to_scopes_by_digest(start_gatekeeper: StartGatekeeper,
                                                     upstream: FakeUpstream,
                                                     tmp_path: Path) -> None:
    """Bearer tokens are matched by their SHA-256, never configured in clear."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path, generic={
        "credentials": {digest_of("tenant-token"): ["tenant:acme"]}}))
    await gk.block("+33612345678", scope="tenant:acme")
    body = {"messages": [{"to": "+33612345678"}]}
    mine = await gk.proxy.post("/generic/v1/sms", json=body,
                               headers={"Authorization": "Bearer tenant-token"})
    other = await gk.proxy.post("/generic/v1/sms", json=body,
                                headers={"Authorization": "Bearer other-token"})
    assert (mine.status, other.status) == (403, 201)


async def test_scope_header_can_be_switched_off(start_gatekeeper: StartGatekeeper,
                                                upstream: FakeUpstream, tmp_path: Path) -> None:
    """With scope_header: false the header adds nothing (and is still not forwarded)."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path,
                                            twilio={"scope_header": False}))
    await gk.block("+33612345678", scope="tenant:acme")
    resp = await gk.proxy.post(TWILIO_MESSAGES, data={"To": "+33612345678"},
                               headers={"X-Gatekeeper-Scope": "tenant:acme"})
    assert resp.status == 201
    assert "X-Gatekeeper-Scope" not in upstream.received[0].headers


async def test_header_scopes_only_add(start_gatekeeper: StartGatekeeper,
                                      upstream: FakeUpstream, tmp_path: Path) -> None:
    """A header naming another tenant cannot remove the credential's own scope."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path, twilio={
        "credentials": {TWILIO_SID: ["tenant:acme"]}}))
    await gk.block("+33612345678", scope="tenant:acme")
    resp = await gk.proxy.post(TWILIO_MESSAGES, data={"To": "+33612345678"},
                               headers={"X-Gatekeeper-Scope": "tenant:other"})
    assert resp.status == 403


@pytest.mark.parametrize(("channel", "path", "blocked"), [
    ("voice", TWILIO_CALLS, True), ("voice", TWILIO_MESSAGES, False),
    ("sms", TWILIO_MESSAGES, True), ("sms", TWILIO_CALLS, False),
], ids=["voice-entry-call", "voice-entry-sms", "sms-entry-sms", "sms-entry-call"])
async def test_channel_limited_entries(gatekeeper: Running, upstream: FakeUpstream,
                                       channel: str, path: str, blocked: bool) -> None:
    """An entry limited to a channel blocks that channel's sends only."""
    resp = await gatekeeper.admin.post(
        "/admin/v1/lists/block/entries",
        json={"entries": [{"entry": "+33*", "channel": channel}]}, headers=AUTH)
    assert resp.status == 200
    resp = await gatekeeper.proxy.post(path, data={"To": "+33612345678"})
    assert resp.status == (403 if blocked else 201)


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted-ca", "unknown-ca"])
async def test_https_upstream_is_verified_against_the_system_store(
        start_gatekeeper: StartGatekeeper, aiohttp_server: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, trusted: bool) -> None:
    """An https upstream is reached over verified TLS; SSL_CERT_FILE names the CA to trust.
    An upstream whose certificate nobody vouches for is never sent the request: 502."""
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    received: list[bytes] = []

    async def handler(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.json_response({"sid": "SM1"}, status=201)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = await aiohttp_server(app, host="127.0.0.1", ssl=server_tls)
    if trusted:
        bundle = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    else:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    gk = await start_gatekeeper(make_config(
        f"https://127.0.0.1:{server.port}", tmp_path))
    resp = await gk.proxy.post(TWILIO_MESSAGES, data={"To": "+14155550100", "Body": "hi"})
    if trusted:
        assert resp.status == 201
        assert received == [b"To=%2B14155550100&Body=hi"]
    else:
        assert resp.status == 502
        assert (await resp.json())["code"] == "upstream_unavailable"
        assert received == []

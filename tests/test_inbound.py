"""Inbound webhooks end to end: call screening (Twilio, Vonage) and SMS opt-outs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.config import RedisConfig
from gatekeeper.inbound import keyword
from gatekeeper.store import connect
from tests.conftest import (
    AUTH,
    TWILIO_CALLS,
    TWILIO_MESSAGES,
    FakeUpstream,
    Running,
    StartGatekeeper,
    decisions,
    log_events,
    make_config,
)

FORM = "application/x-www-form-urlencoded"
CALLER = "+33612345678"
TWIML_REJECT = (b'<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="rejected"/>'
                b"</Response>")


def hooks_config(upstream: FakeUpstream, tmp_path: Path, **extra: Any) -> Any:
    """Twilio and generic upstreams plus the three webhook types, all aimed at `upstream`."""
    webhooks = [
        {"name": "voice-in", "type": "twilio-voice", "path": "/hooks/voice",
         "url": f"{upstream.url}/app/voice", "scopes": ["tenant:acme"]},
        {"name": "vonage-in", "type": "vonage-answer", "path": "/hooks/vonage",
         "url": f"{upstream.url}/app/answer"},
        {"name": "sms-in", "type": "twilio-sms", "path": "/hooks/sms",
         "url": f"{upstream.url}/app/sms", "opt_out_scope": "tenant:acme"},
    ]
    return make_config(upstream.url, tmp_path, webhooks=webhooks, **extra)


@pytest.fixture
async def hooks(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream,
                tmp_path: Path) -> Running:
    """Gatekeeper with the webhooks configured."""
    upstream.status = 200
    upstream.reply = b"<Response><Say>hello</Say></Response>"
    upstream.reply_headers = {"Content-Type": "text/xml"}
    return await start_gatekeeper(hooks_config(upstream, tmp_path))


async def attempts(redis: Any, expected: int) -> list[dict[str, str]]:
    """The attempts stream's fields once it holds `expected` entries."""
    for _ in range(100):
        entries = await redis.xrange("gk:attempts")
        if len(entries) >= expected:
            break
        await asyncio.sleep(0.01)
    return [fields for _, fields in await redis.xrange("gk:attempts")]


async def test_allowed_caller_reaches_the_application_unchanged(
        hooks: Running, upstream: FakeUpstream) -> None:
    """Method, query, body and headers (X-Twilio-Signature) arrive as Twilio sent them."""
    body = b"CallSid=CA1&From=%2B14155550100&To=%2B15005550006&AccountSid=AC1"
    resp = await hooks.proxy.post("/hooks/voice?x=1", data=body,
                                  headers={"Content-Type": FORM,
                                           "X-Twilio-Signature": "sig+/="})
    assert resp.status == 200
    assert await resp.read() == upstream.reply
    assert resp.headers["X-Gatekeeper-Decision"] == "forwarded"
    [got] = upstream.received
    assert (got.method, got.path_qs, got.body) == ("POST", "/app/voice?x=1", body)
    assert got.headers["X-Twilio-Signature"] == "sig+/="
    assert decisions(hooks.registry, "voice-in", "voice", "forwarded", "unlisted",
                     direction="inbound") == 1


@pytest.mark.parametrize(("app_url", "sent", "arrives"), [
    ("/app/voice?tenant=7", "/hooks/voice?x=1", "/app/voice?tenant=7&x=1"),
    ("/app/voice?tenant=7", "/hooks/voice", "/app/voice?tenant=7"),
    ("", "/hooks/voice?x=1", "/?x=1"),
], ids=["both-queries", "url-query-only", "bare-origin"])
async def test_application_url_query_and_path_are_kept(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        app_url: str, sent: str, arrives: str) -> None:
    """The application URL's own path and query come first, then the caller's query."""
    config = make_config(upstream.url, tmp_path, webhooks=[
        {"name": "voice-in", "type": "twilio-voice", "path": "/hooks/voice",
         "url": upstream.url + app_url}])
    running = await start_gatekeeper(config)
    resp = await running.proxy.post(sent, data=b"CallSid=CA1&From=%2B14155550100",
                                    headers={"Content-Type": FORM})
    assert resp.status == upstream.status
    assert upstream.received[0].path_qs == arrives


@pytest.mark.parametrize(("entry", "scope"), [
    (CALLER, "global"), ("+336*", "global"), (CALLER, "tenant:acme"),
    ({"entry": CALLER, "channel": "voice"}, "global"),
], ids=["exact", "prefix", "webhook-scope", "voice-only-entry"])
async def test_blocked_caller_is_rejected_with_twiml(
        hooks: Running, upstream: FakeUpstream, log_output: Any, entry: Any,
        scope: str) -> None:
    """A blocked caller gets <Reject>, the application never hears of it; logged inbound."""
    resp = await hooks.admin.post("/admin/v1/lists/block/entries",
                                  json={"entries": [entry], "scope": scope}, headers=AUTH)
    assert resp.status == 200
    resp = await hooks.proxy.post("/hooks/voice", data={"From": CALLER, "CallSid": "CA1"})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/xml")
    assert await resp.read() == TWIML_REJECT
    assert resp.headers["X-Gatekeeper-Decision"] == "rejected"
    assert upstream.received == []
    assert decisions(hooks.registry, "voice-in", "voice", "rejected", "blocked",
                     direction="inbound") == 1
    [event] = [e for e in log_events(log_output) if e["event"] == "destination_blocked"]
    assert event["direction"] == "inbound"
    assert event["number"] == "+3361****678"
    [fields] = await attempts(hooks.redis, 1)
    assert fields["direction"] == "inbound"
    assert fields["upstream"] == "voice-in"


async def test_sms_only_entry_does_not_stop_a_call(hooks: Running,
                                                   upstream: FakeUpstream) -> None:
    """Channel-limited entries: an sms block lets the same caller's call through."""
    await hooks.admin.post("/admin/v1/lists/block/entries",
                           json={"entries": [{"entry": CALLER, "channel": "sms"}]},
                           headers=AUTH)
    resp = await hooks.proxy.post("/hooks/voice", data={"From": CALLER})
    assert resp.headers["X-Gatekeeper-Decision"] == "forwarded"
    assert len(upstream.received) == 1


async def test_get_webhook_reads_the_caller_from_the_query(hooks: Running,
                                                           upstream: FakeUpstream) -> None:
    """Twilio webhooks configured as GET carry From in the query string."""
    await hooks.block(CALLER)
    resp = await hooks.proxy.get("/hooks/voice", params={"From": CALLER})
    assert await resp.read() == TWIML_REJECT
    resp = await hooks.proxy.get("/hooks/voice", params={"From": "+14155550100"})
    assert resp.headers["X-Gatekeeper-Decision"] == "forwarded"
    assert upstream.received[0].path_qs == "/app/voice?From=%2B14155550100"


@pytest.mark.parametrize("caller", ["Anonymous", "client:alice", ""],
                         ids=["anonymous", "client", "missing"])
async def test_callers_without_a_number_are_forwarded(hooks: Running, upstream: FakeUpstream,
                                                      caller: str) -> None:
    """Withheld or non-phone callers cannot be screened: forwarded and counted as such."""
    await hooks.block("+1*", "+2*", "+3*", "+4*")
    resp = await hooks.proxy.post("/hooks/voice", data={"From": caller} if caller else {})
    assert resp.headers["X-Gatekeeper-Decision"] == "forwarded"
    assert len(upstream.received) == 1
    assert decisions(hooks.registry, "voice-in", "voice", "forwarded", "not_a_phone_number",
                     direction="inbound") == 1


async def test_inbound_store_fault_fails_closed(start_gatekeeper: StartGatekeeper,
                                                upstream: FakeUpstream,
                                                tmp_path: Path) -> None:
    """store.on_error: closed also holds for inbound screening: 503, nothing forwarded."""
    dead = connect(RedisConfig(timeout=0.2), "redis://127.0.0.1:1/0")
    gk = await start_gatekeeper(hooks_config(upstream, tmp_path), redis=dead)
    resp = await gk.proxy.post("/hooks/voice", data={"From": CALLER})
    assert resp.status == 503
    assert upstream.received == []


@pytest.mark.parametrize(("method", "caller"), [
    ("GET", "33612345678"), ("POST", "33612345678"), ("GET", "0033612345678"),
], ids=["get-query", "post-json", "international-prefix"])
async def test_vonage_blocked_caller_gets_an_ending_ncco(
        hooks: Running, upstream: FakeUpstream, method: str, caller: str) -> None:
    """Vonage answer webhook: a blocked caller's call is ended by the NCCO."""
    await hooks.block(CALLER)
    if method == "GET":
        resp = await hooks.proxy.get("/hooks/vonage", params={"from": caller, "to": "1"})
    else:
        resp = await hooks.proxy.post("/hooks/vonage", json={"from": caller, "to": "1"})
    assert resp.status == 200
    assert resp.headers["X-Gatekeeper-Decision"] == "rejected"
    assert isinstance(json.loads(await resp.read()), list)
    assert upstream.received == []


async def test_vonage_allowed_caller_is_forwarded(hooks: Running,
                                                  upstream: FakeUpstream) -> None:
    """Any other Vonage caller reaches the application's answer URL unchanged."""
    upstream.reply = b'[{"action": "talk", "text": "hi"}]'
    resp = await hooks.proxy.get("/hooks/vonage?from=14155550100&uuid=u1")
    assert await resp.read() == upstream.reply
    assert upstream.received[0].path_qs == "/app/answer?from=14155550100&uuid=u1"


@pytest.mark.parametrize(("body", "expected"), [
    ("STOP", "STOP"), (" stop ", "STOP"), ("Stop.", "STOP"), ("unsubscribe!", "UNSUBSCRIBE"),
    ("stop please", "STOP PLEASE"),
], ids=["upper", "spaces", "dot", "bang", "sentence"])
def test_keyword(body: str, expected: str) -> None:
    """Keywords are matched trimmed and case-insensitively; sentences are not keywords."""
    assert keyword(body) == expected


async def sms(gk: Running, body: str, sender: str = CALLER) -> Any:
    """An inbound SMS webhook as Twilio posts it."""
    return await gk.proxy.post("/hooks/sms", data={"From": sender, "To": "+15005550006",
                                                   "Body": body, "MessageSid": "SM1"})


async def outbound(gk: Running, path: str = TWILIO_MESSAGES, scope: str = "tenant:acme") -> int:
    """Status of an outbound send to CALLER in the opt-out scope."""
    resp = await gk.proxy.post(path, data={"To": CALLER},
                               headers={"X-Gatekeeper-Scope": scope})
    return resp.status


@pytest.mark.parametrize("word", ["STOP", "stopall", "Unsubscribe", "CANCEL", "end", "QUIT"])
async def test_stop_opts_the_sender_out_of_sms(hooks: Running, upstream: FakeUpstream,
                                               word: str) -> None:
    """STOP-like replies block later SMS to the sender (scope, sms only); forwarded anyway."""
    upstream.status = 201
    resp = await sms(hooks, word)
    assert resp.status == 201
    assert upstream.received[0].path_qs == "/app/sms"
    assert await outbound(hooks) == 403
    assert await outbound(hooks, scope="tenant:other") == 201
    assert await outbound(hooks, path=TWILIO_CALLS) == 201
    listing = await hooks.admin.get("/admin/v1/lists/block/entries",
                                    params={"scope": "tenant:acme"}, headers=AUTH)
    [row] = (await listing.json())["entries"]
    assert row["entry"] == CALLER
    assert row["channel"] == "sms"
    assert row["source"] == "opt-out"


@pytest.mark.parametrize("word", ["START", "yes", "Unstop"])
async def test_start_lifts_an_opt_out(hooks: Running, upstream: FakeUpstream,
                                      word: str) -> None:
    """START-like replies remove the opt-out entry the gatekeeper made."""
    upstream.status = 201
    await sms(hooks, "STOP")
    assert await outbound(hooks) == 403
    await sms(hooks, word)
    assert await outbound(hooks) == 201
    assert len(upstream.received) == 3  # two webhooks and the last send


async def test_start_never_lifts_a_manual_block(hooks: Running, upstream: FakeUpstream) -> None:
    """An operator's block stays, whatever the recipient texts."""
    upstream.status = 201
    await hooks.admin.post("/admin/v1/lists/block/entries",
                           json={"entries": [{"entry": CALLER, "channel": "sms"}],
                                 "scope": "tenant:acme"}, headers=AUTH)
    await sms(hooks, "STOP")   # already listed by hand: stays manual
    await sms(hooks, "START")
    assert await outbound(hooks) == 403
    check = await hooks.admin.get("/admin/v1/lists/block/entries",
                                  params={"scope": "tenant:acme"}, headers=AUTH)
    assert (await check.json())["entries"][0]["source"] == "api"


async def test_ordinary_messages_change_nothing(hooks: Running, upstream: FakeUpstream,
                                                log_output: Any) -> None:
    """A message that is not a keyword is only forwarded."""
    upstream.status = 201
    await sms(hooks, "please stop calling me at night")
    assert await outbound(hooks) == 201
    assert not [e for e in log_events(log_output) if e["event"] == "list_changed"]
    assert decisions(hooks.registry, "sms-in", "sms", "forwarded", "message",
                     direction="inbound") == 1

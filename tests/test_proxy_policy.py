"""Policy rules through the proxy and the check endpoint: what reaches the upstream,
what the client is told, what is counted and recorded."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gatekeeper.config import ConfigError
from gatekeeper.providers import check_presets
from tests.conftest import (
    AUTH,
    TWILIO_CALLS,
    TWILIO_MESSAGES,
    FakeUpstream,
    StartGatekeeper,
    decisions,
    log_events,
    make_config,
    sample,
)

NY = "+12125550123"
KP = "+85023812345"
FR_PREMIUM = "+33899123456"
# 23:30 in New York (EST): quiet there until 08:00, 8.5 hours later.
NIGHT = datetime(2026, 12, 4, 4, 30, tzinfo=UTC).timestamp()
DAY = datetime(2026, 12, 3, 20, 0, tzinfo=UTC).timestamp()
POLICY = {"global": {"countries": {"block": ["KP"]},
                     "quiet_hours": {"action": "block"}}}


@pytest.fixture(params=["fakeredis", pytest.param("redis-server",
                                                  marks=pytest.mark.integration)])
def start_gatekeeper(request: pytest.FixtureRequest,
                     start_gatekeeper: StartGatekeeper) -> StartGatekeeper:
    """Every test here twice: on fakeredis, and on the suite's real redis-server."""
    if request.param == "fakeredis":
        return start_gatekeeper
    real = request.getfixturevalue("real_redis")

    async def on_real(config: Any, redis: Any = None, **kwargs: Any) -> Any:
        return await start_gatekeeper(config, redis=redis or real, **kwargs)

    return on_real


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The instant sends are judged at (the proxy's clock only), settable."""
    now = [DAY]
    monkeypatch.setattr("gatekeeper.examine.time", SimpleNamespace(time=lambda: now[0]))
    return now


async def start(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
                policy: dict[str, Any] | None = None, **sections: Any) -> Any:
    config = make_config(upstream.url, tmp_path, policy=policy or POLICY, **sections)
    return await start_gatekeeper(config)


async def attempts(redis: Any, expected: int) -> list[dict[str, str]]:
    for _ in range(100):
        entries = await redis.xrange("gk:attempts")
        if len(entries) >= expected:
            break
        await asyncio.sleep(0.01)
    return [dict(f) for _, f in await redis.xrange("gk:attempts")]


async def test_a_blocked_country_never_reaches_the_upstream(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        clock: list[float]) -> None:
    """403 in Twilio's shape naming the region, counted by rule, recorded with it."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    resp = await gk.proxy.post(TWILIO_MESSAGES, data={"To": KP, "Body": "hi"})
    assert resp.status == 403
    body = await resp.json()
    assert "KP" in body["message"]
    assert KP not in json.dumps(body)
    assert upstream.received == []
    assert decisions(gk.registry, "twilio", "sms", "rejected", "policy_country") == 1
    assert sample(gk.registry, "gatekeeper_policy_rule_hits_total", rule="country",
                  outcome="block") == 1
    [attempt] = await attempts(gk.redis, 1)
    assert (attempt["rule"], attempt["detail"], attempt["scope"]) == ("country", "KP", "global")


async def test_premium_rate_is_blocked_on_voice_by_default_and_not_on_sms(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """The shipped rule (no `policy:` configured): toll fraud's numbers refused on calls."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path))
    call = await gk.proxy.post(TWILIO_CALLS, data={"To": FR_PREMIUM, "From": "+15005550006",
                                                   "Url": "https://example.com/x"})
    assert call.status == 403
    sms = await gk.proxy.post(TWILIO_MESSAGES, data={"To": FR_PREMIUM, "Body": "hi"})
    assert sms.status == 201
    assert len(upstream.received) == 1


async def test_quiet_hours_refuse_with_retry_after_and_intent_exempts(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        clock: list[float]) -> None:
    """23:30 in New York: a marketing send is refused until 08:00 local (Retry-After in
    seconds); the same send as `otp` goes through, without the intent header."""
    clock[0] = NIGHT
    gk = await start(start_gatekeeper, upstream, tmp_path)
    resp = await gk.proxy.post(TWILIO_MESSAGES, data={"To": NY, "Body": "sale"})
    assert resp.status == 403
    assert int(resp.headers["Retry-After"]) == int(8.5 * 3600)
    assert upstream.received == []
    otp = await gk.proxy.post(TWILIO_MESSAGES, data={"To": NY, "Body": "123456"},
                              headers={"X-Gatekeeper-Intent": "OTP"})
    assert otp.status == 201
    [sent] = upstream.received
    assert not any(k.lower() == "x-gatekeeper-intent" for k in sent.headers)


@pytest.mark.parametrize("value", ["promo", "otp, marketing", ""])
async def test_an_unknown_intent_is_refused_not_guessed(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        value: str) -> None:
    """400 invalid_intent; nothing forwarded."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    resp = await gk.proxy.post(TWILIO_MESSAGES, data={"To": NY, "Body": "x"},
                               headers={"X-Gatekeeper-Intent": value})
    assert resp.status == 400
    assert (await resp.json())["code"] == "invalid_intent"
    assert upstream.received == []


async def test_an_upstream_default_intent_applies_without_a_header(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        clock: list[float]) -> None:
    """An upstream declared `intent: otp` is not held by marketing quiet hours."""
    clock[0] = NIGHT
    gk = await start(start_gatekeeper, upstream, tmp_path, twilio={"intent": "otp"})
    resp = await gk.proxy.post(TWILIO_MESSAGES, data={"To": NY, "Body": "123456"})
    assert resp.status == 201


async def test_monitor_mode_forwards_and_counts(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        clock: list[float]) -> None:
    """A rule kind in monitor: the send goes; the hit is counted as monitor."""
    policy = {"global": {"countries": {"block": ["KP"]}, "mode": {"country": "monitor"}}}
    gk = await start(start_gatekeeper, upstream, tmp_path, policy)
    resp = await gk.proxy.post(TWILIO_MESSAGES, data={"To": KP, "Body": "hi"})
    assert resp.status == 201
    assert sample(gk.registry, "gatekeeper_policy_rule_hits_total", rule="country",
                  outcome="monitor") == 1


@pytest.mark.parametrize(("level", "lines"), [("info", 1), ("debug", 1), ("warning", 0)])
async def test_a_monitor_hit_is_logged_at_info_and_counted_at_every_level(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        clock: list[float], log_output: Any, level: str, lines: int) -> None:
    """`policy_monitored` (rule kinds and counts, never the number) is written when
    log.level lets info through, and not even built below it; counted either way."""
    policy = {"global": {"countries": {"block": ["KP"]}, "mode": {"country": "monitor"}}}
    gk = await start(start_gatekeeper, upstream, tmp_path, policy, log={"level": level})
    resp = await gk.proxy.post(TWILIO_MESSAGES, data={"To": KP, "Body": "hi"})
    assert resp.status == 201
    found = [e for e in log_events(log_output) if e["event"] == "policy_monitored"]
    assert len(found) == lines
    assert all(e["rules"] == {"country": 1} for e in found)
    assert KP not in log_output.getvalue()
    assert sample(gk.registry, "gatekeeper_policy_rule_hits_total", rule="country",
                  outcome="monitor") == 1


async def test_a_partly_blocked_batch_loses_only_the_rule_blocked_recipient(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        clock: list[float]) -> None:
    """A generic JSON batch: the KP recipient is removed, the other is sent."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    resp = await gk.proxy.post("/generic/v1/sms", json={"messages": [{"to": KP},
                                                                     {"to": NY}]})
    assert resp.status == 201
    [sent] = upstream.received
    assert json.loads(sent.body) == {"messages": [{"to": NY}]}


@pytest.mark.parametrize(("query", "decided", "rules"), [
    ({"number": NY, "at": "23:30", "channel": "sms"}, "quiet_hours", ["quiet_hours"]),
    ({"number": NY, "at": "12:00", "channel": "sms"}, "default", ["quiet_hours", "country"]),
    ({"number": NY, "at": "23:30", "intent": "otp", "channel": "sms"}, "default",
     ["quiet_hours", "country"]),
    ({"number": KP, "at": "2026-12-03T12:00:00+09:00"}, "country",
     ["quiet_hours", "country"]),
    ({"number": NY, "at": "12:00"}, "default",
     ["quiet_hours", "country", "quiet_hours", "number_type", "country"]),
    ({"number": FR_PREMIUM, "channel": "voice", "at": "12:00"}, "number_type",
     ["quiet_hours", "number_type"]),
], ids=["quiet", "daytime", "otp-exempt", "country", "both-channels", "premium-on-voice"])
async def test_check_explains_every_rule_and_the_one_that_decided(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        query: dict[str, str], decided: str, rules: list[str]) -> None:
    """`at=` as HH:MM in the recipient's time or an ISO instant; the rules evaluated in
    precedence order, each with its outcome (no channel: both channels' rules). A rule's
    refusal is not a blacklisting: no `Blacklisted` label."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    resp = await gk.admin.get("/admin/v1/check", params=query, headers=AUTH)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["decided_by"]["rule"] == decided
    assert [r["rule"] for r in body["rules"]] == rules
    assert body["decision"] == ("unlisted" if decided == "default" else "blocked")
    assert body["label"] is None


async def test_check_labels_a_list_block_blacklisted_under_a_policy(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """With rules in force, a number a block entry stops is still `Blacklisted`, decided
    by `list`, and no rule is evaluated."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    await gk.block(NY)
    resp = await gk.admin.get("/admin/v1/check", params={"number": NY, "at": "23:30"},
                              headers=AUTH)
    body = await resp.json()
    assert (body["decision"], body["label"]) == ("blocked", "Blacklisted")
    assert body["decided_by"]["rule"] == "list"
    assert body["rules"] == []


async def test_check_refuses_an_unusable_instant(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """An instant without its offset is ambiguous: 400 invalid_at."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    resp = await gk.admin.get("/admin/v1/check", params={"number": NY,
                                                         "at": "2026-12-03T22:30"},
                              headers=AUTH)
    assert resp.status == 400
    assert (await resp.json())["code"] == "invalid_at"


async def test_a_rule_can_refuse_numbers_on_a_high_risk_range_list(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        clock: list[float]) -> None:
    """A prefix list imported into its own scope (`risk:irsf`) and named by a voice
    number-type rule: calls into those ranges are refused as `number_type`, SMS and
    other numbers are not; check names the list. The list's scope is not the
    request's: it blocks nothing by itself."""
    policy = {"global": {"voice": {"number_types": {"lists": {"risk:irsf": "block"}}}}}
    gk = await start(start_gatekeeper, upstream, tmp_path, policy)
    await gk.block("+88213*", "+22507*", scope="risk:irsf")
    call = {"From": "+15005550006", "Url": "https://example.com/x"}
    refused = await gk.proxy.post(TWILIO_CALLS, data={"To": "+882130012345", **call})
    assert refused.status == 403
    assert decisions(gk.registry, "twilio", "voice", "rejected", "policy_number_type") == 1
    assert (await gk.proxy.post(TWILIO_CALLS, data={"To": NY, **call})).status == 201
    sms = await gk.proxy.post(TWILIO_MESSAGES, data={"To": "+2250712345678", "Body": "x"})
    assert sms.status == 201
    resp = await gk.admin.get("/admin/v1/check", headers=AUTH, params={
        "number": "+2250712345678", "channel": "voice"})
    body = await resp.json()
    assert body["decided_by"] == {"rule": "number_type", "scope": "global",
                                  "outcome": "block", "channel": "voice",
                                  "detail": "listed in risk:irsf"}
    assert body["matched"] == []


async def test_a_built_in_preset_route_can_carry_its_own_intent(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        clock: list[float]) -> None:
    """Twilio's Messages route declared `otp`: its sends pass quiet hours at night; the
    Calls route keeps the upstream's (marketing) and is held."""
    clock[0] = NIGHT
    gk = await start(start_gatekeeper, upstream, tmp_path, twilio={"route_intents": [
        {"method": "POST", "path": "/2010-04-01/Accounts/{account_sid}/Messages",
         "intent": "otp"}]})
    assert (await gk.proxy.post(TWILIO_MESSAGES, data={"To": NY, "Body": "1"})).status == 201
    call = await gk.proxy.post(TWILIO_CALLS, data={"To": NY, "From": "+15005550006",
                                                   "Url": "https://example.com/x"})
    assert call.status == 403
    assert "Retry-After" in call.headers


def test_a_route_intent_must_name_a_route_of_the_preset(tmp_path: Path) -> None:
    """A path template the preset has no route for is refused at start-up."""
    config = make_config("http://127.0.0.1:9", tmp_path, twilio={"route_intents": [
        {"method": "POST", "path": "/2010-04-01/Accounts/{sid}/Messages", "intent": "otp"}]})
    with pytest.raises(ConfigError) as caught:
        check_presets(config)
    assert caught.value.key == "upstreams[0].route_intents[0].path"

"""Policy rules beyond lists (rules.py, screening): the precedence as a table, each rule
kind, monitor mode, intents, channels, and what must never happen."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper import rules
from gatekeeper.config import parse_config
from gatekeeper.facts import describe
from gatekeeper.frozen import FrozenMap
from gatekeeper.numbers import parse_destination
from gatekeeper.policy import Decision, Match, decide
from gatekeeper.quiet_config import compile_quiet
from gatekeeper.rules import (
    INTENTS,
    ChannelRules,
    CountryRule,
    Policy,
    QuietRule,
    SafeList,
    ScopeRules,
    TypeRule,
    judge,
)
from gatekeeper.screening import Judging, screen
from gatekeeper.types import Channel

NY = "+12125550123"            # US, New York (America/New_York)
FL = "+13055550123"            # US, Florida: quiet from 20:00 local
GB_MOBILE = "+447400123456"    # GB mobile
FR_PREMIUM = "+33899123456"    # FR premium rate (089x)
KP = "+85023812345"            # North Korea
# 2026-12-03 15:00 in New York (EST, UTC-5): daytime; 23:30 New York: quiet everywhere.
DAY = datetime(2026, 12, 3, 20, 0, tzinfo=UTC).timestamp()
NIGHT = datetime(2026, 12, 4, 4, 30, tzinfo=UTC).timestamp()
FL_EVENING = datetime(2026, 12, 4, 1, 30, tzinfo=UTC).timestamp()  # 20:30 in Florida

QUIET = QuietRule(compile_quiet(None))
BLOCK_KP = CountryRule("allow", FrozenMap({"KP": "block"}))
BLOCK_PREMIUM = TypeRule(FrozenMap({"premium_rate": "block"}))
FULL = ChannelRules(BLOCK_KP, BLOCK_PREMIUM, QUIET)


def policy(rules: ScopeRules, scope: str = "global") -> Policy:
    return Policy(FrozenMap({scope: rules}))


def both(rules: ChannelRules, **kw: object) -> ScopeRules:
    return ScopeRules(sms=rules, voice=rules, **kw)  # type: ignore[arg-type]


async def decided(number: str, pol: Policy, matches: Sequence[Match] = (),
                  channel: Channel | None = "sms", intent: str = "marketing",
                  at: float = DAY, scopes: tuple[str, ...] = ("global",)) -> tuple[str, str]:
    """(verdict, what decided) for one number through `screen`, lists then rules."""
    async def lookup(keys: Sequence[str], _scopes: Sequence[str], _channel: object
                     ) -> dict[str, list[Match]]:
        return {k: list(matches) for k in keys}

    parsed = {number: parse_destination(number, None, False)}
    screened = await screen(lookup, parsed, scopes, channel, fail_closed=True,
                            judging=Judging(pol, intent, at))  # type: ignore[arg-type]
    decision = screened.decisions[number]
    return decision.verdict, decision.decider


BLOCK_ENTRY = Match("global", "block", NY)
ALLOW_ENTRY = Match("global", "allow", "+1212*")
SAFE_NY = SafeList(frozenset({NY}))
KP_SAFE = SafeList(frozenset({KP}))


@pytest.mark.parametrize(("number", "rules", "matches", "at", "expected"), [
    # 1. a block entry (the most specific entry, as lists decide) beats every exemption
    (NY, both(FULL, safe=SAFE_NY), [BLOCK_ENTRY, ALLOW_ENTRY], DAY, ("blocked", "list")),
    # 2. an allow entry exempts from every rule of its scope
    (KP, both(FULL), [Match("global", "allow", KP)], NIGHT, ("allowed", "list")),
    # 3. the safe list exempts from quiet hours, type and country
    (KP, both(FULL, safe=KP_SAFE), [], NIGHT, ("unlisted", "default")),
    # 5. quiet hours before number type and country
    (NY, both(FULL), [], NIGHT, ("blocked", "quiet_hours")),
    (FL, both(FULL), [], FL_EVENING, ("blocked", "quiet_hours")),
    (NY, both(FULL), [], FL_EVENING, ("unlisted", "default")),
    # 6. number type before country
    (FR_PREMIUM, both(ChannelRules(CountryRule("block"), BLOCK_PREMIUM)), [], DAY,
     ("blocked", "number_type")),
    # 7. country
    (KP, both(FULL), [], DAY, ("blocked", "country")),
    # 8. nothing speaks: the default
    (GB_MOBILE, both(FULL), [], DAY, ("unlisted", "default")),
], ids=["block-entry-beats-safe-and-allow", "allow-entry-exempts", "safe-exempts",
        "quiet-ny-night", "quiet-florida-evening", "ny-not-quiet-at-florida-evening",
        "type-before-country", "country", "default"])
async def test_precedence(number: str, rules: ScopeRules, matches: list[Match], at: float,
                          expected: tuple[str, str]) -> None:
    """Block entries > allow entries > safe list > quiet hours > number type > country >
    default: the first that speaks decides, and the decision names it."""
    assert await decided(number, policy(rules), matches, at=at) == expected


async def test_monitor_mode_never_decides_but_a_stricter_rule_below_still_blocks() -> None:
    """Quiet hours in monitor: recorded, not deciding; the country rule below blocks."""
    rules = both(FULL, monitor=frozenset({"quiet_hours"}))
    assert await decided(KP, policy(rules), at=NIGHT) == ("blocked", "country")
    assert await decided(NY, policy(rules), at=NIGHT) == ("unlisted", "default")


async def test_monitor_action_is_recorded_on_the_decision() -> None:
    """A `monitor` action leaves the number allowed, with the hit on the decision."""
    rules = both(ChannelRules(CountryRule("allow", FrozenMap({"KP": "monitor"}))))
    verdict = judge(KP, ("global",), policy(rules), "sms", "marketing", DAY)
    assert verdict.blocked_by is None
    assert [(r.kind, r.outcome, r.detail) for r in verdict.monitored] == \
        [("country", "monitor", "KP")]


@pytest.mark.parametrize(("intent", "expected"), [
    ("marketing", "quiet_hours"), ("transactional", "default"), ("otp", "default")])
async def test_quiet_hours_apply_by_intent(intent: str, expected: str) -> None:
    """Quiet hours apply to marketing by default; otp and transactional are exempt."""
    assert (await decided(NY, policy(both(FULL)), at=NIGHT, intent=intent))[1] == expected


@pytest.mark.parametrize(("channel", "expected"), [
    ("sms", ("unlisted", "default")), ("voice", ("blocked", "number_type")),
    (None, ("blocked", "number_type"))])
async def test_channel_rules_and_scanned_writes_take_both(channel: Channel | None,
                                                          expected: tuple[str, str]) -> None:
    """Premium rate blocked on voice only; a write of unknown channel gets both
    channels' rules (deny by default)."""
    rules = ScopeRules(voice=ChannelRules(number_types=BLOCK_PREMIUM))
    assert await decided(FR_PREMIUM, policy(rules), channel=channel) == expected


async def test_any_scope_blocking_blocks_and_allow_entries_exempt_only_their_scope() -> None:
    """A tenant's allow entry does not lift the global scope's rules."""
    pol = Policy(FrozenMap({"global": both(FULL), "tenant:a": both(FULL)}))
    allow = [Match("tenant:a", "allow", KP)]
    assert await decided(KP, pol, allow, scopes=("global", "tenant:a")) == \
        ("blocked", "country")


async def test_scopes_without_rules_are_lists_only() -> None:
    """No rules in the request's scopes: the list decision, untouched."""
    pol = policy(both(FULL), scope="tenant:x")
    assert await decided(KP, pol) == ("unlisted", "default")


def test_shipped_default_blocks_premium_and_shared_cost_on_voice_only() -> None:
    """With no `policy:` at all: global voice blocks premium rate and shared cost."""
    pol = parse_config({}).policy
    assert judge(FR_PREMIUM, ("global",), pol, "voice", "otp", DAY).blocked_by is not None
    assert judge(FR_PREMIUM, ("global",), pol, "sms", "otp", DAY).blocked_by is None
    assert judge(NY, ("global",), pol, "voice", "otp", DAY).blocked_by is None


@pytest.mark.parametrize(("number", "region", "kind"), [
    (NY, "US", "fixed_line_or_mobile"), ("+16475550123", "CA", "fixed_line_or_mobile"),
    ("+17875550123", "PR", "fixed_line_or_mobile"), (FR_PREMIUM, "FR", "premium_rate"),
    ("+18005550123", "US", "toll_free"), ("+80012345678", None, "toll_free"),
    (GB_MOBILE, "GB", "mobile")])
def test_facts_come_from_the_numbering_metadata(number: str, region: str | None,
                                                kind: str) -> None:
    """+1 numbers resolve to US, CA, PR; non-geographic (+800) have no region."""
    assert (describe(number).region, describe(number).type) == (region, kind)


NUMBERS = st.sampled_from([NY, FL, GB_MOBILE, FR_PREMIUM, KP, "+18005550123",
                           "+61412345678", "+919876543210"])


@settings(max_examples=150, deadline=None)
@given(number=NUMBERS, at=st.floats(1.7e9, 1.9e9), intent=st.sampled_from(INTENTS),
       channel=st.sampled_from(["sms", "voice", None]))
def test_a_safe_number_is_never_blocked_by_a_rule(number: str, at: float, intent: str,
                                                  channel: Channel | None) -> None:
    """Whatever the instant, intent and channel: the safe list exempts from every rule
    (and only a list entry could then block)."""
    rules = ScopeRules(FULL, ChannelRules(CountryRule("block"), BLOCK_PREMIUM, QUIET),
                       SafeList(frozenset({number})))
    verdict = judge(number, ("global",), policy(rules), channel, intent, at)  # type: ignore[arg-type]
    assert verdict.blocked_by is None


@settings(max_examples=150, deadline=None)
@given(number=NUMBERS, at=st.floats(1.7e9, 1.9e9), intent=st.sampled_from(INTENTS))
def test_a_rule_block_always_names_its_rule_and_quiet_hours_say_when(
        number: str, at: float, intent: str) -> None:
    """Every block names a rule kind and scope; a quiet-hours block says how long until
    sending is allowed (positive)."""
    verdict = judge(number, ("global",), policy(both(FULL)), "sms", intent, at)  # type: ignore[arg-type]
    hit = verdict.blocked_by
    if hit is not None:
        assert hit.kind in ("quiet_hours", "number_type", "country")
        assert hit.scope == "global"
        if hit.kind == "quiet_hours":
            assert hit.retry_after is not None
            assert hit.retry_after > 0


POLICIES = st.sampled_from([
    both(FULL), both(FULL, safe=SafeList(frozenset({NY, KP}), ("+1",))),
    both(FULL, monitor=frozenset({"country", "number_type", "quiet_hours"})),
    ScopeRules(voice=ChannelRules(number_types=BLOCK_PREMIUM))])
ENTRIES = st.sampled_from([NY, KP, FR_PREMIUM, "+1*", "+1212*", "+33*", "+8*"])


@settings(max_examples=200, deadline=None)
@given(number=NUMBERS, rules=POLICIES, at=st.floats(1.7e9, 1.9e9),
       intent=st.sampled_from(INTENTS), channel=st.sampled_from(["sms", "voice", None]),
       blocks=st.lists(ENTRIES, max_size=3), allows=st.lists(ENTRIES, max_size=3))
def test_policy_rules_never_unblock_what_the_lists_block(
        number: str, rules: ScopeRules, at: float, intent: str, channel: Channel | None,
        blocks: list[str], allows: list[str]) -> None:
    """Whatever the policy, instant, intent and channel: a number the lists block stays
    blocked by the list entry (a safe list, monitor mode or allow entry never lifts it),
    and one the lists allow is blocked only by a rule naming itself."""
    matches = [Match("global", "block", e) for e in blocks if number.startswith(
        e.rstrip("*")) and (e.endswith("*") or e == number)] + \
        [Match("global", "allow", e) for e in allows if number.startswith(
            e.rstrip("*")) and (e.endswith("*") or e == number)]
    listed = decide(number, ["global"], matches)
    verdict, decider = asyncio.run(decided(number, policy(rules), matches, channel,
                                           intent, at))
    if listed.verdict == "blocked":
        assert (verdict, decider) == ("blocked", "list")
    elif verdict == "blocked":
        assert decider in ("quiet_hours", "number_type", "country")


# --------------------------------------------------------------------------- the memo

# A toll-free number spans the US zones; +1671 is Guam (ChST, the day before Hawaii).
MEMO_NUMBERS = [NY, FL, GB_MOBILE, FR_PREMIUM, KP, "+14155550100", "+18085550100",
                "+12015550123", "+19005550100", "+18005550123", "+16715550123"]
# Instants over two years, DST changes in both directions included.
INSTANTS = st.floats(datetime(2026, 1, 1, tzinfo=UTC).timestamp(),
                     datetime(2027, 12, 31, tzinfo=UTC).timestamp())


@settings(max_examples=120, deadline=None)
@given(calls=st.lists(st.tuples(st.sampled_from(MEMO_NUMBERS), INSTANTS,
                                st.sampled_from(("sms", "voice")), st.sampled_from(INTENTS),
                                st.integers(0, 119), st.integers(1, 1800)),
                      min_size=1, max_size=12))
def test_a_kept_verdict_is_always_the_one_judged_afresh(
        calls: list[tuple[str, float, Channel, str, int, int]]) -> None:
    """Property: with verdicts kept in the policy's memo, every verdict (a later call
    in the same minute, or minutes to a day later, included; `retry_after` to the
    second) equals the one a policy with an empty memo gives. Two scopes, whose quiet
    hours open and close at different times."""
    kept = memo_policy()
    for number, at, channel, intent, later, minutes in calls:
        # Again within the same minute, then later (a kept verdict, or a zone opened
        # or closed meanwhile).
        for instant in (at, at - at % 60 + later % 60, at + 60 * minutes):
            fresh = judge(number, MEMO_SCOPES, memo_policy(), channel, intent,  # type: ignore[arg-type]
                          instant)
            assert judge(number, MEMO_SCOPES, kept, channel, intent,  # type: ignore[arg-type]
                         instant) == fresh


MEMO_SCOPES = ("global", "tenant")


def memo_policy() -> Policy:
    """The full rules in one scope; in another, narrower quiet hours that only monitor."""
    narrow = QuietRule(compile_quiet({"countries": {"US": {"default": "09:00-20:00"}}}),
                       "monitor", frozenset(INTENTS))
    return Policy(FrozenMap({"global": both(FULL), "tenant": both(ChannelRules(
        quiet_hours=narrow))}))


def test_a_verdict_is_kept_until_a_zone_of_the_number_opens_or_closes() -> None:
    """The memo answers with the same verdict object from the minute it was judged in
    (15:00 in New York) until New York's window closes (21:00, six hours on); then, in
    a minute before it, or under a new policy (a live change), it judges again."""
    pol = policy(both(FULL))
    closing = datetime(2026, 12, 4, 2, 0, tzinfo=UTC).timestamp()  # 21:00 in New York

    def judged(at: float, pol: Policy = pol) -> rules.Verdict:
        return judge(NY, ("global",), pol, "sms", "marketing", at)

    first = judged(DAY)
    assert judged(DAY + 59) is first
    assert judged(DAY + 60) is first
    assert judged(closing - 1) is first
    quiet = judged(closing)
    assert quiet.blocked_by is not None
    assert quiet.blocked_by.kind == "quiet_hours"
    assert judged(DAY - 60) is not first
    assert judged(DAY, policy(both(FULL))) is not first


def test_a_verdict_of_two_quiet_hours_is_kept_until_the_first_changes() -> None:
    """Two scopes' quiet hours (New York closing at 21:00, and at 20:00 in the other,
    which monitors): the verdict of 15:00 is kept until 20:00, when the other scope's
    hit begins."""
    pol = memo_policy()
    first = judge(NY, MEMO_SCOPES, pol, "sms", "marketing", DAY)
    eight = datetime(2026, 12, 4, 1, 0, tzinfo=UTC).timestamp()  # 20:00 in New York
    assert judge(NY, MEMO_SCOPES, pol, "sms", "marketing", eight - 1) is first
    later = judge(NY, MEMO_SCOPES, pol, "sms", "marketing", eight)
    assert first.monitored == ()
    assert [(r.kind, r.scope) for r in later.monitored] == [("quiet_hours", "tenant")]


def test_a_quiet_hours_block_is_not_kept_its_retry_after_counts_down() -> None:
    """A quiet-hours block names the seconds to the next allowed instant: judged anew
    each time, 20 seconds later is 20 seconds less."""
    pol = policy(both(FULL))
    early = judge(FL, ("global",), pol, "sms", "marketing", FL_EVENING)
    later = judge(FL, ("global",), pol, "sms", "marketing", FL_EVENING + 20)
    assert early.blocked_by is not None
    assert later.blocked_by is not None
    assert early.blocked_by.retry_after == later.blocked_by.retry_after + 20  # type: ignore[operator]


def test_the_memo_is_bounded_and_never_pickled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The memo is dropped whole when full, and a pickled policy (sent to the screening
    helper) carries no memo but equals the original."""
    monkeypatch.setattr(rules, "MEMO_SIZE", 4)
    pol = policy(both(FULL))
    for n in range(10):
        judge(f"+1212555{n:04d}", ("global",), pol, "sms", "marketing", DAY)
        assert len(pol.memo.verdicts) <= 4
    copy = pickle.loads(pickle.dumps(pol))
    assert copy == pol
    assert copy.memo.verdicts == {}
    assert pol.memo.verdicts


async def test_a_monitored_unlisted_numbers_decision_is_kept_with_its_verdict() -> None:
    """The decision of an unlisted number the rules only monitor is the same object
    while its verdict is kept (until the number's zone opens), equal to one a fresh
    policy gives, and made again when the zone opens; a listed number's is not kept."""
    pol = policy(both(FULL, monitor=frozenset({"quiet_hours"})))

    async def decision(at: float, matches: Sequence[Match] = (),
                       pol: Policy = pol) -> Decision:
        async def lookup(keys: Sequence[str], _s: Sequence[str], _c: object
                         ) -> dict[str, list[Match]]:
            return {k: list(matches) for k in keys}
        parsed = {NY: parse_destination(NY, None, False)}
        screened = await screen(lookup, parsed, ("global",), "sms", fail_closed=True,
                                judging=Judging(pol, "marketing", at))  # type: ignore[arg-type]
        return screened.decisions[NY]

    first = await decision(NIGHT)
    assert [r.kind for r in first.monitored] == ["quiet_hours"]
    assert await decision(NIGHT + 30) is first
    assert await decision(NIGHT, pol=policy(both(FULL, monitor=frozenset({"quiet_hours"})))
                          ) == first
    assert await decision(NIGHT + 60) is first  # a new minute, still quiet
    morning = datetime(2026, 12, 4, 13, 0, tzinfo=UTC).timestamp()  # 08:00, New York
    later = await decision(morning)
    assert later is not first
    assert later.monitored == ()
    assert later == await decision(morning, pol=policy(both(
        FULL, monitor=frozenset({"quiet_hours"}))))
    allowed = [Match("global", "allow", "+1212*")]
    assert await decision(NIGHT, allowed) is not await decision(NIGHT, allowed)
    assert len(pol.memo.decisions) == 1


@pytest.mark.parametrize(("monitor", "detail"), [
    (frozenset(), "US America/New_York at 23:30"),
    (frozenset({"quiet_hours"}), "US America/New_York"),
], ids=["block-names-the-local-time", "monitor-holds-without-it"])
def test_a_quiet_hours_detail_names_the_local_time_only_for_a_block(
        monitor: frozenset[str], detail: str) -> None:
    """A block (judged at each send) names the local time it was refused at; a monitor
    hit, kept until the zone opens, names the place and zone alone."""
    verdict = judge(NY, ("global",), policy(both(FULL, monitor=monitor)), "sms",
                    "marketing", NIGHT)
    [quiet] = [r for r in verdict.evaluated if r.kind == "quiet_hours"]
    assert quiet.detail == detail

"""velocity.plan_one (a screening with one reading) plans as velocity.plan does, and
gives the verdict judge gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.config import parse_config
from gatekeeper.rules import Intent, Policy, judge
from gatekeeper.types import Channel
from gatekeeper.velocity import plan, plan_one

POLICIES = {
    "velocity": {"global": {
        "countries": {"block": ["GB"]},
        "safe": ["+1212555"],
        "velocity": [{"per": "number", "limit": "5/hour"},
                     {"per": "block", "digits": 8, "limit": "9/hour", "intents": ["otp"]},
                     {"per": "country", "limit": "100/hour", "action": "monitor"}]},
        "tenant:a": {"velocity": [{"per": "number", "limit": "2/15m"}],
                     "mode": {"velocity": "monitor"}}},
    "no velocity": {"global": {"countries": {"block": ["GB"]}}},
    "voice only": {"global": {"voice": {"velocity": [{"per": "number",
                                                       "limit": "3/hour"}]}}},
}
NUMBERS = ["+12125550123", "+12025550123", "+447400123456", "+33612345678",
           "+12125559999"]


def policy(name: str) -> Policy:
    return parse_config({"policy": POLICIES[name]}).policy


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(sorted(POLICIES)), number=st.sampled_from(NUMBERS),
       scopes=st.sampled_from([("global",), ("global", "tenant:a"), ("tenant:a",),
                               ("other",)]),
       channel=st.sampled_from(["sms", "voice"]),
       intent=st.sampled_from(["otp", "transactional", "marketing"]),
       at=st.floats(1.7e9, 1.8e9), again=st.booleans())
def test_plan_one_is_plan_of_one_first_reading_with_its_verdict(
        name: str, number: str, scopes: tuple[str, ...], channel: Channel,
        intent: Intent, at: float, again: bool) -> None:
    """The same countings (the kept tuple, met again) and the same verdict as judge and
    plan give, whether the plan is new or kept, and for a policy that counts nothing."""
    pol = policy(name)
    if again:
        plan_one(number, scopes, pol, channel, intent, at)
    verdict, countings = plan_one(number, scopes, pol, channel, intent, at)
    assert verdict == judge(number, scopes, pol, channel, intent, at)
    assert list(countings) == list(plan({number: True}, scopes, pol, channel, intent, at))
    again_verdict, again_countings = plan_one(number, scopes, pol, channel, intent, at)
    assert again_verdict == verdict
    assert again_countings is countings or not countings


def test_a_blocked_number_is_only_looked_at() -> None:
    """A number another rule blocks is planned as looked at, not counted."""
    verdict, countings = plan_one("+447400123456", ("global",), policy("velocity"),
                                  "sms", "marketing", 1.75e9)
    assert verdict.blocked_by is not None
    assert verdict.blocked_by.kind == "country"
    assert [c.count for c in countings] == [False]
    _, free = plan_one("+12025550123", ("global", "tenant:a"), policy("velocity"), "sms",
                       "otp", 1.75e9)
    assert [(c.scope, c.count, len(c.limits)) for c in free] == [
        ("global", True, 3), ("tenant:a", True, 1)]

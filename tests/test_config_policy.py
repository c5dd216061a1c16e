"""The `policy:` section: what it compiles to, and every malformed value refused with
its key."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from gatekeeper.config import ConfigError, parse_config
from gatekeeper.config.policy import DEFAULT_VOICE_TYPES
from gatekeeper.rules import Policy


def policy(raw: Any) -> Policy:
    return parse_config({"policy": raw}).policy


def test_home_allows_only_the_home_regions() -> None:
    """`home: [US, CA]`: those allowed, every other region blocked."""
    rule = policy({"global": {"countries": {"home": ["US", "CA"]}}}).scopes["global"].sms
    assert rule.countries is not None
    assert rule.countries.default == "block"
    assert dict(rule.countries.regions) == {"US": "allow", "CA": "allow"}


def test_channel_sections_replace_a_kind_and_null_removes_it() -> None:
    """`sms: {countries: null}` lifts the scope's country rule on SMS only."""
    rules = policy({"tenant:a": {"countries": {"block": ["KP"]},
                                 "sms": {"countries": None}}}).scopes["tenant:a"]
    assert rules.sms.countries is None
    assert rules.voice.countries is not None


def test_the_shipped_voice_rule_stays_unless_voice_number_types_are_given() -> None:
    """Configuring countries keeps the premium/shared-cost voice rule; configuring
    number types for voice replaces it; other scopes get nothing shipped."""
    kept = policy({"global": {"countries": {"block": ["KP"]}}})
    assert kept.scopes["global"].voice.number_types == DEFAULT_VOICE_TYPES
    replaced = policy({"global": {"voice": {"number_types": {"premium_rate": "monitor"}}}})
    types = replaced.scopes["global"].voice.number_types
    assert types is not None
    assert dict(types.types) == {"premium_rate": "monitor"}
    assert policy({"tenant:a": {}}).scopes["tenant:a"].voice.number_types is None


def test_rules_may_name_other_scopes_lists_which_are_then_looked_up() -> None:
    """`number_types.lists`: the scopes named are the policy's referenced scopes."""
    pol = policy({"global": {"voice": {"number_types": {"lists": {"risk:irsf": "block"}}}},
                  "tenant:a": {"number_types": {"lists": {"risk:wangiri": "monitor"}}}})
    assert pol.referenced == frozenset({"risk:irsf", "risk:wangiri"})
    types = pol.scopes["global"].voice.number_types
    assert types is not None
    assert dict(types.lists) == {"risk:irsf": "block"}


def test_safe_entries_and_modes() -> None:
    """Safe numbers and prefixes (longest prefix first); monitor per rule kind."""
    rules = policy({"global": {"safe": ["+14155550100", "+1*", "+1415*"],
                               "mode": {"quiet_hours": "monitor"}}}).scopes["global"]
    assert rules.safe.covering("+14155550100") == "+14155550100"
    assert rules.safe.covering("+14155550199") == "+1415*"
    assert rules.safe.covering("+447700900123") is None
    assert rules.monitor == frozenset({"quiet_hours"})


@pytest.mark.parametrize(("raw", "key"), [
    ({"nope": {}}, "policy.nope"),
    ({"global": {"countries": {"block": ["XX"]}}}, "policy.global.countries.block"),
    ({"global": {"countries": {"block": ["KP"], "allow": ["KP"]}}},
     "policy.global.countries.block"),
    ({"global": {"countries": {"home": ["US"], "default": "allow"}}},
     "policy.global.countries.default"),
    ({"global": {"countries": {"default": "deny"}}}, "policy.global.countries.default"),
    ({"global": {"countries": {"intents": ["promo"]}}}, "policy.global.countries.intents"),
    ({"global": {"number_types": {"premium": "block"}}}, "policy.global.number_types.premium"),
    ({"global": {"number_types": {"premium_rate": "deny"}}},
     "policy.global.number_types.premium_rate"),
    ({"global": {"safe": ["4155550100"]}}, "policy.global.safe"),
    ({"global": {"safe": "+1415*"}}, "policy.global.safe"),
    ({"global": {"mode": {"country": "off"}}}, "policy.global.mode.country"),
    ({"global": {"mode": {"velocity": "off"}}}, "policy.global.mode.velocity"),
    ({"global": {"velocity": [{"limit": "10/hour"}]}}, "policy.global.velocity[0].per"),
    ({"global": {"velocity": {"per": "number"}}}, "policy.global.velocity"),
    ({"global": {"velocity": [{"per": "number", "limit": "ten/hour"}]}},
     "policy.global.velocity[0].limit"),
    ({"global": {"velocity": [{"per": "number", "limit": "10/fortnight"}]}},
     "policy.global.velocity[0].limit"),
    ({"global": {"velocity": [{"per": "number", "limit": "0/hour"}]}},
     "policy.global.velocity[0].limit"),
    ({"global": {"velocity": [{"per": "block", "limit": "10/hour"}]}},
     "policy.global.velocity[0].digits"),
    ({"global": {"velocity": [{"per": "number", "limit": "1/h", "block_for": "1y"}]}},
     "policy.global.velocity[0].block_for"),
    ({"global": {"velocity": [{"per": "number", "limit": "1/h", "colour": 1}]}},
     "policy.global.velocity[0].colour"),
    ({"global": {"quiet_hours": {"action": "warn"}}}, "policy.global.quiet_hours.action"),
    ({"global": {"quiet_hours": {"us_states": {"FL": {"default": "25:00-08:00"}}}}},
     "policy.global.quiet_hours"),
    ({"global": {"sms": {"safe": []}}}, "policy.global.sms.safe"),
    ({"global": {"number_types": {"lists": {"global": "block"}}}},
     "policy.global.number_types.lists.global"),
    ({"global": {"number_types": {"lists": {"risk:irsf": "deny"}}}},
     "policy.global.number_types.lists.risk:irsf"),
    ({"global": {"colour": "red"}}, "policy.global.colour"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_malformed_policies_are_refused_naming_the_key(raw: Any, key: str) -> None:
    """Unknown keys, regions, types, actions, intents and malformed limits are refused
    at start-up, never ignored."""
    with pytest.raises(ConfigError) as caught:
        policy(raw)
    assert caught.value.key == key


@pytest.mark.parametrize(("raw", "expected"), [
    ({"per": "number", "limit": "10/hour"}, ("number", 10, 3600.0, 0, "block", 0.0)),
    ({"per": "number", "limit": "3/15m"}, ("number", 3, 900.0, 0, "block", 0.0)),
    ({"per": "block", "digits": 8, "limit": "100/1h", "block_for": "30m"},
     ("block", 100, 3600.0, 8, "block", 1800.0)),
    ({"per": "country", "limit": "1000/day", "action": "monitor"},
     ("country", 1000, 86400.0, 0, "monitor", 0.0)),
], ids=["per-hour", "per-15m", "block-with-guard", "country-monitor"])
def test_velocity_limits_are_read(raw: dict[str, Any], expected: tuple[Any, ...]) -> None:
    """COUNT/WINDOW with units; a block is named by its leading digits; a guard's hold."""
    rules = policy({"global": {"velocity": [raw]}}).scopes["global"]
    [limit] = rules.sms.velocity
    assert (limit.per, limit.count, limit.window, limit.digits, limit.action,
            limit.block_for) == expected
    assert rules.voice.velocity == rules.sms.velocity


def test_route_and_upstream_intents() -> None:
    """An upstream's default intent, and a generic route's own."""
    config = parse_config({"upstreams": [{
        "name": "g", "url": "http://127.0.0.1:9", "preset": "generic", "intent": "otp",
        "routes": [{"path": "/v1/sms", "channel": "sms", "destination": {"json": "to"},
                    "intent": "transactional"}]}]})
    [upstream] = config.upstreams
    assert upstream.intent == "otp"
    assert upstream.routes[0].intent == "transactional"
    with pytest.raises(ConfigError) as caught:
        parse_config({"upstreams": [{"name": "g", "url": "http://127.0.0.1:9",
                                     "preset": "generic", "intent": "promo"}]})
    assert caught.value.key == "upstreams[0].intent"


def test_a_compiled_policy_survives_the_trip_to_the_screening_helper() -> None:
    """The config is pickled to the helper process: every rule kind comes back equal."""
    config = parse_config({"policy": {"global": {
        "countries": {"block": ["KP"]}, "number_types": {"voip": "monitor"},
        "quiet_hours": {"action": "block"}, "safe": ["+1415*"]}}})
    assert pickle.loads(pickle.dumps(config)).policy == config.policy

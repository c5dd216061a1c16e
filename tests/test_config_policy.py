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
    ({"global": {"mode": {"velocity": "monitor"}}}, "policy.global.mode.velocity"),
    ({"global": {"velocity": [{"limit": "10/hour"}]}}, "policy.global.velocity"),
    ({"global": {"quiet_hours": {"action": "warn"}}}, "policy.global.quiet_hours.action"),
    ({"global": {"quiet_hours": {"us_states": {"FL": {"default": "25:00-08:00"}}}}},
     "policy.global.quiet_hours"),
    ({"global": {"sms": {"safe": []}}}, "policy.global.sms.safe"),
    ({"global": {"colour": "red"}}, "policy.global.colour"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_malformed_policies_are_refused_naming_the_key(raw: Any, key: str) -> None:
    """Unknown keys, regions, types, actions, intents and unbuilt rules (velocity) are
    refused at start-up, never ignored."""
    with pytest.raises(ConfigError) as caught:
        policy(raw)
    assert caught.value.key == key


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

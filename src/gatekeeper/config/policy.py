"""The `policy:` section: rules beyond lists per scope, compiled into `rules.Policy`.

```yaml
policy:
  global:                          # a scope: 'global' or 'kind:id'
    mode: {country: monitor}       # per rule kind: enforce (default) or monitor
    countries:                     # by ISO region; + numbers resolve to US, CA, PR...
      default: allow               # allow | block | monitor (every region not named)
      block: [KP, IR]
      monitor: [NG]
      allow: [...]
      home: [US, CA]               # shortcut: these allowed, every other region blocked
      intents: [otp, transactional, marketing]   # the intents it applies to (default all)
    number_types:
      premium_rate: block
      shared_cost: block
      voip: monitor
      lists: {risk:irsf: block}    # numbers on that scope's block list (high-risk ranges)
    quiet_hours:                   # in the recipient's local time (quiet_config.py)
      action: block                # block | monitor
      intents: [marketing]         # default: marketing only
      countries: {US: {default: "08:00-21:00"}}   # over the shipped defaults
      us_states: {FL: {default: "08:00-20:00"}}
    safe: ["+14155550100", "+1415*"]   # exempt from the rules, never from a list entry
    sms: {countries: ..., number_types: ..., quiet_hours: ...}    # this channel only
    voice: {...}
```

A rule kind under `sms:` or `voice:` replaces the scope's rule of that kind on that
channel (`null` removes it there). Shipped default, in the `global` scope: premium-rate
and shared-cost numbers blocked on voice (toll fraud); any `number_types` the operator
gives for voice (at scope or channel level) replaces it.

```yaml
    velocity:                      # counted in Redis, over every proxy and worker
      - {per: number, limit: 10/hour}
      - {per: block, digits: 8, limit: 100/hour, block_for: 1h}   # a pumping guard
      - {per: country, limit: 1000/15m, action: monitor, intents: [marketing]}
```
"""

from __future__ import annotations

import json
from typing import Literal, cast

from gatekeeper.config.base import ConfigError, Section
from gatekeeper.facts import TYPE_NAMES
from gatekeeper.frozen import FrozenMap
from gatekeeper.numbers import is_known_region, is_valid_scope
from gatekeeper.quiet_config import compile_quiet
from gatekeeper.rules import (
    ACTIONS,
    INTENTS,
    RULE_KINDS,
    VELOCITY_PERS,
    Action,
    ChannelRules,
    CountryRule,
    Intent,
    Policy,
    QuietRule,
    RuleKind,
    SafeList,
    ScopeRules,
    TypeRule,
    VelocityLimit,
    VelocityPer,
)
from gatekeeper.types import CHANNELS

# The shipped voice rule of the `global` scope: toll fraud's usual destinations.
_TOLL_FRAUD: dict[str, Action] = {"premium_rate": "block", "shared_cost": "block"}
DEFAULT_VOICE_TYPES = TypeRule(FrozenMap(_TOLL_FRAUD))
_UNSET = object()


def _intents(s: Section, default: frozenset[Intent]) -> frozenset[Intent]:
    s.seen.add("intents")
    raw = s.raw.get("intents")
    if raw is None:
        return default
    if not isinstance(raw, list) or not raw or any(i not in INTENTS for i in raw):
        raise ConfigError(s.path("intents"), raw,
                          f"expected a list of intents: {', '.join(INTENTS)}")
    return frozenset(cast(list[Intent], raw))


def _regions(s: Section, name: str) -> list[str]:
    s.seen.add(name)
    raw = s.raw.get(name, [])
    if not isinstance(raw, list) or not all(isinstance(r, str) and is_known_region(r)
                                            for r in raw):
        raise ConfigError(s.path(name), raw, "expected a list of ISO 3166 region codes "
                          "phonenumbers knows (US, GB, ...)")
    return cast(list[str], raw)


def _countries(s: Section) -> CountryRule:
    home = _regions(s, "home")
    fallback: Action = "block" if home else "allow"
    default: Action = s.choice("default", ACTIONS, fallback)
    if home and default != "block":
        raise ConfigError(s.path("default"), default, "home: allows only the home regions;"
                          " the default must be block (or leave it out)")
    regions: dict[str, Action] = dict.fromkeys(home, "allow")
    for action in ACTIONS:
        for region in _regions(s, action):
            if region in regions and regions[region] != action:
                raise ConfigError(s.path(action), region, "region named with two actions")
            regions[region] = action
    rule = CountryRule(default, FrozenMap(regions), _intents(s, frozenset(INTENTS)))
    s.finish()
    return rule


def _referenced(s: Section) -> dict[str, Action]:
    """`lists: {<scope>: action}`: numbers on that scope's block list."""
    found = s.section("lists")
    lists: dict[str, Action] = {}
    for scope in list(found.raw):
        if not isinstance(scope, str) or not is_valid_scope(scope) or scope == "global":
            raise ConfigError(found.path(str(scope)), scope, "expected a scope of its own "
                              "holding the list ('risk:irsf'), not 'global'")
        lists[scope] = found.choice(scope, ACTIONS, "block")
    found.finish()
    return lists


def _number_types(s: Section) -> TypeRule:
    types: dict[str, Action] = {}
    lists = _referenced(s) if "lists" in s.raw else {}
    for name in list(s.raw):
        if name in ("intents", "lists"):
            continue
        if name not in TYPE_NAMES:
            raise ConfigError(s.path(str(name)), name, "unknown number type; expected one "
                              f"of {', '.join(sorted(TYPE_NAMES))}")
        types[name] = s.choice(name, ACTIONS, "allow")
    rule = TypeRule(FrozenMap(types), _intents(s, frozenset(INTENTS)), FrozenMap(lists))
    s.finish()
    return rule


def _quiet(s: Section) -> QuietRule:
    action = s.choice("action", cast(tuple[Literal["block", "monitor"], ...],
                                     ("block", "monitor")), "block")
    intents = _intents(s, frozenset({"marketing"}))
    tables = {k: s.raw[k] for k in ("countries", "us_states", "holidays") if k in s.raw}
    s.seen.update(tables)
    try:
        hours = compile_quiet(tables or None, s.key)
    except ValueError as exc:
        raise ConfigError(s.key, tables, str(exc)) from exc
    s.finish()
    return QuietRule(hours, action, intents)


def _rules(s: Section) -> dict[str, object]:
    """The rule kinds given in `s` (None where given as null)."""
    found: dict[str, object] = {}
    for name, reader in (("countries", _countries), ("number_types", _number_types),
                         ("quiet_hours", _quiet)):
        if name in s.raw:
            s.seen.add(name)
            raw = s.raw[name]
            found[name] = None if raw is None else reader(Section(s.path(name), raw))
    if "velocity" in s.raw:
        s.seen.add("velocity")
        raw = s.raw["velocity"]
        if raw is not None and not isinstance(raw, list):
            raise ConfigError(s.path("velocity"), raw, "expected a list of limits")
        found["velocity"] = tuple(_velocity(Section(f"{s.path('velocity')}[{i}]", one))
                                  for i, one in enumerate(raw or []))
    return found


_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600,
          "hour": 3600, "d": 86400, "day": 86400}


def _duration(key: str, text: object) -> float:
    """`15m`, `1h`, `hour`, `30s`, `2d`: seconds (at most 31 days)."""
    value = str(text).strip().lower() if isinstance(text, str | int) else ""
    digits = value.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = value[len(digits):] or "s"
    if unit not in _UNITS or (digits and not digits.isdigit()):
        raise ConfigError(key, text, "expected a duration: 30s, 15m, 1h, hour, 1d")
    seconds = float((int(digits) if digits else 1) * _UNITS[unit])
    if not 1 <= seconds <= 31 * 86400:
        raise ConfigError(key, text, "expected a duration from 1s to 31d")
    return seconds


def _velocity(s: Section) -> VelocityLimit:
    """One limit: `{per, limit: 10/hour, digits (per block), action, block_for, intents}`."""
    per = s.choice("per", VELOCITY_PERS, cast(VelocityPer, ""))
    text = s.get("limit", str, "")
    count, slash, window = text.partition("/")
    if not slash or not count.strip().isdigit() or int(count) < 1:
        raise ConfigError(s.path("limit"), text, "expected COUNT/WINDOW: 10/hour, 3/15m")
    digits = 0
    if per == "block":
        digits = s.get("digits", int, 0)
        if not 2 <= digits <= 14:
            raise ConfigError(s.path("digits"), digits, "a number block is named by its "
                              "first 2 to 14 digits (without +): 8 is a US 1,000-block")
    hold = 0.0
    s.seen.add("block_for")
    if s.raw.get("block_for") is not None:
        hold = _duration(s.path("block_for"), s.raw["block_for"])
    action = s.choice("action", cast(tuple[Literal["block", "monitor"], ...],
                                     ("block", "monitor")), "block")
    limit = VelocityLimit(per, int(count), _duration(s.path("limit"), window), digits,
                          action, hold, _intents(s, frozenset(INTENTS)))
    s.finish()
    return limit


def _safe(s: Section) -> SafeList:
    s.seen.add("safe")
    raw = s.raw.get("safe", [])
    if not isinstance(raw, list):
        raise ConfigError(s.path("safe"), raw, "expected a list of numbers and prefixes")
    exact: set[str] = set()
    prefixes: set[str] = set()
    for entry in raw:
        text = entry if isinstance(entry, str) else ""
        digits = text[1:].removesuffix("*")
        if not text.startswith("+") or not digits.isdigit() or not digits.isascii() \
                or not 1 <= len(digits) <= 15:
            raise ConfigError(s.path("safe"), entry, "expected E.164 numbers or prefixes "
                              "('+14155550100', '+1415*')")
        (prefixes if text.endswith("*") else exact).add(text.removesuffix("*"))
    return SafeList(frozenset(exact), tuple(sorted(prefixes, key=len, reverse=True)))


def _modes(s: Section) -> frozenset[RuleKind]:
    modes = s.section("mode")
    monitored = {kind for kind in RULE_KINDS
                 if modes.choice(kind, ("enforce", "monitor"), "enforce") == "monitor"}
    modes.finish()
    return frozenset(monitored)


def _scope(s: Section) -> ScopeRules:
    base = _rules(s)
    per_channel: dict[str, ChannelRules] = {}
    for channel in CHANNELS:
        overrides = _rules(c := s.section(channel))
        c.finish()
        merged = {**base, **overrides}
        types = merged.get("number_types", _UNSET)
        if channel == "voice" and s.key == "policy.global" and types is _UNSET:
            types = DEFAULT_VOICE_TYPES
        per_channel[channel] = ChannelRules(
            cast(CountryRule | None, merged.get("countries")),
            cast(TypeRule | None, None if types is _UNSET else types),
            cast(QuietRule | None, merged.get("quiet_hours")),
            cast(tuple[VelocityLimit, ...], merged.get("velocity") or ()))
    rules = ScopeRules(per_channel["sms"], per_channel["voice"], _safe(s), _modes(s))
    s.finish()
    return rules


def read_policy(s: Section) -> Policy:
    """`policy: {<scope>: ...}`; with no `global` scope given, the shipped default."""
    scopes: dict[str, ScopeRules] = {}
    for scope in list(s.raw):
        if not isinstance(scope, str) or not is_valid_scope(scope):
            raise ConfigError(s.path(str(scope)), scope, "expected a scope: 'global' or "
                              "'kind:id'")
        scopes[scope] = _scope(s.section(scope))
    s.finish()
    if "global" not in scopes:
        scopes["global"] = ScopeRules(voice=ChannelRules(number_types=DEFAULT_VOICE_TYPES))
    referenced = frozenset(name for rules in scopes.values()
                           for channel in (rules.sms, rules.voice)
                           if channel.number_types is not None
                           for name in channel.number_types.lists)
    return Policy(FrozenMap(scopes), referenced)


def policy_from_json(text: str) -> Policy:
    """A policy document as the admin API stores it (the `policy:` section as JSON);
    ConfigError naming the key when it is not a valid one."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ConfigError("policy", text[:80], f"not JSON: {exc}") from exc
    return read_policy(Section("policy", raw))


DEFAULT_POLICY = read_policy(Section("policy", None))

"""Policy beyond lists, compiled and pure: countries, number types, quiet hours and a
safe list, per scope and channel.

Precedence, within one scope (the first that speaks decides):

1. a block entry or opt-out (lists; the most specific entry wins, as `policy.decide`);
2. an allow entry: the number is exempt from this scope's rules;
3. the safe list: exempt from this scope's rules (never from a block entry);
4. velocity limits (velocity.py: counted in Redis beside the lookup);
5. quiet hours, for the intents they apply to;
6. number type;
7. country;
8. the default: allowed.

Across scopes a number is blocked when any scope blocks it (the first such scope, in
the request's scope order, names the rule). A rule whose action is `monitor`, or whose
kind the scope runs in monitor mode, never decides: its hit is recorded and evaluation
goes on, so a stricter rule below it still blocks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from gatekeeper.facts import describe
from gatekeeper.frozen import FrozenMap
from gatekeeper.quiet import QuietHours, check_quiet
from gatekeeper.types import CHANNELS, Channel

if TYPE_CHECKING:  # velocity.py and policy.py import this module
    from gatekeeper.policy import Decision
    from gatekeeper.velocity import Counting

Action = Literal["allow", "block", "monitor"]
ACTIONS: tuple[Action, ...] = ("allow", "block", "monitor")
Intent = Literal["otp", "transactional", "marketing"]
INTENTS: tuple[Intent, ...] = ("otp", "transactional", "marketing")
RuleKind = Literal["velocity", "quiet_hours", "number_type", "country"]
RULE_KINDS: tuple[RuleKind, ...] = ("velocity", "quiet_hours", "number_type", "country")
VelocityPer = Literal["number", "block", "country"]
VELOCITY_PERS: tuple[VelocityPer, ...] = ("number", "block", "country")
Outcome = Literal["block", "monitor", "allow", "exempt", "not_applied"]
"""`not_applied`: the rule does not apply to this intent or channel, or is not set."""
Decider = Literal["list", "allow_entry", "safe", "velocity", "quiet_hours", "number_type",
                  "country", "default"]

@dataclass(frozen=True, slots=True)
class CountryRule:
    """Actions by ISO region, and the action for every other region (and unknown ones)."""

    default: Action = "allow"
    regions: Mapping[str, Action] = field(default_factory=lambda: FrozenMap({}))
    intents: frozenset[Intent] = frozenset(INTENTS)


@dataclass(frozen=True, slots=True)
class TypeRule:
    """Actions by number type; a type not named is allowed. `lists`: actions for numbers
    on another scope's block list (a prefix list of high-risk ranges, imported like any
    list, `risk:irsf` say), looked up in the same round trip."""

    types: Mapping[str, Action] = field(default_factory=lambda: FrozenMap({}))
    intents: frozenset[Intent] = frozenset(INTENTS)
    lists: Mapping[str, Action] = field(default_factory=lambda: FrozenMap({}))


@dataclass(frozen=True, slots=True)
class QuietRule:
    """Quiet hours in the recipient's local time, for some intents."""

    hours: QuietHours
    action: Literal["block", "monitor"] = "block"
    intents: frozenset[Intent] = frozenset({"marketing"})


@dataclass(frozen=True, slots=True)
class VelocityLimit:
    """At most `count` forwarded sends per `window` seconds to one subject: a number, a
    number block (its first `digits` E.164 digits), or a country. `block_for`: once the
    limit is reached, every send to the subject is refused this long (a pumping guard)."""

    per: VelocityPer
    count: int
    window: float
    digits: int = 0
    action: Literal["block", "monitor"] = "block"
    block_for: float = 0.0
    intents: frozenset[Intent] = frozenset(INTENTS)
    spec: str = field(init=False, compare=False)
    """The limit's name in key names: a changed limit counts afresh."""
    argv: str = field(init=False, compare=False)
    """Its script arguments but the last (limit, window ms, hold ms) in RESP."""

    def __post_init__(self) -> None:
        hold = f":h{round(self.block_for)}" if self.block_for else ""
        digits = str(self.digits) if self.per == "block" else ""
        object.__setattr__(self, "spec",
                           f"{self.per}{digits}:{self.count}/{round(self.window)}{hold}")
        args = (str(self.count), str(round(self.window * 1000)),
                str(round(self.block_for * 1000)))
        object.__setattr__(self, "argv", "".join(f"${len(a)}\r\n{a}\r\n" for a in args))

    def subject(self, number: str) -> str | None:
        """What the limit counts for `number` (E.164); None: nothing (a country limit on
        a number of no known region)."""
        if self.per == "number":
            return number[1:]
        if self.per == "block":
            return number[1:1 + self.digits]
        return describe(number).region


@dataclass(frozen=True, slots=True)
class ChannelRules:
    """The rules of one scope on one channel."""

    countries: CountryRule | None = None
    number_types: TypeRule | None = None
    quiet_hours: QuietRule | None = None
    velocity: tuple[VelocityLimit, ...] = ()


@dataclass(frozen=True, slots=True)
class SafeList:
    """Numbers and prefixes exempt from the rules (never from a list entry)."""

    exact: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()  # without the `*`, longest first

    def covering(self, number: str) -> str | None:
        """The entry covering `number`, as written (`+1415*`), or None."""
        if number in self.exact:
            return number
        return next((f"{p}*" for p in self.prefixes if number.startswith(p)), None)


@dataclass(frozen=True, slots=True)
class ScopeRules:
    """One scope's rules per channel, its safe list, and the kinds it only monitors."""

    sms: ChannelRules = ChannelRules()
    voice: ChannelRules = ChannelRules()
    safe: SafeList = SafeList()
    monitor: frozenset[RuleKind] = frozenset()

    def on(self, channel: Channel) -> ChannelRules:
        return self.sms if channel == "sms" else self.voice


# Verdicts (and velocity plans) a policy keeps, dropped whole when full: about 1.3 KB
# a number for both (measured with tracemalloc), 21 MB per process when full.
MEMO_SIZE = 16_384


class Memo:
    """A policy's cache of verdicts and velocity plans (velocity.py), by number and
    request shape. Never pickled: the screening helper keeps its own."""

    __slots__ = ("counting", "decisions", "plans", "scoped", "verdicts")

    def __init__(self) -> None:
        # Each verdict with the minutes it holds for, from one (included) to the other.
        self.verdicts: dict[tuple[object, ...], tuple[float, float, Verdict]] = {}
        self.plans: dict[tuple[object, ...], tuple[Counting, ...]] = {}
        # The decision of an unlisted number the rules only monitor, by number, with
        # the verdict it was made from (screening._judged): kept as long as its verdict.
        self.decisions: dict[str, tuple[Verdict, Decision]] = {}
        # Whether some of these scopes has velocity limits on this channel.
        self.counting: dict[tuple[tuple[str, ...], str], bool] = {}
        # Whether some of these scopes has rules.
        self.scoped: dict[tuple[str, ...], bool] = {}

    def __reduce__(self) -> tuple[type[Memo], tuple[()]]:
        return (Memo, ())


@dataclass(frozen=True, slots=True)
class Policy:
    """Every scope's rules; a scope not named has none. `referenced`: the scopes whose
    block lists number-type rules name (looked up beside the request's)."""

    scopes: Mapping[str, ScopeRules] = field(default_factory=lambda: FrozenMap({}))
    referenced: frozenset[str] = frozenset()
    memo: Memo = field(default_factory=Memo, init=False, compare=False, repr=False)

    @property
    def empty(self) -> bool:
        return not self.scopes

    @property
    def quiet_hours(self) -> bool:
        """Whether some scope has quiet hours (which read the geocoder's data)."""
        return any(rules.sms.quiet_hours is not None or rules.voice.quiet_hours is not None
                   for rules in self.scopes.values())


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule's word on one number in one scope (and channel)."""

    kind: Decider
    scope: str
    outcome: Outcome
    detail: str = ""
    channel: Channel | None = None
    retry_after: float | None = None  # seconds until the next allowed instant

    @property
    def decides(self) -> bool:
        return self.outcome in ("block", "exempt")


@dataclass(frozen=True, slots=True)
class Verdict:
    """The rules' outcome for one number: what blocked it (None: nothing), the monitor
    hits, and every rule evaluated (for explanations)."""

    blocked_by: RuleResult | None
    monitored: tuple[RuleResult, ...]
    evaluated: tuple[RuleResult, ...]


def _result(kind: RuleKind, action: Action, scope: str, channel: Channel, detail: str,
            monitor: frozenset[RuleKind], retry_after: float | None = None) -> RuleResult:
    outcome: Outcome = action
    if action == "block" and kind in monitor:
        outcome = "monitor"
    return RuleResult(kind, scope, outcome, detail, channel,
                      retry_after if outcome == "block" else None)


def _channel_rules(number: str, scope: str, channel: Channel, rules: ChannelRules,
                   monitor: frozenset[RuleKind], intent: Intent, at: float,
                   listed: frozenset[str], steady: list[float] | None = None
                   ) -> list[RuleResult]:
    """Quiet hours, number type and country, in that order, for one channel; each
    quiet-hours result's `steady_until` (quiet.py) is added to `steady`."""
    out: list[RuleResult] = []
    quiet = rules.quiet_hours
    if quiet is not None and intent in quiet.intents:
        # At its whole second: a datetime rounds to the microsecond, and 0.9999999 s
        # into a minute's last second would be judged as the next minute (`judge` keeps
        # the verdict from `at`'s own minute).
        verdict = check_quiet(number, datetime.fromtimestamp(at // 1, UTC), quiet.hours)
        if steady is not None:
            steady.append(verdict.steady_until)
        if verdict.quiet:
            wait = None if verdict.next_allowed is None else \
                max(0.0, verdict.next_allowed.timestamp() - at)
            result = _result("quiet_hours", quiet.action, scope, channel,
                             f"{verdict.place or '?'} {verdict.zone or ''}".strip(),
                             monitor, wait)
            if result.outcome == "block" and verdict.local_time is not None:
                # A block names the local time it was refused at (for its reply and
                # attempt record); a monitor hit does not, so that it holds, and is
                # kept, until the zone opens (`judge`).
                result = replace(result, detail=result.detail
                                 + verdict.local_time.strftime(" at %H:%M"))
            out.append(result)
        else:
            out.append(RuleResult("quiet_hours", scope, "allow", verdict.place or "",
                                  channel))
    elif quiet is not None:
        out.append(RuleResult("quiet_hours", scope, "not_applied", f"intent {intent}",
                              channel))
    types = rules.number_types
    countries = rules.countries
    if (types is None or intent not in types.intents) and \
            (countries is None or intent not in countries.intents):
        return out  # no metadata needed: a number's first parse costs ~120 us
    known = describe(number)
    if types is not None and intent in types.intents:
        action = types.types.get(known.type, "allow")
        out.append(_result("number_type", action, scope, channel, known.type, monitor))
        for named, action in types.lists.items():
            if named in listed and out[-1].outcome != "block":
                out.append(_result("number_type", action, scope, channel,
                                   f"listed in {named}", monitor))
    if countries is not None and intent in countries.intents:
        region = known.region or "unknown"
        action = countries.regions.get(region, countries.default) \
            if known.region else countries.default
        out.append(_result("country", action, scope, channel, region, monitor))
    return out


def evaluate(number: str, scope: str, rules: ScopeRules, channel: Channel | None,
             intent: Intent, at: float, listed: frozenset[str] = frozenset(),
             steady: list[float] | None = None) -> list[RuleResult]:
    """Every rule of one scope for `number` (E.164) in precedence order, stopping at the
    first that decides. `channel` None (a scanned write): both channels' rules.
    `listed`: referenced scopes whose block list holds the number; `steady` collects
    until when the time-dependent results hold."""
    safe = rules.safe.covering(number)
    if safe is not None:
        return [RuleResult("safe", scope, "exempt", safe)]
    out: list[RuleResult] = []
    for one in (CHANNELS if channel is None else (channel,)):
        found = _channel_rules(number, scope, one, rules.on(one), rules.monitor, intent, at,
                               listed, steady)
        for result in found:
            out.append(result)
            if result.outcome == "block":
                return out
    return out


def judge(number: str, scopes: tuple[str, ...] | list[str], policy: Policy,
          channel: Channel | None, intent: Intent, at: float,
          exempt: frozenset[str] = frozenset(), listed: frozenset[str] = frozenset()
          ) -> Verdict:
    """The rules' verdict for a number that no list entry blocked. `exempt`: scopes
    where an allow entry won (their rules are not applied); `listed`: referenced
    scopes (`Policy.referenced`) whose block list holds the number.

    Kept in the policy's memo from the minute it was judged in until its quiet-hours
    results may change (a zone of the number opens or closes: quiet.py's
    `steady_until`), which is hours at a time; the other rules do not depend on the
    time. Judged again each minute, a pool of numbers was judged again whenever a
    minute began. A quiet-hours block is not kept: its `retry_after` counts the
    seconds."""
    shape = (number, tuple(scopes), channel, intent, exempt, listed)
    minute = at // 60
    verdicts = policy.memo.verdicts
    kept = verdicts.get(shape)
    if kept is not None and kept[0] <= minute < kept[1]:
        return kept[2]
    steady: list[float] = []
    verdict = _judge(number, shape[1], policy, channel, intent, at, exempt, listed, steady)
    if verdict.blocked_by is None or verdict.blocked_by.retry_after is None:
        if len(verdicts) >= MEMO_SIZE:
            verdicts.clear()
        verdicts[shape] = (minute, min(steady, default=math.inf) / 60, verdict)
    return verdict


def _judge(number: str, scopes: tuple[str, ...], policy: Policy, channel: Channel | None,
           intent: Intent, at: float, exempt: frozenset[str], listed: frozenset[str],
           steady: list[float] | None = None) -> Verdict:
    evaluated: list[RuleResult] = []
    blocked: RuleResult | None = None
    for scope in scopes:
        rules = policy.scopes.get(scope)
        if rules is None:
            continue
        if scope in exempt:
            evaluated.append(RuleResult("allow_entry", scope, "exempt"))
            continue
        for result in evaluate(number, scope, rules, channel, intent, at, listed, steady):
            evaluated.append(result)
            if blocked is None and result.outcome == "block":
                blocked = result
    monitored = tuple(r for r in evaluated if r.outcome == "monitor")
    return Verdict(blocked, monitored, tuple(evaluated))


def blocked_because(rule: RuleResult | None) -> str:
    """Why a number was blocked, for a reply (names no number)."""
    if rule is None or rule.kind not in RULE_KINDS:
        return "the number is on a block list"
    if rule.kind == "velocity":
        return "too many sends to this destination: a velocity limit was reached"
    if rule.kind == "country":
        return f"sending to region {rule.detail} is not permitted by policy"
    if rule.kind == "number_type":
        kind = rule.detail.replace("_", " ")
        return f"{kind} numbers are not permitted by policy on {rule.channel or 'any channel'}"
    return "it is within quiet hours in the recipient's local time"

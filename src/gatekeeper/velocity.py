"""Velocity limits in a screening (pure): which of a request's numbers are counted
against which limits (`plan`), and what the counts say (`weigh`). The counting itself
is the store's (store/velocity.py), in the same write as the lookup.

A number is counted once per request, by its first reading, in each scope whose
limits apply to its channel and intent and whose safe list does not cover it; a number
another rule already blocks is only looked at (the limit may still name the decision,
velocity ranking above quiet hours, type and country). Sends to a number that is then
not forwarded (a block entry, an allow entry exempting the scope, or the whole request
refused) are taken back. Scanned writes (no known channel) are not counted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from gatekeeper.policy import Match
from gatekeeper.rules import (
    MEMO_SIZE,
    Intent,
    Policy,
    RuleResult,
    VelocityLimit,
    Verdict,
    judge,
)
from gatekeeper.types import Channel


@dataclass(frozen=True, slots=True)
class Counting:
    """One number's velocity limits in one scope: counted (`count`) or only looked at
    (a number another rule already blocks: the limit may still name the decision)."""

    number: str
    scope: str
    channel: Channel
    limits: tuple[tuple[VelocityLimit, str], ...]  # each limit with its subject
    count: bool = True
    monitored: frozenset[int] = frozenset()  # limits (indexes) in monitor only


class Counted(NamedTuple):
    """What counting one number in one scope gave: `over` the limit that refused it
    (None: under every enforced limit), `held` when a pumping guard did, `wait` seconds
    until it may pass, `seen` a monitored limit reached; `counters` where the send was
    counted (with `member`), to take back. A named tuple: one is made per counted send,
    and a frozen dataclass of its fields took about 3.5 times as long to make."""

    counting: Counting
    over: VelocityLimit | None
    held: bool
    wait: float
    seen: VelocityLimit | None
    counters: tuple[str, ...]
    member: str
    guard_started: bool = False
    """The limit was reached by this send and its pumping guard's hold starts now."""

    @property
    def subject(self) -> str:
        """What the limit that refused it counts (its block's digits, a region...)."""
        for limit, subject in self.counting.limits:
            if limit is self.over:
                return subject
        return ""


class Count(Protocol):
    """The store's velocity counting (store/velocity.py)."""

    def count_sends(self, countings: Sequence[Counting]) -> Awaitable[list[Counted]]:
        """Count (or look at) `countings` alone."""
        ...

    async def lookup_counting(self, numbers: Sequence[str], scopes: Sequence[str],
                              channel: Channel, countings: Sequence[Counting],
                              own_scopes: int = 0
                              ) -> tuple[dict[str, list[Match]], list[Counted]]:
        """Look `numbers` up and count `countings`, in one script call; not counting
        the sends of one number the lists of one of the first `own_scopes` scopes
        block."""
        ...


def plan(keys: dict[str, bool], scopes: Sequence[str], policy: Policy,
         channel: Channel | None, intent: Intent, at: float,
         judged: dict[str, Verdict] | None = None) -> Sequence[Counting]:
    """The countings of a screening; `keys`: each reading, and whether it is its
    destination's first (the one counted). The other rules' verdicts are left in
    `judged` (the screening reuses them)."""
    if channel is None:
        return []
    scopes = tuple(scopes)
    memo = policy.memo
    counting = memo.counting.get((scopes, channel))
    if counting is None:
        counting = memo.counting[scopes, channel] = any(
            (rules := policy.scopes.get(scope)) is not None and rules.on(channel).velocity
            for scope in scopes)
        if len(memo.counting) > MEMO_SIZE:
            memo.counting.clear()
    if not counting:
        return []  # nothing to count: the screening judges as it decides
    plans = memo.plans
    out: list[Counting] = []
    for key, first in keys.items():
        verdict = judge(key, scopes, policy, channel, intent, at)
        if judged is not None:
            judged[key] = verdict
        free = first and verdict.blocked_by is None
        # Kept in the policy's memo: a number's countings depend on nothing else.
        shape = (key, scopes, channel, intent, free)
        countings = plans.get(shape)
        if countings is None:
            countings = _countings(key, scopes, policy, channel, intent, free)
            if len(plans) >= MEMO_SIZE:
                plans.clear()
            plans[shape] = countings
        if len(keys) == 1:
            # The kept tuple itself: the store keeps its encoding by its identity.
            return countings
        out += countings
    return out


def plan_one(key: str, scopes: Sequence[str], policy: Policy, channel: Channel,
             intent: Intent, at: float) -> tuple[Verdict, Sequence[Counting]]:
    """`plan` of a screening with one reading (most requests): its verdict from the
    other rules, and its countings (the kept tuple). The plan is looked for first: a
    kept one means its scopes count on this channel."""
    scopes = tuple(scopes)
    verdict = judge(key, scopes, policy, channel, intent, at)
    plans = policy.memo.plans
    countings = plans.get((key, scopes, channel, intent, verdict.blocked_by is None))
    if countings is not None:
        return verdict, countings
    if policy.memo.counting.get((scopes, channel)) is False:
        return verdict, ()  # no velocity limit here (known): nothing planned
    return verdict, plan({key: True}, scopes, policy, channel, intent, at)


def _countings(key: str, scopes: tuple[str, ...], policy: Policy, channel: Channel,
               intent: Intent, free: bool) -> tuple[Counting, ...]:
    """One number's countings, in each scope whose limits apply to it."""
    out: list[Counting] = []
    for scope in scopes:
        rules = policy.scopes.get(scope)
        if rules is None or not rules.on(channel).velocity or \
                rules.safe.covering(key) is not None:
            continue
        limits = [(limit, subject) for limit in rules.on(channel).velocity
                  if intent in limit.intents
                  and (subject := limit.subject(key)) is not None]
        if not limits:
            continue
        monitored = frozenset(i for i, (limit, _) in enumerate(limits)
                              if limit.action == "monitor" or "velocity" in rules.monitor)
        out.append(Counting(key, scope, channel, tuple(limits), free, monitored))
    return tuple(out)


def _named(limit: VelocityLimit) -> str:
    digits = f" {limit.digits} digits" if limit.per == "block" else ""
    return f"{limit.per}{digits}: {limit.count} per {round(limit.window)}s"


def weigh(counted: Sequence[Counted], exempt: frozenset[str]
          ) -> tuple[RuleResult | None, tuple[RuleResult, ...]]:
    """For one number: the velocity result that blocks it (the first scope's, in scope
    order; None: none) and the monitored limits reached. `exempt`: scopes whose allow
    entry lifts their rules."""
    blocked: RuleResult | None = None
    seen: list[RuleResult] = []
    for one in counted:
        scope, channel = one.counting.scope, one.counting.channel
        if scope in exempt:
            continue
        if one.over is not None and blocked is None:
            held = " (pumping guard)" if one.held else ""
            blocked = RuleResult("velocity", scope, "block", _named(one.over) + held,
                                 channel, max(one.wait, 1.0))
        if one.seen is not None:
            seen.append(RuleResult("velocity", scope, "monitor", _named(one.seen),
                                   channel))
    return blocked, tuple(seen)

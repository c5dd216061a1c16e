"""Deciding a request's destinations against the lists: every reading of each one,
in bounded slices, with store faults turned into one clear outcome.

A destination can read as several numbers (`numbers.Destination.keys`: a SIP user part
with and without a country code, `00` as `+`, the digits of a number phonenumbers calls
impossible); it is blocked when any reading is. Large requests are parsed, looked up and
decided in slices, yielding between them, so one big batch neither holds up other
requests nor makes one long Redis call; a store fault during a sliced lookup never
fails open (only a single-slice lookup may, with `store.on_error: open`), since a
lookup slowed by the request's own size is not a store fault.

`screen` is pure but for its `lookup`: it runs on the event loop (`Screener`) and in
the screening helper process (`bigscreen`) alike.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from gatekeeper.numbers import Destination, parse_destination
from gatekeeper.policy import Decision, Match, decide
from gatekeeper.rules import MEMO_SIZE, Intent, Policy, Verdict, judge
from gatekeeper.store import CountsInDoubt, StoreUnavailable
from gatekeeper.types import CHANNELS, Channel
from gatekeeper.velocity import Count, Counted, Counting, plan, plan_one, weigh

# Destinations parsed between two yields to the event loop.
PARSE_SLICE = 256
# Numbers looked up in one Redis call (each brings up to ~30 candidate members). Also
# the most numbers a request may have for a store fault to fail open, whatever slices
# it is actually looked up in.
LOOKUP_SLICE = 128
# Destinations decided between two yields (~3 us each).
DECIDE_SLICE = 1024
_NONE: frozenset[str] = frozenset()

# `Store.lookup`: every match of each number in the scopes, on a channel (None: both).
Lookup = Callable[[Sequence[str], Sequence[str], Channel | None],
                  Awaitable[dict[str, list[Match]]]]


@dataclass(frozen=True, slots=True)
class Screened:
    """Each distinct raw destination's reading and decision, or the store fault."""

    parsed: dict[str, Destination]
    decisions: dict[str, Decision]       # by raw destination; absent: nothing to look up
    store_failed: bool = False
    fail_open: bool = False              # the fault may be forwarded (`on_error: open`)
    error: str = ""                      # the store fault, for the log
    counted: tuple[Counted, ...] = ()    # velocity counts standing (taken back if the
    uncount: tuple[Counted, ...] = ()    # request is refused after all); to take back
    unsent: tuple[Counted, ...] = ()     # of blocked destinations (see `_settled`)
    guards: tuple[Counted, ...] = ()     # pumping guards this screening started

    @property
    def blocked(self) -> dict[str, Decision]:
        """Raw destinations that are blocked, with the decision that blocked them."""
        return {raw: d for raw, d in self.decisions.items() if d.verdict == "blocked"}


async def parse_all(raws: Sequence[str], region: str | None, msisdn: bool
                    ) -> dict[str, Destination]:
    """Parse distinct raw destinations, yielding between slices."""
    parsed: dict[str, Destination] = {}
    for start in range(0, len(raws), PARSE_SLICE):
        if start:
            await asyncio.sleep(0)
        for raw in raws[start:start + PARSE_SLICE]:
            parsed[raw] = parse_destination(raw, region, msisdn)
    return parsed


def _combine(decisions: list[Decision]) -> Decision:
    """One destination's decision from its readings' decisions: blocked if any is."""
    return next((d for d in decisions if d.verdict == "blocked"), decisions[0])


async def _lookup_all(lookup: Lookup, keys: list[str], scopes: Sequence[str],
                      channel: Channel | None, size: int) -> dict[str, list[Match]]:
    """Every match of every key, `size` keys per call; raises StoreUnavailable.

    `channel` None: entries limited to either channel count (a send whose channel is not
    known, such as a scanned write): one call per channel, pipelined.
    """
    found: dict[str, list[Match]] = {k: [] for k in keys}
    for start in range(0, len(keys), size):
        part = keys[start:start + size]
        if channel is not None:
            # Awaited directly: a task (as gather makes) would cost a loop turn.
            replies = [await lookup(part, scopes, channel)]
        else:
            replies = await asyncio.gather(*(lookup(part, scopes, c) for c in CHANNELS))
        for reply in replies:
            for number, matches in reply.items():
                known = found[number]
                known.extend(m for m in matches if m not in known)
    return found


@dataclass(frozen=True, slots=True)
class Judging:
    """What the policy rules (rules.py) of a screening need: the policy, the request's
    intent, and the instant it is judged at."""

    policy: Policy
    intent: Intent
    at: float
    count: Count | None = None
    """The store, which counts velocity (None: velocity limits are not counted)."""
    forwards_blocked: bool = False
    """Blocked destinations are forwarded all the same (an upstream that only
    monitors), and so counted."""


def _judged(decision: Decision, scopes: Sequence[str], channel: Channel | None,
            judging: Judging, counted: Sequence[Counted] = (),
            known: Verdict | None = None, listed: frozenset[str] = frozenset()
            ) -> Decision:
    """A list decision with the policy rules applied (a block entry already decided);
    `counted`: the number's velocity counts, which rank above the other rules; `known`:
    the other rules' verdict without exemptions, if already judged; `listed`: the
    referenced scopes whose block list holds the number."""
    if decision.verdict == "blocked":
        return decision
    exempt = frozenset(m.scope for m in decision.matched if m.list == "allow") \
        if decision.matched else _NONE
    verdict = known if known is not None and not exempt and not listed else judge(
        decision.number, tuple(scopes), judging.policy, channel, judging.intent,
        judging.at, exempt, listed)
    # One send counted under every limit (most requests) needs no weighing.
    fast, slow = weigh(counted, exempt) if counted and (
        len(counted) > 1 or counted[0].over is not None or counted[0].seen is not None
    ) else (None, ())
    blocked_by = fast or verdict.blocked_by
    monitored = (*slow, *verdict.monitored) if slow else verdict.monitored
    if blocked_by is None and not monitored:
        return decision
    if blocked_by is None:
        if slow or decision.matched:
            return Decision(decision.number, decision.verdict, decision.matched,
                            monitored=monitored)
        # An unlisted number the rules only monitor (most sends at night, when quiet
        # hours monitor): its decision is kept while its verdict is (until the
        # number's zone opens).
        kept = judging.policy.memo.decisions
        hit = kept.get(decision.number)
        if hit is not None and hit[0] is verdict:
            return hit[1]
        made = Decision(decision.number, decision.verdict, monitored=monitored)
        if len(kept) >= MEMO_SIZE:
            kept.clear()
        kept[decision.number] = (verdict, made)
        return made
    return Decision(decision.number, "blocked", decision.matched, blocked_by, monitored)


def _countings(judging: Judging | None, parsed: dict[str, Destination],
               keys: list[str], scopes: Sequence[str], channel: Channel | None,
               judged: dict[str, Verdict]) -> Sequence[Counting]:
    """What the request's sends count against velocity limits (the other rules'
    verdicts left in `judged`)."""
    if judging is None or judging.count is None:
        return []
    if len(keys) == 1 and channel is not None:  # most requests: one reading
        judged[keys[0]], countings = plan_one(keys[0], scopes, judging.policy, channel,
                                              judging.intent, judging.at)
        return countings
    first = {d.keys[0] for d in parsed.values() if d.keys}
    firsts = {k: k in first for k in keys}
    return plan(firsts, scopes, judging.policy, channel, judging.intent, judging.at,
                judged)


async def screen(lookup: Lookup, parsed: dict[str, Destination], scopes: Sequence[str],
                 channel: Channel | None, *, fail_closed: bool,
                 lookup_slice: int = LOOKUP_SLICE, judging: Judging | None = None
                 ) -> Screened:
    """Decide every reading of every parsed destination (lists, then the policy rules
    of `judging`); a store fault comes back as `store_failed` (with `error`), never
    raised."""
    keys = list(dict.fromkeys(k for d in parsed.values() for k in d.keys))
    if not keys:
        return Screened(parsed, {})
    judged: dict[str, Verdict] = {}
    countings = _countings(judging, parsed, keys, scopes, channel, judged)
    counts: list[Counted] = []
    # Scopes whose block lists rules name (high-risk ranges), looked up beside these.
    extra = () if judging is None or not judging.policy.referenced else tuple(
        sorted(judging.policy.referenced.difference(scopes)))
    probed = (*scopes, *extra)
    try:
        if not countings or judging is None or judging.count is None:
            matches = await _lookup_all(lookup, keys, probed, channel, lookup_slice)
        elif channel is not None and len(keys) <= lookup_slice and \
                len(countings) <= lookup_slice:
            # The common case: one script call looks the numbers up and counts them.
            try:
                hits, counts = await judging.count.lookup_counting(
                    keys, probed, channel, countings,
                    0 if judging.forwards_blocked else len(scopes))
            except CountsInDoubt as exc:
                counts = list(exc.counted)  # maybe counted: taken back (below)
                raise
            matches = hits  # without repeats, as _lookup_all's
        else:
            # The velocity counts leave in the same write as the lookup (one round
            # trip): they are queued on the pipe before the lookup is, in the same
            # loop turn, and the pipe writes once per turn.
            counting = _count_all(judging.count, countings, lookup_slice)
            try:
                matches = await _lookup_all(lookup, keys, probed, channel, lookup_slice)
            except BaseException:
                # Its sends are taken back if they were counted (see below).
                with contextlib.suppress(Exception):
                    counts = await counting
                raise
            counts = await counting
    except StoreUnavailable as exc:
        return Screened(parsed, {}, store_failed=True,
                        fail_open=not fail_closed and len(keys) <= LOOKUP_SLICE,
                        error=str(exc), uncount=tuple(c for c in counts if c.counters))
    counted_by: dict[str, list[Counted]] = {}
    if len(counts) == 1:  # most requests: one number counted in one scope
        counted_by[counts[0].counting.number] = counts
    else:
        for one in counts:
            counted_by.setdefault(one.counting.number, []).append(one)
    by_key: dict[str, Decision] = {}
    decisions: dict[str, Decision] = {}
    items = [(raw, d.keys) for raw, d in parsed.items() if d.keys]
    for start in range(0, len(items), DECIDE_SLICE):
        if start:
            await asyncio.sleep(0)
        for raw, readings in items[start:start + DECIDE_SLICE]:
            found = []
            for key in readings:
                decision = by_key.get(key)
                if decision is None:
                    matched = matches[key]
                    # Nothing matched (most numbers): decide's answer, without its work.
                    decision = decide(key, scopes, matched) if matched else \
                        Decision(key, "unlisted")
                    if judging is not None:
                        listed = frozenset(m.scope for m in matched if m.list == "block"
                                           and m.scope in judging.policy.referenced) \
                            if matched else _NONE
                        decision = _judged(decision, scopes, channel, judging,
                                           counted_by.get(key, ()), judged.get(key),
                                           listed)
                    by_key[key] = decision
                found.append(decision)
            decisions[raw] = _combine(found)
    return _screened(parsed, decisions, counts, by_key)


def _count_all(count: Count, countings: Sequence[Counting], size: int
               ) -> Awaitable[list[Counted]]:
    """Every counting, `size` numbers per script call (a large batch never holds Redis
    for long in one call); the first call is queued before this returns, to leave in
    the same write as the lookup started next."""
    first = count.count_sends(countings[:size])
    if len(countings) <= size:
        return first
    return _count_rest(first, count, countings, size)


async def _count_rest(first: Awaitable[list[Counted]], count: Count,
                      countings: Sequence[Counting], size: int) -> list[Counted]:
    out = await first
    for start in range(size, len(countings), size):
        out += await count.count_sends(countings[start:start + size])
    return out


def _screened(parsed: dict[str, Destination], decisions: dict[str, Decision],
              counts: Sequence[Counted], by_key: dict[str, Decision]) -> Screened:
    """The screening's outcome, its velocity counts settled (`_settled`) and the pumping
    guards they started named."""
    if not counts:
        return Screened(parsed, decisions)
    if len(counts) == 1 and len(decisions) == 1:
        # Most requests: one destination, counted in one scope, in no list.
        one = counts[0]
        if one.counters and not one.guard_started and \
                not by_key[one.counting.number].matched:
            (decision,) = decisions.values()
            if decision.verdict == "blocked":
                return Screened(parsed, decisions, unsent=(one,))
            return Screened(parsed, decisions, counted=(one,))
    kept, back, unsent = _settled(counts, parsed, decisions, by_key)
    return Screened(parsed, decisions, counted=kept, uncount=back, unsent=unsent,
                    guards=tuple(c for c in counts if c.guard_started))


def _settled(counts: Sequence[Counted], parsed: dict[str, Destination],
             decisions: dict[str, Decision], by_key: dict[str, Decision]
             ) -> tuple[tuple[Counted, ...], tuple[Counted, ...], tuple[Counted, ...]]:
    """The sends counted: those that stand (their number is forwarded), those to take
    back (an allow entry lifts the scope's limits), and those of blocked destinations
    (taken back unless the upstream only monitors, and forwards them)."""
    counted = [c for c in counts if c.counters]
    if not counted:
        return (), (), ()
    # One destination (most requests): every number counted is one of its readings.
    only = len(decisions) == 1 and next(iter(decisions.values())).verdict == "blocked"
    blocked: set[str] | None = None
    if len(decisions) != 1:
        blocked = {k for raw, d in decisions.items() if d.verdict == "blocked"
                   for k in parsed[raw].keys}
    kept: list[Counted] = []
    back: list[Counted] = []
    unsent: list[Counted] = []
    for one in counted:
        number, scope = one.counting.number, one.counting.scope
        matched = by_key[number].matched
        if matched and any(m.scope == scope and m.list == "allow" for m in matched):
            back.append(one)
        elif only if blocked is None else number in blocked:
            unsent.append(one)
        else:
            kept.append(one)
    return tuple(kept), tuple(back), tuple(unsent)

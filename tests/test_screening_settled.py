"""screening._screened: which velocity counts of a screening stand, are taken back (an
allow entry lifts the scope's limits) or belong to blocked destinations, and which
started a pumping guard; the one-count shortcut answers as the general rule does."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatekeeper.numbers import Destination
from gatekeeper.policy import Decision, Match
from gatekeeper.rules import VelocityLimit
from gatekeeper.screening import _screened
from gatekeeper.types import Verdict
from gatekeeper.velocity import Counted, Counting

LIMIT = VelocityLimit("number", 10, 3600.0)
A, B = "+12125550100", "+12125550101"
ALLOW_G = Match("global", "allow", A[1:])
ALLOW_T = Match("tenant", "allow", A[1:])
BLOCK_T = Match("tenant", "block", A[1:])


def counted(number: str, scope: str = "global", count: bool = True,
            guard: bool = False) -> Counted:
    counting = Counting(number, scope, "sms", ((LIMIT, number[1:]),), count)
    return Counted(counting, LIMIT if guard else None, guard, 3600.0 if guard else 0.0,
                   None, (f"v:{scope}:{number}",) if count and not guard else (),
                   f"m:{number}:{scope}", guard)


def settle(counts: list[Counted], verdicts: dict[str, tuple[Verdict, tuple[Match, ...]]]
           ) -> tuple[tuple[Counted, ...], ...]:
    """_screened over one destination per number in `verdicts`: the counts standing,
    to take back, of blocked destinations, and the guards started."""
    parsed = {n: Destination("phone", n, n, (n,)) for n in verdicts}
    decisions = {n: Decision(n, v, m) for n, (v, m) in verdicts.items()}
    screened = _screened(parsed, decisions, counts, dict(decisions))
    assert screened.decisions == decisions
    return screened.counted, screened.uncount, screened.unsent, screened.guards


ONE, GLOBAL_B = counted(A), counted(B)
TENANT = counted(A, "tenant")
LOOKED = counted(A, count=False)
GUARD = counted(A, guard=True)


@pytest.mark.parametrize(("counts", "verdicts", "expected"), [
    # one destination, one count (the shortcut)
    ([ONE], {A: ("unlisted", ())}, ((ONE,), (), (), ())),
    ([ONE], {A: ("blocked", ())}, ((), (), (ONE,), ())),                 # a rule blocked it
    ([ONE], {A: ("allowed", (ALLOW_G,))}, ((), (ONE,), (), ())),          # its scope's allow
    ([ONE], {A: ("allowed", (ALLOW_T,))}, ((ONE,), (), (), ())),          # another scope's
    ([TENANT], {A: ("blocked", (BLOCK_T,))}, ((), (), (TENANT,), ())),
    ([LOOKED], {A: ("blocked", ())}, ((), (), (), ())),                   # only looked at
    ([], {A: ("unlisted", ())}, ((), (), (), ())),
    # several counts or destinations (the general rule)
    ([ONE, TENANT], {A: ("allowed", (ALLOW_T,))}, ((ONE,), (TENANT,), (), ())),
    ([ONE, GLOBAL_B], {A: ("unlisted", ()), B: ("blocked", ())}, ((ONE,), (), (GLOBAL_B,), ())),
    ([ONE, GLOBAL_B], {A: ("blocked", ()), B: ("unlisted", ())}, ((GLOBAL_B,), (), (ONE,), ())),
    ([GUARD], {A: ("blocked", ())}, ((), (), (), (GUARD,))),          # a guard started
], ids=["forwarded", "rule-blocked", "own-scope-allow", "other-scope-allow",
        "list-blocked", "looked-only", "no-counts", "two-scopes", "two-numbers-b-blocked",
        "two-numbers-a-blocked", "guard-started"])
def test_counts_stand_are_taken_back_or_go_with_a_blocked_destination(
        counts: list[Counted], verdicts: dict[str, tuple[Verdict, tuple[Match, ...]]],
        expected: tuple[tuple[Counted, ...], ...]) -> None:
    assert settle(counts, verdicts) == expected


@given(verdict=st.sampled_from(["unlisted", "allowed", "blocked"]),
       matched=st.lists(st.sampled_from([ALLOW_G, ALLOW_T, BLOCK_T]), max_size=3,
                        unique=True),
       scope=st.sampled_from(["global", "tenant"]), count=st.booleans(),
       guard=st.booleans())
def test_one_count_lands_where_the_general_rule_puts_it(
        verdict: Verdict, matched: list[Match], scope: str, count: bool,
        guard: bool) -> None:
    """Every counted send lands in exactly one place: taken back when an allow entry of
    its own scope matched, else with the blocked sends when its destination is blocked,
    else standing; a send only looked at (or refused) lands nowhere; a guard that
    started is named."""
    one = counted(A, scope, count, guard)
    kept, back, unsent, guards = settle([one], {A: (verdict, tuple(matched))})
    lifted = any(m.scope == scope and m.list == "allow" for m in matched)
    want = ((), (), ()) if not one.counters else ((), (one,), ()) if lifted else \
        ((), (), (one,)) if verdict == "blocked" else ((one,), (), ())
    assert (kept, back, unsent) == want
    assert guards == ((one,) if guard else ())

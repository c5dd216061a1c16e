"""The decision rule (gatekeeper.policy.decide): one table case per line of the rule."""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest

from gatekeeper.policy import Decision, ListName, Match, Verdict, decide

NUMBER = "+33612345678"
G = "global"
T = "tenant:acme"
A = "agent:42"

M = tuple[str, ListName, str]


def m(scope: str, list_name: ListName, entry: str) -> Match:
    """Shorthand for a Match."""
    return Match(scope, list_name, entry)


# (id named after the rule it proves, scopes, matches, verdict, matched, cause)
RULE: list[tuple[str, list[str], list[M], Verdict, list[M], M | None]] = [
    # Within each scope the most specific matching entry wins: exact number ...
    ("most-specific: exact allow beats prefix block",
     [G], [(G, "block", "+33*"), (G, "allow", NUMBER)],
     "allowed", [(G, "allow", NUMBER)], (G, "allow", NUMBER)),
    ("most-specific: exact block beats prefix allow",
     [G], [(G, "allow", "+33*"), (G, "block", NUMBER)],
     "blocked", [(G, "block", NUMBER)], (G, "block", NUMBER)),
    ("most-specific: exact beats a prefix of every digit of the number",
     [G], [(G, "block", NUMBER + "*"), (G, "allow", NUMBER)],
     "allowed", [(G, "allow", NUMBER)], (G, "allow", NUMBER)),
    # ... then longer prefix ...
    ("most-specific: longer prefix allow beats shorter prefix block",
     [G], [(G, "block", "+33*"), (G, "allow", "+336*")],
     "allowed", [(G, "allow", "+336*")], (G, "allow", "+336*")),
    ("most-specific: longer prefix block beats shorter prefix allow",
     [G], [(G, "allow", "+3*"), (G, "block", "+3361*")],
     "blocked", [(G, "block", "+3361*")], (G, "block", "+3361*")),
    # ... then shorter prefix (a lone short prefix still decides).
    ("most-specific: shorter prefix wins when it is the only match",
     [G], [(G, "block", "+3*")],
     "blocked", [(G, "block", "+3*")], (G, "block", "+3*")),
    ("most-specific: order of matches is irrelevant",
     [G], [(G, "allow", NUMBER), (G, "block", "+336*"), (G, "block", "+33*")],
     "allowed", [(G, "allow", NUMBER)], (G, "allow", NUMBER)),
    ("most-specific: three levels, the exact one decides",
     [G], [(G, "block", "+3*"), (G, "allow", "+336*"), (G, "block", NUMBER)],
     "blocked", [(G, "block", NUMBER)], (G, "block", NUMBER)),
    # On a tie between allow and block, block wins.
    ("tie: exact allow and exact block, block wins (allow listed first)",
     [G], [(G, "allow", NUMBER), (G, "block", NUMBER)],
     "blocked", [(G, "block", NUMBER)], (G, "block", NUMBER)),
    ("tie: exact block and exact allow, block wins (block listed first)",
     [G], [(G, "block", NUMBER), (G, "allow", NUMBER)],
     "blocked", [(G, "block", NUMBER)], (G, "block", NUMBER)),
    ("tie: same-length prefixes, block wins",
     [G], [(G, "allow", "+33*"), (G, "block", "+33*")],
     "blocked", [(G, "block", "+33*")], (G, "block", "+33*")),
    ("tie: a tie below the most specific level does not matter",
     [G], [(G, "allow", "+33*"), (G, "block", "+33*"), (G, "allow", "+336*")],
     "allowed", [(G, "allow", "+336*")], (G, "allow", "+336*")),
    # Blocked if any applicable scope resolves to block.
    ("blocked: the only scope resolves to block",
     [T], [(T, "block", NUMBER)],
     "blocked", [(T, "block", NUMBER)], (T, "block", NUMBER)),
    ("blocked: a later scope's block overrides an earlier scope's allow",
     [G, T], [(G, "allow", NUMBER), (T, "block", "+33*")],
     "blocked", [(G, "allow", NUMBER), (T, "block", "+33*")], (T, "block", "+33*")),
    ("blocked: an earlier scope's block overrides a later scope's allow",
     [G, T], [(G, "block", "+33*"), (T, "allow", NUMBER)],
     "blocked", [(G, "block", "+33*"), (T, "allow", NUMBER)], (G, "block", "+33*")),
    ("blocked: specificity does not compete across scopes",
     [T, G], [(T, "allow", NUMBER), (G, "block", "+3*")],
     "blocked", [(T, "allow", NUMBER), (G, "block", "+3*")], (G, "block", "+3*")),
    ("blocked: one blocking scope among several allowing ones",
     [G, T, A], [(G, "allow", "+33*"), (T, "allow", NUMBER), (A, "block", "+336*")],
     "blocked", [(G, "allow", "+33*"), (T, "allow", NUMBER), (A, "block", "+336*")],
     (A, "block", "+336*")),
    # Allowed if some scope resolves to allow and none to block.
    ("allowed: the only scope resolves to allow",
     [A], [(A, "allow", "+33*")],
     "allowed", [(A, "allow", "+33*")], (A, "allow", "+33*")),
    ("allowed: one scope allows, the other has no match",
     [G, T], [(T, "allow", NUMBER)],
     "allowed", [(T, "allow", NUMBER)], (T, "allow", NUMBER)),
    ("allowed: every scope allows",
     [G, T], [(G, "allow", "+33*"), (T, "allow", NUMBER)],
     "allowed", [(G, "allow", "+33*"), (T, "allow", NUMBER)], (G, "allow", "+33*")),
    ("allowed: a block overruled inside its scope does not block",
     [G, T], [(G, "block", "+33*"), (G, "allow", NUMBER), (T, "allow", "+336*")],
     "allowed", [(G, "allow", NUMBER), (T, "allow", "+336*")], (G, "allow", NUMBER)),
    # Otherwise unlisted.
    ("unlisted: no matches at all",
     [G, T], [],
     "unlisted", [], None),
    ("unlisted: no applicable scopes",
     [], [(G, "block", NUMBER), (T, "allow", NUMBER)],
     "unlisted", [], None),
    # Matches in scopes not in `scopes` are ignored.
    ("ignored: a block in a scope that does not apply",
     [G], [(T, "block", NUMBER)],
     "unlisted", [], None),
    ("ignored: a block elsewhere does not override an applicable allow",
     [G], [(G, "allow", "+33*"), (T, "block", NUMBER)],
     "allowed", [(G, "allow", "+33*")], (G, "allow", "+33*")),
    ("ignored: an allow elsewhere does not override an applicable block",
     [T], [(G, "allow", NUMBER), (T, "block", "+3*")],
     "blocked", [(T, "block", "+3*")], (T, "block", "+3*")),
    ("ignored: a more specific entry elsewhere does not take part",
     [G], [(G, "block", "+33*"), (A, "allow", NUMBER)],
     "blocked", [(G, "block", "+33*")], (G, "block", "+33*")),
    # Decision.matched: each scope's winning entry, in scope order.
    ("matched: in scope order, not match order",
     [A, G, T], [(T, "allow", "+33*"), (G, "allow", NUMBER), (A, "allow", "+336*")],
     "allowed", [(A, "allow", "+336*"), (G, "allow", NUMBER), (T, "allow", "+33*")],
     (A, "allow", "+336*")),
    ("matched: scopes without a match are left out",
     [G, T, A], [(A, "block", "+33*"), (G, "block", NUMBER)],
     "blocked", [(G, "block", NUMBER), (A, "block", "+33*")], (G, "block", NUMBER)),
    ("matched: a scope listed twice counts once",
     [G, T, G], [(G, "block", "+33*"), (T, "allow", NUMBER)],
     "blocked", [(G, "block", "+33*"), (T, "allow", NUMBER)], (G, "block", "+33*")),
    # Decision.cause: the first winning block if blocked, the first allow if allowed.
    ("cause: the first winning block in scope order",
     [T, G], [(G, "block", NUMBER), (T, "block", "+33*")],
     "blocked", [(T, "block", "+33*"), (G, "block", NUMBER)], (T, "block", "+33*")),
    ("cause: a block even when an allow wins in an earlier scope",
     [G, T, A], [(G, "allow", NUMBER), (T, "block", "+3*"), (A, "block", NUMBER)],
     "blocked", [(G, "allow", NUMBER), (T, "block", "+3*"), (A, "block", NUMBER)],
     (T, "block", "+3*")),
    ("cause: the first winning allow in scope order",
     [T, A, G], [(G, "allow", NUMBER), (A, "allow", "+33*")],
     "allowed", [(A, "allow", "+33*"), (G, "allow", NUMBER)], (A, "allow", "+33*")),
]


@pytest.mark.parametrize(
    ("scopes", "matches", "verdict", "matched", "cause"),
    [pytest.param(*case[1:], id=case[0]) for case in RULE],
)
def test_decide_rule(
    scopes: list[str], matches: list[M], verdict: Verdict, matched: list[M], cause: M | None
) -> None:
    """decide() gives the verdict, per-scope winners and cause the rule prescribes."""
    decision = decide(NUMBER, scopes, [m(*x) for x in matches])
    assert decision.number == NUMBER
    assert decision.verdict == verdict
    assert decision.matched == tuple(m(*x) for x in matched)
    assert decision.cause == (None if cause is None else m(*cause))


@pytest.mark.parametrize(
    ("entry", "specificity"),
    [
        pytest.param("+3*", 1, id="one-digit-prefix"),
        pytest.param("+33*", 2, id="two-digit-prefix"),
        pytest.param("+12345678901234*", 14, id="fourteen-digit-prefix"),
        pytest.param(NUMBER + "*", 11, id="prefix-as-long-as-the-number"),
        pytest.param(NUMBER, 1000, id="exact"),
        pytest.param("+123456789012345", 1000, id="exact-fifteen-digits"),
    ],
)
def test_match_specificity(entry: str, specificity: int) -> None:
    """Prefixes rank by digit count; exact numbers outrank every prefix."""
    assert m(G, "block", entry).specificity == specificity


def test_decide_accepts_a_one_shot_iterable() -> None:
    """`matches` may be a generator; it is read once and fully."""
    matches = (m(s, "block", "+33*") for s in (G, T))
    decision = decide(NUMBER, [G, T], matches)
    assert decision.matched == (m(G, "block", "+33*"), m(T, "block", "+33*"))


@pytest.mark.parametrize(
    ("verdict", "matched", "cause"),
    [
        pytest.param("blocked", (m(G, "allow", "+33*"), m(T, "block", NUMBER)),
                     m(T, "block", NUMBER), id="blocked-skips-allows"),
        pytest.param("allowed", (m(G, "allow", "+33*"), m(T, "allow", NUMBER)),
                     m(G, "allow", "+33*"), id="allowed-first-allow"),
        pytest.param("unlisted", (), None, id="unlisted-none"),
    ],
)
def test_decision_cause_property(
    verdict: Verdict, matched: tuple[Match, ...], cause: Match | None
) -> None:
    """Decision.cause is derived from verdict and matched alone."""
    assert Decision(NUMBER, verdict, matched).cause == cause


@pytest.mark.parametrize(
    ("obj", "attr"),
    [pytest.param(m(G, "block", "+33*"), "entry", id="match"),
     pytest.param(Decision(NUMBER, "unlisted"), "verdict", id="decision")],
)
def test_policy_values_are_frozen(obj: object, attr: str) -> None:
    """Match and Decision cannot be modified after creation."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, attr, "x")


# --------------------------------------------------------------------------- cross-check

_UNIVERSE = [m(s, lst, e) for s in (G, T, A) for lst in ("block", "allow")
             for e in ("+3*", "+33*", "+336*", NUMBER)]


def _reference(scopes: list[str], matches: list[Match]) -> tuple[Verdict, tuple[Match, ...]]:
    """The rule written out independently: per scope, the top rank, block if any there."""
    winners: list[Match] = []
    for scope in dict.fromkeys(scopes):
        mine = [x for x in matches if x.scope == scope]
        if not mine:
            continue
        def rank(x: Match) -> int:
            return 10**6 if not x.entry.endswith("*") else len(x.entry)
        top = max(rank(x) for x in mine)
        at_top = [x for x in mine if rank(x) == top]
        blocks = [x for x in at_top if x.list == "block"]
        winners.append(blocks[0] if blocks else at_top[0])
    if any(w.list == "block" for w in winners):
        return "blocked", tuple(winners)
    return ("allowed" if winners else "unlisted"), tuple(winners)


@pytest.mark.parametrize("seed", range(5))
def test_decide_agrees_with_reference_on_random_inputs(seed: int) -> None:
    """On many random (scopes, matches) inputs, decide() equals the rule and ignores order."""
    rng = random.Random(seed)
    scope_choices = [list(p) for r in range(4) for p in itertools.permutations((G, T, A), r)]
    for _ in range(400):
        scopes = rng.choice(scope_choices)
        matches = list(dict.fromkeys(rng.sample(_UNIVERSE, rng.randint(0, 8))))
        verdict, winners = _reference(scopes, matches)
        for order in (matches, matches[::-1]):
            decision = decide(NUMBER, scopes, order)
            assert (decision.verdict, decision.matched) == (verdict, winners), (scopes, order)
            if verdict == "blocked":
                assert decision.cause == next(w for w in winners if w.list == "block")
            elif verdict == "allowed":
                assert decision.cause == winners[0]
            else:
                assert decision.cause is None

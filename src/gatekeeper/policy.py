"""The decision rule: pure, no I/O.

Within each applicable scope the most specific matching entry wins (exact number, then
longer prefix, then shorter prefix); on a tie between allow and block, block wins. The
destination is blocked if any scope resolves to block, allowed if some scope resolves to
allow and none to block, otherwise unlisted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gatekeeper.rules import RuleResult
from gatekeeper.types import LISTS, Channel, ListName, Verdict

__all__ = ["LISTS", "Decision", "ListName", "Match", "Verdict", "decide"]

# An exact entry outranks any prefix, however long.
_EXACT = 1_000


@dataclass(frozen=True, slots=True)
class Match:
    """A list entry that matched a number, and where it lives."""

    scope: str
    list: ListName
    entry: str
    channel: Channel | None = None  # None: the entry applies to every channel

    @property
    def specificity(self) -> int:
        """Exact entries rank above prefixes; longer prefixes above shorter ones."""
        if self.entry.endswith("*"):
            return len(self.entry) - 2
        return _EXACT


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict for one number and, per scope that matched, the entry that won there."""

    number: str
    verdict: Verdict
    matched: tuple[Match, ...] = ()
    rule: RuleResult | None = None
    """The policy rule that blocked the number (rules.py), when no list entry did."""
    monitored: tuple[RuleResult, ...] = ()
    """Rules that would have blocked it but only monitor."""

    @property
    def cause(self) -> Match | None:
        """The winning entry that produced the verdict (the first, in scope order); None
        when a policy rule blocked it."""
        if self.rule is not None:
            return None
        wanted: ListName = "block" if self.verdict == "blocked" else "allow"
        return next((m for m in self.matched if m.list == wanted), None)

    @property
    def decider(self) -> str:
        """What decided, for counting: `list`, a rule kind, or the verdict."""
        if self.rule is not None:
            return self.rule.kind
        return "list" if self.matched else "default"


def _winner(candidates: list[Match]) -> Match:
    # max() keeps the first of equals, so sort block ahead of allow to let block win ties.
    ordered = sorted(candidates, key=lambda m: m.list != "block")
    return max(ordered, key=lambda m: m.specificity)


def decide(number: str, scopes: Sequence[str], matches: Iterable[Match]) -> Decision:
    """Apply the rule to the entries that matched `number` in the applicable `scopes`."""
    by_scope: dict[str, list[Match]] = {scope: [] for scope in scopes}
    for match in matches:
        if match.scope in by_scope:
            by_scope[match.scope].append(match)
    winners = tuple(_winner(found) for found in by_scope.values() if found)
    if any(w.list == "block" for w in winners):
        verdict: Verdict = "blocked"
    elif winners:
        verdict = "allowed"
    else:
        verdict = "unlisted"
    return Decision(number, verdict, winners)

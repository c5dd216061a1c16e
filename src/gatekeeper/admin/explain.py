"""Explaining a decision: each scope's winning list entry (who added it, when, why,
until when), then every policy rule evaluated (rules.py) and the one that decided, for
a number, scopes, channel, intent and instant. The admin check endpoint and
`gatekeeper check` both answer with this."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from gatekeeper.numbers import Entry, parse_destination, parse_entry
from gatekeeper.policy import decide
from gatekeeper.quiet import zones_of
from gatekeeper.rules import Intent, Policy, RuleResult, judge
from gatekeeper.store import EntryMeta, ListItem, Store
from gatekeeper.times import iso
from gatekeeper.types import CHANNELS, Channel
from gatekeeper.velocity import plan, weigh


@dataclass(frozen=True, slots=True)
class Asked:
    """The policy to explain with, the send's intent, and `at` as asked: None (now),
    an ISO 8601 instant with its offset, or `HH:MM` in the recipient's local time."""

    policy: Policy
    intent: Intent = "marketing"
    at: str | None = None


def described(meta: EntryMeta | None) -> dict[str, Any]:
    """Who added an entry, when, why and until when (what is known of it)."""
    if meta is None:
        return {}
    row: dict[str, Any] = {"source": meta.source, "added_at": iso(meta.added_at)}
    if meta.added_by:
        row["added_by"] = meta.added_by
    if meta.note:
        row["note"] = meta.note
    if meta.expires_at is not None:
        row["expires_at"] = iso(meta.expires_at)
    return row


def instant(at: str | None, e164: str, now: float | None = None) -> float:
    """The instant `at` names for a number (see `Asked`); ValueError when it names none.
    `HH:MM` is that time today in the number's zone (its first, for a number spanning
    several; UTC when none is known)."""
    now = time.time() if now is None else now
    if not at:
        return now
    if len(at) == 5 and at[2] == ":" and at.replace(":", "").isdigit():
        zones = zones_of(e164)
        zone = ZoneInfo(zones[0]) if zones else UTC
        hour, minute = int(at[:2]), int(at[3:])
        if hour > 23 or minute > 59:
            raise ValueError(f"'at' must be HH:MM (00:00-23:59); got {at!r}.")
        today = datetime.fromtimestamp(now, zone)
        return today.replace(hour=hour, minute=minute, second=0, microsecond=0).timestamp()
    try:
        moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValueError("'at' must be an ISO 8601 instant with its offset "
                         f"(2026-12-03T22:30:00-05:00) or HH:MM; got {at!r}.")
    return moment.timestamp()


def _rule(result: RuleResult) -> dict[str, Any]:
    row: dict[str, Any] = {"rule": result.kind, "scope": result.scope,
                           "outcome": result.outcome}
    if result.channel is not None:
        row["channel"] = result.channel
    if result.detail:
        row["detail"] = result.detail
    if result.retry_after is not None:
        row["retry_after_seconds"] = round(result.retry_after)
    return row


async def explain(store: Store, number: str, scopes: list[str], region: str | None,
                  channel: Channel | None = None, asked: Asked | None = None
                  ) -> dict[str, Any] | None:
    """The decision for a number with its reasons, or None if it is not a number.

    Numbers that are E.164 by syntax but not possible (`+30123456789`) are still checked,
    since such entries can be listed. `asked` None: lists only.
    """
    destination = parse_destination(number, region)
    e164 = destination.e164
    if e164 is None:
        entry = parse_entry(number, region)
        if not isinstance(entry, Entry) or entry.is_prefix:
            return None
        e164 = entry.value
    applicable = list(dict.fromkeys(["global", *scopes]))
    at = instant(asked.at if asked else None, e164)
    extra = sorted(asked.policy.referenced.difference(applicable)) if asked else []
    matches = await store.lookup([e164], [*applicable, *extra], channel)
    decision = decide(e164, applicable, matches[e164])
    listed = frozenset(m.scope for m in matches[e164]
                       if m.list == "block" and asked and m.scope in asked.policy.referenced)
    matched = []
    for m in decision.matched:
        [meta] = await store.metadata(m.list, m.scope, [ListItem(m.entry, m.channel)])
        matched.append({"scope": m.scope, "list": m.list, "entry": m.entry,
                        "channel": m.channel or "both", **described(meta)})
    verdict, rules, decided = decision.verdict, [], None
    if decision.verdict == "blocked":
        cause = decision.cause
        decided = {"rule": "list", "scope": cause.scope if cause else None}
    elif asked is not None:
        exempt = frozenset(m.scope for m in decision.matched if m.list == "allow")
        judged = judge(e164, applicable, asked.policy, channel, asked.intent, at, exempt,
                       listed)
        # Velocity limits are looked at, never counted: a check sends nothing.
        looks = plan({e164: False}, applicable, asked.policy, channel, asked.intent, at)
        fast, slow = weigh(await store.count_sends(looks), exempt) if looks else (None, ())
        if not looks and channel is None and any(
                asked.policy.scopes[s].on(c).velocity for s in applicable
                if s in asked.policy.scopes for c in CHANNELS):
            slow = (RuleResult("velocity", "global", "not_applied",
                               "give a channel to see velocity limits"),)
        rules = [_rule(r) for r in (*(r for r in (fast,) if r), *slow, *judged.evaluated)]
        blocked_by = fast or judged.blocked_by
        if blocked_by is not None:
            verdict, decided = "blocked", _rule(blocked_by)
        else:
            decided = {"rule": "list" if decision.matched else "default"}
    return {
        "number": e164,
        "possible": destination.kind == "phone",
        "decision": verdict,
        # NLPearl shows blacklisted numbers with this label: a number a list entry blocks,
        # not one a policy rule (quiet hours, say) refuses for now.
        "label": "Blacklisted" if verdict == "blocked" and decided is not None
        and decided["rule"] == "list" else None,
        "scopes": applicable,
        "matched": matched,
        **({} if asked is None else {"intent": asked.intent, "at": iso(at), "rules": rules,
                                     "decided_by": decided}),
    }

"""How old a list is, and what that means (pure).

Each list (scope x list) records where it came from and the date its data is as of
(`as_of`, set by the import; the import time when not given). A list is *stale* when
it is older than its `max_age` (the import's, else the config's `lists.<scope>.max_age_days`).
`on_stale` says what a stale list does: `enforce` (keep using it; the default), `warn`
(the same, said louder: a warning at every check), or `closed` (sends whose scopes
include it are refused with 503 `list_stale`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gatekeeper.types import ListName

OnStale = Literal["enforce", "warn", "closed"]
ON_STALE: tuple[OnStale, ...] = ("enforce", "warn", "closed")
State = Literal["fresh", "stale", "unknown"]
DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class ListPolicy:
    """What the config says of one scope's lists."""

    max_age_days: float | None = None
    on_stale: OnStale = "enforce"


@dataclass(frozen=True, slots=True)
class ListSource:
    """What the last import of a list recorded."""

    name: ListName
    scope: str
    origin: str
    as_of: float
    max_age_days: float | None
    loaded_at: float


@dataclass(frozen=True, slots=True)
class Freshness:
    """A list's age against its limit."""

    age_seconds: float | None
    max_age_days: float | None
    state: State
    on_stale: OnStale


def assess(source: ListSource | None, policy: ListPolicy, now: float) -> Freshness:
    """The freshness of a list: unknown without a record or without a limit."""
    if source is None:
        return Freshness(None, policy.max_age_days, "unknown", policy.on_stale)
    age = max(0.0, now - source.as_of)
    limit = source.max_age_days if source.max_age_days is not None else policy.max_age_days
    if limit is None:
        return Freshness(age, None, "unknown", policy.on_stale)
    state: State = "stale" if age > limit * DAY else "fresh"
    return Freshness(age, limit, state, policy.on_stale)

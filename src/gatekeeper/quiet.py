"""Quiet hours: whether an instant falls outside the allowed sending window of a number's place.

Pure: the clock is an argument; nothing is fetched or written. Only the time-zone database is
read (zoneinfo's, and once its zone.tab index for the fallback below).

Configuration: `quiet_config` (the shipped table in `quiet_defaults`, an operator's rows
merged over it, compiled to `QuietHours`).

Decisions: a US state row applies instead of the US row in that state, compiled as its
day-by-day intersection with the US row (the federal rule always applies too). A number in
several zones (toll-free, split area codes) is quiet when quiet in any, and `next_allowed` is
the earliest instant allowed in all. A number with no known zone is read in every zone that
zone.tab lists for its region; with none even so, or with no row for its place, it is not quiet.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.resources
import importlib.util
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal
from zoneinfo import TZPATH, ZoneInfo, ZoneInfoNotFoundError

from gatekeeper.facts import describe, us_state

_UTC: Final = dt.UTC
_DAY: Final = dt.timedelta(days=1)
_HORIZON_DAYS: Final = 400  # a rule that opens on no day within a year never opens
# Each round jumps to a later zone opening. Reached when the zones' windows never overlap
# (+1900's 42 zones under a narrow window): then the answer is "never", after ~0.1 s.
_MAX_ROUNDS: Final = 500


@dataclass(frozen=True, slots=True)
class Window:
    """Allowed sending window in the recipient's local time, start <= t < end."""

    start: dt.time
    end: dt.time

    def contains(self, moment: dt.time) -> bool:
        """True when the wall-clock time is inside the window."""
        return self.start <= moment < self.end


def intersect(a: Window | None, b: Window | None) -> Window | None:
    """The part of both windows; None when either is None or they do not overlap."""
    if a is None or b is None:
        return None
    start, end = max(a.start, b.start), min(a.end, b.end)
    return Window(start, end) if start < end else None


@dataclass(frozen=True, slots=True)
class NthWeekday:
    """A movable holiday: the nth (1..5; -1 is the last) weekday (0=Monday) of a month."""

    month: int
    weekday: int
    nth: int

    def matches(self, day: dt.date) -> bool:
        """True when `day` is this holiday in its year."""
        if day.month != self.month or day.weekday() != self.weekday:
            return False
        if self.nth == -1:
            return (day + 7 * _DAY).month != self.month
        return (day.day - 1) // 7 + 1 == self.nth


@dataclass(frozen=True, slots=True)
class DayRule:
    """The allowed window for one place; by weekday, and on holidays."""

    default: Window | None
    by_weekday: tuple[tuple[int, Window | None], ...] = ()
    holidays: Window | Literal["same"] | None = "same"
    holiday_dates: frozenset[tuple[int, int]] = frozenset()
    movable_holidays: frozenset[NthWeekday] = frozenset()

    def weekday_window(self, weekday: int) -> Window | None:
        """The window on an ordinary `weekday` (0=Monday)."""
        return next((window for day, window in self.by_weekday if day == weekday), self.default)

    def is_holiday(self, day: dt.date) -> bool:
        """A listed holiday, or the Friday/Monday a weekend dated holiday is observed on."""
        observed = {4: day + _DAY, 0: day - _DAY}.get(day.weekday(), day)
        return bool({(day.month, day.day), (observed.month, observed.day)} & self.holiday_dates
                    or any(rule.matches(day) for rule in self.movable_holidays))

    def window_on(self, day: dt.date) -> Window | None:
        """The window on a calendar day: the weekday's, narrowed on holidays."""
        window = self.weekday_window(day.weekday())
        if isinstance(self.holidays, str) or not self.is_holiday(day):
            return window
        return intersect(window, self.holidays)

    def allows(self, local: dt.datetime) -> bool:
        """True when the local wall-clock moment is inside that day's window."""
        window = self.window_on(local.date())
        return window is not None and window.contains(local.time())


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Compiled, immutable: windows by country (ISO 3166 alpha-2) and by US state (USPS code)."""

    countries: Mapping[str, DayRule]
    us_states: Mapping[str, DayRule]

    def rule_for(self, region: str | None, state: str | None) -> tuple[str, DayRule] | None:
        """The row that applies ("US-FL", "US", "GB", ...) and its rule; None when none does."""
        if region == "US" and state is not None and state in self.us_states:
            return f"US-{state}", self.us_states[state]
        if region is not None and region in self.countries:
            return region, self.countries[region]
        return None


@dataclass(frozen=True, slots=True)
class QuietVerdict:
    """Whether a send falls in quiet hours, which zone and row decided, and when it reopens."""

    quiet: bool
    zone: str | None
    place: str | None
    local_time: dt.datetime | None
    next_allowed: dt.datetime | None
    steady_until: float = math.inf
    """Until when (epoch seconds, a whole minute, excluded) `quiet`, `zone`, `place` and
    `next_allowed` stay as they are: the first instant a zone of the number opens or
    closes; inf when they never change (no row, no zone)."""


def place_of(e164: str) -> tuple[str | None, str | None]:
    """(ISO region, US state code or None) of an E.164 number, from phonenumbers metadata.
    An invalid number still belongs to its calling code's main country (+44 ... is GB)."""
    facts = describe(e164)
    region = facts.region or facts.home
    return region, us_state(e164) if region == "US" else None


def zones_of(e164: str) -> tuple[str, ...]:
    """IANA zones phonenumbers gives for the number, without 'Etc/Unknown'; () when unknown."""
    return describe(e164).zones


@lru_cache(maxsize=1)
def _zone_table() -> Mapping[str, tuple[str, ...]]:
    """Country code -> IANA zones from zone.tab, looked for where zoneinfo looks for zones."""
    sources: list[Path | Traversable] = [Path(root, "zone.tab") for root in TZPATH]
    if importlib.util.find_spec("tzdata") is not None:  # else the system database alone
        sources.append(importlib.resources.files("tzdata").joinpath("zoneinfo", "zone.tab"))
    table: dict[str, tuple[str, ...]] = {}
    for source in sources:
        with contextlib.suppress(OSError):
            for line in source.read_text(encoding="utf-8").splitlines():
                code, _, zone, *_ = [*line.split("\t"), "", ""]
                if zone and not code.startswith("#"):
                    table[code] = (*table.get(code, ()), zone)
            break
    return MappingProxyType(table)


@lru_cache(maxsize=1024)
def _zones(names: tuple[str, ...]) -> tuple[ZoneInfo, ...]:
    # Cached here: zoneinfo keeps only 8 zones strongly and rereads the others' files.
    zones = []
    for name in names:
        with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
            zones.append(ZoneInfo(name))
    return tuple(zones)


def _opening(rule: DayRule, zone: ZoneInfo, after: dt.datetime) -> dt.datetime | None:
    """Earliest instant >= `after` that `rule` allows in `zone`; None within the horizon."""
    if rule.allows(after.astimezone(zone)):
        return after
    first = after.astimezone(zone).date()
    for day in (first + offset * _DAY for offset in range(_HORIZON_DAYS)):
        if (window := rule.window_on(day)) is None:
            continue
        # fold 1 finds a start in the repeated fall-back hour; fold 0 puts a start skipped by
        # spring-forward after the gap, whose end is then the opening.
        for fold in (0, 1):
            start = dt.datetime.combine(day, window.start, zone).replace(fold=fold)
            candidate = start.astimezone(_UTC)
            if candidate > after and rule.allows(local := candidate.astimezone(zone)):
                if local.time() != window.start:  # the start was skipped: open as the gap ends
                    return _gap_end(zone, start.replace(fold=1).astimezone(_UTC), candidate)
                return candidate
    return None


def _gap_end(zone: ZoneInfo, before: dt.datetime, after: dt.datetime) -> dt.datetime:
    """First second in (before, after] on `after`'s UTC offset: where a DST gap ends."""
    low, high = int(before.timestamp()), int(after.timestamp())
    offset = after.astimezone(zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if dt.datetime.fromtimestamp(
            middle, zone).utcoffset() == offset else (middle, high)
    return dt.datetime.fromtimestamp(high, _UTC)


def _next_allowed(rule: DayRule, zones: tuple[ZoneInfo, ...],
                  at: dt.datetime) -> dt.datetime | None:
    """Earliest instant >= `at` allowed in every zone: each zone's opening bounds it below."""
    moment = at
    for _ in range(_MAX_ROUNDS):
        openings = [_opening(rule, zone, moment) for zone in zones]
        latest = max((opening for opening in openings if opening is not None), default=None)
        if latest is None or None in openings:
            return None
        if latest == moment:
            return moment
        moment = latest
    return None


def _closing(rule: DayRule, zone: ZoneInfo, at: dt.datetime) -> dt.datetime:
    """When the window open at `at` in `zone` ends (to name the zone that closes first)."""
    local = at.astimezone(zone)
    window = rule.window_on(local.date())
    end = window.end if window is not None else local.time()
    return dt.datetime.combine(local.date(), end, zone).astimezone(_UTC)


def check_quiet(e164: str, at: dt.datetime, hours: QuietHours) -> QuietVerdict:
    """Whether `at` (an aware datetime) is quiet for the number; see the module docstring."""
    if at.utcoffset() is None:
        raise ValueError("check_quiet needs an aware datetime")
    region, state = place_of(e164)
    found = hours.rule_for(region, state)
    if found is None:
        return QuietVerdict(False, None, None, None, None)
    place, rule = found
    names = zones_of(e164) or _zone_table().get(region or "", ())
    quiet, zone, next_allowed, until = _judged(rule, names, int(at.timestamp() // 60))
    if zone is None:
        return QuietVerdict(False, None, place, None, None)
    return QuietVerdict(quiet, zone.key, place, at.astimezone(zone), next_allowed, until)


@lru_cache(maxsize=4096)
def _judged(rule: DayRule, names: tuple[str, ...], minute: int
            ) -> tuple[bool, ZoneInfo | None, dt.datetime | None, float]:
    """(quiet, the deciding zone, next allowed instant, until when the three hold) for a
    place's rule in its zones during one minute. Exact for the whole minute: windows
    start and end on whole minutes, as zones change offset; cached, since numbers share
    places and zones.

    They hold until the first zone opens or closes: before that no zone changes state,
    so the quiet zones, the one that opens last, the one that closes first and the
    first instant every zone allows are the same."""
    zones = _zones(names)
    if not zones:
        return False, None, None, math.inf
    moment = dt.datetime.fromtimestamp(minute * 60, _UTC)
    quiet = [zone for zone in zones if not rule.allows(moment.astimezone(zone))]
    closings = {zone: _closing(rule, zone, moment) for zone in zones if zone not in quiet}
    if not quiet:
        first = min(zones, key=closings.__getitem__)
        return False, first, None, _until(minute, closings[first])
    openings = {zone: _opening(rule, zone, moment) for zone in quiet}
    never = dt.datetime.max.replace(tzinfo=_UTC)
    decider = max(quiet, key=lambda zone: openings[zone] or never)
    changes = [*closings.values(), *(o for o in openings.values() if o is not None)]
    # A zone that never opens within the horizon: judged again each minute (rare: a
    # row with no window on any day).
    until = _until(minute, min(changes)) if changes and None not in openings.values() \
        else (minute + 1) * 60.0
    return True, decider, _next_allowed(rule, zones, moment), until


def _until(minute: int, change: dt.datetime) -> float:
    """The start of the minute `change` falls in (a whole minute, so exact), and never
    before the minute after `minute`, which is judged whole."""
    return max(minute + 1, int(change.timestamp() // 60)) * 60.0


"""Quiet hours' configuration: the shipped table (`quiet_defaults`) with an operator's rows
merged over it, compiled into `quiet.QuietHours`; `DEFAULTS` is the shipped table alone.

Configuration (`quiet_hours`), merged row by row over the table in `quiet_defaults` (an
operator's row replaces the shipped row whole; `null` removes it):

    countries:                       # ISO 3166 alpha-2 codes, as phonenumbers knows them
      GB: {default: "08:00-21:00", sunday: null}
    us_states:                       # USPS codes of the 50 states and DC
      TX: {default: "09:00-21:00", sunday: "12:00-21:00"}
      UT: {default: "08:00-21:00", sunday: null,
           holidays: {window: null, dates: ["07-24", "fourth thursday of november"]}}
      FL: null                       # removes the shipped row

`default` (required) is "HH:MM-HH:MM" (start included, end excluded, not across midnight) or
null (no sending); `monday`..`sunday` override it. `holidays.dates` holds "MM-DD" dates and
"<first..fifth|last> <weekday> of <month>" rules; on those days `holidays.window` (default
null: no sending; "same": unchanged) narrows the day's window, never widens it. A dated holiday
on a Saturday also covers the Friday before, on a Sunday the Monday after (the usual
observed-day rule; at worst a day stricter than a state's own).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Final, Literal

import phonenumbers

from gatekeeper import quiet_defaults
from gatekeeper.frozen import FrozenMap
from gatekeeper.quiet import DayRule, NthWeekday, QuietHours, Window, intersect

_WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                    "sunday")
_MONTHS: Final = ("january", "february", "march", "april", "may", "june", "july", "august",
                  "september", "october", "november", "december")
_NTH: Final = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "last": -1}
_TIME: Final = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_DATE: Final = re.compile(r"(\d\d)-(\d\d)")
_RULE: Final = re.compile(r"(\w+)\s+(\w+)\s+of\s+(\w+)")
US_STATE_CODES: Final = frozenset(quiet_defaults.US_STATE_NAMES.values())


def _fields(value: object, path: str, allowed: tuple[str, ...] = ()) -> Mapping[object, object]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{path}: expected a mapping, got {type(value).__name__}")
    for key in value if allowed else ():
        if key not in allowed:
            raise ValueError(f"{path}.{key}: unknown key; expected one of {', '.join(allowed)}")
    return value


def _time(text: str, path: str) -> dt.time:
    if (match := _TIME.fullmatch(text.strip())) is None:
        raise ValueError(f"{path}: {text.strip()!r} is not a time HH:MM")
    return dt.time(int(match[1]), int(match[2]))


def _window(value: object, path: str) -> Window | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.count("-") != 1:
        raise ValueError(f"{path}: {value!r} is not a window \"HH:MM-HH:MM\" (quoted) or null")
    start, end = (_time(text, path) for text in value.split("-"))
    if not start < end:
        raise ValueError(f"{path}: {value!r} does not start before it ends "
                         "(a window cannot span midnight)")
    return Window(start, end)


def _holiday(item: object, path: str) -> tuple[int, int] | NthWeekday:
    text = item.strip().lower() if isinstance(item, str) else ""
    if match := _DATE.fullmatch(text):
        try:
            day = dt.date(2024, int(match[1]), int(match[2]))  # a leap year admits 02-29
        except ValueError:
            raise ValueError(f"{path}: {item!r} is not a date MM-DD") from None
        return day.month, day.day
    match = _RULE.fullmatch(text)
    if match and match[1] in _NTH and match[2] in _WEEKDAYS and match[3] in _MONTHS:
        return NthWeekday(_MONTHS.index(match[3]) + 1, _WEEKDAYS.index(match[2]), _NTH[match[1]])
    raise ValueError(f"{path}: {item!r} is neither MM-DD nor "
                     "'<first..fifth|last> <weekday> of <month>'")


def _row(value: object, path: str) -> DayRule:
    fields = _fields(value, path, ("default", *_WEEKDAYS, "holidays"))
    if "default" not in fields:
        raise ValueError(f"{path}.default: missing")
    by_weekday = tuple((index, _window(fields[name], f"{path}.{name}"))
                       for index, name in enumerate(_WEEKDAYS) if name in fields)
    rule = DayRule(_window(fields["default"], f"{path}.default"), by_weekday)
    if fields.get("holidays") is None:
        return rule
    where = f"{path}.holidays"
    holidays = _fields(fields["holidays"], where, ("window", "dates"))
    window, dates = holidays.get("window"), holidays.get("dates", ())
    if not isinstance(dates, list | tuple):
        raise ValueError(f"{where}.dates: expected a list, got {type(dates).__name__}")
    parsed = [_holiday(item, f"{where}.dates[{index}]") for index, item in enumerate(dates)]
    return replace(
        rule, holidays="same" if window == "same" else _window(window, f"{where}.window"),
        holiday_dates=frozenset(item for item in parsed if isinstance(item, tuple)),
        movable_holidays=frozenset(item for item in parsed if isinstance(item, NthWeekday)))


def _merge(shipped: Mapping[str, object], overrides: object, path: str,
           known: frozenset[str] | set[str], kind: str) -> dict[str, DayRule]:
    rows: dict[object, object] = {}
    rows.update(shipped)
    rows.update(_fields(overrides if overrides is not None else {}, path))
    for code in rows:
        if not isinstance(code, str) or code not in known:
            hint = " (quote it: YAML reads NO as false)" if isinstance(code, bool) else ""
            raise ValueError(f"{path}.{code}: unknown {kind}{hint}")
    return {str(code): _row(row, f"{path}.{code}") for code, row in rows.items()
            if row is not None}


def narrow(state: DayRule, federal: DayRule) -> DayRule:
    """A state's rule intersected day by day with the federal one (conservative on holidays)."""
    holidays: Window | Literal["same"] | None = (
        state.holidays if isinstance(federal.holidays, str)
        else federal.holidays if isinstance(state.holidays, str)
        else intersect(state.holidays, federal.holidays))
    return DayRule(
        intersect(state.default, federal.default),
        tuple((day, intersect(state.weekday_window(day), federal.weekday_window(day)))
              for day in range(7)),
        holidays, state.holiday_dates | federal.holiday_dates,
        state.movable_holidays | federal.movable_holidays)


def compile_quiet(raw: object, where: str = "quiet_hours") -> QuietHours:
    """Parse `quiet_hours` over the shipped table; ValueError messages start with the key path."""
    top = _fields(raw if raw is not None else {}, where, ("countries", "us_states"))
    countries = _merge(quiet_defaults.COUNTRIES, top.get("countries"), f"{where}.countries",
                       phonenumbers.SUPPORTED_REGIONS, "country code (ISO 3166 alpha-2)")
    states = _merge(quiet_defaults.US_STATES, top.get("us_states"), f"{where}.us_states",
                    US_STATE_CODES, "US state code (two letters, upper case)")
    federal = countries.get("US")
    if federal is not None:  # the federal rule applies in every state too
        states = {code: narrow(rule, federal) for code, rule in states.items()}
    return QuietHours(FrozenMap(countries), FrozenMap(states))


DEFAULTS: Final[QuietHours] = compile_quiet(None)

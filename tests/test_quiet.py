"""Quiet hours: the shipped table, compile_quiet's merging and errors, check_quiet's verdicts."""

from __future__ import annotations

import datetime as dt
import math
import re
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper import quiet, quiet_defaults
from gatekeeper.quiet import QuietHours, Window, check_quiet, place_of, zones_of
from gatekeeper.quiet_config import DEFAULTS, compile_quiet

UTC = dt.UTC
NEW_YORK, CHICAGO = ZoneInfo("America/New_York"), ZoneInfo("America/Chicago")
DENVER, TORONTO = ZoneInfo("America/Denver"), ZoneInfo("America/Toronto")
MIAMI, MANHATTAN, DALLAS = "+13055550123", "+12125550123", "+12145550123"
BIRMINGHAM, OREM, PROVIDENCE = "+12055550123", "+18015550123", "+14015550123"
TOLL_FREE, TORONTO_CELL, UK_FICTION = "+18005550123", "+16475550123", "+447700900123"
SAMPLES = (MIAMI, MANHATTAN, DALLAS, BIRMINGHAM, OREM, PROVIDENCE, TOLL_FREE, TORONTO_CELL,
           UK_FICTION, "+16055550123", "+16015550123", "+33612345678", "+18085550123")


def at(year: int, month: int, day: int, hour: int, minute: int, zone: ZoneInfo) -> dt.datetime:
    """An aware local wall-clock instant (fold 0)."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=zone)


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    """An aware UTC instant."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(("number", "region", "state", "zones"), [
    (MIAMI, "US", "FL", ("America/New_York",)),
    (MANHATTAN, "US", "NY", ("America/New_York",)),
    ("+12025550123", "US", "DC", ("America/New_York",)),
    ("+12065550123", "US", "WA", ("America/Los_Angeles",)),
    (OREM, "US", "UT", ("America/Denver",)),
    (TORONTO_CELL, "CA", None, ("America/Toronto",)),
    (UK_FICTION, "GB", None, ()),
    ("+80012345678", None, None, ()),
    ("not a number", None, None, ()),
], ids=["state-name", "city-comma-state", "dc", "washington-state", "city-list-state", "canada",
        "invalid-uk-keeps-country", "non-geographic", "garbage"])
def test_place_and_zones(number: str, region: str | None, state: str | None,
                         zones: tuple[str, ...]) -> None:
    """phonenumbers metadata gives the region, the US state and the zones (never Etc/Unknown)."""
    assert place_of(number) == (region, state)
    assert zones_of(number) == zones


def test_toll_free_spans_dozens_of_zones() -> None:
    """A US toll-free number is US-wide: no state, and every NANP zone phonenumbers lists."""
    assert place_of(TOLL_FREE) == ("US", None)
    assert len(zones_of(TOLL_FREE)) > 30
    assert {"Pacific/Honolulu", "America/New_York"} <= set(zones_of(TOLL_FREE))


@pytest.mark.parametrize(("number", "when", "quiet", "place", "next_allowed"), [
    (MIAMI, at(2026, 6, 10, 20, 30, NEW_YORK), True, "US-FL", utc(2026, 6, 11, 12)),
    (MIAMI, at(2026, 6, 10, 19, 59, NEW_YORK), False, "US-FL", None),
    (MANHATTAN, at(2026, 6, 10, 20, 30, NEW_YORK), False, "US", None),
    (MANHATTAN, at(2026, 6, 10, 21, 0, NEW_YORK), True, "US", utc(2026, 6, 11, 12)),
    (MANHATTAN, at(2026, 6, 10, 7, 59, NEW_YORK), True, "US", utc(2026, 6, 10, 12)),
    (DALLAS, at(2026, 6, 14, 11, 0, CHICAGO), True, "US-TX", utc(2026, 6, 14, 17)),
    (DALLAS, at(2026, 6, 15, 9, 0, CHICAGO), False, "US-TX", None),
    (DALLAS, at(2026, 6, 13, 8, 59, CHICAGO), True, "US-TX", utc(2026, 6, 13, 14)),
    (TOLL_FREE, utc(2026, 6, 10, 12), True, "US", utc(2026, 6, 10, 22)),
    (TOLL_FREE, utc(2026, 6, 10, 23), False, "US", None),
    (TORONTO_CELL, at(2026, 6, 13, 9, 30, TORONTO), True, "CA", utc(2026, 6, 13, 14)),
    (TORONTO_CELL, at(2026, 6, 10, 21, 15, TORONTO), False, "CA", None),
    (TORONTO_CELL, at(2026, 6, 10, 21, 30, TORONTO), True, "CA", utc(2026, 6, 11, 13)),
    (UK_FICTION, utc(2026, 6, 14, 3), False, None, None),
    ("+15555550123", utc(2026, 6, 10, 12), True, "US", utc(2026, 6, 10, 18)),
    ("+33612345678", utc(2026, 6, 14, 3), False, None, None),
    (OREM, at(2026, 7, 24, 11, 0, DENVER), True, "US-UT", utc(2026, 7, 25, 14)),
    (OREM, at(2026, 6, 7, 11, 0, DENVER), True, "US-UT", utc(2026, 6, 8, 14)),
    (OREM, at(2026, 6, 15, 11, 0, DENVER), True, "US-UT", utc(2026, 6, 16, 14)),
    (BIRMINGHAM, at(2026, 11, 26, 10, 0, CHICAGO), True, "US-AL", utc(2026, 11, 27, 14)),
    (BIRMINGHAM, at(2026, 7, 3, 10, 0, CHICAGO), True, "US-AL", utc(2026, 7, 6, 13)),
    (BIRMINGHAM, at(2026, 7, 2, 19, 59, CHICAGO), False, "US-AL", None),
    (PROVIDENCE, at(2026, 6, 13, 10, 30, NEW_YORK), False, "US-RI", None),
    (PROVIDENCE, at(2026, 6, 12, 18, 0, NEW_YORK), True, "US-RI", utc(2026, 6, 13, 14)),
    ("+16015550123", at(2026, 6, 14, 12, 0, CHICAGO), True, "US-MS", utc(2026, 6, 15, 13)),
    ("+16055550123", at(2026, 6, 13, 12, 0, CHICAGO), True, "US-SD", utc(2026, 6, 15, 15)),
], ids=["florida-2030-quiet-until-0800", "florida-1959-open", "new-york-2030-open",
        "new-york-2100-quiet", "new-york-0759-quiet", "texas-sunday-1100-quiet-until-noon",
        "texas-monday-0900-open", "texas-saturday-0859-quiet", "toll-free-quiet-in-guam",
        "toll-free-open-everywhere", "canada-saturday-0930-quiet", "canada-weekday-2115-open",
        "canada-weekday-2130-quiet", "unknown-zone-no-gb-row",
        "invalid-nanp-read-in-every-us-zone", "no-row-for-france",
        "utah-pioneer-day", "utah-sunday", "utah-juneteenth-third-monday",
        "alabama-thanksgiving", "alabama-july-4-observed-friday", "alabama-weekday-1959-open",
        "rhode-island-saturday-1030-open", "rhode-island-weekday-1800-quiet",
        "mississippi-sunday", "south-dakota-saturday"])
def test_check_quiet(number: str, when: dt.datetime, quiet: bool, place: str | None,
                     next_allowed: dt.datetime | None) -> None:
    """Verdicts with a frozen clock: quiet or not, which row applied, and the reopening instant."""
    verdict = check_quiet(number, when, DEFAULTS)
    assert (verdict.quiet, verdict.place, verdict.next_allowed) == (quiet, place, next_allowed)
    if verdict.local_time is not None:
        assert verdict.local_time == when
        assert str(verdict.local_time.tzinfo) == verdict.zone


def test_toll_free_names_a_quiet_zone_and_reopens_everywhere() -> None:
    """The most restrictive reading: the named zone is quiet, and at next_allowed none is."""
    verdict = check_quiet(TOLL_FREE, utc(2026, 6, 10, 3), DEFAULTS)
    assert verdict.quiet
    assert verdict.zone in zones_of(TOLL_FREE)
    assert verdict.next_allowed == utc(2026, 6, 10, 22)  # Guam opens last, at 08:00 ChST
    for zone in zones_of(TOLL_FREE):
        local = verdict.next_allowed.astimezone(ZoneInfo(zone))
        assert DEFAULTS.countries["US"].allows(local), zone


@pytest.mark.parametrize(("number", "when", "next_allowed"), [
    (MANHATTAN, at(2026, 3, 7, 22, 0, NEW_YORK), utc(2026, 3, 8, 12)),
    (MANHATTAN, at(2026, 3, 8, 1, 59, NEW_YORK), utc(2026, 3, 8, 12)),
    (MANHATTAN, at(2026, 10, 31, 22, 0, NEW_YORK), utc(2026, 11, 1, 13)),
    (MANHATTAN, at(2026, 11, 1, 1, 30, NEW_YORK).replace(fold=1), utc(2026, 11, 1, 13)),
    (MIAMI, at(2026, 11, 1, 20, 30, NEW_YORK), utc(2026, 11, 2, 13)),
    (MIAMI, at(2026, 3, 7, 20, 0, NEW_YORK), utc(2026, 3, 8, 12)),
], ids=["spring-forward-saturday-2200", "spring-forward-0159", "fall-back-saturday-2200",
        "fall-back-repeated-0130", "fall-back-florida-evening", "spring-forward-florida-2000"])
def test_next_allowed_across_dst(number: str, when: dt.datetime,
                                 next_allowed: dt.datetime) -> None:
    """America/New_York DST changes in 2026: 08:00 local is 12:00Z in EDT and 13:00Z in EST."""
    verdict = check_quiet(number, when, DEFAULTS)
    assert verdict.quiet
    assert verdict.next_allowed == next_allowed


@pytest.mark.parametrize(("window", "when", "next_allowed"), [
    ("02:30-21:00", at(2026, 3, 8, 1, 0, NEW_YORK), utc(2026, 3, 8, 7)),
    ("01:30-01:45", at(2026, 11, 1, 1, 50, NEW_YORK), utc(2026, 11, 1, 6, 30)),
], ids=["start-in-skipped-hour-opens-at-0300-edt", "repeated-hour-opens-at-0130-est"])
def test_windows_inside_dst_changes(window: str, when: dt.datetime,
                                    next_allowed: dt.datetime) -> None:
    """A start skipped by spring-forward opens as the gap ends; a repeated hour opens again."""
    hours = compile_quiet({"countries": {"US": {"default": window}}})
    verdict = check_quiet(MANHATTAN, when, hours)
    assert verdict.quiet
    assert verdict.next_allowed == next_allowed
    assert not check_quiet(MANHATTAN, verdict.next_allowed, hours).quiet


@pytest.mark.parametrize(("holiday", "day", "expected"), [
    ("last monday of may", dt.date(2026, 5, 25), True),
    ("last monday of may", dt.date(2026, 5, 18), False),
    ("fourth thursday of november", dt.date(2026, 11, 26), True),
    ("fifth friday of may", dt.date(2026, 5, 29), True),
    ("fifth friday of june", dt.date(2026, 6, 26), False),
    ("first monday of september", dt.date(2026, 9, 7), True),
    ("07-04", dt.date(2026, 7, 3), True),
    ("07-04", dt.date(2027, 7, 5), True),
    ("07-04", dt.date(2026, 7, 6), False),
    ("02-29", dt.date(2028, 2, 29), True),
], ids=["last-monday", "not-last-monday", "thanksgiving", "fifth-friday", "no-fifth-friday",
        "labor-day", "saturday-holiday-observed-friday", "sunday-holiday-observed-monday",
        "monday-after-saturday-is-not", "leap-day"])
def test_holiday_dates(holiday: str, day: dt.date, expected: bool) -> None:
    """Dated and nth-weekday holidays, with the Friday/Monday observed-day rule for dated ones."""
    hours = compile_quiet({"countries": {"US": {"default": "08:00-21:00",
                                                "holidays": {"dates": [holiday]}}}})
    assert hours.countries["US"].is_holiday(day) is expected


def test_naive_datetime_is_refused() -> None:
    """The caller's clock must be aware: a naive one is ambiguous."""
    with pytest.raises(ValueError, match="aware"):
        check_quiet(MIAMI, dt.datetime(2026, 6, 10, 12, 0), DEFAULTS)


def test_unknown_zone_uses_the_countrys_zones() -> None:
    """No zone for the number: the region's zone.tab zones decide (GB: Europe/London)."""
    hours = compile_quiet({"countries": {"GB": {"default": "08:00-21:00", "sunday": None}}})
    verdict = check_quiet(UK_FICTION, utc(2026, 6, 14, 12), hours)
    assert (verdict.quiet, verdict.zone, verdict.place) == (True, "Europe/London", "GB")
    assert verdict.next_allowed == utc(2026, 6, 15, 7)


def test_no_zone_at_all_is_not_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without zone.tab either, a number with no zone is reported not quiet, row named."""
    monkeypatch.setattr(quiet, "_zone_table", lambda: {})
    hours = compile_quiet({"countries": {"GB": {"default": "08:00-21:00", "sunday": None}}})
    verdict = check_quiet(UK_FICTION, utc(2026, 6, 14, 12), hours)
    assert (verdict.quiet, verdict.zone, verdict.place) == (False, None, "GB")


def test_shipped_rows_all_cite_a_source() -> None:
    """Every shipped row has a citation, and every citation a row."""
    rows = set(quiet_defaults.COUNTRIES) | {f"US-{s}" for s in quiet_defaults.US_STATES}
    assert rows == set(quiet_defaults.CITATIONS)
    assert set(DEFAULTS.countries) == set(quiet_defaults.COUNTRIES)
    assert set(DEFAULTS.us_states) == set(quiet_defaults.US_STATES)


def test_compiled_tables_are_immutable() -> None:
    """QuietHours cannot be altered after compile: its mappings are read-only views."""
    with pytest.raises(TypeError):
        DEFAULTS.countries["GB"] = DEFAULTS.countries["US"]  # type: ignore[index]
    assert compile_quiet(None) == DEFAULTS
    assert compile_quiet({}) == DEFAULTS


@pytest.mark.parametrize(("raw", "number", "when", "quiet"), [
    ({"us_states": {"FL": None}}, MIAMI, at(2026, 6, 10, 20, 30, NEW_YORK), False),
    ({"us_states": {"TX": {"default": "10:00-20:00"}}}, DALLAS, at(2026, 6, 14, 10, 30, CHICAGO),
     False),
    ({"us_states": {"NY": {"default": "07:00-22:00"}}}, MANHATTAN,
     at(2026, 6, 10, 7, 30, NEW_YORK), True),
    ({"countries": {"US": None}, "us_states": {"NY": {"default": "07:00-22:00"}}}, MANHATTAN,
     at(2026, 6, 10, 7, 30, NEW_YORK), False),
    ({"countries": {"US": None}}, TOLL_FREE, utc(2026, 6, 10, 12), False),
    ({"countries": {"US": {"default": "08:00-21:00", "holidays": {"dates": ["12-25"]}}}},
     MANHATTAN, at(2026, 12, 25, 12, 0, NEW_YORK), True),
    ({"countries": {"US": {"default": "08:00-21:00",
                           "holidays": {"window": "same", "dates": ["12-25"]}}}},
     MANHATTAN, at(2026, 12, 25, 12, 0, NEW_YORK), False),
    ({"countries": {"US": {"default": "08:00-21:00",
                           "holidays": {"window": "10:00-14:00", "dates": ["12-25"]}}}},
     MIAMI, at(2026, 12, 25, 14, 30, NEW_YORK), True),
    ({"countries": {"CA": {"default": "09:00-21:30", "saturday": None}}}, TORONTO_CELL,
     at(2026, 6, 13, 12, 0, TORONTO), True),
], ids=["null-removes-state-row", "operator-row-replaces-shipped-whole",
        "state-cannot-widen-federal", "without-us-row-state-stands-alone",
        "without-us-row-toll-free-is-free", "holiday-closes-the-day",
        "holiday-window-same-changes-nothing", "federal-holiday-window-narrows-states",
        "weekday-null-closes-the-day"])
def test_compile_merges_over_defaults(raw: object, number: str, when: dt.datetime,
                                      quiet: bool) -> None:
    """Operator rows override, remove and add shipped rows; states stay inside the US row."""
    assert check_quiet(number, when, compile_quiet(raw)).quiet is quiet


@pytest.mark.parametrize(("raw", "message"), [
    ([], "quiet_hours: expected a mapping, got list"),
    ({"holidays": {}}, "quiet_hours.holidays: unknown key"),
    ({"countries": ["US"]}, "quiet_hours.countries: expected a mapping, got list"),
    ({"countries": {"XX": None}}, "quiet_hours.countries.XX: unknown country code"),
    ({"countries": {"gb": None}}, "quiet_hours.countries.gb: unknown country code"),
    ({"countries": {False: None}}, "quiet_hours.countries.False: unknown country code"),
    ({"us_states": {"XX": None}}, "quiet_hours.us_states.XX: unknown US state code"),
    ({"us_states": {"PR": None}}, "quiet_hours.us_states.PR: unknown US state code"),
    ({"us_states": {"FL": {"default": "25:00-21:00"}}},
     "quiet_hours.us_states.FL.default: '25:00' is not a time HH:MM"),
    ({"us_states": {"FL": {"default": "08:00-8pm"}}},
     "quiet_hours.us_states.FL.default: '8pm' is not a time HH:MM"),
    ({"us_states": {"FL": {"default": "21:00-08:00"}}},
     "quiet_hours.us_states.FL.default: '21:00-08:00' does not start before it ends"),
    ({"us_states": {"FL": {"default": "08:00-08:00"}}},
     "quiet_hours.us_states.FL.default: '08:00-08:00' does not start before it ends"),
    ({"us_states": {"FL": {"default": "08:00"}}},
     "quiet_hours.us_states.FL.default: '08:00' is not a window"),
    ({"us_states": {"FL": {"default": 1260}}},
     "quiet_hours.us_states.FL.default: 1260 is not a window"),
    ({"countries": {"GB": {"default": "08:00-21:00", "sundy": None}}},
     "quiet_hours.countries.GB.sundy: unknown key"),
    ({"countries": {"GB": {"sunday": None}}}, "quiet_hours.countries.GB.default: missing"),
    ({"countries": {"GB": "08:00-21:00"}},
     "quiet_hours.countries.GB: expected a mapping, got str"),
    ({"countries": {"GB": {"default": "08:00-21:00", "monday": "9-17"}}},
     "quiet_hours.countries.GB.monday: '9' is not a time HH:MM"),
    ({"us_states": {"UT": {"default": "08:00-21:00", "holidays": {"days": []}}}},
     "quiet_hours.us_states.UT.holidays.days: unknown key"),
    ({"us_states": {"UT": {"default": "08:00-21:00", "holidays": {"dates": "01-01"}}}},
     "quiet_hours.us_states.UT.holidays.dates: expected a list, got str"),
    ({"us_states": {"UT": {"default": "08:00-21:00", "holidays": {"dates": ["13-01"]}}}},
     "quiet_hours.us_states.UT.holidays.dates[0]: '13-01' is not a date MM-DD"),
    ({"us_states": {"UT": {"default": "08:00-21:00",
                           "holidays": {"dates": ["01-01", "second funday of may"]}}}},
     "quiet_hours.us_states.UT.holidays.dates[1]: 'second funday of may' is neither"),
    ({"us_states": {"UT": {"default": "08:00-21:00", "holidays": {"dates": [101]}}}},
     "quiet_hours.us_states.UT.holidays.dates[0]: 101 is neither"),
    ({"us_states": {"UT": {"default": "08:00-21:00", "holidays": {"window": "late"}}}},
     "quiet_hours.us_states.UT.holidays.window: 'late' is not a window"),
], ids=["top-not-mapping", "unknown-top-key", "section-not-mapping", "unknown-country",
        "lowercase-country", "yaml-no-is-false", "unknown-state", "territory-is-a-country",
        "hour-25", "12-hour-clock", "spans-midnight", "empty-window", "no-end",
        "yaml-sexagesimal-int", "weekday-typo", "missing-default", "row-not-mapping",
        "single-digit-hour", "unknown-holidays-key", "dates-not-list", "month-13",
        "bad-weekday-rule", "date-not-string", "bad-holiday-window"])
def test_compile_errors_start_with_the_key_path(raw: object, message: str) -> None:
    """Anything malformed or unknown is refused, the message starting with where it is."""
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        compile_quiet(raw)


def test_compile_errors_use_the_given_root() -> None:
    """The key path starts at `where`, for configurations nesting quiet hours elsewhere."""
    with pytest.raises(ValueError, match=r"^tenant\.acme\.quiet\.countries: expected a mapping"):
        compile_quiet({"countries": 1}, where="tenant.acme.quiet")


# Properties ------------------------------------------------------------------------------

# Tables in which every row opens on some day: a row that never opens has no next_allowed.
_HOURS = (
    DEFAULTS,
    compile_quiet({"countries": {"US": {"default": "02:30-21:00", "saturday": None}}}),
    compile_quiet({"countries": {"US": {"default": "01:00-21:00",
                                        "holidays": {"dates": ["last sunday of march"]}}},
                   "us_states": {"FL": {"default": "01:00-01:30"},
                                 "NY": {"default": "02:00-02:30", "sunday": "01:15-01:45"}}}),
)
_INSTANTS = st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2035, 12, 31),
                         timezones=st.just(UTC))


@settings(max_examples=80, deadline=None)
@given(number=st.sampled_from(SAMPLES), when=_INSTANTS, hours=st.sampled_from(_HOURS))
def test_quiet_means_a_later_open_instant(number: str, when: dt.datetime,
                                          hours: QuietHours) -> None:
    """Quiet: next_allowed is later and not quiet itself. Not quiet: next_allowed is None."""
    verdict = check_quiet(number, when, hours)
    if not verdict.quiet:
        assert verdict.next_allowed is None
        return
    assert verdict.next_allowed is not None
    assert verdict.next_allowed > when
    assert verdict.next_allowed.tzinfo is UTC
    assert not check_quiet(number, verdict.next_allowed, hours).quiet


@settings(max_examples=60, deadline=None)
@given(number=st.sampled_from(SAMPLES), when=_INSTANTS)
def test_next_allowed_is_the_earliest(number: str, when: dt.datetime) -> None:
    """With the shipped windows, the minute before next_allowed (if after now) is still quiet."""
    verdict = check_quiet(number, when, DEFAULTS)
    if verdict.next_allowed is not None and verdict.next_allowed - when > dt.timedelta(minutes=1):
        assert check_quiet(number, verdict.next_allowed - dt.timedelta(minutes=1), DEFAULTS).quiet


_TIMES = st.builds(dt.time, st.integers(0, 23), st.sampled_from((0, 15, 30, 59)))
_WINDOWS = st.one_of(st.none(), st.tuples(_TIMES, _TIMES).filter(lambda w: w[0] < w[1]).map(
    lambda w: f"{w[0]:%H:%M}-{w[1]:%H:%M}"))
_ROWS = st.fixed_dictionaries({"default": _WINDOWS}, optional={
    "saturday": _WINDOWS, "sunday": _WINDOWS, "monday": _WINDOWS,
    "holidays": st.fixed_dictionaries({}, optional={
        "window": st.one_of(_WINDOWS, st.just("same")),
        "dates": st.lists(st.sampled_from(("01-01", "07-04", "12-25",
                                           "fourth thursday of november")), max_size=3)})})


def _inside(inner: Window | None, outer: Window | None) -> bool:
    return inner is None or (outer is not None and outer.start <= inner.start
                             and inner.end <= outer.end)


@settings(max_examples=60, deadline=None)
@given(federal=_ROWS, state=_ROWS, code=st.sampled_from(("FL", "TX", "NY", "UT")),
       day=st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2030, 12, 31)))
def test_state_window_never_wider_than_federal(federal: dict[str, object],
                                               state: dict[str, object], code: str,
                                               day: dt.date) -> None:
    """For any operator override, a compiled state window sits inside the federal and its own."""
    hours = compile_quiet({"countries": {"US": federal}, "us_states": {code: state}})
    own = compile_quiet({"countries": {"US": None}, "us_states": {code: state}}).us_states[code]
    for offset in range(7):
        date = day + dt.timedelta(days=offset)
        compiled = hours.us_states[code].window_on(date)
        assert _inside(compiled, hours.countries["US"].window_on(date))
        assert _inside(compiled, own.window_on(date))


@settings(max_examples=150, deadline=None)
@given(number=st.sampled_from(SAMPLES), when=_INSTANTS, hours=st.sampled_from(_HOURS),
       share=st.floats(0, 1))
def test_a_verdict_holds_until_its_steady_until(number: str, when: dt.datetime,
                                                hours: QuietHours, share: float) -> None:
    """Property: quiet, zone, place and next_allowed are the same at every instant from
    the verdict's minute to its `steady_until` (a whole minute after it): at its last
    minute, and at one in between; for a number in one zone they change at it."""
    verdict = check_quiet(number, when, hours)
    start = when.timestamp() // 60 * 60
    until = verdict.steady_until
    assert until == math.inf or (until > when.timestamp() and until % 60 == 0)
    if until == math.inf:
        later = check_quiet(number, when + dt.timedelta(days=share * 400), hours)
        assert (later.quiet, later.zone, later.place) == (False, verdict.zone, verdict.place)
        return
    for instant in (until - 60, start + (until - 60 - start) * share, until - 0.001):
        later = check_quiet(number, dt.datetime.fromtimestamp(instant, UTC), hours)
        assert (later.quiet, later.zone, later.place, later.next_allowed) == \
            (verdict.quiet, verdict.zone, verdict.place, verdict.next_allowed), instant
    if len(zones_of(number)) == 1:
        after = check_quiet(number, dt.datetime.fromtimestamp(until, UTC), hours)
        assert after.quiet is not verdict.quiet


def test_steady_until_names_the_next_opening_or_closing() -> None:
    """Manhattan at 15:00 EST holds until 21:00 EST; at 23:30 until 08:00; a number with
    no row never changes."""
    day = check_quiet(MANHATTAN, at(2026, 12, 3, 15, 0, NEW_YORK), DEFAULTS)
    assert (day.quiet, day.steady_until) == \
        (False, at(2026, 12, 3, 21, 0, NEW_YORK).timestamp())
    night = check_quiet(MANHATTAN, at(2026, 12, 3, 23, 30, NEW_YORK), DEFAULTS)
    assert (night.quiet, night.steady_until) == \
        (True, at(2026, 12, 4, 8, 0, NEW_YORK).timestamp())
    assert check_quiet("+80012345678", utc(2026, 12, 3, 12), DEFAULTS).steady_until == \
        math.inf

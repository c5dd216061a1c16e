"""The shipped quiet-hours table, in the same format as the `quiet_hours` configuration.

Each row is an allowed-sending window in the recipient's local time; `quiet_config.compile_quiet`
parses it exactly as it parses an operator's YAML, so the two cannot drift apart. A row is
here only when its source could be cited down to the section: the comment above each row
says what it requires, `CITATIONS` names it. Engineering data, not legal advice: operators
override or remove any row. `US_STATE_NAMES` maps phonenumbers' geocoder names to USPS codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

# Federal holidays named by date rule (5 U.S.C. 6103); shared by the states below whose
# statutes restrict calls on "legal holidays" and list these days.
_NEW_YEAR, _JULY_4, _VETERANS, _CHRISTMAS = "01-01", "07-04", "11-11", "12-25"
_MLK, _PRESIDENTS = "third monday of january", "third monday of february"
_MEMORIAL, _LABOR = "last monday of may", "first monday of september"
_COLUMBUS, _THANKSGIVING = "second monday of october", "fourth thursday of november"

COUNTRIES: Final[Mapping[str, Mapping[str, object]]] = MappingProxyType({
    # TCPA rules, 47 CFR 64.1200(c)(1): no telephone solicitation before 8:00 a.m. or after
    # 9:00 p.m. local time at the called party's location.
    "US": {"default": "08:00-21:00"},
    # CRTC Unsolicited Telecommunications Rules, Part III (Telemarketing Rules), calling
    # hours: 9:00 a.m.-9:30 p.m. on weekdays, 10:00 a.m.-6:00 p.m. on weekends.
    "CA": {"default": "09:00-21:30", "saturday": "10:00-18:00", "sunday": "10:00-18:00"},
})

US_STATES: Final[Mapping[str, Mapping[str, object]]] = MappingProxyType({
    # Ala. Admin. Code r. 770-X-5-.17(1)(b): no solicitation calls on Sundays or holidays,
    # none before 8 a.m. or after 8 p.m. (the rule covers automated calls); holidays from
    # Ala. Code 1-3-8 (Mardi Gras, Baldwin and Mobile counties only, is left out).
    "AL": {"default": "08:00-20:00", "sunday": None, "holidays": {"window": None, "dates": (
        _NEW_YEAR, _MLK, _PRESIDENTS, "fourth monday of april", _MEMORIAL,
        "first monday of june", _JULY_4, _LABOR, _COLUMBUS, _VETERANS, _THANKSGIVING,
        _CHRISTMAS)}},
    # Conn. Gen. Stat. 42-288a as amended by Public Act 23-98 (eff. 2023-10-01):
    # telephonic sales calls only 9:00 a.m. to 8:00 p.m.
    "CT": {"default": "09:00-20:00"},
    # Fla. Stat. 501.616(6)(a) (amended 2021, SB 1120): no commercial telephone
    # solicitation before 8 a.m. or after 8 p.m. in the called person's time zone.
    "FL": {"default": "08:00-20:00"},
    # 201 CMR 12.02(2) (under M.G.L. c. 159C): no unsolicited telephonic sales call between
    # 8:00 p.m. and 8:00 a.m. local time at the consumer's location.
    "MA": {"default": "08:00-20:00"},
    # Md. Code, Com. Law 14-4502 (Stop the Spam Calls Act of 2023, SB 90, eff. 2024-01-01):
    # telephone solicitations only 8 a.m. to 8 p.m. in the called party's time zone.
    "MD": {"default": "08:00-20:00"},
    # Miss. Code Ann. 77-3-723(1): no telephone solicitation on a Sunday; hours otherwise
    # 8 a.m.-9 p.m. (77-3-603(a)), the federal window. Holiday ban repealed with the PSC rules.
    "MS": {"default": "08:00-21:00", "sunday": None},
    # 15 O.S. 775C.4 (Telephone Solicitation Act of 2022, HB 3168, eff. 2022-11-01):
    # commercial telephone solicitation only 8 a.m. to 8 p.m. local time.
    "OK": {"default": "08:00-20:00"},
    # 73 P.S. 2245(a)(1) (8 a.m.-9 p.m.) and (a)(10) (no telephone solicitation on legal
    # holidays, Act 73 of 2019); holidays after 44 P.S. 11 (Good Friday, Election Day left out).
    "PA": {"default": "08:00-21:00", "holidays": {"window": None, "dates": (
        _NEW_YEAR, _MLK, _PRESIDENTS, _MEMORIAL, "06-14", _JULY_4, _LABOR, _COLUMBUS,
        _VETERANS, _THANKSGIVING, _CHRISTMAS)}},
    # R.I. Gen. Laws 5-61-3.6 with "hours of operation" in 5-61-2: Monday-Friday except a
    # state or federal holiday 9:00 a.m.-6:00 p.m., Saturday 10:00 a.m.-5:00 p.m., no Sunday;
    # holidays from R.I. Gen. Laws 25-1-1 plus the federal list (Election Day left out).
    "RI": {"default": "09:00-18:00", "saturday": "10:00-17:00", "sunday": None,
           "holidays": {"window": None, "dates": (
               _NEW_YEAR, _MLK, _PRESIDENTS, "05-04", _MEMORIAL, "06-19", _JULY_4,
               "second monday of august", _LABOR, _COLUMBUS, _VETERANS, _THANKSGIVING,
               _CHRISTMAS)}},
    # SDCL 37-30-28: an automated telephone dialing system may make a telephone solicitation
    # only on weekdays between 9 a.m. and 9 p.m. (automated systems only).
    "SD": {"default": "09:00-21:00", "saturday": None, "sunday": None},
    # Tex. Bus. & Com. Code 301.051: no telephone solicitation before 9 a.m. or after 9 p.m.
    # on a weekday or Saturday, or before noon or after 9 p.m. on a Sunday.
    "TX": {"default": "09:00-21:00", "sunday": "12:00-21:00"},
    # Utah Code 13-25a-103(3): none between 9 p.m. and 8 a.m., on a Sunday or on a legal
    # holiday; holidays from Utah Code 63G-1-301 (Juneteenth falls on the third Monday of
    # June by its subsection (2)(c)-(d); Good Friday is left out).
    "UT": {"default": "08:00-21:00", "sunday": None, "holidays": {"window": None, "dates": (
        _NEW_YEAR, _MLK, _PRESIDENTS, _MEMORIAL, "third monday of june", _JULY_4, "07-24",
        _LABOR, _COLUMBUS, _VETERANS, _THANKSGIVING, _CHRISTMAS)}},
    # RCW 19.158.040(2): no commercial telephone solicitation received before 8:00 a.m. or
    # after 8:00 p.m. at the call recipient's local time.
    "WA": {"default": "08:00-20:00"},
})

CITATIONS: Final[Mapping[str, str]] = MappingProxyType({
    "US": "47 CFR 64.1200(c)(1) (TCPA rules)",
    "CA": "CRTC Unsolicited Telecommunications Rules, Part III (Telemarketing Rules)",
    "US-AL": "Ala. Admin. Code r. 770-X-5-.17(1)(b); holidays Ala. Code 1-3-8",
    "US-CT": "Conn. Gen. Stat. 42-288a (as amended by P.A. 23-98)",
    "US-FL": "Fla. Stat. 501.616(6)(a)",
    "US-MA": "201 CMR 12.02(2); M.G.L. c. 159C",
    "US-MD": "Md. Code, Com. Law 14-4502 (Stop the Spam Calls Act of 2023)",
    "US-MS": "Miss. Code Ann. 77-3-723(1)",
    "US-OK": "15 O.S. 775C.4 (Telephone Solicitation Act of 2022)",
    "US-PA": "73 P.S. 2245(a)(1), (a)(10); holidays 44 P.S. 11",
    "US-RI": "R.I. Gen. Laws 5-61-3.6, 5-61-2; holidays 25-1-1",
    "US-SD": "SDCL 37-30-28",
    "US-TX": "Tex. Bus. & Com. Code 301.051",
    "US-UT": "Utah Code 13-25a-103(3); holidays 63G-1-301",
    "US-WA": "RCW 19.158.040(2)",
})

# phonenumbers' English geocoder names a US area code by its state ("Florida"), by
# "City, ST", or by the two spellings below that are neither.
US_STATE_NAMES: Final[Mapping[str, str]] = MappingProxyType({
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA",
    "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN", "Iowa": "IA",
    "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD",
    "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS",
    "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV", "New Hampshire": "NH",
    "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY", "North Carolina": "NC",
    "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA",
    "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD", "Tennessee": "TN",
    "Texas": "TX", "Utah": "UT", "Vermont": "VT", "Virginia": "VA", "Washington": "WA",
    "Washington State": "WA", "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY",
    "District of Columbia": "DC", "Washington D.C.": "DC",
})

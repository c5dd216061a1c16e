"""What the numbering metadata says of a number, read once and cached: its region, US
state, time zones and type (phonenumbers' parse, region, geocoder and time-zone lookups
cost ~120 us together; policy rules and quiet hours need them for every destination).

Pure; the cache is per process and bounded (a number not seen lately is read again).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import timezone as pn_timezone

from gatekeeper.frozen import FrozenMap
from gatekeeper.number_types import region_and_type
from gatekeeper.numbers import parse_plus
from gatekeeper.quiet_defaults import US_STATE_NAMES

# phonenumbers' number types by the names configuration uses.
NUMBER_TYPES: Mapping[int, str] = FrozenMap({
    phonenumbers.PhoneNumberType.FIXED_LINE: "fixed_line",
    phonenumbers.PhoneNumberType.MOBILE: "mobile",
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    phonenumbers.PhoneNumberType.TOLL_FREE: "toll_free",
    phonenumbers.PhoneNumberType.PREMIUM_RATE: "premium_rate",
    phonenumbers.PhoneNumberType.SHARED_COST: "shared_cost",
    phonenumbers.PhoneNumberType.VOIP: "voip",
    phonenumbers.PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    phonenumbers.PhoneNumberType.PAGER: "pager",
    phonenumbers.PhoneNumberType.UAN: "uan",
    phonenumbers.PhoneNumberType.VOICEMAIL: "voicemail",
    phonenumbers.PhoneNumberType.UNKNOWN: "unknown",
})
TYPE_NAMES: frozenset[str] = frozenset(NUMBER_TYPES.values())
# Numbers whose facts are kept (~1 KB each).
CACHE_SIZE = 65_536
_NON_GEOGRAPHIC = ("ZZ", "001")
_STATE_CODES = frozenset(US_STATE_NAMES.values())


@dataclass(frozen=True, slots=True)
class Facts:
    """A number's facts. `region`: the ISO region it belongs to (+1 numbers: US, CA,
    PR...), or the calling code's only region when the number is not valid there, None
    when neither is known. `home`: the calling code's main region (quiet hours read an
    unknown zone in its zones)."""

    region: str | None
    type: str
    home: str | None = None
    zones: tuple[str, ...] = ()


@lru_cache(maxsize=CACHE_SIZE)
def _read(e164: str) -> tuple[phonenumbers.PhoneNumber, str | None, int] | None:
    """A number parsed, its region as phonenumbers finds it and its type; None when it
    cannot be parsed. Shared by `describe` and `us_state`: region and type are
    phonenumbers' costly part (regular expressions per region), and each of its public
    lookups (number_type, time zones, the geocoder) would work them out again. The
    parse itself is the proxy's (numbers.parse_plus, cached)."""
    number = parse_plus(e164) if e164.startswith("+") else None
    if number is None:
        return None
    return (number, *region_and_type(number))


def _geographical(number: phonenumbers.PhoneNumber, kind: int) -> bool:
    return phonenumbers.is_number_type_geographical(kind, number.country_code or 0)


@lru_cache(maxsize=CACHE_SIZE)
def describe(e164: str) -> Facts:
    """The facts of an E.164 number (a number phonenumbers cannot read: none)."""
    read = _read(e164)
    if read is None:
        return Facts(None, "unknown")
    number, region, kind = read
    code = number.country_code or 0
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code, ())
    if region is None and len(regions) == 1:
        region = regions[0]
    home = phonenumbers.region_code_for_country_code(code)
    # As time_zones_for_number, with the type already known (it works it out again).
    if kind == phonenumbers.PhoneNumberType.UNKNOWN:
        found: tuple[str, ...] = ()
    elif _geographical(number, kind):
        found = tuple(pn_timezone.time_zones_for_geographical_number(number))
    else:
        found = tuple(pn_timezone.time_zones_for_number(number))
    zones = tuple(z for z in found if z != pn_timezone.UNKNOWN_TIMEZONE)
    return Facts(None if region in _NON_GEOGRAPHIC else region,
                 NUMBER_TYPES.get(kind, "unknown"),
                 None if home in _NON_GEOGRAPHIC else home, zones)


def load_geocoder() -> float:
    """Load phonenumbers' geocoder data (what `us_state` reads) now; the seconds it took
    (0 once loaded). A serving process whose policy has quiet hours calls it before it
    serves: the import takes seconds (measured: 3.5 s and 200 MB, without byte-code
    files) and would otherwise stall the event loop on the first send that needs a
    state."""
    if "phonenumbers.geocoder" in sys.modules:
        return 0.0
    start = time.perf_counter()
    import phonenumbers.geocoder  # noqa: F401, PLC0415 - loaded on demand, see above

    return time.perf_counter() - start


@lru_cache(maxsize=CACHE_SIZE)
def us_state(e164: str) -> str | None:
    """A US number's state (USPS code) when phonenumbers' geocoder names one. The
    geocoder's data (~100 MB) is loaded on the first call unless `load_geocoder` ran:
    quiet hours need it, nothing else does."""
    from phonenumbers import geocoder  # noqa: PLC0415 - see above

    read = _read(e164)
    # As description_for_number, with the type already known: a number of no type has
    # no description, a non-geographical one only its country's name (never a state).
    # Another country's number is never in a US state ("Georgia" names one too).
    if read is None or read[1] != "US" or not _geographical(read[0], read[2]):
        return None
    name = geocoder.description_for_valid_number(read[0], "en")
    city, comma, code = name.rpartition(", ")
    state = code if comma and city else US_STATE_NAMES.get(name)
    return state if state in _STATE_CODES else None

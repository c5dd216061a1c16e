"""What the numbering metadata says of a number, read once and cached: its region, US
state, time zones and type (phonenumbers' parse, region, geocoder and time-zone lookups
cost ~120 us together; policy rules and quiet hours need them for every destination).

Pure; the cache is per process and bounded (a number not seen lately is read again).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import timezone as pn_timezone

from gatekeeper.frozen import FrozenMap
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
def describe(e164: str) -> Facts:
    """The facts of an E.164 number (a number phonenumbers cannot read: none)."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return Facts(None, "unknown")
    code = number.country_code or 0
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code, ())
    region = phonenumbers.region_code_for_number(number)
    if region is None and len(regions) == 1:
        region = regions[0]
    home = phonenumbers.region_code_for_country_code(code)
    kind = NUMBER_TYPES.get(phonenumbers.number_type(number), "unknown")
    zones = tuple(z for z in pn_timezone.time_zones_for_number(number)
                  if z != pn_timezone.UNKNOWN_TIMEZONE)
    return Facts(None if region in _NON_GEOGRAPHIC else region, kind,
                 None if home in _NON_GEOGRAPHIC else home, zones)


@lru_cache(maxsize=CACHE_SIZE)
def us_state(e164: str) -> str | None:
    """A US number's state (USPS code) when phonenumbers' geocoder names one. The
    geocoder's data (~100 MB) is loaded on the first call only: quiet hours need it,
    nothing else does."""
    from phonenumbers import geocoder  # noqa: PLC0415 - see above

    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    name = geocoder.description_for_number(number, "en")
    city, comma, code = name.rpartition(", ")
    state = code if comma and city else US_STATE_NAMES.get(name)
    return state if state in _STATE_CODES else None

"""A number's region and type from phonenumbers' metadata, in one pass over patterns
compiled once (pure).

phonenumbers answers `region_code_for_number` and `number_type` separately: the first
tries each region of the calling code in turn (its leading digits, or else a full type
evaluation), the second finds the region again and evaluates its type patterns again,
each pattern through several function calls and a compile-cache lookup. Here the same
steps run once, over each region's patterns compiled at first use: the same answers
(tests/test_facts.py checks them against phonenumbers' public calls for random numbers
of every calling code and every region's example numbers), at a fraction of the cost.
Only public metadata fields are read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberDesc, PhoneNumberType

UNKNOWN = int(PhoneNumberType.UNKNOWN)
# The types tested before fixed line and mobile, in number_type's order.
_SPECIAL = (("premium_rate", PhoneNumberType.PREMIUM_RATE),
            ("toll_free", PhoneNumberType.TOLL_FREE),
            ("shared_cost", PhoneNumberType.SHARED_COST),
            ("voip", PhoneNumberType.VOIP),
            ("personal_number", PhoneNumberType.PERSONAL_NUMBER),
            ("pager", PhoneNumberType.PAGER),
            ("uan", PhoneNumberType.UAN),
            ("voicemail", PhoneNumberType.VOICEMAIL))

# A number description: its possible lengths (empty: any) and its pattern.
_Desc = tuple[frozenset[int], "re.Pattern[str]"]


def _desc(desc: PhoneNumberDesc | None) -> _Desc | None:
    """A description compiled; None when it can match nothing (absent, or no pattern)."""
    if desc is None or not desc.national_number_pattern:
        return None
    return frozenset(desc.possible_length or ()), re.compile(desc.national_number_pattern)


def _matches(desc: _Desc | None, national: str) -> bool:
    # As phonenumbers: outside the possible lengths (when listed) is no match; a match
    # is of the whole national number.
    return desc is not None and (not desc[0] or len(national) in desc[0]) \
        and desc[1].fullmatch(national) is not None


@dataclass(frozen=True, slots=True)
class Typing:
    """One region's type patterns, compiled."""

    general: _Desc | None
    special: tuple[tuple[int, _Desc], ...]
    fixed: _Desc | None
    mobile: _Desc | None
    same: bool  # the same pattern for fixed line and mobile

    @classmethod
    def of(cls, metadata: PhoneMetadata) -> Typing:
        special = tuple((int(kind), desc) for name, kind in _SPECIAL
                        if (desc := _desc(getattr(metadata, name))) is not None)
        return cls(_desc(metadata.general_desc), special, _desc(metadata.fixed_line),
                   _desc(metadata.mobile), bool(metadata.same_mobile_and_fixed_line_pattern))

    def type_of(self, national: str) -> int:
        """number_type's answer for a national significant number of this region."""
        if not _matches(self.general, national):
            return UNKNOWN
        for kind, desc in self.special:
            if _matches(desc, national):
                return kind
        if _matches(self.fixed, national):
            if self.same or _matches(self.mobile, national):
                return int(PhoneNumberType.FIXED_LINE_OR_MOBILE)
            return int(PhoneNumberType.FIXED_LINE)
        if not self.same and _matches(self.mobile, national):
            return int(PhoneNumberType.MOBILE)
        return UNKNOWN


@lru_cache(maxsize=1024)  # calling codes have at most 3 digits
def regions_of(code: int) -> tuple[tuple[str, Typing | None, re.Pattern[str] | None], ...]:
    """A calling code's regions in phonenumbers' order, each with its type patterns and
    its leading digits' pattern (+1 has 25 regions, tried in turn). One region: the
    metadata number_type would use (by calling code for a non-geographical one)."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code, ())
    if len(regions) == 1:
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, regions[0])
        return ((regions[0], None if metadata is None else Typing.of(metadata), None),)
    out: list[tuple[str, Typing | None, re.Pattern[str] | None]] = []
    for region in regions:
        metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
        if metadata is None:
            out.append((region, None, None))
            continue
        leading = None if metadata.leading_digits is None else \
            re.compile(metadata.leading_digits)
        out.append((region, Typing.of(metadata), leading))
    return tuple(out)


def region_and_type(number: phonenumbers.PhoneNumber) -> tuple[str | None, int]:
    """region_code_for_number and number_type (as an int) in one pass: a calling code
    shared by several regions is the first region whose leading digits match, or else
    whose patterns give the number a type."""
    regions = regions_of(number.country_code or 0)
    if not regions:
        return None, UNKNOWN
    national = phonenumbers.national_significant_number(number)
    if len(regions) == 1:
        region, typing, _ = regions[0]
        return region, UNKNOWN if typing is None else typing.type_of(national)
    for region, typing, leading in regions:
        if typing is None:
            continue
        if leading is not None:
            if leading.match(national):
                return region, typing.type_of(national)
        elif (kind := typing.type_of(national)) != UNKNOWN:
            return region, kind
    return None, UNKNOWN

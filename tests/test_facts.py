"""facts.py: a number's region, type, zones and US state, read with one parse and one
type evaluation, are exactly what phonenumbers' own public lookups say (each of which
works the region and type out again)."""

from __future__ import annotations

import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import geocoder
from phonenumbers import timezone as pn_timezone

from gatekeeper.facts import NUMBER_TYPES, describe, load_geocoder, us_state
from gatekeeper.quiet_defaults import US_STATE_NAMES

# NANPA numbers of any area code (assigned or not, as the bench draws them), and numbers
# of any calling code with 4 to 14 more digits (valid, invalid, non-geographical).
NANPA = st.integers(2_000_000_000, 9_999_999_999).map(lambda n: f"+1{n}")
ANY = st.builds(lambda code, rest: f"+{code}{rest}",
                st.sampled_from(sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)),
                st.integers(1000, 10 ** 14 - 1))
TOLL_FREE_AND_OTHERS = st.sampled_from([
    "+18005550100", "+19005550100", "+15005550006", "+447700900123", "+448001111111",
    "+33612345678", "+80012345678", "+882345678901", "+12684601234", "+17875550100",
    "+16045550100", "+1999", "+99912345"])


def reference(e164: str) -> tuple[str | None, str, str | None, tuple[str, ...],
                                  str | None]:
    """Region, type, home, zones and state through phonenumbers' public calls alone
    (what facts.py computed before it shared the parse and type)."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None, "unknown", None, (), None
    code = number.country_code or 0
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code, ())
    region = phonenumbers.region_code_for_number(number)
    if region is None and len(regions) == 1:
        region = regions[0]
    home = phonenumbers.region_code_for_country_code(code)
    kind = NUMBER_TYPES.get(phonenumbers.number_type(number), "unknown")
    zones = tuple(z for z in pn_timezone.time_zones_for_number(number)
                  if z != pn_timezone.UNKNOWN_TIMEZONE)
    name = geocoder.description_for_number(number, "en")
    city, comma, state = name.rpartition(", ")
    state = state if comma and city else US_STATE_NAMES.get(name, "")
    return (None if region in ("ZZ", "001") else region, kind,
            None if home in ("ZZ", "001") else home, zones,
            state if region == "US" and state in set(US_STATE_NAMES.values()) else None)


def ours(e164: str) -> tuple[str | None, str, str | None, tuple[str, ...], str | None]:
    known = describe(e164)
    return known.region, known.type, known.home, known.zones, us_state(e164)


@settings(max_examples=300, deadline=None)
@given(number=st.one_of(NANPA, ANY, TOLL_FREE_AND_OTHERS))
def test_facts_are_phonenumbers_own_answers(number: str) -> None:
    """Property: for any number, the shared parse and type give what phonenumbers'
    public lookups give one by one."""
    assert ours(number) == reference(number)


def examples() -> list[str]:
    """phonenumbers' example number of every type in every region (valid numbers of
    every region sharing a calling code: the region search's every branch)."""
    out = set()
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in NUMBER_TYPES:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                out.add(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164))
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            out.add(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164))
    return sorted(out)


def test_every_regions_example_numbers_get_phonenumbers_own_answers() -> None:
    """Every region's example numbers of every type (about 1,000): region, type, zones
    and state are phonenumbers' public answers."""
    numbers = examples()
    assert len(numbers) > 900
    wrong = [n for n in numbers if ours(n) != reference(n)]
    assert wrong == []


def test_phonenumbers_keeps_every_compiled_pattern() -> None:
    """Importing gatekeeper turns on phonenumbers' own pattern cache (its metadata's
    patterns are not recompiled once they leave re's 512-entry cache)."""
    from phonenumbers import re_util  # noqa: PLC0415 - its private state, read here only

    describe("+14155550188")
    assert re_util._COMPILED_PATTERNS


EXAMPLES = examples()


@settings(max_examples=1000, deadline=None)
@given(example=st.sampled_from(EXAMPLES), at=st.integers(2, 12),
       digits=st.text("0123456789", min_size=1, max_size=4))
def test_numbers_near_every_regions_examples_get_phonenumbers_own_answers(
        example: str, at: int, digits: str) -> None:
    """Property: an example number with a few digits changed anywhere past the calling
    code (valid numbers of neighbouring types and regions, invalid ones, other
    lengths) gets phonenumbers' public region, type, zones and state."""
    number = example[:at] + digits + example[at + len(digits) // 2 + 1:]
    assert ours(number) == reference(number)


def test_the_geocoder_loads_once_and_states_are_kept_per_number() -> None:
    """`load_geocoder` takes no time once the data is in (it is imported above), and a
    number's state is worked out once (the geocoder's lookup is kept, as `describe`'s
    facts are)."""
    assert load_geocoder() == 0.0
    us_state.cache_clear()
    assert us_state("+13055550100") == us_state("+13055550100") == "FL"
    assert us_state.cache_info().hits == 1

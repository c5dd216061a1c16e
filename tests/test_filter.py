"""store/filter.py: a packed load's filter says "maybe" for every number of the load
(it may only ever skip numbers certainly absent), and rarely for others."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.store import filter as sieve
from gatekeeper.store.filter import FilterBuilder, NumberFilter, spec, words_for, words_of

# E.164 digits as integers: any length E.164 allows, and up to the packed limit (18).
DIGITS = st.integers(min_value=1, max_value=10 ** 18 - 1)


def built(numbers: list[int], chunks: int = 1, flush_every: int = 1 << 20
          ) -> NumberFilter:
    """The filter of `numbers`, fed in `chunks` pieces as the importer feeds buckets,
    hashed `flush_every` numbers at a time."""
    builder = FilterBuilder(len(set(numbers)), flush_every)
    pieces = np.array_split(np.array(numbers, dtype=np.int64), max(1, chunks))
    for piece in pieces:
        builder.add(piece)
    return NumberFilter(builder.payload())


@settings(max_examples=200, deadline=None)
@given(numbers=st.lists(DIGITS, min_size=1, max_size=300), chunks=st.integers(1, 7),
       flush_every=st.sampled_from([1, 5, 1 << 20]))
def test_every_number_of_the_load_is_a_maybe(numbers: list[int], chunks: int,
                                             flush_every: int) -> None:
    """Property: the filter never rules out a number it was built from, however the
    numbers were fed (pieces, numpy passes of any size)."""
    numbers_filter = built(numbers, chunks, flush_every)
    for n in numbers:
        assert numbers_filter.might_hold(f"+{n}")


def test_absent_numbers_are_ruled_out_but_about_two_percent() -> None:
    """100,000 US numbers in, 50,000 others asked: about 1.9% false "maybe" at 10 bits
    a number (a deterministic draw; the bound leaves room, not a timing)."""
    rng = random.Random(11)
    inside = {rng.randrange(12_012_000_000, 19_899_999_999) for _ in range(100_000)}
    outside = [n for n in (rng.randrange(12_012_000_000, 19_899_999_999)
                           for _ in range(50_000)) if n not in inside]
    numbers_filter = built(sorted(inside), chunks=4)
    maybes = sum(numbers_filter.might_hold(f"+{n}") for n in outside)
    assert 0.005 < maybes / len(outside) < 0.03
    assert numbers_filter.size == words_for(100_000) == 15_625


@pytest.mark.parametrize("number", [
    "+44*", "+4479#sms", "44123", "+", "+١٢٣٤٥", "+1234567890123456789", "+12 34"])
def test_anything_not_an_exact_number_is_a_maybe(number: str) -> None:
    """Prefixes, channel members, non-ASCII digits, too many digits: never ruled out."""
    assert built([12025550100]).might_hold(number)


@pytest.mark.parametrize(("field", "words"), [
    (spec(15_625), 15_625), ("bloom64:1", 1), (None, None), ("", None),
    ("bloom64:0", None), ("bloom64:", None), ("bloom64:-3", None), ("cuckoo:99", None),
    ("bloom64:1e3", None)])
def test_the_record_field_names_the_format_and_size(field: str | None,
                                                    words: int | None) -> None:
    """Only this format's field with a positive size names a filter; anything else is
    read as no filter (the load's buckets are then always read)."""
    assert words_of(field) == words


@pytest.mark.parametrize("data", [b"", b"1234567", b"123456789"])
def test_a_filter_is_whole_words(data: bytes) -> None:
    """Bytes that are not whole 64-bit words are refused, not read as a filter."""
    with pytest.raises(ValueError, match="whole 64-bit words"):
        NumberFilter(data)


def test_the_python_check_reads_the_words_numpy_wrote() -> None:
    """The stored form is little-endian words: the one bit pattern both sides agree on
    (a filter with a single number sets at most PROBES bits, in one word)."""
    builder = FilterBuilder(1)
    builder.add(np.array([447911123456], dtype=np.int64))
    data = builder.payload()
    words = np.frombuffer(data, dtype="<u8")
    assert len(words) == 1
    assert 1 <= bin(int(words[0])).count("1") <= sieve.PROBES
    assert NumberFilter(data).might_hold("+447911123456")

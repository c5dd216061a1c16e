"""A packed load's filter: which numbers are certainly *not* in it (pure, no Redis here).

A blocked Bloom filter over the load's numbers (their E.164 digits as integers, as
store/packing.py files them): each number sets PROBES bits of one 64-bit word. The
importer builds it with numpy and stores it beside the buckets; each Gatekeeper process
keeps a copy, and when the copy says that none of a lookup's numbers is in a load, the
lookup asks the script to skip that load's bucket (store/lookup_scripts.py). It never decides a
block: "maybe" means the buckets are read as before, and a false "maybe" (about 2% of
absent numbers at BITS_PER_NUMBER) only costs that read. A number in the load always
answers "maybe", which tests/test_filter.py states as a property.

The hash is splitmix64's finaliser; the word is picked from its high 32 bits by
multiply-shift (any number of words), the bits from its low 36 bits, six at a time.
"""

from __future__ import annotations

import sys
from array import array
from functools import lru_cache

import numpy as np
import numpy.typing as npt

# Bits of filter per number: 10 gives about 1.9% false "maybe" with PROBES = 6.
BITS_PER_NUMBER = 10
PROBES = 6
# The record's `filter` field: this format's name, then the filter's size in words.
FORMAT = "bloom64"
# Numbers hashed per numpy pass while building: bounded temporary memory, and about 6
# ms of CPU, so that an import inside the serving process yields to requests between.
_CHUNK = 1 << 16

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MUL1 = 0xBF58476D1CE4E5B9
_MUL2 = 0x94D049BB133111EB


def spec(words: int) -> str:
    """The record's `filter` field for a filter of `words` 64-bit words."""
    return f"{FORMAT}:{words}"


def words_of(field: str | None) -> int | None:
    """The size in words a record's `filter` field names; None when it names no filter
    this code reads (no field: a load written before filters, or another format)."""
    if not field:
        return None
    name, _, size = field.partition(":")
    if name != FORMAT or not size.isdigit() or int(size) < 1:
        return None
    return int(size)


def words_for(count: int) -> int:
    """How many words a filter of `count` numbers gets."""
    return max(1, -(-count * BITS_PER_NUMBER // 64))


@lru_cache(maxsize=65536)
def _probe(number: str) -> tuple[int, int] | None:
    """A number's hash's high 32 bits (which word) and its PROBES-bit mask; None when it
    is not an exact number (cached: the same numbers come back on every request)."""
    digits = number[1:]
    if not number.startswith("+") or not digits.isdigit() or not digits.isascii() \
            or len(digits) > 18:
        return None
    z = (int(digits) + _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * _MUL1) & _MASK64
    z = ((z ^ (z >> 27)) * _MUL2) & _MASK64
    z ^= z >> 31
    mask = 0
    for i in range(PROBES):
        mask |= 1 << ((z >> (6 * i)) & 63)
    return z >> 32, mask


class NumberFilter:
    """A load's filter as a process holds it."""

    __slots__ = ("_words", "size")

    def __init__(self, data: bytes) -> None:
        if not data or len(data) % 8:
            raise ValueError(f"a filter is whole 64-bit words, not {len(data)} bytes")
        words = array("Q")
        words.frombytes(data)
        if sys.byteorder != "little":  # stored little-endian (numpy '<u8')
            words.byteswap()
        self._words = words
        self.size = len(words)

    def might_hold(self, number: str) -> bool:
        """False only when `number` (E.164) is certainly not among the load's numbers;
        True for any number that is, and for anything not an exact number."""
        probe = _probe(number)
        if probe is None:
            return True
        mask = probe[1]
        return self._words[(probe[0] * self.size) >> 32] & mask == mask


class FilterBuilder:
    """The filter of a load of `count` numbers, fed its numbers a bucket at a time."""

    def __init__(self, count: int, chunk: int = _CHUNK) -> None:
        self.size = words_for(count)
        self._chunk = chunk
        self.passes = 0
        """numpy passes run so far (the writer yields to the event loop after each)."""
        self._words = np.zeros(self.size, dtype=np.uint64)
        self._pending: list[npt.NDArray[np.int64]] = []
        self._held = 0

    def add(self, numbers: npt.NDArray[np.int64]) -> None:
        """Take some numbers (E.164 digits as integers)."""
        self._pending.append(numbers)
        self._held += len(numbers)
        if self._held >= self._chunk:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        z = np.concatenate(self._pending).astype(np.uint64)
        self._pending, self._held = [], 0
        self.passes += 1
        z += np.uint64(_GOLDEN)
        z ^= z >> np.uint64(30)
        z *= np.uint64(_MUL1)
        z ^= z >> np.uint64(27)
        z *= np.uint64(_MUL2)
        z ^= z >> np.uint64(31)
        index = (((z >> np.uint64(32)) * np.uint64(self.size)) >> np.uint64(32)).astype(np.intp)
        mask = np.zeros(len(z), dtype=np.uint64)
        bit = np.empty(len(z), dtype=np.uint64)
        for i in range(PROBES):
            np.right_shift(z, np.uint64(6 * i), out=bit)
            np.bitwise_and(bit, np.uint64(63), out=bit)
            np.left_shift(np.uint64(1), bit, out=bit)
            mask |= bit
        np.bitwise_or.at(self._words, index, mask)

    def payload(self) -> bytes:
        """The filter as stored: its words, little-endian."""
        self._flush()
        return self._words.astype("<u8").tobytes()

"""The packed encoding of bulk-loaded numbers: exact, compact, and pure (no Redis here).

A number's E.164 digits, read as an integer `n`, are split as `head, rest = divmod(n,
10**7)`: the bucket is the head, the member its last seven digits as an integer. Redis
keeps a set of small integers as an *intset* (a sorted array of 4-byte integers), so a
packed number costs about four bytes. The head alone tells the number's length, since
E.164 digits never start with 0: a head of `h` holds only numbers of `len(str(h)) + 7`
digits (and head 0 the numbers of seven digits or fewer). Nothing here is probabilistic:
a member is in a bucket or it is not.

`PackedBuilder` gathers one load's numbers per bucket in arrays of 4-byte integers and
yields each bucket sorted and without repeats: Redis appends a sorted run to an intset
without moving what it holds, where random order would move half the set per insert.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterator

REST_DIGITS = 7
REST = 10 ** REST_DIGITS
# The `set-max-intset-entries` packed loads want: a bucket holds up to this many
# numbers as an intset (250 million US numbers give about 312,000 per bucket). The
# embedded server is configured so; with an external one Gatekeeper warns when lower.
INTSET_ENTRIES = 1_000_000
# Members per SADD: a few milliseconds of Redis's time, so lookups are never held up long.
SADD_CHUNK = 8192


def split(e164: str) -> tuple[int, int] | None:
    """(head, member) of an exact number in E.164 (`+` then digits), else None."""
    digits = e164[1:]
    if not e164.startswith("+") or not digits.isdigit() or not digits.isascii():
        return None
    head, member = divmod(int(digits), REST)
    return head, member


def joined(head: int, member: int) -> str:
    """The E.164 number a bucket's member stands for."""
    return f"+{head * REST + member}"


class PackedBuilder:
    """One load's exact numbers, gathered per bucket: each bucket's members in an array
    of 4-byte integers (the importer's memory is about 4 bytes a number, as Redis's)."""

    def __init__(self) -> None:
        self._buckets: dict[int, array[int]] = {}
        self.offered = 0

    def add(self, e164: str) -> bool:
        """Take a number; False (and nothing taken) when it is not an exact E.164."""
        parts = split(e164)
        if parts is None:
            return False
        self._bucket(parts[0]).append(parts[1])
        self.offered += 1
        return True

    def add_numbers(self, numbers: list[int]) -> None:
        """Take many numbers (E.164 digits as ints). One inline loop: measured twice as
        fast as sorting each chunk to copy slices (the buckets are sorted at the end)."""
        buckets = self._buckets
        get = buckets.get
        for number in numbers:
            head = number // REST
            bucket = get(head)
            if bucket is None:
                bucket = buckets[head] = array("i")
            bucket.append(number - head * REST)
        self.offered += len(numbers)

    def _bucket(self, head: int) -> array[int]:
        bucket = self._buckets.get(head)
        if bucket is None:
            bucket = self._buckets[head] = array("i")
        return bucket

    def buckets(self) -> Iterator[tuple[int, list[int]]]:
        """Each bucket in head order, its members sorted and each once; a bucket is
        released as it is handed out (bounded memory)."""
        for head in sorted(self._buckets):
            yield head, sorted(set(self._buckets.pop(head)))

    def __len__(self) -> int:
        return self.offered


def _bulk(text: str) -> str:
    return f"${len(text)}\r\n{text}\r\n"


def command(*args: str) -> bytes:
    """One command in RESP (ASCII arguments)."""
    return (f"*{len(args)}\r\n" + "".join(map(_bulk, args))).encode("ascii")


def _members(members: list[int], start: int, end: int) -> str:
    """members[start:end] (ascending) as RESP bulk strings. Ascending integers come in
    runs of equal length: each run is joined in one call instead of one string each."""
    texts = list(map(str, members[start:end]))
    parts: list[str] = []
    first = 0
    while first < len(texts):
        width = len(texts[first])
        last = bisect_left(members, 10 ** width, start + first, end) - start
        run = texts[first:last]
        parts.append(f"${width}\r\n" + f"\r\n${width}\r\n".join(run) + "\r\n")
        first = last
    return "".join(parts)


def sadd_commands(key: str, members: list[int]) -> Iterator[bytes]:
    """SADD commands adding `members` (sorted, non-negative) to `key`, SADD_CHUNK at a
    time, in order (Redis then appends to the intset)."""
    head = _bulk(key)
    for start in range(0, len(members), SADD_CHUNK):
        end = min(start + SADD_CHUNK, len(members))
        yield (f"*{end - start + 2}\r\n$4\r\nSADD\r\n{head}"
               + _members(members, start, end)).encode("ascii")

"""The packed encoding of bulk-loaded numbers: exact, compact, and pure (no Redis here).

A number's E.164 digits, read as an integer `n`, are split as `head, rest = divmod(n,
10**d)`: the bucket is the head, the member its last `d` digits as an integer (`d`, the
load's *rest digits*, is 4 to 7, chosen per load and kept in its record; loads written
before the choice existed have 7). Redis keeps a set of small integers as an *intset*, a
sorted array of 2-byte integers when every member is below 32,768 (d = 4) and of 4-byte
ones otherwise, while it holds at most `set-max-intset-entries` members (512 unless
configured; the embedded server allows 1,000,000); a bigger set is a hash table, about
15 times the memory (still exact). The head alone tells the number's length, since
E.164 digits never start with 0: a head of `h` holds only numbers of `len(str(h)) + d`
digits (and head 0 the numbers of `d` digits or fewer). Nothing here is probabilistic: a
member is in a bucket or it is not.

`PackedBuilder` gathers one load's numbers per 7-digit bucket in arrays of 4-byte
integers, then `plan` picks `d` for the server's intset limit: the fewest bytes (members
plus about BUCKET_BYTES per bucket) among the splits whose biggest bucket stays an
intset (short lists: 7, few big buckets; a national list: 4, many buckets of 2-byte
members). Each bucket is handed out sorted and without repeats: Redis appends a sorted
run to an intset without moving what it holds.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterator

REST_DIGITS = 7
REST = 10 ** REST_DIGITS
# The splits a load may use (rest digits): below 4, members take 2 bytes all the same.
SPLITS = (7, 6, 5, 4)
# What one more bucket costs in Redis beyond its members, about: its key, object and
# intset header, and its entry in the load's index.
BUCKET_BYTES = 170
# 7-digit buckets looked at to choose a split.
STATS_SAMPLE = 64
# Redis's default `set-max-intset-entries`: assumed when the server's cannot be read.
DEFAULT_INTSET_ENTRIES = 512
# The `set-max-intset-entries` packed loads want: a bucket holds up to this many
# numbers as an intset (250 million US numbers give about 312,000 per bucket). The
# embedded server is configured so; with an external one Gatekeeper warns when lower.
INTSET_ENTRIES = 1_000_000
# Members per SADD: a few milliseconds of Redis's time, so lookups are never held up long.
SADD_CHUNK = 8192


def split(e164: str, rest_digits: int = REST_DIGITS) -> tuple[int, int] | None:
    """(head, member) of an exact number in E.164 (`+` then digits), else None."""
    digits = e164[1:]
    if not e164.startswith("+") or not digits.isdigit() or not digits.isascii():
        return None
    head, member = divmod(int(digits), 10 ** rest_digits)
    return head, member


def joined(head: int, member: int, rest_digits: int = REST_DIGITS) -> str:
    """The E.164 number a bucket's member stands for."""
    return f"+{head * 10 ** rest_digits + member}"


def member_bytes(rest_digits: int) -> int:
    """Bytes per member in an intset of `rest_digits`-digit members."""
    return 2 if 10 ** rest_digits <= 32768 else 4


class PackedBuilder:
    """One load's exact numbers, gathered per bucket: each bucket's members in an array
    of 4-byte integers (the importer's memory is about 4 bytes a number, as Redis's)."""

    def __init__(self) -> None:
        self._buckets: dict[int, array[int]] = {}
        self.offered = 0
        self.rest_digits = REST_DIGITS  # until `plan` chooses
        self._planned = False  # `plan` leaves each bucket sorted and without repeats

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

    def plan(self, intset_entries: int) -> int:
        """Sort and deduplicate every bucket, then choose the split (rest digits) for a
        server keeping sets of up to `intset_entries` integers as intsets."""
        for head, bucket in self._buckets.items():
            self._buckets[head] = array("i", sorted(set(bucket)))
        self._planned = True
        count = sum(len(b) for b in self._buckets.values())
        # Estimated from at most STATS_SAMPLE buckets, evenly spread (a national list has
        # hundreds): only memory rides on the choice, never which numbers match.
        heads7 = sorted(self._buckets)
        step = max(1, len(heads7) // STATS_SAMPLE)
        sample = [self._buckets[h] for h in heads7[::step]]
        scale = count / max(1, sum(len(b) for b in sample))
        best: tuple[bool, int, int] | None = None  # (too big, bytes, -digits)
        for digits in SPLITS:
            if best is not None and not best[0] and \
                    member_bytes(digits) >= member_bytes(-best[2]):
                # A finer split has as many buckets or more: it cannot cost less.
                continue
            width = 10 ** digits
            heads = biggest = 0
            for bucket in sample:
                for size in _group_sizes(bucket, width):
                    heads += 1
                    biggest = max(biggest, size)
            cost = (biggest > intset_entries,
                    count * member_bytes(digits) + round(heads * scale) * BUCKET_BYTES,
                    -digits)
            if best is None or cost < best:
                best = cost
        self.rest_digits = REST_DIGITS if best is None else -best[2]
        return self.rest_digits

    def buckets(self) -> Iterator[tuple[int, list[int]]]:
        """Each bucket of the planned split in head order, its members sorted and each
        once; a 7-digit bucket is released as it is handed out (bounded memory)."""
        digits = self.rest_digits
        width = 10 ** digits
        per = REST // width
        for head7 in sorted(self._buckets):
            bucket = self._buckets.pop(head7)
            members = bucket.tolist() if self._planned else sorted(set(bucket))
            if digits == REST_DIGITS:
                yield head7, members
                continue
            start = 0
            while start < len(members):
                group = members[start] // width
                end = bisect_left(members, (group + 1) * width, start)
                yield head7 * per + group, [m - group * width for m in members[start:end]]
                start = end

    def __len__(self) -> int:
        return self.offered


def _group_sizes(bucket: array[int], width: int) -> Iterator[int]:
    """Sizes of the non-empty groups of a sorted bucket split every `width` values."""
    start, end = 0, len(bucket)
    while start < end:
        stop = bisect_left(bucket, (bucket[start] // width + 1) * width, start, end)
        yield stop - start
        start = stop


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

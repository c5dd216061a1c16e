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

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

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
# Digits an E.164 number may have here: its digits as an integer fit in 64 bits.
MAX_DIGITS = 18
# Numbers taken one by one (`add`) before they are filed as one chunk.
_SINGLES = 65536
# Sorted pieces a bucket gathers before they are merged into one.
_PIECES = 64
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
    """One load's exact numbers, gathered per 7-digit bucket: each bucket's members in
    numpy arrays of 4-byte integers (the importer's memory is about 4 bytes a number, as
    Redis's), sorted a chunk at a time so that the final sort of a bucket merges runs."""

    def __init__(self) -> None:
        self._pieces: dict[int, list[npt.NDArray[np.int32]]] = {}
        self._buckets: dict[int, npt.NDArray[np.int32]] = {}
        self._singles: list[int] = []
        self.offered = 0
        self.rest_digits = REST_DIGITS  # until `plan` chooses
        self._planned = False  # `plan` leaves each bucket sorted and without repeats

    def add(self, e164: str) -> bool:
        """Take a number; False (and nothing taken) when it is not an exact E.164 of at
        most MAX_DIGITS digits."""
        digits = e164[1:]
        if not e164.startswith("+") or not digits.isdigit() or not digits.isascii() \
                or len(digits) > MAX_DIGITS:
            return False
        self._singles.append(int(digits))
        self.offered += 1
        if len(self._singles) >= _SINGLES:
            self._file(self._singles)
            self._singles = []
        return True

    def add_numbers(self, numbers: list[int]) -> None:
        """Take many numbers (E.164 digits as ints, at most MAX_DIGITS digits each)."""
        self._file(numbers)
        self.offered += len(numbers)

    def _file(self, numbers: list[int]) -> None:
        """Sort a chunk (at C speed) and file each 7-digit bucket's run of it."""
        if not numbers:
            return
        values = np.sort(np.array(numbers, dtype=np.int64))
        heads = values // REST
        cuts = np.flatnonzero(heads[1:] != heads[:-1]) + 1
        starts = np.concatenate(([0], cuts))
        members = (values - heads * REST).astype(np.int32)
        for head, piece in zip(heads[starts].tolist(), np.split(members, cuts), strict=True):
            pieces = self._pieces.setdefault(head, [])
            pieces.append(piece)
            if len(pieces) >= _PIECES:
                # Bounded: a piece costs ~100 bytes however few numbers it holds.
                self._pieces[head] = [_merged(pieces)]

    def _gather(self) -> None:
        """Every bucket as one sorted array without repeats (the pieces are released)."""
        self._file(self._singles)
        self._singles = []
        for head in sorted(self._pieces):
            merged = _merged(self._pieces.pop(head))
            keep = np.empty(len(merged), dtype=bool)
            keep[:1] = True
            np.not_equal(merged[1:], merged[:-1], out=keep[1:])
            self._buckets[head] = merged[keep]

    def plan(self, intset_entries: int) -> int:
        """Sort and deduplicate every bucket, then choose the split (rest digits) for a
        server keeping sets of up to `intset_entries` integers as intsets."""
        self._gather()
        self._planned = True
        count = sum(len(b) for b in self._buckets.values())
        # Estimated from at most STATS_SAMPLE buckets, evenly spread (a national list has
        # hundreds): only memory rides on the choice, never which numbers match.
        heads7 = list(self._buckets)
        step = max(1, len(heads7) // STATS_SAMPLE)
        sample = [self._buckets[h] for h in heads7[::step]]
        scale = count / max(1, sum(len(b) for b in sample))
        best: tuple[bool, int, int] | None = None  # (too big, bytes, -digits)
        for digits in SPLITS:
            if best is not None and not best[0] and \
                    member_bytes(digits) >= member_bytes(-best[2]):
                # A finer split has as many buckets or more: it cannot cost less.
                continue
            heads = biggest = 0
            for bucket in sample:
                sizes = _group_sizes(bucket, 10 ** digits)
                heads += len(sizes)
                biggest = max(biggest, int(sizes.max(initial=0)))
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
        for head, members in self.bucket_arrays():
            yield head, members.tolist()

    def distinct(self) -> int:
        """How many distinct numbers it holds (after `plan`)."""
        if not self._planned:
            self._gather()
        return sum(len(b) for b in self._buckets.values())

    def bucket_arrays(self, seen: Callable[[npt.NDArray[np.int64]], None] | None = None
                      ) -> Iterator[tuple[int, npt.NDArray[np.int32]]]:
        """`buckets`, each bucket's members as an array; `seen` is given every number
        (its digits as an integer) a 7-digit bucket at a time, before its buckets."""
        if not self._planned:
            self._gather()
        digits = self.rest_digits
        width = 10 ** digits
        per = REST // width
        for head7 in sorted(self._buckets):
            members = self._buckets.pop(head7)
            if seen is not None:
                seen(members.astype(np.int64) + head7 * REST)
            if digits == REST_DIGITS:
                yield head7, members
                continue
            groups = members // width
            cuts = np.flatnonzero(groups[1:] != groups[:-1]) + 1
            for start, piece in zip(np.concatenate(([0], cuts)).tolist(),
                                    np.split(members, cuts), strict=True):
                group = int(groups[start])
                yield head7 * per + group, piece - group * width

    def __len__(self) -> int:
        return self.offered


def _merged(pieces: list[npt.NDArray[np.int32]]) -> npt.NDArray[np.int32]:
    """Sorted runs as one sorted array (a stable sort merges runs in linear time)."""
    if len(pieces) == 1:
        return pieces[0]
    return np.sort(np.concatenate(pieces), kind="stable")


def _group_sizes(bucket: npt.NDArray[np.int32], width: int) -> npt.NDArray[np.intp]:
    """Sizes of the non-empty groups of a sorted bucket split every `width` values."""
    if not len(bucket):
        return np.zeros(0, dtype=np.intp)
    groups = bucket // width
    cuts = np.flatnonzero(groups[1:] != groups[:-1]) + 1
    return np.diff(np.concatenate(([0], cuts, [len(bucket)])))


def _bulk(text: str) -> str:
    return f"${len(text)}\r\n{text}\r\n"


def command(*args: str) -> bytes:
    """One command in RESP (ASCII arguments)."""
    return (f"*{len(args)}\r\n" + "".join(map(_bulk, args))).encode("ascii")


# 10**k for k = 0..18: where a sorted run of members changes its number of digits.
_POWERS = np.array([10 ** k for k in range(19)], dtype=np.int64)


def _resp_members(members: npt.NDArray[np.int64]) -> bytes:
    """Sorted non-negative integers as RESP bulk strings (`$<width>\\r\\n<digits>\\r\\n`),
    built as byte matrices at C speed: sorted members come in runs of one width."""
    cuts = np.searchsorted(members, _POWERS[1:], side="left")
    parts: list[bytes] = []
    first = 0
    for width, last in enumerate(cuts.tolist(), start=1):
        if last > first:
            run = members[first:last]
            head = f"${width}\r\n".encode("ascii")
            rows = np.empty((len(run), len(head) + width + 2), dtype=np.uint8)
            rows[:, :len(head)] = np.frombuffer(head, dtype=np.uint8)
            for k in range(width):
                rows[:, len(head) + k] = run // _POWERS[width - 1 - k] % 10 + 48
            rows[:, -2:] = (13, 10)
            parts.append(rows.tobytes())
            first = last
    if first < len(members):  # only 19-digit values are left: E.164 has no such
        raise ValueError("a packed member has more than 18 digits")
    return b"".join(parts)


def sadd_commands(key: str, members: Sequence[int] | npt.NDArray[np.integer[Any]]
                  ) -> Iterator[bytes]:
    """SADD commands adding `members` (sorted, non-negative) to `key`, SADD_CHUNK at a
    time, in order (Redis then appends to the intset)."""
    values = np.asarray(members, dtype=np.int64)
    head = _bulk(key)
    for start in range(0, len(values), SADD_CHUNK):
        chunk = values[start:start + SADD_CHUNK]
        yield (f"*{len(chunk) + 2}\r\n$4\r\nSADD\r\n{head}".encode("ascii")
               + _resp_members(chunk))

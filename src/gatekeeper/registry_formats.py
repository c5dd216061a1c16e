"""Files of national do-not-call registries read into E.164 numbers, fast: pure, no I/O.

Formats (sources and open questions in docs/registry-formats.md):

- `us-dnc`: a US National Do Not Call Registry full list, one number a line: ten digits
  (`2025550123`) or area code, comma, seven digits (`202,5550123`).
- `us-dnc-change`: a US change list, comma-separated records each holding one number
  and one add/delete flag (`A`/`D`, `add`/`delete`...) in any column; other cells (dates)
  are ignored. A record without a flag is refused: adding or deleting is not guessed.
- `tps`: a UK TPS/CTPS download, national numbers with their leading 0, in the
  12-character fixed-width records (`0207 3787244`, `02073787244 `) or bare.
- `plain` and `csv`: the bulk importer's own formats, given a fast path for national
  numbers of NANP regions and of GB (and its +44 neighbours) and for E.164.

Numbers come out as ints of their E.164 digits (+12025550123 -> 12025550123). A line
the syntax tables cannot settle goes to `slow` for the caller's phonenumbers-based
reader; a line certainly wrong goes to `errors`. Only blank lines, `#` comments and one
header line (the file's first line, words and no digits) are skipped.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Literal

import phonenumbers
from phonenumbers import PhoneMetadata

from gatekeeper.registry_whole import _whole_e164_nanp, _whole_nanp

Format = Literal["plain", "csv", "us-dnc", "us-dnc-change", "tps"]

# Same bound as the bulk importer's reader; a longer line is refused, not parsed.
MAX_LINE = 4096
_SHOWN = 80
_DETECT_LINES = 200
_BOM = b"\xef\xbb\xbf"

_ADD, _DELETE, _SLOW, _ERROR = range(4)
_Outcome = tuple[int, int | str]
_National = Callable[[bytes], _Outcome]
_SLOW_LINE: _Outcome = (_SLOW, "")

_COUNTRY_CODES = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
_NANP_REGIONS = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1])
_GB_REGIONS = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[44])
# Adding these turns national digits into E.164 digits: `1` + ten, `44` + ten or nine.
_NANP_BASE = 10_000_000_000
_GB_BASE = 440_000_000_000
_GB_BASE9 = 44_000_000_000
# UK national significant numbers never start with 0 (the trunk prefix); 04 and 06 are
# unallocated, so such numbers are left to phonenumbers rather than accepted here.
_GB_FIRST = frozenset(b"1235789")
# Nine-digit NSNs exist only in some 01 areas and in 0500/0800.
_GB_FIRST9 = frozenset(b"18")
# What people put between digits; the bulk importer removes the same set.
_SEPARATORS = b" \t-.()/"
_CELLS = re.compile(rb"[,;|\t]")
_CSV_DELIMITER = re.compile(rb"[,;\t]")
_HEADER_WORD = re.compile(r"[^\W\d_]+(?:[ _-][^\W\d_]+)*")
_ANY_DIGIT = re.compile(rb"\d")
_US_SHAPE = re.compile(rb"[2-9]\d\d,?[2-9]\d{6}")
# TPS records are 12 characters: a 5-character dialling code field (left-justified)
# and a 7-character remainder (right-justified), or the digits padded with spaces.
_TPS_SPACED = re.compile(rb"0[1-9]\d{2,3} {1,2}\d{6,7}")
_TPS_PADDED = re.compile(rb"0[1-9]\d{8,9} {1,2}")
_FLAGS = {
    **dict.fromkeys((b"A", b"ADD", b"ADDED", b"ADDITION", b"ADDITIONS"), _ADD),
    **dict.fromkeys((b"D", b"DEL", b"DELETE", b"DELETED", b"DELETION", b"DELETIONS"),
                    _DELETE),
}




@dataclass(frozen=True, slots=True)
class Chunk:
    """What parse_chunk made of some complete lines."""

    adds: list[int]
    deletes: list[int]
    slow: list[tuple[int, str]]
    errors: list[tuple[int, str, str]]
    lines: int
    started: bool = True
    """Whether a line other than blanks and comments was among them (the header, if
    any, is the file's first such line, whichever chunk it falls in)."""


@cache
def _possible_lengths(country_code: int) -> frozenset[int]:
    """NSN lengths phonenumbers calls possible for a country code (not local-only)."""
    region = phonenumbers.region_code_for_country_code(country_code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    if metadata is None or metadata.general_desc is None:
        return frozenset()
    return frozenset(n for n in metadata.general_desc.possible_length if n > 0)


def _nanp10(digits: bytes) -> _Outcome:
    """Ten NANP digits after the country code: NPA-NXX-XXXX, NPA and NXX from 2-9.
    Anything else goes to the slow path, never to the errors: phonenumbers (which the
    proxy reads destinations with) calls some of them possible, and an entry it would
    take must never be lost here."""
    if len(digits) != 10 or digits[0] < 50 or digits[3] < 50:
        return _SLOW_LINE
    return _ADD, _NANP_BASE + int(digits)


def _nanp_national(digits: bytes) -> _Outcome:
    if len(digits) == 11 and digits[0] == 49:  # 1 + ten digits, as dialled
        return _nanp10(digits[1:])
    if digits.startswith(b"011") and len(digits) > 11:
        return _SLOW_LINE  # dialled from NANP to another country: phonenumbers knows
    return _nanp10(digits)


def _gb_nsn(nsn: bytes, explicit: bool) -> _Outcome:
    """A UK national significant number; `explicit` when a 0 or +44 marked where it
    starts (otherwise only the common ten-digit form is taken as certain)."""
    size = len(nsn)
    if size == 10 and nsn[0] in _GB_FIRST:
        return _ADD, _GB_BASE + int(nsn)
    if explicit and size == 9 and nsn[0] in _GB_FIRST9:
        return _ADD, _GB_BASE9 + int(nsn)
    return _SLOW_LINE  # phonenumbers decides (it takes some the tables would not)


def _gb_national(digits: bytes) -> _Outcome:
    if digits.startswith(b"00") or (digits.startswith(b"44") and len(digits) > 10):
        return _SLOW_LINE  # international forms: phonenumbers reads them
    if digits[:1] == b"0":
        return _gb_nsn(digits[1:], explicit=True)
    # The 0 dropped (a spreadsheet reading the number as an integer).
    return _gb_nsn(digits, explicit=False)


def _e164(digits: bytes) -> _Outcome:
    """`+` then `digits` (ASCII digits only). Only a certain number is taken here;
    anything else is for phonenumbers (the proxy's reader), never refused here."""
    if digits[0] == 48 or len(digits) > 15:
        return _SLOW_LINE
    if digits[0] == 49:
        return _nanp10(digits[1:])
    if digits.startswith(b"44"):
        nsn = digits[2:]
        return _SLOW_LINE if nsn[:1] == b"0" else _gb_nsn(nsn, explicit=True)
    for size in (1, 2, 3):  # country codes are prefix-free: at most one matches
        code = int(digits[:size])
        if code in _COUNTRY_CODES:
            if len(digits) >= 8 and len(digits) - size in _possible_lengths(code):
                return _ADD, int(digits)
            return _SLOW_LINE
    return _SLOW_LINE


def _number(field: bytes, national: _National | None, lenient: bool) -> _Outcome:
    """One number, separators allowed: E.164, or national digits read by `national`.
    Other text is for phonenumbers when `lenient`, an error in a registry file."""
    text = field.translate(None, _SEPARATORS)
    if text[:1] == b"+" and text[1:].isdigit():
        return _e164(text[1:])
    if text.isdigit():
        return national(text) if national is not None else _SLOW_LINE
    if not text:
        return _ERROR, "no digits"
    return _SLOW_LINE if lenient else (_ERROR, "not a telephone number")


def _plain(line: bytes, national: _National | None) -> _Outcome:
    return _number(line, national, lenient=True)


def _tps(line: bytes, national: _National | None) -> _Outcome:
    return _number(line, _gb_national, lenient=False)


def _csv(line: bytes, national: _National | None) -> _Outcome:
    found = _CSV_DELIMITER.search(line)
    if found is not None:
        if line[found.end():].strip(b' \t,;"'):
            return _SLOW_LINE  # a channel or other cells: the bulk reader's to read
        line = line[:found.start()].strip()
    if len(line) >= 2 and line[0] == line[-1] == 34 and b'"' not in line[1:-1]:
        line = line[1:-1]
    elif b'"' in line:
        return _SLOW_LINE
    return _number(line, national, lenient=True)


def _us_full(line: bytes, national: _National | None) -> _Outcome:
    if b"," in line:
        cells = [cell.strip() for cell in line.split(b",")]
        while cells and not cells[-1]:
            cells.pop()
        if len(cells) == 2 and len(cells[0]) == 3 and len(cells[1]) == 7:
            joined = cells[0] + cells[1]
            if joined.isdigit():
                return _nanp10(joined)
        if len(cells) != 1:
            return _ERROR, "expected one number (or area code,number) per line"
        line = cells[0]
    return _number(line, _nanp_national, lenient=False)


def _us_change(line: bytes, national: _National | None) -> _Outcome:
    cells = [cell.strip(b' \t"') for cell in _CELLS.split(line)]
    if len(cells) == 1:
        cells = line.split()
    flags = {_FLAGS.get(cell.upper(), -1) for cell in cells}
    flags.discard(-1)
    if not flags:
        return _ERROR, "no add/delete flag (A or D, add or delete) in a change record"
    if len(flags) > 1:
        return _ERROR, "both an add and a delete flag"
    found: list[bytes] = []
    for i, cell in enumerate(cells):
        digits = cell if cell.isdigit() else cell.translate(None, _SEPARATORS)
        plus = digits[:1] == b"+"
        digits = digits[1:] if plus else digits
        if not digits.isdigit():
            continue
        if (len(digits) == 11 and digits[0] == 49) or (len(digits) == 10 and not plus):
            found.append(digits)
        elif len(cell) == 3 and i + 1 < len(cells) and len(cells[i + 1]) == 7:
            pair = cell + cells[i + 1]  # area code, then the seven-digit number
            if pair.isdigit():
                found.append(pair)
    if len(found) != 1:
        return _ERROR, ("no telephone number" if not found
                        else "more than one telephone number in a change record")
    kind, value = _nanp_national(found[0])
    return (_DELETE, value) if kind == _ADD and _DELETE in flags else (kind, value)


_LINE_READERS: dict[str, Callable[[bytes, _National | None], _Outcome]] = {
    "plain": _plain, "csv": _csv, "us-dnc": _us_full, "us-dnc-change": _us_change,
    "tps": _tps,
}


def _national_reader(fmt: Format, region: str) -> _National | None:
    """How national digits are read: registry files fix their country, the bulk
    importer's formats take the import's region."""
    if fmt in ("us-dnc", "us-dnc-change"):
        return _nanp_national
    if fmt == "tps":
        return _gb_national
    if region in _NANP_REGIONS:
        return _nanp_national
    return _gb_national if region in _GB_REGIONS else None


def _is_header(line: bytes) -> bool:
    """Words and no digits, like `phone` or `AreaCode,Number`: a header, not data."""
    if _ANY_DIGIT.search(line):
        return False
    first = _CELLS.split(line, maxsplit=1)[0].strip().strip(b'"')
    return _HEADER_WORD.fullmatch(first.decode("utf-8", "replace")) is not None


def parse_chunk(data: bytes, fmt: Format, region: str, first_line: int,
                header_open: bool | None = None) -> Chunk:
    """Parse complete lines (data ends at a line boundary). region: 'US' or 'GB' etc;
    national numbers take it in plain and csv (the registry formats fix their own).
    header_open: no line but blanks and comments came before (default: first_line is
    1), so the first other line may be a header."""
    if header_open is None:
        header_open = first_line == 1
    if first_line == 1 and data.startswith(_BOM):
        data = data[len(_BOM):]
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    lines = data.split(b"\n")
    if not lines[-1]:
        lines.pop()  # the text after the final newline is no line
    national = _national_reader(fmt, region)
    nanp_quick = national is _nanp_national and fmt != "us-dnc-change"
    if nanp_quick:
        whole = _whole_nanp(data, len(lines), comma=fmt == "us-dnc")
        if whole is not None:
            return Chunk(whole, [], [], [], len(lines))
    if fmt in ("plain", "csv"):
        whole = _whole_e164_nanp(data, len(lines))
        if whole is not None:
            return Chunk(whole, [], [], [], len(lines))
    adds: list[int] = []
    deletes: list[int] = []
    slow: list[tuple[int, str]] = []
    errors: list[tuple[int, str, str]] = []
    read = _LINE_READERS[fmt]
    header = -1
    started = not header_open
    if header_open:
        for i, raw in enumerate(lines):
            text = raw.strip()
            if text and text[0] != 35:
                header = i if _is_header(text) else -1
                started = True
                break

    def one(i: int, raw: bytes) -> None:
        text = raw.strip()
        line = first_line + i
        shown = text[:_SHOWN].decode("utf-8", "replace")
        if len(raw) > MAX_LINE:  # refused before anything else, as the bulk reader does
            errors.append((line, shown + "...", f"line too long (over {MAX_LINE} bytes)"))
            return
        if not text or text[0] == 35 or i == header:  # blank, `#` comment, the header
            return
        kind, value = read(text, national)
        if kind == _ERROR:
            errors.append((line, shown, str(value)))
        elif kind == _SLOW:
            try:
                slow.append((line, text.decode("utf-8")))
            except UnicodeDecodeError:
                errors.append((line, shown, "not UTF-8 text"))
        elif isinstance(value, int):
            (adds if kind == _ADD else deletes).append(value)

    if nanp_quick:
        for i, raw in enumerate(lines):
            if len(raw) == 10 and raw.isdigit() and raw[0] > 49 and raw[3] > 49:
                adds.append(_NANP_BASE + int(raw))
            elif (len(raw) == 12 and raw[1] == 49 and raw[0] == 43 and raw[2] > 49
                  and raw[5] > 49 and raw[1:].isdigit()):
                adds.append(int(raw))  # +1 NPA-NXX-XXXX; int() reads the `+`
            else:
                one(i, raw)
    elif national is _gb_national:
        # Spaces are the TPS records' padding: drop them once for the whole chunk.
        for i, squeezed in enumerate(data.translate(None, b" \t").split(b"\n")[:len(lines)]):
            if (len(squeezed) == 11 and squeezed[0] == 48 and squeezed[1] in _GB_FIRST
                    and squeezed.isdigit()):
                adds.append(_GB_BASE + int(squeezed))
            elif (len(squeezed) == 13 and squeezed[:3] == b"+44" and squeezed[3] in _GB_FIRST
                  and squeezed[1:].isdigit()):
                adds.append(int(squeezed))
            else:
                one(i, lines[i])
    else:
        for i, raw in enumerate(lines):
            one(i, raw)
    return Chunk(adds, deletes, slow, errors, len(lines), started)


def _shape(raw: bytes) -> Format | None:
    """The registry format one line has the exact shape of, if any."""
    text = raw.strip()
    if _US_SHAPE.fullmatch(text):
        return "us-dnc"
    if len(raw) == 12 and (_TPS_SPACED.fullmatch(raw) or _TPS_PADDED.fullmatch(raw)):
        return "tps"
    if _CELLS.search(text) and _us_change(text, None)[0] in (_ADD, _DELETE):
        return "us-dnc-change"
    return None


def detect(sample: bytes) -> Format | None:
    """Guess the format from the first few KB of a file (None: not one of the national
    formats; caller uses its existing plain/CSV/export reader)."""
    lines = sample.removeprefix(_BOM).replace(b"\r\n", b"\n").split(b"\n")
    if len(lines) > 1:
        lines.pop()  # a sample ends anywhere: its last line may be cut short
    rows = [line for line in lines if line.strip() and line.strip()[0] != 35]
    if rows and _is_header(rows[0].strip()):
        if _CELLS.split(rows[0].strip(), maxsplit=1)[0].strip().lower() == b"entry":
            return None  # the bulk importer's own files and exports
        rows = rows[1:]
    rows = rows[:_DETECT_LINES]
    if not rows:
        return None
    shapes = Counter(_shape(row) for row in rows)
    best, seen = shapes.most_common(1)[0]
    # A few bad lines do not change a registry file's format (they are reported by line),
    # but a second national shape makes the guess unsafe.
    if best is None or seen < 0.9 * len(rows) or len(shapes.keys() - {best, None}):
        return None
    return best

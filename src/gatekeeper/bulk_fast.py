"""The fast path of bulk imports: national registry files and plain lists of numbers read
by syntax tables (registry_formats.py), a whole chunk of lines at a time, instead of a
`phonenumbers` parse per line; the lines the tables cannot settle go through the
ordinary line parser (bulk_format.parse_line).

`choose_format` decides from the import's `format` option and the file's first chunk:
a national format that `detect` recognises (the US registry's only for a US or
unspecified region), or `plain` when the sample is nothing but E.164 numbers; anything
else (CSV with channels, exports, headers other than a registry's) keeps the ordinary
reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from gatekeeper.bulk_format import MAX_LINE, LineError, parse_line
from gatekeeper.registry_formats import Format, detect, parse_chunk
from gatekeeper.store import ListItem
from gatekeeper.types import Channel

FormatOption = Literal["auto", "plain", "csv", "us-dnc", "us-dnc-change", "tps"]
FORMAT_OPTIONS: tuple[FormatOption, ...] = ("auto", "plain", "csv", "us-dnc",
                                            "us-dnc-change", "tps")
# Regions whose numbers a US registry file holds (the North American Numbering Plan).
_NANP = frozenset({"US", "CA", "AG", "AI", "AS", "BB", "BM", "BS", "DM", "DO", "GD", "GU",
                   "JM", "KN", "KY", "LC", "MP", "MS", "PR", "SX", "TC", "TT", "VC", "VG",
                   "VI"})
# A first chunk made only of these lines (and blanks, comments) is read as `plain`.
_E164_LINE = re.compile(rb"\+[1-9]\d{6,14}")
_SAMPLE_LINES = 200
_SHOWN = 80


def _all_e164(sample: bytes) -> bool:
    lines = sample.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    if len(lines) > 1:
        lines.pop()  # the sample may end inside a line
    rows = [line.strip() for line in lines[:_SAMPLE_LINES]]
    rows = [row for row in rows if row and not row.startswith(b"#")]
    return bool(rows) and all(_E164_LINE.fullmatch(row) for row in rows)


def choose_format(option: FormatOption, region: str | None, first_chunk: bytes
                  ) -> Format | None:
    """The fast format to read a file with, or None for the ordinary reader."""
    if option != "auto":
        return option
    found = detect(first_chunk[:64 * 1024])
    if found in ("us-dnc", "us-dnc-change") and region not in (None, *_NANP):
        found = None  # ten digits that fit the US rules, in a file said to be elsewhere
    if found is not None:
        return found
    return "plain" if _all_e164(first_chunk[:64 * 1024]) else None


@dataclass(slots=True)
class Read:
    """What some lines gave: numbers (E.164 digits as ints) to add and to delete, entries
    read by the ordinary parser, and line errors."""

    adds: list[int] = field(default_factory=list)
    deletes: list[int] = field(default_factory=list)
    items: list[ListItem] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)


class FastReader:
    """Feeds whole lines of each chunk to `parse_chunk`, holding the partial last line
    (at most MAX_LINE bytes: a longer one is refused as the ordinary reader does)."""

    def __init__(self, fmt: Format, region: str | None, channel: Channel | None) -> None:
        self.fmt = fmt
        self._region = region or ("GB" if fmt == "tps" else "US")
        self._ordinary_region = region
        self._channel = channel
        self._partial = b""
        self._skipping = False  # inside an overlong line, until its end
        self._header_open = True  # no line but blanks and comments read yet
        self.lines = 0

    def feed(self, chunk: bytes) -> Read:
        """The complete lines of `chunk` (with what was held back before it)."""
        data = self._partial + chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            self._partial = data
            return self._overlong()
        self._partial = data[cut + 1:]
        read = self._parse(data[:cut + 1])
        tail = self._overlong()
        read.errors += tail.errors
        return read

    def close(self) -> Read:
        """The last line, if the file does not end with a line break."""
        data, self._partial = self._partial, b""
        if self._skipping:
            self._skipping = False
            return Read()
        return self._parse(data + b"\n") if data.strip() else Read()

    def _overlong(self) -> Read:
        if len(self._partial) <= MAX_LINE:
            return Read()
        read = Read()
        if not self._skipping:
            self.lines += 1
            shown = self._partial[:_SHOWN].decode("utf-8", "replace")
            read.errors.append(LineError(self.lines, shown,
                                         f"line longer than {MAX_LINE} characters"))
        self._skipping, self._partial = True, b""
        return read

    def _parse(self, data: bytes) -> Read:
        if self._skipping:  # the rest of an overlong line, up to its end
            self._skipping = False
            data = data[data.index(b"\n") + 1:]
        chunk = parse_chunk(data, self.fmt, self._region, self.lines + 1, self._header_open)
        self._header_open = self._header_open and not chunk.started
        self.lines += chunk.lines
        read = Read(chunk.adds, chunk.deletes)
        read.errors = [LineError(line, text[:_SHOWN], reason)
                       for line, text, reason in chunk.errors]
        for line, text in chunk.slow:
            if self.fmt == "us-dnc-change":
                # Its flag and number are not separable here: refused, never guessed.
                read.errors.append(LineError(line, text[:_SHOWN], "number outside the "
                                             "NANP numbering rules in a change record"))
                continue
            if self.fmt in ("us-dnc", "tps"):
                # One number a line, split by a comma or spaces: read as one number, in
                # the file's country.
                number = text.replace(",", "").replace(" ", "")
                parsed = parse_line(number, line, self._region, self._channel)
            else:
                parsed = parse_line(text.strip(), line, self._ordinary_region,
                                    self._channel)
            if isinstance(parsed, LineError):
                read.errors.append(parsed)
            else:
                read.items.append(parsed)
        read.errors.sort(key=lambda error: error.line)  # reported in file order
        return read

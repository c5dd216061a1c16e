"""The files bulk imports read and exports write, a line at a time.

Plain format, one entry per line: `+33612345678`, or CSV whose first column is the entry
and whose optional second column is the channel (`sms`, `voice` or `both`; blank: the
import's default). Columns may be separated by `,`, `;` or a tab, and further columns
are ignored. Blank lines and lines starting with `#` are skipped, as is a first row whose
first field is a word (a header). UTF-8, with or without a byte-order mark; LF or CRLF.

Export format: a first row that is exactly the export header (EXPORT_COLUMNS) makes the
input an export, and each row then carries its entry's own metadata (source, added_at,
added_by, note, expires_at), restored as it was. Quoted cells may span lines there (a
note with a newline); free text defused for spreadsheets on export is undone.
"""

from __future__ import annotations

import codecs
import csv
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gatekeeper.numbers import EntryError, parse_entry
from gatekeeper.store import MAX_NOTE, EntryMeta, Listed, ListItem
from gatekeeper.times import MAX_TTL, iso, parse_instant
from gatekeeper.types import CHANNELS, Channel

# A longer line (or export row) is refused and skipped instead of buffered without bound.
MAX_LINE = 4096
EXPORT_COLUMNS = ("entry", "channel", "source", "added_at", "added_by", "note",
                  "expires_at")
# Longer than any admin key or listener name; keeps a stray cell from becoming an author.
MAX_ADDED_BY = 200

_DELIMITERS = re.compile(r"[,;\t]")
# A header's first field: words, no digits (`entry`, `Phone Number`, `numéro`).
_HEADER_FIELD = re.compile(r"[^\W\d_]+(?:[ _-][^\W\d_]+)*")
# Every source the code writes (`api`, `opt-out`, `agent-api`...) has this shape.
_SOURCE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
# Spreadsheets run cells starting with these as formulas: free text is defused on export.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_SHOWN_ENTRY = 80


@dataclass(frozen=True, slots=True)
class LineError:
    """A line that could not be imported, by its 1-based line number."""

    line: int
    entry: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        """As import reports show it."""
        return {"line": self.line, "entry": self.entry, "reason": self.reason}


Parsed = ListItem | Listed | LineError


def defuse_cell(value: str | None) -> str:
    """Free text for a spreadsheet: a `'` before a formula start (`=`, `+`...), also when
    apostrophes come first, so that restore_cell can always undo it."""
    if not value:
        return ""
    return "'" + value if value.lstrip("'").startswith(_FORMULA_START) else value


def restore_cell(cell: str) -> str:
    """The text defuse_cell was given (exactly: the two are inverse)."""
    if cell.startswith("'") and cell.lstrip("'").startswith(_FORMULA_START):
        return cell[1:]
    return cell


def _iso(timestamp: float | None) -> str:
    return "" if timestamp is None else iso(timestamp)


def export_row(entry: Listed) -> list[str]:
    """One CSV row of an export, in EXPORT_COLUMNS order."""
    meta = entry.meta
    row = [entry.item.entry, entry.item.channel or "both"]
    if meta is None:
        return [*row, "", "", "", "", ""]
    return [*row, meta.source, _iso(meta.added_at), defuse_cell(meta.added_by),
            defuse_cell(meta.note), _iso(meta.expires_at)]


def export_delimiter(text: str) -> str | None:
    """The delimiter of a line that is the export header (any case and spacing), else
    None."""
    found = _DELIMITERS.search(text)
    if found is None:
        return None
    delimiter = found.group()
    names = tuple(name.strip().strip('"').strip().lower() for name in text.split(delimiter))
    return delimiter if names == EXPORT_COLUMNS else None


def split_record(text: str, delimiter: str) -> list[str] | None:
    """The cells of one CSV record (RFC 4180 quoting; a quoted cell may hold delimiters,
    doubled quotes and line breaks); None when its quoting is broken."""
    if '"' not in text:
        return text.split(delimiter)
    cells: list[str] = []
    i, end = 0, len(text)
    while True:
        if i < end and text[i] == '"':
            parts: list[str] = []
            i += 1
            while True:
                close = text.find('"', i)
                if close < 0:
                    return None  # never closed
                parts.append(text[i:close])
                if text.startswith('"', close + 1):
                    parts.append('"')
                    i = close + 2
                    continue
                i = close + 1
                break
            cells.append("".join(parts))
            if i == end:
                return cells
            if text[i] != delimiter:
                return None  # text between a closing quote and the next delimiter
            i += 1
        else:
            found = text.find(delimiter, i)
            if found < 0:
                cells.append(text[i:])
                return cells
            cells.append(text[i:found])
            i = found + 1


def _channel(cell: str, default: Channel | None) -> tuple[Channel | None, str | None]:
    """The channel a cell names (blank: `default`), or the reason it names none."""
    named = cell.strip().lower()
    if not named:
        return default, None
    if named == "both":
        return None, None
    for channel in CHANNELS:
        if named == channel:
            return channel, None
    return None, f"channel must be sms, voice or both, not {named[:20]!r}"


def restored_meta(cells: Sequence[str], now: float) -> EntryMeta | str | None:
    """The metadata of an export row from its source, added_at, added_by, note and
    expires_at cells: None when all are empty (an entry exported without metadata), a
    str reason when unusable. An expiry already past is the caller's to refuse."""
    source, added_at, added_by, note, expires_at = cells
    if not (source.strip() or added_at.strip() or added_by or note or expires_at.strip()):
        return None
    source = source.strip()
    if not _SOURCE.fullmatch(source):
        return f"source must be a word like api or import, not {source[:20]!r}"
    added = parse_instant(added_at.strip())
    if added is None:
        return "added_at must be an ISO 8601 date-time or epoch seconds"
    by, said = restore_cell(added_by), restore_cell(note)
    if len(by) > MAX_ADDED_BY:
        return f"added_by is longer than {MAX_ADDED_BY} characters"
    if len(said) > MAX_NOTE:
        return f"note is longer than {MAX_NOTE} characters"
    expires: float | None = None
    if expires_at.strip():
        expires = parse_instant(expires_at.strip())
        if expires is None:
            return "expires_at must be an ISO 8601 date-time or epoch seconds"
        if expires > now + MAX_TTL:
            return f"expires_at is too far ahead: at most {MAX_TTL} seconds from now"
    return EntryMeta(source=source, added_at=added, added_by=by or None, note=said or None,
                     expires_at=expires)


class LineParser:
    """Turns chunks of bytes into list items (`Listed` with their metadata, for an
    export) and line errors, a line at a time.

    Holds at most one partial line or export row (up to MAX_LINE characters) between
    chunks; what one chunk yields is bounded by the chunk's size.
    """

    def __init__(self, region: str | None = None, channel: Channel | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._region = region
        self._channel = channel
        self._clock = clock
        # utf-8-sig drops a leading byte-order mark; bad bytes become U+FFFD and the
        # line then fails as an entry, with its number, instead of failing the import.
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._partial = ""
        self._overlong: str | None = None  # head of a line being skipped for length
        self._before_data = True
        self._delimiter: str | None = None  # set once the export header is seen
        self._row: str | None = None  # an export row whose quoted cell goes on
        self._row_line = 0
        self._row_quotes = 0
        # The previous row's metadata cells and what they gave: rows of one export
        # mostly repeat them, and the same object lets the importer group them cheaply.
        self._last_cells: tuple[str, ...] = ()
        self._last_meta: EntryMeta | str | None = None
        self.lines = 0

    @property
    def restoring(self) -> bool:
        """True once the input showed the export header: rows carry their metadata."""
        return self._delimiter is not None

    def feed(self, chunk: bytes) -> list[Parsed]:
        """The items and errors of the lines completed by `chunk`."""
        return self._take(self._decoder.decode(chunk), final=False)

    def close(self) -> list[Parsed]:
        """The last line, when the input does not end with a newline."""
        return self._take(self._decoder.decode(b"", final=True), final=True)

    def _take(self, text: str, final: bool) -> list[Parsed]:
        out: list[Parsed] = []
        pieces = text.split("\n")
        rest = pieces.pop()  # after the last newline: the start of a line still coming
        if pieces:
            if self._overlong is not None:
                out.append(self._too_long())
            else:
                self._add(out, self._partial + pieces[0])
            self._partial = ""
            for piece in pieces[1:]:
                self._add(out, piece)
        if self._overlong is None:
            self._partial += rest
            if len(self._partial) > MAX_LINE:
                self._overlong, self._partial = self._partial[:_SHOWN_ENTRY], ""
        if final:
            if self._overlong is not None:
                out.append(self._too_long())
            elif self._partial:
                last, self._partial = self._partial, ""
                self._add(out, last)
            if self._row is not None:
                out.append(LineError(self._row_line, self._row[:_SHOWN_ENTRY],
                                     "a quoted cell is never closed"))
                self._row = None
        return out

    def _too_long(self) -> LineError:
        self.lines += 1
        head, self._overlong = self._overlong or "", None
        line = self.lines
        if self._row is not None:  # the export row it continued fails with it
            line, head, self._row = self._row_line, self._row[:_SHOWN_ENTRY], None
        return LineError(line, head + "...", f"line too long (over {MAX_LINE} characters)")

    def _add(self, out: list[Parsed], raw: str) -> None:
        """Parse one complete line into `out` (nothing for blank and comment lines)."""
        if len(raw) > MAX_LINE:
            self._overlong = raw[:_SHOWN_ENTRY]
            out.append(self._too_long())
            return
        self.lines += 1
        if self._delimiter is not None:
            self._add_export_line(out, raw, self._delimiter)
            return
        text = raw.strip()
        if not text or text[0] == "#":
            return
        if self._before_data:
            self._delimiter = export_delimiter(text)
            if self._delimiter is not None:
                return
        if self._before_data:
            self._before_data = False
            if _HEADER_FIELD.fullmatch(_split_entry(text)[0]):
                return
        out.append(parse_line(text, self.lines, self._region, self._channel))

    def _add_export_line(self, out: list[Parsed], raw: str, delimiter: str) -> None:
        """Gather an export row's lines (a quoted cell may hold line breaks), then parse
        it: an odd count of quotes so far means a quoted cell is still open."""
        if self._row is None:
            text = raw.strip()
            if not text or text[0] == "#":
                return
            self._row, self._row_line, self._row_quotes = raw, self.lines, raw.count('"')
        else:
            self._row += "\n" + raw
            self._row_quotes += raw.count('"')
        if len(self._row) > MAX_LINE:
            out.append(LineError(self._row_line, self._row[:_SHOWN_ENTRY] + "...",
                                 f"row too long (over {MAX_LINE} characters)"))
            self._row = None
            return
        if self._row_quotes % 2:
            return
        row, self._row = self._row.removesuffix("\r"), None
        out.append(self._export_row(row, delimiter))

    def _export_row(self, row: str, delimiter: str) -> Listed | LineError:
        line = self._row_line
        cells = split_record(row, delimiter)
        if cells is None:
            return LineError(line, row[:_SHOWN_ENTRY], "malformed CSV quoting")
        given = cells[0].strip()
        if len(cells) < len(EXPORT_COLUMNS):
            return LineError(line, given[:_SHOWN_ENTRY],
                             f"expected {len(EXPORT_COLUMNS)} columns "
                             f"({','.join(EXPORT_COLUMNS)}), found {len(cells)}")
        channel, wrong = _channel(cells[1], self._channel)
        if wrong is not None:
            return LineError(line, given[:_SHOWN_ENTRY], wrong)
        parsed = parse_entry(given, self._region)
        if isinstance(parsed, EntryError):
            return LineError(line, given[:_SHOWN_ENTRY], parsed.reason)
        now = self._clock()
        meta_cells = tuple(cells[2:7])
        if meta_cells == self._last_cells:
            meta = self._last_meta
        else:
            meta = restored_meta(meta_cells, now)
            self._last_cells, self._last_meta = meta_cells, meta
        if isinstance(meta, str):
            return LineError(line, given[:_SHOWN_ENTRY], meta)
        if meta is not None and meta.expires_at is not None and meta.expires_at <= now:
            # It would never match: not loaded, and said so.
            return LineError(line, given[:_SHOWN_ENTRY],
                             f"expired at {iso(meta.expires_at)}: not loaded")
        return Listed(ListItem(parsed.value, channel), meta)


def _split_entry(text: str) -> tuple[str, str]:
    """A stripped entry line's entry and channel cells (lowercased; "" when absent)."""
    if "," in text or ";" in text or "\t" in text or '"' in text:
        fields = _fields(text)
        given = fields[0].strip() if fields else ""
        return given, fields[1].strip().lower() if len(fields) > 1 else ""
    return text, ""  # the common case, one entry per line: no splitting


def parse_line(text: str, line: int, region: str | None, channel: Channel | None
               ) -> ListItem | LineError:
    """One stripped entry line (not blank, not a comment, not a header) of the plain or
    CSV format: its entry and channel, or why it cannot be imported."""
    given, named = _split_entry(text)
    if named:
        channel, wrong = _channel(named, channel)
        if wrong is not None:
            return LineError(line, given[:_SHOWN_ENTRY], wrong)
    parsed = parse_entry(given, region)
    if isinstance(parsed, EntryError):
        return LineError(line, given[:_SHOWN_ENTRY], parsed.reason)
    return ListItem(parsed.value, channel)


def _fields(text: str) -> list[str]:
    """A plain line's fields; only the first two are used."""
    if '"' not in text:
        return _DELIMITERS.split(text, maxsplit=2)
    found = _DELIMITERS.search(text)
    delimiter = found.group() if found else ","
    return next(csv.reader([text], delimiter=delimiter), [])


def parse_lines(data: bytes, region: str | None = None, channel: Channel | None = None,
                clock: Callable[[], float] = time.time) -> list[Parsed]:
    """Every item and error of a whole input (small inputs and tests)."""
    parser = LineParser(region, channel, clock)
    return parser.feed(data) + parser.close()

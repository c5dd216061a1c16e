"""Bulk list import and export, shared by the admin API and the command line.

No HTTP here: an import takes chunks of bytes (a request body, a file) and turns them
into store calls; an export turns a list into chunks of CSV. Both hold a bounded amount
in memory whatever the size of the list: one partial line, one batch being built and one
batch being written.

Import format, one entry per line: `+33612345678`, or CSV whose first column is the
entry and whose optional second column is the channel (`sms`, `voice` or `both`; blank:
the import's default). Columns may be separated by `,`, `;` or a tab, and further
columns are ignored, so an export imports back as it is. Blank lines and lines starting
with `#` are skipped, as is a first row whose first field is a word (a header). UTF-8,
with or without a byte-order mark; LF or CRLF line ends.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import io
import re
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from gatekeeper.numbers import EntryError, parse_entry
from gatekeeper.policy import ListName
from gatekeeper.store import EntryMeta, Listed, ListItem, ListKeys, Store
from gatekeeper.times import expiry_instant, iso
from gatekeeper.types import CHANNELS, Channel

Mode = Literal["add", "replace"]
MODES: tuple[Mode, ...] = ("add", "replace")
# Members per store call: large enough that round trips do not dominate, small enough
# that one script call does not hold Redis up noticeably (a few milliseconds).
BATCH_SIZE = 5000
# A longer line is refused (and skipped) instead of being buffered without bound.
MAX_LINE = 4096
MAX_FAILURES_SHOWN = 100
EXPORT_COLUMNS = ("entry", "channel", "source", "added_at", "added_by", "note",
                  "expires_at")
EXPORT_CHUNK_ROWS = 1000

_DELIMITERS = re.compile(r"[,;\t]")
# A header's first field: words, no digits (`entry`, `Phone Number`, `numéro`).
_HEADER_FIELD = re.compile(r"[^\W\d_]+(?:[ _-][^\W\d_]+)*")
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


class LineParser:
    """Turns chunks of bytes into list items and line errors, a line at a time.

    Holds at most one partial line (up to MAX_LINE characters) between chunks; what one
    chunk yields is bounded by the chunk's size.
    """

    def __init__(self, region: str | None = None, channel: Channel | None = None) -> None:
        self._region = region
        self._channel = channel
        # utf-8-sig drops a leading byte-order mark; bad bytes become U+FFFD and the
        # line then fails as an entry, with its number, instead of failing the import.
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._partial = ""
        self._overlong: str | None = None  # head of a line being skipped for length
        self._before_data = True
        self.lines = 0

    def feed(self, chunk: bytes) -> list[ListItem | LineError]:
        """The items and errors of the lines completed by `chunk`."""
        return self._take(self._decoder.decode(chunk), final=False)

    def close(self) -> list[ListItem | LineError]:
        """The last line, when the input does not end with a newline."""
        return self._take(self._decoder.decode(b"", final=True), final=True)

    def _take(self, text: str, final: bool) -> list[ListItem | LineError]:
        out: list[ListItem | LineError] = []
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
        return out

    def _too_long(self) -> LineError:
        self.lines += 1
        head, self._overlong = self._overlong or "", None
        return LineError(self.lines, head + "...",
                         f"line too long (over {MAX_LINE} characters)")

    def _add(self, out: list[ListItem | LineError], raw: str) -> None:
        """Parse one complete line into `out` (nothing for blank and comment lines)."""
        if len(raw) > MAX_LINE:
            self._overlong = raw[:_SHOWN_ENTRY]
            out.append(self._too_long())
            return
        self.lines += 1
        text = raw.strip()
        if not text or text[0] == "#":
            return
        channel = self._channel
        if "," in text or ";" in text or "\t" in text or '"' in text:
            fields = _fields(text)
            given = fields[0].strip() if fields else ""
            named = fields[1].strip().lower() if len(fields) > 1 else ""
        else:  # the common case, one entry per line: no splitting
            given, named = text, ""
        if self._before_data:
            self._before_data = False
            if _HEADER_FIELD.fullmatch(given):
                return
        if named:
            if named == "both":
                channel = None
            elif named in CHANNELS:
                channel = named
            else:
                out.append(LineError(self.lines, given[:_SHOWN_ENTRY],
                                     f"channel must be sms, voice or both, not {named[:20]!r}"))
                return
        parsed = parse_entry(given, self._region)
        if isinstance(parsed, EntryError):
            out.append(LineError(self.lines, given[:_SHOWN_ENTRY], parsed.reason))
        else:
            out.append(ListItem(parsed.value, channel))


def _fields(text: str) -> list[str]:
    """A line's fields; only the first two are used."""
    if '"' not in text:
        return _DELIMITERS.split(text, maxsplit=2)
    found = _DELIMITERS.search(text)
    delimiter = found.group() if found else ","
    return next(csv.reader([text], delimiter=delimiter), [])


def parse_lines(data: bytes, region: str | None = None, channel: Channel | None = None
                ) -> list[ListItem | LineError]:
    """Every item and error of a whole input (small inputs and tests)."""
    parser = LineParser(region, channel)
    return parser.feed(data) + parser.close()


def expiry_from(ttl_seconds: str | int | None, expires_at: str | float | None,
                now: float | None = None) -> float | None:
    """The expiry instant of an import from a TTL or an instant (ISO 8601 or epoch
    seconds); ValueError, with a message for the operator, when they are unusable."""
    ttl: int | None = None
    if ttl_seconds is not None:
        try:
            ttl = int(ttl_seconds)
        except ValueError:
            ttl = 0  # refused below, with the range in the message
    return expiry_instant(ttl, expires_at, time.time() if now is None else now)


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """What an import loads, where, and the metadata its entries get."""

    name: ListName
    scope: str
    mode: Mode = "add"
    added_by: str | None = None
    note: str | None = None
    expires_at: float | None = None
    region: str | None = None
    channel: Channel | None = None  # for lines without a channel column; None: both
    source: str = "import"


@dataclass(slots=True)
class ImportReport:
    """Counts of an import so far (or in the end).

    Every entry line is added, existing (already listed, or repeated in the input) or
    failed; `lines` also counts blank, comment and header lines.
    """

    mode: Mode
    scope: str
    name: ListName
    lines: int = 0
    bytes: int = 0
    added: int = 0
    existing: int = 0
    failed: int = 0
    failures: list[LineError] = field(default_factory=list)
    size: int | None = None  # the list's size after a replace

    def to_json(self) -> dict[str, Any]:
        """The reply body of an import (and the CLI's summary)."""
        body: dict[str, Any] = {
            "mode": self.mode, "scope": self.scope, "list": self.name, "lines": self.lines,
            "added": self.added, "existing": self.existing, "failed": self.failed,
            "failures": [f.to_json() for f in self.failures]}
        if self.mode == "replace":
            body["size"] = self.size
        return body

    def audit(self) -> dict[str, Any]:
        """The counts for the `list_changed` log event."""
        event: dict[str, Any] = {
            "scope": self.scope, "list": self.name, "op": "import", "mode": self.mode,
            "lines": self.lines, "added": self.added, "existing": self.existing,
            "failed": self.failed}
        if self.size is not None:
            event["size"] = self.size
        return event


class NoValidEntries(Exception):
    """A replace whose input had failed lines and no valid entry: refused, since applying
    it would empty the list (a wrong file, not an intent to clear it)."""


# Clean-ups of abandoned loads that must finish even if their caller is cancelled again.
_CLEANUPS: set[asyncio.Task[None]] = set()


class Importer:
    """Loads one import into the store: into the live list (`add`), or into staging keys
    swapped in whole at the end (`replace`: lookups see the old list or the new one).

    `report` holds the counts so far, also after a failure.
    """

    def __init__(self, store: Store, options: ImportOptions, *, batch_size: int = BATCH_SIZE,
                 on_progress: Callable[[ImportReport], None] | None = None,
                 report: ImportReport | None = None) -> None:
        self.store = store
        self.options = options
        self.report = report or ImportReport(options.mode, options.scope, options.name)
        self._batch_size = batch_size
        self._on_progress = on_progress
        self._meta_value: str | None = None
        self._pending: asyncio.Task[None] | None = None

    async def run(self, chunks: AsyncIterable[bytes]) -> ImportReport:
        """Read, parse and load every chunk; returns the report.

        On any failure (a bad or broken body, a store fault, cancellation) a replace
        drops what it loaded, leaving the live list untouched, and the error propagates.
        """
        options = self.options
        live = self.store.keys.of(options.name, options.scope)
        target = self.store.keys.staging(options.name, options.scope) \
            if options.mode == "replace" else live
        parser = LineParser(options.region, options.channel)
        batch: list[ListItem] = []
        try:
            if target != live:
                await self.store.begin_load(live, target)
            async for chunk in chunks:
                self.report.bytes += len(chunk)
                batch = await self._load(parser.feed(chunk), batch, target)
                self.report.lines = parser.lines
                if self._on_progress is not None:
                    self._on_progress(self.report)
            batch = await self._load(parser.close(), batch, target)
            self.report.lines = parser.lines
            await self._flush(batch, target)
            await self._settle()
            if options.mode == "replace":
                if self.report.added == 0 and self.report.failed > 0:
                    raise NoValidEntries(f"no line of the input is a valid entry "
                                         f"({self.report.failed} failed)")
                self.report.size = await self.store.swap(live, target)
        except BaseException:
            cleanup = asyncio.ensure_future(
                self._abandon(live, target if target != live else None))
            _CLEANUPS.add(cleanup)
            cleanup.add_done_callback(_CLEANUPS.discard)
            with contextlib.suppress(Exception):
                await asyncio.shield(cleanup)
            raise
        if self._on_progress is not None:
            self._on_progress(self.report)
        return self.report

    async def _load(self, parsed: list[ListItem | LineError], batch: list[ListItem],
                    target: ListKeys) -> list[ListItem]:
        for item in parsed:
            if isinstance(item, ListItem):
                batch.append(item)
                if len(batch) >= self._batch_size:
                    await self._flush(batch, target)
                    batch = []
            else:
                self.report.failed += 1
                if len(self.report.failures) < MAX_FAILURES_SHOWN:
                    self.report.failures.append(item)
        return batch

    async def _flush(self, batch: list[ListItem], target: ListKeys) -> None:
        """Start writing a batch; the previous one must be written first (one in flight,
        so parsing the next batch overlaps the store's work on this one)."""
        if not batch:
            return
        await self._settle()
        if self._meta_value is None:
            options = self.options
            self._meta_value = await self.store.save_batch(EntryMeta(
                source=options.source, added_at=time.time(), added_by=options.added_by,
                note=options.note, expires_at=options.expires_at))
        self._pending = asyncio.ensure_future(self._write(batch, target, self._meta_value))

    async def _write(self, batch: list[ListItem], target: ListKeys, meta_value: str) -> None:
        added, _ = await self.store.add_to(target, batch, meta_value, self.options.expires_at,
                                           loading=self.options.mode == "replace")
        self.report.added += len(added)
        # Repeats within the batch are "existing" too: every entry line is counted once.
        self.report.existing += len(batch) - len(added)

    async def _settle(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            await pending

    async def _abandon(self, live: ListKeys, staging: ListKeys | None) -> None:
        # The batch in flight finishes first, or it could recreate the dropped keys.
        pending, self._pending = self._pending, None
        if pending is not None:
            with contextlib.suppress(BaseException):
                await pending
        if staging is not None:
            with contextlib.suppress(Exception):
                await self.store.drop(live, staging)


def _iso(timestamp: float | None) -> str:
    return "" if timestamp is None else iso(timestamp)


def _text_cell(value: str | None) -> str:
    """Free text, defused for spreadsheets (a leading `=` would run as a formula)."""
    if not value:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def export_row(entry: Listed) -> list[str]:
    """One CSV row of an export, in EXPORT_COLUMNS order."""
    meta = entry.meta
    row = [entry.item.entry, entry.item.channel or "both"]
    if meta is None:
        return [*row, "", "", "", "", ""]
    return [*row, meta.source, _iso(meta.added_at), _text_cell(meta.added_by),
            _text_cell(meta.note), _iso(meta.expires_at)]


async def export_csv(store: Store, name: ListName, scope: str,
                     rows_per_chunk: int = EXPORT_CHUNK_ROWS,
                     on_rows: Callable[[int], None] | None = None) -> AsyncIterator[bytes]:
    """A list's live entries as UTF-8 CSV with a header, a chunk of rows at a time;
    `on_rows` hears the number of rows so far with each chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    rows = 0
    async for entry in store.scan_entries(name, scope, chunk=rows_per_chunk):
        writer.writerow(export_row(entry))
        rows += 1
        if rows % rows_per_chunk == 0:
            if on_rows is not None:
                on_rows(rows)
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if on_rows is not None:
        on_rows(rows)
    yield buffer.getvalue().encode()

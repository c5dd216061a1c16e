"""Bulk list import and export, shared by the admin API and the command line.

No HTTP here: an import takes chunks of bytes (a request body, a file) and turns them
into store calls; an export turns a list into chunks of CSV. Both hold a bounded amount
in memory whatever the size of the list: one partial line, one batch being built and one
batch being written. The file formats are bulk_format's.

An export imported back restores each entry's metadata (source, added_at, added_by,
note, expires_at) as the export shows it; rows sharing metadata are written together,
sharing one stored record.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import time
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from gatekeeper.bulk_format import (
    EXPORT_COLUMNS,
    MAX_LINE,
    LineError,
    LineParser,
    Parsed,
    export_row,
    parse_lines,
)
from gatekeeper.policy import ListName
from gatekeeper.store import EntryMeta, ListItem, ListKeys, PackedBuilder, Store, load_meta
from gatekeeper.times import expiry_instant
from gatekeeper.types import Channel

__all__ = [
    "BATCH_SIZE",
    "EXPORT_COLUMNS",
    "MAX_FAILURES_SHOWN",
    "MAX_LINE",
    "MODES",
    "EmptyImport",
    "ImportOptions",
    "ImportRefused",
    "ImportReport",
    "Importer",
    "LineError",
    "LineParser",
    "MetadataConflict",
    "Mode",
    "NoValidEntries",
    "expiry_from",
    "export_csv",
    "export_row",
    "parse_lines",
]

Mode = Literal["add", "replace"]
MODES: tuple[Mode, ...] = ("add", "replace")
# Members per store call: large enough that round trips do not dominate, small enough
# that one script call does not hold Redis up noticeably (a few milliseconds).
BATCH_SIZE = 5000
MAX_FAILURES_SHOWN = 100
EXPORT_CHUNK_ROWS = 1000
# Stored records of metadata shared by restored rows, remembered for reuse: bounds the
# importer's memory whatever the number of distinct metadata in the file (a record
# forgotten and needed again is just stored once more).
SHARED_RECORDS_KEPT = 1024
# Store calls of one batch in flight together (one per distinct metadata in it).
WRITES_AT_ONCE = 16


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
    """What an import loads, where, and the metadata its entries get (an export's rows
    bring their own instead: see Importer)."""

    name: ListName
    scope: str
    mode: Mode = "add"
    added_by: str | None = None
    note: str | None = None
    expires_at: float | None = None
    region: str | None = None
    channel: Channel | None = None  # for lines without a channel column; None: both
    source: str = "import"
    allow_empty: bool = False  # a replace with no entry at all empties the list


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
    restored: bool = False  # the input was an export: rows kept their own metadata

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
        if self.restored:
            event["restored"] = True
        return event


class ImportRefused(Exception):
    """An import refused as a whole: a replace leaves the live list as it was."""


class NoValidEntries(ImportRefused):
    """A replace whose input had failed lines and no valid entry: refused, since applying
    it would empty the list (a wrong file, not an intent to clear it); `allow_empty`
    does not change that."""


class EmptyImport(ImportRefused):
    """A replace whose input holds no entry at all (empty, a header, comments): refused
    unless `allow_empty`, since it would empty the list."""


class MetadataConflict(ImportRefused):
    """An export given with a note or an expiry: its rows carry their own, so which one
    applies would be a guess. Found at the header, before anything is loaded."""


# Clean-ups of abandoned loads that must finish even if their caller is cancelled again.
_CLEANUPS: set[asyncio.Task[None]] = set()
# What rows with no metadata at all store: listings then show none.
_NO_META = ""


class _Own(Enum):
    """The group of plain lines, which take the import's own metadata."""

    OWN = "own"


# A batch's groups: the import's own metadata, a row's metadata, or none.
_Key = _Own | EntryMeta | None


class Importer:
    """Loads one import into the store: into the live list (`add`), or into staging keys
    swapped in whole at the end (`replace`: lookups see the old list or the new one).

    Plain lines share the import's metadata. An export's rows keep their own (a restore:
    `added_by` is the file's, the audit log names the importing key): rows are grouped
    by metadata, one store call per group per batch; a group of several rows shares one
    stored record, a lone row stores its metadata inline, as the admin API does. An entry
    repeated in an export keeps its first row.

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
        # The batch being built: items by metadata, and the restored items already in
        # it (so that a repeated entry keeps its first row).
        self._groups: dict[_Key, list[ListItem]] = {}
        self._restored: set[ListItem] = set()
        self._count = 0
        self._records: OrderedDict[EntryMeta, str] = OrderedDict()
        # A replace's plain exact numbers without an expiry are packed (store/packing.py):
        # about 4 bytes each in Redis instead of a member with its metadata.
        self._packer = PackedBuilder() \
            if options.mode == "replace" and options.expires_at is None else None

    async def run(self, chunks: AsyncIterable[bytes]) -> ImportReport:
        """Read, parse and load every chunk; returns the report.

        On any failure (a bad or broken body, a store fault, a refusal, cancellation) a
        replace drops what it loaded, leaving the live list untouched, and the error
        propagates.
        """
        options = self.options
        live = self.store.keys.of(options.name, options.scope)
        target = self.store.keys.staging(options.name, options.scope) \
            if options.mode == "replace" else live
        parser = LineParser(options.region, options.channel)
        try:
            if target != live:
                await self.store.begin_load(live, target)
            async for chunk in chunks:
                self.report.bytes += len(chunk)
                await self._load(parser, parser.feed(chunk), target)
                self.report.lines = parser.lines
                if self._on_progress is not None:
                    self._on_progress(self.report)
            await self._load(parser, parser.close(), target)
            self.report.lines = parser.lines
            await self._flush(target)
            await self._settle()
            await self._write_packed(target)
            if options.mode == "replace":
                self._check_not_empty()
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

    def _check_not_empty(self) -> None:
        """Refuse a replace that would leave the list empty, unless asked to."""
        report = self.report
        if report.added:
            return
        if report.failed:
            raise NoValidEntries(f"no line of the input is a valid entry "
                                 f"({report.failed} failed)")
        if not self.options.allow_empty:
            raise EmptyImport(f"the input holds no entry ({report.lines} lines: blank, "
                              "comments or a header)")

    async def _load(self, parser: LineParser, parsed: list[Parsed], target: ListKeys
                    ) -> None:
        if parser.restoring and not self.report.restored:
            self.report.restored = True
            if self.options.note is not None or self.options.expires_at is not None:
                raise MetadataConflict(
                    "the input is an export, whose rows carry their own metadata: a note "
                    "or an expiry cannot be given with it")
        for item in parsed:
            if isinstance(item, LineError):
                self.report.failed += 1
                if len(self.report.failures) < MAX_FAILURES_SHOWN:
                    self.report.failures.append(item)
                continue
            if isinstance(item, ListItem):
                if self._packer is not None and item.channel is None and \
                        self._packer.add(item.entry):
                    self.report.added += 1  # repeats are moved to `existing` at the end
                    continue
                self._groups.setdefault(_Own.OWN, []).append(item)
            elif item.item in self._restored:
                self.report.existing += 1  # repeated in the batch: the first row stays
                continue
            else:
                self._groups.setdefault(item.meta, []).append(item.item)
                self._restored.add(item.item)
            self._count += 1
            if self._count >= self._batch_size:
                await self._flush(target)

    async def _flush(self, target: ListKeys) -> None:
        """Start writing the batch built so far; the previous one must be written first
        (one in flight, so parsing the next batch overlaps the store's work on this
        one)."""
        if not self._groups:
            return
        groups = self._groups
        self._groups, self._restored, self._count = {}, set(), 0
        await self._settle()
        self._pending = asyncio.ensure_future(self._write(groups, target))

    async def _write(self, groups: dict[_Key, list[ListItem]], target: ListKeys) -> None:
        calls: list[tuple[list[ListItem], str, float | None]] = []
        for key, items in groups.items():
            if key is _Own.OWN:
                calls.append((items, await self._own_meta(), self.options.expires_at))
            elif key is None:
                calls.append((items, _NO_META, None))
            else:
                calls.append((items, *await self._shared(key, len(items))))
        # One script call per metadata: a list added entry by entry has as many as rows,
        # so they run a few at a time, or round trips would dominate. A batch holds each
        # entry once, so their order does not matter. All finish before any error is
        # raised: none may write after an abandoned load is dropped.
        for start in range(0, len(calls), WRITES_AT_ONCE):
            done = await asyncio.gather(*(self._add(target, *call) for call in
                                          calls[start:start + WRITES_AT_ONCE]),
                                        return_exceptions=True)
            for outcome in done:
                if isinstance(outcome, BaseException):
                    raise outcome

    async def _add(self, target: ListKeys, items: list[ListItem], value: str,
                   expires_at: float | None) -> None:
        added, _ = await self.store.add_to(target, items, value, expires_at,
                                           loading=self.options.mode == "replace")
        self.report.added += len(added)
        # Repeats within the batch are "existing" too: every entry line counts once.
        self.report.existing += len(items) - len(added)

    async def _write_packed(self, target: ListKeys) -> None:
        """Write the packed numbers gathered (a replace's copy), counting repeats."""
        packer, self._packer = self._packer, None
        if packer is None or not len(packer):
            return
        options = self.options
        written = await self.store.write_packed(target, packer, load_meta(
            options.source, options.added_by, options.note))
        self.report.added -= len(packer) - written
        self.report.existing += len(packer) - written

    async def _own_meta(self) -> str:
        """The import's own metadata record, stored at the first batch that needs it."""
        if self._meta_value is None:
            options = self.options
            self._meta_value = await self.store.save_batch(EntryMeta(
                source=options.source, added_at=time.time(), added_by=options.added_by,
                note=options.note, expires_at=options.expires_at))
        return self._meta_value

    async def _shared(self, meta: EntryMeta, rows: int) -> tuple[str, float | None]:
        """The stored value for rows with this metadata: a shared record when several
        rows have it (or had it in an earlier batch), else the metadata inline."""
        value = self._records.get(meta)
        if value is not None:
            self._records.move_to_end(meta)
        elif rows > 1:
            value = await self.store.save_batch(meta)
            self._records[meta] = value
            if len(self._records) > SHARED_RECORDS_KEPT:
                self._records.popitem(last=False)
        else:
            value = meta.to_json()
        return value, meta.expires_at

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

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
from enum import Enum

from gatekeeper.bulk_fast import FastReader, Read, choose_format
from gatekeeper.bulk_format import (
    EXPORT_COLUMNS,
    MAX_LINE,
    LineError,
    LineParser,
    Parsed,
    export_row,
    parse_lines,
)
from gatekeeper.bulk_options import (
    MAX_FAILURES_SHOWN,
    MODES,
    ChangeFileReplace,
    EmptyImport,
    ImportOptions,
    ImportRefused,
    ImportReport,
    MetadataConflict,
    Mode,
    NoValidEntries,
    expiry_from,
)
from gatekeeper.policy import ListName
from gatekeeper.store import EntryMeta, ListItem, ListKeys, PackedBuilder, Store, load_meta

__all__ = [
    "BATCH_SIZE",
    "EXPORT_COLUMNS",
    "MAX_FAILURES_SHOWN",
    "MAX_LINE",
    "MODES",
    "ChangeFileReplace",
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

# Members per store call: large enough that round trips do not dominate, small enough
# that one script call does not hold Redis up noticeably (a few milliseconds).
BATCH_SIZE = 5000
EXPORT_CHUNK_ROWS = 1000
# Stored records of metadata shared by restored rows, remembered for reuse: bounds the
# importer's memory whatever the number of distinct metadata in the file (a record
# forgotten and needed again is just stored once more).
SHARED_RECORDS_KEPT = 1024
# The start of a file its format is chosen by (bulk_fast.choose_format): this many
# lines, or bytes, whichever comes first.
DETECT_LINES = 20
DETECT_BYTES = 64 * 1024
# Store calls of one batch in flight together (one per distinct metadata in it).
WRITES_AT_ONCE = 16


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
        fast: FastReader | None = None
        head: bytes | None = b""  # the file's start, until its format is chosen
        try:
            if target != live:
                await self.store.begin_load(live, target)
            async for chunk in chunks:
                self.report.bytes += len(chunk)
                data = chunk
                if head is not None:
                    head += chunk
                    if len(head) < DETECT_BYTES and head.count(b"\n") < DETECT_LINES:
                        continue
                    fast, data, head = self._fast_reader(head), head, None
                await self._feed(parser, fast, data, target)
                # A chunk's parse is a few ms of CPU, and neither a buffered body nor a
                # file read yields: without this, an admin import in the serving process
                # held its loop for whole seconds (send p99 1.5 ms -> 238 ms, measured).
                await asyncio.sleep(0)
            if head:
                fast = self._fast_reader(head)
                await self._feed(parser, fast, head, target)
            if fast is not None:
                await self._load_fast(fast.close(), target)
                self.report.lines = fast.lines
            else:
                await self._load(parser, parser.close(), target)
                self.report.lines = parser.lines
            await self._flush(target)
            await self._settle()
            await self._write_packed(target)
            if options.mode == "replace":
                self._check_not_empty()
                self.report.size = await self.store.swap(live, target)
            await self.store.record_source(options.name, options.scope,
                                           options.origin or "import", options.as_of,
                                           options.max_age_days)
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

    async def _feed(self, parser: LineParser, fast: FastReader | None, chunk: bytes,
                    target: ListKeys) -> None:
        """Read and load one chunk with the reader chosen for the file."""
        if fast is not None:
            await self._load_fast(fast.feed(chunk), target)
            self.report.lines = fast.lines
        else:
            await self._load(parser, parser.feed(chunk), target)
            self.report.lines = parser.lines
        if self._on_progress is not None:
            self._on_progress(self.report)

    def _fast_reader(self, first_chunk: bytes) -> FastReader | None:
        """The fast reader for this file, if its format has one (bulk_fast)."""
        options = self.options
        fmt = choose_format(options.format, options.region, first_chunk)
        if fmt is None:
            return None
        if fmt == "us-dnc-change" and options.mode == "replace":
            raise ChangeFileReplace("a change file adds and deletes numbers of a list: "
                                    "import it with mode=add")
        self.report.format = fmt
        return FastReader(fmt, options.region, options.channel)

    async def _load_fast(self, read: Read, target: ListKeys) -> None:
        """Load what the fast reader gave: numbers packed (a replace) or added, deletions
        applied, the ordinary parser's entries and errors as usual."""
        packer = self._packer if self.options.channel is None else None
        if packer is not None:
            packer.add_numbers(read.adds)
            self.report.added += len(read.adds)  # repeats move to `existing` at the end
        elif read.adds:
            await self._load(None, [ListItem(f"+{n}", self.options.channel)
                                    for n in read.adds], target)
        await self._load(None, [*read.items, *read.errors], target)
        if read.deletes:
            await self._settle()  # a deletion follows the additions before it
            removed, _ = await self.store.remove(
                self.options.name, self.options.scope,
                [ListItem(f"+{n}") for n in read.deletes], every_channel=True,
                settle=False)  # the import's last write (record_source) waits for all
            self.report.removed += len(removed)

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

    async def _load(self, parser: LineParser | None, parsed: list[Parsed], target: ListKeys
                    ) -> None:
        if parser is not None and parser.restoring and not self.report.restored:
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
                note=options.note, expires_at=options.expires_at), options.scope)
        return self._meta_value

    async def _shared(self, meta: EntryMeta, rows: int) -> tuple[str, float | None]:
        """The stored value for rows with this metadata: a shared record when several
        rows have it (or had it in an earlier batch), else the metadata inline."""
        value = self._records.get(meta)
        if value is not None:
            self._records.move_to_end(meta)
        elif rows > 1:
            value = await self.store.save_batch(meta, self.options.scope)
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

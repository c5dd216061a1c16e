"""Bulk import and export at the store level: the streaming line parser, the loader (add,
atomic replace, failures, expiry), CSV export, bounded memory, and a benchmark on the
real redis-server."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import os
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterable
from typing import Any

import fakeredis
import pytest

from gatekeeper import bulk
from gatekeeper.bulk import (
    EXPORT_COLUMNS,
    MAX_LINE,
    EmptyImport,
    Importer,
    ImportOptions,
    LineError,
    LineParser,
    NoValidEntries,
    expiry_from,
    export_csv,
    parse_lines,
)
from gatekeeper.config import RedisConfig, StoreConfig
from gatekeeper.policy import ListName
from gatekeeper.store import (
    LOAD_MARK_SECONDS,
    EntryMeta,
    Keys,
    ListItem,
    ListKeys,
    Store,
    StoreUnavailable,
)
from gatekeeper.types import Channel
from tests.conftest import eventually, leftovers, list_members

PREFIX = "b:"
REDIS = RedisConfig(key_prefix=PREFIX, timeout=10.0)
KEYS = Keys(PREFIX)
E = ListItem  # short for the tables


def err(line: int, entry: str, reason: str) -> LineError:
    """A line error, as the tables write it."""
    return LineError(line, entry, reason)


NOT_E164 = "not E.164: write '+' and the country code, or give a region"

PARSE_CASES: list[tuple[str, bytes, list[ListItem | LineError]]] = [
    ("plain-lines", b"+33612345678\n+4479*\n", [E("+33612345678"), E("+4479*")]),
    ("no-final-newline", b"+33612345678\n+4479*", [E("+33612345678"), E("+4479*")]),
    ("punctuation-removed", b"+33 6 12-34.56 (78)\n", [E("+33612345678")]),
    ("csv-channel-column", b"+33612345678,sms\n+4479*,voice\n+1415555*,both\n+34*,\n",
     [E("+33612345678", "sms"), E("+4479*", "voice"), E("+1415555*"), E("+34*")]),
    ("channel-case-and-spaces", b"+33612345678 , SMS \n", [E("+33612345678", "sms")]),
    ("header-skipped", b"entry,channel\n+33612345678,voice\n",
     [E("+33612345678", "voice")]),
    ("header-words", b"Phone Number\n+33612345678\n", [E("+33612345678")]),
    ("header-only-first-row", b"+33612345678\nentry\n",
     [E("+33612345678"), err(2, "entry", NOT_E164)]),
    ("comments-and-blanks", b"# opt-outs\n\n   \n+33612345678\n  # indented\n\n",
     [E("+33612345678")]),
    ("header-after-comment", b"# exported\nentry,channel\n+4479*,sms\n",
     [E("+4479*", "sms")]),
    ("crlf", b"entry,channel\r\n+33612345678,sms\r\n+4479*\r\n",
     [E("+33612345678", "sms"), E("+4479*")]),
    ("bom", b"\xef\xbb\xbfentry,channel\n+33612345678,voice\n",
     [E("+33612345678", "voice")]),
    ("bom-no-header", b"\xef\xbb\xbf+33612345678\n", [E("+33612345678")]),
    ("quoted-fields", b'"+33 6 12 34 56 78","voice"\n"+4479*",sms\n',
     [E("+33612345678", "voice"), E("+4479*", "sms")]),
    ("semicolon-and-tab", b"+33612345678;sms\n+4479*\tvoice\n",
     [E("+33612345678", "sms"), E("+4479*", "voice")]),
    ("extra-columns-ignored",  # not the export's header: a plain file
     b'entry,channel,source,added_at,note\n'
     b'+33612345678,sms,import,2024-01-01T00:00:00+00:00,"a, note"\n',
     [E("+33612345678", "sms")]),
    ("bad-lines-numbered",
     b"entry,channel\n+33612345678\nhello\n\n+0033*\n+33612345678,fax\n,sms\n+999123456\n"
     b"+3361\n",
     [E("+33612345678"),
      err(3, "hello", NOT_E164),
      err(5, "+0033*", "a prefix starts with a country code, which never begins with 0"),
      err(6, "+33612345678", "channel must be sms, voice or both, not 'fax'"),
      err(7, "", "empty entry"),
      err(8, "+999123456", "unknown country calling code"),
      err(9, "+3361", "too short for a phone number")]),
    ("invalid-utf8", b"+33612345678\n+3361\xff2345678\n+4479*\n",
     [E("+33612345678"),
      err(2, "+3361\ufffd2345678", "not E.164: '+' then up to 15 digits, no leading 0"),
      E("+4479*")]),
    ("duplicates-kept", b"+33612345678\n+33612345678\n",
     [E("+33612345678"), E("+33612345678")]),
]


def _chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


def _parse_in_chunks(data: bytes, size: int, region: str | None = None,
                     channel: Channel | None = None) -> list[ListItem | LineError]:
    parser = LineParser(region, channel)
    out: list[ListItem | LineError] = []
    for chunk in _chunked(data, size):
        out += parser.feed(chunk)
    return out + list(parser.close())


@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in PARSE_CASES],
                         ids=[c[0] for c in PARSE_CASES])
def test_parser_table(data: bytes, expected: list[ListItem | LineError]) -> None:
    """Each input parses to these items and numbered errors."""
    assert parse_lines(data) == expected


@pytest.mark.parametrize("size", [1, 2, 3, 7])
@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in PARSE_CASES],
                         ids=[c[0] for c in PARSE_CASES])
def test_parser_is_independent_of_chunk_boundaries(
        data: bytes, expected: list[ListItem | LineError], size: int) -> None:
    """Chunks that split a BOM, a CRLF or a UTF-8 sequence give the same result."""
    assert _parse_in_chunks(data, size) == expected


def test_parser_counts_every_line() -> None:
    """`lines` counts blank, comment and header lines too."""
    parser = LineParser()
    list(parser.feed(b"entry\n# c\n\n+33612345678\n+4479*"))
    assert parser.lines == 4
    list(parser.close())
    assert parser.lines == 5


def test_parser_region_reads_national_numbers() -> None:
    """With a region, national numbers become E.164."""
    assert parse_lines(b"0532 123 45 67\n", region="TR") == [E("+905321234567")]
    assert parse_lines(b"0532 123 45 67\n") == [err(1, "0532 123 45 67", NOT_E164)]


def test_parser_default_channel_applies_to_lines_without_one() -> None:
    """The import's channel fills in a missing or blank column; `both` overrides it."""
    data = b"+33612345678\n+4479*,\n+34*,both\n+1415555*,sms\n"
    assert parse_lines(data, channel="voice") == [
        E("+33612345678", "voice"), E("+4479*", "voice"), E("+34*"), E("+1415555*", "sms")]


@pytest.mark.parametrize("size", [1, 1000, 10_000])
def test_parser_refuses_an_overlong_line_and_goes_on(size: int) -> None:
    """A line longer than MAX_LINE fails with its number, without being buffered; the
    next lines parse."""
    long_line = b"+33" + b"1" * (MAX_LINE + 10)
    data = b"+4479*\n" + long_line + b"\n+33612345678\n" + long_line
    parsed = _parse_in_chunks(data, size)
    reason = f"line too long (over {MAX_LINE} characters)"
    assert [p for p in parsed if isinstance(p, ListItem)] == [E("+4479*"), E("+33612345678")]
    errors = [p for p in parsed if isinstance(p, LineError)]
    assert [(e.line, e.reason) for e in errors] == [(2, reason), (4, reason)]
    assert all(e.entry.startswith("+331111") and len(e.entry) < 100 for e in errors)


EXPIRY_CASES: list[tuple[str, Any, Any, float | str]] = [
    ("ttl", "60", None, 1060.0),
    ("ttl-int", 3600, None, 4600.0),
    ("epoch", None, "2000.5", 2000.5),
    ("iso-utc", None, "1970-01-01T00:30:00Z", 1800.0),
    ("iso-naive-is-utc", None, "1970-01-01T00:30:00", 1800.0),
    ("none", None, None, "none"),
    ("both", "60", "2000", "not both"),
    ("ttl-zero", "0", None, "from 1 to"),
    ("ttl-word", "soon", None, "from 1 to"),
    ("ttl-too-long", str(11 * 365 * 24 * 3600), None, "from 1 to"),
    ("past", None, "999", "in the past"),
    ("garbage", None, "tomorrow", "ISO 8601"),
]


@pytest.mark.parametrize(("ttl", "expires", "expected"), [c[1:] for c in EXPIRY_CASES],
                         ids=[c[0] for c in EXPIRY_CASES])
def test_expiry_from(ttl: Any, expires: Any, expected: float | str) -> None:
    """A TTL or an instant gives the expiry; unusable values say why."""
    if isinstance(expected, float):
        assert expiry_from(ttl, expires, now=1000.0) == expected
    elif expected == "none":
        assert expiry_from(ttl, expires, now=1000.0) is None
    else:
        with pytest.raises(ValueError, match=expected):
            expiry_from(ttl, expires, now=1000.0)


# ------------------------------------------------------------------------ the loader


def make_store(client: Any) -> Store:
    """A store with the test prefix on `client`."""
    return Store(client, REDIS, StoreConfig())


@pytest.fixture
def store() -> Store:
    """A store on an empty fakeredis."""
    return make_store(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(),
                                               decode_responses=True))


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """`data` as an async stream of chunks."""
    for chunk in _chunked(data, size):
        yield chunk


def numbers(count: int, start: int = 0, head: str = "+3361") -> list[str]:
    """`count` distinct valid numbers."""
    return [f"{head}{n:07d}" for n in range(start, start + count)]


def lines(entries: Iterable[str]) -> bytes:
    """One entry per line."""
    return "".join(f"{e}\n" for e in entries).encode()


async def load(store: Store, data: bytes, *, name: ListName = "block", scope: str = "global",
               mode: Any = "add", batch_size: int = bulk.BATCH_SIZE, **options: Any
               ) -> bulk.ImportReport:
    """Run an import of `data` and return its report."""
    importer = Importer(store, ImportOptions(name, scope, mode, **options),
                        batch_size=batch_size)
    return await importer.run(chunks_of(data))


async def members(store: Store, name: ListName = "block", scope: str = "global") -> set[str]:
    """Every entry of a list as its member, whatever its layout."""
    return await list_members(store, name, scope)


async def tmp_keys(store: Store) -> list[str]:
    """Staging keys (and packed buckets) left behind."""
    return await leftovers(store.client, PREFIX)


async def test_add_counts_added_existing_and_failed(store: Store) -> None:
    """Every entry line is added, existing (listed before or repeated) or failed, across
    several batches."""
    await store.add("block", "global", [E("+33612345678")],
                    EntryMeta(source="api", added_at=1.0))
    data = lines(["+33612345678", *numbers(7), "nope", numbers(1)[0], "+4479*,sms"])
    report = await load(store, data, batch_size=3)
    assert report.to_json() == {
        "mode": "add", "scope": "global", "list": "block", "lines": 11, "added": 8,
        "existing": 2, "failed": 1,
        "failures": [{"line": 9, "entry": "nope", "reason": NOT_E164}]}
    assert await members(store) == {"+33612345678", *numbers(7), "+4479*#sms"}


async def test_import_metadata_is_stored_once_for_the_whole_load(store: Store) -> None:
    """Every imported entry points at one shared metadata value with source `import`."""
    report = await load(store, lines(numbers(10)), batch_size=4, added_by="ops",
                        note="from CRM")
    assert report.added == 10
    values = set((await store.client.hgetall(KEYS.of("block", "global").meta)).values())
    assert len(values) == 1
    [value] = values
    assert value.startswith("@")
    shared = json.loads(await store.client.get(KEYS.batch_prefix("global") + value[1:]))
    assert shared["source"] == "import"
    assert (shared["added_by"], shared["note"]) == ("ops", "from CRM")
    assert abs(shared["added_at"] - time.time()) < 60
    [meta] = await store.metadata("block", "global", [E(numbers(1)[0])])
    assert meta is not None
    assert (meta.source, meta.added_by, meta.note) == ("import", "ops", "from CRM")


async def test_replace_swaps_the_whole_list(store: Store) -> None:
    """A replace leaves exactly the imported entries and reports the new size."""
    await load(store, lines(numbers(5)))
    report = await load(store, lines([*numbers(3, start=100), "+4479*,voice", "bad"]),
                        mode="replace", batch_size=2)
    assert report.size == 4
    assert (report.added, report.existing, report.failed) == (4, 0, 1)
    assert report.to_json()["size"] == 4
    assert await members(store) == {*numbers(3, start=100), "+4479*#voice"}
    assert await tmp_keys(store) == []


async def test_replace_only_touches_its_own_list_and_scope(store: Store) -> None:
    """Other lists and scopes keep their entries."""
    await load(store, lines(["+33612345678"]), scope="tenant:acme")
    await load(store, lines(["+33612345678"]), name="allow")
    await load(store, lines(["+4479*"]), mode="replace")
    assert await members(store, scope="tenant:acme") == {"+33612345678"}
    assert await members(store, name="allow") == {"+33612345678"}
    assert await members(store) == {"+4479*"}


async def test_replace_with_only_failed_lines_is_refused(store: Store) -> None:
    """All lines failing would empty the list: refused, live list untouched."""
    await load(store, lines(numbers(3)))
    with pytest.raises(NoValidEntries):
        await load(store, b"0612345678\n0612345679\n", mode="replace")
    assert await members(store) == set(numbers(3))
    assert await tmp_keys(store) == []


async def test_replace_with_no_entry_is_refused(store: Store) -> None:
    """An input with no entry lines at all (and no failures) would empty the list:
    refused, live list untouched, nothing left behind."""
    await load(store, lines(numbers(3)))
    with pytest.raises(EmptyImport, match=r"no entry \(1 lines"):
        await load(store, b"# nothing left\n", mode="replace")
    assert await members(store) == set(numbers(3))
    assert await tmp_keys(store) == []


async def test_replace_with_no_entry_and_allow_empty_clears_the_list(store: Store) -> None:
    """`allow_empty`: the same input empties the list."""
    await load(store, lines(numbers(3)))
    report = await load(store, b"# nothing left\n", mode="replace", allow_empty=True)
    assert (report.size, report.lines) == (0, 1)
    assert await members(store) == set()


async def test_replace_with_only_failed_lines_is_refused_even_with_allow_empty(
        store: Store) -> None:
    """A file of garbage is not an intent to clear the list: still refused."""
    await load(store, lines(numbers(3)))
    with pytest.raises(NoValidEntries):
        await load(store, b"0612345678\nnot a number\n", mode="replace", allow_empty=True)
    assert await members(store) == set(numbers(3))


async def test_replace_duplicates_count_as_existing(store: Store) -> None:
    """A number repeated in the input is counted once as added, then as existing."""
    report = await load(store, lines(["+33612345678"] * 3), mode="replace", batch_size=2)
    assert (report.added, report.existing, report.size) == (1, 2, 1)


async def _broken(data: bytes, exc: BaseException) -> AsyncIterator[bytes]:
    yield data
    raise exc


@pytest.mark.parametrize("failure", ["body-error", "store-fault-set", "store-fault-packed",
                                     "cancelled"])
async def test_failed_replace_leaves_the_live_list_untouched(
        store: Store, monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    """A body that breaks, a store fault (writing the set, or after the packed numbers
    were written) or cancellation mid-way: the staging keys and packed buckets are
    dropped and the live list is as it was."""
    await load(store, lines(numbers(5)))
    before = await members(store)
    data = lines(numbers(50, start=1000))
    importer = Importer(store, ImportOptions("block", "global", "replace"), batch_size=10)
    if failure == "body-error":
        with pytest.raises(ConnectionResetError):
            await importer.run(_broken(data, ConnectionResetError("gone")))
    elif failure == "store-fault-set":
        # Channel-limited entries are never packed: they go to the set, batch by batch.
        data = lines([f"{n},sms" for n in numbers(50, start=1000)])
        real_add_to = store.add_to
        calls = 0

        async def failing(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 3:
                raise StoreUnavailable("connection refused")
            return await real_add_to(*args, **kwargs)

        monkeypatch.setattr(store, "add_to", failing)
        with pytest.raises(StoreUnavailable):
            await importer.run(chunks_of(data, 100))
        assert calls == 3
    elif failure == "store-fault-packed":
        real_write = store.write_packed

        async def written_then_lost(*args: Any, **kwargs: Any) -> Any:
            await real_write(*args, **kwargs)
            raise StoreUnavailable("connection reset")

        monkeypatch.setattr(store, "write_packed", written_then_lost)
        with pytest.raises(StoreUnavailable):
            await importer.run(chunks_of(data, 100))
        assert await store.client.keys(f"{PREFIX}pk:*") == []  # purged at once
    else:
        stalled = asyncio.Event()

        async def stalling() -> AsyncIterator[bytes]:
            yield data
            stalled.set()
            await asyncio.Event().wait()  # a client that stops sending
            yield b""

        task = asyncio.create_task(importer.run(stalling()))
        await stalled.wait()
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert importer.report.added > 0  # something had been loaded into staging
    await asyncio.sleep(0)  # let a clean-up left running finish
    assert await members(store) == before
    assert await tmp_keys(store) == []


async def test_replace_keeps_entries_added_while_it_loads(store: Store) -> None:
    """An opt-out or an operator's block added to the live list while a replace import
    is still reading its input is in the list after the swap (and nothing is left
    behind: staging keys, load mark, journal)."""
    await load(store, lines(numbers(5)))

    staging_ttls: list[int] = []

    async def slow_input() -> AsyncIterator[bytes]:
        # The prefix goes to the copy's set at once; the numbers are packed at the end.
        yield lines([*numbers(20, start=1000), "+4479*"] + ["+4478*"] * 14)
        await store.add("block", "global", [E("+447700900123", "sms")],
                        EntryMeta(source="opt-out", added_at=1.0, added_by="sms-in"))
        staging_ttls.extend([await store.client.ttl(k) for k in await tmp_keys(store)])
        yield lines(numbers(20, start=2000))

    importer = Importer(store, ImportOptions("block", "global", "replace"), batch_size=7)
    report = await importer.run(slow_input())
    assert report.size == 43
    assert await members(store) == {*numbers(20, start=1000), *numbers(20, start=2000),
                                    "+4479*", "+4478*", "+447700900123#sms"}
    assert await tmp_keys(store) == []
    live = KEYS.of("block", "global")
    assert await store.client.exists(live.loading, live.journal) == 0
    # While it loaded, the copy would have vanished by itself had the import been killed.
    assert staging_ttls
    assert all(0 < ttl <= LOAD_MARK_SECONDS for ttl in staging_ttls)
    assert [await store.client.ttl(k) for k in live.all[:2]] == [-1, -1]
    # The packed buckets, their index and record are permanent once swapped in.
    base = await store.client.hget(live.packed, "base")
    packed_keys = await store.client.keys(f"{base}*")
    assert len(packed_keys) >= 2
    assert {await store.client.ttl(k) for k in [*packed_keys, live.packed]} == {-1}


async def test_abandoned_replace_stops_journaling(store: Store) -> None:
    """A replace that fails unmarks its load: later adds leave no journal behind."""
    data = lines(numbers(10))
    importer = Importer(store, ImportOptions("block", "global", "replace"), batch_size=3)
    with pytest.raises(ConnectionResetError):
        await importer.run(_broken(data, ConnectionResetError("gone")))
    await asyncio.sleep(0)
    await store.add("block", "global", [E("+447700900123")],
                    EntryMeta(source="api", added_at=1.0, added_by="admin"))
    live = KEYS.of("block", "global")
    assert await store.client.exists(live.loading, live.journal) == 0


async def test_failed_add_keeps_what_it_loaded(store: Store) -> None:
    """An add that breaks mid-way keeps the batches written before (and says how many)."""
    importer = Importer(store, ImportOptions("block", "global"), batch_size=10)
    with pytest.raises(ConnectionResetError):
        await importer.run(_broken(lines(numbers(25)), ConnectionResetError("gone")))
    assert importer.report.added == 20
    assert len(await members(store)) == 20


async def test_progress_is_reported_per_chunk_and_at_the_end(store: Store) -> None:
    """The progress callback sees lines and bytes grow, ending at the totals."""
    seen: list[tuple[int, int]] = []
    data = lines(numbers(100))
    importer = Importer(store, ImportOptions("block", "global"),
                        on_progress=lambda r: seen.append((r.lines, r.bytes)))
    await importer.run(chunks_of(data, 130))
    assert len(seen) >= 10
    assert seen == sorted(seen)
    assert seen[-1] == (100, len(data))


async def test_import_ttl_entries_stop_matching(store: Store) -> None:
    """Entries imported with an expiry match until it passes, then not."""
    await load(store, lines(["+33612345678", "+4479*"]),
               expires_at=time.time() + 0.5)
    found = await store.lookup(["+33612345678", "+447911123456"], ["global"])
    assert [len(m) for m in found.values()] == [1, 1]

    async def expired() -> bool:
        return not (await store.lookup(["+33612345678"], ["global"]))["+33612345678"]

    await eventually(expired)
    found = await store.lookup(["+33612345678", "+447911123456"], ["global"])
    assert [len(m) for m in found.values()] == [0, 0]


# ------------------------------------------------------------------------ export


async def export_text(store: Store, name: ListName = "block", scope: str = "global",
                      rows_per_chunk: int = 1000) -> str:
    """The whole CSV export of a list."""
    return b"".join([c async for c in export_csv(store, name, scope, rows_per_chunk)]
                    ).decode()


async def test_export_writes_a_header_and_a_row_per_entry(store: Store) -> None:
    """Rows carry entry, channel and metadata; free text is CSV-quoted and defused."""
    await store.add("block", "global", [E("+33612345678"), E("+4479*", "sms")],
                    EntryMeta(source="api", added_at=0.0, added_by="=cmd()",
                              note='STOP, said "no"', expires_at=4102444800.0))
    rows = list(csv.reader(io.StringIO(await export_text(store))))
    assert rows == [
        list(EXPORT_COLUMNS),
        ["+33612345678", "both", "api", "1970-01-01T00:00:00+00:00", "'=cmd()",
         'STOP, said "no"', "2100-01-01T00:00:00+00:00"],
        ["+4479*", "sms", "api", "1970-01-01T00:00:00+00:00", "'=cmd()",
         'STOP, said "no"', "2100-01-01T00:00:00+00:00"],
    ]


async def test_export_of_an_empty_list_is_the_header(store: Store) -> None:
    """No entries: just the header line."""
    assert await export_text(store) == ",".join(EXPORT_COLUMNS) + "\n"


async def test_export_round_trips_an_import(store: Store) -> None:
    """An export imported into another scope gives the same entries and channels."""
    data = lines([*numbers(25), "+4479*,sms", "+34*,voice", "+1415555*"])
    await load(store, data, note="a, b")
    exported = await export_text(store, rows_per_chunk=7)
    assert exported.count("\n") == 29
    report = await load(store, exported.encode(), scope="tenant:copy", mode="replace")
    assert (report.added, report.failed, report.size) == (28, 0, 28)
    assert await members(store, scope="tenant:copy") == await members(store)


async def test_export_streams_in_chunks(store: Store) -> None:
    """The export comes in one chunk per `rows_per_chunk` rows (plus the rest)."""
    await load(store, lines(numbers(25)))
    seen: list[int] = []
    chunks = [c async for c in export_csv(store, "block", "global", 10, on_rows=seen.append)]
    assert len(chunks) == 3
    assert seen == [10, 20, 25]
    assert sum(c.count(b"\n") for c in chunks) == 26


# ------------------------------------------------------------------------ bounded memory


async def _peak_memory(store: Store, count: int, row: bytes) -> tuple[int, int]:
    """Import `count` generated rows; the peak traced memory and the body's size."""
    size = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal size
        for start in range(0, count, 2000):
            chunk = b"".join(b"+3361%07d" % n + row for n in range(start, start + 2000))
            size += len(chunk)
            yield chunk

    tracemalloc.start()
    try:
        report = await Importer(store, ImportOptions("block", "global"),
                                batch_size=2000).run(body())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (report.lines, report.added) == (count, count)
    return peak, size


async def test_import_memory_stays_bounded(monkeypatch: pytest.MonkeyPatch,
                                           store: Store) -> None:
    """A body fed by a generator never sits in memory whole: the peak traced allocation
    stays far below the body's size and does not grow with it (the store's writes are
    stubbed out, so only the import's own memory is measured)."""
    written = 0

    async def discard(_keys: ListKeys, items: Iterable[ListItem], _meta: str,
                      _expires: float | None, loading: bool = False
                      ) -> tuple[list[ListItem], list[ListItem]]:
        nonlocal written
        batch = list(items)
        written += len(batch)
        return batch, []

    monkeypatch.setattr(store, "add_to", discard)
    row = b",sms,import,2024-01-01T00:00:00+00:00,ops,opted out by an SMS reply (STOP),\r\n"
    small_peak, _ = await _peak_memory(store, 10_000, row)
    peak, size = await _peak_memory(store, 100_000, row)
    assert written == 110_000
    assert size == 100_000 * (12 + len(row))
    assert peak < size / 5, (peak, size)
    assert peak < small_peak * 1.25 + 50_000, (peak, small_peak)


# ------------------------------------------------------------------------ real redis-server


@pytest.fixture
def real_store(real_redis: Any) -> Store:
    """A store on the suite's real redis-server (emptied)."""
    return make_store(real_redis)


@pytest.mark.integration
async def test_replace_is_atomic_under_concurrent_lookups(real_store: Store) -> None:
    """While a large replace loads, every lookup sees exactly the old list's verdicts or
    exactly the new list's, never a mix or an empty list."""
    old_probe, new_probe, both_probe = "+33600000001", "+33699999999", "+447911123456"
    await load(real_store, lines([old_probe, both_probe]))
    # The new list is large, with its distinctive entry last (loaded in the last batch).
    new_list = lines([both_probe, *numbers(60_000, head="+3362"), new_probe])
    probes = [old_probe, new_probe, both_probe]
    old_verdict, new_verdict = (True, False, True), (False, True, True)
    seen: list[tuple[bool, ...]] = []
    done = asyncio.Event()

    async def lookups() -> None:
        while not done.is_set():
            found = await real_store.lookup(probes, ["global"])
            seen.append(tuple(bool(found[p]) for p in probes))

    watchers = [asyncio.create_task(lookups()) for _ in range(4)]
    await asyncio.sleep(0.01)
    report = await load(real_store, new_list, mode="replace")
    await asyncio.sleep(0.01)
    done.set()
    await asyncio.gather(*watchers)
    assert report.size == 60_002
    assert set(seen) <= {old_verdict, new_verdict}, set(seen) - {old_verdict, new_verdict}
    assert seen.count(old_verdict) > 20  # lookups really ran during the load
    assert seen[-1] == new_verdict
    assert await tmp_keys(real_store) == []


@pytest.mark.integration
async def test_import_ttl_on_the_real_server(real_store: Store) -> None:
    """Expiry is enforced by the server's clock: entries stop matching after the ttl."""
    report = await load(real_store, lines(numbers(20)), mode="replace",
                        expires_at=expiry_from(1, None))
    assert report.size == 20
    assert (await real_store.lookup([numbers(1)[0]], ["global"]))[numbers(1)[0]]

    async def expired() -> bool:
        return (await real_store.lookup([numbers(1)[0]], ["global"]))[numbers(1)[0]] == []

    await eventually(expired)


BENCH_COUNT = int(os.environ.get("GATEKEEPER_BENCH_LINES", "200000"))


@pytest.mark.integration
async def test_import_benchmark(real_store: Store, capsys: pytest.CaptureFixture[str]
                                ) -> None:
    """Import generated numbers into the real redis-server and print the rate.

    Not a timing assertion. The suite runs 200,000 lines; for the 1,000,000-line figure:
    GATEKEEPER_BENCH_LINES=1000000 .venv/bin/pytest -s tests/test_bulk.py -k benchmark
    """
    async def body() -> AsyncIterator[bytes]:
        for start in range(0, BENCH_COUNT, 10_000):
            yield b"".join(b"+3361%07d\n" % n
                           for n in range(start, min(start + 10_000, BENCH_COUNT)))

    started = time.perf_counter()
    report = await Importer(real_store, ImportOptions("block", "global", "replace")
                            ).run(body())
    elapsed = time.perf_counter() - started
    assert (report.added, report.size) == (BENCH_COUNT, BENCH_COUNT)
    with capsys.disabled():
        print(f"\nbulk import benchmark: {BENCH_COUNT:,} lines in {elapsed:.2f} s = "
              f"{BENCH_COUNT / elapsed:,.0f} lines/s (replace, real redis-server)")


@pytest.mark.parametrize("text", [False, True], ids=["fast-reader", "ordinary-parser"])
async def test_an_import_lets_the_loop_run_between_chunks(store: Store, text: bool) -> None:
    """Each chunk is followed by a turn of the event loop, even when the body is already
    buffered and the chunk needs no Redis call (a replace's packed numbers): an admin
    import in the serving process never holds its loop for a whole file."""
    turns = 0
    stop = asyncio.Event()

    async def other_work() -> None:
        nonlocal turns
        while not stop.is_set():
            turns += 1
            await asyncio.sleep(0)

    seen: list[int] = []

    async def buffered() -> AsyncIterator[bytes]:
        for n in range(40):
            seen.append(turns)
            # Spaced numbers are not strict E.164: the ordinary parser reads them.
            spacer = " " if text else ""
            yield "".join(f"+1{spacer}202{spacer}{n:03d}{spacer}{i:04d}\n"
                          for i in range(500)).encode()

    other = asyncio.ensure_future(other_work())
    await asyncio.sleep(0)
    try:
        report = await Importer(store, ImportOptions("block", "global", "replace")).run(
            buffered())
    finally:
        stop.set()
        await other
    assert report.added == 40 * 500
    # The other task ran between every two chunks.
    assert all(later > earlier for earlier, later in itertools.pairwise(seen)), seen

"""The export file format read back (restore): the header, CSV records spanning lines,
defused cells, each row's metadata, refused rows with their line numbers, and the
properties that make an export and its restore inverse."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatekeeper.bulk_format import (
    EXPORT_COLUMNS,
    MAX_LINE,
    LineError,
    LineParser,
    Parsed,
    defuse_cell,
    export_delimiter,
    export_row,
    parse_lines,
    restore_cell,
    split_record,
)
from gatekeeper.store import EntryMeta, Listed, ListItem
from gatekeeper.times import MAX_TTL
from tests.strategies import NOW, listed, text

E = ListItem
HEADER = b"entry,channel,source,added_at,added_by,note,expires_at\n"
T = "2024-01-01T00:00:00+00:00"
T_AT = 1704067200.0
LATER = "2030-01-01T00:00:00+00:00"
LATER_AT = 1893456000.0
NOT_E164 = "not E.164: write '+' and the country code, or give a region"


def err(line: int, entry: str, reason: str) -> LineError:
    """A line error, as the tables write it."""
    return LineError(line, entry, reason)


def meta(note: str | None = None, *, by: str | None = "ops", source: str = "api",
         expires: float | None = None) -> EntryMeta:
    """Metadata added at T."""
    return EntryMeta(source, T_AT, by, note, expires)


def row(rest: str) -> bytes:
    """The header, then one row."""
    return HEADER + rest.encode() + b"\n"


def parse(data: bytes) -> list[Parsed]:
    """The whole input parsed at NOW."""
    return parse_lines(data, clock=lambda: NOW)


RESTORE_CASES: list[tuple[str, bytes, list[Parsed]]] = [
    ("full-row", row(f'+33612345678,sms,api,{T},ops,"STOP, said ""no""",{LATER}'),
     [Listed(E("+33612345678", "sms"), meta('STOP, said "no"', expires=LATER_AT))]),
    ("empty-cells-are-none", row(f"+4479*,both,import,{T},,,"),
     [Listed(E("+4479*"), meta(by=None, source="import"))]),
    ("no-metadata", row("+4479*,voice,,,,,"), [Listed(E("+4479*", "voice"), None)]),
    ("blank-channel-is-the-default", row(f"+4479*,,api,{T},ops,,"),
     [Listed(E("+4479*"), meta())]),
    ("epoch-seconds", row(f"+4479*,both,api,{int(T_AT)},ops,,{int(LATER_AT)}"),
     [Listed(E("+4479*"), meta(expires=LATER_AT))]),
    ("note-over-lines",
     HEADER + f'+33612345678,both,api,{T},ops,"one\ntwo\r\nthree",\n'.encode()
     + f"+4479*,sms,api,{T},ops,,\n".encode(),
     [Listed(E("+33612345678"), meta("one\ntwo\r\nthree")),
      Listed(E("+4479*", "sms"), meta())]),
    ("defused-cells-undone", row(f"+33612345678,both,api,{T},'=cmd(),'+1 more,"),
     [Listed(E("+33612345678"), EntryMeta("api", T_AT, "=cmd()", "+1 more"))]),
    ("apostrophes-kept", row(f"+33612345678,both,api,{T},'tis,''=x,"),
     [Listed(E("+33612345678"), EntryMeta("api", T_AT, "'tis", "'=x"))]),
    ("spaces-and-bare-cr-kept", row(f"+33612345678,both,api,{T}, ops , a\rb ,"),
     [Listed(E("+33612345678"), EntryMeta("api", T_AT, " ops ", " a\rb "))]),
    ("bom-crlf-comments-blanks",
     b"\xef\xbb\xbf" + HEADER.replace(b"\n", b"\r\n")
     + f"# backup\r\n\r\n+33612345678,sms,api,{T},ops,x,\r\n".encode(),
     [Listed(E("+33612345678", "sms"), meta("x"))]),
    ("header-any-case-semicolons",
     b"Entry; Channel; Source; Added_At; Added_By; Note; Expires_At\n"
     + f"+33612345678;sms;api;{T};ops;a, b;\n".encode(),
     [Listed(E("+33612345678", "sms"), meta("a, b"))]),
    ("extra-columns-ignored", row(f"+4479*,both,api,{T},ops,,,whatever"),
     [Listed(E("+4479*"), meta())]),
    ("bad-rows-numbered-and-skipped",
     HEADER + "\n".join([
         "+33612345678,sms,api",
         f"+33612345678,sms,Not A Source,{T},ops,,",
         f"+33612345678,sms,,{T},ops,,",
         "+33612345678,sms,api,yesterday,ops,,",
         f"+33612345678,sms,api,{T},ops,,2020-01-01T00:00:00+00:00",
         f"+33612345678,sms,api,{T},ops,,2099-01-01T00:00:00+00:00",
         f"+33612345678,sms,api,{T},ops,,soon",
         f"+33612345678,fax,api,{T},ops,,",
         f"hello,sms,api,{T},ops,,",
         f'+33612345678,sms,api,{T},ops,"a"b,',
         f"+33612345678,sms,api,{T},ops,{'x' * 501},",
         f"+33612345678,sms,api,{T},{'x' * 201},,",
         f"+4479*,sms,api,{T},ops,,"]).encode() + b"\n",
     [err(2, "+33612345678", "expected 7 columns "
          "(entry,channel,source,added_at,added_by,note,expires_at), found 3"),
      err(3, "+33612345678", "source must be a word like api or import, not 'Not A Source'"),
      err(4, "+33612345678", "source must be a word like api or import, not ''"),
      err(5, "+33612345678", "added_at must be an ISO 8601 date-time or epoch seconds"),
      err(6, "+33612345678", "expired at 2020-01-01T00:00:00+00:00: not loaded"),
      err(7, "+33612345678",
          f"expires_at is too far ahead: at most {MAX_TTL} seconds from now"),
      err(8, "+33612345678", "expires_at must be an ISO 8601 date-time or epoch seconds"),
      err(9, "+33612345678", "channel must be sms, voice or both, not 'fax'"),
      err(10, "hello", NOT_E164),
      err(11, f'+33612345678,sms,api,{T},ops,"a"b,', "malformed CSV quoting"),
      err(12, "+33612345678", "note is longer than 500 characters"),
      err(13, "+33612345678", "added_by is longer than 200 characters"),
      Listed(E("+4479*", "sms"), meta())]),
    ("unclosed-quote-at-the-end",
     HEADER + f'+4479*,sms,api,{T},ops,,\n+33612345678,sms,api,{T},ops,"open\n+34*\n'
     .encode(),
     [Listed(E("+4479*", "sms"), meta()),
      err(3, f'+33612345678,sms,api,{T},ops,"open\n+34*', "a quoted cell is never closed")]),
]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1 << 20])
@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in RESTORE_CASES],
                         ids=[c[0] for c in RESTORE_CASES])
def test_export_rows_parse_with_their_metadata(data: bytes, expected: list[Parsed],
                                               size: int) -> None:
    """Each export parses to these entries, metadata and numbered errors, however the
    input is cut into chunks (inside a quoted line break, a CRLF, a BOM)."""
    parser = LineParser(clock=lambda: NOW)
    out: list[Parsed] = []
    for start in range(0, len(data), size):
        out += parser.feed(data[start:start + size])
    assert out + parser.close() == expected
    assert parser.restoring


def test_a_row_with_an_unclosed_quote_is_cut_at_max_line() -> None:
    """An open quote does not gather the rest of the file: past MAX_LINE the row fails
    with its first line's number, and the rows after it parse again."""
    first = f'+33612345678,sms,api,{T},ops,"open'
    body = HEADER + first.encode() + b"\n" + (b"y" * 100 + b"\n") * 45 \
        + f"+4479*,sms,api,{T},ops,,\n".encode()
    parsed = parse(body)
    assert parsed[0] == err(2, (first + "\n" + "y" * 100)[:80] + "...",
                            f"row too long (over {MAX_LINE} characters)")
    assert parsed[-1] == Listed(E("+4479*", "sms"), meta())


def test_a_plain_file_is_not_restored() -> None:
    """Without the export header, extra columns are ignored as before: plain items."""
    parser = LineParser()
    items = parser.feed(b"entry,channel,source\n+33612345678,sms,api\n") + parser.close()
    assert items == [E("+33612345678", "sms")]
    assert not parser.restoring


HEADERS = [
    ("exact", "entry,channel,source,added_at,added_by,note,expires_at", ","),
    ("case-and-spaces", " Entry , CHANNEL,source,added_at,added_by,note,expires_at", ","),
    ("semicolons", "entry;channel;source;added_at;added_by;note;expires_at", ";"),
    ("tabs", "entry\tchannel\tsource\tadded_at\tadded_by\tnote\texpires_at", "\t"),
    ("quoted", '"entry","channel","source","added_at","added_by","note","expires_at"',
     ","),
    ("plain-header", "entry,channel", None),
    ("fewer-columns", "entry,channel,source,added_at,added_by,note", None),
    ("more-columns", "entry,channel,source,added_at,added_by,note,expires_at,x", None),
    ("other-order", "channel,entry,source,added_at,added_by,note,expires_at", None),
    ("a-number", "+33612345678", None),
]


@pytest.mark.parametrize(("line", "delimiter"), [c[1:] for c in HEADERS],
                         ids=[c[0] for c in HEADERS])
def test_export_header_is_recognised(line: str, delimiter: str | None) -> None:
    """Only the export's own columns, in order, make an input an export."""
    assert export_delimiter(line) == delimiter


DEFUSED = [
    ("formula", "=1+1", "'=1+1"),
    ("plus", "+33 is France", "'+33 is France"),
    ("tab", "\tx", "'\tx"),
    ("apostrophe-word", "'tis", "'tis"),
    ("apostrophe-formula", "'=x", "''=x"),
    ("only-apostrophes", "''", "''"),
    ("plain", "asked twice", "asked twice"),
    ("none", None, ""),
]


@pytest.mark.parametrize(("value", "cell"), [c[1:] for c in DEFUSED],
                         ids=[c[0] for c in DEFUSED])
def test_defused_cells(value: str | None, cell: str) -> None:
    """Free text that a spreadsheet would run gets one apostrophe; restore takes it off."""
    assert defuse_cell(value) == cell
    assert restore_cell(cell) == (value or "")


@given(text)
def test_restore_cell_inverts_defuse_cell(value: str) -> None:
    """Defusing is undone exactly, and its output never starts a formula."""
    cell = defuse_cell(value)
    assert restore_cell(cell) == value
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


@given(st.lists(text, min_size=1, max_size=8))
def test_split_record_reads_what_csv_writes(cells: list[str]) -> None:
    """Any row the csv module writes splits back into its cells (bare CRs included,
    which the csv module's own reader refuses)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    assert split_record(out.getvalue().removesuffix("\n"), ",") == cells


@given(st.lists(listed(), max_size=20), st.integers(1, 64))
def test_exported_rows_parse_back_to_the_same_entries(rows: list[Listed], size: int
                                                      ) -> None:
    """Rows as export writes them parse back to the same entries and metadata, in any
    chunking."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    writer.writerows(export_row(r) for r in rows)
    data = out.getvalue().encode()
    parser = LineParser(clock=lambda: NOW)
    parsed: list[Parsed] = []
    for start in range(0, len(data), size):
        parsed += parser.feed(data[start:start + size])
    assert parsed + parser.close() == rows

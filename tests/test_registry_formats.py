"""National do-not-call registry files (US DNC full and change lists, UK TPS/CTPS) and the
fast path of the bulk formats: detection, line edge cases, and the properties that no line
is lost and that every number read is a possible number."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.registry_formats import MAX_LINE, Chunk, Format, detect, parse_chunk

FORMATS: tuple[Format, ...] = ("plain", "csv", "us-dnc", "us-dnc-change", "tps")
BOM = b"\xef\xbb\xbf"
EXPORT_HEADER = b"entry,channel,source,added_at,added_by,note,expires_at\n"


def parse(data: bytes, fmt: Format, region: str = "US", first_line: int = 1) -> Chunk:
    return parse_chunk(data, fmt, region, first_line)


def possible(number: int) -> bool:
    return phonenumbers.is_possible_number(phonenumbers.parse(f"+{number}"))


# detect ------------------------------------------------------------------------------

DETECTED: list[tuple[str, bytes, Format | None]] = [
    ("us full list, ten digits", b"2025550123\n2125550199\n4155550100\n", "us-dnc"),
    ("us full list, CRLF and BOM", BOM + b"2025550123\r\n2125550199\r\n", "us-dnc"),
    ("us full list, area code comma number", b"202,5550123\n212,5550199\n", "us-dnc"),
    ("us full list after a header line", b"phone\n2025550123\n2125550199\n", "us-dnc"),
    ("us full list, comments and blanks skipped", b"# area 202\n\n2025550123\n", "us-dnc"),
    ("us full list, one bad line in twenty", b"2025550123\n" * 19 + b"1025550123\n",
     "us-dnc"),
    ("us full list, last line of the sample cut", b"2025550123\n2125550199\n21255", "us-dnc"),
    ("us change list, flag last", b"202,5550123,2024-01-15,A\n212,5550199,2024-01-15,D\n",
     "us-dnc-change"),
    ("us change list, flag first, words", b"add,2025550123\ndelete,2125550199\n",
     "us-dnc-change"),
    ("us change list with a header", b"AreaCode,Phone,Action\n202,5550123,A\n",
     "us-dnc-change"),
    ("tps records with spaces", b"0207 3787244\r\n01635 506160\r\n07860 338653\r\n", "tps"),
    ("tps records padded", b"02073787244 \r\n01635506160 \r\n0800123456  \r\n", "tps"),
    ("plain E.164 list", b"+12025550123\n+442073787244\n+33612345678\n", None),
    ("csv with a header", b"phone,name\n+12025550123,Alice\n+12125550199,Bob\n", None),
    ("csv of US numbers with a channel", b"2025550123,sms\n2125550199,voice\n", None),
    ("the project's export", EXPORT_HEADER + b"2025550123,both,api,,,,\n", None),
    ("the project's plain file with its header", b"entry\n2025550123\n", None),
    ("bare UK numbers are not the TPS layout", b"02073787244\n07860338653\n", None),
    ("US and UK registry lines mixed", b"2025550123\n0207 3787244\n", None),
    ("prose", b"Numbers we must not call\nsee the registry\n", None),
    ("only comments", b"# nothing\n# here\n", None),
    ("empty", b"", None),
]


@pytest.mark.parametrize(("sample", "expected"), [(s, e) for _, s, e in DETECTED],
                         ids=[name for name, _, _ in DETECTED])
def test_detect(sample: bytes, expected: Format | None) -> None:
    """Each registry layout is recognised; anything else is left to the bulk reader."""
    assert detect(sample) == expected


# parse_chunk: edge cases ---------------------------------------------------------------

US = 12025550123
GB = 442073787244

PARSED: list[tuple[str, Format, str, bytes, list[int], list[str], list[str]]] = [
    # name, format, region, data, adds, slow texts, error reasons (substrings)
    ("crlf", "us-dnc", "US", b"2025550123\r\n2125550199\r\n", [US, 12125550199], [], []),
    ("bom at start", "us-dnc", "US", BOM + b"2025550123\n", [US], [], []),
    ("trailing whitespace", "us-dnc", "US", b"2025550123   \n2025550123\t\r\n", [US, US],
     [], []),
    ("no final newline", "us-dnc", "US", b"2025550123\n2025550123", [US, US], [], []),
    ("one and ten digits", "us-dnc", "US", b"12025550123\n", [US], [], []),
    ("+1", "us-dnc", "US", b"+12025550123\n+1 202 555 0123\n", [US, US], [], []),
    ("separators in plain", "plain", "US", b"(202) 555-0123\n202.555.0123\n", [US, US],
     [], []),
    ("area code comma number", "us-dnc", "US", b"202,5550123\n", [US], [], []),
    # Outside the NANP rules but possible to phonenumbers: never an error here, the slow
    # path decides (an entry the proxy would look up must not be lost).
    ("npa 1xx", "us-dnc", "US", b"1025550123\n", [], ["1025550123"], []),
    ("npa 0xx", "us-dnc", "US", b"0025550123\n", [], ["0025550123"], []),
    ("nxx 0xx", "plain", "US", b"2020550123\n", [], ["2020550123"], []),
    ("+1 with npa 1xx", "plain", "GB", b"+11025550123\n", [], ["+11025550123"], []),
    ("too short us", "us-dnc", "US", b"202555012\n", [], ["202555012"], []),
    ("too long us", "us-dnc", "US", b"202555012345\n", [], ["202555012345"], []),
    ("letters in a registry file", "us-dnc", "US", b"202555O123\n", [], [],
     ["not a telephone number"]),
    ("letters in plain are for phonenumbers", "plain", "US", b"1-800-FLOWERS\n", [],
     ["1-800-FLOWERS"], []),
    ("prefix entries are for the bulk reader", "plain", "US", b"+1202*\n", [], ["+1202*"],
     []),
    ("011 dialled abroad", "plain", "US", b"011442073787244\n", [], ["011442073787244"],
     []),
    ("gb with 0", "plain", "GB", b"02073787244\n020 7378 7244\n", [GB, GB], [], []),
    ("gb without 0", "plain", "GB", b"2073787244\n", [GB], [], []),
    ("gb +44", "plain", "US", b"+442073787244\n+44 20 7378 7244\n", [GB, GB], [], []),
    ("gb +44 (0)", "plain", "GB", b"+44 (0)20 7378 7244\n", [], ["+44 (0)20 7378 7244"], []),
    ("gb nine-digit nsn", "tps", "GB", b"0800 123456\n", [44800123456], [], []),
    ("gb unallocated 06", "tps", "GB", b"06123456789\n", [], ["06123456789"], []),
    ("gb too short: phonenumbers decides", "tps", "GB", b"012345\n", [], ["012345"], []),
    ("gb too long: phonenumbers decides", "tps", "GB", b"0207378724412\n", [],
     ["0207378724412"], []),
    ("tps fixed width", "tps", "US", b"0207 3787244\r\n01635 506160\r\n02073787244 \r\n",
     [GB, 441635506160, GB], [], []),
    ("tps letters", "tps", "GB", b"0207 378 72A4\n", [], [], ["not a telephone number"]),
    ("e164 elsewhere", "plain", "FR", b"+33612345678\n", [33612345678], [], []),
    ("national elsewhere is for phonenumbers", "plain", "FR", b"0612345678\n", [],
     ["0612345678"], []),
    # Never refused by the tables: the ordinary reader gives the reason (or takes it).
    ("unknown country code", "plain", "US", b"+999123456789\n", [], ["+999123456789"], []),
    ("more than 15 digits", "plain", "US", b"+4420737872441234\n", [],
     ["+4420737872441234"], []),
    ("plus zero", "plain", "US", b"+0123456789\n", [], ["+0123456789"], []),
    ("csv channel is for the bulk reader", "csv", "US", b"2025550123,sms\n", [],
     ["2025550123,sms"], []),
    ("csv empty channel", "csv", "US", b"2025550123,\n2025550123;;\n", [US, US], [], []),
    ("csv quoted", "csv", "US", b'"202-555-0123"\n', [US], [], []),
    ("csv empty first cell", "csv", "US", b",\n", [], [], ["no digits"]),
    ("only separators", "plain", "US", b"--\n", [], [], ["no digits"]),
    ("too long a line", "plain", "US", b"1" * (MAX_LINE + 1) + b"\n", [], [], ["too long"]),
    ("not utf-8", "plain", "US", b"\xff\xfe2025550123\n", [], [], ["UTF-8"]),
]


@pytest.mark.parametrize(("fmt", "region", "data", "adds", "slow", "errors"),
                         [p[1:] for p in PARSED], ids=[p[0] for p in PARSED])
def test_parse_chunk(fmt: Format, region: str, data: bytes, adds: list[int],
                     slow: list[str], errors: list[str]) -> None:
    """Each line lands where it belongs: a number, the slow path, or an error."""
    chunk = parse(data, fmt, region)
    assert sorted(chunk.adds) == sorted(adds)
    assert chunk.deletes == []
    assert [text for _, text in chunk.slow] == slow
    assert len(chunk.errors) == len(errors)
    for (_, _, reason), expected in zip(chunk.errors, errors, strict=True):
        assert expected in reason


def test_line_numbers_count_from_first_line() -> None:
    """Reported lines are first_line + index; blank, comment and header lines count."""
    chunk = parse(b"phone\n\n# note\n2025550123\n1025550123\nabc\n", "plain", "US")
    assert chunk.lines == 6
    assert chunk.slow == [(5, "1025550123"), (6, "abc")]
    later = parse(b"2025550123\n1025550123\n", "us-dnc", "US", first_line=101)
    assert [line for line, _ in later.slow] == [102]


def test_header_only_at_the_start_of_the_file() -> None:
    """A word line is a header only as the file's first line; later it is data."""
    assert parse(b"phone\n2025550123\n", "us-dnc").errors == []
    assert parse(b"2025550123\nphone\n", "us-dnc").errors[0][:2] == (2, "phone")
    assert parse(b"phone\n", "us-dnc", first_line=7).errors[0][:2] == (7, "phone")


def test_bom_only_at_the_start_of_the_file() -> None:
    """A byte-order mark is dropped in the first chunk; later it is part of a line."""
    assert parse(BOM + b"2025550123\n", "us-dnc", first_line=2).errors != []


def test_empty_chunk() -> None:
    """No data, no lines."""
    assert parse(b"", "us-dnc") == Chunk([], [], [], [], 0, started=False)


@pytest.mark.parametrize(("data", "header_open", "read", "started"), [
    (b"\n# list\n", True, 0, False),
    (b"phone\n", True, 0, True),
    (b"phone\n", False, 1, True),
    (b"\nphone\n+12025550123\n", True, 1, True),
], ids=["blank-and-comment-keep-it-open", "header-when-open", "words-once-closed",
        "header-after-a-blank-line"])
def test_the_header_is_the_first_line_that_is_not_blank_or_a_comment(
        data: bytes, header_open: bool, read: int, started: bool) -> None:
    """Whatever chunk it falls in: a chunk says whether it held such a line. `read`:
    lines taken as data (numbers, failures, or handed to the full parser)."""
    chunk = parse_chunk(data, "plain", "US", 5, header_open)
    taken = len(chunk.adds) + len(chunk.errors) + len(chunk.slow)
    assert (taken, chunk.started) == (read, started)


CHANGES: list[tuple[str, bytes, list[int], list[int], list[str]]] = [
    # name, data, adds, deletes, error reasons
    ("flags A and D last", b"202,5550123,2024-01-15,A\n2125550199,20240115,D\n", [US],
     [12125550199], []),
    ("flag words first", b"add,2025550123\nDELETE,2125550199\nDeleted,4155550100\n", [US],
     [12125550199, 14155550100], []),
    ("whitespace-separated", b"A 2025550123\nD 202 5550124\n", [US], [12025550124], []),
    ("quoted cells", b'"2025550123","D"\n', [], [US], []),
    ("header skipped", b"AreaCode,Phone,Date,Action\n202,5550123,01/15/2024,A\n", [US], [],
     []),
    ("no flag", b"2025550123,2024-01-15\n", [], [], ["no add/delete flag"]),
    ("remove is ambiguous", b"2025550123,R\n", [], [], ["no add/delete flag"]),
    ("both flags", b"2025550123,A,D\n", [], [], ["both"]),
    ("two numbers", b"A,2025550123,2125550199\n", [], [], ["more than one"]),
    ("no number", b"A,2024-01-15\n", [], [], ["no telephone number"]),
    ("invalid npa", b"1025550123,D\n", [], [], []),  # slow: see test below
]


@pytest.mark.parametrize(("data", "adds", "deletes", "errors"), [c[1:] for c in CHANGES],
                         ids=[c[0] for c in CHANGES])
def test_change_records(data: bytes, adds: list[int], deletes: list[int],
                        errors: list[str]) -> None:
    """Change records need exactly one flag and one number; other cells are ignored."""
    chunk = parse(data, "us-dnc-change")
    assert (chunk.adds, chunk.deletes) == (adds, deletes)
    assert chunk.slow == ([(1, data.decode().strip())] if b"1025550123" in data else [])
    assert len(chunk.errors) == len(errors)
    for (_, _, reason), expected in zip(chunk.errors, errors, strict=True):
        assert expected in reason


def test_whole_buffer_path_matches_line_path() -> None:
    """A clean chunk (read by slices) gives what a chunk with one bad line gives."""
    good = b"".join(b"%d%d%04d\n" % (200 + i, 999 - i, i) for i in range(500))
    clean = parse(good, "us-dnc")
    dirty = parse(good + b"bad\n", "us-dnc")
    assert clean.adds == dirty.adds
    assert len(clean.adds) == 500
    assert len(dirty.errors) == 1


@pytest.mark.parametrize("fmt", ["plain", "csv"])
def test_whole_buffer_e164_path_matches_line_path(fmt: Format) -> None:
    """A clean chunk of `+1` NANP lines (read by slices) gives what the same lines read
    one by one give; a near miss on any line (an NPA or NXX starting 0/1, a short line)
    sends the chunk to the line reader, which decides that line alone."""
    good = b"".join(b"+1%d%d%04d\n" % (200 + i, 999 - i, i) for i in range(500))
    clean = parse(good, fmt, "US")
    dirty = parse(good + b"bad\n", fmt, "US")
    assert clean.adds == dirty.adds
    assert clean.adds[0] == 12009990000
    assert len(clean.adds) == 500
    for odd in (b"+11029990000\n", b"+12021990000\n", b"+1202999000\n", b"+22029990000\n"):
        mixed = parse(good + odd, fmt, "US")
        assert mixed.adds[:500] == clean.adds
        assert len(mixed.adds) + len(mixed.slow) + len(mixed.errors) == 501


@settings(max_examples=200, deadline=None)
@given(numbers=st.lists(_US_NUMBER_E164 := st.tuples(
    st.sampled_from("23456789"), st.text("0123456789", min_size=2, max_size=2),
    st.sampled_from("23456789"), st.text("0123456789", min_size=6, max_size=6)).map(
        lambda t: "+1" + "".join(t)), min_size=1, max_size=40),
       extra=st.sampled_from(["", "\n", "+1\n", " +12025550123\n", "+120255501234\n"]))
def test_e164_slices_agree_with_the_line_reader(numbers: list[str], extra: str) -> None:
    """Whatever is appended, a chunk of `+1` lines reads as its lines read one at a time
    (each line alone is never the whole-buffer case unless it is one clean line)."""
    data = ("".join(f"{n}\n" for n in numbers) + extra).encode()
    whole = parse(data, "plain", "US")
    alone = [parse(line + b"\n", "plain", "US") for line in data.split(b"\n") if line]
    assert whole.adds == [a for one in alone for a in one.adds]
    assert len(whole.slow) == sum(len(one.slow) for one in alone)


# properties ----------------------------------------------------------------------------

_DIGIT = st.sampled_from("0123456789")
_NPA = st.tuples(st.sampled_from("23456789"), _DIGIT, _DIGIT).map("".join)
_US_NUMBER = st.tuples(_NPA, _NPA, st.text("0123456789", min_size=4, max_size=4)).map(
    "".join)
_GB_NSN = st.tuples(st.sampled_from("1235789"), st.text("0123456789", min_size=9,
                                                       max_size=9)).map("".join)


def _us_spelling(number: str) -> st.SearchStrategy[str]:
    return st.sampled_from([number, f"1{number}", f"+1{number}", f"{number[:3]},{number[3:]}",
                            f"({number[:3]}) {number[3:6]}-{number[6:]}",
                            f"{number[:3]}.{number[3:6]}.{number[6:]}"])


def _gb_spelling(nsn: str) -> st.SearchStrategy[str]:
    return st.sampled_from([f"0{nsn}", nsn, f"+44{nsn}", f"0{nsn[:3]} {nsn[3:]}",
                            f"0{nsn[:3]:<4}{nsn[3:]:>7}", f"+44 {nsn[:2]} {nsn[2:]}"])


_NOISE = st.text(st.sampled_from("0123456789+-() ,;\t#aAdDx\r\xe9\"*"), max_size=18)
_LINE = st.one_of(
    _US_NUMBER.flatmap(_us_spelling),
    _GB_NSN.flatmap(_gb_spelling),
    st.tuples(_US_NUMBER.flatmap(_us_spelling), st.sampled_from([",A", ",D", ",add", ",x"])
              ).map("".join),
    st.text("0123456789", min_size=1, max_size=16).map(lambda d: "+" + d),
    _NOISE,
    st.sampled_from(["", "   ", "# comment", "phone", "Phone Number,Action"]),
)
_LINES = st.lists(_LINE, max_size=30)


def _data_lines(lines: list[str]) -> list[str]:
    """The lines a reader must account for: not blank, not a `#` comment."""
    return [line for line in lines if line.strip() and not line.strip().startswith("#")]


@settings(max_examples=300, deadline=None)
@given(lines=_LINES, fmt=st.sampled_from(FORMATS), region=st.sampled_from(["US", "GB", "FR"]),
       cut=st.integers(0, 30), crlf=st.booleans())
def test_no_line_is_lost(lines: list[str], fmt: Format, region: str, cut: int,
                         crlf: bool) -> None:
    """Every data line ends in adds, deletes, slow or errors, whatever the chunking; only
    one header line (the file's first data line, without digits) may be skipped."""
    ending = "\r\n" if crlf else "\n"
    cut = min(cut, len(lines))
    first = "".join(line + ending for line in lines[:cut]).encode()
    second = "".join(line + ending for line in lines[cut:]).encode()
    chunks = [parse(first, fmt, region), parse(second, fmt, region, first_line=cut + 1)]
    assert [chunk.lines for chunk in chunks] == [cut, len(lines) - cut]
    accounted = sum(len(c.adds) + len(c.deletes) + len(c.slow) + len(c.errors)
                    for c in chunks)
    data = _data_lines(lines)
    skipped = len(data) - accounted
    assert skipped in (0, 1)
    if skipped:  # the header: the file's first data line, in the chunk at line 1
        at = next(i for i, line in enumerate(lines) if line in data)
        assert cut == 0 or at < cut
        assert not any(ch.isdigit() for ch in data[0])
    reported = [line for c in chunks for line, _ in c.slow] + [
        line for c in chunks for line, _, _ in c.errors]
    assert len(reported) == len(set(reported))
    assert all(1 <= line <= len(lines) and lines[line - 1].strip() for line in reported)


@settings(max_examples=300, deadline=None)
@given(lines=_LINES, fmt=st.sampled_from(FORMATS), region=st.sampled_from(["US", "GB"]))
def test_every_number_read_is_possible(lines: list[str], fmt: Format, region: str) -> None:
    """Each int the fast path gives is a possible number once written as `+digits`."""
    chunk = parse("".join(line + "\n" for line in lines).encode(), fmt, region)
    for number in chunk.adds + chunk.deletes:
        assert possible(number), number


@given(number=_US_NUMBER.flatmap(lambda n: st.tuples(st.just(n), _us_spelling(n))))
def test_us_spellings_give_the_number(number: tuple[str, str]) -> None:
    """Any US spelling of NPA-NXX-XXXX gives 1 + its ten digits, a possible number."""
    digits, spelled = number
    chunk = parse(spelled.encode() + b"\n", "us-dnc")
    assert chunk.adds == [int("1" + digits)]
    assert possible(chunk.adds[0])


@given(number=_GB_NSN.flatmap(lambda n: st.tuples(st.just(n), _gb_spelling(n))))
def test_gb_spellings_give_the_number(number: tuple[str, str]) -> None:
    """Any UK spelling (with 0, without, +44, TPS records) gives 44 + the NSN."""
    nsn, spelled = number
    for fmt in ("tps", "plain"):
        chunk = parse(spelled.encode() + b"\r\n", fmt, "GB")
        assert chunk.adds == [int("44" + nsn)]
        assert possible(chunk.adds[0])

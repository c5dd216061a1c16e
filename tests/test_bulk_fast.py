"""The bulk importer's fast path: which files take it (choose_format), national registry
files imported end to end (US full and change lists, UK TPS), and the invariants that
no line is lost and that chunking never changes what is read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.bulk import ChangeFileReplace, Importer, ImportOptions, parse_lines
from gatekeeper.bulk_fast import FastReader, FormatOption, Read, choose_format
from gatekeeper.bulk_format import LineError
from gatekeeper.registry_formats import Format
from gatekeeper.store import ListItem, Store
from tests.conftest import list_members
from tests.test_store import make_store

EXPORT = b"entry,channel,source,added_at,added_by,note,expires_at\n+33612345678,,api,,,,\n"

CHOSEN: list[tuple[str, FormatOption, str | None, bytes, Format | None]] = [
    ("us full list", "auto", None, b"2025550123\n2125550199\n", "us-dnc"),
    ("us full list, region US", "auto", "US", b"2025550123\n2125550199\n", "us-dnc"),
    ("ten digits said to be Turkish", "auto", "TR", b"2125550123\n2125550199\n", None),
    ("us change list", "auto", None, b"202,5550123,A\n212,5550199,D\n", "us-dnc-change"),
    ("uk tps records", "auto", None, b"0207 3787244\r\n01635 506160\r\n", "tps"),
    ("plain e164 list", "auto", None, b"+33612345678\n+447700900123\n# note\n", "plain"),
    ("the project's export", "auto", None, EXPORT, None),
    ("csv with channels", "auto", None, b"+33612345678,sms\n+4479*,voice\n", None),
    ("prefixes", "auto", None, b"+33*\n+4479*\n", None),
    ("header then numbers", "auto", None, b"Phone\n+33612345678\n", None),
    ("forced plain", "plain", None, b"+33*\n", "plain"),
    ("forced csv", "csv", "TR", b"x\n", "csv"),
]


@pytest.mark.parametrize(("option", "region", "sample", "expected"),
                         [c[1:] for c in CHOSEN], ids=[c[0] for c in CHOSEN])
def test_choose_format(option: FormatOption, region: str | None, sample: bytes,
                       expected: Format | None) -> None:
    """Auto detects national files (US ones only for a NANP or unspecified region) and
    pure E.164 lists; everything else keeps the ordinary reader; a forced format wins."""
    assert choose_format(option, region, sample) == expected


def store() -> Store:
    return make_store(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(),
                                               decode_responses=True))


async def run(target: Store, data: bytes, mode: Any = "add", **options: Any
              ) -> Any:
    async def body() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 7):  # lines cut anywhere
            yield data[start:start + 7]

    return await Importer(target, ImportOptions("block", "global", mode, **options)
                          ).run(body())


async def test_us_full_list_is_read_as_us_numbers_and_packed() -> None:
    """A US registry file (ten digits, or area code, comma, number) becomes +1 numbers,
    reported as read in `us-dnc`."""
    target = store()
    report = await run(target, b"2025550123\n212,5550199\n2025550123\n", "replace")
    assert (report.format, report.added, report.existing, report.size) == (
        "us-dnc", 2, 1, 2)
    assert await list_members(target) == {"+12025550123", "+12125550199"}
    found = await target.lookup(["+12125550199"], ["global"], "voice")
    assert [m.entry for m in found["+12125550199"]] == ["+12125550199"]


async def test_us_change_list_adds_and_deletes() -> None:
    """A change file in add mode adds its additions and removes its deletions."""
    target = store()
    await run(target, b"+12025550123\n+12125550199\n", "replace")
    report = await run(target, b"415,5550100,A\n212,5550199,D\n202,5550100,D\n")
    assert (report.format, report.added, report.removed) == ("us-dnc-change", 1, 1)
    assert await list_members(target) == {"+12025550123", "+14155550100"}
    assert report.to_json()["removed"] == 1


async def test_change_list_given_to_a_replace_is_refused() -> None:
    """A change file cannot replace a list: refused, the list untouched."""
    target = store()
    await run(target, b"+12025550123\n", "replace")
    with pytest.raises(ChangeFileReplace):
        await run(target, b"415,5550100,A\n202,5550123,D\n", "replace")
    assert await list_members(target) == {"+12025550123"}


async def test_uk_tps_records_become_plus_44_numbers() -> None:
    """TPS fixed-width records (dialling code, spaces, number) are UK numbers."""
    target = store()
    report = await run(target, b"0207 3787244\r\n01635 506160\r\n", "replace")
    assert report.format == "tps"
    assert await list_members(target) == {"+442073787244", "+441635506160"}


async def test_bad_lines_of_a_registry_file_are_failures_with_their_line() -> None:
    """A line with letters is a failure with its line number; a number outside the NANP
    rules that phonenumbers calls possible is loaded (the proxy would look it up)."""
    target = store()
    report = await run(target, b"2025550123\n202555O123\n1025550123\n2125550199\n",
                       "replace", format="us-dnc")
    assert (report.added, report.failed) == (3, 1)
    assert report.failures[0].line == 2
    assert "+11025550123" in await list_members(target)


async def test_a_default_channel_is_kept_by_the_fast_path() -> None:
    """`channel=sms` with a fast file: the numbers are limited to SMS (not packed)."""
    target = store()
    await run(target, b"+33612345678\n+447700900123\n", "replace", channel="sms")
    assert await list_members(target) == {"+33612345678#sms", "+447700900123#sms"}


async def test_overlong_line_is_one_failure_and_the_rest_loads() -> None:
    """A line over the limit, even cut across chunks, fails once; later lines load."""
    target = store()
    data = b"+33612345678\n+" + b"1" * 5000 + b"\n+447700900123\n"
    report = await run(target, data, "replace", format="plain")
    assert (report.added, report.failed, report.lines) == (2, 1, 3)
    assert await list_members(target) == {"+33612345678", "+447700900123"}


LINES = st.lists(st.one_of(
    st.builds(lambda a, b, c: f"+1{a}{b}{c:04d}", st.integers(201, 989),
              st.integers(200, 999), st.integers(0, 9999)),
    # Any ten digits after +1: phonenumbers calls them possible even where the NANP
    # rules do not (area or exchange code starting 0 or 1).
    st.builds(lambda n: f"+1{n:010d}", st.integers(0, 10 ** 10 - 1)),
    # UK numbers of every length, and any digits after a +: the tables must hand
    # whatever they do not take to phonenumbers.
    st.builds(lambda d: f"+44{d}", st.text("0123456789", min_size=5, max_size=12)),
    st.builds(lambda d: f"+{d}", st.text("0123456789", min_size=6, max_size=16)),
    st.builds(lambda n: f"+3361{n:07d}", st.integers(0, 9_999_999)),
    st.sampled_from(["", "# comment", "+33*", "junk", "+0123", "+33 6 12 34 56 78",
                     "+44 7700 900123,sms", "+1202555012a"])), max_size=40)


def _read_all(fmt: Format, data: bytes, cuts: list[int]) -> tuple[list[int], list[ListItem],
                                                                   list[LineError], int]:
    reader = FastReader(fmt, None, None)
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    reads: list[Read] = [reader.feed(p) for p in pieces] + [reader.close()]
    return ([n for r in reads for n in r.adds], [i for r in reads for i in r.items],
            [e for r in reads for e in r.errors], reader.lines)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(lines=LINES, data=st.data())
def test_chunking_never_changes_what_is_read(lines: list[str], data: st.DataObject) -> None:
    """However the file is cut into chunks, the same numbers, entries and failures come
    out, with the same line numbers."""
    body = "".join(f"{line}\n" for line in lines).encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=6)))
    assert _read_all("plain", body, cuts) == _read_all("plain", body, [])


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(lines=LINES)
def test_fast_path_reads_every_line_the_ordinary_reader_accepts(lines: list[str]) -> None:
    """No entry is lost: every entry the ordinary reader takes from a file, the fast
    path takes too (as the same E.164 number and channel)."""
    body = "".join(f"{line}\n" for line in lines).encode()
    ordinary = {i for i in parse_lines(body) if isinstance(i, ListItem)}
    adds, items, _errors, _lines = _read_all("plain", body, [])
    fast = {ListItem(f"+{n}") for n in adds} | set(items)
    assert ordinary <= fast

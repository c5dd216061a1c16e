"""Bulk import and export over the admin API: add and replace, query parameters, keys and
scopes, failures with line numbers, broken uploads, streamed export and round trips."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import gzip
import io
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from aiohttp import ClientPayloadError, web
from prometheus_client import CollectorRegistry

from gatekeeper.app import ADMIN_APP, create_app
from gatekeeper.config import AdminKey, RedisConfig
from gatekeeper.policy import ListName
from gatekeeper.resources import RESOURCES
from gatekeeper.store import EntryMeta, ListItem, Store, StoreUnavailable, connect
from tests.conftest import (
    ADMIN_KEY,
    AUTH,
    FakeUpstream,
    Running,
    StartGatekeeper,
    eventually,
    leftovers,
    list_members,
    log_events,
    make_config,
)

IMPORT = "/admin/v1/lists/{}/import"
EXPORT = "/admin/v1/lists/{}/export"
READER = AdminKey("reader", "reader-secret-0123456789", "read", ("*",))
ACME = AdminKey("acme-writer", "acme-secret-0123456789", "write", ("tenant:acme",))
NOT_E164 = "not E.164: write '+' and the country code, or give a region"


def bearer(key: AdminKey) -> dict[str, str]:
    """The Authorization header for a key."""
    return {"Authorization": f"Bearer {key.secret}"}


@pytest.fixture
async def gk(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream,
             tmp_path: Path) -> Running:
    """Gatekeeper on fakeredis with the usual write key plus a read key and a key for
    tenant:acme only."""
    config = make_config(upstream.url, tmp_path)
    admin = dataclasses.replace(config.admin, keys=(
        AdminKey("admin", ADMIN_KEY, "write", ("*",)), READER, ACME))
    return await start_gatekeeper(dataclasses.replace(config, admin=admin))


async def import_body(gk: Running, body: Any, list_name: str = "block", *,
                      headers: dict[str, str] | None = None, **params: str
                      ) -> tuple[int, dict[str, Any]]:
    """POST an import; the status and the JSON reply."""
    resp = await gk.admin.post(IMPORT.format(list_name), data=body, params=params,
                               headers=AUTH if headers is None else headers)
    assert resp.content_type == "application/json", await resp.text()
    return resp.status, dict(await resp.json())


async def export_text(gk: Running, list_name: str = "block", *,
                      headers: dict[str, str] | None = None, **params: str) -> str:
    """GET an export, expecting 200 CSV."""
    resp = await gk.admin.get(EXPORT.format(list_name), params=params,
                              headers=AUTH if headers is None else headers)
    text = await resp.text()
    assert resp.status == 200, text
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    return text


def store_of(gk: Running) -> Store:
    """The running Gatekeeper's store."""
    return gk.app[RESOURCES].store


async def members(gk: Running, list_name: ListName = "block", scope: str = "global"
                  ) -> set[str]:
    """Every entry of a list as its member, whatever its layout."""
    return await list_members(store_of(gk), list_name, scope)


async def tmp_keys(gk: Running) -> list[str]:
    """Staging keys (and packed buckets) left behind."""
    return await leftovers(gk.redis, "gk:")


def list_changes(buffer: io.StringIO) -> list[dict[str, Any]]:
    """The `list_changed` log events so far."""
    return [e for e in log_events(buffer) if e["event"] == "list_changed"]


def lines(entries: Iterable[str]) -> bytes:
    """One entry per line."""
    return "".join(f"{e}\n" for e in entries).encode()


def numbers(count: int, start: int = 0) -> list[str]:
    """`count` distinct valid numbers."""
    return [f"+3361{n:07d}" for n in range(start, start + count)]


async def decision(gk: Running, number: str, **params: str) -> str:
    """The verdict of /admin/v1/check for a number."""
    resp = await gk.admin.get("/admin/v1/check", params={"number": number, **params},
                              headers=AUTH)
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["decision"])


# ------------------------------------------------------------------------ add


async def test_import_adds_csv_and_reports_counts(gk: Running, log_output: io.StringIO
                                                  ) -> None:
    """A CSV with a header, comments and a bad line: counts, numbered failures, the
    entries listed with import metadata, and one `list_changed`."""
    await gk.block("+33612345678")
    body = (b"\xef\xbb\xbfentry,channel\r\n# from the CRM\r\n+33612345678,both\r\n"
            b"+4479*,sms\r\n\r\nhello\r\n+34 600 000 000,voice\r\n")
    status, reply = await import_body(gk, body, scope="global", note="CRM sync")
    assert status == 200
    assert reply == {
        "mode": "add", "scope": "global", "list": "block", "lines": 7, "added": 2,
        "existing": 1, "failed": 1,
        "failures": [{"line": 6, "entry": "hello", "reason": NOT_E164}]}
    assert await members(gk) == {"+33612345678", "+4479*#sms", "+34600000000#voice"}
    [meta] = await store_of(gk).metadata("block", "global", [ListItem("+4479*", "sms")])
    assert meta is not None
    assert (meta.source, meta.added_by, meta.note) == ("import", "admin", "CRM sync")
    [event] = [e for e in list_changes(log_output) if e.get("op") == "import"]
    assert {k: event[k] for k in ("key_name", "scope", "list", "mode", "lines", "added",
                                  "existing", "failed", "outcome")} == {
        "key_name": "admin", "scope": "global", "list": "block", "mode": "add",
        "lines": 7, "added": 2, "existing": 1, "failed": 1, "outcome": "applied"}


async def test_import_plain_lines_into_allow_and_a_scope(gk: Running) -> None:
    """One entry per line into the allow list of a scope; lookups see them."""
    status, reply = await import_body(gk, lines(["+447911123456", "+1415555*"]), "allow",
                                      scope="tenant:acme")
    assert (status, reply["added"]) == (200, 2)
    assert await members(gk, "allow", "tenant:acme") == {"+447911123456", "+1415555*"}
    assert await decision(gk, "+14155550100", scope="tenant:acme") == "allowed"
    assert await decision(gk, "+14155550100") == "unlisted"


async def test_import_query_channel_and_region_apply_to_the_whole_import(gk: Running
                                                                         ) -> None:
    """`channel` fills lines without a channel column; `region` reads national numbers."""
    status, reply = await import_body(
        gk, b"0532 123 45 67\n05321234568,both\n05321234569,sms\n", channel="voice",
        region="tr")
    assert (status, reply["added"], reply["failed"]) == (200, 3, 0)
    assert await members(gk) == {"+905321234567#voice", "+905321234568",
                                 "+905321234569#sms"}


async def test_import_reports_at_most_100_failures(gk: Running) -> None:
    """Every failure is counted; the first 100 are listed, with their line numbers."""
    body = lines(["+33612345678"] + [f"bad-{n}" for n in range(150)])
    status, reply = await import_body(gk, body)
    assert (status, reply["added"], reply["failed"]) == (200, 1, 150)
    assert len(reply["failures"]) == 100
    assert [f["line"] for f in reply["failures"]] == list(range(2, 102))
    assert reply["failures"][0] == {"line": 2, "entry": "bad-0", "reason": NOT_E164}


async def test_import_with_ttl_stops_matching_after_it(gk: Running) -> None:
    """Entries imported with a short expiry block until it passes, then not."""
    status, reply = await import_body(gk, lines(["+33612345678"]),
                                      expires_at=f"{time.time() + 1.0:.3f}")
    assert (status, reply["added"]) == (200, 1)
    [meta] = await store_of(gk).metadata("block", "global", [ListItem("+33612345678")])
    assert meta is not None
    assert meta.expires_at is not None
    assert await decision(gk, "+33612345678") == "blocked"

    async def expired() -> bool:
        return await decision(gk, "+33612345678") == "unlisted"

    await eventually(expired, within=5.0)


async def test_import_ttl_seconds_sets_the_expiry(gk: Running) -> None:
    """`ttl_seconds` sets every entry's expiry that far ahead."""
    status, _ = await import_body(gk, lines(["+33612345678"]), ttl_seconds="3600")
    assert status == 200
    [meta] = await store_of(gk).metadata("block", "global", [ListItem("+33612345678")])
    assert meta is not None
    assert meta.expires_at is not None
    assert abs(meta.expires_at - (time.time() + 3600)) < 60


# ------------------------------------------------------------------------ replace


async def test_replace_swaps_the_list_and_reports_its_size(gk: Running,
                                                           log_output: io.StringIO) -> None:
    """A replace leaves exactly the imported entries; other scopes are untouched."""
    await gk.block("+33612345678", "+4479*")
    await gk.block("+33612345678", scope="tenant:acme")
    status, reply = await import_body(gk, lines(["+34600000000", "+4479*", "nope"]),
                                      mode="replace")
    assert status == 200
    assert (reply["mode"], reply["added"], reply["failed"], reply["size"]) == \
        ("replace", 2, 1, 2)
    assert await members(gk) == {"+34600000000", "+4479*"}
    assert await members(gk, scope="tenant:acme") == {"+33612345678"}
    assert await tmp_keys(gk) == []
    [event] = [e for e in list_changes(log_output) if e.get("op") == "import"]
    assert (event["mode"], event["size"], event["outcome"]) == ("replace", 2, "applied")


async def test_replace_with_no_valid_entry_is_refused(gk: Running,
                                                      log_output: io.StringIO) -> None:
    """Only failed lines: 400 `no_valid_entries` and the list stays as it was."""
    await gk.block("+33612345678")
    status, reply = await import_body(gk, b"0612345678\nhello\n", mode="replace")
    assert (status, reply["code"]) == (400, "no_valid_entries")
    assert f"2 failed; line 1: {NOT_E164}" in reply["message"]
    assert await members(gk) == {"+33612345678"}
    assert await tmp_keys(gk) == []
    [event] = [e for e in list_changes(log_output) if e.get("op") == "import"]
    assert (event["outcome"], event["failed"]) == ("refused", 2)


async def test_replace_store_fault_is_503_and_leaves_the_list(
        gk: Running, monkeypatch: pytest.MonkeyPatch, log_output: io.StringIO) -> None:
    """A store fault after a batch was loaded: 503, staging dropped, live list intact
    (channel-limited entries: they are written batch by batch, never packed)."""
    await gk.block("+33612345678")
    store = store_of(gk)
    real_add_to = store.add_to
    calls = 0

    async def failing(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise StoreUnavailable("connection reset")
        return await real_add_to(*args, **kwargs)

    monkeypatch.setattr(store, "add_to", failing)
    status, reply = await import_body(gk, lines([f"{n},sms" for n in numbers(12_000)]),
                                      mode="replace")
    assert (status, reply["code"]) == (503, "store_unavailable")
    assert calls == 2
    assert await members(gk) == {"+33612345678"}
    assert await tmp_keys(gk) == []
    [event] = [e for e in list_changes(log_output) if e.get("op") == "import"]
    assert (event["outcome"], event["added"]) == ("aborted", 5000)


async def _raw_upload(host: str, port: int, head: bytes, body: bytes, tail: bytes) -> None:
    """Send a request's head and body, wait, send `tail`, then hang up."""
    _reader, writer = await asyncio.open_connection(host, port)
    writer.write(head + body)
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.write(tail)
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.close()
    await writer.wait_closed()


async def _wait_for_import_event(buffer: io.StringIO) -> dict[str, Any]:
    for _ in range(100):
        found = [e for e in list_changes(buffer) if e.get("op") == "import"]
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError("no list_changed event")


@pytest.fixture
async def served(upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[
        tuple[str, int, Any]]:
    """The admin listener run as `gatekeeper run` runs it (AppRunner, no handler
    cancellation: a vanished client shows as an error reading the body); host, port and
    its fakeredis client."""
    client = fakeredis.FakeAsyncRedis(decode_responses=True)
    app = create_app(make_config(upstream.url, tmp_path), registry=CollectorRegistry(),
                     redis_client=client)
    proxy_runner = web.AppRunner(app, handle_signals=False)
    admin_runner = web.AppRunner(app[ADMIN_APP], handle_signals=False)
    await proxy_runner.setup()
    await admin_runner.setup()
    try:
        site = web.TCPSite(admin_runner, "127.0.0.1", 0)
        await site.start()
        yield "127.0.0.1", int(admin_runner.addresses[0][1]), client
    finally:
        await admin_runner.cleanup()
        await proxy_runner.cleanup()


async def _broken_upload(host: str, port: int, redis: Any, log_output: io.StringIO,
                         broken: str) -> None:
    """Replace the block list by an upload that breaks after a batch was loaded; check
    the staging keys are dropped, the live list is as it was, the import logged aborted."""
    await redis.zadd("gk:list:block:global", {"+33612345678": 0})
    # Over the 1 MB the handler reads before it starts (bulk_child.OFFLOAD_BYTES), and
    # more than one batch after it, so staging really holds some when the body breaks.
    sent = lines(numbers(90_000))
    head = (f"POST {IMPORT.format('block')}?mode=replace HTTP/1.1\r\nHost: admin\r\n"
            f"Authorization: Bearer {ADMIN_KEY}\r\n").encode()
    if broken == "client-disconnects":
        head += f"Content-Length: {len(sent) * 2}\r\n\r\n".encode()
        body, tail = sent, b""
    else:
        head += b"Transfer-Encoding: chunked\r\n\r\n"
        body, tail = b"%x\r\n%s\r\n" % (len(sent), sent), b"zz\r\nxx\r\n"
    await _raw_upload(host, port, head, body, tail)
    event = await _wait_for_import_event(log_output)
    # Cancelled handler, lost connection, or the production listener's own refusal.
    assert event["error"] in ("CancelledError", "Connection lost",
                              "the request body is malformed")
    assert event["outcome"] == "aborted"
    assert event["added"] >= 5000
    assert await redis.zrange("gk:list:block:global", 0, -1) == ["+33612345678"]
    assert not await redis.exists("gk:packed:block:global")
    for _ in range(20):  # the clean-up may finish just after the event
        if not await leftovers(redis, "gk:"):
            break
        await asyncio.sleep(0.05)
    assert await leftovers(redis, "gk:") == []


BROKEN = ["client-disconnects", "bad-chunked-encoding"]


@pytest.mark.parametrize("broken", BROKEN)
async def test_replace_broken_upload_leaves_the_list(gk: Running, log_output: io.StringIO,
                                                     broken: str) -> None:
    """An upload that stops half-way or breaks its chunked encoding (aiohttp's test
    server cancels the handler when the client goes): live list untouched."""
    assert gk.admin.server.port is not None
    await _broken_upload(str(gk.admin.server.host), gk.admin.server.port, gk.redis,
                         log_output, broken)


@pytest.mark.parametrize("broken", BROKEN)
async def test_replace_broken_upload_leaves_the_list_as_run(
        served: tuple[str, int, Any], log_output: io.StringIO, broken: str) -> None:
    """The same with the listener set up as `gatekeeper run` does (the handler is not
    cancelled: reading the body fails instead)."""
    await _broken_upload(*served, log_output, broken)


async def test_gzip_body_is_imported(gk: Running) -> None:
    """A body sent with Content-Encoding: gzip is decompressed as it streams."""
    status, reply = await import_body(gk, gzip.compress(lines(numbers(3))),
                                      headers={**AUTH, "Content-Encoding": "gzip"})
    assert (status, reply["added"]) == (200, 3)
    assert await members(gk) == set(numbers(3))


@pytest.mark.parametrize("sent", ["whole", "streamed"])
async def test_corrupt_gzip_body_is_400_and_replace_leaves_the_list(
        gk: Running, log_output: io.StringIO, sent: str) -> None:
    """A gzip body whose checksum is wrong (found only at its end): 400 `invalid_body`,
    list untouched; whether the body arrived before the handler read it or while it
    was reading."""
    await gk.block("+33612345678")
    packed = gzip.compress(lines(numbers(20_000)))
    broken = packed[:-8] + bytes(8)

    async def trickle() -> AsyncIterator[bytes]:
        for i in range(0, len(broken), 4096):
            await asyncio.sleep(0.001)
            yield broken[i:i + 4096]

    status, reply = await import_body(gk, broken if sent == "whole" else trickle(),
                                      mode="replace",
                                      headers={**AUTH, "Content-Encoding": "gzip"})
    assert (status, reply["code"]) == (400, "invalid_body")
    assert "malformed" in reply["message"]
    assert await members(gk) == {"+33612345678"}
    assert await tmp_keys(gk) == []
    [event] = [e for e in list_changes(log_output) if e.get("op") == "import"]
    assert event["outcome"] == "aborted"


# ------------------------------------------------------------------------ refusals


BAD_QUERIES: list[tuple[str, dict[str, str], str]] = [
    ("mode", {"mode": "merge"}, "invalid_query"),
    ("scope", {"scope": "Bad Scope"}, "invalid_scope"),
    ("channel", {"channel": "fax"}, "invalid_channel"),
    ("region", {"region": "ZZ"}, "invalid_region"),
    ("ttl-zero", {"ttl_seconds": "0"}, "invalid_query"),
    ("ttl-word", {"ttl_seconds": "soon"}, "invalid_query"),
    ("ttl-and-expiry", {"ttl_seconds": "60", "expires_at": "2100-01-01T00:00:00Z"},
     "invalid_query"),
    ("expiry-past", {"expires_at": "2000-01-01T00:00:00Z"}, "invalid_query"),
    ("note-too-long", {"note": "x" * 501}, "invalid_query"),
    ("unknown-param", {"mdoe": "replace"}, "invalid_query"),
    ("allow-empty-word", {"mode": "replace", "allow_empty": "yes"}, "invalid_query"),
    ("allow-empty-with-add", {"allow_empty": "true"}, "invalid_query"),
]


@pytest.mark.parametrize(("params", "code"), [c[1:] for c in BAD_QUERIES],
                         ids=[c[0] for c in BAD_QUERIES])
async def test_bad_query_is_400_and_writes_nothing(gk: Running, log_output: io.StringIO,
                                                   params: dict[str, str], code: str) -> None:
    """Invalid parameters: 400 with a code, nothing written, nothing logged."""
    status, reply = await import_body(gk, lines(["+33612345678"]), **params)
    assert (status, reply["code"]) == (400, code)
    assert reply["message"]
    assert await gk.redis.keys("*") == []
    assert list_changes(log_output) == []


@pytest.mark.parametrize(("key", "scope", "status"), [
    (None, "global", 401),
    (READER, "global", 403),
    (ACME, "global", 403),
    (ACME, "tenant:other", 403),
], ids=["no-key", "read-key", "scoped-key-global", "scoped-key-other-scope"])
async def test_import_needs_a_write_key_for_the_scope(
        gk: Running, log_output: io.StringIO, key: AdminKey | None, scope: str,
        status: int) -> None:
    """Refused keys: nothing is read into the store, nothing is logged."""
    headers = {} if key is None else bearer(key)
    got, _ = await import_body(gk, lines(["+33612345678"]), scope=scope, mode="replace",
                               headers=headers)
    assert got == status
    assert await gk.redis.keys("*") == []
    assert list_changes(log_output) == []


async def test_scoped_key_imports_into_its_scope(gk: Running,
                                                 log_output: io.StringIO) -> None:
    """A write key for tenant:acme imports there, named in the audit log."""
    status, reply = await import_body(gk, lines(["+33612345678"]), scope="tenant:acme",
                                      headers=bearer(ACME))
    assert (status, reply["added"]) == (200, 1)
    [event] = list_changes(log_output)
    assert (event["key_name"], event["scope"]) == ("acme-writer", "tenant:acme")


# ------------------------------------------------------------------------ large bodies


async def _traced_import(gk: Running, count: int) -> tuple[int, int, dict[str, Any]]:
    """Replace the block list by `count` generated CSV rows sent chunked from a
    generator; the peak traced memory, the body's size and the reply."""
    row = ",sms,import,2024-01-01T00:00:00+00:00,ops,opted out by an SMS reply (STOP),\n"
    size = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal size
        for start in range(0, count, 2000):
            chunk = "".join(f"+3361{n:07d}{row}" for n in range(start, start + 2000)
                            ).encode()
            size += len(chunk)
            yield chunk

    tracemalloc.start()
    try:
        status, reply = await import_body(gk, body(), mode="replace")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 200, reply
    assert (reply["lines"], reply["added"], reply["size"]) == (count, count, count)
    return peak, size, reply


async def test_large_streamed_import_is_not_limited_by_client_max_size(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        real_redis: Any) -> None:
    """A 100k-row body, many times the admin app's client_max_size, is imported whole
    without being held: the peak traced memory (client and server together) is no more
    for 100k rows than for 20k, and well under the body's size."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path), redis=real_redis)
    assert gk.admin.app is not None
    max_size = gk.admin.app._client_max_size
    await _traced_import(gk, 4_000)  # warms up connections, scripts and caches
    small_peak, _, _ = await _traced_import(gk, 20_000)
    peak, size, _ = await _traced_import(gk, 100_000)
    assert size > 8 * max_size
    assert peak < small_peak * 1.3, (peak, small_peak)
    # Held whole, the body alone would be `size`. Chunks the client has sent and the
    # server not yet read are traced too (one process): with the suite's other worker
    # busy the peak once reached 4.46 MB of an 8.8 MB body.
    assert peak < size * 0.75, (peak, size)
    assert await real_redis.zcard("gk:list:block:global") == 100_000


# ------------------------------------------------------------------------ export


async def test_export_streams_csv_with_metadata(gk: Running) -> None:
    """Header, then a row per live entry in order, with source, dates, author and note;
    sent chunked."""
    await store_of(gk).add("block", "global", [ListItem("+33612345678"),
                                               ListItem("+4479*", "voice")],
                           EntryMeta(source="api", added_at=0.0, added_by="ops",
                                     note="asked, twice", expires_at=4102444800.0))
    resp = await gk.admin.get(EXPORT.format("block"), headers=AUTH)
    assert resp.headers["Transfer-Encoding"] == "chunked"
    assert "block-global.csv" in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(await resp.text())))
    assert rows == [
        ["entry", "channel", "source", "added_at", "added_by", "note", "expires_at"],
        ["+33612345678", "both", "api", "1970-01-01T00:00:00+00:00", "ops", "asked, twice",
         "2100-01-01T00:00:00+00:00"],
        ["+4479*", "voice", "api", "1970-01-01T00:00:00+00:00", "ops", "asked, twice",
         "2100-01-01T00:00:00+00:00"]]


async def test_export_round_trips_an_import(gk: Running) -> None:
    """Import, export, import the export into another scope (replace), export again:
    the same file, byte for byte (metadata restored, not re-stamped)."""
    body = lines([*numbers(2500), "+4479*,sms", "+34*,voice", "+1415555*,both"])
    status, _ = await import_body(gk, body, note="round, trip")
    assert status == 200
    first = await export_text(gk)
    status, reply = await import_body(gk, first.encode(), scope="tenant:copy",
                                      mode="replace")
    assert (status, reply["failed"], reply["size"]) == (200, 0, 2503)
    second = await export_text(gk, scope="tenant:copy")
    assert second == first
    assert len(list(csv.reader(io.StringIO(first)))) == 2504


@pytest.mark.parametrize(("key", "scope", "status"), [
    (READER, "global", 200),
    (ACME, "tenant:acme", 200),
    (ACME, "global", 403),
    (None, "global", 401),
], ids=["read-key", "scoped-key-own-scope", "scoped-key-global", "no-key"])
async def test_export_needs_a_key_covering_the_scope(gk: Running, key: AdminKey | None,
                                                     scope: str, status: int) -> None:
    """Any key may export a scope it covers; others are refused."""
    resp = await gk.admin.get(EXPORT.format("allow"), params={"scope": scope},
                              headers={} if key is None else bearer(key))
    assert resp.status == status
    if status == 200:
        assert (await resp.text()).startswith("entry,channel,")


async def test_export_refuses_unknown_parameters(gk: Running) -> None:
    """A mistyped parameter is a 400, not an export of the wrong scope."""
    resp = await gk.admin.get(EXPORT.format("block"), params={"scoep": "tenant:acme"},
                              headers=AUTH)
    assert resp.status == 400
    assert (await resp.json())["code"] == "invalid_query"


async def test_export_with_the_store_down_is_503(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A store down at the start of an export: a clean 503 JSON error."""
    client = connect(RedisConfig(timeout=0.2), "redis://127.0.0.1:1/0")
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path), redis=client)
    resp = await gk.admin.get(EXPORT.format("block"), headers=AUTH)
    assert resp.status == 503
    assert (await resp.json())["code"] == "store_unavailable"


async def test_export_store_fault_mid_stream_truncates_the_transfer(
        gk: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault after the first rows were sent ends the transfer without its final chunk,
    so the client sees an incomplete download rather than a short file."""
    await gk.block(*numbers(2500))
    store = store_of(gk)
    real_page = store._set_page
    pages = 0

    async def failing(*args: Any, **kwargs: Any) -> Any:
        nonlocal pages
        pages += 1
        if pages == 2:
            raise StoreUnavailable("connection reset")
        return await real_page(*args, **kwargs)

    monkeypatch.setattr(store, "_set_page", failing)
    resp = await gk.admin.get(EXPORT.format("block"), headers=AUTH)
    assert resp.status == 200
    with pytest.raises(ClientPayloadError, match="not completed"):
        await resp.read()


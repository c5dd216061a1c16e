"""Export then replace-import through the admin API restores a list exactly (a property
test on fakeredis), and a replace by an input with no entry is refused unless
allow_empty."""

from __future__ import annotations

import dataclasses
import io
import itertools
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.resources import RESOURCES
from gatekeeper.store import EntryMeta, ListItem, Store
from tests.conftest import AUTH, Running, log_events
from tests.strategies import channels, entries, metas

IMPORT = "/admin/v1/lists/block/import"
EXPORT = "/admin/v1/lists/block/export"
HEADER = b"entry,channel,source,added_at,added_by,note,expires_at\n"
NOW = time.time()
_SCOPES = itertools.count()

# Stored metadata as the API stores it: any fraction of a second (exports show whole
# seconds), an expiry at least an hour ahead, or none at all.
_STORED = st.one_of(
    st.none(),
    st.builds(lambda m, f: dataclasses.replace(
        m, added_at=m.added_at + f,
        expires_at=None if m.expires_at is None else m.expires_at + f),
        metas(NOW), st.floats(0, 0.999)))
# Groups of entries added together: inline metadata (the admin API's way) or one shared
# record (an import's way).
_GROUPS = st.lists(st.tuples(_STORED, st.lists(st.builds(ListItem, entries(), channels),
                                               min_size=1, max_size=4), st.booleans()),
                   max_size=12)


def store_of(gk: Running) -> Store:
    """The running Gatekeeper's store."""
    return gk.app[RESOURCES].store


async def seed(store: Store, scope: str,
               groups: list[tuple[EntryMeta | None, list[ListItem], bool]]) -> None:
    """Add each group of entries with its metadata, inline or as a shared record."""
    keys = store.keys.of("block", scope)
    for meta, items, shared in groups:
        if meta is None:
            await store.add_to(keys, items, "", None)
        elif shared:
            await store.add_to(keys, items, await store.save_batch(meta, scope), meta.expires_at)
        else:
            await store.add("block", scope, items, meta)


async def export(gk: Running, scope: str) -> bytes:
    """The export of block/<scope>."""
    resp = await gk.admin.get(EXPORT, params={"scope": scope}, headers=AUTH)
    assert resp.status == 200
    return await resp.read()


async def listing(gk: Running, scope: str) -> list[dict[str, Any]]:
    """Every page of GET entries for block/<scope>."""
    found: list[dict[str, Any]] = []
    cursor = ""
    while True:
        resp = await gk.admin.get("/admin/v1/lists/block/entries", headers=AUTH,
                                  params={"scope": scope, "cursor": cursor, "limit": "7"})
        assert resp.status == 200
        page = await resp.json()
        found += page["entries"]
        if page["next_cursor"] is None:
            return found
        cursor = page["next_cursor"]


async def checks(gk: Running, scope: str, numbers: list[str]) -> list[dict[str, Any]]:
    """/admin/v1/check of each number in <scope> (without `at`: the instant asked)."""
    out = []
    for number in numbers:
        resp = await gk.admin.get("/admin/v1/check", headers=AUTH,
                                  params={"number": number, "scope": scope})
        assert resp.status == 200
        out.append({k: v for k, v in (await resp.json()).items() if k != "at"})
    return out


async def replace(gk: Running, body: bytes, scope: str = "global", **params: str
                  ) -> tuple[int, dict[str, Any]]:
    """POST a replace import; the status and the JSON reply."""
    resp = await gk.admin.post(IMPORT, data=body, headers=AUTH,
                               params={"scope": scope, "mode": "replace", **params})
    return resp.status, dict(await resp.json())


@settings(max_examples=100, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(groups=_GROUPS)
async def test_export_then_replace_import_restores_the_list_exactly(
        gatekeeper: Running, groups: list[tuple[EntryMeta | None, list[ListItem], bool]]
        ) -> None:
    """Random entries (channels, sources, notes with commas, quotes, line breaks,
    formula starts, unicode; expiries; no metadata): export, replace-import that file,
    export again: the same bytes, the same listing and the same checks, metadata and
    all."""
    scope = f"tenant:rt{next(_SCOPES)}"  # one fresh list per example, on one app
    await seed(store_of(gatekeeper), scope, groups)
    numbers = sorted({i.entry for _, items, _ in groups for i in items
                      if not i.entry.endswith("*")})[:3]
    before = await export(gatekeeper, scope)
    listed, checked = await listing(gatekeeper, scope), await checks(gatekeeper, scope,
                                                                     numbers)
    status, reply = await replace(gatekeeper, before, scope,
                                  allow_empty="true" if not listed else "false")
    assert status == 200, reply
    assert (reply["failed"], reply["size"]) == (0, len(listed))
    assert await export(gatekeeper, scope) == before
    assert await listing(gatekeeper, scope) == listed
    assert await checks(gatekeeper, scope, numbers) == checked


async def test_restore_keeps_the_files_authors_and_logs_the_importing_key(
        gatekeeper: Running, log_output: io.StringIO) -> None:
    """Entries keep the `added_by` of the file (a restore); the `list_changed` event
    names the key that imported, and says it restored."""
    body = HEADER + b"+33612345678,both,opt-out,2024-01-01T00:00:00+00:00,sms-in,STOP,\n"
    status, reply = await replace(gatekeeper, body)
    assert (status, reply["added"]) == (200, 1)
    [entry] = await listing(gatekeeper, "global")
    assert (entry["source"], entry["added_by"], entry["note"]) == ("opt-out", "sms-in",
                                                                   "STOP")
    [event] = [e for e in log_events(log_output) if e.get("op") == "import"]
    assert (event["key_name"], event["restored"], event["outcome"]) == ("admin", True,
                                                                        "applied")


@pytest.mark.parametrize("params", [{"note": "x"}, {"ttl_seconds": "60"},
                                    {"mode": "add", "expires_at": str(NOW + 30 * 86_400)}],
                         ids=["note", "ttl", "add-expiry"])
async def test_a_note_or_expiry_with_an_export_is_refused(
        gatekeeper: Running, params: dict[str, str]) -> None:
    """The rows carry their own metadata: 400 `invalid_query`, the list as it was."""
    await gatekeeper.block("+4479*")
    body = HEADER + b"+33612345678,both,api,2024-01-01T00:00:00+00:00,ops,,\n"
    status, reply = await replace(gatekeeper, body, **params)
    assert (status, reply["code"]) == (400, "invalid_query")
    assert "export" in reply["message"]
    assert [e["entry"] for e in await listing(gatekeeper, "global")] == ["+4479*"]


EMPTY_BODIES = [
    ("empty", b""),
    ("newline", b"\n"),
    ("crlf-blank-lines", b"\r\n\r\n"),
    ("bom-only", b"\xef\xbb\xbf"),
    ("spaces-and-tabs", b"  \n\t\n"),
    ("header-word", b"entry\n"),
    ("csv-header-bom-crlf", b"\xef\xbb\xbfentry,channel\r\n"),
    ("export-header", HEADER),
    ("export-header-bom-crlf", b"\xef\xbb\xbf" + HEADER.replace(b"\n", b"\r\n")),
    ("comments", b"# nothing\n# left\n"),
    ("comments-crlf-no-final-newline", b"# a\r\n\r\n# b"),
    ("export-header-and-comments", HEADER + b"# none\n\n"),
]


@pytest.mark.parametrize("body", [c[1] for c in EMPTY_BODIES],
                         ids=[c[0] for c in EMPTY_BODIES])
async def test_a_replace_with_no_entry_is_refused(gatekeeper: Running, body: bytes,
                                                  log_output: io.StringIO) -> None:
    """400 `empty_import` naming allow_empty; the list, and nothing else, as it was."""
    await gatekeeper.block("+33612345678", "+4479*")
    status, reply = await replace(gatekeeper, body)
    assert (status, reply["code"]) == (400, "empty_import")
    assert "allow_empty=true" in reply["message"]
    assert [e["entry"] for e in await listing(gatekeeper, "global")] == [
        "+33612345678", "+4479*"]
    assert await gatekeeper.redis.keys("gk:tmp:*") == []
    [event] = [e for e in log_events(log_output) if e.get("op") == "import"]
    assert (event["outcome"], event["added"]) == ("refused", 0)


@pytest.mark.parametrize("body", [c[1] for c in EMPTY_BODIES],
                         ids=[c[0] for c in EMPTY_BODIES])
async def test_a_replace_with_no_entry_and_allow_empty_empties_the_list(
        gatekeeper: Running, body: bytes) -> None:
    """allow_empty=true: the list is emptied (size 0)."""
    await gatekeeper.block("+33612345678", "+4479*")
    status, reply = await replace(gatekeeper, body, allow_empty="true")
    assert (status, reply["size"], reply["added"]) == (200, 0, 0)
    assert await listing(gatekeeper, "global") == []


@pytest.mark.parametrize("body", [b"0612345678\nhello\n",
                                  HEADER + b"+33612345678,both,api,2024-01-01,ops,,2020-01-01\n"],
                         ids=["garbage", "expired-rows"])
async def test_a_replace_whose_every_line_fails_is_refused_even_with_allow_empty(
        gatekeeper: Running, body: bytes) -> None:
    """A file of garbage is not an intent to clear the list: 400 `no_valid_entries`."""
    await gatekeeper.block("+4479*")
    status, reply = await replace(gatekeeper, body, allow_empty="true")
    assert (status, reply["code"]) == (400, "no_valid_entries")
    assert [e["entry"] for e in await listing(gatekeeper, "global")] == ["+4479*"]


async def test_an_add_with_no_entry_changes_nothing(gatekeeper: Running) -> None:
    """Only a replace could empty a list: an empty add is a 200 that adds nothing."""
    await gatekeeper.block("+4479*")
    resp = await gatekeeper.admin.post(IMPORT, data=b"", headers=AUTH)
    assert resp.status == 200
    assert (await resp.json())["added"] == 0
    assert len(await listing(gatekeeper, "global")) == 1

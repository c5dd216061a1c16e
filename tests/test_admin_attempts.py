"""The blocked-attempts log API: listing, filters, paging, windows, summary, keys, errors."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from gatekeeper.admin import attempts as attempts_api
from gatekeeper.resources import RESOURCES
from gatekeeper.store import BlockedAttempt, Store, StoreUnavailable
from tests.conftest import (
    ADMIN_KEY,
    TWILIO_CALLS,
    TWILIO_MESSAGES,
    FakeUpstream,
    Running,
    StartGatekeeper,
    make_config,
)

ATTEMPTS = "/admin/v1/attempts"
SUMMARY = "/admin/v1/attempts/summary"
ACME_KEY = "acme-secret-0123456789"
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
BASE = BlockedAttempt(request_id="req", upstream="twilio", channel="sms",
                      direction="outbound", number="+33612345678", scopes="global",
                      scope="global", list="block", entry="+33612345678", action="rejected")


def store_of(gk: Running) -> Store:
    """The store the running Gatekeeper uses."""
    return gk.app[RESOURCES].store


async def get(gk: Running, path: str, params: dict[str, Any] | None = None,
              key: str | None = ADMIN_KEY) -> tuple[int, Any]:
    """One admin GET; the status and the decoded JSON body."""
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    resp = await gk.admin.get(path, params=params, headers=headers)
    text = await resp.text()
    assert resp.content_type == "application/json", text
    return resp.status, json.loads(text)


async def listed(gk: Running, key: str = ADMIN_KEY, **params: Any) -> dict[str, Any]:
    """GET /attempts with `params`, expecting 200."""
    status, body = await get(gk, ATTEMPTS, params, key)
    assert status == 200, body
    return dict(body)


async def request_ids(gk: Running, key: str = ADMIN_KEY, **params: Any) -> list[str]:
    """The request ids of one page of attempts, in reply order."""
    return [a["request_id"] for a in (await listed(gk, key, **params))["attempts"]]


async def record(gk: Running, **fields: str) -> str:
    """Append an attempt (BASE with `fields` replaced) the way the proxy does."""
    return await store_of(gk).append_attempt(replace(BASE, **fields))


async def record_at(gk: Running, at: float, seq: int = 0, **fields: str) -> str:
    """Append an attempt with a chosen stream id time (ids must increase)."""
    stream_id = f"{round(at * 1000)}-{seq}"
    values = {"ts": f"{at:.3f}", **asdict(replace(BASE, **fields))}
    return str(await gk.redis.xadd("gk:attempts", values, id=stream_id))


async def wait_for(gk: Running, count: int, **params: Any) -> list[dict[str, Any]]:
    """The listed attempts once there are `count` (the proxy appends them aside)."""
    for _ in range(200):
        found = (await listed(gk, **params))["attempts"]
        if len(found) >= count:
            return list(found)
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} attempts never appeared")


def keys_config(upstream: FakeUpstream, tmp_path: Path, **extra: Any) -> Any:
    """The default config with a scoped read key and a full write key."""
    return make_config(upstream.url, tmp_path, admin={"keys": [
        {"name": "acme", "secret": ACME_KEY, "role": "read", "scopes": ["tenant:acme*"]},
        {"name": "ops", "secret": ADMIN_KEY, "role": "write", "scopes": ["*"]},
    ]}, **extra)


@pytest.fixture
async def keyed(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream,
                tmp_path: Path) -> Running:
    """Gatekeeper with a `tenant:acme*` read key and an all-scopes write key."""
    return await start_gatekeeper(keys_config(upstream, tmp_path))


# --- real attempts -------------------------------------------------------------------


async def test_blocked_sends_are_listed_newest_first_with_full_numbers(
        gatekeeper: Running) -> None:
    """Attempts made through the proxy come back newest first, every field shown."""
    await gatekeeper.block("+33612345678")
    await gatekeeper.block("+447*", scope="tenant:acme")
    before = time.time()
    resp = await gatekeeper.proxy.post(TWILIO_MESSAGES, data={"To": "+33612345678"},
                                       headers={"X-Request-Id": "req-sms"})
    assert resp.status == 403
    await wait_for(gatekeeper, 1)
    resp = await gatekeeper.proxy.post(
        TWILIO_CALLS, data={"To": "+447700900123", "From": "+15005550006"},
        headers={"X-Request-Id": "req-call", "X-Gatekeeper-Scope": "tenant:acme"})
    assert resp.status == 403
    call, sms = await wait_for(gatekeeper, 2)
    after = time.time()
    assert call | {"id": "", "at": ""} == {
        "id": "", "at": "", "request_id": "req-call", "upstream": "twilio",
        "channel": "voice", "direction": "outbound", "number": "+447700900123",
        "scopes": ["global", "tenant:acme"],
        "matched": {"scope": "tenant:acme", "list": "block", "entry": "+447*"},
        "rule": {"kind": "list", "scope": "tenant:acme", "detail": ""},
        "action": "rejected"}
    assert sms | {"id": "", "at": ""} == {
        "id": "", "at": "", "request_id": "req-sms", "upstream": "twilio",
        "channel": "sms", "direction": "outbound", "number": "+33612345678",
        "scopes": ["global"],
        "matched": {"scope": "global", "list": "block", "entry": "+33612345678"},
        "rule": {"kind": "list", "scope": "global", "detail": ""},
        "action": "rejected"}
    for row in (call, sms):
        at = datetime.fromisoformat(row["at"])
        assert row["at"].endswith("+00:00")
        assert before - 1 <= at.timestamp() <= after + 1
    assert [int(p) for p in call["id"].split("-")] > [int(p) for p in sms["id"].split("-")]


async def test_blocked_inbound_call_is_listed_as_inbound(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A caller refused at a voice webhook is an inbound attempt; `direction` selects it."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path, webhooks=[
        {"name": "voice-in", "type": "twilio-voice", "path": "/hooks/voice",
         "url": f"{upstream.url}/app/voice", "scopes": ["tenant:acme"]}]))
    await gk.block("+33612345678", scope="tenant:acme")
    await record(gk, request_id="outbound-one")
    resp = await gk.proxy.post("/hooks/voice", data={"From": "+33612345678", "CallSid": "CA1"})
    assert resp.headers["X-Gatekeeper-Decision"] == "rejected"
    [row] = await wait_for(gk, 1, direction="inbound")
    assert (row["upstream"], row["channel"], row["direction"], row["number"]) == (
        "voice-in", "voice", "inbound", "+33612345678")
    assert row["matched"] == {"scope": "tenant:acme", "list": "block", "entry": "+33612345678"}
    assert await request_ids(gk, direction="outbound") == ["outbound-one"]


# --- filters ---------------------------------------------------------------------------


async def record_mix(gk: Running) -> None:
    """Six attempts, oldest (a) to newest (f), differing in every filtered field."""
    await record(gk, request_id="a")
    await record(gk, request_id="b", channel="voice", direction="inbound",
                 scopes="global,tenant:acme", scope="tenant:acme", entry="+336*")
    await record(gk, request_id="c", number="+447700900123", scopes="global,tenant:acme",
                 scope="tenant:acme", entry="+447700900123")
    # tenant:acme applied, but the global entry blocked it: not a tenant:acme attempt.
    await record(gk, request_id="d", number="+447700900123", channel="voice",
                 scopes="global,tenant:acme", entry="+44*")
    await record(gk, request_id="e", number="+14155550100", direction="inbound",
                 scopes="global,tenant:beta", scope="tenant:beta", entry="+1*")
    # E.164 by syntax but not a possible number: entries like it can be listed.
    await record(gk, request_id="f", number="+30123456789", entry="+30123456789")


@pytest.mark.parametrize(("params", "expected"), [
    ({}, "fedcba"),
    ({"scope": "tenant:acme"}, "cb"),
    ({"scope": "global"}, "fda"),
    ({"scope": "tenant:none"}, ""),
    ({"number": "+33612345678"}, "ba"),
    ({"number": "+33 6 12 34 56 78"}, "ba"),
    ({"number": "+33 (0)6-12-34-56-78"}, "ba"),
    ({"number": "06 12 34 56 78", "region": "fr"}, "ba"),
    ({"number": "tel:+447700900123"}, "dc"),
    ({"number": "+30123456789"}, "f"),
    ({"number": "+12025550123"}, ""),
    ({"channel": "voice"}, "db"),
    ({"channel": "sms"}, "feca"),
    ({"direction": "inbound"}, "eb"),
    ({"direction": "outbound"}, "fdca"),
    ({"scope": "tenant:acme", "channel": "sms", "direction": "outbound"}, "c"),
    ({"number": "+447700900123", "channel": "voice"}, "d"),
], ids=["none", "scope-is-matched-scope", "scope-global", "scope-unknown", "number-e164",
        "number-spaced", "number-punctuated", "number-national-with-region", "number-tel-uri",
        "number-not-possible", "number-absent", "channel-voice", "channel-sms",
        "direction-inbound", "direction-outbound", "scope-channel-direction",
        "number-and-channel"])
async def test_filters(gatekeeper: Running, params: dict[str, str], expected: str) -> None:
    """Each filter (and their combination) keeps exactly the matching attempts, newest
    first."""
    await record_mix(gatekeeper)
    assert await request_ids(gatekeeper, **params) == list(expected)


async def test_unencoded_plus_in_number_still_matches(gatekeeper: Running) -> None:
    """`?number=+336...` typed into a URL (the `+` decodes as a space) still matches."""
    await record_mix(gatekeeper)
    root = str(gatekeeper.admin.make_url("/")).rstrip("/")
    resp = await gatekeeper.admin.session.get(
        URL(f"{root}{ATTEMPTS}?number=+33612345678", encoded=True),
        headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert resp.status == 200
    assert [a["request_id"] for a in (await resp.json())["attempts"]] == ["b", "a"]


# --- paging ------------------------------------------------------------------------------


async def pages(gk: Running, key: str = ADMIN_KEY, **params: Any) -> list[list[str]]:
    """Every page's request ids, following next_cursor to the end."""
    found: list[list[str]] = []
    cursor: str | None = None
    while True:
        extra = {} if cursor is None else {"cursor": cursor}
        body = await listed(gk, key, **params, **extra)
        found.append([a["request_id"] for a in body["attempts"]])
        if body["next_cursor"] is None:
            return found
        assert body["next_cursor"] == body["attempts"][-1]["id"]
        cursor = body["next_cursor"]
        assert len(found) < 100, "paging never ends"


@pytest.mark.parametrize(("total", "sizes"), [(25, [10, 10, 5]), (20, [10, 10])],
                         ids=["partial-last-page", "full-last-page-no-empty-page"])
async def test_paging_with_cursor_covers_every_attempt_once(
        gatekeeper: Running, total: int, sizes: list[int]) -> None:
    """Pages follow each other newest first with no gap, repeat or trailing empty page."""
    for i in range(total):
        await record(gatekeeper, request_id=f"r{i:02d}")
    got = await pages(gatekeeper, limit=10)
    assert [len(p) for p in got] == sizes
    assert [r for p in got for r in p] == [f"r{i:02d}" for i in reversed(range(total))]


async def test_filtered_paging_reads_past_scan_batches(
        gatekeeper: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sparse matches spread over many XREVRANGE batches still fill each page in order."""
    monkeypatch.setattr(attempts_api, "SCAN_BATCH", 4)
    for i in range(30):
        await record(gatekeeper, request_id=f"r{i:02d}",
                     channel="voice" if i % 3 == 0 else "sms")
    got = await pages(gatekeeper, channel="voice", limit=3)
    assert got == [["r27", "r24", "r21"], ["r18", "r15", "r12"], ["r09", "r06", "r03"],
                   ["r00"]]


async def test_reads_are_bounded(gatekeeper: Running, monkeypatch: pytest.MonkeyPatch
                                 ) -> None:
    """An unfiltered page reads one batch of limit+1; a filter reads in SCAN_BATCH steps
    and stops at the stream's end."""
    monkeypatch.setattr(attempts_api, "SCAN_BATCH", 4)
    for i in range(10):
        await record(gatekeeper, request_id=f"r{i}")
    store = store_of(gatekeeper)
    calls: list[int] = []
    read = store.read_attempts

    async def counted(newest: str = "+", oldest: str = "-", count: int = 500
                      ) -> list[tuple[str, dict[str, str]]]:
        calls.append(count)
        return await read(newest, oldest, count)

    monkeypatch.setattr(store, "read_attempts", counted)
    assert await request_ids(gatekeeper, limit=2) == ["r9", "r8"]
    assert calls == [3]
    calls.clear()
    assert await request_ids(gatekeeper, channel="voice", limit=2) == []
    assert calls == [4, 4, 4]


# --- time windows ------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "expected"), [
    ({"since": str(T0 + 60)}, ["t180", "t120", "t60"]),
    ({"since": "2023-11-14T22:14:20Z"}, ["t180", "t120", "t60"]),
    ({"since": "2023-11-14T23:14:20+01:00"}, ["t180", "t120", "t60"]),
    ({"since": "2023-11-14 22:14:20"}, ["t180", "t120", "t60"]),
    ({"since": f"{T0 + 60}.001"}, ["t180", "t120"]),
    ({"since": f"{T0 + 60}.0005"}, ["t180", "t120"]),
    ({"until": f"{T0 + 60}.0005"}, ["t60", "t0"]),
    ({"until": str(T0 + 120)}, ["t60", "t0"]),
    ({"since": str(T0 + 60), "until": "2023-11-14T22:16:20Z"}, ["t120", "t60"]),
    ({"since": str(T0 + 3600)}, []),
    ({"until": str(T0)}, []),
], ids=["since-epoch-inclusive", "since-iso-z", "since-iso-offset", "since-iso-naive-utc",
        "since-millisecond-resolution", "since-sub-millisecond", "until-sub-millisecond",
        "until-exclusive", "since-and-until",
        "since-after-all", "until-before-all"])
async def test_since_and_until_use_the_stream_id_time(
        gatekeeper: Running, params: dict[str, str], expected: list[str]) -> None:
    """`since` (inclusive) and `until` (exclusive) select by the stream id's ms time."""
    for offset in (0, 60, 120, 180):
        await record_at(gatekeeper, T0 + offset, request_id=f"t{offset}")
    assert await request_ids(gatekeeper, **params) == expected


async def test_at_is_the_stream_id_time_in_utc(gatekeeper: Running) -> None:
    """`at` is the id's millisecond time as ISO 8601 UTC."""
    stream_id = await record_at(gatekeeper, T0 + 0.25)
    [row] = (await listed(gatekeeper))["attempts"]
    assert (row["id"], row["at"]) == (stream_id, "2023-11-14T22:13:20.250+00:00")


async def test_unencoded_offset_in_since_is_read_as_plus(gatekeeper: Running) -> None:
    """`since=...+01:00` typed into a URL (`+` decodes as a space) keeps its offset."""
    for offset in (0, 60):
        await record_at(gatekeeper, T0 + offset, request_id=f"t{offset}")
    root = str(gatekeeper.admin.make_url("/")).rstrip("/")
    resp = await gatekeeper.admin.session.get(
        URL(f"{root}{ATTEMPTS}?since=2023-11-14T23:14:20+01:00", encoded=True),
        headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert resp.status == 200
    assert [a["request_id"] for a in (await resp.json())["attempts"]] == ["t60"]


async def test_cursor_paging_stops_at_since(gatekeeper: Running) -> None:
    """Paging with `since` ends at the window's start, several attempts sharing a ms."""
    for offset in (0, 60, 120, 180):
        await record_at(gatekeeper, T0 + offset, request_id=f"t{offset}")
        await record_at(gatekeeper, T0 + offset, seq=1, request_id=f"t{offset}b")
    got = await pages(gatekeeper, since=str(T0 + 120), limit=3)
    assert got == [["t180b", "t180", "t120b"], ["t120"]]


async def test_paging_and_windows_on_a_real_redis(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        real_redis: Any) -> None:
    """Cursors and time bounds are ids a real Redis accepts, with the same results."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path), redis=real_redis)
    for offset in range(12):
        await record_at(gk, T0 + offset, request_id=f"t{offset:02d}")
    got = await pages(gk, limit=5, since=str(T0 + 2), until=str(T0 + 11))
    assert got == [["t10", "t09", "t08", "t07", "t06"], ["t05", "t04", "t03", "t02"]]
    status, body = await get(gk, SUMMARY, {"since": str(T0), "until": str(T0 + 6)})
    assert status == 200
    assert body["total"] == 6
    cursor_at_zero = await listed(gk, cursor="0-0")
    assert cursor_at_zero == {"attempts": [], "next_cursor": None}


# --- limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "count", "more"), [
    ({}, 100, True), ({"limit": "1000"}, 101, False), ({"limit": "1"}, 1, True),
    ({"limit": "101"}, 101, False),
], ids=["default-100", "max-1000", "min-1", "exactly-all"])
async def test_limit(gatekeeper: Running, params: dict[str, str], count: int,
                     more: bool) -> None:
    """`limit` caps the page (default 100); a cursor is given only when more follow."""
    async with gatekeeper.redis.pipeline(transaction=False) as pipe:
        for i in range(101):
            pipe.xadd("gk:attempts", {**asdict(replace(BASE, request_id=f"r{i}")), "ts": "0"})
        await pipe.execute()
    body = await listed(gatekeeper, **params)
    assert len(body["attempts"]) == count
    assert (body["next_cursor"] is not None) is more


# --- summary -----------------------------------------------------------------------------


async def record_window(gk: Running) -> float:
    """Attempts 25 h, 3 h, 2 h, 1 h and 30 min ago; returns the 'now' they are relative to."""
    now = time.time()
    hour = 3600.0
    await record_at(gk, now - 25 * hour, entry="+336*", number="+33611111111")
    await record_at(gk, now - 3 * hour)
    await record_at(gk, now - 2 * hour, channel="voice", direction="inbound",
                    scopes="global,tenant:acme", scope="tenant:acme", entry="+447*",
                    number="+447700900123")
    await record_at(gk, now - hour, action="monitored", scopes="global,tenant:acme",
                    scope="tenant:acme", entry="+447*", number="+447700900124")
    await record_at(gk, now - hour / 2)
    return now


async def test_summary_counts_the_last_24_hours_by_default(gatekeeper: Running) -> None:
    """Counts by matched scope, channel, direction, action and entry over the last day."""
    now = await record_window(gatekeeper)
    status, body = await get(gatekeeper, SUMMARY)
    assert status == 200
    since = datetime.fromisoformat(body["since"]).timestamp()
    until = datetime.fromisoformat(body["until"]).timestamp()
    assert now - 1 <= until <= time.time() + 1
    assert until - since == pytest.approx(24 * 3600, abs=0.002)
    assert body | {"since": "", "until": ""} == {
        "since": "", "until": "", "total": 4,
        "by_scope": {"global": 2, "tenant:acme": 2},
        "by_channel": {"sms": 3, "voice": 1},
        "by_direction": {"outbound": 3, "inbound": 1},
        "by_action": {"rejected": 3, "monitored": 1},
        "by_upstream": {"twilio": 4},
        "by_rule": {"list": 4},
        "by_entry": [
            {"scope": "global", "list": "block", "entry": "+33612345678", "count": 2},
            {"scope": "tenant:acme", "list": "block", "entry": "+447*", "count": 2}],
        "by_number": [{"number": "+33612345678", "count": 2},
                      {"number": "+447700900123", "count": 1},
                      {"number": "+447700900124", "count": 1}]}


@pytest.mark.parametrize(("params", "total", "by_scope"), [
    ({"since_h": 26, "until_h": 1.5}, 3, {"global": 2, "tenant:acme": 1}),
    ({"since_h": 2.5}, 3, {"tenant:acme": 2, "global": 1}),
    ({"since_h": 26, "scope": "tenant:acme"}, 2, {"tenant:acme": 2}),
    ({"since_h": 26, "scope": "global"}, 3, {"global": 3}),
    ({"since_h": 0.1}, 0, {}),
], ids=["explicit-window", "since-only", "scope-acme", "scope-global", "empty-window"])
async def test_summary_window_and_scope(gatekeeper: Running, params: dict[str, Any],
                                        total: int, by_scope: dict[str, int]) -> None:
    """`since`/`until` move the window; `scope` counts only that matched scope."""
    now = await record_window(gatekeeper)
    query = {"since": str(now - params["since_h"] * 3600)}
    if "until_h" in params:
        query["until"] = datetime.fromtimestamp(now - params["until_h"] * 3600,
                                                UTC).isoformat()
    if "scope" in params:
        query["scope"] = params["scope"]
    status, body = await get(gatekeeper, SUMMARY, query)
    assert status == 200
    assert (body["total"], body["by_scope"]) == (total, by_scope)
    assert sum(e["count"] for e in body["by_entry"]) == total


async def test_summary_lists_the_top_100_entries_by_count(gatekeeper: Running) -> None:
    """by_entry holds the 100 most frequent entries, most frequent first."""
    async with gatekeeper.redis.pipeline(transaction=False) as pipe:
        for i in range(105):
            pipe.xadd("gk:attempts", asdict(replace(BASE, entry=f"+3361234{i:04d}")))
        for _ in range(2):
            pipe.xadd("gk:attempts", asdict(replace(BASE, entry="+33612340104")))
        await pipe.execute()
    status, body = await get(gatekeeper, SUMMARY)
    assert status == 200
    assert body["total"] == 107
    assert len(body["by_entry"]) == 100
    assert body["by_entry"][0] == {"scope": "global", "list": "block",
                                   "entry": "+33612340104", "count": 3}
    assert [e["entry"] for e in body["by_entry"][1:3]] == ["+33612340000", "+33612340001"]


# --- permissions -------------------------------------------------------------------------


async def record_scopes(gk: Running) -> None:
    """One attempt matched in each of four scopes (oldest first)."""
    for scope in ("global", "tenant:acme", "tenant:acme-eu", "tenant:beta"):
        await record(gk, request_id=scope, scopes=f"global,{scope}", scope=scope)


@pytest.mark.parametrize(("key", "params", "expected"), [
    (ACME_KEY, {}, ["tenant:acme-eu", "tenant:acme"]),
    (ACME_KEY, {"scope": "tenant:acme"}, ["tenant:acme"]),
    (ACME_KEY, {"scope": "tenant:acme-eu"}, ["tenant:acme-eu"]),
    (ADMIN_KEY, {}, ["tenant:beta", "tenant:acme-eu", "tenant:acme", "global"]),
    (ADMIN_KEY, {"scope": "tenant:beta"}, ["tenant:beta"]),
], ids=["scoped-sees-own-scopes", "scoped-one-scope", "scoped-glob-scope", "full-sees-all",
        "full-any-scope"])
async def test_keys_see_only_attempts_matched_in_their_scopes(
        keyed: Running, key: str, params: dict[str, str], expected: list[str]) -> None:
    """A scoped read key lists only attempts whose matched scope it permits."""
    await record_scopes(keyed)
    assert await request_ids(keyed, key, **params) == expected


async def test_scoped_key_pages_only_through_its_attempts(keyed: Running) -> None:
    """Hidden attempts neither fill nor end a scoped key's pages."""
    for i in range(9):
        scope = "tenant:acme" if i % 3 == 0 else "tenant:beta"
        await record(keyed, request_id=f"r{i}", scope=scope)
    assert await pages(keyed, ACME_KEY, limit=2) == [["r6", "r3"], ["r0"]]


async def test_scoped_key_summary_counts_only_its_scopes(keyed: Running) -> None:
    """The summary of a scoped key leaves out attempts matched elsewhere."""
    await record_scopes(keyed)
    status, body = await get(keyed, SUMMARY, key=ACME_KEY)
    assert status == 200
    assert (body["total"], body["by_scope"]) == (2, {"tenant:acme": 1, "tenant:acme-eu": 1})
    status, body = await get(keyed, SUMMARY)
    assert (status, body["total"]) == (200, 4)


@pytest.mark.parametrize(("path", "scope"), [
    (ATTEMPTS, "tenant:beta"), (ATTEMPTS, "global"), (SUMMARY, "tenant:beta"),
    (SUMMARY, "global"),
], ids=["list-other-tenant", "list-global", "summary-other-tenant", "summary-global"])
async def test_naming_a_scope_the_key_does_not_permit_is_forbidden(
        keyed: Running, path: str, scope: str) -> None:
    """403 `forbidden` when a scoped key asks for a scope outside its globs."""
    await record_scopes(keyed)
    status, body = await get(keyed, path, {"scope": scope}, ACME_KEY)
    assert (status, body["code"]) == (403, "forbidden")
    assert "attempts" not in body


@pytest.mark.parametrize("path", [ATTEMPTS, SUMMARY], ids=["list", "summary"])
@pytest.mark.parametrize("key", [None, "wrong-key-0123456789"], ids=["missing", "wrong"])
async def test_without_a_valid_key_is_unauthorized(gatekeeper: Running, path: str,
                                                   key: str | None) -> None:
    """401 without a valid admin key."""
    await record(gatekeeper)
    status, body = await get(gatekeeper, path, key=key)
    assert (status, body["code"]) == (401, "unauthorized")


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "params", "code"), [
    (ATTEMPTS, {"limit": "0"}, "invalid_limit"),
    (ATTEMPTS, {"limit": "1001"}, "invalid_limit"),
    (ATTEMPTS, {"limit": "ten"}, "invalid_limit"),
    (ATTEMPTS, {"channel": "fax"}, "invalid_channel"),
    (ATTEMPTS, {"direction": "sideways"}, "invalid_direction"),
    (ATTEMPTS, {"scope": "Tenant Acme"}, "invalid_scope"),
    (ATTEMPTS, {"scope": "tenant:acme*"}, "invalid_scope"),
    (ATTEMPTS, {"number": "hello"}, "invalid_number"),
    (ATTEMPTS, {"number": "+33*"}, "invalid_number"),
    (ATTEMPTS, {"number": "0612345678"}, "invalid_number"),
    (ATTEMPTS, {"number": "0612345678", "region": "ZZ"}, "invalid_region"),
    (ATTEMPTS, {"since": "yesterday"}, "invalid_time"),
    (ATTEMPTS, {"since": "-1"}, "invalid_time"),
    (ATTEMPTS, {"since": "1969-12-31T23:59:59Z"}, "invalid_time"),
    (ATTEMPTS, {"until": "nan"}, "invalid_time"),
    (ATTEMPTS, {"until": "1e300"}, "invalid_time"),
    (ATTEMPTS, {"since": str(T0), "until": str(T0)}, "invalid_time"),
    (ATTEMPTS, {"cursor": "abc"}, "invalid_cursor"),
    (ATTEMPTS, {"cursor": "99999999999999999999-0"}, "invalid_cursor"),
    (ATTEMPTS, {"sort": "asc"}, "invalid_parameter"),
    (ATTEMPTS, [("channel", "sms"), ("channel", "voice")], "invalid_parameter"),
    (SUMMARY, {"since": "last week"}, "invalid_time"),
    (SUMMARY, {"since": str(T0 + 1), "until": str(T0)}, "invalid_time"),
    (SUMMARY, {"since": str(time.time() + 3600)}, "invalid_time"),
    (SUMMARY, {"scope": "nope"}, "invalid_scope"),
    (SUMMARY, {"channel": "sms"}, "invalid_parameter"),
], ids=["limit-zero", "limit-over-max", "limit-not-integer", "channel-unknown",
        "direction-unknown", "scope-malformed", "scope-glob", "number-garbage",
        "number-prefix", "number-national-without-region", "region-unknown",
        "since-words", "since-negative", "since-before-1970", "until-nan", "until-huge",
        "since-equals-until", "cursor-garbage", "cursor-out-of-range", "unknown-parameter",
        "repeated-parameter", "summary-since-words", "summary-since-after-until",
        "summary-since-in-future", "summary-scope-malformed", "summary-unknown-parameter"])
async def test_bad_parameters_are_400(gatekeeper: Running, path: str, params: Any,
                                      code: str) -> None:
    """Malformed or unknown parameters get a 400 with a specific code and a message."""
    await record(gatekeeper)
    status, body = await get(gatekeeper, path, params)
    assert (status, body["code"]) == (400, code)
    assert body["message"]


@pytest.mark.parametrize("path", [ATTEMPTS, SUMMARY], ids=["list", "summary"])
async def test_store_fault_is_503(gatekeeper: Running, monkeypatch: pytest.MonkeyPatch,
                                  path: str) -> None:
    """A store fault while reading the stream is a 503 `store_unavailable`."""
    async def broken(*_args: Any, **_kwargs: Any) -> list[tuple[str, dict[str, str]]]:
        raise StoreUnavailable("connection refused")

    monkeypatch.setattr(store_of(gatekeeper), "read_attempts", broken)
    status, body = await get(gatekeeper, path)
    assert (status, body["code"]) == (503, "store_unavailable")


async def test_attempts_and_summary_filter_by_upstream(gatekeeper: Running) -> None:
    """`upstream=` keeps the attempts sent to that upstream (a name the config could
    hold); a malformed name is 400 `invalid_upstream`."""
    await record_window(gatekeeper)
    status, body = await get(gatekeeper, f"{ATTEMPTS}?upstream=twilio")
    assert status == 200
    assert {a["upstream"] for a in body["attempts"]} == {"twilio"}
    status, body = await get(gatekeeper, f"{ATTEMPTS}?upstream=vonage")
    assert (status, body["attempts"]) == (200, [])
    status, body = await get(gatekeeper, f"{SUMMARY}?upstream=vonage")
    assert (status, body["total"], body["by_upstream"]) == (200, 0, {})
    status, body = await get(gatekeeper, f"{ATTEMPTS}?upstream=Twilio!")
    assert (status, body["code"]) == (400, "invalid_upstream")

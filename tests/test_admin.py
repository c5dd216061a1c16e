"""The admin listener: auth, list entries, paging, checks, health, metrics, logs, faults."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.config import RedisConfig
from gatekeeper.resources import RESOURCES
from gatekeeper.store import EntryMeta, ListItem, Store, connect
from tests.conftest import (
    ADMIN_KEY,
    AUTH,
    FakeUpstream,
    Running,
    StartGatekeeper,
    log_events,
    make_config,
)

BLOCK = "/admin/v1/lists/block/entries"
ALLOW = "/admin/v1/lists/allow/entries"
CHECK = "/admin/v1/check"
ENDPOINTS = [("POST", BLOCK), ("DELETE", BLOCK), ("GET", BLOCK), ("POST", ALLOW),
             ("DELETE", ALLOW), ("GET", ALLOW), ("GET", CHECK)]
ENDPOINT_IDS = ["add-block", "remove-block", "list-block", "add-allow", "remove-allow",
                "list-allow", "check"]
GOOD_BODY = {"entries": ["+33612345678", "+33*"], "scope": "global"}


async def call(gk: Running, method: str, path: str, *, body: Any = None,
               params: Any = None, headers: dict[str, str] | None = None
               ) -> tuple[int, Any]:
    """One admin request; the status and the decoded JSON body."""
    resp = await gk.admin.request(method, path, json=body, params=params,
                                  headers=AUTH if headers is None else headers)
    text = await resp.text()
    assert resp.content_type == "application/json", text
    return resp.status, json.loads(text)


async def add(gk: Running, entries: list[Any], *, list_name: str = "block",
              **extra: Any) -> dict[str, Any]:
    """Add entries, expecting 200."""
    status, payload = await call(gk, "POST", f"/admin/v1/lists/{list_name}/entries",
                                 body={"entries": entries, **extra})
    assert status == 200, payload
    return dict(payload)


async def remove(gk: Running, entries: list[Any], *, list_name: str = "block",
                 **extra: Any) -> dict[str, Any]:
    """Remove entries, expecting 200."""
    status, payload = await call(gk, "DELETE", f"/admin/v1/lists/{list_name}/entries",
                                 body={"entries": entries, **extra})
    assert status == 200, payload
    return dict(payload)


async def listed_rows(gk: Running, list_name: str = "block", scope: str = "global"
                      ) -> list[dict[str, Any]]:
    """Every row of a list's listing, read through the API in one page."""
    status, payload = await call(gk, "GET", f"/admin/v1/lists/{list_name}/entries",
                                 params={"scope": scope, "limit": "1000"})
    assert status == 200, payload
    assert payload["next_cursor"] is None
    return list(payload["entries"])


def shown(row: dict[str, Any]) -> str | dict[str, str]:
    """A listing row in the form replies use: the entry string when it applies to every
    channel, else {entry, channel}."""
    if row["channel"] == "both":
        return str(row["entry"])
    return {"entry": row["entry"], "channel": row["channel"]}


async def listed(gk: Running, list_name: str = "block", scope: str = "global"
                 ) -> list[str | dict[str, str]]:
    """Every entry of a list (as replies show entries), read through the API."""
    return [shown(row) for row in await listed_rows(gk, list_name, scope)]


def store_of(gk: Running) -> Store:
    """The running Gatekeeper's own store."""
    return gk.app[RESOURCES].store


async def check(gk: Running, params: Any) -> dict[str, Any]:
    """A decision check, expecting 200."""
    status, payload = await call(gk, "GET", CHECK, params=params)
    assert status == 200, payload
    return dict(payload)


def reasons(result: dict[str, Any], added_by: str = "admin") -> list[dict[str, str]]:
    """A check's matched items without their metadata, after checking that each says it
    was added through the API by `added_by`, at an ISO 8601 UTC instant."""
    for item in result["matched"]:
        assert (item["source"], item["added_by"]) == ("api", added_by), item
        parse_added_at(item["added_at"])
    return [{k: item[k] for k in ("scope", "list", "entry", "channel")}
            for item in result["matched"]]


async def raw_request(gk: Running, head: bytes) -> tuple[int, bytes]:
    """Send raw request bytes to the admin listener; the status and the body."""
    reader, writer = await asyncio.open_connection(gk.admin.server.host, gk.admin.server.port)
    writer.write(head)
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def list_changes(buffer: io.StringIO) -> list[dict[str, Any]]:
    """The `list_changed` log events so far."""
    return [e for e in log_events(buffer) if e["event"] == "list_changed"]


# -------------------------------------------------------------------------------- auth


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong-key"},
    {"Authorization": f"Bearer {ADMIN_KEY}x"},
    {"Authorization": f"Bearer {ADMIN_KEY[:-1]}"},
    {"Authorization": f"Basic {ADMIN_KEY}"},
    {"Authorization": f"Token {ADMIN_KEY}"},
    {"Authorization": ADMIN_KEY},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
    {"Authorization": ""},
    {"X-Api-Key": ADMIN_KEY},
], ids=["missing", "wrong-key", "key-longer", "key-shorter", "basic-scheme", "token-scheme",
        "no-scheme", "scheme-only", "scheme-blank", "empty-header", "other-header"])
@pytest.mark.parametrize(("method", "path"), ENDPOINTS, ids=ENDPOINT_IDS)
async def test_unauthorized_calls_get_401_and_write_nothing(
        gatekeeper: Running, log_output: io.StringIO, headers: dict[str, str], method: str,
        path: str) -> None:
    """Missing, wrong or wrongly-schemed keys: 401 `unauthorized`, no list change."""
    status, payload = await call(gatekeeper, method, path, body=GOOD_BODY,
                                 params={"number": "+33612345678"}, headers=headers)
    assert status == 401
    assert payload["code"] == "unauthorized"
    assert payload["type"] == "unauthorized"
    assert payload["message"]
    assert await gatekeeper.redis.keys("*") == []
    assert list_changes(log_output) == []


@pytest.mark.parametrize("authorization", [f"Bearer {ADMIN_KEY}", f"bearer {ADMIN_KEY}",
                                           f"BEARER {ADMIN_KEY}", f"Bearer  {ADMIN_KEY} "],
                         ids=["canonical", "lower-scheme", "upper-scheme", "extra-spaces"])
async def test_right_key_is_accepted_in_any_scheme_case(gatekeeper: Running,
                                                        authorization: str) -> None:
    """The scheme is case-insensitive and the key is trimmed."""
    status, payload = await call(gatekeeper, "POST", BLOCK, body=GOOD_BODY,
                                 headers={"Authorization": authorization})
    assert status == 200
    assert payload["added"] == ["+33612345678", "+33*"]


async def test_non_utf8_authorization_header_is_401_not_500(gatekeeper: Running) -> None:
    """A key that is not valid UTF-8 is a wrong key, not a server error."""
    status, body = await raw_request(
        gatekeeper, b"GET /admin/v1/lists/block/entries HTTP/1.1\r\nHost: admin\r\n"
                    b"Authorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n")
    assert status == 401
    assert json.loads(body)["code"] == "unauthorized"


async def test_errors_carry_the_request_id(gatekeeper: Running) -> None:
    """An admin error names the caller's request id in body and header."""
    resp = await gatekeeper.admin.get(BLOCK, headers={"X-Request-Id": "req-42"})
    assert resp.status == 401
    assert resp.headers["X-Request-Id"] == "req-42"
    assert (await resp.json())["request_id"] == "req-42"


@pytest.mark.parametrize(("method", "path"), ENDPOINTS, ids=ENDPOINT_IDS)
async def test_admin_api_without_configured_key_refuses_everything(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        method: str, path: str) -> None:
    """No key configured: every list call is 401, even with the usual key."""
    config = make_config(upstream.url, tmp_path)
    config = dataclasses.replace(config, admin=dataclasses.replace(config.admin, keys=()))
    assert config.admin.key is None
    gk = await start_gatekeeper(config)
    status, payload = await call(gk, method, path, body=GOOD_BODY,
                                 params={"number": "+33612345678"})
    assert status == 401
    assert payload["code"] == "unauthorized"
    assert "disabled" in payload["message"]
    assert await gk.redis.keys("*") == []


# ------------------------------------------------------------------------ add entries


@pytest.mark.parametrize(("entry", "region", "normalised"), [
    ("+33612345678", None, "+33612345678"),
    ("+33 6 12 34 56 78", None, "+33612345678"),
    ("  +33 6 12 34 56 78\t", None, "+33612345678"),
    ("+1-415-555-0100", None, "+14155550100"),
    ("+1 (415) 555.0100", None, "+14155550100"),
    ("+44/20/7946/0958", None, "+442079460958"),
    ("+30123456789", None, "+30123456789"),
    ("+1234567890", None, "+1234567890"),
    ("+33*", None, "+33*"),
    ("+1 415*", None, "+1415*"),
    ("+9*", None, "+9*"),
    ("+12345678901234*", None, "+12345678901234*"),
    ("06 12 34 56 78", "FR", "+33612345678"),
    ("0612345678", "fr", "+33612345678"),
    ("(415) 555-0100", "US", "+14155550100"),
    ("+44 20 7946 0958", "FR", "+442079460958"),
], ids=["e164", "spaces", "padded", "dashes", "parens-dots", "slashes", "seed-greek",
        "seed-nanp", "prefix", "prefix-spaced", "one-digit-prefix", "longest-prefix",
        "national-fr", "national-lower-region", "national-us", "e164-ignores-region"])
async def test_add_normalises_entries(gatekeeper: Running, entry: str, region: str | None,
                                      normalised: str) -> None:
    """Accepted entries are stored and reported in normalised form."""
    extra = {"region": region} if region else {}
    payload = await add(gatekeeper, [entry], scope="global", **extra)
    assert payload == {"added": [normalised], "existing": [], "failed": []}
    assert await listed(gatekeeper) == [normalised]


@pytest.mark.parametrize(("entry", "region"), [
    ("33612345678", None),
    ("0612345678", None),
    ("+0123456789", None),
    ("+999123456789", None),
    ("+1 23", None),
    ("+1234567890123456", None),
    ("+33*1", None),
    ("+0*", None),
    ("33*", None),
    ("+*", None),
    ("+123456789012345*", None),
    ("abc", None),
    ("", None),
    ("   ", None),
    ("+33 6 12 34 56 78 ext 9", None),
    ("whatsapp:+33612345678", None),
    ("not a number", "FR"),
], ids=["no-plus", "national-no-region", "leading-zero", "unknown-country-code",
        "too-short", "too-long", "star-inside", "zero-prefix", "prefix-no-plus",
        "bare-star", "prefix-too-long", "letters", "empty", "blank", "extension",
        "channel-address", "garbage-with-region"])
async def test_add_reports_bad_entries_as_failed(gatekeeper: Running, entry: str,
                                                 region: str | None) -> None:
    """Refused entries come back in `failed` with a reason; nothing is stored."""
    extra = {"region": region} if region else {}
    payload = await add(gatekeeper, [entry], **extra)
    assert payload["added"] == []
    assert payload["existing"] == []
    assert len(payload["failed"]) == 1
    assert payload["failed"][0]["entry"] == entry
    assert payload["failed"][0]["reason"]
    assert await listed(gatekeeper) == []


async def test_add_is_idempotent(gatekeeper: Running) -> None:
    """Adding the same entries again reports them as existing."""
    first = await add(gatekeeper, ["+33612345678", "+1234567890"])
    second = await add(gatekeeper, ["+33 6 12 34 56 78", "+1234567890", "+30123456789"])
    assert first == {"added": ["+33612345678", "+1234567890"], "existing": [], "failed": []}
    assert second == {"added": ["+30123456789"],
                      "existing": ["+33612345678", "+1234567890"], "failed": []}
    assert await listed(gatekeeper) == ["+1234567890", "+30123456789", "+33612345678"]


async def test_add_with_partial_failure_keeps_the_good_entries(gatekeeper: Running) -> None:
    """Good entries are added, bad ones listed in `failed`; the call still succeeds."""
    payload = await add(gatekeeper, ["+33612345678", "garbage", "+44*", "0612345678"])
    assert payload["added"] == ["+33612345678", "+44*"]
    assert payload["existing"] == []
    assert [f["entry"] for f in payload["failed"]] == ["garbage", "0612345678"]
    assert all(f["reason"] for f in payload["failed"])
    assert await listed(gatekeeper) == ["+33612345678", "+44*"]


async def test_add_collapses_spellings_of_one_entry(gatekeeper: Running) -> None:
    """Two spellings of the same number in one call are one addition."""
    payload = await add(gatekeeper, ["+33612345678", "+33 6 12 34 56 78", "+33-6-12345678"])
    assert payload["added"] == ["+33612345678"]
    assert await listed(gatekeeper) == ["+33612345678"]


async def test_scopes_and_lists_are_separate(gatekeeper: Running) -> None:
    """An entry lives in exactly the list and scope it was added to."""
    await add(gatekeeper, ["+33612345678"], scope="tenant:acme")
    await add(gatekeeper, ["+14155550100"], list_name="allow", scope="agent:42")
    assert await listed(gatekeeper, "block", "tenant:acme") == ["+33612345678"]
    assert await listed(gatekeeper, "allow", "agent:42") == ["+14155550100"]
    assert await listed(gatekeeper, "block") == []
    assert await listed(gatekeeper, "allow") == []
    assert await listed(gatekeeper, "allow", "tenant:acme") == []
    assert await listed(gatekeeper, "block", "agent:42") == []


async def test_scope_defaults_to_global(gatekeeper: Running) -> None:
    """A body without `scope` writes the global list."""
    await add(gatekeeper, ["+33612345678"])
    assert await listed(gatekeeper, "block", "global") == ["+33612345678"]


async def test_add_accepts_the_maximum_batch(gatekeeper: Running) -> None:
    """Exactly 10000 entries in one call is allowed."""
    entries = [f"+336{n:08d}" for n in range(10_000)]
    payload = await add(gatekeeper, entries)
    assert len(payload["added"]) == 10_000
    assert await gatekeeper.redis.zcard("gk:list:block:global") == 10_000


async def test_add_accepts_channel_objects(gatekeeper: Running) -> None:
    """Entries may be `{entry, channel}`; replies show channel-limited entries as objects
    and every-channel ones (`both`, or no channel) as strings."""
    payload = await add(gatekeeper, [
        "+33*",
        {"entry": "+44*", "channel": "voice"},
        {"entry": "+1 415*", "channel": "sms"},
        {"entry": "+336*", "channel": "both"},
        {"entry": "+34*"},
    ])
    assert payload == {"added": ["+33*", {"entry": "+44*", "channel": "voice"},
                                 {"entry": "+1415*", "channel": "sms"}, "+336*", "+34*"],
                       "existing": [], "failed": []}
    assert await gatekeeper.redis.zrange("gk:list:block:global", 0, -1) == [
        "+1415*#sms", "+33*", "+336*", "+34*", "+44*#voice"]


async def test_add_object_entries_are_normalised_with_the_region(gatekeeper: Running) -> None:
    """An object's entry is normalised like a string entry, `region` included."""
    payload = await add(gatekeeper, [{"entry": "06 12 34 56 78", "channel": "voice"}],
                        region="FR")
    assert payload["added"] == [{"entry": "+33612345678", "channel": "voice"}]


async def test_channel_variants_are_separate_entries(gatekeeper: Running) -> None:
    """One entry for every channel, for sms and for voice are three entries; each is
    reported as existing when added again, in the form it was given."""
    entries = ["+33612345678", {"entry": "+33612345678", "channel": "sms"},
               {"entry": "+33612345678", "channel": "voice"}]
    first = await add(gatekeeper, entries)
    again = await add(gatekeeper, [{"entry": "+33 6 12 34 56 78", "channel": "voice"},
                                   {"entry": "+33612345678", "channel": "both"}])
    assert first == {"added": entries, "existing": [], "failed": []}
    assert again == {"added": [], "failed": [],
                     "existing": [{"entry": "+33612345678", "channel": "voice"},
                                  "+33612345678"]}
    assert await listed(gatekeeper) == entries


async def test_add_collapses_a_string_and_its_both_object(gatekeeper: Running) -> None:
    """`"+33*"` and `{"entry": "+33*", "channel": "both"}` are one entry in one call."""
    payload = await add(gatekeeper, ["+33*", {"entry": "+33*", "channel": "both"},
                                     {"entry": "+33*", "channel": "sms"},
                                     {"entry": "+33 *", "channel": "sms"}])
    assert payload["added"] == ["+33*", {"entry": "+33*", "channel": "sms"}]


BAD_OBJECTS: list[tuple[str, Any, str]] = [
    ("unknown-channel", {"entry": "+33*", "channel": "fax"}, "+33*"),
    ("channel-case", {"entry": "+33*", "channel": "SMS"}, "+33*"),
    ("channel-blank", {"entry": "+33*", "channel": ""}, "+33*"),
    ("channel-null", {"entry": "+33*", "channel": None}, "+33*"),
    ("channel-list", {"entry": "+33*", "channel": ["sms"]}, "+33*"),
    ("unknown-field", {"entry": "+33*", "channel": "sms", "note": "x"},
     '{"entry": "+33*", "channel": "sms", "note": "x"}'),
    ("misspelt-entry", {"number": "+33*"}, '{"number": "+33*"}'),
    ("no-entry", {"channel": "sms"}, "null"),
    ("entry-number", {"entry": 33612345678, "channel": "sms"}, "33612345678"),
    ("entry-null", {"entry": None}, "null"),
    ("bad-number", {"entry": "garbage", "channel": "voice"}, "garbage"),
    ("national-no-region", {"entry": "0612345678", "channel": "sms"}, "0612345678"),
]


@pytest.mark.parametrize(("method", "good", "key", "left"), [
    ("POST", "+2*", "added", ["+1*", "+2*"]),
    ("DELETE", "+1*", "removed", []),
], ids=["add", "remove"])
@pytest.mark.parametrize(("bad", "reported"), [c[1:] for c in BAD_OBJECTS],
                         ids=[c[0] for c in BAD_OBJECTS])
async def test_bad_entry_objects_fail_alone(gatekeeper: Running, method: str, good: str,
                                            key: str, left: list[str], bad: Any,
                                            reported: str) -> None:
    """A bad `{entry, channel}` (unknown field or channel, no string entry, not a number)
    is reported in `failed` with a reason; the good entries of the call still apply."""
    await add(gatekeeper, ["+1*"])
    status, payload = await call(gatekeeper, method, BLOCK, body={"entries": [bad, good]})
    assert status == 200, payload
    assert payload[key] == [good]
    assert [f["entry"] for f in payload["failed"]] == [reported]
    assert payload["failed"][0]["reason"]
    assert await listed(gatekeeper) == left


BAD_BODIES: list[tuple[str, Any, str]] = [
    ("not-json", b"not json", "invalid_body"),
    ("empty", b"", "invalid_body"),
    ("invalid-utf8", b'{"entries": ["\xff"]}', "invalid_body"),
    ("array", ["+33612345678"], "invalid_body"),
    ("string", "+33612345678", "invalid_body"),
    ("null", None, "invalid_body"),
    ("missing-entries", {"scope": "global"}, "invalid_body"),
    ("empty-entries", {"entries": []}, "invalid_body"),
    ("entries-string", {"entries": "+33612345678"}, "invalid_body"),
    ("entries-object", {"entries": {"+33612345678": 1}}, "invalid_body"),
    ("entries-null", {"entries": None}, "invalid_body"),
    ("entry-number", {"entries": [33612345678]}, "invalid_body"),
    ("entry-null", {"entries": ["+33612345678", None]}, "invalid_body"),
    ("entry-list", {"entries": [["+33612345678"]]}, "invalid_body"),
    ("entry-bool", {"entries": [{"entry": "+33*"}, True]}, "invalid_body"),
    ("unknown-field", {"entries": ["+33612345678"], "list": "block"}, "invalid_body"),
    ("scope-uppercase", {"entries": ["+33612345678"], "scope": "Tenant:acme"},
     "invalid_scope"),
    ("scope-no-id", {"entries": ["+33612345678"], "scope": "tenant"}, "invalid_scope"),
    ("scope-empty-id", {"entries": ["+33612345678"], "scope": "tenant:"}, "invalid_scope"),
    ("scope-blank", {"entries": ["+33612345678"], "scope": ""}, "invalid_scope"),
    ("scope-null", {"entries": ["+33612345678"], "scope": None}, "invalid_scope"),
    ("scope-number", {"entries": ["+33612345678"], "scope": 7}, "invalid_scope"),
    ("scope-list", {"entries": ["+33612345678"], "scope": ["global"]}, "invalid_scope"),
    ("region-unknown", {"entries": ["0612345678"], "region": "XX"}, "invalid_region"),
    ("region-number", {"entries": ["0612345678"], "region": 33}, "invalid_region"),
    ("too-many", {"entries": [f"+336{n:08d}" for n in range(10_001)]}, "too_many_entries"),
]


@pytest.mark.parametrize("method", ["POST", "DELETE"])
@pytest.mark.parametrize(("body", "code"), [c[1:] for c in BAD_BODIES],
                         ids=[c[0] for c in BAD_BODIES])
async def test_malformed_entries_body_is_400(gatekeeper: Running, log_output: io.StringIO,
                                             method: str, body: Any, code: str) -> None:
    """A malformed add/remove body is refused whole with a 400 code; nothing changes."""
    await add(gatekeeper, ["+14155550100"])
    kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
    resp = await gatekeeper.admin.request(method, BLOCK, headers=AUTH, **kwargs)
    assert resp.status == 400
    payload = await resp.json()
    assert payload["code"] == code
    assert payload["type"] == "bad_request"
    assert payload["message"]
    assert await listed(gatekeeper) == ["+14155550100"]
    assert len(list_changes(log_output)) == 1


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/admin/v1/lists/deny/entries"),
    ("DELETE", "/admin/v1/lists/deny/entries"),
    ("GET", "/admin/v1/lists/deny/entries"),
    ("POST", "/admin/v1/lists/Block/entries"),
    ("GET", "/admin/v1/lists/block"),
    ("GET", "/admin/v1/nothing"),
    ("GET", "/admin/v2/check"),
], ids=["add-unknown-list", "remove-unknown-list", "list-unknown-list", "list-name-case",
        "no-entries-suffix", "unknown-path", "unknown-version"])
async def test_unknown_list_or_path_is_json_404(gatekeeper: Running, method: str,
                                                path: str) -> None:
    """Unknown lists and paths: 404 in Gatekeeper's JSON error shape; nothing written."""
    status, payload = await call(gatekeeper, method, path, body=GOOD_BODY)
    assert status == 404
    assert payload["code"] == "not_found"
    assert payload["type"] == "not_found"
    assert await gatekeeper.redis.keys("*") == []


@pytest.mark.parametrize(("method", "path"), [("PUT", BLOCK), ("PATCH", ALLOW),
                                              ("POST", CHECK)],
                         ids=["put-entries", "patch-entries", "post-check"])
async def test_wrong_method_is_json_405(gatekeeper: Running, method: str, path: str) -> None:
    """A wrong method: 405 JSON naming the allowed methods."""
    resp = await gatekeeper.admin.request(method, path, json=GOOD_BODY, headers=AUTH)
    assert resp.status == 405
    assert (await resp.json())["code"] == "method_not_allowed"
    assert "GET" in resp.headers["Allow"]


async def test_oversized_body_is_json_413(gatekeeper: Running) -> None:
    """A body over the admin listener's 1 MiB limit: 413 JSON; nothing written."""
    body = {"entries": ["+33612345678" + " " * 2000] * 600}
    status, payload = await call(gatekeeper, "POST", BLOCK, body=body)
    assert status == 413
    assert payload["code"] == "body_too_large"
    assert await gatekeeper.redis.keys("*") == []


# --------------------------------------------------------------------- remove entries


async def test_remove_reports_removed_missing_and_failed(gatekeeper: Running) -> None:
    """DELETE removes what is there, reports what was not, and refuses bad entries."""
    await add(gatekeeper, ["+33612345678", "+1234567890", "+44*"])
    status, payload = await call(gatekeeper, "DELETE", BLOCK, body={
        "entries": ["+33 6 12 34 56 78", "+30123456789", "bad", "+44*"], "scope": "global"})
    assert status == 200
    assert payload["removed"] == ["+33612345678", "+44*"]
    assert payload["missing"] == ["+30123456789"]
    assert [f["entry"] for f in payload["failed"]] == ["bad"]
    assert payload["failed"][0]["reason"]
    assert await listed(gatekeeper) == ["+1234567890"]


async def test_remove_is_idempotent(gatekeeper: Running) -> None:
    """Removing again reports the entries as missing."""
    await add(gatekeeper, ["+33612345678"])
    body = {"entries": ["+33612345678"]}
    first = await call(gatekeeper, "DELETE", BLOCK, body=body)
    second = await call(gatekeeper, "DELETE", BLOCK, body=body)
    assert first == (200, {"removed": ["+33612345678"], "missing": [], "failed": []})
    assert second == (200, {"removed": [], "missing": ["+33612345678"], "failed": []})


@pytest.mark.parametrize(("list_name", "scope"), [("block", "tenant:acme"),
                                                  ("allow", "global")],
                         ids=["other-scope", "other-list"])
async def test_remove_only_touches_its_own_list_and_scope(gatekeeper: Running,
                                                          list_name: str, scope: str) -> None:
    """An entry in another list or scope is `missing`, and stays where it is."""
    await add(gatekeeper, ["+33612345678"])
    status, payload = await call(gatekeeper, "DELETE", f"/admin/v1/lists/{list_name}/entries",
                                 body={"entries": ["+33612345678"], "scope": scope})
    assert status == 200
    assert payload == {"removed": [], "missing": ["+33612345678"], "failed": []}
    assert await listed(gatekeeper) == ["+33612345678"]


async def test_remove_national_number_with_region(gatekeeper: Running) -> None:
    """DELETE normalises with `region` just as POST does."""
    await add(gatekeeper, ["+33612345678"], list_name="allow")
    status, payload = await call(gatekeeper, "DELETE", ALLOW,
                                 body={"entries": ["06 12 34 56 78"], "region": "FR"})
    assert status == 200
    assert payload["removed"] == ["+33612345678"]
    assert await listed(gatekeeper, "allow") == []


async def test_remove_plain_entry_removes_every_channel_variant(gatekeeper: Running) -> None:
    """DELETE of a string takes the entry out for every channel, its sms and voice
    variants included; other entries stay."""
    await add(gatekeeper, ["+33*", {"entry": "+33*", "channel": "sms"},
                           {"entry": "+33*", "channel": "voice"},
                           {"entry": "+44*", "channel": "voice"}, "+336*"])
    payload = await remove(gatekeeper, ["+33*"])
    assert payload == {"removed": ["+33*"], "missing": [], "failed": []}
    assert await listed(gatekeeper) == ["+336*", {"entry": "+44*", "channel": "voice"}]
    assert set(await gatekeeper.redis.hkeys("gk:meta:block:global")) == {"+336*",
                                                                           "+44*#voice"}


async def test_remove_plain_entry_present_only_for_one_channel(gatekeeper: Running) -> None:
    """DELETE of a string also lifts an entry that was only listed for one channel."""
    await add(gatekeeper, [{"entry": "+33612345678", "channel": "voice"}], list_name="allow")
    payload = await remove(gatekeeper, ["+33612345678"], list_name="allow")
    assert payload == {"removed": ["+33612345678"], "missing": [], "failed": []}
    assert await listed(gatekeeper, "allow") == []


@pytest.mark.parametrize(("channel", "left"), [
    ("voice", ["+33*", {"entry": "+33*", "channel": "sms"}]),
    ("sms", ["+33*", {"entry": "+33*", "channel": "voice"}]),
], ids=["voice", "sms"])
async def test_remove_channel_object_removes_only_that_channel(
        gatekeeper: Running, channel: str, left: list[Any]) -> None:
    """DELETE of `{entry, channel}` removes that channel's entry and nothing else."""
    await add(gatekeeper, ["+33*", {"entry": "+33*", "channel": "sms"},
                           {"entry": "+33*", "channel": "voice"}])
    payload = await remove(gatekeeper, [{"entry": "+33 *", "channel": channel}])
    assert payload == {"removed": [{"entry": "+33*", "channel": channel}], "missing": [],
                       "failed": []}
    assert await listed(gatekeeper) == left


async def test_remove_channel_object_that_is_not_there_is_missing(gatekeeper: Running) -> None:
    """A channel entry that is absent (only the every-channel one exists) is `missing`,
    shown as an object, and the every-channel entry stays."""
    await add(gatekeeper, ["+33*"])
    payload = await remove(gatekeeper, [{"entry": "+33*", "channel": "voice"}])
    assert payload == {"removed": [], "missing": [{"entry": "+33*", "channel": "voice"}],
                       "failed": []}
    assert await listed(gatekeeper) == ["+33*"]


# ------------------------------------------------------------------------ list entries


async def test_listing_pages_through_every_entry_once_in_order(gatekeeper: Running) -> None:
    """250 entries with limit 100: pages of 100, 100, 50, each entry once, in order."""
    entries = [f"+3361234{n:04d}" for n in range(250)]
    await add(gatekeeper, list(reversed(entries)), scope="tenant:acme")
    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    for _ in range(10):
        params = {"scope": "tenant:acme", "limit": "100"}
        if cursor is not None:
            params["cursor"] = cursor
        status, page = await call(gatekeeper, "GET", BLOCK, params=params)
        assert status == 200
        seen.extend(row["entry"] for row in page["entries"])
        sizes.append(len(page["entries"]))
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert cursor == page["entries"][-1]["entry"]
    assert sizes == [100, 100, 50]
    assert seen == sorted(entries)
    assert len(set(seen)) == 250


@pytest.mark.parametrize(("count", "limit", "pages"), [
    (0, "100", [0]),
    (1, "1", [1]),
    (3, "1", [1, 1, 1]),
    (100, "100", [100]),
    (101, "100", [100, 1]),
    (5, "1000", [5]),
    (150, None, [100, 50]),
], ids=["empty", "one", "one-per-page", "exactly-a-page", "one-more-than-a-page",
        "max-limit", "default-limit"])
async def test_listing_page_boundaries(gatekeeper: Running, count: int, limit: str | None,
                                       pages: list[int]) -> None:
    """`next_cursor` is null exactly when nothing follows; the default limit is 100."""
    if count:
        await add(gatekeeper, [f"+4420794{n:05d}" for n in range(count)])
    sizes: list[int] = []
    cursor: str | None = None
    while True:
        params = {} if limit is None else {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        status, page = await call(gatekeeper, "GET", BLOCK, params=params)
        assert status == 200
        sizes.append(len(page["entries"]))
        cursor = page["next_cursor"]
        if cursor is None or len(sizes) > len(pages):
            break
    assert sizes == pages


async def test_listing_orders_prefixes_with_numbers(gatekeeper: Running) -> None:
    """Prefixes and numbers list in one byte order, across pages."""
    entries = ["+33612345678", "+33*", "+1234567890", "+336*", "+30123456789"]
    await add(gatekeeper, entries)
    status, first = await call(gatekeeper, "GET", BLOCK, params={"limit": "2"})
    assert status == 200
    status, second = await call(gatekeeper, "GET", BLOCK,
                                params={"limit": "10", "cursor": first["next_cursor"]})
    assert status == 200
    assert [r["entry"] for r in first["entries"] + second["entries"]] == sorted(entries)


def parse_added_at(text: str) -> datetime:
    """An `added_at` value: ISO 8601 in UTC, to the second."""
    when = datetime.fromisoformat(text)
    assert when.utcoffset() == timedelta(0), text
    assert when.microsecond == 0, text
    return when


async def test_listing_shows_channel_and_metadata(gatekeeper: Running) -> None:
    """Each row names entry, channel (`both`, `sms` or `voice`), source, added_at (ISO
    8601 UTC) and added_by; entries added through the API are from `api` by `admin`."""
    before = datetime.now(UTC).replace(microsecond=0)
    await add(gatekeeper, ["+33*", {"entry": "+44*", "channel": "voice"},
                           {"entry": "+33612345678", "channel": "sms"}], scope="tenant:acme")
    after = datetime.now(UTC)
    rows = await listed_rows(gatekeeper, "block", "tenant:acme")
    assert [(r["entry"], r["channel"]) for r in rows] == [
        ("+33*", "both"), ("+33612345678", "sms"), ("+44*", "voice")]
    for row in rows:
        assert set(row) == {"entry", "channel", "source", "added_at", "added_by"}
        assert (row["source"], row["added_by"]) == ("api", "admin")
        assert before <= parse_added_at(row["added_at"]) <= after


async def test_listing_keeps_the_first_source_of_an_entry(gatekeeper: Running) -> None:
    """An entry an opt-out added lists as such (with its note) and stays so when an admin
    adds it again; one added without metadata lists entry and channel only."""
    opt_out = EntryMeta(source="opt-out", added_at=1_700_000_000.0,
                        added_by="twilio-inbound", note="STOP")
    await store_of(gatekeeper).add("block", "global", [ListItem("+33612345678", "sms")],
                                   opt_out)
    await gatekeeper.redis.zadd("gk:list:block:global", {"+44*": 0})
    payload = await add(gatekeeper, [{"entry": "+33612345678", "channel": "sms"}, "+44*"])
    assert payload["existing"] == [{"entry": "+33612345678", "channel": "sms"}, "+44*"]
    assert await listed_rows(gatekeeper) == [
        {"entry": "+33612345678", "channel": "sms", "source": "opt-out",
         "added_at": "2023-11-14T22:13:20+00:00", "added_by": "twilio-inbound",
         "note": "STOP"},
        {"entry": "+44*", "channel": "both"},
    ]


async def test_listing_pages_across_channel_variants(gatekeeper: Running) -> None:
    """Channel variants of an entry list right after it, and paging through them with
    the returned cursor shows each row once."""
    await add(gatekeeper, ["+33*", {"entry": "+33*", "channel": "voice"},
                           {"entry": "+33*", "channel": "sms"}, "+34*"])
    rows: list[dict[str, Any]] = []
    params = {"limit": "2"}
    for _ in range(5):
        status, page = await call(gatekeeper, "GET", BLOCK, params=params)
        assert status == 200
        rows.extend(page["entries"])
        if page["next_cursor"] is None:
            break
        params = {"limit": "2", "cursor": page["next_cursor"]}
    assert [(r["entry"], r["channel"]) for r in rows] == [
        ("+33*", "both"), ("+33*", "sms"), ("+33*", "voice"), ("+34*", "both")]


@pytest.mark.parametrize(("params", "code"), [
    ({"limit": "0"}, "invalid_limit"),
    ({"limit": "-1"}, "invalid_limit"),
    ({"limit": "1001"}, "invalid_limit"),
    ({"limit": "abc"}, "invalid_limit"),
    ({"limit": "1.5"}, "invalid_limit"),
    ({"limit": ""}, "invalid_limit"),
    ({"scope": "tenant"}, "invalid_scope"),
    ({"scope": "Tenant:acme"}, "invalid_scope"),
    ({"scope": ""}, "invalid_scope"),
], ids=["zero", "negative", "over-max", "letters", "fraction", "blank", "scope-no-id",
        "scope-uppercase", "scope-blank"])
async def test_listing_bad_query_is_400(gatekeeper: Running, params: dict[str, str],
                                        code: str) -> None:
    """Bad `limit` or `scope`: 400 with a code."""
    status, payload = await call(gatekeeper, "GET", BLOCK, params=params)
    assert status == 400
    assert payload["code"] == code


# ------------------------------------------------------------------------------- check


async def test_check_unlisted_number(gatekeeper: Running) -> None:
    """A number on no list is `unlisted`, with nothing matched; the policy rules
    evaluated (here the shipped voice rule) are listed and none decided."""
    result = await check(gatekeeper, {"number": "+33612345678"})
    rules = result.pop("rules")
    assert result | {"at": ""} == {
        "number": "+33612345678", "possible": True, "decision": "unlisted",
        "label": None, "scopes": ["global"], "matched": [], "intent": "marketing",
        "at": "", "decided_by": {"rule": "default"}}
    assert rules == [{"rule": "number_type", "scope": "global", "outcome": "allow",
                      "channel": "voice", "detail": "mobile"}]


@pytest.mark.parametrize(("blocked", "allowed", "number", "decision", "matched"), [
    (["+33612345678"], [], "+33612345678", "blocked", [("block", "+33612345678")]),
    ([], ["+33612345678"], "+33612345678", "allowed", [("allow", "+33612345678")]),
    (["+33*"], [], "+33612345678", "blocked", [("block", "+33*")]),
    (["+33*"], ["+33612345678"], "+33612345678", "allowed", [("allow", "+33612345678")]),
    (["+336*"], ["+33*"], "+33612345678", "blocked", [("block", "+336*")]),
    (["+33*"], ["+336*"], "+33612345678", "allowed", [("allow", "+336*")]),
    (["+33612345678"], ["+33612345678"], "+33612345678", "blocked",
     [("block", "+33612345678")]),
    (["+33*"], [], "+14155550100", "unlisted", []),
    (["+33612345678"], [], "+33612345679", "unlisted", []),
], ids=["exact-block", "exact-allow", "prefix-block", "exact-allow-beats-prefix-block",
        "longer-prefix-block-wins", "longer-prefix-allow-wins", "tie-block-wins",
        "prefix-other-country", "neighbour-number"])
async def test_check_decision_and_reason(gatekeeper: Running, blocked: list[str],
                                         allowed: list[str], number: str, decision: str,
                                         matched: list[tuple[str, str]]) -> None:
    """The decision follows the most specific entry, and names it; a blocked number
    carries the `Blacklisted` label (NLPearl's), others none."""
    if blocked:
        await add(gatekeeper, blocked)
    if allowed:
        await add(gatekeeper, allowed, list_name="allow")
    result = await check(gatekeeper, {"number": number})
    assert result["decision"] == decision
    assert result["label"] == ("Blacklisted" if decision == "blocked" else None)
    assert reasons(result) == [{"scope": "global", "list": lst, "entry": entry,
                                "channel": "both"} for lst, entry in matched]


async def test_tenant_entry_applies_only_with_its_scope(gatekeeper: Running) -> None:
    """A number blocked only for a tenant is unlisted without that scope, blocked with it."""
    await add(gatekeeper, ["+33612345678"], scope="tenant:acme")
    without = await check(gatekeeper, {"number": "+33612345678"})
    other = await check(gatekeeper, {"number": "+33612345678", "scope": "tenant:other"})
    with_scope = await check(gatekeeper, {"number": "+33612345678", "scope": "tenant:acme"})
    assert without["decision"] == "unlisted"
    assert other["decision"] == "unlisted"
    assert with_scope["decision"] == "blocked"
    assert with_scope["scopes"] == ["global", "tenant:acme"]
    assert reasons(with_scope) == [{"scope": "tenant:acme", "list": "block",
                                    "entry": "+33612345678", "channel": "both"}]


async def test_global_always_applies(gatekeeper: Running) -> None:
    """A global block holds whatever scopes are asked for, even if a tenant allows."""
    await add(gatekeeper, ["+33612345678"])
    await add(gatekeeper, ["+33612345678"], list_name="allow", scope="tenant:acme")
    result = await check(gatekeeper, {"number": "+33612345678", "scope": "tenant:acme"})
    assert result["decision"] == "blocked"
    assert reasons(result) == [
        {"scope": "global", "list": "block", "entry": "+33612345678", "channel": "both"},
        {"scope": "tenant:acme", "list": "allow", "entry": "+33612345678", "channel": "both"},
    ]


@pytest.mark.parametrize("params", [
    [("scope", "tenant:acme"), ("scope", "agent:7")],
    [("scope", "tenant:acme,agent:7")],
    [("scope", " tenant:acme , agent:7 ,")],
    [("scope", "tenant:acme,global"), ("scope", "agent:7,tenant:acme")],
], ids=["repeated", "comma-separated", "spaces-and-empty-parts", "duplicates-and-global"])
async def test_check_scopes_repeatable_or_comma_separated(
        gatekeeper: Running, params: list[tuple[str, str]]) -> None:
    """Scopes may repeat or be comma-separated; global comes first, duplicates collapse."""
    await add(gatekeeper, ["+33612345678"], scope="agent:7")
    result = await check(gatekeeper, [("number", "+33612345678"), *params])
    assert result["scopes"] == ["global", "tenant:acme", "agent:7"]
    assert result["decision"] == "blocked"
    assert reasons(result) == [{"scope": "agent:7", "list": "block",
                                "entry": "+33612345678", "channel": "both"}]


@pytest.mark.parametrize(("number", "region"), [
    ("+33612345678", None),
    ("+33 6 12 34 56 78", None),
    ("whatsapp:+33612345678", None),
    ("tel:+33612345678", None),
    ("sip:+33612345678@trunk.example", None),
    ("06 12 34 56 78", "FR"),
    ("0612345678", "fr"),
], ids=["e164", "spaced", "whatsapp", "tel", "sip-number", "national", "national-lower"])
async def test_check_normalises_the_number(gatekeeper: Running, number: str,
                                           region: str | None) -> None:
    """Any spelling of a number is checked as its E.164 form."""
    await add(gatekeeper, ["+33612345678"])
    params = {"number": number, **({"region": region} if region else {})}
    result = await check(gatekeeper, params)
    assert result["number"] == "+33612345678"
    assert result["decision"] == "blocked"


async def test_check_accepts_an_unencoded_plus(gatekeeper: Running) -> None:
    """`?number=+336...` straight from curl (the + decodes as a space) still works."""
    await add(gatekeeper, ["+33612345678"])
    resp = await gatekeeper.admin.get("/admin/v1/check?number=+33612345678", headers=AUTH)
    assert resp.status == 200
    assert (await resp.json())["decision"] == "blocked"


@pytest.mark.parametrize("number", ["+30123456789", "+1234567890"],
                         ids=["seed-greek", "seed-nanp"])
async def test_check_listed_impossible_number(gatekeeper: Running, number: str) -> None:
    """E.164-by-syntax numbers that are not possible can be listed and checked."""
    await add(gatekeeper, [number])
    result = await check(gatekeeper, {"number": number})
    assert result["number"] == number
    assert result["possible"] is False
    assert result["decision"] == "blocked"


CHANNEL_CHECKS: list[tuple[str, list[Any], list[Any], str | None, str, list[dict[str, str]]]] = [
    ("voice-block-on-voice", [{"entry": "+33*", "channel": "voice"}], [], "voice", "blocked",
     [{"scope": "global", "list": "block", "entry": "+33*", "channel": "voice"}]),
    ("voice-block-not-on-sms", [{"entry": "+33*", "channel": "voice"}], [], "sms",
     "unlisted", []),
    ("voice-block-not-without-channel", [{"entry": "+33*", "channel": "voice"}], [], None,
     "unlisted", []),
    ("sms-block-on-sms", [{"entry": "+33612345678", "channel": "sms"}], [], "sms",
     "blocked",
     [{"scope": "global", "list": "block", "entry": "+33612345678", "channel": "sms"}]),
    ("sms-block-not-on-voice", [{"entry": "+33612345678", "channel": "sms"}], [], "voice",
     "unlisted", []),
    ("every-channel-block-on-voice", ["+33*"], [], "voice", "blocked",
     [{"scope": "global", "list": "block", "entry": "+33*", "channel": "both"}]),
    ("voice-allow-beats-shorter-block", ["+33*"], [{"entry": "+336*", "channel": "voice"}],
     "voice", "allowed",
     [{"scope": "global", "list": "allow", "entry": "+336*", "channel": "voice"}]),
    ("voice-allow-not-on-sms", ["+33*"], [{"entry": "+336*", "channel": "voice"}], "sms",
     "blocked", [{"scope": "global", "list": "block", "entry": "+33*", "channel": "both"}]),
    ("tie-voice-block-beats-allow", [{"entry": "+336*", "channel": "voice"}], ["+336*"],
     "voice", "blocked",
     [{"scope": "global", "list": "block", "entry": "+336*", "channel": "voice"}]),
]


@pytest.mark.parametrize(("blocked", "allowed", "channel", "decision", "matched"),
                         [c[1:] for c in CHANNEL_CHECKS], ids=[c[0] for c in CHANNEL_CHECKS])
async def test_check_with_channel_entries(gatekeeper: Running, blocked: list[Any],
                                          allowed: list[Any], channel: str | None,
                                          decision: str, matched: list[dict[str, str]]
                                          ) -> None:
    """`channel=` brings that channel's entries in; without it only every-channel entries
    count; each matched item names its channel."""
    if blocked:
        await add(gatekeeper, blocked)
    if allowed:
        await add(gatekeeper, allowed, list_name="allow")
    params = {"number": "+33612345678", **({"channel": channel} if channel else {})}
    result = await check(gatekeeper, params)
    assert result["decision"] == decision
    assert reasons(result) == matched
    assert result.get("channel") == channel


async def test_check_with_channel_across_scopes(gatekeeper: Running) -> None:
    """A tenant's voice-only block overrides a global allow for voice only."""
    await add(gatekeeper, ["+33612345678"], list_name="allow")
    await add(gatekeeper, [{"entry": "+33*", "channel": "voice"}], scope="tenant:acme")
    by_channel = {c: await check(gatekeeper, {"number": "+33612345678", "channel": c,
                                              "scope": "tenant:acme"})
                  for c in ("sms", "voice")}
    assert by_channel["sms"]["decision"] == "allowed"
    assert by_channel["voice"]["decision"] == "blocked"
    assert reasons(by_channel["voice"]) == [
        {"scope": "global", "list": "allow", "entry": "+33612345678", "channel": "both"},
        {"scope": "tenant:acme", "list": "block", "entry": "+33*", "channel": "voice"},
    ]


@pytest.mark.parametrize("channel", ["sms", "voice"])
async def test_check_echoes_channel(gatekeeper: Running, channel: str) -> None:
    """A valid channel is echoed back."""
    result = await check(gatekeeper, {"number": "+33612345678", "channel": channel})
    assert result["channel"] == channel


@pytest.mark.parametrize(("params", "code"), [
    ({}, "invalid_phone_number"),
    ({"number": ""}, "invalid_phone_number"),
    ({"number": "abc"}, "invalid_phone_number"),
    ({"number": "0612345678"}, "invalid_phone_number"),
    ({"number": "+33*"}, "invalid_phone_number"),
    ({"number": "+0123456789"}, "invalid_phone_number"),
    ({"number": "sip:alice@example.com"}, "invalid_phone_number"),
    ({"number": "client:alice"}, "invalid_phone_number"),
    ({"number": "+33612345678", "channel": "fax"}, "invalid_channel"),
    ({"number": "+33612345678", "channel": "SMS"}, "invalid_channel"),
    ({"number": "+33612345678", "channel": ""}, "invalid_channel"),
    ({"number": "+33612345678", "scope": "tenant"}, "invalid_scope"),
    ({"number": "+33612345678", "scope": "global,Tenant:x"}, "invalid_scope"),
    ({"number": "0612345678", "region": "XX"}, "invalid_region"),
], ids=["no-number", "blank-number", "letters", "national-no-region", "prefix",
        "leading-zero", "sip-user", "client", "unknown-channel", "channel-case",
        "blank-channel", "bad-scope", "bad-scope-in-list", "unknown-region"])
async def test_check_bad_query_is_400(gatekeeper: Running, params: dict[str, str],
                                      code: str) -> None:
    """Bad number, channel, scope or region: 400 with a code."""
    status, payload = await call(gatekeeper, "GET", CHECK, params=params)
    assert status == 400
    assert payload["code"] == code
    assert payload["type"] == "bad_request"


# ------------------------------------------------------------------ health and metrics


async def test_healthz_needs_no_key(gatekeeper: Running) -> None:
    """/healthz answers 200 without a key."""
    resp = await gatekeeper.admin.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_readyz_when_store_answers(gatekeeper: Running) -> None:
    """/readyz is 200 while the store answers."""
    resp = await gatekeeper.admin.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ready"}


async def test_metrics_serves_prometheus_text(gatekeeper: Running) -> None:
    """/metrics serves the exposition format with Gatekeeper's metrics."""
    resp = await gatekeeper.admin.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    text = await resp.text()
    assert "# TYPE gatekeeper_decisions_total counter" in text
    assert "gatekeeper_store_errors_total" in text


# ---------------------------------------------------------------------------- logging


async def test_list_changes_are_logged(gatekeeper: Running, log_output: io.StringIO) -> None:
    """Each add and remove logs one `list_changed` event with its counts."""
    await add(gatekeeper, ["+33612345678", "+44*", "bad"], scope="tenant:acme")
    await add(gatekeeper, ["+33612345678"], scope="tenant:acme")
    status, _ = await call(gatekeeper, "DELETE", BLOCK,
                           body={"entries": ["+44*", "+1234567890"], "scope": "tenant:acme"})
    assert status == 200
    await add(gatekeeper, ["+1234567890"], list_name="allow")
    changes = list_changes(log_output)
    picked = [{k: e.get(k) for k in ("list", "scope", "op", "added", "existing", "removed",
                                      "missing", "failed")} for e in changes]
    assert picked == [
        {"list": "block", "scope": "tenant:acme", "op": "add", "added": 2, "existing": 0,
         "removed": None, "missing": None, "failed": 1},
        {"list": "block", "scope": "tenant:acme", "op": "add", "added": 0, "existing": 1,
         "removed": None, "missing": None, "failed": 0},
        {"list": "block", "scope": "tenant:acme", "op": "remove", "added": None,
         "existing": None, "removed": 1, "missing": 1, "failed": 0},
        {"list": "allow", "scope": "global", "op": "add", "added": 1, "existing": 0,
         "removed": None, "missing": None, "failed": 0},
    ]
    assert all(e["level"] == "info" for e in changes)


async def test_list_change_log_holds_no_key(gatekeeper: Running,
                                            log_output: io.StringIO) -> None:
    """The admin key never appears in the logs."""
    await add(gatekeeper, ["+33612345678"])
    await gatekeeper.admin.get(BLOCK, headers={"Authorization": "Bearer nope"})
    assert list_changes(log_output)
    assert ADMIN_KEY not in log_output.getvalue()


# ------------------------------------------------------------------------ store faults


@pytest.fixture
async def broken(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream,
                 tmp_path: Path) -> Running:
    """Gatekeeper whose store points at a closed port."""
    client = connect(RedisConfig(timeout=0.2), "redis://127.0.0.1:1/0")
    return await start_gatekeeper(make_config(upstream.url, tmp_path), redis=client)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS, ids=ENDPOINT_IDS)
async def test_store_fault_is_503(broken: Running, log_output: io.StringIO, method: str,
                                  path: str) -> None:
    """A store fault in an admin call: 503 `store_unavailable`, logged and counted."""
    status, payload = await call(broken, method, path, body=GOOD_BODY,
                                 params={"number": "+33612345678"})
    assert status == 503
    assert payload["code"] == "store_unavailable"
    assert payload["type"] == "service_unavailable"
    errors = [e for e in log_events(log_output)
              if e["event"] == "store_unavailable" and e.get("operation") == "admin"]
    assert len(errors) == 1
    assert list_changes(log_output) == []
    counted = broken.registry.get_sample_value("gatekeeper_store_errors_total",
                                               {"operation": "admin"})
    assert counted == 1.0


async def test_store_fault_still_validates_first(broken: Running) -> None:
    """A malformed body is a 400 even while the store is down."""
    status, payload = await call(broken, "POST", BLOCK, body={"entries": []})
    assert status == 400
    assert payload["code"] == "invalid_body"


async def test_store_fault_still_needs_the_key(broken: Running) -> None:
    """Auth is checked before the store is touched."""
    status, payload = await call(broken, "POST", BLOCK, body=GOOD_BODY, headers={})
    assert status == 401
    assert payload["code"] == "unauthorized"


async def test_readyz_reports_store_down(broken: Running) -> None:
    """/readyz is 503 while the store does not answer; /healthz stays 200."""
    ready = await broken.admin.get("/readyz")
    health = await broken.admin.get("/healthz")
    assert ready.status == 503
    assert await ready.json() == {"status": "store_unavailable"}
    assert health.status == 200


@pytest.mark.parametrize(("prefix", "expected"), [
    ("+3361234001", [f"+3361234001{n}" for n in range(10)]),
    ("3361234002", [f"+3361234002{n}" for n in range(10)]),
    (" 3361234003", [f"+3361234003{n}" for n in range(10)]),  # an unencoded `+`
    ("+4479", ["+4479*"]),
    ("+1", []),
], ids=["plus", "digits", "unencoded-plus", "a-prefix-entry", "none"])
async def test_a_prefix_search_lists_only_matching_entries(
        gatekeeper: Running, prefix: str, expected: list[str]) -> None:
    """`prefix=` keeps the entries starting with those digits, in entry order."""
    await add(gatekeeper, [f"+3361234{n:04d}" for n in range(40)] + ["+4479*"])
    status, page = await call(gatekeeper, "GET", BLOCK, params={"prefix": prefix})
    assert status == 200
    assert [row["entry"] for row in page["entries"]] == expected
    assert page["next_cursor"] is None


@pytest.mark.parametrize("prefix", ["+", "+0123", "abc", "+1234567890123456", "+12*"])
async def test_a_malformed_prefix_is_400(gatekeeper: Running, prefix: str) -> None:
    """A prefix that is not the first digits of an E.164 number: 400 `invalid_prefix`."""
    status, body = await call(gatekeeper, "GET", BLOCK, params={"prefix": prefix})
    assert (status, body["code"]) == (400, "invalid_prefix")

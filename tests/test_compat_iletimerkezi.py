"""iletiMerkezi's blacklist API served by the proxy, with plain HTTP requests shaped as
its docs show (it has no SDK on PyPI), and `mirror`."""

from __future__ import annotations

import io
import json
import socket
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from gatekeeper.resources import RESOURCES
from gatekeeper.store import EntryMeta, ListItem
from tests.conftest import AUTH, FakeUpstream, Running, StartGatekeeper, log_events, make_config

KEY, OTHER_KEY, UNKNOWN_KEY = "API_KEY_ACME", "API_KEY_BETA", "API_KEY_NOBODY"
ADD = "/iletimerkezi/v1/add-blacklist/json"
GET = "/iletimerkezi/v1/get-blacklist/json"
DELETE = "/iletimerkezi/v1/delete-blacklist/json"
SEND = "/iletimerkezi/v1/send-sms/json"
NUMBER = "+905330000099"  # the docs' example of a valid number
# The documented Turkish texts.
OK = {"code": 200, "message": "İşlem başarılı"}  # noqa: RUF001
CANNOT_PARSE = "İstek çözümlenemedi"
AUTH_FAILED = "Üyelik bilgileri hatalı"  # noqa: RUF001
BAD_NUMBER = "Hatalı numara"  # noqa: RUF001
NOT_LISTED = "Bu numara üzerindeki engelleme kaldırılamaz"  # noqa: RUF001
TURKEY = timezone(timedelta(hours=3))


def closed_port_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def start(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
                **settings: Any) -> Running:
    """One `iletimerkezi` upstream; KEY maps to tenant:acme, OTHER_KEY to two scopes."""
    settings.setdefault("url", upstream.url)
    return await start_gatekeeper(make_config(upstream.url, tmp_path, upstreams=[{
        "name": "iletimerkezi", "preset": "iletimerkezi",
        "credentials": {KEY: ["tenant:acme"], OTHER_KEY: ["tenant:beta", "agent:7"]},
        **settings}]))


def request(blacklist: object = None, key: str | None = KEY) -> dict[str, Any]:
    """A request as the docs show it."""
    body: dict[str, Any] = {"authentication": {"key": key, "hash": "API_HASH"}}
    if blacklist is not None:
        body["blacklist"] = blacklist
    return {"request": body}


async def post(gk: Running, path: str, doc: object) -> tuple[int, CIMultiDict[str], Any]:
    """POST JSON as iletiMerkezi's client does; the HTTP status must equal the body's."""
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    resp = await gk.proxy.post(path, data=data, headers={"Content-Type": "application/json"})
    reply = json.loads(await resp.read())
    assert reply["response"]["status"]["code"] == resp.status
    return resp.status, CIMultiDict(resp.headers), reply


async def stored(gk: Running, scope: str = "tenant:acme") -> list[dict[str, Any]]:
    """The scope's block list as the native admin API shows it."""
    resp = await gk.admin.get("/admin/v1/lists/block/entries", params={"scope": scope},
                              headers=AUTH)
    assert resp.status == 200
    return list((await resp.json())["entries"])


def status(code: int, message: str) -> dict[str, Any]:
    """A reply holding only a status."""
    return {"response": {"status": {"code": code, "message": message}}}


# --------------------------------------------------------------------------- add


async def test_add_seed_example_is_200_idempotent_and_stored(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """The docs' request gives the docs' reply, twice; one every-channel entry, in scope."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    for _ in range(2):
        code, headers, reply = await post(gk, ADD, request({"number": "905330000099"}))
        assert (code, reply) == (200, {"response": {"status": OK}})
        assert headers["Content-Type"] == "application/json; charset=utf-8"
    [entry] = await stored(gk)
    assert (entry["entry"], entry["channel"], entry["source"], entry["added_by"]) == \
        (NUMBER, "both", "iletimerkezi", "iletimerkezi:api_key")
    assert await stored(gk, "global") == []
    assert upstream.received == []


@pytest.mark.parametrize("given", ["905330000099", "+905330000099", "5330000099",
                                   "05330000099", "90 533 000 00 99", 905330000099],
                         ids=["90", "plus90", "bare", "zero", "spaced", "integer"])
async def test_every_input_form_is_stored_and_listed_as_plus_90(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        given: object) -> None:
    """All accepted forms mean +905330000099, which get-blacklist returns."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    code, _headers, _reply = await post(gk, ADD, request({"number": given}))
    assert code == 200
    _code, _headers, reply = await post(gk, GET, request())
    assert reply["response"]["blacklist"] == {"count": 1, "number": [NUMBER]}


@pytest.mark.parametrize("number", ["905999000000", "+905999000000", "+902121234567",
                                    "+4915112345678", "53300000", "5330000099x", "abc"],
                         ids=["made-up-prefix", "made-up-prefix-plus", "landline", "german",
                              "short", "letter", "letters"])
@pytest.mark.parametrize("path", [ADD, DELETE], ids=["add", "delete"])
async def test_not_a_turkish_mobile_number_is_466(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        path: str, number: str) -> None:
    """466 (invalid number); nothing is written or mirrored."""
    gk = await start(start_gatekeeper, upstream, tmp_path, mirror=True)
    code, headers, reply = await post(gk, path, request({"number": number}))
    assert (code, reply) == (466, status(466, BAD_NUMBER))
    assert "X-Gatekeeper-Mirror" not in headers
    assert await stored(gk) == []
    assert upstream.received == []


# --------------------------------------------------------------------------- delete


async def test_delete_then_delete_again_is_474(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Not idempotent: the second removal finds nothing to lift."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    await post(gk, ADD, request({"number": "+905330000099"}))
    code, _headers, reply = await post(gk, DELETE, request({"number": "5330000099"}))
    assert (code, reply) == (200, {"response": {"status": OK}})
    assert await stored(gk) == []
    code, _headers, reply = await post(gk, DELETE, request({"number": "905330000099"}))
    assert (code, reply) == (474, status(474, NOT_LISTED))


async def add_as(gk: Running, who: str | None, number: str) -> None:
    """Block `number` for KEY's scope the way `who` would: this blacklist API, the admin API
    (every channel or sms only), or another provider's list API; None adds nothing."""
    if who == "iletimerkezi":
        code, _headers, _reply = await post(gk, ADD, request({"number": number}))
        assert code == 200
    elif who == "admin":
        await gk.block(number, scope="tenant:acme")
    elif who == "admin-sms":
        await gk.block({"entry": number, "channel": "sms"},  # type: ignore[arg-type]
                       scope="tenant:acme")
    elif who == "prelude":
        await gk.app[RESOURCES].store.add("block", "tenant:acme", [ListItem(number)],
                                          EntryMeta("prelude", time.time()))


REMOVALS: list[tuple[str, str | None, int, bool, bool]] = [
    # (id, who added the number, status, still listed afterwards, refusal logged)
    ("added-by-this-api", "iletimerkezi", 200, False, False),
    ("not-listed", None, 474, False, False),
    ("added-by-the-admin-api", "admin", 474, True, True),
    ("added-by-the-admin-api-for-sms-only", "admin-sms", 474, True, True),
    ("added-by-another-list-api", "prelude", 474, True, True),
]


@pytest.mark.parametrize(("who", "code", "stays", "warned"), [c[1:] for c in REMOVALS],
                         ids=[c[0] for c in REMOVALS])
async def test_delete_lifts_only_what_this_api_added(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        log_output: io.StringIO, who: str | None, code: int, stays: bool,
        warned: bool) -> None:
    """A block an operator (or another source) added stays: 474 "cannot be lifted", and the
    refusal is logged as a warning; this API's own blocks are lifted (200)."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    await add_as(gk, who, NUMBER)
    got, headers, reply = await post(gk, DELETE, request({"number": "5330000099"}))
    assert (got, reply) == (code, {"response": {"status": OK}} if code == 200 else
                            status(474, NOT_LISTED))
    assert (NUMBER in [e["entry"] for e in await stored(gk)]) is stays
    refusals = [e for e in log_events(log_output) if e["event"] == "list_api_remove_refused"]
    if warned:
        [refusal] = refusals
        assert (refusal["level"], refusal["upstream"], refusal["scope"], refusal["list"],
                refusal["source"], refusal["request_id"]) == (
            "warning", "iletimerkezi", "tenant:acme", "block", "iletimerkezi",
            headers["X-Request-Id"])
    else:
        assert refusals == []
    assert upstream.received == []


async def test_refused_delete_is_not_mirrored(start_gatekeeper: StartGatekeeper,
                                              upstream: FakeUpstream, tmp_path: Path) -> None:
    """A delete refused for an operator's block is not a change: iletiMerkezi is not told."""
    gk = await start(start_gatekeeper, upstream, tmp_path, mirror=True)
    await gk.block(NUMBER, scope="tenant:acme")
    code, headers, _reply = await post(gk, DELETE, request({"number": NUMBER}))
    assert code == 474
    assert "X-Gatekeeper-Mirror" not in headers
    assert [e["entry"] for e in await stored(gk)] == [NUMBER]
    assert upstream.received == []


async def test_delete_only_touches_the_keys_scope(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A number blocked for another key's scope is absent for this key: 474, still listed."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    await post(gk, ADD, request({"number": NUMBER}, key=OTHER_KEY))
    code, _headers, _reply = await post(gk, DELETE, request({"number": NUMBER}))
    assert code == 474
    assert [e["entry"] for e in await stored(gk, "tenant:beta")] == [NUMBER]
    assert await stored(gk, "agent:7") == []


# --------------------------------------------------------------------------- get


async def test_get_pages_with_row_count_and_counts_the_whole_list(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Pages of rowCount numbers in list order; count is every number on the list."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    numbers = [f"+90533000001{i}" for i in range(5)]
    for number in reversed(numbers):
        await post(gk, ADD, request({"number": number}))
    pages = []
    for page in ("1", "2", "3", "4"):
        code, _headers, reply = await post(gk, GET, request({"page": page, "rowCount": "2"}))
        assert code == 200
        assert reply["response"]["status"] == OK
        assert reply["response"]["blacklist"]["count"] == 5
        pages.append(reply["response"]["blacklist"]["number"])
    assert pages == [numbers[:2], numbers[2:4], numbers[4:], []]
    _code, _headers, reply = await post(gk, GET, request({"page": 1, "rowCount": 1000}))
    assert reply["response"]["blacklist"]["number"] == numbers


async def test_get_leaves_out_prefixes_voice_only_entries_and_other_scopes(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Only numbers that stop this key's SMS are listed, each once."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    resp = await gk.admin.post("/admin/v1/lists/block/entries", headers=AUTH, json={
        "scope": "tenant:acme", "entries": [
            "+90*", NUMBER, {"entry": NUMBER, "channel": "sms"},
            {"entry": "+905330000098", "channel": "voice"},
            {"entry": "+905330000097", "channel": "sms"}]})
    assert resp.status == 200
    await gk.block("+905330000096")
    _code, _headers, reply = await post(gk, GET, request())
    assert reply["response"]["blacklist"] == {"count": 2,
                                              "number": ["+905330000097", NUMBER]}


async def test_get_filters_on_the_added_time_in_turkey_time(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """start and end (both included) select by added time; count stays the list's total."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    store = gk.app[RESOURCES].store
    days = {"+905330000011": "2026-03-31 23:59:59", "+905330000012": "2026-04-01 00:00:00",
            "+905330000013": "2026-04-30 23:59:59", "+905330000014": "2026-05-01 00:00:00"}
    for number, day in days.items():
        added = datetime.strptime(day, "%Y-%m-%d %H:%M:%S").replace(tzinfo=TURKEY)
        await store.add("block", "tenant:acme", [ListItem(number)],
                        EntryMeta("iletimerkezi", added.timestamp()))
    window = {"start": "2026-04-01 00:00:00", "end": "2026-04-30 23:59:59"}
    _code, _headers, reply = await post(gk, GET, request({"filter": window, "page": "1",
                                                          "rowCount": "100"}))
    assert reply["response"]["blacklist"] == {"count": 4, "number": ["+905330000012",
                                                                     "+905330000013"]}
    _code, _headers, reply = await post(gk, GET, request({"filter": {"start": window["end"]}}))
    assert reply["response"]["blacklist"]["number"] == ["+905330000013", "+905330000014"]
    _code, _headers, reply = await post(gk, GET, request({"filter": {"start": "", "end": ""}}))
    assert len(reply["response"]["blacklist"]["number"]) == 4


@pytest.mark.parametrize("blacklist", [
    {"page": "0"}, {"page": "-1"}, {"page": "one"}, {"rowCount": "1001"}, {"rowCount": "0"},
    {"rowCount": True}, {"filter": {"start": "2026-04-01"}}, {"filter": {"end": 20260401}},
    {"filter": "today"}, "all",
], ids=["page-0", "page-negative", "page-word", "rows-over-max", "rows-0", "rows-bool",
        "start-date-only", "end-number", "filter-string", "blacklist-string"])
async def test_bad_get_parameters_are_400(start_gatekeeper: StartGatekeeper,
                                          upstream: FakeUpstream, tmp_path: Path,
                                          blacklist: object) -> None:
    """A page, rowCount or filter the docs do not allow: 400 "İstek çözümlenemedi"."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    code, _headers, reply = await post(gk, GET, request(blacklist))
    assert (code, reply) == (400, status(400, CANNOT_PARSE))


# --------------------------------------------------------------------------- auth and body


@pytest.mark.parametrize("auth", [
    {"key": UNKNOWN_KEY, "hash": "API_HASH"}, {"key": KEY}, {"hash": "API_HASH"},
    {"key": "", "hash": "API_HASH"}, {"key": 42, "hash": "API_HASH"}, None,
], ids=["unknown-key", "no-hash", "no-key", "empty-key", "number-key", "no-authentication"])
@pytest.mark.parametrize("path", [ADD, GET, DELETE], ids=["add", "get", "delete"])
async def test_unknown_or_missing_credentials_are_401(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        path: str, auth: object) -> None:
    """401 (authentication failed); nothing is written or mirrored."""
    gk = await start(start_gatekeeper, upstream, tmp_path, mirror=True)
    body: dict[str, Any] = {"blacklist": {"number": NUMBER}}
    if auth is not None:
        body["authentication"] = auth
    code, headers, reply = await post(gk, path, {"request": body})
    assert (code, reply) == (401, status(401, AUTH_FAILED))
    assert "X-Gatekeeper-Mirror" not in headers
    for scope in ("global", "tenant:acme", "tenant:beta"):
        assert await stored(gk, scope) == []
    assert upstream.received == []


@pytest.mark.parametrize("doc", [
    b"{not json", b"", b"<request/>", [], {"response": {}}, {"request": "x"},
    request(), request({}), request({"number": ""}), request({"number": None}),
    request([NUMBER]),
], ids=["not-json", "empty", "xml", "array", "no-request", "request-string", "no-blacklist",
        "no-number", "empty-number", "null-number", "blacklist-array"])
async def test_malformed_add_is_400(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream,
                                    tmp_path: Path, doc: object) -> None:
    """iletiMerkezi's 400 (cannot parse) for a request that is not its JSON shape."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    code, _headers, reply = await post(gk, ADD, doc)
    assert (code, reply) == (400, status(400, CANNOT_PARSE))
    assert await stored(gk) == []
    assert upstream.received == []


async def test_changes_are_logged_without_the_key_or_hash(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        log_output: io.StringIO) -> None:
    """list_changed for each add and delete, naming the upstream and identity kind only."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    await post(gk, ADD, request({"number": NUMBER}))
    await post(gk, DELETE, request({"number": NUMBER}))
    changes = [e for e in log_events(log_output) if e["event"] == "list_changed"]
    assert [(e["op"], e["key_name"], e["scope"], e["list"], e["source"]) for e in changes] == [
        ("add", "iletimerkezi:api_key", "tenant:acme", "block", "iletimerkezi"),
        ("remove", "iletimerkezi:api_key", "tenant:acme", "block", "iletimerkezi")]
    assert (changes[0]["added"], changes[1]["removed"]) == (1, 1)
    assert "API_HASH" not in log_output.getvalue()


# --------------------------------------------------------------------------- sends


async def test_added_numbers_block_sends_with_that_key_only(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A number blacklisted with KEY is refused (452) for KEY's orders, not OTHER_KEY's."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    await post(gk, ADD, request({"number": "905330000099"}))

    def order(key: str) -> dict[str, Any]:
        return {"request": {"authentication": {"key": key, "hash": "API_HASH"},
                            "order": {"sender": "APITEST", "sendDateTime": "", "iys": "0",
                                      "message": {"text": "Kodunuz: 1234",
                                                  "receipents": {"number": ["5330000099"]}}}}}

    code, _headers, _reply = await post(gk, SEND, order(KEY))
    assert code == 452
    assert upstream.received == []
    upstream.status = 200
    upstream.reply = json.dumps({"response": {"status": OK, "order": {"id": "1"}}}).encode()
    code, _headers, _reply = await post(gk, SEND, order(OTHER_KEY))
    assert code == 200
    assert [r.path_qs for r in upstream.received] == ["/v1/send-sms/json"]


# --------------------------------------------------------------------------- mirror


async def test_mirror_forwards_successful_changes_only(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """add and delete reach iletiMerkezi as sent; get and a 474 never do."""
    gk = await start(start_gatekeeper, upstream, tmp_path, mirror=True)
    upstream.status, upstream.reply = 200, json.dumps({"response": {"status": OK}}).encode()
    add = json.dumps(request({"number": "905330000099"})).encode()
    code, headers, _reply = await post(gk, ADD, add)
    assert (code, headers["X-Gatekeeper-Mirror"]) == (200, "200")
    code, headers, _reply = await post(gk, GET, request())
    assert (code, "X-Gatekeeper-Mirror" in headers) == (200, False)
    code, headers, _reply = await post(gk, DELETE, request({"number": NUMBER}))
    assert (code, headers["X-Gatekeeper-Mirror"]) == (200, "200")
    code, headers, _reply = await post(gk, DELETE, request({"number": NUMBER}))
    assert (code, "X-Gatekeeper-Mirror" in headers) == (474, False)
    assert [(r.method, r.path_qs) for r in upstream.received] == [
        ("POST", "/v1/add-blacklist/json"), ("POST", "/v1/delete-blacklist/json")]
    assert upstream.received[0].body == add


async def test_mirror_refusal_is_reported_but_keeps_the_local_result(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        log_output: io.StringIO) -> None:
    """The provider's 401 shows in the header and the log; Gatekeeper's 200 stands."""
    gk = await start(start_gatekeeper, upstream, tmp_path, mirror=True)
    upstream.status = 401
    upstream.reply = json.dumps(status(401, AUTH_FAILED)).encode()
    code, headers, reply = await post(gk, ADD, request({"number": NUMBER}))
    assert (code, reply, headers["X-Gatekeeper-Mirror"]) == \
        (200, {"response": {"status": OK}}, "401")
    assert [e["entry"] for e in await stored(gk)] == [NUMBER]
    [failure] = [e for e in log_events(log_output) if e["event"] == "mirror_failed"]
    assert failure["status"] == 401


async def test_mirror_to_a_closed_port_fails_without_changing_the_reply(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        log_output: io.StringIO) -> None:
    """No provider listening: `failed`, logged once, the number is still blocked."""
    gk = await start(start_gatekeeper, upstream, tmp_path, mirror=True, url=closed_port_url())
    started = time.monotonic()
    code, headers, _reply = await post(gk, ADD, request({"number": NUMBER}))
    assert (code, headers["X-Gatekeeper-Mirror"]) == (200, "failed")
    assert time.monotonic() - started < 5  # one attempt, no retries
    assert [e["entry"] for e in await stored(gk)] == [NUMBER]
    assert len([e for e in log_events(log_output) if e["event"] == "mirror_failed"]) == 1


async def test_without_mirror_nothing_reaches_the_provider(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """The default: changes stay in Gatekeeper, with no mirror header."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    for path in (ADD, GET, DELETE):
        _code, headers, _reply = await post(gk, path, request({"number": NUMBER}))
        assert "X-Gatekeeper-Mirror" not in headers
    assert upstream.received == []

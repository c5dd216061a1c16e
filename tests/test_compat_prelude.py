"""Prelude's verification management list API served by the proxy, and `mirror`.

Driven with the docs' own example request (`{"phone_number": "+30123456789"}`) over plain
HTTP and through prelude-python-sdk's `verification_management` calls.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict
from prelude_python_sdk import AuthenticationError, BadRequestError, NotFoundError, Prelude

from gatekeeper.config import ConfigError
from gatekeeper.providers import PRESETS, check_presets
from gatekeeper.providers.credentials import digest_of
from gatekeeper.providers.listapi import ListApi
from gatekeeper.providers.listapi.iletimerkezi import IletiMerkeziLists
from gatekeeper.providers.listapi.prelude import NOT_FOUND, PreludeLists
from gatekeeper.resources import RESOURCES
from gatekeeper.store import EntryMeta, ListItem, StoreUnavailable
from gatekeeper.types import ListName
from tests.conftest import (
    AUTH,
    FakeUpstream,
    Running,
    StartGatekeeper,
    log_events,
    make_config,
)

TOKEN = "prelude-api-token-not-real"
OTHER_TOKEN = "prelude-other-token-not-real"
UNKNOWN_TOKEN = "prelude-unknown-token-not-real"
SEED = "+30123456789"  # the docs' example: E.164 by syntax, not a possible number
SENDABLE = "+33612345678"
PHONE_NUMBERS = "/prelude/v2/verification/management/phone-numbers"
BLOCK = f"{PHONE_NUMBERS}/block"
ALLOW = f"{PHONE_NUMBERS}/allow"
INVALID = {"code": "invalid_phone_number",
           "message": "The provided phone number is invalid. Provide a valid E.164 phone number.",
           "type": "bad_request"}
_SDK_ENV = ("API_TOKEN", "PRELUDE_BASE_URL", "PRELUDE_CUSTOM_HEADERS", "HTTP_PROXY",
            "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def closed_port_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def start(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
                **settings: Any) -> Running:
    """One `prelude` upstream; TOKEN maps to tenant:acme, OTHER_TOKEN to two scopes."""
    settings.setdefault("url", upstream.url)
    return await start_gatekeeper(make_config(upstream.url, tmp_path, upstreams=[{
        "name": "prelude", "preset": "prelude",
        "credentials": {digest_of(TOKEN): ["tenant:acme"],
                        digest_of(OTHER_TOKEN): ["tenant:beta", "agent:7"]},
        **settings}]))


def bearer(token: str = TOKEN) -> dict[str, str]:
    """Prelude's Authorization header."""
    return {"Authorization": f"Bearer {token}"}


async def send(gk: Running, method: str, path: str, body: object = None,
               token: str | None = TOKEN) -> tuple[int, CIMultiDict[str], Any]:
    """One raw HTTP call; status, headers and parsed JSON reply."""
    data = None if body is None else (body if isinstance(body, bytes) else
                                      json.dumps(body).encode())
    resp = await gk.proxy.request(method, path, data=data,
                                  headers={"Content-Type": "application/json",
                                           **(bearer(token) if token else {})})
    return resp.status, CIMultiDict(resp.headers), json.loads(await resp.read())


async def entries(gk: Running, scope: str, list_name: str = "block") -> list[dict[str, Any]]:
    """The scope's list as the native admin API shows it."""
    resp = await gk.admin.get(f"/admin/v1/lists/{list_name}/entries",
                              params={"scope": scope}, headers=AUTH)
    assert resp.status == 200
    return list((await resp.json())["entries"])


def client(gk: Running, monkeypatch: pytest.MonkeyPatch, token: str = TOKEN) -> Prelude:
    """The SDK on the proxy's /prelude mount; no retries (a retried call would repeat)."""
    for name in _SDK_ENV:
        monkeypatch.delenv(name, raising=False)
    base = str(gk.proxy.make_url("/prelude")).rstrip("/")
    return Prelude(api_token=token, base_url=base, max_retries=0,
                   _strict_response_validation=True)


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A blocking SDK call off the event loop (the proxy runs on it)."""
    return await asyncio.to_thread(fn, *args, **kwargs)


# --------------------------------------------------------------------------- the docs' shapes


@pytest.mark.parametrize(("path", "list_name"), [(BLOCK, "block"), (ALLOW, "allow")],
                         ids=["block", "allow"])
async def test_add_seed_example_is_201_idempotent_and_stored(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        path: str, list_name: str) -> None:
    """The docs' request gives the docs' reply, twice; one every-channel entry, in scope."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    for _ in range(2):
        status, _headers, reply = await send(gk, "POST", path, {"phone_number": SEED})
        assert (status, reply) == (201, {"phone_number": SEED})
    [entry] = await entries(gk, "tenant:acme", list_name)
    assert (entry["entry"], entry["channel"], entry["source"], entry["added_by"]) == \
        (SEED, "both", "prelude", "prelude:api_token")
    assert await entries(gk, "global", list_name) == []
    assert upstream.received == []


async def test_delete_is_202_and_idempotent(start_gatekeeper: StartGatekeeper,
                                            upstream: FakeUpstream, tmp_path: Path) -> None:
    """Removing answers 202 with the number, also when it is not (or no longer) listed."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    await send(gk, "POST", BLOCK, {"phone_number": SEED})
    for _ in range(2):
        status, _headers, reply = await send(gk, "DELETE", BLOCK, {"phone_number": SEED})
        assert (status, reply) == (202, {"phone_number": SEED})
    assert await entries(gk, "tenant:acme") == []


async def add_as(gk: Running, who: str | None, number: str, list_name: ListName) -> None:
    """Put `number` on the scope's list the way `who` would: this list API, the admin API
    (every channel or sms only), or another provider's list API; None adds nothing."""
    if who == "prelude":
        status, _headers, _reply = await send(gk, "POST", f"{PHONE_NUMBERS}/{list_name}",
                                              {"phone_number": number})
        assert status == 201
    elif who == "admin":
        await gk.block(number, scope="tenant:acme", list_name=list_name)
    elif who == "admin-sms":
        await gk.block({"entry": number, "channel": "sms"},  # type: ignore[arg-type]
                       scope="tenant:acme", list_name=list_name)
    elif who == "iletimerkezi":
        await gk.app[RESOURCES].store.add(list_name, "tenant:acme", [ListItem(number)],
                                          EntryMeta("iletimerkezi", time.time()))


REMOVALS: list[tuple[str, str | None, int, bool]] = [
    # (id, who added the number, DELETE status, still listed afterwards)
    ("added-by-this-api", "prelude", 202, False),
    ("not-listed", None, 202, False),
    ("added-by-the-admin-api", "admin", 404, True),
    ("added-by-the-admin-api-for-sms-only", "admin-sms", 404, True),
    ("added-by-another-list-api", "iletimerkezi", 404, True),
]


@pytest.mark.parametrize("list_name", ["block", "allow"])
@pytest.mark.parametrize(("who", "status", "stays"), [c[1:] for c in REMOVALS],
                         ids=[c[0] for c in REMOVALS])
async def test_delete_removes_only_what_this_list_api_added(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        log_output: io.StringIO, list_name: ListName, who: str | None, status: int,
        stays: bool) -> None:
    """An entry an operator (or another source) added stays: Prelude's 404 `not_found`,
    and the refusal is logged as a warning; this API's own entries go (202)."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    await add_as(gk, who, SEED, list_name)
    got, headers, reply = await send(gk, "DELETE", f"{PHONE_NUMBERS}/{list_name}",
                                     {"phone_number": SEED})
    assert got == status
    if status == 202:
        assert reply == {"phone_number": SEED}
    else:
        assert reply == {"code": "not_found", "message": NOT_FOUND, "type": "not_found",
                         "request_id": headers["X-Request-Id"]}
    assert (SEED in [e["entry"] for e in await entries(gk, "tenant:acme", list_name)]) is stays
    refusals = [e for e in log_events(log_output) if e["event"] == "list_api_remove_refused"]
    if status == 404:
        [refusal] = refusals
        assert (refusal["level"], refusal["upstream"], refusal["scope"], refusal["list"],
                refusal["source"], refusal["request_id"]) == (
            "warning", "prelude", "tenant:acme", list_name, "prelude", headers["X-Request-Id"])
        assert not [e for e in log_events(log_output)
                    if e["event"] == "list_changed" and e["op"] == "remove"]
    else:
        assert refusals == []
    assert upstream.received == []


async def test_refused_delete_is_not_mirrored(start_gatekeeper: StartGatekeeper,
                                              upstream: FakeUpstream, tmp_path: Path) -> None:
    """A DELETE refused for an operator's entry is not a change: Prelude is not told."""
    gk = await start(start_gatekeeper, upstream, tmp_path, mirror=True)
    await gk.block(SEED, scope="tenant:acme")
    status, headers, _reply = await send(gk, "DELETE", BLOCK, {"phone_number": SEED})
    assert status == 404
    assert "X-Gatekeeper-Mirror" not in headers
    assert upstream.received == []


async def test_get_lists_the_scopes_exact_numbers_that_apply_to_sms(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Every-channel and sms-only numbers, once each; prefixes and voice-only ones left out."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    await send(gk, "POST", BLOCK, {"phone_number": SEED})
    resp = await gk.admin.post("/admin/v1/lists/block/entries", headers=AUTH, json={
        "scope": "tenant:acme", "entries": [
            "+44*", {"entry": "+447700900123", "channel": "sms"},
            {"entry": SEED, "channel": "sms"}, {"entry": SENDABLE, "channel": "voice"}]})
    assert resp.status == 200
    await gk.block("+14155550100")  # global: another scope
    status, _headers, reply = await send(gk, "GET", BLOCK)
    assert status == 200
    assert [row["phone_number"] for row in reply["phone_numbers"]] == [SEED, "+447700900123"]
    assert all(row["created_at"].endswith("Z") for row in reply["phone_numbers"])


@pytest.mark.parametrize("body", [
    {"phone_number": "+33*"},
    {"phone_number": "+4*"},
    {"phone_number": "0612345678"},
    {"phone_number": "+999123456789"},
    {"phone_number": "+30"},
    {"phone_number": 30123456789},
    {"phone_number": ""},
    {"number": SEED},
    [SEED],
    b"{not json",
    b"",
], ids=["prefix", "short-prefix", "national", "unknown-country-code", "too-short",
        "not-a-string", "empty", "no-phone_number", "array", "not-json", "no-body"])
@pytest.mark.parametrize("method", ["POST", "DELETE"])
async def test_bad_number_or_body_is_prelude_400(start_gatekeeper: StartGatekeeper,
                                                 upstream: FakeUpstream, tmp_path: Path,
                                                 method: str, body: object) -> None:
    """Prelude's error shape with Gatekeeper's request id; nothing is written or mirrored."""
    gk = await start(start_gatekeeper, upstream, tmp_path, mirror=True)
    status, headers, reply = await send(gk, method, BLOCK, body)
    assert status == 400
    assert reply == INVALID | {"request_id": headers["X-Request-Id"]}
    assert "X-Gatekeeper-Mirror" not in headers
    assert await entries(gk, "tenant:acme") == []
    assert upstream.received == []


@pytest.mark.parametrize(("token", "code"), [(None, "missing_api_token"),
                                              (UNKNOWN_TOKEN, "invalid_api_key")],
                         ids=["no-token", "unknown-token"])
@pytest.mark.parametrize("method", ["POST", "DELETE", "GET"])
async def test_credential_without_scope_is_401(start_gatekeeper: StartGatekeeper,
                                               upstream: FakeUpstream, tmp_path: Path,
                                               method: str, token: str | None,
                                               code: str) -> None:
    """A token the upstream does not map gets Prelude's 401; nothing is written anywhere."""
    gk = await start(start_gatekeeper, upstream, tmp_path, mirror=True)
    status, headers, reply = await send(gk, method, BLOCK, {"phone_number": SEED}, token)
    assert status == 401
    assert (reply["code"], reply["type"], reply["request_id"]) == \
        (code, "unauthorized", headers["X-Request-Id"])
    for scope in ("global", "tenant:acme", "tenant:beta"):
        assert await entries(gk, scope) == []
    assert upstream.received == []


async def test_first_scope_of_the_credential_is_the_one_written(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A token mapped to [tenant:beta, agent:7] writes and reads tenant:beta only."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    await send(gk, "POST", BLOCK, {"phone_number": SEED}, OTHER_TOKEN)
    assert [e["entry"] for e in await entries(gk, "tenant:beta")] == [SEED]
    assert await entries(gk, "agent:7") == []
    assert await entries(gk, "tenant:acme") == []
    _status, _headers, theirs = await send(gk, "GET", BLOCK, token=OTHER_TOKEN)
    _status, _headers, mine = await send(gk, "GET", BLOCK)
    assert ([r["phone_number"] for r in theirs["phone_numbers"]], mine["phone_numbers"]) == \
        ([SEED], [])


@pytest.mark.parametrize("path", [f"{BLOCK}/", f"{PHONE_NUMBERS}/BLOCK",
                                  f"{PHONE_NUMBERS}//block", f"{PHONE_NUMBERS}/%62lock"],
                         ids=["trailing-slash", "upper-case", "double-slash", "encoded"])
async def test_odd_spellings_of_the_path_are_still_answered_locally(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        path: str) -> None:
    """No spelling of the list path slips past to the provider without `mirror`."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    status, _headers, _reply = await send(gk, "POST", path, {"phone_number": SEED})
    assert status == 201
    assert [e["entry"] for e in await entries(gk, "tenant:acme")] == [SEED]
    assert upstream.received == []


async def test_other_management_calls_still_pass_through(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """The sandbox list and other methods are not Gatekeeper's: forwarded unchanged."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    upstream.status, upstream.reply = 200, b'{"phone_numbers": []}'
    resp = await gk.proxy.get(f"{PHONE_NUMBERS}/sandbox", headers=bearer())
    assert resp.status == 200
    resp = await gk.proxy.put(BLOCK, headers=bearer(), json={"phone_number": SEED})
    assert resp.status == 200
    assert [(r.method, r.path_qs) for r in upstream.received] == [
        ("GET", "/v2/verification/management/phone-numbers/sandbox"),
        ("PUT", "/v2/verification/management/phone-numbers/block")]


async def test_changes_are_logged_without_the_token(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        log_output: io.StringIO) -> None:
    """Each change logs list_changed with who, scope, list and counts; no secret."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    await send(gk, "POST", BLOCK, {"phone_number": SEED})
    await send(gk, "POST", BLOCK, {"phone_number": SEED})
    await send(gk, "DELETE", ALLOW, {"phone_number": SEED})
    changes = [e for e in log_events(log_output) if e["event"] == "list_changed"]
    assert [(e["op"], e["list"], e.get("added"), e.get("existing"), e.get("removed"),
             e.get("missing")) for e in changes] == [
        ("add", "block", 1, 0, None, None), ("add", "block", 0, 1, None, None),
        ("remove", "allow", None, None, 0, 1)]
    assert {(e["key_name"], e["scope"], e["upstream"], e["source"]) for e in changes} == \
        {("prelude:api_token", "tenant:acme", "prelude", "prelude")}
    assert TOKEN not in log_output.getvalue()
    assert digest_of(TOKEN) not in log_output.getvalue()


async def test_store_fault_is_503_and_nothing_is_mirrored(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A store that fails answers 503; the provider is not told of a change that failed."""
    gk = await start(start_gatekeeper, upstream, tmp_path, mirror=True)

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise StoreUnavailable("down")

    monkeypatch.setattr(gk.app[RESOURCES].store, "add", broken)
    status, headers, reply = await send(gk, "POST", BLOCK, {"phone_number": SEED})
    assert (status, reply["code"]) == (503, "store_unavailable")
    assert "X-Gatekeeper-Mirror" not in headers
    assert upstream.received == []


# --------------------------------------------------------------------------- the SDK


async def test_sdk_add_list_delete(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream,
                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """set_phone_number, list_phone_numbers and delete_phone_number parse strictly."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    management = client(gk, monkeypatch).verification_management
    added = await call(management.set_phone_number, "block", phone_number=SEED)
    assert added.phone_number == SEED
    listed = await call(management.list_phone_numbers, "block")
    assert [p.phone_number for p in listed.phone_numbers] == [SEED]
    assert listed.phone_numbers[0].created_at.tzinfo is not None
    assert (await call(management.list_phone_numbers, "allow")).phone_numbers == []
    removed = await call(management.delete_phone_number, "block", phone_number=SEED)
    assert removed.phone_number == SEED
    assert (await call(management.list_phone_numbers, "block")).phone_numbers == []
    assert upstream.received == []


async def test_sdk_delete_of_an_operators_entry_raises_not_found(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK raises NotFoundError for an entry the list API did not add; it stays."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    await gk.block(SEED, scope="tenant:acme")
    management = client(gk, monkeypatch).verification_management
    with pytest.raises(NotFoundError) as raised:
        await call(management.delete_phone_number, "block", phone_number=SEED)
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["code"] == "not_found"
    listed = await call(management.list_phone_numbers, "block")
    assert [p.phone_number for p in listed.phone_numbers] == [SEED]


async def test_sdk_bad_number_raises_bad_request_error(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A prefix is no phone number here: the SDK raises BadRequestError with Prelude's code."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    management = client(gk, monkeypatch).verification_management
    with pytest.raises(BadRequestError) as raised:
        await call(management.set_phone_number, "block", phone_number="+33*")
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["code"] == "invalid_phone_number"
    assert raised.value.body["request_id"] == raised.value.response.headers["X-Request-Id"]


async def test_sdk_unknown_credential_raises_authentication_error(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A token that maps to no scope: AuthenticationError for every call."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    management = client(gk, monkeypatch, UNKNOWN_TOKEN).verification_management
    with pytest.raises(AuthenticationError):
        await call(management.set_phone_number, "block", phone_number=SEED)
    with pytest.raises(AuthenticationError):
        await call(management.list_phone_numbers, "block")
    assert await entries(gk, "global") == []


async def test_entries_added_by_the_sdk_block_sends_in_that_scope_only(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A number blocked with one token is refused for that token's sends, not for others'."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    await call(client(gk, monkeypatch).verification_management.set_phone_number, "block",
               phone_number=SENDABLE)
    with pytest.raises(BadRequestError) as raised:
        await call(client(gk, monkeypatch).notify.send, template_id="template_1", to=SENDABLE)
    assert raised.value.body["code"] == "blocked_number"  # type: ignore[index]
    assert upstream.received == []
    upstream.status = 200
    upstream.reply = json.dumps({"id": "msg_1", "to": SENDABLE, "template_id": "template_1",
                                 "variables": {}, "created_at": "2026-05-01T10:00:00Z",
                                 "expires_at": "2026-05-02T10:00:00Z"}).encode()
    sent = await call(client(gk, monkeypatch, OTHER_TOKEN).notify.send,
                      template_id="template_1", to=SENDABLE)
    assert sent.id == "msg_1"
    assert [r.path_qs for r in upstream.received] == ["/v2/notify"]


# --------------------------------------------------------------------------- mirror


async def test_mirror_forwards_each_change_once_and_reports_its_status(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """POST and DELETE reach Prelude as sent; GET never does; the reply stays Gatekeeper's."""
    gk = await start(start_gatekeeper, upstream, tmp_path, mirror=True)
    upstream.status, upstream.reply = 201, json.dumps({"phone_number": SEED}).encode()
    status, headers, reply = await send(gk, "POST", BLOCK, {"phone_number": SEED})
    assert (status, reply, headers["X-Gatekeeper-Mirror"]) == \
        (201, {"phone_number": SEED}, "201")
    upstream.status = 202
    status, headers, _reply = await send(gk, "DELETE", BLOCK, {"phone_number": SEED})
    assert (status, headers["X-Gatekeeper-Mirror"]) == (202, "202")
    status, headers, _reply = await send(gk, "GET", BLOCK)
    assert status == 200
    assert "X-Gatekeeper-Mirror" not in headers
    assert [(r.method, r.path_qs, json.loads(r.body), r.headers["Authorization"])
            for r in upstream.received] == [
        ("POST", "/v2/verification/management/phone-numbers/block", {"phone_number": SEED},
         f"Bearer {TOKEN}"),
        ("DELETE", "/v2/verification/management/phone-numbers/block", {"phone_number": SEED},
         f"Bearer {TOKEN}")]


async def test_sdk_call_is_mirrored_byte_for_byte(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider gets the SDK's own body; the SDK still gets Gatekeeper's reply."""
    gk = await start(start_gatekeeper, upstream, tmp_path, mirror=True)
    upstream.status, upstream.reply = 500, b'{"code": "internal"}'
    raw = await call(client(gk, monkeypatch).verification_management.with_raw_response
                     .set_phone_number, "allow", phone_number=SEED)
    assert raw.headers["X-Gatekeeper-Mirror"] == "500"
    assert raw.parse().phone_number == SEED
    [got] = upstream.received
    assert got.body == f'{{"phone_number":"{SEED}"}}'.encode()
    assert got.path_qs == "/v2/verification/management/phone-numbers/allow"


async def test_without_mirror_nothing_reaches_the_provider(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """The default: list changes stay in Gatekeeper and carry no mirror header."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    for method in ("POST", "DELETE", "GET"):
        _status, headers, _reply = await send(gk, method, BLOCK, {"phone_number": SEED})
        assert "X-Gatekeeper-Mirror" not in headers
    assert upstream.received == []


async def test_mirror_failure_keeps_the_local_result(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        log_output: io.StringIO) -> None:
    """An unreachable provider: `failed` in the header, logged; the change still stands."""
    gk = await start(start_gatekeeper, upstream, tmp_path, mirror=True, url=closed_port_url())
    status, headers, reply = await send(gk, "POST", BLOCK, {"phone_number": SEED})
    assert (status, reply, headers["X-Gatekeeper-Mirror"]) == \
        (201, {"phone_number": SEED}, "failed")
    assert [e["entry"] for e in await entries(gk, "tenant:acme")] == [SEED]
    [failure] = [e for e in log_events(log_output) if e["event"] == "mirror_failed"]
    assert (failure["upstream"], failure["request_id"]) == ("prelude", headers["X-Request-Id"])


# --------------------------------------------------------------------------- config


def test_mirror_is_off_by_default_and_on_when_asked(tmp_path: Path) -> None:
    """`mirror` defaults to false and reads a boolean."""
    cfg = make_config("http://127.0.0.1:9", tmp_path, upstreams=[
        {"name": "a", "url": "http://127.0.0.1:9", "preset": "prelude"},
        {"name": "b", "url": "http://127.0.0.1:9", "preset": "iletimerkezi", "mirror": True}])
    assert [u.mirror for u in cfg.upstreams] == [False, True]


@pytest.mark.parametrize(("preset", "value"), [("prelude", "yes"), ("prelude", 1),
                                               ("twilio", True)],
                         ids=["string", "int", "preset-without-list-api"])
def test_bad_mirror_setting_is_refused(tmp_path: Path, preset: str, value: object) -> None:
    """Not a boolean (config), or on a preset without a list API (`check_presets`): a
    ConfigError naming the key."""
    with pytest.raises(ConfigError) as raised:
        check_presets(make_config("http://127.0.0.1:9", tmp_path, upstreams=[
            {"name": "a", "url": "http://127.0.0.1:9", "preset": preset, "mirror": value}]))
    assert raised.value.key == "upstreams[0].mirror"


def test_mirror_is_accepted_on_every_preset_with_a_list_api(tmp_path: Path) -> None:
    """`check_presets` lets `mirror` through where the preset has a list API."""
    cfg = make_config("http://127.0.0.1:9", tmp_path, upstreams=[
        {"name": "a", "url": "http://127.0.0.1:9", "preset": "prelude", "mirror": True},
        {"name": "b", "url": "http://127.0.0.1:9", "preset": "iletimerkezi", "mirror": True}])
    assert check_presets(cfg) is cfg


@pytest.mark.parametrize(("name", "handler"), [
    ("prelude", PreludeLists), ("iletimerkezi", IletiMerkeziLists),
])
def test_every_list_api_preset_has_a_handler(name: str, handler: type[ListApi]) -> None:
    """Exactly Prelude and iletiMerkezi serve a list API, each with its own handler."""
    assert {n for n, p in PRESETS.items() if p.list_api is not None} == {
        "prelude", "iletimerkezi"}
    assert isinstance(PRESETS[name].list_api, handler)

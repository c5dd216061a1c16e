"""The per-agent block-list API (seed 001), driven with the seed's own numbers and replies."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.config import RedisConfig
from gatekeeper.store import connect
from tests.conftest import (
    ADMIN_KEY,
    AUTH,
    TWILIO_MESSAGES,
    FakeUpstream,
    Running,
    StartGatekeeper,
    log_events,
    make_config,
)

PATH = "/api/agent-block-list"
KEY = {"X-Authorization": ADMIN_KEY}
SEED_NUMBER = "+1234567890"  # the seed's example: E.164 by syntax, not a possible number
REAL_NUMBER = "+14155550100"  # a possible number, so the proxy checks it against the lists
UNAUTHORIZED = "Invalid or missing API key, or insufficient permissions."
ALREADY = "Number already in block list"
NOT_FOUND = "Number not found in block list"
INVALID = "Invalid phone number format"


async def call(gk: Running, method: str, *, body: Any = None, params: Any = None,
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One call to the per-agent API; the status and the decoded JSON body."""
    resp = await gk.admin.request(method, PATH, json=body, params=params,
                                  headers=KEY if headers is None else headers)
    text = await resp.text()
    assert resp.content_type == "application/json", text
    return resp.status, json.loads(text)


async def post(gk: Running, numbers: list[str], agent: str = "42") -> dict[str, Any]:
    """Add numbers to an agent's list, expecting 200."""
    status, payload = await call(gk, "POST", body={"uid": "user-1", "agentId": agent,
                                                   "numbers": numbers})
    assert status == 200, payload
    return dict(payload)


async def delete(gk: Running, numbers: list[str], agent: str = "42") -> dict[str, Any]:
    """Remove numbers from an agent's list, expecting 200."""
    status, payload = await call(gk, "DELETE", body={"uid": "user-1", "agentId": agent,
                                                     "numbers": numbers})
    assert status == 200, payload
    return dict(payload)


async def blocked(gk: Running, agent: str = "42") -> list[str]:
    """The agent's blocked numbers as GET lists them."""
    status, payload = await call(gk, "GET", params={"uid": "user-1", "agentId": agent})
    assert status == 200, payload
    assert isinstance(payload["message"], str)
    return list(payload["numbers"])


async def native_rows(gk: Running, scope: str = "agent:42") -> list[dict[str, Any]]:
    """The scope's block list as the native API lists it."""
    resp = await gk.admin.get("/admin/v1/lists/block/entries",
                              params={"scope": scope, "limit": "1000"}, headers=AUTH)
    assert resp.status == 200
    return list((await resp.json())["entries"])


async def snapshot(gk: Running) -> dict[str, Any]:
    """Every Redis key with its serialised value, to show a call wrote nothing."""
    return {key: await gk.redis.dump(key) for key in sorted(await gk.redis.keys("*"))}


def list_changes(buffer: io.StringIO) -> list[dict[str, Any]]:
    """The `list_changed` log events so far."""
    return [e for e in log_events(buffer) if e["event"] == "list_changed"]


# ------------------------------------------------------------------------------- add


async def test_add_the_seed_number(gatekeeper: Running) -> None:
    """The seed's `+1234567890` is accepted and listed."""
    payload = await post(gatekeeper, [SEED_NUMBER])
    assert payload["added"] == [SEED_NUMBER]
    assert payload["failed"] == []
    assert payload["message"] == "Block list updated: 1 added, 0 failed."
    assert await blocked(gatekeeper) == [SEED_NUMBER]


@pytest.mark.parametrize(("given", "normalised"), [
    ("+1234567890", "+1234567890"),
    ("+1 234 567 890", "+1234567890"),
    ("+1 (415) 555-0100", "+14155550100"),
    (" +33 6 12 34 56 78 ", "+33612345678"),
    ("+30123456789", "+30123456789"),
], ids=["seed", "spaces", "punctuation", "padded", "prelude-example"])
async def test_added_numbers_are_shown_normalised(gatekeeper: Running, given: str,
                                                  normalised: str) -> None:
    """Replies and listings show E.164, whatever spelling was sent."""
    payload = await post(gatekeeper, [given])
    assert payload["added"] == [normalised]
    assert await blocked(gatekeeper) == [normalised]


async def test_duplicate_add_is_rejected_per_number(gatekeeper: Running) -> None:
    """Adding a listed number again fails for it with the seed's reason."""
    await post(gatekeeper, [SEED_NUMBER])
    payload = await post(gatekeeper, ["+1 234 567 890"])
    assert payload["added"] == []
    assert payload["failed"] == [{"number": SEED_NUMBER, "reason": ALREADY}]
    assert await blocked(gatekeeper) == [SEED_NUMBER]


async def test_repeat_within_one_add_is_rejected(gatekeeper: Running) -> None:
    """The first spelling is added, the repeat fails as already listed."""
    payload = await post(gatekeeper, [SEED_NUMBER, "+1-234-567-890"])
    assert payload["added"] == [SEED_NUMBER]
    assert payload["failed"] == [{"number": SEED_NUMBER, "reason": ALREADY}]


@pytest.mark.parametrize("number", [
    "1234567890", "", "   ", "abc", "+0123456789", "+1234567890123456", "+99912345678",
    "+1 23", "+33*", "+1415*", "tel:+14155550100", "+1234567890x",
], ids=["no-plus", "empty", "blank", "letters", "leading-zero", "sixteen-digits",
        "unknown-country-code", "too-short", "prefix-country", "prefix-area", "uri",
        "trailing-letter"])
async def test_invalid_numbers_fail_alone(gatekeeper: Running, number: str) -> None:
    """A bad number (prefixes included: this API takes numbers) fails; the rest is added."""
    payload = await post(gatekeeper, [number, SEED_NUMBER])
    assert payload["added"] == [SEED_NUMBER]
    assert payload["failed"] == [{"number": number, "reason": INVALID}]
    assert await blocked(gatekeeper) == [SEED_NUMBER]


async def test_partial_add_reports_each_number_in_order(gatekeeper: Running) -> None:
    """Added, already-listed and invalid numbers in one call, failures in the order sent."""
    await post(gatekeeper, [SEED_NUMBER])
    payload = await post(gatekeeper, ["oops", SEED_NUMBER, REAL_NUMBER, "+44 20 7946 0958"])
    assert payload["added"] == [REAL_NUMBER, "+442079460958"]
    assert payload["failed"] == [{"number": "oops", "reason": INVALID},
                                 {"number": SEED_NUMBER, "reason": ALREADY}]
    assert await blocked(gatekeeper) == [SEED_NUMBER, REAL_NUMBER, "+442079460958"]


async def test_all_failed_add_is_still_200_and_writes_nothing(gatekeeper: Running) -> None:
    """Only failures: 200 with every number in `failed`, the store untouched."""
    payload = await post(gatekeeper, ["nope", "+33*"])
    assert payload["added"] == []
    assert [f["number"] for f in payload["failed"]] == ["nope", "+33*"]
    assert await gatekeeper.redis.keys("*") == []


async def test_entries_carry_agent_api_metadata(gatekeeper: Running) -> None:
    """Every-channel entries, source agent-api, added by the key, noting the uid."""
    await post(gatekeeper, [SEED_NUMBER])
    [row] = await native_rows(gatekeeper)
    assert row["entry"] == SEED_NUMBER
    assert row["channel"] == "both"
    assert row["source"] == "agent-api"
    assert row["added_by"] == "admin"
    assert row["note"] == "uid=user-1"
    assert "expires_at" not in row


async def test_agents_have_separate_lists(gatekeeper: Running) -> None:
    """Each agent id is its own scope; nothing lands in global."""
    await post(gatekeeper, [SEED_NUMBER], agent="42")
    await post(gatekeeper, [REAL_NUMBER], agent="agent-7.b@x")
    assert await blocked(gatekeeper, "42") == [SEED_NUMBER]
    assert await blocked(gatekeeper, "agent-7.b@x") == [REAL_NUMBER]
    assert await blocked(gatekeeper, "43") == []
    assert await native_rows(gatekeeper, "global") == []


# ------------------------------------------------------------------------------ list


async def test_get_empty_list(gatekeeper: Running) -> None:
    """An agent with nothing blocked: 200 with no numbers."""
    status, payload = await call(gatekeeper, "GET", params={"uid": "u", "agentId": "42"})
    assert status == 200
    assert payload["numbers"] == []
    assert isinstance(payload["message"], str)


async def test_get_shows_native_numbers_once_and_no_prefixes(gatekeeper: Running) -> None:
    """Numbers added natively to the agent's scope show, channel variants once, prefixes
    (not phone numbers) not at all."""
    resp = await gatekeeper.admin.post("/admin/v1/lists/block/entries", headers=AUTH, json={
        "scope": "agent:42", "entries": [
            "+33*", {"entry": REAL_NUMBER, "channel": "sms"},
            {"entry": REAL_NUMBER, "channel": "voice"}, SEED_NUMBER]})
    assert resp.status == 200
    assert await blocked(gatekeeper) == [SEED_NUMBER, REAL_NUMBER]


async def test_get_hides_expired_entries(gatekeeper: Running) -> None:
    """An entry past its expiry is no longer listed."""
    resp = await gatekeeper.admin.post("/admin/v1/lists/block/entries", headers=AUTH, json={
        "scope": "agent:42", "entries": [REAL_NUMBER], "ttl_seconds": 60})
    assert resp.status == 200
    await post(gatekeeper, [SEED_NUMBER])
    members = await gatekeeper.redis.zrange("gk:exp:block:agent:42", 0, -1)
    assert members == [REAL_NUMBER]
    await gatekeeper.redis.zadd("gk:exp:block:agent:42", {REAL_NUMBER: 1.0})
    assert await blocked(gatekeeper) == [SEED_NUMBER]


# ---------------------------------------------------------------------------- remove


async def test_remove_reports_removed_and_absent(gatekeeper: Running) -> None:
    """Listed numbers are removed; absent and invalid ones fail with the seed's reasons."""
    await post(gatekeeper, [SEED_NUMBER, REAL_NUMBER])
    payload = await delete(gatekeeper, ["+1 234 567 890", "+442079460958", "bad"])
    assert payload["removed"] == [SEED_NUMBER]
    assert payload["failed"] == [{"number": "+442079460958", "reason": NOT_FOUND},
                                 {"number": "bad", "reason": INVALID}]
    assert payload["message"] == "Block list updated: 1 removed, 2 failed."
    assert await blocked(gatekeeper) == [REAL_NUMBER]


async def test_remove_twice_fails_the_second_time(gatekeeper: Running) -> None:
    """Only numbers on the list can be removed: a second removal fails."""
    await post(gatekeeper, [SEED_NUMBER])
    assert (await delete(gatekeeper, [SEED_NUMBER]))["removed"] == [SEED_NUMBER]
    payload = await delete(gatekeeper, [SEED_NUMBER])
    assert payload["removed"] == []
    assert payload["failed"] == [{"number": SEED_NUMBER, "reason": NOT_FOUND}]


async def test_repeat_within_one_remove_fails(gatekeeper: Running) -> None:
    """The first spelling removes the number; the repeat finds it gone."""
    await post(gatekeeper, [SEED_NUMBER])
    payload = await delete(gatekeeper, [SEED_NUMBER, "+1 234 567 890"])
    assert payload["removed"] == [SEED_NUMBER]
    assert payload["failed"] == [{"number": SEED_NUMBER, "reason": NOT_FOUND}]


async def test_remove_takes_channel_variants_too(gatekeeper: Running) -> None:
    """A number listed for one channel natively is unblocked on every channel."""
    resp = await gatekeeper.admin.post("/admin/v1/lists/block/entries", headers=AUTH, json={
        "scope": "agent:42", "entries": [{"entry": REAL_NUMBER, "channel": "sms"}, "+33*"]})
    assert resp.status == 200
    payload = await delete(gatekeeper, [REAL_NUMBER])
    assert payload["removed"] == [REAL_NUMBER]
    assert [r["entry"] for r in await native_rows(gatekeeper)] == ["+33*"]


async def test_remove_only_touches_its_agent(gatekeeper: Running) -> None:
    """A number blocked for another agent is not found, and stays there."""
    await post(gatekeeper, [SEED_NUMBER], agent="43")
    payload = await delete(gatekeeper, [SEED_NUMBER], agent="42")
    assert payload["failed"] == [{"number": SEED_NUMBER, "reason": NOT_FOUND}]
    assert await blocked(gatekeeper, "43") == [SEED_NUMBER]


# ------------------------------------------------------------------------------ audit


async def test_changes_are_logged_with_the_key_name(gatekeeper: Running,
                                                    log_output: io.StringIO) -> None:
    """`list_changed` names the key, scope, list and counts; the secret is never logged."""
    await post(gatekeeper, [SEED_NUMBER, "bad"])
    await delete(gatekeeper, [SEED_NUMBER, REAL_NUMBER])
    changes = list_changes(log_output)
    assert [{k: e.get(k) for k in ("key_name", "scope", "list", "op", "added", "removed",
                                   "failed")} for e in changes] == [
        {"key_name": "admin", "scope": "agent:42", "list": "block", "op": "add",
         "added": 1, "removed": None, "failed": 1},
        {"key_name": "admin", "scope": "agent:42", "list": "block", "op": "remove",
         "added": None, "removed": 1, "failed": 1},
    ]
    assert ADMIN_KEY not in log_output.getvalue()


# ------------------------------------------------------------------------------- 400s


@pytest.mark.parametrize("params", [
    {}, {"agentId": "42"}, {"uid": "user-1"}, {"uid": "", "agentId": "42"},
    {"uid": "user-1", "agentId": ""}, {"uid": "user-1", "agentId": "4 2"},
    {"uid": "user-1", "agentId": "a/b"}, {"uid": "user-1", "agentId": "x" * 129},
    {"uid": "u" * 257, "agentId": "42"},
], ids=["none", "no-uid", "no-agent", "blank-uid", "blank-agent", "agent-space",
        "agent-slash", "agent-too-long", "uid-too-long"])
async def test_get_bad_search_params_is_400(gatekeeper: Running,
                                            params: dict[str, str]) -> None:
    """Missing or unusable uid/agentId on GET: the seed's 'Invalid search params'."""
    status, payload = await call(gatekeeper, "GET", params=params)
    assert status == 400
    assert payload["code"] == "invalid_search_params"
    assert payload["message"].startswith("Invalid search params")


BAD_BODIES = [
    ({"agentId": "42", "numbers": [SEED_NUMBER]}, "invalid_body"),
    ({"uid": "user-1", "numbers": [SEED_NUMBER]}, "invalid_body"),
    ({"uid": "", "agentId": "42", "numbers": [SEED_NUMBER]}, "invalid_body"),
    ({"uid": 7, "agentId": "42", "numbers": [SEED_NUMBER]}, "invalid_body"),
    ({"uid": "user-1", "agentId": 42, "numbers": [SEED_NUMBER]}, "invalid_body"),
    ({"uid": "user-1", "agentId": "a:b c", "numbers": [SEED_NUMBER]}, "invalid_body"),
    ({"uid": "user-1", "agentId": None, "numbers": [SEED_NUMBER]}, "invalid_body"),
    ({"uid": "user-1", "agentId": "42"}, "invalid_numbers"),
    ({"uid": "user-1", "agentId": "42", "numbers": []}, "invalid_numbers"),
    ({"uid": "user-1", "agentId": "42", "numbers": SEED_NUMBER}, "invalid_numbers"),
    ({"uid": "user-1", "agentId": "42", "numbers": [SEED_NUMBER, 1234567890]},
     "invalid_numbers"),
    ({"uid": "user-1", "agentId": "42", "numbers": [None]}, "invalid_numbers"),
    ({"uid": "user-1", "agentId": "42", "numbers": [[SEED_NUMBER]]}, "invalid_numbers"),
    ({"uid": "user-1", "agentId": "42", "numbers": {"0": SEED_NUMBER}}, "invalid_numbers"),
    ({"uid": "user-1", "agentId": "42", "numbers": [SEED_NUMBER] * 10_001},
     "invalid_numbers"),
    ([SEED_NUMBER], "invalid_body"),
    ("numbers", "invalid_body"),
    (None, "invalid_body"),
]
BAD_BODY_IDS = ["no-uid", "no-agent", "blank-uid", "uid-number", "agent-number",
                "agent-unusable", "agent-null", "no-numbers", "numbers-empty",
                "numbers-string", "numbers-with-integer", "numbers-with-null",
                "numbers-nested", "numbers-object", "too-many", "array-body", "string-body",
                "null-body"]


@pytest.mark.parametrize("method", ["POST", "DELETE"])
@pytest.mark.parametrize(("body", "code"), BAD_BODIES, ids=BAD_BODY_IDS)
async def test_bad_body_is_400_and_writes_nothing(gatekeeper: Running,
                                                  log_output: io.StringIO, method: str,
                                                  body: Any, code: str) -> None:
    """A malformed body or `numbers`: 400 with the seed's wording, no change, no log."""
    await post(gatekeeper, [SEED_NUMBER])
    before = await snapshot(gatekeeper)
    status, payload = await call(gatekeeper, method, body=body)
    assert status == 400
    assert payload["code"] == code
    assert payload["message"].startswith(
        "Invalid request body" if code == "invalid_body" else "Invalid numbers parameter")
    assert await snapshot(gatekeeper) == before
    assert len(list_changes(log_output)) == 1


@pytest.mark.parametrize("method", ["POST", "DELETE"])
@pytest.mark.parametrize("raw", [b"{", b"", b"\xff\xfe", b"uid=1&agentId=42"],
                         ids=["truncated", "empty", "not-utf8", "form"])
async def test_body_that_is_not_json_is_400(gatekeeper: Running, method: str,
                                            raw: bytes) -> None:
    """Bodies that are not JSON: 400 `invalid_body`, never 500."""
    resp = await gatekeeper.admin.request(
        method, PATH, data=raw, headers={**KEY, "Content-Type": "application/json"})
    assert resp.status == 400
    assert (await resp.json())["code"] == "invalid_body"


async def test_unknown_body_fields_are_ignored(gatekeeper: Running) -> None:
    """Fields the seed does not document do not fail the call."""
    status, payload = await call(gatekeeper, "POST", body={
        "uid": "user-1", "agentId": "42", "numbers": [SEED_NUMBER], "extra": True})
    assert status == 200
    assert payload["added"] == [SEED_NUMBER]


# ------------------------------------------------------------------------------- 401s


@pytest.mark.parametrize("headers", [
    {},
    {"X-Authorization": ""},
    {"X-Authorization": "wrong-key-0123456789"},
    {"X-Authorization": ADMIN_KEY + "x"},
    {"X-Authorization": ADMIN_KEY[:-1]},
    {"X-Authorization": f"Bearer {ADMIN_KEY}"},
    AUTH,
], ids=["missing", "empty", "wrong", "longer", "shorter", "bearer-scheme",
        "native-header"])
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_bad_key_is_401_and_writes_nothing(gatekeeper: Running,
                                                 log_output: io.StringIO,
                                                 headers: dict[str, str], method: str) -> None:
    """No or wrong `X-Authorization`: the seed's 401, checked before the body."""
    await post(gatekeeper, [SEED_NUMBER])
    before = await snapshot(gatekeeper)
    for body in ({"uid": "user-1", "agentId": "42", "numbers": [SEED_NUMBER, REAL_NUMBER]},
                 {"not": "valid"}):
        status, payload = await call(gatekeeper, method, body=body,
                                     params={"uid": "user-1", "agentId": "42"},
                                     headers=headers)
        assert status == 401
        assert payload["code"] == "unauthorized"
        assert payload["message"] == UNAUTHORIZED
        assert "numbers" not in payload
    assert await snapshot(gatekeeper) == before
    assert len(list_changes(log_output)) == 1


async def test_key_is_trimmed(gatekeeper: Running) -> None:
    """Whitespace around the key in the header is not part of it."""
    status, _ = await call(gatekeeper, "GET", params={"uid": "u", "agentId": "42"},
                           headers={"X-Authorization": f"  {ADMIN_KEY} "})
    assert status == 200


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_no_configured_key_refuses_everything(start_gatekeeper: StartGatekeeper,
                                                    upstream: FakeUpstream, tmp_path: Path,
                                                    method: str) -> None:
    """With no admin key configured the API is disabled: 401 even with the usual key."""
    config = make_config(upstream.url, tmp_path, admin={"key_env": "GK_UNSET_KEY"})
    assert config.admin.keys == ()
    gk = await start_gatekeeper(config)
    status, payload = await call(gk, method, params={"uid": "u", "agentId": "42"},
                                 body={"uid": "u", "agentId": "42", "numbers": [SEED_NUMBER]})
    assert status == 401
    assert payload["message"].startswith(UNAUTHORIZED)
    assert "disabled" in payload["message"]
    assert await gk.redis.keys("*") == []


# ---------------------------------------------------------------------- other methods


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_other_methods_are_json_405(gatekeeper: Running, method: str) -> None:
    """Methods the seed does not document: JSON 405 naming the allowed ones."""
    resp = await gatekeeper.admin.request(method, PATH, headers=KEY, json={})
    assert resp.status == 405
    assert (await resp.json())["code"] == "method_not_allowed"
    assert {"GET", "POST", "DELETE"} <= set(resp.headers["Allow"].split(","))


# ------------------------------------------------------------------------- store fault


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_store_fault_is_503_after_validation(start_gatekeeper: StartGatekeeper,
                                                   upstream: FakeUpstream, tmp_path: Path,
                                                   log_output: io.StringIO,
                                                   method: str) -> None:
    """The store down: 503 `store_unavailable` (logged), but keys and bodies are still
    checked first."""
    client = connect(RedisConfig(timeout=0.2), "redis://127.0.0.1:1/0")
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path), redis=client)
    good = {"uid": "u", "agentId": "42", "numbers": [SEED_NUMBER]}
    status, payload = await call(gk, method, params=good, body=good)
    assert (status, payload["code"]) == (503, "store_unavailable")
    status, payload = await call(gk, method, params={"uid": "u"}, body={"uid": "u"})
    assert status == 400
    status, payload = await call(gk, method, params=good, body=good, headers={})
    assert status == 401
    errors = [e for e in log_events(log_output) if e["event"] == "store_unavailable"
              and e.get("operation") == "agent_block_list"]
    assert len(errors) == 1
    assert list_changes(log_output) == []
    assert gk.registry.get_sample_value("gatekeeper_store_errors_total",
                                        {"operation": "admin"}) == 1.0


# ------------------------------------------------------------------------------ proxy


async def send(gk: Running, number: str, scope: str | None) -> int:
    """A Twilio SMS through the proxy, with the agent's scope header if given."""
    headers = {"X-Gatekeeper-Scope": scope} if scope else {}
    resp = await gk.proxy.post(TWILIO_MESSAGES, data={"To": number, "Body": "hi"},
                               headers=headers)
    return resp.status


async def test_agent_entries_block_sends_in_the_agent_scope(gatekeeper: Running,
                                                            upstream: FakeUpstream) -> None:
    """A number added here is blocked for sends carrying `agent:42`, not for others, and
    flows again once removed."""
    await post(gatekeeper, ["+1 (415) 555-0100"])
    assert await send(gatekeeper, REAL_NUMBER, "agent:42") == 403
    assert upstream.received == []
    assert await send(gatekeeper, REAL_NUMBER, "agent:43") == 201
    assert await send(gatekeeper, REAL_NUMBER, None) == 201
    assert await send(gatekeeper, "+14155550101", "agent:42") == 201
    assert len(upstream.received) == 3
    await delete(gatekeeper, [REAL_NUMBER])
    assert await send(gatekeeper, REAL_NUMBER, "agent:42") == 201
    assert len(upstream.received) == 4


async def test_check_reports_the_agent_entry(gatekeeper: Running) -> None:
    """The native check explains a block by the agent-api entry, with its metadata."""
    await post(gatekeeper, [REAL_NUMBER])
    resp = await gatekeeper.admin.get("/admin/v1/check", headers=AUTH,
                                      params={"number": REAL_NUMBER, "scope": "agent:42"})
    result = await resp.json()
    assert result["decision"] == "blocked"
    [match] = result["matched"]
    assert match | {"added_at": ""} == {
        "scope": "agent:42", "list": "block", "entry": REAL_NUMBER, "channel": "both",
        "source": "agent-api", "added_by": "admin", "note": "uid=user-1", "added_at": ""}


async def test_seed_flow_on_a_real_redis_server(start_gatekeeper: StartGatekeeper,
                                                upstream: FakeUpstream, tmp_path: Path,
                                                real_redis: Any) -> None:
    """Add, duplicate, list and remove behave the same on a real redis-server."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path), redis=real_redis)
    assert (await post(gk, [SEED_NUMBER, REAL_NUMBER]))["added"] == [SEED_NUMBER, REAL_NUMBER]
    payload = await post(gk, [SEED_NUMBER])
    assert payload["failed"] == [{"number": SEED_NUMBER, "reason": ALREADY}]
    assert await blocked(gk) == [SEED_NUMBER, REAL_NUMBER]
    assert await send(gk, REAL_NUMBER, "agent:42") == 403
    payload = await delete(gk, [SEED_NUMBER, "+442079460958"])
    assert payload["removed"] == [SEED_NUMBER]
    assert payload["failed"] == [{"number": "+442079460958", "reason": NOT_FOUND}]
    assert await blocked(gk) == [REAL_NUMBER]


@pytest.mark.parametrize(("body", "content_type"), [
    (b'{"uid": "u", "agentId": "42", "numbers": ["+14155550100"]}',
     "application/json; charset=bogus"),
    (b'{"uid": "\\ud800", "agentId": "42", "numbers": ["+14155550100"]}', "application/json"),
], ids=["unknown-charset", "lone-surrogate-uid"])
async def test_undecodable_bodies_are_400_not_500(gatekeeper: Running, body: bytes,
                                                  content_type: str) -> None:
    """Bodies that cannot be decoded or stored are refused as bad input; nothing written."""
    resp = await gatekeeper.admin.post(PATH, data=body,
                                       headers={**KEY, "Content-Type": content_type})
    assert resp.status == 400
    assert (await resp.json())["code"] == "invalid_body"
    assert await gatekeeper.redis.keys("gk:list:*") == []

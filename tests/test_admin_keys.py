"""Several admin keys: who may read, write, and touch which scopes, on the native and the
per-agent APIs; refused calls write nothing and changes name the key."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.admin.auth import KeyRing
from gatekeeper.config import AdminKey
from tests.conftest import FakeUpstream, Running, StartGatekeeper, log_events, make_config

OPS = "ops-secret-0123456789"  # write, every scope
READER = "reader-secret-0123456789"  # read, every scope
ACME = "acme-secret-from-a-file-0123"  # write, tenant:acme* (read from a file)
ACME_READER = "acme-reader-secret-0123456789"  # read, tenant:acme*
AGENTS = "agents-secret-0123456789"  # write, agent:* and global

BLOCK = "/admin/v1/lists/block/entries"
ALLOW = "/admin/v1/lists/allow/entries"
CHECK = "/admin/v1/check"
AGENT = "/api/agent-block-list"
NUMBER = "+33612345678"
OTHER_NUMBER = "+14155550100"


def bearer(secret: str) -> dict[str, str]:
    """The native API's auth header."""
    return {"Authorization": f"Bearer {secret}"}


def x_auth(secret: str) -> dict[str, str]:
    """The per-agent API's auth header."""
    return {"X-Authorization": secret}


@pytest.fixture
async def gk(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream,
             tmp_path: Path) -> Running:
    """Gatekeeper with five keys, one read from a file, and some entries already listed."""
    (tmp_path / "acme.key").write_text(ACME + "\n", encoding="utf-8")
    config = make_config(upstream.url, tmp_path, admin={"keys": [
        {"name": "ops", "secret": OPS, "role": "write"},
        {"name": "reader", "secret": READER},
        {"name": "acme", "secret_file": "acme.key", "role": "write",
         "scopes": ["tenant:acme*"]},
        {"name": "acme-reader", "secret": ACME_READER, "role": "read",
         "scopes": ["tenant:acme*"]},
        {"name": "agents", "secret": AGENTS, "role": "write", "scopes": ["agent:*", "global"]},
    ]})
    running = await start_gatekeeper(config)
    for scope in ("global", "tenant:acme", "tenant:other", "agent:42"):
        for path in (BLOCK, ALLOW):
            resp = await running.admin.post(path, headers=bearer(OPS),
                                            json={"entries": [NUMBER], "scope": scope})
            assert resp.status == 200
    return running


async def snapshot(gk: Running) -> dict[str, Any]:
    """Every Redis key with its serialised value."""
    return {key: await gk.redis.dump(key) for key in sorted(await gk.redis.keys("*"))}


def changes(buffer: io.StringIO) -> list[dict[str, Any]]:
    """The `list_changed` events so far."""
    return [e for e in log_events(buffer) if e["event"] == "list_changed"]


async def call(gk: Running, method: str, path: str, headers: dict[str, str], *,
               scope: str = "global", entries: list[str] | None = None,
               agent: str = "42") -> tuple[int, Any]:
    """One admin call shaped for its endpoint; the status and decoded JSON body."""
    if path == AGENT:
        params = {"uid": "user-1", "agentId": agent}
        body: Any = {**params, "numbers": entries or [OTHER_NUMBER]}
    else:
        params = {"scope": scope, "number": NUMBER}
        body = {"entries": entries or [OTHER_NUMBER], "scope": scope}
    resp = await gk.admin.request(method, path, headers=headers,
                                  params=params if method == "GET" else None,
                                  json=None if method == "GET" else body)
    text = await resp.text()
    assert resp.content_type == "application/json", text
    return resp.status, json.loads(text)


NATIVE = [("POST", BLOCK), ("DELETE", BLOCK), ("GET", BLOCK), ("POST", ALLOW),
          ("DELETE", ALLOW), ("GET", ALLOW), ("GET", CHECK)]
NATIVE_IDS = ["add-block", "remove-block", "list-block", "add-allow", "remove-allow",
              "list-allow", "check"]
NATIVE_WRITES = [(m, p) for m, p in NATIVE if m != "GET"]
NATIVE_WRITE_IDS = [i for i, (m, _) in zip(NATIVE_IDS, NATIVE, strict=True) if m != "GET"]
EVERY = [*NATIVE, ("GET", AGENT), ("POST", AGENT), ("DELETE", AGENT)]
EVERY_IDS = [*NATIVE_IDS, "agent-list", "agent-add", "agent-remove"]


# --------------------------------------------------------------------------- unit


def test_key_ring_finds_each_key_and_nothing_else() -> None:
    """Each secret finds its own key; near misses and prefixes find none."""
    keys = [AdminKey("a", "a" * 16), AdminKey("b", "a" * 17, "read"), AdminKey("c", "c" * 20)]
    ring = KeyRing(keys)
    assert [ring.find(k.secret) for k in keys] == keys
    assert ring.find("a" * 15) is None
    assert ring.find("a" * 18) is None
    assert ring.find("") is None
    assert not KeyRing([])


@pytest.mark.parametrize(("key", "role", "scope", "allowed"), [
    (AdminKey("w", "x" * 16), "write", "tenant:any", True),
    (AdminKey("r", "x" * 16, "read"), "read", "global", True),
    (AdminKey("r", "x" * 16, "read"), "write", "global", False),
    (AdminKey("t", "x" * 16, "write", ("tenant:acme*",)), "write", "tenant:acme", True),
    (AdminKey("t", "x" * 16, "write", ("tenant:acme*",)), "write", "tenant:acme-eu", True),
    (AdminKey("t", "x" * 16, "write", ("tenant:acme*",)), "read", "tenant:other", False),
    (AdminKey("t", "x" * 16, "write", ("tenant:acme*",)), "read", "global", False),
    (AdminKey("t", "x" * 16, "write", ("tenant:acme*",)), "read", "Tenant:acme", False),
    (AdminKey("g", "x" * 16, "read", ("agent:*", "global")), "read", "global", True),
    (AdminKey("g", "x" * 16, "read", ("agent:*", "global")), "read", "agent:42", True),
    (AdminKey("g", "x" * 16, "read", ("agent:*", "global")), "read", "agents:42", False),
], ids=["write-any", "read-read", "read-write", "glob-exact", "glob-longer", "glob-other",
        "glob-global", "glob-case", "list-global", "list-agent", "list-near-miss"])
def test_key_role_and_scope_rules(key: AdminKey, role: str, scope: str,
                                  allowed: bool) -> None:
    """Write covers read; scopes are case-sensitive globs."""
    assert (key.allows(role) and key.permits(scope)) is allowed  # type: ignore[arg-type]


# ---------------------------------------------------------------------- 401: no key


@pytest.mark.parametrize("secret", [None, "wrong-secret-0123456789", OPS[:-1], OPS + "x"],
                         ids=["none", "wrong", "shorter", "longer"])
@pytest.mark.parametrize(("method", "path"), EVERY, ids=EVERY_IDS)
async def test_missing_or_wrong_key_is_401_and_changes_nothing(
        gk: Running, log_output: io.StringIO, secret: str | None, method: str,
        path: str) -> None:
    """No key or an unknown one: 401 on every endpoint, the store as it was, no audit."""
    before, logged = await snapshot(gk), len(changes(log_output))
    headers = {} if secret is None else (x_auth(secret) if path == AGENT else bearer(secret))
    status, payload = await call(gk, method, path, headers)
    assert status == 401
    assert payload["code"] == "unauthorized"
    assert await snapshot(gk) == before
    assert len(changes(log_output)) == logged


@pytest.mark.parametrize(("method", "path"), EVERY, ids=EVERY_IDS)
async def test_a_key_only_works_in_its_own_header(gk: Running, method: str,
                                                  path: str) -> None:
    """The native API wants `Authorization: Bearer`, the per-agent API `X-Authorization`."""
    headers = bearer(OPS) if path == AGENT else x_auth(OPS)
    status, _ = await call(gk, method, path, headers)
    assert status == 401


# ------------------------------------------------------------ read keys on writes


@pytest.mark.parametrize("secret", [READER, ACME_READER], ids=["reader", "acme-reader"])
@pytest.mark.parametrize(("method", "path"), NATIVE_WRITES, ids=NATIVE_WRITE_IDS)
async def test_read_key_on_native_write_is_403_and_changes_nothing(
        gk: Running, log_output: io.StringIO, secret: str, method: str, path: str) -> None:
    """A read key may not add or remove, even in its scopes; nothing is written."""
    before, logged = await snapshot(gk), len(changes(log_output))
    status, payload = await call(gk, method, path, bearer(secret), scope="tenant:acme",
                                 entries=[NUMBER, OTHER_NUMBER])
    assert status == 403
    assert payload["code"] == "forbidden"
    assert payload["type"] == "forbidden"
    assert "read-only" in payload["message"]
    assert await snapshot(gk) == before
    assert len(changes(log_output)) == logged


@pytest.mark.parametrize("method", ["POST", "DELETE"])
async def test_read_key_on_agent_write_is_401_and_changes_nothing(
        gk: Running, log_output: io.StringIO, method: str) -> None:
    """The per-agent API refuses a read key with the seed's 401; nothing is written."""
    before, logged = await snapshot(gk), len(changes(log_output))
    status, payload = await call(gk, method, AGENT, x_auth(READER),
                                 entries=[NUMBER, OTHER_NUMBER])
    assert status == 401
    assert payload["message"] == "Invalid or missing API key, or insufficient permissions."
    assert await snapshot(gk) == before
    assert len(changes(log_output)) == logged


@pytest.mark.parametrize(("method", "path"), [("GET", BLOCK), ("GET", ALLOW), ("GET", CHECK),
                                              ("GET", AGENT)],
                         ids=["list-block", "list-allow", "check", "agent-list"])
async def test_read_key_may_read(gk: Running, method: str, path: str) -> None:
    """A read key lists and checks in any scope it covers."""
    status, payload = await call(gk, method, path,
                                 x_auth(READER) if path == AGENT else bearer(READER),
                                 scope="tenant:other")
    assert status == 200, payload


# --------------------------------------------------------- scoped keys outside scope


@pytest.mark.parametrize("scope", ["tenant:other", "global", "agent:42", "tenant:acm"],
                         ids=["other-tenant", "global", "agent", "shorter-than-glob"])
@pytest.mark.parametrize("secret", [ACME, ACME_READER], ids=["acme", "acme-reader"])
@pytest.mark.parametrize(("method", "path"), NATIVE, ids=NATIVE_IDS)
async def test_scoped_key_outside_its_scopes_is_403_and_changes_nothing(
        gk: Running, log_output: io.StringIO, scope: str, secret: str, method: str,
        path: str) -> None:
    """`tenant:acme*` keys may not add, remove, list or check other scopes."""
    before, logged = await snapshot(gk), len(changes(log_output))
    status, payload = await call(gk, method, path, bearer(secret), scope=scope,
                                 entries=[NUMBER, OTHER_NUMBER])
    assert status == 403
    assert payload["code"] == "forbidden"
    if secret == ACME or method == "GET":
        assert scope in payload["message"]
    assert await snapshot(gk) == before
    assert len(changes(log_output)) == logged


async def test_check_needs_every_named_scope(gk: Running) -> None:
    """A check naming one covered and one uncovered scope is refused."""
    resp = await gk.admin.get(CHECK, headers=bearer(ACME), params={
        "number": NUMBER, "scope": "tenant:acme,tenant:other"})
    assert resp.status == 403
    assert "tenant:other" in (await resp.json())["message"]


async def test_check_without_scopes_applies_global_for_any_key(gk: Running) -> None:
    """`global` always applies to a decision, so a scoped key may check with no scope."""
    resp = await gk.admin.get(CHECK, headers=bearer(ACME_READER), params={"number": NUMBER})
    assert resp.status == 200
    result = await resp.json()
    assert result["scopes"] == ["global"]
    assert {m["scope"] for m in result["matched"]} == {"global"}


@pytest.mark.parametrize(("method", "secret"), [("GET", ACME_READER), ("POST", ACME),
                                                ("DELETE", ACME)],
                         ids=["list", "add", "remove"])
async def test_scoped_key_on_another_agent_is_401_and_changes_nothing(
        gk: Running, log_output: io.StringIO, method: str, secret: str) -> None:
    """The per-agent API needs `agent:<id>` covered; a tenant key gets the seed's 401."""
    before, logged = await snapshot(gk), len(changes(log_output))
    status, payload = await call(gk, method, AGENT, x_auth(secret), entries=[NUMBER])
    assert status == 401
    assert payload["code"] == "unauthorized"
    assert "numbers" not in payload
    assert await snapshot(gk) == before
    assert len(changes(log_output)) == logged


# ----------------------------------------------------------- scoped keys inside scope


@pytest.mark.parametrize("scope", ["tenant:acme", "tenant:acme-eu"], ids=["exact", "glob"])
async def test_scoped_key_works_inside_its_scopes(gk: Running, log_output: io.StringIO,
                                                  scope: str) -> None:
    """The `acme` key (from a file) adds, lists, checks and removes in `tenant:acme*`, and
    the audit events name it."""
    key = bearer(ACME)
    status, payload = await call(gk, "POST", BLOCK, key, scope=scope, entries=[OTHER_NUMBER])
    assert (status, payload["added"]) == (200, [OTHER_NUMBER])
    status, payload = await call(gk, "GET", BLOCK, key, scope=scope)
    rows = {row["entry"]: row for row in payload["entries"]}
    assert rows[OTHER_NUMBER]["added_by"] == "acme"
    resp = await gk.admin.get(CHECK, headers=key,
                              params={"number": OTHER_NUMBER, "scope": scope})
    assert (await resp.json())["decision"] == "blocked"
    status, payload = await call(gk, "DELETE", BLOCK, key, scope=scope,
                                 entries=[OTHER_NUMBER])
    assert (status, payload["removed"]) == (200, [OTHER_NUMBER])
    assert [(e["key_name"], e["scope"], e["op"]) for e in changes(log_output)][-2:] == [
        ("acme", scope, "add"), ("acme", scope, "remove")]


async def test_agent_key_uses_the_per_agent_api(gk: Running, log_output: io.StringIO) -> None:
    """An `agent:*` key adds and removes for any agent; the audit names it."""
    headers = x_auth(AGENTS)
    status, payload = await call(gk, "POST", AGENT, headers, agent="7",
                                 entries=[OTHER_NUMBER])
    assert (status, payload["added"]) == (200, [OTHER_NUMBER])
    status, payload = await call(gk, "DELETE", AGENT, headers, agent="42", entries=[NUMBER])
    assert (status, payload["removed"]) == (200, [NUMBER])
    assert [(e["key_name"], e["scope"], e["op"]) for e in changes(log_output)][-2:] == [
        ("agents", "agent:7", "add"), ("agents", "agent:42", "remove")]
    rows = await gk.admin.get(BLOCK, headers=bearer(READER), params={"scope": "agent:7"})
    [row] = (await rows.json())["entries"]
    assert (row["added_by"], row["source"]) == ("agents", "agent-api")


async def test_every_key_is_named_in_its_own_audit_events(gk: Running,
                                                          log_output: io.StringIO) -> None:
    """Each write key's changes carry its name, never its secret."""
    for secret, scope in ((OPS, "global"), (ACME, "tenant:acme"), (AGENTS, "agent:9")):
        status, _ = await call(gk, "POST", ALLOW, bearer(secret), scope=scope,
                               entries=[OTHER_NUMBER])
        assert status == 200
    assert [(e["key_name"], e["scope"], e["list"]) for e in changes(log_output)][-3:] == [
        ("ops", "global", "allow"), ("acme", "tenant:acme", "allow"),
        ("agents", "agent:9", "allow")]
    logged = log_output.getvalue()
    assert not any(s in logged for s in (OPS, READER, ACME, ACME_READER, AGENTS))


@pytest.mark.parametrize(("secret", "expected"), [
    (OPS, {"name": "ops", "role": "write", "scopes": ["*"]}),
    (READER, {"name": "reader", "role": "read", "scopes": ["*"]}),
    (ACME_READER, {"name": "acme-reader", "role": "read", "scopes": ["tenant:acme*"]}),
    (AGENTS, {"name": "agents", "role": "write", "scopes": ["agent:*", "global"]}),
])
async def test_a_key_reads_its_own_name_role_and_scopes(
        gk: Running, secret: str, expected: dict[str, Any]) -> None:
    """GET /admin/v1/key: what the calling key may do, never its secret."""
    resp = await gk.admin.get("/admin/v1/key", headers=bearer(secret))
    assert resp.status == 200
    body = await resp.json()
    assert body == expected
    assert secret not in await resp.text()
    assert (await gk.admin.get("/admin/v1/key")).status == 401

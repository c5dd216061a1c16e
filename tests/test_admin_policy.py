"""`/admin/v1/policy`: the rules in force, changed live without a restart, validated as
the config's, taken up by every worker, and only by a key over every scope."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.app import create_app
from gatekeeper.resources import RESOURCES
from tests.conftest import (
    TWILIO_MESSAGES,
    FakeUpstream,
    Running,
    StartGatekeeper,
    make_config,
)

KP = "+85023812345"
OPS, READER, ACME = "ops-key-0123456789abcdef", "reader-key-0123456789ab", "acme-key-0123456789abcd"
KEYS = [{"name": "ops", "secret": OPS, "role": "write"},
        {"name": "reader", "secret": READER, "role": "read"},
        {"name": "acme", "secret": ACME, "role": "write", "scopes": ["tenant:acme*"]}]
BLOCK_KP = {"policy": {"global": {"countries": {"block": ["KP"]}}}}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def start(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
                redis: Any = None) -> Running:
    config = make_config(upstream.url, tmp_path, admin={"keys": KEYS},
                         policy={"global": {"countries": {"block": ["IR"]}}})
    return await start_gatekeeper(config, redis=redis)


async def sms(gk: Running, to: str) -> int:
    return (await gk.proxy.post(TWILIO_MESSAGES, data={"To": to, "Body": "x"})).status


async def test_a_put_policy_applies_at_once_and_delete_goes_back_to_the_config(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """The config blocks IR; a PUT blocking KP replaces it live; DELETE restores it."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    shown = await (await gk.admin.get("/admin/v1/policy", headers=bearer(READER))).json()
    assert (shown["source"], shown["policy"]) == ("config", {"global": {"countries": {
        "block": ["IR"]}}})
    assert await sms(gk, KP) == 201
    put = await gk.admin.put("/admin/v1/policy", json=BLOCK_KP, headers=bearer(OPS))
    assert put.status == 200
    body = await put.json()
    assert (body["source"], body["version"], body["updated_by"]) == ("admin", 1, "ops")
    assert await sms(gk, KP) == 403
    assert await sms(gk, "+989121234567") == 201
    reset = await gk.admin.delete("/admin/v1/policy", headers=bearer(OPS))
    assert (await reset.json())["source"] == "config"
    assert await sms(gk, KP) == 201
    assert await sms(gk, "+989121234567") == 403


async def test_an_older_look_never_puts_its_policy_in_force_after_a_newer_one(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two looks at the stored policy at once (the poll and a PUT), the first held up
    while it preloads: the second waits for it, and the newer policy is the one in
    force."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    resources = gk.app[RESOURCES]
    calls = 0

    async def slow_first(_policy: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.3)

    monkeypatch.setattr(resources, "preload", slow_first)
    await resources.store.put_policy_document('{"global": {"countries": {"block": '
                                              '["KP"]}}}', "ops")
    older = asyncio.create_task(resources.refresh_policy())
    await asyncio.sleep(0.05)  # the older look is in its preload
    await resources.store.put_policy_document('{"global": {"countries": {"block": '
                                              '["CU"]}}}', "ops")
    assert await resources.refresh_policy() is True
    assert await older is True
    assert await sms(gk, "+5352345678") == 403  # CU: the newer policy
    assert await sms(gk, KP) == 201
    assert await resources.refresh_policy() is False  # nothing newer is left to take


@pytest.mark.parametrize(("body", "code"), [
    ({"policy": {"global": {"countries": {"block": ["XX"]}}}}, "invalid_policy"),
    ({"policy": {"global": {"velocity": [{"per": "number"}]}}}, "invalid_policy"),
    ({"policy": []}, "invalid_body"),
    ({"rules": {}}, "invalid_body"),
], ids=["unknown-region", "limit-missing", "not-an-object", "wrong-key"])
async def test_an_invalid_policy_is_refused_and_the_old_one_stays(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        body: dict[str, Any], code: str) -> None:
    """400 naming the key; the rules in force do not change."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    resp = await gk.admin.put("/admin/v1/policy", json=body, headers=bearer(OPS))
    assert resp.status == 400
    error = await resp.json()
    assert error["code"] == code
    if code == "invalid_policy":
        assert "policy.global." in error["message"]
    assert await sms(gk, "+989121234567") == 403


@pytest.mark.parametrize("secret", [READER, ACME], ids=["read-only", "one-tenant"])
async def test_only_a_key_over_every_scope_may_change_it(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        secret: str) -> None:
    """A read-only key, or a write key of one tenant: 403, nothing changed."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    for call in (gk.admin.put("/admin/v1/policy", json=BLOCK_KP, headers=bearer(secret)),
                 gk.admin.delete("/admin/v1/policy", headers=bearer(secret))):
        assert (await call).status == 403
    assert await sms(gk, KP) == 201


async def test_every_worker_takes_the_change_up(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        real_redis: Any) -> None:
    """Two workers on one store: a PUT through one reaches the other within its poll."""
    one = await start(start_gatekeeper, upstream, tmp_path, real_redis)
    two = await start(start_gatekeeper, upstream, tmp_path, real_redis)
    assert (await one.admin.put("/admin/v1/policy", json=BLOCK_KP,
                                headers=bearer(OPS))).status == 200
    for _ in range(40):
        if await sms(two, KP) == 403:
            break
        await asyncio.sleep(0.1)
    assert await sms(two, KP) == 403


async def test_a_restart_keeps_the_policy_set_live(
        upstream: FakeUpstream, tmp_path: Path, real_redis: Any) -> None:
    """A new process on the same store starts with the stored policy, not the config's."""
    await real_redis.hset("gk:policy", mapping={
        "version": 3, "doc": '{"global": {"countries": {"block": ["KP"]}}}',
        "updated_by": "ops", "updated_at": "0"})
    config = make_config(upstream.url, tmp_path)
    app = create_app(config, redis_client=real_redis)
    resources = app[RESOURCES]
    await resources.start()
    try:
        assert resources.policy is not config.policy
        assert "KP" in resources.policy.scopes["global"].sms.countries.regions  # type: ignore[union-attr]
    finally:
        await resources.close()

"""List freshness: each import records its origin and as_of; a list older than its
max_age is stale (metric, one log line), and `on_stale: closed` refuses the sends that
depend on it with 503 `list_stale` until a fresh import; GET /admin/v1/lists shows it."""

from __future__ import annotations

import dataclasses
import io
import time
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from gatekeeper.config import AdminKey, ConfigError
from gatekeeper.freshness import DAY, ListPolicy, ListSource, assess
from gatekeeper.resources import RESOURCES
from tests.conftest import (
    ADMIN_KEY,
    TWILIO_MESSAGES,
    FakeUpstream,
    Running,
    StartGatekeeper,
    decisions,
    log_events,
    make_config,
    sample,
)

NOW = 1_800_000_000.0
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
ACME = AdminKey("acme-reader", "acme-secret-0123456789", "read", ("tenant:acme",))
FORM = {"To": "+14155550100", "From": "+15005550006", "Body": "hi"}


def source(age_days: float, max_age_days: float | None = None) -> ListSource:
    return ListSource("block", "global", "US DNC", NOW - age_days * DAY, max_age_days, NOW)


ASSESSED = [
    ("no record", None, ListPolicy(31), None, "unknown"),
    ("no limit anywhere", source(40), ListPolicy(), 40 * DAY, "unknown"),
    ("config limit, young", source(10), ListPolicy(31), 10 * DAY, "fresh"),
    ("config limit, old", source(40), ListPolicy(31), 40 * DAY, "stale"),
    ("import limit wins", source(40, 60), ListPolicy(31), 40 * DAY, "fresh"),
    ("import limit, old", source(40, 28), ListPolicy(), 40 * DAY, "stale"),
    ("exactly the limit is fresh", source(31), ListPolicy(31), 31 * DAY, "fresh"),
]


@pytest.mark.parametrize(("given", "policy", "age", "state"), [a[1:] for a in ASSESSED],
                         ids=[a[0] for a in ASSESSED])
def test_assess(given: ListSource | None, policy: ListPolicy, age: float | None,
                state: str) -> None:
    """Age counts from as_of; the import's max_age wins over the config's; no limit or
    no record is `unknown` (never stale)."""
    result = assess(given, policy, NOW)
    assert (result.age_seconds, result.state) == (age, state)


CONFIG_ERRORS = [
    ({"global": {"on_stale": "shut"}}, "lists.global.on_stale"),
    ({"global": {"max_age_days": -1}}, "lists.global.max_age_days"),
    ({"global": {"max_age_days": "31d"}}, "lists.global.max_age_days"),
    ({"nope": {"on_stale": "closed"}}, "lists.nope"),
    ({"global": {"max_age": 31}}, "lists.global.max_age"),
]


@pytest.mark.parametrize(("lists", "key"), CONFIG_ERRORS, ids=[c[1] for c in CONFIG_ERRORS])
def test_bad_lists_config_names_the_key(lists: dict[str, Any], key: str,
                                        tmp_path: Path) -> None:
    """A wrong value under `lists` is a ConfigError naming its key."""
    with pytest.raises(ConfigError) as raised:
        make_config("http://127.0.0.1:9", tmp_path, lists=lists)
    assert raised.value.key == key


def test_lists_config_per_scope(tmp_path: Path) -> None:
    """Each scope has its policy; others get the default (no limit, enforce)."""
    config = make_config("http://127.0.0.1:9", tmp_path, lists={
        "global": {"max_age_days": 31, "on_stale": "closed"},
        "tenant:acme": {"on_stale": "warn"}})
    assert config.list_policy("global") == ListPolicy(31.0, "closed")
    assert config.list_policy("tenant:acme") == ListPolicy(None, "warn")
    assert config.list_policy("tenant:other") == ListPolicy()


async def start(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
                on_stale: str) -> Running:
    config = make_config(upstream.url, tmp_path, lists={
        "global": {"max_age_days": 31, "on_stale": on_stale}})
    admin = dataclasses.replace(config.admin, keys=(*config.admin.keys, ACME))
    return await start_gatekeeper(dataclasses.replace(config, admin=admin))


async def import_dnc(gk: Running, as_of: float, **params: str) -> None:
    resp = await gk.admin.post("/admin/v1/lists/block/import", data=b"2025550123\n",
                               params={"mode": "replace", "origin": "US DNC",
                                       "as_of": str(as_of), **params}, headers=AUTH)
    assert resp.status == 200, await resp.text()


async def send(gk: Running) -> Any:
    return await gk.proxy.post(TWILIO_MESSAGES, data=FORM)


async def test_closed_stale_list_refuses_sends_until_a_fresh_import(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        log_output: io.StringIO) -> None:
    """A 40-day-old list with max_age 31 and on_stale closed: sends get 503 list_stale
    (nothing reaches the upstream), the list shows as stale with its age, the gauge holds
    the age, one error is logged; a fresh import opens it again at once."""
    gk = await start(start_gatekeeper, upstream, tmp_path, "closed")
    await import_dnc(gk, time.time() - 40 * DAY)
    resp = await send(gk)
    assert resp.status == 503
    assert (await resp.json())["code"] == "list_stale"
    assert upstream.received == []
    assert decisions(gk.registry, "twilio", "sms", "rejected", "list_stale") == 1
    listed = (await (await gk.admin.get("/admin/v1/lists", headers=AUTH)).json())["lists"]
    [row] = [r for r in listed if r["scope"] == "global" and r["list"] == "block"]
    assert (row["state"], row["origin"], row["size"], row["on_stale"]) == (
        "stale", "US DNC", 1, "closed")
    assert 40 * DAY - 60 < row["age_seconds"] < 40 * DAY + 60
    assert sample(gk.registry, "gatekeeper_list_age_seconds", scope="global",
                  list="block") > 39 * DAY
    [event] = [e for e in log_events(log_output) if e["event"] == "list_stale"]
    assert (event["level"], event["on_stale"], event["max_age_days"]) == (
        "error", "closed", 31.0)
    await import_dnc(gk, time.time())
    resp = await send(gk)
    assert resp.status == 201
    assert any(e["event"] == "list_fresh" for e in log_events(log_output))


@pytest.mark.parametrize(("on_stale", "level"), [("enforce", "info"), ("warn", "warning")])
async def test_enforce_and_warn_keep_using_a_stale_list(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        log_output: io.StringIO, on_stale: str, level: str) -> None:
    """`enforce` and `warn` keep deciding with the stale list (its block still applies,
    other sends go out); they differ in the level of the one log line."""
    gk = await start(start_gatekeeper, upstream, tmp_path, on_stale)
    await import_dnc(gk, time.time() - 40 * DAY)
    assert (await send(gk)).status == 201
    blocked = await gk.proxy.post(TWILIO_MESSAGES, data={**FORM, "To": "+12025550123"})
    assert blocked.status != 201
    [event] = [e for e in log_events(log_output) if e["event"] == "list_stale"]
    assert event["level"] == level


async def test_import_max_age_overrides_the_config(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """max_age_days given with the import wins over the config's."""
    gk = await start(start_gatekeeper, upstream, tmp_path, "closed")
    await import_dnc(gk, time.time() - 40 * DAY, max_age_days="60")
    assert (await send(gk)).status == 201


async def test_lists_shows_only_the_scopes_a_key_may_read(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A key limited to tenant:acme sees that scope's lists only; unknown parameters
    are refused."""
    gk = await start(start_gatekeeper, upstream, tmp_path, "enforce")
    await import_dnc(gk, time.time())
    await import_dnc(gk, time.time(), scope="tenant:acme")
    acme = {"Authorization": f"Bearer {ACME.secret}"}
    listed = (await (await gk.admin.get("/admin/v1/lists", headers=acme)).json())["lists"]
    assert {(r["list"], r["scope"], r["state"]) for r in listed} == {
        ("block", "tenant:acme", "unknown")}
    bad = await gk.admin.get("/admin/v1/lists", params={"scope": "x"}, headers=AUTH)
    assert bad.status == 400


async def test_a_list_without_an_import_has_no_freshness(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Entries added by the API only: listed, state unknown, never stale."""
    gk = await start(start_gatekeeper, upstream, tmp_path, "closed")
    resp = await gk.admin.post("/admin/v1/lists/allow/entries", json={
        "entries": ["+33612345678"], "scope": "global"}, headers=AUTH)
    assert resp.status == 200
    listed = (await (await gk.admin.get("/admin/v1/lists", headers=AUTH)).json())["lists"]
    assert [(r["list"], r["state"], r["origin"]) for r in listed] == [
        ("allow", "unknown", None)]
    assert gk.app[RESOURCES].stale_closed == frozenset()


BAD_IMPORT_PARAMS = [
    ("as_of not a date", {"as_of": "yesterday"}),
    ("as_of in the future", {"as_of": str(time.time() + 10 * DAY)}),
    ("max_age_days zero", {"max_age_days": "0"}),
    ("max_age_days not a number", {"max_age_days": "31d"}),
    ("unknown format", {"format": "xml"}),
    ("origin too long", {"origin": "x" * 501}),
]


@pytest.mark.parametrize("params", [b[1] for b in BAD_IMPORT_PARAMS],
                         ids=[b[0] for b in BAD_IMPORT_PARAMS])
async def test_bad_import_parameters_are_400_and_change_nothing(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        params: dict[str, str]) -> None:
    """Each refused before a byte is loaded: 400 invalid_query naming the parameter."""
    gk = await start(start_gatekeeper, upstream, tmp_path, "enforce")
    resp = await gk.admin.post("/admin/v1/lists/block/import", data=b"2025550123\n",
                               params={"mode": "replace", **params}, headers=AUTH)
    assert resp.status == 400
    reply = await resp.json()
    assert reply["code"] == "invalid_query"
    assert next(iter(params)) in reply["message"]
    listed = (await (await gk.admin.get("/admin/v1/lists", headers=AUTH)).json())["lists"]
    assert listed == []


async def test_every_worker_refuses_and_one_logs(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        log_output: io.StringIO) -> None:
    """`run --workers N`: a worker without housekeeping refuses sends on a `closed`
    stale list too (it checks freshness itself); only the housekeeping one logs."""
    shared = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)
    config = make_config(upstream.url, tmp_path, lists={
        "global": {"max_age_days": 31, "on_stale": "closed"}})
    first = await start_gatekeeper(config, shared)
    await import_dnc(first, time.time() - 40 * DAY)
    other = await start_gatekeeper(config, shared, housekeeping=False)
    resp = await send(other)
    assert resp.status == 503
    assert (await resp.json())["code"] == "list_stale"
    assert upstream.received == []
    assert len([e for e in log_events(log_output) if e["event"] == "list_stale"]) == 1

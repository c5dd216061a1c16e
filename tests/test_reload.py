"""Live reload (reload.py, `POST /admin/v1/reload`): a valid file is taken up without
dropping connections or in-flight requests; an invalid one, or one changing what needs
a restart, is refused with the reason and the running config stays."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from gatekeeper.app import ADMIN_APP, create_app
from gatekeeper.config import load_config
from gatekeeper.reload import changed_sections, restart_needed
from gatekeeper.resources import RESOURCES
from tests.conftest import (
    ADMIN_KEY,
    TWILIO_MESSAGES,
    FakeUpstream,
    ListenerTestServer,
    sample,
)

READ_KEY = "r" * 24
SEND = {"To": "+12125550123", "Body": "hi"}
Client = TestClient[web.Request, web.Application]


async def reached(upstream: FakeUpstream, within: float = 5.0) -> None:
    """Wait until the fake upstream has received a request."""
    async with asyncio.timeout(within):
        while not upstream.received:  # noqa: ASYNC110 - the fake records, no event
            await asyncio.sleep(0.01)

def write(path: Path, upstream: str, **extra: Any) -> Path:
    """A config file (JSON is YAML) with a write key, a read key and the given upstreams
    (default: twilio at `upstream`)."""
    doc: dict[str, Any] = {
        "admin": {"keys": [
            {"name": "ops", "secret": ADMIN_KEY, "role": "write", "scopes": ["*"]},
            {"name": "viewer", "secret": READ_KEY, "role": "read", "scopes": ["*"]}]},
        "upstreams": [{"name": "twilio", "url": upstream, "preset": "twilio"}],
        **extra}
    path.write_text(json.dumps(doc))
    return path


class Live:
    """Gatekeeper served from a config file, on its own listener code and fakeredis."""

    def __init__(self, file: Path, proxy: Client, admin: Client,
                 registry: CollectorRegistry) -> None:
        self.file, self.proxy, self.admin, self.registry = file, proxy, admin, registry

    async def reload(self, key: str = ADMIN_KEY) -> tuple[int, dict[str, Any]]:
        resp = await self.admin.post("/admin/v1/reload",
                                     headers={"Authorization": f"Bearer {key}"})
        return resp.status, await resp.json()


@pytest.fixture
async def live(aiohttp_client: Callable[..., Awaitable[Client]], upstream: FakeUpstream,
               tmp_path: Path) -> Live:
    file = write(tmp_path / "gatekeeper.yaml", upstream.url)
    registry = CollectorRegistry()
    app = create_app(load_config(str(file)), registry=registry,
                     redis_client=fakeredis.FakeAsyncRedis(decode_responses=True))
    proxy = await aiohttp_client(ListenerTestServer(app, "proxy", app[RESOURCES].config
                                                    .proxy.timeouts))
    admin = await aiohttp_client(ListenerTestServer(app[ADMIN_APP], "admin",
                                                    app[RESOURCES].config.admin.timeouts))
    return Live(file, proxy, admin, registry)


async def test_a_new_upstream_is_served_after_a_reload_on_the_same_connection(
        live: Live, upstream: FakeUpstream) -> None:
    """A mount added to the file answers 404 before the reload and forwards after it,
    on the client's kept-alive connection; the reply names what changed."""
    vonage = "/vonage/sms/json"
    assert (await live.proxy.post(vonage, data={"to": "12125550123"})).status == 404
    doc = json.loads(live.file.read_text())
    doc["upstreams"].append({"name": "vonage", "url": upstream.url, "preset": "vonage"})
    live.file.write_text(json.dumps(doc))
    assert await live.reload() == (200, {"status": "applied", "changed": ["upstreams"]})
    resp = await live.proxy.post(vonage, data={"to": "12125550123", "text": "hi"})
    assert resp.status == 201
    assert [r.path_qs for r in upstream.received] == ["/sms/json"]
    assert sample(live.registry, "gatekeeper_config_reloads_total", outcome="applied") == 1


async def test_an_unchanged_file_reloads_with_nothing_changed(live: Live) -> None:
    """Reloading the same file is harmless: applied, nothing changed."""
    assert await live.reload() == (200, {"status": "applied", "changed": []})


async def test_an_invalid_file_is_refused_and_the_running_config_stays(
        live: Live, upstream: FakeUpstream) -> None:
    """A file with an unknown key: 422 naming the key, counted as refused, and sends
    go on under the running config."""
    doc = json.loads(live.file.read_text())
    doc["upstreams"][0]["on_blok"] = "skip"
    live.file.write_text(json.dumps(doc))
    status, body = await live.reload()
    assert status == 422
    assert body["code"] == "config_invalid"
    assert "on_blok" in body["message"]
    assert sample(live.registry, "gatekeeper_config_reloads_total", outcome="refused") == 1
    assert (await live.proxy.post(TWILIO_MESSAGES, data=SEND)).status == 201


@pytest.mark.parametrize(("section", "value", "named"), [
    ("proxy", {"port": 18080}, "proxy.host/port"),
    ("admin", {"port": 18081}, "admin.host/port"),
    ("redis", {"timeout": 2.0}, "redis"),
])
async def test_what_needs_a_restart_is_refused_with_its_key(
        live: Live, upstream: FakeUpstream, section: str, value: dict[str, Any],
        named: str) -> None:
    """Listeners and the store connection cannot change live: 409 `restart_required`
    naming the key; nothing changes."""
    write(live.file, upstream.url, **{section: value})
    status, body = await live.reload()
    assert status == 409
    assert body["code"] == "restart_required"
    assert named in body["message"]


async def test_a_send_in_flight_finishes_on_the_config_it_started_with(
        live: Live, upstream: FakeUpstream) -> None:
    """A send waiting on its upstream while the file drops that upstream: it completes
    (201 from the upstream); the next send to the mount finds no upstream (404)."""
    upstream.delay = 0.5
    sending = asyncio.create_task(live.proxy.post(TWILIO_MESSAGES, data=SEND))
    await reached(upstream)
    doc = json.loads(live.file.read_text())
    doc["upstreams"][0].update(name="vonage", preset="vonage")
    live.file.write_text(json.dumps(doc))
    assert (await live.reload())[0] == 200
    assert (await sending).status == 201
    upstream.delay = 0.0
    assert (await live.proxy.post(TWILIO_MESSAGES, data=SEND)).status == 404


async def test_a_reload_needs_a_write_key_for_every_scope(live: Live) -> None:
    """A read key is refused (403), no key 401; neither reloads anything."""
    status, body = await live.reload(READ_KEY)
    assert (status, body["code"]) == (403, "forbidden")
    resp = await live.admin.post("/admin/v1/reload")
    assert resp.status == 401
    assert sample(live.registry, "gatekeeper_config_reloads_total", outcome="applied") == 0


async def test_new_admin_keys_apply_after_a_reload(live: Live, upstream: FakeUpstream
                                                   ) -> None:
    """A key removed from the file stops working at once (the admin application is
    rebuilt with the new keys)."""
    doc = json.loads(live.file.read_text())
    doc["admin"]["keys"] = doc["admin"]["keys"][:1]
    live.file.write_text(json.dumps(doc))
    assert (await live.reload())[0] == 200
    resp = await live.admin.get("/admin/v1/lists",
                                headers={"Authorization": f"Bearer {READ_KEY}"})
    assert resp.status == 401


async def test_a_config_that_fails_to_build_is_rolled_back(
        live: Live, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    """If building the new applications fails (a bug), the reload is refused (422), the
    running config and pools stay, and sends go on."""
    resources = live.proxy.app[RESOURCES]
    reloader = resources.reloader
    assert reloader is not None

    def broken(_resources: object) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(reloader, "_build", broken)
    before = resources.config
    doc = json.loads(live.file.read_text())
    doc["upstreams"].append({"name": "vonage", "url": upstream.url, "preset": "vonage"})
    live.file.write_text(json.dumps(doc))
    status, body = await live.reload()
    assert (status, body["code"]) == (422, "config_invalid")
    assert "RuntimeError: boom" in body["message"]
    assert resources.config is before
    assert sorted(resources.upstreams) == ["twilio"]
    assert (await live.proxy.post(TWILIO_MESSAGES, data=SEND)).status == 201


# ------------------------------------------------------------------------ pure parts


def test_restart_needed_names_listener_and_store_keys(tmp_path: Path) -> None:
    """Table: which changes need a restart, and the sections a change touches."""
    base = load_config(str(write(tmp_path / "a.yaml", "http://127.0.0.1:9")))
    cases: list[tuple[dict[str, Any], list[str], tuple[str, ...]]] = [
        ({}, [], ()),
        ({"proxy": {"port": 9000}}, ["proxy.host/port"], ("proxy",)),
        ({"proxy": {"drain_timeout": 3}}, [], ("proxy",)),
        ({"proxy": {"timeouts": {"idle": 5}}}, ["proxy.timeouts"], ("proxy",)),
        ({"admin": {"host": "127.0.0.2", "keys": [
            {"name": "ops", "secret": ADMIN_KEY, "role": "write", "scopes": ["*"]}]}},
         ["admin.host/port"], ("admin",)),
        ({"redis": {"key_prefix": "x:"}}, ["redis"], ("redis",)),
        ({"store": {"on_error": "open"}}, [], ("store",)),
        ({"log": {"level": "debug"}}, ["log"], ("log",)),
    ]
    for extra, keys, sections in cases:
        if "admin" in extra:
            doc = json.loads((tmp_path / "a.yaml").read_text())
            doc.update(extra)
            (tmp_path / "b.yaml").write_text(json.dumps(doc))
        else:
            write(tmp_path / "b.yaml", "http://127.0.0.1:9", **extra)
        new = load_config(str(tmp_path / "b.yaml"))
        assert restart_needed(base, new) == keys, extra
        assert changed_sections(base, new) == sections, extra

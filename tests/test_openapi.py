"""The OpenAPI document of the native admin API: valid OpenAPI 3.1, in step with the routes,
served without a key, and true of a live server (schemathesis, on loopback)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from prometheus_client import CollectorRegistry
from schemathesis.specs.openapi.definitions import OPENAPI_31

from gatekeeper.admin import attempts, native, openapi
from gatekeeper.admin.openapi import DOCUMENT, PATHS
from gatekeeper.app import ADMIN_APP, create_app
from gatekeeper.config import Config, RedisConfig
from gatekeeper.numbers import _SCOPE_SYNTAX
from gatekeeper.observability import _REQUEST_ID
from gatekeeper.resources import RESOURCES
from gatekeeper.store import BlockedAttempt, EntryMeta, ListItem, connect
from tests.conftest import ADMIN_KEY, AUTH, FakeUpstream, Running, StartGatekeeper, make_config

SPEC = "/admin/v1/openapi.json"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# ------------------------------------------------------------------ the document itself


def _schemas(node: Any) -> Iterator[Any]:
    """Every Schema Object of the document (components, parameters, media types, headers)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "schema":
                yield value
            elif key == "schemas" and isinstance(value, dict):
                yield from value.values()
            else:
                yield from _schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas(value)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_document_validates_as_openapi_31() -> None:
    """The OpenAPI 3.1 meta-schema (offline copy shipped by schemathesis) accepts it."""
    assert DOCUMENT["openapi"] == "3.1.0"
    errors = [f"{e.instance_path}: {e.message}" for e in
              jsonschema_rs.Draft202012Validator(OPENAPI_31).iter_errors(DOCUMENT)]
    assert errors == []
    schemathesis.openapi.from_dict(DOCUMENT).validate()  # raises when invalid


def test_every_schema_is_valid_json_schema_2020_12() -> None:
    """The 3.1 meta-schema does not check Schema Objects: the 2020-12 meta-schema does."""
    schemas = list(_schemas(DOCUMENT))
    assert len(schemas) > 40
    for schema in schemas:
        jsonschema_rs.meta.validate(schema)


def test_every_reference_resolves() -> None:
    """Each `$ref` names something the document defines."""
    refs = set(_refs(DOCUMENT))
    assert "#/components/schemas/Error" in refs
    for ref in refs:
        node: Any = DOCUMENT
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(node, dict), ref
            assert part in node, ref
            node = node[part]


def test_document_is_plain_json() -> None:
    """The constant round-trips through JSON unchanged (no tuples, no non-JSON values)."""
    assert json.loads(json.dumps(DOCUMENT)) == DOCUMENT


LIMITS = [
    ("entries-per-call", openapi.MAX_ENTRIES_PER_CALL, native.MAX_ENTRIES_PER_CALL),
    ("page-max", openapi.MAX_PAGE, native.MAX_PAGE),
    ("page-default", openapi.DEFAULT_PAGE, native.DEFAULT_PAGE),
    ("scope-syntax", openapi.SCOPE_PATTERN, _SCOPE_SYNTAX.pattern),
    ("request-id", openapi.REQUEST_ID_PATTERN, _REQUEST_ID.pattern),
    ("stream-id", openapi.STREAM_ID_PATTERN, attempts._STREAM_ID.pattern),
]


@pytest.mark.parametrize(("documented", "actual"), [c[1:] for c in LIMITS],
                         ids=[c[0] for c in LIMITS])
def test_documented_limits_are_the_handlers(documented: object, actual: object) -> None:
    """Limits and syntaxes the document repeats are the ones the code enforces."""
    assert documented == actual


def _documented() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in PATHS.items()
            for method in item if method in METHODS}


async def test_every_route_is_documented_and_back(gatekeeper: Running) -> None:
    """The /admin/v1 routes and the document's operations are the same set."""
    routes: set[tuple[str, str]] = set()
    heads: set[str] = set()
    for route in gatekeeper.app[ADMIN_APP].router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if not path.startswith("/admin/v1/"):
            continue
        if route.method == "HEAD":
            heads.add(path)  # aiohttp adds HEAD beside every GET: not documented apart
        else:
            routes.add((route.method, path))
    assert routes == _documented()
    assert heads == {path for method, path in routes if method == "GET"}


def test_every_operation_documents_its_errors() -> None:
    """Keyed operations document 401, 403 and 503 and a 400 narrowed to its codes."""
    for path, item in PATHS.items():
        for method, operation in item.items():
            if method not in METHODS or operation.get("security") == []:
                continue
            statuses = set(operation["responses"])
            assert {"200", "401", "403", "503"} <= statuses, (method, path)
            codes = operation["responses"]["400"]["content"]["application/json"][
                "schema"]["properties"]["code"]["enum"]
            assert codes, (method, path)
            assert ("404" in statuses) == ("{list}" in path), (method, path)


# ------------------------------------------------------------------ serving it


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, AUTH],
                         ids=["no-key", "wrong-key", "key"])
async def test_document_is_served_without_a_key(gatekeeper: Running,
                                                 headers: dict[str, str]) -> None:
    """GET /admin/v1/openapi.json answers whatever the Authorization header."""
    resp = await gatekeeper.admin.get(SPEC, headers=headers)
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert resp.headers["X-Request-Id"]
    assert await resp.json() == DOCUMENT


async def test_document_is_served_with_the_admin_api_disabled(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """With no admin key configured the API refuses every call, but still documents it."""
    config = make_config(upstream.url, tmp_path)
    gk = await start_gatekeeper(replace(config, admin=replace(config.admin, keys=())))
    assert (await gk.admin.get(SPEC)).status == 200
    assert (await gk.admin.get("/admin/v1/check?number=%2B33612345678",
                               headers=AUTH)).status == 401


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/admin/v1/check?number=%2B33612345678"),
    ("GET", "/admin/v1/openapi.yaml"),
    ("GET", "/admin/v1/openapi.json/x"),
    ("POST", SPEC),
], ids=["check", "other-name", "below", "other-method"])
async def test_only_the_document_is_exempt(gatekeeper: Running, method: str,
                                           path: str) -> None:
    """Other paths and methods of /admin/v1 still need a key (401 before 404 or 405)."""
    resp = await gatekeeper.admin.request(method, path)
    assert resp.status == 401
    assert (await resp.json())["code"] == "unauthorized"


# ------------------------------------------------------------------ regressions it found


FOUND = [
    # Each used to be a 500 (or a 503 blaming the store), found while documenting the
    # handlers; the generated run does not reach them (they need a later read of the list,
    # or invalid UTF-8 in a JSON string).
    ("import-expires-inf", "POST", "/admin/v1/lists/block/import?expires_at=inf",
     b"+33612345678\n", {}, "invalid_query"),
    ("import-expires-far", "POST", "/admin/v1/lists/block/import?expires_at=1e300",
     b"+33612345678\n", {}, "invalid_query"),
    ("import-expires-nan", "POST", "/admin/v1/lists/block/import?expires_at=nan",
     b"+33612345678\n", {}, "invalid_query"),
    ("note-lone-surrogate", "POST", "/admin/v1/lists/block/entries",
     b'{"entries": ["+33612345678"], "note": "\\ud800"}', {}, "invalid_body"),
    ("unknown-charset", "POST", "/admin/v1/lists/block/entries",
     b'{"entries": ["+33612345678"]}', {"Content-Type": "application/json; charset=bogus"},
     "invalid_body"),
]


@pytest.mark.parametrize(("method", "path", "body", "headers", "code"),
                         [c[1:] for c in FOUND], ids=[c[0] for c in FOUND])
async def test_found_inputs_are_refused_cleanly(gatekeeper: Running, method: str, path: str,
                                               body: bytes, headers: dict[str, str],
                                               code: str) -> None:
    """Inputs that once broke the server are a 400 and leave every list readable."""
    resp = await gatekeeper.admin.request(method, path, data=body,
                                          headers={**AUTH, **headers})
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["code"] == code
    for after in ("/admin/v1/lists/block/entries", "/admin/v1/lists/block/export",
                  "/admin/v1/check?number=%2B33612345678"):
        assert (await gatekeeper.admin.get(after, headers=AUTH)).status == 200, after


async def test_export_reply_carries_the_request_id(gatekeeper: Running) -> None:
    """The streamed CSV reply has X-Request-Id like every other reply."""
    resp = await gatekeeper.admin.get("/admin/v1/lists/block/export",
                                      headers={**AUTH, "X-Request-Id": "export-1"})
    assert resp.status == 200
    assert resp.headers["X-Request-Id"] == "export-1"


# ------------------------------------------------------------------ a live server


class LiveGatekeeper:
    """Gatekeeper's apps on a real aiohttp server, in a thread with its own event loop
    (schemathesis calls it synchronously over loopback)."""

    def __init__(self, config: Config, redis_url: str) -> None:
        self._config = config
        self._redis_url = redis_url
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runners: list[web.AppRunner] = []

    def start(self) -> str:
        """Start serving; the admin listener's base URL."""
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)

    def stop(self) -> None:
        """Stop serving and end the thread."""
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()

    async def _start(self) -> str:
        client = connect(RedisConfig(timeout=5.0), self._redis_url)
        await client.flushdb()
        app = create_app(self._config, registry=CollectorRegistry(), redis_client=client)
        # The proxy app first: its cleanup_ctx starts the shared resources.
        for served in (app, app[ADMIN_APP]):
            runner = web.AppRunner(served)
            await runner.setup()
            self._runners.append(runner)
        site = web.TCPSite(self._runners[-1], "127.0.0.1", 0)
        await site.start()
        await self._seed(app)
        host, port = self._runners[-1].addresses[0][:2]
        return f"http://{host}:{port}"

    async def _seed(self, app: web.Application) -> None:
        """Entries with and without metadata, and attempts, so replies have rows."""
        store = app[RESOURCES].store
        meta = EntryMeta(source="api", added_at=time.time(), added_by="seed", note="why",
                         expires_at=time.time() + 3600)
        await store.add("block", "global", [ListItem("+33612345678"),
                                            ListItem("+90850*", "voice")], meta)
        await store.add("allow", "tenant:acme", [ListItem("+33612345678", "sms")],
                        EntryMeta(source="import", added_at=time.time()))
        for n, channel in enumerate(("sms", "voice", "sms")):
            await store.append_attempt(BlockedAttempt(
                request_id=f"req-{n}", upstream="twilio", channel=channel,
                direction="outbound", number="+33612345678", scopes="global,tenant:acme",
                scope="global", list="block", entry="+33612345678", action="rejected"))

    async def _stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()


@pytest.fixture(scope="module")
def live_admin(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a live admin listener on 127.0.0.1, on a database of its own."""
    tmp_path = tmp_path_factory.mktemp("openapi")
    # No upstream is called: the proxy listener is not even bound.
    config = make_config("http://127.0.0.1:9", tmp_path)
    server = LiveGatekeeper(config, redis_server.removesuffix("/0") + "/7")
    url = server.start()
    yield url
    server.stop()


SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.ignored_auth,
]


def _call(base_url: str, path: str, method: str, **parts: Any) -> schemathesis.Response:
    """One scripted call, validated against the document like the generated ones."""
    case = SCHEMA[path][method].Case(**parts)
    response = case.call_and_validate(base_url=base_url, headers=AUTH, checks=CHECKS)
    assert response.status_code == 200, response.text
    return response


def test_live_replies_with_rows_conform(live_admin: str) -> None:
    """Replies full of rows (metadata, objects, cursors, counts) match the document too:
    generated calls mostly see empty lists and refusals."""
    entries, rows = "/admin/v1/lists/{list}/entries", {"list": "block"}
    added = _call(live_admin, entries, "POST", path_parameters=rows, body={
        "entries": ["+33612345678", {"entry": "+90850*", "channel": "voice"}, "junk"],
        "scope": "tenant:rows", "note": "why", "ttl_seconds": 3600}).json()
    assert (len(added["added"]), len(added["failed"])) == (2, 1)
    first = _call(live_admin, entries, "GET", path_parameters=rows,
                  query={"scope": "tenant:rows", "limit": 1}).json()
    assert first["next_cursor"] is not None
    assert first["entries"][0]["note"] == "why"
    last = _call(live_admin, entries, "GET", path_parameters=rows,
                 query={"scope": "tenant:rows", "cursor": first["next_cursor"]}).json()
    assert (len(last["entries"]), last["next_cursor"]) == (1, None)
    checked = _call(live_admin, "/admin/v1/check", "GET", query={
        "number": "+33612345678", "scope": ["tenant:rows"], "channel": "sms"}).json()
    assert checked["decision"] == "blocked"
    assert {m["scope"] for m in checked["matched"]} == {"global", "tenant:rows"}  # + seed
    imported = _call(live_admin, "/admin/v1/lists/{list}/import", "POST",
                     path_parameters={"list": "allow"},
                     query={"scope": "tenant:rows", "mode": "replace"},
                     body="entry,channel\n+33612345679,sms\nbad\n",
                     media_type="text/csv").json()
    assert (imported["size"], imported["failed"]) == (1, 1)
    exported = _call(live_admin, "/admin/v1/lists/{list}/export", "GET",
                     path_parameters={"list": "allow"}, query={"scope": "tenant:rows"})
    assert "+33612345679,sms,import" in exported.text
    page = _call(live_admin, "/admin/v1/attempts", "GET", query={"limit": 2}).json()
    assert len(page["attempts"]) == 2
    assert page["next_cursor"] is not None
    summary = _call(live_admin, "/admin/v1/attempts/summary", "GET").json()
    assert summary["total"] >= 3
    assert summary["by_entry"]
    removed = _call(live_admin, entries, "DELETE", path_parameters=rows, body={
        "entries": ["+33612345678", {"entry": "+90850*", "channel": "voice"},
                    "+33699999999"], "scope": "tenant:rows"}).json()
    assert (len(removed["removed"]), len(removed["missing"])) == (2, 1)


@SCHEMA.parametrize()
@settings(max_examples=50, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_live_server_conforms(case: schemathesis.Case[Any], live_admin: str) -> None:
    """Generated calls (valid and invalid) get documented statuses, bodies and types,
    and never a server error."""
    response = case.call_and_validate(base_url=live_admin, headers=AUTH, checks=CHECKS)
    assert response.status_code < 500


def test_live_server_serves_the_document(live_admin: str) -> None:
    """The live listener serves the same document over real HTTP (no key)."""
    resp = requests.get(live_admin + SPEC, timeout=10)
    assert resp.status_code == 200
    assert resp.json() == DOCUMENT
    assert ADMIN_KEY not in resp.text

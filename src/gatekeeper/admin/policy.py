"""`/admin/v1/policy`: the policy rules in force, and changing them live.

`PUT` stores a whole `policy:` section (as JSON) after validating it exactly as the
config file's; every process takes it up within `background_jobs.POLICY_POLL` seconds (this
one at once). `DELETE` goes back to the config's. Only a key with write access to every
scope (`*`) may change it: rules of one scope can refuse sends of every tenant.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gatekeeper.admin.auth import BadRequest, authorize, json_object
from gatekeeper.config import ConfigError
from gatekeeper.config.policy import policy_from_json
from gatekeeper.resources import RESOURCES
from gatekeeper.times import iso

# The largest policy document accepted (bytes of JSON).
MAX_DOCUMENT = 256 * 1024


def _no_query(request: web.Request) -> None:
    if request.query:
        raise BadRequest("invalid_query", f"Unknown parameter {sorted(request.query)[0]!r}.")


async def _shown(request: web.Request) -> dict[str, Any]:
    resources = request.app[RESOURCES]
    stored = await resources.store.policy_document()
    if stored is None or stored.doc is None:
        return {"source": "config", "version": stored.version if stored else 0,
                "policy": json.loads(resources.config.policy_json),
                **({"updated_by": stored.updated_by, "updated_at": iso(stored.updated_at)}
                   if stored else {})}
    return {"source": "admin", "version": stored.version, "policy": json.loads(stored.doc),
            "updated_by": stored.updated_by, "updated_at": iso(stored.updated_at)}


async def get_policy(request: web.Request) -> web.Response:
    """GET /policy: the policy in force (the config's, or the one set here)."""
    _no_query(request)
    authorize(request, "read", "*")
    return web.json_response(await _shown(request))


async def put_policy(request: web.Request) -> web.Response:
    """PUT /policy `{"policy": {...}}`: validate, store, and apply."""
    _no_query(request)
    key = authorize(request, "write", "*")
    body = await json_object(request, "Expected a JSON object: {\"policy\": {...}}.")
    if set(body) != {"policy"} or not isinstance(body["policy"], dict):
        raise BadRequest("invalid_body", "Expected a JSON object: {\"policy\": {...}}.")
    text = json.dumps(body["policy"], sort_keys=True)
    if len(text) > MAX_DOCUMENT:
        raise BadRequest("invalid_policy", f"A policy of at most {MAX_DOCUMENT} bytes.")
    try:
        policy_from_json(text)
    except ConfigError as exc:
        raise BadRequest("invalid_policy", str(exc)) from exc
    resources = request.app[RESOURCES]
    await resources.store.put_policy_document(text, key.name)
    await resources.refresh_policy()
    return web.json_response(await _shown(request))


async def delete_policy(request: web.Request) -> web.Response:
    """DELETE /policy: back to the config's policy."""
    _no_query(request)
    key = authorize(request, "write", "*")
    resources = request.app[RESOURCES]
    await resources.store.put_policy_document(None, key.name)
    await resources.refresh_policy()
    return web.json_response(await _shown(request))


def add_routes(app: web.Application) -> None:
    """Register the policy endpoints."""
    app.router.add_get("/policy", get_policy)
    app.router.add_put("/policy", put_policy)
    app.router.add_delete("/policy", delete_policy)

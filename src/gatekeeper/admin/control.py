"""`POST /admin/v1/reload`: read the config file again and apply it (as SIGHUP does).

Only a key with write access to every scope (`*`) may: a config names every tenant's
upstreams, keys and rules. The file is validated here first: an invalid file, or one
changing what needs a restart, is refused with the reason and nothing changes. One
process applies it at once (200); with `--workers N` the parent has every worker reload
itself from the file (202: each logs `config_reloaded`).
"""

from __future__ import annotations

from aiohttp import web

from gatekeeper.admin.auth import BadRequest, authorize
from gatekeeper.config import Config
from gatekeeper.observability import REQUEST_ID
from gatekeeper.replies import error_response
from gatekeeper.resources import RESOURCES


async def reload_config(request: web.Request) -> web.Response:
    """POST /reload: validate the config file, then apply it everywhere."""
    if request.query:
        raise BadRequest("invalid_query", f"Unknown parameter {sorted(request.query)[0]!r}.")
    authorize(request, "write", "*")
    reloader = request.app[RESOURCES].reloader
    request_id = request[REQUEST_ID]
    if reloader is None:
        return error_response(503, "reload_unavailable", "This process cannot reload "
                              "(it is not serving from a config file).", request_id)
    found = reloader.read()
    if not isinstance(found, Config):
        status, code = (409, "restart_required") if found.restart else \
            (422, "config_invalid")
        reloader.resources.metrics.config_reloads.labels("refused").inc()
        reloader.resources.log.error("config_reload_refused", origin="api",
                                     reason=found.reason, request_id=request_id)
        return error_response(status, code, found.reason, request_id)
    if reloader.fan_out is not None:
        reloader.fan_out()
        return web.json_response({"status": "reloading", "workers": reloader.workers},
                                 status=202)
    done = await reloader.reload("api")
    if not done.applied:  # the file changed again meanwhile
        return error_response(409 if done.restart else 422,
                              "restart_required" if done.restart else "config_invalid",
                              done.reason, request_id)
    return web.json_response({"status": "applied", "changed": list(done.changed)})


def add_routes(app: web.Application) -> None:
    """Register the reload endpoint."""
    app.router.add_post("/reload", reload_config)

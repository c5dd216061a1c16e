"""The admin listener: health, readiness, metrics and the admin APIs."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gatekeeper.admin import agent
from gatekeeper.admin.native import Handler, create_native_app
from gatekeeper.console import add_routes as add_console_routes
from gatekeeper.observability import REQUEST_ID, with_request_id
from gatekeeper.replies import error_response
from gatekeeper.resources import RESOURCES, Resources
from gatekeeper.store import StoreUnavailable

_HTTP_ERROR_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own errors (unknown path or list, wrong method, body too large) as JSON."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(exc.status, _HTTP_ERROR_CODES.get(exc.status, "http_error"),
                                  f"{exc.reason}: {request.method} {request.path}.",
                                  request.get(REQUEST_ID, ""))
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response


def store_unavailable(resources: Resources) -> Middleware:
    """A store fault that escaped an admin handler: 503 `store_unavailable`, logged and
    counted, so that no admin path answers 500 while the store is down."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except StoreUnavailable as exc:
            request_id = request.get(REQUEST_ID, "")
            resources.store_fault("admin", str(exc), request_id=request_id,
                                  method=request.method, path=request.path)
            return error_response(503, "store_unavailable", "The list store is unavailable.",
                                  request_id)

    return middleware


async def healthz(_request: web.Request) -> web.Response:
    """The process is up."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """The store answers (and the process is not stopping)."""
    resources = request.app[RESOURCES]
    if resources.drain.draining:
        return web.json_response({"status": "draining"}, status=503)
    if await resources.store.ping():
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "store_unavailable"}, status=503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition of the injected registry (or of every worker's metrics)."""
    # Reading the registry settles what this process counted first (`tally.Settler`).
    registry = request.app[RESOURCES].metrics.exposed
    return web.Response(body=generate_latest(registry),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_admin_app(resources: Resources) -> web.Application:
    """The admin listener's application."""
    app = web.Application(middlewares=[with_request_id, json_errors,
                                       store_unavailable(resources)])
    app[RESOURCES] = resources
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    agent.add_routes(app)
    add_console_routes(app)
    app.add_subapp("/admin/v1", create_native_app(resources))
    return app

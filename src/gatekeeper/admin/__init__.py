"""The admin listener: health, readiness, metrics and the admin APIs."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gatekeeper.admin.native import create_native_app
from gatekeeper.observability import with_request_id
from gatekeeper.resources import RESOURCES, Resources


async def healthz(_request: web.Request) -> web.Response:
    """The process is up."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """The store answers."""
    if await request.app[RESOURCES].store.ping():
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "store_unavailable"}, status=503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition of the injected registry."""
    registry = request.app[RESOURCES].metrics.registry
    return web.Response(body=generate_latest(registry),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_admin_app(resources: Resources) -> web.Application:
    """The admin listener's application."""
    app = web.Application(middlewares=[with_request_id])
    app[RESOURCES] = resources
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.add_subapp("/admin/v1", create_native_app(resources))
    return app

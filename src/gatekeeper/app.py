"""The composition root: builds the proxy and admin applications around shared resources."""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from gatekeeper.admin import create_admin_app
from gatekeeper.config import Config
from gatekeeper.observability import Metrics, observe
from gatekeeper.proxy import create_proxy_routes
from gatekeeper.resources import RESOURCES, Resources

ADMIN_APP = web.AppKey("admin_app", web.Application)


def create_app(config: Config, *, registry: CollectorRegistry | None = None,
               redis_client: Any | None = None) -> web.Application:
    """The proxy application; its admin application is `app[ADMIN_APP]`.

    Resources start with the proxy application (its `cleanup_ctx`), so start the proxy
    first and the admin application after it. `redis_client` replaces the configured
    store connection (tests pass fakeredis).
    """
    metrics = Metrics(registry or CollectorRegistry())
    logger = structlog.get_logger("gatekeeper")
    resources = Resources(config, metrics, logger, redis_client)
    app = web.Application(
        middlewares=[observe(metrics, logger, config.log.mask_numbers)],
        client_max_size=config.proxy.max_body_bytes,
    )
    app[RESOURCES] = resources
    app.cleanup_ctx.append(resources.lifespan)
    create_proxy_routes(app)
    app[ADMIN_APP] = create_admin_app(resources)
    return app

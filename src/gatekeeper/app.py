"""The composition root: builds the proxy and admin applications around shared resources."""

from __future__ import annotations

import ssl
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from gatekeeper.admin import create_admin_app
from gatekeeper.config import Config, TlsConfig
from gatekeeper.drain import tracked
from gatekeeper.inbound import create_inbound_routes
from gatekeeper.observability import Metrics, observe
from gatekeeper.providers import check_presets
from gatekeeper.proxy import create_proxy_routes
from gatekeeper.reload import Reloader
from gatekeeper.resources import RESOURCES, Resources
from gatekeeper.screener import Screener

ADMIN_APP = web.AppKey("admin_app", web.Application)


def tls_context(tls: TlsConfig) -> ssl.SSLContext:
    """A server TLS context for a listener (TLS 1.2 or newer)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.cert, tls.key)
    return context


def create_app(config: Config, *, registry: CollectorRegistry | None = None,
               redis_client: Any | None = None, housekeeping: bool = True,
               metrics_dir: str | None = None,
               logger: structlog.typing.FilteringBoundLogger | None = None
               ) -> web.Application:
    """The proxy application; its admin application is `app[ADMIN_APP]`.

    Resources start with the proxy application (its `cleanup_ctx`), so start the proxy
    first and the admin application after it. `redis_client` replaces the configured
    store connection (tests pass fakeredis). `housekeeping` runs the expiry sweeper (one
    worker of several is enough). `metrics_dir`: the workers' shared metrics files
    (`observability.share_metrics`), which /metrics then sums.
    """
    check_presets(config)
    metrics = Metrics(registry or CollectorRegistry(), metrics_dir)
    logger = logger or structlog.get_logger("gatekeeper")
    resources = Resources(config, metrics, logger, redis_client, housekeeping=housekeeping)
    app, admin = build_apps(resources)
    app.cleanup_ctx.append(resources.lifespan)
    resources.reloader = Reloader(resources, build_apps)
    app[ADMIN_APP] = admin
    return app


def build_apps(resources: Resources) -> tuple[web.Application, web.Application]:
    """The proxy and admin applications for the resources' current config (at start,
    and again on each reload: the resources, their store and pools, stay)."""
    config = resources.config
    app = web.Application(
        middlewares=[tracked(resources.drain),
                     observe(resources.metrics, resources.log, config.log.mask_numbers,
                             config.log.access)],
        client_max_size=config.proxy.max_body_bytes,
    )
    app[RESOURCES] = resources
    screener = Screener(resources)
    create_inbound_routes(app, screener)  # exact webhook paths before the catch-all
    create_proxy_routes(app, screener)
    return app, create_admin_app(resources)

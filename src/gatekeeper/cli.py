"""The `gatekeeper` command: run, config check, check NUMBER."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence

import structlog
from aiohttp import web

from gatekeeper.admin.native import explain
from gatekeeper.app import ADMIN_APP, create_app, tls_context
from gatekeeper.config import CHANNELS, Config, ConfigError, load_config
from gatekeeper.embedded import EmbeddedError, EmbeddedRedis, read_running
from gatekeeper.numbers import is_known_region, is_valid_scope
from gatekeeper.observability import configure_logging
from gatekeeper.providers.base import digest_of
from gatekeeper.store import Store, StoreIncompatible, StoreUnavailable, connect

EXIT_CONFIG = 2
EXIT_RUNTIME = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gatekeeper", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", help="config file (default: $GATEKEEPER_CONFIG, "
                       "else ./config.yaml)")
        return p

    with_config(commands.add_parser("run", help="run the proxy and admin listeners"))
    config = commands.add_parser("config", help="configuration commands")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    with_config(config_commands.add_parser("check", help="validate the configuration"))
    check = with_config(commands.add_parser("check", help="print the decision for a number"))
    check.add_argument("number")
    check.add_argument("--scope", action="append", default=[],
                       help="an extra scope (repeatable); global always applies")
    check.add_argument("--channel", choices=CHANNELS)
    check.add_argument("--region", help="region for national-format numbers, e.g. TR")
    commands.add_parser(
        "digest", help="print sha256:<hex> of a token read from stdin, for "
        "upstreams[].credentials (so tokens never sit in the config in clear)")
    return parser


async def _serve(config: Config) -> None:
    log = structlog.get_logger("gatekeeper")
    app = create_app(config)
    proxy_runner = web.AppRunner(app, access_log=None, handle_signals=False)
    admin_runner = web.AppRunner(app[ADMIN_APP], access_log=None, handle_signals=False)
    await proxy_runner.setup()  # starts the resources (and the embedded store)
    try:
        await admin_runner.setup()
        proxy, admin = config.proxy.listen, config.admin.listen
        proxy_tls = tls_context(config.proxy.tls) if config.proxy.tls else None
        await web.TCPSite(proxy_runner, proxy.host, proxy.port, ssl_context=proxy_tls).start()
        await web.TCPSite(admin_runner, admin.host, admin.port).start()
        if config.admin.key is None:
            log.warning("admin_key_missing", message="the admin list API refuses every call "
                        f"until a key is set ({config.admin.key_source})")
        scheme = "https" if proxy_tls else "http"
        log.info("gatekeeper_started", proxy=f"{scheme}://{proxy.host}:{proxy.port}",
                 admin=f"http://{admin.host}:{admin.port}",
                 mounts={u.mount: u.url for u in config.upstreams}, config=config.source)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("gatekeeper_stopping")
    finally:
        await admin_runner.cleanup()
        await proxy_runner.cleanup()


async def _check(config: Config, number: str, scopes: list[str], channel: str | None,
                 region: str | None) -> dict[str, object] | None:
    embedded: EmbeddedRedis | None = None
    url = config.redis.url
    if config.redis.embedded:
        running = read_running(config.redis.data_dir)
        if running is None:
            embedded = EmbeddedRedis(config.redis.data_dir, config.redis.server_binary)
            running = embedded.start()
        url = running.url
    store = Store(connect(config.redis, url), config.redis, config.store)
    try:
        await store.prepare()
        result = await explain(store, number, scopes, region, channel)  # type: ignore[arg-type]
    finally:
        await store.close()
        if embedded is not None:
            embedded.stop()
    if result is not None and channel is not None:
        result["channel"] = channel
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `gatekeeper` command."""
    args = _parser().parse_args(argv)
    if args.command == "digest":
        token = sys.stdin.readline().strip()
        if not token:
            print("gatekeeper: give the token on stdin", file=sys.stderr)
            return EXIT_CONFIG
        print(digest_of(token))
        return 0
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"gatekeeper: invalid configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "config":
        print(f"{config.source}: OK ({len(config.upstreams)} upstreams)")
        return 0
    try:
        if args.command == "run":
            configure_logging(config.log)
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(_serve(config))
            return 0
        bad = [s for s in args.scope if not is_valid_scope(s)]
        if bad:
            print(f"gatekeeper: invalid scope {bad[0]!r}: expected 'global' or 'kind:id'",
                  file=sys.stderr)
            return EXIT_CONFIG
        region = args.region.upper() if args.region else None
        if region is not None and not is_known_region(region):
            print(f"gatekeeper: unknown region {args.region!r}", file=sys.stderr)
            return EXIT_CONFIG
        configure_logging(config.log, sys.stderr)
        result = asyncio.run(_check(config, args.number, args.scope, args.channel, region))
    except (EmbeddedError, StoreUnavailable, StoreIncompatible, OSError) as exc:
        print(f"gatekeeper: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    if result is None:
        print(f"gatekeeper: not a phone number: {args.number!r}", file=sys.stderr)
        return EXIT_CONFIG
    print(json.dumps(result, indent=2))
    return 0

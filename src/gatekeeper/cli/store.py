"""The configured store as the commands open it (embedded or external), and
`gatekeeper store migrate`."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import replace

from gatekeeper import redis_url
from gatekeeper.cli.exits import EXIT_RUNTIME, UsageError
from gatekeeper.config import Config
from gatekeeper.embedded import EmbeddedRedis, read_running
from gatekeeper.migrate import Copied, migrate
from gatekeeper.store import Store, connect


async def migrate_store(config: Config, url: str) -> int:
    """Copy every list to the store at `url`; 0 when every count matches."""
    try:
        topology = redis_url.parse(url)
    except ValueError as exc:
        raise UsageError(f"--to {redis_url.redacted(url)}: {exc}") from None
    target_config = replace(config.redis, url=url)
    failed = 0

    def seen(done: Copied) -> None:
        nonlocal failed
        failed += not done.ok
        mark = "" if done.ok else "  MISMATCH"
        print(f"{done.name} {done.scope}: {done.source_count:,} entries -> "
              f"{done.target_count:,}{mark}", file=sys.stderr)

    async with open_store(config) as source:
        target = Store(connect(target_config), target_config, config.store, url)
        try:
            await target.prepare()
            copied = await migrate(source, target, seen)
        finally:
            await target.close()
    print(f"copied {len(copied)} lists to a {topology.kind} store; "
          f"{failed} with a different count", file=sys.stderr)
    return EXIT_RUNTIME if failed else 0


@contextlib.asynccontextmanager
async def open_store(config: Config) -> AsyncIterator[Store]:
    """The configured store: a running embedded server (embedded.json) if there is one,
    else one started for the call and stopped after it."""
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
        yield store
    finally:
        await store.close()
        if embedded is not None:
            embedded.stop()

"""The `gatekeeper` command: run, config check, check NUMBER, lists import|export."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import resource
import sys
from collections.abc import Sequence
from dataclasses import replace

import aiohttp
import redis

from gatekeeper import __version__
from gatekeeper.admin.explain import Asked, explain
from gatekeeper.bulk import MODES
from gatekeeper.bulk_fast import FORMAT_OPTIONS
from gatekeeper.cli.exits import EXIT_CONFIG as EXIT_CONFIG
from gatekeeper.cli.exits import EXIT_INTERRUPTED as EXIT_INTERRUPTED
from gatekeeper.cli.exits import EXIT_RUNTIME as EXIT_RUNTIME
from gatekeeper.cli.exits import UsageError as UsageError
from gatekeeper.cli.lists import CLI_KEY_NAME as CLI_KEY_NAME
from gatekeeper.cli.lists import ProgressBar as ProgressBar
from gatekeeper.cli.lists import lists_command
from gatekeeper.cli.store import migrate_store, open_store
from gatekeeper.config import Config, ConfigError, load_config
from gatekeeper.config.policy import policy_from_json
from gatekeeper.config.warnings import config_warnings
from gatekeeper.embedded import EmbeddedError
from gatekeeper.fdlimit import fd_need
from gatekeeper.numbers import is_known_region, is_valid_scope
from gatekeeper.observability import configure_logging
from gatekeeper.policy import LISTS
from gatekeeper.providers import check_presets
from gatekeeper.providers.credentials import digest_of
from gatekeeper.rules import INTENTS
from gatekeeper.serve import hold_sighup, run_loop, serve
from gatekeeper.simulate import report, simulate
from gatekeeper.store import StoreIncompatible, StoreUnavailable
from gatekeeper.types import CHANNELS
from gatekeeper.workers import Pool


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gatekeeper", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", help="config file (default: $GATEKEEPER_CONFIG, "
                       "else ./config.yaml)")
        return p

    run = with_config(commands.add_parser("run", help="run the proxy and admin listeners"))
    run.add_argument("--workers", type=int, default=1,
                     help="proxy processes sharing the port (SO_REUSEPORT); default 1")
    policy = commands.add_parser("policy", help="policy rule commands")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    replay = with_config(policy_commands.add_parser(
        "simulate", help="replay a CSV of past sends (number,time[,channel,scope,intent]) "
        "against the configured policy rules; print what they would have blocked"))
    replay.add_argument("file", help="the CSV file, or - for stdin")
    replay.add_argument("--region", help="region for national-format numbers, e.g. US")
    replay.add_argument("--json", action="store_true", help="print the tally as JSON")
    config = commands.add_parser("config", help="configuration commands")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    config_check = with_config(config_commands.add_parser(
        "check", help="validate the configuration and print warnings (exit 0 with "
        "warnings, 2 when invalid)"))
    config_check.add_argument(
        "--stop-timeout", type=float, metavar="SECONDS",
        help="the seconds the service manager gives a stop (systemd TimeoutStopSec=, "
        "a container's stop grace period): warn when shorter than what a stop can take")
    commands.add_parser("version", help="print the version (and of Python and the main "
                        "libraries)")
    check = with_config(commands.add_parser("check", help="print the decision for a number"))
    check.add_argument("number")
    check.add_argument("--scope", action="append", default=[],
                       help="an extra scope (repeatable); global always applies")
    check.add_argument("--channel", choices=CHANNELS)
    check.add_argument("--region", help="region for national-format numbers, e.g. TR")
    check.add_argument("--intent", choices=INTENTS, default="marketing",
                       help="the send's intent: which policy rules apply (default marketing)")
    check.add_argument("--at", help="judge at this instant: ISO 8601 with its offset, or "
                       "HH:MM in the recipient's local time (default now)")
    commands.add_parser(
        "digest", help="print sha256:<hex> of a token read from stdin, for "
        "upstreams[].credentials (so tokens never sit in the config in clear)")
    lists = commands.add_parser("lists", help="bulk list commands, straight on the store")
    lists_commands = lists.add_subparsers(dest="lists_command", required=True)
    load = with_config(lists_commands.add_parser(
        "import", help="load entries from a file: one per line, or CSV (entry[,channel])"))
    load.add_argument("file", help="the file to import, or - for stdin")
    load.add_argument("--list", dest="list_name", choices=LISTS, required=True)
    load.add_argument("--scope", required=True, help="'global' or 'kind:id'")
    load.add_argument("--mode", choices=MODES, default="add",
                      help="add to the list (default), or replace it whole, atomically")
    load.add_argument("--channel", choices=(*CHANNELS, "both"), default="both",
                      help="channel of lines without a channel column (default both)")
    load.add_argument("--note", help="a note kept with every imported entry")
    load.add_argument("--ttl-seconds", type=int, help="imported entries expire after this")
    load.add_argument("--expires-at", help="imported entries expire then (ISO 8601 or "
                      "epoch seconds)")
    load.add_argument("--region", help="region for national-format numbers, e.g. TR")
    load.add_argument("--origin", help="where the data comes from, kept as the list's "
                      "origin (default: the file's name)")
    load.add_argument("--as-of", help="the date the data is as of (ISO 8601 or epoch "
                      "seconds; default: now): the list's age counts from it")
    load.add_argument("--max-age-days", type=float,
                      help="the list is stale this many days after --as-of (default: the "
                      "config's lists.<scope>.max_age_days)")
    load.add_argument("--format", choices=FORMAT_OPTIONS, default="auto",
                      help="auto (default) detects US DNC full/change files, UK TPS files "
                      "and plain E.164 lists; others are read as plain/CSV/export")
    load.add_argument("--priority", choices=("idle", "normal"),
                      help="CPU priority: idle (Linux SCHED_IDLE: the import only takes CPU "
                      "time nothing else wants, so a proxy on the same machine keeps its "
                      "latency) or normal; default: the config's store.import_priority "
                      "(idle). Asked for here, a priority the system refuses stops the "
                      "import; from the config, it goes on at normal priority, saying so")
    load.add_argument("--idle", dest="priority", action="store_const", const="idle",
                      help="the same as --priority idle")
    load.add_argument("--allow-empty", action="store_true",
                      help="with --mode replace: a file without any entry empties the list "
                      "(refused otherwise)")
    dump = with_config(lists_commands.add_parser("export", help="write a list as CSV"))
    dump.add_argument("--list", dest="list_name", choices=LISTS, required=True)
    dump.add_argument("--scope", required=True, help="'global' or 'kind:id'")
    dump.add_argument("--output", help="file to write (default: stdout)")
    store = commands.add_parser("store", help="store commands")
    store_commands = store.add_subparsers(dest="store_command", required=True)
    move = with_config(store_commands.add_parser(
        "migrate", help="copy every list of the configured store into the store at --to "
        "(e.g. a Redis Cluster), each list replaced whole there"))
    move.add_argument("--to", required=True, metavar="URL",
                      help="the target store: redis://, rediss://, unix://, "
                      "redis+cluster:// or redis+sentinel:// (rediss+... over TLS)")
    return parser


async def _check(config: Config, number: str, scopes: list[str], channel: str | None,
                 region: str | None, asked: Asked) -> dict[str, object] | None:
    async with open_store(config) as store:
        stored = await store.policy_document()
        if stored is not None and stored.doc is not None:  # set through the admin API
            asked = replace(asked, policy=policy_from_json(stored.doc))
        result = await explain(store, number, scopes, region,
                               channel, asked)  # type: ignore[arg-type]
    if result is not None and channel is not None:
        result["channel"] = channel
    return result


def _simulate(config: Config, file: str, region: str | None, as_json: bool) -> int:
    """`gatekeeper policy simulate`: exit 0 with the tally, 2 on an unusable file."""
    if region is not None and not is_known_region(region.upper()):
        print(f"gatekeeper: unknown region {region!r}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        source = sys.stdin if file == "-" else open(file, encoding="utf-8-sig",  # noqa: SIM115
                                                    newline="")
    except OSError as exc:
        print(f"gatekeeper: cannot read {file}: {exc.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        with source:
            tally = simulate(source, config.policy, region.upper() if region else None)
    except (ValueError, UnicodeDecodeError) as exc:
        print(f"gatekeeper: {file}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(json.dumps(tally.as_dict(), indent=2) if as_json else report(tally))
    return 0


def version_text() -> str:
    """`gatekeeper version`: this package's version and what it runs on."""
    return (f"gatekeeper {__version__} (Python {platform.python_version()}, aiohttp "
            f"{aiohttp.__version__}, redis-py {redis.__version__})")


def _config_check(config: Config, stop_timeout: float | None) -> int:
    """`gatekeeper config check`: OK, then one line per warning (on stderr)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    found = config_warnings(config, stop_timeout=stop_timeout,
                            open_files=-1 if soft == resource.RLIM_INFINITY else soft,
                            open_files_needed=fd_need(config))
    print(f"{config.source}: OK ({len(config.upstreams)} upstreams, {len(found)} "
          f"warning{'' if len(found) == 1 else 's'}; a stop takes at most "
          f"{config.stop_seconds:g} s)")
    for warning in found:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `gatekeeper` command."""
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(version_text())
        return 0
    if args.command == "digest":
        token = sys.stdin.readline().strip()
        if not token:
            print("gatekeeper: give the token on stdin", file=sys.stderr)
            return EXIT_CONFIG
        print(digest_of(token))
        return 0
    try:
        config = check_presets(load_config(args.config))
    except ConfigError as exc:
        print(f"gatekeeper: invalid configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "config":
        return _config_check(config, args.stop_timeout)
    try:
        if args.command == "run":
            if args.workers < 1:
                print("gatekeeper: --workers must be at least 1", file=sys.stderr)
                return EXIT_CONFIG
            configure_logging(config.log)
            if args.workers > 1:
                return Pool(config, args.workers).run()
            hold_sighup()
            with contextlib.suppress(KeyboardInterrupt):
                run_loop(serve(config))
            return 0
        if args.command == "lists":
            return lists_command(config, args)
        if args.command == "store":
            configure_logging(config.log, sys.stderr)
            return asyncio.run(migrate_store(config, args.to))
        if args.command == "policy":
            return _simulate(config, args.file, args.region, args.json)
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
        result = asyncio.run(_check(config, args.number, args.scope, args.channel, region,
                                    Asked(config.policy, args.intent, args.at)))
    except ValueError as exc:  # an unusable --at
        print(f"gatekeeper: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except UsageError as exc:
        print(f"gatekeeper: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (EmbeddedError, StoreUnavailable, StoreIncompatible, OSError) as exc:
        print(f"gatekeeper: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    if result is None:
        print(f"gatekeeper: not a phone number: {args.number!r}", file=sys.stderr)
        return EXIT_CONFIG
    print(json.dumps(result, indent=2))
    return 0

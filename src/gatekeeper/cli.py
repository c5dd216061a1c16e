"""The `gatekeeper` command: run, config check, check NUMBER, lists import|export."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, TextIO, cast

import aiohttp
import redis
import structlog

from gatekeeper import __version__, redis_url
from gatekeeper.admin.explain import Asked, explain
from gatekeeper.bulk import (
    MODES,
    ChangeFileReplace,
    EmptyImport,
    Importer,
    ImportOptions,
    ImportRefused,
    ImportReport,
    MetadataConflict,
    NoValidEntries,
    expiry_from,
    export_csv,
)
from gatekeeper.bulk_fast import FORMAT_OPTIONS
from gatekeeper.config import Config, ConfigError, load_config
from gatekeeper.config.policy import policy_from_json
from gatekeeper.config.warnings import config_warnings
from gatekeeper.embedded import EmbeddedError, EmbeddedRedis, read_running
from gatekeeper.fdlimit import fd_need
from gatekeeper.freshness import DAY
from gatekeeper.migrate import Copied, migrate
from gatekeeper.numbers import is_known_region, is_valid_scope
from gatekeeper.observability import configure_logging
from gatekeeper.policy import LISTS, ListName
from gatekeeper.providers import check_presets
from gatekeeper.providers.credentials import digest_of
from gatekeeper.rules import INTENTS
from gatekeeper.serve import hold_sighup, run_loop, serve
from gatekeeper.simulate import report, simulate
from gatekeeper.store import MAX_NOTE, Store, StoreIncompatible, StoreUnavailable, connect
from gatekeeper.times import parse_instant
from gatekeeper.types import CHANNELS, Channel
from gatekeeper.workers import Pool

EXIT_CONFIG = 2
EXIT_RUNTIME = 1
EXIT_INTERRUPTED = 130
CLI_KEY_NAME = "cli"  # who the audit log names for list changes made from the command line
READ_CHUNK = 256 * 1024
PROGRESS_INTERVAL = 0.25


class UsageError(Exception):
    """A bad argument found after parsing (exit 2, message on stderr)."""


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


async def _migrate(config: Config, url: str) -> int:
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

    async with _open_store(config) as source:
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
async def _open_store(config: Config) -> AsyncIterator[Store]:
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


async def _check(config: Config, number: str, scopes: list[str], channel: str | None,
                 region: str | None, asked: Asked) -> dict[str, object] | None:
    async with _open_store(config) as store:
        stored = await store.policy_document()
        if stored is not None and stored.doc is not None:  # set through the admin API
            asked = replace(asked, policy=policy_from_json(stored.doc))
        result = await explain(store, number, scopes, region,
                               channel, asked)  # type: ignore[arg-type]
    if result is not None and channel is not None:
        result["channel"] = channel
    return result


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover - the loop always returns


class ProgressBar:
    """Progress on stderr: rewritten in place with `\r` a few times a second when it is a
    terminal, nothing until the final summary line otherwise."""

    def __init__(self, stream: TextIO, total_bytes: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._total = total_bytes
        self._tty = stream.isatty()
        self._clock = clock
        self._started = clock()
        self._shown = 0.0
        self._width = 0

    @property
    def elapsed(self) -> float:
        """Seconds since the start."""
        return self._clock() - self._started

    def rate(self, count: int) -> float:
        """`count` per second since the start."""
        return count / max(self.elapsed, 1e-6)

    def update(self, count: int, unit: str, done_bytes: int | None = None) -> None:
        """Show `count` units done (and bytes done of the total), at most every 0.25 s."""
        now = self._clock()
        if not self._tty or now - self._shown < PROGRESS_INTERVAL:
            return
        self._shown = now
        parts = [f"{count:,} {unit}"]
        if done_bytes is not None:
            if self._total:
                parts.append(f"{_size(done_bytes)} of {_size(self._total)} "
                             f"({min(100.0, 100 * done_bytes / self._total):.0f}%)")
            else:
                parts.append(_size(done_bytes))
        parts.append(f"{self.rate(count):,.0f} {unit}/s")
        self._show("  ".join(parts))

    def _show(self, text: str) -> None:
        # Padding wipes what a longer previous line left behind.
        self._stream.write("\r" + text.ljust(self._width))
        self._stream.flush()
        self._width = len(text)

    def finish(self, summary: str) -> None:
        """Replace the bar by a final summary line (always written)."""
        if self._tty and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
        self._stream.write(summary + "\n")
        self._stream.flush()


async def _file_chunks(stream: BinaryIO) -> AsyncIterator[bytes]:
    # Read in a thread, so the file is read while the store writes the last batch.
    while chunk := await asyncio.to_thread(stream.read, READ_CHUNK):
        yield chunk


def _audit(report: ImportReport, outcome: str, **extra: object) -> None:
    structlog.get_logger("gatekeeper").info(
        "list_changed", key_name=CLI_KEY_NAME, outcome=outcome, **report.audit(), **extra)


async def _import(config: Config, options: ImportOptions, stream: BinaryIO,
                  total: int | None, report: ImportReport) -> None:
    """Run the import, counting into `report` (kept by the caller, also on failure)."""
    bar = ProgressBar(sys.stderr, total)
    async with _open_store(config) as store:
        importer = Importer(store, options, on_progress=lambda r: bar.update(
            r.lines, "lines", r.bytes), report=report)
        try:
            await importer.run(_file_chunks(stream))
        except BaseException as exc:
            bar.finish(f"import stopped after {report.lines:,} lines: "
                       f"{exc or type(exc).__name__}")
            _audit(report, "refused" if isinstance(exc, ImportRefused) else "aborted",
                   error=str(exc) or type(exc).__name__)
            raise
    outcome = f", list size {report.size:,}" if report.size is not None else ""
    if getattr(os, "sched_getscheduler", None) and os.sched_getscheduler(0) == os.SCHED_IDLE:
        outcome += ", at idle priority"
    bar.finish(f"imported {report.lines:,} lines ({_size(report.bytes)}) into "
               f"{options.name} {options.scope} ({options.mode}): {report.added:,} added, "
               f"{report.existing:,} existing, {report.failed:,} failed{outcome}; "
               f"{bar.elapsed:.1f} s, {bar.rate(report.lines):,.0f} lines/s")
    _audit(report, "applied")


async def _export(config: Config, name: ListName, scope: str, out: BinaryIO) -> int:
    bar = ProgressBar(sys.stderr)
    rows = 0

    def seen(count: int) -> None:
        nonlocal rows
        rows = count
        bar.update(count, "rows")

    async with _open_store(config) as store:
        async for chunk in export_csv(store, name, scope, on_rows=seen):
            await asyncio.to_thread(out.write, chunk)
    bar.finish(f"exported {rows:,} rows of {name} {scope}; {bar.elapsed:.1f} s")
    return rows


def _import_options(args: argparse.Namespace) -> ImportOptions:
    region = args.region.upper() if args.region else None
    if region is not None and not is_known_region(region):
        raise UsageError(f"unknown region {args.region!r}")
    if args.note is not None and len(args.note) > MAX_NOTE:
        raise UsageError(f"--note is longer than {MAX_NOTE} characters")
    try:
        expires_at = expiry_from(args.ttl_seconds, args.expires_at)
    except ValueError as exc:
        raise UsageError(str(exc).replace("'ttl_seconds'", "--ttl-seconds")
                         .replace("'expires_at'", "--expires-at")) from exc
    if args.allow_empty and args.mode != "replace":
        raise UsageError("--allow-empty applies to --mode replace only")
    channel = None if args.channel == "both" else cast(Channel, args.channel)
    as_of = None
    if args.as_of is not None:
        as_of = parse_instant(args.as_of)
        if as_of is None or as_of > time.time() + DAY:
            raise UsageError(f"--as-of {args.as_of!r}: expected a date or instant (ISO 8601 "
                             "or epoch seconds), not in the future")
    if args.max_age_days is not None and not 0 < args.max_age_days < 100_000:
        raise UsageError("--max-age-days must be a positive number")
    origin = args.origin or (None if args.file == "-" else os.path.basename(args.file))
    return ImportOptions(name=args.list_name, scope=args.scope, mode=args.mode,
                         added_by=CLI_KEY_NAME, note=args.note or None,
                         expires_at=expires_at, region=region, channel=channel,
                         allow_empty=args.allow_empty, format=args.format,
                         origin=origin, as_of=as_of, max_age_days=args.max_age_days)


def _import_priority(asked: str | None, configured: str) -> None:
    """SCHED_IDLE for this process (its threads started later inherit it) unless normal
    priority is asked for: it runs only when a CPU has nothing else to run. A proxy's
    latency during a large import on the same machine is what it protects (README,
    National-scale lists). Refused by the system: a usage error when asked for on the
    command line; from the config, a note and normal priority."""
    if (asked or configured) != "idle":
        return
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError) as exc:
        if asked:
            raise UsageError(f"--priority idle: cannot run at idle priority here ({exc})"
                             ) from exc
        print(f"gatekeeper: cannot run at idle priority here ({exc}); importing at "
              "normal priority (store.import_priority)", file=sys.stderr)


def _lists(config: Config, args: argparse.Namespace) -> int:
    """`lists import` and `lists export`."""
    if not is_valid_scope(args.scope):
        raise UsageError(f"invalid scope {args.scope!r}: expected 'global' or 'kind:id'")
    configure_logging(config.log, sys.stderr)
    if args.lists_command == "export":
        if args.output is None:
            asyncio.run(_export(config, args.list_name, args.scope, sys.stdout.buffer))
            sys.stdout.flush()
            return 0
        # Written beside the target and renamed at the end: never a truncated file.
        target = Path(args.output)
        partial = target.with_name(target.name + ".part")
        try:
            with partial.open("wb") as out:
                rows = asyncio.run(_export(config, args.list_name, args.scope, out))
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        print(json.dumps({"list": args.list_name, "scope": args.scope, "rows": rows,
                          "output": str(target)}))
        return 0
    options = _import_options(args)
    _import_priority(args.priority, config.store.import_priority)
    try:
        stream = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}") from exc
    report = ImportReport(options.mode, options.scope, options.name)
    with stream:
        total = None if args.file == "-" else os.fstat(stream.fileno()).st_size
        try:
            asyncio.run(_import(config, options, stream, total, report))
        except KeyboardInterrupt:
            print("gatekeeper: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except NoValidEntries as exc:
            # The report still goes to stdout: its failures say what was wrong.
            print(json.dumps(report.to_json(), indent=2))
            print(f"gatekeeper: import refused, the list was left as it was: {exc}",
                  file=sys.stderr)
            return EXIT_RUNTIME
        except EmptyImport as exc:
            print(json.dumps(report.to_json(), indent=2))
            print(f"gatekeeper: import refused, the list was left as it was: {exc}; "
                  "replacing the list by it would empty it: give --allow-empty to do that",
                  file=sys.stderr)
            return EXIT_CONFIG
        except ChangeFileReplace as exc:
            raise UsageError(f"import refused, the list was left as it was: {exc}") from exc
        except MetadataConflict as exc:
            raise UsageError(f"import refused: {exc} (drop --note, --ttl-seconds and "
                             "--expires-at)") from exc
    print(json.dumps(report.to_json(), indent=2))
    return 0


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
            return _lists(config, args)
        if args.command == "store":
            configure_logging(config.log, sys.stderr)
            return asyncio.run(_migrate(config, args.to))
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

"""`gatekeeper lists import|export`: straight on the configured store, with a progress
bar on stderr, the summary JSON on stdout and an audit event naming `cli`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO, TextIO, cast

import structlog

from gatekeeper.bulk import (
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
from gatekeeper.cli.exits import EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_RUNTIME, UsageError
from gatekeeper.cli.store import open_store
from gatekeeper.config import Config
from gatekeeper.freshness import DAY
from gatekeeper.numbers import is_known_region, is_valid_scope
from gatekeeper.observability import configure_logging
from gatekeeper.policy import ListName
from gatekeeper.store import MAX_NOTE
from gatekeeper.times import parse_instant
from gatekeeper.types import Channel

CLI_KEY_NAME = "cli"  # who the audit log names for list changes made from the command line
READ_CHUNK = 256 * 1024
PROGRESS_INTERVAL = 0.25


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
    async with open_store(config) as store:
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

    async with open_store(config) as store:
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


def lists_command(config: Config, args: argparse.Namespace) -> int:
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

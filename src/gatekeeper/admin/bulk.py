"""Bulk list import and export over the admin API, streamed both ways.

`POST /lists/{list}/import` reads its body incrementally (`request.content`), so the
listener's client_max_size, which only bounds bodies read whole, does not limit it and
memory stays bounded whatever its size. `GET /lists/{list}/export` streams CSV with
chunked transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import zlib
from collections.abc import AsyncIterator
from typing import cast

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gatekeeper.admin.auth import BadRequest, authorize
from gatekeeper.admin.params import region_param, scope_param
from gatekeeper.bulk import (
    MODES,
    ChangeFileReplace,
    EmptyImport,
    Importer,
    ImportOptions,
    MetadataConflict,
    NoValidEntries,
    expiry_from,
    export_csv,
)
from gatekeeper.bulk_child import (
    ChildImport,
    ImportChildFailed,
    Job,
    Outcome,
    copy_report,
    replay,
    split_head,
)
from gatekeeper.bulk_fast import FORMAT_OPTIONS
from gatekeeper.freshness import DAY
from gatekeeper.observability import REQUEST_ID
from gatekeeper.policy import ListName
from gatekeeper.replies import error_response
from gatekeeper.resources import RESOURCES
from gatekeeper.store import MAX_NOTE, StoreUnavailable
from gatekeeper.times import parse_instant
from gatekeeper.types import CHANNELS, Channel

READ_CHUNK = 64 * 1024
_IMPORT_PARAMS = frozenset({"scope", "mode", "note", "ttl_seconds", "expires_at", "region",
                            "channel", "allow_empty", "format", "origin", "as_of",
                            "max_age_days"})
_BOOLEANS = {"true": True, "false": False}
_EXPORT_PARAMS = frozenset({"scope"})


def _checked_query(request: web.Request, known: frozenset[str]) -> None:
    # A mistyped parameter (`mdoe=replace`) must not silently import in another mode.
    unknown = sorted(set(request.query) - known)
    if unknown:
        raise BadRequest("invalid_query", f"Unknown parameter {unknown[0]!r}.")


def _options(request: web.Request, scope: str) -> ImportOptions:
    """The import's parameters, all from the query string (the body is the data)."""
    query = request.query
    mode = query.get("mode", "add")
    if mode not in MODES:
        raise BadRequest("invalid_query", "'mode' must be add or replace.")
    note = query.get("note") or None
    if note is not None and len(note) > MAX_NOTE:
        raise BadRequest("invalid_query", f"'note' must be at most {MAX_NOTE} characters.")
    region = region_param(query.get("region"))
    channel = query.get("channel", "both")
    if channel not in (*CHANNELS, "both"):
        raise BadRequest("invalid_channel", "'channel' must be sms, voice or both.")
    try:
        expires_at = expiry_from(query.get("ttl_seconds"), query.get("expires_at"))
    except ValueError as exc:
        raise BadRequest("invalid_query", str(exc).capitalize() + ".") from exc
    allow_empty = _BOOLEANS.get(query.get("allow_empty", "false").lower())
    if allow_empty is None:
        raise BadRequest("invalid_query", "'allow_empty' must be true or false.")
    if allow_empty and mode != "replace":
        # Only a replace can empty a list: asked of an add, it is a mistaken mode.
        raise BadRequest("invalid_query", "'allow_empty' applies to mode=replace only.")
    fmt = query.get("format", "auto")
    if fmt not in FORMAT_OPTIONS:
        raise BadRequest("invalid_query", f"'format' must be one of "
                         f"{', '.join(FORMAT_OPTIONS)}.")
    origin = query.get("origin") or None
    if origin is not None and len(origin) > MAX_NOTE:
        raise BadRequest("invalid_query", f"'origin' must be at most {MAX_NOTE} characters.")
    as_of = None
    if "as_of" in query:
        as_of = parse_instant(query["as_of"])
        if as_of is None or as_of > time.time() + DAY:
            raise BadRequest("invalid_query", "'as_of' must be a date or instant (ISO 8601 "
                             "or epoch seconds), not in the future.")
    max_age = None
    if "max_age_days" in query:
        try:
            max_age = float(query["max_age_days"])
        except ValueError:
            max_age = 0.0
        if not 0 < max_age < 100_000:
            raise BadRequest("invalid_query", "'max_age_days' must be a positive number.")
    return ImportOptions(
        name=cast(ListName, request.match_info["list"]), scope=scope, mode=mode,
        note=note, expires_at=expires_at, region=region,
        channel=None if channel == "both" else cast(Channel, channel),
        allow_empty=allow_empty, format=fmt, origin=origin, as_of=as_of,
        max_age_days=max_age)


async def import_list(request: web.Request) -> web.Response:
    """POST /lists/{list}/import?scope=&mode=add|replace: load the body's entries."""
    _checked_query(request, _IMPORT_PARAMS)
    scope = scope_param(request.query.get("scope", "global"))
    options = _options(request, scope)
    key = authorize(request, "write", scope)  # before a byte of the body is read
    resources = request.app[RESOURCES]
    options = dataclasses.replace(options, added_by=key.name)
    importer = Importer(resources.store, options)
    report = importer.report

    def audit(outcome: str, **extra: object) -> None:
        # A failed add keeps what it loaded; a failed replace changed nothing.
        resources.log.info("list_changed", key_name=key.name, outcome=outcome,
                           **report.audit(), **extra)

    def late(ended: Outcome | BaseException) -> None:
        # This request was cancelled (a shutdown) once the child had the whole body.
        if isinstance(ended, Outcome):
            copy_report(report, ended.report)
            audit("applied" if ended.ended == "ok" else ended.ended,
                  error=ended.message or None, request="cancelled")
        else:
            audit("aborted", error=str(ended) or type(ended).__name__, request="cancelled")

    child: ChildImport | None = None

    try:
        # A large body is parsed by a child process (bulk_child.py), so that the sends
        # this process serves do not wait behind it; a small one here. A store reached
        # through a client passed in (no URL: tests on fakeredis) is always here.
        head, rest = await split_head(request.content.iter_chunked(READ_CHUNK))
        url = resources.store_url
        if rest is None or url is None:
            await importer.run(replay(head, rest))
        else:
            config = resources.config
            child = ChildImport(Job(config.redis, config.store, url, options), late)
            await child.run(head, rest, report)
    except NoValidEntries as exc:
        audit("refused", error=str(exc))
        first = report.failures[0]
        raise BadRequest("no_valid_entries", f"No line is a valid entry ({report.failed} "
                         f"failed; line {first.line}: {first.reason}): the list was left "
                         "as it was.") from exc
    except EmptyImport as exc:
        audit("refused", error=str(exc))
        raise BadRequest("empty_import", f"A replace by an input with no entry would empty "
                         f"the list: refused, the list was left as it was ({exc}). Give "
                         "allow_empty=true to empty it.") from exc
    except ChangeFileReplace as exc:
        audit("refused", error=str(exc))
        raise BadRequest("invalid_query", f"Refused: {exc}; the list was left as it was."
                         ) from exc
    except MetadataConflict as exc:
        audit("refused", error=str(exc))
        raise BadRequest("invalid_query", f"Refused: {exc} (drop 'note', 'ttl_seconds' "
                         "and 'expires_at').") from exc
    except (web.RequestPayloadError, HttpProcessingError, zlib.error) as exc:
        # A body aiohttp could not decode (chunked framing, content encoding); zlib's
        # own error comes through when the fault is found while reading.
        detail = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
        detail = " ".join(detail.replace("400, message:", "").split())
        audit("aborted", error=detail)
        raise BadRequest("invalid_body", f"The request body is malformed: {detail}."
                         ) from exc
    except ImportChildFailed as exc:
        audit("aborted", error=str(exc))
        resources.log.error("import_failed", key_name=key.name, error=str(exc))
        return error_response(500, "import_failed", "The import process failed: a "
                              "replace left the list as it was, an add may have loaded "
                              "part of the body.", request.get(REQUEST_ID, ""))
    except (OSError, StoreUnavailable, asyncio.CancelledError) as exc:
        # The client went away mid-body: OSError, or cancellation when the server runs
        # with handler_cancellation. Nobody reads a reply then. (A child that had the
        # whole body completes the import: `late` audits how it ended.)
        if child is None or not child.ended or not isinstance(exc, asyncio.CancelledError):
            audit("aborted", error=str(exc) or type(exc).__name__)
        raise
    audit("applied")
    # The list's new as_of counts at once (a `closed` stale list opens again now).
    with contextlib.suppress(StoreUnavailable):  # logged; the next sweep retries
        await resources.check_freshness()
    return web.json_response(report.to_json())


async def export_list(request: web.Request) -> web.StreamResponse:
    """GET /lists/{list}/export?scope=: the list as CSV, streamed."""
    _checked_query(request, _EXPORT_PARAMS)
    scope = scope_param(request.query.get("scope", "global"))
    authorize(request, "read", scope)
    name = cast(ListName, request.match_info["list"])
    resources = request.app[RESOURCES]
    chunks: AsyncIterator[bytes] = export_csv(resources.store, name, scope)
    # The first chunk is read before replying, so a store that is down at the start
    # still gets a clean 503 from the middleware.
    first = await anext(chunks)
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition":
            f'attachment; filename="{name}-{scope.replace(":", "_")}.csv"',
        # Prepared here, so the request-id middleware cannot add it afterwards.
        "X-Request-Id": request.get(REQUEST_ID, "")})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(first)
    try:
        async for chunk in chunks:
            await response.write(chunk)
    except StoreUnavailable as exc:
        # Too late for an error status: end the connection without the final chunk, so
        # the client sees a truncated transfer rather than a short but complete file.
        resources.metrics.store_errors.labels("admin").inc()
        resources.log.error("store_unavailable", operation="export", error=str(exc))
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response


def add_routes(app: web.Application) -> None:
    """Install this module's routes on the /admin/v1 application."""
    app.router.add_post("/lists/{list:block|allow}/import", import_list)
    app.router.add_get("/lists/{list:block|allow}/export", export_list)

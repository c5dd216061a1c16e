"""The paths of one list's endpoints: its entries (add, remove, page), import and export."""

from __future__ import annotations

from typing import Any

from gatekeeper.admin.openapi.fragments import (
    _LIST_ERRORS,
    _WRITE_ERRORS,
    LIST_PARAMETER,
    REGION,
    SCOPE,
    _bad_request,
    _instant,
    _json,
    _query,
    _ref,
)
from gatekeeper.admin.openapi.limits import DEFAULT_PAGE, MAX_PAGE
from gatekeeper.bulk import EXPORT_COLUMNS, MODES
from gatekeeper.bulk_fast import FORMAT_OPTIONS
from gatekeeper.store import MAX_NOTE
from gatekeeper.times import MAX_TTL
from gatekeeper.types import CHANNELS

_ENTRIES_BODY = {"required": True, "content": {"application/json": {
    "schema": _ref("EntriesRequest")}}}
_ENTRIES_400 = ("invalid_body", "too_many_entries", "invalid_scope", "invalid_region")

LIST_PATHS: dict[str, dict[str, Any]] = {
    "/admin/v1/lists/{list}/entries": {
        "parameters": [LIST_PARAMETER],
        "post": {
            "operationId": "addEntries", "tags": ["lists"],
            "summary": "Add entries (idempotent); needs a write key covering the scope.",
            "requestBody": _ENTRIES_BODY,
            "responses": {"200": _json(_ref("AddResult"), "What was added, what was "
                                       "already listed, and the items that failed."),
                          "400": _bad_request(*_ENTRIES_400), **_WRITE_ERRORS}},
        "delete": {
            "operationId": "removeEntries", "tags": ["lists"],
            "summary": "Remove entries (idempotent); needs a write key covering the scope.",
            "description": "A plain entry is removed for every channel; `{entry, "
                           "channel}` only that channel's.",
            "requestBody": _ENTRIES_BODY,
            "responses": {"200": _json(_ref("RemoveResult"), "What was removed, what was "
                                       "not listed, and the items that failed."),
                          "400": _bad_request(*_ENTRIES_400), **_WRITE_ERRORS}},
        "get": {
            "operationId": "listEntries", "tags": ["lists"],
            "summary": "One page of a list's live entries, in entry order.",
            "parameters": [
                _query("scope", SCOPE, "The list's scope."),
                _query("prefix", {"type": "string", "pattern": r"^ ?\+?[1-9][0-9]{0,14}$"},
                       "Only entries starting with these digits (a search; the packed "
                       "load of a national list is searched by number ranges, not "
                       "scanned)."),
                _query("cursor", {"type": "string"}, "A `next_cursor` from the previous "
                       "page; empty: the first page."),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE,
                                 "default": DEFAULT_PAGE}, "Entries per page.")],
            "responses": {"200": _json(_ref("EntriesPage"), "A page of entries."),
                          "400": _bad_request("invalid_scope", "invalid_prefix",
                                              "invalid_limit"),
                          **_LIST_ERRORS}},
    },
    "/admin/v1/lists/{list}/import": {
        "parameters": [LIST_PARAMETER],
        "post": {
            "operationId": "importList", "tags": ["lists"],
            "summary": "Load entries from a streamed body (one per line, or CSV).",
            "description": "One entry per line, or CSV whose first column is the entry "
                           "and optional second the channel (`sms`, `voice`, `both`); "
                           "`,`, `;` or tab separated, further columns ignored, `#` "
                           "comments, an optional header row, UTF-8, LF or CRLF. A body "
                           "whose header row is the export's "
                           f"(`{','.join(EXPORT_COLUMNS)}`) is restored: each row keeps "
                           "its own metadata (rows already expired fail), and `note`, "
                           "`ttl_seconds` and `expires_at` are refused with it. The body "
                           "is streamed (no size limit, bounded memory). `mode=replace` "
                           "swaps the new list in atomically; a replace whose every line "
                           "fails is refused (400 `no_valid_entries`), as is one with no "
                           "entry at all unless `allow_empty=true` (400 `empty_import`); "
                           "both leave the list as it was. Unknown query parameters are "
                           "refused (400).",
            "parameters": [
                _query("scope", SCOPE, "The list's scope."),
                _query("mode", {"type": "string", "enum": list(MODES), "default": "add"},
                       "`add` to the list, or `replace` it whole."),
                _query("channel", {"type": "string", "enum": [*CHANNELS, "both"],
                                   "default": "both"},
                       "The channel of lines without one."),
                _query("note", {"type": "string", "maxLength": MAX_NOTE},
                       "Kept with every added entry."),
                _query("ttl_seconds", {"type": "integer", "minimum": 1, "maximum": MAX_TTL},
                       "Entries expire after this many seconds (not with `expires_at`)."),
                _query("expires_at", _instant(
                    f"In the future, at most {MAX_TTL} seconds ahead."),
                    "When entries expire (not with `ttl_seconds`)."),
                _query("region", REGION, "For national-format numbers."),
                _query("origin", {"type": "string", "maxLength": MAX_NOTE},
                       "Where the data comes from (e.g. `US DNC 2026-12-01`), kept as the "
                       "list's origin (default `import`)."),
                _query("as_of", _instant("Not in the future."),
                       "The date the data is as of (default: now): the list's age counts "
                       "from it."),
                _query("max_age_days", {"type": "number", "exclusiveMinimum": 0,
                                        "exclusiveMaximum": 100000},
                       "The list is stale after this many days from `as_of` (default: "
                       "the config's `lists.<scope>.max_age_days`)."),
                _query("format", {"type": "string", "enum": list(FORMAT_OPTIONS),
                                  "default": "auto"},
                       "`auto` detects the US registry's full (`us-dnc`) and change "
                       "(`us-dnc-change`, with `mode=add` only) files, UK TPS/CTPS files "
                       "(`tps`) and plain E.164 lists; `plain` and `csv` force the fast "
                       "reader of those formats."),
                _query("allow_empty", {"type": "boolean", "default": False},
                       "With `mode=replace` only: a body with no entry (empty, a header, "
                       "comments) empties the list instead of being refused. A body "
                       "whose every line fails is refused all the same.")],
            "requestBody": {"required": False, "content": {
                "text/csv": {"schema": {"type": "string"},
                             "example": "entry,channel\n+33612345678,sms\n+90850*,both\n"},
                "text/plain": {"schema": {"type": "string"},
                               "example": "+33612345678\n+33612345679\n"}}},
            "responses": {
                "200": _json(_ref("ImportReport"), "The import's counts."),
                "400": _bad_request("invalid_query", "invalid_scope", "invalid_region",
                                    "invalid_channel", "no_valid_entries", "empty_import",
                                    "invalid_body",
                                    changed="nothing was changed, except by an `add` "
                                    "whose body turned out malformed (`invalid_body`), "
                                    "which keeps what it loaded before"),
                **_LIST_ERRORS}},
    },
    "/admin/v1/lists/{list}/export": {
        "parameters": [LIST_PARAMETER],
        "get": {
            "operationId": "exportList", "tags": ["lists"],
            "summary": "The list's live entries as CSV, streamed.",
            "description": "A store failure after the reply started ends the transfer "
                           "without its final chunk (a truncated transfer, not a short "
                           "file). Unknown query parameters are refused (400).",
            "parameters": [_query("scope", SCOPE, "The list's scope.")],
            "responses": {
                "200": {
                    "description": f"CSV with a header row: {','.join(EXPORT_COLUMNS)}.",
                    "headers": {
                        "X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"},
                        "Content-Disposition": {
                            "required": True,
                            "schema": {"type": "string",
                                       "pattern": r'^attachment; filename="[^"]+\.csv"$'}}},
                    "content": {"text/csv": {"schema": {"type": "string"}}}},
                "400": _bad_request("invalid_query", "invalid_scope"),
                **_LIST_ERRORS}},
    },
}

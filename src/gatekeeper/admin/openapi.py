"""The OpenAPI 3.1 document of the native admin API, served at GET /admin/v1/openapi.json.

Written by hand from the handlers (native.py, bulk.py, attempts.py, the auth middleware and
the admin listener's json_errors), and kept honest by tests/test_openapi.py: every route of
the /admin/v1 app must be documented and every documented operation must exist, and
schemathesis runs the document against a live server (statuses, bodies, content types).

The document is served without an admin key: it is documentation (the same as the
README's), holds no data and no secret, and tools (Swagger UI, client generators) fetch it
without credentials. It is built once, as a constant, and serialised once at import.
"""

from __future__ import annotations

import json
from typing import Any, get_args

from aiohttp import web

from gatekeeper import __version__
from gatekeeper.admin.attempts import DEFAULT_LIMIT, DIRECTIONS, MAX_LIMIT, TOP_ENTRIES
from gatekeeper.bulk import EXPORT_COLUMNS, MAX_FAILURES_SHOWN, MODES
from gatekeeper.bulk_fast import FORMAT_OPTIONS
from gatekeeper.policy import ListName, Verdict
from gatekeeper.replies import ERROR_TYPES
from gatekeeper.rules import INTENTS, RULE_KINDS, Outcome
from gatekeeper.store import MAX_NOTE
from gatekeeper.times import MAX_TTL
from gatekeeper.types import CHANNELS

# native.py's limits: it imports this module, so importing them would be a cycle (the
# test compares them).
MAX_ENTRIES_PER_CALL = 10_000
MAX_PAGE = 1000
DEFAULT_PAGE = 100

LISTS: tuple[ListName, ...] = get_args(ListName)
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
SCOPE_PATTERN = r"^(global|[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9._@+-]{1,128})$"
# Stored entries: E.164 (`+` then up to 15 digits, no leading 0) or a prefix `+33*`.
ENTRY_PATTERN = r"^\+[1-9]([0-9]{1,14}|[0-9]{0,13}\*)$"
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
STREAM_ID_PATTERN = r"^([0-9]{1,20})-([0-9]{1,20})$"

JsonSchema = dict[str, Any]


def _ref(name: str) -> JsonSchema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: list[str], properties: dict[str, JsonSchema], **extra: Any
            ) -> JsonSchema:
    """An object schema that allows no other property (the handlers never add any)."""
    return {"type": "object", "required": required, "properties": properties,
            "additionalProperties": False, **extra}


def _json(schema: JsonSchema, description: str, **extra: Any) -> dict[str, Any]:
    """A JSON response; every reply of the admin listener carries X-Request-Id."""
    return {"description": description,
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}},
            "content": {"application/json": {"schema": schema}}, **extra}


def _error(status: int, codes: tuple[str, ...]) -> JsonSchema:
    """The error shape narrowed to a status's `type` and the `code`s it can carry."""
    return {"allOf": [_ref("Error")],
            "properties": {"code": {"enum": list(codes)},
                           "type": {"const": ERROR_TYPES[status]}}}


def _bad_request(*codes: str, changed: str = "nothing was changed") -> dict[str, Any]:
    return _json(_error(400, codes), f"A parameter or the body is invalid; {changed} "
                 f"(codes: {', '.join(codes)}).")


def _status_response(status: int, code: str, description: str) -> dict[str, Any]:
    return _json(_error(status, (code,)), description)


def _common(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _query(name: str, schema: JsonSchema, description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description, **extra}


def _instant(description: str) -> JsonSchema:
    # Not `format: date-time`: epoch seconds and zone-less ISO 8601 are accepted too.
    return {"type": "string", "description": description,
            "examples": ["2027-01-01T00:00:00Z", "1798761600"]}


SCOPE_ANY: JsonSchema = {"type": "string", "pattern": SCOPE_PATTERN,
                         "description": "`global` or `kind:id` (`tenant:acme`, `agent:42`)."}
SCOPE: JsonSchema = {**SCOPE_ANY, "default": "global"}
REGION: JsonSchema = {
    "type": "string", "pattern": "^([A-Za-z]{2})?$",
    "description": "A region libphonenumber knows (ISO 3166-1 alpha-2, any case) for "
                   "national-format numbers; empty: none. Unknown regions are a 400."}
LIST_PARAMETER: dict[str, Any] = {
    "name": "list", "in": "path", "required": True,
    "schema": {"type": "string", "enum": list(LISTS)},
    "description": "The list; any other name is a 404."}

# ------------------------------------------------------------------------ schemas

SCHEMAS: dict[str, JsonSchema] = {
    "Error": _object(
        ["code", "message", "type", "request_id"],
        {"code": {"type": "string", "description": "Machine-readable, e.g. `invalid_scope`."},
         "message": {"type": "string", "description": "For people."},
         "type": {"type": "string", "enum": sorted(set(ERROR_TYPES.values())),
                  "description": "Follows the HTTP status (`bad_request` for 400...)."},
         "request_id": {"type": "string", "pattern": REQUEST_ID_PATTERN,
                        "description": "As in the X-Request-Id header."}},
        description="Every error of the admin API."),
    "Scope": SCOPE_ANY,
    "Entry": {"type": "string", "pattern": ENTRY_PATTERN,
              "description": "A normalised entry: an E.164 number or a prefix such as "
                             "`+33*`.", "examples": ["+33612345678", "+90850*"]},
    "ShownEntry": {
        "description": "An entry as replies show it: the string when it applies to every "
                       "channel, `{entry, channel}` when it is limited to one.",
        "oneOf": [_ref("Entry"),
                  _object(["entry", "channel"],
                          {"entry": _ref("Entry"),
                           "channel": {"type": "string", "enum": list(CHANNELS)}})]},
    "EntryInput": {
        "description": "A string (every channel) or `{entry, channel}`. An item that is "
                       "not a valid entry, or an object with other fields, does not fail "
                       "the call: it is reported in `failed`.",
        "oneOf": [{"type": "string", "examples": ["+33612345678", "+33*"]},
                  _object(["entry"],
                          {"entry": {"type": "string"},
                           "channel": {"type": "string", "enum": [*CHANNELS, "both"],
                                       "default": "both"}})]},
    "EntriesRequest": _object(
        ["entries"],
        {"entries": {"type": "array", "minItems": 1, "maxItems": MAX_ENTRIES_PER_CALL,
                     "items": _ref("EntryInput")},
         "scope": SCOPE,
         "region": {**REGION, "type": ["string", "null"]},
         "note": {"type": ["string", "null"], "maxLength": MAX_NOTE,
                  "description": "Why (kept with added entries; empty: none)."},
         "ttl_seconds": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_TTL,
                         "description": "Entries expire after this many seconds (a JSON "
                                        "integer; not with `expires_at`)."},
         "expires_at": {"type": ["string", "number", "null"],
                        "description": "When entries expire: ISO 8601 (no zone: UTC) or "
                                       "epoch seconds, in the future and at most "
                                       f"{MAX_TTL} s ahead (not with `ttl_seconds`)."}},
        # Not both expiries (null is the same as absent).
        **{"not": {"required": ["ttl_seconds", "expires_at"],
                   "properties": {"ttl_seconds": {"type": "integer"},
                                  "expires_at": {"type": ["string", "number"]}}}},
        description="Entries to add or remove. Only `entries` is required; other fields "
                    "are refused (400). On DELETE, `note`, `ttl_seconds` and `expires_at` "
                    "are checked but have no effect.",
        examples=[{"entries": ["+33612345678", {"entry": "+90850*", "channel": "voice"}],
                   "scope": "tenant:acme", "note": "complaint", "ttl_seconds": 86400}]),
    "FailedEntry": _object(["entry", "reason"], {"entry": {"type": "string"},
                                                 "reason": {"type": "string"}}),
    "AddResult": _object(
        ["added", "existing", "failed"],
        {"added": {"type": "array", "items": _ref("ShownEntry")},
         "existing": {"type": "array", "items": _ref("ShownEntry"),
                      "description": "Already listed: left as they were, metadata "
                                     "included."},
         "failed": {"type": "array", "items": _ref("FailedEntry")}}),
    "RemoveResult": _object(
        ["removed", "missing", "failed"],
        {"removed": {"type": "array", "items": _ref("ShownEntry")},
         "missing": {"type": "array", "items": _ref("ShownEntry")},
         "failed": {"type": "array", "items": _ref("FailedEntry")}}),
    "Origin": {
        "description": "What is known of an entry's origin (nothing for entries without "
                       "metadata).",
        "type": "object",
        "properties": {
            "source": {"type": "string", "description": "`api`, `import`, `opt-out`, "
                       "`agent-api`, `prelude`, `iletimerkezi`."},
            "added_at": {"type": "string", "format": "date-time"},
            "added_by": {"type": "string", "description": "The admin key's name."},
            "note": {"type": "string"},
            "expires_at": {"type": "string", "format": "date-time"}},
        "dependentRequired": {"source": ["added_at"], "added_at": ["source"],
                              "added_by": ["source"], "note": ["source"],
                              "expires_at": ["source"]}},
    "ListedEntry": {
        "allOf": [_ref("Origin")], "type": "object", "required": ["entry", "channel"],
        "properties": {"entry": _ref("Entry"),
                       "channel": {"type": "string", "enum": [*CHANNELS, "both"]}},
        "unevaluatedProperties": False},
    "EntriesPage": _object(
        ["entries", "next_cursor"],
        {"entries": {"type": "array", "maxItems": MAX_PAGE, "items": _ref("ListedEntry")},
         "next_cursor": {"type": ["string", "null"],
                         "description": "Pass as `cursor` for the next page; null on the "
                                        "last."}}),
    "Match": {
        "allOf": [_ref("Origin")], "type": "object",
        "required": ["scope", "list", "entry", "channel"],
        "properties": {"scope": _ref("Scope"),
                       "list": {"type": "string", "enum": list(LISTS)},
                       "entry": _ref("Entry"),
                       "channel": {"type": "string", "enum": [*CHANNELS, "both"]}},
        "unevaluatedProperties": False},
    "PolicyState": _object(
        ["source", "version", "policy"],
        {"source": {"type": "string", "enum": ["config", "admin"]},
         "version": {"type": "integer", "minimum": 0},
         "policy": {"type": "object", "description": "The `policy:` section (config "
                    "reference: Policy rules beyond lists)."},
         "updated_by": {"type": "string"},
         "updated_at": {"type": "string", "format": "date-time"}}),
    "RuleOutcome": _object(
        ["rule", "scope", "outcome"],
        {"rule": {"type": "string", "enum": ["allow_entry", "safe", *RULE_KINDS]},
         "scope": {"type": "string"},
         "outcome": {"type": "string", "enum": list(get_args(Outcome))},
         "channel": {"type": "string", "enum": list(CHANNELS)},
         "detail": {"type": "string"},
         "retry_after_seconds": {"type": "integer", "minimum": 0,
                                 "description": "Quiet hours: until sending is allowed."}}),
    "CheckResult": _object(
        ["number", "possible", "decision", "label", "scopes", "matched"],
        {"number": {"type": "string", "pattern": r"^\+[1-9][0-9]{1,14}$"},
         "possible": {"type": "boolean", "description": "A possible phone number (false "
                      "for numbers that are E.164 by syntax only)."},
         "decision": {"type": "string", "enum": list(VERDICTS)},
         "label": {"enum": ["Blacklisted", None],
                   "description": "`Blacklisted` when a list entry blocks the number (as "
                                  "NLPearl shows it); null when a policy rule refuses it "
                                  "(`decided_by` says which) or it is not blocked."},
         "scopes": {"type": "array", "minItems": 1, "prefixItems": [{"const": "global"}],
                    "items": _ref("Scope"), "description": "The scopes that applied."},
         "matched": {"type": "array", "items": _ref("Match"),
                     "description": "Each matching scope's winning entry."},
         "channel": {"type": "string", "enum": list(CHANNELS),
                     "description": "Present when the `channel` parameter was given."},
         "intent": {"type": "string", "enum": list(INTENTS)},
         "at": {"type": "string", "format": "date-time",
                "description": "The instant the policy rules were judged at."},
         "rules": {"type": "array", "items": _ref("RuleOutcome"),
                   "description": "Every policy rule evaluated, in precedence order "
                                  "(empty when a block entry decided)."},
         "decided_by": {"type": "object", "required": ["rule"],
                        "properties": {"rule": {"type": "string"}},
                        "description": "`list`, `default`, or the rule outcome that "
                                       "decided."}},
        **{"if": {"properties": {"decision": {"const": "blocked"},
                                 "decided_by": {"properties": {"rule": {"const": "list"}}}}},
           "then": {"properties": {"label": {"const": "Blacklisted"}}},
           "else": {"properties": {"label": {"const": None}}}}),
    "ImportReport": _object(
        ["mode", "scope", "list", "lines", "added", "existing", "failed", "failures"],
        {"mode": {"type": "string", "enum": list(MODES)},
         "scope": _ref("Scope"),
         "list": {"type": "string", "enum": list(LISTS)},
         "lines": {"type": "integer", "minimum": 0,
                   "description": "Lines read, blank, comment and header lines included."},
         "added": {"type": "integer", "minimum": 0},
         "existing": {"type": "integer", "minimum": 0,
                      "description": "Already listed, or repeated in the input."},
         "failed": {"type": "integer", "minimum": 0},
         "failures": {"type": "array", "maxItems": MAX_FAILURES_SHOWN,
                      "description": f"The first {MAX_FAILURES_SHOWN} failed lines.",
                      "items": _object(["line", "entry", "reason"],
                                       {"line": {"type": "integer", "minimum": 1},
                                        "entry": {"type": "string"},
                                        "reason": {"type": "string"}})},
         "size": {"type": "integer", "minimum": 0,
                  "description": "The list's size after a replace (replace only)."},
         "format": {"type": "string", "enum": [f for f in FORMAT_OPTIONS if f != "auto"],
                    "description": "The fast format the body was read in (absent: the "
                                   "ordinary plain/CSV/export reader)."},
         "removed": {"type": "integer", "minimum": 0,
                     "description": "Numbers a change file deleted (us-dnc-change)."}},
        **{"if": {"properties": {"mode": {"const": "replace"}}},
           "then": {"required": ["size"]},
           "else": {"not": {"required": ["size"]}}}),
    "ListInfo": _object(
        ["list", "scope", "size", "origin", "as_of", "loaded_at", "age_seconds",
         "max_age_days", "state", "on_stale"],
        {"list": {"type": "string", "enum": ["block", "allow"]}, "scope": SCOPE_ANY,
         "size": {"type": "integer", "minimum": 0},
         "origin": {"type": ["string", "null"]},
         "as_of": {"type": ["string", "null"], "format": "date-time"},
         "loaded_at": {"type": ["string", "null"], "format": "date-time"},
         "age_seconds": {"type": ["integer", "null"], "minimum": 0},
         "max_age_days": {"type": ["number", "null"]},
         "state": {"type": "string", "enum": ["fresh", "stale", "unknown"]},
         "on_stale": {"type": "string", "enum": ["enforce", "warn", "closed"]}}),
    "Attempt": _object(
        ["id", "at", "request_id", "upstream", "channel", "direction", "number", "scopes",
         "matched", "action"],
        {"id": {"type": "string", "pattern": STREAM_ID_PATTERN},
         "at": {"type": "string", "format": "date-time",
                "description": "When it was recorded (the store's clock)."},
         "request_id": {"type": "string"},
         "upstream": {"type": "string"},
         "channel": {"type": "string", "enum": list(CHANNELS)},
         "direction": {"type": "string", "enum": list(DIRECTIONS)},
         "number": {"type": "string", "description": "In full (E.164)."},
         "scopes": {"type": "array", "items": {"type": "string"},
                    "description": "The scopes that applied to the request."},
         "matched": {"oneOf": [{"type": "null"},
                               _object(["scope", "list", "entry"],
                                       {"scope": {"type": "string"},
                                        "list": {"type": "string"},
                                        "entry": {"type": "string"}})],
                     "description": "The entry that blocked it."},
         "rule": _object(["kind", "scope", "detail"], {
             "kind": {"type": "string", "enum": ["list", *RULE_KINDS]},
             "scope": {"type": "string"},
             "detail": {"type": "string", "description": "The region, number type or "
                        "quiet-hours place of a policy rule; empty for a list entry."}},
             description="What blocked it: a list entry (`matched`) or a policy rule."),
         "action": {"type": "string",
                    "description": "What Gatekeeper did: `rejected`, `skipped`, "
                                   "`monitored`..."}}),
    "AttemptsPage": _object(
        ["attempts", "next_cursor"],
        {"attempts": {"type": "array", "maxItems": MAX_LIMIT, "items": _ref("Attempt")},
         "next_cursor": {"oneOf": [{"type": "null"},
                                   {"type": "string", "pattern": STREAM_ID_PATTERN}],
                         "description": "Pass as `cursor` for the next page; null on the "
                                        "last."}}),
    "Counts": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1}},
    "AttemptsSummary": _object(
        ["since", "until", "total", "by_scope", "by_channel", "by_direction", "by_action",
         "by_upstream", "by_rule", "by_entry", "by_number"],
        {"since": {"type": "string", "format": "date-time"},
         "until": {"type": "string", "format": "date-time"},
         "total": {"type": "integer", "minimum": 0},
         "by_scope": _ref("Counts"),
         "by_channel": _ref("Counts"),
         "by_direction": _ref("Counts"),
         "by_action": _ref("Counts"),
         "by_upstream": _ref("Counts"),
         "by_rule": {**_ref("Counts"), "description": "By what blocked: `list` (an entry) "
                     "or a policy rule kind."},
         "by_number": {"type": "array", "maxItems": TOP_ENTRIES,
                       "description": f"The {TOP_ENTRIES} most blocked numbers.",
                       "items": _object(["number", "count"],
                                        {"number": {"type": "string"},
                                         "count": {"type": "integer", "minimum": 1}})},
         "by_entry": {"type": "array", "maxItems": TOP_ENTRIES,
                      "description": f"The {TOP_ENTRIES} most frequent matched entries.",
                      "items": _object(["scope", "list", "entry", "count"],
                                       {"scope": {"type": "string"},
                                        "list": {"type": "string"},
                                        "entry": {"type": "string"},
                                        "count": {"type": "integer", "minimum": 1}})}}),
}

# ------------------------------------------------------------------------ operations

_ENTRIES_BODY = {"required": True, "content": {"application/json": {
    "schema": _ref("EntriesRequest")}}}
_ENTRIES_400 = ("invalid_body", "too_many_entries", "invalid_scope", "invalid_region")
_WRITE_ERRORS = {"401": _common("Unauthorized"), "403": _common("Forbidden"),
                 "404": _common("NotFound"), "413": _common("PayloadTooLarge"),
                 "503": _common("StoreUnavailable")}
_READ_ERRORS = {"401": _common("Unauthorized"), "403": _common("Forbidden"),
                "503": _common("StoreUnavailable")}
_LIST_ERRORS = {**_READ_ERRORS, "404": _common("NotFound")}
_UPSTREAM_PARAM = _query("upstream", {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,62}$"},
                         "Only attempts sent to this upstream (its configured name).")
_SINCE = _query("since", _instant("Inclusive: ISO 8601 (no zone: UTC) or epoch seconds."),
                "From this instant (inclusive).")
_UNTIL = _query("until", _instant("Exclusive: ISO 8601 (no zone: UTC) or epoch seconds."),
                "Before this instant (exclusive).")
_ATTEMPT_SCOPE = _query("scope", SCOPE_ANY, "Only attempts blocked by an entry of this scope "
                        "(default: every scope the key may see).")

PATHS: dict[str, dict[str, Any]] = {
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
    "/admin/v1/policy": {
        "get": {
            "operationId": "getPolicy", "tags": ["policy"],
            "summary": "The policy rules in force: the config's, or the one set here.",
            "responses": {"200": _json(_ref("PolicyState"), "The policy and its source."),
                          "400": _bad_request("invalid_query"), **_READ_ERRORS}},
        "put": {
            "operationId": "putPolicy", "tags": ["policy"],
            "summary": "Replace the policy rules live (a key with write access to `*`).",
            "description": "The body's `policy` is validated as the config file's "
                           "`policy:` section; every process applies it within a second.",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": _object(["policy"], {"policy": {"type": "object"}})}}},
            "responses": {"200": _json(_ref("PolicyState"), "The policy now in force."),
                          "400": _bad_request("invalid_query", "invalid_body",
                                              "invalid_policy"),
                          "413": _common("PayloadTooLarge"), **_READ_ERRORS}},
        "delete": {
            "operationId": "resetPolicy", "tags": ["policy"],
            "summary": "Go back to the config's policy rules.",
            "responses": {"200": _json(_ref("PolicyState"), "The policy now in force."),
                          "400": _bad_request("invalid_query"), **_READ_ERRORS}},
    },
    "/admin/v1/key": {
        "get": {
            "operationId": "callingKey", "tags": ["keys"],
            "summary": "The calling key's name, role and scopes (never its secret).",
            "responses": {
                "200": _json(_object(["name", "role", "scopes"], {
                    "name": {"type": "string"},
                    "role": {"type": "string", "enum": ["read", "write"]},
                    "scopes": {"type": "array", "items": {"type": "string"},
                               "description": "Scope globs the key may touch."}}),
                    "The key."),
                "400": _bad_request("invalid_query"), **_READ_ERRORS}},
    },
    "/admin/v1/reload": {
        "post": {
            "operationId": "reloadConfig", "tags": ["operations"],
            "summary": "Read the config file again and apply it, as SIGHUP does (a key "
                       "with write access to `*`).",
            "description": "Validated first: an invalid file (422) or one changing the "
                           "listeners or `redis` (409) is refused and nothing changes. "
                           "In-flight requests finish on the old config.",
            "responses": {
                "200": _json(_object(["status", "changed"], {
                    "status": {"const": "applied"},
                    "changed": {"type": "array", "items": {"type": "string"},
                                "description": "Top-level sections that changed."}}),
                    "Applied in this process."),
                "202": _json(_object(["status", "workers"], {
                    "status": {"const": "reloading"},
                    "workers": {"type": "integer", "minimum": 2}}),
                    "Valid; every worker of `run --workers N` reloads it from the file."),
                "400": _bad_request("invalid_query"),
                "409": _status_response(409, "restart_required", "The file changes what "
                                        "only a restart can (the listeners, `redis`)."),
                "422": _status_response(422, "config_invalid", "The file is not a valid "
                                        "configuration; the reason names key and value."),
                "503": _status_response(503, "reload_unavailable", "This process does not "
                                        "serve from a config file."),
                "401": _common("Unauthorized"), "403": _common("Forbidden")}},
    },
    "/admin/v1/lists": {
        "get": {
            "operationId": "listLists", "tags": ["lists"],
            "summary": "Every list the key may read, with its size and freshness.",
            "responses": {
                "200": _json(_object(["lists"], {"lists": {"type": "array", "items": _ref(
                    "ListInfo")}}), "The lists, by list and scope."),
                "400": _bad_request("invalid_query"),
                **_READ_ERRORS}},
    },
    "/admin/v1/check": {
        "get": {
            "operationId": "check", "tags": ["check"],
            "summary": "The decision for a number, and why.",
            "parameters": [
                {"name": "number", "in": "query", "required": True,
                 "schema": {"type": "string", "examples": ["+33612345678"]},
                 "description": "E.164, or national with `region` (`+` may arrive "
                                "unencoded, as a space)."},
                _query("scope", {"type": "array", "items": SCOPE_ANY},
                       "Scopes that apply besides `global` (which always does); may "
                       "repeat, or be comma-separated.", style="form", explode=True),
                _query("channel", {"type": "string", "enum": list(CHANNELS)},
                       "Decide for this channel only (default: entries of every "
                       "channel match)."),
                _query("region", REGION, "For a national-format number."),
                _query("intent", {"type": "string", "enum": list(INTENTS)},
                       "The send's intent: which policy rules apply (default "
                       "marketing)."),
                _query("at", {"type": "string", "examples": ["22:30",
                                                             "2026-12-03T22:30:00-05:00"]},
                       "Judge the policy rules at this instant: ISO 8601 with its "
                       "offset, or HH:MM in the recipient's local time (default now).")],
            "responses": {
                "200": _json(_ref("CheckResult"), "The decision with each scope's "
                             "winning entry and every policy rule evaluated."),
                "400": _bad_request("invalid_scope", "invalid_channel", "invalid_region",
                                    "invalid_phone_number", "invalid_intent", "invalid_at"),
                **_READ_ERRORS}},
    },
    "/admin/v1/attempts": {
        "get": {
            "operationId": "listAttempts", "tags": ["attempts"],
            "summary": "Blocked attempts, newest first.",
            "description": "An attempt belongs to the scope of the entry that blocked it. "
                           "Keys limited to some scopes see only those scopes' attempts. "
                           "Unknown or repeated parameters are refused (400); an empty "
                           "value is the same as none.",
            "parameters": [
                _ATTEMPT_SCOPE,
                _query("number", {"type": "string"}, "Only this number (E.164, or "
                       "national with `region`)."),
                _query("region", REGION, "For a national-format `number`."),
                _query("channel", {"type": "string", "enum": list(CHANNELS)},
                       "Only this channel."),
                _query("direction", {"type": "string", "enum": list(DIRECTIONS)},
                       "Only this direction."),
                _UPSTREAM_PARAM,
                _SINCE, _UNTIL,
                _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                                 "default": DEFAULT_LIMIT}, "Attempts per page."),
                _query("cursor", {"type": "string", "pattern": STREAM_ID_PATTERN},
                       "A `next_cursor` from the previous page.")],
            "responses": {
                "200": _json(_ref("AttemptsPage"), "A page of attempts."),
                "400": _bad_request("invalid_parameter", "invalid_scope", "invalid_region",
                                    "invalid_number", "invalid_channel",
                                    "invalid_direction", "invalid_upstream",
                                    "invalid_limit", "invalid_time", "invalid_cursor"),
                **_READ_ERRORS}},
    },
    "/admin/v1/attempts/summary": {
        "get": {
            "operationId": "summarizeAttempts", "tags": ["attempts"],
            "summary": "Counts of blocked attempts over a window (default: the last 24 "
                       "hours).",
            "description": "Unknown or repeated parameters are refused (400).",
            "parameters": [_ATTEMPT_SCOPE, _UPSTREAM_PARAM, _SINCE, _UNTIL],
            "responses": {
                "200": _json(_ref("AttemptsSummary"), "Counts by matched scope, channel, "
                             "direction, action, upstream, rule, matched entry and "
                             "number."),
                "400": _bad_request("invalid_parameter", "invalid_scope", "invalid_upstream",
                                    "invalid_time"),
                **_READ_ERRORS}},
    },
    "/admin/v1/openapi.json": {
        "get": {
            "operationId": "openapi", "tags": ["meta"],
            "summary": "This document (no key needed).",
            "security": [],
            "responses": {"200": _json({"type": "object", "required": ["openapi"]},
                                       "The OpenAPI 3.1 document.")}},
    },
}



DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Gatekeeper native admin API",
        "version": __version__,
        "description": "Allow and block lists, decision checks and the blocked-attempts "
                       "log, on the admin listener. Every call but this document's needs "
                       "`Authorization: Bearer <admin key>`. Errors are `{code, message, "
                       "type, request_id}`; a method a path does not have is a 405 in "
                       "that shape, with `Allow`. Every reply carries `X-Request-Id` (the "
                       "caller's, when it is 1-128 safe characters).",
    },
    "tags": [{"name": "lists"}, {"name": "check"}, {"name": "attempts"}, {"name": "policy"},
             {"name": "meta"}],
    "security": [{"adminKey": []}],
    "paths": PATHS,
    "components": {
        "securitySchemes": {"adminKey": {
            "type": "http", "scheme": "bearer",
            "description": "An admin key. Read keys may read; write keys may also change "
                           "lists. A key's scopes (globs) bound the scopes it may name."}},
        "headers": {"X-Request-Id": {
            "required": True, "schema": {"type": "string", "pattern": REQUEST_ID_PATTERN},
            "description": "The request's id (also in logs and error bodies)."}},
        "schemas": SCHEMAS,
        "responses": {
            "Unauthorized": _status_response(
                401, "unauthorized", "No key, a wrong key, or no key is configured."),
            "Forbidden": _status_response(
                403, "forbidden", "The key is read-only, or its scopes do not cover a "
                "scope the call names; nothing was changed."),
            "NotFound": _status_response(404, "not_found", "No such list."),
            "PayloadTooLarge": _status_response(
                413, "body_too_large", "The body is over the admin listener's 1 MiB."),
            "StoreUnavailable": _status_response(
                503, "store_unavailable", "The list store is unavailable."),
        },
    },
}

_BODY = json.dumps(DOCUMENT, ensure_ascii=False).encode()


async def serve_document(_request: web.Request) -> web.Response:
    """GET /openapi.json: the document, serialised once at import."""
    return web.Response(body=_BODY, content_type="application/json", charset="utf-8")


def add_routes(app: web.Application) -> None:
    """Install the document's route on the /admin/v1 application."""
    app.router.add_get("/openapi.json", serve_document)

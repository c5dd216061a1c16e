"""The component schemas of the document (`#/components/schemas`): the bodies the admin
API takes and answers."""

from __future__ import annotations

from typing import get_args

from gatekeeper.admin.attempts import DIRECTIONS, MAX_LIMIT, TOP_ENTRIES
from gatekeeper.admin.openapi.fragments import (
    REGION,
    SCOPE,
    SCOPE_ANY,
    JsonSchema,
    _object,
    _ref,
)
from gatekeeper.admin.openapi.limits import (
    ENTRY_PATTERN,
    LISTS,
    MAX_ENTRIES_PER_CALL,
    MAX_PAGE,
    REQUEST_ID_PATTERN,
    STREAM_ID_PATTERN,
    VERDICTS,
)
from gatekeeper.bulk import MAX_FAILURES_SHOWN, MODES
from gatekeeper.bulk_fast import FORMAT_OPTIONS
from gatekeeper.replies import ERROR_TYPES
from gatekeeper.rules import INTENTS, RULE_KINDS, Outcome
from gatekeeper.store import MAX_NOTE
from gatekeeper.times import MAX_TTL
from gatekeeper.types import CHANNELS

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

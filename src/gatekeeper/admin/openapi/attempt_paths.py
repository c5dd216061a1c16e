"""The paths of the blocked-attempts log: its pages and its summary."""

from __future__ import annotations

from typing import Any

from gatekeeper.admin.attempts import DEFAULT_LIMIT, DIRECTIONS, MAX_LIMIT
from gatekeeper.admin.openapi.fragments import (
    _READ_ERRORS,
    REGION,
    SCOPE_ANY,
    _bad_request,
    _instant,
    _json,
    _query,
    _ref,
)
from gatekeeper.admin.openapi.limits import STREAM_ID_PATTERN
from gatekeeper.types import CHANNELS

_UPSTREAM_PARAM = _query("upstream", {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,62}$"},
                         "Only attempts sent to this upstream (its configured name).")
_SINCE = _query("since", _instant("Inclusive: ISO 8601 (no zone: UTC) or epoch seconds."),
                "From this instant (inclusive).")
_UNTIL = _query("until", _instant("Exclusive: ISO 8601 (no zone: UTC) or epoch seconds."),
                "Before this instant (exclusive).")
_ATTEMPT_SCOPE = _query("scope", SCOPE_ANY, "Only attempts blocked by an entry of this scope "
                        "(default: every scope the key may see).")

ATTEMPT_PATHS: dict[str, dict[str, Any]] = {
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
}

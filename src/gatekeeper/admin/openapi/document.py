"""The OpenAPI 3.1 document: its info, security, paths and components."""

from __future__ import annotations

from typing import Any

from gatekeeper import __version__
from gatekeeper.admin.openapi.fragments import _status_response
from gatekeeper.admin.openapi.limits import REQUEST_ID_PATTERN
from gatekeeper.admin.openapi.paths import PATHS
from gatekeeper.admin.openapi.schemas import SCHEMAS

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

"""The OpenAPI 3.1 document of the native admin API, served at GET /admin/v1/openapi.json.

Written by hand from the handlers (native.py, bulk.py, attempts.py, the auth middleware and
the admin listener's json_errors), and kept honest by tests/test_openapi.py: every route of
the /admin/v1 app must be documented and every documented operation must exist, and
schemathesis runs the document against a live server (statuses, bodies, content types).

The document is served without an admin key: it is documentation (the same as the
README's), holds no data and no secret, and tools (Swagger UI, client generators) fetch it
without credentials. It is built once, as a constant, and serialised once at import.

Its modules, one noun each: `limits` (the limits, patterns and enumerations it shares with
the handlers), `fragments` (the helpers and shared fragments), `schemas` (the component
schemas), `list_paths` (one list's endpoints), `attempt_paths` (the attempts log's),
`paths` (every path, in order) and `document` (the document). This one serves it and
re-exports the names callers import.
"""

from __future__ import annotations

import json

from aiohttp import web

from gatekeeper.admin.openapi.document import DOCUMENT
from gatekeeper.admin.openapi.fragments import LIST_PARAMETER, REGION, SCOPE, SCOPE_ANY, JsonSchema
from gatekeeper.admin.openapi.limits import (
    DEFAULT_PAGE,
    ENTRY_PATTERN,
    LISTS,
    MAX_ENTRIES_PER_CALL,
    MAX_PAGE,
    REQUEST_ID_PATTERN,
    SCOPE_PATTERN,
    STREAM_ID_PATTERN,
    VERDICTS,
)
from gatekeeper.admin.openapi.paths import PATHS
from gatekeeper.admin.openapi.schemas import SCHEMAS

__all__ = [
    "DEFAULT_PAGE",
    "DOCUMENT",
    "ENTRY_PATTERN",
    "LISTS",
    "LIST_PARAMETER",
    "MAX_ENTRIES_PER_CALL",
    "MAX_PAGE",
    "PATHS",
    "REGION",
    "REQUEST_ID_PATTERN",
    "SCHEMAS",
    "SCOPE",
    "SCOPE_ANY",
    "SCOPE_PATTERN",
    "STREAM_ID_PATTERN",
    "VERDICTS",
    "JsonSchema",
    "add_routes",
    "serve_document",
]

_BODY = json.dumps(DOCUMENT, ensure_ascii=False).encode()


async def serve_document(_request: web.Request) -> web.Response:
    """GET /openapi.json: the document, serialised once at import."""
    return web.Response(body=_BODY, content_type="application/json", charset="utf-8")


def add_routes(app: web.Application) -> None:
    """Install the document's route on the /admin/v1 application."""
    app.router.add_get("/openapi.json", serve_document)

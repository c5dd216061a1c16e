"""The building blocks of the document: schema, response and parameter helpers, and the
fragments (scopes, region, the list parameter, the error responses) shared by its parts.
"""

from __future__ import annotations

from typing import Any

from gatekeeper.admin.openapi.limits import LISTS, SCOPE_PATTERN
from gatekeeper.replies import ERROR_TYPES

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

_WRITE_ERRORS = {"401": _common("Unauthorized"), "403": _common("Forbidden"),
                 "404": _common("NotFound"), "413": _common("PayloadTooLarge"),
                 "503": _common("StoreUnavailable")}
_READ_ERRORS = {"401": _common("Unauthorized"), "403": _common("Forbidden"),
                "503": _common("StoreUnavailable")}
_LIST_ERRORS = {**_READ_ERRORS, "404": _common("NotFound")}

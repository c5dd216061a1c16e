"""The document's paths, in the order it lists them: one list's endpoints, then the
policy, key, reload, lists and check endpoints, the attempts log and this document.
"""

from __future__ import annotations

from typing import Any

from gatekeeper.admin.openapi.attempt_paths import ATTEMPT_PATHS
from gatekeeper.admin.openapi.fragments import (
    _READ_ERRORS,
    REGION,
    SCOPE_ANY,
    _bad_request,
    _common,
    _json,
    _object,
    _query,
    _ref,
    _status_response,
)
from gatekeeper.admin.openapi.list_paths import LIST_PATHS
from gatekeeper.rules import INTENTS
from gatekeeper.types import CHANNELS

PATHS: dict[str, dict[str, Any]] = {
    **LIST_PATHS,
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
    **ATTEMPT_PATHS,
    "/admin/v1/openapi.json": {
        "get": {
            "operationId": "openapi", "tags": ["meta"],
            "summary": "This document (no key needed).",
            "security": [],
            "responses": {"200": _json({"type": "object", "required": ["openapi"]},
                                       "The OpenAPI 3.1 document.")}},
    },
}

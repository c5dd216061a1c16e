"""Replies built without contacting an upstream: the `Reply` value presets return, and
Gatekeeper's own error shape (`code`, `message`, `type`, `request_id`) used by the proxy
and the admin API."""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiohttp import web

DECISION_HEADER = "X-Gatekeeper-Decision"
ERROR_TYPES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 408: "request_timeout", 409: "conflict",
               413: "payload_too_large", 415: "unsupported_media_type",
               422: "unprocessable_content", 502: "bad_gateway",
               503: "service_unavailable", 504: "gateway_timeout"}


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP reply made here (a preset's reject or skip, an error)."""

    status: int
    body: bytes
    content_type: str = "application/json"


def json_reply(status: int, payload: object, content_type: str = "application/json") -> Reply:
    """A JSON reply."""
    return Reply(status, json.dumps(payload).encode(), content_type)


def gatekeeper_error(status: int, code: str, message: str, request_id: str,
                     error_type: str | None = None) -> Reply:
    """Gatekeeper's own error shape: code, message, type, request_id."""
    return json_reply(status, {"code": code, "message": message,
                               "type": error_type or ERROR_TYPES.get(status, "error"),
                               "request_id": request_id})


def to_response(reply: Reply, decision: str | None = None) -> web.Response:
    """An aiohttp response for a reply, with the decision header if given."""
    response = web.Response(status=reply.status, body=reply.body,
                            headers={"Content-Type": reply.content_type})
    if decision is not None:
        response.headers[DECISION_HEADER] = decision
    return response


def error_response(status: int, code: str, message: str, request_id: str,
                   decision: str | None = None) -> web.Response:
    """`{"code", "message", "type", "request_id"}` with the status's type."""
    return to_response(gatekeeper_error(status, code, message, request_id), decision)

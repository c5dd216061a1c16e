"""Gatekeeper's own JSON error replies, shared by the proxy and the admin API."""

from __future__ import annotations

from aiohttp import web

from gatekeeper.providers.base import Reply, gatekeeper_error

DECISION_HEADER = "X-Gatekeeper-Decision"
ERROR_TYPES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed",
               413: "payload_too_large", 502: "bad_gateway", 503: "service_unavailable",
               504: "gateway_timeout"}


def to_response(reply: Reply, decision: str | None = None) -> web.Response:
    """An aiohttp response for a preset's reply, with the decision header if given."""
    response = web.Response(status=reply.status, body=reply.body,
                            headers={"Content-Type": reply.content_type})
    if decision is not None:
        response.headers[DECISION_HEADER] = decision
    return response


def error_response(status: int, code: str, message: str, request_id: str,
                   decision: str | None = None) -> web.Response:
    """`{"code", "message", "type", "request_id"}` with the status's type."""
    reply = gatekeeper_error(status, code, message, request_id, ERROR_TYPES.get(status, "error"))
    return to_response(reply, decision)

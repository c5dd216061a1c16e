"""Forwarding: a request goes to its upstream once, byte for byte; the reply comes back.

Method, path, query (exactly as sent), body and end-to-end headers (the header bytes
exactly as received, `Authorization` included) are kept; hop-by-hop headers and
Gatekeeper's own are dropped, `Host` is the upstream's and `X-Forwarded-For` gets the
peer appended. Nothing is ever retried: a connection that breaks after the request was
written gives the client a 502, never a second copy of the send.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from aiohttp import web

from gatekeeper.observability import REQUEST_ID
from gatekeeper.replies import DECISION_HEADER, error_response
from gatekeeper.resources import Resources
from gatekeeper.upstream import UpstreamError

SCOPE_HEADER = "X-Gatekeeper-Scope"
# What a send is (otp, transactional, marketing): the policy rules applied depend on it.
INTENT_HEADER = "X-Gatekeeper-Intent"
REMOVED_HEADER = "X-Gatekeeper-Removed"
# On a provider list-API reply: the provider's status for the mirrored call, or `failed`.
MIRROR_HEADER = "X-Gatekeeper-Mirror"
# RFC 9110 7.6.1 hop-by-hop headers, plus ones this proxy sets or has consumed itself.
_HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization",
    b"proxy-connection", b"te", b"trailer", b"trailers", b"transfer-encoding", b"upgrade",
})
_NOT_FORWARDED = _HOP_BY_HOP | {
    # The upstream client sets Host and Content-Length; the server already answered
    # Expect and decoded any Content-Encoding of the body it read. X-Forwarded-For is
    # rebuilt with the peer appended.
    b"host", b"content-length", b"expect", b"content-encoding", b"x-forwarded-for",
    SCOPE_HEADER.lower().encode(), INTENT_HEADER.lower().encode(),
}
# Ours replace the upstream's: the decision headers and the request id.
_NOT_RETURNED = _HOP_BY_HOP | {
    b"content-length", b"x-request-id", DECISION_HEADER.lower().encode(),
    REMOVED_HEADER.lower().encode(),
}
_UPSTREAM_FAILURES = {
    "timeout": (504, "upstream_timeout", "The upstream '{}' did not answer in time."),
    "unavailable": (502, "upstream_unavailable", "The upstream '{}' could not be reached."),
    "broken_reply": (502, "upstream_unavailable", "The upstream '{}' reply broke off."),
}


def _connection_named(headers: Sequence[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Header names listed in Connection: hop-by-hop for this message only."""
    return frozenset(token.strip().lower() for name, value in headers
                     if name.lower() == b"connection" for token in value.split(b","))


def forward_headers(request: web.Request) -> list[tuple[bytes, bytes]]:
    """End-to-end request headers for the upstream, byte for byte as received, with the
    peer appended to X-Forwarded-For."""
    raw = request.raw_headers
    named = _connection_named(raw)
    headers: list[tuple[bytes, bytes]] = []
    forwarded_for: list[bytes] = []
    for name, value in raw:
        lower = name.lower()
        if lower in _NOT_FORWARDED or lower in named:
            if lower == b"x-forwarded-for":
                forwarded_for.append(value)
            continue
        headers.append((name, value))
    forwarded_for.append((request.remote or "unknown").encode("ascii", "replace"))
    headers.append((b"X-Forwarded-For", b", ".join(forwarded_for)))
    return headers


def reply_headers(raw: Sequence[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """The upstream's reply headers less hop-by-hop ones, as text for the response."""
    named = _connection_named(raw)
    return [(name.decode("latin-1"), value.decode("utf-8", "replace"))
            for name, value in raw
            if (lower := name.lower()) not in _NOT_RETURNED and lower not in named]


async def relay(resources: Resources, request: web.Request, name: str, target: str,
                body: bytes, time_limit: float, decision: str | None,
                extra_headers: Mapping[str, str] | None = None) -> web.StreamResponse:
    """Send the request on to upstream `name` once (never retried); pass the reply back.

    `time_limit` is the upstream's timeout in seconds, up to the reply's last byte.
    """
    request_id = request[REQUEST_ID]
    if resources.drain.refuse():
        # Stopping, and the drain timed out: not sent, so the client may send it again.
        refused = error_response(503, "draining", "Gatekeeper is stopping; the request was "
                                 "not sent to the upstream.", request_id, decision)
        refused.headers["Retry-After"] = "1"
        refused.force_close()
        return refused
    with resources.drain.sending_upstream():
        return await _relay(resources, request, name, target, body, time_limit, decision,
                            extra_headers)


async def _relay(resources: Resources, request: web.Request, name: str, target: str,
                 body: bytes, time_limit: float, decision: str | None,
                 extra_headers: Mapping[str, str] | None) -> web.StreamResponse:
    request_id = request[REQUEST_ID]
    metrics = resources.metrics
    started = time.perf_counter()
    try:
        reply = await resources.upstreams[name].send(
            request.method, target, forward_headers(request), body, time_limit)
    except UpstreamError as exc:
        metrics.upstream_errors.labels(name, exc.kind).inc()
        if exc.kind != "timeout":
            resources.log.warning("upstream_error", request_id=request_id, upstream=name,
                                  error=str(exc))
        status, code, text = _UPSTREAM_FAILURES[exc.kind]
        failure = error_response(status, code, text.format(name), request_id, decision)
        failure.headers.update(extra_headers or {})
        return failure
    metrics.upstream_answered(name, time.perf_counter() - started)
    headers = reply_headers(reply.headers)
    if decision is not None:
        headers.append((DECISION_HEADER, decision))
    if extra_headers:
        headers.extend(extra_headers.items())
    if reply.body is not None:
        return web.Response(status=reply.status, reason=reply.reason, body=reply.body,
                            headers=headers)
    # Too long to hold, or of unknown length: streamed as it comes.
    headers.append(("X-Request-Id", request_id))
    response = web.StreamResponse(status=reply.status, reason=reply.reason, headers=headers)
    try:
        await response.prepare(request)
        while chunk := await reply.read():
            await response.write(chunk)
    except UpstreamError as exc:
        # Headers are gone already: the client sees a cut-off reply, never a retry.
        metrics.upstream_errors.labels(name, "broken_reply").inc()
        resources.log.warning("upstream_error", request_id=request_id, upstream=name,
                              error=str(exc), during="reply")
        if request.transport is not None:
            request.transport.close()
        return response
    finally:
        reply.close()  # a no-op once the body was read to its end
    await response.write_eof()
    return response

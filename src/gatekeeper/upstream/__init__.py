"""Forwarding to an upstream: a lean HTTP/1.1 client over a pool of kept-alive connections.

Every forwarded request goes through here, so it does only what a proxy needs: write the
request head and body in one `write`, parse the reply with llhttp (`httptools`) and hand
back the status, the raw headers and the body. aiohttp's `ClientSession` spends about
100 us of CPU per request on things a proxy never uses (a cookie jar, redirects, automatic
headers, a task to write the body); this path costs a fraction of that.

Nothing is ever retried. Once a request has been written it is never written again, so
an upstream that closes a kept-alive connection just as a request leaves costs a 502, not
a possible double send. Idle connections are dropped after `keepalive` seconds, before
upstreams usually time them out, to keep that race rare.

Its modules, one noun each: `errors` (UpstreamError and its kinds), `reply` (the Reply and
the body of a streamed one), `connection` (one kept-alive connection: the asyncio protocol
that writes a request and parses its reply) and `pool` (the Upstream: a pool of those
connections to one origin, and the request it writes). This one re-exports the names
callers import.
"""

from __future__ import annotations

from gatekeeper.upstream.connection import HEAD_LIMIT
from gatekeeper.upstream.errors import ErrorKind, UpstreamError
from gatekeeper.upstream.pool import BUFFER_LIMIT, KEEPALIVE, Upstream
from gatekeeper.upstream.reply import Reply

__all__ = [
    "BUFFER_LIMIT",
    "HEAD_LIMIT",
    "KEEPALIVE",
    "ErrorKind",
    "Reply",
    "Upstream",
    "UpstreamError",
]

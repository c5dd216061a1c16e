"""The naive Python ceiling: a minimal aiohttp forwarder with no checks at all.

One shared ClientSession; each request's body is read whole and sent on to the upstream
with its method, path, query and headers (less hop-by-hop ones and Host); the reply's
status, body and content type come back. Default asyncio event loop, no tuning: this is
what "any Python proxy in between" costs, the floor Gatekeeper is compared with.

    python -m bench.passthrough --port 9102 --upstream http://127.0.0.1:9101
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from bench.serving import HOST, serve_until_stopped

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)
_NOT_FORWARDED = frozenset({
    "host", "content-length", "connection", "keep-alive", "proxy-connection",
    "transfer-encoding", "te", "trailer", "upgrade",
})


async def forward(request: web.Request) -> web.Response:
    """Forward the request as it came and return the upstream's reply."""
    body = await request.read()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
    session = request.app[SESSION]
    async with session.request(request.method, request.app[UPSTREAM] + request.raw_path,
                               headers=headers, data=body or None,
                               allow_redirects=False) as reply:
        payload = await reply.read()
        return web.Response(status=reply.status, body=payload,
                            content_type=reply.content_type)


async def serve(port: int, upstream: str) -> None:
    """Serve on 127.0.0.1:`port` until SIGINT or SIGTERM."""
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app.router.add_route("*", "/{tail:.*}", forward)

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession()
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session_ctx)
    await serve_until_stopped(app, port, f"passthrough on http://{HOST}:{port} -> {upstream}")


def main() -> None:
    """Command line: --port, --upstream."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:9101")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.upstream))


if __name__ == "__main__":
    main()

"""A fast fake SMS gateway for the benchmark: answers every request 201 with a small
Twilio-like message resource. Loopback only; runs until SIGINT/SIGTERM.

    python -m bench.upstream --port 9101
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable

from aiohttp import web

from bench.serving import HOST, serve_until_stopped

REPLY = json.dumps({
    "account_sid": "AC00000000000000000000000000000000",
    "api_version": "2010-04-01",
    "body": "hello",
    "date_created": "Thu, 01 Jan 2026 00:00:00 +0000",
    "direction": "outbound-api",
    "error_code": None,
    "from": "+15005550006",
    "num_segments": "1",
    "price": None,
    "sid": "SM00000000000000000000000000000000",
    "status": "queued",
    "to": "+12025550123",
    "uri": "/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages/"
           "SM00000000000000000000000000000000.json",
}, separators=(",", ":")).encode()


async def answer(request: web.Request) -> web.Response:
    """201 and the canned message for any method and path (the body is read, not used)."""
    await request.read()
    return web.Response(status=201, body=REPLY, content_type="application/json")


async def serve(port: int) -> None:
    """Serve on 127.0.0.1:`port` until SIGINT or SIGTERM."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    await serve_until_stopped(app, port, f"fake upstream on http://{HOST}:{port}")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed, else asyncio's default."""
    try:
        import uvloop  # noqa: PLC0415 - optional dependency
    except ImportError:
        return None
    return uvloop.new_event_loop


def main() -> None:
    """Command line: --port."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve(args.port))


if __name__ == "__main__":
    main()

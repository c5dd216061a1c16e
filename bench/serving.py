"""Running a bench server process: listen on loopback until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

HOST = "127.0.0.1"


async def serve_until_stopped(app: web.Application, port: int, banner: str) -> None:
    """Serve `app` on 127.0.0.1:`port`, print `banner`, stop on SIGINT/SIGTERM."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, HOST, port, backlog=1024).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(banner, flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()

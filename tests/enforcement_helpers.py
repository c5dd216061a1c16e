"""Shared pieces of the enforcement tests: a config with several presets, raw requests."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gatekeeper.config import Config, parse_config
from tests.conftest import ADMIN_KEY, Running

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
SID = "AC" + "1" * 32
MESSAGES = f"/twilio/2010-04-01/Accounts/{SID}/Messages.json"
CALLS = f"/twilio/2010-04-01/Accounts/{SID}/Calls.json"
BLOCKED = "+33612345678"       # on the global block list
ALLOWED = "+14155550100"       # on no list
SEED = "+1234567890"           # the per-agent seed's example: not a possible number


def config(upstream_url: str, tmp_path: Path, **overrides: Any) -> Config:
    """Twilio, Telnyx, Vonage, Plivo and a generic upstream on one fake gateway.

    `twilio={...}` etc. update one upstream; other keywords are top-level sections.
    """
    upstreams: dict[str, dict[str, Any]] = {
        "twilio": {"name": "twilio", "url": upstream_url, "preset": "twilio", "region": "US"},
        "telnyx": {"name": "telnyx", "url": upstream_url + "/telnyx", "preset": "telnyx"},
        "vonage": {"name": "vonage", "url": upstream_url + "/vonage", "preset": "vonage"},
        "plivo": {"name": "plivo", "url": upstream_url + "/plivo", "preset": "plivo"},
        "messagebird": {"name": "messagebird", "url": upstream_url + "/mb",
                        "preset": "messagebird"},
        "generic": {"name": "generic", "url": upstream_url + "/generic", "preset": "generic",
                    "routes": [{"method": "POST", "path": "/v1/sms", "channel": "sms",
                                "destination": {"json": "messages[].to"}}]},
    }
    for name in list(upstreams):
        upstreams[name].update(overrides.pop(name, {}))
    raw: dict[str, Any] = {"redis": {"data_dir": str(tmp_path / "data")},
                           "upstreams": list(upstreams.values())}
    raw.update(overrides)
    return parse_config(raw, env={"GATEKEEPER_ADMIN_KEY": ADMIN_KEY}, base=tmp_path)


async def raw_request(gk: Running, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes as they are (no client normalisation); the status and reply body."""
    url = gk.proxy.make_url("/")
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(head + b"\r\nHost: x\r\nConnection: close\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body)
    await writer.drain()
    data = await reader.read()
    writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]

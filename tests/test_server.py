"""The listeners (server.py) on real loopback sockets: malformed requests answered with
Gatekeeper's JSON and one log event; head, body and idle timeouts; handler failures.

Requests are raw bytes over a socket, so every malformed case is exactly what is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import json
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import fakeredis
import pytest
import trustme
import uvloop
from aiohttp import web
from prometheus_client import CollectorRegistry

from gatekeeper.app import create_app
from gatekeeper.config import Config, Timeouts
from gatekeeper.server import GuardedRunner, GuardedSite, Listeners, start_listeners
from tests.conftest import ADMIN_KEY, TWILIO_MESSAGES, FakeUpstream, log_events, make_config

T = TypeVar("T")
SECRET = "sk_live_9f8e7d6c5b4a"  # placed in every bad header: must never come back
FORM = b"To=%2B14155550100&From=%2B15005550006&Body=hi"
NO_UPSTREAM = "http://127.0.0.1:9"  # never contacted by these tests


def timed_config(tmp_path: Path, upstream: str = NO_UPSTREAM, *, header: float = 5.0,
                 body: float = 5.0, idle: float = 5.0, **sections: Any) -> Config:
    """The test config on free loopback ports, both listeners with these timeouts."""
    timeouts = {"header": header, "body": body, "idle": idle}
    proxy = {"host": "127.0.0.1", "port": 0, "timeouts": timeouts, **sections.pop("proxy", {})}
    admin = {"host": "127.0.0.1", "port": 0, "timeouts": timeouts}
    return make_config(upstream, tmp_path, proxy=proxy, admin=admin, **sections)


@contextlib.asynccontextmanager
async def serving(config: Config) -> AsyncIterator[Listeners]:
    """Gatekeeper on fakeredis behind the listeners the CLI starts."""
    app = create_app(config, registry=CollectorRegistry(),
                     redis_client=fakeredis.FakeAsyncRedis(decode_responses=True))
    listeners = await start_listeners(config, app)
    try:
        yield listeners
    finally:
        await listeners.stop()


def run_on(loop: str, scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a scenario on a fresh asyncio or uvloop event loop."""
    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(scenario())


@dataclass
class Raw:
    """A reply as bytes, the time until the server closed, and its parts."""

    data: bytes
    seconds: float

    @property
    def status(self) -> int:
        return int(self.data.split(b" ", 2)[1])

    @property
    def headers(self) -> dict[str, str]:
        head = self.data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]
        return {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head)}

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.data.partition(b"\r\n\r\n")[2]))


async def exchange(port: int, *parts: bytes, pause: float = 0.05, limit: float = 5.0,
                   ssl_context: ssl.SSLContext | None = None) -> Raw:
    """Send `parts` (pausing between them, stopping when the server has closed), and read
    until the server closes. A reset after the reply (the client's later bytes reaching
    a socket the server closed) ends the reading; what arrived before it counts."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ssl_context)
    started = loop.time()
    received = bytearray()

    async def read_all() -> bytes:
        try:
            while chunk := await reader.read(65536):
                received.extend(chunk)
        except ConnectionResetError:
            if not received:
                raise
        return bytes(received)

    reading = asyncio.create_task(read_all())
    try:
        for i, part in enumerate(parts):
            if i:
                await asyncio.wait([reading], timeout=pause)
            if reading.done():
                break
            writer.write(part)
        data = await asyncio.wait_for(reading, limit)
    finally:
        reading.cancel()
        writer.close()
    return Raw(data, loop.time() - started)


def post(path: str, body: bytes, *extra: bytes, length: int | None = None) -> bytes:
    """A POST head (and `body`) with the given extra header lines."""
    size = len(body) if length is None else length
    lines = [f"POST {path} HTTP/1.1".encode(), b"Host: gk", *extra,
             b"Content-Type: application/x-www-form-urlencoded",
             f"Content-Length: {size}".encode()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


AUTH = f"Authorization: Bearer {SECRET}".encode()
CHUNKED_HEAD = (f"POST {TWILIO_MESSAGES} HTTP/1.1\r\nHost: gk\r\n".encode() + AUTH +
                b"\r\nTransfer-Encoding: chunked\r\n\r\n")
GZIP_BODY = gzip.compress(FORM)[:-8] + b"garbage!"
MALFORMED = [
    # (case, listener, parts, status, error class logged)
    ("bad_header_byte", "proxy", [b"GET /twilio HTTP/1.1\r\n" + AUTH + b"\x01\r\n\r\n"],
     400, "BadHttpMessage"),
    ("bad_header_name", "admin", [b"GET /healthz HTTP/1.1\r\nAuth(x: " + SECRET.encode() +
                                  b"\r\n\r\n"], 400, "BadHttpMessage"),
    ("header_line_too_long", "proxy", [b"GET / HTTP/1.1\r\n" + AUTH + b"A" * 9000 +
                                       b"\r\n\r\n"], 431, "LineTooLong"),
    ("too_many_headers", "admin", [b"GET / HTTP/1.1\r\n" + b"".join(
        b"X-K%d: %s\r\n" % (i, SECRET.encode()) for i in range(200)) + b"\r\n"],
     431, "BadHttpMessage"),
    ("target_too_long", "proxy", [b"GET /" + SECRET.encode() * 600 + b" HTTP/1.1\r\n\r\n"],
     431, "LineTooLong"),
    ("broken_chunked", "proxy", [CHUNKED_HEAD + b"ZZ" + SECRET.encode() + b"\r\n"],
     400, "BadHttpMessage"),
    ("broken_chunk_mid_body", "proxy", [CHUNKED_HEAD + b"5\r\nTo=%2\r\n",
                                        b"Z" + SECRET.encode() + b"\r\n"],
     400, "BadHttpMessage"),
    ("bad_content_encoding", "proxy", [post(TWILIO_MESSAGES, GZIP_BODY, AUTH,
                                            b"Content-Encoding: gzip")],
     400, "ContentEncodingError"),
    ("http2_preface", "proxy", [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"], 400, "BadHttpMessage"),
    ("bad_request_line", "admin", [b"GET /" + SECRET.encode() + b" HTTP/1.1 x\r\n\r\n"],
     400, "BadStatusLine"),
    ("bad_version", "proxy", [b"GET /twilio HTTP/7.1\r\nHost: gk\r\n\r\n"], 400,
     "BadStatusLine"),
    ("tls_on_plain_port", "proxy", [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" +
                                    SECRET.encode()], 400, "BadHttpMethod"),
    ("nul_in_target", "admin", [b"GET /\x00" + SECRET.encode() + b" HTTP/1.1\r\n\r\n"],
     400, "InvalidURLError"),
    ("obs_fold", "proxy", [b"GET /twilio HTTP/1.1\r\n" + AUTH + b"\r\n " + SECRET.encode() +
                           b"\r\n\r\n"], 400, "BadHttpMessage"),
    ("bad_content_length", "proxy", [post(TWILIO_MESSAGES, b"x", AUTH, length=None)
                                     .replace(b"Length: 1", b"Length: 1" + SECRET.encode())],
     400, "BadHttpMessage"),
    ("length_and_chunked", "admin", [b"POST / HTTP/1.1\r\n" + AUTH + b"\r\nContent-Length: "
                                     b"3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"],
     400, "BadHttpMessage"),
    ("absolute_form", "proxy", [b"GET http://" + SECRET.encode() + b".example" +
                                TWILIO_MESSAGES.encode() + b" HTTP/1.1\r\nHost: gk\r\n\r\n"],
     400, "UnsupportedTarget"),
    ("asterisk_form", "admin", [b"OPTIONS * HTTP/1.1\r\nHost: gk\r\n" + AUTH + b"\r\n\r\n"],
     400, "UnsupportedTarget"),
    ("authority_form", "proxy", [b"CONNECT " + SECRET.encode() + b".example:443 HTTP/1.1\r\n"
                                 b"Host: gk\r\n\r\n"], 400, "UnsupportedTarget"),
]


@pytest.mark.parametrize(("case", "listener", "parts", "status", "error"), MALFORMED,
                         ids=[m[0] for m in MALFORMED])
async def test_malformed_request_gets_json_error_and_one_log_event(
        case: str, listener: str, parts: list[bytes], status: int, error: str,
        tmp_path: Path, log_output: io.StringIO, capfd: pytest.CaptureFixture[str]) -> None:
    """JSON error shape, no echo of the bad bytes, one `malformed_request` event, no
    traceback or anything else on stderr, and the connection closed."""
    async with serving(timed_config(tmp_path)) as gk:
        port = gk.proxy_port if listener == "proxy" else gk.admin_port
        started = len(log_output.getvalue())  # start-up events left out
        reply = await exchange(port, *parts, pause=0.2)
    logged = io.StringIO(log_output.getvalue()[started:])
    assert reply.status == status, reply.data
    body = reply.json
    assert body["code"] == "malformed_request"
    assert body["type"] == ("bad_request" if status == 400 else
                            "request_header_fields_too_large")
    assert body["request_id"] == reply.headers["x-request-id"]
    assert body["message"].endswith(".")
    assert len(body["message"]) < 120
    # Closed: read to the end well before any timeout (HTTP/1.0 replies imply close).
    assert reply.headers.get("connection", "close") == "close"
    assert reply.seconds < 2.0
    assert SECRET.encode() not in reply.data
    assert SECRET not in log_output.getvalue()
    events = [e for e in log_events(logged) if e["level"] in ("warning", "error")]
    assert [e["event"] for e in events] == ["malformed_request"], events
    [event] = events
    assert event["listener"] == listener
    assert event["error"] == error
    assert event["peer"].startswith("127.0.0.1:")
    assert event["request_id"] == body["request_id"]
    captured = capfd.readouterr()
    assert captured.err == ""
    assert SECRET not in captured.out


async def test_fresh_connection_without_head_closed_after_header_timeout(
        tmp_path: Path, log_output: io.StringIO) -> None:
    """A connection that sends nothing is closed silently after `header` seconds."""
    async with serving(timed_config(tmp_path, header=0.4, idle=5.0)) as gk:
        reply = await exchange(gk.proxy_port)
    assert reply.data == b""
    assert 0.3 < reply.seconds < 1.5
    [event] = [e for e in log_events(log_output) if e["event"] == "client_timeout"]
    assert event["phase"] == "header"
    assert event["listener"] == "proxy"
    assert event["received"] == 0


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_slow_head_gets_408_at_header_timeout(loop: str, tmp_path: Path) -> None:
    """Dribbling a head byte by byte does not extend the head's time: 408 JSON, closed."""
    head = f"GET /healthz HTTP/1.1\r\nHost: gk\r\nAuthorization: Bearer {SECRET}\r\n".encode()

    async def scenario() -> Raw:
        async with serving(timed_config(tmp_path, header=0.5, idle=5.0)) as gk:
            return await exchange(gk.admin_port, *(head[i:i + 1] for i in range(len(head))),
                                  pause=0.02)

    reply = run_on(loop, scenario)
    assert reply.status == 408
    assert reply.json["code"] == "request_timeout"
    assert reply.json["type"] == "request_timeout"
    assert SECRET.encode() not in reply.data
    assert 0.4 < reply.seconds < 1.5


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_408_survives_a_client_that_keeps_sending(loop: str, tmp_path: Path) -> None:
    """After the head timeout the 408 is followed by the end of the stream, and what the
    client still sends is discarded (no reset that could destroy the reply); the
    connection ends when the client closes."""
    async def scenario() -> tuple[bytes, int]:
        async with serving(timed_config(tmp_path, header=0.3, idle=5.0)) as gk:
            reader, writer = await asyncio.open_connection("127.0.0.1", gk.admin_port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost")
            await asyncio.sleep(0.6)  # the 408 and the end of the stream are sent
            for _ in range(5):  # a client that did not notice
                writer.write(b"x" * 2000)
                await asyncio.sleep(0.02)
            data = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            await asyncio.sleep(0.1)
            server = gk.admin.server
            assert server is not None
            return data, len(server.connections)

    data, left = run_on(loop, scenario)
    assert data.startswith(b"HTTP/1.1 408"), data[:100]
    assert left == 0


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_slow_body_gets_408_request_timeout(loop: str, tmp_path: Path) -> None:
    """A body that stops coming: the handler's read fails, 408 JSON, connection closed."""

    async def scenario() -> tuple[Raw, Raw]:
        async with serving(timed_config(tmp_path, header=5.0, body=0.5)) as gk:
            proxied = await exchange(gk.proxy_port, post(TWILIO_MESSAGES, FORM[:10],
                                                         length=len(FORM)))
            admin = await exchange(gk.admin_port, post(
                "/admin/v1/lists/block/entries", b'{"entries": [',
                f"Authorization: Bearer {ADMIN_KEY}".encode(), length=100))
            return proxied, admin

    for reply in run_on(loop, scenario):
        assert reply.status == 408, reply.data
        assert reply.json["code"] == "request_timeout"
        assert reply.headers["connection"] == "close"
        assert 0.4 < reply.seconds < 2.0


async def test_body_unread_after_reply_closed_at_body_timeout(tmp_path: Path) -> None:
    """A reply sent without reading the body: the rest of the body is awaited only until
    the body timeout (not aiohttp's 10 s lingering)."""
    async with serving(timed_config(tmp_path, header=5.0, body=0.5)) as gk:
        reply = await exchange(gk.proxy_port, post("/nowhere", b"x" * 10, length=1000))
    assert reply.status == 404
    assert 0.4 < reply.seconds < 2.0


async def test_idle_keepalive_connection_closed_after_idle(tmp_path: Path) -> None:
    """After a reply, a kept-alive connection may idle longer than `header` (the head clock
    starts at the next request's first byte), and is closed after `idle`."""
    request = b"GET /healthz HTTP/1.1\r\nHost: gk\r\n\r\n"
    async with serving(timed_config(tmp_path, header=0.3, idle=1.0)) as gk:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", gk.admin_port)
        writer.write(request)
        first = await reader.readuntil(b'"ok"}')
        await asyncio.sleep(0.6)  # longer than header, shorter than idle
        writer.write(request)
        second = await reader.readuntil(b'"ok"}')
        answered = loop.time()
        rest = await asyncio.wait_for(reader.read(), 3.0)
        idle_for = loop.time() - answered
        writer.close()
    assert first.startswith(b"HTTP/1.1 200")
    assert second.startswith(b"HTTP/1.1 200")
    assert rest == b""
    assert 0.8 < idle_for < 2.0


async def test_pipelined_head_does_not_cut_the_reply_in_progress(
        tmp_path: Path, upstream: FakeUpstream) -> None:
    """A slow next head behind a slow request: the first reply completes, then 408."""
    upstream.delay = 1.0
    async with serving(timed_config(tmp_path, upstream.url, header=0.3)) as gk:
        reply = await exchange(gk.proxy_port, post(TWILIO_MESSAGES, FORM),
                               b"GET /twilio HT", pause=0.1)
    first, _, second = reply.data.partition(b"HTTP/1.1 408")
    assert first.startswith(b"HTTP/1.1 201")
    assert first.endswith(upstream.reply)
    assert b'"request_timeout"' in second
    assert 1.0 < reply.seconds < 2.5


async def test_tls_handshake_bounded_by_header_timeout(tmp_path: Path) -> None:
    """On the TLS listener a client that never completes the handshake is dropped after
    `header` seconds (asyncio's default would wait 60 s); a real client is served."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "proxy.crt")
    cert.private_key_pem.write_to_path(tmp_path / "proxy.key")
    client = ssl.create_default_context()
    ca.configure_trust(client)
    config = timed_config(tmp_path, header=0.5,
                          proxy={"tls": {"cert": "proxy.crt", "key": "proxy.key"}})
    async with serving(config) as gk:
        stalled = await exchange(gk.proxy_port, b"\x16\x03\x01")  # a handshake cut short
        served = await exchange(gk.proxy_port, b"GET /nowhere HTTP/1.1\r\nHost: gk\r\n"
                                b"Connection: close\r\n\r\n", ssl_context=client)
    assert stalled.data == b""
    assert 0.4 < stalled.seconds < 1.5
    assert served.status == 404


async def test_body_in_parts_within_body_timeout_is_served(
        tmp_path: Path, upstream: FakeUpstream) -> None:
    """A body sent in pieces, each well inside the timeout, is forwarded as usual."""
    request = post(TWILIO_MESSAGES, FORM, b"Connection: close")
    head, body = request.split(b"\r\n\r\n", 1)
    async with serving(timed_config(tmp_path, upstream.url, header=0.5, body=1.0)) as gk:
        reply = await exchange(gk.proxy_port, head[:20], head[20:] + b"\r\n\r\n",
                               body[:10], body[10:], pause=0.2)
    assert reply.status == 201
    assert upstream.received[0].body == FORM


async def test_client_gone_mid_body_logs_no_error(
        tmp_path: Path, log_output: io.StringIO, capfd: pytest.CaptureFixture[str]) -> None:
    """A client that leaves half-way through a body: no error, traceback or reply."""
    async with serving(timed_config(tmp_path)) as gk:
        started = len(log_output.getvalue())
        _, writer = await asyncio.open_connection("127.0.0.1", gk.proxy_port)
        writer.write(post(TWILIO_MESSAGES, FORM[:10], length=len(FORM)))
        await asyncio.sleep(0.1)
        writer.close()
        await asyncio.sleep(0.2)
    events = log_events(io.StringIO(log_output.getvalue()[started:]))
    assert [e for e in events if e["level"] in ("warning", "error")] == []
    assert capfd.readouterr().err == ""


async def test_handler_failure_gets_json_error(tmp_path: Path) -> None:
    """A handler's own failure: 500 `internal_error` (504 for a timeout it let out), in
    Gatekeeper's shape."""

    async def broken(_request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    async def timed_out(_request: web.Request) -> web.Response:
        raise TimeoutError

    app = web.Application()
    app.router.add_get("/bug", broken)
    app.router.add_get("/timeout", timed_out)
    runner = GuardedRunner(app, "test", Timeouts())
    await runner.setup()
    site = GuardedSite(runner, "127.0.0.1", 0)
    try:
        await site.start()
        bug = await exchange(site.port, b"GET /bug HTTP/1.1\r\nHost: gk\r\n\r\n")
        late = await exchange(site.port, b"GET /timeout HTTP/1.1\r\nHost: gk\r\n\r\n")
    finally:
        await runner.cleanup()
    assert (bug.status, bug.json["code"], bug.json["type"]) == \
        (500, "internal_error", "internal_error")
    assert bug.json["request_id"] == bug.headers["x-request-id"]
    assert (late.status, late.json["code"]) == (504, "handler_timeout")


async def test_body_held_back_by_a_slow_handler_is_not_timed_out() -> None:
    """Time the handler leaves the body unread (the client is held by flow control) does
    not count against the client's body timeout."""
    got: list[int] = []

    async def slow_reader(request: web.Request) -> web.Response:
        size = 0
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
            await asyncio.sleep(0.05)  # about 1.3 s for 1.6 MB, over the 0.5 s timeout
        got.append(size)
        return web.json_response({"size": size})

    app = web.Application()
    app.router.add_post("/upload", slow_reader)
    runner = GuardedRunner(app, "test", Timeouts(header=5.0, body=0.5, idle=5.0))
    await runner.setup()
    site = GuardedSite(runner, "127.0.0.1", 0)
    body = b"x" * 1_600_000
    try:
        await site.start()
        reply = await exchange(site.port, post("/upload", body, b"Connection: close"))
    finally:
        await runner.cleanup()
    assert reply.status == 200, reply.data[:200]
    assert got == [len(body)]
    assert reply.seconds > 0.5

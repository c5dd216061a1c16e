"""`rediss://` options reach the lean lookup connection: its TLS context trusts the CA
the URL names and presents the client certificate it names, as redis-py's connections
do. Checked with real TLS handshakes against a loopback server that requires a client
certificate (the suite's redis-server is built without TLS)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import trustme
from redis.connection import parse_url

from gatekeeper.store.pipe import tls_context


async def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> bool:
    """Whether a client with `client_ctx` completes a TLS handshake (and one byte) with
    a loopback server using `server_ctx`."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"+")
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx,
                                                       server_hostname="127.0.0.1")
        data = await asyncio.wait_for(reader.read(1), 5)
        writer.close()
        return data == b"+"
    except (ssl.SSLError, ConnectionError, OSError):
        return False
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
def pki(tmp_path: Path) -> tuple[ssl.SSLContext, dict[str, str]]:
    """A server context requiring client certificates of a private CA, and the files of
    that CA and of one client certificate."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    ca.configure_trust(server)
    server.verify_mode = ssl.CERT_REQUIRED
    files = {"ca": str(tmp_path / "ca.pem"), "cert": str(tmp_path / "client.pem"),
             "key": str(tmp_path / "client.key")}
    ca.cert_pem.write_to_path(files["ca"])
    client = ca.issue_cert("gatekeeper@example.test")
    client.cert_chain_pems[0].write_to_path(files["cert"])
    client.private_key_pem.write_to_path(files["key"])
    return server, files


async def test_ca_and_client_certificate_from_the_url(
        pki: tuple[ssl.SSLContext, dict[str, str]]) -> None:
    """With the URL's CA and client certificate the handshake succeeds."""
    server, files = pki
    options = parse_url(f"rediss://127.0.0.1:6380/0?ssl_ca_certs={files['ca']}"
                        f"&ssl_certfile={files['cert']}&ssl_keyfile={files['key']}")
    assert await handshake(server, tls_context(options))


async def test_without_the_client_certificate_the_server_refuses(
        pki: tuple[ssl.SSLContext, dict[str, str]]) -> None:
    """Only the CA: the server (requiring a client certificate) refuses."""
    server, files = pki
    options = parse_url(f"rediss://127.0.0.1:6380/0?ssl_ca_certs={files['ca']}")
    assert not await handshake(server, tls_context(options))


async def test_without_the_ca_the_server_is_not_trusted(
        pki: tuple[ssl.SSLContext, dict[str, str]]) -> None:
    """The system store does not know the private CA: the client refuses the server."""
    server, files = pki
    options = parse_url(f"rediss://127.0.0.1:6380/0?ssl_certfile={files['cert']}"
                        f"&ssl_keyfile={files['key']}")
    assert not await handshake(server, tls_context(options))


def test_cert_reqs_none_turns_verification_off() -> None:
    """`ssl_cert_reqs=none` (as redis-py reads it): no verification, no hostname check."""
    context = tls_context(parse_url("rediss://h:6380/0?ssl_cert_reqs=none"))
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_NONE, False)

"""The request target is read once, the widest way any gateway could read it: spellings
that reach a send route are checked, spellings no two servers agree on are refused, and
write methods a gateway may take for a send are checked like POST."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import FakeUpstream, StartGatekeeper, decisions
from tests.enforcement_helpers import BLOCKED, FORM, SID, config, raw_request

ACCOUNT = f"/twilio/2010-04-01/Accounts/{SID}"
TO_BLOCKED = f"To={BLOCKED.replace('+', '%2B')}&Body=hi".encode()


@pytest.mark.parametrize("path", [
    f"{ACCOUNT}/Messages.json",
    f"{ACCOUNT}/messages.JSON",
    f"{ACCOUNT.lower()}/MESSAGES",
    f"{ACCOUNT}/Messages.xml",
    f"{ACCOUNT}/Messages.csv",
    f"{ACCOUNT}//Messages.json",
    f"{ACCOUNT}/Messages.json/",
    f"/twilio//2010-04-01///Accounts/{SID}/Messages.json",
    f"{ACCOUNT}/%4Dessages.json",
    f"{ACCOUNT}/Mess%61ges%2Ejson",
    f"{ACCOUNT}/SMS/Messages.json",
], ids=["plain", "case-suffix", "case-all", "xml", "other-suffix", "double-slash",
        "trailing-slash", "slashes-everywhere", "encoded-letter", "encoded-letter-and-dot",
        "legacy-sms"])
async def test_every_spelling_of_a_send_path_is_checked(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        path: str) -> None:
    """However the path is spelled, the send is a Twilio message and the block holds."""
    gk = await start_gatekeeper(config(upstream.url, tmp_path))
    await gk.block(BLOCKED)
    status, _ = await raw_request(gk, f"POST {path} HTTP/1.1\r\nContent-Type: {FORM}".encode(),
                                  TO_BLOCKED)
    assert status == 403
    assert upstream.received == []
    assert decisions(gk.registry, "twilio", "sms", "rejected", "blocked") == 1


@pytest.mark.parametrize("path", [
    f"{ACCOUNT}/Messages.json;jsessionid=1",
    f"{ACCOUNT}/Messages.json%3Bx",
    f"/twilio/2010-04-01/Accounts%2F{SID}/Messages.json",
    f"{ACCOUNT}%5CMessages.json",
    f"{ACCOUNT}\\Messages.json",
    f"{ACCOUNT}/%254Dessages.json",
    f"{ACCOUNT}/Calls/../Messages.json",
    f"{ACCOUNT}/Calls/%2E%2E/Messages.json",
    f"{ACCOUNT}/./Messages.json",
    f"{ACCOUNT}/Messages.json%3Fx=1",
    f"{ACCOUNT}/Messages.json#frag",
    f"{ACCOUNT}/Messages%00.json",
    f"{ACCOUNT}/Messages%20.json",
    f"{ACCOUNT}/Messag%C3%A9s.json",
    f"{ACCOUNT}/Messages%zz.json",
    f"{ACCOUNT}/Messages|.json",
], ids=["path-parameter", "encoded-semicolon", "encoded-slash", "encoded-backslash",
        "backslash", "double-encoding", "dot-dot", "encoded-dot-dot", "dot", "encoded-query",
        "fragment", "nul", "space", "non-ascii", "bad-escape", "other-character"])
async def test_ambiguous_path_spellings_are_refused(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        path: str) -> None:
    """A path some server could read differently is 400 invalid_path, never forwarded."""
    gk = await start_gatekeeper(config(upstream.url, tmp_path))
    status, body = await raw_request(
        gk, f"POST {path} HTTP/1.1\r\nContent-Type: {FORM}".encode(), TO_BLOCKED)
    assert status == 400
    assert b'"invalid_path"' in body
    assert upstream.received == []


@pytest.mark.parametrize("target", ["http://example.com" + f"{ACCOUNT}/Messages.json", "*"],
                         ids=["absolute-form", "asterisk-form"])
async def test_targets_that_are_not_paths_are_refused(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        target: str) -> None:
    """Only origin-form targets are read; anything else is 400, never forwarded."""
    gk = await start_gatekeeper(config(upstream.url, tmp_path))
    status, _ = await raw_request(gk, f"OPTIONS {target} HTTP/1.1".encode()
                                  if target == "*" else f"POST {target} HTTP/1.1".encode(),
                                  TO_BLOCKED)
    assert status in (400, 404)
    assert upstream.received == []


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
async def test_write_methods_on_a_send_path_are_checked_like_post(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        method: str) -> None:
    """A gateway may take PUT or PATCH for a send: it is checked as the POST would be."""
    gk = await start_gatekeeper(config(upstream.url, tmp_path))
    await gk.block(BLOCKED)
    resp = await gk.proxy.request(method, f"{ACCOUNT}/Messages.json", data=TO_BLOCKED,
                                  headers={"Content-Type": FORM})
    assert resp.status == 403
    assert upstream.received == []


async def test_a_read_with_a_blocked_number_in_its_filter_passes(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """GET Messages.json?To=... lists messages (Twilio sends nothing on GET): forwarded."""
    gk = await start_gatekeeper(config(upstream.url, tmp_path))
    await gk.block(BLOCKED)
    resp = await gk.proxy.get(f"{ACCOUNT}/Messages.json?To=%2B33612345678")
    assert resp.status == 201
    assert "X-Gatekeeper-Decision" not in resp.headers
    assert len(upstream.received) == 1


@pytest.mark.parametrize("name", ["X-HTTP-Method-Override", "X-HTTP-Method",
                                  "X-Method-Override"])
async def test_a_method_override_header_naming_another_method_is_refused(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        name: str) -> None:
    """A GET that some framework would read as a POST is 400 ambiguous_request."""
    gk = await start_gatekeeper(config(upstream.url, tmp_path))
    resp = await gk.proxy.get(f"{ACCOUNT}/Messages.json?To=%2B33612345678",
                              headers={name: "POST"})
    assert resp.status == 400
    assert (await resp.json())["code"] == "ambiguous_request"
    assert upstream.received == []
    same = await gk.proxy.get(f"{ACCOUNT}/Messages.json", headers={name: "get"})
    assert same.status == 201  # naming its own method changes nothing


@pytest.mark.parametrize("coding", ["x-gzip", "gzip, identity", "gzip, gzip", "compress"])
async def test_a_content_coding_the_server_does_not_decode_is_refused(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        coding: str) -> None:
    """A body still encoded when the checks read it cannot be read: 415, never passed on."""
    gk = await start_gatekeeper(config(upstream.url, tmp_path))
    resp = await gk.proxy.post("/telnyx/v2/anything", data=b"\x1f\x8b opaque",
                               headers={"Content-Encoding": coding,
                                        "Content-Type": "application/octet-stream"})
    assert resp.status == 415
    assert (await resp.json())["code"] == "unsupported_content_encoding"
    assert upstream.received == []


async def test_a_malformed_request_gets_json_and_a_request_id(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Refused by the HTTP parser itself: Gatekeeper's JSON shape, X-Request-Id, nothing
    forwarded."""
    gk = await start_gatekeeper(config(upstream.url, tmp_path))
    url = gk.proxy.make_url("/")
    import asyncio  # noqa: PLC0415

    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(f"POST {ACCOUNT}/Messages.json HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                 "Content-Length: 4\r\n\r\nabcd".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert b" 400 " in head.split(b"\r\n")[0]
    assert b"x-request-id:" in head.lower()
    assert b'"malformed_request"' in body
    assert upstream.received == []

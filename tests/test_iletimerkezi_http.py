"""iletiMerkezi through the proxy with plain HTTP requests shaped as its docs show.

iletiMerkezi has no SDK on PyPI; its own Python client posts `json.dumps(payload)` with
urllib and reads the JSON error body of a 4xx, which one test does the same way.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeUpstream, Running, StartGatekeeper, decisions, make_config

JSON_SEND = "/iletimerkezi/v1/send-sms/json"
XML_SEND = "/iletimerkezi/v1/send-sms"
GET_SEND = "/iletimerkezi/v1/send-sms/get/"
BLOCKED = "+905301234567"  # the admin list holds E.164; clients write it many ways
OK1, OK2 = "5301234568", "905301234569"
SUCCESS = {"response": {"status": {"code": 200, "message": "İşlem başarılı"},  # noqa: RUF001
                        "order": {"id": "12323232"}}}
REJECTED = {"response": {"status": {"code": 452, "message": "Mesaj alıcıları hatalı"}}}  # noqa: RUF001


def order(message: object, key: str = "API_KEY") -> dict[str, Any]:
    """A send-sms order as the JSON docs show it."""
    return {"request": {"authentication": {"key": key, "hash": "API_HASH"},
                        "order": {"sender": "APITEST", "sendDateTime": "", "iys": "0",
                                  "message": message}}}


def msg(*numbers: str, text: str = "Kodunuz: 1234") -> dict[str, Any]:
    """One message object."""
    return {"text": text, "receipents": {"number": list(numbers)}}


def as_sent(doc: object) -> bytes:
    """A document as `post_json` sends it: a partial rewrite cuts bytes out of the body
    and re-encodes nothing, so the forwarded body keeps the sender's formatting."""
    return json.dumps(doc).encode()


def xml(*messages: tuple[str, ...]) -> bytes:
    """An XML order as the XML docs show it."""
    parts = "".join(
        "<message><text><![CDATA[Test mesaji.]]></text><receipents>"
        + "".join(f"<number>{n}</number>" for n in numbers)
        + "</receipents></message>" for numbers in messages)
    return ('<?xml version="1.0" encoding="UTF-8" ?><request><authentication><key>API_KEY</key>'
            f"<hash>H</hash></authentication><order><sender>APITEST</sender>{parts}</order>"
            "</request>").encode()


async def start(start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
                **settings: Any) -> Running:
    """Gatekeeper with one `iletimerkezi` upstream and +90 530 123 45 67 blocked."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path, upstreams=[
        {"name": "iletimerkezi", "url": upstream.url, "preset": "iletimerkezi", **settings}]))
    await gk.block(BLOCKED)
    upstream.status, upstream.reply = 200, json.dumps(SUCCESS).encode()
    return gk


async def post_json(gk: Running, doc: object) -> tuple[int, dict[str, str], Any]:
    """POST a JSON order as iletiMerkezi's client does; status, headers, parsed reply."""
    resp = await gk.proxy.post(JSON_SEND, data=json.dumps(doc).encode(),
                               headers={"Content-Type": "application/json",
                                        "Accept": "application/json"})
    return resp.status, dict(resp.headers), json.loads(await resp.read())


# --------------------------------------------------------------------------- JSON


@pytest.mark.parametrize("message", [msg(OK1, OK2), [msg(OK1, text="a"), msg(OK2, text="b")]],
                         ids=["single-message", "message-array"])
async def test_allowed_order_arrives_unchanged(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        message: object) -> None:
    """No blocked number: the exact bytes reach iletiMerkezi; its reply comes back."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    status, headers, reply = await post_json(gk, order(message))
    assert (status, reply) == (200, SUCCESS)
    assert headers["X-Gatekeeper-Decision"] == "forwarded"
    [got] = upstream.received
    assert (got.method, got.path_qs) == ("POST", "/v1/send-sms/json")
    assert got.body == json.dumps(order(message)).encode()


@pytest.mark.parametrize("written", ["905301234567", "+905301234567", "5301234567",
                                     "05301234567"])
async def test_partly_blocked_single_message_loses_the_blocked_number(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        written: str) -> None:
    """Whichever documented form the blocked number is written in, it is removed."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    status, headers, reply = await post_json(gk, order(msg(OK1, written, OK2)))
    assert (status, reply) == (200, SUCCESS)
    assert headers["X-Gatekeeper-Decision"] == "partial"
    assert headers["X-Gatekeeper-Removed"] == "1"
    [got] = upstream.received
    assert got.body == as_sent(order(msg(OK1, OK2)))
    assert decisions(gk.registry, "iletimerkezi", "sms", "partial", "blocked") == 1


async def test_message_array_drops_a_message_left_without_numbers(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Per-recipient texts: the blocked recipient's message disappears, the rest is kept."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    sent = order([msg(OK1, text="Ayşe"), msg("5301234567", text="Mehmet"),
                  msg(OK2, "+905301234567", text="Herkes")])
    status, headers, _ = await post_json(gk, sent)
    assert (status, headers["X-Gatekeeper-Decision"]) == (200, "partial")
    [got] = upstream.received
    assert got.body == as_sent(order([msg(OK1, text="Ayşe"), msg(OK2, text="Herkes")]))


@pytest.mark.parametrize("message", [msg("05301234567", "+905301234567"),
                                     [msg("5301234567"), msg("905301234567")]],
                         ids=["single-message", "message-array"])
async def test_every_recipient_blocked_gets_452(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        message: object) -> None:
    """Nothing is sent; the client gets iletiMerkezi's own 452 in status and body."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    status, headers, reply = await post_json(gk, order(message))
    assert (status, reply) == (452, REJECTED)
    assert headers["X-Gatekeeper-Decision"] == "rejected"
    assert upstream.received == []
    assert decisions(gk.registry, "iletimerkezi", "sms", "rejected", "blocked") == 1


async def test_skip_answers_success_without_sending(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """on_block=skip: a 200 "İşlem başarılı" with an order id, and nothing sent."""  # noqa: RUF002
    gk = await start(start_gatekeeper, upstream, tmp_path, on_block="skip")
    status, headers, reply = await post_json(gk, order(msg("5301234567")))
    assert status == 200
    assert headers["X-Gatekeeper-Decision"] == "skipped"
    assert reply["response"]["status"] == SUCCESS["response"]["status"]
    assert reply["response"]["order"]["id"].isdigit()
    assert upstream.received == []


async def test_api_key_maps_the_order_to_its_scope(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A number blocked for the key's tenant only is blocked for that key, not another."""
    gk = await start(start_gatekeeper, upstream, tmp_path,
                     credentials={"TENANT_KEY": ["tenant:acme"]})
    await gk.block("+905301234568", scope="tenant:acme")
    status, _, _ = await post_json(gk, order(msg(OK1), key="TENANT_KEY"))
    assert status == 452
    status, _, _ = await post_json(gk, order(msg(OK1), key="OTHER_KEY"))
    assert status == 200
    assert len(upstream.received) == 1


async def test_official_client_style_reads_the_452_body(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """urllib as iletiMerkezi's Python client uses it: HTTPError 452 with a JSON body."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    url = str(gk.proxy.make_url(JSON_SEND))
    request = urllib.request.Request(
        url, data=json.dumps(order(msg("905301234567"))).encode(), method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"})

    def send() -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read().decode("utf-8"))

    assert await asyncio.to_thread(send) == (452, REJECTED)
    assert upstream.received == []


# --------------------------------------------------------------------------- XML and GET


async def test_xml_order_partly_blocked(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """The XML API: the blocked `<number>` and a message left empty are cut out."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    upstream.reply = b"<response><status><code>200</code></status></response>"
    resp = await gk.proxy.post(XML_SEND, data=xml((OK1, "5301234567"), ("+905301234567",)))
    assert resp.status == 200
    assert resp.headers["X-Gatekeeper-Decision"] == "partial"
    [got] = upstream.received
    assert got.path_qs == "/v1/send-sms"
    assert got.body == xml((OK1,))


async def test_xml_order_all_blocked_gets_xml_452(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """The refusal comes in the XML API's own format."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    resp = await gk.proxy.post(XML_SEND, data=xml(("5301234567",)))
    assert resp.status == 452
    assert resp.headers["Content-Type"].startswith("application/xml")
    assert "<code>452</code>" in await resp.text()
    assert upstream.received == []


async def test_get_api_partly_blocked(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """The GET API: `receipents` loses the blocked number; other parameters stay as sent."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    query = ("key=API_KEY&hash=H&text=Lorem%20ipsum&receipents=5301234568,5301234567"
             "&sender=APITEST")
    resp = await gk.proxy.get(f"{GET_SEND}?{query}")
    assert resp.status == 200
    assert resp.headers["X-Gatekeeper-Decision"] == "partial"
    [got] = upstream.received
    assert got.method == "GET"
    assert got.path_qs == ("/v1/send-sms/get/?key=API_KEY&hash=H&text=Lorem%20ipsum"
                           "&receipents=5301234568&sender=APITEST")


async def test_other_calls_pass_through(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Calls that are neither sends nor list changes (balance) are forwarded untouched."""
    gk = await start(start_gatekeeper, upstream, tmp_path)
    raw = json.dumps({"request": {"authentication": {"key": "K", "hash": "H"}}}).encode()
    resp = await gk.proxy.post("/iletimerkezi/v1/get-balance/json", data=raw)
    assert resp.status == 200
    [got] = upstream.received
    assert (got.path_qs, got.body) == ("/v1/get-balance/json", raw)

"""The `iletimerkezi` preset on documented request shapes: routes, recipients, rewriting,
replies. Bodies are written as iletiMerkezi's docs and official clients write them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gatekeeper.config import UpstreamConfig
from gatekeeper.numbers import parse_destination
from gatekeeper.providers import PRESETS
from gatekeeper.providers.iletimerkezi import PRESET, SendSmsBody
from gatekeeper.providers.listapi.iletimerkezi import IletiMerkeziLists
from gatekeeper.providers.locators import QueryOrBody
from gatekeeper.providers.preset import Blocked, BodyError, Message, Recipients
from gatekeeper.replies import Reply
from tests.presets_helpers import PASSES, REFUSED, canonical, match, outcome, route_for

UPSTREAM = UpstreamConfig(name="iletimerkezi", url="https://api.iletimerkezi.com",
                          preset="iletimerkezi", mount="/iletimerkezi")
ROUTES = PRESET.routes(UPSTREAM)
JSON_PATH = "/v1/send-sms/json"
XML_PATH = "/v1/send-sms"
GET_PATH = "/v1/send-sms/get/"
N1, N2, N3 = "5301234567", "5301234568", "5301234569"
AUTH = {"key": "API_KEY_1", "hash": "API_HASH_1"}
REJECT_JSON = '{"response": {"status": {"code": 452, "message": "Mesaj alıcıları hatalı"}}}'  # noqa: RUF001


def order(message: object, **auth: str) -> dict[str, Any]:
    """A send-sms request as the docs show it."""
    return {"request": {"authentication": auth or AUTH,
                        "order": {"sender": "APITEST", "sendDateTime": "", "iys": "1",
                                  "iysList": "BIREYSEL", "message": message}}}


def msg(*numbers: object, text: str = "Merhaba dünya") -> dict[str, Any]:
    """One message object with its recipients."""
    return {"text": text, "receipents": {"number": list(numbers)}}


def as_sent(doc: object) -> bytes:
    """JSON as the official Python client sends it (`json.dumps` defaults)."""
    return json.dumps(doc).encode()


def xml(*messages: tuple[str, ...], auth: str = "<key>API_KEY_1</key><hash>H</hash>") -> bytes:
    """An XML order as the docs show it, one `<message>` per tuple of numbers."""
    parts = "".join(
        "\n    <message>\n      <text><![CDATA[Test <number>5309999999</number> mesaji.]]>"
        "</text>\n      <receipents>"
        + "".join(f"\n        <number>{n}</number>" for n in numbers)
        + "\n      </receipents>\n    </message>" for numbers in messages)
    return ('<?xml version="1.0" encoding="UTF-8" ?>\n<request>\n  <authentication>'
            f"{auth}</authentication>\n  <order>\n    <sender>APITEST</sender>\n"
            f"    <iys>0</iys>{parts}\n  </order>\n</request>").encode()


def locate(method: str, path: str, raw: bytes = b"", query: str = ""
           ) -> tuple[dict[str, str], Recipients | BodyError]:
    """Match a request and locate its recipients."""
    found = match(ROUTES, method, path)
    assert found is not None, path
    route, params = found
    return params, route.locator.find(Message(raw, query, {}))


def recipients(method: str, path: str, raw: bytes = b"", query: str = "") -> Recipients:
    """The recipients of a well-formed request."""
    result = locate(method, path, raw, query)[1]
    assert isinstance(result, Recipients), result
    return result


def blocked(method: str, path: str, raw: bytes = b"", query: str = "") -> Blocked:
    """The context the proxy hands to reject/skip."""
    params, _ = locate(method, path, raw, query)
    return Blocked("req-1", "sms", N1, params, Message(raw, query, {}), (N1,))


def reject(method: str, path: str, raw: bytes = b"", query: str = "") -> Reply:
    """The reject of the route the request matches."""
    return route_for(ROUTES, method, path).reject(blocked(method, path, raw, query))


def skip(method: str, path: str, raw: bytes = b"", query: str = "") -> Reply:
    """The skip of the route the request matches."""
    return route_for(ROUTES, method, path).skip(blocked(method, path, raw, query))


# --------------------------------------------------------------------------- routes


JSON_REPLY = "application/json; charset=utf-8"
XML_REPLY = "application/xml; charset=utf-8"
ROUTE_CASES: list[tuple[str, str, str, str]] = [
    # (id, method, path, which API: "json", "xml" (answers in the body's format), "get",
    # or PASSES / REFUSED)
    ("json", "POST", "/v1/send-sms/json", "json"),
    ("xml", "POST", "/v1/send-sms", "xml"),
    ("get", "GET", "/v1/send-sms/get/", "get"),
    ("get-no-slash", "GET", "/v1/send-sms/get", "get"),
    ("get-api-head", "HEAD", "/v1/send-sms/get", "get"),
    ("get-api-post", "POST", "/v1/send-sms/get", "get"),
    ("upper-case", "POST", "/V1/SEND-SMS/JSON", "json"),
    ("trailing-slash", "POST", "/v1/send-sms/json/", "json"),
    ("xml-trailing-slash", "POST", "/v1/send-sms/", "xml"),
    ("doubled-slashes", "POST", "//v1//send-sms//json", "json"),
    ("percent-letter", "POST", "/v1/send-%73ms/json", "json"),
    # A PUT or PATCH on the send path is checked like the POST.
    ("put-json", "PUT", "/v1/send-sms/json", "json"),
    ("patch-xml", "PATCH", "/v1/send-sms", "xml"),
    # Spellings some server would read differently are refused before routing.
    ("percent-slash", "POST", "/v1/send-sms%2Fjson", REFUSED),
    ("dot-dot", "POST", "/v1/get-report/../send-sms/json", REFUSED),
    # Not sends: the blacklist, reports, balance; other methods and versions.
    ("add-blacklist", "POST", "/v1/add-blacklist/json", PASSES),
    ("get-blacklist", "POST", "/v1/get-blacklist/json", PASSES),
    ("get-report", "POST", "/v1/get-report/json", PASSES),
    ("get-balance", "POST", "/v1/get-balance/json", PASSES),
    ("cancel-order", "POST", "/v1/cancel-order/json", PASSES),
    ("get-on-json", "GET", "/v1/send-sms/json", PASSES),
    ("delete-json", "DELETE", "/v1/send-sms/json", PASSES),
    ("other-suffix", "POST", "/v1/send-sms/jsonx", PASSES),
    ("other-version", "POST", "/v2/send-sms/json", PASSES),
    ("no-version", "POST", "/send-sms/json", PASSES),
]


@pytest.mark.parametrize(("method", "path", "api"), [c[1:] for c in ROUTE_CASES],
                         ids=[c[0] for c in ROUTE_CASES])
def test_routes(method: str, path: str, api: str) -> None:
    """Sends are intercepted however the path is spelt (or the spelling is refused);
    anything else passes through. Each API reads its own place and answers in its format."""
    if api in (PASSES, REFUSED):
        assert outcome(ROUTES, method, path) == api
        return
    assert outcome(ROUTES, method, path) == "sms"
    found = match(ROUTES, method, path)
    assert found is not None
    route, params = found
    assert params == {}
    context = Blocked("req-1", "sms", N1, {}, Message(xml((N1,))), (N1,))
    if api == "get":
        assert route.locator == QueryOrBody("receipents", separator=",")
        assert route.reject(context).content_type == XML_REPLY
    else:
        assert route.locator == SendSmsBody()
        # The JSON API answers in JSON whatever the body; `/v1/send-sms` in the body's own.
        expected = JSON_REPLY if api == "json" else XML_REPLY
        assert route.reject(context).content_type == expected


def test_preset_is_registered_with_turkish_defaults() -> None:
    """Registered as `iletimerkezi`; national numbers are Turkish, digits are not MSISDNs."""
    assert PRESETS["iletimerkezi"] is PRESET
    assert (PRESET.msisdn, PRESET.default_region) == (False, "TR")


@pytest.mark.parametrize("raw", [
    "905301234567", "+905301234567", "5301234567", "05301234567", "+90 530 123 45 67",
    "0090 530 123 4567",
], ids=["90-prefix", "plus-90", "national", "trunk-zero", "spaced", "international-00"])
def test_documented_number_forms_read_as_one_e164(raw: str) -> None:
    """Every form the API accepts normalises to the same E.164 number with region TR."""
    found = parse_destination(raw, PRESET.default_region, PRESET.msisdn)
    assert (found.kind, found.e164) == ("phone", "+905301234567")


# --------------------------------------------------------------------------- recipients


FIND_CASES: list[tuple[str, str, str, bytes, str, tuple[str, ...] | str]] = [
    # (id, method, path, body, query, recipients or BodyError code)
    ("json-one-message", "POST", JSON_PATH, as_sent(order(msg(N1, N2))), "", (N1, N2)),
    ("json-message-array", "POST", JSON_PATH,
     as_sent(order([msg(N1, text="a"), msg(N2, N3, text="b")])), "", (N1, N2, N3)),
    ("json-number-forms", "POST", JSON_PATH,
     as_sent(order(msg("905301234567", "+905301234568", "05301234569"))), "",
     ("905301234567", "+905301234568", "05301234569")),
    ("json-integers", "POST", JSON_PATH, as_sent(order(msg(5301234567))), "", (N1,)),
    ("json-lone-string", "POST", JSON_PATH,
     as_sent(order({"text": "x", "receipents": {"number": N1}})), "", (N1,)),
    ("json-duplicates", "POST", JSON_PATH, as_sent(order(msg(N1, N2, N1))), "", (N1, N2, N1)),
    ("json-blank-skipped", "POST", JSON_PATH, as_sent(order(msg(N1, " "))), "", (N1,)),
    ("json-to-xml-path", "POST", XML_PATH, as_sent(order(msg(N1))), "", (N1,)),
    ("json-leading-space-bom", "POST", JSON_PATH,
     "\ufeff \n".encode() + as_sent(order(msg(N1))), "", (N1,)),
    ("json-bad", "POST", JSON_PATH, b'{"request": {', "", "invalid_json"),
    ("json-no-receipents", "POST", JSON_PATH, as_sent(order({"text": "x"})), "",
     "missing_destination"),
    ("json-legacy-order-receipents", "POST", JSON_PATH,
     as_sent({"request": {"order": {"receipents": {"number": [N1]}}}}), "",
     "missing_destination"),
    ("json-empty-numbers", "POST", JSON_PATH, as_sent(order(msg())), "",
     "missing_destination"),
    ("json-message-string", "POST", JSON_PATH, as_sent(order("hello")), "",
     "invalid_destination_field"),
    ("json-number-object", "POST", JSON_PATH, as_sent(order(msg({"n": N1}))), "",
     "invalid_destination_field"),
    ("xml-one-message", "POST", XML_PATH, xml((N1, N2)), "", (N1, N2)),
    ("xml-two-messages", "POST", XML_PATH, xml((N1, N2), (N3,)), "", (N1, N2, N3)),
    ("xml-to-json-path", "POST", JSON_PATH, xml((N1,)), "", (N1,)),
    ("xml-char-reference", "POST", XML_PATH, xml(("&#43;905301234567",)), "",
     ("+905301234567",)),
    ("xml-spaced-number", "POST", XML_PATH, xml((" +90 530 123 45 67 ",)), "",
     ("+90 530 123 45 67",)),
    ("xml-bom", "POST", XML_PATH, b"\xef\xbb\xbf" + xml((N1,)), "", (N1,)),
    ("xml-legacy-encoding", "POST", XML_PATH,
     b'<?xml version="1.0" encoding="ISO-8859-9"?><request><order><message><text>'
     b"\xdd\xfeLEM</text><receipents><number>5301234567</number></receipents></message>"
     b"</order></request>", "", (N1,)),
    ("xml-no-message-element", "POST", XML_PATH,
     b"<request><order><receipents><number>5301234567</number></receipents></order>"
     b"</request>", "", (N1,)),
    ("xml-empty-number-skipped", "POST", XML_PATH,
     b"<request><order><message><receipents><number/><number>5301234567</number>"
     b"</receipents></message></order></request>", "", (N1,)),
    ("xml-no-numbers", "POST", XML_PATH, xml(()), "", "missing_destination"),
    ("xml-number-outside-receipents", "POST", XML_PATH,
     b"<request><order><number>5301234567</number></order></request>", "",
     "missing_destination"),
    ("xml-not-well-formed", "POST", XML_PATH, b"<request><order></request>", "", "invalid_xml"),
    ("xml-doctype-refused", "POST", XML_PATH,
     b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "5301234567">]><request><order>'
     b"<message><receipents><number>&a;</number></receipents></message></order></request>",
     "", "invalid_xml"),
    ("neither-json-nor-xml", "POST", XML_PATH, b"receipents=5301234567", "", "invalid_xml"),
    ("empty-body", "POST", JSON_PATH, b"", "", "invalid_xml"),
    ("get-two", "GET", GET_PATH, b"",
     "key=K&hash=H&text=Lorem%20ipsum&receipents=5301234567,5301234568&sender=APITEST",
     (N1, N2)),
    ("get-encoded-comma", "GET", GET_PATH, b"", "receipents=5301234567%2C5301234568",
     (N1, N2)),
    ("get-repeated", "GET", GET_PATH, b"", "receipents=5301234567&receipents=5301234568",
     (N1, N2)),
    ("get-plus-as-space", "GET", GET_PATH, b"", "receipents=+905301234567", (" 905301234567",)),
    ("get-missing", "GET", GET_PATH, b"", "key=K&text=x", "missing_destination"),
    ("get-no-equals-is-blank", "GET", GET_PATH, b"", "receipents", "missing_destination"),
    ("get-bad-query", "GET", GET_PATH, b"", "receipents=%FF", "invalid_form"),
    ("get-raw-semicolon", "GET", GET_PATH, b"", "receipents=5301234567;5301234568",
     "ambiguous_request"),
    ("json-key-in-two-cases", "POST", JSON_PATH,
     b'{"request": {"order": {"message": {"receipents": {"number": ["5301234567"], '
     b'"Number": ["5301234568"]}}}}}', "", (N1, N2)),
    ("xml-namespaced-number", "POST", XML_PATH,
     b'<request><order><message><receipents><x:number xmlns:x="urn:x">5301234567</x:number>'
     b"</receipents></message></order></request>", "", (N1,)),
]


@pytest.mark.parametrize(("method", "path", "raw", "query", "expected"),
                         [c[1:] for c in FIND_CASES], ids=[c[0] for c in FIND_CASES])
def test_find_recipients(method: str, path: str, raw: bytes, query: str,
                         expected: tuple[str, ...] | str) -> None:
    """Recipients in document order, or the error code for an unusable request."""
    result = locate(method, path, raw, query)[1]
    if isinstance(expected, str):
        assert isinstance(result, BodyError)
        assert result.code == expected
    else:
        assert isinstance(result, Recipients), result
        assert result.values == expected


def test_get_plus_as_space_still_reads_as_the_number() -> None:
    """An unencoded '+' in the query decodes to a space; the number is still +90 5.."""
    [raw] = recipients("GET", GET_PATH, query="receipents=+905301234567").values
    assert parse_destination(raw, "TR").e164 == "+905301234567"


# --------------------------------------------------------------------------- rewriting


JSON_REMOVE_CASES: list[tuple[str, object, frozenset[str], object]] = [
    ("one-of-two", order(msg(N1, N2)), frozenset({N1}), order(msg(N2))),
    ("duplicates-all-go", order(msg(N1, N2, N1)), frozenset({N1}), order(msg(N2))),
    ("array-message-dropped", order([msg(N1, text="a"), msg(N2, N3, text="b")]),
     frozenset({N1, N3}), order([msg(N2, text="b")])),
    ("array-lone-string-message-dropped",
     order([{"text": "a", "receipents": {"number": N1}}, msg(N2, text="b")]),
     frozenset({N1}), order([msg(N2, text="b")])),
    ("integers", order(msg(5301234567, 5301234568)), frozenset({N2}), order(msg(5301234567))),
    ("unicode-text-kept", order(msg(N1, N2, text="Sipariş ğüşıöç")), frozenset({N2}),
     order(msg(N1, text="Sipariş ğüşıöç"))),
]


@pytest.mark.parametrize(("doc", "removed", "expected"), [c[1:] for c in JSON_REMOVE_CASES],
                         ids=[c[0] for c in JSON_REMOVE_CASES])
def test_json_partial_removal(doc: object, removed: frozenset[str], expected: object) -> None:
    """Blocked numbers leave their message; a message left with none is dropped. The rest
    of the body is kept byte for byte as the client sent it."""
    rewritten = recipients("POST", JSON_PATH, as_sent(doc)).without(removed)
    assert rewritten is not None
    assert rewritten.body == as_sent(expected)


def test_json_lone_string_in_single_message_cannot_be_edited() -> None:
    """A single message whose only number is a string cannot lose it: decided whole."""
    raw = as_sent(order({"text": "x", "receipents": {"number": N1}}))
    assert recipients("POST", JSON_PATH, raw).without(frozenset({N1})) is None


@pytest.mark.parametrize(("method", "path", "raw", "query"), [
    ("POST", JSON_PATH, b'{"request": {"order": {"message": {"receipents": {"number": '
     b'["5301234567", "5301234568"], "NUMBER": ["5301234569"]}}}}}', ""),
    ("POST", XML_PATH,
     b'<request><order><message><receipents><number>5301234567</number>'
     b'<x:number xmlns:x="urn:x">5301234568</x:number></receipents></message></order>'
     b"</request>", ""),
    ("GET", GET_PATH, b"", "receipents=5301234567,5301234568&receipents=5301234569"),
], ids=["json-key-in-two-cases", "xml-namespace-prefix", "get-repeated-parameter"])
def test_orders_read_two_ways_are_never_edited(method: str, path: str, raw: bytes,
                                               query: str) -> None:
    """Where readers could disagree on the recipients, all count and nothing is edited."""
    found = recipients(method, path, raw, query)
    assert N1 in found.values
    assert found.without(frozenset({N1})) is None


def test_xml_partial_removal_keeps_every_other_byte() -> None:
    """The blocked `<number>` goes with its indentation; CDATA lookalikes stay as they were."""
    rewritten = recipients("POST", XML_PATH, xml((N1, N2), (N3,))).without(frozenset({N2}))
    assert rewritten is not None
    assert rewritten.body == xml((N1,), (N3,))


def test_xml_message_left_without_numbers_is_dropped() -> None:
    """A `<message>` whose numbers are all blocked disappears from the order."""
    rewritten = recipients("POST", XML_PATH, xml((N1, N2), (N3, N1))).without(
        frozenset({N3, N1}))
    assert rewritten is not None
    assert rewritten.body == xml((N2,))


def test_xml_removal_in_a_legacy_encoding_is_byte_exact() -> None:
    """A body declared ISO-8859-9 keeps its Turkish bytes; only the number is cut."""
    head = (b'<?xml version="1.0" encoding="ISO-8859-9"?><request><order><message><text>'
            b"\xdd\xfeLEM</text><receipents>")
    raw = head + b"<number>5301234567</number> <number>5301234568</number></receipents>" \
        b"</message></order></request>"
    rewritten = recipients("POST", XML_PATH, raw).without(frozenset({N1}))
    assert rewritten is not None
    assert rewritten.body == head + b" <number>5301234568</number></receipents></message>" \
        b"</order></request>"


def test_get_partial_removal_rewrites_only_receipents() -> None:
    """The query keeps every other parameter's bytes; the list loses the blocked number."""
    query = "key=K&hash=H&text=Lorem%20ipsum&receipents=5301234567,5301234568&sender=APITEST"
    rewritten = recipients("GET", GET_PATH, query=query).without(frozenset({N1}))
    assert rewritten is not None
    assert rewritten.query == "key=K&hash=H&text=Lorem%20ipsum&receipents=5301234568" \
        "&sender=APITEST"
    assert rewritten.body == b""


# --------------------------------------------------------------------------- identities


IDENTITY_CASES: list[tuple[str, str, bytes, str, tuple[str, ...]]] = [
    ("json-key", JSON_PATH, as_sent(order(msg(N1))), "", ("API_KEY_1",)),
    ("json-username", JSON_PATH, as_sent(order(msg(N1), username="5051234567", password="p")),
     "", ("5051234567",)),
    ("json-key-and-username", JSON_PATH,
     as_sent(order(msg(N1), key="K", hash="H", username="U")), "", ("K", "U")),
    ("json-key-not-string", JSON_PATH, as_sent(order(msg(N1), key=42)), "",  # type: ignore[arg-type]
     ()),
    ("json-no-authentication", JSON_PATH, as_sent({"request": {"order": {}}}), "", ()),
    ("json-bad", JSON_PATH, b"{", "", ()),
    ("xml-key", XML_PATH, xml((N1,)), "", ("API_KEY_1",)),
    ("xml-username", XML_PATH,
     xml((N1,), auth="<username>5051234567</username><password>p</password>"), "",
     ("5051234567",)),
    ("xml-bad", XML_PATH, b"<request>", "", ()),
    ("get-key", GET_PATH, b"", "key=K&hash=H&receipents=5301234567", ("K",)),
    ("get-username", GET_PATH, b"", "username=U&password=P&receipents=5301234567", ("U",)),
    ("get-key-without-value", GET_PATH, b"", "key", ()),
    ("get-bad-query", GET_PATH, b"", "key=K;x", ()),
]


@pytest.mark.parametrize(("path", "raw", "query", "expected"),
                         [c[1:] for c in IDENTITY_CASES], ids=[c[0] for c in IDENTITY_CASES])
def test_identities(path: str, raw: bytes, query: str, expected: tuple[str, ...]) -> None:
    """The API key and legacy user name as sent; never the hash or password."""
    found = PRESET.identities(Message(raw, query, {}), canonical(path))
    assert found == expected
    assert not {"H", "P", "p", "API_HASH_1"} & set(found)


# --------------------------------------------------------------------------- replies


XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
XML_REJECT = (XML_HEAD + "<response><status><code>452</code><message>Mesaj alıcıları hatalı"  # noqa: RUF001
              "</message></status></response>")


@pytest.mark.parametrize(("method", "path", "raw", "query", "expected"), [
    ("POST", JSON_PATH, as_sent(order(msg(N1))), "",
     Reply(452, REJECT_JSON.encode(), "application/json; charset=utf-8")),
    ("POST", XML_PATH, as_sent(order(msg(N1))), "",
     Reply(452, REJECT_JSON.encode(), "application/json; charset=utf-8")),
    ("POST", XML_PATH, xml((N1,)), "",
     Reply(452, XML_REJECT.encode(), "application/xml; charset=utf-8")),
    ("POST", JSON_PATH, xml((N1,)), "",
     Reply(452, REJECT_JSON.encode(), "application/json; charset=utf-8")),
    ("GET", GET_PATH, b"", "receipents=5301234567",
     Reply(452, XML_REJECT.encode(), "application/xml; charset=utf-8")),
], ids=["json", "json-body-on-xml-path", "xml", "json-path-answers-json", "get"])
def test_reject_is_452_in_the_api_format(method: str, path: str, raw: bytes, query: str,
                                         expected: Reply) -> None:
    """452 "Mesaj alıcıları hatalı" in the HTTP status and the body, JSON or XML."""  # noqa: RUF002
    assert reject(method, path, raw, query) == expected


def test_json_skip_is_a_success_with_a_numeric_order_id() -> None:
    """200 "İşlem başarılı" and a fresh numeric order id."""  # noqa: RUF002
    replies = [skip("POST", JSON_PATH, as_sent(order(msg(N1)))) for _ in range(5)]
    docs = [json.loads(r.body) for r in replies]
    assert {r.status for r in replies} == {200}
    assert all(d["response"]["status"] == {"code": 200, "message": "İşlem başarılı"}  # noqa: RUF001
               for d in docs)
    ids = [d["response"]["order"]["id"] for d in docs]
    assert all(i.isdigit() and len(i) == 9 for i in ids)
    assert len(set(ids)) == 5


@pytest.mark.parametrize(("method", "path", "raw", "query"), [
    ("POST", XML_PATH, xml((N1,)), ""),
    ("GET", GET_PATH, b"", "receipents=5301234567"),
], ids=["xml", "get"])
def test_xml_skip_is_a_success_with_an_order(method: str, path: str, raw: bytes,
                                             query: str) -> None:
    """The XML success reply with `<order><id>`."""
    reply = skip(method, path, raw, query)
    assert (reply.status, reply.content_type) == (200, "application/xml; charset=utf-8")
    text = reply.body.decode()
    assert text.startswith(XML_HEAD + "<response><status><code>200</code><message>"
                           "İşlem başarılı</message></status><order><id>")  # noqa: RUF001
    order_id = text.split("<id>")[1].split("</id>")[0]
    assert order_id.isdigit()
    assert text.endswith("</id></order></response>")


# ------------------------------------------------------------------- unauthorized, refuse


UNAUTHORIZED_JSON = '{"response": {"status": {"code": 401, "message": "Üyelik bilgileri hatalı"}}}'  # noqa: RUF001


@pytest.mark.parametrize(("reply", "expected"), [
    (PRESET.unauthorized("req-9"), Reply(401, UNAUTHORIZED_JSON.encode(), JSON_REPLY)),
    (PRESET.refuse(Blocked("req-9", None, N1, {}, Message(as_sent(order(msg(N1)))))),
     Reply(452, REJECT_JSON.encode(), JSON_REPLY)),
    (PRESET.refuse(Blocked("req-9", None, N1, {}, Message(xml((N1,))))),
     Reply(452, XML_REJECT.encode(), XML_REPLY)),
    (PRESET.refuse(Blocked("req-9", None, N1)),
     Reply(452, XML_REJECT.encode(), XML_REPLY)),
], ids=["unauthorized", "refuse-json-body", "refuse-xml-body", "refuse-no-body"])
def test_unauthorized_and_refuse_in_the_api_format(reply: Reply, expected: Reply) -> None:
    """401 "Üyelik bilgileri hatalı" (JSON); a scanned write is refused with 452 in the
    body's own format (XML when there is no JSON body)."""  # noqa: RUF002
    assert reply == expected


# ----------------------------------------------------------------------------- list API


@pytest.mark.parametrize(("method", "path", "served"), [
    ("POST", "/v1/add-blacklist/json", True),
    ("POST", "/v1/get-blacklist/json", True),
    ("POST", "/v1/delete-blacklist/json", True),
    ("POST", "/V1/ADD-BLACKLIST/JSON/", True),
    ("POST", "//v1//delete-blacklist/json", True),
    ("POST", "/v1/%61dd-blacklist/json", True),
    ("GET", "/v1/get-blacklist/json", False),
    ("POST", "/v1/add-blacklist", False),
    ("POST", "/v1/send-sms/json", False),
], ids=["add", "get", "delete", "upper-case-trailing-slash", "doubled-slashes",
        "percent-letter", "get-method", "xml-path", "send"])
def test_list_api_matches_the_canonical_blacklist_paths(method: str, path: str,
                                                        served: bool) -> None:
    """The preset's list API answers the blacklist calls, on the path as routes see it."""
    assert isinstance(PRESET.list_api, IletiMerkeziLists)
    assert PRESET.list_api.matches(method, canonical(path)) is served

"""The `iletimerkezi` preset: iletiMerkezi's SMS API (api.iletimerkezi.com, v1).

Sends (all sms):
- POST `/v1/send-sms/json`: JSON, recipients at `request.order.message.receipents.number[]`
  (the API's own spelling); `message` is one object or an array of them.
- POST `/v1/send-sms`: the same order as XML (`<message>` repeated, `<number>` repeated).
- GET `/v1/send-sms/get`: the query parameter `receipents`, comma-separated. HEAD and POST
  on that path are checked the same way, in case the server reads the query for them too.
The body is told apart by its first character, so JSON posted to the XML path (or XML to
the JSON path) is still checked. Partial removal drops the blocked numbers and any message
left without one, keeping the rest of the request as sent (XML: byte for byte). XML with a
DOCTYPE, or that is not well-formed, is refused with the body error `invalid_xml`.

Numbers come as `905XXXXXXXXX`, `+905XXXXXXXXX`, `5XXXXXXXXX` or `05XXXXXXXXX`: with
region TR phonenumbers reads all of them as +905XXXXXXXXX, so `default_region = "TR"` and
`msisdn = False` (digits alone are a Turkish number here, not an international one).

Identities: the API key (`authentication.key`, or `key` in the query) and the legacy
user name, never the hash or password. Reject: status 452 "Mesaj alıcıları hatalı", the
code iletiMerkezi documents for recipients that are invalid or on the account's block
list, in the HTTP status and `response.status.code` alike (a policy rule's refusal too,
its message then saying why). Skip: 200 "İşlem başarılı" with a generated numeric
order id. Replies are JSON for the JSON API and XML otherwise.
"""  # noqa: RUF002 (Turkish dotless i)

from __future__ import annotations

import codecs
import json
import secrets
from dataclasses import dataclass
from xml.parsers import expat
from xml.sax.saxutils import escape

from gatekeeper.config import UpstreamConfig
from gatekeeper.providers.forms import parse_pairs, read_field
from gatekeeper.providers.listapi.iletimerkezi import SUCCESS_MESSAGE, IletiMerkeziLists
from gatekeeper.providers.locators import JsonPath, QueryOrBody, load_json
from gatekeeper.providers.policy_text import because, policy_rule
from gatekeeper.providers.preset import (
    Blocked,
    BodyError,
    Message,
    Recipients,
    ReplyFn,
    Route,
    route,
)
from gatekeeper.providers.routing import template
from gatekeeper.replies import Reply

REJECT_CODE = 452
# The API's Turkish text: "the message's recipients are invalid".
REJECT_MESSAGE = "Mesaj alıcıları hatalı"  # noqa: RUF001
AUTH_MESSAGE = "Üyelik bilgileri hatalı"  # noqa: RUF001 ("membership details are wrong")
_JSON_CONTENT_TYPE = "application/json; charset=utf-8"
_XML_CONTENT_TYPE = "application/xml; charset=utf-8"
_IDENTITY_FIELDS = ("key", "username")

_JSON_NUMBERS = JsonPath("request.order.message[].receipents.number",
                         numbers=True, one_or_many=frozenset({"message"}))
_QUERY_NUMBERS = QueryOrBody("receipents", separator=",")
_WHITESPACE = b" \t\r\n"


def _is_json(body: bytes) -> bool:
    """True when the body looks like JSON (an object or array), not XML."""
    return body.lstrip(codecs.BOM_UTF8 + _WHITESPACE)[:1] in (b"{", b"[")


# ------------------------------------------------------------------ XML bodies

class _DoctypeRefused(Exception):
    """A DOCTYPE (and with it any entity definition) is refused outright."""


@dataclass(frozen=True, slots=True)
class _XmlNumber:
    value: str
    start: int
    end: int
    message: int | None  # index of the innermost enclosing <message>, if any


@dataclass(frozen=True, slots=True)
class _XmlScan:
    numbers: tuple[_XmlNumber, ...]
    messages: tuple[tuple[int, int], ...]  # (start, end) byte spans of <message> elements
    key: str | None
    username: str | None
    exact: bool = True  # no namespace prefixes: every reader sees the same elements


def _redecode(text: str) -> str:
    """Text parsed as ISO-8859-1 read back as UTF-8 (the usual case); as is otherwise."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return text


def _scan_xml(body: bytes) -> _XmlScan | BodyError:
    """Walk the XML with expat, noting each `receipents/number` and `message` span.

    The parser is told the body is ISO-8859-1 whatever it declares: every byte is then
    one character, so the byte offsets are exact for UTF-8 and Turkish legacy encodings
    alike, and the ASCII markup and digits read the same.
    """
    skip = len(codecs.BOM_UTF8) if body.startswith(codecs.BOM_UTF8) else 0
    data = body[skip:]
    parser = expat.ParserCreate(encoding="ISO-8859-1")
    stack: list[tuple[str, int]] = []
    open_messages: list[int] = []
    messages: list[list[int]] = []
    numbers: list[_XmlNumber] = []
    text: list[str] = []
    auth: dict[str, str] = {}
    prefixed: list[str] = []

    def end_of_tag(index: int) -> int:
        # Only elements with an explicit end tag (`</number>`) are ever cut, and an end
        # tag holds no attribute that could contain '>'.
        return data.index(b">", index) + 1

    def start(name: str, _attrs: dict[str, str]) -> None:
        # `x:number` is `number` to a namespace-aware reader: counted, never rewritten.
        lower = name.rpartition(":")[2].lower()
        if ":" in name:
            prefixed.append(name)
        stack.append((lower, parser.CurrentByteIndex))
        text.clear()
        if lower == "message":
            open_messages.append(len(messages))
            messages.append([parser.CurrentByteIndex, -1])

    def end(name: str) -> None:
        lower, begin = stack.pop()
        parent = stack[-1][0] if stack else ""
        value = _redecode("".join(text)).strip()
        if lower == "number" and parent == "receipents" and value:
            numbers.append(_XmlNumber(value, skip + begin,
                                      skip + end_of_tag(parser.CurrentByteIndex),
                                      open_messages[-1] if open_messages else None))
        elif lower in _IDENTITY_FIELDS and parent == "authentication" and value:
            auth.setdefault(lower, value)
        elif lower == "message":
            index = open_messages.pop()
            if any(n.message == index for n in numbers):
                messages[index][1] = skip + end_of_tag(parser.CurrentByteIndex)
        text.clear()

    def characters(data_: str) -> None:
        text.append(data_)

    def doctype(*_args: object) -> None:
        raise _DoctypeRefused

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = characters
    parser.StartDoctypeDeclHandler = doctype
    try:
        parser.Parse(data, True)
    except (expat.ExpatError, _DoctypeRefused, ValueError, RecursionError):
        return BodyError("invalid_xml", "the body is neither valid JSON nor valid XML "
                         "without a DOCTYPE")
    return _XmlScan(tuple(numbers), tuple((s, e) for s, e in messages), auth.get("key"),
                    auth.get("username"), not prefixed)


def _cut(body: bytes, spans: list[tuple[int, int]]) -> bytes:
    """The body without the spans (and the whitespace just before each)."""
    out: list[bytes] = []
    pos = 0
    for begin, end in sorted(spans):
        if begin < pos:
            continue  # inside a span already cut (a number of a dropped message)
        start = begin
        while start > pos and body[start - 1] in _WHITESPACE:
            start -= 1
        out.append(body[pos:start])
        pos = end
    out.append(body[pos:])
    return b"".join(out)


@dataclass(frozen=True, slots=True)
class XmlNumbers:
    """Recipients in `<receipents><number>` elements of an XML order.

    Removing recipients cuts their `<number>` elements, and any `<message>` left without
    a number, out of the original bytes; nothing else changes.
    """

    def find(self, message: Message) -> Recipients | BodyError:
        scan = _scan_xml(message.body)
        if isinstance(scan, BodyError):
            return scan
        if not scan.numbers:
            return BodyError("missing_destination", "no <receipents><number> in the order")

        values = tuple(n.value for n in scan.numbers)
        if not scan.exact:
            return Recipients(values)

        def remove(blocked: frozenset[str]) -> Message:
            spans = [(n.start, n.end) for n in scan.numbers if n.value in blocked]
            for index, span in enumerate(scan.messages):
                mine = [n for n in scan.numbers if n.message == index]
                if mine and all(n.value in blocked for n in mine):
                    spans.append(span)
            return Message(_cut(message.body, spans), message.query, message.headers)

        return Recipients(values, remove)


@dataclass(frozen=True, slots=True)
class SendSmsBody:
    """A POSTed order, JSON or XML, told apart by the body's first character."""

    def find(self, message: Message) -> Recipients | BodyError:
        if _is_json(message.body):
            return _JSON_NUMBERS.find(message)
        return XmlNumbers().find(message)


# ------------------------------------------------------------------ the preset

def _json_identities(body: bytes) -> list[str | None]:
    doc = load_json(body)
    request = doc.get("request") if isinstance(doc, dict) else None
    auth = request.get("authentication") if isinstance(request, dict) else None
    if not isinstance(auth, dict):
        return []
    return [value if isinstance(value, str) else None
            for value in (auth.get(name) for name in _IDENTITY_FIELDS)]


def _query_identities(query: str) -> list[str | None]:
    pairs = parse_pairs(query)
    if isinstance(pairs, BodyError):
        return []
    return [value for name in _IDENTITY_FIELDS for value in read_field(pairs, name).values]


def _reply(as_json: bool, status: int, message: str, order_id: str | None) -> Reply:
    if as_json:
        payload: dict[str, object] = {"status": {"code": status, "message": message}}
        if order_id is not None:
            payload["order"] = {"id": order_id}
        body = json.dumps({"response": payload}, ensure_ascii=False).encode()
        return Reply(status, body, _JSON_CONTENT_TYPE)
    order = "" if order_id is None else f"<order><id>{escape(order_id)}</id></order>"
    xml = ('<?xml version="1.0" encoding="UTF-8"?>\n'
           f"<response><status><code>{status}</code><message>{escape(message)}</message>"
           f"</status>{order}</response>")
    return Reply(status, xml.encode(), _XML_CONTENT_TYPE)


def _order_id() -> str:
    # A numeric order id like the API's; iletiMerkezi never saw it, so a later
    # get-report for it answers 455 (order not found).
    return str(secrets.randbelow(9 * 10**8) + 10**8)


def reject_message(blocked: Blocked) -> str:
    """452's text, followed by why when a policy rule refused the send (452 still: the API
    documents no other code for a recipient it will not send to)."""
    if policy_rule(blocked) is None:
        return REJECT_MESSAGE
    return because(REJECT_MESSAGE, blocked)


def replies(fmt: str) -> tuple[ReplyFn, ReplyFn]:
    """452 "Mesaj alıcıları hatalı" (HTTP and body) and 200 "İşlem başarılı", in JSON for
    the JSON API, XML for the GET API, and by the body's own format on `/v1/send-sms`."""  # noqa: RUF002

    def as_json(blocked: Blocked) -> bool:
        if fmt != "sniff":
            return fmt == "json"
        return blocked.message.body != b"" and _is_json(blocked.message.body)

    return (lambda b: _reply(as_json(b), REJECT_CODE, reject_message(b), None),
            lambda b: _reply(as_json(b), 200, SUCCESS_MESSAGE, _order_id()))


class IletiMerkeziPreset:
    """iletiMerkezi's send-sms API in its JSON, XML and GET forms."""

    name = "iletimerkezi"
    msisdn = False
    default_region: str | None = "TR"
    # Every call of this API is a POST, reads included.
    quiet_writes = tuple(template(f"/v1/{name}", prefix=True) for name in (
        "get-report", "get-reports", "get-balance", "get-sender", "cancel-order"))
    list_api = IletiMerkeziLists()

    def routes(self, upstream: UpstreamConfig) -> tuple[Route, ...]:
        return (
            route("POST", "/v1/send-sms/json", "sms", SendSmsBody(), *replies("json")),
            route("POST", "/v1/send-sms", "sms", SendSmsBody(), *replies("sniff")),
            # The GET API reads its query string whatever the method.
            route("GET HEAD POST", "/v1/send-sms/get", "sms", _QUERY_NUMBERS,
                  *replies("xml"), reads_query=True),
        )

    def identities(self, message: Message, path: str) -> tuple[str, ...]:
        """The API key and legacy user name, from the body or the GET API's query."""
        if path.lower().rstrip("/").endswith("/send-sms/get"):
            found = _query_identities(message.query)
        elif _is_json(message.body):
            found = _json_identities(message.body)
        else:
            scan = _scan_xml(message.body)
            found = [] if isinstance(scan, BodyError) else [scan.key, scan.username]
        return tuple(dict.fromkeys(i for i in found if i))

    def unauthorized(self, request_id: str) -> Reply:
        return _reply(True, 401, AUTH_MESSAGE, None)


    def refuse(self, blocked: Blocked) -> Reply:
        return replies("sniff")[0](blocked)

PRESET = IletiMerkeziPreset()

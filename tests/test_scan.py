"""Deep scan of unknown requests (gatekeeper.scan.scan_request, is_phone_like): tables."""

from __future__ import annotations

import base64
import json
import re

import pytest

from gatekeeper.numbers import parse_destination
from gatekeeper.scan import ScanError, is_phone_like, scan_request

FR = "+33612345678"
UK = "+447700900123"


def scan(body: bytes | str = b"", content_type: str = "", query: str = "", *,
         bare_digits: bool = False, max_values: int = 100) -> list[str] | ScanError:
    raw = body.encode() if isinstance(body, str) else body
    return scan_request(query, raw, content_type, bare_digits=bare_digits,
                        max_values=max_values)


def multipart(*parts: tuple[str, bytes], boundary: str = "XyZ") -> bytes:
    """A multipart body from (header lines, content) pairs."""
    out = b""
    for headers, content in parts:
        out += f"--{boundary}\r\n{headers}\r\n\r\n".encode() + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


# --------------------------------------------------------------------------- is_phone_like

@pytest.mark.parametrize(
    ("value", "plain", "bare"),
    [
        pytest.param(FR, True, True, id="e164"),
        pytest.param("+33 6 12 34 56 78", True, True, id="spaced"),
        pytest.param("+1 (201) 555-0123", True, True, id="punctuated"),
        pytest.param("  +33612345678\n", True, True, id="surrounding-space"),
        pytest.param("+\uff13\uff13612345678", True, True, id="fullwidth"),
        pytest.param("+33\u00a06\u201312345678", True, True, id="unicode-separators"),
        pytest.param("+18004247767,ww200", True, True, id="pause-dtmf"),
        pytest.param("+33612345678 ext. 12", True, True, id="extension"),
        pytest.param("0033612345678", True, True, id="idd-00"),
        pytest.param("011 33 6 12 34 56 78", True, True, id="idd-011"),
        pytest.param("tel:+33612345678", True, True, id="tel"),
        pytest.param("TEL:+33-6-12-34-56-78;ext=1", True, True, id="tel-params"),
        pytest.param("sip:+33612345678@h", True, True, id="sip"),
        pytest.param("sip:%2B33612345678@h", True, True, id="sip-percent"),
        pytest.param("sips:33612345678@h", True, True, id="sips-digits"),
        pytest.param("sip:0612345678@h", True, True, id="sip-national"),
        pytest.param('"Bob" <sip:+33612345678@h>', True, True, id="name-addr"),
        pytest.param("Bob <sip:+33612345678@h>;tag=1", True, True, id="name-addr-token"),
        pytest.param("whatsapp:+33612345678", True, True, id="whatsapp"),
        pytest.param("33612345678", False, True, id="bare-digits"),
        pytest.param("\u0663\u0663\u0666\u0661\u0662\u0663\u0664\u0665", False, True,
                     id="bare-arabic-indic-digits"),
        pytest.param("612345", False, True, id="bare-six"),
        pytest.param("61234", False, False, id="bare-five"),
        pytest.param("1234567890123456", False, False, id="bare-sixteen"),
        pytest.param("06 12 34 56 78", False, False, id="national-spaced"),
        pytest.param("+1234", False, False, id="plus-four-digits"),
        pytest.param("+1234567890123456", False, False, id="plus-sixteen-digits"),
        pytest.param("sip:alice@h", False, False, id="sip-name"),
        pytest.param("client:+33612345678", False, False, id="client"),
        pytest.param("sms:+33612345678", False, False, id="sms-scheme"),
        pytest.param("call +33612345678 now", False, False, id="number-in-prose"),
        pytest.param('say "Bob" <sip:+33612345678@h> now', False, False,
                     id="name-addr-in-prose"),
        pytest.param("+33612345678, thanks!", False, False, id="number-then-prose"),
        pytest.param("2024-01-15", False, False, id="date"),
        pytest.param("12:30", False, False, id="time"),
        pytest.param("", False, False, id="empty"),
        pytest.param("+" + "1" * 300, False, False, id="too-long"),
    ],
)
def test_is_phone_like(value: str, plain: bool, bare: bool) -> None:
    """Only whole-value spellings count; bare digits only when asked for."""
    assert is_phone_like(value) is plain
    assert is_phone_like(value, bare_digits=True) is bare


# --------------------------------------------------------------------------- found

# (id, query, body, content type, bare_digits, expected candidates)
FOUND: list[tuple[str, str, bytes | str, str, bool, list[str]]] = [
    # Query and forms.
    ("query-encoded", "To=%2B33612345678&Body=hi", b"", "", False, [FR]),
    ("query-plus-literal", "To=+33612345678", b"", "", False, [FR]),
    ("query-plus-as-space-bare", "To=+33612345678", b"", "", True, ["33612345678", FR]),
    ("query-semicolons", "a=1;To=%2B33612345678", b"", "", False, [FR]),
    ("query-duplicate-names", "To=%2B33612345678&To=%2B447700900123", b"", "", False,
     [FR, UK]),
    ("query-name-is-number", "%2B33612345678=1", b"", "", False, [FR]),
    ("query-nul-in-value", "To=%2B336%0012345678", b"", "", False, [FR]),
    ("form-declared", "", "To=%2B33612345678&From=ACME", "application/x-www-form-urlencoded",
     False, [FR]),
    ("form-sniffed", "", "To=%2B33612345678&Body=hello", "", False, [FR]),
    ("form-sip-uri", "", "To=sip%3A%2B33612345678%40h", "application/x-www-form-urlencoded",
     False, ["sip:+33612345678@h"]),
    ("form-holds-json", "", "Data=%7B%22to%22%3A%22%2B33612345678%22%7D",
     "application/x-www-form-urlencoded", False, [FR]),
    ("form-holds-twiml", "", "Twiml=%3CResponse%3E%3CDial%3E%2B33612345678%3C%2FDial%3E"
     "%3C%2FResponse%3E", "application/x-www-form-urlencoded", False, [FR]),
    ("form-url-query", "", "Url=https%3A%2F%2Fh.example%2Fbin%3FNumber%3D%252B33612345678",
     "application/x-www-form-urlencoded", False, [FR]),
    ("form-double-encoded", "", "To=%252B33612345678", "application/x-www-form-urlencoded",
     False, [FR]),
    # JSON.
    ("json-string", "", '{"to": "+33612345678"}', "application/json", False, [FR]),
    ("json-deep", "", '{"a": [{"b": {"c": ["x", "+33 6 12 34 56 78"]}}]}',
     "application/json", False, ["+33 6 12 34 56 78"]),
    ("json-int-bare", "", '{"to": 447700900123}', "application/json", True,
     ["447700900123"]),
    ("json-int-not-bare", "", '{"to": 447700900123}', "application/json", False, []),
    ("json-float-integral", "", '{"to": 447700900123.0}', "application/json", True,
     ["447700900123"]),
    ("json-string-digits-bare", "", '{"to": "447700900123"}', "application/json", True,
     ["447700900123"]),
    ("json-duplicate-keys", "", '{"to": "+33612345678", "to": "+447700900123"}',
     "application/json", False, [FR, UK]),
    ("json-key-is-number", "", '{"+33612345678": {"name": "x"}}', "application/json", False,
     [FR]),
    ("json-escaped", "", '{"to": "\\u002b33612345678"}', "application/json", False, [FR]),
    ("json-nested-json", "", json.dumps({"p": json.dumps({"to": FR})}), "application/json",
     False, [FR]),
    ("json-nested-twice", "", json.dumps({"p": json.dumps({"q": json.dumps([FR])})}),
     "application/json", False, [FR]),
    ("json-nested-xml", "", json.dumps({"twiml": f"<Response><Dial>{FR}</Dial></Response>"}),
     "application/json", False, [FR]),
    ("json-nested-form", "", json.dumps({"q": "To=%2B33612345678&x=1"}), "application/json",
     False, [FR]),
    ("json-uri-in-prose", "", json.dumps({"m": 'ring "Bob" <sip:+33612345678@h> now'}),
     "application/json", False, ["sip:+33612345678@h"]),
    ("json-tel-in-prose", "", json.dumps({"m": "call tel:+33 6 12 34 56 78 today"}),
     "application/json", False, ["tel:+33 6 12 34 56 78"]),
    ("json-sniffed", "", '{"to": "+33612345678"}', "text/plain", False, [FR]),
    ("json-bom", "", "\ufeff" + '{"to": "+33612345678"}', "application/json", False, [FR]),
    ("json-top-level-string", "", '"+33612345678"', "", False, [FR]),
    ("json-nul-in-value", "", '{"to": "+336\\u000012345678"}', "application/json", False,
     [FR]),
    # XML.
    ("xml-text", "", f"<r><to>{FR}</to></r>", "application/xml", False, [FR]),
    ("xml-attribute", "", f'<r><m to="{FR}"/></r>', "text/xml", False, [FR]),
    ("xml-char-reference", "", "<r>&#43;33612345678</r>", "application/xml", False, [FR]),
    ("xml-cdata", "", f"<r><![CDATA[{FR}]]></r>", "application/xml", False, [FR]),
    ("xml-split-by-comment", "", "<r>+33612<!-- c -->345678</r>", "application/xml", False,
     [FR]),
    ("xml-namespaced", "", f'<x:r xmlns:x="urn:x"><x:to>{FR}</x:to></x:r>', "text/xml", False,
     [FR]),
    ("xml-sniffed", "", f"<r><to>{FR}</to></r>", "", False, [FR]),
    ("xml-utf8-declaration", "", f'<?xml version="1.0" encoding="UTF-8"?><r>{FR}</r>',
     "text/xml", False, [FR]),
    ("xml-in-attribute-json", "", f"<r data='{json.dumps({'to': FR})}'/>", "text/xml", False,
     [FR]),
    # Multipart.
    ("multipart-text", "", multipart(('Content-Disposition: form-data; name="To"',
                                      FR.encode())),
     "multipart/form-data; boundary=XyZ", False, [FR]),
    ("multipart-json-part", "", multipart(('Content-Disposition: form-data; name="j"\r\n'
                                           "Content-Type: application/json",
                                           json.dumps({"to": [UK]}).encode())),
     "multipart/form-data; boundary=XyZ", False, [UK]),
    ("multipart-xml-part", "", multipart(('Content-Disposition: form-data; name="x"',
                                          f"<a><b>{FR}</b></a>".encode())),
     'multipart/form-data; boundary="XyZ"', False, [FR]),
    ("multipart-base64", "", multipart(('Content-Disposition: form-data; name="To"\r\n'
                                        "Content-Transfer-Encoding: base64",
                                        base64.b64encode(FR.encode()))),
     "multipart/form-data; boundary=XyZ", False, [FR]),
    ("multipart-quoted-printable", "", multipart(('Content-Disposition: form-data; name="T"'
                                                  "\r\nContent-Transfer-Encoding: "
                                                  "quoted-printable", b"=2B33612345678")),
     "multipart/form-data; boundary=XyZ", False, [FR]),
    ("multipart-lf-only", "", multipart(('Content-Disposition: form-data; name="To"',
                                         FR.encode())).replace(b"\r\n", b"\n"),
     "multipart/form-data; boundary=XyZ", False, [FR]),
    ("multipart-file-lines", "", multipart(('Content-Disposition: form-data; name="f"; '
                                            'filename="to.csv"', f"{FR}\n{UK}\n".encode())),
     "multipart/form-data; boundary=XyZ", False, [FR, UK]),
    ("multipart-binary-file-skipped", "", multipart(
        ('Content-Disposition: form-data; name="f"; filename="a.png"\r\n'
         "Content-Type: image/png", b"\x89PNG+33612345678\xff")),
     "multipart/form-data; boundary=XyZ", False, []),
    # Plain text and other bodies.
    ("text-lines", "", f"hello\n{FR}\n  +44 7700 900123  \n", "text/plain", False,
     [FR, "+44 7700 900123"]),
    ("text-uris", "", "ring sip:+33612345678@h or tel:+447700900123;ext=1 please",
     "text/plain", False, ["sip:+33612345678@h", "tel:+447700900123;ext=1"]),
    ("text-prose-digits-ignored", "", "call me on +33612345678 tomorrow at 12:30",
     "text/plain", False, []),
    ("text-ndjson", "", f'{{"to": "{FR}"}}\n{{"to": "{UK}"}}\n', "application/x-ndjson", False,
     [FR, UK]),
    ("empty", "", b"", "application/json", False, []),
    ("charset-utf8", "", f'{{"to": "{FR}"}}', "application/json; charset=UTF-8", False, [FR]),
    ("charset-quoted-ascii", "", f"To={FR}", 'text/plain; charset="us-ascii"', False, [FR]),
]


@pytest.mark.parametrize(
    ("query", "body", "content_type", "bare_digits", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in FOUND],
)
def test_scan_request_finds(query: str, body: bytes | str, content_type: str,
                            bare_digits: bool, expected: list[str]) -> None:
    """Each spelling is found wherever and however it is written."""
    found = scan(body, content_type, query, bare_digits=bare_digits)
    assert not isinstance(found, ScanError), found
    assert set(expected) <= set(found)
    if not expected:
        assert found == []


# --------------------------------------------------------------------------- refused

# (id, query, body, content type, code)
REFUSED: list[tuple[str, str, bytes | str, str, str]] = [
    ("query-bad-percent", "To=%2G33612345678", b"", "", "ambiguous_request"),
    ("query-truncated-percent", "To=%2", b"", "", "ambiguous_request"),
    ("query-nul-name", "T%00o=%2B33612345678", b"", "", "ambiguous_request"),
    ("query-control-name", "T%0Ao=1", b"", "", "ambiguous_request"),
    ("form-bad-percent", "", "To=%zz", "application/x-www-form-urlencoded",
     "ambiguous_request"),
    ("json-control-key", "", '{"to\\u0000": "x"}', "application/json", "ambiguous_request"),
    ("charset-latin1", "", "To=1", "application/x-www-form-urlencoded; charset=ISO-8859-1",
     "ambiguous_request"),
    ("charset-utf16", "", "x", "text/plain; charset=utf-16", "ambiguous_request"),
    ("charset-twice", "", "x", "text/plain; charset=utf-8; charset=latin1",
     "ambiguous_request"),
    ("body-utf16", "", '{"to": "+33612345678"}'.encode("utf-16"), "application/json",
     "ambiguous_request"),
    ("body-utf16-no-bom", "", '{"to": "+33612345678"}'.encode("utf-16-le"), "",
     "ambiguous_request"),
    ("json-invalid", "", '{"to": "+33612345678"', "application/json", "invalid_body"),
    ("json-deep", "", "[" * 100_000 + "]" * 100_000, "application/json", "ambiguous_request"),
    ("xml-doctype", "", '<!DOCTYPE r><r>x</r>', "application/xml", "ambiguous_request"),
    ("xml-entity", "", '<!DOCTYPE r [<!ENTITY n "+33612345678">]><r>&n;</r>', "text/xml",
     "ambiguous_request"),
    ("xml-sniffed-entity", "", '<!DOCTYPE r [<!ENTITY n "+33612345678">]><r>&n;</r>', "",
     "ambiguous_request"),
    ("xml-nested-entity", "", json.dumps({"t": '<!DOCTYPE r [<!ENTITY n "1">]><r/>'}),
     "application/json", "ambiguous_request"),
    ("xml-latin1-declaration", "", '<?xml version="1.0" encoding="ISO-8859-1"?><r/>',
     "text/xml", "ambiguous_request"),
    ("xml-malformed", "", "<r><to>+33612345678</r>", "application/xml", "invalid_body"),
    ("xml-too-deep", "", "<a>" * 100 + "</a>" * 100, "application/xml", "ambiguous_request"),
    ("multipart-no-boundary", "", "x", "multipart/form-data", "ambiguous_request"),
    ("multipart-boundary-absent", "", "To=+33612345678", "multipart/form-data; boundary=b",
     "invalid_body"),
    ("multipart-part-charset", "", multipart(('Content-Disposition: form-data; name="To"\r\n'
                                              "Content-Type: text/plain; charset=latin1",
                                              b"+33612345678")),
     "multipart/form-data; boundary=XyZ", "ambiguous_request"),
    ("multipart-unknown-encoding", "", multipart(('Content-Disposition: form-data; name="T"'
                                                  "\r\nContent-Transfer-Encoding: x-uue",
                                                  b"x")),
     "multipart/form-data; boundary=XyZ", "ambiguous_request"),
    ("multipart-control-name", "", multipart(('Content-Disposition: form-data; name="T\to"',
                                              b"x")),
     "multipart/form-data; boundary=XyZ", "ambiguous_request"),
]


@pytest.mark.parametrize(
    ("query", "body", "content_type", "code"),
    [pytest.param(*case[1:], id=case[0]) for case in REFUSED],
)
def test_scan_request_refuses(query: str, body: bytes | str, content_type: str,
                              code: str) -> None:
    """What cannot be read one way only is refused, with a message free of numbers."""
    found = scan(body, content_type, query)
    assert isinstance(found, ScanError)
    assert found.code == code
    assert re.search(r"\d{5}", found.message) is None


def test_too_many_values() -> None:
    """More distinct candidates than max_values is an error; exactly max_values is not."""
    body = json.dumps([f"+3361234{n:04d}" for n in range(10)])
    assert len(scan(body, "application/json", max_values=10)) == 10  # type: ignore[arg-type]
    refused = scan(body, "application/json", max_values=9)
    assert refused == ScanError("too_many_values", "more than 9 possible destinations")
    assert scan(json.dumps([FR] * 50), "application/json", max_values=1) == [FR]
    assert isinstance(scan(FR, "text/plain", max_values=0), ScanError)


def test_candidates_parse_to_the_number() -> None:
    """Every candidate is a raw string parse_destination reads as the number."""
    body = json.dumps({"a": "sip:%2B33612345678@h", "b": "0033612345678",
                       "c": '"Bob" <tel:+33-6-12-34-56-78>'})
    found = scan(body, "application/json")
    assert isinstance(found, list)
    assert len(found) >= 3
    for raw in found:
        assert FR in parse_destination(raw, "US").keys

"""Deep scan properties (gatekeeper.scan): it never raises, never returns more than asked,
and finds a number wherever it is put in a JSON, form or XML request."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode
from xml.sax.saxutils import escape, quoteattr

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.numbers import parse_destination
from gatekeeper.scan import ScanError, scan_request, script_targets

# The message of the catch-all that turns a scanner bug into a refusal.
UNREADABLE = "the request could not be read"
CONTENT_TYPES = ["", "application/json", "application/x-www-form-urlencoded", "text/xml",
                 "application/xml", "text/plain", "multipart/form-data; boundary=b",
                 "multipart/form-data", "application/json; charset=latin1",
                 "application/octet-stream", "image/png", "application/vnd.api+json",
                 "text/plain; charset=utf-8", "application/soap+xml"]
# Text rich in what the scanner reacts to: structure, encodings, controls, separators.
TRICKY = [
    *'{}[]<>&;=%+"\':/\\?#@,0123456789 \t\r\n\x00\x1f',
    "sip:", "tel:", "<!DOCTYPE", "<![CDATA[", "%2B", "%zz", "\ufeff", "\u202f", "\uff13",
    "\u0663", "\ud800", "--b", "\r\n\r\n", "+33612345678", "00", "011", "ext", "&#43;"]
tricky_text = st.lists(st.one_of(st.sampled_from(TRICKY), st.characters()), max_size=40
                       ).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | tricky_text,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(tricky_text, children, max_size=4),
    max_leaves=20)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """Random bytes, or text or JSON that may hold anything above."""
    kind = draw(st.sampled_from(["bytes", "text", "json", "xml", "multipart"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    text = draw(tricky_text)
    if kind == "xml":
        text = f"<r a={quoteattr(text)}>{escape(text)}<c>{draw(tricky_text)}</c></r>"
    elif kind == "multipart":
        text = (f'--b\r\nContent-Disposition: form-data; name="{draw(tricky_text)}"\r\n'
                f"\r\n{text}\r\n--b--")
    return text.encode("utf-8", errors="surrogatepass")


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tricky_text, bodies(), st.sampled_from(CONTENT_TYPES), st.booleans(),
       st.integers(0, 5))
def test_scan_request_never_raises(query: str, body: bytes, content_type: str,
                                   bare_digits: bool, max_values: int) -> None:
    """Any input gives a list of at most max_values distinct strings, or a ScanError."""
    found = scan_request(query, body, content_type, bare_digits=bare_digits,
                         max_values=max_values)
    if isinstance(found, ScanError):
        assert found.code in ("ambiguous_request", "invalid_body", "too_many_values")
        assert found.message != UNREADABLE   # the safety net, never the normal path
    else:
        assert len(found) <= max_values
        assert len(set(found)) == len(found)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(tricky_text, json_values.map(json.dumps),
                 bodies().map(lambda b: b.decode("utf-8", errors="replace"))),
       st.booleans(), st.integers(0, 5))
def test_script_targets_never_raises(text: str, bare_digits: bool, max_values: int) -> None:
    """Any script text gives at most max_values targets, or a ScanError."""
    found = script_targets(text, bare_digits=bare_digits, max_values=max_values)
    if isinstance(found, ScanError):
        assert found.message != UNREADABLE
    else:
        assert len(found) <= max_values


# --------------------------------------------------------------------------- found anywhere

NUMBERS = ["+33612345678", "+447700900123", "+14155550100", "+905320000099", "+8613800138000",
           "+5511987654321"]
SEPARATORS = ["", " ", "-", ".", "\u00a0", "\u2013"]
names = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-", min_size=1,
                max_size=8)
filler = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="<&%"),
                 max_size=20)


@st.composite
def spelled_number(draw: st.DrawFn) -> tuple[str, str]:
    """(a phone-like spelling, the number it names)."""
    number = draw(st.sampled_from(NUMBERS))
    sep = draw(st.sampled_from(SEPARATORS))
    digits = sep.join([number[1:4], number[4:7], number[7:]])
    form = draw(st.sampled_from(["+", "00", "sip", "tel", "name-addr", "prose-uri"]))
    text = {"+": "+" + digits, "00": "00" + digits, "sip": f"sip:+{digits}@trunk.example",
            "tel": f"tel:+{digits}", "name-addr": f'"Desk" <sip:+{digits}@h>',
            "prose-uri": f"please ring sip:{number}@h;user=phone today"}[form]
    return text, number


@st.composite
def json_nest(draw: st.DrawFn, leaf: object, depth: int) -> object:
    """`leaf` at `depth` inside objects/arrays with random siblings and key names."""
    node = leaf
    for _ in range(depth):
        if draw(st.booleans()):
            siblings: dict[str, object] = dict(draw(st.dictionaries(names, filler, max_size=3)))
            siblings[draw(names) + "_k"] = node
            node = siblings
        else:
            items: list[object] = list(draw(st.lists(filler, max_size=3)))
            items.insert(draw(st.integers(0, len(items))), node)
            node = items
    return node


@st.composite
def request_with_number(draw: st.DrawFn) -> tuple[str, bytes, str, str]:
    """(query, body, content type, number) with the number hidden somewhere."""
    text, number = draw(spelled_number())
    leaf: object = text
    for _ in range(draw(st.integers(0, 2))):   # sometimes a JSON document in a string
        leaf = json.dumps(draw(json_nest(leaf, draw(st.integers(0, 3)))))
    shape = draw(st.sampled_from(["json", "form", "query", "xml-text", "xml-attr",
                                  "multipart", "text"]))
    declared = draw(st.booleans())
    if shape == "json":
        body = json.dumps(draw(json_nest(leaf, draw(st.integers(0, 6)))))
        return "", body.encode(), "application/json" if declared else "", number
    if not isinstance(leaf, str):
        leaf = json.dumps(leaf)
    pairs = [(draw(names), draw(filler)) for _ in range(draw(st.integers(0, 3)))]
    pairs.insert(draw(st.integers(0, len(pairs))), (draw(names), leaf))
    if shape in ("form", "query"):
        encoded = urlencode(pairs, quote_via=quote)
        if shape == "query":
            return encoded, b"", "", number
        return "", encoded.encode(), ("application/x-www-form-urlencoded" if declared
                                      else ""), number
    if shape == "xml-text":
        inner = "".join(f"<x{n}>{escape(v)}</x{n}>" for n, v in pairs)
        return "", f"<root>{inner}</root>".encode(), "text/xml" if declared else "", number
    if shape == "xml-attr":
        attributes = " ".join(f"x{n}{i}={quoteattr(v)}" for i, (n, v) in enumerate(pairs))
        return "", f"<root {attributes}/>".encode(), "application/xml" if declared else "", \
            number
    if shape == "multipart":
        body = "".join(f'--zz\r\nContent-Disposition: form-data; name="{n}"\r\n\r\n{v}\r\n'
                       for n, v in pairs) + "--zz--\r\n"
        return "", body.encode(), "multipart/form-data; boundary=zz", number
    return "", leaf.encode(), "text/plain", number


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request_with_number(), st.booleans())
def test_a_number_anywhere_is_found(case: tuple[str, bytes, str, str], bare_digits: bool
                                    ) -> None:
    """Some candidate of the scan reads as the hidden number."""
    query, body, content_type, number = case
    found = scan_request(query, body, content_type, bare_digits=bare_digits,
                         max_values=10_000)
    assert not isinstance(found, ScanError), found
    assert any(number in parse_destination(raw, None, False).keys for raw in found), found

"""Request bodies before and as written: forms, JSON with duplicate keys (its pairs kept,
spacing and escapes drawn), XML text and attributes, and inline TwiML/TeXML scripts."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

from hypothesis import strategies as st

from tests.fuzz.lists import CALLER, MountInfo
from tests.fuzz.spellings import Dest, rare


class JObj(list[tuple[str, Any]]):
    """A JSON object as its pairs: duplicate keys allowed."""


def jobj(**fields: Any) -> JObj:
    return JObj(list(fields.items()))


@dataclass
class Form:
    """A url-encoded form as (name, value) pairs, before encoding."""

    pairs: list[tuple[str, str]]


@dataclass
class Json:
    value: Any


@dataclass
class Text:
    """A body already written out (XML, plain text, multipart)."""

    text: str


Body = Form | Json | Text | None

_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"


def encode_component(draw: st.DrawFn, text: str, *, plus_raw: bool = False) -> str:
    """Percent-encode a form/query component, spelled one of several valid ways."""
    style = draw(st.sampled_from(("plus", "pct20", "extra")))
    out = []
    for ch in text:
        if ch == " ":
            out.append("+" if style != "pct20" else "%20")
        elif ch == "+" and plus_raw:
            out.append("+")
        elif ch in _UNRESERVED:
            if style == "extra" and ch.isalnum() and rare(draw, 10):
                out.append(f"%{ord(ch):02x}")
            else:
                out.append(ch)
        else:
            out.append(quote(ch, safe=""))
    return "".join(out)


def encode_form(draw: st.DrawFn, pairs: Sequence[tuple[str, str]], *,
                plus_raw: bool = False) -> str:
    return "&".join(f"{encode_component(draw, k)}={encode_component(draw, v, plus_raw=plus_raw)}"
                    for k, v in pairs)


def json_string(text: str, *, ascii_only: bool, escape_digits: bool, escape_slash: bool,
                escape_letters: bool = False) -> str:
    """A JSON string literal, every character escaped or not as asked (all valid JSON)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if escape_letters and ch.isascii() and ch.isalpha():
            out.append(f"\\u{code:04x}")
        elif ch in '"\\':
            out.append("\\" + ch)
        elif ch == "/" and escape_slash:
            out.append("\\/")
        elif code < 0x20 or (escape_digits and ch.isascii() and ch.isdigit()):
            out.append(f"\\u{code:04x}")
        elif ascii_only and code > 0x7E:
            if code > 0xFFFF:
                code -= 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
            else:
                out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def dump_json(draw: st.DrawFn, value: Any) -> str:
    """JSON with duplicate keys kept, spacing and escapes drawn."""
    spaced = draw(st.booleans())
    escape_digits = rare(draw, 6)
    ascii_only = draw(st.booleans())
    escape_slash = rare(draw, 6)
    escape_keys = rare(draw, 8)   # `"t\u006f"` is the key `to` to every decoder
    colon, comma = (": ", ", ") if spaced else (":", ",")

    def text(s: str, *, key: bool = False) -> str:
        return json_string(s, ascii_only=ascii_only, escape_digits=escape_digits,
                           escape_slash=escape_slash, escape_letters=key and escape_keys)

    def dump(v: Any) -> str:
        if isinstance(v, JObj):
            return "{" + comma.join(text(k, key=True) + colon + dump(x) for k, x in v) + "}"
        if isinstance(v, dict):
            return dump(JObj(list(v.items())))
        if isinstance(v, list):
            return "[" + comma.join(dump(x) for x in v) + "]"
        if isinstance(v, str):
            return text(v)
        return json.dumps(v)

    return dump(value)


_XML_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def xml_safe(text: str) -> str:
    """The closest spelling XML can carry: XML has no NUL (the text ends there, as a C
    reader would end it) and no other C0 controls but tab and line breaks."""
    return _XML_FORBIDDEN.sub("", text.split("\x00", 1)[0])


def xml_escape(text: str) -> str:
    return escape(xml_safe(text))


def xml_attr(text: str) -> str:
    return quoteattr(xml_safe(text))


def twiml(draw: st.DrawFn, info: MountInfo, dests: list[Dest]) -> str:
    """An inline TwiML/TeXML script dialling `dests`."""
    nouns = []
    for d in dests:
        value = xml_escape(d.text)
        # A bare number or a <Message> holds one destination: only for a lone one.
        kinds = ("number", "sip", "cdata") + (("bare", "message") if len(dests) == 1 else ())
        noun = draw(st.sampled_from(kinds))
        if noun == "number":
            nouns.append(f'<Number sendDigits="ww12">{value}</Number>')
        elif noun == "bare":
            nouns.append(value)
        elif noun == "sip":
            nouns.append(f"<Sip>{value}</Sip>")
        elif noun == "cdata":
            nouns.append(f"<Number><![CDATA[{xml_safe(d.text)}]]></Number>")
        else:
            return f'<Response><Message to={xml_attr(d.text)}>hi</Message></Response>'
    caller = f' callerId="{CALLER}"' if draw(st.booleans()) else ""
    return f"<Response><Say>hi</Say><Dial{caller}>{''.join(nouns)}</Dial></Response>"

"""Send requests in every spelling, and a checker that reads what an upstream received
every way: the strategies and harness of the invariant fuzzer (tests/test_invariant_*.py).

The invariant: nothing an upstream receives, decoded any way (percent once and twice,
`+` as space and as plus, JSON, XML, HTML/XML character references, JSON escapes,
Unicode digits, separators inside digit runs), holds the digits of a blocked number,
unless that upstream is in `monitor`.

Layout: the numbers (blocked, allowed, unlisted, and how the lists are loaded); number
spellings; request bodies (forms, JSON with duplicate keys, XML, multipart); one builder
per documented send of each preset; mutations (path, method, fields, query, content
type, headers); the unknown-endpoint builder; the checker; the raw HTTP client and the
harness that runs Hypothesis in a worker thread against a Gatekeeper on the test's loop.
"""

from __future__ import annotations

import asyncio
import gzip
import html
import json
import os
import re
import unicodedata
import zlib
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote, unquote_plus
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

import phonenumbers
from hypothesis import strategies as st

from tests.conftest import AUTH, FakeUpstream, Recorded, Running, StartGatekeeper, make_config

T = TypeVar("T")

# ---------------------------------------------------------------------------- numbers


@dataclass(frozen=True, slots=True)
class Num:
    """A destination number and what the lists say of it.

    `role`: `blocked` (every channel, global), `prefix` (under the blocked `+3361*`),
    `voice` / `sms` (blocked on that channel only), `tenant` (blocked in `tenant:acme`
    only), `allowed` (allow-listed), `unlisted`.
    """

    e164: str
    region: str | None
    role: str

    @property
    def digits(self) -> str:
        return self.e164[1:]

    @property
    def cc(self) -> str:
        return str(phonenumbers.parse(self.e164).country_code)

    @property
    def nsn(self) -> str:
        return self.digits[len(self.cc):]

    def national(self) -> str:
        """The national format of the number's own region (`07700 900461`)."""
        return phonenumbers.format_number(phonenumbers.parse(self.e164),
                                          phonenumbers.PhoneNumberFormat.NATIONAL)


# Blocked numbers: digit strings chosen so that nothing else generated can hold them.
US_BLOCKED = Num("+12025550143", "US", "blocked")
GB_BLOCKED = Num("+447700900461", "GB", "blocked")   # also allow-listed: block wins the tie
TR_BLOCKED = Num("+905327654321", "TR", "blocked")
DE_BLOCKED = Num("+4917612398745", "DE", "blocked")
PRELUDE_SEED = Num("+30123456789", None, "blocked")  # the seed documents' examples: not
AGENT_SEED = Num("+1234567890", None, "blocked")     # possible numbers, still enforced
PREFIX_ENTRY = "+3361*"
VOICE_ONLY = Num("+48601234567", "PL", "voice")
SMS_ONLY = Num("+34655443322", "ES", "sms")
TENANT_ONLY = Num("+61412345679", "AU", "tenant")
TENANT = "tenant:acme"
ALLOWED = Num("+14155550100", "US", "allowed")
UNLISTED = (Num("+447700900462", "GB", "unlisted"), Num("+905321112233", "TR", "unlisted"),
            Num("+4915112345678", "DE", "unlisted"), Num("+819012345678", "JP", "unlisted"),
            Num("+5511987654321", "BR", "unlisted"), Num("+12125550187", "US", "unlisted"))
EXACT_BLOCKED = (US_BLOCKED, GB_BLOCKED, TR_BLOCKED, DE_BLOCKED, PRELUDE_SEED, AGENT_SEED)
# Callers (`From`, `src`, ...): never blocked, never destinations.
CALLER = "+12125550187"
CALLER_DIGITS = "12125550187"


async def load_lists(running: Running) -> None:
    """The block and allow lists every fuzzing Gatekeeper starts with."""
    await running.block(*(n.e164 for n in EXACT_BLOCKED), PREFIX_ENTRY)
    resp = await running.admin.post("/admin/v1/lists/block/entries", headers=AUTH, json={
        "entries": [{"entry": VOICE_ONLY.e164, "channel": "voice"},
                    {"entry": SMS_ONLY.e164, "channel": "sms"}], "scope": "global"})
    assert resp.status == 200, await resp.text()
    added = await resp.json()
    assert not added["failed"], added
    await running.block(TENANT_ONLY.e164, scope=TENANT)
    await running.allow(ALLOWED.e164, GB_BLOCKED.e164)


# ---------------------------------------------------------------------------- mounts


@dataclass(frozen=True, slots=True)
class MountInfo:
    """One upstream of the fuzzing config, as the builders and the checker see it."""

    name: str        # the mount is /<name>; the upstream URL's path is /up/<name>
    preset: str
    msisdn: bool
    region: str | None
    on_block: str


PRESET_FACTS: dict[str, tuple[bool, str | None]] = {
    # preset: (msisdn, region set on its upstream in the fuzzing config)
    "twilio": (False, "US"), "vonage": (True, "GB"), "plivo": (True, None),
    "telnyx": (False, "US"), "sinch": (True, "DE"), "infobip": (True, None),
    "messagebird": (True, "GB"), "iletimerkezi": (False, "TR"), "prelude": (False, None),
    "generic": (False, "GB"),
}
PRESETS = tuple(PRESET_FACTS)
MONITOR = "watch"
GENERIC_ROUTES = [
    {"method": "POST", "path": "/v1/sms", "channel": "sms",
     "destination": {"json": "messages[].to"}},
    {"method": "POST", "path": "/v1/{account}/call", "channel": "voice",
     "destination": {"form": "to"}},
]


def mounts(flip: bool, monitor_preset: str) -> dict[str, MountInfo]:
    """Every preset once, `reject` and `skip` alternating (`flip` swaps them), plus the
    monitor upstream `watch` with `monitor_preset`."""
    out: dict[str, MountInfo] = {}
    for i, preset in enumerate(PRESETS):
        msisdn, region = PRESET_FACTS[preset]
        on_block = ("reject", "skip")[(i + flip) % 2]
        out[preset] = MountInfo(preset, preset, msisdn, region, on_block)
    msisdn, region = PRESET_FACTS[monitor_preset]
    out[MONITOR] = MountInfo(MONITOR, monitor_preset, msisdn, region, "monitor")
    return out


def fuzz_config(upstream_url: str, tmp_path: Path, infos: dict[str, MountInfo],
                on_invalid: str) -> Any:
    """The Gatekeeper config: each mount's upstream at `<fake>/up/<name>`."""
    upstreams = []
    for info in infos.values():
        raw: dict[str, Any] = {"name": info.name, "url": f"{upstream_url}/up/{info.name}",
                               "preset": info.preset, "on_block": info.on_block}
        if info.region and info.preset != "iletimerkezi":
            raw["region"] = info.region
        if info.preset == "generic":
            raw["routes"] = GENERIC_ROUTES
        upstreams.append(raw)
    return make_config(upstream_url, tmp_path, upstreams=upstreams,
                       proxy={"on_invalid": on_invalid})


# ---------------------------------------------------------------------------- spellings

_SEPARATORS = (" ", "-", ".", "\u00a0", "\u2009", "\u2011", "\u202f", "  ", " - ")
_FULLWIDTH = {str(d): chr(0xFF10 + d) for d in range(10)}
_ARABIC = {str(d): chr(0x0660 + d) for d in range(10)}
_DEVANAGARI = {str(d): chr(0x0966 + d) for d in range(10)}
_SUFFIXES = (",,123", ",ww12", "w1", "p12", " ext. 12", " x12", "#", ",1*")
_HOSTS = ("trunk.example.com", "10.0.0.7:5060", "pbx.example.org;transport=tls")
# Kinds of spelling, by where they may stand.
ANYWHERE = ("e164", "grouped", "paren", "trunk0", "idd00", "idd011", "plus00", "tel",
            "tel_grouped", "tel_context", "tel_slashes", "sip_plus", "sip_bare", "sip_phone",
            "sip_password", "sip_display", "tel_display", "sip_nohost", "sips", "whatsapp",
            "pct_plus", "pct_all", "fullwidth", "arabic", "devanagari", "suffix", "sip_pct",
            "upper_scheme", "invisible", "padded", "nul_tail", "uri_headers", "angle",
            "paren_cc")
# Regions whose national numbers start with a trunk `0` (`+44 (0) 7700...` is +447700...).
TRUNK_ZERO = frozenset({"GB", "DE", "TR", "FR", "AU", "JP", "BR"})


def rare(draw: st.DrawFn, n: int) -> bool:
    """True about once in `n` draws; False in the simplest example (what shrinking aims at),
    so a failure shrinks to the request with the fewest mutations."""
    return draw(st.sampled_from((False,) * (n - 1) + (True,)))


def _group(digits: str, seps: Sequence[str], cuts: Sequence[int]) -> str:
    out, last = [], 0
    for i, cut in enumerate(sorted({c for c in cuts if 0 < c < len(digits)})):
        out.append(digits[last:cut])
        out.append(seps[i % len(seps)])
        last = cut
    out.append(digits[last:])
    return "".join(out)


@st.composite
def spelling(draw: st.DrawFn, num: Num, info: MountInfo, where: str) -> tuple[str, str]:
    """(kind, text): one way of writing `num` for `info`'s upstream.

    `where`: `field` (a send route's recipient field), `script` (a dial target in an
    inline call script), `scan` (anywhere in a write no route describes: only spellings
    the deep scan documents, i.e. international ones; bare digits on msisdn presets).
    """
    kinds = list(ANYWHERE)
    if info.msisdn:
        kinds += ["msisdn", "msisdn", "msisdn00"]
    # National spellings name the number only in the upstream's own region, and only
    # where a route reads a recipient (the deep scan reads international spellings).
    national = where != "scan" and num.region is not None and num.region == info.region
    if national:
        kinds += ["national", "national_digits"]
    if info.preset == "iletimerkezi" and num.region == "TR":
        # iletiMerkezi's own `905XXXXXXXXX`; the scan reads bare digits there too.
        kinds += ["tr_msisdn", "national_digits"]
    if num.region not in TRUNK_ZERO:
        kinds.remove("trunk0")
    kind = draw(st.sampled_from(kinds))
    d, cc, nsn = num.digits, num.cc, num.nsn
    host = draw(st.sampled_from(_HOSTS))
    seps = draw(st.lists(st.sampled_from(_SEPARATORS), min_size=1, max_size=3))
    cuts = draw(st.lists(st.integers(1, max(1, len(nsn) - 1)), max_size=3))
    text: str
    if kind == "e164":
        text = "+" + d
    elif kind == "grouped":
        text = "+" + cc + draw(st.sampled_from(_SEPARATORS)) + _group(nsn, seps, cuts)
    elif kind == "paren":
        text = f"+{cc} ({nsn[:3]}) {nsn[3:6]}-{nsn[6:]}"
    elif kind == "trunk0":
        text = f"+{cc} (0) {nsn}"
    elif kind == "idd00":
        text = "00" + cc + draw(st.sampled_from(("", " ", "-"))) + nsn
    elif kind == "idd011":
        text = "011 " + cc + " " + nsn
    elif kind == "plus00":
        text = "+00" + d
    elif kind == "tel":
        text = "tel:+" + d + draw(st.sampled_from(("", ";ext=12", ";isub=7", ";postd=pp12")))
    elif kind == "tel_grouped":
        text = "tel:+" + cc + "-" + _group(nsn, ["-"], cuts)
    elif kind == "tel_context":
        text = f"tel:{nsn};phone-context=+{cc}"
    elif kind == "tel_slashes":
        text = "tel://+" + d
    elif kind == "sip_plus":
        text = f"sip:+{d}@{host}"
    elif kind == "sip_bare":
        text = f"sip:{d}@{host}"
    elif kind == "sip_phone":
        text = f"sip:+{d}@{host};user=phone"
    elif kind == "sip_password":
        text = f"sip:+{d}:pa55word@{host}"
    elif kind == "sip_display":
        text = f'"Front Desk" <sip:+{d}@{host}>'
    elif kind == "tel_display":
        text = f"Desk <tel:+{d}>"
    elif kind == "sip_nohost":
        text = f"sip:+{d}"
    elif kind == "sips":
        text = f"sips:+{d}@{host}"
    elif kind == "whatsapp":
        text = "whatsapp:+" + d
    elif kind == "pct_plus":
        text = "%2B" + d
    elif kind == "pct_all":
        text = "".join(f"%{ord(c):02X}" for c in "+" + d)
    elif kind == "fullwidth":
        text = "\uff0b" + "".join(_FULLWIDTH[c] for c in d)
    elif kind == "arabic":
        text = "+" + "".join(_ARABIC[c] for c in d)
    elif kind == "devanagari":
        text = "+" + "".join(_DEVANAGARI[c] for c in d)
    elif kind == "suffix":
        text = "+" + d + draw(st.sampled_from(_SUFFIXES))
    elif kind == "sip_pct":
        text = f"sip:%2B{d}@{host}"
    elif kind == "upper_scheme":
        text = draw(st.sampled_from((f"TEL:+{d}", f"Tel:+{d}", f"SIP:+{d}@{host}")))
    elif kind == "invisible":
        # Zero-width space, soft hyphen, BOM, word joiner, bidi marks: format characters.
        mark = draw(st.sampled_from(("\u200b", "\u00ad", "\ufeff", "\u2060", "\u200e")))
        at = draw(st.integers(1, len(d) - 1))
        text = "+" + d[:at] + mark + d[at:]
        if draw(st.booleans()):
            text = draw(st.sampled_from(("\u202e", "\u2066"))) + text + "\u2069"
    elif kind == "padded":
        text = draw(st.sampled_from((" ", "\t", "\u00a0"))) + "+" + d + \
            draw(st.sampled_from((" ", "\n", "\r\n", "")))
    elif kind == "nul_tail":
        text = "+" + d + "\x00" + draw(st.sampled_from(("", "junk", "\x00")))
    elif kind == "uri_headers":
        text = draw(st.sampled_from((f"tel:+{d}?x=1", f"sip:+{d}@{host}?Subject=hi",
                                     f"sip:+{d}@{host}>")))
    elif kind == "angle":
        text = f"<sip:+{d}@{host}>"
    elif kind == "paren_cc":
        text = f"+({cc}){nsn}"
    elif kind == "msisdn":
        text = d
    elif kind == "msisdn00":
        text = "00" + d
    elif kind == "national":
        text = num.national()
    elif kind == "national_digits":
        text = ("0" + nsn) if num.region in TRUNK_ZERO else nsn
    else:  # tr_msisdn: iletiMerkezi's own documented `905XXXXXXXXX`
        text = d if num.region == "TR" else "+" + d
    return kind, text


def prefix_number() -> st.SearchStrategy[Num]:
    """A number under the blocked prefix `+3361*`."""
    return st.text("0123456789", min_size=7, max_size=7).map(
        lambda rest: Num("+3361" + rest, "FR", "prefix"))


def numbers() -> st.SearchStrategy[Num]:
    """A destination: mostly blocked ones, some allowed and unlisted (partial sends)."""
    return st.one_of(
        st.sampled_from(EXACT_BLOCKED), st.sampled_from(EXACT_BLOCKED), prefix_number(),
        st.sampled_from((VOICE_ONLY, SMS_ONLY, TENANT_ONLY)), st.just(ALLOWED),
        st.sampled_from(UNLISTED), st.sampled_from(UNLISTED))


@dataclass(frozen=True, slots=True)
class Dest:
    """A destination placed in a request: the number, how it is spelled, as text."""

    num: Num
    kind: str
    text: str


@st.composite
def dest(draw: st.DrawFn, info: MountInfo, where: str = "field") -> Dest:
    num = draw(numbers())
    kind, text = draw(spelling(num, info, where))
    return Dest(num, kind, text)


def as_json_value(draw: st.DrawFn, d: Dest, *, ints: bool) -> object:
    """A destination as a JSON value: the text, or an integer (an MSISDN) now and then."""
    if ints and d.kind == "msisdn" and rare(draw, 4):
        return int(d.text)
    return d.text


# ---------------------------------------------------------------------------- bodies


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


# ---------------------------------------------------------------------------- requests


@dataclass
class Spec:
    """A send before it is written out; builders make it, mutations change it."""

    info: MountInfo
    method: str
    segments: list[str]
    body: Body
    content_type: str | None
    channel: str | None              # `sms`, `voice`, or None: either channel counts
    dests: list[Dest] = field(default_factory=list)
    query: list[tuple[str, str]] = field(default_factory=list)
    ext: bool = False                # the route takes any `.suffix` on its last segment
    suffix: str = ""
    trailing_slash: bool = False
    routed: bool = True              # a documented send route (national spellings count)
    recipient_names: tuple[str, ...] = ()  # the body fields that hold recipients
    query_ok: bool = False           # the route reads its query (recipients may move there)
    takes_get: bool = False
    notes: list[str] = field(default_factory=list)
    last_literal: bool = True        # the last segment is a fixed word (not an id)
    plus_raw: bool = False
    # Other methods the same send takes (a POST route also takes PUT and PATCH, unless
    # the path has a route of its own for them).
    alt_methods: tuple[str, ...] = ("PUT", "PATCH")
    # An unknown write whose scan reads bare digits as national numbers (iletiMerkezi).
    national_scan: bool = False

    def deroute(self, note: str) -> None:
        """No longer a send route: a scanned write, decided on both channels."""
        self.routed = False
        self.channel = None
        self.notes.append(note)


@dataclass(frozen=True, slots=True, repr=False)
class Send:
    """A request as written on the wire, with what the checker needs to judge it."""

    info: MountInfo
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    channel: str | None
    routed: bool
    national: bool                   # national spellings of the region's numbers count
    refused_path: bool
    dests: tuple[Dest, ...]
    notes: tuple[str, ...]
    chunked: bool = False
    framing: tuple[tuple[str, str], ...] = ()   # Content-Length/Transfer-Encoding as sent

    def __repr__(self) -> str:
        return f"Send<{self.method} {self.target} {self.body[:60]!r} {list(self.notes)}>"

    def describe(self) -> str:
        head = "".join(f"{k}: {v}\n" for k, v in self.headers + self.framing)
        if self.chunked:
            head += "Transfer-Encoding: chunked (the body in two chunks)\n"
        return (f"{self.method} {self.target}\n{head}\n{self.body!r}\n"
                f"notes={list(self.notes)} channel={self.channel} routed={self.routed}")


# ---------------------------------------------------------------------------- builders

Builder = Callable[[st.DrawFn, MountInfo], Spec]
ACCOUNT = "ACfeedfacefeedfacefeedfacefeedface"
TEXT = "hello there"


def _dests(draw: st.DrawFn, info: MountInfo, where: str = "field", lo: int = 1, hi: int = 3
           ) -> list[Dest]:
    return draw(st.lists(dest(info, where), min_size=lo, max_size=hi))


def _form(pairs: list[tuple[str, str]]) -> Form:
    return Form(pairs)


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


def b_twilio_messages(draw: st.DrawFn, info: MountInfo) -> Spec:
    d = draw(dest(info))
    legacy = rare(draw, 5)
    segs = ["2010-04-01", "Accounts", ACCOUNT, *(["SMS"] if legacy else []), "Messages"]
    return Spec(info, "POST", segs, _form([("To", d.text), ("From", CALLER), ("Body", TEXT)]),
                "application/x-www-form-urlencoded", "sms", [d], ext=True, suffix=".json",
                recipient_names=("To",))


def b_twilio_calls(draw: st.DrawFn, info: MountInfo) -> Spec:
    d = draw(dest(info))
    pairs = [("To", d.text), ("From", CALLER)]
    dests = [d]
    if draw(st.booleans()):
        inline = _dests(draw, info, "script", 1, 2)
        pairs.append(("Twiml", twiml(draw, info, inline)))
        dests += inline
    elif draw(st.booleans()):
        bin_to = draw(dest(info, "scan"))
        pairs.append(("Url", "https://handler.twilio.com/twiml/EHfeed?To="
                      + quote(bin_to.text, safe="")))
        dests.append(bin_to)
    else:
        pairs.append(("Url", "https://app.example.com/voice.xml"))
    return Spec(info, "POST", ["2010-04-01", "Accounts", ACCOUNT, "Calls"], _form(pairs),
                "application/x-www-form-urlencoded", "voice", dests, ext=True, suffix=".json",
                recipient_names=("To",))


def b_twilio_call_update(draw: st.DrawFn, info: MountInfo) -> Spec:
    inline = _dests(draw, info, "script", 1, 2)
    return Spec(info, "POST", ["2010-04-01", "Accounts", ACCOUNT, "Calls", "CAfeedface"],
                _form([("Twiml", twiml(draw, info, inline))]),
                "application/x-www-form-urlencoded", "voice", inline, ext=True,
                suffix=".json", last_literal=False)


def b_twilio_studio(draw: st.DrawFn, info: MountInfo) -> Spec:
    """A Studio flow execution whose `Parameters` (JSON) name more numbers to reach."""
    d = draw(dest(info))
    more = _dests(draw, info, "script", 1, 2)
    key = draw(st.sampled_from(("to", "number", "recipient")))
    parameters = json.dumps({"customer": {key: more[0].text},
                             "others": [{key: x.text} for x in more[1:]]})
    return Spec(info, "POST", ["v2", "Flows", "FWfeed", "Executions"],
                _form([("To", d.text), ("From", CALLER), ("Parameters", parameters)]),
                "application/x-www-form-urlencoded", None, [d, *more],
                recipient_names=("To",))


def _twilio_simple(segs: list[str], name: str, channel: str | None, ext: bool,
                   extra: list[tuple[str, str]]) -> Builder:
    def build(draw: st.DrawFn, info: MountInfo) -> Spec:
        d = draw(dest(info))
        return Spec(info, "POST", list(segs), _form([(name, d.text), *extra]),
                    "application/x-www-form-urlencoded", channel, [d], ext=ext,
                    suffix=".json" if ext else "", recipient_names=(name,))
    return build


TWILIO: tuple[Builder, ...] = (
    b_twilio_messages, b_twilio_messages, b_twilio_calls, b_twilio_calls, b_twilio_call_update,
    _twilio_simple(["2010-04-01", "Accounts", ACCOUNT, "Conferences", "CFfeed", "Participants"],
                   "To", "voice", True, [("From", CALLER)]),
    _twilio_simple(["2010-04-01", "Accounts", ACCOUNT, "OutgoingCallerIds"], "PhoneNumber",
                   "voice", True, [("FriendlyName", "desk")]),
    _twilio_simple(["v2", "Services", "VAfeed", "Verifications"], "To", None, False,
                   [("Channel", "sms")]),
    _twilio_simple(["v1", "Conversations", "CHfeed", "Participants"],
                   "MessagingBinding.Address", "sms", False,
                   [("MessagingBinding.ProxyAddress", CALLER)]),
    _twilio_simple(["v1", "Services", "KSfeed", "Sessions", "KCfeed", "Participants"],
                   "Identifier", None, False, [("FriendlyName", "alice")]),
    _twilio_simple(["v2", "Flows", "FWfeed", "Executions"], "To", None, False,
                   [("From", CALLER)]),
    b_twilio_studio,
)


def b_vonage_legacy(draw: st.DrawFn, info: MountInfo) -> Spec:
    verify = rare(draw, 4)
    d = draw(dest(info))
    name = "number" if verify else "to"
    if verify:
        segs = draw(st.sampled_from((["verify", "json"], ["verify", "xml"],
                                     ["verify", "psd2", "json"])))
        params = [(name, d.text), ("brand", "Acme"), ("api_key", "abcdkey")]
    else:
        segs = draw(st.sampled_from((["sms", "json"], ["sms", "xml"], ["sms"],
                                     ["sc", "us", "alert", "json"])))
        params = [("from", "AcmeInc"), (name, d.text), ("text", TEXT), ("api_key", "abcdkey")]
    if rare(draw, 5):
        params.append(("sig", "cb30cc6bdbfeedface"))
    where = draw(st.sampled_from(("form", "json", "query", "get")))
    # Legacy Verify sends an SMS, then calls: either channel.
    spec = Spec(info, "POST", segs, None, None, None if verify else "sms", [d],
                recipient_names=(name,), query_ok=True, takes_get=True)
    if where == "form":
        spec.body, spec.content_type = _form(params), "application/x-www-form-urlencoded"
    elif where == "json":
        spec.body = Json(JObj([(k, as_json_value(draw, d, ints=True) if k == name else v)
                               for k, v in params]))
        spec.content_type = "application/json"
    else:
        spec.query = params
        spec.method = "GET" if where == "get" else "POST"
    return spec


def _endpoint(draw: st.DrawFn, d: Dest) -> JObj:
    if d.text.lower().startswith(("sip:", "sips:", '"')) and draw(st.booleans()):
        return jobj(type="sip", uri=d.text)
    return jobj(type="phone", number=as_json_value(draw, d, ints=True))


def b_vonage_messages(draw: st.DrawFn, info: MountInfo) -> Spec:
    d = draw(dest(info))
    doc = jobj(to=as_json_value(draw, d, ints=True), **{"from": "AcmeInc"},
               channel=draw(st.sampled_from(("sms", "whatsapp", "mms", "viber_service"))),
               message_type="text", text=TEXT)
    dests = [d]
    if draw(st.booleans()):
        backups = _dests(draw, info, "field", 1, 3)
        doc.append(("failover", [jobj(to=b.text, **{"from": "AcmeInc"}, channel="sms",
                                      message_type="text", text=TEXT) for b in backups]))
        dests += backups
    return Spec(info, "POST", ["v1", "messages"], Json(doc), "application/json", "sms", dests,
                recipient_names=("to",))


def b_vonage_v01(draw: st.DrawFn, info: MountInfo) -> Spec:
    d = draw(dest(info))
    to = jobj(type="sms", number=d.text)
    if draw(st.booleans()):
        doc = jobj(to=to, **{"from": jobj(type="sms", number="AcmeInc")},
                   message=jobj(content=jobj(type="text", text=TEXT)))
        return Spec(info, "POST", ["v0.1", "messages"], Json(doc), "application/json", "sms",
                    [d], recipient_names=("number",))
    doc = jobj(template="failover", workflow=[jobj(to=to, message=jobj(
        content=jobj(type="text", text=TEXT)))])
    return Spec(info, "POST", ["v0.1", "dispatch"], Json(doc), "application/json", "sms", [d],
                recipient_names=("number",))


def _ncco(draw: st.DrawFn, dests: list[Dest]) -> list[Any]:
    actions: list[Any] = [jobj(action="talk", text="hi")]
    if dests:
        actions.append(jobj(action="connect", **{"from": CALLER_DIGITS},
                            endpoint=[_endpoint(draw, x) for x in dests]))
    return actions


def b_vonage_calls(draw: st.DrawFn, info: MountInfo) -> Spec:
    to = _dests(draw, info, "field", 1, 3)
    doc = jobj(to=[_endpoint(draw, x) for x in to],
               **{"from": jobj(type="phone", number=CALLER_DIGITS)})
    dests = list(to)
    if draw(st.booleans()):
        inline = _dests(draw, info, "script", 0, 2)
        doc.append(("ncco", _ncco(draw, inline)))
        dests += inline
    else:
        doc.append(("answer_url", ["https://app.example.com/answer"]))
    return Spec(info, "POST", ["v1", "calls"], Json(doc), "application/json", "voice", dests,
                recipient_names=("number", "uri"))


def b_vonage_transfer(draw: st.DrawFn, info: MountInfo) -> Spec:
    inline = _dests(draw, info, "script", 1, 2)
    doc = jobj(action="transfer", destination=jobj(type="ncco", ncco=_ncco(draw, inline)))
    return Spec(info, "PUT", ["v1", "calls", "feedface-uuid"], Json(doc), "application/json",
                "voice", inline, last_literal=False, recipient_names=("number",))


def b_vonage_verify2(draw: st.DrawFn, info: MountInfo) -> Spec:
    steps = _dests(draw, info, "field", 1, 3)
    doc = jobj(brand="Acme", workflow=[
        jobj(channel=draw(st.sampled_from(("sms", "voice", "whatsapp", "silent_auth"))),
             to=s.text) for s in steps])
    return Spec(info, "POST", ["v2", "verify"], Json(doc), "application/json", None, steps,
                recipient_names=("to",))


VONAGE: tuple[Builder, ...] = (b_vonage_legacy, b_vonage_legacy, b_vonage_messages,
                               b_vonage_v01, b_vonage_calls, b_vonage_transfer,
                               b_vonage_verify2)

PLIVO_AUTH = "MAfeedfacefeedface"


def _joined(draw: st.DrawFn, info: MountInfo) -> tuple[list[Dest], object]:
    dests = _dests(draw, info, "field", 1, 4)
    if len(dests) == 1:
        return dests, as_json_value(draw, dests[0], ints=True)
    return dests, "<".join(x.text for x in dests)


def b_plivo(draw: st.DrawFn, info: MountInfo) -> Spec:
    kind = draw(st.sampled_from(("message", "message", "call", "verify", "participant")))
    account = ["v1", "Account", PLIVO_AUTH]
    if kind == "verify":
        d = draw(dest(info))
        return Spec(info, "POST", [*account, "Verify", "Session"],
                    Json(jobj(recipient=as_json_value(draw, d, ints=True),
                              channel=draw(st.sampled_from(("sms", "voice"))))),
                    "application/json", None, [d], trailing_slash=True,
                    recipient_names=("recipient",))
    dests, joined = _joined(draw, info)
    if kind == "message":
        word = draw(st.sampled_from(("Message", "Messages", "message")))
        doc = jobj(src=CALLER_DIGITS, dst=joined, text=TEXT)
        return Spec(info, "POST", [*account, word], Json(doc), "application/json", "sms",
                    dests, trailing_slash=True, recipient_names=("dst",))
    if kind == "call":
        doc = jobj(**{"from": CALLER_DIGITS}, to=joined,
                   answer_url="https://app.example.com/answer")
        return Spec(info, "POST", [*account, "Call"], Json(doc), "application/json", "voice",
                    dests, trailing_slash=True, recipient_names=("to",))
    doc = jobj(role="agent", **{"from": CALLER_DIGITS}, to=joined)
    return Spec(info, "POST", [*account, "MultiPartyCall", "name_standup", "Participant"],
                Json(doc), "application/json", "voice", dests, trailing_slash=True,
                recipient_names=("to",))


PLIVO: tuple[Builder, ...] = (b_plivo,)


def b_telnyx_message(draw: st.DrawFn, info: MountInfo) -> Spec:
    variant = draw(st.sampled_from(((), (), ("long_code",), ("short-code",), ("Number_Pool",),
                                    ("alphanumeric_sender_id",), ("schedule",),
                                    ("whatsapp",), ("rcs",))))
    d = draw(dest(info))
    doc = jobj(**{"from": CALLER}, to=d.text, text=TEXT,
               messaging_profile_id="feedface-profile")
    return Spec(info, "POST", ["v2", "messages", *variant], Json(doc), "application/json",
                "sms", [d], recipient_names=("to",))


def b_telnyx_group(draw: st.DrawFn, info: MountInfo) -> Spec:
    dests = _dests(draw, info, "field", 1, 4)
    doc = jobj(**{"from": CALLER}, to=[x.text for x in dests], text=TEXT,
               media_urls=["https://app.example.com/a.png"])
    return Spec(info, "POST", ["v2", "messages", draw(st.sampled_from(("group_mms",
                                                                         "group-mms")))],
                Json(doc), "application/json", "sms", dests, recipient_names=("to",))


def b_telnyx_call(draw: st.DrawFn, info: MountInfo) -> Spec:
    dests = _dests(draw, info, "field", 1, 3)
    to: object = dests[0].text if len(dests) == 1 and draw(st.booleans()) else \
        [x.text for x in dests]
    doc = jobj(connection_id="feedface-conn", to=to, **{"from": CALLER})
    return Spec(info, "POST", ["v2", "calls"], Json(doc), "application/json", "voice", dests,
                recipient_names=("to",))


def b_telnyx_transfer(draw: st.DrawFn, info: MountInfo) -> Spec:
    d = draw(dest(info))
    return Spec(info, "POST", ["v2", "calls", "v3:feedface", "actions", "transfer"],
                Json(jobj(to=d.text)), "application/json", "voice", [d],
                recipient_names=("to",))


def b_telnyx_texml(draw: st.DrawFn, info: MountInfo) -> Spec:
    d = draw(dest(info))
    doc = jobj(To=d.text, From=CALLER)
    dests = [d]
    if draw(st.booleans()):
        inline = _dests(draw, info, "script", 1, 2)
        doc.append(("Texml", twiml(draw, info, inline)))
        dests += inline
    else:
        doc.append(("Url", "https://app.example.com/texml.xml"))
    body: Body = Json(doc)
    content_type = "application/json"
    if rare(draw, 3):
        body, content_type = _form([(k, v) for k, v in doc]), \
            "application/x-www-form-urlencoded"
    if draw(st.booleans()):
        return Spec(info, "POST", ["v2", "texml", "Accounts", ACCOUNT, "Calls"], body,
                    content_type, "voice", dests, ext=True, recipient_names=("To",))
    return Spec(info, "POST", ["v2", "texml", "calls", "feedfaceconn"], body, content_type,
                "voice", dests, ext=True, last_literal=False, recipient_names=("To",))


def b_telnyx_texml_more(draw: st.DrawFn, info: MountInfo) -> Spec:
    """TeXML call updates (inline `Texml`), conference participants and AI calls (`To`)."""
    kind = draw(st.sampled_from(("update", "participant", "ai")))
    as_form = draw(st.booleans())
    if kind == "update":
        inline = _dests(draw, info, "script", 1, 2)
        fields = [("Texml", twiml(draw, info, inline))]
        segs = ["v2", "texml", "Accounts", ACCOUNT, "Calls", "CAfeed"]
        dests, names = inline, ()
    else:
        d = draw(dest(info))
        fields = [("To", d.text), ("From", CALLER)]
        segs = ["v2", "texml", "Accounts", ACCOUNT, "Conferences", "CFfeed", "Participants"] \
            if kind == "participant" else ["v2", "texml", "ai_calls", "feedfaceconn"]
        dests, names = [d], ("To",)
    body: Body = _form(fields) if as_form else Json(JObj(fields))
    return Spec(info, "POST", segs, body,
                "application/x-www-form-urlencoded" if as_form else "application/json",
                "voice", dests, ext=True, last_literal=kind == "participant",
                recipient_names=names)


def b_telnyx_verify(draw: st.DrawFn, info: MountInfo) -> Spec:
    d = draw(dest(info))
    kind = draw(st.sampled_from(("sms", "whatsapp", "call", "flashcall", "flash_call")))
    return Spec(info, "POST", ["v2", "verifications", kind],
                Json(jobj(phone_number=d.text, verify_profile_id="feed-profile")),
                "application/json", "sms" if kind in ("sms", "whatsapp") else "voice", [d],
                recipient_names=("phone_number",))


TELNYX: tuple[Builder, ...] = (b_telnyx_message, b_telnyx_message, b_telnyx_group,
                               b_telnyx_call, b_telnyx_transfer, b_telnyx_texml,
                               b_telnyx_texml_more, b_telnyx_verify)

PLAN = "feedfaceplan"


def b_sinch(draw: st.DrawFn, info: MountInfo) -> Spec:
    dests = _dests(draw, info, "field", 1, 4)
    values = [x.text for x in dests]
    base = ["xms", "v1", PLAN]
    kind = draw(st.sampled_from(("send", "send", "dry", "replace", "update", "group",
                                 "group_replace", "group_add")))
    if kind in ("send", "dry", "replace"):
        doc = jobj(**{"from": CALLER_DIGITS}, to=values, body=TEXT)
        segs = {"send": [*base, "batches"], "dry": [*base, "batches", "dry_run"],
                "replace": [*base, "batches", "BATCHFEED"]}[kind]
        method = "PUT" if kind == "replace" else "POST"
        name = "to"
    elif kind == "update":
        doc, segs, method, name = jobj(to_add=values, body=TEXT), \
            [*base, "batches", "BATCHFEED"], draw(st.sampled_from(("POST", "PATCH"))), "to_add"
    elif kind == "group":
        doc, segs, method, name = jobj(name="team", members=values), [*base, "groups"], \
            "POST", "members"
    elif kind == "group_replace":
        doc, segs, method, name = jobj(name="team", members=values), \
            [*base, "groups", "GROUPFEED"], "PUT", "members"
    else:
        doc, segs, method, name = jobj(add=values), [*base, "groups", "GROUPFEED"], \
            draw(st.sampled_from(("POST", "PATCH"))), "add"
    # PUT on an item replaces it (its own route); POST and PATCH update it; `dry_run`
    # is POST only (PUT/PATCH there name a batch called `dry_run`), and so is any
    # spelling of it with a suffix (a batch id too).
    alts = {"update": ("POST", "PATCH"), "group_add": ("POST", "PATCH"), "replace": (),
            "group_replace": ()}.get(kind, ("PUT", "PATCH"))
    return Spec(info, method, segs, Json(doc), "application/json", "sms", dests,
                recipient_names=(name,), last_literal=kind in ("send", "group"),
                alt_methods=tuple(m for m in alts if m != method) if kind != "dry" else ())


SINCH: tuple[Builder, ...] = (b_sinch,)


def b_infobip(draw: st.DrawFn, info: MountInfo) -> Spec:
    kind = draw(st.sampled_from(("v3", "advanced", "single", "multi", "query", "tts",
                                 "tts_multi", "tts_adv", "ivr", "pin", "pin_voice", "call",
                                 "wa_template", "wa_text", "messages_api")))
    dests = _dests(draw, info, "field", 1, 3)

    def to_value(ds: list[Dest]) -> object:
        if len(ds) == 1 and draw(st.booleans()):
            return ds[0].text
        return [x.text for x in ds]

    def destinations(ds: list[Dest]) -> list[Any]:
        return [jobj(to=x.text, messageId="m-feed") for x in ds]

    if kind == "query":
        params = [("username", "fuzzuser"), ("password", "fuzzpass"),
                  ("to", ",".join(x.text for x in dests)), ("text", TEXT)]
        spec = Spec(info, "GET", ["sms", "1", "text", "query"], None, None, "sms", dests,
                    query=params, query_ok=True, takes_get=True, recipient_names=("to",))
        if rare(draw, 4):
            spec.method = "POST"
        return spec
    table: dict[str, tuple[list[str], Any, str | None]] = {
        "v3": (["sms", "3", "messages"], jobj(messages=[jobj(
            sender="Acme", destinations=destinations(dests), content=jobj(text=TEXT))]), "sms"),
        "advanced": (["sms", draw(st.sampled_from(("1", "2"))), "text", "advanced"],
                     jobj(messages=[jobj(**{"from": "Acme"}, destinations=destinations(dests),
                                         text=TEXT)]), "sms"),
        "single": (["sms", "1", draw(st.sampled_from(("text", "binary"))), "single"],
                   jobj(**{"from": "Acme"}, to=to_value(dests), text=TEXT), "sms"),
        "multi": (["sms", "1", "text", "multi"],
                  jobj(messages=[jobj(**{"from": "Acme"}, to=to_value(dests), text=TEXT)]),
                  "sms"),
        "tts": (["tts", "3", "single"], jobj(**{"from": CALLER_DIGITS}, to=to_value(dests),
                                             text=TEXT), "voice"),
        "tts_multi": (["tts", "3", "multi"], jobj(messages=[jobj(to=to_value(dests),
                                                                 text=TEXT)]), "voice"),
        "tts_adv": (["tts", "3", "advanced"], jobj(messages=[jobj(
            destinations=destinations(dests), text=TEXT)]), "voice"),
        "ivr": (["voice", "ivr", "1", "messages"], jobj(messages=[jobj(
            destinations=destinations(dests), scenarioId="scen")]), "voice"),
        "pin": (["2fa", "2", "pin"], jobj(applicationId="app", messageId="msg",
                                          **{"from": "Acme"}, to=dests[0].text), "sms"),
        "pin_voice": (["2fa", "2", "pin", "voice"], jobj(applicationId="app", messageId="msg",
                                                         to=dests[0].text), "voice"),
        "wa_template": (["whatsapp", "1", "message", "template"], jobj(messages=[jobj(
            **{"from": CALLER_DIGITS}, to=x.text, content=jobj(templateName="t", language="en"))
            for x in dests]), "sms"),
        "wa_text": (["whatsapp", "1", "message", draw(st.sampled_from(("text", "image")))],
                    jobj(**{"from": CALLER_DIGITS}, to=dests[0].text,
                         content=jobj(text=TEXT)), "sms"),
        "messages_api": (["messages-api", "1", "messages"], jobj(messages=[jobj(
            channel="SMS", sender="Acme", destinations=destinations(dests),
            content=jobj(body=jobj(text=TEXT, type="TEXT")))]), "sms"),
        "call": (["calls", "1", "calls"], jobj(endpoint=jobj(
            type="PHONE", phoneNumber=dests[0].text), **{"from": CALLER_DIGITS},
            applicationId="app"), "voice"),
    }
    segs, doc, channel = table[kind]
    if kind in ("pin", "pin_voice", "call", "wa_text"):
        dests = dests[:1]
    names = ("phoneNumber",) if kind == "call" else ("to",)
    return Spec(info, "POST", segs, Json(doc), "application/json", channel, dests,
                recipient_names=names)


INFOBIP: tuple[Builder, ...] = (b_infobip,)


def b_messagebird(draw: st.DrawFn, info: MountInfo) -> Spec:
    kind = draw(st.sampled_from(("messages", "messages", "mms", "voicemessages", "batches",
                                 "verify", "calls", "conversations")))
    dests = _dests(draw, info, "field", 1, 3)
    if kind == "conversations":
        segs = draw(st.sampled_from((["v1", "send"], ["v1", "conversations", "start"])))
        doc = jobj(to=dests[0].text, channelId="feedchannel", type="text",
                   content=jobj(text=TEXT))
        return Spec(info, "POST", segs, Json(doc), "application/json", "sms", dests[:1],
                    recipient_names=("to",), query_ok=True)
    # A verification by `type: tts` is a call: either channel.
    channel = "voice" if kind in ("voicemessages", "calls") else None if kind == "verify" \
        else "sms"
    if kind in ("verify", "calls"):
        dests = dests[:1]
    if kind == "calls":
        doc = jobj(source=CALLER_DIGITS, destination=dests[0].text)
        if draw(st.booleans()):
            inline = _dests(draw, info, "script", 1, 2)
            doc.append(("callFlow", jobj(title="flow", steps=[
                jobj(action="transfer", options=jobj(destination=x.text)) for x in inline])))
            dests = dests + inline
        return Spec(info, "POST", ["calls"], Json(doc), "application/json", "voice", dests,
                    recipient_names=("destination",), query_ok=True)
    if kind == "verify":
        name = "recipient"
        fields: list[tuple[str, Any]] = [("recipient", dests[0].text), ("originator", "Acme")]
    else:
        name = "recipients"
        style = draw(st.sampled_from(("comma", "array", "one")))
        value: Any = ",".join(x.text for x in dests) if style == "comma" else \
            [as_json_value(draw, x, ints=True) for x in dests] if style == "array" else \
            as_json_value(draw, dests[0], ints=True)
        if style == "one":
            dests = dests[:1]
        fields = [("originator", "Acme"), ("recipients", value), ("body", TEXT)]
    if kind == "batches":
        doc = jobj(messages=[JObj(fields)])
        return Spec(info, "POST", ["messages", "batches"], Json(doc), "application/json", "sms",
                    dests, recipient_names=("recipients",), query_ok=True)
    segs = [kind]
    if draw(st.booleans()):
        form: list[tuple[str, str]] = []
        for k, v in fields:
            if isinstance(v, list):
                form += [(k + draw(st.sampled_from(("[]", "", f"[{i}]"))), str(x))
                         for i, x in enumerate(v)]
            else:
                form.append((k, str(v)))
        return Spec(info, "POST", segs, _form(form), "application/x-www-form-urlencoded",
                    channel, dests, recipient_names=(name,), query_ok=True, takes_get=True)
    return Spec(info, "POST", segs, Json(JObj(fields)), "application/json", channel, dests,
                recipient_names=(name,), query_ok=True, takes_get=True)


MESSAGEBIRD: tuple[Builder, ...] = (b_messagebird,)


def b_iletimerkezi(draw: st.DrawFn, info: MountInfo) -> Spec:
    kind = draw(st.sampled_from(("json", "json", "xml", "xml", "get")))
    groups = draw(st.lists(st.lists(dest(info), min_size=1, max_size=3), min_size=1,
                           max_size=2))
    dests = [x for g in groups for x in g]
    if kind == "get":
        params = [("key", "feedkey"), ("hash", "feedhash"), ("text", TEXT),
                  ("receipents", ",".join(x.text for x in groups[0])), ("sender", "ACME")]
        method = draw(st.sampled_from(("GET", "GET", "HEAD", "POST")))
        return Spec(info, method, ["v1", "send-sms", "get"], None, None, "sms", groups[0],
                    query=params, query_ok=True, takes_get=True, recipient_names=("receipents",))
    if kind == "json":
        messages = [jobj(text=TEXT, receipents=jobj(number=[
            as_json_value(draw, x, ints=True) for x in g])) for g in groups]
        message: Any = messages[0] if len(messages) == 1 and draw(st.booleans()) else messages
        doc = jobj(request=jobj(authentication=jobj(key="feedkey", hash="feedhash"),
                                order=jobj(sender="ACME", sendDateTime="", iys="1",
                                           iysList="BIREYSEL", message=message)))
        segs = ["v1", "send-sms", "json"] if draw(st.integers(0, 3)) else ["v1", "send-sms"]
        return Spec(info, "POST", segs, Json(doc), "application/json", "sms", dests,
                    recipient_names=("number",))
    def number(x: Dest) -> str:
        clean = xml_safe(x.text)
        style = draw(st.sampled_from(("plain",) * 4 + ("Case", "cdata", "charrefs", "comment",
                                                       "prefix", "spaced")))
        tag = "number"
        if style == "Case":
            tag = draw(st.sampled_from(("Number", "NUMBER")))
        elif style == "prefix":
            return f'<n:number xmlns:n="urn:x">{escape(clean)}</n:number>'
        if style == "cdata":
            inner = f"<![CDATA[{clean}]]>"
        elif style == "charrefs":
            inner = "".join(f"&#{ord(c)};" if c.isdigit() or c == "+" else escape(c)
                            for c in clean)
        elif style == "comment" and len(clean) > 4:
            inner = escape(clean[:4]) + "<!-- c -->" + escape(clean[4:])
        elif style == "spaced":
            inner = "\n   " + escape(clean) + "\n "
        else:
            inner = escape(clean)
        return f"<{tag}>{inner}</{tag}>"

    receipents = draw(st.sampled_from(("receipents",) * 4 + ("Receipents", "RECEIPENTS")))
    xml_messages = "".join(
        "<message><text>" + TEXT + f"</text><{receipents}>"
        + "".join(number(x) for x in g)
        + f"</{receipents}></message>" for g in groups)
    declaration = draw(st.sampled_from(('<?xml version="1.0" encoding="UTF-8"?>\n',
                                        '<?xml version="1.0" encoding="ISO-8859-9"?>', "",
                                        "\ufeff")))
    xml = (f"{declaration}<request><authentication><key>feedkey"
           "</key><hash>feedhash</hash></authentication><order><sender>ACME</sender>"
           f"<sendDateTime></sendDateTime>{xml_messages}</order></request>")
    return Spec(info, "POST", ["v1", "send-sms"], Text(xml),
                draw(st.sampled_from(("text/xml", "application/xml", None))), "sms", dests)


ILETIMERKEZI: tuple[Builder, ...] = (b_iletimerkezi,)


def b_prelude(draw: st.DrawFn, info: MountInfo) -> Spec:
    kind = draw(st.sampled_from(("verification", "verification", "notify", "batch", "reply",
                                 "transactional")))
    dests = _dests(draw, info, "field", 1, 3)
    if kind == "verification":
        doc = jobj(target=jobj(type="phone_number", value=dests[0].text),
                   options=jobj(locale="en-GB"))
        return Spec(info, "POST", ["v2", "verification"], Json(doc), "application/json", None,
                    dests[:1], recipient_names=("value",))
    if kind == "batch":
        doc = jobj(template_id="template_feed", to=[x.text for x in dests],
                   variables=jobj(code="abc"))
        return Spec(info, "POST", ["v2", "notify", "batch"], Json(doc), "application/json",
                    "sms", dests, recipient_names=("to",))
    segs = {"notify": ["v2", "notify"], "reply": ["v2", "notify", "reply"],
            "transactional": ["v2", "transactional"]}[kind]
    doc = jobj(template_id="template_feed", to=dests[0].text) if kind != "reply" else \
        jobj(reply_to="im_feed", text=TEXT, to=dests[0].text)
    return Spec(info, "POST", segs, Json(doc), "application/json", "sms", dests[:1],
                recipient_names=("to",))


PRELUDE: tuple[Builder, ...] = (b_prelude,)


def b_generic(draw: st.DrawFn, info: MountInfo) -> Spec:
    if draw(st.booleans()):
        dests = _dests(draw, info, "field", 1, 3)
        doc = jobj(messages=[jobj(to=x.text, text=TEXT) for x in dests])
        return Spec(info, "POST", ["v1", "sms"], Json(doc), "application/json", "sms", dests,
                    recipient_names=("to",))
    d = draw(dest(info))
    return Spec(info, "POST", ["v1", "acct-feed", "call"],
                _form([("to", d.text), ("from", CALLER)]),
                "application/x-www-form-urlencoded", "voice", [d], recipient_names=("to",))


GENERIC: tuple[Builder, ...] = (b_generic,)

BUILDERS: dict[str, tuple[Builder, ...]] = {
    "twilio": TWILIO, "vonage": VONAGE, "plivo": PLIVO, "telnyx": TELNYX, "sinch": SINCH,
    "infobip": INFOBIP, "messagebird": MESSAGEBIRD, "iletimerkezi": ILETIMERKEZI,
    "prelude": PRELUDE, "generic": GENERIC,
}


# ---------------------------------------------------------------------------- unknown writes

_SEGMENT_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_~"
_KEYS = ("to", "phone", "msisdn", "number", "contact", "value", "data", "x", "Recipient",
         "target", "dst", "who", "payload", "items", "meta")


@st.composite
def _nested(draw: st.DrawFn, leaf: Any, depth: int) -> Any:
    """`leaf` placed `depth` levels down a random JSON structure with filler beside it."""
    value = leaf
    for _ in range(depth):
        key = draw(st.sampled_from(_KEYS))
        filler = draw(st.sampled_from(("hello", "a-b", True, None, "n/a")))
        if draw(st.booleans()):
            value = jobj(**{key: value, "note": filler})
        else:
            value = [filler, value] if draw(st.booleans()) else [value]
    return value


def b_unknown(draw: st.DrawFn, info: MountInfo) -> Spec:
    """A write to a path no route describes, a blocked number somewhere in it."""
    d = draw(dest(info, "scan"))
    extra: list[Dest] = []
    if rare(draw, 4):
        # Several numbers in one value, joined the ways gateways join them.
        extra = _dests(draw, info, "scan", 1, 2)
        joiner = draw(st.sampled_from((",", "<", ";", ", ")))
        parts = [d, *extra]
        order = draw(st.permutations(parts))
        # (A NUL would end the whole joined value for a C reader: cut each part there.)
        d = Dest(d.num, "joined", joiner.join(x.text.split("\x00", 1)[0] for x in order))
    first = "x-" + draw(st.text(_SEGMENT_CHARS, min_size=1, max_size=8))
    more = draw(st.lists(st.text(_SEGMENT_CHARS + "0123456789", min_size=1, max_size=8),
                         max_size=3))
    segs = [first, *more]
    kind = draw(st.sampled_from(("json", "json", "form", "form_json", "xml", "multipart",
                                 "text", "query")))
    depth = draw(st.integers(0, 4))
    key = draw(st.sampled_from(_KEYS))
    spec = Spec(info, draw(st.sampled_from(("POST", "POST", "PUT", "PATCH", "DELETE"))), segs,
                None, None, None, [d, *extra], routed=False, last_literal=True,
                national_scan=info.preset == "iletimerkezi")
    if kind == "json":
        spec.body = Json(jobj(**{key: draw(_nested(as_json_value(draw, d, ints=True), depth)),
                                 "text": TEXT}))
        spec.content_type = draw(st.sampled_from(("application/json", None,
                                                  "application/vnd.api+json")))
    elif kind in ("form", "form_json"):
        value = d.text
        if kind == "form_json":
            value = dump_json(draw, jobj(**{key: draw(_nested(d.text, depth))}))
        spec.body = _form([("note", TEXT), (key, value)])
        spec.content_type = draw(st.sampled_from(("application/x-www-form-urlencoded", None)))
    elif kind == "xml":
        inner = xml_escape(d.text)
        for _ in range(depth):
            tag = draw(st.sampled_from(("item", "to", "data", "n")))
            inner = f"<{tag}>{inner}</{tag}>"
        if draw(st.booleans()):
            body = f"<req><text>{TEXT}</text><d v={xml_attr(d.text)}/></req>"
        else:
            body = f"<req><text>{TEXT}</text>{inner}</req>"
        spec.body = Text(body)
        spec.content_type = draw(st.sampled_from(("application/xml", "text/xml", None)))
    elif kind == "multipart":
        part = d.text if draw(st.booleans()) else json.dumps({key: d.text})
        boundary = "fuzzbound"
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n{TEXT}\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{part}\r\n'
                f"--{boundary}--\r\n")
        spec.body = Text(body)
        spec.content_type = f"multipart/form-data; boundary={boundary}"
    elif kind == "text":
        spec.body = Text(f"{TEXT}\n{d.text}\n")
        spec.content_type = draw(st.sampled_from(("text/plain", None)))
    else:
        spec.query = [(key, d.text)]
        spec.body = Json(jobj(text=TEXT))
        spec.content_type = "application/json"
    spec.notes.append(f"unknown:{kind}@{depth}")
    return spec


# ---------------------------------------------------------------------------- mutations

_REFUSED_INSERTS = ("/./", "/../", "/%2e/", "/%2E%2e/", ";a=b", "%2F", "%5C", "%25", "%3F",
                    "%23", "%00", "%20", '"', "<", "^", "`", "{", "|", "\\")
_CASE_STYLES = ("keep", "keep", "keep", "upper", "lower", "swap", "random")


def _recase(draw: st.DrawFn, text: str) -> str:
    style = draw(st.sampled_from(_CASE_STYLES))
    if style == "upper":
        return text.upper()
    if style == "lower":
        return text.lower()
    if style == "swap":
        return text.swapcase()
    if style == "random":
        flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
        return "".join(c.swapcase() if f else c for c, f in zip(text, flips, strict=True))
    return text


def _pct_unreserved(draw: st.DrawFn, segment: str) -> str:
    if not segment or not rare(draw, 5):
        return segment
    i = draw(st.integers(0, len(segment) - 1))
    if segment[i] not in _UNRESERVED:
        return segment
    code = f"%{ord(segment[i]):02X}"
    return segment[:i] + (code if draw(st.booleans()) else code.lower()) + segment[i + 1:]


@st.composite
def path_spelling(draw: st.DrawFn, spec: Spec) -> tuple[str, bool, list[str]]:
    """(raw path below the mount, refused?, notes): case, slashes, suffix, escapes."""
    notes: list[str] = []
    segs = [_pct_unreserved(draw, _recase(draw, s)) for s in spec.segments]
    if spec.ext:
        suffix = draw(st.sampled_from(("", ".json", ".xml", ".JSON", ".csv", spec.suffix)))
        segs[-1] += suffix
    elif spec.routed and spec.last_literal and spec.method not in ("GET", "HEAD") and \
            rare(draw, 21):
        # (A GET there would be a read: passed through unchecked, as documented.)
        segs[-1] += ".json"
        spec.deroute("suffix-deroutes")
    joins = [draw(st.sampled_from(("/", "/", "/", "//"))) for _ in segs]
    path = "".join(j + s for j, s in zip(joins, segs, strict=True))
    if spec.trailing_slash or rare(draw, 6):
        path += "/" * draw(st.integers(1, 2))
    refused = False
    if rare(draw, 13):
        insert = draw(st.sampled_from(_REFUSED_INSERTS))
        at = draw(st.integers(1, max(1, len(path) - 1)))
        if insert in ("/./", "/../", "/%2e/", "/%2E%2e/"):
            cut = path.rfind("/", 0, at)
            path = path[:max(cut, 0)] + insert + path[max(cut, 0) + 1:]
        else:
            path = path[:at] + insert + path[at:]
        refused = True
        notes.append(f"refused-path:{insert}")
    return path, refused, notes


def _variant_name(draw: st.DrawFn, name: str) -> str:
    return draw(st.sampled_from((name.upper(), name.lower(), name.swapcase(), name + "[]",
                                 name + "[0]", name + "[x]", " " + name, name.title())))


@st.composite
def mutate(draw: st.DrawFn, spec: Spec) -> Spec:
    """Field-level mutations: duplicates, case variants, the query, encodings."""
    info = spec.info
    for _ in range(draw(st.integers(0, 2))):
        choice = draw(st.sampled_from(("dup", "case", "query_copy", "query_move", "raw_plus",
                                       "json_dup", "json_case", "semicolon", "none",
                                       "body_for_query", "mislabel")))
        body = spec.body
        if choice == "body_for_query" and body is None and spec.query and \
                spec.recipient_names and spec.method != "HEAD":
            # A query-string send that also carries a body naming recipients.
            extra = draw(dest(info))
            spec.dests.append(extra)
            name = spec.recipient_names[0]
            if draw(st.booleans()):
                spec.body = _form([(name, extra.text), ("text", TEXT)])
                spec.content_type = "application/x-www-form-urlencoded"
            else:
                spec.body = Json(JObj([(name, extra.text), ("text", TEXT)]))
                spec.content_type = "application/json"
            if spec.method == "GET" and draw(st.booleans()):
                spec.method = "POST"
            spec.notes.append("body-for-query")
            continue
        if choice == "mislabel" and isinstance(body, Form | Json) and spec.recipient_names:
            # A recipient in the query, and the body labelled as the other format.
            extra = draw(dest(info))
            spec.dests.append(extra)
            spec.query.append((spec.recipient_names[0], extra.text))
            spec.content_type = "application/x-www-form-urlencoded" if isinstance(body, Json) \
                else "application/json"
            spec.notes.append("mislabelled-body+query")
            continue
        if choice in ("dup", "case", "semicolon", "raw_plus") and isinstance(body, Form):
            names = [i for i, (k, _) in enumerate(body.pairs) if k in spec.recipient_names]
            if not names:
                continue
            i = draw(st.sampled_from(names))
            name = body.pairs[i][0]
            if choice == "dup":
                extra = draw(dest(info))
                spec.dests.append(extra)
                new_name = name if draw(st.booleans()) else _variant_name(draw, name)
                at = draw(st.integers(0, len(body.pairs)))
                body.pairs.insert(at, (new_name, extra.text))
            elif choice == "case":
                body.pairs[i] = (_variant_name(draw, name), body.pairs[i][1])
            elif choice == "raw_plus":
                # `+` read as a space: bare digits, which are international only on msisdn
                # presets; and only a leading `+` (`phone-context= 1` is another number).
                if not info.msisdn or any("+" in v.strip()[1:] for _, v in body.pairs):
                    continue
                spec.plus_raw = True
            else:
                body.pairs.insert(i, (";" + name, "x"))
            spec.notes.append("form-" + choice)
        elif choice in ("json_dup", "json_case") and isinstance(body, Json):
            holders = list(_objects_with(body.value, spec.recipient_names))
            if not holders:
                continue
            obj, i = draw(st.sampled_from(holders))
            key = obj[i][0]
            if choice == "json_dup":
                extra = draw(dest(info))
                spec.dests.append(extra)
                value = extra.text if not isinstance(obj[i][1], list) else [extra.text]
                obj.insert(draw(st.integers(0, len(obj))),
                           (key if draw(st.booleans()) else key.upper(), value))
            else:
                obj[i] = (draw(st.sampled_from((key.upper(), key.title(), key.swapcase()))),
                          obj[i][1])
            spec.notes.append(choice)
        elif choice in ("query_copy", "query_move") and spec.recipient_names:
            extra = draw(dest(info))
            spec.dests.append(extra)
            name = spec.recipient_names[0]
            if choice == "query_move" and isinstance(body, Form) and spec.query_ok:
                gone = {v for k, v in body.pairs if k == name}
                body.pairs = [p for p in body.pairs if p[0] != name]
                spec.dests = [d for d in spec.dests if d.text not in gone]
            spec.query.append((name, extra.text))
            spec.notes.append(choice)
    return spec


# Keys naming the caller: a number under one is no destination (a blocked caller id
# must not stop a send), so mutations never put blocked numbers there.
CALLER_KEYS = frozenset(("from", "source", "originator", "src", "sender", "callerid", "cli"))


def _objects_with(value: Any, names: Iterable[str]) -> Iterable[tuple[JObj, int]]:
    """(object, index) of each recipient key in a JSON value, outside caller subtrees."""
    wanted = set(names)
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, JObj):
            for i, (k, v) in enumerate(node):
                if k in wanted:
                    yield node, i
                if k.lower() not in CALLER_KEYS:
                    stack.append(v)
        elif isinstance(node, list):
            stack.extend(node)


_CT_SWAPS = (None, "application/x-www-form-urlencoded", "application/json", "text/plain",
             "application/json; charset=utf-8", "application/x-www-form-urlencoded; charset=UTF-8",
             "APPLICATION/JSON", "application/json;charset=\"utf-8\"", "multipart/form-data")


@st.composite
def method_and_type(draw: st.DrawFn, spec: Spec) -> Spec:
    """Method changes (PUT/PATCH for a POST send; GET for the sends that take it) and
    content-type mismatches."""
    roll = draw(st.sampled_from(("keep",) * 6 + ("alt", "alt", "other", "override")))
    if spec.method in ("POST", "PUT", "PATCH") and roll == "alt" and spec.alt_methods:
        spec.method = draw(st.sampled_from(spec.alt_methods))
        spec.notes.append("method-" + spec.method)
    elif spec.method == "POST" and roll == "other" and spec.info.preset != "messagebird" \
            and spec.body is not None:
        # Another method with a body: no longer the send route, a scanned write.
        # (MessageBird reads GET and DELETE on its send paths as reads unless the query
        # says `_method=POST`: documented, so not generated.)
        spec.method = draw(st.sampled_from(("DELETE", "GET", "OPTIONS")))
        spec.deroute("method-" + spec.method + "-with-body")
    if spec.info.preset == "messagebird" and spec.takes_get and spec.routed and \
            roll == "override":
        # MessageBird's `_method=POST` override: the same send by GET or DELETE.
        spec.method = draw(st.sampled_from(("GET", "DELETE")))
        spec.query.insert(0, ("_method", draw(st.sampled_from(("POST", "post", " Post")))))
        spec.notes.append("override-" + spec.method)
    if rare(draw, 6):
        spec.content_type = draw(st.sampled_from(_CT_SWAPS))
        spec.notes.append(f"content-type:{spec.content_type}")
    return spec


_SCOPE_VALUES = ("tenant:acme", " tenant:acme , global", "global", "tenant:other",
                 "tenant:acme,tenant:acme", "")


@st.composite
def headers_for(draw: st.DrawFn, spec: Spec) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    auth = {"twilio": "Basic QUNmZWVkOnRva2Vu", "plivo": "Basic TUFmZWVkOnRva2Vu",
            "infobip": "App feedfacekey", "messagebird": "AccessKey feedfacekey"}
    out.append(("Authorization", auth.get(spec.info.preset, "Bearer feedfacetoken")))
    if spec.content_type is not None:
        out.append(("Content-Type", spec.content_type))
    roll = draw(st.sampled_from(("none",) * 7 + ("one", "one", "two")))
    if roll != "none":
        name = draw(st.sampled_from(("X-Gatekeeper-Scope", "x-gatekeeper-scope")))
        out.append((name, draw(st.sampled_from(_SCOPE_VALUES))))
        if roll == "two":
            out.append(("X-Gatekeeper-Scope", draw(st.sampled_from(_SCOPE_VALUES))))
    if rare(draw, 16):
        out.append(("X-HTTP-Method-Override", draw(st.sampled_from((spec.method, "GET",
                                                                    "POST")))))
    if rare(draw, 4):
        out.append(("X-Request-Id", draw(st.sampled_from(("fuzz-req-1", "bad id\u00e9",
                                                          "x" * 200)))))
    return out


def joined_values(spec: Spec) -> bool:
    """True when one value of the request holds several destinations (`a<b`, `a,b`)."""
    if any(d.kind == "joined" for d in spec.dests):
        return True
    texts = {d.text for d in spec.dests if d.text}
    values: list[str] = [v for _, v in spec.query]
    if isinstance(spec.body, Form):
        values += [v for _, v in spec.body.pairs]
    elif isinstance(spec.body, Json):
        values += [v for v in _json_strings(spec.body.value) if isinstance(v, str)]
    return any(sum(value.count(t) for t in texts) >= 2 for value in values)


def serialise_body(draw: st.DrawFn, spec: Spec) -> bytes:
    body = spec.body
    if body is None:
        return b""
    if isinstance(body, Form):
        return encode_form(draw, body.pairs, plus_raw=spec.plus_raw).encode()
    if isinstance(body, Json):
        return dump_json(draw, body.value).encode()
    return body.text.encode()


@st.composite
def sends(draw: st.DrawFn, info: MountInfo, builders: Sequence[Builder]) -> Send:
    """One request to `info`'s mount: a builder, then mutations, then written out."""
    builder = draw(st.sampled_from(builders))
    spec = builder(draw, info)
    spec = draw(mutate(spec))
    spec = draw(method_and_type(spec))
    path, refused, notes = draw(path_spelling(spec))
    spec.notes += notes
    headers = draw(headers_for(spec))
    body = serialise_body(draw, spec)
    if isinstance(spec.body, Json) and rare(draw, 12):
        # JSON in another Unicode encoding: decoders detect it by BOM or NUL pattern.
        codec = draw(st.sampled_from(("utf-8-sig", "utf-16", "utf-16-le", "utf-16-be",
                                      "utf-32")))
        body = body.decode().encode(codec)
        spec.notes.append("encoding:" + codec)
    if body and rare(draw, 15):
        coding = draw(st.sampled_from(("gzip", "deflate", "x-gzip", "gzip, identity",
                                       "gzip, gzip", "GZIP")))
        body = zlib.compress(body) if coding == "deflate" else gzip.compress(body)
        if coding == "gzip, gzip":
            body = gzip.compress(body)
        headers.append(("Content-Encoding", coding))
        spec.notes.append("content-encoding:" + coding)
    query = encode_form(draw, spec.query) if spec.query else ""
    target = f"/{info.name}{path}" + (f"?{query}" if query else "")
    framing: tuple[tuple[str, str], ...] = ()
    if rare(draw, 41):
        # Spellings only the HTTP parser sees: refused before Gatekeeper reads them.
        wire_kind = draw(st.sampled_from(("space", "utf8", "dup-length", "cl-te", "br")))
        spec.notes.append("wire:" + wire_kind)
        if wire_kind == "space":
            target = target.replace("/", "/ ", 1) if "/" in target[1:] else target + " x"
        elif wire_kind == "utf8":
            target = f"/{info.name}/\u00e9{path}"
        elif wire_kind == "dup-length":
            framing = (("Content-Length", str(len(body))), ("Content-Length", str(len(body))))
        elif wire_kind == "cl-te":
            framing = (("Content-Length", str(len(body) + 5)),
                       ("Transfer-Encoding", "chunked"))
            body = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        else:
            headers.append(("Content-Encoding", "br"))
    chunked = bool(body) and not framing and rare(draw, 16)
    if joined_values(spec):
        spec.notes.append("joined")
    return Send(info, spec.method, target, tuple(headers), body, spec.channel, spec.routed,
                spec.routed or spec.national_scan, refused, tuple(spec.dests),
                (builder.__name__, *spec.notes), chunked, framing)


def preset_sends(info: MountInfo) -> st.SearchStrategy[Send]:
    return sends(info, BUILDERS[info.preset])


def unknown_sends(info: MountInfo) -> st.SearchStrategy[Send]:
    return sends(info, (b_unknown,))


# ---------------------------------------------------------------------------- the checker

_SEP_CHARS = frozenset(" \t\r\n\v\f-./()[]~\u00a0\u2212\u30fc\u223c\uff5e")
_SEP_CATEGORIES = frozenset(("Zs", "Zl", "Zp", "Pd", "Cf"))
_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
MAX_VIEWS = 600


def compress(text: str) -> str:
    """Digits (any script) as ASCII, separators dropped, anything else a `|` break."""
    text = unicodedata.normalize("NFKC", text)
    out = []
    for ch in text:
        digit = unicodedata.decimal(ch, None)
        if digit is not None:
            out.append(chr(0x30 + digit))
        elif ch in _SEP_CHARS or unicodedata.category(ch) in _SEP_CATEGORIES:
            continue
        else:
            out.append("|")
    return "".join(out)


def _json_strings(doc: Any) -> Iterable[str]:
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            yield node
        elif isinstance(node, bool) or node is None:
            continue
        elif isinstance(node, int | float):
            yield str(node)
            if isinstance(node, float) and node.is_integer():
                yield str(int(node))
        elif isinstance(node, JObj):   # before list: a JObj is a list of pairs
            for k, v in node:
                yield k
                stack.append(v)
        elif isinstance(node, dict):
            for k, v in node.items():
                yield k
                stack.append(v)
        elif isinstance(node, list):
            stack.extend(node)


def _xml_strings(text: str | bytes) -> list[str]:
    """Names, attribute values, each text run and each element's runs joined (a comment
    or a child element between digits does not split them for a reader that joins)."""
    found: list[str] = []
    runs: list[list[str]] = [[]]

    def start(name: str, attrs: dict[str, str]) -> None:
        found.extend([name, *attrs.values()])
        runs.append([])

    def end(name: str) -> None:
        mine = runs.pop()
        found.extend(mine)
        found.append("".join(mine))

    def text_run(data: str) -> None:
        runs[-1].append(data)   # the innermost open element's

    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text_run
    try:
        parser.Parse(text, True)
    except (expat.ExpatError, ValueError, RecursionError):
        return []
    return found


_PHONE_CONTEXT = re.compile(r"([^:;<>\s\"'=&,]+)((?:;[^:;<>\s\"'&,]*)*);phone-context="
                            r"([^;<>@\s\"'&,]+)", re.IGNORECASE)


def _derived(text: str) -> Iterable[str]:
    if ";" in text and "phone-context" in text.lower():
        # RFC 3966: a local number in a global context is the context's digits, then its.
        for m in _PHONE_CONTEXT.finditer(text):
            yield m.group(3) + m.group(1)
    if "%" in text:
        yield unquote(text, errors="replace")
    if "+" in text or "%" in text:
        yield unquote_plus(text, errors="replace")
    if "&" in text:
        yield html.unescape(text)
        for pair in re.split(r"[&;]", text):
            yield from pair.partition("=")[::2]
    if "\\u" in text:
        yield _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"'):
        try:
            doc = json.loads(stripped, object_pairs_hook=JObj)
        except (ValueError, RecursionError):
            pass
        else:
            yield from _json_strings(doc)
    if "<" in stripped:
        yield from _xml_strings(stripped)
        if stripped.startswith("<") is False:
            yield from _xml_strings(stripped[stripped.find("<"):])
    if "\n" in text:
        yield from text.splitlines()


def views(text: str) -> set[str]:
    """`text` and everything it decodes to, every way, a few layers deep."""
    seen: set[str] = set()
    queue = [(text, 0)]
    while queue and len(seen) < MAX_VIEWS:
        current, depth = queue.pop()
        if current in seen:
            continue
        seen.add(current)
        if depth < 5:
            queue.extend((t, depth + 1) for t in _derived(current) if t and t not in seen)
    return seen


@dataclass(frozen=True, slots=True)
class View:
    """What counts as blocked for one request: its channel, its scopes, its region."""

    channel: str | None          # None: entries of either channel count
    tenant: bool                 # `tenant:acme` applies
    region: str | None           # the upstream's region (national spellings)
    national: bool               # national spellings count (a documented send field)


def needles(view: View) -> list[tuple[str, re.Pattern[str], bool]]:
    """(label, pattern, trunk0) of every digit string that must not reach the upstream;
    `trunk0`: `(0)` after the country code is the trunk prefix, not a digit."""
    nums = list(EXACT_BLOCKED)
    if view.channel in (None, "voice"):
        nums.append(VOICE_ONLY)
    if view.channel in (None, "sms"):
        nums.append(SMS_ONLY)
    if view.tenant:
        nums.append(TENANT_ONLY)
    out = [(n.e164, re.compile(re.escape(n.digits)), n.region in TRUNK_ZERO) for n in nums]
    out.append((PREFIX_ENTRY, re.compile(r"3361[0-9]{7}"), True))
    if view.national and view.region:
        out += [(f"{n.e164} (national)", re.compile(re.escape(n.nsn)), False)
                for n in nums if n.region == view.region]
    return out


def leaks_in(texts: Sequence[str], view: View) -> list[tuple[str, str]]:
    """(needle label, the decoded text that holds it) for every blocked number found."""
    patterns = needles(view)
    found: dict[str, str] = {}
    for text in texts:
        for shown in views(text):
            plain = compress(shown)
            trunk = compress(shown.replace("(0)", "")) if "(0)" in shown else plain
            for label, pattern, trunk0 in patterns:
                if label not in found and (pattern.search(plain) or
                                           (trunk0 and pattern.search(trunk))):
                    found[label] = shown
    return list(found.items())


def record_texts(record: Recorded) -> list[str]:
    """The path and query, and the body decoded as its bytes say (a compressed body
    undone, UTF-16/32 by BOM or NUL pattern, UTF-8 otherwise)."""
    body = record.body
    encoding = next((v.lower() for k, v in record.raw_headers
                     if k.lower() == "content-encoding"), "")
    for _ in range(3):
        try:
            if "gzip" in encoding or body[:2] == b"\x1f\x8b":
                body = gzip.decompress(body)
            elif "deflate" in encoding:
                body = zlib.decompress(body)
            else:
                break
        except (OSError, zlib.error, EOFError):
            break
        encoding = ""
    texts = [record.path_qs, body.decode("utf-8", errors="replace")]
    detected = json.detect_encoding(body)
    if detected not in ("utf-8", "utf-8-sig"):
        texts.append(body.decode(detected, errors="replace"))
    return texts


def scope_view(send: Send) -> tuple[bool, bool]:
    """(tenant:acme applies, the scope header is valid) as the proxy reads the header."""
    parts = [p.strip() for k, v in send.headers if k.lower() == "x-gatekeeper-scope"
             for p in v.split(",")]
    parts = [p for p in parts if p]
    valid = all(p == "global" or re.fullmatch(r"[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9._@+-]{1,128}",
                                              p) for p in parts)
    return TENANT in parts, valid


def view_for(send: Send) -> View:
    tenant, _ = scope_view(send)
    return View(send.channel, tenant, send.info.region, send.national)


# ---------------------------------------------------------------------------- raw HTTP


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def _dechunk(data: bytes) -> bytes:
    out, pos = [], 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(data[end + 2:end + 2 + size])
        pos = end + 2 + size + 2


def wire(send: Send, host: str) -> bytes:
    lines = [f"{send.method} {send.target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in send.headers]
    body = send.body
    if send.framing:
        lines += [f"{k}: {v}" for k, v in send.framing]
    elif send.chunked:
        lines.append("Transfer-Encoding: chunked")
        half = len(body) // 2
        body = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n"
                        for p in (body[:half], body[half:]) if p) + b"0\r\n\r\n"
    elif body or send.method not in ("GET", "HEAD"):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


async def exchange(host: str, port: int, data: bytes, head: bool) -> Reply:
    """One request on a fresh connection; the whole reply."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    top, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = top.decode("latin-1").split("\r\n")
    headers = tuple((k.strip(), v.strip()) for k, _, v in
                    (line.partition(":") for line in header_lines))
    reply = Reply(int(status_line.split()[1]), headers, b"")
    if head:
        return reply
    if (reply.header("Transfer-Encoding") or "").lower() == "chunked":
        return replace(reply, body=_dechunk(rest))
    length = reply.header("Content-Length")
    return replace(reply, body=rest[:int(length)] if length is not None else rest)


# ---------------------------------------------------------------------------- harness


@dataclass(frozen=True, slots=True)
class KnownIssue:
    """A failure found and reported, skipped by the checker only while it is open."""

    name: str
    summary: str
    matches: Callable[[Send, list[tuple[str, str]]], bool]
    kind: str = "leak"   # `leak`, or `reply`: the reply's shape (request id, JSON body)


@dataclass
class Outcome:
    """What one send did."""

    send: Send
    reply: Reply
    records: list[Recorded]
    leaks: list[tuple[str, str]]


class Failure(AssertionError):
    pass


@dataclass
class Harness:
    """A fuzzing Gatekeeper on the test's event loop, driven from a worker thread."""

    running: Running
    upstream: FakeUpstream
    infos: dict[str, MountInfo]
    on_invalid: str
    loop: asyncio.AbstractEventLoop
    known: tuple[KnownIssue, ...] = ()
    stats: dict[str, int] = field(default_factory=dict)
    known_hits: dict[str, list[str]] = field(default_factory=dict)
    collected: list[str] = field(default_factory=list)
    collect: bool = False
    monitor_seen: dict[str, int] = field(default_factory=dict)

    @classmethod
    async def start(cls, start_gatekeeper: StartGatekeeper, upstream: FakeUpstream,
                    tmp_path: Path, *, on_invalid: str, flip: bool, monitor_preset: str,
                    redis: Any = None, known: Sequence[KnownIssue] = ()) -> Harness:
        infos = mounts(flip, monitor_preset)
        config = fuzz_config(upstream.url, tmp_path, infos, on_invalid)
        running = await start_gatekeeper(config, redis)
        await load_lists(running)
        return cls(running, upstream, infos, on_invalid, asyncio.get_running_loop(),
                   tuple(known), collect=bool(os.environ.get("GATEKEEPER_FUZZ_COLLECT")))

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    async def _send(self, send: Send) -> tuple[Reply, list[Recorded]]:
        server = self.running.proxy.server
        before = len(self.upstream.received)
        host = f"{server.host}:{server.port}"
        reply = await exchange(server.host, server.port, wire(send, host), send.method == "HEAD")
        await asyncio.sleep(0)
        return reply, self.upstream.received[before:]

    async def check(self, send: Send) -> tuple[Outcome, list[str]]:
        """Send on this loop; the outcome and every broken promise."""
        reply, records = await self._send(send)
        outcome = Outcome(send, reply, records, [])
        decision = reply.header("X-Gatekeeper-Decision") or "-"
        self.stats[decision] = self.stats.get(decision, 0) + 1
        return outcome, self.problems(outcome)

    def run(self, send: Send) -> Outcome:
        """From a worker thread: send, then check everything the invariant says; raises
        Failure (or, with GATEKEEPER_FUZZ_COLLECT, writes the failure down and goes on)."""
        outcome, problems = self.call(self.check(send))
        if problems:
            text = explain(outcome, problems)
            if self.collect:
                self.collected.append(text)
                path = os.environ["GATEKEEPER_FUZZ_COLLECT"]
                with open(path, "a", encoding="utf-8") as out:
                    out.write(text + "\n=====\n")
            else:
                raise Failure(text)
        return outcome

    def problems(self, o: Outcome) -> list[str]:
        """Every promise the outcome breaks, less those an open known issue explains."""
        send, reply, records = o.send, o.reply, o.records
        out: list[str] = []
        shape: list[str] = []   # promises about the reply's shape (not about leaks)
        decision = reply.header("X-Gatekeeper-Decision")
        if reply.status >= 500:
            out.append(f"status {reply.status}")
        if not reply.header("X-Request-Id"):
            shape.append("no X-Request-Id on the reply")
        if len(records) > 1:
            out.append(f"{len(records)} upstream requests for one send")
        if decision in ("forwarded", "partial", "monitored") and not records:
            out.append(f"decision {decision} but nothing reached the upstream")
        if decision in ("rejected", "skipped") and records:
            out.append(f"decision {decision} but the upstream received the request")
        if send.refused_path and (records or reply.status != 400):
            out.append("a refused path spelling was not refused with 400")
        if not records and reply.status >= 400 and send.method != "HEAD" and \
                not _readable_error(reply):
            shape.append("a refusal without a JSON (or the API's XML) body")
        for record in records:
            expected = f"/up/{send.info.name}/"
            if not record.path_qs.startswith(expected) and record.path_qs != expected[:-1]:
                out.append(f"reached the wrong upstream: {record.path_qs[:60]}")
            if any(k.lower() == "x-gatekeeper-scope" for k, _ in record.raw_headers):
                out.append("X-Gatekeeper-Scope was forwarded")
            o.leaks.extend(leaks_in(record_texts(record), view_for(send)))
        if shape:
            issue = self._known("reply", send, [])
            if issue is None:
                out += shape
        issue = self._known("leak", send, o.leaks) if o.leaks else None
        if send.info.on_block == "monitor":
            if o.leaks and decision != "monitored" and issue is None:
                out.append(f"monitor: blocked {[lb for lb, _ in o.leaks]} reached the upstream "
                           f"with decision {decision}, not monitored")
            if decision == "monitored":
                self.monitor_seen["monitored"] = self.monitor_seen.get("monitored", 0) + 1
                every = View(None, view_for(send).tenant, send.info.region, True)
                if not o.leaks and not any(leaks_in(record_texts(r), every) for r in records):
                    out.append("monitor: decided blocked but the checker sees no blocked number "
                               "in what arrived (a blind spot of the checker)")
            # Everything arrives here as sent: every blocked number placed in the request,
            # however spelled, must be visible to the checker, or it is blind to a spelling.
            if records:
                found = {label for r in records for label, _ in
                         leaks_in(record_texts(r), View(None, True, send.info.region, True))}
                for d in send.dests:
                    want = _label_of(d.num)
                    if want is None or d.kind in ("row", "joined"):
                        continue
                    if want in found or f"{want} (national)" in found:
                        self.monitor_seen[d.kind] = self.monitor_seen.get(d.kind, 0) + 1
                    else:
                        out.append(f"checker blind to spelling {d.kind}: {d.text!r} ({want})")
        elif o.leaks and issue is None:
            labels = [lb for lb, _ in o.leaks]
            out.append(f"LEAK {labels} reached upstream {send.info.name} "
                       f"(decision {decision}): " +
                       "; ".join(f"{lb} in {text[:120]!r}" for lb, text in o.leaks))
        return out

    def _known(self, kind: str, send: Send, leaks: list[tuple[str, str]]) -> KnownIssue | None:
        """The open issue that explains a failure of this kind, counted in the summary."""
        issue = next((k for k in self.known if k.kind == kind and k.matches(send, leaks)),
                     None)
        if issue is not None:
            self.known_hits.setdefault(issue.name, []).append(send.describe())
        return issue


def _label_of(num: Num) -> str | None:
    """The checker's label for a blocked number (None for allowed and unlisted ones)."""
    if num.role == "prefix":
        return PREFIX_ENTRY
    return None if num.role in ("allowed", "unlisted") else num.e164


def explain(outcome: Outcome, problems: list[str]) -> str:
    """A failure as a report: what broke, the request, the reply, what arrived."""
    reply = outcome.reply
    return "\n".join(problems) + "\n--- request ---\n" + outcome.send.describe() + \
        "\n--- reply ---\n" + f"{reply.status} {dict(reply.headers)}\n{reply.body!r}" + \
        "".join(f"\n--- upstream received ---\n{r.method} {r.path_qs}\n{r.body!r}"
                for r in outcome.records)


def _readable_error(reply: Reply) -> bool:
    kind = (reply.header("Content-Type") or "").lower()
    try:
        if "xml" in kind:
            return bool(_xml_strings(reply.body.decode("utf-8")))
        json.loads(reply.body)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def examples(base: int) -> int:
    """`base` times GATEKEEPER_FUZZ_EXAMPLES (default 1): the long-run multiplier."""
    return max(1, int(base * float(os.environ.get("GATEKEEPER_FUZZ_EXAMPLES", "1"))))

"""The checker: what an upstream received, decoded every way (percent once and twice, `+`
as space and as plus, JSON, XML, character references, JSON escapes, Unicode digits,
separators inside digit runs), searched for the digits of every blocked number that
applies to the request."""

from __future__ import annotations

import gzip
import html
import json
import re
import unicodedata
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus
from xml.parsers import expat

from tests.conftest import Recorded
from tests.fuzz.bodies import JObj
from tests.fuzz.lists import EXACT_BLOCKED, PREFIX_ENTRY, SMS_ONLY, TENANT, TENANT_ONLY, VOICE_ONLY
from tests.fuzz.specs import Send
from tests.fuzz.spellings import TRUNK_ZERO

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

"""Body formats for the deep scan (pure): JSON with every pair, XML with no DTD,
Content-Type parameters and multipart parts.

Multipart is read leniently on purpose: parsers disagree on line endings, preambles
and missing close delimiters, so every chunk between boundaries is read as a part.
"""

from __future__ import annotations

import binascii
import json
import quopri
import re
from dataclasses import dataclass
from xml.parsers import expat

_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_LEADING_BREAK = re.compile(rb"^[ \t]*\r?\n")
_TRAILING_BREAK = re.compile(rb"\r?\n\Z")


UTF8_NAMES = frozenset(("utf-8", "utf8", "us-ascii", "ascii"))
MAX_XML_DEPTH = 64


class PartError(ValueError):
    """A part that cannot be read one way only (unknown transfer encoding, bad base64)."""


class XmlRefused(ValueError):
    """XML that cannot be read one way only: a DTD, another encoding, too deep."""


class JsonInt(str):
    """A JSON integer's text (kept as text: no int-size limit, no float rounding)."""

    __slots__ = ()


class JsonFloat(str):
    """A JSON number with a fraction or exponent, as text."""

    __slots__ = ()


class Pairs(list[tuple[str, object]]):
    """A JSON object as its pairs in order, duplicate keys included."""

    __slots__ = ()


def json_loads(text: str) -> object:
    """JSON with every pair kept, numbers as text; raises ValueError or RecursionError."""
    return json.loads(text, object_pairs_hook=Pairs, parse_int=JsonInt, parse_float=JsonFloat)


# A value found in XML and where: the local names from the root to its element, then
# the attribute's name for an attribute value.
XmlValue = tuple[str, tuple[str, ...]]


class _XmlReader:
    """expat handlers collecting each element's direct text runs and attribute values."""

    __slots__ = ("names", "runs", "values")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.runs: list[list[list[str]]] = []   # per open element, text split by children
        self.values: list[XmlValue] = []

    def refuse_dtd(self, *_: object) -> None:
        raise XmlRefused("XML with a DOCTYPE or entity declarations is refused")

    def declaration(self, _version: str | None, encoding: str | None, _standalone: int) -> None:
        if encoding is not None and encoding.lower() not in UTF8_NAMES:
            raise XmlRefused("XML declares an encoding other than UTF-8")

    def start(self, tag: str, attributes: dict[str, str]) -> None:
        if len(self.names) >= MAX_XML_DEPTH:
            raise XmlRefused("XML nested too deeply")
        self.names.append(tag.rsplit(":", 1)[-1])
        self.runs.append([[]])
        path = tuple(self.names)
        for attribute, value in attributes.items():
            self.values.append((value, (*path, attribute.rsplit(":", 1)[-1])))

    def characters(self, data: str) -> None:
        if self.runs:
            self.runs[-1][-1].append(data)

    def end(self, _tag: str) -> None:
        path = tuple(self.names)
        runs = self.runs.pop()
        self.names.pop()
        if self.runs:
            self.runs[-1].append([])   # text after this child is a new run
        texts = [text for text in ("".join(run) for run in runs) if text.strip()]
        self.values.extend((text, path) for text in texts)
        if len(texts) > 1:
            self.values.append(("".join(texts), path))


def xml_values(text: str) -> list[XmlValue]:
    """Every direct text run (and their join) and attribute value, in document order.

    expat with no DTD: a DOCTYPE or entity declaration is refused (entities could spell
    a number that only an entity-expanding reader sees), as is a non-UTF-8 encoding.
    Raises XmlRefused, or ValueError (expat.ExpatError, UnicodeError) when not XML.
    """
    reader = _XmlReader()
    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = reader.refuse_dtd
    parser.EntityDeclHandler = reader.refuse_dtd
    parser.XmlDeclHandler = reader.declaration
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.characters
    try:
        parser.Parse(text, True)
    except expat.ExpatError as error:
        raise ValueError(str(error)) from None
    return reader.values


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a multipart body, its transfer encoding undone."""

    name: str | None
    filename: str | None
    media_type: str
    charset: str | None
    body: bytes


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def header_params(value: str) -> tuple[str, dict[str, str]]:
    """(`main value` lower-cased, {param lower-cased: value}) of a header value.

    A parameter given twice with different values cannot be read one way: PartError.
    """
    main = value.split(";", 1)[0].strip().lower()
    params: dict[str, str] = {}
    for match in _PARAM.finditer(value):
        name, param = match.group(1).lower(), _unquote(match.group(2))
        if params.get(name, param) != param:
            raise PartError(f"the {name} parameter is given twice")
        params[name] = param
    return main, params


def content_type(value: str) -> tuple[str, dict[str, str]]:
    """Media type and parameters, `charset` lower-cased; PartError for a repeated one."""
    media_type, params = header_params(value)
    if "charset" in params:
        params["charset"] = params["charset"].strip().lower()
    return media_type, params


def _headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.decode("utf-8", errors="replace").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            if key in headers and headers[key] != value.strip():
                raise PartError(f"a part repeats its {key} header")
            headers[key] = value.strip()
    return headers


def _decode_transfer(body: bytes, encoding: str) -> bytes:
    if encoding in ("", "7bit", "8bit", "binary"):
        return body
    try:
        if encoding == "base64":
            return binascii.a2b_base64(body)
    except binascii.Error:
        raise PartError("a part's base64 is invalid") from None
    if encoding == "quoted-printable":
        return quopri.decodestring(body)
    raise PartError("a part has an unknown transfer encoding")


def _part(chunk: bytes) -> Part:
    chunk = _LEADING_BREAK.sub(b"", chunk, count=1)
    split = _HEADER_END.search(chunk)
    if split is None:
        head, body = b"", chunk
    else:
        head, body = chunk[:split.start()], chunk[split.end():]
    body = _TRAILING_BREAK.sub(b"", body, count=1)
    headers = _headers(head)
    _, disposition = header_params(headers.get("content-disposition", ""))
    media_type, params = content_type(headers.get("content-type", "text/plain"))
    encoding = headers.get("content-transfer-encoding", "").strip().lower()
    return Part(disposition.get("name"), disposition.get("filename"), media_type,
                params.get("charset"), _decode_transfer(body, encoding))


def split_parts(body: bytes, boundary: str) -> list[Part] | None:
    """The parts between `--boundary` lines; None when the boundary never occurs.

    Raises PartError for a part that cannot be read one way only.
    """
    delimiter = b"--" + boundary.encode("utf-8", errors="replace")
    chunks = body.split(delimiter)
    if len(chunks) < 2:
        return None
    parts = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break   # the close delimiter; what follows is the epilogue
        parts.append(_part(chunk))
    return parts

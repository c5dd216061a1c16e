"""Deep scan of a request Gatekeeper does not know: every value that may name a number.

Pure: no I/O. The proxy parses each returned string with `parse_destination` and
looks every key up, so the scan errs towards more candidates, never fewer; when a
request cannot be read one way only, it is refused rather than guessed at.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal
from urllib.parse import unquote

from gatekeeper.readings import (
    MAX_DIGITS,
    MIN_BARE_DIGITS,
    MIN_TARGET_DIGITS,
    is_dialable,
    is_phone_like,
)
from gatekeeper.scan_formats import (
    UTF8_NAMES,
    JsonFloat,
    JsonInt,
    Pairs,
    Part,
    PartError,
    XmlRefused,
    content_type,
    json_loads,
    split_parts,
    xml_values,
)
from gatekeeper.scan_text import (
    _BAD_PERCENT,
    _BINARY_TYPES,
    _EMBEDDED,
    _FORMISH,
    _LIST_SEPARATOR,
    _NAME_CONTROL,
    _PERCENT,
    _VALUE_CONTROL,
    _WORTH_READING,
    CALLER_NAMES,
    TARGET_NAMES,
    _form_decode,
    _has_uri_scheme,
    _name,
)

__all__ = ["CALLER_NAMES", "TARGET_NAMES", "ScanError", "is_phone_like", "scan_request",
           "script_targets"]

ScanCode = Literal["ambiguous_request", "invalid_body", "too_many_values"]


@dataclass(frozen=True, slots=True)
class ScanError:
    """Why a request could not be scanned; `message` never echoes a phone number."""

    code: ScanCode
    message: str


# Strings inside strings (JSON in a form field, TwiML in JSON...) are read this deep.
MAX_NESTING = 4


class _Stop(Exception):
    """Ends a scan with an error (raised from deep inside parsers and handlers)."""

    def __init__(self, code: ScanCode, message: str) -> None:
        super().__init__(message)
        self.error = ScanError(code, message)


def _ambiguous(message: str) -> _Stop:
    return _Stop("ambiguous_request", message)


class _Scan:
    """One scan's state: options and the candidates found so far (ordered, distinct)."""

    __slots__ = ("bare_digits", "found", "max_values", "script", "seen", "seen_keys")

    def __init__(self, *, bare_digits: bool, max_values: int, script: bool) -> None:
        self.bare_digits = bare_digits
        self.max_values = max_values
        self.script = script
        self.found: dict[str, None] = {}
        self.seen: set[tuple[str, int, bool]] = set()
        self.seen_keys: set[str] = set()

    def add(self, value: str) -> None:
        """Record a candidate; too many distinct ones end the scan."""
        if value not in self.found:
            self.found[value] = None
            if len(self.found) > self.max_values:
                raise _Stop("too_many_values",
                            f"more than {self.max_values} possible destinations")

    def value(self, value: str, depth: int, *, target: bool = False) -> None:
        """A string value: whole spelling, URIs inside it, and structures it holds."""
        if _WORTH_READING.search(value) is None:
            return
        memo = (value, depth, target)
        if memo in self.seen:
            return   # the same value in the same position reads the same
        self.seen.add(memo)
        if is_phone_like(value, bare_digits=self.bare_digits) or (target and is_dialable(value)):
            self.add(value.strip())
        if ":" in value and _has_uri_scheme(value):
            for match in _EMBEDDED.finditer(value):
                if is_phone_like(match.group()):
                    self.add(match.group())
        if depth >= MAX_NESTING:
            return
        if _LIST_SEPARATOR.search(value):
            # One value naming several destinations (`a<b` Plivo, `a,b` MessageBird and
            # Infobip, `a;b`): every part is read as a value of its own.
            parts = _LIST_SEPARATOR.split(value)
            if len(parts) > 1:
                for part in parts:
                    if part.strip():
                        self.value(part, depth + 1, target=target)
        if _VALUE_CONTROL.search(value):
            # A C reader stops at NUL; another drops control characters: read both ways.
            self.value(value.split("\x00", 1)[0], depth + 1, target=target)
            self.value(_VALUE_CONTROL.sub("", value), depth + 1, target=target)
        text = value.strip()
        first = text[:1]
        if first in ("{", "[", '"'):   # a JSON document, or a JSON-encoded string
            try:
                document = json_loads(text)
            except (ValueError, RecursionError):
                document = None   # not JSON after all: already scanned as text
            if document is not None:
                self.json(document, depth + 1)
        elif first == "<":
            self.xml(text, depth + 1, strict=False)
        if "=" in text and _FORMISH.fullmatch(text):
            self.form(text, depth + 1, strict=False)
        if "://" in text and "?" in text:
            # A URL's query can feed a template that dials it (TwiML Bins' {{To}}).
            self.form(text.split("?", 1)[1].split("#", 1)[0], depth + 1, strict=False)
        if "%" in text and _PERCENT.search(text):
            self.value(unquote(text), depth + 1, target=target)

    def key(self, key: str) -> None:
        """An object key or form name: refused with control characters, kept if a number."""
        if key in self.seen_keys:
            return
        self.seen_keys.add(key)
        if _NAME_CONTROL.search(key):
            raise _ambiguous("a field name holds control characters")
        if is_phone_like(key, bare_digits=self.bare_digits):
            self.add(key.strip())

    def number(self, text: str, *, target: bool) -> None:
        """A JSON number: digits when bare digits count or it is in a dial position."""
        if not (self.bare_digits or target):
            return
        digits = text
        if isinstance(text, JsonFloat):
            try:
                exact = Decimal(text) if len(text) <= 40 else None
            except InvalidOperation:
                return
            if exact is None or exact != exact.to_integral_value() or not 0 < exact < 10**15:
                return
            digits = str(int(exact))
        low = MIN_TARGET_DIGITS if target else MIN_BARE_DIGITS
        if digits.isdigit() and low <= len(digits) <= MAX_DIGITS:
            self.add(digits)

    def json(self, root: object, depth: int) -> None:
        """Every leaf of a parsed JSON document (iterative: depth is the parser's limit)."""
        stack: list[tuple[object, bool]] = [(root, False)]
        seen_keys = self.seen_keys
        while stack:
            item, target = stack.pop()
            if type(item) is str:
                self.value(item, depth, target=target)
            elif type(item) is Pairs:
                for key, child in reversed(item):
                    if key not in seen_keys:
                        self.key(key)
                    if not self.script:
                        stack.append((child, False))
                        continue
                    name = _name(key)
                    if name not in CALLER_NAMES:
                        stack.append((child, name in TARGET_NAMES))
            elif type(item) is list:
                stack.extend((child, target) for child in reversed(item))
            elif type(item) is JsonInt or type(item) is JsonFloat:
                self.number(item, target=target)

    def form(self, text: str, depth: int, *, strict: bool) -> None:
        """A urlencoded form, read with `&` and also `;` separators, `+` as space and not."""
        pairs = text.split("&")
        if ";" in text:
            pairs += [p for chunk in pairs if ";" in chunk for p in chunk.split(";")]
        for pair in pairs:
            if not pair:
                continue
            if _BAD_PERCENT.search(pair):
                if strict:
                    raise _ambiguous("invalid percent-encoding")
                continue
            raw_name, _, raw_value = pair.partition("=")
            readings = [False, True] if "+" in pair else [False]
            for plus_literal in readings:
                name = _form_decode(raw_name, plus_literal)
                if _NAME_CONTROL.search(name) and not strict:
                    break   # a sniffed reading that is no form
                self.key(name)
                if self.script and _name(name) in CALLER_NAMES:
                    continue
                self.value(_form_decode(raw_value, plus_literal), depth,
                           target=self.script and _name(name) in TARGET_NAMES)

    def xml(self, text: str, depth: int, *, strict: bool) -> bool:
        """Text runs and attribute values of an XML document; True when it parsed.

        In a script, a value under a caller name is skipped, and one whose own element
        or attribute is a target name counts even when national.
        """
        try:
            values = xml_values(text)
        except XmlRefused as refused:
            raise _ambiguous(str(refused)) from None
        except (ValueError, RecursionError):
            if strict:
                raise _Stop("invalid_body", "the body is not well-formed XML") from None
            return False
        for value, path in values:
            target = False
            if self.script:
                names = [_name(name) for name in path]
                if not CALLER_NAMES.isdisjoint(names):
                    continue
                target = names[-1] in TARGET_NAMES
            self.value(value, depth, target=target)
        return True

    def lines(self, text: str, depth: int) -> None:
        """Plain text: each line as a value (whole spellings, URIs, JSON lines)."""
        for line in text.splitlines():
            if line.strip():
                self.value(line, depth)

    def part(self, part: Part) -> None:
        """One multipart/form-data part, scanned as text that may hold JSON, XML or a form."""
        if part.name is not None:
            self.key(part.name)
        if part.charset is not None and part.charset not in UTF8_NAMES:
            raise _ambiguous("a part declares a charset other than UTF-8")
        if part.media_type.startswith(_BINARY_TYPES):
            return
        try:
            text = part.body.decode("utf-8")
        except UnicodeDecodeError:
            if part.filename is not None:
                return   # an uploaded binary file
            text = part.body.decode("utf-8", errors="replace")
        self.value(text, 1)
        if "\n" in text:
            self.lines(text, 1)

    def body(self, body: bytes, header: str) -> None:
        """The body read by its Content-Type and by what it looks like."""
        media_type, params = content_type(header)
        charset = params.get("charset")
        if charset is not None and charset not in UTF8_NAMES:
            raise _ambiguous("the body declares a charset other than UTF-8")
        if not body:
            return
        if media_type.startswith("multipart/"):
            boundary = params.get("boundary")
            if not boundary:
                raise _ambiguous("a multipart body without a boundary")
            parts = split_parts(body, boundary)
            if parts is None:
                raise _Stop("invalid_body", "the multipart boundary is not in the body")
            for part in parts:
                self.part(part)
            return
        binary = media_type.startswith(_BINARY_TYPES)
        text = _decode(body, binary)
        stripped = text.strip()
        structured = False
        if media_type == "application/json" or media_type.endswith("+json"):
            try:
                document = json_loads(stripped)
            except ValueError:
                raise _Stop("invalid_body", "the body is not valid JSON") from None
            self.json(document, 0)
            structured = True
        elif stripped[:1] in ("{", "[", '"'):
            try:
                document = json_loads(stripped)
            except ValueError:
                pass
            else:
                self.json(document, 0)
                structured = True
        if media_type in ("application/xml", "text/xml") or media_type.endswith("+xml"):
            structured = self.xml(stripped, 0, strict=True)
        elif stripped.startswith("<"):
            structured = self.xml(stripped, 0, strict=False) or structured
        if media_type == "application/x-www-form-urlencoded":
            self.form(stripped, 0, strict=True)
            structured = True
        elif "=" in stripped and _FORMISH.fullmatch(stripped):
            self.form(stripped, 0, strict=False)
            structured = True
        if not structured:
            self.lines(text, 0)


def _decode(body: bytes, binary: bool) -> str:
    """UTF-8 text of a body; UTF-16/32 (by BOM or NUL pattern) is refused, not guessed."""
    if not binary:
        encoding = json.detect_encoding(body)
        if encoding not in ("utf-8", "utf-8-sig"):
            raise _ambiguous("the body is not UTF-8")
    return body.decode("utf-8-sig", errors="replace")


def _run(scan: _Scan, work: Callable[[], None]) -> list[str] | ScanError:
    """Run a scan; any failure becomes a ScanError (the scan never raises)."""
    try:
        work()
    except _Stop as stop:
        return stop.error
    except PartError as error:
        return ScanError("ambiguous_request", str(error))
    except RecursionError:
        return ScanError("ambiguous_request", "the request is nested too deeply to read")
    except Exception:   # a scanner bug must fail closed, not let the request through
        return ScanError("ambiguous_request", "the request could not be read")
    return list(scan.found)


def _script(scan: _Scan, text: str) -> None:
    stripped = text.strip()
    if stripped.startswith("<"):
        scan.xml(stripped, 0, strict=True)
    elif stripped[:1] in ("{", "["):
        try:
            document = json_loads(stripped)
        except ValueError:
            raise _Stop("invalid_body", "the script is not valid JSON") from None
        scan.json(document, 0)
    else:
        scan.lines(stripped, 0)


def scan_request(query: str, body: bytes, content_type: str, *, bare_digits: bool,
                 max_values: int) -> list[str] | ScanError:
    """Every value of a request that may name a destination, as raw strings.

    Query values, form values, JSON leaves (strings; integers too with `bare_digits`),
    XML text and attribute values that are phone-like as a whole, plus every number
    `tel:`/`sip:`/`sips:`/`whatsapp:` URI inside any value. The body is read by its
    Content-Type and also as whatever it parses as; strings holding JSON, XML, a form
    or a URL query are read too, MAX_NESTING deep. Unreadable -> `ambiguous_request`
    or `invalid_body`; more than `max_values` distinct candidates -> `too_many_values`.
    """
    scan = _Scan(bare_digits=bare_digits, max_values=max_values, script=False)

    def work() -> None:
        scan.form(query, 0, strict=True)
        scan.body(body, content_type)

    return _run(scan, work)


def script_targets(text: str, *, bare_digits: bool, max_values: int
                   ) -> list[str] | ScanError:
    """Every number an inline call script dials, transfers to or messages.

    TwiML/TeXML (`<Dial>`, `<Number>`, `<Sip>`, `<Message to>`, `<Refer><Sip>`), Vonage
    NCCO `connect` endpoints, MessageBird `transfer` destinations, Sinch SVAML
    `connectPstn` numbers: values in TARGET_NAMES positions count even when national,
    other values when phone-like. Values under CALLER_NAMES (`callerId`, `from`, `cli`,
    ...) are skipped with everything inside them: a blocked caller id must not stop a call.
    """
    scan = _Scan(bare_digits=bare_digits, max_values=max_values, script=True)
    return _run(scan, lambda: _script(scan, text))

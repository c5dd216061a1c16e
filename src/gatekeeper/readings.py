"""Every E.164 reading of a destination spelling (pure; used by numbers and scan).

A destination can be written many ways: URIs (RFC 3261 `sip:`/`sips:`, RFC 3966 `tel:`),
display names, percent-encoding, Unicode digits and separators, international dialling
prefixes, extension and pause suffixes. A gateway may read any of them, so the block
check looks up every reading, not just the one phonenumbers prefers.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from urllib.parse import unquote

import phonenumbers

# A list key: '+', 2 to 15 digits, no leading 0 (E.164 syntax, not possibility).
KEY_SYNTAX = re.compile(r"\+[1-9][0-9]{1,14}")
_GLOBAL_DIGITS = re.compile(r"[1-9][0-9]{1,14}")
# International dialling prefixes read everywhere; a region may add its own.
COMMON_IDD = ("00", "011")
# What may follow a number and is not part of it: pauses, extensions, DTMF, parameters.
SUFFIX = re.compile(r"(?i:[,;#*wpx]|ext)")
_LEAD = re.compile(r"(\+*)([0-9]*)")
_NON_DIGITS = re.compile(r"[^0-9]+")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
# Besides Unicode spaces, dashes and format marks: what phonenumbers also reads as
# punctuation (`~` as in `8~10`, minus sign, katakana long mark, tildes).
_SEPARATORS = frozenset(" \t\r\n\v\f-./()[]~\u2212\u30fc\u2053\u223c\uff5e")
_SEPARATOR_CATEGORIES = frozenset(("Zs", "Zl", "Zp", "Pd", "Cf"))
_MAX_TABLE = 4096

# Longer values are prose, not a number spelling.
MAX_SPELLING_CHARS = 256
MIN_SPELLED_DIGITS = 5   # `+`, a country code and 4 digits: the shortest list entry
MIN_BARE_DIGITS = 6
MIN_TARGET_DIGITS = 4    # a national number in a dial position, e.g. `<Number>`
MAX_DIGITS = 15
_DIGIT = re.compile(r"\d")
_SPELLED = re.compile(r"(\++|00|011)?([0-9]+)")
_SUFFIX_TAIL = re.compile(r"[0-9A-Za-z,;#*=+%_]*")
_URI_SCHEMES = frozenset(("tel", "sip", "sips", "whatsapp"))
# RFC 3261 name-addr, strictly: a quoted or token display name, `<URI>`, header params.
_NAME_ADDR = re.compile(r'\s*(?:"(?:[^"\\]|\\.)*"|[^"<>]*?)\s*<([^<>]*)>\s*(?:;[^<>]*)?')


class _Normaliser(dict[int, "int | None"]):
    """str.translate table: Unicode digits to ASCII, separators removed, rest kept.

    Filled lazily (there are ~700 Nd code points); bounded so that odd input cannot grow it.
    """

    def __missing__(self, code: int) -> int | None:
        char = chr(code)
        value: int | None = code
        digit = unicodedata.decimal(char, None)
        if digit is not None:
            value = 0x30 + digit
        elif char in _SEPARATORS or unicodedata.category(char) in _SEPARATOR_CATEGORIES:
            value = None
        if len(self) < _MAX_TABLE:
            self[code] = value
        return value


_NORMALISER = _Normaliser()
for _code in range(0x30, 0x3A):
    _NORMALISER[_code] = _code


def normalise(text: str) -> str:
    """Digits as ASCII, separators (ASCII and Unicode spaces, dashes, format marks) gone.

    NFKC first, so fullwidth plus signs, colons and digits read as their ASCII forms.
    """
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return text.translate(_NORMALISER)


def _skip_quoted(text: str) -> int:
    """Index just after a leading quoted string (backslash escapes honoured), else 0."""
    if not text.startswith('"'):
        return 0
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i + 1
        i += 1
    return len(text)


def split_name_addr(text: str) -> tuple[str, str | None]:
    """`"Bob" <sip:...>` -> (`sip:...`, unquoted display or None); other text unchanged."""
    start = _skip_quoted(text)
    open_at = text.find("<", start)
    if open_at < 0:
        return text, None
    close_at = text.find(">", open_at)
    inner = text[open_at + 1:] if close_at < 0 else text[open_at + 1:close_at]
    # A quoted display name is a label; an unquoted one may be a Plivo-style `a<b` list.
    display = None if start else text[:open_at].strip() or None
    return inner.strip(), display


def split_scheme(text: str) -> tuple[str | None, str]:
    """(`scheme` lower-cased, rest) for `scheme:rest`; (None, text) otherwise."""
    match = _SCHEME.match(text)
    if match is None:
        return None, text
    rest = text[match.end():].strip()
    if rest.startswith("//"):
        rest = rest[2:]   # `tel://+33...` is not RFC 3966 but is written, and dialled
    return match.group(1).lower(), rest


def sip_user(rest: str) -> str:
    """The user part of a SIP URI's text after `sip:` (the host when there is no `@`).

    RFC 3261: `user[:password]@host[:port];params?headers`; without `@` a trunk still
    dials the host part when it is a number (`sip:+33612345678`).
    """
    at = rest.find("@")
    userinfo = rest[:at] if at >= 0 else rest.split("?", 1)[0]
    return userinfo.split(":", 1)[0]


def subscriber(text: str) -> tuple[str, str | None]:
    """(number, global phone-context digits or None) of an RFC 3966 telephone-subscriber.

    The text is percent-decoded; `;ext=`, `;isub=`, `;postd=` and other parameters are
    dropped; a `phone-context` that is `+digits` is kept (it prefixes a local number).
    """
    number, *params = unquote(text).split(";")
    context = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "phone-context":
            digits = normalise(value)
            if digits.startswith("+") and digits[1:].isdigit():
                context = digits[1:]
    return number, context


def uri_number(text: str) -> tuple[str | None, str]:
    """(scheme or None, the part that names a number) of a destination spelling."""
    inner, _ = split_name_addr(text.strip())
    scheme, rest = split_scheme(inner)
    if scheme in ("sip", "sips"):
        return scheme, subscriber(sip_user(rest))[0]
    if scheme is not None:
        return scheme, subscriber(rest.split("?", 1)[0])[0]
    return None, inner


def is_phone_like(value: str, *, bare_digits: bool = False) -> bool:
    """True when the WHOLE value is a phone number spelling.

    `+digits` with separators, a `tel:`/`sip:`/`sips:`/`whatsapp:` URI (display name
    allowed) whose user part is a number, `00`/`011` then digits, each with optional
    pause/extension suffix; with `bare_digits`, also 6 to 15 digits alone.
    """
    if len(value) > MAX_SPELLING_CHARS or _DIGIT.search(value) is None:
        return False
    text = value.strip()
    if bare_digits and text.isdecimal() and MIN_BARE_DIGITS <= len(text) <= MAX_DIGITS:
        return True
    return _spelling(text, national=False)


def is_dialable(value: str) -> bool:
    """A value in a dial position: any number spelling, national ones included."""
    if len(value) > MAX_SPELLING_CHARS or _DIGIT.search(value) is None:
        return False
    text = value.strip()
    if text.isdecimal() and MIN_TARGET_DIGITS <= len(text) <= MAX_DIGITS:
        return True
    return _spelling(text, national=True)


def _spelling(text: str, *, national: bool) -> bool:
    """A stripped value that is one number spelling: plain, or a number URI."""
    if "<" in text:
        match = _NAME_ADDR.fullmatch(text)
        if match is None:
            return False   # not one destination: `<` inside prose or markup
        text = match.group(1).strip()
    first = text[:1]
    if first.isascii() and first.isalpha():
        scheme = _SCHEME.match(text)
        if scheme is None or scheme.group(1).lower() not in _URI_SCHEMES:
            return False
        return _spelled(normalise(uri_number(text)[1]), uri=True, national=national)
    if first.isascii() and first not in "+([" and not first.isdigit():
        return False   # cheap exit for prose; non-ASCII may be a fullwidth plus or digit
    return _spelled(normalise(text), uri=False, national=national)


def _spelled(text: str, *, uri: bool, national: bool) -> bool:
    """A normalised spelling: prefix, digits, then nothing or a suffix."""
    match = _SPELLED.match(text)
    if match is None:
        return False
    rest = text[match.end():]
    if rest and (SUFFIX.match(rest) is None or _SUFFIX_TAIL.fullmatch(rest) is None):
        return False
    prefix, digits = match.group(1) or "", match.group(2)
    if prefix.startswith("+"):
        return MIN_SPELLED_DIGITS <= len(digits) <= MAX_DIGITS
    if prefix:
        return digits[0] != "0" and MIN_SPELLED_DIGITS <= len(digits) <= MAX_DIGITS
    low = MIN_TARGET_DIGITS if national else MIN_SPELLED_DIGITS
    return (uri or national) and low <= len(digits) <= MAX_DIGITS


@lru_cache(maxsize=512)
def _region_idd(region: str | None) -> re.Pattern[str] | None:
    """The region's international prefix pattern from phonenumbers' metadata."""
    if region is None:
        return None
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or not metadata.international_prefix:
        return None
    return re.compile(metadata.international_prefix)


def idd_strips(digits: str, region: str | None) -> list[str]:
    """`digits` without each international prefix it may start with (`00`, `011`, region's)."""
    out = [digits[len(p):] for p in COMMON_IDD if digits.startswith(p)]
    pattern = _region_idd(region)
    if pattern is not None:
        out += [digits[k:] for k in range(1, min(len(digits), 7))
                if pattern.fullmatch(digits[:k])]
    return out


_AFTER_COMMA = re.compile(r",[^0-9+]*(\+?)([0-9]{8,15})(?![0-9])")


class Readings:
    """Collects the E.164 keys of one destination spelling, in discovery order."""

    __slots__ = ("keys", "msisdn", "region")

    def __init__(self, region: str | None, msisdn: bool) -> None:
        self.region = region
        self.msisdn = msisdn
        self.keys: dict[str, None] = {}

    def add_key(self, key: str | None) -> None:
        """Keep `key` if it is E.164 by syntax."""
        if key is not None and KEY_SYNTAX.fullmatch(key):
            self.keys[key] = None

    def add_global(self, digits: str, *, idd: bool = True) -> None:
        """`+digits`, phonenumbers' normal form of it, and the number after a leading IDD."""
        key = "+" + digits
        # A key already found is phonenumbers' own form or was normalised when found.
        if key not in self.keys and _GLOBAL_DIGITS.fullmatch(digits):
            self.keys[key] = None
            self.add_key(_pn_e164(key, None))
        if idd:   # `+0033...`: a plus written before an international prefix
            for stripped in idd_strips(digits, None):
                self.add_global(stripped, idd=False)

    def add_national(self, digits: str) -> bool:
        """The national reading for the region; True when it is a possible number."""
        if self.region is None:
            return False
        try:
            parsed = phonenumbers.parse(digits, self.region)
        except phonenumbers.NumberParseException:
            return False
        self.add_key(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
        return phonenumbers.is_possible_number(parsed)

    def of_value(self, raw: str, *, depth: int = 0) -> str | None:
        """Add every reading of a whole destination value; return its canonical `+digits`.

        The canonical reading is the one the value names unambiguously: a `+` number
        (suffixes dropped), a SIP/tel URI's global number or local number in a global
        phone-context, or digits in a SIP/tel URI on an msisdn upstream.
        """
        text = raw.strip()
        if not text.isascii():
            text = unicodedata.normalize("NFKC", text)
        if depth < 2 and _PERCENT.search(text):
            self.of_value(unquote(text), depth=depth + 1)
        inner, display = split_name_addr(text)
        if display is not None:
            self.of_value(display, depth=2)
        scheme, rest = split_scheme(inner)
        if scheme is None:
            return self.of_number(inner, uri=False, context=None)
        if scheme in ("sip", "sips"):
            return self.of_subscriber(sip_user(rest))
        if scheme == "tel":
            return self.of_subscriber(rest)
        if scheme == "whatsapp":
            return self.of_number(rest, uri=False, context=None)
        if scheme != "client":   # `sms:`, `callto:`, unknown: kept invalid, still looked up
            self.of_subscriber(rest.split("?", 1)[0])
        return None

    def of_subscriber(self, text: str) -> str | None:
        """Readings of a SIP user part or tel subscriber (percent-decoded, parameters off)."""
        number, context = subscriber(text)
        decoded_twice = unquote(number)
        if decoded_twice != number:
            self.of_number(decoded_twice, uri=True, context=context)
        return self.of_number(number, uri=True, context=context)

    def of_number(self, text: str, *, uri: bool, context: str | None) -> str | None:
        """Readings of one number spelling; the canonical `+digits` when it names one."""
        spelled = normalise(text)
        lead_match = _LEAD.match(spelled)
        assert lead_match is not None   # the pattern matches the empty string
        plus, lead = lead_match.group(1), lead_match.group(2)
        if not lead:
            return None
        rest = spelled[lead_match.end():]
        clean = not rest or SUFFIX.match(rest) is not None
        # Besides the leading run, a gateway that strips every non-digit dials them all.
        every = _NON_DIGITS.sub("", spelled)
        canonical = None
        # A second number after a comma (`a,b`): a gateway splitting on commas sends to
        # it too. Short runs after a comma are DTMF (`,ww200`), not numbers.
        for extra in _AFTER_COMMA.finditer(rest):
            if plus or extra.group(1):
                self.add_global(extra.group(2))
            else:
                self._bare(extra.group(2), uri=uri)
        for digits in dict.fromkeys((lead, every)):
            first = digits is lead and clean
            if plus:
                self.add_global(digits)
                if first:
                    canonical = "+" + digits
            elif context is not None:
                self.add_global(context + digits)
                if first:
                    canonical = "+" + context + digits
            else:
                found = self._bare(digits, uri=uri)
                if first and uri and self.msisdn:
                    canonical = found
        return canonical

    def _bare(self, digits: str, *, uri: bool) -> str | None:
        """Digits without `+`: IDD, international and national readings as the preset allows.

        msisdn presets read digits as international (and a leading 0 as national); other
        presets read them as national for the region, and as international too inside a
        SIP/tel URI or when no national reading is possible. Returns the msisdn reading.
        """
        international = None
        for stripped in idd_strips(digits, self.region):
            self.add_global(stripped, idd=False)
            international = international or ("+" + stripped)
        if _GLOBAL_DIGITS.fullmatch(digits):
            international = "+" + digits
        if self.msisdn:
            if _GLOBAL_DIGITS.fullmatch(digits):
                self.add_global(digits, idd=False)
            if digits.startswith("0"):
                self.add_national(digits)
            return international if international and KEY_SYNTAX.fullmatch(international) \
                else None
        possible = self.add_national(digits)
        if uri or not possible:
            self.add_global(digits, idd=False)
        return None


def _pn_e164(text: str, region: str | None) -> str | None:
    """phonenumbers' E.164 form of `text`, possible or not; None when it cannot parse it."""
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)

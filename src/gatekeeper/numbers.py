"""Phone numbers, list entries and scopes: pure parsing and normalisation, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import phonenumbers

from gatekeeper.readings import Readings, split_name_addr, split_scheme

# E.164 allows at most 15 digits; a prefix entry is shorter than a full number.
MAX_E164_DIGITS = 15
MAX_PREFIX_DIGITS = 14
MIN_NATIONAL_DIGITS = 4

_E164_SYNTAX = re.compile(r"^\+[1-9][0-9]{1,14}$")
_PREFIX_SYNTAX = re.compile(r"^\+([0-9]{1,14})\*$")
_SCOPE_SYNTAX = re.compile(r"^(global|[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9._@+-]{1,128})$")
# Punctuation people put in numbers; removed before an entry is checked.
_ENTRY_PUNCTUATION = str.maketrans("", "", " \t-.()/")
_MSISDN = re.compile(r"(00)?[1-9][0-9]{5,14}")
_SIP_USER = re.compile(r"^\+[0-9]{2,15}$")

_KNOWN_COUNTRY_CODES = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)

# phonenumbers compiles its metadata's patterns through re.compile, whose cache holds
# 512 and costs a lookup each time: keep them all (about 700 patterns, 2 MiB measured
# over random numbers of every calling code); a number's first type evaluation then
# costs 71 us against 86 (bench: README, "What the rules cost"). Once per process.
if hasattr(phonenumbers, "enable_pattern_cache"):
    phonenumbers.enable_pattern_cache()

DestinationKind = Literal["phone", "not_phone", "invalid"]


def is_valid_scope(scope: str) -> bool:
    """True for `global` or `kind:id` (e.g. `tenant:acme`, `agent:42`)."""
    return _SCOPE_SYNTAX.fullmatch(scope) is not None


def is_known_region(region: str) -> bool:
    """True for a region phonenumbers knows, e.g. `TR` or `US`."""
    return region in phonenumbers.SUPPORTED_REGIONS


def _country_code_length(digits: str) -> int:
    for n in (1, 2, 3):
        if int(digits[:n]) in _KNOWN_COUNTRY_CODES:
            return n
    return 0


@dataclass(frozen=True, slots=True)
class Entry:
    """A normalised list entry: an exact E.164 number or a prefix such as `+33*`."""

    value: str

    @property
    def is_prefix(self) -> bool:
        """True for prefix entries (`+33*`)."""
        return self.value.endswith("*")


@dataclass(frozen=True, slots=True)
class EntryError:
    """Why an entry was refused, in words meant for the operator."""

    entry: str
    reason: str


def parse_entry(raw: str, region: str | None = None) -> Entry | EntryError:
    """Normalise a list entry.

    Accepted: E.164 by syntax with a known country calling code (so `+30123456789` is
    accepted although it is not a possible number), a national number when `region` is
    given, or a prefix: `+`, 1 to 14 digits, then `*`.
    """
    text = raw.strip().translate(_ENTRY_PUNCTUATION)
    if not text:
        return EntryError(raw, "empty entry")
    if text.endswith("*"):
        prefix = _PREFIX_SYNTAX.match(text)
        if prefix is None:
            return EntryError(raw, "a prefix is '+', 1 to 14 digits, then '*'")
        if prefix.group(1).startswith("0"):
            return EntryError(raw, "a prefix starts with a country code, which never begins with 0")
        return Entry(text)
    if not text.startswith("+"):
        if region is None:
            return EntryError(raw, "not E.164: write '+' and the country code, or give a region")
        try:
            parsed = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            return EntryError(raw, f"not a phone number for region {region}")
        text = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if _E164_SYNTAX.match(text) is None:
        return EntryError(raw, "not E.164: '+' then up to 15 digits, no leading 0")
    digits = text[1:]
    cc_len = _country_code_length(digits)
    if cc_len == 0:
        return EntryError(raw, "unknown country calling code")
    if len(digits) - cc_len < MIN_NATIONAL_DIGITS:
        return EntryError(raw, "too short for a phone number")
    return Entry(text)


@dataclass(frozen=True, slots=True)
class Destination:
    """A send's recipient as understood by Gatekeeper.

    `keys` are every E.164 number a gateway could read in `raw` (`e164` first): the
    proxy looks each one up, so a blocked number is caught however it is spelled.
    Equality compares `kind`, `raw` and `e164`, what the destination is; `keys` also
    depend on the region and preset it was read for.
    """

    kind: DestinationKind
    raw: str
    e164: str | None = None
    keys: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        # The canonical number is always looked up, and first.
        if self.e164 is not None and self.keys[:1] != (self.e164,):
            rest = tuple(k for k in self.keys if k != self.e164)
            object.__setattr__(self, "keys", (self.e164, *rest))


@lru_cache(maxsize=65536)
def parse_destination(raw: str, region: str | None = None, msisdn: bool = False
                      ) -> Destination:
    """Normalise a recipient to E.164 and list every number it could be read as.

    `whatsapp:` and `tel:` carry a phone number; `sip:`/`sips:` URIs whose user part is
    a global number (any RFC 3261/3966 spelling: separators, percent-encoding,
    parameters, a display name, `phone-context=+cc`) are that number (a SIP trunk still
    dials it), as are digits in such a URI on an msisdn preset; other `sip:` and
    `client:` destinations are not phone numbers. Anything else that is not a possible
    phone number is `invalid`. With `msisdn`, digits alone are an international number
    without its `+` (`447700900123`), as Vonage, Plivo, Sinch, Infobip and MessageBird
    write them. Whatever the kind, `keys` holds every E.164 reading: IDD prefixes (`00`,
    `011`, the region's) read as `+`, suffixes (`,`, `;`, `w`, `p`, `x`, `ext`, `#`)
    dropped, national and international readings of bare digits. Cached: the result
    depends only on the arguments.
    """
    if _E164_SYNTAX.fullmatch(raw):
        # The common case, kept as cheap as before: `+digits` has no other reading.
        parsed = parse_plus(raw)
        if parsed is None:
            return Destination("invalid", raw, None, (raw,))
        number = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        if phonenumbers.is_possible_number(parsed):
            return Destination("phone", raw, number, (number,) if number == raw else (number, raw))
        also = (number,) if number != raw and _E164_SYNTAX.match(number) else ()
        return Destination("invalid", raw, None, (raw, *also))
    inner, _ = split_name_addr(raw.strip())
    # `"Bob" <sip:...>` is read as its URI, so `"Bob" <sip:alice@h>` is not a number.
    classic_text = inner if split_scheme(inner)[0] is not None else raw
    kind, e164, pn_reading = _classic(classic_text, region, msisdn)
    readings = Readings(region, msisdn)
    readings.add_key(pn_reading)
    canonical = readings.of_value(raw)
    if kind != "phone" and canonical is not None:
        upgraded = _possible_e164(canonical)
        if upgraded is not None:
            kind, e164 = "phone", upgraded
    return Destination(kind, raw, e164, tuple(readings.keys))


@lru_cache(maxsize=65536)
def parse_plus(text: str) -> phonenumbers.PhoneNumber | None:
    """phonenumbers' reading of a `+digits` number (None: it cannot read it). Cached and
    shared: the proxy reads each destination, and the policy's facts (facts.py) read
    the same E.164 number again. No default region applies to a number with its `+`.
    Callers must not change the object."""
    try:
        return phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None


def _classic(raw: str, region: str | None, msisdn: bool
             ) -> tuple[DestinationKind, str | None, str | None]:
    """The canonical reading, as Gatekeeper has always made it.

    Returns (kind, e164, phonenumbers' E.164 reading even when not possible).
    """
    text = raw.strip()
    if msisdn and _MSISDN.fullmatch(text):
        text = "+" + text.removeprefix("00")
    scheme, sep, rest = text.partition(":")
    if sep:
        scheme = scheme.lower()
        if scheme in ("sip", "sips"):
            user = rest.split("@", 1)[0].split(";", 1)[0]
            if _SIP_USER.match(user) is None:
                return "not_phone", None, None
            text = user
        elif scheme == "client":
            return "not_phone", None, None
        elif scheme in ("whatsapp", "tel"):
            text = rest.strip()
        else:
            return "invalid", None, None
    if not text:
        return "invalid", None, None
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return "invalid", None, None
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if not phonenumbers.is_possible_number(parsed):
        return "invalid", None, e164
    return "phone", e164, e164


def _possible_e164(number: str) -> str | None:
    """E.164 form of a `+digits` reading when phonenumbers deems it possible."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def lookup_candidates(e164: str) -> tuple[str, ...]:
    """The list members that can match `e164`: itself, then its prefixes shortest first."""
    digits = e164[1:]
    top = min(len(digits), MAX_PREFIX_DIGITS)
    return (e164, *(f"+{digits[:n]}*" for n in range(1, top + 1)))


def mask_number(e164: str) -> str:
    """Mask the middle of a number for logs: `+33612345789` -> `+3361****789`.

    At least four digits stay hidden: shorter numbers show less of their head.
    """
    if len(e164) < 9:
        return f"{e164[:3]}****{e164[-2:]}"
    head = max(2, min(5, len(e164) - 7))
    return f"{e164[:head]}****{e164[-3:]}"

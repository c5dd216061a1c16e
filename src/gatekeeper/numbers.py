"""Phone numbers, list entries and scopes: pure parsing and normalisation, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import phonenumbers

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
    """A send's recipient as understood by Gatekeeper."""

    kind: DestinationKind
    raw: str
    e164: str | None = None


@lru_cache(maxsize=65536)
def parse_destination(raw: str, region: str | None = None, msisdn: bool = False
                      ) -> Destination:
    """Normalise a recipient to E.164.

    `whatsapp:` and `tel:` carry a phone number; `sip:`/`sips:` URIs whose user part is
    `+digits` are that number (a SIP trunk still dials it), other `sip:` and `client:`
    destinations are not phone numbers. Anything else that is not a possible phone
    number is `invalid`. With `msisdn`, digits alone are an international number without
    its `+` (`447700900123`), as Vonage, Plivo, Sinch, Infobip and MessageBird write them.
    Cached: the result depends only on the arguments.
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
                return Destination("not_phone", raw)
            text = user
        elif scheme == "client":
            return Destination("not_phone", raw)
        elif scheme in ("whatsapp", "tel"):
            text = rest.strip()
        else:
            return Destination("invalid", raw)
    if not text:
        return Destination("invalid", raw)
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return Destination("invalid", raw)
    if not phonenumbers.is_possible_number(parsed):
        return Destination("invalid", raw)
    return Destination("phone", raw, phonenumbers.format_number(parsed,
                                                                phonenumbers.PhoneNumberFormat.E164))


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

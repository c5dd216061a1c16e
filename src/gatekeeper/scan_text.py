"""The text side of the deep scan (pure): the names of call-script positions, the
patterns a value is tested against before it is read further, and form-field decoding.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

# Keys/attributes/elements naming the calling party in call scripts, compared lower-cased
# with `_` and `-` removed: a caller id on a block list must not stop a call. TwiML/TeXML
# `callerId`, `fromDisplayName`, `<Message from>`; NCCO `from`; SVAML `cli`; MessageBird
# `source`/`originator`; Plivo `src`, `callerName`; `sender`. Their whole subtree is skipped.
CALLER_NAMES = frozenset(("callerid", "from", "cli", "source", "fromdisplayname",
                          "callername", "originator", "sender", "src"))
# Keys/attributes/elements whose value is dialled or messaged: national spellings count.
TARGET_NAMES = frozenset(("to", "dst", "number", "destination", "destinations", "endpoint",
                          "uri", "phonenumber", "msisdn", "recipient", "recipients",
                          "target", "dial", "sip"))

_NAME_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_VALUE_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
# A value with none of these holds no number, URI, nested structure or encoding.
_WORTH_READING = re.compile(r"[\d{\[<=%\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FORMISH = re.compile(r"[^\s=&]*=[^\s]*")
_URI_CHARS = r"[^\s\"'<>\\^`{|}]"
# Separators people put inside a tel: number written in prose (not RFC 3966, still read).
_PROSE_SEPARATOR = r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000().\-\u2010-\u2015\u2212]"
_EMBEDDED = re.compile(
    r"(?<![\w+.-])(?:(?:tel|whatsapp):" + _PROSE_SEPARATOR + r"*\+?" + _PROSE_SEPARATOR
    + r"*\d(?:" + _PROSE_SEPARATOR + r"*\d)*" + _URI_CHARS + r"*|sips?:" + _URI_CHARS + r"+)",
    re.IGNORECASE)
_BINARY_TYPES = ("image/", "audio/", "video/", "font/", "application/octet-stream",
                 "application/pdf", "application/zip", "application/gzip")

# Plivo joins with `<`; a name-addr's `<...>` split the same way only adds its URI again.
_LIST_SEPARATOR = re.compile(r"[<>,;]")


def _has_uri_scheme(value: str) -> bool:
    """Cheap test before the embedded-URI search (which costs ~10x more on prose)."""
    lowered = value.lower()
    return "sip:" in lowered or "sips:" in lowered or "tel:" in lowered \
        or "whatsapp:" in lowered


def _name(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def _form_decode(text: str, plus_literal: bool) -> str:
    if not plus_literal:
        text = text.replace("+", " ")
    # surrogatepass: a lone surrogate from a JSON escape must not end the scan.
    raw = unquote_to_bytes(text.encode("utf-8", errors="surrogatepass"))
    return raw.decode("utf-8", errors="replace")

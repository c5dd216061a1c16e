"""URL-encoded forms and query strings, read the way any server could read them.

Servers disagree on forms: which of two `To` fields counts (first or last), whether `to`
is `To`, whether `To[]`/`To[0]`/`To[x]` is `To` (PHP, Rails), whether `;` separates
fields (older Python, some Java). A field is therefore read under every reading at once:
all pairs whose name, folded (`field_key`), is the field's name count. A read is `exact`
only when no other reading could differ; a request read inexactly is never rewritten
(the proxy applies `on_block` whole). What no reading can settle is refused: a raw `;`,
a malformed `%` escape, control characters in a name (400 `ambiguous_request`), or text
that is not UTF-8 (400 `invalid_form`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

from gatekeeper.providers.preset import BodyError

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class FormPair:
    """One `name=value` field, decoded, with its raw text kept for byte-exact rewrites."""

    name: str
    value: str
    raw: str


def parse_pairs(text: str) -> list[FormPair] | BodyError:
    """Decode url-encoded fields (UTF-8); see the module docstring for what is refused."""
    if ";" in text:
        return BodyError("ambiguous_request",
                         "';' separates fields for some servers: send it encoded as %3B")
    if "%" in text and _BAD_ESCAPE.search(text):
        return BodyError("ambiguous_request", "malformed percent-encoding in the form")
    pairs: list[FormPair] = []
    try:
        for raw in text.split("&"):
            if not raw:
                continue  # `a=1&&b=2` and a trailing `&` are harmless
            name, _, value = raw.partition("=")
            decoded = unquote_plus(name, errors="strict")
            if _CONTROL.search(decoded):
                return BodyError("ambiguous_request", "a field name holds control characters")
            pairs.append(FormPair(decoded, unquote_plus(value, errors="strict"), raw))
    except UnicodeDecodeError:
        return BodyError("invalid_form", "the form is not valid UTF-8 once decoded")
    return pairs


def parse_form(body: bytes) -> dict[str, list[str]] | BodyError:
    """A body's fields as lists of values by exact name (for echoing in replies)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return BodyError("invalid_form", "the body is not UTF-8")
    pairs = parse_pairs(text)
    if isinstance(pairs, BodyError):
        return pairs
    form: dict[str, list[str]] = {}
    for pair in pairs:
        form.setdefault(pair.name, []).append(pair.value)
    return form


def field_key(name: str) -> str:
    """The name every reading agrees on: no `[...]` suffix, case-folded, PHP's `.` and
    space as `_`, surrounding whitespace dropped."""
    base = name.partition("[")[0].strip().casefold()
    return base.replace(".", "_").replace(" ", "_")


@dataclass(frozen=True, slots=True)
class FieldRead:
    """The values of one field under every reading; `exact` when all readings agree."""

    indices: tuple[int, ...]   # positions in the pair list of the pairs that count
    values: tuple[str, ...]
    exact: bool


def read_field(pairs: list[FormPair], name: str, *, multi: bool = False) -> FieldRead:
    """Every pair that some server reads as field `name`.

    `multi`: the field is a list whose every occurrence counts (`recipients[]`); then
    repeated `name` or `name[]` pairs are exact. Otherwise a second occurrence, another
    spelling (case, brackets) or a bracketed name makes the read inexact.
    """
    key = field_key(name)
    indices = tuple(i for i, p in enumerate(pairs) if field_key(p.name) == key)
    values = tuple(pairs[i].value for i in indices)
    spellings = {pairs[i].name for i in indices}
    if multi:
        exact = spellings <= {name, f"{name}[]"} and len(spellings) <= 1
    else:
        exact = spellings <= {name} and len(indices) <= 1
    return FieldRead(indices, values, exact)

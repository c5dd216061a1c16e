"""The form locator: recipients in a url-encoded field of the body or the query
(`FormField`, read as forms.py reads), removed by cutting raw pairs or parts of one."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from gatekeeper.providers.forms import FormPair, parse_pairs, read_field
from gatekeeper.providers.preset import BodyError, Message, Recipients
from gatekeeper.providers.recipient_text import split_parts


@dataclass(frozen=True, slots=True)
class FormField:
    """Recipients in a url-encoded field of the body, or of the query (`in_query`).

    With `separator` one field holds several; with `multi` the field is a list and
    every occurrence is a recipient. Removal drops whole pairs (or cuts parts from one
    pair's value) and keeps every other pair's raw bytes; an inexact read (see forms.py)
    is never rewritten. `optional`: no such field means no recipient.
    """

    name: str
    separator: str | None = None
    in_query: bool = False
    multi: bool = False
    optional: bool = False

    def find(self, message: Message) -> Recipients | BodyError:
        if self.in_query:
            text = message.query
        else:
            try:
                text = message.body.decode("utf-8")
            except UnicodeDecodeError:
                return BodyError("invalid_form", "the body is not UTF-8")
        pairs = parse_pairs(text)
        if isinstance(pairs, BodyError):
            return pairs
        read = read_field(pairs, self.name, multi=self.multi)
        values = [part for value in read.values for part in split_parts(value, self.separator)]
        if not values:
            if self.optional:
                return Recipients(())
            where = "query parameter" if self.in_query else "form field"
            return BodyError("missing_destination", f"{where} '{self.name}' is missing")
        if not read.exact:
            return Recipients(tuple(values))
        ours = frozenset(read.indices)

        def remove(blocked: frozenset[str]) -> Message | None:
            text = _rewrite(pairs, ours, blocked, self.separator)
            if text is None:
                return None
            if self.in_query:
                return replace(message, query=text)
            return replace(message, body=text.encode())

        return Recipients(tuple(values), remove)


def _rewrite(pairs: list[FormPair], ours: frozenset[int], blocked: frozenset[str],
             separator: str | None) -> str | None:
    """The form without the blocked recipients, every other byte as sent."""
    kept: list[str] = []
    for index, pair in enumerate(pairs):
        if index not in ours:
            kept.append(pair.raw)
            continue
        parts = split_parts(pair.value, separator)
        left = [p for p in parts if p not in blocked]
        if len(left) == len(parts):
            kept.append(pair.raw)
        elif left:
            cut = cut_raw_parts(pair.raw, separator or "", blocked)
            if cut is None:
                return None
            kept.append(cut)
    return "&".join(kept)


_TOKEN = re.compile(r"%[0-9A-Fa-f]{2}|.", re.DOTALL)


def cut_raw_parts(raw_pair: str, separator: str, blocked: frozenset[str]) -> str | None:
    """`name=a<b<c` without its blocked parts, cut from the raw text: the kept parts and
    separators keep their exact bytes (`%3C` stays `%3C`, `<` stays `<`)."""
    name, _, raw_value = raw_pair.partition("=")
    parts: list[list[str]] = [[]]
    seps: list[str] = []
    for token in _TOKEN.findall(raw_value):
        if _char(token) == separator:
            seps.append(token)
            parts.append([])
        else:
            parts[-1].append(token)
    out: list[str] = []
    for i, tokens in enumerate(parts):
        text = _decode(tokens)
        if text is None:
            return None
        if not text.strip() or text in blocked:
            continue
        if out:
            out.append(seps[i - 1])
        out.extend(tokens)
    return f"{name}={''.join(out)}"


def _char(piece: str) -> str:
    if piece == "+":
        return " "
    return chr(int(piece[1:], 16)) if len(piece) == 3 and piece[0] == "%" else piece


def _decode(tokens: list[str]) -> str | None:
    data = b"".join(bytes([int(t[1:], 16)]) if len(t) == 3 and t[0] == "%" else
                    b" " if t == "+" else t.encode() for t in tokens)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None

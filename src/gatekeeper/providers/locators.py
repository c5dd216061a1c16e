"""Locators: where a send's recipients are, read every way a server could read them, and
how to remove some of them without changing any other byte of the request.

JSON is read with every duplicate key kept and keys matched in any case (some servers
take the first duplicate, some the last; some decoders ignore case), so every value any
reading yields is a recipient; such a read is inexact and the request is never edited.
Rewrites cut bytes out of the body as sent (`jsonedit`, raw form pairs); where that
cannot be done exactly, the locator offers no rewrite and `on_block` applies whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace

from gatekeeper import jsonedit
from gatekeeper.providers.forms import FormPair, parse_pairs, read_field
from gatekeeper.providers.preset import BodyError, Locator, Message, Recipients

# A position in a JSON document: keys and array indices from the root.
JsonPosition = tuple[str | int, ...]
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class JsonObject(dict[str, object]):
    """A decoded JSON object that remembers every value of a duplicated key."""

    __slots__ = ("dups",)

    def __init__(self, pairs: list[tuple[str, object]]) -> None:
        super().__init__(pairs)
        self.dups: dict[str, list[object]] | None = None
        if len(self) != len(pairs):
            dups: dict[str, list[object]] = {}
            for key, value in pairs:
                dups.setdefault(key, []).append(value)
            self.dups = {k: v for k, v in dups.items() if len(v) > 1}


def load_json(body: bytes) -> object | BodyError:
    """Decode a JSON body (plain dicts, last duplicate wins); bad input is a BodyError."""
    try:
        doc: object = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        # RecursionError: nesting too deep for the decoder (`[[[[...`), still bad input.
        return BodyError("invalid_json", "the body is not valid JSON")
    if _SURROGATE_ESCAPE.search(body) and _has_lone_surrogate(doc):
        return BodyError("invalid_json", "the body holds a lone surrogate escape")
    return doc


def load_json_all(body: bytes) -> object | BodyError:
    """Decode a JSON body keeping duplicate keys' values (`JsonObject.dups`)."""
    try:
        doc: object = json.loads(body, object_pairs_hook=JsonObject)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return BodyError("invalid_json", "the body is not valid JSON")
    if _SURROGATE_ESCAPE.search(body) and _has_lone_surrogate(doc):
        return BodyError("invalid_json", "the body holds a lone surrogate escape")
    return doc


def _has_lone_surrogate(doc: object) -> bool:
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if any("\ud800" <= c <= "\udfff" for c in node):
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def dump_json(doc: object) -> bytes:
    """Encode a reply document (UTF-8, compact)."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def members(node: object, name: str) -> tuple[list[tuple[str, object]], bool]:
    """Every (key, value) of object `node` that some reader takes for key `name`: the
    key in any case, each duplicate's value. The bool is True when the read is exact."""
    if not isinstance(node, dict):
        return [], True
    folded = name.casefold()
    found: list[tuple[str, object]] = []
    exact = True
    dups = node.dups if isinstance(node, JsonObject) else None
    for key in node:
        if key != name and key.casefold() != folded:
            continue
        if key != name:
            exact = False
        if dups and key in dups:
            exact = False
            found.extend((key, v) for v in dups[key])
        else:
            found.append((key, node[key]))
    return found, exact


def _steps(path: str) -> tuple[tuple[str, bool], ...]:
    return tuple((part.removesuffix("[]"), part.endswith("[]")) for part in path.split("."))


@dataclass(frozen=True, slots=True)
class Leaves:
    """The values at a path with their positions; `exact` when no reading differs."""

    found: list[tuple[object, JsonPosition]]
    exact: bool


def json_leaves(doc: object, path: str, one_or_many: frozenset[str] = frozenset()
                ) -> Leaves | BodyError:
    """The values at a dotted path (`a[]` walks into array `a`); a leaf that is an array
    yields each element. Names in `one_or_many` may hold an array or one object."""
    nodes: list[tuple[object, JsonPosition]] = [(doc, ())]
    exact = True
    for name, is_array in _steps(path):
        found: list[tuple[object, JsonPosition]] = []
        for node, pos in nodes:
            hits, clean = members(node, name)
            exact = exact and clean
            for key, value in hits:
                if is_array and isinstance(value, list):
                    found.extend((v, (*pos, key, i)) for i, v in enumerate(value))
                elif is_array and not (name in one_or_many and isinstance(value, dict)):
                    return BodyError("invalid_destination_field",
                                     f"'{path}': '{name}' is not an array")
                else:
                    found.append((value, (*pos, key)))
        nodes = found
    leaves: list[tuple[object, JsonPosition]] = []
    for node, pos in nodes:
        if isinstance(node, list):
            leaves.extend((v, (*pos, i)) for i, v in enumerate(node))
        else:
            leaves.append((node, pos))
    return Leaves(leaves, exact)


def _container(doc: object, pos: JsonPosition) -> object:
    node = doc
    for key in pos:
        node = node[key]  # type: ignore[index]
    return node


def _last_index(pos: JsonPosition) -> int | None:
    return max((i for i, key in enumerate(pos) if isinstance(key, int)), default=None)


def plan_deletions(doc: object, positions: Iterable[JsonPosition]
                   ) -> frozenset[JsonPosition] | None:
    """The array elements to delete so that each position is gone: the element of the
    innermost array holding it; an array left empty goes with its own element of the
    next array out (a message left with no destination disappears). None when a
    position is in no array (a lone recipient field: the request cannot lose it)."""
    doomed: set[JsonPosition] = set()
    for pos in positions:
        cut = _last_index(pos)
        if cut is None:
            return None
        doomed.add(pos[:cut + 1])
    changed = True
    while changed:
        changed = False
        by_parent: dict[JsonPosition, set[JsonPosition]] = {}
        for pos in doomed:
            by_parent.setdefault(pos[:-1], set()).add(pos)
        for parent, children in by_parent.items():
            array = _container(doc, parent)
            outer = _last_index(parent)
            if isinstance(array, list) and len(children) == len(array) and outer is not None:
                doomed -= children
                doomed.add(parent[:outer + 1])
                changed = True
                break
    return frozenset(doomed)


_EMAIL = re.compile(r"[^@\s:<>,;\"]+@[^@\s:<>,;\"]+")


def is_email(value: str) -> bool:
    """True for a plain e-mail address (`a@b.c`); `sip:+33...@host`, a display name or
    anything with a scheme is not one and stays a destination to decide."""
    return _EMAIL.fullmatch(value.strip()) is not None


def split_parts(value: str, separator: str | None) -> list[str]:
    """The recipients one string holds (`a<b` with separator `<`), blanks dropped."""
    parts = value.split(separator) if separator else [value]
    return [p for p in parts if p.strip()]


@dataclass(frozen=True, slots=True)
class JsonPath:
    """Recipients at a dotted JSON path (`to`, `messages[].destinations[].to`).

    `separator` splits one string into several recipients (Plivo's `a<b`); `numbers`
    accepts JSON integers (MSISDNs); `one_or_many` names steps that may be an object or
    an array of them; `optional`: no such field means no recipient (not an error).
    """

    path: str
    separator: str | None = None
    numbers: bool = False
    one_or_many: frozenset[str] = frozenset()
    optional: bool = False

    def find(self, message: Message) -> Recipients | BodyError:
        doc = load_json_all(message.body)
        if isinstance(doc, BodyError):
            return doc
        leaves = json_leaves(doc, self.path, self.one_or_many)
        if isinstance(leaves, BodyError):
            return leaves
        found: list[tuple[str, JsonPosition]] = []
        for leaf, pos in leaves.found:
            if self.optional and leaf is None:
                continue
            value = leaf
            if self.numbers and isinstance(leaf, int) and not isinstance(leaf, bool):
                value = str(leaf)
            if not isinstance(value, str):
                return BodyError("invalid_destination_field",
                                 f"'{self.path}' holds a {type(leaf).__name__}, not a string")
            found.extend((part, pos) for part in split_parts(value, self.separator))
        if not found:
            if self.optional:
                return Recipients(())
            return BodyError("missing_destination", f"no destination at '{self.path}'")
        values = tuple(value for value, _ in found)
        if not leaves.exact:
            return Recipients(values)

        def remove(blocked: frozenset[str]) -> Message | None:
            return _without(message, doc, leaves.found, blocked, self.separator)

        return Recipients(values, remove)


def _without(message: Message, doc: object, leaves: list[tuple[object, JsonPosition]],
             blocked: frozenset[str], separator: str | None) -> Message | None:
    """The body with the blocked recipients cut out at the byte level."""
    whole: list[JsonPosition] = []
    shortened: dict[JsonPosition, object] = {}
    for leaf, pos in leaves:
        text = str(leaf) if isinstance(leaf, int) else leaf
        assert isinstance(text, str)
        parts = split_parts(text, separator)
        kept = [p for p in parts if p not in blocked]
        if len(kept) == len(parts):
            continue
        if kept:
            shortened[pos] = (separator or "").join(kept)
        else:
            whole.append(pos)
    deletions = plan_deletions(doc, whole) if whole else frozenset()
    if deletions is None:
        return None
    return edited(message, deletions, shortened)


def edited(message: Message, delete: Collection[JsonPosition],
           replace_values: dict[JsonPosition, object] | None = None) -> Message | None:
    """The message with a byte-level JSON edit applied, or None when it cannot be exact."""
    body = jsonedit.edit(message.body, delete, replace_values or {})
    return None if body is None else replace(message, body=body)


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


@dataclass(frozen=True, slots=True)
class Converted:
    """Recipients checked in a converted form; removal maps them back to the raw ones."""

    inner: Locator
    convert: Callable[[str], str]

    def find(self, message: Message) -> Recipients | BodyError:
        found = self.inner.find(message)
        if isinstance(found, BodyError):
            return found
        raws = found.values

        def remove(blocked: frozenset[str]) -> Message | None:
            return found.without(frozenset(r for r in raws if self.convert(r) in blocked))

        values = tuple(self.convert(r) for r in raws)
        return Recipients(values, remove if found.remover is not None else None)


def relabelled(found: Recipients, label: Callable[[str], str]) -> Recipients:
    """Recipients shown under labels (`client:email:...`); removal maps the blocked
    labels back to the raw values, so a label can never hide a recipient from it."""
    raws = found.values
    if found.remover is None:
        return Recipients(tuple(label(r) for r in raws))

    def remove(blocked: frozenset[str]) -> Message | None:
        return found.without(frozenset(r for r in raws if label(r) in blocked))

    return Recipients(tuple(label(r) for r in raws), remove)


@dataclass(frozen=True, slots=True)
class Both:
    """The recipients of several locators together (a field and an inline script);
    the request is edited only through the first, and only when the others found none."""

    parts: tuple[Locator, ...]

    def find(self, message: Message) -> Recipients | BodyError:
        results: list[Recipients] = []
        for locator in self.parts:
            found = locator.find(message)
            if isinstance(found, BodyError):
                return found
            results.append(found)
        values = tuple(v for r in results for v in r.values)
        if any(r.values for r in results[1:]):
            return Recipients(values)
        return Recipients(values, results[0].remover)


@dataclass(frozen=True, slots=True)
class ByBody:
    """A JSON locator for a body that opens like JSON, a form locator otherwise (APIs
    that take either, whatever the Content-Type says)."""

    json: Locator
    form: Locator

    def find(self, message: Message) -> Recipients | BodyError:
        opens = message.body.lstrip(b" \t\r\n\xef\xbb\xbf")[:1]
        return (self.json if opens in (b"{", b"[") else self.form).find(message)


@dataclass(frozen=True, slots=True)
class QueryOrBody:
    """A send that takes its parameters in the query (a GET API): the query's field, and
    the same field in any body (servlets' getParameter and PHP's $_REQUEST merge them).
    Rewritten only when the body names none."""

    name: str
    separator: str | None = None

    def find(self, message: Message) -> Recipients | BodyError:
        query = FormField(self.name, self.separator, in_query=True, optional=True)
        body = ByBody(JsonPath(self.name, self.separator, numbers=True, optional=True),
                      FormField(self.name, self.separator, optional=True))
        found = Both((query, body)).find(message) if message.body.strip() else \
            query.find(message)
        if isinstance(found, Recipients) and not found.values:
            return BodyError("missing_destination",
                             f"parameter '{self.name}' is in neither the query nor the body")
        return found

"""JSON bodies read every way a server could read them, and the deletions that edit them.

Every duplicate key is kept and keys match in any case (`load_json_all`, `members`), so
a reading that differs between servers is seen as inexact; `plan_deletions` and `edited`
cut array elements out of the body as sent (`jsonedit`), or say it cannot be exact.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace

from gatekeeper import jsonedit
from gatekeeper.providers.preset import BodyError, Message

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


def edited(message: Message, delete: Collection[JsonPosition],
           replace_values: dict[JsonPosition, object] | None = None) -> Message | None:
    """The message with a byte-level JSON edit applied, or None when it cannot be exact."""
    body = jsonedit.edit(message.body, delete, replace_values or {})
    return None if body is None else replace(message, body=body)

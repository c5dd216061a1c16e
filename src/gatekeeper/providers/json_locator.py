"""The JSON locator: recipients at a dotted path of a JSON body (`JsonPath`), removed by
cutting their bytes out of the body (json_docs.py)."""

from __future__ import annotations

from dataclasses import dataclass

from gatekeeper.providers.json_docs import (
    JsonPosition,
    edited,
    json_leaves,
    load_json_all,
    plan_deletions,
)
from gatekeeper.providers.preset import BodyError, Message, Recipients
from gatekeeper.providers.recipient_text import split_parts


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

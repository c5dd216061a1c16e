"""Byte-exact edits of a JSON body: delete or replace values by position, keep every other byte.

A proxy uses this to drop recipients from a request without re-encoding it: key order, spacing,
escapes and number spellings outside the edited values reach the upstream exactly as sent.

`edit` answers None, and never raises, when the edit cannot be made exactly: the body is not
UTF-8 JSON (an optional UTF-8 BOM is kept; NaN and Infinity count as invalid), a position does
not exist or is the root to delete, a key on the way to an edit is duplicated in its object,
a replacement overlaps another edit or has no UTF-8 JSON encoding, or the nesting is too deep.
Positions inside a deleted position are ignored, whether they exist or not.

A deleted item goes with one adjacent comma: the following one, or the preceding one for the
last item, plus the whitespace up to the neighbouring item, so the whitespace before a deleted
item ends up before the next kept item. A container whose items are all deleted becomes exactly
`[]` or `{}`, its inner whitespace dropped too. A replacement is written as compact
`json.dumps(value, ensure_ascii=False)` in place of the old value's bytes.

Only the containers on the way to an edit are walked here; all other values, and the items of
those containers that no edit needs, are skipped and validated in C (the stdlib's scanner, or
`re` for runs of simple array items), so the cost is linear in the size of the body.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Collection, Mapping
from types import MappingProxyType
from typing import TypeAlias

__all__ = ["Position", "edit"]

Position: TypeAlias = tuple[str | int, ...]
"""Object keys and array indices from the root, as ``json.loads(body)`` reads the document."""

_BOM = b"\xef\xbb\xbf"
_NO_REPLACEMENTS: Mapping[Position, object] = MappingProxyType({})
_WS = re.compile(r"[ \t\n\r]*")  # exactly the whitespace json.loads skips
# One call per separator: group 1 is set for a comma, unset for the closing bracket.
_AFTER_ITEM = re.compile(r"[ \t\n\r]*+(?:(,)[ \t\n\r]*+|\])")
_AFTER_MEMBER = re.compile(r"[ \t\n\r]*+(?:(,)[ \t\n\r]*+|\})")
_COLON = re.compile(r"[ \t\n\r]*+:[ \t\n\r]*+")
_Edit: TypeAlias = tuple[int, int, str]  # (start, end, new text) in the decoded body


class _Fail(Exception):
    """The edit cannot be made exactly; `edit` answers None."""


def _reject_constant(name: str) -> object:
    # json.loads accepts NaN and Infinity, but they are not JSON and other readers refuse them.
    raise _Fail(name)


# A pattern for "item, comma, whitespace" repeated 4**level times lets one C call skip a long
# stretch of an array. It knows scalars and containers of scalars; whatever it matches,
# json.loads accepts. Anything else (deeper nesting, integers longer than 64 digits, which
# json.loads may refuse, an invalid body) is left to the C scanner one item at a time.
_W = r"[ \t\n\r]*+"
_STRING = r'"(?:[^"\\\x00-\x1f]++|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*+"'
_SCALAR = (
    rf"(?:{_STRING}|-?+(?:0|[1-9][0-9]{{0,63}}+)(?:\.[0-9]++)?+(?:[eE][-+]?+[0-9]++)?+"
    r"|true|false|null)"
)
_MEMBER = rf"{_STRING}{_W}:{_W}{_SCALAR}{_W}"
_ITEM = (
    rf"(?:{_SCALAR}|\[{_W}(?:{_SCALAR}{_W}(?:,{_W}{_SCALAR}{_W})*+)?+\]"
    rf"|\{{{_W}(?:{_MEMBER}(?:,{_W}{_MEMBER})*+)?+\}})"
)
_TOP_LEVEL = 7  # 4**7 items per call is plenty; each level takes a few ms to compile, once


@functools.cache
def _items(level: int) -> re.Pattern[str]:
    return re.compile(rf"(?>{_ITEM}{_W},{_W}){{{4**level}}}")


# Typeshed lists neither, but both exist (in C when _json is built) on every CPython.
_skip: Callable[[str, int], tuple[object, int]] = json.JSONDecoder(
    parse_constant=_reject_constant
).scan_once  # type: ignore[attr-defined]
_scanstring: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


def _ws(s: str, pos: int) -> int:
    """Where the whitespace at `pos` ends."""
    match = _WS.match(s, pos)
    assert match is not None  # the pattern also matches nothing
    return match.end()


class _Node:
    """One position of the edit plan; `children` lead to edits further down."""

    __slots__ = ("children", "delete", "text")

    def __init__(self) -> None:
        self.children: dict[str | int, _Node] = {}
        self.delete = False
        self.text: str | None = None  # JSON encoding of the replacement


def edit(
    body: bytes,
    delete: Collection[Position] = (),
    replace: Mapping[Position, object] = _NO_REPLACEMENTS,
) -> bytes | None:
    """The body with the values at `delete` removed and those at `replace` replaced, or None when
    that cannot be done exactly."""
    if not isinstance(body, bytes):
        return None
    try:
        return _edit(body, delete, replace)
    except (_Fail, ValueError, TypeError, IndexError, StopIteration, RecursionError):
        # ValueError covers JSONDecodeError, UnicodeDecodeError and UnicodeEncodeError; the
        # C scanner raises StopIteration where no value starts, IndexError is a read past the
        # end, TypeError a caller passing something that is no collection of positions.
        return None


def _edit(body: bytes, delete: Collection[Position], replace: Mapping[Position, object]) -> bytes:
    root = _plan(delete, replace)
    # utf-8-sig drops one BOM, as json.loads does; strict decoding makes encode() restore every
    # untouched byte exactly.
    s = body.decode("utf-8-sig")
    edits: list[_Edit] = []
    start = _ws(s, 0)
    end = _value(s, start, root, edits)
    if root.text is not None:
        edits.append((start, end, root.text))
    if _ws(s, end) != len(s):
        raise _Fail("trailing data")
    if not edits:
        return body
    edits.sort()
    pieces: list[str] = []
    done = 0
    for cut_start, cut_end, text in edits:
        pieces.append(s[done:cut_start])
        pieces.append(text)
        done = cut_end
    pieces.append(s[done:])
    out = "".join(pieces).encode("utf-8")  # lone surrogates in a replacement fail here
    return _BOM + out if body.startswith(_BOM) else out


def _checked(position: object) -> Position:
    if not isinstance(position, tuple):
        raise _Fail("position is not a tuple")
    for part in position:
        # bool is an int subclass; a negative index would count from the end; neither is meant.
        if not (type(part) is str or (type(part) is int and part >= 0)):
            raise _Fail("bad position part")
    return position


def _plan(delete: Collection[Position], replace: Mapping[Position, object]) -> _Node:
    """The positions as a tree; deletions under a deleted ancestor are dropped, and any other
    overlap (a replacement at, above or below another edit) fails since its order is ambiguous."""
    root = _Node()
    # Shorter positions first, so an ancestor is marked deleted before its descendants arrive.
    for position in sorted(map(_checked, delete), key=len):
        if not position:
            raise _Fail("cannot delete the root")
        node = root
        for part in position:
            if node.delete:
                break
            node = node.children.setdefault(part, _Node())
        else:
            node.delete = True
    for position, value in replace.items():
        node = root
        for part in _checked(position):
            if node.delete or node.text is not None:
                raise _Fail("replacement inside another edit")
            node = node.children.setdefault(part, _Node())
        if node.delete or node.text is not None or node.children:
            raise _Fail("replacement overlaps another edit")
        node.text = _encode(value)
    return root


def _encode(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except Exception as exc:  # caller's objects may raise anything from their hooks
        raise _Fail("replacement is not JSON") from exc


def _value(s: str, start: int, node: _Node, edits: list[_Edit]) -> int:
    """Scan the value at `start`, record the edits below `node`, return the value's end."""
    if not node.children:
        end: int = _skip(s, start)[1]
        return end
    if s[start] == "[":
        return _array(s, start, node, edits)
    if s[start] == "{":
        return _object(s, start, node, edits)
    raise _Fail("position goes through a scalar")


def _child(s: str, start: int, child: _Node, edits: list[_Edit]) -> int:
    end = _value(s, start, child, edits)
    if child.text is not None:
        edits.append((start, end, child.text))
    return end


def _array(s: str, open_: int, node: _Node, edits: list[_Edit]) -> int:
    """Scan the array at `open_`, return its end."""
    if not all(type(key) is int for key in node.children):
        raise _Fail("key into an array")
    deleted = sorted(int(i) for i, child in node.children.items() if child.delete)
    # Only the spans next to a deletion are needed to place the cuts.
    wanted = {j for i in deleted for j in (i - 1, i, i + 1)}
    stops = sorted({*map(int, node.children), *wanted})  # items read one by one
    stop = 0
    spans: dict[int, tuple[int, int]] = {}
    count = 0
    pos = _ws(s, open_ + 1)
    if s[pos] != "]":
        while True:
            while stop < len(stops) and stops[stop] < count:
                stop += 1
            if stop == len(stops):
                # Past the last stop no item needs counting: the C scanner reads the rest as
                # an array of its own, faster than the patterns. A comma came before it, so it
                # may not be empty.
                if s[pos] == "]":
                    raise _Fail("trailing comma")
                rest, end = _skip("[" + s[pos:], 0)
                assert isinstance(rest, list)
                count += len(rest)
                pos += end - 2
                break
            if stops[stop] > count:
                skipped, pos = _run(s, pos, stops[stop] - count)
                count += skipped
            child = node.children.get(count)
            end = _skip(s, pos)[1] if child is None else _child(s, pos, child, edits)
            if count in wanted:
                spans[count] = (pos, end)
            count += 1
            after = _AFTER_ITEM.match(s, end)
            if after is None:
                raise _Fail("bad array")
            pos = after.end()
            if after.lastindex is None:
                pos -= 1
                break
    if max(map(int, node.children)) >= count:
        raise _Fail("no such index")
    _cut(spans, count, deleted, open_, pos, edits)
    return pos + 1


def _run(s: str, pos: int, limit: int) -> tuple[int, int]:
    """Skip up to `limit` array items, each followed by a comma, that `_items` knows; return how
    many and where the next item starts.

    The chunk size grows fourfold while chunks match, then shrinks on each miss, so a run of n
    items costs O(log n) calls and a little more than n items of scanning.
    """
    done = level = 0
    growing = True
    while done < limit:
        while 4**level > limit - done:
            level -= 1
        match = _items(level).match(s, pos)
        if match:
            pos = match.end()
            done += 4**level
            if growing and level < _TOP_LEVEL:
                level += 1
        elif level:
            growing = False
            level -= 1
        else:
            break
    return done, pos


def _object(s: str, open_: int, node: _Node, edits: list[_Edit]) -> int:
    """Scan the object at `open_`, return its end."""
    spans: list[tuple[int, int]] = []  # per member: key start, value end
    deleted: list[int] = []
    seen: set[str] = set()
    pos = _ws(s, open_ + 1)
    if s[pos] != "}":
        while True:
            if s[pos] != '"':
                raise _Fail("bad object")
            key, colon = _scanstring(s, pos + 1, True)
            colon_match = _COLON.match(s, colon)
            if colon_match is None:
                raise _Fail("bad object")
            value = colon_match.end()
            child = node.children.get(key)
            if child is None:
                end = _skip(s, value)[1]
            else:
                # Readers disagree on which duplicate counts, so no edit goes through one.
                if key in seen:
                    raise _Fail("duplicate key on the path")
                seen.add(key)
                if child.delete:
                    deleted.append(len(spans))
                end = _child(s, value, child, edits)
            spans.append((pos, end))
            after = _AFTER_MEMBER.match(s, end)
            if after is None:
                raise _Fail("bad object")
            pos = after.end()
            if after.lastindex is None:
                pos -= 1
                break
    if len(seen) != len(node.children):
        raise _Fail("no such key")
    _cut(spans, len(spans), deleted, open_, pos, edits)
    return pos + 1


def _cut(
    spans: Mapping[int, tuple[int, int]] | list[tuple[int, int]],
    count: int,
    deleted: list[int],
    open_: int,
    close: int,
    edits: list[_Edit],
) -> None:
    """Record the cuts removing the `deleted` (sorted) items of a container and one comma each.

    A run of deleted items is cut from its first item's start to the next kept item's start, so
    the whitespace before the run now leads that item; a run at the end is cut from the previous
    kept item's end to the run's end. With every item deleted the container becomes `[]`/`{}`.
    """
    if not deleted:
        return
    if len(deleted) == count:
        edits.append((open_ + 1, close, ""))
        return
    first = last = deleted[0]
    for index in [*deleted[1:], -1]:
        if index == last + 1:
            last = index
            continue
        if last + 1 < count:
            edits.append((spans[first][0], spans[last + 1][0], ""))
        else:
            edits.append((spans[first - 1][1], spans[last][1], ""))
        first = last = index

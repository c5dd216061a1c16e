"""Byte-exact JSON edits: deletions and replacements touch only their spans, else None."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.jsonedit import Position, edit

BOM = b"\xef\xbb\xbf"


# --- table tests ----------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "delete", "expected"), [
    (b"[1, 2, 3]", [(0,)], b"[2, 3]"),
    (b"[1, 2, 3]", [(1,)], b"[1, 3]"),
    (b"[1, 2, 3]", [(2,)], b"[1, 2]"),
    (b"[1, 2, 3]", [(0,), (1,), (2,)], b"[]"),
    (b"[ 1 ]", [(0,)], b"[]"),
    (b"[\n  1,\n  2\n]", [(0,), (1,)], b"[]"),
    (b"[0,1,2,3,4]", [(0,), (2,), (3,)], b"[1,4]"),
    (b"[0,1,2,3,4]", [(1,), (3,), (4,)], b"[0,2]"),
    (b"[\n  1,\n  2,\n  3\n]", [(0,)], b"[\n  2,\n  3\n]"),
    (b"[\n  1,\n  2,\n  3\n]", [(1,)], b"[\n  1,\n  3\n]"),
    (b"[\n  1,\n  2,\n  3\n]", [(2,)], b"[\n  1,\n  2\n]"),
    (b"[1 ,2 , 3]", [(1,)], b"[1 ,3]"),
    (b"\t[1,2]\r\n", [(1,)], b"\t[1]\r\n"),
    (b'{"a": 1, "b": 2, "c": 3}', [("b",)], b'{"a": 1, "c": 3}'),
    (b'{"a": 1, "b": 2, "c": 3}', [("c",)], b'{"a": 1, "b": 2}'),
    (b'{"a": 1, "b": 2}', [("a",), ("b",)], b"{}"),
    (b'{"to": ["x", "y"], "n": {"to": [1, 2]}}', [("n", "to", 0)],
     b'{"to": ["x", "y"], "n": {"to": [2]}}'),
    (b'{"m": [{"to": "a"}, {"to": "b"}]}', [("m", 0)], b'{"m": [{"to": "b"}]}'),
    (b'[[1, 2], [3]]', [(0,), (0, 1)], b"[[3]]"),
    (b'[[1, 2], [3]]', [(0, 9, "x"), (0,)], b"[[3]]"),
    (b'{"t\\u006f": [1, 2]}', [("to", 1)], b'{"t\\u006f": [1]}'),
    (b'{"a\\/b": 1, "x": 2}', [("a/b",)], b'{"x": 2}'),
    (b'[1e5, -0, 1.5E-3, 0]', [(1,)], b"[1e5, 1.5E-3, 0]"),
    (BOM + b'{"to": [1, 2]}', [("to", 0)], BOM + b'{"to": [2]}'),
    (b'{"a": 1, "a": 2, "b": [1, 2]}', [("b", 0)], b'{"a": 1, "a": 2, "b": [2]}'),
    (b'{"b": {"x": 1, "x": 2}, "b2": 0}', [("b2",)], b'{"b": {"x": 1, "x": 2}}'),
    (b'["\xc3\xa9", "\xf0\x9f\x98\x80", 3]', [(2,)], b'["\xc3\xa9", "\xf0\x9f\x98\x80"]'),
    (b"[1, 2]", [], b"[1, 2]"),
], ids=["first", "middle", "last", "all", "only", "all-indented", "0-2-3-of-5", "1-3-4-of-5",
        "indented-first", "indented-middle", "indented-last", "spaced-commas", "outer-ws",
        "member", "last-member", "all-members", "nested", "array-of-objects", "ancestor-wins",
        "ancestor-wins-over-missing",
        "escaped-key", "solidus-key", "numbers", "bom", "duplicates-off-path",
        "duplicates-in-deleted", "utf8", "nothing"])
def test_delete(body: bytes, delete: list[Position], expected: bytes) -> None:
    """Items go with one comma; every other byte stays; empty containers become []/{}."""
    assert edit(body, delete) == expected


@pytest.mark.parametrize(("body", "replace", "expected"), [
    (b'{"to": "a", "text": "hi"}', {("to",): "b"}, b'{"to": "b", "text": "hi"}'),
    (b'{"to": ["a", "b"]}', {("to", 1): "\u00e9\n"}, b'{"to": ["a", "\xc3\xa9\\n"]}'),
    (b'{"n": 1}', {("n",): {"x": [1, None]}}, b'{"n": {"x":[1,null]}}'),
    (b' [1] ', {(): [2, 3]}, b" [2,3] "),
    (BOM + b'["a"]', {(0,): 7}, BOM + b"[7]"),
    (b'{"a": 1, "b": [1, 2]}', {("a",): 0}, b'{"a": 0, "b": [1, 2]}'),
], ids=["string", "unicode", "object", "root", "bom", "next-to-other"])
def test_replace(body: bytes, replace: dict[Position, object], expected: bytes) -> None:
    """The new value's compact encoding, unescaped unicode, replaces the old value's bytes."""
    assert edit(body, (), replace) == expected


def test_delete_and_replace_together() -> None:
    """Deletions and replacements in one call are all applied."""
    body = b'{"to": ["a", "b", "c"], "count": 3}'
    assert edit(body, [("to", 1)], {("count",): 2}) == b'{"to": ["a", "c"], "count": 2}'


@pytest.mark.parametrize(("body", "delete", "replace"), [
    (b"[1,2]", [()], {}),
    (b"[1,2]", [(2,)], {}),
    (b'{"a":1}', [("b",)], {}),
    (b'{"a":1}', [(0,)], {}),
    (b"[1,2]", [("0",)], {}),
    (b"[1,2]", [(-1,)], {}),
    (b"[1,2]", [(True,)], {}),
    (b"[1,2]", [[0]], {}),
    (b"[1,2]", [(0, 0)], {}),
    (b'{"a":"xy"}', [("a", 0)], {}),
    (b'{"a":1,"a":2}', [("a",)], {}),
    (b'{"a":[1],"a":[2]}', [("a", 0)], {}),
    (b'{"a":{"b":1},"a\\u0000":0,"\\u0061":{"b":2}}', [("a", "b")], {}),
    (b"[1,2]", [(0,)], {(0,): 5}),
    (b"[[1,2]]", [(0,)], {(0, 1): 5}),
    (b"[[1,2]]", [(0, 1)], {(0,): 5}),
    (b"[[1,2]]", [], {(0,): 5, (0, 1): 6}),
    (b"[1]", [], {(0,): "\ud800"}),
    (b"[1]", [], {(0,): float("nan")}),
    (b"[1]", [], {(0,): object()}),
    (b"[1]", [], {(0,): {(1, 2): 3}}),
], ids=["root", "index-past-end", "missing-key", "index-into-object", "key-into-array",
        "negative-index", "bool-index", "list-position", "into-scalar", "into-string",
        "duplicate-member", "duplicate-on-path", "escaped-duplicate-on-path",
        "delete-and-replace", "replace-under-deleted", "delete-under-replaced",
        "nested-replacements", "lone-surrogate", "nan", "not-json", "tuple-key"])
def test_refused_edits(body: bytes, delete: list[Any], replace: dict[Position, object]) -> None:
    """Edits that cannot be made exactly, or are ambiguous, give None."""
    assert edit(body, delete, replace) is None


@pytest.mark.parametrize("body", [
    b"", b"   ", BOM, BOM + BOM + b"[1]", b"[1,2", b"[1,2]]", b"[1,2] x", b"[1,,2]", b"[1,2,]",
    b'{"a":1,}', b"{'a':1}", b'{"a" 1}', b"[01]", b"[1.]", b"[.5]", b"[+1]", b"[0x10]",
    b"[NaN]", b"[Infinity]", b"[-Infinity]", b"[tru]", b"[nul]", b'["\\x"]', b'["\\u12G4"]',
    b'["a\nb"]', b'["\x00"]', b"[1\x0b]", b"\xa0[1]", b"[\xff]", b'["\xed\xa0\x80"]',
    b'["\xc3"]', '[1, 2]'.encode("utf-16"), '[1, 2]'.encode("utf-16-le"),
    '[1, 2]'.encode("utf-32"), b"[" + b"1" * 5000 + b", 2]",
], ids=lambda body: repr(body[:12]))
def test_invalid_bodies(body: bytes) -> None:
    """Anything json.loads(body) refuses, or reads other than as UTF-8 JSON, gives None."""
    assert edit(body, [(1,)]) is None
    assert edit(body) is None


@pytest.mark.parametrize("item", [
    '"\x1f"', '"\x00"', '"\\x"', '"\\u12G4"', '"\\u12"', '"a', "01", "-01", "1.", ".5", "+1",
    "1e", "1e+", "-", "0x1", "tru", "nul", "True", "NaN", "Infinity", "-Infinity", "'a'",
    '{"a":1 "b":2}', '{, "a": 1}', '{"a": 1,}', '{"a" 1}', '{"a":}', "{1: 2}", '{"a"}',
    "[1 2]", "[,1]", "[1,]", "[1,,2]", "[", "]", '{"a": [1}', "[1}", "\u000b1",
])
def test_invalid_skipped_items(item: str) -> None:
    """Items skipped on the way to an edit are validated too, with the fast path's grammar."""
    body = f"[{item}, {item}, {item}, {item}, {item}, 0, 1]".encode()
    assert _loads(body) is INVALID
    assert edit(body, [(6,)]) is None


@pytest.mark.parametrize("item", [
    '"\\ud800"', '"\\/\\b\\f\\n\\r\\t\\"\\\\"', '"\\u00e9\\u00E9\x7f\u00e9"', "1E+5",
    "-0.0e-0", "[]", "{}", "[ 1 , \"a\" ]", '{"a" : [1], "b": {}}', '{"a": 1, "a": 2}',
    "9" * 100, "1" * 70 + ".5", "[[[[1]]]]", "true", "false", "null",
])
def test_valid_skipped_items(item: str) -> None:
    """Whatever JSON an item holds, skipping it lands exactly on the next one."""
    body = f"[{item}, {item},\n{item} ,{item}, {item}, 0, 1]".encode()
    assert edit(body, [(6,)]) == body[: -len(", 1]")] + b"]"
    assert edit(body, [(5,)]) == body[: -len("0, 1]")] + b"1]"


@pytest.mark.parametrize(("body", "position"), [
    (b'{"a": 1, "b": 2]', "a"), (b'{"a": 1, b": 2}', "a"), (b'{"a": 1 "b": 2}', "a"),
    (b'{"a": 1,, "b": 2}', "a"), (b'{"a" 1, "b": 2}', "b"), (b'{"a":: 1, "b": 2}', "b"),
    (b'{"a": 1, "b": 2,}', "a"), (b'{,"a": 1, "b": 2}', "a"), (b'{"a": 1, "b": }', "a"),
    (b'["a", "b"}', 0), (b"[1 2, 3]", 2), (b"[1,, 2]", 0), (b"[1, 2,]", 0), (b"[,1, 2]", 1),
    (b"[1, 2", 0), (b'{"a": 1', "a"),
])
def test_invalid_containers_on_the_path(body: bytes, position: str | int) -> None:
    """The container scanned item by item is validated as strictly as the skipped ones."""
    assert _loads(body) is INVALID
    assert edit(body, [(position,)]) is None


def test_long_numbers_are_json_loads_numbers() -> None:
    """Integers past the fast path's 64 digits are still read, up to json.loads' own limit."""
    body = b"[" + b"9" * 100 + b", " + b"1" * 70 + b".5e-3, 2]"
    assert edit(body, [(2,)]) == b"[" + b"9" * 100 + b", " + b"1" * 70 + b".5e-3]"


def test_non_bytes_body() -> None:
    """A str or other non-bytes body gives None rather than an exception."""
    assert edit("[1, 2]", [(0,)]) is None  # type: ignore[arg-type]
    assert edit(b"[1, 2]", None) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    b"[" * 100_000,
    b"[0, " + b"[" * 50_000 + b"]" * 50_000 + b"]",
], ids=["arrays", "objects", "unclosed", "deep-item"])
def test_deep_nesting_is_none(body: bytes) -> None:
    """Nesting past the recursion limit, on or off the edit path, gives None, never raises."""
    assert edit(body) is None
    assert edit(body, [(0,)]) is None
    assert edit(body, [(0,) * 5000]) is None
    assert edit(body, [("a",) * 5000]) is None


def test_moderate_nesting_is_edited() -> None:
    """A path a hundred levels deep still works."""
    body = b"[" * 100 + b"1, 2" + b"]" * 100
    assert edit(body, [(0,) * 99 + (1,)]) == b"[" * 100 + b"1" + b"]" * 100


@pytest.mark.parametrize("items", [1, 5, 17, 300, 5000])
def test_long_arrays(items: int) -> None:
    """Long stretches skipped in chunks, with nested items among them, land on the right items."""
    values: list[Any] = [f"+1555{i:07d}" if i % 97 else {"to": [i, {"x": i}]} for i in range(items)]
    body = json.dumps({"to": values}, indent=1).encode()
    rng = random.Random(items)
    for _ in range(20):
        picked = set(rng.sample(range(items), rng.randint(1, min(items, 5))))
        result = edit(body, [("to", i) for i in picked])
        assert result is not None
        kept = [v for i, v in enumerate(values) if i not in picked]
        assert json.loads(result) == {"to": kept}
        assert result == json.dumps({"to": kept}, indent=1).encode()


def test_one_mebibyte_is_fast() -> None:
    """Editing a 1 MiB body of 65,000 recipients takes milliseconds (bound loose for CI)."""
    recipients = [f"+1555{i:07d}" for i in range(65_000)]
    body = json.dumps({"from": "x", "to": recipients, "text": "hi"}).encode()
    delete = [("to", 0), ("to", 30_000), ("to", 64_999)]
    edit(body, delete)  # compiles the skip patterns once
    best = min(_timed(lambda: edit(body, delete)) for _ in range(5))
    assert best < 0.25
    assert len(edit(body, delete) or b"") == len(body) - 3 * len('"+15550000000", ')


def _timed(work: Any) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


# --- property tests -------------------------------------------------------------------------

SCALARS = (st.none() | st.booleans() | st.integers()
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8))
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=12) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=6),
    max_leaves=40,
)
SHORT_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "\b": "b", "\f": "f", "\n": "n", "\r": "r",
                 "\t": "t"}


@dataclass
class Layout:
    """Where the renderer put one value: its span and, for a container, its items' spans
    (from the key for an object member) and brackets."""

    start: int = 0
    end: int = 0
    open: int = 0
    close: int = 0
    items: list[tuple[int, int]] = field(default_factory=list)
    keys: list[Any] = field(default_factory=list)


class Renderer:
    """Serialises a document with random whitespace and escapes, recording every span."""

    def __init__(self, rng: random.Random, ensure_ascii: bool) -> None:
        self.rng, self.ensure_ascii = rng, ensure_ascii
        self.parts: list[str] = []
        self.size = 0
        self.layouts: dict[Position, Layout] = {}

    def put(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)

    def ws(self) -> None:
        if self.rng.random() < 0.4:
            self.put("".join(self.rng.choice(" \t\n\r") for _ in range(self.rng.randint(1, 3))))

    def string(self, value: str) -> None:
        out = ['"']
        for char in value:
            code = ord(char)
            must = char in '"\\' or code < 0x20 or (self.ensure_ascii and code > 0x7F)
            roll = self.rng.random()
            if not must and roll < 0.8:
                out.append(char)
            elif char in SHORT_ESCAPES and roll < 0.9:
                out.append("\\" + SHORT_ESCAPES[char])
            else:
                units = [code] if code <= 0xFFFF else [
                    0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)]
                for unit in units:
                    hex_ = f"{unit:04x}"
                    out.append("\\u" + (hex_.upper() if self.rng.random() < 0.5 else hex_))
        self.put("".join(out) + '"')

    def value(self, doc: Any, position: Position) -> None:
        layout = self.layouts[position] = Layout(start=self.size)
        if isinstance(doc, (list, dict)):
            layout.open = self.size
            self.put("[" if isinstance(doc, list) else "{")
            self.ws()
            items = list(enumerate(doc)) if isinstance(doc, list) else list(doc.items())
            for index, (key, item) in enumerate(items):
                if index:
                    self.ws()
                    self.put(",")
                    self.ws()
                start = self.size
                if isinstance(doc, dict):
                    self.string(key)
                    self.ws()
                    self.put(":")
                    self.ws()
                self.value(item, (*position, key))
                layout.items.append((start, self.size))
                layout.keys.append(key)
            self.ws()
            layout.close = self.size
            self.put("]" if isinstance(doc, list) else "}")
        elif isinstance(doc, str):
            self.string(doc)
        elif isinstance(doc, float):
            text = repr(doc)
            self.put(text.replace("e", "E") if self.rng.random() < 0.5 else text)
        else:
            self.put(json.dumps(doc))
        layout.end = self.size


def related(a: Position, b: Position) -> bool:
    """One position is the other or lies inside it."""
    return a[: len(b)] == b or b[: len(a)] == a


def applied(doc: Any, position: Position, delete: set[Position],
            replace: dict[Position, Any]) -> Any:
    """The document with the edits made on the Python objects."""
    if position in replace:
        return replace[position]
    if isinstance(doc, list):
        return [applied(v, (*position, i), delete, replace) for i, v in enumerate(doc)
                if (*position, i) not in delete]
    if isinstance(doc, dict):
        return {k: applied(v, (*position, k), delete, replace) for k, v in doc.items()
                if (*position, k) not in delete}
    return doc


def expected_text(text: str, layouts: dict[Position, Layout], delete: set[Position],
                  replace: dict[Position, Any]) -> str:
    """The specification at byte level: `text` with exactly these spans cut or replaced.

    A replaced value's span gets its compact encoding. In a container whose items (member:
    key to value) are all deleted, everything between the brackets is cut. Otherwise each
    run of consecutive deleted items is cut from its first item's start to the next item's
    start or, for a run at the end, from the previous item's end to the run's last item's end.
    """
    spans = [(layouts[p].start, layouts[p].end,
              json.dumps(v, ensure_ascii=False, separators=(",", ":")))
             for p, v in replace.items()]
    deleted = {p for p in delete if not any(p[:n] in delete for n in range(1, len(p)))}
    for parent in {p[:-1] for p in deleted}:
        layout = layouts[parent]
        gone = [i for i, key in enumerate(layout.keys) if (*parent, key) in deleted]
        count = len(layout.items)
        if len(gone) == count:
            spans.append((layout.open + 1, layout.close, ""))
            continue
        for i in gone:
            if i - 1 in gone:
                continue  # inside a run
            last = i
            while last + 1 in gone:
                last += 1
            if last + 1 < count:
                spans.append((layout.items[i][0], layout.items[last + 1][0], ""))
            else:
                spans.append((layout.items[i - 1][1], layout.items[last][1], ""))
    out, done = [], 0
    for start, end, new in sorted(spans):
        assert start >= done  # the spans never overlap
        out += [text[done:start], new]
        done = end
    return "".join(out) + text[done:]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=DOCS, data=st.data(), seed=st.integers(0, 2**32), ensure_ascii=st.booleans(),
       bom=st.booleans())
def test_edits_cut_exactly_their_spans(doc: Any, data: st.DataObject, seed: int,
                                       ensure_ascii: bool, bom: bool) -> None:
    """For a randomly formatted document and random edits, the result is the original with
    exactly the specified spans cut or replaced, and parses to the edited Python document."""
    renderer = Renderer(random.Random(seed), ensure_ascii)
    renderer.ws()
    renderer.value(doc, ())
    renderer.ws()
    text = "".join(renderer.parts)
    body = (BOM if bom else b"") + text.encode()
    positions = [p for p in renderer.layouts if p]
    delete: set[Position] = set()
    replace: dict[Position, Any] = {}
    if positions:
        delete = set(data.draw(st.lists(st.sampled_from(positions), max_size=6)))
        for p in data.draw(st.lists(st.sampled_from([*positions, ()]), max_size=3)):
            if not any(related(p, other) for other in [*delete, *replace]):
                replace[p] = data.draw(DOCS)
    result = edit(body, delete, replace)
    expected = expected_text(text, renderer.layouts, delete, replace)
    assert result == (BOM if bom else b"") + expected.encode()
    assert json.loads(result) == applied(doc, (), delete, replace)


@settings(max_examples=200, deadline=None)
@given(doc=DOCS, data=st.data(), indent=st.sampled_from([None, 0, 2, "\t"]),
       ensure_ascii=st.booleans(), sort_keys=st.booleans())
def test_json_dumps_formats(doc: Any, data: st.DataObject, indent: int | str | None,
                            ensure_ascii: bool, sort_keys: bool) -> None:
    """Whatever json.dumps writes is edited to the same document as the Python edit."""
    body = json.dumps(doc, indent=indent, ensure_ascii=ensure_ascii, sort_keys=sort_keys).encode()
    positions = list(_positions(doc, ()))
    delete = set(data.draw(st.lists(st.sampled_from(positions), max_size=4)) if positions else [])
    result = edit(body, delete)
    assert result is not None
    assert json.loads(result) == applied(doc, (), delete, {})
    if not delete:
        assert result == body


def _positions(doc: Any, position: Position) -> Any:
    """Every position inside `doc`, which sits at `position`."""
    if not isinstance(doc, (list, dict)):
        return
    for key, value in doc.items() if isinstance(doc, dict) else enumerate(doc):
        yield (*position, key)
        yield from _positions(value, (*position, key))


FRAGMENT_ALPHABET = '"\\/ubfnrt0123456789aAeE+-.,:[]{} \t\n\rxl\u00e9\x00\x1f'
TOKENS = ['"', "\\", "u", "0", "1", "9", "a", "F", "G", ",", ":", "[", "]", "{", "}", " ", "e",
          "E", "-", "+", ".", "\x1f", "\x7f", "true", "null", "fals", '"a"', '"\\u00e9"', '\\"']
FLAT = SCALARS | st.lists(SCALARS, max_size=4) | st.dictionaries(st.text(max_size=3), SCALARS,
                                                                 max_size=4)


def sloppy(doc: Any, rng: random.Random) -> str:
    """A flat document rendered with occasional mistakes: a token inserted into or replacing
    part of a scalar, separators dropped, doubled or added, to probe the validation."""

    def scalar(value: Any) -> str:
        text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
        if rng.random() < 0.2:
            at = rng.randrange(len(text) + 1)
            text = text[:at] + rng.choice(TOKENS) + text[at + rng.randint(0, 1):]
        return text

    def sep(char: str) -> str:
        return rng.choice(["", char * 2, f" {char} {char}", "]"]) if rng.random() < 0.05 else char

    if isinstance(doc, list):
        items = [scalar(v) for v in doc]
    elif isinstance(doc, dict):
        items = [scalar(k) + sep(":") + " " + scalar(v) for k, v in doc.items()]
    else:
        return scalar(doc)
    inner = "".join(sep(",") + " " + item if i else item for i, item in enumerate(items))
    if rng.random() < 0.1:
        inner = rng.choice([",", ""]) + inner + rng.choice([",", ""])
    return ("[%s]" if isinstance(doc, list) else "{%s}") % inner


FRAGMENTS = (
    st.text(FRAGMENT_ALPHABET, max_size=30)
    | st.lists(st.sampled_from(TOKENS), max_size=12).map("".join)
    | st.builds(sloppy, FLAT, st.randoms(use_true_random=False))
)


@settings(max_examples=1500, deadline=None)
@given(fragment=FRAGMENTS, items=st.integers(1, 20))
def test_accepts_exactly_what_json_loads_accepts(fragment: str, items: int) -> None:
    """Items skipped on the way to an edit are validated as json.loads would (NaN aside):
    the edit succeeds exactly when json.loads reads the body, and never raises."""
    head = "[" + ", ".join([fragment] * items) + ", 0"
    body = (head + ", 1]").encode()
    parsed = _loads(body)
    if parsed is INVALID:
        # Read as one item each, the fragments are all skipped before item `items`.
        assert edit(body, [(items + 1,)]) is None
    else:
        assert edit(body, [(len(parsed) - 1,)]) == (head + "]").encode()


@settings(max_examples=800, deadline=None)
@given(doc=st.lists(SCALARS, min_size=1, max_size=5)
       | st.dictionaries(st.text(max_size=3), SCALARS, min_size=1, max_size=5),
       rng=st.randoms(use_true_random=False), pick=st.integers(0, 4))
def test_containers_on_the_path_are_validated(doc: Any, rng: random.Random, pick: int) -> None:
    """An array or object on the edit path, scanned item by item, is read as json.loads reads
    it: sloppy ones give None, and the others the expected edit."""
    body = sloppy(doc, rng).encode()
    key = list(enumerate(doc) if isinstance(doc, list) else doc)[pick % len(doc)]
    position = (key[0],) if isinstance(doc, list) else (key,)
    try:
        pairs = json.loads(body, object_pairs_hook=lambda pairs: pairs, parse_constant=_refuse)
    except ValueError:
        assert edit(body, [position]) is None
        return
    if isinstance(doc, dict) and [k for k, _ in pairs].count(position[0]) != 1:
        assert edit(body, [position]) is None
        return
    parsed = json.loads(body)
    result = edit(body, [position])
    if isinstance(parsed, list) and position[0] >= len(parsed):
        assert result is None
    else:
        assert result is not None
        assert json.loads(result) == applied(parsed, (), {position}, {})


INVALID = object()


def _loads(body: bytes) -> Any:
    """json.loads(body), but INVALID where it raises or meets NaN or Infinity."""
    try:
        return json.loads(body, parse_constant=_refuse)
    except ValueError:
        return INVALID


def _refuse(name: str) -> None:
    raise ValueError(name)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=40) | FRAGMENTS.map(lambda f: f.encode()),
       delete=st.lists(st.lists(st.integers(0, 3) | st.text(max_size=2), max_size=3)
                       .map(tuple), max_size=3))
def test_never_raises(body: bytes, delete: list[Position]) -> None:
    """Arbitrary bytes and positions give bytes that json.loads reads, or None."""
    result = edit(body, delete)
    if result is not None:
        json.loads(result)

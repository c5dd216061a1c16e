"""Mutations of a built send: path spellings, field duplicates and case variants, the
query, method changes, content-type mismatches, and headers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.bodies import _UNRESERVED, Form, JObj, Json
from tests.fuzz.specs import TEXT, Spec, _form
from tests.fuzz.spellings import dest, rare

_REFUSED_INSERTS = ("/./", "/../", "/%2e/", "/%2E%2e/", ";a=b", "%2F", "%5C", "%25", "%3F",
                    "%23", "%00", "%20", '"', "<", "^", "`", "{", "|", "\\")
_CASE_STYLES = ("keep", "keep", "keep", "upper", "lower", "swap", "random")


def _recase(draw: st.DrawFn, text: str) -> str:
    style = draw(st.sampled_from(_CASE_STYLES))
    if style == "upper":
        return text.upper()
    if style == "lower":
        return text.lower()
    if style == "swap":
        return text.swapcase()
    if style == "random":
        flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
        return "".join(c.swapcase() if f else c for c, f in zip(text, flips, strict=True))
    return text


def _pct_unreserved(draw: st.DrawFn, segment: str) -> str:
    if not segment or not rare(draw, 5):
        return segment
    i = draw(st.integers(0, len(segment) - 1))
    if segment[i] not in _UNRESERVED:
        return segment
    code = f"%{ord(segment[i]):02X}"
    return segment[:i] + (code if draw(st.booleans()) else code.lower()) + segment[i + 1:]


@st.composite
def path_spelling(draw: st.DrawFn, spec: Spec) -> tuple[str, bool, list[str]]:
    """(raw path below the mount, refused?, notes): case, slashes, suffix, escapes."""
    notes: list[str] = []
    segs = [_pct_unreserved(draw, _recase(draw, s)) for s in spec.segments]
    if spec.ext:
        suffix = draw(st.sampled_from(("", ".json", ".xml", ".JSON", ".csv", spec.suffix)))
        segs[-1] += suffix
    elif spec.routed and spec.last_literal and spec.method not in ("GET", "HEAD") and \
            rare(draw, 21):
        # (A GET there would be a read: passed through unchecked, as documented.)
        segs[-1] += ".json"
        spec.deroute("suffix-deroutes")
    joins = [draw(st.sampled_from(("/", "/", "/", "//"))) for _ in segs]
    path = "".join(j + s for j, s in zip(joins, segs, strict=True))
    if spec.trailing_slash or rare(draw, 6):
        path += "/" * draw(st.integers(1, 2))
    refused = False
    if rare(draw, 13):
        insert = draw(st.sampled_from(_REFUSED_INSERTS))
        at = draw(st.integers(1, max(1, len(path) - 1)))
        if insert in ("/./", "/../", "/%2e/", "/%2E%2e/"):
            cut = path.rfind("/", 0, at)
            path = path[:max(cut, 0)] + insert + path[max(cut, 0) + 1:]
        else:
            path = path[:at] + insert + path[at:]
        refused = True
        notes.append(f"refused-path:{insert}")
    return path, refused, notes


def _variant_name(draw: st.DrawFn, name: str) -> str:
    return draw(st.sampled_from((name.upper(), name.lower(), name.swapcase(), name + "[]",
                                 name + "[0]", name + "[x]", " " + name, name.title())))


@st.composite
def mutate(draw: st.DrawFn, spec: Spec) -> Spec:
    """Field-level mutations: duplicates, case variants, the query, encodings."""
    info = spec.info
    for _ in range(draw(st.integers(0, 2))):
        choice = draw(st.sampled_from(("dup", "case", "query_copy", "query_move", "raw_plus",
                                       "json_dup", "json_case", "semicolon", "none",
                                       "body_for_query", "mislabel")))
        body = spec.body
        if choice == "body_for_query" and body is None and spec.query and \
                spec.recipient_names and spec.method != "HEAD":
            # A query-string send that also carries a body naming recipients.
            extra = draw(dest(info))
            spec.dests.append(extra)
            name = spec.recipient_names[0]
            if draw(st.booleans()):
                spec.body = _form([(name, extra.text), ("text", TEXT)])
                spec.content_type = "application/x-www-form-urlencoded"
            else:
                spec.body = Json(JObj([(name, extra.text), ("text", TEXT)]))
                spec.content_type = "application/json"
            if spec.method == "GET" and draw(st.booleans()):
                spec.method = "POST"
            spec.notes.append("body-for-query")
            continue
        if choice == "mislabel" and isinstance(body, Form | Json) and spec.recipient_names:
            # A recipient in the query, and the body labelled as the other format.
            extra = draw(dest(info))
            spec.dests.append(extra)
            spec.query.append((spec.recipient_names[0], extra.text))
            spec.content_type = "application/x-www-form-urlencoded" if isinstance(body, Json) \
                else "application/json"
            spec.notes.append("mislabelled-body+query")
            continue
        if choice in ("dup", "case", "semicolon", "raw_plus") and isinstance(body, Form):
            names = [i for i, (k, _) in enumerate(body.pairs) if k in spec.recipient_names]
            if not names:
                continue
            i = draw(st.sampled_from(names))
            name = body.pairs[i][0]
            if choice == "dup":
                extra = draw(dest(info))
                spec.dests.append(extra)
                new_name = name if draw(st.booleans()) else _variant_name(draw, name)
                at = draw(st.integers(0, len(body.pairs)))
                body.pairs.insert(at, (new_name, extra.text))
            elif choice == "case":
                body.pairs[i] = (_variant_name(draw, name), body.pairs[i][1])
            elif choice == "raw_plus":
                # `+` read as a space: bare digits, which are international only on msisdn
                # presets; and only a leading `+` (`phone-context= 1` is another number).
                if not info.msisdn or any("+" in v.strip()[1:] for _, v in body.pairs):
                    continue
                spec.plus_raw = True
            else:
                body.pairs.insert(i, (";" + name, "x"))
            spec.notes.append("form-" + choice)
        elif choice in ("json_dup", "json_case") and isinstance(body, Json):
            holders = list(_objects_with(body.value, spec.recipient_names))
            if not holders:
                continue
            obj, i = draw(st.sampled_from(holders))
            key = obj[i][0]
            if choice == "json_dup":
                extra = draw(dest(info))
                spec.dests.append(extra)
                value = extra.text if not isinstance(obj[i][1], list) else [extra.text]
                obj.insert(draw(st.integers(0, len(obj))),
                           (key if draw(st.booleans()) else key.upper(), value))
            else:
                obj[i] = (draw(st.sampled_from((key.upper(), key.title(), key.swapcase()))),
                          obj[i][1])
            spec.notes.append(choice)
        elif choice in ("query_copy", "query_move") and spec.recipient_names:
            extra = draw(dest(info))
            spec.dests.append(extra)
            name = spec.recipient_names[0]
            if choice == "query_move" and isinstance(body, Form) and spec.query_ok:
                gone = {v for k, v in body.pairs if k == name}
                body.pairs = [p for p in body.pairs if p[0] != name]
                spec.dests = [d for d in spec.dests if d.text not in gone]
            spec.query.append((name, extra.text))
            spec.notes.append(choice)
    return spec


# Keys naming the caller: a number under one is no destination (a blocked caller id
# must not stop a send), so mutations never put blocked numbers there.
CALLER_KEYS = frozenset(("from", "source", "originator", "src", "sender", "callerid", "cli"))


def _objects_with(value: Any, names: Iterable[str]) -> Iterable[tuple[JObj, int]]:
    """(object, index) of each recipient key in a JSON value, outside caller subtrees."""
    wanted = set(names)
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, JObj):
            for i, (k, v) in enumerate(node):
                if k in wanted:
                    yield node, i
                if k.lower() not in CALLER_KEYS:
                    stack.append(v)
        elif isinstance(node, list):
            stack.extend(node)


_CT_SWAPS = (None, "application/x-www-form-urlencoded", "application/json", "text/plain",
             "application/json; charset=utf-8", "application/x-www-form-urlencoded; charset=UTF-8",
             "APPLICATION/JSON", "application/json;charset=\"utf-8\"", "multipart/form-data")


@st.composite
def method_and_type(draw: st.DrawFn, spec: Spec) -> Spec:
    """Method changes (PUT/PATCH for a POST send; GET for the sends that take it) and
    content-type mismatches."""
    roll = draw(st.sampled_from(("keep",) * 6 + ("alt", "alt", "other", "override")))
    if spec.method in ("POST", "PUT", "PATCH") and roll == "alt" and spec.alt_methods:
        spec.method = draw(st.sampled_from(spec.alt_methods))
        spec.notes.append("method-" + spec.method)
    elif spec.method == "POST" and roll == "other" and spec.info.preset != "messagebird" \
            and spec.body is not None:
        # Another method with a body: no longer the send route, a scanned write.
        # (MessageBird reads GET and DELETE on its send paths as reads unless the query
        # says `_method=POST`: documented, so not generated.)
        spec.method = draw(st.sampled_from(("DELETE", "GET", "OPTIONS")))
        spec.deroute("method-" + spec.method + "-with-body")
    if spec.info.preset == "messagebird" and spec.takes_get and spec.routed and \
            roll == "override":
        # MessageBird's `_method=POST` override: the same send by GET or DELETE.
        spec.method = draw(st.sampled_from(("GET", "DELETE")))
        spec.query.insert(0, ("_method", draw(st.sampled_from(("POST", "post", " Post")))))
        spec.notes.append("override-" + spec.method)
    if rare(draw, 6):
        spec.content_type = draw(st.sampled_from(_CT_SWAPS))
        spec.notes.append(f"content-type:{spec.content_type}")
    return spec


_SCOPE_VALUES = ("tenant:acme", " tenant:acme , global", "global", "tenant:other",
                 "tenant:acme,tenant:acme", "")


@st.composite
def headers_for(draw: st.DrawFn, spec: Spec) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    auth = {"twilio": "Basic QUNmZWVkOnRva2Vu", "plivo": "Basic TUFmZWVkOnRva2Vu",
            "infobip": "App feedfacekey", "messagebird": "AccessKey feedfacekey"}
    out.append(("Authorization", auth.get(spec.info.preset, "Bearer feedfacetoken")))
    if spec.content_type is not None:
        out.append(("Content-Type", spec.content_type))
    roll = draw(st.sampled_from(("none",) * 7 + ("one", "one", "two")))
    if roll != "none":
        name = draw(st.sampled_from(("X-Gatekeeper-Scope", "x-gatekeeper-scope")))
        out.append((name, draw(st.sampled_from(_SCOPE_VALUES))))
        if roll == "two":
            out.append(("X-Gatekeeper-Scope", draw(st.sampled_from(_SCOPE_VALUES))))
    if rare(draw, 16):
        out.append(("X-HTTP-Method-Override", draw(st.sampled_from((spec.method, "GET",
                                                                    "POST")))))
    if rare(draw, 4):
        out.append(("X-Request-Id", draw(st.sampled_from(("fuzz-req-1", "bad id\u00e9",
                                                          "x" * 200)))))
    return out

"""The unknown-endpoint builder: a write to a path no route describes, a blocked number
somewhere in it (JSON at any depth, forms, JSON in a form field, XML, multipart, text,
the query)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.bodies import Json, Text, dump_json, jobj, xml_attr, xml_escape
from tests.fuzz.lists import MountInfo
from tests.fuzz.specs import TEXT, Spec, _dests, _form
from tests.fuzz.spellings import Dest, as_json_value, dest, rare

_SEGMENT_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_~"
_KEYS = ("to", "phone", "msisdn", "number", "contact", "value", "data", "x", "Recipient",
         "target", "dst", "who", "payload", "items", "meta")


@st.composite
def _nested(draw: st.DrawFn, leaf: Any, depth: int) -> Any:
    """`leaf` placed `depth` levels down a random JSON structure with filler beside it."""
    value = leaf
    for _ in range(depth):
        key = draw(st.sampled_from(_KEYS))
        filler = draw(st.sampled_from(("hello", "a-b", True, None, "n/a")))
        if draw(st.booleans()):
            value = jobj(**{key: value, "note": filler})
        else:
            value = [filler, value] if draw(st.booleans()) else [value]
    return value


def b_unknown(draw: st.DrawFn, info: MountInfo) -> Spec:
    """A write to a path no route describes, a blocked number somewhere in it."""
    d = draw(dest(info, "scan"))
    extra: list[Dest] = []
    if rare(draw, 4):
        # Several numbers in one value, joined the ways gateways join them.
        extra = _dests(draw, info, "scan", 1, 2)
        joiner = draw(st.sampled_from((",", "<", ";", ", ")))
        parts = [d, *extra]
        order = draw(st.permutations(parts))
        # (A NUL would end the whole joined value for a C reader: cut each part there.)
        d = Dest(d.num, "joined", joiner.join(x.text.split("\x00", 1)[0] for x in order))
    first = "x-" + draw(st.text(_SEGMENT_CHARS, min_size=1, max_size=8))
    more = draw(st.lists(st.text(_SEGMENT_CHARS + "0123456789", min_size=1, max_size=8),
                         max_size=3))
    segs = [first, *more]
    kind = draw(st.sampled_from(("json", "json", "form", "form_json", "xml", "multipart",
                                 "text", "query")))
    depth = draw(st.integers(0, 4))
    key = draw(st.sampled_from(_KEYS))
    spec = Spec(info, draw(st.sampled_from(("POST", "POST", "PUT", "PATCH", "DELETE"))), segs,
                None, None, None, [d, *extra], routed=False, last_literal=True,
                national_scan=info.preset == "iletimerkezi")
    if kind == "json":
        spec.body = Json(jobj(**{key: draw(_nested(as_json_value(draw, d, ints=True), depth)),
                                 "text": TEXT}))
        spec.content_type = draw(st.sampled_from(("application/json", None,
                                                  "application/vnd.api+json")))
    elif kind in ("form", "form_json"):
        value = d.text
        if kind == "form_json":
            value = dump_json(draw, jobj(**{key: draw(_nested(d.text, depth))}))
        spec.body = _form([("note", TEXT), (key, value)])
        spec.content_type = draw(st.sampled_from(("application/x-www-form-urlencoded", None)))
    elif kind == "xml":
        inner = xml_escape(d.text)
        for _ in range(depth):
            tag = draw(st.sampled_from(("item", "to", "data", "n")))
            inner = f"<{tag}>{inner}</{tag}>"
        if draw(st.booleans()):
            body = f"<req><text>{TEXT}</text><d v={xml_attr(d.text)}/></req>"
        else:
            body = f"<req><text>{TEXT}</text>{inner}</req>"
        spec.body = Text(body)
        spec.content_type = draw(st.sampled_from(("application/xml", "text/xml", None)))
    elif kind == "multipart":
        part = d.text if draw(st.booleans()) else json.dumps({key: d.text})
        boundary = "fuzzbound"
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n{TEXT}\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{part}\r\n'
                f"--{boundary}--\r\n")
        spec.body = Text(body)
        spec.content_type = f"multipart/form-data; boundary={boundary}"
    elif kind == "text":
        spec.body = Text(f"{TEXT}\n{d.text}\n")
        spec.content_type = draw(st.sampled_from(("text/plain", None)))
    else:
        spec.query = [(key, d.text)]
        spec.body = Json(jobj(text=TEXT))
        spec.content_type = "application/json"
    spec.notes.append(f"unknown:{kind}@{depth}")
    return spec

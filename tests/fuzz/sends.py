"""Sends: a builder (by preset, or the unknown-endpoint one), then mutations, then the
request written out (body encodings, content codings, wire spellings)."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence

from hypothesis import strategies as st

from tests.fuzz.bodies import Form, Json, dump_json, encode_form
from tests.fuzz.builders_iletimerkezi import ILETIMERKEZI, PRELUDE
from tests.fuzz.builders_infobip import INFOBIP, MESSAGEBIRD
from tests.fuzz.builders_telnyx import SINCH, TELNYX
from tests.fuzz.builders_twilio import GENERIC, TWILIO
from tests.fuzz.builders_unknown import b_unknown
from tests.fuzz.builders_vonage import PLIVO, VONAGE
from tests.fuzz.checker import _json_strings
from tests.fuzz.lists import MountInfo
from tests.fuzz.mutations import headers_for, method_and_type, mutate, path_spelling
from tests.fuzz.specs import Builder, Send, Spec
from tests.fuzz.spellings import rare

BUILDERS: dict[str, tuple[Builder, ...]] = {
    "twilio": TWILIO, "vonage": VONAGE, "plivo": PLIVO, "telnyx": TELNYX, "sinch": SINCH,
    "infobip": INFOBIP, "messagebird": MESSAGEBIRD, "iletimerkezi": ILETIMERKEZI,
    "prelude": PRELUDE, "generic": GENERIC,
}


def joined_values(spec: Spec) -> bool:
    """True when one value of the request holds several destinations (`a<b`, `a,b`)."""
    if any(d.kind == "joined" for d in spec.dests):
        return True
    texts = {d.text for d in spec.dests if d.text}
    values: list[str] = [v for _, v in spec.query]
    if isinstance(spec.body, Form):
        values += [v for _, v in spec.body.pairs]
    elif isinstance(spec.body, Json):
        values += [v for v in _json_strings(spec.body.value) if isinstance(v, str)]
    return any(sum(value.count(t) for t in texts) >= 2 for value in values)


def serialise_body(draw: st.DrawFn, spec: Spec) -> bytes:
    body = spec.body
    if body is None:
        return b""
    if isinstance(body, Form):
        return encode_form(draw, body.pairs, plus_raw=spec.plus_raw).encode()
    if isinstance(body, Json):
        return dump_json(draw, body.value).encode()
    return body.text.encode()


@st.composite
def sends(draw: st.DrawFn, info: MountInfo, builders: Sequence[Builder]) -> Send:
    """One request to `info`'s mount: a builder, then mutations, then written out."""
    builder = draw(st.sampled_from(builders))
    spec = builder(draw, info)
    spec = draw(mutate(spec))
    spec = draw(method_and_type(spec))
    path, refused, notes = draw(path_spelling(spec))
    spec.notes += notes
    headers = draw(headers_for(spec))
    body = serialise_body(draw, spec)
    if isinstance(spec.body, Json) and rare(draw, 12):
        # JSON in another Unicode encoding: decoders detect it by BOM or NUL pattern.
        codec = draw(st.sampled_from(("utf-8-sig", "utf-16", "utf-16-le", "utf-16-be",
                                      "utf-32")))
        body = body.decode().encode(codec)
        spec.notes.append("encoding:" + codec)
    if body and rare(draw, 15):
        coding = draw(st.sampled_from(("gzip", "deflate", "x-gzip", "gzip, identity",
                                       "gzip, gzip", "GZIP")))
        body = zlib.compress(body) if coding == "deflate" else gzip.compress(body)
        if coding == "gzip, gzip":
            body = gzip.compress(body)
        headers.append(("Content-Encoding", coding))
        spec.notes.append("content-encoding:" + coding)
    query = encode_form(draw, spec.query) if spec.query else ""
    target = f"/{info.name}{path}" + (f"?{query}" if query else "")
    framing: tuple[tuple[str, str], ...] = ()
    if rare(draw, 41):
        # Spellings only the HTTP parser sees: refused before Gatekeeper reads them.
        wire_kind = draw(st.sampled_from(("space", "utf8", "dup-length", "cl-te", "br")))
        spec.notes.append("wire:" + wire_kind)
        if wire_kind == "space":
            target = target.replace("/", "/ ", 1) if "/" in target[1:] else target + " x"
        elif wire_kind == "utf8":
            target = f"/{info.name}/\u00e9{path}"
        elif wire_kind == "dup-length":
            framing = (("Content-Length", str(len(body))), ("Content-Length", str(len(body))))
        elif wire_kind == "cl-te":
            framing = (("Content-Length", str(len(body) + 5)),
                       ("Transfer-Encoding", "chunked"))
            body = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        else:
            headers.append(("Content-Encoding", "br"))
    chunked = bool(body) and not framing and rare(draw, 16)
    if joined_values(spec):
        spec.notes.append("joined")
    return Send(info, spec.method, target, tuple(headers), body, spec.channel, spec.routed,
                spec.routed or spec.national_scan, refused, tuple(spec.dests),
                (builder.__name__, *spec.notes), chunked, framing)


def preset_sends(info: MountInfo) -> st.SearchStrategy[Send]:
    return sends(info, BUILDERS[info.preset])


def unknown_sends(info: MountInfo) -> st.SearchStrategy[Send]:
    return sends(info, (b_unknown,))

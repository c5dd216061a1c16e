"""Builders for the documented sends of the iletiMerkezi and Prelude presets."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from hypothesis import strategies as st

from tests.fuzz.bodies import Json, Text, jobj, xml_safe
from tests.fuzz.lists import MountInfo
from tests.fuzz.specs import TEXT, Builder, Spec, _dests
from tests.fuzz.spellings import Dest, as_json_value, dest


def b_iletimerkezi(draw: st.DrawFn, info: MountInfo) -> Spec:
    kind = draw(st.sampled_from(("json", "json", "xml", "xml", "get")))
    groups = draw(st.lists(st.lists(dest(info), min_size=1, max_size=3), min_size=1,
                           max_size=2))
    dests = [x for g in groups for x in g]
    if kind == "get":
        params = [("key", "feedkey"), ("hash", "feedhash"), ("text", TEXT),
                  ("receipents", ",".join(x.text for x in groups[0])), ("sender", "ACME")]
        method = draw(st.sampled_from(("GET", "GET", "HEAD", "POST")))
        return Spec(info, method, ["v1", "send-sms", "get"], None, None, "sms", groups[0],
                    query=params, query_ok=True, takes_get=True, recipient_names=("receipents",))
    if kind == "json":
        messages = [jobj(text=TEXT, receipents=jobj(number=[
            as_json_value(draw, x, ints=True) for x in g])) for g in groups]
        message: Any = messages[0] if len(messages) == 1 and draw(st.booleans()) else messages
        doc = jobj(request=jobj(authentication=jobj(key="feedkey", hash="feedhash"),
                                order=jobj(sender="ACME", sendDateTime="", iys="1",
                                           iysList="BIREYSEL", message=message)))
        segs = ["v1", "send-sms", "json"] if draw(st.integers(0, 3)) else ["v1", "send-sms"]
        return Spec(info, "POST", segs, Json(doc), "application/json", "sms", dests,
                    recipient_names=("number",))
    def number(x: Dest) -> str:
        clean = xml_safe(x.text)
        style = draw(st.sampled_from(("plain",) * 4 + ("Case", "cdata", "charrefs", "comment",
                                                       "prefix", "spaced")))
        tag = "number"
        if style == "Case":
            tag = draw(st.sampled_from(("Number", "NUMBER")))
        elif style == "prefix":
            return f'<n:number xmlns:n="urn:x">{escape(clean)}</n:number>'
        if style == "cdata":
            inner = f"<![CDATA[{clean}]]>"
        elif style == "charrefs":
            inner = "".join(f"&#{ord(c)};" if c.isdigit() or c == "+" else escape(c)
                            for c in clean)
        elif style == "comment" and len(clean) > 4:
            inner = escape(clean[:4]) + "<!-- c -->" + escape(clean[4:])
        elif style == "spaced":
            inner = "\n   " + escape(clean) + "\n "
        else:
            inner = escape(clean)
        return f"<{tag}>{inner}</{tag}>"

    receipents = draw(st.sampled_from(("receipents",) * 4 + ("Receipents", "RECEIPENTS")))
    xml_messages = "".join(
        "<message><text>" + TEXT + f"</text><{receipents}>"
        + "".join(number(x) for x in g)
        + f"</{receipents}></message>" for g in groups)
    declaration = draw(st.sampled_from(('<?xml version="1.0" encoding="UTF-8"?>\n',
                                        '<?xml version="1.0" encoding="ISO-8859-9"?>', "",
                                        "\ufeff")))
    xml = (f"{declaration}<request><authentication><key>feedkey"
           "</key><hash>feedhash</hash></authentication><order><sender>ACME</sender>"
           f"<sendDateTime></sendDateTime>{xml_messages}</order></request>")
    return Spec(info, "POST", ["v1", "send-sms"], Text(xml),
                draw(st.sampled_from(("text/xml", "application/xml", None))), "sms", dests)


ILETIMERKEZI: tuple[Builder, ...] = (b_iletimerkezi,)


def b_prelude(draw: st.DrawFn, info: MountInfo) -> Spec:
    kind = draw(st.sampled_from(("verification", "verification", "notify", "batch", "reply",
                                 "transactional")))
    dests = _dests(draw, info, "field", 1, 3)
    if kind == "verification":
        doc = jobj(target=jobj(type="phone_number", value=dests[0].text),
                   options=jobj(locale="en-GB"))
        return Spec(info, "POST", ["v2", "verification"], Json(doc), "application/json", None,
                    dests[:1], recipient_names=("value",))
    if kind == "batch":
        doc = jobj(template_id="template_feed", to=[x.text for x in dests],
                   variables=jobj(code="abc"))
        return Spec(info, "POST", ["v2", "notify", "batch"], Json(doc), "application/json",
                    "sms", dests, recipient_names=("to",))
    segs = {"notify": ["v2", "notify"], "reply": ["v2", "notify", "reply"],
            "transactional": ["v2", "transactional"]}[kind]
    doc = jobj(template_id="template_feed", to=dests[0].text) if kind != "reply" else \
        jobj(reply_to="im_feed", text=TEXT, to=dests[0].text)
    return Spec(info, "POST", segs, Json(doc), "application/json", "sms", dests[:1],
                recipient_names=("to",))


PRELUDE: tuple[Builder, ...] = (b_prelude,)

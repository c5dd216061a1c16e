"""Builders for the documented sends of the Vonage and Plivo presets."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.fuzz.bodies import JObj, Json, jobj
from tests.fuzz.lists import CALLER_DIGITS, MountInfo
from tests.fuzz.specs import TEXT, Builder, Spec, _dests, _form
from tests.fuzz.spellings import Dest, as_json_value, dest, rare


def b_vonage_legacy(draw: st.DrawFn, info: MountInfo) -> Spec:
    verify = rare(draw, 4)
    d = draw(dest(info))
    name = "number" if verify else "to"
    if verify:
        segs = draw(st.sampled_from((["verify", "json"], ["verify", "xml"],
                                     ["verify", "psd2", "json"])))
        params = [(name, d.text), ("brand", "Acme"), ("api_key", "abcdkey")]
    else:
        segs = draw(st.sampled_from((["sms", "json"], ["sms", "xml"], ["sms"],
                                     ["sc", "us", "alert", "json"])))
        params = [("from", "AcmeInc"), (name, d.text), ("text", TEXT), ("api_key", "abcdkey")]
    if rare(draw, 5):
        params.append(("sig", "cb30cc6bdbfeedface"))
    where = draw(st.sampled_from(("form", "json", "query", "get")))
    # Legacy Verify sends an SMS, then calls: either channel.
    spec = Spec(info, "POST", segs, None, None, None if verify else "sms", [d],
                recipient_names=(name,), query_ok=True, takes_get=True)
    if where == "form":
        spec.body, spec.content_type = _form(params), "application/x-www-form-urlencoded"
    elif where == "json":
        spec.body = Json(JObj([(k, as_json_value(draw, d, ints=True) if k == name else v)
                               for k, v in params]))
        spec.content_type = "application/json"
    else:
        spec.query = params
        spec.method = "GET" if where == "get" else "POST"
    return spec


def _endpoint(draw: st.DrawFn, d: Dest) -> JObj:
    if d.text.lower().startswith(("sip:", "sips:", '"')) and draw(st.booleans()):
        return jobj(type="sip", uri=d.text)
    return jobj(type="phone", number=as_json_value(draw, d, ints=True))


def b_vonage_messages(draw: st.DrawFn, info: MountInfo) -> Spec:
    d = draw(dest(info))
    doc = jobj(to=as_json_value(draw, d, ints=True), **{"from": "AcmeInc"},
               channel=draw(st.sampled_from(("sms", "whatsapp", "mms", "viber_service"))),
               message_type="text", text=TEXT)
    dests = [d]
    if draw(st.booleans()):
        backups = _dests(draw, info, "field", 1, 3)
        doc.append(("failover", [jobj(to=b.text, **{"from": "AcmeInc"}, channel="sms",
                                      message_type="text", text=TEXT) for b in backups]))
        dests += backups
    return Spec(info, "POST", ["v1", "messages"], Json(doc), "application/json", "sms", dests,
                recipient_names=("to",))


def b_vonage_v01(draw: st.DrawFn, info: MountInfo) -> Spec:
    d = draw(dest(info))
    to = jobj(type="sms", number=d.text)
    if draw(st.booleans()):
        doc = jobj(to=to, **{"from": jobj(type="sms", number="AcmeInc")},
                   message=jobj(content=jobj(type="text", text=TEXT)))
        return Spec(info, "POST", ["v0.1", "messages"], Json(doc), "application/json", "sms",
                    [d], recipient_names=("number",))
    doc = jobj(template="failover", workflow=[jobj(to=to, message=jobj(
        content=jobj(type="text", text=TEXT)))])
    return Spec(info, "POST", ["v0.1", "dispatch"], Json(doc), "application/json", "sms", [d],
                recipient_names=("number",))


def _ncco(draw: st.DrawFn, dests: list[Dest]) -> list[Any]:
    actions: list[Any] = [jobj(action="talk", text="hi")]
    if dests:
        actions.append(jobj(action="connect", **{"from": CALLER_DIGITS},
                            endpoint=[_endpoint(draw, x) for x in dests]))
    return actions


def b_vonage_calls(draw: st.DrawFn, info: MountInfo) -> Spec:
    to = _dests(draw, info, "field", 1, 3)
    doc = jobj(to=[_endpoint(draw, x) for x in to],
               **{"from": jobj(type="phone", number=CALLER_DIGITS)})
    dests = list(to)
    if draw(st.booleans()):
        inline = _dests(draw, info, "script", 0, 2)
        doc.append(("ncco", _ncco(draw, inline)))
        dests += inline
    else:
        doc.append(("answer_url", ["https://app.example.com/answer"]))
    return Spec(info, "POST", ["v1", "calls"], Json(doc), "application/json", "voice", dests,
                recipient_names=("number", "uri"))


def b_vonage_transfer(draw: st.DrawFn, info: MountInfo) -> Spec:
    inline = _dests(draw, info, "script", 1, 2)
    doc = jobj(action="transfer", destination=jobj(type="ncco", ncco=_ncco(draw, inline)))
    return Spec(info, "PUT", ["v1", "calls", "feedface-uuid"], Json(doc), "application/json",
                "voice", inline, last_literal=False, recipient_names=("number",))


def b_vonage_verify2(draw: st.DrawFn, info: MountInfo) -> Spec:
    steps = _dests(draw, info, "field", 1, 3)
    doc = jobj(brand="Acme", workflow=[
        jobj(channel=draw(st.sampled_from(("sms", "voice", "whatsapp", "silent_auth"))),
             to=s.text) for s in steps])
    return Spec(info, "POST", ["v2", "verify"], Json(doc), "application/json", None, steps,
                recipient_names=("to",))


VONAGE: tuple[Builder, ...] = (b_vonage_legacy, b_vonage_legacy, b_vonage_messages,
                               b_vonage_v01, b_vonage_calls, b_vonage_transfer,
                               b_vonage_verify2)

PLIVO_AUTH = "MAfeedfacefeedface"


def _joined(draw: st.DrawFn, info: MountInfo) -> tuple[list[Dest], object]:
    dests = _dests(draw, info, "field", 1, 4)
    if len(dests) == 1:
        return dests, as_json_value(draw, dests[0], ints=True)
    return dests, "<".join(x.text for x in dests)


def b_plivo(draw: st.DrawFn, info: MountInfo) -> Spec:
    kind = draw(st.sampled_from(("message", "message", "call", "verify", "participant")))
    account = ["v1", "Account", PLIVO_AUTH]
    if kind == "verify":
        d = draw(dest(info))
        return Spec(info, "POST", [*account, "Verify", "Session"],
                    Json(jobj(recipient=as_json_value(draw, d, ints=True),
                              channel=draw(st.sampled_from(("sms", "voice"))))),
                    "application/json", None, [d], trailing_slash=True,
                    recipient_names=("recipient",))
    dests, joined = _joined(draw, info)
    if kind == "message":
        word = draw(st.sampled_from(("Message", "Messages", "message")))
        doc = jobj(src=CALLER_DIGITS, dst=joined, text=TEXT)
        return Spec(info, "POST", [*account, word], Json(doc), "application/json", "sms",
                    dests, trailing_slash=True, recipient_names=("dst",))
    if kind == "call":
        doc = jobj(**{"from": CALLER_DIGITS}, to=joined,
                   answer_url="https://app.example.com/answer")
        return Spec(info, "POST", [*account, "Call"], Json(doc), "application/json", "voice",
                    dests, trailing_slash=True, recipient_names=("to",))
    doc = jobj(role="agent", **{"from": CALLER_DIGITS}, to=joined)
    return Spec(info, "POST", [*account, "MultiPartyCall", "name_standup", "Participant"],
                Json(doc), "application/json", "voice", dests, trailing_slash=True,
                recipient_names=("to",))


PLIVO: tuple[Builder, ...] = (b_plivo,)

"""Builders for the documented sends of the Infobip and MessageBird presets."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.fuzz.bodies import JObj, Json, jobj
from tests.fuzz.lists import CALLER_DIGITS, MountInfo
from tests.fuzz.specs import TEXT, Builder, Spec, _dests, _form
from tests.fuzz.spellings import Dest, as_json_value, rare


def b_infobip(draw: st.DrawFn, info: MountInfo) -> Spec:
    kind = draw(st.sampled_from(("v3", "advanced", "single", "multi", "query", "tts",
                                 "tts_multi", "tts_adv", "ivr", "pin", "pin_voice", "call",
                                 "wa_template", "wa_text", "messages_api")))
    dests = _dests(draw, info, "field", 1, 3)

    def to_value(ds: list[Dest]) -> object:
        if len(ds) == 1 and draw(st.booleans()):
            return ds[0].text
        return [x.text for x in ds]

    def destinations(ds: list[Dest]) -> list[Any]:
        return [jobj(to=x.text, messageId="m-feed") for x in ds]

    if kind == "query":
        params = [("username", "fuzzuser"), ("password", "fuzzpass"),
                  ("to", ",".join(x.text for x in dests)), ("text", TEXT)]
        spec = Spec(info, "GET", ["sms", "1", "text", "query"], None, None, "sms", dests,
                    query=params, query_ok=True, takes_get=True, recipient_names=("to",))
        if rare(draw, 4):
            spec.method = "POST"
        return spec
    table: dict[str, tuple[list[str], Any, str | None]] = {
        "v3": (["sms", "3", "messages"], jobj(messages=[jobj(
            sender="Acme", destinations=destinations(dests), content=jobj(text=TEXT))]), "sms"),
        "advanced": (["sms", draw(st.sampled_from(("1", "2"))), "text", "advanced"],
                     jobj(messages=[jobj(**{"from": "Acme"}, destinations=destinations(dests),
                                         text=TEXT)]), "sms"),
        "single": (["sms", "1", draw(st.sampled_from(("text", "binary"))), "single"],
                   jobj(**{"from": "Acme"}, to=to_value(dests), text=TEXT), "sms"),
        "multi": (["sms", "1", "text", "multi"],
                  jobj(messages=[jobj(**{"from": "Acme"}, to=to_value(dests), text=TEXT)]),
                  "sms"),
        "tts": (["tts", "3", "single"], jobj(**{"from": CALLER_DIGITS}, to=to_value(dests),
                                             text=TEXT), "voice"),
        "tts_multi": (["tts", "3", "multi"], jobj(messages=[jobj(to=to_value(dests),
                                                                 text=TEXT)]), "voice"),
        "tts_adv": (["tts", "3", "advanced"], jobj(messages=[jobj(
            destinations=destinations(dests), text=TEXT)]), "voice"),
        "ivr": (["voice", "ivr", "1", "messages"], jobj(messages=[jobj(
            destinations=destinations(dests), scenarioId="scen")]), "voice"),
        "pin": (["2fa", "2", "pin"], jobj(applicationId="app", messageId="msg",
                                          **{"from": "Acme"}, to=dests[0].text), "sms"),
        "pin_voice": (["2fa", "2", "pin", "voice"], jobj(applicationId="app", messageId="msg",
                                                         to=dests[0].text), "voice"),
        "wa_template": (["whatsapp", "1", "message", "template"], jobj(messages=[jobj(
            **{"from": CALLER_DIGITS}, to=x.text, content=jobj(templateName="t", language="en"))
            for x in dests]), "sms"),
        "wa_text": (["whatsapp", "1", "message", draw(st.sampled_from(("text", "image")))],
                    jobj(**{"from": CALLER_DIGITS}, to=dests[0].text,
                         content=jobj(text=TEXT)), "sms"),
        "messages_api": (["messages-api", "1", "messages"], jobj(messages=[jobj(
            channel="SMS", sender="Acme", destinations=destinations(dests),
            content=jobj(body=jobj(text=TEXT, type="TEXT")))]), "sms"),
        "call": (["calls", "1", "calls"], jobj(endpoint=jobj(
            type="PHONE", phoneNumber=dests[0].text), **{"from": CALLER_DIGITS},
            applicationId="app"), "voice"),
    }
    segs, doc, channel = table[kind]
    if kind in ("pin", "pin_voice", "call", "wa_text"):
        dests = dests[:1]
    names = ("phoneNumber",) if kind == "call" else ("to",)
    return Spec(info, "POST", segs, Json(doc), "application/json", channel, dests,
                recipient_names=names)


INFOBIP: tuple[Builder, ...] = (b_infobip,)


def b_messagebird(draw: st.DrawFn, info: MountInfo) -> Spec:
    kind = draw(st.sampled_from(("messages", "messages", "mms", "voicemessages", "batches",
                                 "verify", "calls", "conversations")))
    dests = _dests(draw, info, "field", 1, 3)
    if kind == "conversations":
        segs = draw(st.sampled_from((["v1", "send"], ["v1", "conversations", "start"])))
        doc = jobj(to=dests[0].text, channelId="feedchannel", type="text",
                   content=jobj(text=TEXT))
        return Spec(info, "POST", segs, Json(doc), "application/json", "sms", dests[:1],
                    recipient_names=("to",), query_ok=True)
    # A verification by `type: tts` is a call: either channel.
    channel = "voice" if kind in ("voicemessages", "calls") else None if kind == "verify" \
        else "sms"
    if kind in ("verify", "calls"):
        dests = dests[:1]
    if kind == "calls":
        doc = jobj(source=CALLER_DIGITS, destination=dests[0].text)
        if draw(st.booleans()):
            inline = _dests(draw, info, "script", 1, 2)
            doc.append(("callFlow", jobj(title="flow", steps=[
                jobj(action="transfer", options=jobj(destination=x.text)) for x in inline])))
            dests = dests + inline
        return Spec(info, "POST", ["calls"], Json(doc), "application/json", "voice", dests,
                    recipient_names=("destination",), query_ok=True)
    if kind == "verify":
        name = "recipient"
        fields: list[tuple[str, Any]] = [("recipient", dests[0].text), ("originator", "Acme")]
    else:
        name = "recipients"
        style = draw(st.sampled_from(("comma", "array", "one")))
        value: Any = ",".join(x.text for x in dests) if style == "comma" else \
            [as_json_value(draw, x, ints=True) for x in dests] if style == "array" else \
            as_json_value(draw, dests[0], ints=True)
        if style == "one":
            dests = dests[:1]
        fields = [("originator", "Acme"), ("recipients", value), ("body", TEXT)]
    if kind == "batches":
        doc = jobj(messages=[JObj(fields)])
        return Spec(info, "POST", ["messages", "batches"], Json(doc), "application/json", "sms",
                    dests, recipient_names=("recipients",), query_ok=True)
    segs = [kind]
    if draw(st.booleans()):
        form: list[tuple[str, str]] = []
        for k, v in fields:
            if isinstance(v, list):
                form += [(k + draw(st.sampled_from(("[]", "", f"[{i}]"))), str(x))
                         for i, x in enumerate(v)]
            else:
                form.append((k, str(v)))
        return Spec(info, "POST", segs, _form(form), "application/x-www-form-urlencoded",
                    channel, dests, recipient_names=(name,), query_ok=True, takes_get=True)
    return Spec(info, "POST", segs, Json(JObj(fields)), "application/json", channel, dests,
                recipient_names=(name,), query_ok=True, takes_get=True)


MESSAGEBIRD: tuple[Builder, ...] = (b_messagebird,)

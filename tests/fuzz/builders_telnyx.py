"""Builders for the documented sends of the Telnyx and Sinch presets."""

from __future__ import annotations

from hypothesis import strategies as st

from tests.fuzz.bodies import Body, JObj, Json, jobj, twiml
from tests.fuzz.lists import CALLER, CALLER_DIGITS, MountInfo
from tests.fuzz.specs import ACCOUNT, TEXT, Builder, Spec, _dests, _form
from tests.fuzz.spellings import dest, rare


def b_telnyx_message(draw: st.DrawFn, info: MountInfo) -> Spec:
    variant = draw(st.sampled_from(((), (), ("long_code",), ("short-code",), ("Number_Pool",),
                                    ("alphanumeric_sender_id",), ("schedule",),
                                    ("whatsapp",), ("rcs",))))
    d = draw(dest(info))
    doc = jobj(**{"from": CALLER}, to=d.text, text=TEXT,
               messaging_profile_id="feedface-profile")
    return Spec(info, "POST", ["v2", "messages", *variant], Json(doc), "application/json",
                "sms", [d], recipient_names=("to",))


def b_telnyx_group(draw: st.DrawFn, info: MountInfo) -> Spec:
    dests = _dests(draw, info, "field", 1, 4)
    doc = jobj(**{"from": CALLER}, to=[x.text for x in dests], text=TEXT,
               media_urls=["https://app.example.com/a.png"])
    return Spec(info, "POST", ["v2", "messages", draw(st.sampled_from(("group_mms",
                                                                         "group-mms")))],
                Json(doc), "application/json", "sms", dests, recipient_names=("to",))


def b_telnyx_call(draw: st.DrawFn, info: MountInfo) -> Spec:
    dests = _dests(draw, info, "field", 1, 3)
    to: object = dests[0].text if len(dests) == 1 and draw(st.booleans()) else \
        [x.text for x in dests]
    doc = jobj(connection_id="feedface-conn", to=to, **{"from": CALLER})
    return Spec(info, "POST", ["v2", "calls"], Json(doc), "application/json", "voice", dests,
                recipient_names=("to",))


def b_telnyx_transfer(draw: st.DrawFn, info: MountInfo) -> Spec:
    d = draw(dest(info))
    return Spec(info, "POST", ["v2", "calls", "v3:feedface", "actions", "transfer"],
                Json(jobj(to=d.text)), "application/json", "voice", [d],
                recipient_names=("to",))


def b_telnyx_texml(draw: st.DrawFn, info: MountInfo) -> Spec:
    d = draw(dest(info))
    doc = jobj(To=d.text, From=CALLER)
    dests = [d]
    if draw(st.booleans()):
        inline = _dests(draw, info, "script", 1, 2)
        doc.append(("Texml", twiml(draw, info, inline)))
        dests += inline
    else:
        doc.append(("Url", "https://app.example.com/texml.xml"))
    body: Body = Json(doc)
    content_type = "application/json"
    if rare(draw, 3):
        body, content_type = _form([(k, v) for k, v in doc]), \
            "application/x-www-form-urlencoded"
    if draw(st.booleans()):
        return Spec(info, "POST", ["v2", "texml", "Accounts", ACCOUNT, "Calls"], body,
                    content_type, "voice", dests, ext=True, recipient_names=("To",))
    return Spec(info, "POST", ["v2", "texml", "calls", "feedfaceconn"], body, content_type,
                "voice", dests, ext=True, last_literal=False, recipient_names=("To",))


def b_telnyx_texml_more(draw: st.DrawFn, info: MountInfo) -> Spec:
    """TeXML call updates (inline `Texml`), conference participants and AI calls (`To`)."""
    kind = draw(st.sampled_from(("update", "participant", "ai")))
    as_form = draw(st.booleans())
    if kind == "update":
        inline = _dests(draw, info, "script", 1, 2)
        fields = [("Texml", twiml(draw, info, inline))]
        segs = ["v2", "texml", "Accounts", ACCOUNT, "Calls", "CAfeed"]
        dests, names = inline, ()
    else:
        d = draw(dest(info))
        fields = [("To", d.text), ("From", CALLER)]
        segs = ["v2", "texml", "Accounts", ACCOUNT, "Conferences", "CFfeed", "Participants"] \
            if kind == "participant" else ["v2", "texml", "ai_calls", "feedfaceconn"]
        dests, names = [d], ("To",)
    body: Body = _form(fields) if as_form else Json(JObj(fields))
    return Spec(info, "POST", segs, body,
                "application/x-www-form-urlencoded" if as_form else "application/json",
                "voice", dests, ext=True, last_literal=kind == "participant",
                recipient_names=names)


def b_telnyx_verify(draw: st.DrawFn, info: MountInfo) -> Spec:
    d = draw(dest(info))
    kind = draw(st.sampled_from(("sms", "whatsapp", "call", "flashcall", "flash_call")))
    return Spec(info, "POST", ["v2", "verifications", kind],
                Json(jobj(phone_number=d.text, verify_profile_id="feed-profile")),
                "application/json", "sms" if kind in ("sms", "whatsapp") else "voice", [d],
                recipient_names=("phone_number",))


TELNYX: tuple[Builder, ...] = (b_telnyx_message, b_telnyx_message, b_telnyx_group,
                               b_telnyx_call, b_telnyx_transfer, b_telnyx_texml,
                               b_telnyx_texml_more, b_telnyx_verify)

PLAN = "feedfaceplan"


def b_sinch(draw: st.DrawFn, info: MountInfo) -> Spec:
    dests = _dests(draw, info, "field", 1, 4)
    values = [x.text for x in dests]
    base = ["xms", "v1", PLAN]
    kind = draw(st.sampled_from(("send", "send", "dry", "replace", "update", "group",
                                 "group_replace", "group_add")))
    if kind in ("send", "dry", "replace"):
        doc = jobj(**{"from": CALLER_DIGITS}, to=values, body=TEXT)
        segs = {"send": [*base, "batches"], "dry": [*base, "batches", "dry_run"],
                "replace": [*base, "batches", "BATCHFEED"]}[kind]
        method = "PUT" if kind == "replace" else "POST"
        name = "to"
    elif kind == "update":
        doc, segs, method, name = jobj(to_add=values, body=TEXT), \
            [*base, "batches", "BATCHFEED"], draw(st.sampled_from(("POST", "PATCH"))), "to_add"
    elif kind == "group":
        doc, segs, method, name = jobj(name="team", members=values), [*base, "groups"], \
            "POST", "members"
    elif kind == "group_replace":
        doc, segs, method, name = jobj(name="team", members=values), \
            [*base, "groups", "GROUPFEED"], "PUT", "members"
    else:
        doc, segs, method, name = jobj(add=values), [*base, "groups", "GROUPFEED"], \
            draw(st.sampled_from(("POST", "PATCH"))), "add"
    # PUT on an item replaces it (its own route); POST and PATCH update it; `dry_run`
    # is POST only (PUT/PATCH there name a batch called `dry_run`), and so is any
    # spelling of it with a suffix (a batch id too).
    alts = {"update": ("POST", "PATCH"), "group_add": ("POST", "PATCH"), "replace": (),
            "group_replace": ()}.get(kind, ("PUT", "PATCH"))
    return Spec(info, method, segs, Json(doc), "application/json", "sms", dests,
                recipient_names=(name,), last_literal=kind in ("send", "group"),
                alt_methods=tuple(m for m in alts if m != method) if kind != "dry" else ())


SINCH: tuple[Builder, ...] = (b_sinch,)

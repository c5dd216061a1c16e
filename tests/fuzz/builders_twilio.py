"""Builders for the documented sends of the Twilio and generic presets."""

from __future__ import annotations

import json
from urllib.parse import quote

from hypothesis import strategies as st

from tests.fuzz.bodies import Json, jobj, twiml
from tests.fuzz.lists import CALLER, MountInfo
from tests.fuzz.specs import ACCOUNT, TEXT, Builder, Spec, _dests, _form
from tests.fuzz.spellings import dest, rare


def b_twilio_messages(draw: st.DrawFn, info: MountInfo) -> Spec:
    d = draw(dest(info))
    legacy = rare(draw, 5)
    segs = ["2010-04-01", "Accounts", ACCOUNT, *(["SMS"] if legacy else []), "Messages"]
    return Spec(info, "POST", segs, _form([("To", d.text), ("From", CALLER), ("Body", TEXT)]),
                "application/x-www-form-urlencoded", "sms", [d], ext=True, suffix=".json",
                recipient_names=("To",))


def b_twilio_calls(draw: st.DrawFn, info: MountInfo) -> Spec:
    d = draw(dest(info))
    pairs = [("To", d.text), ("From", CALLER)]
    dests = [d]
    if draw(st.booleans()):
        inline = _dests(draw, info, "script", 1, 2)
        pairs.append(("Twiml", twiml(draw, info, inline)))
        dests += inline
    elif draw(st.booleans()):
        bin_to = draw(dest(info, "scan"))
        pairs.append(("Url", "https://handler.twilio.com/twiml/EHfeed?To="
                      + quote(bin_to.text, safe="")))
        dests.append(bin_to)
    else:
        pairs.append(("Url", "https://app.example.com/voice.xml"))
    return Spec(info, "POST", ["2010-04-01", "Accounts", ACCOUNT, "Calls"], _form(pairs),
                "application/x-www-form-urlencoded", "voice", dests, ext=True, suffix=".json",
                recipient_names=("To",))


def b_twilio_call_update(draw: st.DrawFn, info: MountInfo) -> Spec:
    inline = _dests(draw, info, "script", 1, 2)
    return Spec(info, "POST", ["2010-04-01", "Accounts", ACCOUNT, "Calls", "CAfeedface"],
                _form([("Twiml", twiml(draw, info, inline))]),
                "application/x-www-form-urlencoded", "voice", inline, ext=True,
                suffix=".json", last_literal=False)


def b_twilio_studio(draw: st.DrawFn, info: MountInfo) -> Spec:
    """A Studio flow execution whose `Parameters` (JSON) name more numbers to reach."""
    d = draw(dest(info))
    more = _dests(draw, info, "script", 1, 2)
    key = draw(st.sampled_from(("to", "number", "recipient")))
    parameters = json.dumps({"customer": {key: more[0].text},
                             "others": [{key: x.text} for x in more[1:]]})
    return Spec(info, "POST", ["v2", "Flows", "FWfeed", "Executions"],
                _form([("To", d.text), ("From", CALLER), ("Parameters", parameters)]),
                "application/x-www-form-urlencoded", None, [d, *more],
                recipient_names=("To",))


def _twilio_simple(segs: list[str], name: str, channel: str | None, ext: bool,
                   extra: list[tuple[str, str]]) -> Builder:
    def build(draw: st.DrawFn, info: MountInfo) -> Spec:
        d = draw(dest(info))
        return Spec(info, "POST", list(segs), _form([(name, d.text), *extra]),
                    "application/x-www-form-urlencoded", channel, [d], ext=ext,
                    suffix=".json" if ext else "", recipient_names=(name,))
    return build


TWILIO: tuple[Builder, ...] = (
    b_twilio_messages, b_twilio_messages, b_twilio_calls, b_twilio_calls, b_twilio_call_update,
    _twilio_simple(["2010-04-01", "Accounts", ACCOUNT, "Conferences", "CFfeed", "Participants"],
                   "To", "voice", True, [("From", CALLER)]),
    _twilio_simple(["2010-04-01", "Accounts", ACCOUNT, "OutgoingCallerIds"], "PhoneNumber",
                   "voice", True, [("FriendlyName", "desk")]),
    _twilio_simple(["v2", "Services", "VAfeed", "Verifications"], "To", None, False,
                   [("Channel", "sms")]),
    _twilio_simple(["v1", "Conversations", "CHfeed", "Participants"],
                   "MessagingBinding.Address", "sms", False,
                   [("MessagingBinding.ProxyAddress", CALLER)]),
    _twilio_simple(["v1", "Services", "KSfeed", "Sessions", "KCfeed", "Participants"],
                   "Identifier", None, False, [("FriendlyName", "alice")]),
    _twilio_simple(["v2", "Flows", "FWfeed", "Executions"], "To", None, False,
                   [("From", CALLER)]),
    b_twilio_studio,
)


def b_generic(draw: st.DrawFn, info: MountInfo) -> Spec:
    if draw(st.booleans()):
        dests = _dests(draw, info, "field", 1, 3)
        doc = jobj(messages=[jobj(to=x.text, text=TEXT) for x in dests])
        return Spec(info, "POST", ["v1", "sms"], Json(doc), "application/json", "sms", dests,
                    recipient_names=("to",))
    d = draw(dest(info))
    return Spec(info, "POST", ["v1", "acct-feed", "call"],
                _form([("to", d.text), ("from", CALLER)]),
                "application/x-www-form-urlencoded", "voice", [d], recipient_names=("to",))


GENERIC: tuple[Builder, ...] = (b_generic,)

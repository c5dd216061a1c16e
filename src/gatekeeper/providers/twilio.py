"""The `twilio` preset: Programmable Messaging and Voice (API 2010-04-01).

Sends are POST `.../Accounts/{sid}/Messages.json` (sms), `.../Calls.json` and
`.../Conferences/{sid}/Participants.json` (voice), form-encoded, recipient in `To`.
`.xml` and extension-less spellings reach the same endpoints, so they are intercepted
too. Reject: 403 with Twilio's error shape (the SDK raises `TwilioRestException`);
skip: 201 with a resource whose status is `canceled`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.utils import formatdate
from uuid import uuid4

from gatekeeper.config import UpstreamConfig
from gatekeeper.providers.base import (
    Blocked,
    FormField,
    Message,
    Reply,
    Route,
    basic_user,
    json_reply,
    parse_form,
)

API_VERSION = "2010-04-01"
BLOCKED_CODE = 21610  # "Attempt to send to unsubscribed recipient"
_ACCOUNT = rf"^/{API_VERSION}/Accounts/(?P<account_sid>[^/]+)"
# A blocked inbound caller: refused before answering, so the call is not billed.
INBOUND_REJECT = Reply(
    200, b'<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="rejected"/>'
    b"</Response>", "text/xml")
_TO = FormField("To")


class TwilioPreset:
    """Twilio's Messages and Calls resources."""

    name = "twilio"
    msisdn = False
    default_region: str | None = None

    def routes(self, upstream: UpstreamConfig) -> tuple[Route, ...]:
        suffix = r"(\.json|\.xml)?$"
        return (
            Route("POST", re.compile(_ACCOUNT + r"/(SMS/)?Messages" + suffix, re.I), "sms", _TO),
            Route("POST", re.compile(_ACCOUNT + r"/Calls" + suffix, re.I), "voice", _TO),
            # Adding a conference participant dials `To`: an outbound call too.
            Route("POST", re.compile(_ACCOUNT + r"/Conferences/[^/]+/Participants" + suffix,
                                     re.I), "voice", _TO),
        )

    def identities(self, message: Message, path_params: Mapping[str, str]) -> tuple[str, ...]:
        """The account SID in the path and the Basic user (an account SID or API key)."""
        found = (path_params.get("account_sid"), basic_user(message.headers))
        return tuple(dict.fromkeys(i for i in found if i))

    def reject(self, blocked: Blocked) -> Reply:
        return json_reply(403, {
            "code": BLOCKED_CODE,
            "message": "Attempt to send to a blocked recipient: the number is on a block list.",
            "more_info": f"https://www.twilio.com/docs/errors/{BLOCKED_CODE}",
            "status": 403,
        })

    def skip(self, blocked: Blocked) -> Reply:
        account = blocked.path_params.get("account_sid", "")
        form = parse_form(blocked.message.body)
        fields = {} if not isinstance(form, dict) else {k: v[0] for k, v in form.items()}
        kind, sid_prefix = ("Messages", "SM") if blocked.channel == "sms" else ("Calls", "CA")
        sid = sid_prefix + uuid4().hex
        now = formatdate(usegmt=True)
        resource = {
            "sid": sid,
            "account_sid": account,
            "to": blocked.destination,
            "from": fields.get("From"),
            "status": "canceled",
            "direction": "outbound-api",
            "api_version": API_VERSION,
            "date_created": now,
            "date_updated": now,
            "error_code": None,
            "error_message": None,
            "uri": f"/{API_VERSION}/Accounts/{account}/{kind}/{sid}.json",
        }
        if blocked.channel == "sms":
            resource |= {"body": fields.get("Body", ""), "num_segments": "0",
                         "price": None}
        return json_reply(201, resource)


PRESET = TwilioPreset()

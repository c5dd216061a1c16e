"""The `twilio` preset: Programmable Messaging and Voice (API 2010-04-01) and, for an
upstream pointed at their hosts, Verify, Conversations, Proxy and Studio.

Form-encoded sends; the last path segment may carry any suffix (`.json`, `.xml`, none):
- sms: `Accounts/{sid}/Messages` (and the legacy `SMS/Messages`), `To`;
- voice: `Calls` (`To`, and every target of an inline `Twiml`), live call updates
  `Calls/{sid}` (an inline `Twiml` redirects the call: its targets are checked; a `Url`
  is fetched later by Twilio and cannot be seen), conference `Participants` (`To` is
  dialled), `OutgoingCallerIds` (Twilio calls `PhoneNumber` to verify it);
- verify.twilio.com `/v2/Services/{sid}/Verifications` (`To`; by sms, call or WhatsApp:
  decided on both channels; an e-mail address passes); conversations.twilio.com
  participants (`MessagingBinding.Address`); proxy.twilio.com session participants
  (`Identifier`, texted and called through a masked number); studio.twilio.com flow
  `Executions` (`To`, texted or called by the flow).
Reject: 403 with Twilio's error shape (the SDK raises `TwilioRestException`), code 21610
for a list entry and, for a policy rule, the code Twilio gives that refusal (geo
permissions, premium or landline numbers, quiet hours); skip: the resource Twilio would
create, with status `canceled`.
"""

from __future__ import annotations

import re
from email.utils import formatdate
from uuid import uuid4

from gatekeeper.config import UpstreamConfig
from gatekeeper.providers.credentials import basic_user
from gatekeeper.providers.forms import parse_form
from gatekeeper.providers.locators import Both, Converted, FormField, is_email
from gatekeeper.providers.policy_text import because, is_premium, policy_rule, rule_channel
from gatekeeper.providers.preset import Blocked, Message, ReplyFn, Route, route
from gatekeeper.providers.routing import template
from gatekeeper.providers.scripts import FormScript, FormUrlQuery
from gatekeeper.replies import Reply, json_reply
from gatekeeper.rules import RuleResult

API_VERSION = "2010-04-01"
BLOCKED_CODE = 21610  # "Attempt to send to unsubscribed recipient"
# Codes for a send a policy rule refused (twilio.com/docs/api/errors/<code>):
GEO_SMS_CODE = 21408  # "Message blocked: permissions disabled for the destination region"
# "Account not authorized to call phone number": the REST API's code (21xxx) among the
# three Twilio's help on Voice geo permissions lists for a barred call (21215, 32205,
# 13227; 13227 is the <Dial> verb's "No International Permission").
GEO_VOICE_CODE = 21215
PREMIUM_SMS_CODE = 21268  # "Sending to Premium rate or Information Service numbers is not allowed"
PREMIUM_VOICE_CODE = 21202  # "'To' number is a premium number" (an outbound call)
LANDLINE_SMS_CODE = 21635  # "'To' number cannot be a landline"
# "Message couldn't be delivered" for regulatory restrictions: marketing outside the
# hours allowed in the recipient's local time (a delivery error Twilio documents).
QUIET_HOURS_CODE = 30610
# "Too Many Requests": Twilio's 429 (the proxy sends a velocity refusal as 429).
VELOCITY_CODE = 20429
_ACCOUNT = f"/{API_VERSION}/Accounts/{{account_sid}}"
_ACCOUNT_IN_PATH = re.compile(rf"^/{API_VERSION}/Accounts/([^/]+)", re.I)
# A blocked inbound caller: refused before answering, so the call is not billed.
INBOUND_REJECT = Reply(
    200, b'<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="rejected"/>'
    b"</Response>", "text/xml")
_TO = FormField("To")
_TWIML = FormScript("Twiml")
# Numbers in a TwiML Bin URL's query are dialled too; a plain `Url` is fetched later.
_URL_QUERY = FormUrlQuery("Url")


def _email_or_number(value: str) -> str:
    return f"client:email:{value}" if is_email(value) else value


def _rule_code(rule: RuleResult, blocked: Blocked) -> int:
    """Twilio's own code for the refusal a policy rule stands for (twilio.com/docs/api/errors)."""
    voice = rule_channel(rule, blocked) == "voice"
    if rule.kind == "velocity":
        return VELOCITY_CODE
    if rule.kind == "country":
        return GEO_VOICE_CODE if voice else GEO_SMS_CODE
    if rule.kind == "number_type":
        if is_premium(rule):
            return PREMIUM_VOICE_CODE if voice else PREMIUM_SMS_CODE
        if voice:
            # Voice geo permissions also bar number types (high-risk special numbers:
            # premium, shared cost...), and 21215 is what a call they bar gets.
            return GEO_VOICE_CODE
        # A landline has a messaging code of its own; other types have none and keep
        # 21610, the refusal of a blocked recipient.
        return LANDLINE_SMS_CODE if rule.detail == "fixed_line" else BLOCKED_CODE
    # Quiet hours: 30610 on messages; Twilio documents no voice code for calling hours,
    # so a call keeps 21610, its refusal of a blocked recipient.
    return BLOCKED_CODE if voice else QUIET_HOURS_CODE


def reject(blocked: Blocked) -> Reply:
    """Twilio's error for a blocked recipient: 21610 for a list entry; for a policy rule
    the code Twilio gives that refusal, with why in the message."""
    rule = policy_rule(blocked)
    code = BLOCKED_CODE if rule is None else _rule_code(rule, blocked)
    lead = "Attempt to send to a blocked recipient"
    return json_reply(403, {
        "code": code,
        "message": f"{lead}: the number is on a block list." if rule is None else
        because(lead, blocked),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": 403,
    })


def _fields(blocked: Blocked) -> dict[str, str]:
    form = parse_form(blocked.message.body)
    return {} if not isinstance(form, dict) else {k: v[0] for k, v in form.items()}


def _resource(blocked: Blocked, kind: str, prefix: str) -> dict[str, object]:
    account = blocked.path_params.get("account_sid", "")
    sid = prefix + uuid4().hex
    now = formatdate(usegmt=True)
    return {"sid": sid, "account_sid": account, "to": blocked.destination,
            "from": _fields(blocked).get("From"), "status": "canceled",
            "direction": "outbound-api", "api_version": API_VERSION, "date_created": now,
            "date_updated": now, "error_code": None, "error_message": None,
            "uri": f"/{API_VERSION}/Accounts/{account}/{kind}/{sid}.json"}


def skip_message(blocked: Blocked) -> Reply:
    """A message resource that was never sent."""
    fields = _fields(blocked)
    return json_reply(201, _resource(blocked, "Messages", "SM") | {
        "body": fields.get("Body", ""), "num_segments": "0", "price": None})


def skip_call(blocked: Blocked) -> Reply:
    """A call resource that was never placed (also for updates and participants)."""
    return json_reply(201, _resource(blocked, "Calls", "CA"))


def skip_caller_id(blocked: Blocked) -> Reply:
    """A caller-id validation request whose call was never placed."""
    return json_reply(201, {"account_sid": blocked.path_params.get("account_sid", ""),
                            "call_sid": "CA" + uuid4().hex, "friendly_name": None,
                            "phone_number": blocked.destination, "validation_code": None})


def skip_verification(blocked: Blocked) -> Reply:
    """A verification that sent no code (status canceled)."""
    fields = _fields(blocked)
    return json_reply(201, {"sid": "VE" + uuid4().hex,
                            "service_sid": blocked.path_params.get("service_sid", ""),
                            "to": blocked.destination, "channel": fields.get("Channel", "sms"),
                            "status": "canceled", "valid": False})


def skip_resource(prefix: str) -> ReplyFn:
    """A generic created resource with a fresh sid (participants, executions)."""
    def skip(blocked: Blocked) -> Reply:
        return json_reply(201, {"sid": prefix + uuid4().hex, "status": "canceled"})
    return skip


class TwilioPreset:
    """Twilio's Messages and Calls resources, and the sends of its other products."""

    name = "twilio"
    msisdn = False
    default_region: str | None = None
    quiet_writes = (template(f"{_ACCOUNT}/IncomingPhoneNumbers", ext=True, prefix=True),
                    template(f"{_ACCOUNT}/Messages/{{sid}}", ext=True))
    list_api = None

    def routes(self, upstream: UpstreamConfig) -> tuple[Route, ...]:
        participants = skip_resource("MB")
        return (
            route("POST", (f"{_ACCOUNT}/Messages", f"{_ACCOUNT}/SMS/Messages"), "sms", _TO,
                  reject, skip_message, ext=True),
            route("POST", f"{_ACCOUNT}/Calls", "voice", Both((_TO, _TWIML, _URL_QUERY)),
                  reject, skip_call, ext=True),
            route("POST", f"{_ACCOUNT}/Calls/{{call_sid}}", "voice", Both((_TWIML, _URL_QUERY)),
                  reject, skip_call, ext=True),
            # Adding a conference participant dials `To`: an outbound call too.
            route("POST", f"{_ACCOUNT}/Conferences/{{conference_sid}}/Participants", "voice",
                  _TO, reject, skip_call, ext=True),
            route("POST", f"{_ACCOUNT}/OutgoingCallerIds", "voice",
                  FormField("PhoneNumber"), reject, skip_caller_id, ext=True),
            route("POST", "/v2/Services/{service_sid}/Verifications", None,
                  Converted(_TO, _email_or_number), reject, skip_verification),
            route("POST", ("/v1/Conversations/{conversation_sid}/Participants",
                           "/v1/Services/{chat_service_sid}/Conversations/{conversation_sid}"
                           "/Participants"), "sms",
                  FormField("MessagingBinding.Address", optional=True), reject,
                  participants),
            route("POST", "/v1/Services/{service_sid}/Sessions/{session_sid}/Participants",
                  None, FormField("Identifier"), reject, participants),
            # A flow may text or call `To` and any number its `Parameters` (JSON) name.
            route("POST", "/v2/Flows/{flow_sid}/Executions", None,
                  Both((_TO, FormScript("Parameters"))), reject, skip_resource("FN")),
        )

    def identities(self, message: Message, path: str) -> tuple[str, ...]:
        """The account SID in the path and the Basic user (an account SID or API key)."""
        in_path = _ACCOUNT_IN_PATH.match(path)
        found = (in_path.group(1) if in_path else None, basic_user(message.headers))
        return tuple(dict.fromkeys(i for i in found if i))

    def unauthorized(self, request_id: str) -> Reply:
        return json_reply(401, {"code": 20003, "message": "Authenticate",
                                "more_info": "https://www.twilio.com/docs/errors/20003",
                                "status": 401})


    def refuse(self, blocked: Blocked) -> Reply:
        return reject(blocked)

PRESET = TwilioPreset()

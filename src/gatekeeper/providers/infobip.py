"""The `infobip` preset: Infobip SMS, plus the voice and 2FA sends that take numbers.

Routes (JSON unless said otherwise; every API version number is accepted, so an older
or newer spelling of the same send cannot slip past):
- POST `/sms/3/messages`, `/sms/{1,2}/{text,binary}/advanced`:
  `messages[].destinations[].to`; removing a destination drops its object, and a message
  left with none is dropped.
- POST `/sms/1/{text,binary}/single`: `to`, a string or an array.
- POST `/sms/1/{text,binary}/multi`: `messages[].to`, each a string or an array.
- GET `/sms/1/text/query`: `to` in the query string, comma-separated (it sends too);
  a POST there is read the same way.
- POST `/tts/3/single` (`to`), `/tts/3/multi` (`messages[].to`), `/tts/3/advanced` and
  `/voice/ivr/1/messages` (`messages[].destinations[].to`): voice.
- POST `/2fa/2/pin` (sms) and `/2fa/2/pin/voice` (voice): `to`, one number. Resending a
  PIN goes to the number already checked when the PIN was created.
- POST `/calls/1/calls` (Calls API, voice): `endpoint.phoneNumber` (PHONE and VIBER
  endpoints); a WEBRTC or SIP endpoint has no number and passes as `client:<type>`.
- POST `/whatsapp/1/message/template` (`messages[].to`) and `/whatsapp/1/message/<type>`
  (`to`); POST `/messages-api/1/messages` (`messages[].destinations[].to` and
  `...byChannel[].to`), all on the sms channel.
Numbers are MSISDNs without `+` (msisdn = True).
Reject: 400, which the SDK raises as `BadRequestException`; `/sms/3` gets Infobip's
newer error shape (`errorCode`, `description`, `action`, `violations`, `resources`, what
the SDK parses there), the rest `{"requestError": {"serviceException": ...}}`; a send a
policy rule refused gets the same reply, its text saying why.
Skip: 200 in the endpoint's own shape with generated ids; every destination carries
the REJECTED status group (id 14, destination blocked), as Infobip itself reports a
refused destination in a 200 reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import uuid4

from gatekeeper.config import UpstreamConfig
from gatekeeper.providers.credentials import basic_user, token_digest
from gatekeeper.providers.forms import parse_pairs, read_field
from gatekeeper.providers.locators import Both, JsonPath, QueryOrBody, load_json_all, members
from gatekeeper.providers.policy_text import because, policy_rule
from gatekeeper.providers.preset import (
    Blocked,
    BodyError,
    Message,
    Recipients,
    ReplyFn,
    Route,
    route,
)
from gatekeeper.providers.routing import template
from gatekeeper.replies import Reply, json_reply

_V = r"{:\d+}"  # any API version
_DESTINATIONS = JsonPath("messages[].destinations[].to")
_TO = JsonPath("to")
_MESSAGES_TO = JsonPath("messages[].to")
_QUERY_TO = QueryOrBody("to", ",")


@dataclass(frozen=True, slots=True)
class CallEndpoint:
    """The callee of a Calls API call: `endpoint.phoneNumber`, or `client:<type>` for an
    endpoint without a number (WEBRTC, SIP). One endpoint: never edited."""

    def find(self, message: Message) -> Recipients | BodyError:
        doc = load_json_all(message.body)
        if isinstance(doc, BodyError):
            return doc
        endpoints = [e for _, e in members(doc, "endpoint")[0] if isinstance(e, dict)]
        if not endpoints:
            return BodyError("missing_destination", "no destination at 'endpoint'")
        values: list[str] = []
        for endpoint in endpoints:
            numbers = [n for _, n in members(endpoint, "phoneNumber")[0] if n is not None]
            for number in numbers:
                if not isinstance(number, str):
                    return BodyError("invalid_destination_field",
                                     "'endpoint.phoneNumber' is not a string")
                values.append(number)
            if numbers:
                continue
            kinds = [k for _, k in members(endpoint, "type")[0]]
            if not kinds or any(not isinstance(k, str) or k.upper() in ("PHONE", "VIBER")
                                for k in kinds):
                return BodyError("missing_destination", "no destination at 'endpoint'")
            values.extend(f"client:{k.lower()}" for k in kinds if isinstance(k, str))
        return Recipients(tuple(values))
# Infobip's status for a destination it refused; group 5 is REJECTED.
REJECTED_STATUS = {
    "groupId": 5,
    "groupName": "REJECTED",
    "id": 14,
    "name": "REJECTED_DESTINATION_BLOCK",
    "description": "The destination is on a block list; the message was not sent.",
}
_REJECT_TEXT = "Invalid destination address: the destination is on a block list."


def _reject_text(blocked: Blocked) -> str:
    """The list text, or why a policy rule refused the send. The codes stay
    `BAD_REQUEST` / `E400`: Infobip documents no request error for a refused region,
    number type or hour (its REJECTED statuses belong to delivery reports)."""
    if policy_rule(blocked) is None:
        return _REJECT_TEXT
    return because("Invalid destination address", blocked)


def reject_v2(blocked: Blocked) -> Reply:
    """`{"requestError": {"serviceException": ...}}` (the SDK's `BadRequestException`)."""
    return json_reply(400, {"requestError": {"serviceException": {
        "messageId": "BAD_REQUEST", "text": _reject_text(blocked)}}})


def _violation(prop: str) -> ReplyFn:
    """Infobip's newer error shape (`/sms/3`, Calls API), naming the refused property."""
    def reject(blocked: Blocked) -> Reply:
        text = _reject_text(blocked)
        rule = policy_rule(blocked)
        action = "Send again outside the recipient's quiet hours." \
            if rule is not None and rule.kind == "quiet_hours" else \
            "Remove the blocked destination and send again."
        return json_reply(400, {
            "errorCode": "E400", "description": f"Bad request. {text}", "action": action,
            "violations": [{"property": prop, "violation": text}], "resources": []})
    return reject


def _destinations(blocked: Blocked) -> list[str]:
    # `destinations` holds every recipient when the whole send is skipped.
    rest = sorted(set(blocked.destinations) - {blocked.destination})
    return [blocked.destination, *rest]


def skip_v3(blocked: Blocked) -> Reply:
    """`/sms/3/messages`: every destination REJECTED, nothing sent."""
    return json_reply(200, {"bulkId": str(uuid4()), "messages": [
        {"messageId": str(uuid4()), "status": REJECTED_STATUS, "destination": to,
         "details": {"messageCount": 0}} for to in _destinations(blocked)]})


def skip_v2(blocked: Blocked) -> Reply:
    """SMS v1/v2 and TTS/IVR: every destination REJECTED, nothing sent."""
    counted = {"smsCount": 0} if blocked.channel == "sms" else {}
    return json_reply(200, {"bulkId": str(uuid4()), "messages": [
        {"to": to, "status": REJECTED_STATUS, "messageId": str(uuid4()), **counted}
        for to in _destinations(blocked)]})


def skip_pin(blocked: Blocked) -> Reply:
    """A 2FA PIN that was not sent."""
    status = "callStatus" if blocked.channel == "voice" else "smsStatus"
    return json_reply(200, {"pinId": uuid4().hex.upper(), "to": blocked.destination,
                            status: "MESSAGE_NOT_SENT"})


def skip_call(blocked: Blocked) -> Reply:
    """The call resource Infobip answers with, already cancelled: nobody is called."""
    return json_reply(201, {"id": str(uuid4()), "endpoint": {
        "type": "PHONE", "phoneNumber": blocked.destination}, "direction": "OUTBOUND",
        "state": "CANCELLED"})


class InfobipPreset:
    """Infobip's SMS, TTS/IVR voice, 2FA PIN and Calls API sends."""

    name = "infobip"
    msisdn = True
    default_region: str | None = None
    quiet_writes = (template("/numbers/1/numbers", prefix=True),)
    list_api = None

    def routes(self, upstream: UpstreamConfig) -> tuple[Route, ...]:
        v3 = _violation("messages[].destinations[].to")
        return (
            route("POST", "/sms/{:[3-9]|[1-9][0-9]+}/messages", "sms", _DESTINATIONS, v3,
                  skip_v3),
            route("POST", "/sms/{:[0-2]}/messages", "sms", _DESTINATIONS, reject_v2, skip_v2),
            route("POST", f"/sms/{_V}/{{:text|binary}}/advanced", "sms", _DESTINATIONS,
                  reject_v2, skip_v2),
            route("POST", f"/sms/{_V}/{{:text|binary}}/single", "sms", _TO, reject_v2,
                  skip_v2),
            route("POST", f"/sms/{_V}/{{:text|binary}}/multi", "sms", _MESSAGES_TO, reject_v2,
                  skip_v2),
            # Documented as GET; a POST to it is read the same way (if its recipients are
            # elsewhere, it is refused for want of `to`, never forwarded unchecked).
            route("GET POST", f"/sms/{_V}/text/query", "sms", _QUERY_TO, reject_v2, skip_v2,
                  reads_query=True),
            route("POST", f"/tts/{_V}/single", "voice", _TO, reject_v2, skip_v2),
            route("POST", f"/tts/{_V}/multi", "voice", _MESSAGES_TO, reject_v2, skip_v2),
            route("POST", (f"/tts/{_V}/advanced", f"/voice/ivr/{_V}/messages"), "voice",
                  _DESTINATIONS, reject_v2, skip_v2),
            route("POST", f"/2fa/{_V}/pin", "sms", _TO, reject_v2, skip_pin),
            route("POST", f"/2fa/{_V}/pin/voice", "voice", _TO, reject_v2, skip_pin),
            route("POST", f"/calls/{_V}/calls", "voice", CallEndpoint(),
                  _violation("endpoint.phoneNumber"), skip_call),
            # WhatsApp: one `to` per message type, `messages[].to` for templates.
            route("POST", f"/whatsapp/{_V}/message/template", "sms", _MESSAGES_TO, reject_v2,
                  skip_v2),
            route("POST", (f"/whatsapp/{_V}/message/*", f"/whatsapp/{_V}/message/*/*"), "sms",
                  _TO, reject_v2, skip_v2),
            # The unified Messages API (SMS, MMS, WhatsApp, Viber, RCS...).
            route("POST", f"/messages-api/{_V}/messages", "sms",
                  Both((_DESTINATIONS, JsonPath("messages[].destinations[].byChannel[].to",
                                                optional=True))),
                  _violation("messages[].destinations[].to"), skip_v3),
        )

    def identities(self, message: Message, path: str) -> tuple[str, ...]:
        """Digests of `App` (API key), `IBSSO` and `Bearer` tokens; the Basic user, and
        the `username` of a query-string send."""
        headers = message.headers
        pairs = parse_pairs(message.query)
        usernames = () if isinstance(pairs, BodyError) else \
            read_field(pairs, "username").values
        found = (token_digest(headers, scheme="App"), token_digest(headers, scheme="IBSSO"),
                 token_digest(headers), basic_user(headers), *usernames)
        return tuple(dict.fromkeys(i for i in found if i))

    def unauthorized(self, request_id: str) -> Reply:
        return json_reply(401, {"requestError": {"serviceException": {
            "messageId": "UNAUTHORIZED", "text": "Invalid login details"}}})


    def refuse(self, blocked: Blocked) -> Reply:
        return reject_v2(blocked)

PRESET = InfobipPreset()

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
Numbers are MSISDNs without `+` (msisdn = True).
Reject: 400, which the SDK raises as `BadRequestException`; `/sms/3` gets Infobip's
newer error shape (`errorCode`, `description`, `action`, `violations`, `resources`, what
the SDK parses there), the rest `{"requestError": {"serviceException": ...}}`.
Skip: 200 in the endpoint's own shape with generated ids; every destination carries
the REJECTED status group (id 14, destination blocked), as Infobip itself reports a
refused destination in a 200 reply.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from uuid import uuid4

from gatekeeper.config import UpstreamConfig
from gatekeeper.providers.base import (
    Blocked,
    BodyError,
    FormField,
    JsonPath,
    Locator,
    Message,
    Recipients,
    Reply,
    Route,
    basic_user,
    json_reply,
    load_json,
    parse_form,
    token_digest,
)
from gatekeeper.types import Channel

_V = r"\d+"  # any API version
_DESTINATIONS = JsonPath("messages[].destinations[].to")
_TO = JsonPath("to")
_MESSAGES_TO = JsonPath("messages[].to")
_QUERY_TO = FormField("to", ",", in_query=True)


@dataclass(frozen=True, slots=True)
class CallEndpoint:
    """The callee of a Calls API call: `endpoint.phoneNumber`, or `client:<type>` for an
    endpoint without a number (WEBRTC, SIP). One endpoint: never edited."""

    def find(self, message: Message) -> Recipients | BodyError:
        doc = load_json(message.body)
        if isinstance(doc, BodyError):
            return doc
        endpoint = doc.get("endpoint") if isinstance(doc, dict) else None
        if not isinstance(endpoint, dict):
            return BodyError("missing_destination", "no destination at 'endpoint'")
        number = endpoint.get("phoneNumber")
        if number is not None:
            if not isinstance(number, str):
                return BodyError("invalid_destination_field",
                                 "'endpoint.phoneNumber' is not a string")
            return Recipients((number,))
        kind = endpoint.get("type")
        if not isinstance(kind, str) or kind.upper() in ("PHONE", "VIBER"):
            return BodyError("missing_destination", "no destination at 'endpoint'")
        return Recipients((f"client:{kind.lower()}",))
# Infobip's status for a destination it refused; group 5 is REJECTED.
REJECTED_STATUS = {
    "groupId": 5,
    "groupName": "REJECTED",
    "id": 14,
    "name": "REJECTED_DESTINATION_BLOCK",
    "description": "The destination is on a block list; the message was not sent.",
}
_REJECT_TEXT = "Invalid destination address: the destination is on a block list."


def _route(method: str, pattern: str, channel: Channel, locator: Locator) -> Route:
    return Route(method, re.compile(f"^{pattern}$", re.I), channel, locator)


class InfobipPreset:
    """Infobip's SMS, TTS/IVR voice, 2FA PIN and Calls API sends."""

    name = "infobip"
    msisdn = True
    default_region: str | None = None

    def routes(self, upstream: UpstreamConfig) -> tuple[Route, ...]:
        return (
            _route("POST", rf"/sms/(?P<sms_version>{_V})/messages", "sms", _DESTINATIONS),
            _route("POST", rf"/sms/{_V}/(text|binary)/advanced", "sms", _DESTINATIONS),
            _route("POST", rf"/sms/{_V}/(text|binary)/single", "sms", _TO),
            _route("POST", rf"/sms/{_V}/(text|binary)/multi", "sms", _MESSAGES_TO),
            # Documented as GET; a POST to it is read the same way (if its recipients are
            # elsewhere, it is refused for want of `to`, never forwarded unchecked).
            *(_route(method, rf"/sms/{_V}/text/query", "sms", _QUERY_TO)
              for method in ("GET", "POST")),
            _route("POST", rf"/tts/{_V}/single", "voice", _TO),
            _route("POST", rf"/tts/{_V}/multi", "voice", _MESSAGES_TO),
            _route("POST", rf"/tts/{_V}/advanced", "voice", _DESTINATIONS),
            _route("POST", rf"/voice/ivr/{_V}/messages", "voice", _DESTINATIONS),
            _route("POST", rf"/2fa/{_V}/(?P<pin>pin)", "sms", _TO),
            _route("POST", rf"/2fa/{_V}/(?P<pin>pin)/voice", "voice", _TO),
            _route("POST", rf"/calls/{_V}/(?P<calls>calls)", "voice", CallEndpoint()),
        )

    def identities(self, message: Message, path_params: Mapping[str, str]) -> tuple[str, ...]:
        """Digests of `App` (API key), `IBSSO` and `Bearer` tokens; the Basic user, and
        the `username` of a query-string send."""
        headers = message.headers
        query = parse_form(message.query.encode())
        username = query.get("username", [None])[0] if isinstance(query, dict) else None
        found = (token_digest(headers, scheme="App"), token_digest(headers, scheme="IBSSO"),
                 token_digest(headers), basic_user(headers), username)
        return tuple(dict.fromkeys(i for i in found if i))

    def reject(self, blocked: Blocked) -> Reply:
        if "calls" in blocked.path_params:
            return json_reply(400, {"errorCode": "40001", "description":
                                    f"Bad request. {_REJECT_TEXT}", "action": "",
                                    "violations": [{"property": "endpoint.phoneNumber",
                                                    "violation": _REJECT_TEXT}],
                                    "resources": []})
        if int(blocked.path_params.get("sms_version", "0")) >= 3:
            return json_reply(400, {
                "errorCode": "E400",
                "description": "Request cannot be processed.",
                "action": "Remove the blocked destination and send again.",
                "violations": [{"property": "messages[].destinations[].to",
                                "violation": _REJECT_TEXT}],
                "resources": [],
            })
        return json_reply(400, {"requestError": {"serviceException": {
            "messageId": "BAD_REQUEST", "text": _REJECT_TEXT}}})

    def skip(self, blocked: Blocked) -> Reply:
        # `destinations` holds every recipient when the whole send is skipped.
        rest = sorted(set(blocked.destinations) - {blocked.destination})
        destinations = [blocked.destination, *rest]
        if "calls" in blocked.path_params:
            # The call resource Infobip answers with, already cancelled: nobody is called.
            return json_reply(201, {
                "id": str(uuid4()), "endpoint": {"type": "PHONE",
                                                 "phoneNumber": blocked.destination},
                "direction": "OUTBOUND", "state": "CANCELLED"})
        if "pin" in blocked.path_params:
            status = "callStatus" if blocked.channel == "voice" else "smsStatus"
            return json_reply(200, {"pinId": uuid4().hex.upper(), "to": blocked.destination,
                                    status: "MESSAGE_NOT_SENT"})
        if "sms_version" in blocked.path_params:
            return json_reply(200, {"bulkId": str(uuid4()), "messages": [
                {"messageId": str(uuid4()), "status": REJECTED_STATUS, "destination": to,
                 "details": {"messageCount": 0}} for to in destinations]})
        counted = {"smsCount": 0} if blocked.channel == "sms" else {}
        return json_reply(200, {"bulkId": str(uuid4()), "messages": [
            {"to": to, "status": REJECTED_STATUS, "messageId": str(uuid4()), **counted}
            for to in destinations]})


PRESET = InfobipPreset()

"""The `vonage` preset: legacy SMS, Messages and Voice (api.nexmo.com, rest.nexmo.com).

Intercepted (paths below the mount, case-insensitive; one upstream can serve both hosts):
- sms: GET/POST `/sms/json` and `/sms/xml` (also bare `/sms` and the old US short-code
  `/sc/us/{alert,2fa,marketing}/json|xml`). Parameters may sit in the query string and in
  the body (form or JSON, chosen by Content-Type, sniffed when it is missing; multipart is
  refused), so every `to` in either place is checked: a POST with a form body cannot
  carry an unchecked `to` in its query.
- sms: POST `/v1/messages` (every channel: SMS, MMS, RCS, WhatsApp, Viber, Messenger):
  `to` plus each `failover[].to`. Messenger recipients are page-scoped ids, not phone
  numbers, and are reported as `client:messenger`. A blocked failover message is dropped
  from `failover`; a blocked primary `to` cannot be removed, so the whole send is handled.
  The older spellings POST `/v0.1/messages` (`to.number`) and `/v0.1/dispatch`
  (`workflow[].to.number`) are checked too, never rewritten.
- GET/POST `/verify/json|xml` and `/verify/psd2/json|xml` (legacy Verify, an SMS and
  then calls): `number`, read like the legacy SMS API's `to` (query and body), on both
  channels.
- POST `/v2/verify` (Verify v2): every `workflow[].to`, the numbers a code goes to by
  SMS, WhatsApp, voice or silent auth, checked on both channels (sms- and voice-only
  entries both count: a step may call); an email step's address is not a phone number and
  passes. Blocked steps are dropped from the workflow; a workflow left empty is handled
  whole.
- voice: POST `/v1/calls`: the endpoints of `to[]` (phone `number`; `sip` `uri`, which is
  a number when it reads `sip:+digits@host`; websocket/app/vbc are `client:<type>`) and
  of every inline `ncco[]` connect action, which dials too. Blocked endpoints are removed;
  a connect action left without endpoints is dropped; a call left without any `to`, or
  with an empty NCCO, is handled whole. PUT `/v1/calls/{uuid}` transferring to an inline
  NCCO is checked the same way (other call updates carry no recipient and pass).

Requests signed with `sig` (an HMAC over every parameter) are never rewritten: a partly
blocked signed request gets the upstream's whole `on_block` action.
Reject: legacy SMS answers 200 with status "7" "Number barred." (the SDK raises
`SmsError`); the others answer 403 `application/problem+json` (the SDK raises
`ForbiddenError`). Skip: a success in each API's shape (SMS status "0"; Messages 202
`message_uuid`; Voice 201 `started`, as create-call always answers; transfer 204; Verify
202 with a `request_id` no code was sent for, so a later check of it fails). Legacy Verify
answers 200 in its own format: reject status "7" (the number is barred from verification;
the SDK raises `VerifyError`), skip status "0" with a fresh `request_id`. A send a
policy rule refused (country, number type, quiet hours) gets the same reject, saying why.

Its modules, one noun each: `params` (query and body parameters, `sig`, the legacy SMS
`to`), `endpoints` (endpoint objects), `voice` (what a call and its NCCO dial), `messages`
(Messages API recipients) and `replies` (each API's reject and skip answers). This one
keeps the route table, the identities and the inbound call's end, and re-exports the
names callers import.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping

from gatekeeper.config import UpstreamConfig
from gatekeeper.providers.credentials import basic_user, header, token_digest
from gatekeeper.providers.locators import Converted, JsonPath, is_email
from gatekeeper.providers.preset import Blocked, Locator, Message, ReplyFn, Route, route
from gatekeeper.providers.routing import template
from gatekeeper.providers.vonage.endpoints import Found, endpoint_values
from gatekeeper.providers.vonage.messages import EndpointAt, MessagesTo, message_to
from gatekeeper.providers.vonage.params import (
    BodyKind,
    Signed,
    SmsParams,
    body_kind,
    body_params,
    is_signed,
    names,
)
from gatekeeper.providers.vonage.replies import (
    BARRED_STATUS,
    PROBLEM_TYPE,
    accepted,
    problem,
    skip_call,
    skip_message,
    skip_transfer,
    sms_replies,
    verify_replies,
)
from gatekeeper.providers.vonage.voice import CallEndpoints
from gatekeeper.replies import Reply, json_reply
from gatekeeper.types import Channel

# NCCO has no hang-up or reject action, and an empty NCCO has been reported as refused
# (Vonage then fetches the fallback answer URL, which might connect the caller); a short
# talk action is always valid, and the call ends once it has played.
INBOUND_END_CALL = Reply(
    200, json.dumps([{"action": "talk", "text": "This call cannot be completed."}]).encode())

_SMS_FORMAT = r"(?:/(?P<sms_format>json|xml))?$"


def jwt_application(headers: Mapping[str, str]) -> str | None:
    """The `application_id` claim of a Bearer JWT (read, not verified).

    The SDK makes a new JWT for every request, so its digest never repeats; the
    application id is the stable identity. Vonage verifies the signature itself, so a
    forged claim cannot reach a send; here it can only add scopes, i.e. more checks.
    """
    scheme, _, token = header(headers, "Authorization").partition(" ")
    parts = token.strip().split(".")
    if scheme.lower() != "bearer" or len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    app = claims.get("application_id") if isinstance(claims, dict) else None
    return app if isinstance(app, str) and app else None


def verify_recipient(value: str) -> str:
    """A Verify step's `to`: an email address is not a phone number; numbers unchanged."""
    return f"client:email:{value}" if is_email(value) else value


def _legacy_rows(path: str, locator: Locator, replies: Callable[[bool], tuple[ReplyFn, ReplyFn]],
                 channel: Channel | None = "sms") -> list[Route]:
    """GET and POST rows of a legacy API path, in its JSON and XML formats."""
    rows = []
    for suffix, xml in (("/json", False), ("/xml", True)):
        reject, skip = replies(xml)
        rows.append(route("GET POST", path + suffix, channel, locator, reject, skip,
                          reads_query=True))
    return rows


class VonagePreset:
    """Vonage's legacy SMS, Messages (v1, v0.1, Dispatch), Voice v1 and Verify APIs."""

    name = "vonage"
    msisdn = True
    default_region: str | None = None
    # Buying and cancelling numbers; not `/number/update`, which can forward calls.
    quiet_writes = (template("/number/buy"), template("/number/cancel"))
    list_api = None

    def routes(self, upstream: UpstreamConfig) -> tuple[Route, ...]:
        sms = Signed(SmsParams())
        verify = Signed(SmsParams("number"))
        json_reject, json_skip = sms_replies(False)
        return (
            route("GET POST", "/sms", "sms", sms, json_reject, json_skip, reads_query=True),
            *_legacy_rows("/sms", sms, sms_replies),
            *_legacy_rows("/sc/us/{:alert|2fa|marketing}", sms, sms_replies),
            # Legacy Verify sends an SMS, then calls with the code: either channel.
            *_legacy_rows("/verify", verify, verify_replies, None),
            *_legacy_rows("/verify/psd2", verify, verify_replies, None),
            route("POST", "/v1/messages", "sms", Signed(MessagesTo()), problem, skip_message),
            route("POST", "/v0.1/messages", "sms", EndpointAt("to"), problem, skip_message),
            route("POST", "/v0.1/dispatch", "sms", EndpointAt("workflow[].to"), problem,
                  accepted("dispatch_uuid")),
            # Verify v2: a code by SMS, WhatsApp, voice or silent auth: either channel.
            route("POST", "/v2/verify", None,
                  Signed(Converted(JsonPath("workflow[].to"), verify_recipient)), problem,
                  accepted("request_id")),
            route("POST", "/v1/calls", "voice", Signed(CallEndpoints(create=True)), problem,
                  skip_call),
            route("PUT", "/v1/calls/{call_uuid}", "voice", Signed(CallEndpoints(create=False)),
                  problem, skip_transfer),
        )

    def identities(self, message: Message, path: str) -> tuple[str, ...]:
        """`api_key` (query or body), the Basic user, a JWT's application id, the token
        digest."""
        keys = [value for name, value in (*names(message.query), *body_params(message.body))
                if name.strip().casefold() == "api_key" and isinstance(value, str) and value]
        found = (*keys, basic_user(message.headers), jwt_application(message.headers),
                 token_digest(message.headers))
        return tuple(dict.fromkeys(i for i in found if i))

    def unauthorized(self, request_id: str) -> Reply:
        return json_reply(401, {"type": "https://developer.vonage.com/api-errors#unauthorized",
                                "title": "Unauthorized",
                                "detail": "You did not provide correct credentials.",
                                "instance": request_id}, "application/problem+json")


    def refuse(self, blocked: Blocked) -> Reply:
        return problem(blocked)

PRESET = VonagePreset()


__all__ = [
    "BARRED_STATUS",
    "INBOUND_END_CALL",
    "PRESET",
    "PROBLEM_TYPE",
    "BodyKind",
    "CallEndpoints",
    "EndpointAt",
    "Found",
    "MessagesTo",
    "Signed",
    "SmsParams",
    "VonagePreset",
    "body_kind",
    "endpoint_values",
    "is_signed",
    "jwt_application",
    "message_to",
    "problem",
    "skip_call",
    "skip_message",
    "skip_transfer",
    "sms_replies",
    "verify_recipient",
    "verify_replies",
]

"""The `telnyx` preset: Telnyx Messaging and Call Control (API v2).

Routes (JSON, recipients in `to`):
- sms: POST `/v2/messages` and its sender variants `/v2/messages/{long_code, short_code,
  number_pool, alphanumeric_sender_id}`, plus `/v2/messages/schedule` (a send, later),
  `/v2/messages/whatsapp` and `/v2/messages/rcs`: `to` is one string, so a blocked
  recipient refuses the whole send. `/v2/messages/group_mms` takes a `to` array (up to
  eight): a partly blocked group goes out to the others.
- voice: POST `/v2/calls` (Call Control dial), `to` a string or an array (simultaneous
  ring); a partly blocked array is dialled without the blocked numbers. POST
  `/v2/calls/{call_control_id}/actions/transfer` dials `to` (one string) and bridges the
  call to it. TeXML calls, POST `/v2/texml/Accounts/{account_sid}/Calls` and
  `/v2/texml/calls/{connection_id}`, dial `To` (JSON or form) and every target of an
  inline `Texml` script; a TeXML call update (`.../Calls/{call_sid}`) is checked for its
  inline `Texml`, conference participants and AI calls for `To`. Telnyx Verify, POST
  `/v2/verifications/{sms, whatsapp}` (sms) and `/v2/verifications/{call, flashcall}`
  (voice): `phone_number`.
Sender variants are matched with `-` or `_` and in any case, so an odd spelling of the
path cannot slip past.

Decisions: Telnyx writes every number as +E.164 (`msisdn = False`; digits alone are
national numbers in the upstream's region, or invalid). A dial string may end in DTMF
digits (`+18004247767,ww200`): the number before the comma is what is checked. A
WhatsApp `to` may be a business-scoped user id (`US.13491208655302741918`), which has no
number: it is reported as `client:whatsapp-bsuid:...`, not a phone number, and passes.

Identity: `sha256:` digest of the Bearer API key. Reject: 422 `{"errors": [...]}` with
Telnyx's block-rule code 40300 (the SDK raises `UnprocessableEntityError`; 422, not the
409 Telnyx uses for its own block rules, because the SDK retries a 409); when a policy
rule refused the send, its detail says why. Skip: 200 with
the message resource, each recipient `sending_failed` and the block in `errors` (the
honest status the shape allows), a call resource with `is_alive: false`, a TeXML call
with `status: canceled`, or, for a transfer, the command result `ok` (the only shape a
command has; the call stays where it was and no transfer webhooks follow).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from uuid import uuid4

from gatekeeper.config import UpstreamConfig
from gatekeeper.providers.credentials import token_digest
from gatekeeper.providers.locators import (
    Both,
    ByBody,
    Converted,
    FormField,
    JsonPath,
    load_json,
)
from gatekeeper.providers.policy_text import because, policy_rule
from gatekeeper.providers.preset import Blocked, Message, ReplyFn, Route, route
from gatekeeper.providers.routing import template
from gatekeeper.providers.scripts import FormScript, JsonScript
from gatekeeper.replies import Reply, json_reply

BLOCKED_CODE = "40300"  # Telnyx: "Blocked due to STOP message" (an existing block rule)
_TO = JsonPath("to")
_TEXML_TO = JsonPath("To")
_BSUID = re.compile(r"[A-Za-z]{2}\.[0-9A-Za-z]+")
# `/v2/messages/<sender>` variants that take one `to` string like `/v2/messages`.
_SENDERS = ("long_code", "short_code", "number_pool", "alphanumeric_sender_id", "schedule",
            "rcs")
# The message `type` a variant implies when the body names none.
_KINDS = {"whatsapp": "WHATSAPP", "rcs": "RCS", "group_mms": "MMS"}


def whatsapp_recipient(value: str) -> str:
    """A WhatsApp user id (no number) as a non-phone destination; numbers unchanged."""
    return f"client:whatsapp-bsuid:{value}" if _BSUID.fullmatch(value.strip()) else value


def _variant(name: str) -> str:
    return name.replace("_", "[-_]")


def _texml(blocked: Blocked) -> bool:
    """Whether the refused send is a TeXML call (Twilio-style capitalised fields)."""
    return "account_sid" in blocked.path_params or "connection_id" in blocked.path_params


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fields(message: Message) -> dict[str, object]:
    doc = load_json(message.body)
    return doc if isinstance(doc, dict) else {}


def _raw_recipients(fields: Mapping[str, object], fallback: str) -> list[str]:
    """The `to` of the request as written (string or array), in order."""
    to = fields.get("to")
    values = [to] if isinstance(to, str) else to if isinstance(to, list) else []
    found = [v for v in values if isinstance(v, str) and v.strip()]
    return found or [fallback]


def _text(fields: Mapping[str, object], name: str) -> str | None:
    value = fields.get(name)
    return value if isinstance(value, str) else None


def reject(blocked: Blocked) -> Reply:
    """422 with Telnyx's block-rule code (the SDK raises `UnprocessableEntityError`); for
    a policy rule the detail says why. The code stays 40300 for rules: Telnyx's docs
    give none of their own for a refused region, number type or hour."""
    what = "Messages cannot be sent" if blocked.channel == "sms" else "Calls cannot be placed"
    detail = f"{what} to this destination due to an existing block rule." \
        if policy_rule(blocked) is None else because(f"{what} to this destination", blocked)
    return json_reply(422, {"errors": [{
        "code": BLOCKED_CODE,
        "title": "Destination blocked",
        "detail": detail,
        "source": {"pointer": "/To" if _texml(blocked) else "/to"},
        "meta": {"url": f"https://developers.telnyx.com/api/errors/{BLOCKED_CODE}"},
    }]})


def skip_transfer(blocked: Blocked) -> Reply:
    """A command's only result shape: nothing was transferred."""
    return json_reply(200, {"data": {"result": "ok"}})


def skip_texml(blocked: Blocked) -> Reply:
    """A TeXML call resource, canceled."""
    fields = _fields(blocked.message)
    return json_reply(200, {"call_sid": "v3:" + secrets.token_urlsafe(32),
                            "from": _text(fields, "From"), "to": _text(fields, "To"),
                            "status": "canceled"})


def skip_call(blocked: Blocked) -> Reply:
    """A Call Control call that is not alive."""
    fields = _fields(blocked.message)
    call: dict[str, object] = {
        "record_type": "call", "call_control_id": "v3:" + secrets.token_urlsafe(32),
        "call_leg_id": str(uuid4()), "call_session_id": str(uuid4()), "is_alive": False}
    if (state := _text(fields, "client_state")) is not None:
        call["client_state"] = state
    return json_reply(200, {"data": call})


def skip_message(kind_hint: str | None) -> ReplyFn:
    """The message resource, every recipient `sending_failed`."""
    def skip(blocked: Blocked) -> Reply:
        fields = _fields(blocked.message)
        media = fields.get("media_urls")
        kind = _text(fields, "type") or kind_hint or ("MMS" if media else "SMS")
        now = _now()
        payload = {
            "record_type": "message", "id": str(uuid4()), "direction": "outbound",
            "type": kind, "messaging_profile_id": _text(fields, "messaging_profile_id"),
            "from": {"phone_number": _text(fields, "from")},
            "to": [{"phone_number": to, "status": "sending_failed"}
                   for to in _raw_recipients(fields, blocked.destination)],
            "text": _text(fields, "text"), "subject": _text(fields, "subject"),
            "media": [{"url": url} for url in media if isinstance(url, str)]
            if isinstance(media, list) else [],
            "received_at": now, "completed_at": now, "sent_at": None,
            "errors": [{"code": BLOCKED_CODE, "title": "Destination blocked",
                        "detail": "The message was not sent: the destination is on a block "
                                  "list."}],
        }
        return json_reply(200, {"data": payload})
    return skip


def skip_verification(blocked: Blocked) -> Reply:
    """A verification whose code was never sent."""
    return json_reply(200, {"data": {"id": str(uuid4()), "record_type": "verification",
                                     "phone_number": blocked.destination,
                                     "status": "cancelled"}})


class TelnyxPreset:
    """Telnyx's message sends, Call Control dial and transfer, and TeXML calls."""

    name = "telnyx"
    msisdn = False
    default_region: str | None = None
    # Buying numbers; not `/v2/phone_numbers`, whose voice settings can forward calls.
    quiet_writes = (template("/v2/number_orders", prefix=True),
                    template("/v2/number_reservations", prefix=True))
    list_api = None

    def routes(self, upstream: UpstreamConfig) -> tuple[Route, ...]:
        # TeXML takes JSON (what the SDK sends) or a form (what its OpenAPI also documents).
        texml = ByBody(Both((_TEXML_TO, JsonScript("Texml"))),
                       Both((FormField("To"), FormScript("Texml"))))
        texml_script = ByBody(JsonScript("Texml"), FormScript("Texml"))
        texml_to = ByBody(_TEXML_TO, FormField("To"))
        rows = [
            route("POST", "/v2/messages", "sms", _TO, reject, skip_message(None)),
            route("POST", "/v2/messages/{:whatsapp}", "sms",
                  Converted(_TO, whatsapp_recipient), reject, skip_message("WHATSAPP")),
            route("POST", f"/v2/messages/{{:{_variant('group_mms')}}}", "sms", _TO, reject,
                  skip_message("MMS")),
            route("POST", "/v2/calls", "voice", _TO, reject, skip_call),
            route("POST", "/v2/calls/{call_control_id}/actions/transfer", "voice", _TO, reject,
                  skip_transfer),
            route("POST", ("/v2/texml/Accounts/{account_sid}/Calls",
                           "/v2/texml/calls/{connection_id}"), "voice", texml, reject,
                  skip_texml, ext=True),
            # A live call update redirects the call to an inline script's targets.
            route("POST", "/v2/texml/Accounts/{account_sid}/Calls/{call_sid}", "voice",
                  texml_script, reject, skip_texml, ext=True),
            route("POST", ("/v2/texml/Accounts/{account_sid}/Conferences/{conference_sid}"
                           "/Participants", "/v2/texml/ai_calls/{connection_id}"), "voice",
                  texml_to, reject, skip_texml, ext=True),
        ]
        rows += [route("POST", f"/v2/messages/{{:{_variant(sender)}}}", "sms", _TO, reject,
                       skip_message(_KINDS.get(sender))) for sender in _SENDERS]
        # Telnyx Verify: a code by SMS or WhatsApp, or by a (flash) call.
        phone = JsonPath("phone_number")
        rows += [route("POST", "/v2/verifications/{:sms|whatsapp}", "sms", phone, reject,
                       skip_verification),
                 route("POST", "/v2/verifications/{:call|flashcall|flash_call}", "voice", phone,
                       reject, skip_verification)]
        return tuple(rows)

    def identities(self, message: Message, path: str) -> tuple[str, ...]:
        """The digest of the Bearer API key (Telnyx v2 has no account id in requests)."""
        digest = token_digest(message.headers)
        return (digest,) if digest else ()

    def unauthorized(self, request_id: str) -> Reply:
        return json_reply(401, {"errors": [{"code": "10009", "title": "Authentication failed",
                                            "detail": "The API key is missing or invalid."}]})


    def refuse(self, blocked: Blocked) -> Reply:
        return reject(blocked)

PRESET = TelnyxPreset()

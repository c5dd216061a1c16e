"""The `prelude` preset: Prelude's v2 API (api.prelude.dev), Verify and Notify.

Sends (JSON bodies, Bearer token), all on the sms channel:
- POST `/v2/verification`: `target: {"type", "value"}`. Only a `phone_number` target is
  a phone; an `email_address` target is reported as `client:email_address`, which is no
  phone number, so it is forwarded. Any other or missing type is checked as a phone (fail
  safe). A verification may end up on WhatsApp, RCS or a voice call depending on its
  options and Prelude's routing, so sms- and voice-only entries both count.
- POST `/v2/notify` (`to`, one number), `/v2/notify/batch` (`to: [...]`, blocked numbers
  removed from the array), `/v2/notify/reply` (a WhatsApp reply, `to`) and the deprecated
  POST `/v2/transactional` (`to`), which the SDK still sends.
`/v2/verification/check`, lookups and Watch send nothing and pass; the management API's
allow/block list calls are answered by Gatekeeper itself (providers/listapi/prelude.py).

Replies follow the SDK (prelude-python-sdk 0.16). A blocked verification is not an error
there: Prelude answers 200 with `status: "blocked"` (reason `in_block_list`, the one its
own block list gives) and the SDK returns it as a normal result; skip answers the success
shape (`status: "success"`). The message sends reject with 400 `{"code", "message",
"type": "bad_request", "request_id"}` (the SDK raises `BadRequestError`); the code is
`blocked_number`, Prelude's documented code for "the phone number is in the blocklist".
A send a policy rule refused gets the same replies, saying why where the shape has text;
a number-type rule's refusal of a number that is no mobile line gets Prelude's line-type
code and reason instead.
Their skip replies carry the endpoint's success shape with generated ids; the batch one
honestly lists every recipient with `success: false`.

Identities: `sha256:<hex>` of the Bearer token.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gatekeeper.config import UpstreamConfig
from gatekeeper.providers.credentials import token_digest
from gatekeeper.providers.listapi.prelude import PreludeLists
from gatekeeper.providers.locators import JsonPath, load_json, load_json_all, members
from gatekeeper.providers.policy_text import because, is_not_mobile, policy_rule
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

BLOCKED_CODE = "blocked_number"
BLOCKED_TEXT = "The phone number is in the block list; the message was not sent."
# For a number-type rule refusing a number that is no mobile line: Prelude's v2 error
# "The provided phone number is not assigned to a mobile phone" (docs.prelude.so
# /introduction/errors), and the Verify reason "The phone number is not a valid line
# number (e.g. landline)". Country and quiet-hours rules keep the block-list ones:
# Prelude has no code for a region an account refuses (`unsupported_region` is one
# Prelude does not serve), and it schedules marketing past quiet hours, never refusing.
LINE_TYPE_CODE = "invalid_line_type"
LINE_REASON = "invalid_phone_line"
# What an email verification target is reported as: not a phone number, so forwarded.
EMAIL_TARGET = "client:email_address"
_TO = JsonPath("to")
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
# Channels the SDK's verification response may list (a Literal there).
_VERIFY_CHANNELS = frozenset({"rcs", "silent", "sms", "telegram", "viber", "voice", "whatsapp",
                              "zalo"})


def new_id(prefix: str) -> str:
    """A Prelude-style id: prefix, then a lower-case ULID (`vrf_01jc0t6fwwfgfsq1md24mhyztj`)."""
    value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    chars = [_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5)]
    return prefix + "".join(chars)


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class VerificationTarget:
    """The `target` of a verification: its value when it is a phone number."""

    def find(self, message: Message) -> Recipients | BodyError:
        doc = load_json_all(message.body)
        if isinstance(doc, BodyError):
            return doc
        targets = [t for _, t in members(doc, "target")[0]]
        if not targets or all(t is None for t in targets):
            return BodyError("missing_destination", "no destination at 'target'")
        found: list[str] = []
        for target in targets:
            if not isinstance(target, dict):
                return BodyError("invalid_destination_field", "'target' is not an object")
            values = [v for _, v in members(target, "value")[0]]
            if not values or not all(isinstance(v, str) and v.strip() for v in values):
                return BodyError("invalid_destination_field", "'target.value' is not a string")
            kinds = [k for _, k in members(target, "type")[0]]
            if kinds == ["email_address"] and len(values) == 1:
                found.append(EMAIL_TARGET)
            else:
                found.extend(str(v) for v in values)
        # Never removed on their own: the whole request is decided.
        return Recipients(tuple(found))


def _body(blocked: Blocked) -> dict[str, object]:
    doc = load_json(blocked.message.body)
    return doc if isinstance(doc, dict) else {}


def _text(doc: Mapping[str, object], key: str) -> str | None:
    value = doc.get(key)
    return value if isinstance(value, str) else None


def _strings(doc: Mapping[str, object], key: str) -> dict[str, str]:
    value = doc.get(key)
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def _verification(blocked: Blocked, status: str) -> Reply:
    """The Verify response: `blocked` for reject, `success` for skip (both HTTP 200)."""
    doc = _body(blocked)
    options = doc.get("options")
    options = options if isinstance(options, dict) else {}
    voice = options.get("method") == "voice"
    reply: dict[str, object] = {
        "id": new_id("vrf_"),
        "method": "voice" if voice else "message",
        "status": status,
        "request_id": blocked.request_id,
    }
    if status == "blocked":
        rule = policy_rule(blocked)
        # No channel was used.
        reply["reason"] = LINE_REASON if rule is not None and is_not_mobile(rule) else \
            "in_block_list"
    else:
        preferred = options.get("preferred_channel")
        listed = options.get("channels")
        first = listed[0] if isinstance(listed, list) and listed else preferred
        channel = "voice" if voice else first if first in _VERIFY_CHANNELS else "sms"
        reply["channels"] = [channel]
    metadata = doc.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("correlation_id"), str):
        reply["metadata"] = {"correlation_id": metadata["correlation_id"]}
    return json_reply(200, reply)


def _batch(blocked: Blocked) -> Reply:
    """The batch response with every recipient refused, none sent."""
    doc = _body(blocked)
    listed = doc.get("to")
    numbers = [n for n in listed if isinstance(n, str)] if isinstance(listed, list) else []
    ordered = [n for n in dict.fromkeys(numbers) if n in blocked.destinations]
    ordered += [n for n in blocked.destinations if n not in ordered]
    results = [{"phone_number": number, "success": False,
                "error": {"code": BLOCKED_CODE, "message": BLOCKED_TEXT}} for number in ordered]
    reply: dict[str, object] = {
        "total_count": len(results), "success_count": 0, "error_count": len(results),
        "results": results, "request_id": blocked.request_id,
        "template_id": _text(doc, "template_id"), "variables": _strings(doc, "variables"),
    }
    if _text(doc, "callback_url") is not None:
        reply["callback_url"] = doc["callback_url"]
    return json_reply(200, reply)


def _message(blocked: Blocked, endpoint: str) -> Reply:
    """The message resource `/v2/notify`, `/v2/transactional` or `/v2/notify/reply` returns."""
    doc = _body(blocked)
    now = datetime.now(UTC)
    reply: dict[str, object] = {
        "id": new_id("tx_" if endpoint == "transactional" else "msg_"),
        "to": blocked.destination,
        "created_at": _rfc3339(now),
    }
    if endpoint == "reply":
        reply |= {"reply_to": _text(doc, "reply_to") or "", "text": _text(doc, "text") or ""}
    else:
        reply |= {
            "template_id": _text(doc, "template_id") or "",
            "variables": _strings(doc, "variables"),
            "expires_at": _text(doc, "expires_at") or _rfc3339(now + timedelta(days=1)),
        }
        for key in ("from", "schedule_at"):
            if _text(doc, key) is not None:
                reply[key] = doc[key]
    for key in ("callback_url", "correlation_id"):
        if _text(doc, key) is not None:
            reply[key] = doc[key]
    return json_reply(200, reply)


def reject_verification(blocked: Blocked) -> Reply:
    """200 `status: blocked`, a normal result for the SDK, as Prelude answers it (its
    `reason` the only word on why: the shape has no message)."""
    return _verification(blocked, "blocked")


def skip_verification(blocked: Blocked) -> Reply:
    """200 `status: success`."""
    return _verification(blocked, "success")


def reject_message(blocked: Blocked) -> Reply:
    """400 `blocked_number` (the SDK raises `BadRequestError`); for a policy rule the
    message says why, and a number that is no mobile line gets `invalid_line_type`."""
    rule = policy_rule(blocked)
    if rule is None:
        code, message = BLOCKED_CODE, BLOCKED_TEXT
    else:
        code = LINE_TYPE_CODE if is_not_mobile(rule) else BLOCKED_CODE
        message = because("The message was not sent", blocked)
    return json_reply(400, {"code": code, "message": message,
                            "type": "bad_request", "request_id": blocked.request_id})


def skip_message(endpoint: str) -> ReplyFn:
    """The message resource of `notify`, `transactional` or `notify/reply`."""
    return lambda b: _message(b, endpoint)


class PreludePreset:
    """Prelude's Verify and Notify sends."""

    name = "prelude"
    msisdn = False
    default_region: str | None = None
    # Checking a code, fraud scoring and sender ids send nothing.
    quiet_writes = (template("/v2/verification/check"), template("/v2/watch", prefix=True),
                    template("/v2/verification/management/sender-id"))
    list_api = PreludeLists()

    def routes(self, upstream: UpstreamConfig) -> tuple[Route, ...]:
        return (
            # A code may go by SMS, WhatsApp, RCS or a voice call: either channel.
            route("POST", "/v2/verification", None, VerificationTarget(), reject_verification,
                  skip_verification),
            route("POST", "/v2/notify", "sms", _TO, reject_message, skip_message("notify")),
            route("POST", "/v2/notify/batch", "sms", _TO, reject_message, _batch),
            route("POST", "/v2/notify/reply", "sms", _TO, reject_message,
                  skip_message("reply")),
            route("POST", "/v2/transactional", "sms", _TO, reject_message,
                  skip_message("transactional")),
        )

    def identities(self, message: Message, path: str) -> tuple[str, ...]:
        """The digest of the Bearer API token."""
        digest = token_digest(message.headers)
        return (digest,) if digest else ()

    def unauthorized(self, request_id: str) -> Reply:
        return json_reply(401, {"code": "invalid_api_key",
                                "message": "The provided API key is invalid.",
                                "type": "unauthorized", "request_id": request_id})


    def refuse(self, blocked: Blocked) -> Reply:
        return reject_message(blocked)

PRESET = PreludePreset()

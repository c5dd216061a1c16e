"""The `messagebird` preset: the MessageBird (Bird) REST API and its Voice API.

Routes; bodies are JSON (what the SDK sends) or form-encoded (what the API also accepts,
and what its curl examples use), chosen by Content-Type:
- POST `/messages` and `/mms` (sms), `/voicemessages` (voice): `recipients`, a
  comma-joined string, or an array of strings or numbers (MSISDNs); in a form, one
  `recipients` field or several `recipients[]` fields.
- POST `/messages/batches` (sms, JSON): `messages[].recipients`, each like the above; a
  message left with no recipient is dropped.
- POST `/verify` (by SMS, or a call with `type: tts`: either channel): `recipient`, one
  number (an e-mail for `type: email`, which is reported as `client:email:<address>`,
  not a phone number).
- POST `/calls` (voice, on `voice.messagebird.com`): `destination`, one number or SIP URI.
- The same paths by GET or DELETE with `?_method=POST` (MessageBird's method override for
  clients that cannot POST); without it they are reads, not checked. PUT and PATCH on
  them are checked like the POST.
- POST `/calls` also carries every target of an inline `callFlow` (transfers).
- POST `/v1/send` and `/v1/conversations/start` (Conversations API, sms): `to`.
Parameters in the query string count as well as the body's; a request naming
recipients in both is checked whole and never edited.
Group IDs among the recipients are reported as `client:group:<id>` (not a phone number,
forwarded). Numbers are MSISDNs without `+` (msisdn = True).
Reject: 422 `{"errors": [{"code": 9, ...}]}`, which the SDK raises as `ErrorException`
(its description says why when a policy rule refused the send).
Skip: 201 with the object MessageBird returns (a list of messages for a batch), ids
generated, and each recipient's status saying nothing was delivered
(`delivery_failed`, `failed` or `ended`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus
from uuid import uuid4

from gatekeeper.config import UpstreamConfig
from gatekeeper.providers.credentials import header, token_digest
from gatekeeper.providers.forms import parse_form
from gatekeeper.providers.locators import FormField, JsonPath, is_email, load_json, relabelled
from gatekeeper.providers.policy_text import because, policy_rule
from gatekeeper.providers.preset import (
    Blocked,
    BodyError,
    Locator,
    Message,
    Recipients,
    ReplyFn,
    Route,
    route,
)
from gatekeeper.providers.routing import template
from gatekeeper.providers.scripts import FormScript, JsonScript
from gatekeeper.replies import Reply, json_reply
from gatekeeper.types import Channel

REST_URL = "https://rest.messagebird.com"
BLOCKED_CODE = 9  # MessageBird: "no (correct) recipients found"
# MessageBird group IDs are 32 hex characters; a phone number has no letters.
_GROUP_ID = re.compile(r"(?=[0-9]*[A-Za-z])[0-9A-Za-z]{20,40}")
# Reads that the `_method` query parameter turns into a POST (a PUT or PATCH on a send
# path is checked like the POST whatever it says).
_OVERRIDABLE = "GET DELETE"


def _label(value: str) -> str:
    """Name group IDs and e-mail addresses so they count as not phone numbers."""
    if is_email(value):
        return f"client:email:{value}"
    if _GROUP_ID.fullmatch(value):
        return f"client:group:{value}"
    return value


def opens_like_json(body: bytes) -> bool:
    """A body whose first character opens a JSON object or array."""
    return body.lstrip(b" \t\r\n\xef\xbb\xbf")[:1] in (b"{", b"[")


def is_json(message: Message) -> bool:
    """JSON by Content-Type; without one, a body that opens like JSON is JSON."""
    kind = header(message.headers, "Content-Type").lower()
    if "json" in kind:
        return True
    if "form" in kind:
        return False
    return message.body.lstrip()[:1] in (b"{", b"[")


def overridden_to_post(query: str) -> bool:
    """True when the query carries `_method=POST`, MessageBird's method override.

    Read leniently (a malformed pair is skipped), so an odd query cannot hide it.
    """
    for raw in query.split("&"):
        name, _, value = raw.partition("=")
        if (unquote_plus(name, errors="replace").strip().casefold() == "_method"
                and unquote_plus(value, errors="replace").strip().upper() == "POST"):
            return True
    return False


@dataclass(frozen=True, slots=True)
class MessageBirdRecipients:
    """Recipients of a MessageBird send; `separator` joins several in one value.

    The body is JSON or a form (by Content-Type); in a form every `name`, `name[]` and
    `name[N]` field counts. Recipients in the query string count too (the API reads
    parameters there as well); when both the query and the body name recipients, the
    request is checked whole and not edited. With `override`, the route is a non-POST
    method that sends only when the query says `_method=POST`.
    """

    field: str
    separator: str | None = None
    override: bool = False

    def find(self, message: Message) -> Recipients | BodyError:
        if self.override and not overridden_to_post(message.query):
            return Recipients(())  # a read, a delete: not a send
        in_query = FormField(self.field, self.separator, in_query=True, multi=True,
                             optional=True).find(message)
        if isinstance(in_query, BodyError):
            return in_query
        body: Recipients | BodyError = Recipients(())
        if message.body.strip():
            body = self._body(message)
            if isinstance(body, BodyError) and \
                    (body.code != "missing_destination" or not in_query.values):
                return body
        if isinstance(body, BodyError) or not body.values:
            if not in_query.values:
                return BodyError("missing_destination", f"'{self.field}' is missing")
            return self._labelled(in_query)
        if in_query.values:
            return self._labelled(Recipients((*body.values, *in_query.values)))
        return self._labelled(body)

    def _body(self, message: Message) -> Recipients | BodyError:
        as_json = JsonPath(self.field, self.separator, numbers=True)
        if is_json(message):
            return as_json.find(message)
        as_form = FormField(self.field, self.separator, multi=True).find(message)
        if not opens_like_json(message.body):
            return as_form
        # A JSON body labelled as a form: a gateway that sniffs reads the JSON, one that
        # trusts the label reads the form. Both readings count; never edited.
        got = as_json.find(message)
        found = [r for r in (as_form, got) if isinstance(r, Recipients) and r.values]
        if not found:
            return got if isinstance(as_form, BodyError) else as_form
        return Recipients(tuple(v for r in found for v in r.values))

    @staticmethod
    def _labelled(found: Recipients) -> Recipients:
        return relabelled(found, _label)


def _fields(message: Message) -> dict[str, Any]:
    """The request's fields for echoing: the query's, then the body's (JSON object or
    first form values) over them."""
    query = parse_form(message.query.encode())
    fields: dict[str, Any] = {k: v[0] for k, v in query.items()} \
        if isinstance(query, dict) else {}
    if not message.body.strip():
        return fields
    if is_json(message):
        doc = load_json(message.body)
        return fields | doc if isinstance(doc, dict) else fields
    form = parse_form(message.body)
    return fields | {k: v[0] for k, v in form.items()} if isinstance(form, dict) else fields


def _msisdn(raw: str) -> int | str:
    """MessageBird returns recipients as numbers: `+31612345678` -> 31612345678."""
    digits = raw.strip().removeprefix("+")
    return int(digits) if digits.isdigit() else raw


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def rejecting(parameter: str) -> ReplyFn:
    """422 `errors[]` code 9, which the SDK raises as `ErrorException`; code 9 for a
    policy rule too (MessageBird documents no code for a refused region, type or hour),
    with why in the description."""
    def reject(blocked: Blocked) -> Reply:
        lead = "no (correct) recipients found"
        description = f"{lead}: the recipient is on a block list" \
            if policy_rule(blocked) is None else because(lead, blocked).removesuffix(".")
        return json_reply(422, {"errors": [{
            "code": BLOCKED_CODE, "description": description, "parameter": parameter}]})
    return reject


def skip_call(blocked: Blocked) -> Reply:
    """A call that has already ended."""
    now = _now()[:19] + "Z"
    return json_reply(201, {
        "data": [{"id": str(uuid4()), "status": "ended",
                  "source": _fields(blocked.message).get("source"),
                  "destination": blocked.destination, "createdAt": now, "updatedAt": now,
                  "endedAt": now}],
        "_links": {}, "pagination": {"totalCount": 0, "pageCount": 0, "currentPage": 0,
                                     "perPage": 0}})


def skip_verify(blocked: Blocked) -> Reply:
    """A verification that failed (no message sent)."""
    fields, object_id, now = _fields(blocked.message), uuid4().hex, _now()
    return json_reply(201, {
        "id": object_id, "href": f"{REST_URL}/verify/{object_id}",
        "recipient": _msisdn(blocked.destination), "reference": fields.get("reference"),
        "messages": {"href": f"{REST_URL}/messages?verify={object_id}"},
        "status": "failed", "createdDatetime": now, "validUntilDatetime": now})


def skip_batch(blocked: Blocked) -> Reply:
    """A list of messages whose recipients all failed."""
    messages, now = _fields(blocked.message).get("messages"), _now()
    requested = [m for m in messages if isinstance(m, dict)] \
        if isinstance(messages, list) else []
    return json_reply(201, [
        _message_object("messages", m, _listed(m.get("recipients")), now)
        for m in requested] or [_message_object("messages", {}, _ordered(blocked), now)])


def skip_resource(resource: str) -> ReplyFn:
    """A message, MMS or voice message object whose recipients all failed."""
    return lambda b: json_reply(201, _message_object(resource, _fields(b.message), _ordered(b),
                                                     _now()))


class MessageBirdPreset:
    """MessageBird messages, MMS, voice messages, verifications and calls."""

    name = "messagebird"
    msisdn = True
    default_region: str | None = None
    quiet_writes = (template("/phone-numbers", prefix=True),
                    template("/v1/phone-numbers", prefix=True))
    list_api = None

    def routes(self, upstream: UpstreamConfig) -> tuple[Route, ...]:
        recipients = rejecting("recipients")
        calls = _Calls()
        sends: tuple[tuple[str, Channel | None, Any, ReplyFn, ReplyFn], ...] = (
            ("/messages", "sms", MessageBirdRecipients("recipients", ","), recipients,
             skip_resource("messages")),
            ("/mms", "sms", MessageBirdRecipients("recipients", ","), recipients,
             skip_resource("mms")),
            ("/voicemessages", "voice", MessageBirdRecipients("recipients", ","), recipients,
             skip_resource("voicemessages")),
            # A verification by `type: tts` is a call: either channel.
            ("/verify", None, MessageBirdRecipients("recipient"), rejecting("recipient"),
             skip_verify),
            ("/calls", "voice", calls, rejecting("destination"), skip_call),
        )
        rows = [route("POST", ("/v1/send", "/v1/conversations/start"), "sms",
                      MessageBirdRecipients("to"), recipients, skip_resource("messages")),
                route("POST", "/messages/batches", "sms",
                      MessageBirdRecipients("messages[].recipients", ","), recipients,
                      skip_batch)]
        for path, channel, locator, reject, skip in sends:
            rows.append(route("POST", path, channel, locator, reject, skip, reads_query=True))
            # `?_method=POST` turns these into the same send (for clients that cannot POST).
            override = _Calls(override=True) if path == "/calls" else \
                MessageBirdRecipients(locator.field, locator.separator, override=True)
            rows.append(route(_OVERRIDABLE, path, channel, override, reject, skip,
                              reads_query=True))
        return tuple(rows)

    def identities(self, message: Message, path: str) -> tuple[str, ...]:
        """The digest of the `AccessKey` token."""
        digest = token_digest(message.headers, scheme="AccessKey")
        return (digest,) if digest else ()

    def unauthorized(self, request_id: str) -> Reply:
        return json_reply(401, {"errors": [{
            "code": 2, "description": "Request not allowed (incorrect access_key)",
            "parameter": "access_key"}]})

    def refuse(self, blocked: Blocked) -> Reply:
        return rejecting("recipients")(blocked)


@dataclass(frozen=True, slots=True)
class _Calls:
    """A Voice API call: `destination`, and every target of an inline `callFlow`."""

    override: bool = False

    def find(self, message: Message) -> Recipients | BodyError:
        found = MessageBirdRecipients("destination", override=self.override).find(message)
        if isinstance(found, BodyError) or not found.values:
            return found
        # The flow is read whatever the Content-Type says: as JSON when the body opens
        # like JSON, as a form field otherwise, and from the query.
        body: Locator = JsonScript("callFlow", bare_digits=True) \
            if opens_like_json(message.body) else FormScript("callFlow", bare_digits=True)
        flows: list[str] = []
        for locator, part in ((body, message),
                              (FormScript("callFlow", bare_digits=True),
                               Message(message.query.encode(), "", message.headers))):
            if not part.body.strip():
                continue
            flow = locator.find(part)
            if isinstance(flow, BodyError):
                return flow
            flows.extend(flow.values)
        if not flows:
            return found
        return Recipients((*found.values, *flows))


def _ordered(blocked: Blocked) -> list[str]:
    """The blocked recipients, the first one first (all of them when a send is skipped)."""
    return [blocked.destination, *sorted(set(blocked.destinations) - {blocked.destination})]


def _listed(value: object) -> list[str]:
    """A `recipients` value (comma-joined, a number, or an array of them) as a list."""
    items = value if isinstance(value, list) else [value]
    return [part.strip() for item in items if isinstance(item, str | int)
            for part in str(item).split(",") if part.strip()]


def _message_object(resource: str, fields: Mapping[str, Any], raws: list[str], now: str
                    ) -> dict[str, Any]:
    """A message, MMS or voice message object whose recipients all failed."""
    object_id = uuid4().hex
    status = "failed" if resource == "voicemessages" else "delivery_failed"
    items = [{"recipient": _msisdn(raw), "status": status, "statusDatetime": now}
             for raw in raws]
    common = {"id": object_id, "href": f"{REST_URL}/{resource}/{object_id}",
              "originator": fields.get("originator"), "body": fields.get("body"),
              "reference": fields.get("reference"), "scheduledDatetime": None,
              "createdDatetime": now,
              "recipients": {"totalCount": len(items), "totalSentCount": 0,
                             "totalDeliveredCount": 0,
                             "totalDeliveryFailedCount": len(items), "items": items}}
    if resource == "voicemessages":
        return common | {key: fields.get(key) for key in (
            "language", "voice", "repeat", "ifMachine", "machineTimeout")}
    if resource == "mms":
        return common | {"direction": "mt", "subject": fields.get("subject"),
                         "mediaUrls": fields.get("mediaUrls")}
    return common | {
        "direction": "mt", "type": fields.get("type") or "sms",
        "validity": fields.get("validity"), "gateway": fields.get("gateway"),
        "typeDetails": fields.get("typeDetails") or {},
        "datacoding": fields.get("datacoding") or "plain",
        "mclass": fields.get("mclass") or 1}


PRESET = MessageBirdPreset()

"""The `messagebird` preset: the MessageBird (Bird) REST API and its Voice API.

Routes; bodies are JSON (what the SDK sends) or form-encoded (what the API also accepts,
and what its curl examples use), chosen by Content-Type:
- POST `/messages` and `/mms` (sms), `/voicemessages` (voice): `recipients`, a
  comma-joined string, or an array of strings or numbers (MSISDNs); in a form, one
  `recipients` field or several `recipients[]` fields.
- POST `/messages/batches` (sms, JSON): `messages[].recipients`, each like the above; a
  message left with no recipient is dropped.
- POST `/verify` (sms): `recipient`, one number (an e-mail for `type: email`, which is
  reported as `client:email:<address>`, not a phone number).
- POST `/calls` (voice, on `voice.messagebird.com`): `destination`, one number or SIP URI.
- The same paths by GET, PUT, PATCH or DELETE with `?_method=POST` (MessageBird's method
  override for clients that cannot POST); without it they are reads, not checked.
Parameters in the query string count as well as the body's; a request naming
recipients in both is checked whole and never edited.
Group IDs among the recipients are reported as `client:group:<id>` (not a phone number,
forwarded). Numbers are MSISDNs without `+` (msisdn = True).
Reject: 422 `{"errors": [{"code": 9, ...}]}`, which the SDK raises as `ErrorException`.
Skip: 201 with the object MessageBird returns (a list of messages for a batch), ids
generated, and each recipient's status saying nothing was delivered
(`delivery_failed`, `failed` or `ended`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus, unquote_plus
from uuid import uuid4

from gatekeeper.config import UpstreamConfig
from gatekeeper.providers.base import (
    Blocked,
    BodyError,
    JsonPath,
    Message,
    Recipients,
    Reply,
    Route,
    json_reply,
    load_json,
    parse_form,
    parse_form_pairs,
    token_digest,
)
from gatekeeper.types import Channel

REST_URL = "https://rest.messagebird.com"
BLOCKED_CODE = 9  # MessageBird: "no (correct) recipients found"
# MessageBird group IDs are 32 hex characters; a phone number has no letters.
_GROUP_ID = re.compile(r"(?=[0-9]*[A-Za-z])[0-9A-Za-z]{20,40}")
# Methods the `_method` query parameter can turn into a POST.
_OVERRIDABLE = ("GET", "PUT", "PATCH", "DELETE")


def _label(value: str) -> str:
    """Name group IDs and e-mail addresses so they count as not phone numbers."""
    if "@" in value and not value.lower().startswith(("sip:", "sips:")):
        return f"client:email:{value}"
    if _GROUP_ID.fullmatch(value):
        return f"client:group:{value}"
    return value


def _content_type(headers: Mapping[str, str]) -> str:
    for name, value in headers.items():
        if name.lower() == "content-type":
            return value.lower()
    return ""


def is_json(message: Message) -> bool:
    """JSON by Content-Type; without one, a body that opens like JSON is JSON."""
    kind = _content_type(message.headers)
    if "json" in kind:
        return True
    if "form" in kind:
        return False
    return message.body.lstrip()[:1] in (b"{", b"[")


def _split(value: str, separator: str | None) -> list[str]:
    parts = value.split(separator) if separator else [value]
    return [p for p in parts if p.strip()]


def overridden_to_post(query: str) -> bool:
    """True when the query carries `_method=POST`, MessageBird's method override.

    Read leniently (a malformed pair is skipped), so an odd query cannot hide it.
    """
    for raw in query.split("&"):
        name, _, value = raw.partition("=")
        if (unquote_plus(name, errors="replace").strip() == "_method"
                and unquote_plus(value, errors="replace").strip().upper() == "POST"):
            return True
    return False


def _form_recipients(text: str, field: str, separator: str | None
                     ) -> tuple[list[str], Callable[[frozenset[str]], str]] | BodyError | None:
    """Recipients in url-encoded `text` (`field`, `field[]`, `field[N]`), with a function
    rewriting `text` without some; None when no such field is present."""
    pattern = re.compile(re.escape(field) + r"(\[[0-9]*\])?")
    if not any(pattern.fullmatch(unquote_plus(raw.partition("=")[0], errors="replace"))
               for raw in text.split("&")):
        return None
    pairs = parse_form_pairs(text)
    if isinstance(pairs, BodyError):
        return pairs
    ours = [pattern.fullmatch(p.name) is not None for p in pairs]
    values = [part for p, mine in zip(pairs, ours, strict=True) if mine
              for part in _split(p.value, separator)]

    def remove(blocked: frozenset[str]) -> str:
        kept: list[str] = []
        for pair, mine in zip(pairs, ours, strict=True):
            parts = _split(pair.value, separator)
            left = [p for p in parts if p not in blocked] if mine else parts
            if left == parts:
                kept.append(pair.raw)
            elif left:
                joined = quote_plus((separator or "").join(left), safe="")
                kept.append(f"{pair.raw.partition('=')[0]}={joined}")
        return "&".join(kept)

    return values, remove


@dataclass(frozen=True, slots=True)
class MessageBirdRecipients:
    """Recipients of a MessageBird send; `separator` joins several in one value.

    The body is JSON or a form (by Content-Type); in a form `name`, `name[]` and
    `name[N]` fields all count. Recipients in the query string count too (the API reads
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
        in_query = _form_recipients(message.query, self.field, self.separator)
        if isinstance(in_query, BodyError):
            return in_query
        if in_query is None:
            return self._labelled(self._body(message))
        values, rewrite = in_query
        body = self._body(message) if message.body.strip() else None
        if isinstance(body, Recipients):
            return self._labelled(Recipients((*body.values, *values)))
        if isinstance(body, BodyError) and body.code != "missing_destination":
            return body
        if not values:
            return BodyError("missing_destination", f"'{self.field}' is empty")
        return self._labelled(Recipients(
            tuple(values), lambda blocked: replace(message, query=rewrite(blocked))))

    def _body(self, message: Message) -> Recipients | BodyError:
        if is_json(message):
            return JsonPath(self.field, self.separator, numbers=True).find(message)
        try:
            text = message.body.decode("utf-8")
        except UnicodeDecodeError:
            return BodyError("invalid_form", "the body is not UTF-8")
        found = _form_recipients(text, self.field, self.separator)
        if isinstance(found, BodyError):
            return found
        if found is None or not found[0]:
            return BodyError("missing_destination", f"form field '{self.field}' is missing")
        values, rewrite = found
        # Some recipient always stays: the proxy asks only when some are allowed.
        return Recipients(tuple(values),
                          lambda blocked: replace(message, body=rewrite(blocked).encode()))

    @staticmethod
    def _labelled(found: Recipients | BodyError) -> Recipients | BodyError:
        if isinstance(found, BodyError):
            return found
        # Only phone numbers are ever blocked, so the remover sees the raw values unchanged.
        return Recipients(tuple(_label(v) for v in found.values), found.remover)


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


class MessageBirdPreset:
    """MessageBird messages, MMS, voice messages, verifications and calls."""

    name = "messagebird"
    msisdn = True
    default_region: str | None = None

    def routes(self, upstream: UpstreamConfig) -> tuple[Route, ...]:
        recipients = ("recipients", ",")
        sends: tuple[tuple[str, Channel, tuple[str, str | None]], ...] = (
            ("messages", "sms", recipients),
            ("mms", "sms", recipients),
            ("voicemessages", "voice", recipients),
            ("verify", "sms", ("recipient", None)),
            ("calls", "voice", ("destination", None)),
        )
        routes = [Route("POST", re.compile(r"^/messages/(?P<resource>batches)$", re.I), "sms",
                        MessageBirdRecipients("messages[].recipients", ","))]
        for resource, channel, (field, separator) in sends:
            pattern = re.compile(rf"^/(?P<resource>{resource})$", re.I)
            routes.append(Route("POST", pattern, channel,
                                MessageBirdRecipients(field, separator)))
            # `?_method=POST` turns these into the same send (for clients that cannot POST).
            routes.extend(Route(method, pattern, channel,
                                MessageBirdRecipients(field, separator, override=True))
                          for method in _OVERRIDABLE)
        return tuple(routes)

    def identities(self, message: Message, path_params: Mapping[str, str]) -> tuple[str, ...]:
        """The digest of the `AccessKey` token."""
        digest = token_digest(message.headers, scheme="AccessKey")
        return (digest,) if digest else ()

    def reject(self, blocked: Blocked) -> Reply:
        parameter = {"verify": "recipient", "calls": "destination"}.get(
            blocked.path_params.get("resource", "").lower(), "recipients")
        return json_reply(422, {"errors": [{
            "code": BLOCKED_CODE,
            "description": "no (correct) recipients found: the recipient is on a block list",
            "parameter": parameter,
        }]})

    def skip(self, blocked: Blocked) -> Reply:
        resource = blocked.path_params.get("resource", "messages").lower()
        fields = _fields(blocked.message)
        object_id = uuid4().hex
        now = _now()
        if resource == "calls":
            return json_reply(201, {
                "data": [{"id": str(uuid4()), "status": "ended", "source": fields.get("source"),
                          "destination": blocked.destination, "createdAt": now[:19] + "Z",
                          "updatedAt": now[:19] + "Z", "endedAt": now[:19] + "Z"}],
                "_links": {}, "pagination": {"totalCount": 0, "pageCount": 0,
                                             "currentPage": 0, "perPage": 0},
            })
        href = f"{REST_URL}/{resource}/{object_id}"
        if resource == "verify":
            return json_reply(201, {
                "id": object_id, "href": href, "recipient": _msisdn(blocked.destination),
                "reference": fields.get("reference"),
                "messages": {"href": f"{REST_URL}/messages?verify={object_id}"},
                "status": "failed", "createdDatetime": now, "validUntilDatetime": now,
            })
        if resource == "batches":
            messages = fields.get("messages")
            requested = [m for m in messages if isinstance(m, dict)] \
                if isinstance(messages, list) else []
            return json_reply(201, [
                _message_object("messages", m, _listed(m.get("recipients")), now)
                for m in requested] or [
                _message_object("messages", {}, _ordered(blocked), now)])
        return json_reply(201, _message_object(resource, fields, _ordered(blocked), now))


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

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
- sms: GET/POST `/verify/json|xml` and `/verify/psd2/json|xml` (legacy Verify): `number`,
  read like the legacy SMS API's `to` (query and body).
- sms: POST `/v2/verify` (Verify v2): every `workflow[].to`, the numbers a code goes to by
  SMS, WhatsApp, voice or silent auth, checked on the sms channel (a voice-only entry
  does not stop a Verify workflow); an email step's address is not a phone number and
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
the SDK raises `VerifyError`), skip status "0" with a fresh `request_id`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import unquote_plus
from uuid import uuid4
from xml.sax.saxutils import escape

from gatekeeper.config import UpstreamConfig
from gatekeeper.providers.base import (
    Blocked,
    BodyError,
    Converted,
    FormField,
    JsonDoc,
    JsonPath,
    JsonPosition,
    Locator,
    Message,
    Recipients,
    Reply,
    Route,
    basic_user,
    dump_json,
    json_reply,
    load_json,
    remove_positions,
    token_digest,
)

# NCCO has no hang-up or reject action, and an empty NCCO has been reported as refused
# (Vonage then fetches the fallback answer URL, which might connect the caller); a short
# talk action is always valid, and the call ends once it has played.
INBOUND_END_CALL = Reply(
    200, json.dumps([{"action": "talk", "text": "This call cannot be completed."}]).encode())

BARRED_STATUS = "7"  # legacy SMS API: "Number barred."
PROBLEM_TYPE = "https://developer.vonage.com/api-errors#forbidden"
_SMS_FORMAT = r"(?:/(?P<sms_format>json|xml))?$"
# Endpoint types that never reach a phone number (Voice and Messages v0.1).
_NOT_PHONE = frozenset({"websocket", "app", "vbc", "messenger"})


def _header(headers: Mapping[str, str], name: str) -> str:
    """A header value; works on plain dicts as well as case-insensitive mappings."""
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    return value or ""


def _names(text: str) -> list[tuple[str, str]]:
    """Decoded (name, value) pairs of a query or form, read leniently: a malformed pair
    must not hide a well-formed `sig` or `api_key` beside it."""
    pairs = []
    for raw in text.split("&"):
        name, _, value = raw.partition("=")
        pairs.append((unquote_plus(name, errors="replace"),
                      unquote_plus(value, errors="replace")))
    return pairs


def _body_params(body: bytes) -> list[tuple[str, str | object]]:
    """Top-level parameters of a body read both as JSON and as a form (lenient)."""
    found: list[tuple[str, str | object]] = []
    doc = load_json(body)
    if isinstance(doc, dict):
        found.extend(doc.items())
    found.extend(_names(body.decode("utf-8", errors="replace")))
    return found


def is_signed(message: Message) -> bool:
    """True when `sig` is a parameter anywhere: query, form body or JSON body."""
    params = [*_names(message.query), *_body_params(message.body)]
    return any(name == "sig" for name, _ in params)


@dataclass(frozen=True, slots=True)
class Signed:
    """Another locator's recipients, made uneditable when the request carries `sig`."""

    inner: Locator

    def find(self, message: Message) -> Recipients | BodyError:
        found = self.inner.find(message)
        if isinstance(found, BodyError) or not is_signed(message):
            return found
        return Recipients(found.values, None)


# ------------------------------------------------------------------ legacy SMS

BodyKind = Literal["json", "form"]


def body_kind(message: Message) -> BodyKind | BodyError | None:
    """How the body is encoded: by Content-Type, sniffed when that says nothing useful."""
    if not message.body.strip():
        return None
    media = _header(message.headers, "Content-Type").partition(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return "json"
    if media == "application/x-www-form-urlencoded":
        return "form"
    if media.startswith("multipart/"):
        # Parameters in multipart parts would go unseen: refuse rather than miss a `to`.
        return BodyError("invalid_form", "multipart bodies are not checked; send the "
                                         "parameters url-encoded or as JSON")
    return "json" if message.body.lstrip()[:1] in (b"{", b"[") else "form"


@dataclass(frozen=True, slots=True)
class SmsParams:
    """`to` wherever the legacy SMS API reads parameters: the query and the body."""

    name: str = "to"

    def find(self, message: Message) -> Recipients | BodyError:
        kind = body_kind(message)
        if isinstance(kind, BodyError):
            return kind
        sources: list[tuple[str, Locator]] = [("query", FormField(self.name, in_query=True))]
        if kind == "form":
            sources.append(("body", FormField(self.name)))
        elif kind == "json":
            sources.append(("body", JsonPath(self.name, numbers=True)))
        parts: list[tuple[str, Recipients]] = []
        for where, locator in sources:
            found = locator.find(message)
            if isinstance(found, BodyError):
                if found.code != "missing_destination":
                    return found
                continue
            parts.append((where, found))
        if not parts:
            return BodyError("missing_destination",
                             f"parameter '{self.name}' is in neither the query nor the body")

        def remove(blocked: frozenset[str]) -> Message | None:
            edited = message
            for where, part in parts:
                if blocked.isdisjoint(part.values):
                    continue  # left byte for byte as sent
                without = part.without(blocked)
                if without is None:
                    return None
                edited = replace(edited, query=without.query) if where == "query" else \
                    replace(edited, body=without.body)
            return edited

        return Recipients(tuple(v for _, part in parts for v in part.values), remove)


# ------------------------------------------------------------------ endpoints

def _text(value: object) -> str | None:
    """A string, or an integer written as one (MSISDNs sent as JSON numbers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def endpoint_value(endpoint: object, where: str) -> str | BodyError:
    """The recipient an endpoint object stands for.

    Phone-like endpoints give their `number`; `sip` its `uri`; websocket, app, vbc and
    messenger endpoints are not phone numbers and give `client:<type>`.
    """
    if not isinstance(endpoint, dict):
        return BodyError("invalid_destination_field", f"'{where}' is not an endpoint object")
    kind = endpoint.get("type")
    kind = kind.lower() if isinstance(kind, str) else None
    if "number" in endpoint or kind == "phone":
        number = _text(endpoint.get("number"))
        if number is None:
            return BodyError("invalid_destination_field", f"'{where}.number' is not a string")
        return number
    if kind in ("sip", "sips"):
        uri = endpoint.get("uri")
        if not isinstance(uri, str):
            return BodyError("invalid_destination_field", f"'{where}.uri' is not a string")
        return uri
    if kind in _NOT_PHONE:
        return f"client:{kind}"
    # A phone-like or unknown type without a number: refuse rather than guess.
    return BodyError("invalid_destination_field", f"'{where}' has no number")


def _endpoints(value: object, pos: JsonPosition, where: str
               ) -> list[tuple[str, JsonPosition]] | BodyError:
    """Each endpoint of an array (or of a lone object or number) with its position."""
    items: list[tuple[object, JsonPosition]]
    if isinstance(value, list):
        items = [(v, (*pos, i)) for i, v in enumerate(value)]
    else:
        items = [(value, pos)]
    found: list[tuple[str, JsonPosition]] = []
    for item, at in items:
        # A bare number where an object belongs is still a number to check.
        raw = _text(item)
        if raw is None:
            got = endpoint_value(item, where)
            if isinstance(got, BodyError):
                return got
            raw = got
        found.append((raw, at))
    return found


def _connects(ncco: object, pos: JsonPosition, where: str
              ) -> list[tuple[str, JsonPosition]] | BodyError:
    """The endpoints of every `connect` action of an inline NCCO."""
    if not isinstance(ncco, list):
        return []
    found: list[tuple[str, JsonPosition]] = []
    for i, action in enumerate(ncco):
        if not isinstance(action, dict) or str(action.get("action", "")).lower() != "connect":
            continue
        if "endpoint" not in action:
            return BodyError("invalid_destination_field", f"'{where}[{i}]' has no endpoint")
        got = _endpoints(action["endpoint"], (*pos, i, "endpoint"), f"{where}[{i}].endpoint")
        if isinstance(got, BodyError):
            return got
        found.extend(got)
    return found


def _object(body: bytes, path: str) -> dict[str, JsonDoc] | BodyError:
    doc = load_json(body)
    if isinstance(doc, BodyError):
        return doc
    if not isinstance(doc, dict):
        return BodyError("missing_destination", f"no destination at '{path}'")
    return doc


@dataclass(frozen=True, slots=True)
class CallEndpoints:
    """What a Voice request dials: `to[]` (create) and inline NCCO connect endpoints.

    `create=False` reads a call update (`PUT /v1/calls/{uuid}`): only a transfer to an
    inline NCCO dials anything; other updates have no recipients.
    """

    create: bool = True

    def find(self, message: Message) -> Recipients | BodyError:
        if not self.create and not message.body.strip():
            return Recipients(())
        doc = _object(message.body, "to")
        if isinstance(doc, BodyError):
            return doc
        found: list[tuple[str, JsonPosition]] = []
        targets = 0
        if self.create:
            if "to" not in doc:
                return BodyError("missing_destination", "no destination at 'to'")
            got = _endpoints(doc["to"], ("to",), "to")
            if isinstance(got, BodyError):
                return got
            if not got:
                return BodyError("missing_destination", "no destination at 'to'")
            found, targets = got, len(got)
            ncco_at: JsonPosition = ("ncco",)
            ncco = doc.get("ncco")
        else:
            destination = doc.get("destination")
            if str(doc.get("action", "")).lower() != "transfer" or \
                    not isinstance(destination, dict):
                return Recipients(())
            ncco_at = ("destination", "ncco")
            ncco = destination.get("ncco")
        connects = _connects(ncco, ncco_at, ".".join(map(str, ncco_at)))
        if isinstance(connects, BodyError):
            return connects
        found.extend(connects)

        def remove(blocked: frozenset[str]) -> Message | None:
            if targets and all(raw in blocked for raw, _ in found[:targets]):
                return None  # a call needs someone to call
            edited = copy.deepcopy(doc)
            if not remove_positions(edited, [pos for raw, pos in found if raw in blocked]):
                return None  # a lone `to` object
            holder = edited if self.create else edited["destination"]
            assert isinstance(holder, dict)
            if isinstance(ncco, list) and ncco and not holder["ncco"]:
                return None  # nothing left for the call to do
            return replace(message, body=dump_json(edited))

        return Recipients(tuple(raw for raw, _ in found), remove)


# ------------------------------------------------------------------ Messages

def message_to(item: Mapping[str, object], where: str) -> str | BodyError:
    """The recipient of one Messages API message (`to`, read by its `channel`)."""
    if "to" not in item:
        return BodyError("missing_destination", f"no destination at '{where}'")
    value = _text(item["to"])
    if value is None:
        return BodyError("invalid_destination_field", f"'{where}' is not a string")
    if str(item.get("channel", "")).lower() == "messenger":
        return "client:messenger"  # a page-scoped id, not a phone number
    return value


@dataclass(frozen=True, slots=True)
class MessagesTo:
    """Messages API v1: `to` and the `to` of each `failover` message."""

    def find(self, message: Message) -> Recipients | BodyError:
        doc = _object(message.body, "to")
        if isinstance(doc, BodyError):
            return doc
        primary = message_to(doc, "to")
        if isinstance(primary, BodyError):
            return primary
        failover = doc.get("failover")
        backups: list[str] = []
        if failover is not None:
            if not isinstance(failover, list):
                return BodyError("invalid_destination_field", "'failover' is not an array")
            for i, item in enumerate(failover):
                if not isinstance(item, dict):
                    return BodyError("invalid_destination_field",
                                     f"'failover[{i}]' is not a message object")
                got = message_to(item, f"failover[{i}].to")
                if isinstance(got, BodyError):
                    return got
                backups.append(got)

        def remove(blocked: frozenset[str]) -> Message | None:
            if primary in blocked or not isinstance(failover, list):
                return None  # the message itself cannot lose its recipient
            kept = [item for item, raw in zip(failover, backups, strict=True)
                    if raw not in blocked]
            edited = dict(doc)
            if kept:
                edited["failover"] = kept
            else:
                del edited["failover"]
            return replace(message, body=dump_json(edited))

        return Recipients((primary, *backups), remove)


@dataclass(frozen=True, slots=True)
class EndpointAt:
    """Endpoint objects at `path` (`to`, `workflow[].to`); never rewritten."""

    path: str

    def find(self, message: Message) -> Recipients | BodyError:
        doc = _object(message.body, self.path)
        if isinstance(doc, BodyError):
            return doc
        nodes: list[object] = [doc]
        for step in self.path.split("."):
            name, many = step.removesuffix("[]"), step.endswith("[]")
            nxt: list[object] = []
            for node in nodes:
                if isinstance(node, dict) and name in node:
                    value = node[name]
                    if many and not isinstance(value, list):
                        return BodyError("invalid_destination_field",
                                         f"'{self.path}': '{name}' is not an array")
                    nxt.extend(value if many else [value])
            nodes = nxt
        values: list[str] = []
        for node in nodes:
            got = _endpoints(node, (), self.path)
            if isinstance(got, BodyError):
                return got
            values.extend(raw for raw, _ in got)
        if not values:
            return BodyError("missing_destination", f"no destination at '{self.path}'")
        return Recipients(tuple(values), None)


# ------------------------------------------------------------------ identities

def jwt_application(headers: Mapping[str, str]) -> str | None:
    """The `application_id` claim of a Bearer JWT (read, not verified).

    The SDK makes a new JWT for every request, so its digest never repeats; the
    application id is the stable identity. Vonage verifies the signature itself, so a
    forged claim cannot reach a send; here it can only add scopes, i.e. more checks.
    """
    scheme, _, token = _header(headers, "Authorization").partition(" ")
    parts = token.strip().split(".")
    if scheme.lower() != "bearer" or len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    app = claims.get("application_id") if isinstance(claims, dict) else None
    return app if isinstance(app, str) and app else None


# ------------------------------------------------------------------ replies

def verify_recipient(value: str) -> str:
    """A Verify step's `to`: an email address is not a phone number; numbers unchanged."""
    return f"client:email:{value}" if "@" in value else value


def _problem(blocked: Blocked) -> Reply:
    return json_reply(403, {
        "type": PROBLEM_TYPE,
        "title": "Forbidden",
        "detail": "The destination is on a block list; the request was not sent.",
        "instance": blocked.request_id,
    }, "application/problem+json")


def _sms_reply(blocked: Blocked, status: str) -> Reply:
    """A legacy SMS API answer for one message, in the format the path asked for."""
    fields: dict[str, str] = {"to": blocked.destination}
    if status == "0":
        fields |= {"message-id": str(uuid4()), "status": status}
    else:
        fields |= {"status": status, "error-text": "Number barred."}
    if (blocked.path_params.get("sms_format") or "json").lower() == "xml":
        tags = {"message-id": "messageId", "error-text": "errorText"}
        inner = "".join(f"<{tags.get(k, k)}>{escape(v)}</{tags.get(k, k)}>"
                        for k, v in fields.items())
        return Reply(200, ('<?xml version="1.0" encoding="UTF-8"?><mt-submission-response>'
                           f'<messages count="1"><message>{inner}</message></messages>'
                           "</mt-submission-response>").encode(), "text/xml")
    return json_reply(200, {"message-count": "1", "messages": [fields]})


def _verify_reply(blocked: Blocked, fields: dict[str, str]) -> Reply:
    """A legacy Verify API answer, in the format the path asked for."""
    if blocked.path_params["verify_format"].lower() == "xml":
        inner = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields.items())
        return Reply(200, ('<?xml version="1.0" encoding="UTF-8"?>'
                           f"<verify_response>{inner}</verify_response>").encode(), "text/xml")
    return json_reply(200, fields)


def _is_legacy_sms(blocked: Blocked) -> bool:
    return "sms_format" in blocked.path_params


class VonagePreset:
    """Vonage's legacy SMS, Messages (v1, v0.1, Dispatch), Voice v1 and Verify APIs."""

    name = "vonage"
    msisdn = True
    default_region: str | None = None

    def routes(self, upstream: UpstreamConfig) -> tuple[Route, ...]:
        sms = Signed(SmsParams())
        legacy = re.compile(r"^/sms" + _SMS_FORMAT, re.I)
        short_code = re.compile(r"^/sc/us/(?:alert|2fa|marketing)" + _SMS_FORMAT, re.I)
        legacy_verify = re.compile(r"^/verify(?:/psd2)?/(?P<verify_format>json|xml)$", re.I)
        return (
            Route("POST", legacy, "sms", sms),
            Route("GET", legacy, "sms", sms),
            Route("POST", short_code, "sms", sms),
            Route("GET", short_code, "sms", sms),
            Route("POST", re.compile(r"^/v1/messages$", re.I), "sms", Signed(MessagesTo())),
            Route("POST", re.compile(r"^/v0\.1/messages$", re.I), "sms", EndpointAt("to")),
            Route("POST", re.compile(r"^/v0\.1/(?P<dispatch>dispatch)$", re.I), "sms",
                  EndpointAt("workflow[].to")),
            Route("POST", legacy_verify, "sms", Signed(SmsParams("number"))),
            Route("GET", legacy_verify, "sms", Signed(SmsParams("number"))),
            Route("POST", re.compile(r"^/v2/(?P<verify>verify)$", re.I), "sms",
                  Signed(Converted(JsonPath("workflow[].to"), verify_recipient))),
            Route("POST", re.compile(r"^/v1/calls$", re.I), "voice",
                  Signed(CallEndpoints(create=True))),
            Route("PUT", re.compile(r"^/v1/calls/(?P<call_uuid>[^/]+)$", re.I), "voice",
                  Signed(CallEndpoints(create=False))),
        )

    def identities(self, message: Message, path_params: Mapping[str, str]) -> tuple[str, ...]:
        """`api_key` (query or body), the Basic user, a JWT's application id, the token
        digest."""
        keys = [value for name, value in (*_names(message.query), *_body_params(message.body))
                if name == "api_key" and isinstance(value, str) and value]
        found = (*keys, basic_user(message.headers), jwt_application(message.headers),
                 token_digest(message.headers))
        return tuple(dict.fromkeys(i for i in found if i))

    def reject(self, blocked: Blocked) -> Reply:
        if _is_legacy_sms(blocked):
            return _sms_reply(blocked, BARRED_STATUS)
        if "verify_format" in blocked.path_params:
            return _verify_reply(blocked, {
                "status": BARRED_STATUS,
                "error_text": "The number you are trying to verify is blacklisted for "
                              "verification."})
        return _problem(blocked)

    def skip(self, blocked: Blocked) -> Reply:
        if _is_legacy_sms(blocked):
            return _sms_reply(blocked, "0")
        if "verify_format" in blocked.path_params:
            return _verify_reply(blocked, {"request_id": uuid4().hex, "status": "0"})
        if blocked.path_params.get("call_uuid"):
            return Reply(204, b"")  # a transfer answers with no content
        if blocked.path_params.get("dispatch"):
            return json_reply(202, {"dispatch_uuid": str(uuid4())})
        if blocked.path_params.get("verify"):
            return json_reply(202, {"request_id": str(uuid4())})
        if blocked.channel == "voice":
            return json_reply(201, {"uuid": str(uuid4()), "status": "started",
                                    "direction": "outbound",
                                    "conversation_uuid": f"CON-{uuid4()}"})
        reply: dict[str, str] = {"message_uuid": str(uuid4())}
        doc = load_json(blocked.message.body)
        if isinstance(doc, dict) and doc.get("failover"):
            reply["workflow_id"] = str(uuid4())  # sends with failover also get one
        return json_reply(202, reply)


PRESET = VonagePreset()

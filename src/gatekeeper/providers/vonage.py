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
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import unquote_plus
from uuid import uuid4
from xml.sax.saxutils import escape

from gatekeeper.config import UpstreamConfig
from gatekeeper.providers.credentials import basic_user, header, token_digest
from gatekeeper.providers.locators import (
    Converted,
    FormField,
    JsonPath,
    JsonPosition,
    edited,
    is_email,
    json_leaves,
    load_json,
    load_json_all,
    members,
    plan_deletions,
)
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
from gatekeeper.replies import Reply, json_reply
from gatekeeper.types import Channel

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
    return any(name.strip().casefold() == "sig" for name, _ in params)


@dataclass(frozen=True, slots=True)
class Signed:
    """Another locator's recipients, made uneditable when the request carries `sig`."""

    inner: Locator

    def find(self, message: Message) -> Recipients | BodyError:
        found = self.inner.find(message)
        if isinstance(found, BodyError) or not is_signed(message):
            return found
        return found.fixed()


# ------------------------------------------------------------------ legacy SMS

BodyKind = Literal["json", "form"]


def body_kind(message: Message) -> BodyKind | BodyError | None:
    """How the body is encoded: by Content-Type, sniffed when that says nothing useful."""
    if not message.body.strip():
        return None
    media = header(message.headers, "Content-Type").partition(";")[0].strip().lower()
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
            if message.body.lstrip()[:1] in (b"{", b"["):
                # JSON labelled as a form: a gateway that sniffs reads the JSON.
                sources.append(("json", JsonPath(self.name, numbers=True)))
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

        values = tuple(v for _, part in parts for v in part.values)
        if len(parts) > 1:
            # Named in the query and in the body: which one Vonage reads is not ours to
            # guess, so both are decided and the request is never edited.
            return Recipients(values)
        where, part = parts[0]
        if part.remover is None:
            return Recipients(values)

        def remove(blocked: frozenset[str]) -> Message | None:
            without = part.without(blocked)
            if without is None:
                return None
            return replace(message, query=without.query) if where == "query" else \
                replace(message, body=without.body)

        return Recipients(values, remove)


# ------------------------------------------------------------------ endpoints

def _text(value: object) -> str | None:
    """A string, or an integer written as one (MSISDNs sent as JSON numbers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _all(node: object, key: str) -> tuple[list[object], bool]:
    """Every value some reader takes for `key` of `node` (any case, every duplicate)."""
    found, exact = members(node, key)
    return [value for _, value in found], exact


@dataclass(frozen=True, slots=True)
class Found:
    """Recipients with their positions, and whether every reading agrees on them."""

    items: list[tuple[str, JsonPosition]]
    exact: bool = True


def endpoint_values(endpoint: object, pos: JsonPosition, where: str) -> Found | BodyError:
    """The recipients an endpoint object stands for.

    Phone-like endpoints give their `number`; `sip` its `uri`; websocket, app, vbc and
    messenger endpoints are not phone numbers and give `client:<type>`. A bare number
    where an object belongs is still a number.
    """
    bare = _text(endpoint)
    if bare is not None:
        return Found([(bare, pos)])
    if not isinstance(endpoint, dict):
        return BodyError("invalid_destination_field", f"'{where}' is not an endpoint object")
    kinds, exact_kind = _all(endpoint, "type")
    names = {k.lower() for k in kinds if isinstance(k, str)}
    numbers, exact_number = _all(endpoint, "number")
    uris, exact_uri = _all(endpoint, "uri")
    values: list[str] = []
    if numbers or "phone" in names:
        for number in numbers or [None]:
            text = _text(number)
            if text is None:
                return BodyError("invalid_destination_field", f"'{where}.number' is not a string")
            values.append(text)
    if names & {"sip", "sips"}:
        for uri in uris or [None]:
            if not isinstance(uri, str):
                return BodyError("invalid_destination_field", f"'{where}.uri' is not a string")
            values.append(uri)
    if not values:
        if not names or not names <= _NOT_PHONE:
            # A phone-like or unknown type without a number: refuse rather than guess.
            return BodyError("invalid_destination_field", f"'{where}' has no number")
        values = [f"client:{kind}" for kind in sorted(names)]
    exact = exact_kind and exact_number and exact_uri and len(kinds) <= 1 and \
        len(numbers) + len(uris) <= 1
    return Found([(v, pos) for v in values], exact)


def _endpoints(value: object, pos: JsonPosition, where: str) -> Found | BodyError:
    """Each endpoint of an array (or of a lone object or number) with its position."""
    items = [(v, (*pos, i)) for i, v in enumerate(value)] if isinstance(value, list) else \
        [(value, pos)]
    out = Found([])
    for item, at in items:
        got = endpoint_values(item, at, where)
        if isinstance(got, BodyError):
            return got
        out = Found(out.items + got.items, out.exact and got.exact)
    return out


def _connects(ncco: object, pos: JsonPosition, where: str) -> Found | BodyError:
    """The endpoints of every `connect` action of an inline NCCO."""
    if not isinstance(ncco, list):
        return Found([])
    out = Found([])
    for i, action in enumerate(ncco):
        names, exact = _all(action, "action")
        if not any(isinstance(n, str) and n.lower() == "connect" for n in names):
            continue
        hits, clean = members(action, "endpoint")
        if not hits:
            return BodyError("invalid_destination_field", f"'{where}[{i}]' has no endpoint")
        for key, endpoint in hits:
            got = _endpoints(endpoint, (*pos, i, key), f"{where}[{i}].endpoint")
            if isinstance(got, BodyError):
                return got
            out = Found(out.items + got.items,
                        out.exact and exact and clean and got.exact and len(names) == 1)
    return out


def _object(body: bytes, path: str) -> dict[str, object] | BodyError:
    doc = load_json_all(body)
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
        found = Found([])
        targets = 0
        nccos: list[tuple[object, JsonPosition]] = []
        if self.create:
            hits, clean = members(doc, "to")
            for key, value in hits:
                got = _endpoints(value, (key,), "to")
                if isinstance(got, BodyError):
                    return got
                found = Found(found.items + got.items, found.exact and got.exact)
            if not found.items:
                return BodyError("missing_destination", "no destination at 'to'")
            targets = len(found.items)
            found = Found(found.items, found.exact and clean and len(hits) == 1)
            ncco_hits, clean = members(doc, "ncco")
            nccos = [(v, (k,)) for k, v in ncco_hits]
        else:
            actions, clean_action = _all(doc, "action")
            if not any(isinstance(a, str) and a.lower() == "transfer" for a in actions):
                return Recipients(())
            destinations, clean = members(doc, "destination")
            for key, destination in destinations:
                inner, clean_inner = members(destination, "ncco")
                nccos.extend((v, (key, k)) for k, v in inner)
                clean = clean and clean_inner
            clean = clean and clean_action and len(destinations) <= 1
        for ncco, at in nccos:
            got = _connects(ncco, at, ".".join(map(str, at)))
            if isinstance(got, BodyError):
                return got
            found = Found(found.items + got.items, found.exact and got.exact)
        exact = found.exact and clean and len(nccos) <= 1
        values = tuple(raw for raw, _ in found.items)
        if not exact:
            return Recipients(values)
        ncco_list = nccos[0] if nccos else None

        def remove(blocked: frozenset[str]) -> Message | None:
            if targets and all(raw in blocked for raw, _ in found.items[:targets]):
                return None  # a call needs someone to call
            doomed = plan_deletions(doc, [pos for raw, pos in found.items if raw in blocked])
            if doomed is None:
                return None  # a lone `to` object
            if ncco_list is not None and isinstance(ncco_list[0], list) and ncco_list[0] and \
                    all((*ncco_list[1], i) in doomed for i in range(len(ncco_list[0]))):
                return None  # nothing left for the call to do
            return edited(message, doomed)

        return Recipients(values, remove)


# ------------------------------------------------------------------ Messages

def message_to(item: object, where: str) -> Found | BodyError:
    """The recipient of one Messages API message (`to`, read by its `channel`)."""
    hits, exact = members(item, "to")
    if not hits:
        return BodyError("missing_destination", f"no destination at '{where}'")
    channels, clean = _all(item, "channel")
    messenger = any(isinstance(c, str) and c.lower() == "messenger" for c in channels)
    out: list[tuple[str, JsonPosition]] = []
    for key, value in hits:
        text = _text(value)
        if text is None:
            return BodyError("invalid_destination_field", f"'{where}' is not a string")
        # A Messenger recipient is a page-scoped id, not a phone number.
        out.append(("client:messenger" if messenger and len(channels) == 1 else text, (key,)))
    return Found(out, exact and clean and len(hits) == 1 and len(channels) <= 1)


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
        failovers, exact = members(doc, "failover")
        backups: list[tuple[str, int]] = []
        for _, failover in failovers:
            if failover is None:
                continue
            if not isinstance(failover, list):
                return BodyError("invalid_destination_field", "'failover' is not an array")
            for i, item in enumerate(failover):
                if not isinstance(item, dict):
                    return BodyError("invalid_destination_field",
                                     f"'failover[{i}]' is not a message object")
                got = message_to(item, f"failover[{i}].to")
                if isinstance(got, BodyError):
                    return got
                exact = exact and got.exact
                backups.extend((raw, i) for raw, _ in got.items)
        values = (*(raw for raw, _ in primary.items), *(raw for raw, _ in backups))
        if not (exact and primary.exact and len(failovers) <= 1):
            return Recipients(values)
        key = failovers[0][0] if failovers else "failover"
        count = len(failovers[0][1]) if failovers and isinstance(failovers[0][1], list) else 0

        def remove(blocked: frozenset[str]) -> Message | None:
            if any(raw in blocked for raw, _ in primary.items):
                return None  # the message itself cannot lose its recipient
            gone = sorted({i for raw, i in backups if raw in blocked})
            if len(gone) == count:
                return edited(message, [(key,)])
            return edited(message, [(key, i) for i in gone])

        return Recipients(values, remove)


@dataclass(frozen=True, slots=True)
class EndpointAt:
    """Endpoint objects at `path` (`to`, `workflow[].to`); never rewritten."""

    path: str

    def find(self, message: Message) -> Recipients | BodyError:
        doc = _object(message.body, self.path)
        if isinstance(doc, BodyError):
            return doc
        leaves = json_leaves(doc, self.path)
        if isinstance(leaves, BodyError):
            return leaves
        values: list[str] = []
        for node, pos in leaves.found:
            got = _endpoints(node, pos, self.path)
            if isinstance(got, BodyError):
                return got
            values.extend(raw for raw, _ in got.items)
        if not values:
            return BodyError("missing_destination", f"no destination at '{self.path}'")
        return Recipients(tuple(values))


# ------------------------------------------------------------------ identities

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


# ------------------------------------------------------------------ replies

def verify_recipient(value: str) -> str:
    """A Verify step's `to`: an email address is not a phone number; numbers unchanged."""
    return f"client:email:{value}" if is_email(value) else value


def problem(blocked: Blocked) -> Reply:
    """The 403 problem+json the Messages, Voice and Verify v2 SDKs raise (why in
    `detail` for a policy rule)."""
    detail = "The destination is on a block list; the request was not sent." \
        if policy_rule(blocked) is None else \
        because("The request was not sent; the destination is blocked", blocked)
    return json_reply(403, {
        "type": PROBLEM_TYPE,
        "title": "Forbidden",
        "detail": detail,
        "instance": blocked.request_id,
    }, "application/problem+json")


def _sms_reply(blocked: Blocked, status: str, xml: bool) -> Reply:
    """A legacy SMS API answer for one message, in the format the path asked for."""
    fields: dict[str, str] = {"to": blocked.destination}
    if status == "0":
        fields |= {"message-id": str(uuid4()), "status": status}
    else:
        # Status 7 for a policy rule too: the SMS API has no code for a region or type
        # the account refuses (29, "Non-White-listed Destination", is demo mode's).
        text = "Number barred." if policy_rule(blocked) is None else \
            because("Number barred", blocked)
        fields |= {"status": status, "error-text": text}
    if xml:
        tags = {"message-id": "messageId", "error-text": "errorText"}
        inner = "".join(f"<{tags.get(k, k)}>{escape(v)}</{tags.get(k, k)}>"
                        for k, v in fields.items())
        return Reply(200, ('<?xml version="1.0" encoding="UTF-8"?><mt-submission-response>'
                           f'<messages count="1"><message>{inner}</message></messages>'
                           "</mt-submission-response>").encode(), "text/xml")
    return json_reply(200, {"message-count": "1", "messages": [fields]})


def _verify_reply(fields: dict[str, str], xml: bool) -> Reply:
    """A legacy Verify API answer, in the format the path asked for."""
    if xml:
        inner = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields.items())
        return Reply(200, ('<?xml version="1.0" encoding="UTF-8"?>'
                           f"<verify_response>{inner}</verify_response>").encode(), "text/xml")
    return json_reply(200, fields)


def sms_replies(xml: bool) -> tuple[ReplyFn, ReplyFn]:
    """Legacy SMS: reject is status "7" Number barred (the SDK's `SmsError`); skip "0"."""
    return (lambda b: _sms_reply(b, BARRED_STATUS, xml), lambda b: _sms_reply(b, "0", xml))


def _verify_barred(blocked: Blocked) -> str:
    if policy_rule(blocked) is None:
        return "The number you are trying to verify is blacklisted for verification."
    return because("The number you are trying to verify is barred from verification",
                   blocked)


def verify_replies(xml: bool) -> tuple[ReplyFn, ReplyFn]:
    """Legacy Verify: reject status "7" (blacklisted; `VerifyError`; why in `error_text`
    for a policy rule); skip "0"."""
    return (lambda b: _verify_reply({
        "status": BARRED_STATUS, "error_text": _verify_barred(b)}, xml),
        lambda b: _verify_reply({"request_id": uuid4().hex, "status": "0"}, xml))


def _accepted(key: str) -> ReplyFn:
    return lambda b: json_reply(202, {key: str(uuid4())})


def skip_message(blocked: Blocked) -> Reply:
    """Messages API: 202 with a message id (and a workflow id when it had failover)."""
    reply: dict[str, str] = {"message_uuid": str(uuid4())}
    doc = load_json(blocked.message.body)
    if isinstance(doc, dict) and doc.get("failover"):
        reply["workflow_id"] = str(uuid4())  # sends with failover also get one
    return json_reply(202, reply)


def skip_call(blocked: Blocked) -> Reply:
    """Voice API create: 201 `started`, as create-call always answers."""
    return json_reply(201, {"uuid": str(uuid4()), "status": "started", "direction": "outbound",
                            "conversation_uuid": f"CON-{uuid4()}"})


def skip_transfer(blocked: Blocked) -> Reply:
    """A call update answers with no content."""
    return Reply(204, b"")


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
                  _accepted("dispatch_uuid")),
            # Verify v2: a code by SMS, WhatsApp, voice or silent auth: either channel.
            route("POST", "/v2/verify", None,
                  Signed(Converted(JsonPath("workflow[].to"), verify_recipient)), problem,
                  _accepted("request_id")),
            route("POST", "/v1/calls", "voice", Signed(CallEndpoints(create=True)), problem,
                  skip_call),
            route("PUT", "/v1/calls/{call_uuid}", "voice", Signed(CallEndpoints(create=False)),
                  problem, skip_transfer),
        )

    def identities(self, message: Message, path: str) -> tuple[str, ...]:
        """`api_key` (query or body), the Basic user, a JWT's application id, the token
        digest."""
        keys = [value for name, value in (*_names(message.query), *_body_params(message.body))
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

"""The `plivo` preset: Plivo's Message and Call resources (API v1).

Sends are POST `/v1/Account/{auth_id}/Message/` (sms, recipients in `dst`) and
`/v1/Account/{auth_id}/Call/` (voice, recipients in `to`), JSON. Both fields take several
destinations joined by `<` (`14155550100<14155550101`); a partly blocked send keeps the
others in the same `<`-joined string. Also checked: Verify sessions, POST
`/v1/Account/{auth_id}/Verify/Session/` (the code goes to `recipient`; sent by SMS or
voice, so sms- and voice-only entries both count), and participants added to a multi-party
call, POST `.../MultiPartyCall/{name_X|uuid_X}/Participant/` (voice, `to`, `<`-joined for
agents; a participant added by `call_uuid` alone dials nobody and passes).
Numbers are written without `+`, so the preset is `msisdn`; `sip:` endpoints in `to` are
not phone numbers and pass. The resource names are matched case-insensitively and with or
without a trailing `s`, so an odd spelling cannot slip past. A JSON number in `dst`/`to`
is read as a number, not refused.

Reject: 400 `{"api_id", "error"}` (the SDK raises `ValidationError`), the error saying
why when a policy rule refused the send. Skip: Plivo's own
success, 202 `message(s) queued` with one `message_uuid` per destination, 201
`call fired` (`calls fired` with a list of `request_uuid` for a bulk call), 202
`Session initiated` with a `session_uuid` no code was sent for, or 201 `add participant
action initiated`; Plivo's replies carry no status, so nothing in them can say the send
was dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from uuid import uuid4

from gatekeeper.config import UpstreamConfig
from gatekeeper.providers.credentials import basic_user
from gatekeeper.providers.locators import JsonPath, load_json_all, members
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

_ACCOUNT = "/v1/Account/{auth_id}"
_ACCOUNT_IN_PATH = re.compile(r"^/v1/Account/([^/]+)", re.I)
_DST = JsonPath("dst", separator="<", numbers=True)
_TO = JsonPath("to", separator="<", numbers=True)
_RECIPIENT = JsonPath("recipient", numbers=True)


@dataclass(frozen=True, slots=True)
class DialsIfGiven:
    """`to` when the body has one; none when it has none (a participant added by
    `call_uuid` joins an existing call and dials nobody)."""

    inner: JsonPath

    def find(self, message: Message) -> Recipients | BodyError:
        doc = load_json_all(message.body)
        if isinstance(doc, BodyError):
            return doc
        hits, _ = members(doc, self.inner.path)
        if all(value in (None, "") for _, value in hits):
            return Recipients(())
        return self.inner.find(message)


def _distinct(blocked: Blocked, locator: JsonPath) -> list[str]:
    """The distinct destinations of the refused request, in order (at least one)."""
    found = locator.find(blocked.message)
    if isinstance(found, BodyError) or not found.values:
        return [blocked.destination]
    return list(dict.fromkeys(found.values))


def rejecting(field: str) -> ReplyFn:
    """Plivo's 400 (the SDK raises `ValidationError`) naming the refused field, and why
    for a policy rule. Plivo's errors carry no code, only this text."""
    def reject(blocked: Blocked) -> Reply:
        error = f"'{field}' is blocked: the destination number is on a block list." \
            if policy_rule(blocked) is None else because(f"'{field}' is blocked", blocked)
        return json_reply(400, {"api_id": str(uuid4()), "error": error})
    return reject


def skip_message(blocked: Blocked) -> Reply:
    """202 `message(s) queued`, one uuid per destination (none of them sent)."""
    count = len(_distinct(blocked, _DST))
    return json_reply(202, {"api_id": str(uuid4()), "message": "message(s) queued",
                            "message_uuid": [str(uuid4()) for _ in range(count)]})


def skip_call(blocked: Blocked) -> Reply:
    """201 `call fired` (`calls fired` with a list for a bulk call)."""
    count = len(_distinct(blocked, _TO))
    if count == 1:
        return json_reply(201, {"api_id": str(uuid4()), "message": "call fired",
                                "request_uuid": str(uuid4())})
    return json_reply(201, {"api_id": str(uuid4()), "message": "calls fired",
                            "request_uuid": [str(uuid4()) for _ in range(count)]})


def skip_session(blocked: Blocked) -> Reply:
    """202 `Session initiated`, with a session no code was sent for."""
    return json_reply(202, {"api_id": str(uuid4()), "message": "Session initiated",
                            "session_uuid": str(uuid4())})


def skip_participant(blocked: Blocked) -> Reply:
    """201 `add participant action initiated`."""
    return json_reply(201, {"api_id": str(uuid4()), "message": "add participant action initiated",
                            "request_uuid": str(uuid4())})


class PlivoPreset:
    """Plivo's Message and Call resources, Verify sessions and multi-party participants."""

    name = "plivo"
    msisdn = True
    default_region: str | None = None
    quiet_writes = (template(f"{_ACCOUNT}/{{:PhoneNumbers?}}", prefix=True),
                    template(f"{_ACCOUNT}/{{:Numbers?}}", prefix=True))
    list_api = None

    def routes(self, upstream: UpstreamConfig) -> tuple[Route, ...]:
        return (
            route("POST", f"{_ACCOUNT}/{{:Messages?}}", "sms", _DST, rejecting("dst"),
                  skip_message),
            route("POST", f"{_ACCOUNT}/{{:Calls?}}", "voice", _TO, rejecting("to"), skip_call),
            # The code goes out by SMS or by a call: either channel.
            route("POST", f"{_ACCOUNT}/Verify/{{:Sessions?}}", None, _RECIPIENT,
                  rejecting("recipient"), skip_session),
            route("POST", f"{_ACCOUNT}/{{:MultiPartyCalls?}}/{{mpc_id}}/{{:Participants?}}",
                  "voice", DialsIfGiven(_TO), rejecting("to"), skip_participant),
        )

    def identities(self, message: Message, path: str) -> tuple[str, ...]:
        """The auth id in the path and the Basic user (the auth id the SDK signs with)."""
        in_path = _ACCOUNT_IN_PATH.match(path)
        found = (in_path.group(1) if in_path else None, basic_user(message.headers))
        return tuple(dict.fromkeys(i for i in found if i))

    def unauthorized(self, request_id: str) -> Reply:
        return json_reply(401, {"api_id": str(uuid4()),
                                "error": "Authentication credentials invalid."})


    def refuse(self, blocked: Blocked) -> Reply:
        return rejecting("to")(blocked)

PRESET = PlivoPreset()

"""The `plivo` preset: Plivo's Message and Call resources (API v1).

Sends are POST `/v1/Account/{auth_id}/Message/` (sms, recipients in `dst`) and
`/v1/Account/{auth_id}/Call/` (voice, recipients in `to`), JSON. Both fields take several
destinations joined by `<` (`14155550100<14155550101`); a partly blocked send keeps the
others in the same `<`-joined string. Also checked: Verify sessions, POST
`/v1/Account/{auth_id}/Verify/Session/` (the code goes to `recipient`; checked on the sms
channel whether it is sent by SMS or voice), and participants added to a multi-party
call, POST `.../MultiPartyCall/{name_X|uuid_X}/Participant/` (voice, `to`, `<`-joined for
agents; a participant added by `call_uuid` alone dials nobody and passes).
Numbers are written without `+`, so the preset is `msisdn`; `sip:` endpoints in `to` are
not phone numbers and pass. The resource names are matched case-insensitively and with or
without a trailing `s`, so an odd spelling cannot slip past. A JSON number in `dst`/`to`
is read as a number, not refused.

Reject: 400 `{"api_id", "error"}` (the SDK raises `ValidationError`). Skip: Plivo's own
success, 202 `message(s) queued` with one `message_uuid` per destination, 201
`call fired` (`calls fired` with a list of `request_uuid` for a bulk call), 202
`Session initiated` with a `session_uuid` no code was sent for, or 201 `add participant
action initiated`; Plivo's replies carry no status, so nothing in them can say the send
was dropped.
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
    JsonPath,
    Message,
    Recipients,
    Reply,
    Route,
    basic_user,
    json_reply,
    load_json,
)

_ACCOUNT = r"^/v1/Account/(?P<auth_id>[^/]+)"
_DST = JsonPath("dst", separator="<", numbers=True)
_TO = JsonPath("to", separator="<", numbers=True)
_RECIPIENT = JsonPath("recipient", numbers=True)


@dataclass(frozen=True, slots=True)
class DialsIfGiven:
    """`to` when the body has one; none when it has none (a participant added by
    `call_uuid` joins an existing call and dials nobody)."""

    inner: JsonPath

    def find(self, message: Message) -> Recipients | BodyError:
        doc = load_json(message.body)
        if isinstance(doc, BodyError):
            return doc
        if isinstance(doc, dict) and doc.get(self.inner.path) in (None, ""):
            return Recipients(())
        return self.inner.find(message)


def _field(blocked: Blocked) -> str:
    """The request field that held the refused destination."""
    if "verify" in blocked.path_params:
        return "recipient"
    return "dst" if blocked.channel == "sms" else "to"


def _destinations(blocked: Blocked) -> list[str]:
    """The distinct destinations of the refused request, in order (at least one)."""
    locator = {"dst": _DST, "to": _TO, "recipient": _RECIPIENT}[_field(blocked)]
    found = locator.find(blocked.message)
    if isinstance(found, BodyError):
        return [blocked.destination]
    return list(dict.fromkeys(found.values))


class PlivoPreset:
    """Plivo's Message and Call resources, Verify sessions and multi-party participants."""

    name = "plivo"
    msisdn = True
    default_region: str | None = None

    def routes(self, upstream: UpstreamConfig) -> tuple[Route, ...]:
        return (
            Route("POST", re.compile(_ACCOUNT + r"/Messages?$", re.I), "sms", _DST),
            Route("POST", re.compile(_ACCOUNT + r"/Calls?$", re.I), "voice", _TO),
            Route("POST", re.compile(_ACCOUNT + r"/(?P<verify>Verify)/Sessions?$", re.I),
                  "sms", _RECIPIENT),
            Route("POST", re.compile(
                _ACCOUNT + r"/(?P<mpc>MultiPartyCalls?)/(?P<mpc_id>[^/]+)/Participants?$",
                re.I), "voice", DialsIfGiven(_TO)),
        )

    def identities(self, message: Message, path_params: Mapping[str, str]) -> tuple[str, ...]:
        """The auth id in the path and the Basic user (the auth id the SDK signs with)."""
        found = (path_params.get("auth_id"), basic_user(message.headers))
        return tuple(dict.fromkeys(i for i in found if i))

    def reject(self, blocked: Blocked) -> Reply:
        return json_reply(400, {
            "api_id": str(uuid4()),
            "error": f"'{_field(blocked)}' is blocked: the destination number is on a block "
                     "list.",
        })

    def skip(self, blocked: Blocked) -> Reply:
        if "verify" in blocked.path_params:
            return json_reply(202, {"api_id": str(uuid4()), "message": "Session initiated",
                                    "session_uuid": str(uuid4())})
        if "mpc" in blocked.path_params:
            return json_reply(201, {"api_id": str(uuid4()),
                                    "message": "add participant action initiated",
                                    "request_uuid": str(uuid4())})
        count = len(_destinations(blocked))
        if blocked.channel == "sms":
            return json_reply(202, {
                "api_id": str(uuid4()),
                "message": "message(s) queued",
                "message_uuid": [str(uuid4()) for _ in range(count)],
            })
        if count == 1:
            return json_reply(201, {"api_id": str(uuid4()), "message": "call fired",
                                    "request_uuid": str(uuid4())})
        return json_reply(201, {"api_id": str(uuid4()), "message": "calls fired",
                                "request_uuid": [str(uuid4()) for _ in range(count)]})


PRESET = PlivoPreset()

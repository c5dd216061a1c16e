"""The `plivo` preset: Plivo's Message and Call resources (API v1).

Sends are POST `/v1/Account/{auth_id}/Message/` (sms, recipients in `dst`) and
`/v1/Account/{auth_id}/Call/` (voice, recipients in `to`), JSON. Both fields take several
destinations joined by `<` (`14155550100<14155550101`); a partly blocked send keeps the
others in the same `<`-joined string. Numbers are written without `+`, so the preset is
`msisdn`; `sip:` endpoints in `to` are not phone numbers and pass. The resource names
are matched case-insensitively and with or without a trailing `s`, so an odd spelling
cannot slip past. A JSON number in `dst`/`to` is read as a number, not refused.

Reject: 400 `{"api_id", "error"}` (the SDK raises `ValidationError`). Skip: Plivo's own
success, 202 `message(s) queued` with one `message_uuid` per destination, or 201
`call fired` (`calls fired` with a list of `request_uuid` for a bulk call); Plivo's
replies carry no status, so nothing in them can say the send was dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from uuid import uuid4

from gatekeeper.config import UpstreamConfig
from gatekeeper.providers.base import (
    Blocked,
    BodyError,
    JsonPath,
    Message,
    Reply,
    Route,
    basic_user,
    json_reply,
)

_ACCOUNT = r"^/v1/Account/(?P<auth_id>[^/]+)"
_DST = JsonPath("dst", separator="<", numbers=True)
_TO = JsonPath("to", separator="<", numbers=True)


def _destinations(blocked: Blocked) -> list[str]:
    """The distinct destinations of the refused request, in order (at least one)."""
    locator = _DST if blocked.channel == "sms" else _TO
    found = locator.find(blocked.message)
    if isinstance(found, BodyError):
        return [blocked.destination]
    return list(dict.fromkeys(found.values))


class PlivoPreset:
    """Plivo's Message and Call resources."""

    name = "plivo"
    msisdn = True
    default_region: str | None = None

    def routes(self, upstream: UpstreamConfig) -> tuple[Route, ...]:
        return (
            Route("POST", re.compile(_ACCOUNT + r"/Messages?$", re.I), "sms", _DST),
            Route("POST", re.compile(_ACCOUNT + r"/Calls?$", re.I), "voice", _TO),
        )

    def identities(self, message: Message, path_params: Mapping[str, str]) -> tuple[str, ...]:
        """The auth id in the path and the Basic user (the auth id the SDK signs with)."""
        found = (path_params.get("auth_id"), basic_user(message.headers))
        return tuple(dict.fromkeys(i for i in found if i))

    def reject(self, blocked: Blocked) -> Reply:
        field = "dst" if blocked.channel == "sms" else "to"
        return json_reply(400, {
            "api_id": str(uuid4()),
            "error": f"'{field}' is blocked: the destination number is on a block list.",
        })

    def skip(self, blocked: Blocked) -> Reply:
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

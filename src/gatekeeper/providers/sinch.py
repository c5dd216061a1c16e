"""The `sinch` preset: the Sinch SMS REST API (`https://{region}.sms.api.sinch.com`).

Routes below `/xms/v1/{service_plan_id}` (a project id on the `zt.` OAuth hosts), JSON:
- POST `/batches` (send), PUT `/batches/{id}` (replace): recipients in `to` (up to 1000).
- POST `/batches/{id}` (update a scheduled batch): recipients added by `to_add`; an
  update without `to_add` adds nobody and is forwarded unchecked.
- POST `/batches/dry_run`: sends nothing, but is checked like a send (decision): the dry
  run then predicts what the real send would do, recipients removed included.
- POST `/groups`, PUT `/groups/{id}` (`members`), POST `/groups/{id}` (`add`): group
  members receive every batch sent to the group, and a batch to a group ID cannot be
  checked, so members are checked when they are added (decision).
`to` may hold group IDs next to numbers; those are reported as `client:group:<id>` (not
a phone number, forwarded). Numbers are MSISDNs with or without `+` (msisdn = True).
Reject: 403 `{"code": "forbidden", "text": ...}`, which the SDK raises as its
`SmsException` (the text says why when a policy rule refused the send). Skip: the
object Sinch would return (batch, dry-run result or group) with generated ids; a skipped
batch says `"canceled": true`, since nothing will be sent.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from gatekeeper.config import UpstreamConfig
from gatekeeper.providers.credentials import token_digest
from gatekeeper.providers.locators import JsonPath, load_json
from gatekeeper.providers.policy_text import because, policy_rule
from gatekeeper.providers.preset import (
    Blocked,
    BodyError,
    Message,
    Recipients,
    Route,
    route,
)
from gatekeeper.providers.routing import template
from gatekeeper.replies import Reply, json_reply

_PLAN = "/xms/v1/{service_plan_id}"
_PLAN_IN_PATH = re.compile(r"^/xms/v1/([^/]+)", re.I)
# Sinch group IDs are ULIDs (26 Crockford base32 characters); no phone number has letters.
_GROUP_ID = re.compile(r"(?=[0-9]*[A-Za-z])[0-9A-Za-z]{20,40}")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Fields of a batch request that Sinch echoes in the batch it returns.
_ECHOED = ("from", "body", "type", "udh", "parameters", "delivery_report", "send_at",
           "expire_at", "callback_url", "client_reference", "feedback_enabled",
           "flash_message", "truncate_concat", "max_number_of_message_parts", "from_ton",
           "from_npi")


@dataclass(frozen=True, slots=True)
class SinchRecipients:
    """Recipients in a top-level JSON array (`to`, `to_add`, `members`, `add`).

    Group IDs become `client:group:<id>`; with `optional`, an absent, null or empty
    field means the request adds no recipient (an update that only changes the text).
    """

    field: str
    optional: bool = False

    def find(self, message: Message) -> Recipients | BodyError:
        found = JsonPath(self.field, optional=self.optional).find(message)
        if isinstance(found, BodyError):
            return found
        # Only phone numbers are ever blocked, so the remover sees the raw values unchanged.
        values = tuple(f"client:group:{v}" if _GROUP_ID.fullmatch(v) else v
                       for v in found.values)
        return Recipients(values, found.remover)


def new_id() -> str:
    """A ULID-shaped id (48-bit milliseconds + 80 random bits), as Sinch's ids are."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def reject(blocked: Blocked) -> Reply:
    """403 `{code, text}`, which the SDK raises as its `SmsException`; `forbidden` for a
    policy rule too (the SMS API documents no code for a refused region, type or hour),
    with why in `text`."""
    text = "The recipient is on a block list: the request was not sent." \
        if policy_rule(blocked) is None else \
        because("The recipient is blocked, the request was not sent", blocked)
    return json_reply(403, {"code": "forbidden", "text": text})


def _request(blocked: Blocked) -> dict[str, object]:
    doc = load_json(blocked.message.body)
    return doc if isinstance(doc, dict) else {}


def skip_group(blocked: Blocked) -> Reply:
    """The group Sinch would return: a new one has no member; an existing one's size is
    not known here."""
    request, now = _request(blocked), _now()
    group_id = blocked.path_params.get("group_id")
    group = {"id": group_id or new_id(), "name": request.get("name"), "created_at": now,
             "modified_at": now, "child_groups": request.get("child_groups") or []}
    return json_reply(200, group) if group_id else json_reply(201, group | {"size": 0})


def skip_dry_run(blocked: Blocked) -> Reply:
    """A dry run that would send nothing."""
    return json_reply(200, {"number_of_recipients": 0, "number_of_messages": 0})


def skip_batch(blocked: Blocked) -> Reply:
    """The batch, `canceled: true`: 201 for a new one, 200 for a replaced or updated one."""
    request, now = _request(blocked), _now()
    batch_id = blocked.path_params.get("batch_id")
    batch = {key: request[key] for key in _ECHOED if key in request}
    # A replace names the whole `to`; an update only the recipients it adds.
    recipients = request.get("to", request.get("to_add"))
    batch |= {"id": batch_id or new_id(),
              "to": recipients if isinstance(recipients, list) else [blocked.destination],
              "type": batch.get("type") or "mt_text", "canceled": True, "created_at": now,
              "modified_at": now}
    return json_reply(200 if batch_id else 201, batch)


class SinchPreset:
    """Sinch SMS batches and groups (service plan id or project id in the path)."""

    name = "sinch"
    msisdn = True
    default_region: str | None = None
    # Delivery feedback names recipients already sent to.
    quiet_writes = (template(f"{_PLAN}/batches/{{batch_id}}/delivery_feedback"),)
    list_api = None

    def routes(self, upstream: UpstreamConfig) -> tuple[Route, ...]:
        batches, groups = f"{_PLAN}/batches", f"{_PLAN}/groups"
        to = SinchRecipients("to")
        return (
            # Before `/batches/{id}`, which would otherwise take `dry_run` for an id.
            route("POST", f"{batches}/dry_run", "sms", to, reject, skip_dry_run),
            route("POST", batches, "sms", to, reject, skip_batch),
            route("PUT", f"{batches}/{{batch_id}}", "sms", to, reject, skip_batch),
            route("POST PATCH", f"{batches}/{{batch_id}}", "sms",
                  SinchRecipients("to_add", optional=True), reject, skip_batch),
            route("POST", groups, "sms", SinchRecipients("members", optional=True), reject,
                  skip_group),
            route("PUT", f"{groups}/{{group_id}}", "sms",
                  SinchRecipients("members", optional=True), reject, skip_group),
            route("POST PATCH", f"{groups}/{{group_id}}", "sms",
                  SinchRecipients("add", optional=True), reject, skip_group),
        )

    def identities(self, message: Message, path: str) -> tuple[str, ...]:
        """The service plan (or project) id in the path and the Bearer token's digest."""
        in_path = _PLAN_IN_PATH.match(path)
        found = (in_path.group(1) if in_path else None, token_digest(message.headers))
        return tuple(dict.fromkeys(i for i in found if i))

    def unauthorized(self, request_id: str) -> Reply:
        return json_reply(401, {"code": "unauthorized",
                                "text": "Authentication failed: check the service plan id "
                                        "and token."})


    def refuse(self, blocked: Blocked) -> Reply:
        return reject(blocked)

PRESET = SinchPreset()

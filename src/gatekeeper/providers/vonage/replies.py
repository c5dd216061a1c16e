"""What a blocked Vonage request gets back, in each API's shape: legacy SMS and Verify
status "7" or "0" (JSON or XML), 403 problem+json, and the skips of Messages, Voice and
Verify v2."""

from __future__ import annotations

from uuid import uuid4
from xml.sax.saxutils import escape

from gatekeeper.providers.locators import load_json
from gatekeeper.providers.policy_text import because, policy_rule
from gatekeeper.providers.preset import Blocked, ReplyFn
from gatekeeper.replies import Reply, json_reply

BARRED_STATUS = "7"  # legacy SMS API: "Number barred."
PROBLEM_TYPE = "https://developer.vonage.com/api-errors#forbidden"


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


def accepted(key: str) -> ReplyFn:
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

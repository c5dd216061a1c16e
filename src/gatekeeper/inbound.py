"""Inbound webhooks on the proxy: call screening and SMS opt-outs.

A gateway calls the webhook's path on the proxy; Gatekeeper looks at the caller, and
forwards the webhook to the application URL unchanged (method, body, headers: so
`X-Twilio-Signature` still verifies against the public URL) unless the caller is blocked:
- `twilio-voice`: form (or query) `From`; a blocked caller gets TwiML `<Reject>`.
- `vonage-answer`: query `from` (GET) or JSON `from` (POST); a blocked caller gets an NCCO
  that ends the call.
- `twilio-sms`: form `From` and `Body`; STOP-like keywords add the sender to the block list
  (sms channel, source `opt-out`), START-like ones remove such an opt-out entry (never a
  manual one). The webhook is forwarded either way.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from gatekeeper.config import WebhookConfig
from gatekeeper.forwarding import relay
from gatekeeper.numbers import parse_destination
from gatekeeper.observability import OUTCOME, REQUEST_ID, Outcome
from gatekeeper.providers import twilio, vonage
from gatekeeper.providers.forms import parse_form, parse_pairs
from gatekeeper.providers.locators import load_json
from gatekeeper.providers.preset import BodyError
from gatekeeper.replies import Reply, error_response, to_response
from gatekeeper.resources import RESOURCES, Resources
from gatekeeper.screener import Screener, attempt_for
from gatekeeper.store import EntryMeta, ListItem, StoreUnavailable
from gatekeeper.types import Channel

OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
OPT_OUT_SOURCE = "opt-out"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling or texting, as the webhook says (None when it does not say)."""

    number: str | None
    body: str = ""


def _form_fields(request: web.Request, body: bytes) -> dict[str, str]:
    """Twilio posts a form; a GET webhook carries the same fields in its query."""
    if request.method == "GET":
        pairs = parse_pairs(request.rel_url.raw_query_string)
        return {} if isinstance(pairs, BodyError) else {p.name: p.value for p in pairs}
    form = parse_form(body)
    return {} if isinstance(form, BodyError) else {k: v[0] for k, v in form.items()}


def twilio_caller(request: web.Request, body: bytes) -> Caller:
    """`From` (and `Body`) of a Twilio webhook."""
    fields = _form_fields(request, body)
    return Caller(fields.get("From"), fields.get("Body", ""))


def vonage_caller(request: web.Request, body: bytes) -> Caller:
    """`from` of a Vonage answer webhook: query on GET, JSON body on POST."""
    if request.method == "GET" or not body:
        return Caller(request.query.get("from"))
    doc = load_json(body)
    value = doc.get("from") if isinstance(doc, dict) else None
    return Caller(value if isinstance(value, str) else None)


@dataclass(frozen=True, slots=True)
class Kind:
    """How a webhook type reads its caller and refuses a blocked one."""

    channel: Channel
    caller: Callable[[web.Request, bytes], Caller]
    refusal: Reply | None       # None: never refused (opt-out processing only)
    msisdn: bool


def kind_of(config: WebhookConfig) -> Kind:
    """The behaviour of a webhook type."""
    if config.type == "twilio-voice":
        return Kind("voice", twilio_caller, twilio.INBOUND_REJECT, msisdn=False)
    if config.type == "vonage-answer":
        return Kind("voice", vonage_caller, vonage.INBOUND_END_CALL, msisdn=True)
    return Kind("sms", twilio_caller, None, msisdn=False)


def keyword(body: str) -> str:
    """The message as a keyword: trimmed, upper-case, trailing `.`/`!` dropped."""
    return body.strip().rstrip(".!").strip().upper()


class Webhook:
    """One configured webhook: screens the caller, then forwards to the application."""

    def __init__(self, resources: Resources, screener: Screener, config: WebhookConfig) -> None:
        self.resources = resources
        self.screener = screener
        self.config = config
        self.kind = kind_of(config)
        self.scopes = tuple(dict.fromkeys(("global", *config.scopes)))
        url = urlsplit(config.url)
        self.path, self.query = url.path or "/", url.query

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Screen, maybe refuse, maybe record an opt-out or opt-in, else forward."""
        request_id = request[REQUEST_ID]
        name, channel = self.config.name, self.kind.channel
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return error_response(413, "body_too_large", "The body is too large.", request_id)
        caller = self.kind.caller(request, body)
        raw = caller.number or ""
        destination = parse_destination(raw, self.config.region, self.kind.msisdn)
        if not destination.keys:
            # Anonymous or withheld callers, client: and sip: users: nothing to screen.
            request[OUTCOME] = Outcome(name, channel, "forwarded", ("not_a_phone_number",),
                                       self.scopes, direction="inbound")
            return await self._forward(request, body, "forwarded")
        if self.kind.refusal is None:
            number = destination.e164 or destination.keys[0]
            op = await self._opt_out(request_id, number, caller.body)
            request[OUTCOME] = Outcome(name, channel, "forwarded", (op,), self.scopes,
                                       direction="inbound")
            return await self._forward(request, body, "forwarded")
        screened = await self.screener.screen(request_id, {raw: destination}, self.scopes,
                                              channel)
        if screened.store_failed and not screened.fail_open:
            request[OUTCOME] = Outcome(name, channel, "rejected", ("store_unavailable",),
                                       self.scopes, direction="inbound")
            return error_response(503, "store_unavailable", "The list store is unavailable.",
                                  request_id, "rejected")
        reasons = ("store_unavailable",) if screened.store_failed else \
            tuple(d.verdict for d in screened.decisions.values())
        blocked = tuple(screened.blocked.values())
        action = "rejected" if blocked else "forwarded"
        request[OUTCOME] = Outcome(name, channel, action, reasons, self.scopes, blocked,
                                   direction="inbound")
        if not blocked:
            return await self._forward(request, body, action)
        self.screener.record(attempt_for(request_id, name, channel, "inbound", self.scopes,
                                         blocked[0], action))
        return to_response(self.kind.refusal, action)

    async def _opt_out(self, request_id: str, number: str, body: str) -> str:
        """Apply an opt-out or opt-in keyword; returns `opt_out`, `opt_in` or `message`."""
        word = keyword(body)
        if word not in OPT_OUT_KEYWORDS | OPT_IN_KEYWORDS:
            return "message"
        store, log = self.resources.store, self.resources.log
        scope = self.config.opt_out_scope
        item = ListItem(number, "sms")
        try:
            if word in OPT_OUT_KEYWORDS:
                added, _ = await store.add("block", scope, [item], EntryMeta(
                    source=OPT_OUT_SOURCE, added_at=time.time(), added_by=self.config.name,
                    note=word))
                changed, op = len(added), "opt_out"
            else:
                removed = await store.remove_if_source("block", scope, item, OPT_OUT_SOURCE)
                changed, op = int(removed), "opt_in"
        except StoreUnavailable as exc:
            # The webhook still reaches the application; the operator sees the fault.
            op = "opt_out" if word in OPT_OUT_KEYWORDS else "opt_in"
            self.resources.metrics.store_errors.labels(op).inc()
            log.error("store_unavailable", request_id=request_id, operation=op, error=str(exc))
            return op
        log.info("list_changed", key_name=f"webhook:{self.config.name}", scope=scope,
                 list="block", op=op, keyword=word, changed=changed, request_id=request_id)
        return op

    async def _forward(self, request: web.Request, body: bytes, decision: str
                       ) -> web.StreamResponse:
        query = "&".join(q for q in (self.query, request.rel_url.raw_query_string) if q)
        target = self.path + (f"?{query}" if query else "")
        return await relay(self.resources, request, self.config.name, target, body,
                           self.config.timeout, decision)


def create_inbound_routes(app: web.Application, screener: Screener) -> None:
    """Install one route per configured webhook (before the proxy's catch-all)."""
    resources = app[RESOURCES]
    for config in resources.config.webhooks:
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]] = \
            Webhook(resources, screener, config).handle
        app.router.add_route("*", config.path, handler)

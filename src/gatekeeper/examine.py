"""Screening one request that can send: finding its destinations, deciding them and, on
a send route, cutting the blocked ones out. One implementation, run in either place: on
the event loop (`Sending`) or in the screening helper process (`bigscreen`), which sends
the result back as compact, picklable data. Acting on the result (forwarding, replies,
metrics, logs, the attempts stream) is `Sending`'s, on the event loop, in both cases.

Two ways in: a known send route (the route's recipients, plus any phone number in the
query string of a send that does not read its query) and an unknown write (`route`
None: every phone number anywhere in the request, decided on both channels, never
edited).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol, TypeVar

from gatekeeper.numbers import Destination
from gatekeeper.policy import Decision
from gatekeeper.providers.credentials import header
from gatekeeper.providers.preset import BodyError, Message, Recipients, Route
from gatekeeper.rules import MEMO_SIZE, Intent, Policy
from gatekeeper.scan import ScanError, is_phone_like, scan_request
from gatekeeper.screening import LOOKUP_SLICE, Judging, Lookup, Screened, parse_all, screen
from gatekeeper.velocity import Count, Counted

if TYPE_CHECKING:
    from gatekeeper.config import Config
    from gatekeeper.proxy import Mount

T = TypeVar("T")
_SCAN_ERRORS = {"too_many_values": 413}


class Offload(Protocol):
    """Runs pure `work` of a body of `size` bytes (in a worker thread, or right away)."""

    def __call__(self, size: int, work: Callable[[], T], /) -> Awaitable[T]: ...


async def at_once(_size: int, work: Callable[[], T]) -> T:
    """`Offload` where nothing else waits (the helper process)."""
    return work()


@dataclass(frozen=True, slots=True)
class Rules:
    """What screening takes from the configuration."""

    on_invalid: str
    max_recipients: int
    mask: bool
    fail_closed: bool
    policy: Policy = field(default_factory=Policy)

    @classmethod
    def of(cls, config: Config) -> Rules:
        """The rules of a configuration."""
        return cls(config.proxy.on_invalid, config.proxy.max_recipients,
                   config.log.mask_numbers, config.store.on_error == "closed",
                   config.policy)


@dataclass(frozen=True, slots=True)
class Job:
    """A request to screen: its upstream (by name), message and scopes, and for an
    unknown write the path below the mount (its segments are scanned too)."""

    upstream: str
    message: Message
    scopes: tuple[str, ...]
    path: str = ""
    intent: Intent = "marketing"
    at: float = 0.0  # the instant the policy rules judge at (0: when screened)
    policy: Policy | None = None  # set through the admin API (None: the Rules')


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request refused before anything is forwarded: status, code, message, reason."""

    status: int
    code: str
    text: str
    reason: str


@dataclass(frozen=True, slots=True)
class Examined:
    """What screening found: a refusal, or the blocked destinations, the counted reasons
    and the request without the blocked recipients (when it is a partial send); plus
    a store fault to log, whichever it is."""

    refusal: Refusal | None = None
    blocked: dict[str, Decision] = field(default_factory=dict)  # raw -> decision
    # One count per distinct destination, aggregated: (reason, how many).
    reasons: tuple[tuple[str, int], ...] = ()
    rewritten: Message | None = None
    store_error: str | None = None
    # Policy rules that only monitor and would have blocked: (rule kind, how many).
    monitored: tuple[tuple[str, int], ...] = ()
    # Velocity counts (velocity.py): standing if the request is forwarded; to take back.
    counted: tuple[Counted, ...] = ()
    uncount: tuple[Counted, ...] = ()
    guards: tuple[Counted, ...] = ()  # pumping guards started (to log)

    def reason_list(self) -> tuple[str, ...]:
        """The reasons, one per distinct destination (as metrics count them)."""
        return tuple(reason for reason, count in self.reasons for _ in range(count))


def masked(raw: str) -> str:
    """A destination as error replies show it: never the whole number."""
    text = raw.strip()
    if len(text) <= 6:
        return "****"
    return f"{text[:4]}****{text[-2:]}"


async def examine(job: Job, mount: Mount, route: Route | None, rules: Rules,
                  lookup: Lookup, offload: Offload, lookup_slice: int = LOOKUP_SLICE,
                  count: Count | None = None) -> Examined:
    """Screen `job` on `route` (None: an unknown write, scanned) of `mount`; `count`:
    the store's velocity counting."""
    if job.policy is not None:
        rules = replace(rules, policy=job.policy)
    if route is None:
        return await _scan(job, mount, rules, lookup, offload, lookup_slice)
    return await _check(job, mount, route, rules, lookup, offload, lookup_slice, count)


async def _check(job: Job, mount: Mount, route: Route, rules: Rules, lookup: Lookup,
                 offload: Offload, lookup_slice: int, count: Count | None) -> Examined:
    message = job.message
    recipients = await offload(len(message.body), lambda: route.locator.find(message))
    if isinstance(recipients, BodyError):
        return _refused(400, recipients.code, recipients.message, "malformed_request")
    if message.query and not route.reads_query:
        # A number in the query of a send may be read by the gateway too.
        found = scan_request(message.query, b"", "", bare_digits=mount.preset.msisdn,
                             max_values=rules.max_recipients)
        if isinstance(found, ScanError):
            return _refused(_SCAN_ERRORS.get(found.code, 400), found.code, found.message,
                            "malformed_request")
        if found:
            recipients = Recipients((*recipients.values, *found))
    if len(recipients.values) > rules.max_recipients:
        return _refused(413, "too_many_recipients",
                        f"{len(recipients.values)} recipients; at most "
                        f"{rules.max_recipients} per request (proxy.max_recipients).",
                        "malformed_request")
    raws = list(dict.fromkeys(recipients.values))
    parsed = await parse_all(raws, mount.region, mount.preset.msisdn)
    screened = await screen(lookup, parsed, job.scopes, route.channel,
                            fail_closed=rules.fail_closed, lookup_slice=lookup_slice,
                            judging=_judging(job, rules, count,
                                             mount.upstream.on_block == "monitor"))
    error = screened.error if screened.store_failed else None
    blocked = screened.blocked
    # If refused here, nothing is sent; otherwise blocked destinations are not sent
    # either, unless the upstream only monitors (then they go, and count).
    back = screened.counted + screened.uncount + screened.unsent
    sent, unsent = (screened.counted + screened.unsent, ()) \
        if mount.upstream.on_block == "monitor" else (screened.counted, screened.unsent)
    invalid = next((raw for raw, d in parsed.items()
                    if d.kind == "invalid" and raw not in blocked), None)
    if invalid is not None and rules.on_invalid == "reject":
        shown = masked(invalid) if rules.mask else invalid
        return replace(_refused(400, "invalid_phone_number",
                                f"Not a possible phone number: {shown!r}.",
                                "invalid_number", error), uncount=back)
    if screened.store_failed and not screened.fail_open:
        return replace(_refused(503, "store_unavailable",
                                "The list store is unavailable; the send was not "
                                "forwarded.", "store_unavailable", error), uncount=back)
    # One count per distinct number, however many spellings of it the request holds.
    distinct = {(d.keys[0] if d.keys else raw): raw for raw, d in parsed.items()}
    reasons = Counter(_reason(parsed[raw], screened, raw) for raw in distinct.values())
    rewritten = None
    if blocked and mount.upstream.on_block != "monitor" and len(blocked) < len(parsed):
        gone = frozenset(blocked)
        rewritten = await offload(len(message.body), lambda: recipients.without(gone))
    return Examined(None, blocked, tuple(reasons.items()), rewritten, error,
                    _monitored(screened), sent, screened.uncount + unsent,
                    screened.guards)


async def _scan(job: Job, mount: Mount, rules: Rules, lookup: Lookup, offload: Offload,
                lookup_slice: int) -> Examined:
    message = job.message
    # Digits alone are numbers where the gateway writes them so (msisdn presets, and
    # iletiMerkezi's national `905...`).
    msisdn = mount.preset.msisdn or mount.preset.default_region is not None
    found = await offload(len(message.body), lambda: scan_request(
        message.query, message.body, header(message.headers, "Content-Type"),
        bare_digits=msisdn, max_values=rules.max_recipients))
    if isinstance(found, ScanError):
        code = "too_many_recipients" if found.code == "too_many_values" else found.code
        return _refused(_SCAN_ERRORS.get(found.code, 400), code, found.message,
                        "malformed_request")
    found += [s for s in job.path.split("/") if is_phone_like(s, bare_digits=msisdn)]
    raws = list(dict.fromkeys(found))
    parsed = {raw: d for raw, d in
              (await parse_all(raws, mount.region, mount.preset.msisdn)).items() if d.keys}
    screened = await screen(lookup, parsed, job.scopes, None,
                            fail_closed=rules.fail_closed, lookup_slice=lookup_slice,
                            judging=_judging(job, rules))
    error = screened.error if screened.store_failed else None
    if screened.store_failed and not screened.fail_open:
        return _refused(503, "store_unavailable",
                        "The list store is unavailable; the request was not forwarded.",
                        "store_unavailable", error)
    numbers = len({d.keys[0] for d in parsed.values()})
    reason = "store_unavailable" if screened.store_failed else "scanned"
    reasons = ((reason, numbers),) if numbers else (("scanned", 1),)
    return Examined(None, screened.blocked, reasons, None, error, _monitored(screened))


def _monitored(screened: Screened) -> tuple[tuple[str, int], ...]:
    """Monitor-only rule hits, one per distinct number and rule kind."""
    decisions = screened.decisions
    if len(decisions) == 1:  # most requests: one destination
        monitored = next(iter(decisions.values())).monitored
        if len(monitored) == 1:  # one rule (quiet hours at night, mostly)
            return ((monitored[0].kind, 1),)
        return tuple((kind, 1) for kind in dict.fromkeys(r.kind for r in monitored)) \
            if monitored else ()
    hits = Counter(kind for d in {d.number: d for d in screened.decisions.values()}.values()
                   for kind in dict.fromkeys(r.kind for r in d.monitored))
    return tuple(hits.items())


def _judging(job: Job, rules: Rules, count: Count | None = None,
             forwards_blocked: bool = False) -> Judging | None:
    """The policy rules' inputs for `job` (None: no scope of it has rules);
    `forwards_blocked`: its upstream forwards blocked destinations (and so counts
    them)."""
    scoped = rules.policy.memo.scoped
    has = scoped.get(job.scopes)
    if has is None:
        has = any(scope in rules.policy.scopes for scope in job.scopes)
        if len(scoped) >= MEMO_SIZE:
            scoped.clear()
        scoped[job.scopes] = has
    if not has:
        return None
    return Judging(rules.policy, job.intent, job.at or time.time(), count,
                   forwards_blocked)


def _refused(status: int, code: str, text: str, reason: str, error: str | None = None
             ) -> Examined:
    return Examined(Refusal(status, code, text, reason), store_error=error)


def _reason(destination: Destination, screened: Screened, raw: str) -> str:
    """The counted reason for one distinct destination."""
    decision = screened.decisions.get(raw)
    if decision is not None and decision.verdict == "blocked":
        return "blocked" if decision.rule is None else f"policy_{decision.rule.kind}"
    if destination.kind == "invalid":
        return "invalid_number"
    if destination.kind != "phone":
        return "not_a_phone_number"
    if screened.store_failed:
        return "store_unavailable"
    return decision.verdict if decision is not None else "unlisted"

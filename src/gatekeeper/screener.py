"""The screening on the event loop (`Screener`): `screening.screen` against the
store, and the one place its faults, monitor hits, pumping guards and take-backs are
logged and counted; and the attempts-stream record of a blocked decision."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gatekeeper.numbers import Destination, mask_number
from gatekeeper.policy import Decision
from gatekeeper.screening import Screened, screen
from gatekeeper.store import BlockedAttempt, StoreUnavailable
from gatekeeper.types import Channel
from gatekeeper.velocity import Counted

if TYPE_CHECKING:
    # Types only: resources imports the screening helper, which imports screening.
    from gatekeeper.resources import Resources


class Screener:
    """Decides numbers against the lists on the event loop; the one place store faults
    are logged and counted."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self.fail_closed = resources.config.store.on_error == "closed"
        # Whether `policy_monitored` lines are written (log.* changes need a restart):
        # below the level, the line is not even built (~0.8 us through structlog's
        # lazy proxy, on nearly every send while quiet hours monitor).
        self._monitor_lines = resources.config.log.level in ("debug", "info")

    async def screen(self, request_id: str, parsed: dict[str, Destination],
                     scopes: Sequence[str], channel: Channel | None) -> Screened:
        """Decide every reading of every parsed destination (`screen` on the store)."""
        screened = await screen(self.resources.store.lookup, parsed, scopes, channel,
                                fail_closed=self.fail_closed)
        if screened.store_failed:
            self.store_fault(request_id, screened.error)
        return screened

    def store_fault(self, request_id: str, error: str) -> None:
        """Log and count a lookup that failed on a store fault."""
        self.resources.store_fault("lookup", error, request_id=request_id,
                                   on_error="closed" if self.fail_closed else "open")

    def record(self, attempt: BlockedAttempt) -> None:
        """Append a blocked attempt to the stream without holding up the reply."""
        self.resources.spawn(self._append(attempt))

    def monitored(self, request_id: str, upstream: str, hits: tuple[tuple[str, int], ...]
                  ) -> None:
        """Count and log policy rules that would have blocked but only monitor (no
        number in the log: the counts by rule kind)."""
        self.resources.metrics.monitored(hits)
        if self._monitor_lines:
            self.resources.log.info("policy_monitored", request_id=request_id,
                                    upstream=upstream, rules=dict(hits))

    def guarded(self, request_id: str, guards: Sequence[Counted]) -> None:
        """Log and count pumping guards that started: a number block (or number, or
        country) now refused for the limit's `block_for`."""
        config = self.resources.config.log
        for one in guards:
            limit = one.over
            if limit is None:
                continue
            subject = one.subject
            if limit.per == "number" and config.mask_numbers:
                subject = mask_number(f"+{subject}")
            self.resources.metrics.policy_hit("velocity", "guard")
            self.resources.log.warning(
                "pumping_guard", request_id=request_id, scope=one.counting.scope,
                channel=one.counting.channel, limit=limit.spec, per=limit.per,
                subject=subject, held_seconds=round(limit.block_for))

    def uncount(self, request_id: str, counted: Sequence[Counted]) -> None:
        """Take back velocity counts of sends not forwarded, without holding up the
        reply; a failure leaves them counted (stricter, never looser) and is logged."""
        self.resources.spawn(self._uncount(request_id, counted))

    async def _uncount(self, request_id: str, counted: Sequence[Counted]) -> None:
        try:
            await self.resources.store.uncount(counted)
        except StoreUnavailable as exc:
            self.resources.store_fault("uncount", str(exc), request_id=request_id)

    async def _append(self, attempt: BlockedAttempt) -> None:
        try:
            await self.resources.store.append_attempt(attempt)
        except StoreUnavailable as exc:
            self.resources.store_fault("append_attempt", str(exc),
                                       request_id=attempt.request_id)


def attempt_for(request_id: str, upstream: str, channel: str, direction: str,
                scopes: Sequence[str], decision: Decision, action: str) -> BlockedAttempt:
    """The attempts-stream record of a blocked decision."""
    cause, rule = decision.cause, decision.rule
    if rule is not None:
        return BlockedAttempt(
            request_id=request_id, upstream=upstream, channel=channel, direction=direction,
            number=decision.number, scopes=",".join(scopes), scope=rule.scope, list="",
            entry="", action=action, rule=rule.kind, detail=rule.detail)
    return BlockedAttempt(
        request_id=request_id, upstream=upstream, channel=channel, direction=direction,
        number=decision.number, scopes=",".join(scopes),
        scope=cause.scope if cause else "", list=cause.list if cause else "",
        entry=cause.entry if cause else "", action=action)

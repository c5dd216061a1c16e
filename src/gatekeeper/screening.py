"""Deciding a request's destinations against the lists: every reading of each one,
in bounded slices, with store faults turned into one clear outcome.

A destination can read as several numbers (`numbers.Destination.keys`: a SIP user part
with and without a country code, `00` as `+`, the digits of a number phonenumbers calls
impossible); it is blocked when any reading is. Large requests are parsed and looked up
in slices, yielding to the event loop between them, so one big batch neither holds up
other requests nor makes one long Redis call; a store fault during a sliced lookup never
fails open (only a single-slice lookup may, with `store.on_error: open`), since a
lookup slowed by the request's own size is not a store fault.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from gatekeeper.numbers import Destination, parse_destination
from gatekeeper.policy import Decision, Match, decide
from gatekeeper.resources import Resources
from gatekeeper.store import BlockedAttempt, StoreUnavailable
from gatekeeper.types import CHANNELS, Channel

# Destinations parsed between two yields to the event loop.
PARSE_SLICE = 256
# Numbers looked up in one Redis call (each brings up to ~30 candidate members).
LOOKUP_SLICE = 128


@dataclass(frozen=True, slots=True)
class Screened:
    """Each distinct raw destination's reading and decision, or the store fault."""

    parsed: dict[str, Destination]
    decisions: dict[str, Decision]       # by raw destination; absent: nothing to look up
    store_failed: bool = False
    fail_open: bool = False              # the fault may be forwarded (`on_error: open`)

    @property
    def blocked(self) -> dict[str, Decision]:
        """Raw destinations that are blocked, with the decision that blocked them."""
        return {raw: d for raw, d in self.decisions.items() if d.verdict == "blocked"}


async def parse_all(raws: Sequence[str], region: str | None, msisdn: bool
                    ) -> dict[str, Destination]:
    """Parse distinct raw destinations, yielding between slices."""
    parsed: dict[str, Destination] = {}
    for start in range(0, len(raws), PARSE_SLICE):
        if start:
            await asyncio.sleep(0)
        for raw in raws[start:start + PARSE_SLICE]:
            parsed[raw] = parse_destination(raw, region, msisdn)
    return parsed


def _combine(decisions: list[Decision]) -> Decision:
    """One destination's decision from its readings' decisions: blocked if any is."""
    return next((d for d in decisions if d.verdict == "blocked"), decisions[0])


class Screener:
    """Decides numbers against the lists; the one place store faults become open/closed."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self.fail_closed = resources.config.store.on_error == "closed"

    async def lookup(self, request_id: str, numbers: Sequence[str], scopes: Sequence[str],
                     channel: Channel | None) -> dict[str, list[Match]] | None:
        """Every match of every number, in slices; None on a store fault (logged, counted).

        `channel` None: entries limited to either channel count (a send whose channel is
        not known, such as a scanned write).
        """
        channels: tuple[Channel, ...] = CHANNELS if channel is None else (channel,)
        found: dict[str, list[Match]] = {n: [] for n in numbers}
        try:
            for start in range(0, len(numbers), LOOKUP_SLICE):
                part = numbers[start:start + LOOKUP_SLICE]
                replies = await asyncio.gather(*(
                    self.resources.store.lookup(part, scopes, c) for c in channels))
                for reply in replies:
                    for number, matches in reply.items():
                        known = found[number]
                        known.extend(m for m in matches if m not in known)
        except StoreUnavailable as exc:
            self.resources.metrics.store_errors.labels("lookup").inc()
            self.resources.log.error(
                "store_unavailable", request_id=request_id, operation="lookup",
                error=str(exc), on_error="closed" if self.fail_closed else "open")
            return None
        return found

    async def screen(self, request_id: str, parsed: dict[str, Destination],
                     scopes: Sequence[str], channel: Channel | None) -> Screened:
        """Decide every reading of every parsed destination."""
        keys = list(dict.fromkeys(k for d in parsed.values() for k in d.keys))
        if not keys:
            return Screened(parsed, {})
        matches = await self.lookup(request_id, keys, scopes, channel)
        if matches is None:
            return Screened(parsed, {}, store_failed=True,
                            fail_open=not self.fail_closed and len(keys) <= LOOKUP_SLICE)
        by_key = {k: decide(k, scopes, matches[k]) for k in keys}
        return Screened(parsed, {raw: _combine([by_key[k] for k in d.keys])
                                 for raw, d in parsed.items() if d.keys})

    def record(self, attempt: BlockedAttempt) -> None:
        """Append a blocked attempt to the stream without holding up the reply."""
        self.resources.spawn(self._append(attempt))

    async def _append(self, attempt: BlockedAttempt) -> None:
        try:
            await self.resources.store.append_attempt(attempt)
        except StoreUnavailable as exc:
            self.resources.metrics.store_errors.labels("append_attempt").inc()
            self.resources.log.error("store_unavailable", request_id=attempt.request_id,
                                     operation="append_attempt", error=str(exc))


def attempt_for(request_id: str, upstream: str, channel: str, direction: str,
                scopes: Sequence[str], decision: Decision, action: str) -> BlockedAttempt:
    """The attempts-stream record of a blocked decision."""
    cause = decision.cause
    return BlockedAttempt(
        request_id=request_id, upstream=upstream, channel=channel, direction=direction,
        number=decision.number, scopes=",".join(scopes),
        scope=cause.scope if cause else "", list=cause.list if cause else "",
        entry=cause.entry if cause else "", action=action)

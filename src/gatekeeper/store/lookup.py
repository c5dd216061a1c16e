"""Lookups: every live entry matching some numbers in some scopes, in one round trip."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate

from gatekeeper.numbers import lookup_candidates
from gatekeeper.policy import LISTS, ListName, Match
from gatekeeper.store.base import StoreBase
from gatekeeper.store.cluster import slot_of
from gatekeeper.store.faults import store_faults
from gatekeeper.store.pipe import LookupCall, resp_bulk
from gatekeeper.store.scripts import LOOKUP_SHA
from gatekeeper.types import Channel

# Lua's unpack() has a stack limit; probe the candidates in slices of this size.
_ARGV_SLICE = 4000
# Scope combinations memoised per store; a few come back on every request.
_PROBE_CACHE_SIZE = 1024


@lru_cache(maxsize=65536)
def _candidates(number: str, channel: Channel | None
                ) -> tuple[tuple[str, ...], bytes, tuple[int, ...]]:
    """The members that can match `number` on `channel` (the number, then its prefixes
    shortest first, each followed by its `#channel` form), their RESP encoding, and
    where in it each candidate's members start (cached: all depend on the arguments)."""
    members: list[str] = []
    starts: list[int] = []
    for candidate in lookup_candidates(number):
        starts.append(len(members))
        members.append(candidate)
        if channel is not None:
            members.append(f"{candidate}#{channel}")
    # As resp_bulk encodes each, in one string (faster): its lengths count characters,
    # which are bytes for the ASCII members numbers have.
    pieces = [f"${len(m)}\r\n{m}\r\n" for m in members]
    text = "".join(pieces)
    if text.isascii():
        encoded, sizes = text.encode("ascii"), [len(p) for p in pieces]
    else:
        parts = [resp_bulk(m) for m in members]
        encoded, sizes = b"".join(parts), [len(p) for p in parts]
    offsets = list(accumulate(sizes, initial=0))
    return tuple(members), encoded, tuple(offsets[i] for i in starts)


def _shared_digits(a: str, b: str) -> int:
    """How many leading digits two `+` numbers have in common."""
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return max(count - 1, 0)


def _joined(numbers: list[str], channel: Channel | None) -> tuple[list[str], bytes]:
    """The members of several numbers, each once, and their encoding, made of slices of
    the numbers' cached encodings (nothing encoded again).

    In sorted order, the prefixes a number shares with any earlier one are exactly those
    it shares with the one just before it: its prefix candidates up to their common
    digits were sent already, and are cut from its part.
    """
    members: list[str] = []
    parts: list[bytes] = []
    previous = ""
    for number in sorted(numbers):
        own, encoded, starts = _candidates(number, channel)
        sent = min(_shared_digits(previous, number), len(starts) - 1)  # lengths 1..sent
        previous = number
        if not sent:
            members += own
            parts.append(encoded)
            continue
        per = len(own) // len(starts)                         # 2 with a channel, else 1
        members += own[:per]
        parts.append(encoded[:starts[1]])
        if sent + 1 < len(starts):
            members += own[per * (sent + 1):]
            parts.append(encoded[starts[sent + 1]:])
    return members, b"".join(parts)


@dataclass(frozen=True, slots=True)
class _Probe:
    """The fixed part of a lookup in some scopes: the lists probed, in reply order, and
    the script call probing them (on a cluster, one per scope: each scope's keys are in
    one hash slot, scopes in any)."""

    lists: tuple[tuple[ListName, str], ...]
    calls: tuple[LookupCall, ...]


class LookupMixin(StoreBase):
    """`lookup`, on the store's lookup transport (the lean pipe, or redis-py)."""

    # Set up by the Store: scope combinations -> their probe.
    _probe_cache: dict[tuple[str, ...], _Probe]

    async def lookup(self, numbers: Sequence[str], scopes: Sequence[str],
                     channel: Channel | None = None) -> dict[str, list[Match]]:
        """Every live entry matching each number in each scope, in one round trip.

        Entries for every channel always apply; entries limited to `channel` apply too.
        Expired entries stop matching at their expiry instant (the server's clock).
        """
        found: dict[str, list[Match]] = {number: [] for number in numbers}
        unique = list(found)
        if not unique or not scopes:
            return found
        candidates: Sequence[str]
        if len(unique) == 1:
            # The common case: every candidate belongs to the one number.
            candidates, encoded, _ = _candidates(unique[0], channel)
        else:
            candidates, encoded = _joined(unique, channel)
        probe = self._probe(tuple(scopes))
        # Inline rather than `guarded`: one coroutine frame less on every request.
        with store_faults():
            if len(probe.calls) == 1:
                reply = await self._transport.lookup(probe.calls[0], candidates, encoded)
            else:  # a cluster: the scopes' calls leave together, one write per node
                replies = await asyncio.gather(*(
                    self._transport.lookup(call, candidates, encoded)
                    for call in probe.calls), return_exceptions=True)
                reply = []
                for part in replies:
                    if isinstance(part, BaseException):
                        raise part
                    reply += part
        # Owners are found for the members that hit (few), not tabled for all.
        owners: dict[str, list[str]] = {}
        for (name, scope), hits in zip(probe.lists, reply, strict=True):
            for member in hits:
                owned = owners.get(member)
                if owned is None:
                    owned = owners[member] = unique if len(unique) == 1 else [
                        number for number in unique
                        if member in _candidates(number, channel)[0]]
                item = self.keys.item(member)
                match = Match(scope, name, item.entry, item.channel)
                for number in owned:
                    found[number].append(match)
        return found

    def _probe(self, scopes: tuple[str, ...]) -> _Probe:
        """What a lookup in these scopes sends before the candidates (memoised)."""
        cache = self._probe_cache
        probe = cache.get(scopes)
        if probe is None:
            lists = tuple((name, scope) for scope in scopes for name in LISTS)
            groups = [lists] if not self.keys.cluster else \
                [lists[i:i + len(LISTS)] for i in range(0, len(lists), len(LISTS))]
            probe = _Probe(lists, tuple(self._call(group) for group in groups))
            if len(cache) < _PROBE_CACHE_SIZE:
                cache[scopes] = probe
        return probe

    def _call(self, lists: Sequence[tuple[ListName, str]]) -> LookupCall:
        """The script call probing some lists (pre-encoded)."""
        keys: list[str] = []
        for name, scope in lists:
            list_keys = self.keys.of(name, scope)
            keys += [list_keys.list, list_keys.expiry, list_keys.packed]
        head = ["EVALSHA", LOOKUP_SHA, str(len(keys)), *keys, str(_ARGV_SLICE)]
        return LookupCall(tuple(keys), _ARGV_SLICE, len(head),
                          b"".join(resp_bulk(arg) for arg in head), slot_of(keys[0]))

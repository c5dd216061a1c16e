"""Lookups: every live entry matching some numbers in some scopes, in one round trip."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain

from gatekeeper.numbers import lookup_candidates
from gatekeeper.policy import LISTS, ListName, Match
from gatekeeper.store.base import StoreBase
from gatekeeper.store.faults import store_faults
from gatekeeper.store.pipe import LookupCall, resp_bulk
from gatekeeper.store.scripts import LOOKUP_SHA
from gatekeeper.types import Channel

# Lua's unpack() has a stack limit; probe the candidates in slices of this size.
_ARGV_SLICE = 4000
# Scope combinations memoised per store; a few come back on every request.
_PROBE_CACHE_SIZE = 1024


@lru_cache(maxsize=65536)
def _candidates(number: str, channel: Channel | None) -> tuple[tuple[str, ...], bytes]:
    """The members that can match `number` on `channel`, and their RESP encoding (cached:
    both depend on the arguments alone)."""
    members: list[str] = []
    for candidate in lookup_candidates(number):
        members.append(candidate)
        if channel is not None:
            members.append(f"{candidate}#{channel}")
    return tuple(members), b"".join(resp_bulk(m) for m in members)


@dataclass(frozen=True, slots=True)
class _Probe:
    """The fixed part of a lookup in some scopes: the lists probed, in reply order, and
    the script call probing them."""

    lists: tuple[tuple[ListName, str], ...]
    call: LookupCall


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
        per_number = [_candidates(number, channel) for number in unique]
        if len(per_number) == 1:
            # The common case: every candidate belongs to the one number.
            candidates, encoded = per_number[0]
        else:
            # The numbers' cached encodings joined, nothing encoded again: a prefix that
            # several numbers share is sent once for each (a few more members for the
            # script to probe, far cheaper there than encoding them again here).
            candidates = tuple(chain.from_iterable(members for members, _ in per_number))
            encoded = b"".join(part for _, part in per_number)
        probe = self._probe(tuple(scopes))
        # Inline rather than `guarded`: one coroutine frame less on every request.
        with store_faults():
            reply = await self._transport.lookup(probe.call, candidates, encoded)
        # Owners are found for the members that hit only (few), not built for all.
        owners: dict[str, list[str]] = {}
        for (name, scope), hits in zip(probe.lists, reply, strict=True):
            # A member comes back once per number it was sent for.
            for member in dict.fromkeys(hits):
                owned = owners.get(member)
                if owned is None:
                    owned = owners[member] = unique if len(unique) == 1 else [
                        number for number, (members, _) in zip(unique, per_number,
                                                                strict=True)
                        if member in members]
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
            keys: list[str] = []
            for name, scope in lists:
                list_keys = self.keys.of(name, scope)
                keys += [list_keys.list, list_keys.expiry]
            head = ["EVALSHA", LOOKUP_SHA, str(len(keys)), *keys, str(_ARGV_SLICE)]
            call = LookupCall(tuple(keys), _ARGV_SLICE, len(head),
                              b"".join(resp_bulk(arg) for arg in head))
            probe = _Probe(lists, call)
            if len(cache) < _PROBE_CACHE_SIZE:
                cache[scopes] = probe
        return probe

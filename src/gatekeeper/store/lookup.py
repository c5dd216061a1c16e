"""Lookups: every live entry matching some numbers in some scopes, in one round trip."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate

from gatekeeper.numbers import lookup_candidates
from gatekeeper.policy import LISTS, ListName, Match
from gatekeeper.store.cluster import slot_of
from gatekeeper.store.faults import store_faults
from gatekeeper.store.filter import NumberFilter
from gatekeeper.store.packed import PackedMixin
from gatekeeper.store.pipe import LookupCall, resp_bulk
from gatekeeper.store.scripts import LOOKUP_SHA
from gatekeeper.types import Channel

# Lua's unpack() has a stack limit; probe the candidates in slices of this size.
_ARGV_SLICE = 4000
# Scope combinations memoised per store; a few come back on every request.
_PROBE_CACHE_SIZE = 1024
LOOKUP_HEAD = resp_bulk("EVALSHA") + resp_bulk(LOOKUP_SHA)


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
    records: tuple[str, ...]
    """Each list's packed-load record, in `lists` order."""
    skips: _Skips
    """Which of its lists' packed loads this process holds filter copies of."""


@dataclass(slots=True)
class _Skips:
    """A probe's lists whose loads have filter copies (as of copies' `version`): each as
    its bit in a mask of lists to skip, and its copy; and the calls per mask (made when
    first needed)."""

    version: int = -1
    held: tuple[tuple[int, NumberFilter], ...] = ()
    bases: tuple[str, ...] = ()
    calls: dict[int, tuple[LookupCall, ...]] = field(default_factory=dict)


class LookupMixin(PackedMixin):
    """`lookup`, on the store's lookup transport (the lean pipe, or redis-py), and the
    copies of packed loads' filters that let it skip a load's buckets."""

    # Set up by the Store: scope combinations -> their probe; packed-load record -> the
    # load's base and this process's copy of its filter.
    _probe_cache: dict[tuple[str, ...], _Probe]
    _filters: dict[str, tuple[str, NumberFilter]]
    _filters_version: int

    async def lookup(self, numbers: Sequence[str], scopes: Sequence[str],
                     channel: Channel | None = None) -> dict[str, list[Match]]:
        """Every live entry matching each number in each scope, in one round trip.

        Entries for every channel always apply; entries limited to `channel` apply too.
        Expired entries stop matching at their expiry instant (the server's clock).
        """
        found: dict[str, list[Match]] = {number: [] for number in numbers}
        if not found or not scopes:
            return found
        unique, candidates, encoded, probe, calls = self._planned(found, scopes, channel)
        # Inline rather than `guarded`: one coroutine frame less on every request.
        with store_faults():
            if len(calls) == 1:
                reply = await self._transport.lookup(calls[0], candidates, encoded)
            else:  # a cluster: the scopes' calls leave together, one write per node
                replies = await asyncio.gather(*(
                    self._transport.lookup(call, candidates, encoded)
                    for call in calls), return_exceptions=True)
                reply = []
                for part in replies:
                    if isinstance(part, BaseException):
                        raise part
                    reply += part
        self._found(found, unique, probe, reply, channel)
        return found

    def _planned(self, found: dict[str, list[Match]], scopes: Sequence[str],
                 channel: Channel | None
                 ) -> tuple[list[str], Sequence[str], bytes, _Probe, tuple[LookupCall, ...]]:
        """A lookup's distinct numbers, candidates (and their RESP), probe and calls."""
        unique = list(found)
        candidates: Sequence[str]
        if len(unique) == 1:
            # The common case: every candidate belongs to the one number.
            candidates, encoded, _ = _candidates(unique[0], channel)
        else:
            candidates, encoded = _joined(unique, channel)
        probe = self._probe(tuple(scopes))
        calls = self._skipping(probe, unique) if self._filters_version else probe.calls
        return unique, candidates, encoded, probe, calls

    def _found(self, found: dict[str, list[Match]], unique: list[str], probe: _Probe,
               reply: Sequence[Sequence[str]], channel: Channel | None) -> None:
        """Add the matches of a lookup's reply (one list of hits per probed list)."""
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

    def _probe(self, scopes: tuple[str, ...]) -> _Probe:
        """What a lookup in these scopes sends before the candidates (memoised)."""
        cache = self._probe_cache
        probe = cache.get(scopes)
        if probe is None:
            lists = tuple((name, scope) for scope in scopes for name in LISTS)
            none = ("",) * len(lists)
            probe = _Probe(lists, self._calls(lists, none),
                           tuple(self.keys.of(name, scope).packed for name, scope in lists),
                           _Skips())
            if len(cache) < _PROBE_CACHE_SIZE:
                cache[scopes] = probe
        return probe

    def _skipping(self, probe: _Probe, numbers: Sequence[str]) -> tuple[LookupCall, ...]:
        """The probe's calls, naming each packed load whose filter copy rules out every
        one of `numbers` (the script then leaves its buckets unread)."""
        skips = probe.skips
        if skips.version != self._filters_version:
            self._held(probe)
        mask = 0
        for bit, copy in skips.held:
            for number in numbers:
                if copy.might_hold(number):
                    break
            else:
                mask |= bit
        if not mask:
            return probe.calls
        calls = skips.calls.get(mask)
        if calls is None:
            calls = self._calls(probe.lists, tuple(
                base if mask >> i & 1 else "" for i, base in enumerate(skips.bases)))
            if len(skips.calls) < _PROBE_CACHE_SIZE:
                skips.calls[mask] = calls
        return calls

    def _held(self, probe: _Probe) -> None:
        """Note which of the probe's lists have filter copies now."""
        held: list[tuple[int, NumberFilter]] = []
        bases: list[str] = []
        for i, record in enumerate(probe.records):
            base, copy = self._filters.get(record) or ("", None)
            bases.append(base)
            if copy is not None:
                held.append((1 << i, copy))
        probe.skips.held, probe.skips.bases = tuple(held), tuple(bases)
        probe.skips.calls.clear()
        probe.skips.version = self._filters_version

    def _calls(self, lists: tuple[tuple[ListName, str], ...], skips: tuple[str, ...]
               ) -> tuple[LookupCall, ...]:
        """The script calls probing `lists`: one, or on a cluster one per scope."""
        if not self.keys.cluster:
            return (self._call(lists, skips),)
        per = len(LISTS)
        return tuple(self._call(lists[i:i + per], skips[i:i + per])
                     for i in range(0, len(lists), per))

    def _call(self, lists: Sequence[tuple[ListName, str]], skips: Sequence[str]
              ) -> LookupCall:
        """The script call probing some lists (pre-encoded), skipping the packed loads
        named in `skips` (a base or '' per list)."""
        keys: list[str] = []
        for name, scope in lists:
            list_keys = self.keys.of(name, scope)
            keys += [list_keys.list, list_keys.expiry, list_keys.packed]
        # Kept in parts too: a call that also counts sends puts its own between them.
        named = b"".join(resp_bulk(key) for key in keys)
        fixed = (str(len(lists)), *skips)
        args = b"".join(resp_bulk(arg) for arg in (str(_ARGV_SLICE), *fixed))
        head = b"".join((LOOKUP_HEAD, resp_bulk(str(len(keys))), named, args, resp_bulk("0")))
        return LookupCall(tuple(keys), _ARGV_SLICE, 3 + len(keys) + 2 + len(skips) + 1,
                          head, slot_of(keys[0]), fixed=(*fixed, "0"), parts=(named, args))

    async def refresh_filters(self) -> int:
        """Take up the filters of the packed loads that lookups so far have met (until
        then, and while a replaced load's copy is not yet taken, a load's buckets are
        read); returns how many copies were taken or dropped. Copies stop at
        `store.filter_memory_mb`."""
        records = sorted({r for probe in list(self._probe_cache.values())
                          for r in probe.records})
        if not records:
            return 0
        changed = 0
        fields = await self.packed_filter_fields(records)
        for record, (base, words) in zip(records, fields, strict=True):
            held = self._filters.get(record)
            if base is not None and held is not None and held[0] == base:
                continue
            used = sum(f.size for r, (_, f) in self._filters.items() if r != record)
            copy = None
            if base is not None and words is not None and \
                    (used + words) * 8 <= self._filter_budget:
                copy = await self.packed_filter(record, base, words)
            if copy is None or base is None:
                changed += self._filters.pop(record, None) is not None
                continue
            self._filters[record] = (base, copy)
            changed += 1
        if changed:
            self._filters_version += 1  # probes note their lists' copies afresh
        return changed

    def filter_copies(self) -> tuple[int, int]:
        """How many filter copies this process holds, and their bytes."""
        return len(self._filters), sum(f.size for _, f in self._filters.values()) * 8

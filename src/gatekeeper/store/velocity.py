"""Velocity counters (rules.py's `VelocityLimit`): a request's sends are counted in the
lookup's own script call (`lookup_counting`: scripts.LOOKUP_LUA runs VELOCITY_LUA's
function after its lookup); a large request's further slices, and a check's looks, by
`count_sends`, one script call per scope (scripts.VELOCITY_LUA), queued on the lookup
transport at once, so that it leaves in the same write as a lookup started right
after. `uncount` takes back the sends that were then not forwarded (blocked by a list
entry, or the whole request refused)."""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
from collections.abc import Awaitable, Iterator, Sequence
from functools import lru_cache
from typing import Any, cast

from gatekeeper.policy import Match
from gatekeeper.store.cluster import slot_of
from gatekeeper.store.faults import StoreUnavailable, store_faults
from gatekeeper.store.lookup import LOOKUP_HEAD, LookupMixin
from gatekeeper.store.pipe import ClientTransport, LookupCall, resp_bulk, retrieve
from gatekeeper.store.scripts import UNCOUNT_LUA, UNCOUNT_SHA, VELOCITY_LUA, VELOCITY_SHA
from gatekeeper.types import Channel
from gatekeeper.velocity import Counted, Counting

_ENFORCED = {False: "$1\r\n1\r\n", True: "$1\r\n0\r\n"}  # by "monitored"


class _Members:
    """Counter members: unique across processes and proxies (a random process part,
    drawn again in a forked worker, and a sequence), never the client's request id,
    which could repeat. Cheaper than a random token per call."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self.process = secrets.token_hex(8)
        self.sequence: Iterator[int] = itertools.count()

    def next(self) -> str:
        """A new member (`lookup_counting` makes its own inline: a call less a send)."""
        return f"{self.process}{next(self.sequence):x}"


_MEMBERS = _Members()
# LOOKUP_LUA's S argument (with its RESP), by the number of the request's own scopes.
_OWN = [(n, str(n), resp_bulk(str(n))) for n in range(64)]
# What follows a counting call's candidates: the own-scopes flag and the member.
_TRAILING = 2


@lru_cache(maxsize=1024)
def _bulk_int(n: int) -> bytes:
    """`n` as a RESP bulk string, one object per value (shared by every call's pieces)."""
    return resp_bulk(str(n))


# Countings whose encoding a store keeps (dropped whole when full).
ENCODINGS_KEPT = 16_384
# A counting, its keys, its counters (to take back), its script arguments and its
# keys (both in RESP).
_Encoded = tuple[Counting, tuple[str, ...], tuple[str, ...], bytes, bytes]
_EVALSHA = resp_bulk("EVALSHA") + resp_bulk(VELOCITY_SHA)


class CountsInDoubt(StoreUnavailable):
    """The store failed during a lookup that also counted sends: they may have been
    counted or not; `counted` names them all, to take back (taking back a send that
    was not counted changes nothing)."""

    def __init__(self, why: str, counted: tuple[Counted, ...]) -> None:
        super().__init__(why)
        self.counted = counted


# Countings encoded for one script call: the countings, their keys (and the same in
# RESP), their arguments in RESP and how many, each one's counters and first key index.
_Batch = tuple[list[Counting], list[str], bytes, bytes, int, list[tuple[str, ...]],
               list[int]]
# A lookup's call, the countings it also counts, the call that does, and their batch.
_Kept = tuple[LookupCall, tuple[Counting, ...], LookupCall, _Batch]


class VelocityMixin(LookupMixin):
    """Counting sends against velocity limits (with a lookup, or alone), and taking
    them back."""

    async def lookup_counting(self, numbers: Sequence[str], scopes: Sequence[str],
                              channel: Channel, countings: Sequence[Counting],
                              own_scopes: int = 0
                              ) -> tuple[dict[str, list[Match]], list[Counted]]:
        """`lookup` and `count_sends` together, in the lookup's script call (on a
        cluster, each scope's counts in its scope's call: their keys share its hash
        slot). Raises StoreUnavailable, or CountsInDoubt once sends may have been
        counted. Every counting's scope must be among `scopes`.

        `own_scopes`: the first that many of `scopes` are the request's own. On one
        server, when one number is looked up and the lists of one of those scopes block
        it (a block entry, no allow entry), its sends are only looked at, not counted:
        they will not be forwarded (pass 0 when blocked sends are, as to an upstream
        that only monitors), and so need no taking back."""
        found: dict[str, list[Match]] = {number: [] for number in numbers}
        if not found or not scopes or not countings:
            return await self.lookup(numbers, scopes, channel), \
                await self.count_sends(countings)
        unique, candidates, encoded, probe, calls = self._planned(found, scopes, channel)
        # The member goes last, after the candidates: the rest of the call is kept.
        member = f"{_MEMBERS.process}{next(_MEMBERS.sequence):x}"
        if len(calls) == 1:  # one server: one call
            own = _OWN[own_scopes if len(unique) == 1 and own_scopes < len(_OWN) else 0]
            group = countings if isinstance(countings, tuple) else tuple(countings)
            # `_combined`'s kept call, looked for here first: a call less a send.
            hit = self._counting_calls.get(id(group[0])) if len(group) == 1 else None
            if hit is not None and hit[0] is calls[0] and hit[1][0] is group[0]:
                call, batch = hit[2], hit[3]
            else:
                call, batch = self._combined(calls[0], group)
            try:
                with store_faults():
                    # redis-py needs the candidates' values (`call.fixed` is its
                    # plain ARGV); the pipe reads only their count, and copying them
                    # touched each of a number's cached candidates on every send.
                    reply = await self._transport.lookup(
                        call, [*candidates, own[1], member] if call.fixed else candidates,
                        b"%b%b$%d\r\n%b\r\n" % (encoded, own[2], len(member),
                                                  member.encode()))
            except StoreUnavailable as exc:
                raise CountsInDoubt(str(exc), _doubted([batch], member)) from exc
            hits = reply[:-1]
            self._found(found, unique, probe, hits, channel)
            looked = False
            if len(unique) > 1 or found[unique[0]]:  # most numbers are in no list
                _distinct(found)
                # As the script judged it: then nothing was counted.
                looked = any(hits[0:2 * own[0]:2]) and any(
                    hits[2 * i] and not hits[2 * i + 1] for i in range(own[0]))
            counts: object = reply[-1]  # VELOCITY_LUA's reply (see `_read`)
            if counts == 0 and len(group) == 1 and not looked:
                # Most requests: one number counted under every limit (`_read`'s
                # first case, without its call).
                one = group[0]
                return found, [Counted(one, None, False, 0.0, None,
                                       batch[5][0] if one.count else (),
                                       f"{member}:{batch[6][0]}")]
            return found, _read(batch, member, counts, looked)
        # A counting call counts its two trailing arguments in `argc` (see `_combined`).
        with_member = [*candidates, _OWN[0][1], member] if isinstance(
            self._transport, ClientTransport) else candidates, b"%b%b$%d\r\n%b\r\n" % (
            encoded, _OWN[0][2], len(member), member.encode())
        # A cluster: one call per scope, in `scopes` order, each with its scope's counts.
        place = {scope: i for i, scope in enumerate(scopes)}
        split: list[list[Counting]] = [[] for _ in calls]
        for counting in countings:
            split[place[counting.scope]].append(counting)
        made = [self._combined(call, tuple(group)) if group else (call, None)
                for call, group in zip(calls, split, strict=True)]
        try:
            with store_faults():
                replies = []
                for part in await asyncio.gather(*(
                        self._transport.lookup(call, *with_member) if counts else
                        self._transport.lookup(call, candidates, encoded)
                        for call, counts in made), return_exceptions=True):
                    if isinstance(part, BaseException):
                        raise part
                    replies.append(part)
        except StoreUnavailable as exc:
            raise CountsInDoubt(str(exc), _doubted(
                [counts for _, counts in made if counts is not None], member)) from exc
        lists: list[list[str]] = []
        counted: list[Counted] = []
        for call, reply in zip(calls, replies, strict=True):
            lists += reply[:len(call.keys) // 3]
        for (_, part_batch), reply in zip(made, replies, strict=True):
            if part_batch is not None:
                counted += _read(part_batch, member, reply[-1])
        self._found(found, unique, probe, lists, channel)
        _distinct(found)
        return found, counted

    def _combined(self, call: LookupCall, group: tuple[Counting, ...]
                  ) -> tuple[LookupCall, _Batch]:
        """A lookup's call that also counts the sends of `group` (kept: probes' calls
        are memoised and plans are kept, so most requests meet theirs again)."""
        kept: dict[int | tuple[int, ...], _Kept] = self._counting_calls
        key: int | tuple[int, ...]
        if len(group) == 1:  # most requests: one number, counted in one scope
            # By the counting alone: a number's plan meets one probe call (its scopes').
            key = id(group[0])
            hit = kept.get(key)
            if hit is not None and hit[0] is call and hit[1][0] is group[0]:
                return hit[2], hit[3]
        else:
            key = (id(call), *map(id, group))
            hit = kept.get(key)
            if hit is not None and hit[0] is call and all(
                    a is b for a, b in zip(hit[1], group, strict=True)):
                return hit[2], hit[3]
        batch = self._batch(list(group), len(call.keys))
        _, keys, named, args, size, _, _ = batch
        pieces = (LOOKUP_HEAD, _bulk_int(len(call.keys) + len(keys)), call.parts[0], named,
                  call.parts[1], _bulk_int(size), args)
        plain = (*call.fixed[:-1], str(size), *_plain(args)) \
            if isinstance(self._transport, ClientTransport) else ()
        # Its ARGV ends with the own-scopes flag and the member, after the candidates
        # (counted here: the pipe is given the candidates alone, see `lookup_counting`).
        made = LookupCall((*call.keys, *keys), call.argv_slice,
                          call.argc + len(keys) + size + _TRAILING, b"", call.slot, plain,
                          parts=call.parts, pieces=pieces)
        if len(kept) >= ENCODINGS_KEPT:
            kept.clear()
        kept[key] = (call, group, made, batch)
        return made, batch

    def count_sends(self, countings: Sequence[Counting]) -> Awaitable[list[Counted]]:
        """Count (or look at) every counting, one script call per scope, queued before
        this returns (on the lean pipe); await the result, which raises
        StoreUnavailable."""
        by_scope: dict[str, list[Counting]] = {}
        for counting in countings:
            by_scope.setdefault(counting.scope, []).append(counting)
        sent: list[_Sent] = []
        try:
            with store_faults():
                for group in by_scope.values():
                    sent.append(self._submit(group, _MEMBERS.next()))
        except BaseException:
            _discard(sent)
            raise
        return self._counted(sent)

    def _submit(self, group: list[Counting], member: str) -> _Sent:
        batch = self._batch(group, 0)
        _, keys, named, args, size, _, _ = batch
        call = LookupCall(tuple(keys), 0, len(keys) + 4,
                          b"".join((_EVALSHA, resp_bulk(str(len(keys))), named,
                                    resp_bulk(member))),
                          slot_of(keys[0]) if self.keys.cluster else 0, (member,),
                          VELOCITY_LUA)
        plain = _plain(args) if isinstance(self._transport, ClientTransport) else ()
        return batch, member, self._transport.submit(call, plain or [""] * size, args)

    def _batch(self, group: list[Counting], offset: int) -> _Batch:
        """Encode countings for one script call, their keys after `offset` others."""
        keys: list[str] = []
        named: list[bytes] = []
        args: list[bytes] = []
        counters: list[tuple[str, ...]] = []
        firsts: list[int] = []  # each counting's first key index (1-based), as Lua's k
        size = 0
        encodings: dict[int, _Encoded] = self._velocity_encodings
        for counting in group:
            # Plans are kept (velocity.plan): a counting met again is encoded once.
            known = encodings.get(id(counting))
            if known is None or known[0] is not counting:
                known = self._encode(counting)
                if len(encodings) >= ENCODINGS_KEPT:
                    encodings.clear()
                encodings[id(counting)] = known
            firsts.append(offset + len(keys) + 1)
            keys += known[1]
            counters.append(known[2])
            args.append(known[3])
            named.append(known[4])
            size += 2 + 4 * len(counting.limits)
        return group, keys, b"".join(named), b"".join(args), size, counters, firsts

    def _encode(self, counting: Counting) -> _Encoded:
        """A counting's keys (counter and guard per limit), counters and arguments."""
        keys: list[str] = []
        size = str(len(counting.limits))
        args = [f"${len(size)}\r\n{size}\r\n$1\r\n{1 if counting.count else 0}\r\n"]
        for index, (limit, subject) in enumerate(counting.limits):
            keys += self.keys.velocity(counting.scope, counting.channel, limit.spec, subject)
            args.append(limit.argv + _ENFORCED[index in counting.monitored])
        return (counting, tuple(keys), tuple(keys[::2]), "".join(args).encode(),
                b"".join(resp_bulk(key) for key in keys))

    async def _counted(self, sent: list[_Sent]) -> list[Counted]:
        results: list[Counted] = []
        try:
            with store_faults():
                for batch, member, pending in sent:
                    results += _read(batch, member, await pending)
        except BaseException:
            _discard(sent)
            raise
        return results

    async def uncount(self, counted: Sequence[Counted]) -> None:
        """Take back sends counted but not forwarded: one script call per scope, on the
        lookup transport (the lean pipe; blocked sends are frequent); raises
        StoreUnavailable."""
        by_scope: dict[str, list[tuple[str, str]]] = {}
        for one in counted:
            by_scope.setdefault(one.counting.scope, []).extend(
                (counter, one.member) for counter in one.counters)
        with store_faults():
            for pairs in by_scope.values():
                if not pairs:
                    continue
                keys = [counter for counter, _ in pairs]
                members = [member for _, member in pairs]
                head = ["EVALSHA", UNCOUNT_SHA, str(len(keys)), *keys]
                call = LookupCall(tuple(keys), 0, len(head),
                                  b"".join(resp_bulk(a) for a in head),
                                  slot_of(keys[0]) if self.keys.cluster else 0, (),
                                  UNCOUNT_LUA)
                await self._transport.lookup(call, members,
                                             b"".join(resp_bulk(m) for m in members))


def _distinct(found: dict[str, list[Match]]) -> None:
    """Each number's matches without repeats (a scope named twice is probed twice), as
    a plain lookup's are."""
    for number, matches in found.items():
        if len(matches) > 1:
            found[number] = list(dict.fromkeys(matches))


def _doubted(batches: list[_Batch], member: str) -> tuple[Counted, ...]:
    """The sends of `batches` that a failed call may have counted, to take back."""
    return tuple(Counted(one, None, False, 0.0, None, mine, f"{member}:{first}")
                 for batch in batches
                 for one, mine, first in zip(batch[0], batch[5], batch[6], strict=True)
                 if one.count)


def _read(batch: _Batch, member: str, reply: object, looked: bool = False
          ) -> list[Counted]:
    """What a script call's counts of `batch` gave (VELOCITY_LUA's reply: 0 when each
    was counted, or only looked at, under every limit and no monitored one reached);
    `looked`: the script only looked, whatever the countings say."""
    group, counters, firsts = batch[0], batch[5], batch[6]
    if looked:  # a number the lists block: counted nowhere, to take back from nowhere
        counters = [() for _ in group]
    if reply == 0:
        if len(group) == 1:  # most requests: one number counted in one scope
            counting = group[0]
            return [Counted(counting, None, False, 0.0, None,
                            counters[0] if counting.count else (), f"{member}:{firsts[0]}")]
        return [Counted(counting, None, False, 0.0, None, mine if counting.count else (),
                        f"{member}:{first}")
                for counting, mine, first in zip(group, counters, firsts, strict=True)]
    results: list[Counted] = []
    for counting, mine, first, (code, which, wait, seen) in zip(
            group, counters, firsts, cast("list[list[int]]", reply), strict=True):
        limits = counting.limits  # (limit, subject) pairs, 1-based in Lua
        counted = code == 0 and counting.count
        results.append(Counted(
            counting, limits[which - 1][0] if code else None, code in (2, 3),
            wait / 1000, limits[seen - 1][0] if seen else None,
            mine if counted else (), f"{member}:{first}", code == 3))
    return results


# A script call of counts alone: its batch, member and pending reply.
_Sent = tuple[_Batch, str, Awaitable[Any]]


def _discard(sent: list[_Sent]) -> None:
    """Let go of counts no one will await: a coroutine not started is closed, a
    task or future has its outcome (a fault, already reported) retrieved."""
    for *_, pending in sent:
        if asyncio.iscoroutine(pending):
            pending.close()
        elif isinstance(pending, asyncio.Future):
            pending.add_done_callback(retrieve)


def _plain(encoded: bytes) -> list[str]:
    """The arguments of RESP bulk strings (for redis-py, which encodes them itself)."""
    parts = encoded.decode().split("\r\n")
    return parts[1::2][: len(parts) // 2]

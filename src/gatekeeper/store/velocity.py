"""Velocity counters (rules.py's `VelocityLimit`): one script call per scope counts a
request's sends (scripts.VELOCITY_LUA), queued on the lookup transport when the count
starts, so that it leaves in the same write as the lookup started right after;
`uncount` takes back the sends that were then not forwarded (blocked by a list entry, or
the whole request refused)."""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
from collections.abc import Awaitable, Iterator, Sequence
from typing import Any, cast

from gatekeeper.store.base import StoreBase
from gatekeeper.store.cluster import slot_of
from gatekeeper.store.faults import store_faults
from gatekeeper.store.pipe import ClientTransport, LookupCall, resp_bulk, retrieve
from gatekeeper.store.scripts import UNCOUNT_LUA, UNCOUNT_SHA, VELOCITY_LUA, VELOCITY_SHA
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
        self._process = secrets.token_hex(8)
        self._sequence: Iterator[int] = itertools.count()

    def next(self) -> str:
        return f"{self._process}{next(self._sequence):x}"


_MEMBERS = _Members()
# Countings whose encoding a store keeps (dropped whole when full).
ENCODINGS_KEPT = 16_384
# A counting, its keys, its counters (to take back), its script arguments and its
# keys (both in RESP).
_Encoded = tuple[Counting, tuple[str, ...], tuple[str, ...], str, bytes]
_EVALSHA = resp_bulk("EVALSHA") + resp_bulk(VELOCITY_SHA)
_Sent = tuple[list[Counting], list[tuple[str, ...]], list[int], str, Awaitable[Any]]


class VelocityMixin(StoreBase):
    """Counting sends against velocity limits, and taking them back."""

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
        keys: list[str] = []
        named: list[bytes] = []  # the keys in RESP
        args: list[str] = []  # RESP bulk strings, joined once below
        counters: list[tuple[str, ...]] = []
        firsts: list[int] = []  # each counting's first key index (1-based), as Lua's k
        encodings = cast(dict[int, _Encoded], self._velocity_encodings)
        for counting in group:
            # Plans are kept (velocity.plan): a counting met again is encoded once.
            known = encodings.get(id(counting))
            if known is None or known[0] is not counting:
                known = self._encode(counting)
                if len(encodings) >= ENCODINGS_KEPT:
                    encodings.clear()
                encodings[id(counting)] = known
            firsts.append(len(keys) + 1)
            keys += known[1]
            counters.append(known[2])
            args.append(known[3])
            named.append(known[4])
        call = LookupCall(tuple(keys), 0, len(keys) + 4,
                          b"".join((_EVALSHA, resp_bulk(str(len(keys))), *named,
                                    resp_bulk(member))),
                          slot_of(keys[0]) if self.keys.cluster else 0, (member,),
                          VELOCITY_LUA)
        encoded = "".join(args).encode()
        count = encoded.count(b"$")  # every argument is one bulk string
        plain = _plain(encoded) if isinstance(self._transport, ClientTransport) else ()
        return group, counters, firsts, member, self._transport.submit(
            call, plain or [""] * count, encoded)

    def _encode(self, counting: Counting) -> _Encoded:
        """A counting's keys (counter and guard per limit), counters and arguments."""
        keys: list[str] = []
        size = str(len(counting.limits))
        args = [f"${len(size)}\r\n{size}\r\n$1\r\n{1 if counting.count else 0}\r\n"]
        for index, (limit, subject) in enumerate(counting.limits):
            keys += self.keys.velocity(counting.scope, counting.channel, limit.spec, subject)
            args.append(limit.argv + _ENFORCED[index in counting.monitored])
        return (counting, tuple(keys), tuple(keys[::2]), "".join(args),
                b"".join(resp_bulk(key) for key in keys))

    async def _counted(self, sent: list[_Sent]) -> list[Counted]:
        results: list[Counted] = []
        try:
            with store_faults():
                for group, counters, firsts, member, pending in sent:
                    reply = cast(list[list[int]], await pending)
                    for counting, mine, first, (code, which, wait, seen) in zip(
                            group, counters, firsts, reply, strict=True):
                        limits = counting.limits  # (limit, subject) pairs, 1-based in Lua
                        counted = code == 0 and counting.count
                        results.append(Counted(
                            counting, limits[which - 1][0] if code else None, code in (2, 3),
                            wait / 1000, limits[seen - 1][0] if seen else None,
                            mine if counted else (), f"{member}:{first}", code == 3))
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

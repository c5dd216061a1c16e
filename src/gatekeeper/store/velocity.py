"""Velocity counters (rules.py's `VelocityLimit`): one script call per scope counts a
request's sends (scripts.VELOCITY_LUA), on the lookup transport so that it leaves in the
same write as the request's lookup; `uncount` takes back the sends that were then not
forwarded (blocked by a list entry, or the whole request refused)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import cast

from gatekeeper.store.base import StoreBase
from gatekeeper.store.cluster import slot_of
from gatekeeper.store.faults import guarded, store_faults
from gatekeeper.store.pipe import ClientTransport, LookupCall
from gatekeeper.store.scripts import VELOCITY_LUA, VELOCITY_SHA
from gatekeeper.velocity import Counted, Counting


class VelocityMixin(StoreBase):
    """Counting sends against velocity limits, and taking them back."""

    async def count_sends(self, countings: Sequence[Counting]) -> list[Counted]:
        """Count (or look at) every counting, one script call per scope; raises
        StoreUnavailable."""
        by_scope: dict[str, list[Counting]] = {}
        for counting in countings:
            by_scope.setdefault(counting.scope, []).append(counting)
        out: list[Counted] = []
        with store_faults():
            for group in by_scope.values():
                # Random, one per call: never the client's request id, which could repeat.
                out += await self._count(group, secrets.token_hex(12))
        return out

    async def _count(self, group: list[Counting], member: str) -> list[Counted]:
        keys: list[str] = []
        args: list[str] = []  # RESP bulk strings, joined once below
        counters: list[tuple[str, ...]] = []
        firsts: list[int] = []  # each counting's first key index (1-based), as Lua's k
        for counting in group:
            own: list[str] = []
            firsts.append(len(keys) + 1)
            args.append(f"${len(str(len(counting.limits)))}\r\n{len(counting.limits)}\r\n"
                        f"$1\r\n{1 if counting.count else 0}\r\n")
            for index, (limit, subject) in enumerate(counting.limits):
                counter, guard = self.keys.velocity(counting.scope, counting.channel,
                                                    limit.spec, subject)
                keys += [counter, guard]
                own.append(counter)
                args.append(limit.argv + ("$1\r\n0\r\n" if index in counting.monitored
                                          else "$1\r\n1\r\n"))
            counters.append(tuple(own))
        head = ["EVALSHA", VELOCITY_SHA, str(len(keys)), *keys, member]
        call = LookupCall(tuple(keys), 0, len(head),
                          "".join(f"${len(a)}\r\n{a}\r\n" for a in head).encode(),
                          slot_of(keys[0]), (member,), VELOCITY_LUA)
        encoded = "".join(args).encode()
        count = encoded.count(b"$")  # every argument is one bulk string
        plain = _plain(encoded) if isinstance(self._transport, ClientTransport) else ()
        reply = cast(list[list[int]], await self._transport.lookup(
            call, plain or [""] * count, encoded))
        results = []
        for counting, mine, first, (code, which, wait, seen) in zip(
                group, counters, firsts, reply, strict=True):
            limits = [limit for limit, _ in counting.limits]
            counted = code == 0 and counting.count
            results.append(Counted(
                counting, limits[which - 1] if code else None, code in (2, 3), wait / 1000,
                limits[seen - 1] if seen else None, mine if counted else (),
                f"{member}:{first}", code == 3))
        return results

    @guarded
    async def uncount(self, counted: Sequence[Counted]) -> None:
        """Take back sends counted but not forwarded."""
        async with self.client.pipeline(transaction=False) as pipe:
            for one in counted:
                for counter in one.counters:
                    pipe.zrem(counter, one.member)
            await pipe.execute()


def _plain(encoded: bytes) -> list[str]:
    """The arguments of RESP bulk strings (for redis-py, which encodes them itself)."""
    parts = encoded.decode().split("\r\n")
    return parts[1::2][: len(parts) // 2]

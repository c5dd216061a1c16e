"""Lookups on a Redis Cluster: `ClusterTransport`, one lean `LookupPipe` per master,
chosen by each call's hash slot from the cluster's slot map.

A lookup in several scopes is one script call per scope (each scope's keys share a hash
tag, store/keys.py), sent together: calls to one node leave in one write, nodes are
asked in parallel. `MOVED` updates the map and goes to the named node; `ASK` sends
`ASKING` and the call to the named node once; `TRYAGAIN` (some of a call's keys moved,
some not yet) is retried a few times. All three are replies to commands the node did
not run, so following them never runs anything twice. A node that cannot be
reached fails its calls (`StoreUnavailable`: `store.on_error` decides) and makes the
next call read the slot map again (at most every REFRESH_SECONDS), so a promoted
replica is found without a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, cast

import hiredis
from redis.crc import key_slot

from gatekeeper.redis_url import Topology
from gatekeeper.store.faults import StoreUnavailable
from gatekeeper.store.pipe import LookupCall, LookupPipe, resp

SLOTS = 16384
# Redirects followed for one call before giving up (a slot migrating back and forth).
MAX_REDIRECTS = 5
# The slot map is read again at most this often while nodes fail.
REFRESH_SECONDS = 0.1
# A TRYAGAIN (a multi-key call meeting a slot mid-migration) is retried this many times,
# this long apart, then fails (StoreUnavailable: `store.on_error` decides).
TRYAGAIN_TIMES = 5
TRYAGAIN_SECONDS = 0.02

Address = tuple[str, int]


def slot_of(key: str) -> int:
    """The hash slot of a key (its hash tag's, when it has one)."""
    return key_slot(key.encode())


def _redirect(error: str) -> tuple[str, int, Address] | None:
    """(`MOVED`|`ASK`, slot, address) of a redirect error, else None."""
    parts = error.split()
    if len(parts) != 3 or parts[0] not in ("MOVED", "ASK"):
        return None
    host, _, port = parts[2].rpartition(":")
    if not port.isdigit() or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), (host.strip("[]"), int(port))


class ClusterTransport:
    """Lookups and appends on a cluster's masters, each over its own lean pipe."""

    def __init__(self, topology: Topology, timeout: float) -> None:
        self._topology = topology
        self._timeout = timeout
        self._slots: list[Address | None] = [None] * SLOTS
        self._pipes: dict[Address, LookupPipe] = {}
        self._stale = True
        self._refreshed_at = -REFRESH_SECONDS
        self._refreshing: asyncio.Lock | None = None

    def _pipe(self, address: Address) -> LookupPipe:
        pipe = self._pipes.get(address)
        if pipe is None:
            pipe = self._pipes[address] = LookupPipe(
                self._topology.node_url(*address), self._timeout)
        return pipe

    async def _refresh(self) -> None:
        """Read the slot map (CLUSTER SLOTS) from the first node that answers."""
        if self._refreshing is None:
            self._refreshing = asyncio.Lock()
        async with self._refreshing:
            loop = asyncio.get_running_loop()
            if not self._stale or loop.time() - self._refreshed_at < REFRESH_SECONDS:
                return
            self._refreshed_at = loop.time()
            known = dict.fromkeys([*self._topology.nodes, *self._pipes])
            why = "no node known"
            for address in known:
                try:
                    reply = await self._pipe(address).call(["CLUSTER", "SLOTS"])
                except StoreUnavailable as exc:
                    why = f"{address[0]}:{address[1]}: {exc}"
                    continue
                if isinstance(reply, hiredis.ReplyError):
                    why = f"{address[0]}:{address[1]}: {reply}"
                    continue
                slots: list[Address | None] = [None] * SLOTS
                for start, end, master, *_ in reply:
                    address_of = (str(master[0]) or address[0], int(master[1]))
                    for slot in range(int(start), int(end) + 1):
                        slots[slot] = address_of
                self._slots = slots
                self._stale = False
                return
            raise StoreUnavailable(f"no cluster node gave its slot map ({why})")

    async def _call(self, slot: int, payload: bytes, script: str | None) -> Any:
        """Run one command on the master of `slot`, following redirects; its reply."""
        if self._stale:
            await self._refresh()
        address = self._slots[slot]
        asking = False
        tries = 0
        for _ in range(MAX_REDIRECTS + TRYAGAIN_TIMES + 2):
            if address is None:
                self._stale = True
                raise StoreUnavailable(f"no node serves hash slot {slot}")
            pipe = self._pipe(address)
            try:
                reply = await (pipe.call_after(["ASKING"], payload) if asking
                               else pipe.call_raw(payload))
            except StoreUnavailable:
                self._stale = True  # the node may be gone: ask the cluster next time
                raise
            if not isinstance(reply, hiredis.ReplyError):
                return reply
            error = str(reply)
            if script is not None and error.startswith("NOSCRIPT"):
                await pipe.call(["SCRIPT", "LOAD", script])
                script = None  # once
                continue
            redirect = _redirect(error)
            if error.startswith("TRYAGAIN") and tries < TRYAGAIN_TIMES:
                # Mid-migration, a key of the call is on one side and one on the other:
                # the migration moves on within moments; a read is safe to repeat.
                tries += 1
                await asyncio.sleep(TRYAGAIN_SECONDS)
                continue
            if redirect is None:
                if error.startswith(("CLUSTERDOWN", "TRYAGAIN")):
                    self._stale = True
                raise StoreUnavailable(error)
            kind, moved_slot, address = redirect
            asking = kind == "ASK"
            if kind == "MOVED":
                self._slots[moved_slot] = address
                self._stale = True  # others may have moved with it
        raise StoreUnavailable(f"too many redirects for hash slot {slot}")

    async def lookup(self, call: LookupCall, candidates: Sequence[str], encoded: bytes
                     ) -> list[list[str]]:
        """The pre-encoded EVALSHA on the master of the call's slot."""
        reply = await self._call(call.slot, call.payload(len(candidates), encoded),
                                 call.script)
        return cast(list[list[str]], reply)

    def submit(self, call: LookupCall, candidates: Sequence[str], encoded: bytes
               ) -> Awaitable[Any]:
        """A task running `lookup` (it may first read the slot map)."""
        return asyncio.ensure_future(self.lookup(call, candidates, encoded))

    async def append(self, stream: str, fields: Mapping[str, str], max_len: int) -> str:
        """XADD MAXLEN ~ on the master of the stream's slot."""
        payload = resp(["XADD", stream, "MAXLEN", "~", str(max_len), "*",
                        *(part for pair in fields.items() for part in pair)])
        return cast(str, await self._call(slot_of(stream), payload, None))

    def close(self) -> None:
        """Drop every node's connection."""
        for pipe in self._pipes.values():
            pipe.close()

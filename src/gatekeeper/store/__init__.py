"""The Redis list store: the only package that imports `redis`.

Modules, one noun each: `keys` (the key layout), `lookup_scripts` and `write_scripts`
(the Lua: the hot path's, the writes'), `scripts` (binding them to a client), `entries`
(what a listing holds), `faults` (StoreUnavailable and the one place faults become it),
`pipe` (the lookup transports, the lean `LookupPipe` among them), `cluster` (the
transport of a Redis Cluster: a pipe per master, redirects), `sentinel` (a Sentinel
group's master), `durability` (a change acknowledged once in the AOF), `base`
(connecting, readiness), `lookup`, `velocity` (counts, in the lookup's call), `lists`,
`loads` (replace imports), `packing` (the packed encoding, pure) and `packed` (packed
loads in Redis; `writer`, the pipelined writes of one), `sources` (freshness records),
`attempts`, and `facade` (the Store).
"""

from __future__ import annotations

from gatekeeper.store.attempts import BlockedAttempt
from gatekeeper.store.base import connect
from gatekeeper.store.entries import MAX_NOTE, EntryMeta, Listed, ListItem, Page
from gatekeeper.store.facade import Store
from gatekeeper.store.faults import StoreIncompatible, StoreUnavailable
from gatekeeper.store.keys import LOAD_MARK_SECONDS, Keys, ListKeys
from gatekeeper.store.packed import PackedLoad, load_meta
from gatekeeper.store.packing import PackedBuilder
from gatekeeper.store.pipe import LookupPipe
from gatekeeper.store.scripts import (
    ADD_LUA,
    BEGIN_LOAD_LUA,
    DROP_PACKED_LUA,
    END_LOAD_LUA,
    LOOKUP_LUA,
    REMOVE_IF_SOURCE_LUA,
    REMOVE_LUA,
    SWAP_LUA,
    SWEEP_LUA,
)
from gatekeeper.store.velocity import CountsInDoubt

__all__ = [
    "ADD_LUA",
    "BEGIN_LOAD_LUA",
    "DROP_PACKED_LUA",
    "END_LOAD_LUA",
    "LOAD_MARK_SECONDS",
    "LOOKUP_LUA",
    "MAX_NOTE",
    "REMOVE_IF_SOURCE_LUA",
    "REMOVE_LUA",
    "SWAP_LUA",
    "SWEEP_LUA",
    "BlockedAttempt",
    "CountsInDoubt",
    "EntryMeta",
    "Keys",
    "ListItem",
    "ListKeys",
    "Listed",
    "LookupPipe",
    "PackedBuilder",
    "PackedLoad",
    "Page",
    "Store",
    "StoreIncompatible",
    "StoreUnavailable",
    "connect",
    "load_meta",
]

"""The store's Lua scripts bound to a redis-py client: `SCRIPTS`, `Scripts`, `register`.

The scripts live in `lookup_scripts` (the lookup and velocity counts: the hot path) and
`write_scripts` (list writes, replace imports), each headed by its KEYS, ARGV and reply;
they are re-exported here. Each runs atomically inside Redis; `register` binds them to a
redis-py client (EVALSHA, loading a script again when the server has lost it, e.g. after
a restart).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from gatekeeper.store.lookup_scripts import (
    LOOKUP_LUA,
    LOOKUP_SHA,
    PACKED_LUA,
    UNCOUNT_LUA,
    UNCOUNT_SHA,
    VELOCITY_FN,
    VELOCITY_LUA,
    VELOCITY_SHA,
)
from gatekeeper.store.write_scripts import (
    ADD_LUA,
    BEGIN_LOAD_LUA,
    DROP_PACKED_LUA,
    END_LOAD_LUA,
    REMOVE_IF_SOURCE_LUA,
    REMOVE_LUA,
    SWAP_LUA,
    SWEEP_LUA,
)

__all__ = [
    "ADD_LUA",
    "BEGIN_LOAD_LUA",
    "DROP_PACKED_LUA",
    "END_LOAD_LUA",
    "LOOKUP_LUA",
    "LOOKUP_SHA",
    "PACKED_LUA",
    "REMOVE_IF_SOURCE_LUA",
    "REMOVE_LUA",
    "SCRIPTS",
    "SWAP_LUA",
    "SWEEP_LUA",
    "UNCOUNT_LUA",
    "UNCOUNT_SHA",
    "VELOCITY_FN",
    "VELOCITY_LUA",
    "VELOCITY_SHA",
    "Scripts",
    "register",
]

SCRIPTS = (LOOKUP_LUA, ADD_LUA, REMOVE_IF_SOURCE_LUA, SWEEP_LUA, SWAP_LUA,
           BEGIN_LOAD_LUA, END_LOAD_LUA, REMOVE_LUA, DROP_PACKED_LUA)
"""Every script, in the order `prepare()` loads them."""


@dataclass(frozen=True, slots=True)
class Scripts:
    """The scripts bound to one redis-py client."""

    lookup: AsyncScript
    add: AsyncScript
    remove_if_source: AsyncScript
    sweep: AsyncScript
    swap: AsyncScript
    begin_load: AsyncScript
    end_load: AsyncScript
    remove: AsyncScript
    drop_packed: AsyncScript


def register(client: aioredis.Redis) -> Scripts:
    """Bind every script to `client` (nothing is sent until a script runs)."""
    return Scripts(*(client.register_script(script) for script in SCRIPTS))

"""Durability of acknowledged changes: a list change is acknowledged only once the
server has written it to its append-only file (AOF), and, when the master has replicas,
once one of them holds it (WAIT, within `store.replica_wait`; StoreBase._replicated).

Redis with `appendfsync everysec` (the embedded store's setting) writes each event loop
turn's changes to its AOF before it replies, except while a background fsync of the file
is still running (a busy disk): then it postpones the write, for up to 2 s, and replies
all the same. A redis-server killed in that window (kill -9, the OOM killer) loses changes
it acknowledged; seen in CI, a block entry gone after a restart, and the next send to the
number forwarded. Once written, a change survives the server's death (the kernel holds
it), though not the machine's: that is what `appendfsync always` is for.

`settle` waits until every command the server ran before it is written, from INFO
persistence: `aof_buffer_length` (bytes not yet written) and `aof_current_size` (bytes
written). A buffer of 0 means all is written; else the file must grow by the buffer's
length (a rewrite that shrinks the file starts the count again from the new file).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ResponseError

from gatekeeper.store.faults import StoreUnavailable

# Redis postpones an AOF write for up to 2 s (checked ten times a second by its cron):
# past this, something else is wrong.
SETTLE_SECONDS = 5.0
_FIRST_POLL = 0.002
_LONGEST_POLL = 0.05

Info = Callable[[], Awaitable[dict[str, Any]]]


class InfoRefused(Exception):
    """The server does not answer INFO persistence (an emulation, or INFO renamed)."""


def _aof(info: dict[str, Any]) -> tuple[int, int] | None:
    """(bytes written, bytes waiting) of the AOF; None when the server keeps none."""
    if int(info.get("aof_enabled", 0)) != 1:
        return None
    return int(info.get("aof_current_size", 0)), int(info.get("aof_buffer_length", 0))


async def settle(info: Info, *, limit: float = SETTLE_SECONDS,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
    """Return once the server has written to its AOF every change it made before this
    call (at once when it keeps no AOF). `info` reads INFO persistence. Raises
    StoreUnavailable after `limit` seconds, InfoRefused if INFO is refused."""
    try:
        state = _aof(await info())
    except ResponseError as exc:
        raise InfoRefused(str(exc)) from exc
    if state is None or state[1] == 0:
        return
    size, waiting = state
    target = size + waiting
    deadline = clock() + limit
    delay = _FIRST_POLL
    while clock() < deadline:
        await sleep(delay)
        delay = min(delay * 2, _LONGEST_POLL)
        state = _aof(await info())
        if state is None or state[1] == 0 or state[0] >= target:
            return
        if state[0] < size:  # rewritten: the new file counts from its own start
            target = state[0] + state[1]
        size = state[0]
    raise StoreUnavailable(f"the store did not write the change to its append-only file "
                           f"within {limit:g} s (a busy disk?)")

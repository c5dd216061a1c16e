"""Store faults: the one place where whatever breaks while Redis goes away becomes
`StoreUnavailable`.

What was seen by killing and stopping a real redis-server under traffic (asyncio and
uvloop): redis-py's `ConnectionError`/`TimeoutError` (wrapping `ConnectionRefusedError`,
`ConnectionResetError`, `TimeoutError`), `BusyLoadingError` while a restarted server
reloads its AOF, and uvloop's bare `RuntimeError` ("unable to perform operation on
<TCPTransport closed=True>; the handler is closed") when redis-py writes to a connection
the server has just dropped. The rest of `FAULTS` is what the same layers can raise by
contract: `OSError` from sockets and TLS, `EOFError` (`asyncio.IncompleteReadError`) from
a stream cut short, and hiredis's own errors; and redis-py's `RedisClusterException`,
which is not a `RedisError`, raised when no node of a cluster can be reached (at start,
or when the slot map is read again).

`asyncio.CancelledError` is not a fault: it is a `BaseException` and always propagates.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import hiredis
from redis.exceptions import RedisClusterException, RedisError

_P = ParamSpec("_P")
_R = TypeVar("_R")


class StoreUnavailable(Exception):
    """The store could not be reached or failed; the caller applies `store.on_error`."""


class StoreIncompatible(Exception):
    """The server is reachable but cannot serve Gatekeeper (too old, no Lua)."""


# Everything but RuntimeError, which is a fault only as the exact class (see is_fault).
FAULTS: tuple[type[Exception], ...] = (
    RedisError, OSError, TimeoutError, EOFError, hiredis.HiredisError, RedisClusterException)


def is_fault(exc: BaseException) -> bool:
    """True when `exc` means the store is unreachable or failing (not a bug of ours)."""
    if isinstance(exc, FAULTS):
        return True
    # A closed transport or loop raises the bare class; its subclasses
    # (NotImplementedError, RecursionError) are programming errors and stay visible.
    return type(exc) is RuntimeError


# redis-py's MasterNotFoundError carries the repr of every sentinel's client (about 1,500
# characters each): a log line keeps the head.
_LONGEST = 300


def describe(exc: BaseException) -> str:
    """A one-line account of a fault (some, like TimeoutError(), have no message)."""
    text = " ".join(str(exc).split())
    if len(text) > _LONGEST:
        text = f"{text[:_LONGEST]}... ({len(text)} characters)"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class store_faults:  # noqa: N801 - used like a function: `with store_faults():`
    """Context manager: a fault raised inside becomes `StoreUnavailable` (chained to the
    original); `StoreUnavailable` itself, cancellation and other errors pass unchanged.

    A class rather than `contextlib.contextmanager`: it wraps every lookup, and costs a
    fraction of a generator-based one.
    """

    __slots__ = ("_context",)

    def __init__(self, context: str = "") -> None:
        self._context = context

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 _tb: TracebackType | None) -> None:
        if exc is None or isinstance(exc, StoreUnavailable) or not is_fault(exc):
            return
        why = describe(exc)
        raise StoreUnavailable(f"{self._context}: {why}" if self._context else why) from exc


def guarded(method: Callable[_P, Awaitable[_R]]) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """Decorator for a Store method: its faults come out as `StoreUnavailable`."""

    @functools.wraps(method)
    async def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with store_faults():
            return await method(*args, **kwargs)

    return call

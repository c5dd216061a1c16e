"""Store faults in one place: whatever the Redis client, hiredis, the socket or the event
loop raises while Redis goes away comes out of every Store method as StoreUnavailable;
cancellation and programming errors pass through unchanged."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import hiredis
import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis import exceptions as redis_errors

from gatekeeper.config import RedisConfig, StoreConfig
from gatekeeper.store import Store, StoreIncompatible, StoreUnavailable, connect
from gatekeeper.store.faults import is_fault, store_faults
from gatekeeper.store.pipe import LookupCall
from tests.test_store import CALLS, REDIS, StoreCall, attempt

# Every kind of exception seen (or documented) while Redis goes away. The first ones
# are what killing and stopping a real redis-server produced under traffic.
FAULTS: list[tuple[str, Callable[[], BaseException]]] = [
    ("redis-connection-refused",
     lambda: redis_errors.ConnectionError("Error 111 connecting to 127.0.0.1:6379.")),
    ("redis-connection-reset", lambda: redis_errors.ConnectionError(
        "Error while reading from 127.0.0.1:6379 : (104, 'Connection reset by peer')")),
    ("redis-timeout", lambda: redis_errors.TimeoutError("Timeout reading from 127.0.0.1")),
    ("redis-busy-loading",
     lambda: redis_errors.BusyLoadingError("Redis is loading the dataset in memory")),
    ("uvloop-closed-transport", lambda: RuntimeError(
        "unable to perform operation on <TCPTransport closed=True reading=False>; "
        "the handler is closed")),
    ("redis-error", lambda: redis_errors.RedisError("anything")),
    ("redis-response-wrongtype", lambda: redis_errors.ResponseError(
        "WRONGTYPE Operation against a key holding the wrong kind of value")),
    ("redis-noscript", lambda: redis_errors.NoScriptError("NOSCRIPT No matching script")),
    ("redis-readonly", lambda: redis_errors.ReadOnlyError("READONLY replica")),
    ("redis-auth", lambda: redis_errors.AuthenticationError("invalid password")),
    ("redis-invalid-response", lambda: redis_errors.InvalidResponse("Protocol Error: x")),
    ("oserror", lambda: OSError("Buffer is closed.")),
    ("connection-reset", lambda: ConnectionResetError(104, "Connection reset by peer")),
    ("connection-refused", lambda: ConnectionRefusedError(111, "Connection refused")),
    ("broken-pipe", lambda: BrokenPipeError(32, "Broken pipe")),
    ("connection-aborted", lambda: ConnectionAbortedError(103, "aborted")),
    ("gaierror", lambda: socket.gaierror(-2, "Name or service not known")),
    ("ssl-error", lambda: ssl.SSLError(1, "record layer failure")),
    ("timeout", TimeoutError),
    ("asyncio-timeout", asyncio.TimeoutError),
    ("eof", EOFError),
    ("incomplete-read", lambda: asyncio.IncompleteReadError(b"$5\r\nab", 7)),
    ("hiredis-protocol", lambda: hiredis.ProtocolError("Protocol error, got 'x'")),
    ("hiredis-reply", lambda: hiredis.ReplyError("ERR something")),
    ("loop-closed", lambda: RuntimeError("Event loop is closed")),
    # Not a RedisError: what redis-py's cluster client raises when no node answers (seen
    # at start with a cluster down, or one that refuses the TLS handshake).
    ("redis-cluster-unreachable", lambda: redis_errors.RedisClusterException(
        "Redis Cluster cannot be connected. Please provide at least one reachable node")),
]
FAULT_IDS = [f[0] for f in FAULTS]
FAULT_MAKERS = [f[1] for f in FAULTS]

# Bugs of ours, not store faults: they must stay visible.
NOT_FAULTS: list[tuple[str, Callable[[], BaseException]]] = [
    ("value-error", lambda: ValueError("bad value")),
    ("type-error", lambda: TypeError("bad type")),
    ("key-error", lambda: KeyError("k")),
    ("attribute-error", lambda: AttributeError("no such attribute")),
    ("not-implemented", lambda: NotImplementedError("later")),
    ("recursion", lambda: RecursionError("too deep")),
    ("store-incompatible", lambda: StoreIncompatible("too old")),
]


class _Pipeline:
    """A redis-py pipeline whose commands queue and whose execute raises."""

    def __init__(self, client: BrokenClient) -> None:
        self._client = client

    async def __aenter__(self) -> _Pipeline:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None

    def __getattr__(self, _name: str) -> Callable[..., _Pipeline]:
        return lambda *_a, **_k: self

    async def execute(self) -> list[Any]:
        raise self._client.make()


class BrokenClient:
    """A redis-py client on a store that went away: every command raises `make()`."""

    def __init__(self, make: Callable[[], BaseException]) -> None:
        self.make = make

    def register_script(self, _script: str) -> Callable[..., Any]:
        async def run(*_a: Any, **_k: Any) -> Any:
            raise self.make()
        return run

    def pipeline(self, transaction: bool = True) -> _Pipeline:
        return _Pipeline(self)

    def scan_iter(self, *_a: Any, **_k: Any) -> AsyncIterator[str]:
        async def failing() -> AsyncIterator[str]:
            raise self.make()
            yield ""  # an async generator that fails when first iterated

        return failing()

    async def aclose(self) -> None:
        return None

    def __getattr__(self, _name: str) -> Callable[..., Any]:
        async def command(*_a: Any, **_k: Any) -> Any:
            raise self.make()
        return command


class BrokenTransport:
    """A lookup transport (the lean pipe's place) that raises `make()` on every call."""

    def __init__(self, make: Callable[[], BaseException]) -> None:
        self.make = make

    async def lookup(self, call: LookupCall, candidates: Sequence[str], encoded: bytes
                     ) -> list[list[str]]:
        raise self.make()

    def submit(self, call: LookupCall, candidates: Sequence[str], encoded: bytes
               ) -> Awaitable[Any]:
        return self.lookup(call, candidates, encoded)

    async def append(self, stream: str, fields: Any, max_len: int) -> str:
        raise self.make()

    def close(self) -> None:
        return None


def broken_store(make: Callable[[], BaseException], piped: bool = False) -> Store:
    """A Store on a client (and, when `piped`, a lookup transport) raising `make()`."""
    transport = BrokenTransport(make) if piped else None
    return Store(BrokenClient(make), REDIS, StoreConfig(),  # type: ignore[arg-type]
                 transport=transport)


@pytest.mark.parametrize("make", FAULT_MAKERS, ids=FAULT_IDS)
@pytest.mark.parametrize("call", [c[1] for c in CALLS], ids=[c[0] for c in CALLS])
async def test_every_store_method_turns_every_fault_into_store_unavailable(
        call: StoreCall, make: Callable[[], BaseException]) -> None:
    """Each Store method, on a client raising each kind of fault, raises StoreUnavailable
    chained to the original error."""
    with pytest.raises(StoreUnavailable) as raised:
        await call(broken_store(make))
    assert type(raised.value.__cause__) is type(make())
    assert str(raised.value)


@pytest.mark.parametrize("make", FAULT_MAKERS, ids=FAULT_IDS)
@pytest.mark.parametrize("call", [
    ("lookup", lambda s: s.lookup(["+33612345678"], ["global"], "sms")),
    ("lookup-several", lambda s: s.lookup(["+33612345678", "+447700900123"], ["global"])),
    ("append-attempt", lambda s: s.append_attempt(attempt())),
], ids=lambda c: c[0])
async def test_lookup_transport_faults_become_store_unavailable(
        call: tuple[str, StoreCall], make: Callable[[], BaseException]) -> None:
    """The per-request calls on the lookup transport (the lean pipe's place) too."""
    with pytest.raises(StoreUnavailable):
        await call[1](broken_store(make, piped=True))


@pytest.mark.parametrize("make", FAULT_MAKERS, ids=FAULT_IDS)
async def test_ping_is_false_on_every_fault(make: Callable[[], BaseException]) -> None:
    """Readiness never raises a store fault: ping() answers False."""
    assert await broken_store(make).ping() is False


@pytest.mark.parametrize("make", [f[1] for f in NOT_FAULTS], ids=[f[0] for f in NOT_FAULTS])
@pytest.mark.parametrize("call", [c[1] for c in CALLS], ids=[c[0] for c in CALLS])
async def test_programming_errors_pass_through_unchanged(
        call: StoreCall, make: Callable[[], BaseException]) -> None:
    """A bug is not an outage: it is raised as it is, not hidden as StoreUnavailable."""
    with pytest.raises(type(make())):
        await call(broken_store(make))


@pytest.mark.parametrize("call", [c[1] for c in CALLS], ids=[c[0] for c in CALLS])
async def test_cancellation_raised_inside_propagates(call: StoreCall) -> None:
    """CancelledError raised by the client is never turned into StoreUnavailable."""
    with pytest.raises(asyncio.CancelledError):
        await call(broken_store(asyncio.CancelledError))


class HangingClient(BrokenClient):
    """A client whose every command waits forever (a server that went silent)."""

    def __init__(self) -> None:
        super().__init__(lambda: AssertionError("not raised"))

    def register_script(self, _script: str) -> Callable[..., Any]:
        async def run(*_a: Any, **_k: Any) -> Any:
            await asyncio.Event().wait()
        return run

    def __getattr__(self, _name: str) -> Callable[..., Any]:
        async def command(*_a: Any, **_k: Any) -> Any:
            await asyncio.Event().wait()
        return command


@pytest.mark.parametrize("call", [
    ("lookup", lambda s: s.lookup(["+33612345678"], ["global"])),
    ("add", CALLS[2][1]), ("page", CALLS[5][1]), ("ping", lambda s: s.ping()),
], ids=lambda c: c[0])
async def test_cancelling_a_waiting_store_call_cancels_it(call: tuple[str, StoreCall]) -> None:
    """A request cancelled while its store call waits is cancelled, not a store fault."""
    store = Store(HangingClient(), REDIS, StoreConfig())  # type: ignore[arg-type]
    task = asyncio.ensure_future(call[1](store))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_failing_write_on_the_lean_pipe_fails_the_call_at_once(
        redis_server: str, real_redis: Any) -> None:
    """uvloop raises RuntimeError when writing to a transport the server has just
    closed: the pipe fails the calls in flight at once (no wait for the timeout) and
    reconnects on the next call."""
    config = RedisConfig(timeout=5.0)
    store = Store(connect(config, redis_server), config, StoreConfig(),
                  lookup_url=redis_server)
    try:
        assert await store.lookup(["+33612345678"], ["global"]) == {"+33612345678": []}
        pipe = store._transport.pipe  # type: ignore[attr-defined]
        transport = pipe._transport

        def closed(_data: bytes) -> None:
            raise RuntimeError("unable to perform operation on <TCPTransport closed=True>; "
                               "the handler is closed")

        transport.write = closed
        async with asyncio.timeout(1):  # far below the 5 s call timeout
            with pytest.raises(StoreUnavailable, match="write failed"):
                await store.lookup(["+33612345678"], ["global"])
        assert await store.lookup(["+33612345678"], ["global"]) == {"+33612345678": []}
    finally:
        await store.close()


def _raise_inside(exc: BaseException) -> None:
    with store_faults("ctx"):
        raise exc


@given(make=st.sampled_from(FAULT_MAKERS),
       message=st.text(max_size=40) | st.text(min_size=300, max_size=3000))
def test_store_faults_turns_any_fault_into_a_described_store_unavailable(
        make: Callable[[], BaseException], message: str) -> None:
    """Whatever the fault and its message (even empty, or thousands of characters over
    several lines, like redis-py's MasterNotFoundError), the result is StoreUnavailable
    with a non-empty one-line message of bounded length naming the context, chained to
    the original."""
    original = make()
    if isinstance(original, OSError | RuntimeError | redis_errors.RedisError):
        original = type(original)(message)
    with pytest.raises(StoreUnavailable) as raised:
        _raise_inside(original)
    assert raised.value.__cause__ is original
    text = str(raised.value)
    assert text.startswith("ctx: ")
    assert len(text) > len("ctx: ")
    assert "\n" not in text
    assert "\r" not in text
    assert len(text) <= len("ctx: ") + len(type(original).__name__) + 2 + 300 + 30


@given(make=st.sampled_from([f[1] for f in NOT_FAULTS] + [asyncio.CancelledError,
                                                          KeyboardInterrupt]))
def test_store_faults_lets_anything_else_through(make: Callable[[], BaseException]) -> None:
    """Non-faults, cancellation and interrupts leave store_faults as they came in."""
    original = make()
    assert not is_fault(original)
    with pytest.raises(type(original)) as raised:
        _raise_inside(original)
    assert raised.value is original


@given(message=st.text(max_size=40))
def test_store_unavailable_raised_inside_is_not_wrapped_again(message: str) -> None:
    """A StoreUnavailable (e.g. from the pipe's own timeout) passes through as it is."""
    original = StoreUnavailable(message)
    with pytest.raises(StoreUnavailable) as raised:
        _raise_inside(original)
    assert raised.value is original

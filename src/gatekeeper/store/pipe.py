"""How lookups (and attempt appends, as frequent) reach Redis: the `LookupTransport`
interface, and its two implementations: `PipeTransport` on the lean pipelined
connection `LookupPipe`, and `ClientTransport` on redis-py.

redis-py spends about 100 us of CPU per command (pool, retries, hooks); lookups are on
every send, so they take the lean path whenever the store's URL is known.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import parse_url
from redis.commands.core import AsyncScript

from gatekeeper.store.faults import StoreUnavailable, is_fault, store_faults
from gatekeeper.store.scripts import LOOKUP_LUA


def tls_context(options: Mapping[str, Any]) -> ssl.SSLContext:
    """The TLS context of a `rediss://` URL, with the options redis-py reads from its
    query (`ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`, `ssl_cert_reqs`,
    `ssl_check_hostname`): the lean lookup connection trusts and presents exactly what
    the redis-py connections do."""
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs") or None)
    certfile = options.get("ssl_certfile")
    if certfile:
        context.load_cert_chain(certfile, options.get("ssl_keyfile") or None)
    if options.get("ssl_check_hostname") in (False, "false", "False"):
        context.check_hostname = False
    cert_reqs = str(options.get("ssl_cert_reqs", "required")).lower()
    if cert_reqs in ("none", "0"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif cert_reqs == "optional":
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def resp_bulk(arg: str | bytes) -> bytes:
    """One RESP bulk string."""
    data = arg.encode() if isinstance(arg, str) else arg
    return b"$%d\r\n%s\r\n" % (len(data), data)


def resp(args: Sequence[str | bytes]) -> bytes:
    """A command in RESP (an array of bulk strings)."""
    return b"*%d\r\n" % len(args) + b"".join(resp_bulk(arg) for arg in args)


@dataclass(frozen=True, slots=True)
class LookupCall:
    """The fixed part of a lookup script call: its keys and ARGV slice size, and the
    same as RESP (`EVALSHA sha numkeys keys... slice`) for the pipe."""

    keys: tuple[str, ...]
    argv_slice: int
    argc: int
    head: bytes
    slot: int = 0
    """The keys' hash slot (read on a cluster only, where they share one)."""
    fixed: tuple[str, ...] = ()
    """ARGV before the candidates, as `head` carries them (for redis-py's EVAL)."""
    script: str = LOOKUP_LUA
    """The script's source, loaded again when the server has lost it (the lookup's, or
    another per-request script's: velocity counters)."""
    parts: tuple[bytes, bytes] = (b"", b"")
    """A lookup's keys, and its ARGV before the counts (slice, triples, skips), in RESP:
    for a call that counts sends in the same script call (store/velocity.py)."""
    pieces: tuple[bytes, ...] = ()
    """The head in pieces (then `head` is empty), most of them shared with other calls:
    a counting call's probe keys are one object for every number, still in the CPU's
    cache when the next send copies them, where a number's own joined head was read
    from memory on each send (`bench.misses`)."""

    def payload(self, count: int, encoded: bytes) -> bytes:
        """The whole command, with `count` candidates `encoded`."""
        if self.pieces:
            return b"".join((b"*%d\r\n" % (self.argc + count), *self.pieces, encoded))
        return b"*%d\r\n%s%s" % (self.argc + count, self.head, encoded)


class LookupTransport(Protocol):
    """What the Store needs for its two per-request commands."""

    async def lookup(self, call: LookupCall, candidates: Sequence[str], encoded: bytes
                     ) -> list[list[str]]:
        """Run the lookup script on `candidates` (`encoded`: the same in RESP)."""
        ...

    def submit(self, call: LookupCall, candidates: Sequence[str], encoded: bytes
               ) -> Awaitable[Any]:
        """The same as `lookup`, but already on its way when this returns where the
        transport can manage it (so that a lookup started next leaves in the same write);
        the caller awaits the result (or `discard`s it)."""
        ...

    async def append(self, stream: str, fields: Mapping[str, str], max_len: int) -> str:
        """XADD to a stream capped at about `max_len`; returns the entry id."""
        ...

    def close(self) -> None:
        """Drop its own connection, if any."""
        ...


class ClientTransport:
    """Lookups and appends on redis-py (a client passed in, as with fakeredis in tests)."""

    def __init__(self, client: aioredis.Redis, lookup: AsyncScript) -> None:
        self._client = client
        self._lookup = lookup

    async def lookup(self, call: LookupCall, candidates: Sequence[str], encoded: bytes
                     ) -> list[list[str]]:
        """EVALSHA through redis-py (which reloads a lost script itself)."""
        if call.script is not LOOKUP_LUA:
            return cast(list[list[str]], await self._client.eval(
                call.script, len(call.keys), *call.keys, *call.fixed, *candidates))
        return cast(list[list[str]], await self._lookup(
            keys=list(call.keys), args=[call.argv_slice, *call.fixed, *candidates]))

    def submit(self, call: LookupCall, candidates: Sequence[str], encoded: bytes
               ) -> Awaitable[Any]:
        """A task running `lookup` (redis-py sends it once the loop runs the task)."""
        return asyncio.ensure_future(self.lookup(call, candidates, encoded))

    async def append(self, stream: str, fields: Mapping[str, str], max_len: int) -> str:
        """XADD MAXLEN ~ through redis-py."""
        entry: dict[Any, Any] = dict(fields)
        return cast(str, await self._client.xadd(stream, entry, maxlen=max_len,
                                                  approximate=True))

    def close(self) -> None:
        """Nothing of its own: the client belongs to the Store."""


class PipeTransport:
    """Lookups and appends on a `LookupPipe`."""

    def __init__(self, pipe: LookupPipe) -> None:
        self.pipe = pipe

    async def lookup(self, call: LookupCall, candidates: Sequence[str], encoded: bytes
                     ) -> list[list[str]]:
        """The pre-encoded EVALSHA; the script is loaded again if the server lost it."""
        payload = call.payload(len(candidates), encoded)
        return await self._checked(call, payload, self.pipe.call_raw(payload))

    def submit(self, call: LookupCall, candidates: Sequence[str], encoded: bytes
               ) -> Awaitable[Any]:
        """Queued on the pipe at once when it is connected (no task: a few microseconds
        per velocity count); else `lookup`, which connects first."""
        if not self.pipe.connected:
            return self.lookup(call, candidates, encoded)
        payload = call.payload(len(candidates), encoded)
        sent = self.pipe.enqueue(payload)
        # Retrieved even if the caller lets go of the count (after another fault).
        sent.add_done_callback(retrieve)
        return self._checked(call, payload, sent)

    async def _checked(self, call: LookupCall, payload: bytes, sent: Awaitable[Any]
                       ) -> list[list[str]]:
        """The reply to `payload` (`sent`); the script is loaded again if the server lost
        it (restart, SCRIPT FLUSH), and the call retried once."""
        reply = await sent
        if isinstance(reply, hiredis.ReplyError):
            if not str(reply).startswith("NOSCRIPT"):
                raise StoreUnavailable(str(reply))
            await self.pipe.call(["SCRIPT", "LOAD", call.script])
            reply = await self.pipe.call_raw(payload)
            if isinstance(reply, hiredis.ReplyError):
                raise StoreUnavailable(str(reply))
        return cast(list[list[str]], reply)

    async def append(self, stream: str, fields: Mapping[str, str], max_len: int) -> str:
        """XADD MAXLEN ~ on the pipe: one append per blocked send."""
        reply = await self.pipe.call([
            "XADD", stream, "MAXLEN", "~", str(max_len), "*",
            *(part for pair in fields.items() for part in pair)])
        if isinstance(reply, hiredis.ReplyError):
            raise StoreUnavailable(str(reply))
        return cast(str, reply)

    def close(self) -> None:
        """Drop the pipe's connection."""
        self.pipe.close()


def retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen (a done callback for futures that may be let
    go of after a fault, which asyncio would otherwise log as never retrieved)."""
    if not future.cancelled():
        future.exception()


class _PipeProtocol(asyncio.Protocol):
    """Hands each reply to the oldest waiting request (Redis answers in order)."""

    def __init__(self, pipe: LookupPipe) -> None:
        self.pipe = pipe
        self.reader = hiredis.Reader(encoding="utf-8")

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        pending = self.pipe.pending
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self.pipe.broken(f"protocol error: {exc}")
                return
            if reply is False:
                return
            if pending:
                waiter, _ = pending.popleft()
                if not waiter.done():
                    waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.pipe.broken(f"connection lost: {exc or 'closed by the server'}")


class LookupPipe:
    """One connection carrying every lookup, pipelined: requests are written as they come
    and replies matched in order, with a few microseconds of client work per call.

    A timeout or a lost connection fails the calls in flight (`StoreUnavailable`) and the
    next call reconnects. With `master` (Sentinel), each connection goes to the address
    it returns then, and is used only if that server says it is a master.
    """

    def __init__(self, url: str, timeout: float,
                 master: Callable[[], Awaitable[tuple[str, int]]] | None = None) -> None:
        self._options = parse_url(url)
        self._timeout = timeout
        self._master = master
        self._transport: asyncio.Transport | None = None
        # The connection's loop, kept: asyncio.get_running_loop() makes a getpid()
        # system call each time on CPython 3.11 (about 1.5 us here, per lookup).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Lock | None = None
        # Calls in flight, oldest first, with their deadlines (loop time).
        self.pending: collections.deque[tuple[asyncio.Future[Any], float]] = \
            collections.deque()
        self._outbox: list[bytes] = []
        # One timer for all calls, not one per call: it watches the oldest call only,
        # since replies come in order and a later call cannot be due sooner.
        self._watchdog: asyncio.TimerHandle | None = None

    def _flush(self) -> None:
        outbox, self._outbox = self._outbox, []
        if self._transport is not None and outbox:
            try:
                self._transport.write(b"".join(outbox))
            except Exception as exc:
                # uvloop raises on a transport the server closed a moment ago, before
                # connection_lost has run; asyncio drops the write silently.
                if not is_fault(exc):
                    raise
                self.broken(f"write failed: {exc}")

    def broken(self, why: str) -> None:
        """Fail every call in flight and drop the connection."""
        transport, self._transport = self._transport, None
        self._outbox = []
        if transport is not None:
            transport.abort()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        pending, self.pending = self.pending, collections.deque()
        for waiter, _ in pending:
            if not waiter.done():
                waiter.set_exception(StoreUnavailable(why))

    async def _connect(self) -> None:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._transport is not None:
                return
            loop = asyncio.get_running_loop()
            options = self._options
            protocol = _PipeProtocol(self)
            host, port = options.get("host", "localhost"), options.get("port", 6379)
            with store_faults("cannot connect"):
                async with asyncio.timeout(self._timeout):
                    if self._master is not None:
                        host, port = await self._master()
                    if "path" in options:
                        transport, _ = await loop.create_unix_connection(
                            lambda: protocol, options["path"])
                    else:
                        tls = tls_context(options) \
                            if options.get("connection_class") is not None else None
                        transport, _ = await loop.create_connection(
                            lambda: protocol, host, port, ssl=tls)
            self._transport, self._loop = transport, loop
            hello: list[list[str]] = []
            if options.get("password"):
                user = options.get("username")
                hello.append(["AUTH", *([user] if user else []), options["password"]])
            if options.get("db"):
                hello.append(["SELECT", str(options["db"])])
            if self._master is not None:
                hello.append(["ROLE"])
            for command in hello:
                reply = await self._send(command)
                if isinstance(reply, hiredis.ReplyError):
                    self.broken(f"{command[0]} refused: {reply}")
                    raise StoreUnavailable(f"{command[0]} refused: {reply}")
                if command[0] == "ROLE" and (not reply or reply[0] != "master"):
                    # Sentinel named a server that is not (or no longer) the master.
                    self.broken(f"{host}:{port} is not a master")
                    raise StoreUnavailable(f"{host}:{port} is not a master")

    async def _send(self, args: Sequence[str | bytes]) -> Any:
        return await self._send_raw(resp(args))

    async def _send_raw(self, payload: bytes) -> Any:
        return await self._enqueue(payload)

    @property
    def connected(self) -> bool:
        """Whether commands can be queued (`enqueue`) without connecting first."""
        return self._transport is not None

    def enqueue(self, payload: bytes) -> asyncio.Future[Any]:
        """Queue a RESP-encoded command for the next write (connected only); the future
        of its reply."""
        return self._enqueue(payload)

    def _enqueue(self, payload: bytes) -> asyncio.Future[Any]:
        """Queue a command for the next write; the future of its reply."""
        loop = self._loop
        if self._transport is None or loop is None:
            raise StoreUnavailable("not connected")
        waiter: asyncio.Future[Any] = loop.create_future()
        deadline = loop.time() + self._timeout
        self.pending.append((waiter, deadline))
        if self._watchdog is None:
            self._watchdog = loop.call_at(deadline, self._watch)
        # Lookups started in the same loop iteration leave in one write (one syscall).
        self._outbox.append(payload)
        if len(self._outbox) == 1:
            loop.call_soon(self._flush)
        return waiter

    def _watch(self) -> None:
        """Fail everything once the oldest call is overdue, else wait for its deadline."""
        self._watchdog = None
        if not self.pending:
            return
        deadline = self.pending[0][1]
        loop = self._loop
        if loop is None or loop.time() >= deadline:
            # Replies still on their way would be matched to the wrong calls: start over.
            self.broken("timed out")
        else:
            self._watchdog = loop.call_at(deadline, self._watch)

    async def call(self, args: Sequence[str | bytes]) -> Any:
        """Send one command and return its reply (error replies are returned, not raised)."""
        return await self.call_raw(resp(args))

    async def call_raw(self, payload: bytes) -> Any:
        """Send one RESP-encoded command and return its reply."""
        if self._transport is None:
            await self._connect()
        return await self._send_raw(payload)

    async def call_after(self, first: Sequence[str], payload: bytes) -> Any:
        """Send a command, then `payload` right behind it in the same write (a cluster's
        ASKING); return the reply to `payload`."""
        if self._transport is None:
            await self._connect()
        before = self._enqueue(resp(first))
        reply = self._enqueue(payload)
        await before
        return await reply

    def close(self) -> None:
        """Drop the connection."""
        self.broken("closed")

"""The Redis list store: the only module that imports `redis`.

Layout (every key and member name is built by `Keys`):
  {prefix}list:{block|allow}:{scope}  sorted set, all scores 0, members are entries as
                                      written (`+33612345678`, `+33*`), with `#sms` or
                                      `#voice` appended for a channel-limited entry; equal
                                      scores order the set by member, so listings page by
                                      value.
  {prefix}meta:{block|allow}:{scope}  hash, member -> JSON metadata (source, added_at,
                                      ...), or `@<id>` naming metadata shared by a bulk
                                      load, kept once in {prefix}batch:{id}
  {prefix}exp:{block|allow}:{scope}   sorted set, member -> expires_at (epoch seconds)
  {prefix}tmp:{token}:...             a list being loaded, swapped in whole when complete
  {prefix}attempts                    stream of blocked attempts, capped (MAXLEN ~).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import re
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gatekeeper.config import RedisConfig, StoreConfig
from gatekeeper.numbers import lookup_candidates
from gatekeeper.policy import LISTS, ListName, Match
from gatekeeper.types import CHANNELS, Channel

MIN_REDIS_VERSION = (6, 2)
# The longest note an entry carries (metadata is stored beside every entry).
MAX_NOTE = 500
# Lua's unpack() has a stack limit; probe the candidates in slices of this size.
_ARGV_SLICE = 4000
# A replace import's mark, and the journal of entries added meanwhile, vanish after this
# long if the import never finishes (its process was killed).
LOAD_MARK_SECONDS = 24 * 3600

LOOKUP_LUA = """
-- Which candidate members are live (present and not expired) in each list set.
-- KEYS: pairs of (list set, its expiry set), in order
-- ARGV[1]: slice size for unpack(); ARGV[2..]: candidate members (numbers and prefixes)
-- returns: one array per pair, holding the candidates that are live members of that list
local slice = tonumber(ARGV[1])
local n = #ARGV
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local out = {}
for i = 1, #KEYS, 2 do
  local key, expiry = KEYS[i], KEYS[i + 1]
  local hits = {}
  if redis.call('EXISTS', key) == 1 then
    local expiring = redis.call('EXISTS', expiry) == 1
    for first = 2, n, slice do
      local last = math.min(first + slice - 1, n)
      local scores = redis.call('ZMSCORE', key, unpack(ARGV, first, last))
      for j, score in ipairs(scores) do
        if score then
          local member = ARGV[first + j - 1]
          local at = expiring and redis.call('ZSCORE', expiry, member)
          if not at or tonumber(at) > now then hits[#hits + 1] = member end
        end
      end
    end
  end
  out[#out + 1] = hits
end
return out
"""

ADD_LUA = """
-- Add members that are absent (or expired), recording metadata and expiry only for those
-- it adds, so a manual entry never takes an opt-out's metadata, or the reverse.
-- While a replace import of the list is under way (its load mark exists), the members
-- added are also written to the list's journal, so that the swap keeps them.
-- KEYS[1]: the list set; KEYS[2]: its metadata hash; KEYS[3]: its expiry set;
-- KEYS[4]: its load mark; KEYS[5]: its journal
-- ARGV[1]: metadata (JSON, or @batch-id); ARGV[2]: expires_at (epoch seconds) or '';
-- ARGV[3]: seconds a journal lives; ARGV[4]: for a copy being loaded, seconds its keys
--   live unless swapped in (so a killed import leaves nothing for good), else '';
-- ARGV[5..]: members
-- returns: one 1 (added) or 0 (already present) per member
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local expiring = redis.call('EXISTS', KEYS[3]) == 1
local loading = redis.call('EXISTS', KEYS[4]) == 1
local journaled = false
local out = {}
for i = 5, #ARGV do
  local member = ARGV[i]
  local added = redis.call('ZADD', KEYS[1], 'NX', 0, member)
  if added == 0 and expiring then
    local at = redis.call('ZSCORE', KEYS[3], member)
    if at and tonumber(at) <= now then added = 1 end  -- expired, not yet swept: gone
  end
  if added == 1 then
    redis.call('HSET', KEYS[2], member, ARGV[1])
    if ARGV[2] ~= '' then
      redis.call('ZADD', KEYS[3], ARGV[2], member)
    elseif expiring then
      redis.call('ZREM', KEYS[3], member)
    end
    if loading then
      redis.call('SADD', KEYS[5], member)
      journaled = true
    end
  end
  out[i - 4] = added
end
if journaled then redis.call('EXPIRE', KEYS[5], tonumber(ARGV[3])) end
if ARGV[4] ~= '' then
  for k = 1, 3 do redis.call('EXPIRE', KEYS[k], tonumber(ARGV[4])) end
end
return out
"""

REMOVE_IF_SOURCE_LUA = """
-- Remove a member only if its metadata says it came from the given source.
-- KEYS[1]: the list set; KEYS[2]: its metadata hash; KEYS[3]: its expiry set
-- ARGV[1]: member; ARGV[2]: source (e.g. opt-out); ARGV[3]: prefix of batch keys
-- returns: 1 when removed, 0 when absent or from another source
local meta = redis.call('HGET', KEYS[2], ARGV[1])
if not meta then return 0 end
if string.sub(meta, 1, 1) == '@' then
  meta = redis.call('GET', ARGV[3] .. string.sub(meta, 2))
  if not meta then return 0 end
end
local ok, decoded = pcall(cjson.decode, meta)
if not ok or type(decoded) ~= 'table' or decoded['source'] ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""

SWEEP_LUA = """
-- Remove expired members of one list (lookups already ignore them; this tidies up).
-- KEYS[1]: the list set; KEYS[2]: its metadata hash; KEYS[3]: its expiry set
-- ARGV[1]: at most this many members per call
-- returns: the number of members removed
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(gone) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], member)
  redis.call('ZREM', KEYS[3], member)
end
return #gone
"""

SWAP_LUA = """
-- Replace a list with a fully loaded copy in one step (lookups see old or new, never half).
-- Entries added to the live list while the copy loaded (the journal), and still there,
-- are carried into the copy first, with their metadata and expiry; the copy's own entry
-- wins where both have one. The journal goes when no other load of the list is left.
-- KEYS[1..3]: the live list set, metadata hash and expiry set
-- KEYS[4..6]: the loaded copies of the same
-- KEYS[7]: the live list's load mark; KEYS[8]: its journal
-- ARGV[1]: this load's token (its member of the load mark)
-- returns: the number of members of the new list
for _, member in ipairs(redis.call('SMEMBERS', KEYS[8])) do
  if redis.call('ZSCORE', KEYS[1], member) then
    if redis.call('ZADD', KEYS[4], 'NX', 0, member) == 1 then
      local meta = redis.call('HGET', KEYS[2], member)
      if meta then redis.call('HSET', KEYS[5], member, meta) end
      local at = redis.call('ZSCORE', KEYS[3], member)
      if at then redis.call('ZADD', KEYS[6], at, member) end
    end
  end
end
redis.call('SREM', KEYS[7], ARGV[1])
if redis.call('EXISTS', KEYS[7]) == 0 then redis.call('DEL', KEYS[8]) end
for i = 1, 3 do
  if redis.call('EXISTS', KEYS[i + 3]) == 1 then
    redis.call('RENAME', KEYS[i + 3], KEYS[i])
    redis.call('PERSIST', KEYS[i])  -- the copy's lifetime ends here: the list stays
  else
    redis.call('DEL', KEYS[i])
  end
end
return redis.call('ZCARD', KEYS[1])
"""

BEGIN_LOAD_LUA = """
-- Mark a replace import of a list as under way (adds to the live list get journaled).
-- KEYS[1]: the list's load mark (a set of load tokens)
-- ARGV[1]: this load's token; ARGV[2]: seconds the mark lives without a refresh
-- returns: the number of loads of this list now under way
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return redis.call('SCARD', KEYS[1])
"""

END_LOAD_LUA = """
-- An abandoned replace import: unmark it; the journal goes when no other load is left.
-- KEYS[1]: the list's load mark; KEYS[2]: its journal
-- ARGV[1]: this load's token
-- returns: the number of loads of this list still under way
redis.call('SREM', KEYS[1], ARGV[1])
local left = redis.call('SCARD', KEYS[1])
if left == 0 then redis.call('DEL', KEYS[2]) end
return left
"""


class StoreUnavailable(Exception):
    """The store could not be reached or failed; the caller applies `store.on_error`."""


class StoreIncompatible(Exception):
    """The server is reachable but cannot serve Gatekeeper (too old, no Lua)."""


@dataclass(frozen=True, slots=True)
class ListKeys:
    """The keys of one list: members, metadata, expiry; and, for a live list, the mark of
    replace imports under way and the journal of entries added meanwhile."""

    list: str
    meta: str
    expiry: str
    loading: str
    journal: str

    @property
    def all(self) -> tuple[str, str, str]:
        """The keys in script order (list, meta, expiry)."""
        return (self.list, self.meta, self.expiry)


@dataclass(frozen=True, slots=True)
class Keys:
    """Builds every Redis key and member name the store uses."""

    prefix: str

    def list(self, name: ListName, scope: str) -> str:
        """The sorted set holding one list of one scope."""
        return f"{self.prefix}list:{name}:{scope}"

    def of(self, name: ListName, scope: str) -> ListKeys:
        """The keys of one list of one scope."""
        return ListKeys(self.list(name, scope), f"{self.prefix}meta:{name}:{scope}",
                        f"{self.prefix}exp:{name}:{scope}",
                        f"{self.prefix}loading:{name}:{scope}",
                        f"{self.prefix}journal:{name}:{scope}")

    def staging(self, name: ListName, scope: str) -> ListKeys:
        """Fresh keys to load a replacement of a list into before swapping it in."""
        token = uuid.uuid4().hex
        # A copy being loaded is never itself being replaced: its mark is never set.
        return ListKeys(f"{self.prefix}tmp:{token}:list:{name}:{scope}",
                        f"{self.prefix}tmp:{token}:meta:{name}:{scope}",
                        f"{self.prefix}tmp:{token}:exp:{name}:{scope}",
                        f"{self.prefix}tmp:{token}:loading:{name}:{scope}",
                        f"{self.prefix}tmp:{token}:journal:{name}:{scope}")

    @property
    def expiry_pattern(self) -> str:
        """SCAN pattern matching every expiry set."""
        return f"{self.prefix}exp:*"

    def from_expiry(self, key: str) -> ListKeys | None:
        """The list keys an expiry set belongs to."""
        rest = key.removeprefix(f"{self.prefix}exp:")
        name, _, scope = rest.partition(":")
        if name not in LISTS or not scope:
            return None
        return self.of(name, scope)

    @property
    def batch_prefix(self) -> str:
        """Prefix of the keys holding metadata shared by a bulk load."""
        return f"{self.prefix}batch:"

    @staticmethod
    def member(item: ListItem) -> str:
        """The set member for an entry: `+33*`, or `+33*#voice` when channel-limited."""
        return item.entry if item.channel is None else f"{item.entry}#{item.channel}"

    @staticmethod
    def item(member: str) -> ListItem:
        """The entry a set member stands for."""
        entry, _, channel = member.partition("#")
        return ListItem(entry, channel if channel in CHANNELS else None)

    @property
    def attempts(self) -> str:
        """The stream of blocked attempts."""
        return f"{self.prefix}attempts"


@dataclass(frozen=True, slots=True)
class BlockedAttempt:
    """One blocked (or would-be-blocked) attempt, as appended to the attempts stream."""

    request_id: str
    upstream: str
    channel: str
    direction: str
    number: str
    scopes: str
    scope: str
    list: str
    entry: str
    action: str


@dataclass(frozen=True, slots=True)
class ListItem:
    """A normalised list entry and the channel it is limited to (None: every channel)."""

    entry: str
    channel: Channel | None = None


@dataclass(frozen=True, slots=True)
class EntryMeta:
    """Where an entry came from, when, and until when (kept beside it)."""

    source: str
    added_at: float
    added_by: str | None = None
    note: str | None = None
    expires_at: float | None = None

    def to_json(self) -> str:
        """Compact JSON, without unset fields."""
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None},
                          separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | None) -> EntryMeta | None:
        """Parse stored metadata; None when absent or unreadable."""
        if not text:
            return None
        try:
            raw = json.loads(text)
            expires = raw.get("expires_at")
            return cls(str(raw["source"]), float(raw["added_at"]), raw.get("added_by"),
                       raw.get("note"), None if expires is None else float(expires))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


@dataclass(frozen=True, slots=True)
class Listed:
    """One entry of a listing, with its metadata when known."""

    item: ListItem
    meta: EntryMeta | None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing; `next_cursor` is None on the last page."""

    entries: tuple[Listed, ...]
    next_cursor: str | None


def connect(config: RedisConfig, url: str | None = None) -> aioredis.Redis:
    """A client for `url` (default: the configured one) with the store's timeouts.

    One retry without back-off: a pooled connection broken by a Redis restart is replaced
    at once, while a Redis that is really down fails fast so `on_error` can apply.
    """
    return aioredis.Redis.from_url(
        url or config.url,
        decode_responses=True,
        socket_timeout=config.timeout,
        socket_connect_timeout=config.timeout,
        retry=Retry(NoBackoff(), 1),
    )


_SCRIPTS = (LOOKUP_LUA, ADD_LUA, REMOVE_IF_SOURCE_LUA, SWEEP_LUA, SWAP_LUA,
            BEGIN_LOAD_LUA, END_LOAD_LUA)


def _resp_bulk(arg: str | bytes) -> bytes:
    """One RESP bulk string."""
    data = arg.encode() if isinstance(arg, str) else arg
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _resp(args: Sequence[str | bytes]) -> bytes:
    """A command in RESP (an array of bulk strings)."""
    return b"*%d\r\n" % len(args) + b"".join(_resp_bulk(arg) for arg in args)


@lru_cache(maxsize=65536)
def _candidates(number: str, channel: Channel | None) -> tuple[tuple[str, ...], bytes]:
    """The members that can match `number` on `channel`, and their RESP encoding (cached:
    both depend on the arguments alone)."""
    members: list[str] = []
    for candidate in lookup_candidates(number):
        members.append(candidate)
        if channel is not None:
            members.append(f"{candidate}#{channel}")
    return tuple(members), b"".join(_resp_bulk(m) for m in members)


@dataclass(frozen=True, slots=True)
class _Probe:
    """The fixed part of a lookup in some scopes: lists probed, keys, encoded head."""

    lists: tuple[tuple[ListName, str], ...]
    keys: tuple[str, ...]
    argc: int
    head: bytes


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

    redis-py spends about 100 us of CPU per command (pool, retries, hooks); lookups are
    on every send, so they take this lean path. A timeout or a lost connection fails the
    calls in flight (`StoreUnavailable`) and the next call reconnects.
    """

    def __init__(self, url: str, timeout: float) -> None:
        self._options = parse_url(url)
        self._timeout = timeout
        self._transport: asyncio.Transport | None = None
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
            self._transport.write(b"".join(outbox))

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
            try:
                async with asyncio.timeout(self._timeout):
                    if "path" in options:
                        transport, _ = await loop.create_unix_connection(
                            lambda: protocol, options["path"])
                    else:
                        tls = ssl.create_default_context() \
                            if options.get("connection_class") is not None else None
                        transport, _ = await loop.create_connection(
                            lambda: protocol, options.get("host", "localhost"),
                            options.get("port", 6379), ssl=tls)
            except (OSError, TimeoutError) as exc:
                raise StoreUnavailable(f"cannot connect: {exc}") from exc
            self._transport = transport
            hello: list[list[str]] = []
            if options.get("password"):
                user = options.get("username")
                hello.append(["AUTH", *([user] if user else []), options["password"]])
            if options.get("db"):
                hello.append(["SELECT", str(options["db"])])
            for command in hello:
                reply = await self._send(command)
                if isinstance(reply, hiredis.ReplyError):
                    self.broken(f"{command[0]} refused: {reply}")
                    raise StoreUnavailable(f"{command[0]} refused: {reply}")

    async def _send(self, args: Sequence[str | bytes]) -> Any:
        return await self._send_raw(_resp(args))

    async def _send_raw(self, payload: bytes) -> Any:
        transport = self._transport
        if transport is None:
            raise StoreUnavailable("not connected")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        deadline = loop.time() + self._timeout
        self.pending.append((waiter, deadline))
        if self._watchdog is None:
            self._watchdog = loop.call_at(deadline, self._watch)
        # Lookups started in the same loop iteration leave in one write (one syscall).
        self._outbox.append(payload)
        if len(self._outbox) == 1:
            loop.call_soon(self._flush)
        return await waiter

    def _watch(self) -> None:
        """Fail everything once the oldest call is overdue, else wait for its deadline."""
        self._watchdog = None
        if not self.pending:
            return
        deadline = self.pending[0][1]
        loop = asyncio.get_running_loop()
        if loop.time() >= deadline:
            # Replies still on their way would be matched to the wrong calls: start over.
            self.broken("timed out")
        else:
            self._watchdog = loop.call_at(deadline, self._watch)

    async def call(self, args: Sequence[str | bytes]) -> Any:
        """Send one command and return its reply (error replies are returned, not raised)."""
        return await self.call_raw(_resp(args))

    async def call_raw(self, payload: bytes) -> Any:
        """Send one RESP-encoded command and return its reply."""
        if self._transport is None:
            await self._connect()
        return await self._send_raw(payload)

    def close(self) -> None:
        """Drop the connection."""
        self.broken("closed")


class Store:
    """Allow and block lists in Redis, plus the attempts stream."""

    def __init__(self, client: aioredis.Redis, redis_config: RedisConfig,
                 store_config: StoreConfig, lookup_url: str | None = None) -> None:
        self.client = client
        # Lookups go through the lean pipelined connection when the store's URL is known
        # (a client passed in, as in tests on fakeredis, is used for everything).
        self._pipe = LookupPipe(lookup_url, redis_config.timeout) if lookup_url else None
        self._lookup_sha = hashlib.sha1(LOOKUP_LUA.encode()).hexdigest()  # noqa: S324
        self.keys = Keys(redis_config.key_prefix)
        self._attempts_max_len = store_config.attempts_max_len
        self._lookup = client.register_script(LOOKUP_LUA)
        self._add = client.register_script(ADD_LUA)
        self._remove_if_source = client.register_script(REMOVE_IF_SOURCE_LUA)
        self._sweep = client.register_script(SWEEP_LUA)
        self._probe_cache: dict[tuple[str, ...], _Probe] = {}
        self._swap = client.register_script(SWAP_LUA)
        self._begin_load = client.register_script(BEGIN_LOAD_LUA)
        self._end_load = client.register_script(END_LOAD_LUA)

    async def prepare(self) -> None:
        """Check the server version and load the scripts ahead of the first request."""
        try:
            info = await self.client.info("server")
            version = str(info.get("redis_version") or info.get("valkey_version") or "")
            parts = re.findall(r"\d+", version)[:2]
            # An unparsable version (a dev build) is given the benefit of the doubt.
            if len(parts) == 2 and (int(parts[0]), int(parts[1])) < MIN_REDIS_VERSION:
                raise StoreIncompatible(f"Redis {version} is too old: 6.2 or newer is needed")
            for script in _SCRIPTS:
                await self.client.script_load(script)
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def ping(self) -> bool:
        """True when the store answers."""
        try:
            return bool(await self.client.ping())
        except RedisError:
            return False

    async def close(self) -> None:
        """Release the connection pool."""
        if self._pipe is not None:
            self._pipe.close()
        await self.client.aclose()

    async def lookup(self, numbers: Sequence[str], scopes: Sequence[str],
                     channel: Channel | None = None) -> dict[str, list[Match]]:
        """Every live entry matching each number in each scope, in one round trip.

        Entries for every channel always apply; entries limited to `channel` apply too.
        Expired entries stop matching at their expiry instant (the server's clock).
        """
        found: dict[str, list[Match]] = {number: [] for number in numbers}
        unique = list(found)
        if not unique or not scopes:
            return found
        if len(unique) == 1:
            # The common case: every candidate belongs to the one number.
            candidates, encoded = _candidates(unique[0], channel)
            owners: Mapping[str, Sequence[str]] | None = None
        else:
            table: dict[str, list[str]] = {}
            for number in unique:
                for candidate in _candidates(number, channel)[0]:
                    table.setdefault(candidate, []).append(number)
            owners, candidates = table, tuple(table)
            encoded = b"".join(_resp_bulk(c) for c in candidates)
        probe = self._probe(tuple(scopes))
        reply = await self._run_lookup(probe, candidates, encoded)
        for (name, scope), hits in zip(probe.lists, cast(list[list[str]], reply), strict=True):
            for member in hits:
                item = self.keys.item(member)
                match = Match(scope, name, item.entry, item.channel)
                for number in (unique if owners is None else owners[member]):
                    found[number].append(match)
        return found

    def _probe(self, scopes: tuple[str, ...]) -> _Probe:
        """What a lookup in these scopes sends before the candidates (memoised: the same
        few scope combinations come back on every request)."""
        probe = self._probe_cache.get(scopes)
        if probe is None:
            lists = tuple((name, scope) for scope in scopes for name in LISTS)
            keys: list[str] = []
            for name, scope in lists:
                list_keys = self.keys.of(name, scope)
                keys += [list_keys.list, list_keys.expiry]
            head = ["EVALSHA", self._lookup_sha, str(len(keys)), *keys, str(_ARGV_SLICE)]
            probe = _Probe(lists, tuple(keys), len(head),
                           b"".join(_resp_bulk(arg) for arg in head))
            if len(self._probe_cache) < 1024:
                self._probe_cache[scopes] = probe
        return probe

    async def _run_lookup(self, probe: _Probe, candidates: Sequence[str], encoded: bytes
                          ) -> Any:
        """The lookup script's reply: on the lean pipe when there is one, else redis-py."""
        if self._pipe is None:
            try:
                return await self._lookup(keys=list(probe.keys),
                                          args=[_ARGV_SLICE, *candidates])
            except RedisError as exc:
                raise StoreUnavailable(str(exc)) from exc
        payload = b"*%d\r\n%s%s" % (probe.argc + len(candidates), probe.head, encoded)
        reply = await self._pipe.call_raw(payload)
        if isinstance(reply, hiredis.ReplyError):
            if not str(reply).startswith("NOSCRIPT"):
                raise StoreUnavailable(str(reply))
            # The server lost its scripts (restart, SCRIPT FLUSH): load it and retry once.
            await self._pipe.call(["SCRIPT", "LOAD", LOOKUP_LUA])
            reply = await self._pipe.call_raw(payload)
            if isinstance(reply, hiredis.ReplyError):
                raise StoreUnavailable(str(reply))
        return reply

    async def add(self, name: ListName, scope: str, items: Iterable[ListItem],
                  meta: EntryMeta) -> tuple[list[ListItem], list[ListItem]]:
        """Add entries; returns (added, already present). Idempotent; metadata and
        expiry are recorded for the added ones only."""
        return await self.add_to(self.keys.of(name, scope), items, meta.to_json(),
                                 meta.expires_at)

    async def add_to(self, keys: ListKeys, items: Iterable[ListItem], meta_value: str,
                     expires_at: float | None, loading: bool = False
                     ) -> tuple[list[ListItem], list[ListItem]]:
        """`add` into explicit keys, with stored metadata text. `loading`: the keys are a
        copy being loaded for a replace, which vanishes unless swapped in within
        LOAD_MARK_SECONDS."""
        wanted = list(dict.fromkeys(items))
        if not wanted:
            return [], []
        expiry = "" if expires_at is None else repr(float(expires_at))
        try:
            flags = await self._add(
                keys=[*keys.all, keys.loading, keys.journal],
                args=[meta_value, expiry, LOAD_MARK_SECONDS,
                      LOAD_MARK_SECONDS if loading else "",
                      *(self.keys.member(i) for i in wanted)])
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        pairs = list(zip(wanted, cast(list[int], flags), strict=True))
        return [i for i, f in pairs if f], [i for i, f in pairs if not f]

    async def save_batch(self, meta: EntryMeta) -> str:
        """Store metadata shared by a bulk load once; returns the value entries carry."""
        batch = uuid.uuid4().hex
        try:
            await self.client.set(self.keys.batch_prefix + batch, meta.to_json())
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return "@" + batch

    async def begin_load(self, live: ListKeys, loaded: ListKeys) -> None:
        """Mark a replace of `live` by `loaded` as under way: from now on, entries added
        to the live list are journaled and survive the swap."""
        try:
            await self._begin_load(keys=[live.loading], args=[loaded.list, LOAD_MARK_SECONDS])
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def swap(self, live: ListKeys, loaded: ListKeys) -> int:
        """Atomically replace a list by a loaded copy, keeping entries added to the live
        list since `begin_load`; returns the new list's size."""
        try:
            return int(await self._swap(
                keys=[*live.all, *loaded.all, live.loading, live.journal],
                args=[loaded.list]))
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def drop(self, live: ListKeys, loaded: ListKeys) -> None:
        """Delete an abandoned load's keys and unmark it."""
        try:
            await self.client.delete(*loaded.all)
            await self._end_load(keys=[live.loading, live.journal], args=[loaded.list])
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def remove(self, name: ListName, scope: str, items: Iterable[ListItem],
                     every_channel: bool = False) -> tuple[list[ListItem], list[ListItem]]:
        """Remove entries; returns (removed, not present). Idempotent.

        With `every_channel`, an entry for every channel also takes its channel-limited
        variants with it.
        """
        wanted = list(dict.fromkeys(items))
        if not wanted:
            return [], []
        keys = self.keys.of(name, scope)
        groups: list[list[str]] = []
        for item in wanted:
            variants = [item]
            if every_channel and item.channel is None:
                variants += [ListItem(item.entry, c) for c in CHANNELS]
            groups.append([self.keys.member(v) for v in variants])
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                for members in groups:
                    pipe.zrem(keys.list, *members)
                    pipe.hdel(keys.meta, *members)
                    pipe.zrem(keys.expiry, *members)
                counts = await pipe.execute()
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        removed = counts[::3]
        pairs = list(zip(wanted, removed, strict=True))
        return [i for i, n in pairs if n], [i for i, n in pairs if not n]

    async def remove_if_source(self, name: ListName, scope: str, item: ListItem,
                               source: str) -> bool:
        """Remove an entry only if it was added by `source` (an opt-in never lifts a
        manual block). True when removed."""
        try:
            done = await self._remove_if_source(
                keys=list(self.keys.of(name, scope).all),
                args=[self.keys.member(item), source, self.keys.batch_prefix])
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return bool(done)

    async def sweep_expired(self, per_call: int = 1000) -> int:
        """Remove expired entries from every list; returns how many went."""
        removed = 0
        try:
            async for key in self.client.scan_iter(match=self.keys.expiry_pattern, count=500):
                keys = self.keys.from_expiry(key)
                if keys is None:
                    continue
                while True:
                    gone = int(await self._sweep(keys=list(keys.all), args=[per_call]))
                    removed += gone
                    if gone < per_call:
                        break
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return removed

    async def _metas(self, values: Sequence[str | None]) -> list[EntryMeta | None]:
        """Decode stored metadata values, fetching shared bulk-load metadata once each."""
        batches = sorted({v[1:] for v in values if v and v.startswith("@")})
        shared: dict[str, str | None] = {}
        if batches:
            found = await self.client.mget([self.keys.batch_prefix + b for b in batches])
            shared = dict(zip(batches, cast(list[str | None], found), strict=True))
        return [EntryMeta.from_json(shared.get(v[1:]) if v and v.startswith("@") else v)
                for v in values]

    async def page(self, name: ListName, scope: str, cursor: str | None, limit: int) -> Page:
        """Up to `limit` live entries after `cursor` (a member), in order, with metadata."""
        keys = self.keys.of(name, scope)
        start = f"({cursor}" if cursor else "-"
        try:
            members = cast(list[str], await self.client.zrangebylex(
                keys.list, start, "+", start=0, num=limit + 1))
            shown = members[:limit]
            entries: list[Listed] = []
            if shown:
                async with self.client.pipeline(transaction=False) as pipe:
                    pipe.hmget(keys.meta, shown)
                    pipe.zmscore(keys.expiry, shown)
                    pipe.time()  # the server's clock, as lookups use: both agree on expiry
                    values, expiries, (seconds, micros) = await pipe.execute()
                now = seconds + micros / 1_000_000
                metas = await self._metas(values)
                for member, meta, expiry in zip(shown, metas, expiries, strict=True):
                    if expiry is not None and float(expiry) <= now:
                        continue  # expired: gone from listings at that instant
                    shown_meta = meta if meta is None or expiry is None else \
                        replace(meta, expires_at=float(expiry))
                    entries.append(Listed(self.keys.item(member), shown_meta))
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        more = len(members) > limit
        return Page(tuple(entries), shown[-1] if more and shown else None)

    async def scan_entries(self, name: ListName, scope: str, chunk: int = 1000
                           ) -> AsyncIterator[Listed]:
        """Every live entry of a list in order, fetched a chunk at a time (bounded memory)."""
        cursor: str | None = None
        while True:
            page = await self.page(name, scope, cursor, chunk)
            for entry in page.entries:
                yield entry
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def metadata(self, name: ListName, scope: str, items: Sequence[ListItem]
                       ) -> list[EntryMeta | None]:
        """The metadata of some entries of one list (None where unknown)."""
        if not items:
            return []
        keys = self.keys.of(name, scope)
        members = [self.keys.member(i) for i in items]
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hmget(keys.meta, members)
                pipe.zmscore(keys.expiry, members)
                values, expiries = await pipe.execute()
            metas = await self._metas(values)
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return [m if m is None or e is None else replace(m, expires_at=float(e))
                for m, e in zip(metas, expiries, strict=True)]

    async def count(self, name: ListName, scope: str) -> int:
        """How many members a list holds (expired ones not yet swept included)."""
        try:
            return int(await self.client.zcard(self.keys.list(name, scope)))
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def append_attempt(self, attempt: BlockedAttempt) -> str:
        """Append a blocked attempt to the capped stream; returns its stream id."""
        fields: Mapping[Any, Any] = {"ts": f"{time.time():.3f}", **asdict(attempt)}
        if self._pipe is not None:
            # On the lean connection too: one append per blocked send.
            reply = await self._pipe.call([
                "XADD", self.keys.attempts, "MAXLEN", "~", str(self._attempts_max_len), "*",
                *(part for pair in fields.items() for part in pair)])
            if isinstance(reply, hiredis.ReplyError):
                raise StoreUnavailable(str(reply))
            return cast(str, reply)
        try:
            return cast(str, await self.client.xadd(
                self.keys.attempts, dict(fields), maxlen=self._attempts_max_len,
                approximate=True))
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def read_attempts(self, newest: str = "+", oldest: str = "-", count: int = 500
                            ) -> list[tuple[str, dict[str, str]]]:
        """Up to `count` attempts between two stream ids, newest first."""
        try:
            entries = await self.client.xrevrange(self.keys.attempts, newest, oldest,
                                                  count=count)
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return [(str(i), dict(f)) for i, f in cast(list[tuple[str, dict[str, str]]], entries)]

"""The Redis list store: the only module that imports `redis`.

Layout (every key and member name is built by `Keys`):
  {prefix}list:{block|allow}:{scope}  sorted set, all scores 0, members are entries as
                                      written (`+33612345678`, `+33*`), with `#sms` or
                                      `#voice` appended for a channel-limited entry; equal
                                      scores order the set by member, so listings page by
                                      value.
  {prefix}meta:{block|allow}:{scope}  hash, member -> JSON metadata (source, added_at, ...)
  {prefix}attempts                    stream of blocked attempts, capped (MAXLEN ~).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gatekeeper.config import CHANNELS, Channel, RedisConfig, StoreConfig
from gatekeeper.numbers import lookup_candidates
from gatekeeper.policy import LISTS, ListName, Match

MIN_REDIS_VERSION = (6, 2)
# Lua's unpack() has a stack limit; probe the candidates in slices of this size.
_ARGV_SLICE = 4000

LOOKUP_LUA = """
-- Which candidate members are present in each list set.
-- KEYS: the list sets to probe, in order ({prefix}list:{list}:{scope}, ...)
-- ARGV[1]: slice size for unpack(); ARGV[2..]: candidate members (numbers and prefixes)
-- returns: one array per key, holding the candidates that are members of that key
local slice = tonumber(ARGV[1])
local n = #ARGV
local out = {}
for i, key in ipairs(KEYS) do
  local hits = {}
  if redis.call('EXISTS', key) == 1 then
    for first = 2, n, slice do
      local last = math.min(first + slice - 1, n)
      local scores = redis.call('ZMSCORE', key, unpack(ARGV, first, last))
      for j, score in ipairs(scores) do
        if score then hits[#hits + 1] = ARGV[first + j - 1] end
      end
    end
  end
  out[i] = hits
end
return out
"""


ADD_LUA = """
-- Add members that are absent, recording metadata only for those it adds (so a manual
-- entry never takes an opt-out's metadata, or the reverse).
-- KEYS[1]: the list set; KEYS[2]: its metadata hash
-- ARGV[1]: metadata JSON; ARGV[2..]: members
-- returns: one 1 (added) or 0 (already present) per member
local out = {}
for i = 2, #ARGV do
  local added = redis.call('ZADD', KEYS[1], 'NX', 0, ARGV[i])
  if added == 1 then redis.call('HSET', KEYS[2], ARGV[i], ARGV[1]) end
  out[i - 1] = added
end
return out
"""

REMOVE_IF_SOURCE_LUA = """
-- Remove a member only if its metadata says it came from the given source.
-- KEYS[1]: the list set; KEYS[2]: its metadata hash
-- ARGV[1]: member; ARGV[2]: source (e.g. opt-out)
-- returns: 1 when removed, 0 when absent or from another source
local meta = redis.call('HGET', KEYS[2], ARGV[1])
if not meta then return 0 end
local ok, decoded = pcall(cjson.decode, meta)
if not ok or type(decoded) ~= 'table' or decoded['source'] ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""


class StoreUnavailable(Exception):
    """The store could not be reached or failed; the caller applies `store.on_error`."""


class StoreIncompatible(Exception):
    """The server is reachable but cannot serve Gatekeeper (too old, no Lua)."""


@dataclass(frozen=True, slots=True)
class Keys:
    """Builds every Redis key name the store uses."""

    prefix: str

    def list(self, name: ListName, scope: str) -> str:
        """The sorted set holding one list of one scope."""
        return f"{self.prefix}list:{name}:{scope}"

    def meta(self, name: ListName, scope: str) -> str:
        """The hash of metadata of one list of one scope."""
        return f"{self.prefix}meta:{name}:{scope}"

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
    """Where an entry came from and when (kept beside it, returned in listings)."""

    source: str
    added_at: float
    added_by: str | None = None
    note: str | None = None

    def to_json(self) -> str:
        """Compact JSON, without unset fields."""
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None},
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> EntryMeta | None:
        """Parse stored metadata; None when absent or unreadable."""
        if not text:
            return None
        try:
            raw = json.loads(text)
            return cls(str(raw["source"]), float(raw["added_at"]), raw.get("added_by"),
                       raw.get("note"))
        except (ValueError, KeyError, TypeError):
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


class Store:
    """Allow and block lists in Redis, plus the attempts stream."""

    def __init__(self, client: aioredis.Redis, redis_config: RedisConfig,
                 store_config: StoreConfig) -> None:
        self.client = client
        self.keys = Keys(redis_config.key_prefix)
        self._attempts_max_len = store_config.attempts_max_len
        self._lookup = client.register_script(LOOKUP_LUA)
        self._add = client.register_script(ADD_LUA)
        self._remove_if_source = client.register_script(REMOVE_IF_SOURCE_LUA)

    async def prepare(self) -> None:
        """Check the server version and load the lookup script ahead of the first request."""
        try:
            info = await self.client.info("server")
            version = str(info.get("redis_version") or info.get("valkey_version") or "")
            parts = re.findall(r"\d+", version)[:2]
            # An unparsable version (a dev build) is given the benefit of the doubt.
            if len(parts) == 2 and (int(parts[0]), int(parts[1])) < MIN_REDIS_VERSION:
                raise StoreIncompatible(f"Redis {version} is too old: 6.2 or newer is needed")
            for script in (LOOKUP_LUA, ADD_LUA, REMOVE_IF_SOURCE_LUA):
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
        await self.client.aclose()

    async def lookup(self, numbers: Sequence[str], scopes: Sequence[str],
                     channel: Channel | None = None) -> dict[str, list[Match]]:
        """Every entry matching each number in each scope, in one round trip.

        Entries for every channel always apply; entries limited to `channel` apply too.
        """
        owners: dict[str, list[str]] = {}
        for number in dict.fromkeys(numbers):  # a repeated number must not repeat matches
            for candidate in lookup_candidates(number):
                owners.setdefault(candidate, []).append(number)
                if channel is not None:
                    owners.setdefault(f"{candidate}#{channel}", []).append(number)
        probes = [(name, scope) for scope in scopes for name in LISTS]
        found: dict[str, list[Match]] = {number: [] for number in numbers}
        if not owners or not probes:
            return found
        keys = [self.keys.list(name, scope) for name, scope in probes]
        try:
            reply = await self._lookup(keys=keys, args=[_ARGV_SLICE, *owners])
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        for (name, scope), hits in zip(probes, cast(list[list[str]], reply), strict=True):
            for member in hits:
                item = self.keys.item(member)
                for number in owners[member]:
                    found[number].append(Match(scope, name, item.entry, item.channel))
        return found

    async def add(self, name: ListName, scope: str, items: Iterable[ListItem],
                  meta: EntryMeta) -> tuple[list[ListItem], list[ListItem]]:
        """Add entries; returns (added, already present). Idempotent; metadata is
        recorded for the added ones only."""
        wanted = list(dict.fromkeys(items))
        if not wanted:
            return [], []
        try:
            flags = await self._add(
                keys=[self.keys.list(name, scope), self.keys.meta(name, scope)],
                args=[meta.to_json(), *(self.keys.member(i) for i in wanted)])
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        pairs = list(zip(wanted, cast(list[int], flags), strict=True))
        return [i for i, f in pairs if f], [i for i, f in pairs if not f]

    async def remove(self, name: ListName, scope: str, items: Iterable[ListItem],
                     every_channel: bool = False) -> tuple[list[ListItem], list[ListItem]]:
        """Remove entries; returns (removed, not present). Idempotent.

        With `every_channel`, an entry for every channel also takes its channel-limited
        variants with it.
        """
        wanted = list(dict.fromkeys(items))
        if not wanted:
            return [], []
        key, meta_key = self.keys.list(name, scope), self.keys.meta(name, scope)
        groups: list[list[str]] = []
        for item in wanted:
            variants = [item]
            if every_channel and item.channel is None:
                variants += [ListItem(item.entry, c) for c in CHANNELS]
            groups.append([self.keys.member(v) for v in variants])
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                for members in groups:
                    pipe.zrem(key, *members)
                    pipe.hdel(meta_key, *members)
                counts = await pipe.execute()
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        removed = counts[::2]
        pairs = list(zip(wanted, removed, strict=True))
        return [i for i, n in pairs if n], [i for i, n in pairs if not n]

    async def remove_if_source(self, name: ListName, scope: str, item: ListItem,
                               source: str) -> bool:
        """Remove an entry only if it was added by `source` (an opt-in never lifts a
        manual block). True when removed."""
        try:
            done = await self._remove_if_source(
                keys=[self.keys.list(name, scope), self.keys.meta(name, scope)],
                args=[self.keys.member(item), source])
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return bool(done)

    async def page(self, name: ListName, scope: str, cursor: str | None, limit: int) -> Page:
        """Up to `limit` entries after `cursor` (a member), in order, with metadata."""
        start = f"({cursor}" if cursor else "-"
        try:
            members = cast(list[str], await self.client.zrangebylex(
                self.keys.list(name, scope), start, "+", start=0, num=limit + 1))
            shown = members[:limit]
            metas = cast(list[str | None], await self.client.hmget(
                self.keys.meta(name, scope), shown)) if shown else []
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        entries = tuple(Listed(self.keys.item(m), EntryMeta.from_json(j))
                        for m, j in zip(shown, metas, strict=True))
        more = len(members) > limit
        return Page(entries, shown[-1] if more and shown else None)

    async def append_attempt(self, attempt: BlockedAttempt) -> str:
        """Append a blocked attempt to the capped stream; returns its stream id."""
        fields: Mapping[Any, Any] = {"ts": f"{time.time():.3f}", **asdict(attempt)}
        try:
            return cast(str, await self.client.xadd(
                self.keys.attempts, dict(fields), maxlen=self._attempts_max_len,
                approximate=True))
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

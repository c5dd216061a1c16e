"""The Redis list store: the only module that imports `redis`.

Layout (every key name is built by `Keys`):
  {prefix}list:{block|allow}:{scope}  sorted set, all scores 0, members are entries as
                                      written (`+33612345678`, `+33*`); equal scores make
                                      the set ordered by member, so listings page by value.
  {prefix}attempts                    stream of blocked attempts, capped (MAXLEN ~).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gatekeeper.config import RedisConfig, StoreConfig
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
class Page:
    """One page of a listing; `next_cursor` is None on the last page."""

    entries: tuple[str, ...]
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

    async def prepare(self) -> None:
        """Check the server version and load the lookup script ahead of the first request."""
        try:
            info = await self.client.info("server")
            version = str(info.get("redis_version") or info.get("valkey_version") or "")
            parts = re.findall(r"\d+", version)[:2]
            # An unparsable version (a dev build) is given the benefit of the doubt.
            if len(parts) == 2 and (int(parts[0]), int(parts[1])) < MIN_REDIS_VERSION:
                raise StoreIncompatible(f"Redis {version} is too old: 6.2 or newer is needed")
            await self.client.script_load(LOOKUP_LUA)
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

    async def lookup(self, numbers: Sequence[str], scopes: Sequence[str]) -> dict[str, list[Match]]:
        """Every list entry matching each number in each scope, in one round trip."""
        owners: dict[str, list[str]] = {}
        for number in dict.fromkeys(numbers):  # a repeated number must not repeat matches
            for candidate in lookup_candidates(number):
                owners.setdefault(candidate, []).append(number)
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
                for number in owners[member]:
                    found[number].append(Match(scope, name, member))
        return found

    async def add(self, name: ListName, scope: str, entries: Iterable[str]
                  ) -> tuple[list[str], list[str]]:
        """Add entries; returns (added, already present). Idempotent."""
        return await self._apply("zadd", name, scope, entries)

    async def remove(self, name: ListName, scope: str, entries: Iterable[str]
                     ) -> tuple[list[str], list[str]]:
        """Remove entries; returns (removed, not present). Idempotent."""
        return await self._apply("zrem", name, scope, entries)

    async def _apply(self, op: str, name: ListName, scope: str, entries: Iterable[str]
                     ) -> tuple[list[str], list[str]]:
        wanted = list(dict.fromkeys(entries))
        if not wanted:
            return [], []
        key = self.keys.list(name, scope)
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                for entry in wanted:
                    if op == "zadd":
                        pipe.zadd(key, {entry: 0}, nx=True)
                    else:
                        pipe.zrem(key, entry)
                counts = await pipe.execute()
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        changed = [e for e, n in zip(wanted, counts, strict=True) if n]
        unchanged = [e for e, n in zip(wanted, counts, strict=True) if not n]
        return changed, unchanged

    async def page(self, name: ListName, scope: str, cursor: str | None, limit: int) -> Page:
        """Up to `limit` entries after `cursor`, in order."""
        start = f"({cursor}" if cursor else "-"
        try:
            members = await self.client.zrangebylex(
                self.keys.list(name, scope), start, "+", start=0, num=limit + 1
            )
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        entries = tuple(cast(list[str], members)[:limit])
        more = len(members) > limit
        return Page(entries, entries[-1] if more and entries else None)

    async def append_attempt(self, attempt: BlockedAttempt) -> str:
        """Append a blocked attempt to the capped stream; returns its stream id."""
        fields: Mapping[Any, Any] = {"ts": f"{time.time():.3f}", **asdict(attempt)}
        try:
            return cast(str, await self.client.xadd(
                self.keys.attempts, dict(fields), maxlen=self._attempts_max_len,
                approximate=True))
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

"""Every Lua script the store runs, each headed by its KEYS, ARGV and reply.

Each runs atomically inside Redis; `register` binds them to a redis-py client (EVALSHA,
loading a script again when the server has lost it, e.g. after a restart).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

# Shared by the scripts that meet packed loads (store/packing.py): a load's record
# (its bucket base and how many trailing digits its members hold: 7 when the record
# predates the field), a member's bucket and its integer there. Only an exact number
# (`+` and digits, its last byte a digit) can be packed; prefixes (`*`) and
# channel-limited members (`#sms`) never are.
PACKED_LUA = """
local function packed_split(member, rest_digits)
  local last = string.byte(member, -1)
  if not last or last < 48 or last > 57 or not string.find(member, '^%+%d+$') then
    return nil
  end
  local digits = string.sub(member, 2)
  local cut = #digits - rest_digits
  if cut <= 0 then return '0', string.format('%d', tonumber(digits)) end
  return string.sub(digits, 1, cut), string.format('%d', tonumber(string.sub(digits, cut + 1)))
end
local function packed_load(record)
  local got = redis.call('HMGET', record, 'base', 'rest')
  if not got[1] then return nil end
  return {got[1], tonumber(got[2] or '7'), got[2] ~= false}
end
local function packed_has(load, member)
  if not load then return false end
  local head, rest = packed_split(member, load[2])
  if not head then return false end
  return redis.call('SISMEMBER', load[1] .. head, rest) == 1
end
"""

# Velocity limits (rules.py): count a send to each subject (a number, a number block, a
# country) in a sliding window, and refuse once an enforced limit is reached; all of one
# number's limits in one scope are counted together or not at all.
# KEYS: per number, per limit: its counter (sorted set: member -> ms), then its guard
#   (a string whose time to live is the pumping guard's hold)
# ARGV: [1] member (random, one per call; a number's sends are `member:k`, k its first
#   key's index in KEYS, so each number of the call counts once), then per number:
#   limits n, count (1: count the send if no enforced limit is reached; 0: only look),
#   then n quadruples
#   (limit, window ms, hold ms (0: no guard), enforced (1) or monitored (0)). The clock
#   is the server's (TIME): one clock for every proxy and worker.
# returns: per number {code, limit index (1-based), wait ms, monitored limit index}:
#   code 0 counted (or, not counting, under every enforced limit), 1 over an enforced
#   limit (wait: until the oldest send leaves its window, or the hold if one starts),
#   2 held by a guard (wait: its time to live), 3 over the limit and its guard's hold
#   starts now (wait: the hold); the 4th: a monitored limit reached (0: none)
VELOCITY_FN = """
-- count_sends(a, last, k, member): ARGV[a..last] the numbers' arguments, their keys
-- from KEYS[k] on (see VELOCITY_LUA); returns VELOCITY_LUA's reply.
local function count_sends(a, last, k, member)
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local out = {}
  while a <= last do
    local n, counting = tonumber(ARGV[a]), ARGV[a + 1] == '1'
    local code, which, wait, seen = 0, 0, 0, 0
    for i = 1, n do
      local at = a + 4 * i - 2
      local limit, window = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
      local hold, enforced = tonumber(ARGV[at + 2]), ARGV[at + 3] == '1'
      local counter, guard = KEYS[k + 2 * i - 2], KEYS[k + 2 * i - 1]
      if code == 0 then
        local held = 0
        if hold > 0 then held = redis.call('PTTL', guard) end
        if held > 0 and enforced then
          code, which, wait = 2, i, held
        elseif held > 0 or redis.call('ZCOUNT', counter, '(' .. (now - window), '+inf')
            >= limit then
          if enforced then
            code, which = 1, i
            local oldest = redis.call('ZRANGEBYSCORE', counter, '(' .. (now - window),
                                      '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
            wait = oldest[2] and (tonumber(oldest[2]) + window - now) or 0
            if hold > 0 and counting then  -- a look (a check) starts no hold
              redis.call('SET', guard, '1', 'PX', hold)
              code, wait = 3, hold
            end
          elseif seen == 0 then
            seen = i
          end
        end
      end
    end
    if code == 0 and counting then
      for i = 1, n do
        local counter = KEYS[k + 2 * i - 2]
        local window = tonumber(ARGV[a + 4 * i - 1])
        redis.call('ZADD', counter, now, member .. ':' .. k)
        redis.call('PEXPIRE', counter, window)
        -- Sends past the window are dropped once they are as many as the limit: a
        -- counter never holds much more than its limit.
        if redis.call('ZCARD', counter) > tonumber(ARGV[a + 4 * i - 2]) then
          redis.call('ZREMRANGEBYSCORE', counter, '-inf', now - window)
        end
      end
    end
    out[#out + 1] = {code, which, math.max(0, math.floor(wait)), seen}
    a, k = a + 2 + 4 * n, k + 2 * n
  end
  return out
end
"""
VELOCITY_LUA = VELOCITY_FN + "return count_sends(2, #ARGV, 1, ARGV[1])\n"


LOOKUP_LUA = PACKED_LUA + VELOCITY_FN + """
-- Which candidate members are live (present and not expired) in each list: its set, or
-- (exact numbers only) its packed load, which never expires; and, in the same call, the
-- velocity counts of the numbers looked up (count_sends above), if any.
-- A packed load whose base the caller names is not read: the caller's copy of its filter
-- (store/filter.py) says that none of the numbers looked up is in it. Bases are unique
-- per load, so a load replaced since is read.
-- KEYS: T triples of (list set, its expiry set, its packed-load record), in order; then
--   the counts' keys (as VELOCITY_LUA's KEYS), if any
-- ARGV[1]: slice size for unpack(); ARGV[2]: T; ARGV[3..T+2]: per triple, '' or the base
--   of a packed load that holds none of the candidates; ARGV[T+3]: M, how many counting
--   arguments follow (0: no counts); ARGV[T+4..T+3+M]: the counts' arguments (as
--   VELOCITY_LUA's ARGV, without the member); then candidate members (numbers and
--   prefixes); with counts, last, the counts' member (as VELOCITY_LUA's ARGV[1]: the
--   rest of the call stays the same from one request to the next, and is kept)
-- returns: one array per triple, holding the candidates that are live members of that
--   list; with counts, one more: the counts' reply (as VELOCITY_LUA's)
local slice, triples = tonumber(ARGV[1]), tonumber(ARGV[2])
local counts = tonumber(ARGV[triples + 3])
local n = #ARGV
if counts > 0 then n = n - 1 end
local start = triples + counts + 4
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local out = {}
for i = 1, 3 * triples, 3 do
  local key, expiry = KEYS[i], KEYS[i + 1]
  local skip, load = ARGV[(i + 2) / 3 + 2], nil
  -- Named: only the record's base is read, to compare (a new load is read in full).
  if skip == '' or redis.call('HGET', KEYS[i + 2], 'base') ~= skip then
    load = packed_load(KEYS[i + 2])
  end
  local hits = {}
  local seen = {}
  if redis.call('EXISTS', key) == 1 then
    local expiring = redis.call('EXISTS', expiry) == 1
    for first = start, n, slice do
      local last = math.min(first + slice - 1, n)
      local scores = redis.call('ZMSCORE', key, unpack(ARGV, first, last))
      for j, score in ipairs(scores) do
        if score then
          local member = ARGV[first + j - 1]
          local at = expiring and redis.call('ZSCORE', expiry, member)
          if not at or tonumber(at) > now then
            hits[#hits + 1] = member
            seen[member] = true
          end
        end
      end
    end
  end
  if load then
    for j = start, n do
      local member = ARGV[j]
      -- Only an exact number (its last byte a digit) can be packed: prefixes end in '*',
      -- channel members in a letter; checked here, not in a call, for the common case.
      local last = string.byte(member, -1)
      if last and last >= 48 and last <= 57 and not seen[member]
          and packed_has(load, member) then
        hits[#hits + 1] = member
      end
    end
  end
  out[#out + 1] = hits
end
if counts > 0 then
  out[#out + 1] = count_sends(triples + 4, triples + 3 + counts, 3 * triples + 1,
                             ARGV[#ARGV])
end
return out
"""

ADD_LUA = PACKED_LUA + """
-- Add members that are absent (or expired), recording metadata and expiry only for those
-- it adds, so a manual entry never takes an opt-out's metadata, or the reverse. A number
-- in the list's packed load is present already.
-- While a replace import of the list is under way (its load mark exists), the members
-- added are also written to the list's journal, so that the swap keeps them.
-- KEYS[1]: the list set; KEYS[2]: its metadata hash; KEYS[3]: its expiry set;
-- KEYS[4]: its load mark; KEYS[5]: its journal; KEYS[6]: its packed-load record
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
local load = packed_load(KEYS[6])
local out = {}
for i = 5, #ARGV do
  local member = ARGV[i]
  local added = 0
  if not packed_has(load, member) then added = redis.call('ZADD', KEYS[1], 'NX', 0, member) end
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

REMOVE_LUA = PACKED_LUA + """
-- Remove members from a list: its set (with metadata and expiry) and its packed load.
-- KEYS[1]: the list set; KEYS[2]: its metadata hash; KEYS[3]: its expiry set;
-- KEYS[4]: its packed-load record
-- ARGV: groups, each a count k then k members (an entry and its variants)
-- returns: per group, how many of its members were removed
local load = packed_load(KEYS[4])
local out = {}
local i = 1
while i <= #ARGV do
  local k = tonumber(ARGV[i])
  local removed = 0
  for j = i + 1, i + k do
    local member = ARGV[j]
    removed = removed + redis.call('ZREM', KEYS[1], member)
    redis.call('HDEL', KEYS[2], member)
    redis.call('ZREM', KEYS[3], member)
    if load then
      local head, rest = packed_split(member, load[2])
      if head and redis.call('SREM', load[1] .. head, rest) == 1 then
        removed = removed + 1
        redis.call('HINCRBY', KEYS[4], 'count', -1)
      end
    end
  end
  out[#out + 1] = removed
  i = i + k + 1
end
return out
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

SWAP_LUA = PACKED_LUA + """
-- Replace a list with a fully loaded copy in one step (lookups see old or new, never half).
-- Entries added to the live list while the copy loaded (the journal), and still there,
-- are carried into the copy first, with their metadata and expiry; the copy's own entry
-- (set or packed) wins where both have one. The journal goes when no other load of the
-- list is left. The old packed load's base goes to the trash (its buckets are deleted
-- after, a few at a time); the new one leaves the pending registry (its buckets carry no
-- expiry: nothing to do per bucket) and its record is made permanent.
-- KEYS[1..3]: the live list set, metadata hash and expiry set
-- KEYS[4..6]: the loaded copies of the same
-- KEYS[7]: the live list's load mark; KEYS[8]: its journal
-- KEYS[9]: the live packed-load record; KEYS[10]: the copy's; KEYS[11]: the trash;
-- KEYS[12]: the registry of packed loads being written
-- ARGV[1]: this load's token (its member of the load mark)
-- returns: {the number of entries of the new list, the old packed base or false}
local new_load = packed_load(KEYS[10])
local new_base = new_load and new_load[1]
for _, member in ipairs(redis.call('SMEMBERS', KEYS[8])) do
  if redis.call('ZSCORE', KEYS[1], member) and not packed_has(new_load, member) then
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
local old_base = redis.call('HGET', KEYS[9], 'base')
if old_base then redis.call('SADD', KEYS[11], old_base) end
local packed = 0
if new_base then
  if not new_load[3] then
    -- Written before loads recorded their split: its buckets expire unless kept here.
    for _, head in ipairs(redis.call('ZRANGE', new_base .. 'index', 0, -1)) do
      redis.call('PERSIST', new_base .. head)
    end
    redis.call('PERSIST', new_base .. 'index')
  end
  redis.call('ZREM', KEYS[12], new_base)
  redis.call('RENAME', KEYS[10], KEYS[9])
  redis.call('PERSIST', KEYS[9])
  packed = tonumber(redis.call('HGET', KEYS[9], 'count') or '0')
else
  redis.call('DEL', KEYS[9])
end
return {redis.call('ZCARD', KEYS[1]) + packed, old_base}
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


DROP_PACKED_LUA = """
-- An abandoned replace's packed load goes to the trash, unless the swap did happen (its
-- reply was lost): then the load is the live one and must stay.
-- KEYS[1]: the live packed-load record; KEYS[2]: the copy's record; KEYS[3]: the trash;
-- KEYS[4]: the registry of packed loads being written
-- ARGV[1]: the copy's bucket base
-- returns: 1 when the load went to the trash, 0 when it is live
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[4], ARGV[1])
if redis.call('HGET', KEYS[1], 'base') == ARGV[1] then return 0 end
redis.call('SADD', KEYS[3], ARGV[1])
return 1
"""


# KEYS: velocity counters; ARGV[i]: the member to take out of KEYS[i] (a send counted
# but not forwarded). Returns how many were there.
UNCOUNT_LUA = """
local removed = 0
for i = 1, #KEYS do
  removed = removed + redis.call('ZREM', KEYS[i], ARGV[i])
end
return removed
"""

SCRIPTS = (LOOKUP_LUA, ADD_LUA, REMOVE_IF_SOURCE_LUA, SWEEP_LUA, SWAP_LUA,
           BEGIN_LOAD_LUA, END_LOAD_LUA, REMOVE_LUA, DROP_PACKED_LUA)
"""Every script, in the order `prepare()` loads them."""

LOOKUP_SHA = hashlib.sha1(LOOKUP_LUA.encode()).hexdigest()  # noqa: S324 - Redis's script id
"""The lookup script's id, for EVALSHA sent without redis-py."""
VELOCITY_SHA = hashlib.sha1(VELOCITY_LUA.encode()).hexdigest()  # noqa: S324 - as above
UNCOUNT_SHA = hashlib.sha1(UNCOUNT_LUA.encode()).hexdigest()  # noqa: S324 - as above


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

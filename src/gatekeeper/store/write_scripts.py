"""The Lua that writes lists: adding, removing and sweeping members, and a replace
import's steps (begin, swap, end, dropping its packed load), each headed by its KEYS,
ARGV and reply. `scripts` binds them to a client.
"""

from __future__ import annotations

from gatekeeper.store.lookup_scripts import PACKED_LUA

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

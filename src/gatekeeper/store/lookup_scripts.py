"""The hot path's Lua: the lookup script, the velocity counts (run inside it or alone)
and their undoing, each headed by its KEYS, ARGV and reply; and the ids that EVALSHA
sends without redis-py.

`PACKED_LUA`, the packed-load helpers, is shared with the write scripts
(store/write_scripts.py); `scripts` binds the scripts to a client.
"""

from __future__ import annotations

import hashlib

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
#   starts now (wait: the hold); the 4th: a monitored limit reached (0: none); or the
#   integer 0 when every number's is {0, 0, 0, 0} (the common case, read cheaper)
VELOCITY_FN = """
-- count_sends(a, last, k, member, look): ARGV[a..last] the numbers' arguments, their
-- keys from KEYS[k] on (see VELOCITY_LUA); `look`: only look, whatever the arguments
-- say (the lookup found the number blocked); returns VELOCITY_LUA's reply.
local function count_sends(a, last, k, member, look)
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local out, clear = {}, true
  while a <= last do
    local n, counting = tonumber(ARGV[a]), ARGV[a + 1] == '1' and not look
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
    if code ~= 0 or seen ~= 0 then clear = false end
    out[#out + 1] = {code, which, math.max(0, math.floor(wait)), seen}
    a, k = a + 2 + 4 * n, k + 2 * n
  end
  if clear then return 0 end
  return out
end
"""
VELOCITY_LUA = VELOCITY_FN + "return count_sends(2, #ARGV, 1, ARGV[1], false)\n"


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
--   prefixes); with counts, two more, last (the rest of the call stays the same from one
--   request to the next, and is kept): S, and the counts' member (as VELOCITY_LUA's
--   ARGV[1]). S > 0 says that the candidates are one number's, and that the first 2S
--   triples are S scopes' (block list, allow list), in that order: if one of those
--   scopes' block lists holds a candidate and its allow list none, the lists block the
--   number, and its sends are only looked at, not counted (never forwarded, so never
--   counted). S = 0: counted as the arguments say.
-- returns: one array per triple, holding the candidates that are live members of that
--   list; with counts, one more: the counts' reply (as VELOCITY_LUA's)
local slice, triples = tonumber(ARGV[1]), tonumber(ARGV[2])
local counts = tonumber(ARGV[triples + 3])
local n = #ARGV
if counts > 0 then n = n - 2 end
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
  local blocked = false
  for scope = 1, tonumber(ARGV[#ARGV - 1]) do
    if #out[2 * scope - 1] > 0 and #out[2 * scope] == 0 then blocked = true end
  end
  out[#out + 1] = count_sends(triples + 4, triples + 3 + counts, 3 * triples + 1,
                             ARGV[#ARGV], blocked)
end
return out
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

LOOKUP_SHA = hashlib.sha1(LOOKUP_LUA.encode()).hexdigest()  # noqa: S324 - Redis's script id
"""The lookup script's id, for EVALSHA sent without redis-py."""
VELOCITY_SHA = hashlib.sha1(VELOCITY_LUA.encode()).hexdigest()  # noqa: S324 - as above
UNCOUNT_SHA = hashlib.sha1(UNCOUNT_LUA.encode()).hexdigest()  # noqa: S324 - as above

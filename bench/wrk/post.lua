-- Gatekeeper bench: Twilio-shaped send-SMS POSTs for wrk 4.x.
--
--   wrk -s bench/wrk/post.lua URL -- POOL_FILE BLOCKED_FRACTION PACE_MS PATH
--
-- POOL_FILE: one destination per line, "u +12025550123" (unlisted) or "b +13125550123"
--   (in the block list). Each request picks a blocked number with probability
--   BLOCKED_FRACTION, else an unlisted one; every body is
--   To=%2B<digits>&From=%2B15005550006&Body=hello, built once at start-up.
-- PACE_MS: 0 for a closed loop at full speed. Above 0, fixed-rate mode: before each
--   request a connection waits a delay drawn uniformly from [0.5, 1.5) * PACE_MS (mean
--   PACE_MS; the jitter keeps connections from marching in step). With PACE_MS =
--   connections * 1000 / rate the offered rate is about `rate` (a little less: each
--   connection's cycle is delay + latency). This is a PACED CLOSED LOOP, not wrk2's open
--   loop: a slow reply delays that connection's next request instead of piling up, so
--   latencies under overload are not corrected for coordinated omission. Keep the rate
--   well below saturation. wrk measures latency from the moment a request is written,
--   so the delay is not counted in it.
-- done() prints one line: BENCH_RESULT {json}, with latencies in microseconds and
--   replies counted by status class (wrk itself counts every status > 399 as an error,
--   expected 403s included, so the harness reads these counts instead).

local threads = {}
local next_id = 0

function setup(thread)
   next_id = next_id + 1
   thread:set("thread_id", next_id)
   table.insert(threads, thread)
end

local unlisted, blocked = {}, {}
local blocked_fraction = 0.0

-- Per-thread counters, read by done() through thread:get().
sent_blocked, sent_unlisted = 0, 0
n2xx, n403, n4xx, n5xx, nother, nrejected = 0, 0, 0, 0, 0, 0

function init(args)
   local pool_file = args[1]
   blocked_fraction = tonumber(args[2] or "0")
   local pace_ms = tonumber(args[3] or "0")
   local path = args[4] or "/twilio/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages.json"
   local headers = {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      -- Twilio's Basic auth shape (account SID : a dummy token); forwarded like any header.
      ["Authorization"] = "Basic QUMwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDpiZW5jaA==",
   }
   for line in io.lines(pool_file) do
      local kind, digits = line:match("^(%a) %+(%d+)")
      if kind then
         local body = "To=%2B" .. digits .. "&From=%2B15005550006&Body=hello"
         local req = wrk.format("POST", path, headers, body)
         if kind == "b" then
            table.insert(blocked, req)
         else
            table.insert(unlisted, req)
         end
      end
   end
   if #unlisted == 0 then
      error("no unlisted destination in " .. pool_file)
   end
   math.randomseed(7919 * (thread_id or 1))
   if pace_ms > 0 then
      -- Defined only when pacing: wrk skips its per-request timer without a delay().
      delay = function()
         return math.floor(pace_ms * (0.5 + math.random()) + 0.5)
      end
   end
end

function request()
   if #blocked > 0 and math.random() < blocked_fraction then
      sent_blocked = sent_blocked + 1
      return blocked[math.random(#blocked)]
   end
   sent_unlisted = sent_unlisted + 1
   return unlisted[math.random(#unlisted)]
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      n2xx = n2xx + 1
   elseif status == 403 then
      n403 = n403 + 1
      local decision = headers["X-Gatekeeper-Decision"] or headers["x-gatekeeper-decision"]
      if decision == "rejected" then
         nrejected = nrejected + 1
      end
   elseif status >= 500 then
      n5xx = n5xx + 1
   elseif status >= 400 then
      n4xx = n4xx + 1
   else
      nother = nother + 1
   end
end

local COUNTERS = {"sent_blocked", "sent_unlisted", "n2xx", "n403", "n4xx", "n5xx",
                  "nother", "nrejected"}

function done(summary, latency, requests)
   local total = {}
   for _, name in ipairs(COUNTERS) do
      total[name] = 0
   end
   for _, thread in ipairs(threads) do
      for _, name in ipairs(COUNTERS) do
         total[name] = total[name] + (tonumber(thread:get(name)) or 0)
      end
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status_gt_399":%d},' ..
      '"sent":{"blocked":%d,"unlisted":%d},' ..
      '"status":{"2xx":%d,"403":%d,"403_rejected":%d,"other_4xx":%d,"5xx":%d,"other":%d},' ..
      '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f,"stdev":%.1f}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.timeout, e.status,
      total.sent_blocked, total.sent_unlisted,
      total.n2xx, total.n403, total.nrejected, total.n4xx, total.n5xx, total.nother,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean, latency.stdev))
end

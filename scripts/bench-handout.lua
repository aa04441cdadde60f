-- wrk script for scripts/bench-handout.sh: GET /api/v1/clients/{id}/token for a client
-- picked at random per request from the file CLIENT_IDS names (one id per line), with
-- the API key in BENCH_KEY. With ONE_PASS=1 each thread asks for its share of the clients
-- once, in a shuffled order, and stops: the cold-cache pass over a fresh server. wrk then
-- waits out its -d, so the pass reports its own rate and p99 ("one pass: <req/s> <p99 ms>").
local ids, key = {}, os.getenv("BENCH_KEY")
for line in io.lines(os.getenv("CLIENT_IDS")) do
  if line ~= "" then ids[#ids + 1] = line end
end
local one_pass = os.getenv("ONE_PASS") == "1"

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_usec; } timeval;
  int gettimeofday(timeval *tv, void *tz);
]]
local function now()
  local tv = ffi.new("timeval")
  ffi.C.gettimeofday(tv, nil)
  return tonumber(tv.tv_sec) + tonumber(tv.tv_usec) / 1e6
end

local threads, all = 0, {}
function setup(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
  all[#all + 1] = thread
end

local share, next_index, answered = {}, 1, 0
function init(args)
  math.randomseed(os.time() * 1000 + thread_index)
  -- Every second id from this thread's offset (2 threads: -t2), shuffled.
  for i = thread_index + 1, #ids, 2 do share[#share + 1] = ids[i] end
  for i = #share, 2, -1 do
    local j = math.random(i)
    share[i], share[j] = share[j], share[i]
  end
end

local headers = { ["Authorization"] = "Bearer " .. key }
function request()
  local id
  if one_pass then
    if next_index == 1 then started = now() end
    id = share[(next_index - 1) % #share + 1]
    next_index = next_index + 1
  else
    id = ids[math.random(#ids)]
  end
  return wrk.format("GET", "/api/v1/clients/" .. id .. "/token", headers)
end

if one_pass then
  function response(status, headers, body)
    answered = answered + 1
    if answered == #share then
      finished, done_count = now(), answered
      wrk.thread:stop()
    end
  end

  function done(summary, latency, requests)
    local first, last, count = math.huge, 0, 0
    for _, thread in ipairs(all) do
      first = math.min(first, thread:get("started") or math.huge)
      last = math.max(last, thread:get("finished") or 0)
      count = count + (thread:get("done_count") or 0)
    end
    io.write(string.format("one pass: %.1f %.2f\n", count / (last - first), latency:percentile(99) / 1000))
  end
end

-- wrk script for bench/bench.py: sends the requests listed in a file, in rotation, and
-- prints one JSON summary line at the end.
--
--   wrk ... -s bench/requests.lua URL -- REQUESTS_FILE
--
-- Each line of REQUESTS_FILE is one request: method, path, body and any number of
-- headers ("Name: value"), separated by tabs. Every request is formatted once, at start:
-- a run with one token and a run with a thousand cost the load generator the same.

local requests = {}
local next_index = 1

-- Each thread gets its number (a global in its own Lua state) before `init` runs.
local threads = 0
function setup(thread)
  thread:set("thread_number", threads)
  threads = threads + 1
end

local function split(line)
  local fields = {}
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do
    fields[#fields + 1] = field
  end
  return fields
end

function init(args)
  local path = args[1]
  if path == nil then
    error("usage: wrk ... -s requests.lua URL -- REQUESTS_FILE")
  end
  local file = assert(io.open(path, "r"))
  for line in file:lines() do
    if line ~= "" then
      local fields = split(line)
      local headers = {}
      for i = 4, #fields do
        local name, value = fields[i]:match("^([^:]+):%s*(.*)$")
        if name then
          headers[name] = value
        end
      end
      local body = fields[3]
      if body == "" then
        body = nil
      end
      requests[#requests + 1] = wrk.format(fields[1], fields[2], headers, body)
    end
  end
  file:close()
  if #requests == 0 then
    error("no request in " .. path)
  end
  -- Threads start at different places in the list (half-way apart for two threads).
  local number = thread_number or 0
  next_index = (number * math.floor(#requests / 2)) % #requests + 1
end

function request()
  local r = requests[next_index]
  next_index = next_index % #requests + 1
  return r
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'TESSERA_BENCH {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end

-- wrk script: durable PUT of 100-byte documents under new random keys. Env: SHARDD_TOKEN, BENCH_INDEX.
local token = os.getenv("SHARDD_TOKEN")
local index = os.getenv("BENCH_INDEX") or "bench"
local headers = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
local body = '{"name":"benchmark record","value":12345,"tags":["a","b","c"],"pad":"xxxxxxxxxxxxxxxxxxxxxxxx"}'
local counter = 0

function setup(thread)
  thread:set("seed", math.random(1, 1000000))
end

function init(args)
  math.randomseed(seed)
  prefix = "p" .. seed .. "-"
end

request = function()
  counter = counter + 1
  return wrk.format("PUT", "/v1/indexes/" .. index .. "/records/" .. prefix .. counter, headers, body)
end

done = function(summary, latency, requests)
  local errs = summary.errors
  io.write(string.format("RESULT req_per_s=%.0f p50_ms=%.3f p99_ms=%.3f non2xx=%d socket_errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    errs.status, errs.connect + errs.read + errs.write + errs.timeout))
end

-- wrk script: GET random existing records <prefix><n>. Env: SHARDD_TOKEN, BENCH_INDEX, BENCH_KEYS,
-- BENCH_PREFIX (default k), BENCH_ROUTING (optional ?routing= value); or, with BENCH_PATH, that
-- one path each time (the nginx anchor), with the same header.
local token = os.getenv("SHARDD_TOKEN")
local index = os.getenv("BENCH_INDEX") or "bench"
local keys = tonumber(os.getenv("BENCH_KEYS") or "100000")
local prefix = os.getenv("BENCH_PREFIX") or "k"
local routing = os.getenv("BENCH_ROUTING")
local suffix = routing and ("?routing=" .. routing) or ""
local fixed = os.getenv("BENCH_PATH")
local headers = { ["Authorization"] = "Bearer " .. token }

function setup(thread)
  thread:set("seed", math.random(1, 1000000))
end

function init(args)
  math.randomseed(seed)
end

request = function()
  if fixed then return wrk.format("GET", fixed, headers) end
  return wrk.format("GET", "/v1/indexes/" .. index .. "/records/" .. prefix .. math.random(0, keys - 1) .. suffix, headers)
end

done = function(summary, latency, requests)
  local errs = summary.errors
  io.write(string.format("RESULT req_per_s=%.0f p50_ms=%.3f p99_ms=%.3f non2xx=%d socket_errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    errs.status, errs.connect + errs.read + errs.write + errs.timeout))
end

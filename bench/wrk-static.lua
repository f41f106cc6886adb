-- wrk script: GET one path (BENCH_PATH, default /r.json) with the same bearer header the
-- shardd GET sends, so both sides parse the same request; prints the same RESULT line.
local path = os.getenv("BENCH_PATH") or "/r.json"
local headers = { ["Authorization"] = "Bearer " .. (os.getenv("SHARDD_TOKEN") or "x") }

request = function()
  return wrk.format("GET", path, headers)
end

done = function(summary, latency, requests)
  local errs = summary.errors
  io.write(string.format("RESULT req_per_s=%.0f p50_ms=%.3f p99_ms=%.3f non2xx=%d socket_errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    errs.status, errs.connect + errs.read + errs.write + errs.timeout))
end

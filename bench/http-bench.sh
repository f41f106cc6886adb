#!/usr/bin/env bash
# HTTP benchmark of one node: single-record GET and durable PUT over HTTPS keep-alive at 64
# connections (wrk), and bulk NDJSON of 100-byte documents (bench/bulk_bench). Client and
# server share this machine. Prints one RESULT line per measurement.
#   bench/http-bench.sh [SECONDS]
# The anchor: nginx (Debian's nginx-light, 2 workers, TLS 1.3, the same certificate) serving a
# file the size of a GET's answer, measured in the same run with the same wrk settings; RESULT
# ratio_get_nginx and ratio_put_get compare them; nginx's and shardd's CPU time per GET (both
# processes' user + system time over the run) are printed beside them.
# Ends with the monitor on and off side by side (RESULT monitor_get, monitor_put: on/off ratio).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-10}
"$repo/scripts/setup.sh" --bench
build=${BENCH_BUILD:-$repo/build-release}  # another build to compare with
if [[ ! -f $build/build.ninja ]]; then meson setup "$build" -Dbuildtype=release -Db_ndebug=true >/dev/null; fi
ninja -C "$build" src/node/shardd bench/bulk_bench >/dev/null

work=$(mktemp -d /tmp/shardd-bench.XXXXXX)
pid=
nginx_pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [[ -n $nginx_pid ]] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
"$repo/scripts/dev-certs.sh" "$work/certs" node-1
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
peer=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export SHARDD_TOKEN=bench-token-0123456789abcdef
"$build/src/node/shardd" --node-id node-1 --data-dir "$work/data" --bootstrap \
  --rest-listen 127.0.0.1:$port --peer-listen 127.0.0.1:$peer --log-level warn \
  --tls-cert "$work/certs/node-1.pem" --tls-key "$work/certs/node-1.key" --tls-ca "$work/certs/ca.pem" &
pid=$!
url=https://127.0.0.1:$port
for _ in $(seq 100); do curl -fsS --cacert "$work/certs/ca.pem" "$url/v1/health" >/dev/null 2>&1 && break; sleep 0.1; done
auth=(-H "Authorization: Bearer $SHARDD_TOKEN")
curl -fsS --cacert "$work/certs/ca.pem" "${auth[@]}" -X PUT "$url/v1/indexes/bench" -d '{"shards":32}' >/dev/null
curl -fsS --cacert "$work/certs/ca.pem" "${auth[@]}" -X PUT "$url/v1/indexes/bulk" -d '{"shards":32}' >/dev/null

echo "# bulk NDJSON, 100-byte documents, 1,000,000 records, batches of 10,000, 2 connections"
"$build/bench/bulk_bench" "$port" "$work/certs/ca.pem" bulk 1000000 10000 2
echo "# preload 100,000 records for GET"
"$build/bench/bulk_bench" "$port" "$work/certs/ca.pem" bench 100000 10000 2 >/dev/null

# nginx beside it: a static file as long as one GET answer's body, over TLS 1.3.
answer=$(curl -fsS --cacert "$work/certs/ca.pem" "${auth[@]}" "$url/v1/indexes/bench/records/b42")
mkdir -p "$work/www" "$work/nginx"
printf '%s' "$answer" > "$work/www/r.json"
chmod 755 "$work" "$work/www" && chmod 644 "$work/www/r.json"
nport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  keepalive_requests 100000000;
  default_type application/json;
  server {
    listen 127.0.0.1:$nport ssl;
    ssl_certificate $work/certs/node-1.pem;
    ssl_certificate_key $work/certs/node-1.key;
    ssl_protocols TLSv1.3;
    root $work/www;
  }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
nginx_pid=$!
for _ in $(seq 100); do curl -fsS --cacert "$work/certs/ca.pem" "https://127.0.0.1:$nport/r.json" >/dev/null 2>&1 && break; sleep 0.1; done
rps_of() { sed -E 's/.*req_per_s=([0-9]+).*/\1/' <<<"$1"; }
# CPU time (user + system, clock ticks) of the given processes, to print CPU-µs per request.
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
hz=$(getconf CLK_TCK)
us_per_req() { awk -v t="$1" -v hz="$hz" -v r="$2" -v s="$secs" 'BEGIN{printf "%.1f", t * 1e6 / hz / (r * s)}'; }
nginx_workers=$(pgrep -P "$nginx_pid" | tr '\n' ' ')

echo "# nginx: a ${#answer}-byte file over TLS 1.3, 2 workers, 64 connections, ${secs}s"
t0=$(ticks $nginx_workers)
line=$(BENCH_PATH=/r.json wrk -t1 -c64 -d"${secs}s" --latency -s "$repo/bench/wrk-get.lua" "https://127.0.0.1:$nport" | grep RESULT)
nginx_rps=$(rps_of "$line")
nginx_us=$(us_per_req $(( $(ticks $nginx_workers) - t0 )) "$nginx_rps")
echo "$line cpu_us_per_req=$nginx_us"
echo "# GET single record, 64 connections, ${secs}s"
t0=$(ticks "$pid")
line=$(BENCH_INDEX=bench BENCH_KEYS=100000 BENCH_PREFIX=b wrk -t1 -c64 -d"${secs}s" --latency -s "$repo/bench/wrk-get.lua" "$url" | grep RESULT)
get_rps=$(rps_of "$line")
get_us=$(us_per_req $(( $(ticks "$pid") - t0 )) "$get_rps")
echo "$line cpu_us_per_req=$get_us"
echo "# durable PUT (fsync, group commit), 64 connections, ${secs}s"
line=$(BENCH_INDEX=bench wrk -t1 -c64 -d"${secs}s" --latency -s "$repo/bench/wrk-put.lua" "$url" | grep RESULT)
echo "$line"
put_rps=$(rps_of "$line")
kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null || true
nginx_pid=
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", a/b}'; }
echo "RESULT anchor nginx_req_per_s=$nginx_rps get_req_per_s=$get_rps put_req_per_s=$put_rps ratio_get_nginx=$(ratio "$get_rps" "$nginx_rps") ratio_put_get=$(ratio "$put_rps" "$get_rps") nginx_cpu_us_per_req=$nginx_us get_cpu_us_per_req=$get_us ratio_cpu_get_nginx=$(ratio "$get_us" "$nginx_us")"

# The monitor's cost, side by side in this run: rounds alternate between the monitor off
# (interval 0: no per-shard counting, no sampling) and on at 1 s (five times the default rate),
# three rounds each; the ratio is on/off of the median rounds.
settings() { curl -fsS --cacert "$work/certs/ca.pem" "${auth[@]}" -X PUT "$url/v1/monitor/settings" -d "{\"interval_ms\":$1}" >/dev/null; }
round_secs=$(( secs / 2 > 2 ? secs / 2 : 2 ))
median() { sort -n | sed -n 2p; }
for kind in GET PUT; do
  off=() on=()
  for r in 1 2 3; do
    for mode in off on; do
      if [[ $mode == off ]]; then settings 0; else settings 1000; fi
      if [[ $kind == GET ]]; then
        line=$(BENCH_INDEX=bench BENCH_KEYS=100000 BENCH_PREFIX=b wrk -t1 -c64 -d"${round_secs}s" -s "$repo/bench/wrk-get.lua" "$url" | grep RESULT)
      else
        line=$(BENCH_INDEX=bench wrk -t1 -c64 -d"${round_secs}s" -s "$repo/bench/wrk-put.lua" "$url" | grep RESULT)
      fi
      rps=$(sed -E 's/.*req_per_s=([0-9]+).*/\1/' <<<"$line")
      echo "# monitor $mode, $kind round $r: $line"
      if [[ $mode == off ]]; then off+=("$rps"); else on+=("$rps"); fi
    done
  done
  m_off=$(printf '%s\n' "${off[@]}" | median)
  m_on=$(printf '%s\n' "${on[@]}" | median)
  echo "RESULT monitor_${kind,,} off_req_per_s=$m_off on_req_per_s=$m_on ratio_on_off=$(awk -v a="$m_on" -v b="$m_off" 'BEGIN{printf "%.3f", a/b}')"
done
settings 5000

# The access log's cost (rest.access_log is a start-up setting): the node restarted on the same
# data with it on and off, alternating, GETs only (the cheapest request, where a log line weighs
# most); three rounds each, ratio on/off of the medians.
restart() {  # access_log true|false
  kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  echo "{\"rest\":{\"access_log\":$1}}" > "$work/access.json"
  "$build/src/node/shardd" --config "$work/access.json" --node-id node-1 --data-dir "$work/data" \
    --rest-listen 127.0.0.1:$port --peer-listen 127.0.0.1:$peer --log-level info \
    --tls-cert "$work/certs/node-1.pem" --tls-key "$work/certs/node-1.key" --tls-ca "$work/certs/ca.pem" 2>"$work/node.log" &
  pid=$!
  for _ in $(seq 100); do curl -fsS --cacert "$work/certs/ca.pem" "$url/v1/health" >/dev/null 2>&1 && break; sleep 0.1; done
}
off=() on=()
for r in 1 2 3; do
  for mode in false true; do
    restart $mode
    line=$(BENCH_INDEX=bench BENCH_KEYS=100000 BENCH_PREFIX=b wrk -t1 -c64 -d"${round_secs}s" -s "$repo/bench/wrk-get.lua" "$url" | grep RESULT)
    rps=$(sed -E 's/.*req_per_s=([0-9]+).*/\1/' <<<"$line")
    echo "# access_log $mode, GET round $r: $line ($(grep -c 'event=access' "$work/node.log") access lines)"
    if [[ $mode == false ]]; then off+=("$rps"); else on+=("$rps"); fi
  done
done
m_off=$(printf '%s\n' "${off[@]}" | median)
m_on=$(printf '%s\n' "${on[@]}" | median)
echo "RESULT access_log_get off_req_per_s=$m_off on_req_per_s=$m_on ratio_on_off=$(awk -v a="$m_on" -v b="$m_off" 'BEGIN{printf "%.3f", a/b}')"


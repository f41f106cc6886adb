#!/usr/bin/env bash
# Forwarded GET vs local GET on the same two-node cluster, same run. Records are written
# under two routing values: one whose shard node-1 owns, one whose shard node-2 owns. wrk
# then reads through node-1: the first set is served in place, the second is forwarded to
# node-2 over the peer protocol and relayed. Prints req/s and p50/p99 of both.
#   bench/cluster-bench.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-10}
conns=${2:-64}
"$repo/scripts/setup.sh" --bench
build=${BENCH_BUILD:-$repo/build-release}  # another build to compare with
if [[ ! -f $build/build.ninja ]]; then meson setup "$build" -Dbuildtype=release -Db_ndebug=true >/dev/null; fi
ninja -C "$build" src/node/shardd >/dev/null

work=$(mktemp -d /tmp/shardd-cbench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
"$repo/scripts/dev-certs.sh" "$work/certs" node-1 node-2
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
r1=$(port); p1=$(port); r2=$(port); p2=$(port)
export SHARDD_TOKEN=bench-token-0123456789abcdef
common=(--log-level warn --tls-ca "$work/certs/ca.pem")
"$build/src/node/shardd" --node-id node-1 --data-dir "$work/n1" --bootstrap --rest-listen 127.0.0.1:$r1 --peer-listen 127.0.0.1:$p1 \
  --tls-cert "$work/certs/node-1.pem" --tls-key "$work/certs/node-1.key" "${common[@]}" &
pids+=($!)
ca=(--cacert "$work/certs/ca.pem")
auth=(-H "Authorization: Bearer $SHARDD_TOKEN")
for _ in $(seq 100); do curl -fsS "${ca[@]}" https://127.0.0.1:$r1/v1/health >/dev/null 2>&1 && break; sleep 0.1; done
"$build/src/node/shardd" --node-id node-2 --data-dir "$work/n2" --join 127.0.0.1:$p1 --rest-listen 127.0.0.1:$r2 --peer-listen 127.0.0.1:$p2 \
  --tls-cert "$work/certs/node-2.pem" --tls-key "$work/certs/node-2.key" "${common[@]}" &
pids+=($!)
for _ in $(seq 100); do curl -fsS "${ca[@]}" https://127.0.0.1:$r2/v1/health >/dev/null 2>&1 && break; sleep 0.1; done
url=https://127.0.0.1:$r1
curl -fsS "${ca[@]}" "${auth[@]}" -X PUT "$url/v1/indexes/bench" -d '{"shards":16}' >/dev/null

# A routing value per owner.
local_r= remote_r=
for i in $(seq 1 200); do
  owner=$(curl -fsS "${ca[@]}" "${auth[@]}" "$url/v1/ring/lookup?index=bench&key=tenant-$i" | python3 -c 'import json,sys; print(json.load(sys.stdin)["owner"])')
  if [[ $owner == node-1 && -z $local_r ]]; then local_r=tenant-$i; fi
  if [[ $owner == node-2 && -z $remote_r ]]; then remote_r=tenant-$i; fi
  [[ -n $local_r && -n $remote_r ]] && break
done
for r in "$local_r" "$remote_r"; do
  for chunk in 0 1 2 3 4; do
    python3 - "$r" "$chunk" <<'PY' | curl -fsS "${ca[@]}" "${auth[@]}" -X POST "$url/v1/indexes/bench/bulk" --data-binary @- >/dev/null
import sys
r, c = sys.argv[1], int(sys.argv[2])
for i in range(c * 10000, (c + 1) * 10000):
    print('{"op":"put","key":"k%d","routing":"%s","doc":{"name":"benchmark record","value":%d,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}' % (i, r, i))
PY
  done
done
echo "# GET through node-1, ${conns} connections, ${secs}s: local (routing=$local_r, owner node-1)"
BENCH_INDEX=bench BENCH_KEYS=50000 BENCH_ROUTING=$local_r wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$repo/bench/wrk-get.lua" "$url" | grep RESULT
echo "# GET through node-1, ${conns} connections, ${secs}s: forwarded (routing=$remote_r, owner node-2)"
BENCH_INDEX=bench BENCH_KEYS=50000 BENCH_ROUTING=$remote_r wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$repo/bench/wrk-get.lua" "$url" | grep RESULT

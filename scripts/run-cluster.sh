#!/usr/bin/env bash
# Runs a local shardd cluster with the embedded control plane, or on a local etcd.
#   scripts/run-cluster.sh          set up, build, make dev certificates, start three nodes (the
#                                   first bootstraps the cluster, the others join it), create a
#                                   sample index with sample data, print the URLs, the token and
#                                   curl examples; Ctrl-C stops all
#   scripts/run-cluster.sh --etcd   the same on a local one-member etcd (started first, stopped
#                                   last, data in $SHARDD_HOME/etcd): every node starts with
#                                   --meta etcd://..., the controller is elected, and killing it
#                                   hands the role to another node within seconds
#   scripts/run-cluster.sh stop     stop everything a previous run started
#   scripts/run-cluster.sh env      print export SHARDD_URL=... SHARDD_TOKEN=... SHARDD_CACERT=...
#                                   SHARDD_URLS=... (every node's REST URL)
#   scripts/run-cluster.sh add      start one more node that joins the running cluster
#   scripts/run-cluster.sh status   show which nodes run
# Environment:
#   SHARDD_HOME       state folder (default: .shardd in the repository; git-ignored)
#   SHARDD_BASE_PORT  first port (default 7400); node i uses BASE+2(i-1) (REST) and BASE+2(i-1)+1 (peer)
#   SHARDD_NODES      nodes to start (default 3)
#   The etcd member listens on BASE+98 (clients) and BASE+99 (its peers).
set -euo pipefail
meta_mode=embedded
args=()
for a in "$@"; do
  if [[ "$a" == "--etcd" ]]; then meta_mode=etcd; else args+=("$a"); fi
done
set -- "${args[@]+"${args[@]}"}"
repo=$(cd "$(dirname "$0")/.." && pwd)
home=${SHARDD_HOME:-$repo/.shardd}
base_port=${SHARDD_BASE_PORT:-7400}
nodes=${SHARDD_NODES:-3}
build_dir=$repo/build
binary=$build_dir/src/node/shardd

rest_port() { echo $((base_port + 2 * ($1 - 1))); }
peer_port() { echo $((base_port + 2 * ($1 - 1) + 1)); }
url_of() { echo "https://127.0.0.1:$(rest_port "$1")"; }
token_of() { cat "$home/token"; }
etcd_port() { echo $((base_port + 98)); }
etcd_pid() { local f=$home/etcd/etcd.pid; [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"; }
home_mode() { cat "$home/meta" 2>/dev/null || echo embedded; }

start_etcd() {
  [[ -n "$(etcd_pid || true)" ]] && return 0
  command -v etcd >/dev/null || { echo "etcd is not installed (Debian: apt-get install etcd-server)" >&2; return 1; }
  mkdir -p "$home/etcd"
  local client="http://127.0.0.1:$(etcd_port)" peer="http://127.0.0.1:$(( $(etcd_port) + 1 ))"
  ETCD_UNSUPPORTED_ARCH=${ETCD_UNSUPPORTED_ARCH:-} etcd --name local --data-dir "$home/etcd/data" \
    --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "local=$peer" \
    >>"$home/etcd/etcd.log" 2>&1 &
  echo $! > "$home/etcd/etcd.pid"
  for _ in $(seq 1 100); do
    if curl -fsS "$client/health" 2>/dev/null | grep -q '"health":"true"'; then return 0; fi
    sleep 0.1
  done
  echo "etcd did not start; its log ($home/etcd/etcd.log) ends with:" >&2
  tail -5 "$home/etcd/etcd.log" >&2
  return 1
}

stop_etcd() {
  local pid
  pid=$(etcd_pid || true)
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$home/etcd/etcd.pid"
  echo "stopped etcd"
}

running_pids() {
  local f pid
  for f in "$home"/node-*/shardd.pid; do
    [[ -f "$f" ]] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
  done
}

stop_all() {
  local pids pid waited=0
  pids=$(running_pids || true)
  [[ -n "$pids" ]] || { rm -f "$home"/node-*/shardd.pid; stop_etcd; return 0; }
  for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
  while [[ -n "$(running_pids || true)" && $waited -lt 150 ]]; do sleep 0.1; waited=$((waited + 1)); done
  for pid in $(running_pids || true); do kill -KILL "$pid" 2>/dev/null || true; done
  rm -f "$home"/node-*/shardd.pid
  echo "stopped $(echo "$pids" | wc -w) node(s)"
  stop_etcd
}

known_nodes() {  # how many nodes this home has configured
  local n=0
  while [[ -f "$home/node-$((n + 1))/shardd.json" ]]; do n=$((n + 1)); done
  echo "$n"
}

print_env() {
  local urls="" i
  for i in $(seq 1 "$(known_nodes)"); do urls="$urls $(url_of "$i")"; done
  echo "export SHARDD_URL=$(url_of 1) SHARDD_TOKEN=$(token_of) SHARDD_CACERT=$home/certs/ca.pem SHARDD_URLS=\"${urls# }\""
}

write_config() {  # i
  local i=$1 dir=$home/node-$1 cluster
  mkdir -p "$dir"
  local meta='"meta": "embedded"'
  if [[ "$(home_mode)" == etcd ]]; then
    meta="\"meta\": \"etcd://127.0.0.1:$(etcd_port)\""
    cluster=''
  elif ((i == 1)); then cluster='"bootstrap": true'; else cluster="\"join\": \"127.0.0.1:$(peer_port 1)\""; fi
  cat > "$dir/shardd.json" <<JSON
{
  "node_id": "node-$i",
  "cluster_id": "local",
  $meta,
  "data_dir": "data",
  "rest": {"listen": "127.0.0.1:$(rest_port "$i")", "token": "$(token_of)"},
  "peer": {"listen": "127.0.0.1:$(peer_port "$i")"},
  "tls": {"cert": "../certs/node-$i.pem", "key": "../certs/node-$i.key", "ca": "../certs/ca.pem"},
  "cluster": {$cluster}
}
JSON
  chmod 600 "$dir/shardd.json"
}

start_node() {  # i: start in the background, then wait until it answers
  local i=$1 dir=$home/node-$1
  "$binary" --config "$dir/shardd.json" >>"$dir/shardd.log" 2>&1 &
  echo $! > "$dir/shardd.pid"
  for _ in $(seq 1 150); do
    if curl -fsS --cacert "$home/certs/ca.pem" "$(url_of "$i")/v1/health" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$(cat "$dir/shardd.pid")" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "node-$i did not start; its log ($dir/shardd.log) ends with:" >&2
  tail -5 "$dir/shardd.log" >&2
  return 1
}

case "${1:-start}" in
  stop) stop_all; exit 0 ;;
  add)
    [[ -n "$(running_pids || true)" ]] || { echo "no cluster runs from $home; start one with $0" >&2; exit 1; }
    i=$(( $(known_nodes) + 1 ))
    meta_mode=$(home_mode)
    "$repo/scripts/dev-certs.sh" "$home/certs" "node-$i"
    write_config "$i"
    start_node "$i" || exit 1
    echo "node-$i joined: $(url_of "$i") (peer 127.0.0.1:$(peer_port "$i")); stop it with '$0 stop'"
    exit 0 ;;
  env)
    [[ -f "$home/token" ]] || { echo "no cluster set up in $home; run $0 first" >&2; exit 1; }
    print_env; exit 0 ;;
  status)
    for i in $(seq 1 "$(known_nodes)"); do
      f=$home/node-$i/shardd.pid
      if [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null; then echo "node-$i running pid $(cat "$f") $(url_of "$i")"; else echo "node-$i stopped"; fi
    done
    exit 0 ;;
  start) ;;
  *) echo "usage: $0 [start|stop|env|add|status]" >&2; exit 2 ;;
esac

if [[ -n "$(running_pids || true)" ]]; then
  echo "a cluster already runs from $home (pids: $(running_pids | tr '\n' ' ')); '$0 stop' stops it" >&2
  exit 1
fi

"$repo/scripts/setup.sh"
if [[ ! -f "$build_dir/build.ninja" ]]; then meson setup "$build_dir" >/dev/null; fi
ninja -C "$build_dir" src/node/shardd >/dev/null

mkdir -p "$home"
if [[ -f "$home/meta" && "$(home_mode)" != "$meta_mode" ]]; then
  echo "$home holds a cluster on the $(home_mode) control plane; start it the same way, or use another SHARDD_HOME" >&2
  exit 1
fi
echo "$meta_mode" > "$home/meta"
if [[ "$meta_mode" == etcd ]]; then start_etcd || exit 1; fi
ids=()
for i in $(seq 1 "$nodes"); do ids+=("node-$i"); done
"$repo/scripts/dev-certs.sh" "$home/certs" "${ids[@]}"
if [[ ! -f "$home/token" ]]; then
  (umask 077; openssl rand -hex 24 > "$home/token")
fi
token=$(token_of)
cacert=$home/certs/ca.pem

trap 'echo; stop_all; exit 0' INT TERM
for i in $(seq 1 "$nodes"); do
  write_config "$i"
  # The first node bootstraps the cluster; the others join it once it answers.
  start_node "$i" || { stop_all; exit 1; }
done
# Nodes beyond $nodes added by an earlier 'add' are not restarted.

url=$(url_of 1)
auth=(-H "Authorization: Bearer $token")
# Wait until every node is up in the map, then make sure the sample index exists.
for _ in $(seq 1 100); do
  up=$(curl -fsS --cacert "$cacert" "${auth[@]}" "$url/v1/cluster" 2>/dev/null | grep -o '"state":"up"' | wc -l || true)
  [[ "$up" -ge "$nodes" ]] && break
  sleep 0.1
done
if ! curl -fsS --cacert "$cacert" "${auth[@]}" "$url/v1/indexes/demo" >/dev/null 2>&1; then
  curl -fsS --cacert "$cacert" "${auth[@]}" -X PUT "$url/v1/indexes/demo" -d '{"partitioning":"hash","shards":12}' >/dev/null
  # Sample data: 1,000 users, written through the second node (each goes to its shard's owner).
  for i in $(seq 1 1000); do
    printf '{"op":"put","key":"user-%04d","doc":{"name":"User %d","team":"%s","score":%d}}\n' "$i" "$i" \
      "$(case $((i % 3)) in 0) echo red;; 1) echo green;; *) echo blue;; esac)" "$((i * 7 % 100))"
  done | curl -fsS --cacert "$cacert" "${auth[@]}" -X POST "$(url_of 2 2>/dev/null || echo "$url")/v1/indexes/demo/bulk" \
    --data-binary @- >/dev/null
fi
url2=$(url_of 2)
url3=$(url_of 3)

cat <<TXT
shardd is running: $nodes nodes, state in $home, control plane: $meta_mode$( [[ $meta_mode == etcd ]] && echo " (etcd at http://127.0.0.1:$(etcd_port))")
  URLs:   $(for i in $(seq 1 "$nodes"); do printf '%s ' "$(url_of "$i")"; done)
  token:  $token
  CA:     $cacert
  sample: index "demo" (12 shards) with 1,000 records user-0001..user-1000

Try (paste into any shell; any node answers for any record):
  curl --cacert $cacert -H 'Authorization: Bearer $token' $url3/v1/indexes/demo/records/user-0042
  curl --cacert $cacert -H 'Authorization: Bearer $token' -X PUT $url2/v1/indexes/demo/records/alice -d '{"name":"Alice","team":"blue"}'
  curl --cacert $cacert -H 'Authorization: Bearer $token' '$url/v1/shards?format=text'
  curl --cacert $cacert -H 'Authorization: Bearer $token' '$url2/v1/cluster?format=text'

For scripts: eval "\$($0 env)"      One more node: $0 add
Ctrl-C (or '$0 stop') stops the cluster.
TXT
wait

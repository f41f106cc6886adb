#!/usr/bin/env bash
# Runs a local shardd cluster with the embedded control plane.
#   scripts/run-cluster.sh          set up, build, make dev certificates, start the node(s),
#                                   print the URL, token and curl examples; Ctrl-C stops all
#   scripts/run-cluster.sh stop     stop everything a previous run started
#   scripts/run-cluster.sh env      print export SHARDD_URL=... SHARDD_TOKEN=... SHARDD_CACERT=...
#   scripts/run-cluster.sh status   show which nodes run
# Environment:
#   SHARDD_HOME       state folder (default: .shardd in the repository; git-ignored)
#   SHARDD_BASE_PORT  first port (default 7400); node i uses BASE+2i (REST) and BASE+2i+1 (peer)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
home=${SHARDD_HOME:-$repo/.shardd}
base_port=${SHARDD_BASE_PORT:-7400}
nodes=${SHARDD_NODES:-1}
build_dir=$repo/build
binary=$build_dir/src/node/shardd

rest_port() { echo $((base_port + 2 * ($1 - 1))); }
peer_port() { echo $((base_port + 2 * ($1 - 1) + 1)); }
url_of() { echo "https://127.0.0.1:$(rest_port "$1")"; }
token_of() { cat "$home/token"; }

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
  [[ -n "$pids" ]] || { rm -f "$home"/node-*/shardd.pid; return 0; }
  for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
  while [[ -n "$(running_pids || true)" && $waited -lt 150 ]]; do sleep 0.1; waited=$((waited + 1)); done
  for pid in $(running_pids || true); do kill -KILL "$pid" 2>/dev/null || true; done
  rm -f "$home"/node-*/shardd.pid
  echo "stopped $(echo "$pids" | wc -w) node(s)"
}

print_env() {
  local urls="" i
  for i in $(seq 1 "$nodes"); do urls="$urls $(url_of "$i")"; done
  echo "export SHARDD_URL=$(url_of 1) SHARDD_TOKEN=$(token_of) SHARDD_CACERT=$home/certs/ca.pem SHARDD_URLS=\"${urls# }\""
}

case "${1:-start}" in
  stop) stop_all; exit 0 ;;
  env)
    [[ -f "$home/token" ]] || { echo "no cluster set up in $home; run $0 first" >&2; exit 1; }
    print_env; exit 0 ;;
  status)
    for i in $(seq 1 "$nodes"); do
      f=$home/node-$i/shardd.pid
      if [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null; then echo "node-$i running pid $(cat "$f") $(url_of "$i")"; else echo "node-$i stopped"; fi
    done
    exit 0 ;;
  start) ;;
  *) echo "usage: $0 [start|stop|env|status]" >&2; exit 2 ;;
esac

if [[ -n "$(running_pids || true)" ]]; then
  echo "a cluster already runs from $home (pids: $(running_pids | tr '\n' ' ')); '$0 stop' stops it" >&2
  exit 1
fi

"$repo/scripts/setup.sh"
if [[ ! -f "$build_dir/build.ninja" ]]; then meson setup "$build_dir" >/dev/null; fi
ninja -C "$build_dir" src/node/shardd >/dev/null

mkdir -p "$home"
ids=()
for i in $(seq 1 "$nodes"); do ids+=("node-$i"); done
"$repo/scripts/dev-certs.sh" "$home/certs" "${ids[@]}"
if [[ ! -f "$home/token" ]]; then
  (umask 077; openssl rand -hex 24 > "$home/token")
fi
token=$(token_of)
cacert=$home/certs/ca.pem

for i in $(seq 1 "$nodes"); do
  dir=$home/node-$i
  mkdir -p "$dir"
  if ((i == 1)); then cluster='"bootstrap": true'; else cluster="\"join\": \"127.0.0.1:$(peer_port 1)\""; fi
  cat > "$dir/shardd.json" <<JSON
{
  "node_id": "node-$i",
  "cluster_id": "local",
  "data_dir": "data",
  "rest": {"listen": "127.0.0.1:$(rest_port "$i")", "token": "$token"},
  "peer": {"listen": "127.0.0.1:$(peer_port "$i")"},
  "tls": {"cert": "../certs/node-$i.pem", "key": "../certs/node-$i.key", "ca": "../certs/ca.pem"},
  "cluster": {$cluster}
}
JSON
  chmod 600 "$dir/shardd.json"
  "$binary" --config "$dir/shardd.json" >>"$dir/shardd.log" 2>&1 &
  echo $! > "$dir/shardd.pid"
done
trap 'echo; stop_all; exit 0' INT TERM

for i in $(seq 1 "$nodes"); do
  ok=0
  for _ in $(seq 1 100); do
    if curl -fsS --cacert "$cacert" "$(url_of "$i")/v1/health" >/dev/null 2>&1; then ok=1; break; fi
    if ! kill -0 "$(cat "$home/node-$i/shardd.pid")" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if ((ok == 0)); then
    echo "node-$i did not start; its log ($home/node-$i/shardd.log) ends with:" >&2
    tail -5 "$home/node-$i/shardd.log" >&2
    stop_all
    exit 1
  fi
done

url=$(url_of 1)
auth=(-H "Authorization: Bearer $token")
if ! curl -fsS --cacert "$cacert" "${auth[@]}" "$url/v1/indexes/demo" >/dev/null 2>&1; then
  curl -fsS --cacert "$cacert" "${auth[@]}" -X PUT "$url/v1/indexes/demo" -d '{"partitioning":"hash","shards":8}' >/dev/null
fi

cat <<TXT
shardd is running ($nodes node(s), state in $home)
  URL:    $url
  token:  $token
  CA:     $cacert

Try (paste into any shell):
  curl --cacert $cacert -H 'Authorization: Bearer $token' -X PUT $url/v1/indexes/demo/records/alice -d '{"name":"Alice","team":"blue"}'
  curl --cacert $cacert -H 'Authorization: Bearer $token' $url/v1/indexes/demo/records/alice
  curl --cacert $cacert -H 'Authorization: Bearer $token' '$url/v1/shards?format=text'

For scripts: eval "\$($0 env)"
Ctrl-C (or '$0 stop') stops the cluster.
TXT
wait

#!/usr/bin/env bash
# Makes a development CA and one certificate per node (server and client use; SAN 127.0.0.1,
# localhost, ::1), EC P-256, into DIR. Idempotent: an existing CA and existing node
# certificates are kept, missing ones are added.
#   scripts/dev-certs.sh DIR NODE_ID [NODE_ID...]
# Files: DIR/ca.pem, DIR/ca.key, DIR/<node>.pem, DIR/<node>.key
set -euo pipefail
if (($# < 2)); then
  echo "usage: $0 DIR NODE_ID [NODE_ID...]" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")/.." && pwd)
dir=$1
shift
mkdir -p "$dir"
chmod 700 "$dir"
umask 077

if [[ ! -f "$dir/ca.pem" || ! -f "$dir/ca.key" ]]; then
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$dir/ca.key" -sha256 -days 3650 -subj "/CN=shardd dev CA $(date +%s)" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$dir/ca.pem" 2>/dev/null
fi

for node in "$@"; do
  if [[ ! "$node" =~ ^[A-Za-z0-9._-]+$ ]]; then
    echo "$0: bad node id '$node'" >&2
    exit 2
  fi
  [[ -f "$dir/$node.pem" && -f "$dir/$node.key" ]] && continue
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/$node.key" 2>/dev/null
  openssl req -new -key "$dir/$node.key" -subj "/CN=$node" -out "$dir/$node.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$node.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 825 -sha256 -extfile "$here/conf/dev-node-cert.cnf" -out "$dir/$node.pem" 2>/dev/null
  rm -f "$dir/$node.csr"
done
chmod 600 "$dir"/*.key

#!/usr/bin/env bash
# Installs what shardd needs to build and test on Debian 12, with apt-get. Idempotent: when
# everything is there it only checks (well under a second).
#   scripts/setup.sh            build and test dependencies
#   scripts/setup.sh --bench    also the benchmark peers (wrk, redis)
set -euo pipefail

packages=(
  meson ninja-build pkg-config ccache g++
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev libboost-program-options1.81-dev
  libssl-dev librocksdb-dev liblz4-dev libspdlog-dev catch2
  clang libclang-rt-14-dev
  openssl curl ca-certificates procps
  prometheus
  etcd-server etcd-client
  chromium chromium-driver python3-selenium fonts-dejavu-core
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(wrk redis-server redis-tools python3 nginx-light)
fi

# Node.js runs the OpenAPI checks (test/openapi): Debian's nodejs and npm unless a node is there.
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)

# The OpenAPI validator and Ajv, pinned by test/openapi/package-lock.json, from npm (after apt).
npm_modules() {
  local dir
  dir=$(cd "$(dirname "$0")/.." && pwd)/test/openapi
  if [[ ! -f "$dir/node_modules/.package-lock.json" || "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]]; then
    echo "setup: npm ci in test/openapi" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  npm_modules
  exit 0
fi

echo "setup: installing ${missing[*]}" >&2
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done" >&2
npm_modules

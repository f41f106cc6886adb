#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite (unit and integration) twice: with g++
# (build/) and with clang++ under AddressSanitizer and UndefinedBehaviorSanitizer (build-asan/).
#   scripts/test.sh             both builds
#   SHARDD_TEST_QUICK=1 scripts/test.sh   g++ build only
# Extra arguments are passed to `meson test` (a test name, --suite unit, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

jobs=${SHARDD_BUILD_JOBS:-$(nproc)}

configure() {  # dir, extra meson args...
  local dir=$1; shift
  if [[ ! -f "$dir/build.ninja" ]]; then
    meson setup "$dir" "$@" >/dev/null
  fi
}

run_suite() {  # dir
  local dir=$1; shift
  echo "== build $dir"
  ninja -C "$dir" -j "$jobs"
  echo "== test $dir"
  meson test -C "$dir" --print-errorlogs --num-processes 2 "$@"
}

start=$(date +%s)
configure build
run_suite build "$@"

if [[ "${SHARDD_TEST_QUICK:-0}" != 1 ]]; then
  # -fno-sanitize=function: clang 14 cannot emit UBSan's function-type prologue data for
  # coroutine bodies ("Cannot represent a difference across sections"); every other UBSan
  # check stays on.
  CXX="ccache clang++" configure build-asan -Db_sanitize=address,undefined -Db_lundef=false \
    -Dbuildtype=debugoptimized -Dcpp_args=-fno-sanitize=function
  # halt_on_error makes UBSan findings fail the test instead of only printing.
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
  run_suite build-asan "$@"

  # The peer protocol decoder and the REST layer under libFuzzer (clang, ASan+UBSan), each for
  # SHARDD_FUZZ_SECONDS (default 60), from the seed corpora in test/fuzz (copied: the fuzzer
  # adds to its corpus folder).
  CXX="ccache clang++" configure build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dcpp_args=-fno-sanitize=function
  ninja -C build-fuzz -j "$jobs" test/fuzz/fuzz_frame test/fuzz/fuzz_rest
  for target in frame:corpus rest:rest_corpus; do
    name=${target%%:*}
    seeds=${target#*:}
    echo "== fuzz build-fuzz/test/fuzz/fuzz_$name for ${SHARDD_FUZZ_SECONDS:-60} s"
    corpus=$(mktemp -d)
    cp "test/fuzz/$seeds"/* "$corpus/"
    status=0
    build-fuzz/test/fuzz/fuzz_$name -max_total_time="${SHARDD_FUZZ_SECONDS:-60}" -print_final_stats=1 \
      -rss_limit_mb=4096 -artifact_prefix=build-fuzz/ "$corpus" > "build-fuzz/fuzz_$name.log" 2>&1 || status=$?
    grep -E "^stat::number_of_executed_units|ERROR|SUMMARY" "build-fuzz/fuzz_$name.log" || true
    rm -rf "$corpus"
    if [[ $status -ne 0 ]]; then
      echo "fuzz_$name found a failing input (see build-fuzz/crash-* and build-fuzz/fuzz_$name.log)" >&2
      exit 1
    fi
  done
fi
echo "== all tests passed in $(( $(date +%s) - start )) s"

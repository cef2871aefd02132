#!/usr/bin/env bash
# Profile-guided release build of `rampart`.
#
# 1. builds an instrumented release binary (`-Cprofile-generate`);
# 2. runs it under the benchmark workloads — proxied requests (`bench/proxy.sh`), requests
#    through an API key and two rate limits (`bench/guard.sh`) and requests inspected by
#    the OWASP CRS (`bench/waf.sh`), a few seconds each — which write its execution counts;
# 3. merges the counts with `llvm-profdata` and builds the release binary again with them
#    (`-Cprofile-use`): the compiler lays out, inlines and orders the hot paths by what
#    those requests executed.
#
# The result is `target/pgo/optimized/release/rampart` (the path is printed last). It behaves
# exactly as the plain `cargo build --release` binary does; only its speed differs (see the
# proxy section of docs/BENCHMARKS.md).
#
# Needs, besides what the benchmarks need (nginx, wrk, libnginx-mod-http-modsecurity, the
# CRS rules): `llvm-profdata` of the same LLVM major version as rustc (`rustc -vV` prints
# it; on Debian 12 the package `llvm-22` for rustc 1.95). Takes two release builds plus
# about three minutes of workloads.
# Usage: scripts/build-pgo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

llvm_major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
profdata=""
for candidate in "llvm-profdata-$llvm_major" llvm-profdata; do
  if command -v "$candidate" >/dev/null &&
    "$candidate" --version | grep -q "LLVM version $llvm_major\."; then
    profdata=$candidate
    break
  fi
done
if [[ -z "$profdata" ]]; then
  echo "needs llvm-profdata of LLVM $llvm_major, the version rustc uses (Debian: apt-get install llvm-$llvm_major)" >&2
  exit 1
fi

dir=$PWD/target/pgo
rm -rf "$dir/profiles" "$dir/rampart.profdata"
mkdir -p "$dir"

echo "== 1/3 instrumented build"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$dir/profiles" CARGO_TARGET_DIR="$dir/instrumented" \
  cargo build --release --quiet -p rampart

echo "== 2/3 workloads (output in $dir/workloads.log)"
export RAMPART_BIN="$dir/instrumented/release/rampart"
# Only the uncapped rounds train: the CPU-capped ones would repeat the same paths.
export CPU_BUDGET=0
if ! { bench/proxy.sh 3 50 1 && bench/guard.sh 3 50 1 && ENGINE_BENCH=0 bench/waf.sh 2 20; } \
  >"$dir/workloads.log" 2>&1; then
  tail -n 20 "$dir/workloads.log" >&2
  echo "a training workload failed; its output is in $dir/workloads.log" >&2
  exit 1
fi
unset RAMPART_BIN CPU_BUDGET
# The benchmarks stop their servers without waiting for them; a server writes its counts
# as it exits, so the merge waits until no instrumented process is left (at most 60 s).
for _ in $(seq 1 600); do
  pgrep -f "^$dir/instrumented/release/rampart" >/dev/null || break
  sleep 0.1
done
"$profdata" merge -o "$dir/rampart.profdata" "$dir"/profiles/*.profraw

echo "== 3/3 optimized build"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$dir/rampart.profdata" CARGO_TARGET_DIR="$dir/optimized" \
  cargo build --release --quiet -p rampart
echo "$dir/optimized/release/rampart"

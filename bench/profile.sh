#!/usr/bin/env bash
# Where a proxied request's user-space time goes, Rampart against nginx, in one run.
#
# The same tiny upstream as bench/proxy.sh; nginx as a reverse proxy (one process,
# keep-alive upstream, access log on) and `rampart proxy --workers 1` (metrics and
# access log on) each run under valgrind's callgrind with cache and branch simulation
# while wrk sends them the same load. Printed per request, for both and as the ratio
# Rampart/nginx: instructions, simulated L1 instruction- and data-cache misses, branch
# mispredictions, and bus-locked instructions (atomic read-modify-writes: reference
# counts, mutexes, shared counters; each costs a few nanoseconds among the stores
# around it, which instruction counts do not show). Instructions and locked
# instructions repeat within 1% from run to run, so two builds (RAMPART_BIN) can be
# compared by them; the simulated cache misses depend on how the connections' requests
# interleave and move by a third. It measures no time (bench/proxy.sh does).
#
# Needs: nginx, wrk, valgrind, python3, objdump (Debian packages `nginx-light`, `wrk`,
# `valgrind`, `binutils`). Loopback only.
# Usage: [RAMPART_BIN=path | PGO=1] [SITES=15] bench/profile.sh [duration-seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

DURATION=${1:-8}
CONNECTIONS=${2:-10}
UPSTREAM_PORT=18101
NGINX_PORT=18102
RAMPART_PORT=18103
RAMPART_ADMIN=18104

require_tools nginx wrk taskset curl valgrind callgrind_control python3 objdump

bench_workdir

rampart_binary

upstream_and_proxy_confs "$work" $UPSTREAM_PORT $NGINX_PORT
# One process in the foreground, so that valgrind follows the process serving requests.
sed -i '1i daemon off; master_process off;' "$work/proxy.conf"
taskset -c "$LOAD_CPU" nginx -c "$work/upstream.conf" -e "$work/upstream.error.log"

callgrind() { # out-file command... (in the background; sets LAST_PID)
  local out=$1
  shift
  RUST_LOG=warn taskset -c "$PROXY_CPU" valgrind --tool=callgrind --instr-atstart=no \
    --dump-instr=yes --cache-sim=yes --branch-sim=yes --callgrind-out-file="$out" "$@" \
    >"$out.log" 2>&1 &
  LAST_PID=$!
  pids+=("$LAST_PID")
}

callgrind "$work/nginx.out" nginx -c "$work/proxy.conf" -e "$work/proxy.error.log"
nginx_pid=$LAST_PID
callgrind "$work/rampart.out" "$RAMPART" proxy --from 127.0.0.1:$RAMPART_PORT \
  --to http://127.0.0.1:$UPSTREAM_PORT --admin 127.0.0.1:$RAMPART_ADMIN --workers 1 \
  --access-log "$work/rampart-access.log"
rampart_pid=$LAST_PID
for _ in $(seq 1 300); do
  curl -fs "http://127.0.0.1:$RAMPART_PORT/" >/dev/null 2>&1 && curl -fs "http://127.0.0.1:$NGINX_PORT/" >/dev/null 2>&1 && break
  sleep 0.2
done

measure() { # pid port out-file [--sites N] -> prints the per-request counts
  local pid=$1 port=$2 out=$3 requests dump
  shift 3
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$port/" >/dev/null
  callgrind_control -i on "$pid" >/dev/null 2>&1
  callgrind_control -z "$pid" >/dev/null 2>&1
  requests=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$port/" | awk '/requests in/ { print $1 }')
  callgrind_control -d "$pid" >/dev/null 2>&1
  callgrind_control -i off "$pid" >/dev/null 2>&1
  dump=$(ls -t "$out".* | grep -v '\.log$' | head -n1)
  python3 bench/callgrind_counts.py "$dump" "$requests" "$@"
}

echo "== per request under callgrind (wrk -t1 -c$CONNECTIONS -d${DURATION}s each; simulated caches and branch predictor)"
nginx_counts=$(measure "$nginx_pid" $NGINX_PORT "$work/nginx.out")
rampart_report=$(measure "$rampart_pid" $RAMPART_PORT "$work/rampart.out" --sites "${SITES:-15}")
rampart_counts=$(head -n1 <<<"$rampart_report")
printf '%-14s %12s %12s %16s\n' "" nginx rampart "rampart/nginx"
for key in instructions l1i_misses l1d_misses mispredicts locked; do
  n=$(tr ' ' '\n' <<<"$nginx_counts" | sed -n "s/^$key=//p")
  r=$(tr ' ' '\n' <<<"$rampart_counts" | sed -n "s/^$key=//p")
  awk -v k="$key" -v n="$n" -v r="$r" 'BEGIN {
    ratio = (n > 0) ? sprintf("%.2f", r / n) : "-";
    printf "%-14s %12.1f %12.1f %16s\n", k, n, r, ratio }'
done
echo "== where Rampart's bus-locked instructions are (per request, by function after inlining)"
tail -n +2 <<<"$rampart_report"

#!/usr/bin/env bash
# Where the proxy benchmark's ceiling is: the tiny upstream of bench/proxy.sh behind
# nginx (the plain reverse proxy of bench/proxy.sh), behind bench/floor (the least a
# tokio-based HTTP/1.1 proxy can do: one current-thread runtime, one upstream
# connection per client connection, no header work, logs or metrics) and behind
# `rampart proxy --workers 1` (access log to a file), in one run. Rounds alternate the
# three; medians of requests/s and of CPU per request split into user and system time.
# The floor against nginx says what the runtime and the kernel allow; Rampart against
# the floor says what Rampart's own work costs.
#
# Needs: nginx, wrk (Debian packages `nginx-light`, `wrk`). Loopback only.
# Usage: [RAMPART_BIN=path | PGO=1] bench/floor.sh [duration-seconds] [connections] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

DURATION=${1:-5}
CONNECTIONS=${2:-50}
ROUNDS=${3:-7}
UPSTREAM_PORT=18111
NGINX_PORT=18112
FLOOR_PORT=18113
RAMPART_PORT=18114
RAMPART_ADMIN=18115

require_tools nginx wrk taskset curl

bench_workdir

rampart_binary
cargo build --release --quiet --manifest-path bench/floor/Cargo.toml
FLOOR=bench/floor/target/release/rampart-bench-floor

upstream_and_proxy_confs "$work" $UPSTREAM_PORT $NGINX_PORT
taskset -c "$LOAD_CPU" nginx -c "$work/upstream.conf" -e "$work/upstream.error.log"
taskset -c "$PROXY_CPU" nginx -c "$work/proxy.conf" -e "$work/proxy.error.log"
taskset -c "$PROXY_CPU" "$FLOOR" 127.0.0.1:$FLOOR_PORT 127.0.0.1:$UPSTREAM_PORT &
floor_pid=$!
pids+=("$floor_pid")
RUST_LOG=warn taskset -c "$PROXY_CPU" "$RAMPART" proxy --from 127.0.0.1:$RAMPART_PORT \
  --to http://127.0.0.1:$UPSTREAM_PORT --admin 127.0.0.1:$RAMPART_ADMIN --workers 1 \
  --access-log "$work/rampart-access.log" &
rampart_pid=$!
pids+=("$rampart_pid")
for port in $NGINX_PORT $FLOOR_PORT $RAMPART_PORT; do
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:$port/" >/dev/null
done
nginx_pid=$(nginx_worker "$work/proxy.pid")

row() { printf '%-10s %10s req/s   cpu %6s us/req (user/sys %s)\n' "$@"; }
declare -A rps cpu user sys
echo "== $ROUNDS rounds of wrk -t1 -c$CONNECTIONS -d${DURATION}s (proxies on cpu $PROXY_CPU, wrk+upstream on cpu $LOAD_CPU)"
for round in $(seq 1 "$ROUNDS"); do
  for name in nginx floor rampart; do
    case $name in
      nginx) pid=$nginx_pid port=$NGINX_PORT ;;
      floor) pid=$floor_pid port=$FLOOR_PORT ;;
      rampart) pid=$rampart_pid port=$RAMPART_PORT ;;
    esac
    wrk_run "$pid" "http://127.0.0.1:$port/"
    [[ -n "$ERRORS" ]] && echo "  $name: $ERRORS"
    rps[$name]+="$RPS "
    cpu[$name]+="$CPU_US "
    user[$name]+="$CPU_USER "
    sys[$name]+="$CPU_SYS "
    row "$name #$round" "$RPS" "$CPU_US" "$CPU_SPLIT"
  done
done
declare -A med
for name in nginx floor rampart; do
  # shellcheck disable=SC2086
  med[$name]=$(median ${rps[$name]})
  # shellcheck disable=SC2086
  row "$name med" "${med[$name]}" "$(median ${cpu[$name]})" "$(median ${user[$name]})/$(median ${sys[$name]})"
done
echo "== result (medians)"
awk -v n="${med[nginx]}" -v f="${med[floor]}" -v r="${med[rampart]}" 'BEGIN {
  printf "floor/nginx: %.2f   rampart/nginx: %.2f   rampart/floor: %.2f\n", f / n, r / n, r / f }'

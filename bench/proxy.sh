#!/usr/bin/env bash
# Proxy benchmark: one tiny upstream (nginx returning a short body), hit directly,
# through nginx as a reverse proxy (1 worker, keep-alive upstream, access log on),
# through nginx set up to do the same work as Rampart (forwarding fields, request id
# both ways, a JSON access-log line with the same facts) and through
# `rampart proxy --workers 1` (metrics and access log on), in one run, with wrk.
# Rounds alternate the three; medians are reported: requests/s, p99, CPU per request,
# the Rampart/nginx ratios against both nginx set-ups, p99 added at half of Rampart's
# peak rate, and Rampart's idle RSS. Last, the same peak rounds with each proxy capped at
# CPU_BUDGET percent (default 60; 0 skips them) of its CPU, so that the proxy, not the
# load side, is the bottleneck in every run (see `at_cpu_budget` in bench/lib.sh);
# skipped, saying so, where no cgroup can be made. Each proxied run also prints what it cost
# the upstream (CPU and blocking waits a request): the upstream shares the load CPU with
# wrk, so this is what bounds the uncapped runs.
#
# Needs: nginx, wrk (Debian packages `nginx-light` or `nginx`, `wrk`). Runs on loopback only.
# Usage: [RAMPART_BIN=path | PGO=1] [CPU_BUDGET=percent] bench/proxy.sh [duration-seconds] [connections] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

DURATION=${1:-8}
CONNECTIONS=${2:-50}
ROUNDS=${3:-5}
UPSTREAM_PORT=18081
NGINX_PROXY_PORT=18082
RAMPART_PORT=18083
RAMPART_ADMIN=18084
NGINX_SAME_PORT=18085

require_tools nginx wrk taskset curl

bench_workdir

rampart_binary

upstream_and_proxy_confs "$work" $UPSTREAM_PORT $NGINX_PROXY_PORT

nginx_conf "$work/same.conf" "$work/same.pid" "$work/same.error.log" "$work/nginx-same-access.log rampart_like" \
  $NGINX_SAME_PORT $UPSTREAM_PORT "$NGINX_SAME_WORK_LOCATION" "$NGINX_SAME_WORK_LOG_FORMAT"

taskset -c "$LOAD_CPU" nginx -c "$work/upstream.conf" -e "$work/upstream.error.log"
taskset -c "$PROXY_CPU" nginx -c "$work/proxy.conf" -e "$work/proxy.error.log"
taskset -c "$PROXY_CPU" nginx -c "$work/same.conf" -e "$work/same.error.log"
RUST_LOG=warn taskset -c "$PROXY_CPU" "$RAMPART" proxy --from 127.0.0.1:$RAMPART_PORT \
  --to http://127.0.0.1:$UPSTREAM_PORT --admin 127.0.0.1:$RAMPART_ADMIN --workers 1 \
  --access-log "$work/rampart-access.log" &
rampart_pid=$!
pids+=("$rampart_pid")
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$RAMPART_PORT/" >/dev/null 2>&1 && curl -fs "http://127.0.0.1:$NGINX_PROXY_PORT/" >/dev/null 2>&1 \
    && curl -fs "http://127.0.0.1:$NGINX_SAME_PORT/" >/dev/null 2>&1 && break
  sleep 0.1
done
sleep 1
idle_rss_kb=$(ps -o rss= -p "$rampart_pid" | tr -d ' ')
nginx_pid=$(nginx_worker "$work/proxy.pid")
same_pid=$(nginx_worker "$work/same.pid")
upstream_pid=$(nginx_worker "$work/upstream.pid")

row() { printf '%-18s %10s req/s   p99 %7s ms   cpu %6s us/req (user/sys %s)%s\n' "$@"; }

echo "== peak: $ROUNDS rounds of wrk -t1 -c$CONNECTIONS -d${DURATION}s (proxy on cpu $PROXY_CPU, wrk+upstream on cpu $LOAD_CPU)"
wrk_run "$upstream_pid" "http://127.0.0.1:$UPSTREAM_PORT/"
row "upstream direct" "$RPS" "$P99" "-" "- $ERRORS"
# From here on each run also says what it cost the upstream (see wrk_run).
LOAD_PID=$upstream_pid
nginx_rps=(); nginx_cpu=(); nginx_p99=(); nginx_user=(); nginx_sys=(); nginx_load=(); rampart_load=()
rampart_rps=(); rampart_cpu=(); rampart_p99=(); rampart_user=(); rampart_sys=(); round_ratio=()
same_rps=(); same_cpu=(); same_p99=(); same_user=(); same_sys=(); same_ratio=()
for round in $(seq 1 "$ROUNDS"); do
  wrk_run "$nginx_pid" "http://127.0.0.1:$NGINX_PROXY_PORT/"
  row "nginx #$round" "$RPS" "$P99" "$CPU_US" "$CPU_SPLIT $ERRORS" "$LOAD_NOTE"
  nginx_load+=("$LOAD_US"); nginx_rps+=("$RPS"); nginx_cpu+=("$CPU_US"); nginx_p99+=("$P99"); nginx_user+=("$CPU_USER"); nginx_sys+=("$CPU_SYS")
  wrk_run "$same_pid" "http://127.0.0.1:$NGINX_SAME_PORT/"
  row "nginx same #$round" "$RPS" "$P99" "$CPU_US" "$CPU_SPLIT $ERRORS" "$LOAD_NOTE"
  same_rps+=("$RPS"); same_cpu+=("$CPU_US"); same_p99+=("$P99"); same_user+=("$CPU_USER"); same_sys+=("$CPU_SYS")
  wrk_run "$rampart_pid" "http://127.0.0.1:$RAMPART_PORT/"
  row "rampart #$round" "$RPS" "$P99" "$CPU_US" "$CPU_SPLIT $ERRORS" "$LOAD_NOTE"
  rampart_load+=("$LOAD_US"); rampart_rps+=("$RPS"); rampart_cpu+=("$CPU_US"); rampart_p99+=("$P99"); rampart_user+=("$CPU_USER"); rampart_sys+=("$CPU_SYS")
  # Each round's pair ran back to back: their ratio moves less with the host's load.
  round_ratio+=("$(ratio "$RPS" "${nginx_rps[-1]}")"); same_ratio+=("$(ratio "$RPS" "${same_rps[-1]}")")
done
n_rps=$(median "${nginx_rps[@]}"); r_rps=$(median "${rampart_rps[@]}")
n_cpu=$(median "${nginx_cpu[@]}"); r_cpu=$(median "${rampart_cpu[@]}")
s_rps=$(median "${same_rps[@]}"); s_cpu=$(median "${same_cpu[@]}")
row "nginx median" "$n_rps" "$(median "${nginx_p99[@]}")" "$n_cpu" "$(median "${nginx_user[@]}")/$(median "${nginx_sys[@]}")"
row "nginx same median" "$s_rps" "$(median "${same_p99[@]}")" "$s_cpu" "$(median "${same_user[@]}")/$(median "${same_sys[@]}")"
row "rampart median" "$r_rps" "$(median "${rampart_p99[@]}")" "$r_cpu" "$(median "${rampart_user[@]}")/$(median "${rampart_sys[@]}")"
echo "upstream CPU a request (medians; it shares the load CPU with wrk): behind nginx $(median "${nginx_load[@]}") us, behind rampart $(median "${rampart_load[@]}") us"

# Half of Rampart's peak: each connection waits so that the total rate is about half.
half_rate=$(awk -v r="$r_rps" 'BEGIN { printf "%d", r / 2 }')
delay_ms=$(awk -v c="$CONNECTIONS" -v r="$half_rate" 'BEGIN { printf "%.3f", c * 1000 / r }')
cat > "$work/paced.lua" <<LUA
function delay() return $delay_ms end
LUA
echo "== half load: about $half_rate req/s (each connection paced at ${delay_ms} ms), medians of $ROUNDS"
base=(); nhalf=(); rhalf=()
for round in $(seq 1 "$ROUNDS"); do
  wrk_run "$upstream_pid" "http://127.0.0.1:$UPSTREAM_PORT/" -s "$work/paced.lua"; base+=("$P99")
  wrk_run "$nginx_pid" "http://127.0.0.1:$NGINX_PROXY_PORT/" -s "$work/paced.lua"; nhalf+=("$P99")
  wrk_run "$rampart_pid" "http://127.0.0.1:$RAMPART_PORT/" -s "$work/paced.lua"; rhalf+=("$P99")
done
base_p99=$(median "${base[@]}"); nginx_half_p99=$(median "${nhalf[@]}"); rampart_half_p99=$(median "${rhalf[@]}")
echo "p99 at half load: upstream direct $base_p99 ms, nginx $nginx_half_p99 ms, rampart $rampart_half_p99 ms"

echo "== result"
awk -v r="$r_rps" -v n="$n_rps" 'BEGIN { printf "throughput ratio rampart/nginx (medians): %.2f\n", r / n }'
echo "throughput ratio rampart/nginx per round: ${round_ratio[*]} (median $(median "${round_ratio[@]}"))"
awk -v r="$r_cpu" -v n="$n_cpu" 'BEGIN { printf "cpu per request rampart/nginx (medians): %.2f (lower is better)\n", r / n }'
awk -v r="$r_rps" -v n="$s_rps" 'BEGIN { printf "throughput ratio rampart/nginx doing the same work (medians): %.2f\n", r / n }'
echo "throughput ratio rampart/nginx doing the same work per round: ${same_ratio[*]} (median $(median "${same_ratio[@]}"))"
awk -v r="$r_cpu" -v n="$s_cpu" 'BEGIN { printf "cpu per request rampart/nginx doing the same work (medians): %.2f (lower is better)\n", r / n }'
awk -v a="$rampart_half_p99" -v b="$base_p99" -v c="$nginx_half_p99" \
  'BEGIN { printf "p99 added at half load: rampart %.3f ms, nginx %.3f ms\n", a - b, c - b }'
echo "rampart idle RSS: $((idle_rss_kb / 1024)) MiB"
echo "rampart access-log lines: $(wc -l < "$work/rampart-access.log")"

at_cpu_budget "$nginx_pid" "$same_pid" "$rampart_pid" || exit 0
b_nginx=(); b_same=(); b_rampart=(); b_ratio=(); b_same_ratio=()
for round in $(seq 1 "$ROUNDS"); do
  budget_run b_nginx "nginx #$round" "$nginx_pid" "http://127.0.0.1:$NGINX_PROXY_PORT/"
  budget_run b_same "nginx same #$round" "$same_pid" "http://127.0.0.1:$NGINX_SAME_PORT/"
  budget_run b_rampart "rampart #$round" "$rampart_pid" "http://127.0.0.1:$RAMPART_PORT/"
  b_ratio+=("$(ratio "$RPS" "${b_nginx[-1]}")"); b_same_ratio+=("$(ratio "$RPS" "${b_same[-1]}")")
done
awk -v r="$(median "${b_rampart[@]}")" -v n="$(median "${b_nginx[@]}")" -v s="$(median "${b_same[@]}")" \
  'BEGIN { printf "at the CPU budget, throughput ratio rampart/nginx (medians): %.2f   doing the same work: %.2f\n", r / n, r / s }'
echo "at the CPU budget, rampart/nginx per round: ${b_ratio[*]} (median $(median "${b_ratio[@]}"))"
echo "at the CPU budget, rampart/nginx doing the same work per round: ${b_same_ratio[*]} (median $(median "${b_same_ratio[@]}"))"

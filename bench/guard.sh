#!/usr/bin/env bash
# Guard benchmark: the proxy benchmark's upstream behind Rampart with and without
# API-key authentication plus two rate limits on the route, and behind nginx, in one
# run with wrk. Rounds alternate the three; medians are reported (req/s, p99, CPU per
# request) with the ratios guarded/unguarded and guarded/nginx. The two Rampart routes
# match paths of the same length (`/guarded`, `/unguard`), so that what differs between
# them is the guards. Last, the same rounds with each proxy capped at CPU_BUDGET percent
# (default 60; 0 skips them) of its CPU, so that the proxy, not the load side, is the
# bottleneck (see `at_cpu_budget` in bench/lib.sh); skipped, saying so, where no cgroup
# can be made. Each run also prints what it cost the upstream (CPU and blocking waits a
# request), which shares the load CPU with wrk and so bounds the uncapped runs.
#
# With INSTRUCTIONS=1 it instead runs Rampart under callgrind (valgrind) and prints the
# user-space instructions and bus-locked instructions per request, unguarded and guarded:
# counts that, unlike time on a shared VM, do not move between runs (kernel time is not in
# them); with SITES=N also the N functions with the most bus-locked instructions.
#
# Needs: nginx, wrk (and valgrind, python3, objdump for INSTRUCTIONS=1). Loopback only.
# Usage: [CPU_BUDGET=percent] [INSTRUCTIONS=1 [SITES=N]] [RAMPART_BIN=path | PGO=1] bench/guard.sh [duration-seconds] [connections] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

DURATION=${1:-6}
CONNECTIONS=${2:-50}
ROUNDS=${3:-5}
UPSTREAM_PORT=18091
NGINX_PORT=18092
RAMPART_PORT=18093
ADMIN_PORT=18094

require_tools nginx wrk taskset curl

bench_workdir

rampart_binary

upstream_and_proxy_confs "$work" $UPSTREAM_PORT $NGINX_PORT
cat > "$work/rampart.toml" <<CONF
admin = { listen = "127.0.0.1:$ADMIN_PORT" }
log = { access_log = "$work/rampart-access.log" }
[[listeners]]
name = "public"
address = "127.0.0.1:$RAMPART_PORT"
[upstreams.app]
targets = ["http://127.0.0.1:$UPSTREAM_PORT"]
[[routes]]
name = "guarded"
match = { path_prefix = "/guarded" }
upstream = "app"
auth = { methods = ["api_key"] }
rate_limits = [{ requests = 1000000, per = "1s", key = "consumer" }, { requests = 100000000, per = "1h", key = "client_ip" }]
[[routes]]
name = "open"
match = { path_prefix = "/unguard" }
upstream = "app"
CONF

taskset -c "$LOAD_CPU" nginx -c "$work/upstream.conf" -e "$work/upstream.error.log"
taskset -c "$PROXY_CPU" nginx -c "$work/proxy.conf" -e "$work/proxy.error.log"
if [[ "${INSTRUCTIONS:-0}" == 1 ]]; then
  require_tools valgrind callgrind_control python3 objdump
  (cd "$work" && RUST_LOG=warn exec valgrind --tool=callgrind --instr-atstart=no \
    --dump-instr=yes --callgrind-out-file="$work/callgrind.out" "$RAMPART" serve --config rampart.toml --workers 1 2>"$work/valgrind.log") &
else
  (cd "$work" && RUST_LOG=warn taskset -c "$PROXY_CPU" "$RAMPART" serve --config rampart.toml --workers 1) &
fi
rampart_pid=$!
pids+=("$rampart_pid")
for _ in $(seq 1 600); do
  curl -fs "http://127.0.0.1:$ADMIN_PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
consumer=$(cd "$work" && "$RAMPART" consumers create --name bench --json --admin-url "http://127.0.0.1:$ADMIN_PORT" | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' | head -n1)
secret=$(cd "$work" && "$RAMPART" keys create --consumer "$consumer" --json --admin-url "http://127.0.0.1:$ADMIN_PORT" | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')
curl -fs -H "x-api-key: $secret" "http://127.0.0.1:$RAMPART_PORT/guarded" >/dev/null

nginx_pid=$(nginx_worker "$work/proxy.pid")
# Each run also says what it cost the upstream, which shares the load CPU with wrk (see wrk_run).
LOAD_PID=$(nginx_worker "$work/upstream.pid")

if [[ "${INSTRUCTIONS:-0}" == 1 ]]; then
  valgrind_pid=$rampart_pid
  count() { # name path -> prints instructions per request over a wrk run
    callgrind_control -i on "$valgrind_pid" >/dev/null
    callgrind_control -z "$valgrind_pid" >/dev/null
    local n
    n=$(taskset -c "$LOAD_CPU" wrk -t1 -c4 -d"${DURATION}s" -H "x-api-key: $secret" "http://127.0.0.1:$RAMPART_PORT$2" | awk '/requests in/ { print $1 }')
    callgrind_control -d "$valgrind_pid" >/dev/null
    callgrind_control -i off "$valgrind_pid" >/dev/null
    local dump ir report
    dump=$(ls -t "$work"/callgrind.out.* | head -n1)
    ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")
    report=$(python3 bench/callgrind_counts.py "$dump" "$n" ${SITES:+--sites "$SITES"})
    rm -f "$work"/callgrind.out.*
    INSTR=$((ir / n))
    printf '%-10s %8d requests %12d instructions/request %8s bus-locked/request\n' "$1" "$n" "$INSTR" \
      "$(sed -n '1s/.*locked=\([0-9.]*\).*/\1/p' <<<"$report")"
    # With SITES=N, the N functions with the most bus-locked instructions.
    tail -n +2 <<<"$report"
  }
  echo "== instructions per request under callgrind (wrk -c4 -d${DURATION}s each)"
  count unguarded /unguard; open_ir=$INSTR
  count guarded /guarded; guarded_ir=$INSTR
  awk -v o="$open_ir" -v g="$guarded_ir" 'BEGIN { printf "guards cost %d instructions/request; unguarded/guarded: %.3f\n", g - o, o / g }'
  exit 0
fi

row() { printf '%-26s %10s req/s   p99 %7s ms   cpu %6s us/req (user/sys %s)%s\n' "$@"; }

echo "== $ROUNDS rounds of wrk -t1 -c$CONNECTIONS -d${DURATION}s (proxies on cpu $PROXY_CPU, wrk+upstream on cpu $LOAD_CPU)"
n_load=(); g_load=(); n_rps=(); n_cpu=(); o_rps=(); o_cpu=(); g_rps=(); g_cpu=(); g_over_o=(); g_over_n=(); n_user=(); n_sys=(); o_user=(); o_sys=(); g_user=(); g_sys=()
for round in $(seq 1 "$ROUNDS"); do
  wrk_run "$nginx_pid" "http://127.0.0.1:$NGINX_PORT/unguard"
  row "nginx proxy #$round" "$RPS" "$P99" "$CPU_US" "$CPU_SPLIT $ERRORS" "$LOAD_NOTE"; n_load+=("$LOAD_US"); n_rps+=("$RPS"); n_cpu+=("$CPU_US"); n_user+=("$CPU_USER"); n_sys+=("$CPU_SYS")
  wrk_run "$rampart_pid" "http://127.0.0.1:$RAMPART_PORT/unguard"
  row "rampart unguarded #$round" "$RPS" "$P99" "$CPU_US" "$CPU_SPLIT $ERRORS" "$LOAD_NOTE"; o_rps+=("$RPS"); o_cpu+=("$CPU_US"); o_user+=("$CPU_USER"); o_sys+=("$CPU_SYS")
  wrk_run "$rampart_pid" "http://127.0.0.1:$RAMPART_PORT/guarded" -H "x-api-key: $secret"
  row "rampart key+2 limits #$round" "$RPS" "$P99" "$CPU_US" "$CPU_SPLIT $ERRORS" "$LOAD_NOTE"; g_load+=("$LOAD_US"); g_rps+=("$RPS"); g_cpu+=("$CPU_US"); g_user+=("$CPU_USER"); g_sys+=("$CPU_SYS")
  # A round's three runs are back to back: their ratios move less with the host's load.
  g_over_o+=("$(ratio "$RPS" "${o_rps[-1]}")"); g_over_n+=("$(ratio "$RPS" "${n_rps[-1]}")")
done
nginx_rps=$(median "${n_rps[@]}"); open_rps=$(median "${o_rps[@]}"); guarded_rps=$(median "${g_rps[@]}")
row "nginx median" "$nginx_rps" "-" "$(median "${n_cpu[@]}")" "$(median "${n_user[@]}")/$(median "${n_sys[@]}")"
row "rampart unguarded median" "$open_rps" "-" "$(median "${o_cpu[@]}")" "$(median "${o_user[@]}")/$(median "${o_sys[@]}")"
row "rampart guarded median" "$guarded_rps" "-" "$(median "${g_cpu[@]}")" "$(median "${g_user[@]}")/$(median "${g_sys[@]}")"
echo "upstream CPU a request (medians; it shares the load CPU with wrk): behind nginx $(median "${n_load[@]}") us, behind rampart guarded $(median "${g_load[@]}") us"
echo "== result (medians)"
awk -v g="$guarded_rps" -v o="$open_rps" -v n="$nginx_rps" \
  'BEGIN { printf "guarded/unguarded: %.2f   guarded/nginx: %.2f\n", g / o, g / n }'
awk -v g="$(median "${g_cpu[@]}")" -v o="$(median "${o_cpu[@]}")" -v n="$(median "${n_cpu[@]}")" \
  'BEGIN { printf "cpu per request, unguarded/guarded: %.2f   nginx/guarded: %.2f (the throughput a saturated CPU would give)\n", o / g, n / g }'
echo "per round, guarded/unguarded: ${g_over_o[*]} (median $(median "${g_over_o[@]}"))"
echo "per round, guarded/nginx: ${g_over_n[*]} (median $(median "${g_over_n[@]}"))"

at_cpu_budget "$nginx_pid" "$rampart_pid" || exit 0
bn=(); bo=(); bg=(); b_g_over_o=(); b_g_over_n=()
for round in $(seq 1 "$ROUNDS"); do
  budget_run bn "nginx proxy #$round" "$nginx_pid" "http://127.0.0.1:$NGINX_PORT/unguard"
  budget_run bo "rampart unguarded #$round" "$rampart_pid" "http://127.0.0.1:$RAMPART_PORT/unguard"
  budget_run bg "rampart key+2 limits #$round" "$rampart_pid" "http://127.0.0.1:$RAMPART_PORT/guarded" -H "x-api-key: $secret"
  b_g_over_o+=("$(ratio "$RPS" "${bo[-1]}")"); b_g_over_n+=("$(ratio "$RPS" "${bn[-1]}")")
done
awk -v g="$(median "${bg[@]}")" -v o="$(median "${bo[@]}")" -v n="$(median "${bn[@]}")" \
  'BEGIN { printf "at the CPU budget (medians), guarded/unguarded: %.2f   guarded/nginx: %.2f\n", g / o, g / n }'
echo "at the CPU budget per round, guarded/unguarded: ${b_g_over_o[*]} (median $(median "${b_g_over_o[@]}"))"
echo "at the CPU budget per round, guarded/nginx: ${b_g_over_n[*]} (median $(median "${b_g_over_n[@]}"))"

#!/usr/bin/env bash
# Proxy benchmark: one tiny upstream (nginx returning a short body), hit directly,
# through nginx as a reverse proxy (1 worker, keep-alive upstream) and through
# `rampart proxy --workers 1` (metrics and access log on), in one run, with wrk.
# Prints requests/s and p99 for each, the Rampart/nginx ratio, p99 added latency at
# half of Rampart's peak rate, and Rampart's idle RSS.
#
# Needs: nginx, wrk (Debian packages `nginx-light` or `nginx`, `wrk`). Runs on loopback only.
# Usage: bench/proxy.sh [duration-seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-10}
CONNECTIONS=${2:-50}
UPSTREAM_PORT=18081
NGINX_PROXY_PORT=18082
RAMPART_PORT=18083
RAMPART_ADMIN=18084
# The proxy under test gets core 0; wrk and the upstream share core 1.
PROXY_CPU=0
LOAD_CPU=1

for tool in nginx wrk taskset; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install nginx-light wrk util-linux)"; exit 1; }
done

work=$(mktemp -d)
cleanup() {
  [[ -n "${rampart_pid:-}" ]] && kill "$rampart_pid" 2>/dev/null || true
  for conf in upstream proxy; do
    [[ -f "$work/$conf.pid" ]] && kill "$(cat "$work/$conf.pid")" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --quiet -p rampart
RAMPART=target/release/rampart

nginx_conf() { # name port body
  cat > "$work/$1.conf" <<CONF
worker_processes 1;
pid $work/$1.pid;
error_log $work/$1.error.log warn;
events { worker_connections 4096; }
http {
  access_log $3;
  keepalive_requests 1000000;
  upstream app { server 127.0.0.1:$UPSTREAM_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$2 reuseport;
    $4
  }
}
CONF
}

nginx_conf upstream $UPSTREAM_PORT off 'location / { return 200 "hello from upstream\n"; }'
nginx_conf proxy $NGINX_PROXY_PORT "$work/nginx-access.log" \
  'location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; }'

taskset -c $LOAD_CPU nginx -c "$work/upstream.conf" -e "$work/upstream.error.log"
taskset -c $PROXY_CPU nginx -c "$work/proxy.conf" -e "$work/proxy.error.log"
RUST_LOG=warn taskset -c $PROXY_CPU "$RAMPART" proxy --from 127.0.0.1:$RAMPART_PORT \
  --to http://127.0.0.1:$UPSTREAM_PORT --admin 127.0.0.1:$RAMPART_ADMIN --workers 1 \
  --access-log "$work/rampart-access.log" &
rampart_pid=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$RAMPART_PORT/" >/dev/null 2>&1 && curl -fs "http://127.0.0.1:$NGINX_PROXY_PORT/" >/dev/null 2>&1 && break
  sleep 0.1
done
sleep 1
idle_rss_kb=$(ps -o rss= -p "$rampart_pid" | tr -d ' ')

to_ms() { # wrk latency like 812.00us / 1.20ms / 1.01s
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}

run() { # label port [lua-script] -> sets RPS P99
  local out
  local script=()
  [[ -n "${3:-}" ]] && script=(-s "$3")
  out=$(taskset -c $LOAD_CPU wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "${script[@]}" "http://127.0.0.1:$2/" 2>&1)
  RPS=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  P99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
  local errors
  errors=$(awk '/Non-2xx|Socket errors/' <<<"$out")
  printf '%-22s %12s req/s   p99 %8s ms   %s\n' "$1" "$RPS" "$P99" "$errors"
}

echo "== peak: wrk -t1 -c$CONNECTIONS -d${DURATION}s (proxy on cpu $PROXY_CPU, wrk+upstream on cpu $LOAD_CPU)"
run "upstream direct" $UPSTREAM_PORT;  direct_rps=$RPS
run "nginx proxy" $NGINX_PROXY_PORT;   nginx_rps=$RPS; nginx_p99=$P99
run "rampart proxy" $RAMPART_PORT;     rampart_rps=$RPS; rampart_p99=$P99

# Half of Rampart's peak: each connection waits so that the total rate is about half.
half_rate=$(awk -v r="$rampart_rps" 'BEGIN { printf "%d", r / 2 }')
delay_ms=$(awk -v c="$CONNECTIONS" -v r="$half_rate" 'BEGIN { printf "%.3f", c * 1000 / r }')
cat > "$work/paced.lua" <<LUA
function delay() return $delay_ms end
LUA
echo "== half load: about $half_rate req/s (each connection paced at ${delay_ms} ms)"
run "upstream direct" $UPSTREAM_PORT "$work/paced.lua"; base_p99=$P99
run "nginx proxy" $NGINX_PROXY_PORT "$work/paced.lua";  nginx_half_p99=$P99
run "rampart proxy" $RAMPART_PORT "$work/paced.lua";    rampart_half_p99=$P99

echo "== result"
awk -v r="$rampart_rps" -v n="$nginx_rps" 'BEGIN { printf "throughput ratio rampart/nginx: %.2f\n", r / n }'
awk -v a="$rampart_half_p99" -v b="$base_p99" -v c="$nginx_half_p99" \
  'BEGIN { printf "p99 added at half load: rampart %.3f ms, nginx %.3f ms\n", a - b, c - b }'
echo "rampart idle RSS: $((idle_rss_kb / 1024)) MiB"
echo "rampart access-log lines: $(wc -l < "$work/rampart-access.log")"

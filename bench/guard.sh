#!/usr/bin/env bash
# Guard benchmark: the proxy benchmark's upstream behind Rampart with and without
# API-key authentication plus two rate limits on the route, and behind nginx, in one
# run with wrk. Prints req/s and p99 for each and the ratios guarded/unguarded and
# guarded/nginx.
#
# Needs: nginx, wrk. Loopback only. Usage: bench/guard.sh [duration-seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-10}
CONNECTIONS=${2:-50}
UPSTREAM_PORT=18091
NGINX_PORT=18092
RAMPART_PORT=18093
ADMIN_PORT=18094
PROXY_CPU=0
LOAD_CPU=1

for tool in nginx wrk taskset curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool"; exit 1; }
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
RAMPART=$PWD/target/release/rampart

cat > "$work/upstream.conf" <<CONF
worker_processes 1;
pid $work/upstream.pid;
error_log $work/upstream.error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UPSTREAM_PORT reuseport; location / { return 200 "hello from upstream\n"; } } }
CONF
cat > "$work/proxy.conf" <<CONF
worker_processes 1;
pid $work/proxy.pid;
error_log $work/proxy.error.log warn;
events { worker_connections 4096; }
http { access_log $work/nginx-access.log; keepalive_requests 1000000;
  upstream app { server 127.0.0.1:$UPSTREAM_PORT; keepalive 128; }
  server { listen 127.0.0.1:$NGINX_PORT reuseport;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host \$host; } } }
CONF
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
upstream = "app"
CONF

taskset -c $LOAD_CPU nginx -c "$work/upstream.conf" -e "$work/upstream.error.log"
taskset -c $PROXY_CPU nginx -c "$work/proxy.conf" -e "$work/proxy.error.log"
(cd "$work" && RUST_LOG=warn taskset -c $PROXY_CPU "$RAMPART" serve --config rampart.toml --workers 1) &
rampart_pid=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$ADMIN_PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
consumer=$(cd "$work" && "$RAMPART" consumers create --name bench --json --admin-url "http://127.0.0.1:$ADMIN_PORT" | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' | head -n1)
secret=$(cd "$work" && "$RAMPART" keys create --consumer "$consumer" --json --admin-url "http://127.0.0.1:$ADMIN_PORT" | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')
curl -fs -H "x-api-key: $secret" "http://127.0.0.1:$RAMPART_PORT/guarded" >/dev/null

to_ms() {
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}
run() { # label url [header]
  local out
  local header=()
  [[ -n "${3:-}" ]] && header=(-H "$3")
  out=$(taskset -c $LOAD_CPU wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "${header[@]}" "$2" 2>&1)
  RPS=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  P99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
  printf '%-26s %12s req/s   p99 %8s ms   %s\n' "$1" "$RPS" "$P99" "$(awk '/Non-2xx|Socket errors/' <<<"$out")"
}

echo "== wrk -t1 -c$CONNECTIONS -d${DURATION}s (proxies on cpu $PROXY_CPU, wrk+upstream on cpu $LOAD_CPU)"
run "nginx proxy" "http://127.0.0.1:$NGINX_PORT/";                  nginx_rps=$RPS
run "rampart unguarded" "http://127.0.0.1:$RAMPART_PORT/";           open_rps=$RPS
run "rampart key + 2 limits" "http://127.0.0.1:$RAMPART_PORT/guarded" "x-api-key: $secret"; guarded_rps=$RPS
echo "== result"
awk -v g="$guarded_rps" -v o="$open_rps" -v n="$nginx_rps" \
  'BEGIN { printf "guarded/unguarded: %.2f   guarded/nginx: %.2f\n", g / o, g / n }'

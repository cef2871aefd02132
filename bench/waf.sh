#!/usr/bin/env bash
# WAF benchmark: the same OWASP CRS (v4, paranoia level 1, anomaly threshold 5, blocking)
# in Rampart and in nginx + ModSecurity v3 (Debian's libnginx-mod-http-modsecurity), in
# one run, in front of the same tiny upstream. Measures a clean request and SQLi, XSS and
# RCE attacks with wrk, and prints the Rampart/ModSecurity throughput ratio for each; first,
# the engine's own cost per request in process.
#
# Needs: nginx, libnginx-mod-http-modsecurity, wrk; the CRS rules (../shared/crs, or
# set CRS_DIR). ENGINE_BENCH=0 skips the in-process measurement.
# Usage: [RAMPART_BIN=path | PGO=1] [ENGINE_BENCH=0] bench/waf.sh [duration-seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

DURATION=${1:-8}
CONNECTIONS=${2:-50}
CRS_DIR=${CRS_DIR:-$(cd ../shared/crs 2>/dev/null && pwd || true)}
MODSEC_MODULE=/usr/lib/nginx/modules/ngx_http_modsecurity_module.so
UPSTREAM_PORT=18101
NGINX_PORT=18102
RAMPART_PORT=18103
ADMIN_PORT=18104

require_tools nginx wrk taskset curl
[[ -f "$MODSEC_MODULE" ]] || { echo "missing $MODSEC_MODULE (apt-get install libnginx-mod-http-modsecurity)"; exit 1; }
[[ -d "$CRS_DIR/rules" ]] || { echo "CRS rules not found; set CRS_DIR"; exit 1; }

bench_workdir

rampart_binary

if [[ "${ENGINE_BENCH:-1}" != 0 ]]; then
  echo "== in-process (the engine alone, one core)"
  RAMPART_SHARED_DIR=$(dirname "$CRS_DIR") cargo bench --quiet -p rampart-waf --bench crs -- --noplot 2>&1 | grep -E "^(crs-pl1|libinjection)/|time:|compiled"
fi

# One entry file for both engines: blocking mode, the CRS setup, every rule file.
cat > "$work/crs.conf" <<CONF
SecRuleEngine On
SecRequestBodyAccess On
SecRequestBodyLimit 131072
SecAction "id:900000,phase:1,pass,nolog,setvar:tx.blocking_paranoia_level=1"
Include $CRS_DIR/crs-setup.conf.example
Include $CRS_DIR/rules/*.conf
CONF

cat > "$work/upstream.conf" <<CONF
worker_processes 1;
pid $work/upstream.pid;
error_log $work/upstream.error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UPSTREAM_PORT reuseport; location / { return 200 "hello from upstream\n"; } } }
CONF
cat > "$work/modsec.conf" <<CONF
load_module $MODSEC_MODULE;
worker_processes 1;
pid $work/modsec.pid;
error_log $work/modsec.error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream app { server 127.0.0.1:$UPSTREAM_PORT; keepalive 128; }
  server { listen 127.0.0.1:$NGINX_PORT reuseport;
    modsecurity on;
    modsecurity_rules_file $work/crs.conf;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
cat > "$work/rampart.toml" <<CONF
admin = { listen = "127.0.0.1:$ADMIN_PORT" }
log = { access_log = "off" }
[[listeners]]
name = "public"
address = "127.0.0.1:$RAMPART_PORT"
[upstreams.app]
targets = ["http://127.0.0.1:$UPSTREAM_PORT"]
[[routes]]
name = "crs"
upstream = "app"
waf = { rules = "$work/crs.conf", paranoia = 1 }
CONF

taskset -c $LOAD_CPU nginx -c "$work/upstream.conf" -e "$work/upstream.error.log"
taskset -c $PROXY_CPU nginx -c "$work/modsec.conf" -e "$work/modsec.error.log"
(cd "$work" && RUST_LOG=error taskset -c $PROXY_CPU "$RAMPART" serve --config rampart.toml --workers 1) &
rampart_pid=$!
pids+=("$rampart_pid")
for _ in $(seq 1 200); do
  curl -fs "http://127.0.0.1:$ADMIN_PORT/healthz" >/dev/null 2>&1 && curl -fs "http://127.0.0.1:$NGINX_PORT/" >/dev/null 2>&1 && break
  sleep 0.1
done

declare -A CASES=(
  [clean]="/products?id=42&sort=price"
  [sqli]="/products?id=1%27%20UNION%20SELECT%20password%20FROM%20users--"
  [xss]="/search?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E"
  [rce]="/run?cmd=;cat%20/etc/passwd"
)
run() { # port path -> sets RPS, STATUS
  STATUS=$(curl -s -o /dev/null -w '%{http_code}' -H 'User-Agent: Mozilla/5.0' -H 'Accept: text/html' "http://127.0.0.1:$1$2")
  local out
  out=$(taskset -c $LOAD_CPU wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -H 'User-Agent: Mozilla/5.0' -H 'Accept: text/html' "http://127.0.0.1:$1$2" 2>&1)
  RPS=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
}

echo "== CRS $(basename "$CRS_DIR") PL1 blocking; wrk -t1 -c$CONNECTIONS -d${DURATION}s; engines on cpu $PROXY_CPU, wrk+upstream on cpu $LOAD_CPU"
printf '%-6s %22s %22s %8s\n' case "nginx+ModSecurity" "rampart" ratio
for name in clean sqli xss rce; do
  run $NGINX_PORT "${CASES[$name]}"; m_rps=$RPS; m_status=$STATUS
  run $RAMPART_PORT "${CASES[$name]}"; r_rps=$RPS; r_status=$STATUS
  printf '%-6s %14s req/s %3s %14s req/s %3s %8s\n' "$name" "$m_rps" "$m_status" "$r_rps" "$r_status" \
    "$(awk -v a="$r_rps" -v b="$m_rps" 'BEGIN { printf "%.2f", a / b }')"
done

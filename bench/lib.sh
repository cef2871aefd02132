# Shared helpers for the benchmark scripts (sourced, not run).
#
# On a shared 2-core VM one wrk run can swing by ±30%, so every comparison runs in
# rounds that alternate the contenders and reports medians. Besides requests/s,
# each run measures what the process under test spent in CPU per request (user +
# system time from /proc, all its threads), which depends far less on the load
# generator than throughput does.

PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

require_tools() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install nginx-light wrk curl util-linux)"; exit 1; }
  done
}

# nginx_conf FILE PID_FILE ERROR_LOG ACCESS_LOG PORT UPSTREAM_PORT LOCATION_BODY [HTTP_DIRECTIVES]
nginx_conf() {
  cat > "$1" <<CONF
worker_processes 1;
pid $2;
error_log $3 warn;
events { worker_connections 4096; }
http {
  ${8:-}
  access_log $4;
  keepalive_requests 1000000;
  upstream app { server 127.0.0.1:$6; keepalive 128; }
  server {
    listen 127.0.0.1:$5 reuseport;
    $7
  }
}
CONF
}

# bench_workdir: sets `work` to a fresh temporary directory and `pids` to an empty list;
# on exit every process in `pids` and every nginx with a pid file in `work` is stopped
# and `work` removed.
bench_workdir() {
  work=$(mktemp -d)
  pids=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  local pid pid_file
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid_file in "$work"/*.pid; do
    [[ -f "$pid_file" ]] && kill "$(cat "$pid_file")" 2>/dev/null || true
  done
  if [[ -n "${BUDGET_GROUP:-}" ]]; then
    for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$BUDGET_GROUP" 2>/dev/null && break; sleep 0.1; done
  fi
  rm -rf "$work"
}

# CPU budget. With the proxy's CPU to itself, the faster proxy can outrun the load side
# (wrk and the upstream share one CPU), and its throughput then measures the load side.
# Capping each proxy at the same share of its CPU (a cgroup CPU quota) makes the proxy
# the bottleneck in every run, so requests/s measures what the proxy does with a fixed
# CPU budget, which is what sizing a gateway is about.
#
# at_cpu_budget PID... -> moves each process (all its threads) into a new cgroup limited
# to CPU_BUDGET% (default 60) of one CPU (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us`),
# remembered in BUDGET_GROUP for the cleanup, and announces the capped rounds. Returns 1,
# having said why, when CPU_BUDGET=0 or no such cgroup can be made (needs root and the
# cpu controller). p99 is not worth showing under a cap: it is the quota's pauses.
at_cpu_budget() {
  local percent=${CPU_BUDGET:-60} dir="" pid
  BUDGET_GROUP=""
  if [[ "$percent" == 0 ]]; then
    echo "== CPU budget skipped (CPU_BUDGET=0)"
    return 1
  fi
  local quota=$(( percent * 1000 ))
  if [[ -w /sys/fs/cgroup/cgroup.subtree_control ]] && grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
    echo +cpu > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
    dir=/sys/fs/cgroup/rampart-bench-$$
    mkdir "$dir" 2>/dev/null && echo "$quota 100000" 2>/dev/null > "$dir/cpu.max" && BUDGET_GROUP=$dir
  elif [[ -w /sys/fs/cgroup/cpu ]]; then
    dir=/sys/fs/cgroup/cpu/rampart-bench-$$
    mkdir "$dir" 2>/dev/null && echo 100000 2>/dev/null > "$dir/cpu.cfs_period_us" \
      && echo "$quota" 2>/dev/null > "$dir/cpu.cfs_quota_us" && BUDGET_GROUP=$dir
  fi
  if [[ -z "$BUDGET_GROUP" ]]; then
    [[ -z "$dir" ]] || rmdir "$dir" 2>/dev/null || true
    echo "== CPU budget skipped: cannot create a cgroup with a CPU quota (needs root and the cpu controller)"
    return 1
  fi
  for pid in "$@"; do echo "$pid" > "$BUDGET_GROUP/cgroup.procs"; done
  echo "== at a fixed CPU budget: each proxy capped at ${percent}% of cpu $PROXY_CPU, $ROUNDS rounds"
}

# budget_run ARRAY LABEL PID URL [wrk args...] -> one capped wrk_run: prints its line
# through the calling script's `row` (without p99) and appends its requests/s to ARRAY
budget_run() {
  local -n into=$1
  local label=$2
  shift 2
  wrk_run "$@"
  row "$label" "$RPS" "-" "$CPU_US" "$CPU_SPLIT $ERRORS" "$LOAD_NOTE"
  into+=("$RPS")
}

ratio() { # a b -> a / b with three decimals
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'
}

# Sets RAMPART to the binary under test: RAMPART_BIN when given (a binary built
# elsewhere, for A/B comparisons of two builds); with PGO=1 the profile-guided production
# build of scripts/build-pgo.sh; else a fresh plain release build. Says which.
rampart_binary() {
  if [[ -n "${RAMPART_BIN:-}" ]]; then
    RAMPART=$(realpath "$RAMPART_BIN")
  elif [[ "${PGO:-0}" == 1 ]]; then
    RAMPART=$(scripts/build-pgo.sh | tail -n1)
  else
    cargo build --release --quiet -p rampart
    RAMPART=$(realpath target/release/rampart)
  fi
  echo "== binary under test: $RAMPART"
}

# upstream_and_proxy_confs DIR UPSTREAM_PORT PROXY_PORT: DIR/upstream.conf, the tiny
# upstream (nginx returning a short body), and DIR/proxy.conf, nginx as a plain reverse
# proxy to it (access log to DIR/nginx-access.log); pid and error-log files beside them.
upstream_and_proxy_confs() {
  nginx_conf "$1/upstream.conf" "$1/upstream.pid" "$1/upstream.error.log" off \
    "$2" "$2" 'location / { return 200 "hello from upstream\n"; }'
  nginx_conf "$1/proxy.conf" "$1/proxy.pid" "$1/proxy.error.log" "$1/nginx-access.log" \
    "$3" "$2" "$NGINX_PROXY_LOCATION"
}

# The location block of a plain nginx reverse proxy to the `app` upstream.
NGINX_PROXY_LOCATION='location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; }'

# nginx set up to do what Rampart does by default on a proxied request: the same
# forwarding fields upstream (X-Forwarded-For/-Proto/-Host and Forwarded), a request id
# sent upstream and returned to the client, and a JSON access-log line with the same
# facts (request id, client, method, host, path, protocol, upstream, status, bytes,
# durations). Used as a second, like-for-like peer.
NGINX_SAME_WORK_LOCATION='location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $scheme; proxy_set_header X-Forwarded-Host $http_host; proxy_set_header Forwarded "for=$remote_addr;proto=$scheme;host=$http_host"; proxy_set_header X-Request-Id $request_id; add_header X-Request-Id $request_id always; }'
NGINX_SAME_WORK_LOG_FORMAT="log_format rampart_like escape=json '{\"time\":\"\$time_iso8601\",\"request_id\":\"\$request_id\",\"listener\":\"proxy\",\"client\":\"\$remote_addr:\$remote_port\",\"method\":\"\$request_method\",\"host\":\"\$host\",\"path\":\"\$uri\",\"protocol\":\"\$server_protocol\",\"route\":\"proxy\",\"upstream\":\"app\",\"target\":\"\$upstream_addr\",\"status\":\$status,\"bytes_sent\":\$body_bytes_sent,\"phases_ms\":{\"upstream\":\$upstream_response_time},\"duration_ms\":\$request_time}';"

to_ms() { # wrk latency like 812.00us / 1.20ms / 1.01s
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}

cpu_ticks() { # pid -> "user system" clock ticks of every thread
  awk '{ print $14, $15 }' "/proc/$1/stat"
}

sleeps() { # pid -> times its main thread has blocked (voluntary context switches)
  awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$1/status"
}

# wrk_run PID URL [wrk args...] -> sets RPS, P99 (ms), CPU_US (µs of CPU per request
# spent by PID, user + system), CPU_USER and CPU_SYS (its parts), CPU_SPLIT
# ("user/system"), ERRORS. With LOAD_PID set (the upstream's worker, which shares the
# load CPU with wrk) also LOAD_US and LOAD_SLEEPS, that process's CPU time and blocking
# waits per request, and LOAD_NOTE, both as text: what serving behind the proxy under
# test costs the load side, which limits the uncapped runs.
wrk_run() {
  local pid=$1 url=$2 out before after requests load_before load_after slept_before slept_after
  shift 2
  if [[ -n "${LOAD_PID:-}" ]]; then
    load_before=$(cpu_ticks "$LOAD_PID")
    slept_before=$(sleeps "$LOAD_PID")
  fi
  before=$(cpu_ticks "$pid")
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" "$url" 2>&1)
  after=$(cpu_ticks "$pid")
  requests=$(awk '/requests in/ { print $1 }' <<<"$out")
  LOAD_NOTE=""
  if [[ -n "${LOAD_PID:-}" ]]; then
    load_after=$(cpu_ticks "$LOAD_PID")
    slept_after=$(sleeps "$LOAD_PID")
    read -r LOAD_US LOAD_SLEEPS < <(awk -v b="$load_before" -v a="$load_after" -v s0="$slept_before" -v s1="$slept_after" \
      -v hz="$(getconf CLK_TCK)" -v r="${requests:-0}" \
      'BEGIN { split(b, x, " "); split(a, y, " ");
               if (r > 0) printf "%.1f %.3f\n", (y[1] - x[1] + y[2] - x[2]) / hz * 1e6 / r, (s1 - s0) / r; else print "nan nan" }')
    LOAD_NOTE="   upstream $LOAD_US us/req, $LOAD_SLEEPS sleeps/req"
  fi
  RPS=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  P99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
  read -r CPU_US CPU_USER CPU_SYS < <(awk -v b="$before" -v a="$after" -v hz="$(getconf CLK_TCK)" -v r="${requests:-0}" \
    'BEGIN { split(b, x, " "); split(a, y, " "); u = (y[1] - x[1]) / hz * 1e6; s = (y[2] - x[2]) / hz * 1e6;
             if (r > 0) printf "%.1f %.1f %.1f\n", (u + s) / r, u / r, s / r; else print "nan nan nan" }')
  CPU_SPLIT="$CPU_USER/$CPU_SYS"
  ERRORS=$(awk '/Non-2xx|Socket errors/' <<<"$out" | tr '\n' ' ')
}

median() { # numbers... -> the median
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# nginx_worker MASTER_PID_FILE -> the worker's pid
nginx_worker() {
  pgrep -P "$(cat "$1")" | head -n1
}

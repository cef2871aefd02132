#!/usr/bin/env bash
# Audit log benchmark: durable appends/s with 1 and 16 concurrent writers, and the
# latency of an inclusion proof, in-process. The peer is PostgreSQL doing the same
# appends as committed INSERTs (synchronous_commit on) into one table, in the same run,
# when a database is reachable (RAMPART_BENCH_DATABASE_URL, default the local `test` db).
# Usage: bench/audit.sh [seconds-per-case]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_CASE=${1:-5}
export RAMPART_BENCH_DATABASE_URL=${RAMPART_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  echo "PostgreSQL is not reachable: running without the peer"
  unset RAMPART_BENCH_DATABASE_URL
fi
echo "== audit log, $(nproc) cores, data in $(df -h "${TMPDIR:-/tmp}" | awk 'NR==2 {print $1}')"
cargo run --release --quiet -p rampart-audit --example audit_bench -- "$SECONDS_PER_CASE"

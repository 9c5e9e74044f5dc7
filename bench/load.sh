#!/usr/bin/env bash
# Benchmark: the coordinator under load (issue #13 item 7). A coordinator on
# a scratch store and one thinfarm-worker --noop (its slots answer every job
# at once with a tiny object, through the normal result path) as separate
# processes on tcp loopback, and thinfarm-loadgen: CLIENTS concurrent clients,
# each its own connection, submitting sessions of JOBS distinct jobs one after
# the other for SECONDS. Prints jobs lost / duplicated / failed (each must be
# 0), jobs/s, submit-to-result p50/p99, and the coordinator's RSS (growth
# after warm-up, a tenth of the run) and CPU time, read from /proc.
#
# usage: bench/load.sh [CLIENTS] [JOBS] [SECONDS] [SLOTS]   (default 200 300 300 64)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(readlink -f "${THINFARM_BIN:-build/bin}")
CLIENTS=${1:-200}
JOBS=${2:-300}
SECONDS_=${3:-300}
SLOTS=${4:-64}
PORT=${PORT:-7792}
source tests/load/farm.sh
TMP=$(mktemp -d)
pids=()
trap bench_farm_stop EXIT
start_bench_farm "tcp://127.0.0.1:$PORT" 1 --insecure -- --slots "$SLOTS" --noop
echo "load: 1 worker --noop with $SLOTS slots, $(nproc) cores, tcp loopback, load average $(cut -d' ' -f1 /proc/loadavg)"
status=0
"$BIN/thinfarm-loadgen" --coordinator "tcp://127.0.0.1:$PORT" --toolchain "$("$BIN/thinfarm-backend" --identity)" \
  --clients "$CLIENTS" --jobs "$JOBS" --seconds "$SECONDS_" --coordinator-pid "$COORD" || status=$?
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
grep -v 'registered' "$TMP/coordinator.log" | tail -n 5 >&2 || true
exit $status

#!/usr/bin/env bash
# Benchmark: the coordinator's dispatch rate with no-op jobs on loopback.
# A coordinator and one worker (its slots answer no-op jobs at once, no
# backend child) as separate processes on tcp://127.0.0.1, and the benchmark
# client keeping sessions of no-op jobs in flight. Prints jobs/s and the
# p50/p99 latency from submission to result.
#
# usage: bench/dispatch.sh [JOBS] [SLOTS]   (default 200000 jobs, 8 slots)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(readlink -f "${THINFARM_BIN:-build/bin}")
JOBS=${1:-200000}
SLOTS=${2:-8}
PORT=${PORT:-7791}
source tests/load/farm.sh
TMP=$(mktemp -d)
pids=()
trap bench_farm_stop EXIT
start_bench_farm "tcp://127.0.0.1:$PORT" 1 --insecure -- --slots "$SLOTS"
echo "dispatch: $JOBS no-op jobs, 1 worker with $SLOTS slots, $(nproc) cores, tcp loopback"
"$BIN/thinfarm-dispatch-bench" --coordinator "tcp://127.0.0.1:$PORT" --jobs "$JOBS" \
  --toolchain "$("$BIN/thinfarm-backend" --identity)" "${@:3}"

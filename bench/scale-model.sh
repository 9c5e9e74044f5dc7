#!/usr/bin/env bash
# Benchmark: the scale model (issue #13 item 7). For each size (64, 256 and
# 1024 slots), a coordinator on a scratch store and SIZE/64 thinfarm-worker
# processes of 64 slots each with --simulate-costs (each slot sleeps for the
# job's measured cost, bench/data/vmlinux-o-costs.txt, then answers with a
# tiny object through the normal result path; never cached), and
# thinfarm-loadgen submitting one session of vmlinux.o's 629 jobs with their
# cost() estimates, as thinfarm-ld would. Prints, per size, the backend
# phase's makespan (submission to last result) against the lower bound
# max(sum/slots, longest job), the makespan of an LPT schedule of the true
# costs, and of a list schedule in the scheduler's cost() order, and the
# coordinator's CPU time over the link (/proc/PID/stat).
#
# usage: bench/scale-model.sh [SIZES...]   (default 64 256 1024; multiples of 64)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(readlink -f "${THINFARM_BIN:-build/bin}")
COSTS=$(readlink -f "${COSTS:-bench/data/vmlinux-o-costs.txt}")
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(64 256 1024)
PORT=${PORT:-7793}
source tests/load/farm.sh
TOOLCHAIN=$("$BIN/thinfarm-backend" --identity)
echo "scale model: $(grep -vc '^#' "$COSTS") jobs from $COSTS, $(nproc) cores, load average $(cut -d' ' -f1 /proc/loadavg)"
for size in "${SIZES[@]}"; do
  TMP=$(mktemp -d)
  pids=()
  FARM_WAIT=200 start_bench_farm "tcp://127.0.0.1:$PORT" $((size / 64)) --insecure --probation 0 \
    --verify-fraction 0 --max-connections 4096 -- --slots 64 --simulate-costs "$COSTS"
  status=0
  "$BIN/thinfarm-loadgen" --coordinator "tcp://127.0.0.1:$PORT" --toolchain "$TOOLCHAIN" \
    --costs "$COSTS" --slots "$size" --coordinator-pid "$COORD" || status=$?
  bench_farm_stop
  [ "$status" = 0 ] || exit "$status"
done

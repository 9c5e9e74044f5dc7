#!/usr/bin/env bash
# The load path, kept from rotting (the long runs are bench/load.sh and
# bench/scale-model.sh): a real coordinator, benchmark workers and
# thinfarm-loadgen as separate processes over ipc://.
#   noop:      20 clients x sessions of 200 jobs for a few seconds against a
#              --noop worker: every job answered once (0 lost, 0 duplicated).
#   simulated: one session of a small cost table against two
#              --simulate-costs workers: every job answered once, and the
#              makespan no shorter than the lower bound (the slots did sleep).
#   unknown:   a module the workers' table lacks fails its job, and the load
#              generator says so (exit 1, "failed").
# usage: load.sh CASE   (BIN: the build's bin directory)
set -euo pipefail
BIN=$(readlink -f "${BIN:-$(dirname "$0")/../../build/bin}")
source "$(dirname "$0")/farm.sh"
TMP=$(mktemp -d)
pids=()
trap bench_farm_stop EXIT
fail() { echo "FAIL: $*" >&2; cat "$TMP"/*.log >&2 2> /dev/null || true; exit 1; }
ADDR="ipc://$TMP/coordinator.sock"
TOOLCHAIN=$("$BIN/thinfarm-backend" --identity)

start_farm() { # WORKERS WORKER-FLAGS...
  local workers=$1
  shift
  start_bench_farm "$ADDR" "$workers" --probation 0 --verify-fraction 0 -- "$@" || fail "a worker did not register"
}

# A table of 40 modules, 10 to 400 ms, sizes not in the same order as times.
table() {
  for i in $(seq 40); do
    printf '%.3f %d mod%d.o\n' "$(echo "0.01 * $i" | bc -l)" $(((i * 37) % 41 * 1000 + 500)) "$i"
  done
}

case "$1" in
noop)
  start_farm 1 --slots 16 --noop
  "$BIN/thinfarm-loadgen" --coordinator "$ADDR" --toolchain "$TOOLCHAIN" --clients 20 --jobs 200 \
    --seconds 4 --coordinator-pid "$COORD" > "$TMP/out" || fail "loadgen: $(cat "$TMP/out")"
  cat "$TMP/out"
  grep -Eq ' [1-9][0-9]* answered: 0 lost, 0 duplicated, 0 failed' "$TMP/out" || fail "lost or duplicated jobs"
  ;;
simulated)
  table > "$TMP/costs"
  start_farm 2 --slots 4 --simulate-costs "$TMP/costs"
  "$BIN/thinfarm-loadgen" --coordinator "$ADDR" --toolchain "$TOOLCHAIN" --costs "$TMP/costs" \
    --slots 8 --coordinator-pid "$COORD" > "$TMP/out" || fail "loadgen: $(cat "$TMP/out")"
  cat "$TMP/out"
  grep -q '0 lost, 0 duplicated, 0 failed' "$TMP/out" || fail "lost or duplicated jobs"
  ratio=$(sed -n 's/.*bound [0-9.]* s (\([0-9.]*\)x).*/\1/p' "$TMP/out")
  [ -n "$ratio" ] && (($(echo "$ratio >= 1" | bc -l))) || fail "makespan shorter than the bound: $ratio"
  ;;
unknown)
  table > "$TMP/costs"
  head -n 20 "$TMP/costs" > "$TMP/short"
  start_farm 1 --slots 8 --simulate-costs "$TMP/short"
  if "$BIN/thinfarm-loadgen" --coordinator "$ADDR" --toolchain "$TOOLCHAIN" --costs "$TMP/costs" \
    --slots 8 > "$TMP/out"; then
    fail "a module without a simulated cost was answered: $(cat "$TMP/out")"
  fi
  cat "$TMP/out"
  grep -q ' 20 failed' "$TMP/out" || fail "expected 20 failed jobs"
  grep -q 'no simulated cost for module' "$TMP/out" || fail "the failure does not say why"
  ;;
*) fail "unknown case $1" ;;
esac
echo "PASS: load.$1"

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
TMP=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done; wait 2> /dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; cat "$TMP"/*.log >&2 2> /dev/null || true; exit 1; }
ADDR="ipc://$TMP/coordinator.sock"
TOOLCHAIN=$("$BIN/thinfarm-backend" --identity)

start_farm() { # WORKER-ARGS...
  "$BIN/thinfarm-coordinator" --listen "$ADDR" --store "$TMP/store" --probation 0 --verify-fraction 0 \
    2> "$TMP/coordinator.log" &
  pids+=($!)
  COORD=$!
  local n=0 args
  for args in "$@"; do
    n=$((n + 1))
    # shellcheck disable=SC2086 # word splitting of the worker's arguments is wanted
    "$BIN/thinfarm-worker" --coordinator "$ADDR" --store "$TMP/w$n" --name "w$n" $args 2> "$TMP/w$n.log" &
    pids+=($!)
  done
  for ((i = 1; i <= n; i++)); do
    for _ in $(seq 100); do grep -q registered "$TMP/w$i.log" 2> /dev/null && break; sleep 0.1; done
    grep -q registered "$TMP/w$i.log" || fail "worker $i did not register"
  done
}

# A table of 40 modules, 10 to 400 ms, sizes not in the same order as times.
table() {
  for i in $(seq 40); do
    printf '%.3f %d mod%d.o\n' "$(echo "0.01 * $i" | bc -l)" $(((i * 37) % 41 * 1000 + 500)) "$i"
  done
}

case "$1" in
noop)
  start_farm "--slots 16 --noop"
  "$BIN/thinfarm-loadgen" --coordinator "$ADDR" --toolchain "$TOOLCHAIN" --clients 20 --jobs 200 \
    --seconds 4 --coordinator-pid "$COORD" > "$TMP/out" || fail "loadgen: $(cat "$TMP/out")"
  cat "$TMP/out"
  grep -Eq ' [1-9][0-9]* answered: 0 lost, 0 duplicated, 0 failed' "$TMP/out" || fail "lost or duplicated jobs"
  ;;
simulated)
  table > "$TMP/costs"
  start_farm "--slots 4 --simulate-costs $TMP/costs" "--slots 4 --simulate-costs $TMP/costs"
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
  start_farm "--slots 8 --simulate-costs $TMP/short"
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

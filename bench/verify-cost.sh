#!/usr/bin/env bash
# Benchmark: the farm against stock ld.lld-19 with everything issue #12 added
# (CURVE on every connection, backends in bubblewrap, results verified), and
# what result verification costs a link on a farm past probation. The test
# kernel's vmlinux.o link, in rounds of three: stock ld.lld-19, and through the
# namespace farm (tests/kernel/farm-net.sh: two workers, one slot each) with
# the coordinator at --verify-fraction 0 (nothing checked) and at FRACTION
# (default 0.02, the default); which goes first rotates.
# Both run with --probation 0, as a farm whose workers passed probation long
# ago. Every run starts a fresh coordinator store, so every backend job runs
# (no action cache, no link memo); the workers keep their stores (the bitcode
# is uploaded once). Outputs are compared with stock ld.lld-19's.
#
# usage: bench/verify-cost.sh [ROUNDS] [FRACTION]   (root; default 5, 0.02; needs the kernel test's tree)
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${1:-5}
FRACTION=${2:-0.02}
TFLD=$(readlink -f "${THINFARM_LD:-build/bin/thinfarm-ld}")
BIN=$(dirname "$TFLD")
OUT=$(readlink -f "${THINFARM_KERNEL_WORK:-build/kernel-work}")/out
say() { echo "verify-cost: $*" >&2; }
fail() { echo "verify-cost: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (network namespaces)"
[ -f "$OUT/vmlinux.a" ] || fail "no built kernel in $OUT: run the kernel test first"
source tests/kernel/farm-net.sh
source tests/kernel/vmlinux-o-cmd.sh
vmlinux_o_args "$OUT"
DIR=$(mktemp -d /dev/shm/thinfarm-verify-bench-XXXXXX)
trap 'farm_cleanup; rm -rf "$DIR"' EXIT
farm_network || fail "cannot set up the namespaces"
start_farm "$DIR"
(cd "$OUT" && ld.lld-19 "${VMLINUX_O_ARGS[@]}" -o "$DIR/stock.o")

# restart_coordinator FRACTION: a fresh coordinator (empty store) with that
# fraction, and both workers registered with it again.
restart_coordinator() {
  local i
  pkill -TERM -f -- "--store $DIR/coordinator-store" || true
  for ((i = 0; i < 100; i++)); do
    pgrep -f -- "--store $DIR/coordinator-store" > /dev/null || break
    sleep 0.1
  done
  rm -rf "$DIR/coordinator-store"
  start_daemon c "$DIR/coordinator.log" "listening on" \
    "$BIN/thinfarm-coordinator" --listen "$FARM_ENDPOINT" --store "$DIR/coordinator-store" \
    --key "$DIR/keys/coordinator.key" --allow "$DIR/keys/allowed" --probation 0 --verify-fraction "$1"
  for ((i = 0; i < 200; i++)); do # the workers notice and register again
    [ "$(ip netns exec "$NS-b" "$BIN/thinfarm-cache" --coordinator "$FARM_ENDPOINT" \
      --key "$DIR/keys/coordinator.key" --coordinator-key "$FARM_COORDINATOR_KEY" 2>/dev/null |
      grep -c '^worker')" = 2 ] && return
    sleep 0.1
  done
  fail "the workers did not register again"
}

timed() { # FRACTION -> seconds on stdout
  restart_coordinator "$1"
  local t0 t1
  t0=$(date +%s.%N)
  (cd "$OUT" && ip netns exec "$NS-b" env THINFARM_COORDINATOR="$FARM_ENDPOINT" \
    THINFARM_KEY="$FARM_CLIENT_KEY" THINFARM_COORDINATOR_KEY="$FARM_COORDINATOR_KEY" \
    THINFARM_LOG="$DIR/log.jsonl" "$TFLD" "${VMLINUX_O_ARGS[@]}" -o "$DIR/tf.o" 2> "$DIR/tf.err")
  t1=$(date +%s.%N)
  cmp "$DIR/stock.o" "$DIR/tf.o" || fail "outputs differ"
  tail -n1 "$DIR/log.jsonl" | grep -q '"jobs_local":0,' || fail "jobs ran locally: $(tail -n1 "$DIR/log.jsonl")"
  echo "$t1 - $t0" | bc -l
}

stock() { vmlinux_o_stock "$OUT" "$DIR/stock.o"; }
echo "vmlinux.o: stock ld.lld-19, and through the namespace farm (2 workers x 1 slot, CURVE," \
  "bubblewrap) past probation with --verify-fraction 0 and $FRACTION; $PAIRS rounds," \
  "a fresh coordinator store for each farm link"
timed 0 > /dev/null # uploads the bitcode to the workers: unmeasured
: > "$DIR/stock"; : > "$DIR/off"; : > "$DIR/on"; : > "$DIR/ratio"; : > "$DIR/vs"
for ((p = 1; p <= PAIRS; p++)); do
  case $((p % 3)) in # which goes first rotates
  1) s=$(stock); a=$(timed 0); b=$(timed "$FRACTION") ;;
  2) a=$(timed 0); b=$(timed "$FRACTION"); s=$(stock) ;;
  0) b=$(timed "$FRACTION"); s=$(stock); a=$(timed 0) ;;
  esac
  r=$(echo "$b / $a" | bc -l)
  v=$(echo "$b / $s" | bc -l)
  echo "$s" >> "$DIR/stock"; echo "$a" >> "$DIR/off"; echo "$b" >> "$DIR/on"
  echo "$r" >> "$DIR/ratio"; echo "$v" >> "$DIR/vs"
  printf 'round %d: stock %.2f s  farm unverified %.2f s  farm verified %.2f s  verified/unverified %.3f  verified/stock %.3f  (identical)\n' \
    "$p" "$s" "$a" "$b" "$r" "$v"
done
printf 'median: stock %.2f s  unverified %.2f s  verified %.2f s  verified/unverified %.3f  verified/stock %.3f\n' \
  "$(median < "$DIR/stock")" "$(median < "$DIR/off")" "$(median < "$DIR/on")" \
  "$(median < "$DIR/ratio")" "$(median < "$DIR/vs")"

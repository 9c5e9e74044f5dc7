#!/usr/bin/env bash
# Benchmark: what issue #12's protections cost a link. The test kernel's
# vmlinux.o link in rounds of three: stock ld.lld-19; through a plain farm
# (coordinator --insecure, workers --no-sandbox, nothing verified); through a
# secure farm (CURVE keys on every connection, every backend in bubblewrap,
# --verify-fraction at its default 0.02). Both farms are a coordinator and two
# one-slot workers (the machine has two cores, as stock lld's two backend
# threads) on loopback in this namespace (--insecure is refused on anything
# else), each past probation (--probation 0). Every farm link starts a fresh
# coordinator store, so every job runs and the client uploads its bitcode
# each time; the workers keep theirs. Which link goes first rotates; outputs
# are compared with stock's every time, and a link with jobs run locally is
# an error.
#
# usage: bench/security-cost.sh [ROUNDS]   (root, for bubblewrap; default 5; needs the kernel test's tree)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
TFLD=$(readlink -f "${THINFARM_LD:-build/bin/thinfarm-ld}")
BIN=$(dirname "$TFLD")
OUT=$(readlink -f "${THINFARM_KERNEL_WORK:-build/kernel-work}")/out
fail() { echo "security-cost: FAIL: $*" >&2; exit 1; }
[ -f "$OUT/vmlinux.a" ] || fail "no built kernel in $OUT: run the kernel test first"
source tests/kernel/vmlinux-o-cmd.sh
source tests/kernel/farm-net.sh
vmlinux_o_args "$OUT"
DIR=$(mktemp -d /dev/shm/thinfarm-security-bench-XXXXXX)
PIDS=()
stop_all() { (( ${#PIDS[@]} == 0 )) || kill "${PIDS[@]}" 2> /dev/null || true; wait 2> /dev/null || true; PIDS=(); }
trap 'stop_all; rm -rf "$DIR"' EXIT
PLAIN=tcp://127.0.0.1:7731 SECURE=tcp://127.0.0.1:7732
farm_keys "$DIR" # (tests/kernel/farm-net.sh; its namespaces are not used here)
wait_for() { # LOG TEXT
  local i
  for ((i = 0; i < 300; i++)); do grep -q -- "$2" "$1" 2> /dev/null && return; sleep 0.1; done
  cat "$1" >&2; fail "no '$2' in $1"
}
# start MODE: a fresh coordinator store and both workers of that farm.
start() {
  stop_all
  rm -rf "$DIR/coordinator-store"
  local mode=$1 w
  if [ "$mode" = plain ]; then
    "$BIN/thinfarm-coordinator" --listen "$PLAIN" --insecure --store "$DIR/coordinator-store" \
      --probation 0 --verify-fraction 0 > "$DIR/c.log" 2>&1 & PIDS+=($!)
    wait_for "$DIR/c.log" "listening on"
    for w in w1 w2; do
      "$BIN/thinfarm-worker" --coordinator "$PLAIN" --slots 1 --store "$DIR/$w-plain" --name "$w" \
        --no-sandbox > "$DIR/$w.log" 2>&1 & PIDS+=($!)
      wait_for "$DIR/$w.log" "registered"
    done
  else
    "$BIN/thinfarm-coordinator" --listen "$SECURE" --store "$DIR/coordinator-store" \
      --key "$DIR/keys/coordinator.key" --allow "$DIR/keys/allowed" --probation 0 \
      > "$DIR/c.log" 2>&1 & PIDS+=($!)
    wait_for "$DIR/c.log" "listening on"
    for w in w1 w2; do
      "$BIN/thinfarm-worker" --coordinator "$SECURE" --slots 1 --store "$DIR/$w-secure" --name "$w" \
        --key "$DIR/keys/$w.key" --coordinator-key "$DIR/keys/coordinator.pub" > "$DIR/$w.log" 2>&1 &
      PIDS+=($!)
      wait_for "$DIR/$w.log" "registered"
    done
  fi
}
timed() { # MODE -> seconds on stdout
  start "$1"
  local env=(THINFARM_COORDINATOR="$PLAIN") t0 t1
  [ "$1" = plain ] || env=(THINFARM_COORDINATOR="$SECURE" THINFARM_KEY="$DIR/keys/client.key"
    THINFARM_COORDINATOR_KEY="$DIR/keys/coordinator.pub")
  t0=$(date +%s.%N)
  (cd "$OUT" && env "${env[@]}" THINFARM_LOG="$DIR/log.jsonl" "$TFLD" "${VMLINUX_O_ARGS[@]}" \
    -o "$DIR/tf.o" 2> "$DIR/tf.err")
  t1=$(date +%s.%N)
  stop_all
  cmp "$DIR/stock.o" "$DIR/tf.o" || fail "outputs differ ($1)"
  tail -n1 "$DIR/log.jsonl" | grep -q '"jobs_local":0,' || fail "jobs ran locally ($1): $(tail -n1 "$DIR/log.jsonl")"
  echo "$t1 - $t0" | bc -l
}
stock() { vmlinux_o_stock "$OUT" "$DIR/stock.o"; }

echo "vmlinux.o: stock ld.lld-19; a plain farm (--insecure, --no-sandbox, unverified); a secure farm" \
  "(CURVE, bubblewrap, --verify-fraction 0.02); 2 workers x 1 slot on loopback, past probation," \
  "a fresh coordinator store per farm link; $ROUNDS rounds"
stock > /dev/null
timed plain > /dev/null # the workers' stores take the bitcode once: unmeasured
timed secure > /dev/null
for f in stock plain secure plainr securer cost; do : > "$DIR/$f"; done
for ((r = 1; r <= ROUNDS; r++)); do
  case $((r % 3)) in # which goes first rotates
  1) s=$(stock); a=$(timed plain); b=$(timed secure) ;;
  2) a=$(timed plain); b=$(timed secure); s=$(stock) ;;
  0) b=$(timed secure); s=$(stock); a=$(timed plain) ;;
  esac
  pa=$(echo "$a / $s" | bc -l); pb=$(echo "$b / $s" | bc -l); c=$(echo "$b / $a" | bc -l)
  echo "$s" >> "$DIR/stock"; echo "$a" >> "$DIR/plain"; echo "$b" >> "$DIR/secure"
  echo "$pa" >> "$DIR/plainr"; echo "$pb" >> "$DIR/securer"; echo "$c" >> "$DIR/cost"
  printf 'round %d: stock %.2f s  plain %.2f s (%.3f)  secure %.2f s (%.3f)  secure/plain %.3f  (identical)\n' \
    "$r" "$s" "$a" "$pa" "$b" "$pb" "$c"
done
printf 'median: stock %.2f s  plain %.2f s  secure %.2f s  plain/stock %.3f  secure/stock %.3f  secure/plain %.3f\n' \
  "$(median < "$DIR/stock")" "$(median < "$DIR/plain")" "$(median < "$DIR/secure")" \
  "$(median < "$DIR/plainr")" "$(median < "$DIR/securer")" "$(median < "$DIR/cost")"

#!/usr/bin/env bash
# Benchmark (issue #13, detection): how soon the test kernel's vmlinux.o link
# through the namespace farm (TCP, CURVE, a coordinator and two one-slot
# workers) notices a loss, N times each:
#   cut      the coordinator's network goes down mid-link (no FIN: silence):
#            seconds from the cut to thinfarm-ld's notice that the rest runs here
#   kill     the coordinator is SIGKILLed mid-link and stays down: kill -> notice
#   worker   w1 is SIGKILLed mid-link: kill -> the coordinator's line that its
#            running job runs again (dispatched in the same tick), and the link
#            finishes on the farm
#   restart  the coordinator is SIGKILLed and started again on its store a
#            second later (DETECTION_DOWN): the link finishes on the farm (no
#            job run here); the time is how long it was down
# Every output is compared with stock's. Each link starts with an empty
# coordinator store (no memo, no action cache): every job runs.
#
# usage: bench/detection.sh [N]   (root; default 3; needs the kernel test's tree;
#        DETECTION_KINDS="cut kill" runs only those)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-3}
TFLD=$(readlink -f "${THINFARM_LD:-build/bin/thinfarm-ld}")
BIN=$(dirname "$TFLD")
OUT=$(readlink -f "${THINFARM_KERNEL_WORK:-build/kernel-work}")/out
AT=${DETECTION_AT:-8} # seconds into the link
say() { echo "detection: $*" >&2; }
fail() { echo "detection: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (network namespaces)"
[ -f "$OUT/vmlinux.a" ] || fail "no built kernel in $OUT: run the kernel test first"
source tests/kernel/farm-net.sh
source tests/kernel/vmlinux-o-cmd.sh
vmlinux_o_args "$OUT"
DIR=$(mktemp -d /dev/shm/thinfarm-detection-XXXXXX)
trap 'farm_cleanup; rm -rf "$DIR"' EXIT
farm_network || fail "cannot set up the namespaces"
start_farm "$DIR/farm"
F=$DIR/farm
COORD=${FARM_PIDS[0]} W1=${FARM_PIDS[1]}
say "stock: $(vmlinux_o_stock "$OUT" "$DIR/stock.o") s"

start_coordinator() { # [LOG]
  start_daemon c "${1:-$F/coordinator.log}" "listening on" \
    "$BIN/thinfarm-coordinator" --listen "$FARM_ENDPOINT" --store "$F/coordinator-store" \
    --key "$F/keys/coordinator.key" --allow "$F/keys/allowed"
  COORD=${FARM_PIDS[-1]}
}
fresh_coordinator() { # an empty store: every job runs
  kill -KILL "$COORD" 2> /dev/null || true
  wait "$COORD" 2> /dev/null || true
  rm -rf "$F/coordinator-store"
  start_coordinator 2> /dev/null
  for _ in $(seq 300); do # the workers register again, on their own
    [ "$(ip netns exec "$NS-b" "$BIN/thinfarm-cache" --coordinator "$FARM_ENDPOINT" \
      --key "$F/keys/coordinator.key" --coordinator-key "$FARM_COORDINATOR_KEY" 2> /dev/null |
      grep -c '^worker' || true)" -ge 2 ] && return
    sleep 0.1
  done
  fail "the workers did not register again within 30 s"
}
link() { # OUTPUT: in the background, LINK_PID
  (cd "$OUT" && exec ip netns exec "$NS-b" env THINFARM_COORDINATOR="$FARM_ENDPOINT" \
    THINFARM_KEY="$FARM_CLIENT_KEY" THINFARM_COORDINATOR_KEY="$FARM_COORDINATOR_KEY" \
    THINFARM_LOG="$DIR/log.jsonl" "$TFLD" "${VMLINUX_O_ARGS[@]}" -o "$1" 2> "$1.err") &
  LINK_PID=$!
}
# Seconds from now until PATTERN shows in FILE (polled every 20 ms; 30 s at most).
until_line() { # FILE PATTERN
  local t0=$EPOCHREALTIME
  for _ in $(seq 1500); do
    grep -q -- "$2" "$1" 2> /dev/null && { echo "$EPOCHREALTIME - $t0" | bc -l; return; }
    sleep 0.02
  done
  echo "never"
}
check() { # OUTPUT
  cmp -s "$DIR/stock.o" "$1" || fail "$1 differs from stock"
}

for kind in ${DETECTION_KINDS:-cut kill worker restart}; do
  : > "$DIR/$kind.times"
  for ((i = 1; i <= N; i++)); do
    fresh_coordinator
    out=$DIR/$kind$i.o
    link "$out"
    sleep "$AT"
    kill -0 "$LINK_PID" 2> /dev/null || fail "the link ended before the event"
    case $kind in
    cut)
      ip -n "$NS-c" link set eth0 down
      t=$(until_line "$out.err" "backends here")
      wait "$LINK_PID" || fail "the link failed: $(cat "$out.err")"
      ip -n "$NS-c" link set eth0 up ;;
    kill)
      kill -KILL "$COORD"
      t=$(until_line "$out.err" "backends here")
      wait "$LINK_PID" || fail "the link failed: $(cat "$out.err")"
      start_coordinator 2> /dev/null ;;
    worker)
      kill -KILL "$W1"
      t=$(until_line "$F/coordinator.log" "worker w1 closed its connection")
      wait "$LINK_PID" || fail "the link failed: $(cat "$out.err")"
      grep -c '"jobs_local":0,' <(tail -n1 "$DIR/log.jsonl") > /dev/null ||
        fail "not finished on the farm: $(tail -n1 "$DIR/log.jsonl")"
      start_daemon w1 "$F/w1.log.$i" "registered" \
        "$BIN/thinfarm-worker" --coordinator "$FARM_ENDPOINT" --slots 1 --store "$F/w1-store" \
        --name w1 --key "$F/keys/w1.key" --coordinator-key "$FARM_COORDINATOR_KEY" 2> /dev/null
      W1=${FARM_PIDS[-1]} ;;
    restart)
      down_t0=$EPOCHREALTIME
      kill -KILL "$COORD"
      wait "$COORD" 2> /dev/null || true
      sleep "${DETECTION_DOWN:-1}" # as an operator's or systemd's restart would take
      start_coordinator "$F/coordinator.$i.log" 2> /dev/null
      t=$(echo "$EPOCHREALTIME - $down_t0" | bc -l) # down for this long
      wait "$LINK_PID" || fail "the link failed: $(cat "$out.err")"
      grep -c '"jobs_local":0,' <(tail -n1 "$DIR/log.jsonl") > /dev/null ||
        fail "not finished on the farm after a restart (down $t s): $(tail -n1 "$DIR/log.jsonl") $(cat "$out.err")" ;;
    esac
    check "$out"
    echo "$t" >> "$DIR/$kind.times"
    say "$kind $i: $(printf '%.2f' "$t") s, identical; $(grep -o '"jobs_local":[0-9]*,"jobs_remote":[0-9]*' <(tail -n1 "$DIR/log.jsonl")); $(grep -o 'note: farm at [^;]*' "$out.err" | head -n1 || true)"
  done
done
for kind in ${DETECTION_KINDS:-cut kill worker restart}; do
  what=$(case $kind in cut | kill) echo "loss -> local notice" ;; worker) echo "kill -> jobs requeued" ;; restart) echo "coordinator down for" ;; esac)
  say "$kind: $what: median $(median < "$DIR/$kind.times" | xargs printf '%.2f') s, worst $(sort -g "$DIR/$kind.times" | tail -n1 | xargs printf '%.2f') s ($N links, all identical)"
done

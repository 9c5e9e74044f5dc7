#!/usr/bin/env bash
# Chaos relinks (issue #13, item 6): the test kernel's vmlinux.o link through
# a namespace farm of a coordinator and three one-slot workers
# (tests/kernel/farm-net.sh, CURVE keys, sandboxed backends) while this
# script, at random moments of every link, does to a random worker one of:
#   kill     SIGKILL, started again (same store) 2 s later
#   freeze   SIGSTOP for longer than the job deadline (--job-deadline), then SIGCONT
#   netdown  `ip link set eth0 down` in its namespace for 4 s, then up
#   diskfull its store's filesystem (a tmpfs of its own) filled to the last
#            byte for 6 s, then emptied
# and, once per run, kills the coordinator with SIGKILL and starts it again on
# the same store. Every link's output must be byte-identical to stock
# ld.lld-19's and every link must finish; each link's time is printed against
# a calm link's (the first, measured before any chaos), with the events it saw
# and where its jobs ran (THINFARM_LOG). The events are drawn from $RANDOM
# seeded with CHAOS_SEED (printed), so a failing run's choices can be replayed.
#
# usage: tests/chaos/chaos.sh [LINKS]   (root; default 3; needs the kernel test's tree)
#   CHAOS_SEED=N          the seed (default: the time)
#   CHAOS_EVENTS="..."    the kinds to draw from (default: kill freeze netdown diskfull)
#   CHAOS_DEADLINE=S      the coordinator's --job-deadline (default 8)
#   CHAOS_WARMUP=1        an untimed link first, so the calm link, like every
#                         chaos link, finds the workers' stores filled (a fair
#                         reference; without it the calm link also fetches
#                         every input and the ratios come out below 1)
# kernel.chaos in CI runs 3; bench/chaos.sh runs 12 for the figures in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
LINKS=${1:-3}
TFLD=$(readlink -f "${THINFARM_LD:-build/bin/thinfarm-ld}")
BIN=$(dirname "$TFLD")
OUT=$(readlink -f "${THINFARM_KERNEL_WORK:-build/kernel-work}")/out
SEED=${CHAOS_SEED:-$(date +%s)}
EVENTS=(${CHAOS_EVENTS:-kill freeze netdown diskfull})
DEADLINE=${CHAOS_DEADLINE:-8}
WARMUP=${CHAOS_WARMUP:-0}
say() { echo "chaos: $*" >&2; }
fail() { echo "chaos: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { say "SKIP: needs root (network namespaces, mounts)"; exit 77; }
[ -f "$OUT/vmlinux.a" ] || fail "no built kernel in $OUT: run the kernel test first"
source tests/kernel/farm-net.sh
source tests/kernel/vmlinux-o-cmd.sh
vmlinux_o_args "$OUT"
RANDOM=$SEED
DIR=$(mktemp -d /dev/shm/thinfarm-chaos-XXXXXX)
WORKERS=(w1 w2 w3)
# Each daemon's pid in DIR/NAME.pid: events run in a subshell and start
# daemons again, so the pids live in files, not in variables.
pid() { cat "$DIR/$1.pid" 2> /dev/null || echo 0; }
cleanup() {
  local w p
  for p in "$DIR"/*.pid; do
    [ -f "$p" ] || continue
    kill -CONT "$(cat "$p")" 2> /dev/null || true
    FARM_PIDS+=("$(cat "$p")")
  done
  farm_cleanup
  for w in "${WORKERS[@]}"; do umount "$DIR/$w-fs" 2> /dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT
farm_network || fail "cannot set up the namespaces"

# The farm of start_farm (tests/kernel/farm-net.sh, its keys from farm_keys),
# with three honest workers whose stores each live on a tmpfs of their own (so
# one can be filled).
start_coordinator() {
  start_daemon c "$DIR/coordinator.log" "listening on" \
    "$BIN/thinfarm-coordinator" --listen "$FARM_ENDPOINT" --store "$DIR/coordinator-store" \
    --key "$DIR/keys/coordinator.key" --allow "$DIR/keys/allowed" --job-deadline "$DEADLINE"
  echo "${FARM_PIDS[-1]}" > "$DIR/c.pid"
}
start_worker() { # NAME
  local log=$DIR/$1.log
  [ ! -f "$log" ] || mv "$log" "$log.$(date +%s%N)"
  start_daemon "$1" "$log" "registered" \
    "$BIN/thinfarm-worker" --coordinator "$FARM_ENDPOINT" --slots 1 --store "$DIR/$1-fs/store" \
    --name "$1" --key "$DIR/keys/$1.key" --coordinator-key "$FARM_COORDINATOR_KEY"
  echo "${FARM_PIDS[-1]}" > "$DIR/$1.pid"
}
farm_keys "$DIR"
start_coordinator
for w in "${WORKERS[@]}"; do
  mkdir -p "$DIR/$w-fs"
  mount -t tmpfs -o size=512m tmpfs "$DIR/$w-fs" || fail "cannot mount a tmpfs for $w"
  start_worker "$w"
done

# One event, to a random worker (or the coordinator), in the background of a link.
event() { # KIND
  local w=${WORKERS[RANDOM % ${#WORKERS[@]}]}
  case $1 in
  kill)
    kill -KILL "$(pid "$w")" 2> /dev/null || true
    sleep 2
    start_worker "$w" 2> /dev/null ;;
  freeze)
    kill -STOP "$(pid "$w")" 2> /dev/null || true
    sleep $((DEADLINE + 3))
    kill -CONT "$(pid "$w")" 2> /dev/null || true ;;
  netdown)
    ip -n "$NS-$w" link set eth0 down
    sleep 4
    ip -n "$NS-$w" link set eth0 up ;;
  diskfull)
    fallocate -l "$(($(stat -f -c '%a * %S' "$DIR/$w-fs")))" "$DIR/$w-fs/fill" 2> /dev/null ||
      dd if=/dev/zero of="$DIR/$w-fs/fill" bs=1M 2> /dev/null || true
    sleep 6
    rm -f "$DIR/$w-fs/fill" ;;
  coordinator)
    w=c
    kill -KILL "$(pid c)" 2> /dev/null || true
    sleep 1
    start_coordinator 2> /dev/null ;;
  esac
  echo "$1 $w"
}

# chaos_during LINKPID RESTART: events until the link ends; RESTART=1 puts a
# coordinator restart among them.
chaos_during() {
  local link=$1 restart=$2 kind
  sleep $((2 + RANDOM % 4))
  while kill -0 "$link" 2> /dev/null; do
    kind=${EVENTS[RANDOM % ${#EVENTS[@]}]}
    if [ "$restart" = 1 ]; then kind=coordinator restart=0; fi
    event "$kind"
    sleep $((1 + RANDOM % 4))
  done
}

link() { # OUTPUT -> starts it in the background; LINK_PID
  (cd "$OUT" && ip netns exec "$NS-b" env THINFARM_COORDINATOR="$FARM_ENDPOINT" \
    THINFARM_KEY="$FARM_CLIENT_KEY" THINFARM_COORDINATOR_KEY="$FARM_COORDINATOR_KEY" \
    THINFARM_LOG="$DIR/log.jsonl" "$TFLD" "${VMLINUX_O_ARGS[@]}" -o "$1" 2> "$1.err") &
  LINK_PID=$!
}
# Every link runs every job: the coordinator's memo and action cache would
# otherwise answer the second link at once. A fresh client output name and a
# coordinator store emptied of results between links would both do; the
# simplest is a new coordinator store per link (the workers keep theirs).
fresh_store() {
  kill -TERM "$(pid c)" 2> /dev/null || true
  local i
  for ((i = 0; i < 100; i++)); do kill -0 "$(pid c)" 2> /dev/null || break; sleep 0.1; done
  kill -KILL "$(pid c)" 2> /dev/null || true
  rm -rf "$DIR/coordinator-store"
  start_coordinator 2> /dev/null
  for ((i = 0; i < 300; i++)); do # the workers notice and register again
    [ "$(ip netns exec "$NS-b" "$BIN/thinfarm-cache" --coordinator "$FARM_ENDPOINT" \
      --key "$DIR/keys/coordinator.key" --coordinator-key "$FARM_COORDINATOR_KEY" 2> /dev/null |
      grep -c '^worker' || true)" -ge "${#WORKERS[@]}" ] && return
    sleep 0.1
  done
  say "not every worker registered again within 30 s"
}

(cd "$OUT" && ld.lld-19 "${VMLINUX_O_ARGS[@]}" -o "$DIR/stock.o" 2> /dev/null)
say "seed $SEED; events: ${EVENTS[*]}; job deadline ${DEADLINE} s; $LINKS chaos links after a calm one"
if [ "$WARMUP" = 1 ]; then # the workers' stores filled, as they are for every chaos link
  link "$DIR/warmup.o"; wait "$LINK_PID" || fail "the warm-up link failed: $(cat "$DIR/warmup.o.err")"
  cmp "$DIR/stock.o" "$DIR/warmup.o" || fail "the warm-up link's output differs from stock"
  fresh_store
fi
t0=$(date +%s.%N); link "$DIR/calm.o"; wait "$LINK_PID" || fail "the calm link failed: $(cat "$DIR/calm.o.err")"
calm=$(echo "$(date +%s.%N) - $t0" | bc -l)
cmp "$DIR/stock.o" "$DIR/calm.o" || fail "the calm link's output differs from stock"
printf 'chaos: calm link %.1f s, identical; %s\n' "$calm" "$(tail -n1 "$DIR/log.jsonl" | grep -o '"jobs_local":[0-9]*,"jobs_remote":[0-9]*')" >&2
restart_at=$((1 + RANDOM % LINKS))
: > "$DIR/ratios"
failed=0
for ((n = 1; n <= LINKS; n++)); do
  fresh_store
  out=$DIR/chaos$n.o
  t0=$(date +%s.%N)
  link "$out"
  chaos_during "$LINK_PID" "$([ $n = $restart_at ] && echo 1 || echo 0)" > "$DIR/events$n" 2> /dev/null &
  chaos=$!
  rc=0; wait "$LINK_PID" || rc=$?
  t=$(echo "$(date +%s.%N) - $t0" | bc -l)
  wait "$chaos" || true
  for w in "${WORKERS[@]}"; do # a worker frozen or cut as the link ended: back for the next
    kill -CONT "$(pid "$w")" 2> /dev/null || true
    ip -n "$NS-$w" link set eth0 up 2> /dev/null || true
    rm -f "$DIR/$w-fs/fill"
  done
  evs=$(tr '\n' ',' < "$DIR/events$n" | sed 's/,$//')
  if [ "$rc" != 0 ]; then
    say "link $n FAILED (exit $rc) after $(printf %.1f "$t") s, events: $evs"
    sed 's/^/  /' "$out.err" | grep -v 'stack frame size' | tail -n 20 >&2
    failed=$((failed + 1)); continue
  fi
  if ! cmp -s "$DIR/stock.o" "$out"; then
    say "link $n: output DIFFERS from stock; events: $evs"
    failed=$((failed + 1)); continue
  fi
  r=$(echo "$t / $calm" | bc -l)
  echo "$r" >> "$DIR/ratios"
  notes=$(grep -v 'stack frame size' "$out.err" | grep -o 'thinfarm-ld: [^:]*' | sort | uniq -c | tr -s ' ' | tr '\n' ';' || true)
  printf 'chaos: link %d: %.1f s (%.2fx calm), identical; events: %s; %s%s\n' "$n" "$t" "$r" "$evs" \
    "$(tail -n1 "$DIR/log.jsonl" | grep -o '"jobs_local":[0-9]*,"jobs_remote":[0-9]*')" \
    "${notes:+; notices: $notes}" >&2
done
[ -s "$DIR/ratios" ] &&
  printf 'chaos: %d of %d links identical; over a calm link: median %.2fx, worst %.2fx\n' \
    "$(wc -l < "$DIR/ratios")" "$LINKS" "$(median < "$DIR/ratios")" "$(sort -g "$DIR/ratios" | tail -n1)" >&2
[ "$failed" = 0 ] || fail "$failed of $LINKS chaos links failed or differed"

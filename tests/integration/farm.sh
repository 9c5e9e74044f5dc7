#!/usr/bin/env bash
# Farm cases: thinfarm-ld linking small programs through a real coordinator
# and worker (separate processes, real sockets), compared with stock
# ld.lld-19 by cmp, and the daemons' behaviour on bad input.
#
# usage: farm.sh CASE   (THINFARM_LD=path/to/thinfarm-ld; the daemons beside it)
set -euo pipefail

TFLD=$(readlink -f "${THINFARM_LD:?set THINFARM_LD to the thinfarm-ld binary}")
BIN=$(dirname "$TFLD")
CASE=${1:?usage: farm.sh CASE}
W=$(mktemp -d "${TMPDIR:-/tmp}/thinfarm-farm-XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
  wait 2> /dev/null || true
  pkill -f "thinfarm-coordinator.*$W/cache" 2> /dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
cd "$W"
export THINFARM_LOG=$W/log.jsonl
unset THINFARM_COORDINATOR

fail() { echo "FAIL [$CASE]: $*" >&2; exit 1; }
ccthin() { clang-19 --target=x86_64-linux-gnu -O2 -flto=thin -ffreestanding -fno-pic "$@"; }

# A coordinator and one worker (one slot, named w1) on an ipc socket.
start_farm() {
  FARM=ipc://$W/farm.sock
  "$BIN/thinfarm-coordinator" --listen "$FARM" --store "$W/cstore" 2> coordinator.log &
  pids+=($!)
  "$BIN/thinfarm-worker" --coordinator "$FARM" --slots 1 --store "$W/wstore" --name w1 2> worker.log &
  WORKER=$!
  pids+=($WORKER)
  for _ in $(seq 100); do grep -q registered worker.log && return; sleep 0.1; done
  fail "the worker did not register: $(cat worker.log coordinator.log)"
}

program() {
  echo 'int helper(int); int big(int x) { int s = 0; for (int i = 0; i < x; i++) s += helper(i) * i; return s; }' > a.c
  echo 'int helper(int x) { return x * 3 + 1; }' > b.c
  ccthin -c a.c b.c
}

link_farm() { # ARGS: through the farm into tf.out, compared with stock
  ld.lld-19 "$@" -o stock.out 2> stock.err || fail "stock ld.lld-19 failed: $(cat stock.err)"
  THINFARM_COORDINATOR=$FARM "$TFLD" "$@" -o tf.out 2> tf.err || fail "thinfarm-ld failed: $(cat tf.err)"
  cmp stock.out tf.out || fail "outputs differ"
}

case_farm_link() {
  start_farm
  program
  link_farm -r a.o b.o
  tail -n1 log.jsonl | grep -q '"jobs_local":0,"jobs_remote":2,' || fail "not run remotely: $(tail -n1 log.jsonl)"
  tail -n1 log.jsonl | grep -q '"workers":{"w1":2}' || fail "w1 did not run both jobs: $(tail -n1 log.jsonl)"
  # Again: every input is in the coordinator's store now, nothing is uploaded;
  # still identical.
  link_farm -r a.o b.o
}

# A module that fails in the backend (not earlier): the failure names the
# module and carries LLVM's message; the worker stays up and serves the next link.
case_farm_bad_bitcode() {
  start_farm
  program
  python3 - <<'PY'
d = open('a.o', 'rb').read()
for off in range(40, len(d), 16):
    e = bytearray(d); e[off] ^= 0xff
    open('bad%d.o' % off, 'wb').write(e)
PY
  found=
  for f in $(ls bad*.o | sort -V); do
    cp "$f" c.o
    if ! (THINFARM_COORDINATOR=off "$TFLD" -r c.o b.o -o local.out 2> local.err) 2> /dev/null &&
       grep -q 'backend of c\.o' local.err; then found=$f; break; fi
  done
  [ -n "$found" ] || fail "no corruption reaches the backend"
  set +e; THINFARM_COORDINATOR=$FARM "$TFLD" -r c.o b.o -o tf.out 2> tf.err; rc=$?; set -e
  [ "$rc" = 1 ] || fail "exit status $rc through the farm, expected 1: $(cat tf.err)"
  grep -q 'backend of c\.o' tf.err || fail "the error does not name c.o: $(cat tf.err)"
  [ "$(grep -c . tf.err)" = 1 ] || fail "more than one line: $(cat tf.err)"
  diff <(sed 's/^thinfarm-ld: error: //' local.err) <(sed 's/^thinfarm-ld: error: //' tf.err) ||
    fail "the farm's message differs from the local one"
  echo "bad module: $found; message: $(cat tf.err)"
  kill -0 "$WORKER" || fail "the worker died"
  link_farm -r a.o b.o
  tail -n1 log.jsonl | grep -q '"workers":{"w1":2}' || fail "w1 did not serve the next link: $(tail -n1 log.jsonl)"
}

# The farm goes away mid-link: the only worker hangs (SIGSTOP) with the
# jobs, then the coordinator dies (SIGKILL). The link notices the silence,
# tries once more, finishes here, identical, and says so.
case_farm_lost_midway() {
  start_farm
  program
  ld.lld-19 -r a.o b.o -o stock.out
  kill -STOP "$WORKER"
  THINFARM_COORDINATOR=$FARM "$TFLD" -r a.o b.o -o tf.out 2> tf.err &
  local link=$!
  sleep 2
  kill -KILL "${pids[0]}"
  wait "$link" || fail "thinfarm-ld failed: $(cat tf.err)"
  kill -CONT "$WORKER"
  cmp stock.out tf.out || fail "outputs differ"
  grep -q "thinfarm-ld: note: farm at $FARM: .*; running 2 of 2 backends here" tf.err ||
    fail "no notice: $(cat tf.err)"
  tail -n1 log.jsonl | grep -q '"jobs_local":2,"jobs_remote":0,' || fail "$(tail -n1 log.jsonl)"
  echo "notice: $(cat tf.err)"
}

# Nothing listens at the address: the link finishes here, identical, and says so.
case_farm_unreachable() {
  program
  FARM=tcp://127.0.0.1:9
  link_farm -r a.o b.o
  grep -q 'thinfarm-ld: note: farm at tcp://127.0.0.1:9: .*running 2 of 2 backends here' tf.err ||
    fail "no notice: $(cat tf.err)"
  tail -n1 log.jsonl | grep -q '"jobs_local":2,"jobs_remote":0,' || fail "$(tail -n1 log.jsonl)"
}

# The embedded default: no coordinator configured, a local one is started
# under THINFARM_CACHE_DIR and shared by concurrent links.
case_embedded_default() {
  program
  export THINFARM_CACHE_DIR=$W/cache XDG_CONFIG_HOME=$W/noconfig
  ld.lld-19 -r a.o b.o -o stock.out
  for i in 1 2 3 4; do "$TFLD" -r a.o b.o -o "tf$i.out" 2> "tf$i.err" & done
  wait
  for i in 1 2 3 4; do cmp stock.out "tf$i.out" || fail "link $i differs: $(cat "tf$i.err")"; done
  [ "$(grep -c '"jobs_remote":2,' log.jsonl)" = 4 ] || fail "not all run by the local farm: $(cat log.jsonl)"
  [ "$(pgrep -fc "thinfarm-coordinator.*$W/cache")" = 1 ] || fail "not exactly one local coordinator"
  # A daemon of another thinfarm build (another backend identity) is replaced,
  # not used: the next link stops it and starts its own.
  old=$(head -n1 "$W/cache/daemon.lock")
  echo "LLVM 0.0 another build" > "$W/cache/daemon.id"
  "$TFLD" -r a.o b.o -o tf5.out 2> tf5.err
  cmp stock.out tf5.out || fail "link after the replacement differs"
  new=$(head -n1 "$W/cache/daemon.lock")
  [ -n "$new" ] && [ "$new" != "$old" ] || fail "the daemon was not replaced ($old -> $new)"
  case "$(ps -o stat= -p "$old" 2> /dev/null)" in ''|Z*) ;; *) fail "the old daemon still runs" ;; esac
  tail -n1 log.jsonl | grep -q '"jobs_remote":2,.*"workers":{"embedded":2}' ||
    fail "not run by the new local farm: $(tail -n1 log.jsonl) $(cat tf5.err)"
}

# Bad flags and addresses: one line, non-zero exit.
case_bad_flags() {
  check() { # EXPECTED-STATUS PATTERN COMMAND...
    local want=$1 pat=$2; shift 2
    set +e; "$@" > out.txt 2> err.txt; local rc=$?; set -e
    [ "$rc" = "$want" ] || fail "$*: exit $rc, expected $want: $(cat err.txt)"
    [ "$(grep -c . err.txt)" = 1 ] || fail "$*: not one line: $(cat err.txt)"
    grep -q "$pat" err.txt || fail "$*: '$(cat err.txt)' does not say '$pat'"
  }
  check 2 'unknown flag --bogus' "$BIN/thinfarm-worker" --bogus
  check 2 'unknown flag --bogus' "$BIN/thinfarm-coordinator" --bogus
  check 2 'bad address foo' "$BIN/thinfarm-coordinator" --listen foo --store s
  check 2 'bad address tcp://host' "$BIN/thinfarm-worker" --coordinator tcp://host --store s
  check 2 'wants a number' "$BIN/thinfarm-worker" --coordinator tcp://127.0.0.1:9 --store s --slots x
  check 1 'no coordinator answers at tcp://127.0.0.1:9' \
    "$BIN/thinfarm-worker" --coordinator tcp://127.0.0.1:9 --store s
}

"case_$CASE"

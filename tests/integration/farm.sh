#!/usr/bin/env bash
# Farm cases: thinfarm-ld linking small programs through a real coordinator
# and worker (separate processes, real sockets), compared with stock
# ld.lld-19 by cmp, and the daemons' behaviour on bad input.
#
# usage: farm.sh CASE   (THINFARM_LD=path/to/thinfarm-ld; the daemons beside it)
set -euo pipefail
# (In pipelines grep -c > /dev/null, never grep -q: -q exits at the first match,
# and with pipefail the writer's SIGPIPE would fail the check.)

TFLD=$(readlink -f "${THINFARM_LD:?set THINFARM_LD to the thinfarm-ld binary}")
BIN=$(dirname "$TFLD")
CASE=${1:?usage: farm.sh CASE}
W=$(mktemp -d "${TMPDIR:-/tmp}/thinfarm-farm-XXXXXX")
pids=()
cleanup() {
  # CONT first: a case may end (or fail) with a process it stopped.
  for p in "${pids[@]}"; do kill -CONT "$p" 2> /dev/null || true; kill "$p" 2> /dev/null || true; done
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
  for _ in $(seq 100); do
    if grep -q registered worker.log; then
      grep -c 'registered.*, sandboxed$' worker.log > /dev/null || fail "the worker runs backends unsandboxed: $(cat worker.log)"
      return
    fi
    sleep 0.1
  done
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
  tail -n1 log.jsonl | grep -c '"jobs_local":0,"jobs_remote":2,' > /dev/null || fail "not run remotely: $(tail -n1 log.jsonl)"
  tail -n1 log.jsonl | grep -c '"workers":{"w1":2}' > /dev/null || fail "w1 did not run both jobs: $(tail -n1 log.jsonl)"
  # Again, nothing changed: the link memo answers, identical.
  link_farm -r a.o b.o
  tail -n1 log.jsonl | grep -c '"memo_hit":true' > /dev/null || fail "no memo hit: $(tail -n1 log.jsonl)"
}

# LLVM options that reach files never go to a worker (it would read or write
# its own files for a stranger): the link runs here with a notice naming the
# option, identical to stock.
case_farm_file_options() {
  start_farm
  program
  link_farm -r -mllvm -info-output-file="$W/info.txt" a.o b.o
  grep -c "the LLVM option '-info-output-file=$W/info.txt' may name a file; running 2 of 2 backends here" \
    tf.err > /dev/null || fail "no notice naming the option: $(cat tf.err)"
  tail -n1 log.jsonl | grep -c '"jobs_local":2,"jobs_remote":0,' > /dev/null ||
    fail "jobs went to the farm: $(tail -n1 log.jsonl)"
  # Options that name no file still go.
  link_farm -r -mllvm -import-instr-limit=5 a.o b.o
  tail -n1 log.jsonl | grep -c '"jobs_local":0,"jobs_remote":2,' > /dev/null ||
    fail "not run remotely: $(tail -n1 log.jsonl)"
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
  # b.o's job may come from the action cache (it ran beside the failed c.o);
  # a.o's cannot.
  tail -n1 log.jsonl | grep -c '"w1":[12]' > /dev/null || fail "w1 did not serve the next link: $(tail -n1 log.jsonl)"
}

# Verification (coordinator/verification.h): three workers, w3 altering every
# 10th object it makes. Every result of a worker on probation is checked by a
# second worker; at w3's first lie a third decides and w3 is quarantined. The
# output is identical to stock throughout, and w3 gets no more jobs.
case_farm_verify() {
  FARM=ipc://$W/farm.sock
  "$BIN/thinfarm-coordinator" --listen "$FARM" --store "$W/cstore" 2> coordinator.log &
  pids+=($!)
  for w in w1 w2 w3; do
    local lie=0
    [ $w = w3 ] && lie=10
    "$BIN/thinfarm-worker" --coordinator "$FARM" --slots 1 --store "$W/$w.store" --name $w \
      --test-corrupt-every $lie 2> $w.log &
    pids+=($!)
  done
  for w in w1 w2 w3; do
    for _ in $(seq 100); do grep -q registered $w.log && break; sleep 0.1; done
    grep -q registered $w.log || fail "$w did not register: $(cat $w.log)"
  done
  modules() { # VARIANT: 40 modules
    for i in $(seq 40); do
      echo "int f$i(int x) { int s = 0; for (int k = 0; k < x; k++) s += k * $i ^ (s >> $1); return s; }" > m$i.c
    done
    ccthin -c m*.c
  }
  modules 3
  link_farm -r m*.o
  grep -c "quarantined worker w3: its object for .* differs from that of w[12]" coordinator.log > /dev/null ||
    fail "w3 was not quarantined: $(cat coordinator.log)"
  if grep -c "quarantined worker w[12]" coordinator.log > /dev/null; then
    fail "an honest worker was quarantined: $(cat coordinator.log)"
  fi
  "$BIN/thinfarm-cache" --coordinator "$FARM" > stats.txt || fail "thinfarm-cache failed"
  grep -c "worker         w3: .*QUARANTINED" stats.txt > /dev/null || fail "not in the statistics: $(cat stats.txt)"
  # New modules: identical, and none runs on w3.
  modules 5
  link_farm -r m*.o
  tail -n1 log.jsonl | grep -c '"jobs_remote":40,' > /dev/null || fail "not run remotely: $(tail -n1 log.jsonl)"
  if tail -n1 log.jsonl | grep -c '"w3"' > /dev/null; then
    fail "w3 still ran jobs: $(tail -n1 log.jsonl)"
  fi
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
  tail -n1 log.jsonl | grep -c '"jobs_local":2,"jobs_remote":0,' > /dev/null || fail "$(tail -n1 log.jsonl)"
  echo "notice: $(cat tf.err)"
}

# A coordinator and two one-slot workers, w1 and w2, each with extra flags.
start_two() { # W1-FLAGS W2-FLAGS (each one word or empty)
  FARM=ipc://$W/farm.sock
  "$BIN/thinfarm-coordinator" --listen "$FARM" --store "$W/cstore" 2> coordinator.log &
  pids+=($!)
  local flags=("$1" "$2") i=0
  for w in w1 w2; do
    # shellcheck disable=SC2086
    "$BIN/thinfarm-worker" --coordinator "$FARM" --slots 1 --store "$W/$w.store" --name $w \
      ${flags[$i]} 2> $w.log &
    pids+=($!)
    i=$((i + 1))
  done
  for w in w1 w2; do
    for _ in $(seq 100); do grep -q registered $w.log && break; sleep 0.1; done
    grep -q registered $w.log || fail "$w did not register: $(cat $w.log)"
  done
}

# N modules m0..m(N-1), each of 300 functions: backends that take a while.
# The same SEED writes the same sources.
big_modules() { # SEED N
  python3 - "$1" "$2" <<'PY'
import random, sys
random.seed(int(sys.argv[1]))
for i in range(int(sys.argv[2])):
    body = "\n".join(f"int f{i}_{k}(int x) {{ return x * {random.randint(2, 99)} + {k}; }}" for k in range(300))
    open(f"m{i}.c", "w").write(body + f"\nint g{i}(int x) {{ return f{i}_0(x); }}\n")
PY
}

# Modules enough for both workers to take some: N modules m1..mN.
many_modules() { # N
  for i in $(seq "$1"); do
    echo "int f$i(int x) { int s = 0; for (int k = 0; k < x; k++) s += k * $i ^ (s >> 3); return s; }" > m$i.c
  done
  ccthin -c m*.c
}

# Lost is not failed (coordinator/job_policy.h): w1's backend children are
# all killed by SIGKILL, as the OOM killer would. Every job w1 takes is lost,
# runs on w2, and the link finishes on the farm, identical.
case_farm_lost_job() {
  start_two "--test-kill-every=1" ""
  many_modules 8
  link_farm -r m*.o
  tail -n1 log.jsonl | grep -c '"jobs_local":0,"jobs_remote":8,' > /dev/null || fail "not run on the farm: $(tail -n1 log.jsonl)"
  tail -n1 log.jsonl | grep -c '"workers":{"w2":8}' > /dev/null || fail "not all on w2: $(tail -n1 log.jsonl)"
  grep -c "was lost on worker w1: the backend was killed (SIGKILL" coordinator.log > /dev/null ||
    fail "no job was lost on w1: $(cat coordinator.log)"
}

# A backend failure on one worker only (w1 fails every job) is not believed:
# each job runs on w2 too, and the link finishes on the farm, identical. When
# both workers fail a job, the link fails with the backend's message.
case_farm_failure_twice() {
  start_two "--test-fail-every=1" ""
  many_modules 8
  link_farm -r m*.o
  tail -n1 log.jsonl | grep -c '"jobs_local":0,"jobs_remote":8,' > /dev/null || fail "not run on the farm: $(tail -n1 log.jsonl)"
  grep -c "failed on worker w1 (test failure of m[0-9]*.o (--test-fail-every)): it runs on another worker" \
    coordinator.log > /dev/null || fail "no failure on w1: $(cat coordinator.log)"
  for p in "${pids[@]}"; do kill "$p"; done
  wait 2> /dev/null || true
  pids=()
  rm -rf cstore w1.store w2.store
  start_two "--test-fail-every=1" "--test-fail-every=1"
  set +e; THINFARM_COORDINATOR=$FARM "$TFLD" -r m*.o -o tf.out 2> tf.err; rc=$?; set -e
  [ "$rc" = 1 ] || fail "exit status $rc, expected 1: $(cat tf.err)"
  grep -c 'test failure of m[0-9]*\.o (--test-fail-every)' tf.err > /dev/null || fail "not the backend's message: $(cat tf.err)"
  grep -c "failed on workers w1 and w2: test failure" coordinator.log > /dev/null ||
    fail "the coordinator does not say both failed: $(cat coordinator.log)"
  echo "message: $(cat tf.err)"
}

# Stragglers: w1's slot waits 30 s before each job. Once w2 is idle and the
# queue empty, w1's job runs on w2 too; w2's result wins, w1's run is
# cancelled, and the link finishes long before w1 would have, identical.
case_farm_straggler() {
  FARM=ipc://$W/farm.sock
  "$BIN/thinfarm-coordinator" --listen "$FARM" --store "$W/cstore" --probation 0 \
    --verify-fraction 0 2> coordinator.log &
  pids+=($!)
  for w in w1 w2; do
    local delay=0
    [ $w = w1 ] && delay=30000
    "$BIN/thinfarm-worker" --coordinator "$FARM" --slots 1 --store "$W/$w.store" --name $w \
      --test-delay-ms $delay 2> $w.log &
    pids+=($!)
    for _ in $(seq 100); do grep -q registered $w.log && break; sleep 0.1; done
    grep -q registered $w.log || fail "$w did not register: $(cat $w.log)"
  done
  program
  local start; start=$(date +%s)
  link_farm -r a.o b.o
  local took=$(($(date +%s) - start))
  [ "$took" -lt 20 ] || fail "the link took ${took} s: the straggler was waited for"
  grep -c "straggles on worker w1: it runs on worker w2 too" coordinator.log > /dev/null ||
    fail "no straggler run: $(cat coordinator.log)"
  tail -n1 log.jsonl | grep -c '"jobs_local":0,"jobs_remote":2,.*"workers":{"w2":2}' > /dev/null ||
    fail "not both from w2: $(tail -n1 log.jsonl)"
  echo "link with a 30 s straggler: ${took} s"
}

# The coordinator is killed (SIGKILL) mid-link and started again on the same
# store: the worker registers again by itself, the client submits again what
# it still waits for (what finished meanwhile comes from the action cache),
# and the link finishes on the farm, identical.
case_farm_coordinator_restart() {
  FARM=ipc://$W/farm.sock
  "$BIN/thinfarm-coordinator" --listen "$FARM" --store "$W/cstore" 2> coordinator.log &
  local coord=$!
  pids+=($coord)
  "$BIN/thinfarm-worker" --coordinator "$FARM" --slots 1 --store "$W/wstore" --name w1 2> worker.log &
  pids+=($!)
  for _ in $(seq 100); do grep -q registered worker.log && break; sleep 0.1; done
  grep -q registered worker.log || fail "the worker did not register: $(cat worker.log)"
  big_modules 2 24
  ccthin -c m*.c
  ld.lld-19 -r m*.o -o stock.out
  local start; start=$(date +%s.%N)
  THINFARM_COORDINATOR=$FARM "$TFLD" -r m*.o -o tf.out 2> tf.err &
  local link=$!
  # Kill it once the worker has made some natives (its scratch's slot output).
  sleep 1.2
  kill -0 "$link" 2> /dev/null || fail "the link ended before the coordinator was killed"
  kill -KILL "$coord"
  wait "$coord" 2> /dev/null || true
  "$BIN/thinfarm-coordinator" --listen "$FARM" --store "$W/cstore" 2> coordinator2.log &
  pids+=($!)
  wait "$link" || fail "thinfarm-ld failed: $(cat tf.err)"
  local took; took=$(echo "$(date +%s.%N) - $start" | bc)
  cmp stock.out tf.out || fail "outputs differ"
  tail -n1 log.jsonl | grep -c '"jobs_local":0,"jobs_remote":24,' > /dev/null ||
    fail "not finished on the farm: $(tail -n1 log.jsonl) $(cat tf.err)"
  echo "link with a coordinator restart: ${took}s; $(tail -n1 log.jsonl | grep -o '"cache_hits":[0-9]*')"
  echo "client: $(cat tf.err)"; echo "coordinator after the restart: $(cat coordinator2.log)"; tail -n1 log.jsonl
}

# Nothing listens at the address: the link finishes here, identical, and says so.
case_farm_unreachable() {
  program
  FARM=tcp://127.0.0.1:9
  link_farm -r a.o b.o
  grep -q 'thinfarm-ld: note: farm at tcp://127.0.0.1:9: .*running 2 of 2 backends here' tf.err ||
    fail "no notice: $(cat tf.err)"
  tail -n1 log.jsonl | grep -c '"jobs_local":2,"jobs_remote":0,' > /dev/null || fail "$(tail -n1 log.jsonl)"
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
  # Each ran on the local farm, or (a link that started after another ended)
  # was answered by the link memo.
  [ "$(grep -cE '"memo_hit":true|"jobs_remote":2,' log.jsonl)" = 4 ] ||
    fail "not all run by the local farm: $(cat log.jsonl)"
  [ "$(pgrep -fc "thinfarm-coordinator.*$W/cache")" = 1 ] || fail "not exactly one local coordinator"
  # Its local slots' backend children run in bubblewrap (children of the daemon).
  [ "$(pgrep -c -P "$(head -n1 "$W/cache/daemon.lock")" -x bwrap)" -ge 1 ] ||
    fail "the local slots' backends are not sandboxed: $(cat "$W"/cache/*.log)"
  # A daemon of another thinfarm build (another backend identity) is replaced,
  # not used: the next link stops it and starts its own.
  old=$(head -n1 "$W/cache/daemon.lock")
  echo "LLVM 0.0 another build" > "$W/cache/daemon.id"
  # New code in b.o (and so in a.o, which imports it): neither memo nor
  # action cache can answer.
  echo 'int helper(int x) { return x * 5 + 2; }' > b.c
  ccthin -c b.c
  ld.lld-19 -r a.o b.o -o stock.out
  "$TFLD" -r a.o b.o -o tf5.out 2> tf5.err
  cmp stock.out tf5.out || fail "link after the replacement differs"
  new=$(head -n1 "$W/cache/daemon.lock")
  [ -n "$new" ] && [ "$new" != "$old" ] || fail "the daemon was not replaced ($old -> $new)"
  case "$(ps -o stat= -p "$old" 2> /dev/null)" in ''|Z*) ;; *) fail "the old daemon still runs" ;; esac
  tail -n1 log.jsonl | grep -c '"jobs_remote":2,.*"workers":{"embedded":2}' > /dev/null ||
    fail "not run by the new local farm: $(tail -n1 log.jsonl) $(cat tf5.err)"
}

# The embedded default whose local slots cannot start (a backend program
# that does not run): the daemon says why in its log and stops; the link
# runs here, identical, with one notice, in seconds (it once waited 5 s
# for a daemon that never became ready).
case_embedded_broken_slots() {
  program
  export THINFARM_CACHE_DIR=$W/cache XDG_CONFIG_HOME=$W/noconfig
  mkdir "$W/bin"
  cp "$TFLD" "$BIN/thinfarm-coordinator" "$W/bin/"
  printf '#!/bin/sh\nexit 1\n' > "$W/bin/thinfarm-backend"
  chmod +x "$W/bin/thinfarm-backend"
  ld.lld-19 -r a.o b.o -o stock.out
  "$W/bin/thinfarm-ld" -r a.o b.o -o tf.out 2> tf.err || fail "thinfarm-ld failed: $(cat tf.err)"
  cmp stock.out tf.out || fail "the link differs: $(cat tf.err)"
  [ "$(grep -c 'running 2 of 2 backends here' tf.err)" = 1 ] || fail "no notice: $(cat tf.err)"
  grep -q 'error: local slots: cannot run the backend program' "$W/cache/coordinator.log" ||
    fail "the daemon's log does not say why: $(cat "$W/cache/coordinator.log")"
  for _ in $(seq 50); do flock -n "$W/cache/daemon.lock" true && return; sleep 0.1; done
  fail "the daemon without slots still runs"
}

# Three modules: a imports helper() from b; c imports nothing.
three_modules() {
  program
  echo 'int other(int x) { return x ^ 0x5a; }' > c.c
  ccthin -c c.c
}

# Fields of the last THINFARM_LOG line: "memo_hit cache_hits backends_run ran".
last_log() {
  tail -n1 log.jsonl | python3 -c 'import json,sys; l=json.load(sys.stdin); print(str(l["memo_hit"]).lower(), l["cache_hits"], l["backends_run"], ",".join(sorted(l.get("ran", []))))'
}

expect_log() { # EXPECTED (as last_log prints it) WHAT
  local got; got=$(last_log)
  [ "$got" = "$1" ] || fail "$2: log says '$got', expected '$1': $(tail -n1 log.jsonl)"
}

# The action cache and the link memo on the embedded default: a relink with
# nothing changed is a memo hit; the same objects linked in another directory
# hit the action cache for every backend; an edit re-runs exactly the edited
# module and the one importing from it.
case_cache_hits() {
  three_modules
  export THINFARM_CACHE_DIR=$W/cache XDG_CONFIG_HOME=$W/noconfig
  ld.lld-19 -r a.o b.o c.o -o stock.out
  "$TFLD" -r a.o b.o c.o -o tf.out 2> tf.err || fail "$(cat tf.err)"
  cmp stock.out tf.out || fail "cold link differs"
  expect_log "false 0 3 a.o,b.o,c.o" "cold link"
  rm tf.out
  "$TFLD" -r a.o b.o c.o -o tf.out 2> tf.err || fail "$(cat tf.err)"
  cmp stock.out tf.out || fail "memo hit differs"
  expect_log "true 0 0 " "relink, nothing changed"
  [ -x tf.out ] || [ ! -x stock.out ] || fail "the memo lost the output's mode"
  # Another directory: the memo key has the build directory, the backend key has none.
  mkdir other && cp a.o b.o c.o other/
  (cd other && "$TFLD" -r a.o b.o c.o -o tf.out 2> tf.err) || fail "$(cat other/tf.err)"
  cmp stock.out other/tf.out || fail "link in another directory differs"
  expect_log "false 3 0 " "link in another directory"
  # Edit b.c: b.o and a.o (which imports helper from it) run again, c.o does not.
  echo 'int helper(int x) { return x * 7 + 1; }' > b.c
  ccthin -c b.c
  ld.lld-19 -r a.o b.o c.o -o stock2.out
  "$TFLD" -r a.o b.o c.o -o tf2.out 2> tf2.err || fail "$(cat tf2.err)"
  cmp stock2.out tf2.out || fail "link after the edit differs"
  expect_log "false 1 2 a.o,b.o" "link after editing b.c"
  "$BIN/thinfarm-cache" --json > stats.json || fail "thinfarm-cache failed"
  python3 - <<'PY' || fail "stats: $(cat stats.json)"
import json; s = json.load(open("stats.json"))
assert s["action_hits"] == 4 and s["memo_hits"] == 1 and s["bytes_stored"] > 0 and s["entries"] > 0, s
PY
  echo "stats: $(cat stats.json)"
}

# A file the module asm pulls in with .incbin changes, nothing else does:
# neither the memo nor the action cache may answer with the old bytes (lld's
# own --thinlto-cache-dir does); the module's backend runs again.
case_cache_incbin() {
  export THINFARM_CACHE_DIR=$W/cache XDG_CONFIG_HOME=$W/noconfig
  mkdir -p data && printf 'first version of the data' > data/blob.bin
  cat > m.c <<'C'
asm(".section .rodata.blob,\"a\"\n.globl blob\nblob:\n.incbin \"data/blob.bin\"\n.globl blob_end\nblob_end:\n.previous");
extern const char blob[], blob_end[];
long blob_size(void) { return blob_end - blob; }
C
  echo 'long use(void) { extern long blob_size(void); return blob_size() + 1; }' > u.c
  ccthin -c m.c u.c
  for round in 1 2; do
    ld.lld-19 -r m.o u.o -o stock.out
    "$TFLD" -r m.o u.o -o tf.out 2> tf.err || fail "$(cat tf.err)"
    cmp stock.out tf.out || fail "round $round differs"
    llvm-objcopy-19 -O binary --only-section=.rodata.blob tf.out blob.out
    cmp data/blob.bin blob.out || fail "round $round links stale .incbin data"
    printf 'second version of the data, longer' > data/blob.bin
  done
  # m.o's asm pulls the file in, and u.o imports from m.o (the import brings
  # the asm along): both run again.
  expect_log "false 0 2 m.o,u.o" "after the .incbin file changed"
}

# Damaged blobs in the store: a native object the action cache names and the
# memo's output. Each is found on read, dropped, recomputed; the output stays right.
case_cache_corrupt_blob() {
  three_modules
  export THINFARM_CACHE_DIR=$W/cache XDG_CONFIG_HOME=$W/noconfig
  ld.lld-19 -r a.o b.o c.o -o stock.out
  mkdir -p "$W/scratch"
  THINFARM_KEEP_TEMPS=1 TMPDIR=$W/scratch "$TFLD" -r a.o b.o c.o -o tf.out 2> tf.err ||
    fail "$(cat tf.err)"
  cmp stock.out tf.out || fail "cold link differs"
  stop_daemon
  for f in "$W"/scratch/thinfarm-*/native/*.o tf.out; do
    "$BIN/thinfarm-store-corrupt" "$W/cache/store" "$(sha256sum < "$f" | cut -c1-64)" ||
      fail "no blob for $f in the store"
  done
  # The memo's output is damaged: a miss. The natives are damaged: misses.
  "$TFLD" -r a.o b.o c.o -o tf.out 2> tf.err || fail "$(cat tf.err)"
  cmp stock.out tf.out || fail "link over a damaged store differs"
  expect_log "false 0 3 a.o,b.o,c.o" "link over a damaged store"
  "$BIN/thinfarm-cache" --json > stats.json
  python3 -c 'import json; s = json.load(open("stats.json")); assert s["corrupt"] >= 4, s' ||
    fail "corruption not counted: $(cat stats.json)"
  # Recomputed and stored again: the next relink is a memo hit.
  "$TFLD" -r a.o b.o c.o -o tf.out 2> tf.err || fail "$(cat tf.err)"
  cmp stock.out tf.out || fail "relink differs"
  expect_log "true 0 0 " "relink after the recovery"
}

# The store's owner killed (SIGKILL) while a link uploads into it: the link
# finishes here, identical; the next link starts a new daemon, the store
# reopens and the output is identical again.
case_cache_kill9() {
  export THINFARM_CACHE_DIR=$W/cache XDG_CONFIG_HOME=$W/noconfig
  big_modules 1 48
  ccthin -c m*.c
  ld.lld-19 -r m*.o -o stock.out
  for round in 1 2; do
    [ ! -e "$W/cache/daemon.lock" ] || stop_daemon
    rm -rf "$W/cache/store"
    "$TFLD" -r m*.o -o tf.out 2> tf.err &
    local link=$! pid=
    for _ in $(seq 200); do
      pid=$(head -n1 "$W/cache/daemon.lock" 2> /dev/null || true)
      [ -n "$pid" ] && grep -q 'thinfarm-coordinator' "/proc/$pid/cmdline" 2> /dev/null && break
      sleep 0.01
    done
    [ -n "$pid" ] || fail "no daemon started"
    sleep "0.$((round * 2))"
    kill -KILL "$pid" 2> /dev/null || true
    wait "$link" || fail "round $round: the link failed: $(cat tf.err)"
    cmp stock.out tf.out || fail "round $round: output differs"
    "$TFLD" -r m*.o -o tf.out 2> tf.err || fail "round $round: the link after the kill failed: $(cat tf.err)"
    cmp stock.out tf.out || fail "round $round: output after the kill differs"
  done
  stop_daemon
  "$BIN/thinfarm-cache" --store "$W/cache/store" > stats.txt || fail "the store does not reopen"
  echo "after two kills: $(tr '\n' ' ' < stats.txt)"
}

# Ends the embedded daemon of $THINFARM_CACHE_DIR and waits for its lock.
stop_daemon() {
  local pid; pid=$(head -n1 "$THINFARM_CACHE_DIR/daemon.lock" 2> /dev/null || true)
  [ -n "$pid" ] && kill -TERM "$pid" 2> /dev/null || true
  for _ in $(seq 100); do flock -n "$THINFARM_CACHE_DIR/daemon.lock" true && return; sleep 0.1; done
  fail "the daemon does not stop"
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

# Without a usable bubblewrap a worker refuses to start, naming the way out;
# --no-sandbox runs it with one warning; the local slots of a coordinator
# run unconfined with one notice, and its links stay byte-identical.
case_sandbox_policy() {
  set +e
  "$BIN/thinfarm-worker" --coordinator "ipc://$W/none.sock" --store "$W/s1" --bwrap "$W/no-bwrap" 2> err.txt
  rc=$?
  set -e
  [ "$rc" = 1 ] || fail "a worker without bwrap started (exit $rc)"
  [ "$(grep -c . err.txt)" = 1 ] && grep -c "cannot sandbox backends: $W/no-bwrap is missing: install bubblewrap.*--no-sandbox" err.txt > /dev/null ||
    fail "not the one line wanted: $(cat err.txt)"
  printf '#!/bin/sh\necho "bwrap: No permissions to create new namespace" >&2\nexit 1\n' > "$W/bwrap"
  chmod +x "$W/bwrap"
  FARM=ipc://$W/farm.sock
  "$BIN/thinfarm-coordinator" --listen "$FARM" --store "$W/cstore" --local-slots 1 --bwrap "$W/bwrap" 2> coordinator.log &
  pids+=($!)
  "$BIN/thinfarm-worker" --coordinator "$FARM" --store "$W/s2" --name w1 --bwrap "$W/bwrap" 2> worker.log &&
    fail "a worker whose bwrap cannot make namespaces started"
  grep -c 'cannot make a sandbox here (bwrap: No permissions to create new namespace)' worker.log > /dev/null ||
    fail "the worker does not say why: $(cat worker.log)"
  "$BIN/thinfarm-worker" --coordinator "$FARM" --store "$W/s3" --name w1 --no-sandbox 2> worker.log &
  pids+=($!)
  for _ in $(seq 100); do grep -q registered worker.log && break; sleep 0.1; done
  [ "$(grep -c 'warning: --no-sandbox' worker.log)" = 1 ] || fail "no warning: $(cat worker.log)"
  program
  link_farm -r a.o b.o
  [ "$(grep -c 'notice: local slots run without a sandbox: .*No permissions' coordinator.log)" = 1 ] ||
    fail "the coordinator does not say so once: $(cat coordinator.log)"
}

"case_$CASE"

# A coordinator and benchmark workers as separate processes, for the load and
# dispatch measurements: bench/dispatch.sh, bench/load.sh,
# bench/scale-model.sh and tests/load/load.sh source this. The caller sets
# BIN (the build's bin directory), TMP (a scratch directory) and the array
# pids, which gets every daemon's pid.
#
# start_bench_farm ADDR WORKERS COORDINATOR-FLAGS... -- WORKER-FLAGS...
#   the coordinator listening on ADDR (store TMP/store, log
#   TMP/coordinator.log; COORD is its pid), and WORKERS workers with the same
#   flags, named w1, w2, ... (store TMP/wN, log TMP/wN.log), each waited for
#   until it registered: FARM_WAIT tenths of a second each (default 100).
#   Returns 1, with every log, when one did not.
# bench_farm_stop: the daemons stopped, TMP removed.
start_bench_farm() {
  local addr=$1 workers=$2 i
  shift 2
  local coordinator=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    coordinator+=("$1")
    shift
  done
  [ $# -eq 0 ] || shift # the --
  "$BIN/thinfarm-coordinator" --listen "$addr" --store "$TMP/store" "${coordinator[@]}" \
    2> "$TMP/coordinator.log" &
  pids+=($!)
  COORD=$!
  for ((i = 1; i <= workers; i++)); do
    "$BIN/thinfarm-worker" --coordinator "$addr" --store "$TMP/w$i" --name "w$i" "$@" 2> "$TMP/w$i.log" &
    pids+=($!)
  done
  for ((i = 1; i <= workers; i++)); do
    for _ in $(seq "${FARM_WAIT:-100}"); do grep -q registered "$TMP/w$i.log" 2> /dev/null && break; sleep 0.1; done
    grep -q registered "$TMP/w$i.log" || { echo "worker w$i did not register" >&2; cat "$TMP"/*.log >&2; return 1; }
  done
}

bench_farm_stop() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
  wait 2> /dev/null || true
  rm -rf "$TMP"
}

# The test farm in network namespaces, for tests/kernel/kernel.sh and
# bench/farm-link.sh (sourced; they define say, fail and BIN).
#
# Namespaces $NS-sw (a bridge), $NS-c (the coordinator, 10.213.0.1),
# $NS-w1 and $NS-w2 (workers w1 and w2, one slot each, .2 and .3), $NS-b
# (the client, .4) and $NS-w3 (.5, a worker that lies, when asked): every host has a network stack of its own, only private
# test addresses, nothing outside the sandbox.
NS=tf$$
FARM_PIDS=()
farm_cleanup() {
  local pid i ns rss
  for pid in "${FARM_PIDS[@]}"; do
    # The daemon under `ip netns exec`, for its peak resident set (VmHWM).
    rss=$(awk '/^VmHWM:/ {printf "%.0f MB", $2 / 1024}' "/proc/$pid/status" 2>/dev/null) &&
      echo "farm: $(tr '\0' ' ' < "/proc/$pid/cmdline" | cut -d' ' -f1-3): peak RSS $rss" >&2 || true
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${FARM_PIDS[@]}"; do
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  for ns in w3 b w2 w1 c sw; do ip netns del "$NS-$ns" 2>/dev/null || true; done
}

farm_network() {
  local host addr
  ip netns add "$NS-sw" || return 1
  ip -n "$NS-sw" link add br0 type bridge || return 1
  ip -n "$NS-sw" link set lo up && ip -n "$NS-sw" link set br0 up || return 1
  for host in c:1 w1:2 w2:3 b:4 w3:5; do
    addr=10.213.0.${host#*:} host=${host%:*}
    ip netns add "$NS-$host" || return 1
    ip -n "$NS-sw" link add "p-$host" type veth peer name eth0 netns "$NS-$host" || return 1
    ip -n "$NS-sw" link set "p-$host" master br0 up || return 1
    ip -n "$NS-$host" addr add "$addr/24" dev eth0 || return 1
    ip -n "$NS-$host" link set lo up && ip -n "$NS-$host" link set eth0 up || return 1
  done
}

# start_daemon NS-SUFFIX LOG READY-PATTERN COMMAND...: run a daemon in a
# namespace and wait until its log shows READY-PATTERN.
start_daemon() {
  local ns=$NS-$1 log=$2 ready=$3 i; shift 3
  ip netns exec "$ns" "$@" > "$log" 2>&1 &
  FARM_PIDS+=($!)
  for ((i = 0; i < 300; i++)); do
    grep -q -- "$ready" "$log" 2>/dev/null && { say "$(head -n 1 "$log")"; return; }
    kill -0 "$!" 2>/dev/null || break
    sleep 0.1
  done
  cat "$log" >&2
  fail "$(basename "$1") in $ns did not start (log: $log)"
}


FARM_ENDPOINT=tcp://10.213.0.1:7700

# farm_keys DIR: a keypair each (thinfarm-keygen) for the coordinator (admin),
# workers w1-w3 and one client under DIR/keys, the allow-list DIR/keys/allowed
# admitting them; the client's key file in $FARM_CLIENT_KEY, the
# coordinator's public key in $FARM_COORDINATOR_KEY.
farm_keys() {
  local b role
  mkdir -p "$1/keys"
  for b in coordinator:admin w1:worker w2:worker w3:worker client:client; do
    role=${b#*:} b=${b%:*}
    "$BIN/thinfarm-keygen" --out "$1/keys/$b.key" --name "$b" --role "$role" >> "$1/keys/allowed" ||
      fail "thinfarm-keygen failed"
  done
  FARM_CLIENT_KEY=$1/keys/client.key FARM_COORDINATOR_KEY=$1/keys/coordinator.pub
}

# start_farm DIR [liar]: the coordinator and both workers, stores and logs
# under DIR, every connection with CURVE keys (thinfarm-keygen, under
# DIR/keys): the coordinator admits w1 and w2 as workers and one client key,
# whose file ($FARM_CLIENT_KEY) and the coordinator's public key
# ($FARM_COORDINATOR_KEY) a build passes as THINFARM_KEY and
# THINFARM_COORDINATOR_KEY. With `liar`, a third worker w3 alters every 10th
# object it makes (the coordinator's verification is to catch it).
start_farm() {
  local dir=$1 liar=${2:-} b role workers=(w1 w2)
  [ "$liar" = liar ] && workers+=(w3)
  for b in thinfarm-coordinator thinfarm-worker thinfarm-backend thinfarm-keygen; do
    [ -x "$BIN/$b" ] || fail "no $b beside thinfarm-ld in $BIN"
  done
  rm -rf "$dir" && mkdir -p "$dir"
  farm_keys "$dir"
  start_daemon c "$dir/coordinator.log" "listening on" \
    "$BIN/thinfarm-coordinator" --listen "$FARM_ENDPOINT" --store "$dir/coordinator-store" \
    --key "$dir/keys/coordinator.key" --allow "$dir/keys/allowed"
  for b in "${workers[@]}"; do
    start_daemon "$b" "$dir/$b.log" "registered" \
      "$BIN/thinfarm-worker" --coordinator "$FARM_ENDPOINT" --slots 1 --store "$dir/$b-store" \
      --name "$b" --key "$dir/keys/$b.key" --coordinator-key "$FARM_COORDINATOR_KEY" \
      --test-corrupt-every "$([ $b = w3 ] && echo 10 || echo 0)"
  done
}

#!/usr/bin/env bash
# Benchmark: the test kernel's vmlinux.o link through a farm of two workers
# (one slot each: the machine has two cores) against stock ld.lld-19, paired.
# The coordinator, each worker and the client live in network namespaces of
# their own (tests/kernel/farm-net.sh), so every blob crosses a veth pair.
# The stores start empty: pair 1 uploads all the bitcode (cold), later pairs
# find it stored and move only the native objects back.
#
# usage: bench/farm-link.sh [PAIRS]   (root; default 5; needs the kernel test's tree)
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${1:-5}
TFLD=$(readlink -f "${THINFARM_LD:-build/bin/thinfarm-ld}")
BIN=$(dirname "$TFLD")
say() { echo "farm-link: $*" >&2; }
fail() { echo "farm-link: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (network namespaces)"
source tests/kernel/farm-net.sh
DIR=$(mktemp -d /dev/shm/thinfarm-farm-bench-XXXXXX)
trap 'farm_cleanup; rm -rf "$DIR"' EXIT
farm_network || fail "cannot set up the namespaces"
start_farm "$DIR"
ip netns exec "$NS-b" env THINFARM_COORDINATOR="$FARM_ENDPOINT" THINFARM_LD="$TFLD" \
  THINFARM_KEY="$FARM_CLIENT_KEY" THINFARM_COORDINATOR_KEY="$FARM_COORDINATOR_KEY" \
  THINFARM_LOG="$DIR/log.jsonl" bash bench/vmlinux-link.sh "$PAIRS"
python3 - "$DIR/log.jsonl" <<'PY'
import collections, json, sys
links = [json.loads(l) for l in open(sys.argv[1])]
workers = collections.Counter()
for l in links:
    workers.update(l["workers"])
print(f"{len(links)} thinfarm links; jobs per worker: {dict(workers)}; "
      f"jobs run in thinfarm-ld: {sum(l['jobs_local'] for l in links)}")
PY

#!/usr/bin/env bash
# Where the CPU of one cold embedded vmlinux.o link goes (issue #14): a new
# THINFARM_CACHE_DIR (the embedded coordinator started, its store empty), the
# link timed with /usr/bin/time (thinfarm-ld and its lld children), then the
# embedded daemon's CPU per thread and its backend children's, read from
# /proc before it is stopped.
#
# usage: bench/embedded-cpu.sh   (needs the kernel test's tree)
set -euo pipefail
cd "$(dirname "$0")/.."
TFLD=$(readlink -f "${THINFARM_LD:-build/bin/thinfarm-ld}")
source tests/kernel/vmlinux-o-cmd.sh
OUT=$(readlink -f "${THINFARM_KERNEL_WORK:-build/kernel-work}")/out
vmlinux_o_args "$OUT"
THINFARM_CACHE_DIR=$(mktemp -d /tmp/thinfarm-cache-XXXXXX)
export THINFARM_CACHE_DIR
T=$(mktemp -d)
trap 'rm -rf "$THINFARM_CACHE_DIR" "$T"' EXIT
cd "$OUT"
/usr/bin/time -f 'client: %e s wall, %U s user, %S s sys' "$TFLD" "${VMLINUX_O_ARGS[@]}" -o "$T/tf.o" 2> "$T/err"
grep -E 'client:' "$T/err"
pid=$(cat "$THINFARM_CACHE_DIR/daemon.lock")
tck=$(getconf CLK_TCK)
echo "daemon threads (name, user s, sys s):"
for t in /proc/"$pid"/task/*; do
  awk -v tck="$tck" '{printf "  %s %.2f %.2f\n", $2, $14 / tck, $15 / tck}' "$t/stat"
done | sort -k2 -gr | head -8
awk -v tck="$tck" '{printf "daemon total (children reaped): user %.2f sys %.2f; children user %.2f sys %.2f\n", $14/tck, $15/tck, $16/tck, $17/tck}' /proc/$pid/stat
# The backend children (bwrap -> its init -> thinfarm-backend): alive, so not in the daemon's.
for b in $(pgrep -f "thinfarm-backend" || true); do cat "/proc/$b/stat"; done |
  awk -v tck="$tck" '{u += $14; s += $15} END {printf "backend children: user %.2f sys %.2f\n", u / tck, s / tck}'
kill "$pid"
while kill -0 "$pid" 2> /dev/null; do sleep 0.05; done

#!/usr/bin/env bash
# Records the per-module backend costs of the test kernel's vmlinux.o link for
# the scale model (bench/scale-model.sh): one thinfarm-ld link with its
# backends in this process (THINFARM_COORDINATOR=off, one thread per core) and
# THINFARM_TRACE_COSTS, which appends "SECONDS COST MODULE" per backend (CPU
# seconds of the backend's thread, so a busy machine inflates them less than
# wall time; job.h's cost() estimate in bytes; lld's module name).
# The output is compared with stock ld.lld-19's, so the costs are those of a
# correct link. The kernel tree is only read.
#
# usage: bench/record-costs.sh [OUT-FILE]   (default bench/data/vmlinux-o-costs.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=$(readlink -f "${1:-bench/data/vmlinux-o-costs.txt}")
TFLD=$(readlink -f "${THINFARM_LD:-build/bin/thinfarm-ld}")
OUT=$(readlink -f "${THINFARM_KERNEL_WORK:-build/kernel-work}")/out
[ -f "$OUT/vmlinux.a" ] || { echo "no built kernel in $OUT: run the kernel test first" >&2; exit 1; }
source tests/kernel/vmlinux-o-cmd.sh
vmlinux_o_args "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
(cd "$OUT" && ld.lld-19 "${VMLINUX_O_ARGS[@]}" -o "$TMP/stock.o")
start=$(date +%s.%N)
(cd "$OUT" && THINFARM_COORDINATOR=off THINFARM_TRACE_COSTS="$TMP/costs" THINFARM_LOG="$TMP/log" \
  "$TFLD" "${VMLINUX_O_ARGS[@]}" -o "$TMP/tf.o")
end=$(date +%s.%N)
cmp "$TMP/stock.o" "$TMP/tf.o"
grep -q '"modules":[1-9]' "$TMP/log" || { echo "thinfarm-ld did not split the link" >&2; exit 1; }
{
  echo "# vmlinux.o backend costs: SECONDS COST MODULE (CPU seconds of each backend's thread, cost() in bytes)"
  echo "# made by bench/record-costs.sh on $(date -u +%Y-%m-%d) ($(nproc) cores, $(uname -r)): one link,"
  printf '# THINFARM_COORDINATOR=off, %s modules, link wall %.2f s, output identical to ld.lld-19\n' \
    "$(wc -l < "$TMP/costs")" "$(echo "$end - $start" | bc -l)"
  sort -k1,1gr "$TMP/costs"
} > "$DEST"
awk '!/^#/ {n++; s+=$1; if ($1 > m) m = $1} END {printf "%d modules, sum %.2f s, max %.3f s\n", n, s, m}' "$DEST"

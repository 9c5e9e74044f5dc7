#!/usr/bin/env bash
# Benchmark: a kernel of real size. Linux 6.1, x86_64 defconfig + ThinLTO
# (tests/kernel/kernel.sh, THINFARM_KERNEL=6.1-defconfig): about 2,700 modules in
# the vmlinux.o link, about an hour to build on 2 cores.
#
#   1. stock build, relinked through thinfarm-ld in-process; every artifact
#      identical, every LTO link split; the kernel boots
#   2. relinked through the embedded default, cold (fresh cache) and warm
#   3. relinked through the namespace farm (root only)
#   4. vmlinux.o, paired against stock: in-process, and via the farm (root)
#   5. numbers: modules, bytes in the store, peak RSS of thinfarm-ld (in-process
#      and with every backend cached), of the embedded coordinator and of each
#      farm daemon (printed by the steps above)
#   6. thinfarm-ld's serial stages with every backend in the action cache and
#      the link memo missing (THINFARM_TIMING), median of 3 runs
#
# usage: bench/defconfig.sh [PAIRS]   (default 3; each pair is ~6 minutes)
# Environment: THINFARM_LD (default build/bin/thinfarm-ld), THINFARM_KERNEL_WORK
# (default build/kernel-work; the tree lives in its 6.1-defconfig/ and is
# built once), SKIP_PAIRS=1 (leave out step 4).
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${1:-3}
export THINFARM_LD=$(readlink -f "${THINFARM_LD:-build/bin/thinfarm-ld}")
export THINFARM_KERNEL=6.1-defconfig
export THINFARM_KERNEL_WORK=$(mkdir -p "${THINFARM_KERNEL_WORK:-build/kernel-work}" && cd "${THINFARM_KERNEL_WORK:-build/kernel-work}" && pwd)
KW=$THINFARM_KERNEL_WORK/6.1-defconfig
OUT=$KW/out
say() { echo "defconfig: $*"; }
step() {
  local t0=$SECONDS
  say "kernel.sh $1"
  tests/kernel/kernel.sh "$1" 2>&1 | sed 's/^/  /'
  say "kernel.sh $1: $((SECONDS - t0)) s"
}
root() { [ "$(id -u)" = 0 ] && ip netns list > /dev/null 2>&1; }

step build
step identical
step boot
step embedded
say "embedded store: $(build/bin/thinfarm-cache --store "$KW/cache/store" --json 2>/dev/null || echo '?')"
step warm
if root; then step farm; else say "farm: skipped (needs root)"; fi

# The vmlinux.o link as kbuild ran it, without the linker, -o and objtool.
source tests/kernel/vmlinux-o-cmd.sh
vmlinux_o_args "$OUT"
clean=("${VMLINUX_O_ARGS[@]}")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

say "vmlinux.o: $(grep '"output":"vmlinux.o"' "$KW/thinfarm.log.jsonl" | sed -n 's/.*"modules":\([0-9]*\).*/\1/p') modules, $(stat -c %s "$OUT/vmlinux.o") bytes out"
bitcode=$(cd "$OUT" && for a in "${clean[@]}"; do
  case $a in -*) ;; *.a) llvm-ar-19 t "$a" | while read -r m; do stat -c %s "$m"; done ;; *) [ -f "$a" ] && stat -c %s "$a" ;; esac
done | awk '{s += $1} END {print s}')
say "vmlinux.o inputs: $bitcode bytes"

# Peak RSS of thinfarm-ld: backends in-process, then with every backend in
# the embedded coordinator's action cache (the memo misses: another -o than
# the tree's). Every output is compared with stock's link to the same path
# (lld writes the output's name into the names of its LTO objects).
rss() { awk '/Maximum resident/ {printf "%.0f MB", $NF / 1024}' "$1"; }
link() { # LINKER [env...]: links vmlinux.o to $TMP/vmlinux.o, time -v in $TMP/time
  local ld=$1; shift
  (cd "$OUT" && env "$@" /usr/bin/time -v "$ld" "${clean[@]}" -o "$TMP/vmlinux.o" 2> "$TMP/time")
}
link ld.lld-19 && mv "$TMP/vmlinux.o" "$TMP/stock.o"
say "ld.lld-19 peak RSS: $(rss "$TMP/time")"
link "$THINFARM_LD" THINFARM_COORDINATOR=off
cmp "$TMP/vmlinux.o" "$TMP/stock.o" || { say "FAIL: the in-process vmlinux.o differs"; exit 1; }
say "thinfarm-ld peak RSS, backends in-process: $(rss "$TMP/time") (the process tree: its lld children included)"

export THINFARM_CACHE_DIR=$KW/cache XDG_CONFIG_HOME=$KW/no-config
unset THINFARM_COORDINATOR
rm -f "$TMP/timing.jsonl"
for r in 1 2 3; do
  link "$THINFARM_LD" THINFARM_TIMING=1 THINFARM_LOG=$TMP/timing.jsonl
  cp "$TMP/time" "$TMP/cached-$r.err"
  cmp "$TMP/vmlinux.o" "$TMP/stock.o" || { say "FAIL: vmlinux.o from the cache differs"; exit 1; }
  rm -f "$TMP/vmlinux.o"
  # The memo would answer the next run: one more (redundant) -z noexecstack
  # changes its key, not the output nor the backends' keys.
  clean+=(-z noexecstack)
done
! grep -q '"memo_hit":true' "$TMP/timing.jsonl" || { say "FAIL: a timing run was a memo hit"; exit 1; }
grep -q '"backends_run":0' "$TMP/timing.jsonl" || { say "FAIL: backends ran in the timing runs"; exit 1; }
say "thinfarm-ld peak RSS, every backend cached: $(sed -n 's/^thinfarm-ld: peak RSS //p' "$TMP/cached-1.err") itself, $(rss "$TMP/cached-1.err") with its lld children"
say "serial stages, every backend in the action cache, memo missing (median of 3, seconds):"
python3 - "$TMP" <<'PY'
import re, statistics, sys
runs = []
for r in (1, 2, 3):
    stages = {}
    for line in open(f"{sys.argv[1]}/cached-{r}.err"):
        m = re.match(r"thinfarm-ld: (\S+(?: \S+)?)\s+([0-9.]+) s$", line.strip())
        if m:
            stages[m.group(1)] = float(m.group(2))
        m = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([0-9.]+)", line)
        if m:
            stages["total (wall)"] = int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    runs.append(stages)
for k in runs[0]:
    print(f"  {k:<14} {statistics.median(r.get(k, 0) for r in runs):7.3f}")
PY
fuser -k -TERM "$KW/cache/daemon.lock" > /dev/null 2>&1 || true # the embedded daemon those links used

if [ "${SKIP_PAIRS:-0}" != 1 ]; then
  say "vmlinux.o paired, in-process backends:"
  THINFARM_COORDINATOR=off THINFARM_KERNEL_WORK=$KW bash bench/vmlinux-link.sh "$PAIRS" | sed 's/^/  /'
  if root; then
    say "vmlinux.o paired, through the namespace farm:"
    THINFARM_KERNEL_WORK=$KW bash bench/farm-link.sh "$PAIRS" 2>&1 | sed 's/^/  /'
  fi
fi

#!/usr/bin/env bash
# Benchmark: the test kernel's vmlinux.o link, stock ld.lld-19 against
# thinfarm-ld, in paired runs on the same machine. thinfarm-ld runs its
# backends where THINFARM_COORDINATOR says: a farm, `off` (its own thread
# pool), or unset (the embedded local coordinator, started by the first run).
# Each pair runs both links back to back, alternating which goes first; the
# outputs are compared with cmp every time. Prints each pair, then the median
# wall times and the median of the per-pair ratios thinfarm/stock.
#
# With WARM=1 both sides are warm, as for a relink with nothing changed: stock
# ld.lld-19 gets --thinlto-cache-dir (lld's own ThinLTO cache) and thinfarm-ld
# its link memo and action cache; one unmeasured link of each fills them.
#
# With COLD=1 (THINFARM_COORDINATOR unset: the embedded default), every
# thinfarm-ld link is a user's first: a new THINFARM_CACHE_DIR, so it starts
# the embedded coordinator and fills an empty store; the daemon is stopped
# after the pair. THINFARM_TIMING=1 prints each thinfarm link's stage times.
#
# usage: [WARM=1 | COLD=1] bench/vmlinux-link.sh [PAIRS]   (default 5)
# Needs a built test kernel: THINFARM_KERNEL_WORK (default build/kernel-work,
# as left by the kernel test) and THINFARM_LD (default build/bin/thinfarm-ld).
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${1:-5}
TFLD=$(readlink -f "${THINFARM_LD:-build/bin/thinfarm-ld}")
OUT=$(readlink -f "${THINFARM_KERNEL_WORK:-build/kernel-work}")/out
[ -f "$OUT/vmlinux.a" ] || { echo "no built kernel in $OUT: run the kernel test first" >&2; exit 1; }

# The link command kbuild ran, without the linker, its output and objtool.
source tests/kernel/vmlinux-o-cmd.sh
vmlinux_o_args "$OUT"
clean=("${VMLINUX_O_ARGS[@]}")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
stockextra=()
if [ "${WARM:-0}" = 1 ]; then stockextra=("--thinlto-cache-dir=$TMP/lld-cache"); fi

# Every thinfarm-ld link writes one THINFARM_LOG line, checked after it: a
# link that fell back to lld would otherwise be timed as thinfarm's.
export THINFARM_LOG=${THINFARM_LOG:-$TMP/log.jsonl}
timed() { # LINKER OUTPUT -> seconds on stdout
  local t0 t1 extra=() lines last
  [ "$1" != ld.lld-19 ] || extra=("${stockextra[@]}")
  lines=0
  [ ! -f "$THINFARM_LOG" ] || lines=$(wc -l < "$THINFARM_LOG")
  if [ "$1" != ld.lld-19 ] && [ "${COLD:-0}" = 1 ]; then
    export THINFARM_CACHE_DIR=$TMP/cache # (removed after the link: always a new one)
  fi
  t0=$(date +%s.%N)
  (cd "$OUT" && "$1" "${clean[@]}" "${extra[@]}" -o "$2" 2> "$TMP/err")
  t1=$(date +%s.%N)
  if [ "$1" != ld.lld-19 ] && [ -n "${THINFARM_TIMING:-}" ]; then
    grep -E '^thinfarm-ld: [a-z +]+ +[0-9.]+ s$|peak RSS' "$TMP/err" | tr -s ' ' | tr '\n' ';' >&2
    echo >&2
  fi
  if [ "$1" != ld.lld-19 ] && [ "${COLD:-0}" = 1 ]; then # the daemon goes; the next link starts its own
    local pid; pid=$(cat "$THINFARM_CACHE_DIR/daemon.lock" 2> /dev/null || true)
    [ -z "$pid" ] || { kill "$pid" 2> /dev/null; while kill -0 "$pid" 2> /dev/null; do sleep 0.05; done; }
    rm -rf "$THINFARM_CACHE_DIR"
  fi
  if [ "$1" != ld.lld-19 ]; then
    [ -f "$THINFARM_LOG" ] && [ "$(wc -l < "$THINFARM_LOG")" = $((lines + 1)) ] ||
      { echo "thinfarm-ld wrote no THINFARM_LOG line: it did not split the link" >&2; exit 1; }
    last=$(tail -n1 "$THINFARM_LOG")
    [[ $last =~ \"modules\":[1-9]|\"memo_hit\":true ]] && [[ $last != *'"fallback"'* ]] ||
      { echo "thinfarm-ld did not split the link: $last" >&2; exit 1; }
  fi
  echo "$t1 - $t0" | bc -l
}


echo "vmlinux.o link: ld.lld-19 vs thinfarm-ld (THINFARM_COORDINATOR=${THINFARM_COORDINATOR:-unset}), $PAIRS paired runs, $(nproc) cores"
echo "command: ${clean[*]}"
if [ "${WARM:-0}" = 1 ]; then
  echo "warm: stock with ${stockextra[*]}; thinfarm with its link memo (one unmeasured link each first)"
  timed ld.lld-19 "$TMP/stock.o" > /dev/null
  timed "$TFLD" "$TMP/tf.o" > /dev/null
fi
: > "$TMP/stock" ; : > "$TMP/tf" ; : > "$TMP/ratio"
for ((p = 1; p <= PAIRS; p++)); do
  if ((p % 2)); then
    s=$(timed ld.lld-19 "$TMP/stock.o"); t=$(timed "$TFLD" "$TMP/tf.o")
  else
    t=$(timed "$TFLD" "$TMP/tf.o"); s=$(timed ld.lld-19 "$TMP/stock.o")
  fi
  cmp "$TMP/stock.o" "$TMP/tf.o" || { echo "outputs differ" >&2; exit 1; }
  r=$(echo "$t / $s" | bc -l)
  echo "$s" >> "$TMP/stock"; echo "$t" >> "$TMP/tf"; echo "$r" >> "$TMP/ratio"
  printf 'pair %d: stock %.2f s  thinfarm %.2f s  ratio %.3f  (identical)\n' "$p" "$s" "$t" "$r"
done
printf 'median: stock %.2f s  thinfarm %.2f s  ratio thinfarm/stock %.3f\n' \
  "$(median < "$TMP/stock")" "$(median < "$TMP/tf")" "$(median < "$TMP/ratio")"

#!/usr/bin/env bash
# Runs the libFuzzer targets, one after the other, each for SECONDS on a copy
# of its committed corpus (the corpus in the tree is left as it is), and
# prints one line per target: executions, executions per second, corpus
# growth. Exits 1 if any target found a crash, a leak, a timeout or ran out
# of memory; the input that did it is kept in $THINFARM_FUZZ_BUILD/findings/
# (add it to corpus/<target>/ as finding-NAME once fixed).
# usage: run.sh SECONDS [TARGET...]    (targets: wire_codec, archive, ...; default all)
# The build: $THINFARM_FUZZ_BUILD (default build-fuzz), made with -DTHINFARM_FUZZ=ON.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:?usage: run.sh SECONDS [TARGET...]}
shift
build=$(realpath "${THINFARM_FUZZ_BUILD:-$here/../../build-fuzz}")
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$here"/*_fuzz.cpp; do t=${f##*/}; targets+=("${t%_fuzz.cpp}"); done
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
status=0
for t in "${targets[@]}"; do
  bin=$build/fuzz/${t}_fuzz
  [ -x "$bin" ] || { echo "fuzz: $t: no $bin (build with -DTHINFARM_FUZZ=ON: ninja fuzz)"; status=1; continue; }
  corpus=$work/$t/corpus findings=$build/findings/$t
  mkdir -p "$corpus" "$findings" "$work/$t/tmp"
  cp "$here/corpus/$t"/* "$corpus/"
  seeds=$(ls "$corpus" | wc -l)
  log=$work/$t/log
  rc=0
  # -timeout: one input; -rss_limit_mb: the process; the targets keep their
  # scratch files (a store, response files) under this run's TMPDIR.
  TMPDIR=$work/$t/tmp "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$findings/" "$corpus" > "$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [ "$rc" = 0 ]; then
    echo "fuzz: $t: ${execs:-?} executions in ${seconds} s, ${rate:-?} exec/s, corpus $seeds -> $(ls "$corpus" | wc -l)"
  else
    status=1
    what=$(grep -m1 -oE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer): [a-z-]+|runtime error: .*|fuzz invariant broken: .*' "$log" || echo "exit $rc")
    echo "fuzz: $t: FOUND ${what} after ${execs:-?} executions; input: $(ls -t "$findings" | head -1 | sed "s|^|$findings/|")"
    grep -E '^(==[0-9]+==|    #[0-9]+ |SUMMARY|.*runtime error|fuzz invariant)' "$log" | head -40 | sed 's/^/  /'
  fi
done
exit $status

#!/usr/bin/env bash
# Differential testing for as long as asked: random ThinLTO links linked by
# stock ld.lld-19 and by thinfarm-ld, compared byte for byte
# (tests/differential/difftest.py). Seeds run from FIRST upwards, one per core
# at a time, until SECONDS have passed; then the totals: links split and
# identical, differences (each saved with a run.sh under the output directory),
# fall-backs, generator failures, and the closing
# `differential: N passed, M failed`. Exit status 1 when any link differed.
#
# usage: bench/differential.sh SECONDS [FIRST]
#   FIRST   first seed (default: a new one every run, printed; pass it to repeat)
#   THINFARM_LD=path  thinfarm-ld to test (default build/bin/thinfarm-ld)
#   OUT=dir           where differences are saved (default a new /tmp directory)
#   REDUCE=1          reduce every class of difference found (slow)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_WANTED=${1:?usage: bench/differential.sh SECONDS [FIRST]}
FIRST=${2:-$(( ($(date +%s) % 100000) * 1000 + 1000 ))}
LD=$(readlink -f "${THINFARM_LD:-build/bin/thinfarm-ld}")
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/thinfarm-differential-XXXXXX")}
echo "differential: seeds from $FIRST for ${SECONDS_WANTED}s, $(nproc) cores, $LD, differences in $OUT"
extra=()
[ "${REDUCE:-0}" != 0 ] && extra+=(--reduce)
exec python3 tests/differential/difftest.py --seeds "$FIRST-" --time-limit "$SECONDS_WANTED" \
  --jobs "$(nproc)" --quiet --out "$OUT" --ld "$LD" "${extra[@]}"

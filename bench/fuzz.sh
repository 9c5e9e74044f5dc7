#!/usr/bin/env bash
# A longer run of the libFuzzer targets (tests/fuzz): configures and builds
# the fuzz build (clang-19, ASan + UBSan, build-fuzz/ or $THINFARM_FUZZ_BUILD)
# and runs every target for SECONDS, one after the other, on a copy of its
# committed corpus. Prints one line per target (executions, exec/s, corpus
# growth); fails on any finding (its input is kept in BUILD/findings/).
# Figures: BENCHMARKS.md, "libFuzzer targets".
# usage: bench/fuzz.sh [SECONDS] [TARGET...]   (default 600 s per target, all)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
build=${THINFARM_FUZZ_BUILD:-build-fuzz}
launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
CC=clang-19 CXX=clang++-19 cmake -S . -B "$build" -G Ninja -DTHINFARM_FUZZ=ON -DBUILD_TESTING=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" > /dev/null
ninja -C "$build" fuzz > /dev/null
echo "fuzz: $(nproc) cores, $seconds s per target, $(date -u +%Y-%m-%d)"
THINFARM_FUZZ_BUILD=$build exec tests/fuzz/run.sh "$seconds" "$@"

#!/usr/bin/env bash
# Benchmark: the longer chaos run of issue #13 (item 6). tests/chaos/chaos.sh
# with more links than CI's three (default 12): the test kernel's vmlinux.o
# relinked through a namespace farm of three workers while workers are
# killed, frozen past the job deadline, cut from the network and have their
# disk filled, and the coordinator is killed and started again once. Every
# link must be byte-identical to stock and finish; it prints each link's time
# over a calm one (measured after a warm-up link, CHAOS_WARMUP=1, so that it
# too finds the workers' stores filled) and, at the end, the median and the
# worst (BENCHMARKS.md).
#
# usage: bench/chaos.sh [LINKS]   (root; default 12; needs the kernel test's tree)
#   CHAOS_SEED, CHAOS_EVENTS, CHAOS_DEADLINE: as tests/chaos/chaos.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CHAOS_WARMUP=1 exec bash tests/chaos/chaos.sh "${1:-12}"

#!/usr/bin/env bash
# The test suite on a fresh machine (what CI runs): install what is missing,
# build thinfarm, run the unit, integration and kernel tests, then the unit and
# integration tests again under AddressSanitizer + UBSan.
#   deploy/run-tests.sh            everything
#   deploy/run-tests.sh -L unit    ctest arguments select a subset (no sanitizer pass)
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
deploy/build.sh
if [ $# -gt 0 ]; then
  (cd build && ctest --output-on-failure -j"$(nproc)" "$@")
  exit
fi
THINFARM_BUILD_DIR=build-asan deploy/build.sh -DTHINFARM_ASAN=ON
(cd build-asan && ASAN_OPTIONS=detect_leaks=0 ctest --output-on-failure -j"$(nproc)" -L 'unit|integration')
# The full suite last: its summary is the run's closing line.
(cd build && ctest --output-on-failure -j"$(nproc)")

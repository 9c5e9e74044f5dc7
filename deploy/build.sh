#!/usr/bin/env bash
# Configures and builds thinfarm into build/ (or $THINFARM_BUILD_DIR).
# Extra arguments go to cmake, e.g. -DTHINFARM_ASAN=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${THINFARM_BUILD_DIR:-build}
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" > /dev/null
ninja -C "$dir"

#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, build thinfarm,
# build the test ThinLTO kernel through thinfarm-ld and boot it in qemu.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
deploy/build.sh
THINFARM_LD=$PWD/build/bin/thinfarm-ld THINFARM_KERNEL_WORK=$PWD/build/kernel-demo \
  tests/kernel/kernel.sh demo

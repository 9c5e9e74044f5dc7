#!/usr/bin/env bash
# A second kernel, outside the CI run: built once with stock ld.lld-19,
# relinked through thinfarm-ld, compared byte for byte (vmlinux.o, vmlinux,
# bzImage, every .ko; every ThinLTO link split) and booted in qemu. Prints the
# time of each step.
#
# usage: bench/kernel-variant.sh [VARIANT]   (default 6.12-ibt; see
#        tests/kernel/kernel.sh for 6.1-ibt, 6.1-defconfig)
# THINFARM_LD (default build/bin/thinfarm-ld), THINFARM_KERNEL_WORK (default
# build/kernel-work; the variant lives in a subdirectory and is built once).
set -euo pipefail
cd "$(dirname "$0")/.."
export THINFARM_KERNEL=${1:-6.12-ibt}
export THINFARM_LD=${THINFARM_LD:-build/bin/thinfarm-ld}
export THINFARM_KERNEL_WORK=${THINFARM_KERNEL_WORK:-build/kernel-work}
for step in build identical boot; do
  start=$SECONDS
  bash tests/kernel/kernel.sh "$step"
  echo "kernel-variant: $THINFARM_KERNEL $step: $((SECONDS - start)) s"
done

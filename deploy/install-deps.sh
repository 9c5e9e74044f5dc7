#!/usr/bin/env bash
# Installs the Debian packages thinfarm builds and tests with. Idempotent: it
# asks apt only for what is missing, so a warm machine pays a dpkg query.
set -euo pipefail
pkgs=(
  cmake g++ make ninja-build pkg-config git
  clang-19 lld-19 llvm-19 llvm-19-dev libclang-rt-19-dev libfuzzer-19-dev
  capnproto libcapnp-dev libzmq3-dev cppzmq-dev librocksdb-dev libssl-dev
  libboost-dev libboost-system-dev libgtest-dev nlohmann-json3-dev
  linux-source-6.1 linux-source-6.12 flex bison libelf-dev bc cpio busybox-static qemu-system-x86
  xz-utils zstd iproute2
  bubblewrap
  csmith cvise
  clang-tidy-19
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "install-deps: installing ${missing[*]}"
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

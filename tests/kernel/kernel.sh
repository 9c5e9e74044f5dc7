#!/usr/bin/env bash
# The kernel end-to-end test: a Linux 6.1 ThinLTO kernel (the test config
# below) built with stock ld.lld-19 and through thinfarm-ld, compared byte for
# byte, and the thinfarm kernel booted in qemu.
#
#   kernel.sh build     stock build, saved as the reference; then the same tree
#                       relinked through thinfarm-ld (LD=thinfarm-ld: kbuild
#                       re-runs every command that uses $(LD), that is every
#                       LTO link: vmlinux.o and all module links)
#   kernel.sh identical vmlinux.o, vmlinux, bzImage and every .ko identical;
#                       THINFARM_LOG shows every LTO link was split
#   kernel.sh boot      the thinfarm bzImage boots to the initramfs marker
#   kernel.sh demo      configure, build through thinfarm-ld only, and boot
#
# Environment: THINFARM_LD (the thinfarm-ld binary), THINFARM_KERNEL_WORK (the
# work directory, default ./kernel-work; the tree is built once and reused by
# every check), JOBS (make -j, default: cores).
set -euo pipefail

STEP=${1:?usage: kernel.sh build|identical|boot|demo}
TFLD=$(readlink -f "${THINFARM_LD:?set THINFARM_LD to the thinfarm-ld binary}")
WORK=$(mkdir -p "${THINFARM_KERNEL_WORK:-kernel-work}" && cd "${THINFARM_KERNEL_WORK:-kernel-work}" && pwd)
JOBS=${JOBS:-$(nproc)}
SRC=$WORK/linux-6.1
OUT=$WORK/out
REF=$WORK/ref
LOG=$WORK/thinfarm.log.jsonl
MARKER=THINFARM-BOOT-OK

# Reproducible builds: the same tree linked twice must give the same bytes.
export KBUILD_BUILD_TIMESTAMP='Thu Jan  1 00:00:00 UTC 2026'
export KBUILD_BUILD_USER=thinfarm KBUILD_BUILD_HOST=thinfarm KBUILD_BUILD_VERSION=1

say() { echo "kernel.sh: $*" >&2; }
fail() { echo "kernel.sh: FAIL: $*" >&2; exit 1; }

prepare_source() {
  if [ ! -f "$SRC/Makefile" ]; then
    say "unpacking /usr/src/linux-source-6.1.tar.xz"
    rm -rf "$SRC.tmp" && mkdir -p "$SRC.tmp"
    tar -xf /usr/src/linux-source-6.1.tar.xz -C "$SRC.tmp" --strip-components=1
    mv "$SRC.tmp" "$SRC"
  fi
  mkdir -p "$OUT"
  if [ ! -f "$OUT/.config" ]; then
    say "configuring (tinyconfig + ThinLTO, modules, serial console, initrd)"
    make -C "$SRC" O="$OUT" LLVM=-19 tinyconfig > /dev/null
    "$SRC/scripts/config" --file "$OUT/.config" -e 64BIT -e LTO_CLANG_THIN -d LTO_NONE \
      -e MODULES -e MODULE_UNLOAD -e PRINTK -e TTY -e SERIAL_8250 -e SERIAL_8250_CONSOLE \
      -e BLK_DEV_INITRD -e BINFMT_ELF -e BINFMT_SCRIPT -e PROC_FS -e SYSFS -e DEVTMPFS \
      -e KALLSYMS -m CRC_ITU_T -m CRC7 -m LIBCRC32C -m CRC8 -e CRYPTO -m CRYPTO_SHA256 \
      -m CRYPTO_AES -e BLOCK -m EXT2_FS -m ZRAM -e SWAP -m CONFIGS -e IKCONFIG
    make -C "$SRC" O="$OUT" LLVM=-19 olddefconfig > /dev/null
    grep -q '^CONFIG_LTO_CLANG_THIN=y' "$OUT/.config" || fail "ThinLTO is not enabled in the config"
  fi
}

# make with the given LD; thinfarm-ld is found on PATH under its own name.
kmake() {
  local ld=$1
  mkdir -p "$WORK/bin" && ln -sf "$TFLD" "$WORK/bin/thinfarm-ld"
  PATH="$WORK/bin:$PATH" make -C "$SRC" O="$OUT" LLVM=-19 LD="$ld" -j"$JOBS" > "$WORK/make-$ld.log" 2>&1 ||
    { tail -n 40 "$WORK/make-$ld.log" >&2; fail "make LD=$ld failed (log: $WORK/make-$ld.log)"; }
}

artifacts() { (cd "$OUT" && echo vmlinux.o && echo vmlinux && echo arch/x86/boot/bzImage && find . -name '*.ko' | sed 's|^\./||' | sort); }

step_build() {
  prepare_source
  say "stock build (LD=ld.lld-19)"
  local t0=$SECONDS
  kmake ld.lld-19
  say "stock build took $((SECONDS - t0)) s"
  rm -rf "$REF" && mkdir -p "$REF"
  artifacts | while read -r f; do mkdir -p "$REF/$(dirname "$f")" && cp "$OUT/$f" "$REF/$f"; done
  say "relink through thinfarm-ld (LD=thinfarm-ld)"
  rm -f "$LOG"
  t0=$SECONDS
  THINFARM_LOG=$LOG kmake thinfarm-ld
  say "thinfarm relink took $((SECONDS - t0)) s"
}

step_identical() {
  [ -f "$LOG" ] || fail "no thinfarm log: run 'kernel.sh build' first"
  local n=0
  while read -r f; do
    cmp "$REF/$f" "$OUT/$f" || fail "$f differs from the stock build"
    n=$((n + 1))
  done < <(artifacts)
  local kos; kos=$(artifacts | grep -c '\.ko$')
  [ "$kos" -ge 10 ] || fail "only $kos modules were built"
  say "$n files identical to the stock build (vmlinux.o, vmlinux, bzImage, $kos modules)"
  # Every LTO link went through the split, none fell back.
  if grep -q '"fallback"' "$LOG"; then fail "links fell back to lld: $(grep fallback "$LOG")"; fi
  local vmods; vmods=$(grep '"output":"vmlinux.o"' "$LOG" | sed -n 's/.*"modules":\([0-9]*\).*/\1/p')
  [ -n "$vmods" ] && [ "$vmods" -gt 500 ] || fail "vmlinux.o was not split (log: $(cat "$LOG"))"
  local links; links=$(wc -l < "$LOG")
  [ "$links" -ge $((kos + 1)) ] || fail "$links split links for vmlinux.o and $kos modules"
  say "split links: $links (vmlinux.o: $vmods modules)"
}

boot() {
  local bz=$1 cpio=$WORK/initramfs.cpio
  cat > "$WORK/init.sh" <<INIT
#!/bin/sh
echo $MARKER
/bin/busybox reboot -f
INIT
  cat > "$WORK/initramfs.list" <<LIST
dir /dev 755 0 0
nod /dev/console 600 0 0 c 5 1
dir /bin 755 0 0
file /bin/busybox /bin/busybox 755 0 0
slink /bin/sh busybox 777 0 0
dir /proc 755 0 0
file /init $WORK/init.sh 755 0 0
LIST
  "$OUT/usr/gen_init_cpio" "$WORK/initramfs.list" > "$cpio"
  timeout 300 qemu-system-x86_64 -kernel "$bz" -initrd "$cpio" \
    -append "console=ttyS0 panic=-1" -nographic -no-reboot -m 256 \
    < /dev/null > "$WORK/boot.log" 2>&1 || true
  grep -q "^$MARKER" "$WORK/boot.log" || { tail -n 30 "$WORK/boot.log" >&2; fail "no boot marker"; }
  say "booted: $(grep -m1 'Linux version' "$WORK/boot.log" | sed 's/.*Linux version/Linux version/' | cut -c1-60)... marker seen"
}

step_boot() {
  [ -f "$OUT/arch/x86/boot/bzImage" ] || fail "no bzImage: run 'kernel.sh build' first"
  boot "$OUT/arch/x86/boot/bzImage"
}

step_demo() {
  prepare_source
  say "building the kernel through thinfarm-ld"
  local t0=$SECONDS
  THINFARM_LOG=$LOG kmake thinfarm-ld
  say "built in $((SECONDS - t0)) s; $(wc -l < "$LOG") ThinLTO links split"
  boot "$OUT/arch/x86/boot/bzImage"
}

"step_$STEP"

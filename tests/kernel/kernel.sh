#!/usr/bin/env bash
# The kernel end-to-end test: a Linux 6.1 ThinLTO kernel (the test config
# below) built with stock ld.lld-19 and through thinfarm-ld, compared byte for
# byte, and the thinfarm kernel booted in qemu.
#
#   kernel.sh build     stock build, saved as the reference; then the same tree
#                       relinked through thinfarm-ld (LD=thinfarm-ld: kbuild
#                       re-runs every command that uses $(LD), that is every
#                       LTO link: vmlinux.o and all module links), backends
#                       in-process (THINFARM_COORDINATOR=off)
#   kernel.sh identical vmlinux.o, vmlinux, bzImage and every .ko identical;
#                       THINFARM_LOG shows every LTO link was split
#   kernel.sh farm      (root) relinked again through a coordinator and two
#                       workers, each in a network namespace of its own, the
#                       build in a fourth; identical, and both workers ran jobs.
#                       Exits 77 (skipped) without root or ip netns
#   kernel.sh embedded  relinked again with THINFARM_COORDINATOR unset (the
#                       embedded local daemon, a fresh cache, make -j2);
#                       identical, every link went through the daemon
#   kernel.sh boot      the thinfarm bzImage boots to the initramfs marker
#   kernel.sh demo      configure, build through thinfarm-ld only, and boot
#
# Environment: THINFARM_LD (the thinfarm-ld binary; thinfarm-coordinator,
# thinfarm-worker and thinfarm-backend are beside it), THINFARM_KERNEL_WORK (the
# work directory, default ./kernel-work; the tree is built once and reused by
# every check), JOBS (make -j, default: cores).
set -euo pipefail

STEP=${1:?usage: kernel.sh build|identical|farm|embedded|boot|demo}
TFLD=$(readlink -f "${THINFARM_LD:?set THINFARM_LD to the thinfarm-ld binary}")
BIN=$(dirname "$TFLD")
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

# make with the given LD; thinfarm-ld is found on PATH under its own name, and
# under a thinfarm-ld-* name given as LD (a symlink to it in $WORK/bin). Any
# further arguments are a command to run make under (ip netns exec NS).
kmake() {
  local ld=$1; shift
  mkdir -p "$WORK/bin" && ln -sf "$TFLD" "$WORK/bin/thinfarm-ld"
  case $ld in thinfarm-ld-*) ln -sf "$TFLD" "$WORK/bin/$ld" ;; esac
  PATH="$WORK/bin:$PATH" "$@" make -C "$SRC" O="$OUT" LLVM=-19 LD="$ld" -j"$JOBS" > "$WORK/make-$ld.log" 2>&1 ||
    { tail -n 40 "$WORK/make-$ld.log" >&2; fail "make LD=$ld failed (log: $WORK/make-$ld.log)"; }
}

artifacts() { (cd "$OUT" && echo vmlinux.o && echo vmlinux && echo arch/x86/boot/bzImage && find . -name '*.ko' | sed 's|^\./||' | sort); }

# Every artifact byte-identical to the stock build's copy in $REF.
same_as_ref() {
  local n=0 f kos
  while read -r f; do
    cmp "$REF/$f" "$OUT/$f" || fail "$f differs from the stock build"
    n=$((n + 1))
  done < <(artifacts)
  kos=$(artifacts | grep -c '\.ko$')
  [ "$kos" -ge 10 ] || fail "only $kos modules were built"
  say "$n files identical to the stock build (vmlinux.o, vmlinux, bzImage, $kos modules)"
}

# The LD name for relinking the tree once more. kbuild re-runs a command when
# its command line changes, so a step links under a name of its own (a symlink
# to thinfarm-ld), or under a second one when the tree was last linked under
# the first (the step run twice in a row).
relink_ld() {
  local ld=thinfarm-ld-$1
  if grep -qF -- "$ld " "$OUT/.vmlinux.o.cmd" 2>/dev/null; then ld=$ld-2; fi
  echo "$ld"
}

# check_log MODE FILE: the THINFARM_LOG of a relink. off: every backend ran in
# thinfarm-ld. farm|embedded: the same links as the in-process relink of
# 'kernel.sh build' ($LOG), none fell back, and the backends ran on the farm:
# farm, all of them, and both workers w1 and w2 ran some; embedded, some of
# every link's (a job whose .incbin leaves the tree may run in thinfarm-ld).
check_log() {
  python3 - "$1" "$2" "$LOG" <<'PY' || fail "THINFARM_LOG $2 (above)"
import collections, json, sys
mode, path, refpath = sys.argv[1:]
links = [json.loads(line) for line in open(path)]
errors = [f"{l['output']}: fell back: {l['fallback']}" for l in links if "fallback" in l]
links = [l for l in links if "fallback" not in l]
if mode != "off":
    want = collections.Counter(json.loads(line)["output"] for line in open(refpath))
    got = collections.Counter(l["output"] for l in links)
    if got != want:
        errors.append(f"{sum(got.values())} split links, the in-process relink had {sum(want.values())}: "
                      f"missing {sorted((want - got).elements())}, extra {sorted((got - want).elements())}")
workers = collections.Counter()
for l in links:
    workers.update(l["workers"])
    local, remote, modules = l["jobs_local"], l["jobs_remote"], l["modules"]
    if local + remote != modules:
        errors.append(f"{l['output']}: {local} local + {remote} remote jobs for {modules} modules")
    if mode == "off" and remote != 0:
        errors.append(f"{l['output']}: {remote} jobs remote with THINFARM_COORDINATOR=off")
    if mode == "farm" and local != 0:
        errors.append(f"{l['output']}: {local} of {modules} jobs ran in thinfarm-ld, not on the farm")
    if mode == "embedded" and remote == 0:
        errors.append(f"{l['output']}: no job ran through the embedded coordinator")
if mode == "farm":
    for w in ("w1", "w2"):
        if workers[w] == 0:
            errors.append(f"worker {w} ran no jobs (jobs per worker: {dict(workers)})")
for e in errors:
    print("  " + e, file=sys.stderr)
jobs = ", ".join(f"{w} {n}" for w, n in sorted(workers.items()))
print(f"kernel.sh: {path}: {len(links)} split links, jobs: {jobs}", file=sys.stderr)
sys.exit(1 if errors else 0)
PY
}

step_build() {
  prepare_source
  say "stock build (LD=ld.lld-19)"
  local t0=$SECONDS
  kmake ld.lld-19
  say "stock build took $((SECONDS - t0)) s"
  rm -rf "$REF" && mkdir -p "$REF"
  artifacts | while read -r f; do mkdir -p "$REF/$(dirname "$f")" && cp "$OUT/$f" "$REF/$f"; done
  say "relink through thinfarm-ld (LD=thinfarm-ld, THINFARM_COORDINATOR=off)"
  rm -f "$LOG"
  t0=$SECONDS
  THINFARM_COORDINATOR=off THINFARM_LOG=$LOG kmake thinfarm-ld
  say "thinfarm relink took $((SECONDS - t0)) s"
}

step_identical() {
  [ -f "$LOG" ] || fail "no thinfarm log: run 'kernel.sh build' first"
  same_as_ref
  local kos; kos=$(artifacts | grep -c '\.ko$')
  # Every LTO link went through the split, none fell back.
  if grep -q '"fallback"' "$LOG"; then fail "links fell back to lld: $(grep fallback "$LOG")"; fi
  local vmods; vmods=$(grep '"output":"vmlinux.o"' "$LOG" | sed -n 's/.*"modules":\([0-9]*\).*/\1/p')
  [ -n "$vmods" ] && [ "$vmods" -gt 500 ] || fail "vmlinux.o was not split (log: $(cat "$LOG"))"
  local links; links=$(wc -l < "$LOG")
  [ "$links" -ge $((kos + 1)) ] || fail "$links split links for vmlinux.o and $kos modules"
  say "split links: $links (vmlinux.o: $vmods modules)"
  check_log off "$LOG"
}

# The farm in network namespaces: farm_network, start_farm, farm_cleanup.
source "$(dirname "${BASH_SOURCE[0]}")/farm-net.sh"

step_farm() {
  [ "$(id -u)" = 0 ] || { say "SKIP: the farm test needs root (network namespaces)"; exit 77; }
  ip netns list > /dev/null 2>&1 || { say "SKIP: 'ip netns' is not available"; exit 77; }
  [ -f "$LOG" ] || fail "no thinfarm log: run 'kernel.sh build' first"
  trap farm_cleanup EXIT
  farm_network || { farm_cleanup; say "SKIP: cannot set up the namespaces, bridge and veth pairs"; exit 77; }
  local dir=$WORK/farm farmlog=$WORK/farm.log.jsonl endpoint=$FARM_ENDPOINT
  start_farm "$dir"
  local ld; ld=$(relink_ld farm)
  say "relink in $NS-b through the farm at $endpoint (LD=$ld)"
  rm -f "$farmlog"
  local t0=$SECONDS
  THINFARM_COORDINATOR=$endpoint THINFARM_LOG=$farmlog kmake "$ld" ip netns exec "$NS-b"
  say "farm relink took $((SECONDS - t0)) s"
  same_as_ref
  check_log farm "$farmlog"
}

# The daemon thinfarm-ld started for the cache directory $1: ends it and waits
# until it lets go of its lock. Fails when there is none.
stop_embedded() {
  local lock=$1/daemon.lock pid found= i
  for pid in $(fuser "$lock" 2>/dev/null); do
    # argv: .../thinfarm-coordinator ... --lock CACHE/daemon.lock
    local argv; argv=$(tr '\0' '\n' 2>/dev/null < "/proc/$pid/cmdline") || continue
    [[ $(head -n 1 <<< "$argv") == */thinfarm-coordinator ]] && grep -qxF -- "$lock" <<< "$argv" || continue
    found=$pid
    kill -TERM "$pid"
  done
  [ -n "$found" ] || return 1
  for ((i = 0; i < 100; i++)); do flock -n "$lock" true && return; sleep 0.1; done
  kill -KILL "$found" 2>/dev/null || true
}

step_embedded() {
  [ -f "$LOG" ] || fail "no thinfarm log: run 'kernel.sh build' first"
  local cache=$WORK/cache embeddedlog=$WORK/embedded.log.jsonl
  # A fresh cache, hence a daemon of this step's own; no config file either.
  [ ! -e "$cache/daemon.lock" ] || stop_embedded "$cache" || true
  rm -rf "$cache"
  unset THINFARM_COORDINATOR
  export THINFARM_CACHE_DIR=$cache XDG_CONFIG_HOME=$WORK/no-config JOBS=2
  trap 'stop_embedded "$THINFARM_CACHE_DIR" || true' EXIT
  local ld; ld=$(relink_ld local)
  say "relink through the embedded coordinator, cache $cache (LD=$ld, make -j$JOBS)"
  rm -f "$embeddedlog"
  local t0=$SECONDS
  THINFARM_LOG=$embeddedlog kmake "$ld"
  say "embedded relink took $((SECONDS - t0)) s"
  trap - EXIT
  stop_embedded "$cache" || fail "no embedded coordinator holds $cache/daemon.lock after the relink"
  say "embedded coordinator stopped: $(head -n 1 "$cache/coordinator.log")"
  same_as_ref
  check_log embedded "$embeddedlog"
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

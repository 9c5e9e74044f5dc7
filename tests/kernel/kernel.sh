#!/usr/bin/env bash
# The kernel end-to-end test: a Linux ThinLTO kernel (the test config below;
# which kernel: THINFARM_KERNEL, see Environment) built with stock ld.lld-19
# and through thinfarm-ld, compared byte for byte, and the thinfarm kernel
# booted in qemu.
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
#                       build in a fourth; identical, and both workers ran jobs;
#                       a third worker that alters every 10th object is
#                       quarantined during its probation, output still identical.
#                       Exits 77 (skipped) without root or ip netns
#   kernel.sh embedded  relinked again with THINFARM_COORDINATOR unset (the
#                       embedded local daemon, a fresh cache, make -j2);
#                       identical, every link went through the daemon
#   kernel.sh warm      relinked again with nothing changed, on the embedded
#                       step's (warm) cache: every link a link-memo hit, identical
#   kernel.sh copied    the build directory copied elsewhere and relinked there:
#                       the memo cannot answer (another directory), the action
#                       cache answers every backend; identical
#   kernel.sh edit      a line added to kernel/fork.c, stock rebuild as the new
#                       reference, then relinked: in vmlinux.o exactly fork.o's
#                       backend and those of the modules importing from it run
#                       (stock lld's own import lists say which); identical
#   kernel.sh config    CONFIG_CRC8 toggled (m <-> n) under CONFIG_IKCONFIG=y:
#                       kernel/config_data.gz changes, kernel/configs.o does not;
#                       stock rebuild, relinked: in vmlinux.o only configs.o's
#                       backend runs, and the output is identical (lld's own
#                       --thinlto-cache-dir would link the stale config here)
#   kernel.sh boot      the thinfarm bzImage boots to the initramfs marker
#   kernel.sh demo      configure, build through thinfarm-ld only, and boot
#
# Environment: THINFARM_LD (the thinfarm-ld binary; thinfarm-coordinator,
# thinfarm-worker and thinfarm-backend are beside it), THINFARM_KERNEL_WORK (the
# work directory, default ./kernel-work; the tree is built once and reused by
# every check), JOBS (make -j, default: cores), THINFARM_KERNEL (the variant):
#   6.1       (default) Linux 6.1 from /usr/src/linux-source-6.1.tar.xz, Intel
#             IBT off; everything directly in the work directory
#   6.1-ibt   Linux 6.1 with CONFIG_X86_KERNEL_IBT=y (kbuild compiles with
#             -fcf-protection=branch: every C object, so every .ko, carries a
#             .note.gnu.property with the x86 IBT feature; vmlinux.o has none,
#             assembly objects lack the note)
#   6.12-ibt  Linux 6.12 (/usr/src/linux-source-6.12.tar.xz), IBT on
#   6.1-defconfig  Linux 6.1, x86_64 defconfig + ThinLTO: a kernel of real size
#             (thousands of modules in vmlinux.o, about an hour to build on 2
#             cores; bench/defconfig.sh, not CI)
# Every variant but 6.1 lives in a subdirectory of the work directory named
# after it (source, build tree, reference, logs, caches), so variants coexist
# and each is built once. The IBT variants check after the stock build that the
# config, the compile commands and the stock .ko files really have IBT.
set -euo pipefail

STEP=${1:?usage: kernel.sh build|identical|farm|embedded|warm|copied|edit|config|boot|demo}
TFLD=$(readlink -f "${THINFARM_LD:?set THINFARM_LD to the thinfarm-ld binary}")
BIN=$(dirname "$TFLD")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mkdir -p "${THINFARM_KERNEL_WORK:-kernel-work}" && cd "${THINFARM_KERNEL_WORK:-kernel-work}" && pwd)
VARIANT=${THINFARM_KERNEL:-6.1}
case $VARIANT in
  6.1) KVER=6.1 IBT=n CONFIG=tiny ;;
  6.1-ibt) KVER=6.1 IBT=y CONFIG=tiny ;;
  6.12-ibt) KVER=6.12 IBT=y CONFIG=tiny ;;
  6.1-defconfig) KVER=6.1 IBT=n CONFIG=defconfig ;;
  *) echo "kernel.sh: THINFARM_KERNEL=$VARIANT: not one of 6.1, 6.1-ibt, 6.12-ibt, 6.1-defconfig" >&2; exit 2 ;;
esac
if [ "$VARIANT" != 6.1 ]; then WORK=$WORK/$VARIANT && mkdir -p "$WORK"; fi
JOBS=${JOBS:-$(nproc)}
MIN_KO=10 MIN_VMLINUX_MODULES=500  # what the config builds at least
[ $CONFIG = tiny ] || MIN_KO=1 MIN_VMLINUX_MODULES=2000
TARBALL=/usr/src/linux-source-$KVER.tar.xz
SRC=$WORK/linux-$KVER
OUT=$WORK/out
REF=$WORK/ref
LOG=$WORK/thinfarm.log.jsonl
STOCK_LINKS=$WORK/stock-links.jsonl  # the stock build's links (stock-ld.py)
MARKER=THINFARM-BOOT-OK

# Reproducible builds: the same tree linked twice must give the same bytes.
export KBUILD_BUILD_TIMESTAMP='Thu Jan  1 00:00:00 UTC 2026'
export KBUILD_BUILD_USER=thinfarm KBUILD_BUILD_HOST=thinfarm KBUILD_BUILD_VERSION=1

say() { echo "kernel.sh: $*" >&2; }
fail() { echo "kernel.sh: FAIL: $*" >&2; exit 1; }

prepare_source() {
  if [ ! -f "$SRC/Makefile" ]; then
    say "unpacking $TARBALL"
    rm -rf "$SRC.tmp" && mkdir -p "$SRC.tmp"
    tar -xf "$TARBALL" -C "$SRC.tmp" --strip-components=1
    mv "$SRC.tmp" "$SRC"
  fi
  mkdir -p "$OUT"
  if [ ! -f "$OUT/.config" ] && [ $CONFIG = defconfig ]; then
    say "configuring Linux $KVER (x86_64 defconfig + ThinLTO)"
    make -C "$SRC" O="$OUT" LLVM=-19 defconfig > /dev/null
    "$SRC/scripts/config" --file "$OUT/.config" -e LTO_CLANG_THIN -d LTO_NONE
    make -C "$SRC" O="$OUT" LLVM=-19 olddefconfig > /dev/null
    grep -q '^CONFIG_LTO_CLANG_THIN=y' "$OUT/.config" || fail "ThinLTO is not enabled in the config"
  fi
  if [ ! -f "$OUT/.config" ]; then
    say "configuring Linux $KVER (tinyconfig + ThinLTO, modules, serial console, initrd$([ $IBT = n ] || echo ', IBT'))"
    make -C "$SRC" O="$OUT" LLVM=-19 tinyconfig > /dev/null
    "$SRC/scripts/config" --file "$OUT/.config" -e 64BIT -e LTO_CLANG_THIN -d LTO_NONE \
      -e MODULES -e MODULE_UNLOAD -e PRINTK -e TTY -e SERIAL_8250 -e SERIAL_8250_CONSOLE \
      -e BLK_DEV_INITRD -e BINFMT_ELF -e BINFMT_SCRIPT -e PROC_FS -e SYSFS -e DEVTMPFS \
      -e KALLSYMS -m CRC_ITU_T -m CRC7 -m LIBCRC32C -m CRC8 -e CRYPTO -m CRYPTO_SHA256 \
      -m CRYPTO_AES -e BLOCK -m EXT2_FS -m ZRAM -e SWAP -m CONFIGS -e IKCONFIG
    if [ $IBT = y ]; then "$SRC/scripts/config" --file "$OUT/.config" -e X86_KERNEL_IBT; fi
    make -C "$SRC" O="$OUT" LLVM=-19 olddefconfig > /dev/null
    grep -q '^CONFIG_LTO_CLANG_THIN=y' "$OUT/.config" || fail "ThinLTO is not enabled in the config"
    if [ $IBT = y ] && ! grep -q '^CONFIG_X86_KERNEL_IBT=y' "$OUT/.config"; then
      mv "$OUT/.config" "$OUT/.config.no-ibt"
      fail "CONFIG_X86_KERNEL_IBT is not =y after olddefconfig (config: $OUT/.config.no-ibt)"
    fi
  fi
}

# The IBT variants: the test covers IBT only if kbuild compiled with
# -fcf-protection=branch and the stock modules say so in their
# .note.gnu.property (lld keeps the x86 IBT feature only when every input has it).
check_ibt() {
  [ $IBT = y ] || return 0
  grep -q '^CONFIG_X86_KERNEL_IBT=y' "$OUT/.config" || fail "CONFIG_X86_KERNEL_IBT is not =y"
  grep -q -- '-fcf-protection=branch' "$OUT/init/.main.o.cmd" ||
    fail "init/main.o was not compiled with -fcf-protection=branch ($OUT/init/.main.o.cmd)"
  local f n=0
  while read -r f; do
    [[ $(llvm-readelf-19 -n "$REF/$f") == *'x86 feature: IBT'* ]] ||
      fail "the stock $f has no .note.gnu.property with the x86 IBT feature"
    n=$((n + 1))
  done < <(artifacts | grep '\.ko$')
  say "IBT: CONFIG_X86_KERNEL_IBT=y, compiled with -fcf-protection=branch, all $n stock .ko have the IBT property"
}

# make with the given LD; thinfarm-ld is found on PATH under its own name, and
# under a thinfarm-ld-* name given as LD (a symlink to it in $WORK/bin). Any
# further arguments are a command to run make under (ip netns exec NS).
kmake() {
  local ld=$1; shift
  mkdir -p "$WORK/bin" && ln -sf "$TFLD" "$WORK/bin/thinfarm-ld"
  case $ld in
    thinfarm-ld-*) ln -sf "$TFLD" "$WORK/bin/$ld" ;;
    ld.lld-19-stock*) ln -sf "$HERE/stock-ld.py" "$WORK/bin/$ld" ;;
  esac
  PATH="$WORK/bin:$PATH" "$@" make -C "$SRC" O="$OUT" LLVM=-19 LD="$ld" -j"$JOBS" > "$WORK/make-$ld.log" 2>&1 ||
    { tail -n 40 "$WORK/make-$ld.log" >&2; fail "make LD=$ld failed (log: $WORK/make-$ld.log)"; }
}

# The stock build's artifacts become the reference ($REF).
save_ref() {
  rm -rf "$REF" && mkdir -p "$REF"
  artifacts | while read -r f; do mkdir -p "$REF/$(dirname "$f")" && cp "$OUT/$f" "$REF/$f"; done
}

artifacts() { (cd "$OUT" && echo vmlinux.o && echo vmlinux && echo arch/x86/boot/bzImage && find . -name '*.ko' | sed 's|^\./||' | sort); }

# Every artifact byte-identical to the stock build's copy in $REF (all are
# compared; the failure names every one that differs).
same_as_ref() {
  local n=0 f kos bad=()
  while read -r f; do
    if cmp "$REF/$f" "$OUT/$f"; then n=$((n + 1)); else bad+=("$f"); fi
  done < <(artifacts)
  [ ${#bad[@]} = 0 ] || fail "${#bad[@]} of $((n + ${#bad[@]})) files differ from the stock build: ${bad[*]}"
  kos=$(artifacts | grep -c '\.ko$')
  [ "$kos" -ge "$MIN_KO" ] || fail "only $kos modules were built"
  say "$n files identical to the stock build (vmlinux.o, vmlinux, bzImage, $kos modules)"
}

# The LD name for relinking the tree once more. kbuild re-runs a command when
# its command line changes, so a step links under a name of its own (a symlink
# to thinfarm-ld), or under a second one when the tree was last linked under
# the first (the step run twice in a row).
relink_ld() {
  local ld=$1
  case $ld in ld.lld-19-stock) ;; *) ld=thinfarm-ld-$ld ;; esac
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
  # LD is ld.lld-19 behind stock-ld.py, which records every link and whether it
  # had bitcode: the ThinLTO links the relink below must split, every one. Its
  # name differs from the tree's last LD, so kbuild reruns every link.
  local stock; stock=$(relink_ld ld.lld-19-stock)
  say "stock build (LD=$stock: ld.lld-19, links recorded)"
  local t0=$SECONDS
  rm -f "$STOCK_LINKS"
  THINFARM_STOCK_LINKS=$STOCK_LINKS kmake "$stock"
  say "stock build took $((SECONDS - t0)) s"
  save_ref
  check_ibt
  say "relink through thinfarm-ld (LD=thinfarm-ld, THINFARM_COORDINATOR=off)"
  rm -f "$LOG"
  t0=$SECONDS
  THINFARM_COORDINATOR=off THINFARM_LOG=$LOG kmake thinfarm-ld
  say "thinfarm relink took $((SECONDS - t0)) s"
}

step_identical() {
  [ -f "$LOG" ] || fail "no thinfarm log: run 'kernel.sh build' first"
  [ -f "$STOCK_LINKS" ] || fail "no record of the stock build's links: run 'kernel.sh build' first"
  same_as_ref
  check_split_all
  check_log off "$LOG"
}

# Every ThinLTO link of the stock build (a link with a bitcode input, as
# stock-ld.py recorded it) has exactly one split link in THINFARM_LOG, and
# nothing fell back: a link kbuild did not rerun would keep the stock copy and
# compare equal, so the identity check alone cannot see it.
check_split_all() {
  python3 - "$STOCK_LINKS" "$LOG" "$MIN_VMLINUX_MODULES" <<'PY' || fail "not every ThinLTO link was split (above)"
import collections, json, sys
stock_path, log_path, min_modules = sys.argv[1], sys.argv[2], int(sys.argv[3])
stock = [json.loads(line) for line in open(stock_path)]
want = collections.Counter(l["output"] for l in stock if l["bitcode"])
log = [json.loads(line) for line in open(log_path)]
errors = [f"{l['output']}: fell back: {l['fallback']}" for l in log if "fallback" in l]
got = collections.Counter(l["output"] for l in log if "fallback" not in l)
if got != want:
    errors.append(f"{sum(want.values())} ThinLTO links in the stock build, {sum(got.values())} split: "
                  f"not split {sorted((want - got).elements())}, extra {sorted((got - want).elements())}")
vmlinux = [l["modules"] for l in log if l["output"] == "vmlinux.o" and "fallback" not in l]
if not vmlinux or vmlinux[0] <= min_modules:
    errors.append(f"vmlinux.o split into {vmlinux} modules, want more than {min_modules}")
for e in errors:
    print("  " + e, file=sys.stderr)
if not errors:
    print(f"kernel.sh: {len(stock)} links in the stock build, {sum(want.values())} with bitcode, "
          f"all split (vmlinux.o: {vmlinux[0]} modules)", file=sys.stderr)
sys.exit(1 if errors else 0)
PY
}

# The farm in network namespaces: farm_network, start_farm, farm_cleanup.
source "$(dirname "${BASH_SOURCE[0]}")/farm-net.sh"
source "$(dirname "${BASH_SOURCE[0]}")/vmlinux-o-cmd.sh"

step_farm() {
  [ "$(id -u)" = 0 ] || { say "SKIP: the farm test needs root (network namespaces)"; exit 77; }
  ip netns list > /dev/null 2>&1 || { say "SKIP: 'ip netns' is not available"; exit 77; }
  [ -f "$LOG" ] || fail "no thinfarm log: run 'kernel.sh build' first"
  trap farm_cleanup EXIT
  farm_network || { farm_cleanup; say "SKIP: cannot set up the namespaces, bridge and veth pairs"; exit 77; }
  local dir=$WORK/farm farmlog=$WORK/farm.log.jsonl endpoint=$FARM_ENDPOINT
  start_farm "$dir" liar # w3 alters every 10th object: verification must catch it
  local ld; ld=$(relink_ld farm)
  say "relink in $NS-b through the farm at $endpoint (LD=$ld)"
  rm -f "$farmlog"
  local t0=$SECONDS
  THINFARM_COORDINATOR=$endpoint THINFARM_KEY=$FARM_CLIENT_KEY \
    THINFARM_COORDINATOR_KEY=$FARM_COORDINATOR_KEY THINFARM_LOG=$farmlog \
    kmake "$ld" ip netns exec "$NS-b"
  say "farm relink took $((SECONDS - t0)) s"
  same_as_ref
  check_log farm "$farmlog"
  # The farm admits keys only: statistics need an admin key (the
  # coordinator's own is one); the client's key is refused them.
  ip netns exec "$NS-b" "$BIN/thinfarm-cache" --coordinator "$endpoint" \
    --key "$dir/keys/coordinator.key" --coordinator-key "$FARM_COORDINATOR_KEY" > "$dir/stats.txt" ||
    fail "thinfarm-cache with the admin key: $(cat "$dir/stats.txt")"
  for b in w1 w2; do
    grep -q "^worker  *$b: 1 slots" "$dir/stats.txt" || fail "the statistics do not list $b: $(cat "$dir/stats.txt")"
  done
  # The liar was caught while on probation, and nobody else was.
  grep -q "^worker  *w3: .*QUARANTINED" "$dir/stats.txt" || fail "w3 is not quarantined: $(cat "$dir/stats.txt")"
  if grep -q "QUARANTINED" <(grep -v "^worker  *w3:" "$dir/stats.txt"); then
    fail "an honest worker was quarantined: $(cat "$dir/stats.txt")"
  fi
  say "$(grep -c "" "$dir/coordinator.log") coordinator log lines; $(grep "quarantined worker" "$dir/coordinator.log")"
  ! ip netns exec "$NS-b" "$BIN/thinfarm-cache" --coordinator "$endpoint" \
    --key "$FARM_CLIENT_KEY" --coordinator-key "$FARM_COORDINATOR_KEY" > /dev/null 2> "$dir/denied.txt" &&
    grep -q "client client may not send getStats" "$dir/denied.txt" ||
    fail "a client key read the farm's statistics: $(cat "$dir/denied.txt")"
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
    say "embedded coordinator: peak RSS $(peak_rss "$pid")"
    kill -TERM "$pid"
  done
  [ -n "$found" ] || return 1
  for ((i = 0; i < 100; i++)); do flock -n "$lock" true && return; sleep 0.1; done
  kill -KILL "$found" 2>/dev/null || true
}

# The peak resident set of a running process (VmHWM), for the record.
peak_rss() { awk '/^VmHWM:/ {printf "%.0f MB", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }

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

# check_cache MODE FILE [ARG]: the THINFARM_LOG of a relink on a warm cache.
#   warm           every link of the in-process relink ($LOG) is there, each a memo hit
#   copied         every link is there; none a memo hit, every backend an action-cache hit
#   only IDS-FILE  vmlinux.o ran exactly the backends listed in IDS-FILE
check_cache() {
  python3 - "$@" "$LOG" <<'PY' || fail "THINFARM_LOG $2 (above)"
import collections, json, sys
mode, path = sys.argv[1], sys.argv[2]
refpath = sys.argv[-1]
links = [json.loads(line) for line in open(path)]
errors = [f"{l['output']}: fell back: {l['fallback']}" for l in links if "fallback" in l]
links = [l for l in links if "fallback" not in l]
if mode in ("warm", "copied"):
    want = collections.Counter(json.loads(line)["output"] for line in open(refpath))
    got = collections.Counter(l["output"] for l in links)
    if got != want:
        errors.append(f"missing links {sorted((want - got).elements())}, extra {sorted((got - want).elements())}")
for l in links:
    if mode == "warm" and not l["memo_hit"]:
        errors.append(f"{l['output']}: no memo hit ({l['backends_run']} backends ran)")
    if mode == "copied" and (l["memo_hit"] or l["backends_run"] != 0 or l["cache_hits"] != l["modules"]):
        errors.append(f"{l['output']}: memo_hit {l['memo_hit']}, {l['cache_hits']} of {l['modules']} "
                      f"backends from the cache, {l['backends_run']} ran: {l.get('ran', [])[:5]}")
if mode == "only":
    want = set(open(sys.argv[3]).read().split("\n")) - {""}
    v = [l for l in links if l["output"] == "vmlinux.o"]
    if len(v) != 1:
        errors.append(f"{len(v)} vmlinux.o links")
    else:
        ran = set(v[0].get("ran", []))
        print(f"kernel.sh: vmlinux.o: {v[0]['backends_run']} of {v[0]['modules']} backends ran, "
              f"{v[0]['cache_hits']} from the action cache; expected {len(want)}: {sorted(want)[:8]}",
              file=sys.stderr)
        if ran != want:
            errors.append(f"vmlinux.o ran {sorted(ran)}; expected {sorted(want)}")
hits = sum(l["memo_hit"] for l in links)
cached = sum(l["cache_hits"] for l in links)
ran = sum(l["backends_run"] for l in links)
print(f"kernel.sh: {path}: {len(links)} links, {hits} memo hits, {cached} backends from the "
      f"action cache, {ran} ran", file=sys.stderr)
for e in errors:
    print("  " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY
}

# The embedded default on the warm cache the 'embedded' step left ($WORK/cache).
use_warm_cache() {
  export THINFARM_CACHE_DIR=$WORK/cache XDG_CONFIG_HOME=$WORK/no-config JOBS=2
  unset THINFARM_COORDINATOR
  trap 'stop_embedded "$THINFARM_CACHE_DIR" || true' EXIT
  if [ ! -d "$THINFARM_CACHE_DIR/store" ]; then
    say "no warm cache: relinking once to fill $THINFARM_CACHE_DIR"
    THINFARM_LOG=$WORK/warmup.log.jsonl kmake "$(relink_ld warmup)"
  fi
}

step_warm() {
  [ -f "$LOG" ] || fail "no thinfarm log: run 'kernel.sh build' first"
  use_warm_cache
  local ld log=$WORK/warm.log.jsonl t0=$SECONDS
  ld=$(relink_ld warm)
  rm -f "$log"
  THINFARM_LOG=$log kmake "$ld"
  say "warm relink, nothing changed (LD=$ld): $((SECONDS - t0)) s"
  same_as_ref
  check_cache warm "$log"
}

step_copied() {
  [ -f "$LOG" ] || fail "no thinfarm log: run 'kernel.sh build' first"
  use_warm_cache
  local copy=$WORK/out-copy log=$WORK/copied.log.jsonl t0=$SECONDS
  rm -rf "$copy" && cp -a "$OUT" "$copy"
  local OUT=$copy ld
  ld=$(relink_ld copied)
  rm -f "$log"
  THINFARM_LOG=$log kmake "$ld"
  say "relink in the copy $copy (LD=$ld): $((SECONDS - t0)) s"
  same_as_ref
  check_cache copied "$log"
  rm -rf "$copy"
}

# The vmlinux.o link's module identifiers, per stock lld's thin link of the
# tree as it is, that import from the module whose identifier matches $1 (a
# Python regex), plus that module itself: the backends an edit of it must rerun.
affected_modules() {
  local dir=$WORK/imports; rm -rf "$dir" && mkdir -p "$dir"
  vmlinux_o_args "$OUT"
  (cd "$OUT" && ld.lld-19 "${VMLINUX_O_ARGS[@]}" -o "$dir/x.o" --thinlto-index-only="$dir/list" \
     --thinlto-emit-imports-files "--thinlto-prefix-replace=;$dir/") || fail "stock thin link failed"
  python3 - "$dir" "$1" <<'PY'
import re, sys
d, pattern = sys.argv[1:]
prefix = d + "/"
ids = [l[len(prefix):] for l in open(d + "/list").read().split("\n") if l]
edited = [i for i in ids if re.search(pattern, i)]
assert len(edited) == 1, f"{pattern} matches {edited}"
for i in ids:
    imports = open(prefix + i + ".imports").read().split("\n")
    if i == edited[0] or edited[0] in imports:
        print(i)
PY
}

step_edit() {
  [ -f "$LOG" ] || fail "no thinfarm log: run 'kernel.sh build' first"
  use_warm_cache
  local f=$SRC/kernel/fork.c n
  n=$(sed -n 's/^int thinfarm_edit_marker = \([0-9]*\);$/\1/p' "$f")
  if [ -n "$n" ]; then sed -i "s/^int thinfarm_edit_marker = $n;$/int thinfarm_edit_marker = $((n + 1));/" "$f"
  else echo 'int thinfarm_edit_marker = 1;' >> "$f"; fi
  say "edited $f: $(tail -n 1 "$f"); stock rebuild"
  kmake ld.lld-19
  save_ref
  affected_modules '\(fork\.o at ' > "$WORK/affected.txt"
  relink_expecting edit "$WORK/affected.txt"
}

# relink_expecting STEP IDS-FILE: relinks the tree on the warm cache; the
# output is identical to the reference and vmlinux.o ran exactly those backends.
relink_expecting() {
  local ld log=$WORK/$1.log.jsonl t0=$SECONDS
  ld=$(relink_ld "$1")
  rm -f "$log"
  THINFARM_LOG=$log kmake "$ld"
  say "relink after the change (LD=$ld): $((SECONDS - t0)) s"
  same_as_ref
  check_cache only "$log" "$2"
}

step_config() {
  [ -f "$LOG" ] || fail "no thinfarm log: run 'kernel.sh build' first"
  grep -q '^CONFIG_IKCONFIG=y' "$OUT/.config" || fail "CONFIG_IKCONFIG is not set"
  use_warm_cache
  local before=$WORK/configs.o.before
  cp "$OUT/kernel/configs.o" "$before"
  if grep -q '^CONFIG_CRC8=m' "$OUT/.config"; then "$SRC/scripts/config" --file "$OUT/.config" -d CRC8
  else "$SRC/scripts/config" --file "$OUT/.config" -m CRC8; fi
  say "CONFIG_CRC8 is now $(grep -E '^(# )?CONFIG_CRC8[= ]' "$OUT/.config"); stock rebuild"
  local gz0; gz0=$(sha256sum < "$OUT/kernel/config_data.gz")
  kmake ld.lld-19
  [ "$gz0" != "$(sha256sum < "$OUT/kernel/config_data.gz")" ] || fail "kernel/config_data.gz did not change"
  cmp "$before" "$OUT/kernel/configs.o" || fail "kernel/configs.o changed: the premise does not hold"
  save_ref
  # Only configs.o's backend: the one module whose .incbin file changed (its
  # importers' inputs did not). Its identifier, from stock lld's thin link:
  affected_modules '\(configs\.o at ' > /dev/null
  sed -n "s|^$WORK/imports/||p" "$WORK/imports/list" | grep -E '\(configs\.o at ' > "$WORK/affected.txt"
  relink_expecting config "$WORK/affected.txt"
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

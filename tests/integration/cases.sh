#!/usr/bin/env bash
# Integration cases for thinfarm-ld on small programs built with clang-19.
#
# Each case links the same inputs with stock ld.lld-19 and with thinfarm-ld and
# compares the outputs byte for byte (cmp), then checks with llvm-nm-19 /
# llvm-readelf-19 that the case exercised what it claims. THINFARM_LOG proves
# that a link was split rather than passed to lld: without that, an identical
# output would prove nothing.
#
# usage: cases.sh CASE   (THINFARM_LD=path/to/thinfarm-ld)
set -euo pipefail
# (In pipelines grep -c > /dev/null, never grep -q: -q exits at the first match,
# and with pipefail the writer's SIGPIPE would fail the check.)

TFLD=${THINFARM_LD:?set THINFARM_LD to the thinfarm-ld binary}
CASE=${1:?usage: cases.sh CASE}
W=$(mktemp -d "${TMPDIR:-/tmp}/thinfarm-case-XXXXXX")
trap 'rm -rf "$W"' EXIT
cd "$W"
export THINFARM_LOG=$W/log.jsonl

fail() { echo "FAIL [$CASE]: $*" >&2; exit 1; }
ccthin() { clang-19 --target=x86_64-linux-gnu -O2 -flto=thin -ffreestanding -fno-pic "$@"; }
ccnative() { clang-19 --target=x86_64-linux-gnu -O2 -ffreestanding -fno-pic "$@"; }

# link_both ARGS...: stock into stock.out, thinfarm into tf.out; both must succeed
# and agree byte for byte.
link_both() {
  ld.lld-19 "$@" -o stock.out 2> stock.err || fail "stock ld.lld-19 failed: $(cat stock.err)"
  "$TFLD" "$@" -o tf.out 2> tf.err || fail "thinfarm-ld failed: $(cat tf.err)"
  cmp stock.out tf.out || fail "outputs differ"
}

# link_same ARGS...: both links under the one output name `out`, one after
# the other, since lld writes that name into the output (the base version
# definition) and names its LTO objects after it in diagnostics: same exit
# status, same stderr, same bytes (kept as stock.out and tf.out).
link_same() {
  rm -f out stock.out tf.out
  set +e
  ld.lld-19 "$@" -o out 2> stock.err; local src=$?
  [ ! -e out ] || mv out stock.out
  "$TFLD" "$@" -o out 2> tf.err; local trc=$?
  [ ! -e out ] || mv out tf.out
  set -e
  [ "$src" = "$trc" ] || fail "exit status: stock $src, thinfarm-ld $trc; stderr: $(cat tf.err)"
  diff stock.err tf.err || fail "stderr differs (above)"
  [ "$src" != 0 ] || cmp stock.out tf.out || fail "outputs differ"
  if ls ./*thinfarm-tmp* > /dev/null 2>&1; then fail "a temporary output was left behind"; fi
}

# expect_split N: the last link was split into N backend jobs.
expect_split() {
  [ -s log.jsonl ] || fail "no THINFARM_LOG line: the link was not split"
  tail -n1 log.jsonl | grep -c "\"modules\":$1,\"memo_hit\":false,\"jobs_local\":$1," > /dev/null ||
    fail "expected a split into $1 modules, log says: $(tail -n1 log.jsonl)"
  if grep -q "thinfarm-ld: note" tf.err; then fail "unexpected notice: $(cat tf.err)"; fi
}

write_start() {
  cat > start.c <<'C'
int compute(int);
void _start(void) {
  int rc = compute(5) & 0xff;
  __asm__ volatile("mov %0, %%edi\n\tmov $60, %%eax\n\tsyscall" :: "r"(rc) : "rdi", "rax");
  __builtin_unreachable();
}
C
}

case_relocatable() {
  cat > a.c <<'C'
int helper(int);
int native_fn(int);
static int sq(int x) { return x * x; }
int compute(int x) { int s = 0; for (int i = 0; i < x; i++) s += helper(i) + sq(i); return s + native_fn(x); }
C
  echo 'int helper(int x) { return x * 3 + 1; }' > b.c
  echo 'int native_fn(int x) { return x - 1; }' > n.c
  ccthin -c a.c b.c && ccnative -c n.c
  link_both -r a.o n.o b.o
  expect_split 2
  llvm-nm-19 tf.out | grep -c ' T helper$' > /dev/null || fail "helper missing from output"
  llvm-nm-19 tf.out | grep -c ' T native_fn$' > /dev/null || fail "native_fn missing from output"
}

case_executable() {
  write_start
  echo 'int helper(int x) { return x * 3 + 1; }' > b.c
  echo 'int helper(int); int compute(int x) { int s = 0; for (int i = 0; i < x; i++) s += helper(i); return s; }' > c.c
  ccthin -c start.c b.c c.c
  link_both -static -e _start --build-id=sha1 start.o c.o b.o
  expect_split 3
  set +e; ./tf.out; rc=$?; set -e
  [ "$rc" = 35 ] || fail "executable returned $rc, expected 35"
}

case_thin_archive() {
  mkdir -p sub
  echo 'int t1(void) { return 1; }' > sub/t1.c
  echo 'int t2(void) { return 2; }' > sub/t2.c
  echo 'int tn(void) { return 3; }' > sub/tn.c
  echo 'int t1(void); int top(void) { return t1(); }' > top.c
  ccthin -c sub/t1.c -o sub/t1.o && ccthin -c sub/t2.c -o sub/t2.o && ccnative -c sub/tn.c -o sub/tn.o
  ccthin -c top.c
  llvm-ar-19 rcsT lib.a sub/t1.o sub/tn.o sub/t2.o
  link_both -r top.o --whole-archive lib.a --no-whole-archive
  expect_split 3
  for s in t1 t2 tn top; do llvm-nm-19 tf.out | grep -c " T $s\$" > /dev/null || fail "$s missing"; done
}

case_lazy_archive() {
  write_start
  echo 'int used_fn(int); int nat_fn(int); int compute(int x) { return used_fn(x) + nat_fn(x); }' > main.c
  echo 'int used_fn(int x) { return x * 7; }' > used.c
  echo 'int unused_fn(int x) { return x * 11; }' > unused.c
  echo 'int nat_fn(int x) { return x + 2; }' > nat.c
  echo 'int natunused_fn(int x) { return x + 4; }' > natunused.c
  ccthin -c start.c main.c used.c unused.c && ccnative -c nat.c natunused.c
  llvm-ar-19 rcs lib.a unused.o nat.o used.o natunused.o
  link_both -static -e _start start.o main.o lib.a
  expect_split 3
  llvm-nm-19 tf.out | grep -c ' used_fn$' > /dev/null || fail "used_fn was not extracted"
  llvm-nm-19 tf.out | grep -c ' nat_fn$' > /dev/null || fail "nat_fn was not extracted"
  if llvm-nm-19 tf.out | grep -c 'unused_fn' > /dev/null; then fail "an unreferenced member was linked"; fi
  set +e; ./tf.out; rc=$?; set -e
  [ "$rc" = 42 ] || fail "executable returned $rc, expected 42"
}

# lld loads m.o only when n.o, later in the archive, references it: its symbols
# enter lld's table at n.o's load, not at m.o's position. The split cannot
# place them there, so it must fall back, and say so.
case_late_extraction() {
  echo 'int foo(int); int compute(int x) { return foo(x); }' > main.c
  echo 'int fresh_ref(int); int bar(int x) { return fresh_ref(x) + 1; }' > m.c
  echo 'int bar(int); int foo(int x) { return bar(x) * 2; }' > n.c
  echo 'int fresh_ref(int x) { return x; }' > f.c
  ccthin -c main.c m.c n.c f.c
  llvm-ar-19 rcs lib.a m.o n.o
  link_both -r main.o lib.a f.o
  grep -q 'lib.a(m.o) is loaded by a later reference (from lib.a(n.o))' tf.err ||
    fail "no fall-back notice: $(cat tf.err)"
  grep -q '"fallback"' log.jsonl || fail "fall-back not logged"
}

# A shim references what its module defined. Here that reference would make
# lld load a native archive member that defines the same name weakly, which
# stock lld never loads (the bitcode already defined it). The reassembly's
# --why-extract report differs from the thin link's: fall back, say so, and
# leave no temporary output behind.
case_shim_pulls_member() {
  echo 'int foo(int x) { return x + 1; }' > main.c
  echo '__attribute__((weak)) int foo(int x) { return x + 100; } int extra(int x) { return x; }' > n.c
  ccthin -c main.c && ccnative -c n.c
  llvm-ar-19 rcs lib.a n.o
  link_both -r main.o lib.a
  grep -q 'the reassembly link loaded lib.a(n.o) out of step' tf.err || fail "no notice: $(cat tf.err)"
  if llvm-nm-19 tf.out | grep -c extra > /dev/null; then fail "lib.a(n.o) was linked"; fi
  [ -z "$(ls ./*.thinfarm-tmp 2>/dev/null)" ] || fail "a temporary output was left behind"
}

# LTO drops maybe() and with it the only reference to foo; the archive member
# that defines foo is never loaded (a weak reference does not load members).
# foo must not appear in the output: a native input lld never loaded does not
# keep a name alive.
case_unloaded_member_symbols() {
  write_start
  cat > main.c <<'C'
extern int foo(void) __attribute__((weak));
int maybe(void) { return foo ? foo() : 0; }
int compute(int x) { return x; }
C
  echo 'int foo(void) { return 5; }' > n.c
  ccthin -c start.c main.c && ccnative -c n.c
  llvm-ar-19 rcs lib.a n.o
  link_both -static -e _start start.o main.o lib.a
  expect_split 2
  if llvm-nm-19 tf.out | grep -c ' foo$' > /dev/null; then fail "foo reached the output"; fi
}

case_start_lib() {
  echo 'int l1(int); int f(int x) { return l1(x); }' > f.c
  echo 'int l1(int x) { return x + 1; }' > l1.c
  echo 'int l2(int x) { return x + 2; }' > l2.c
  ccthin -c f.c l1.c l2.c
  link_both -r f.o --start-lib l1.o l2.o --end-lib
  expect_split 2
  if llvm-nm-19 tf.out | grep -c ' l2$' > /dev/null; then fail "l2 was linked"; fi
}

case_weak_hidden() {
  cat > a.c <<'C'
__attribute__((weak)) int overridable(void) { return 1; }
__attribute__((weak)) int weak_only(void) { return 2; }
__attribute__((visibility("hidden"))) int hidden_fn(void) { return 3; }
__attribute__((visibility("protected"))) int protected_fn(void) { return 4; }
extern int weak_ref(void) __attribute__((weak));
int use(void) { return overridable() + weak_only() + hidden_fn() + (weak_ref ? weak_ref() : 0); }
C
  echo 'int overridable(void) { return 10; } __attribute__((visibility("hidden"))) int hidden_fn(void);  int b(void) { return hidden_fn(); }' > b.c
  ccthin -c a.c b.c
  link_both -r a.o b.o
  expect_split 2
  syms=$(llvm-readelf-19 -s tf.out)
  echo "$syms" | grep -Ec 'FUNC +GLOBAL +HIDDEN +[0-9]+ hidden_fn$' > /dev/null || fail "hidden_fn lost its visibility: $syms"
  echo "$syms" | grep -Ec 'FUNC +GLOBAL +PROTECTED +[0-9]+ protected_fn$' > /dev/null || fail "protected_fn lost its visibility"
  echo "$syms" | grep -Ec 'FUNC +WEAK +DEFAULT +[0-9]+ weak_only$' > /dev/null || fail "weak_only is not weak"
  echo "$syms" | grep -Ec 'FUNC +GLOBAL +DEFAULT +[0-9]+ overridable$' > /dev/null || fail "the strong overridable did not win"
  echo "$syms" | grep -Ec 'NOTYPE +WEAK +DEFAULT +UND weak_ref$' > /dev/null || fail "weak_ref is not a weak undefined"
}

case_incbin() {
  printf 'thinfarm-incbin-payload-1\n' > payload.bin
  cat > blob.c <<'C'
__asm__(".pushsection .rodata.payload,\"a\"\n.globl payload\npayload:\n.incbin \"payload.bin\"\n.globl payload_end\npayload_end:\n.popsection\n");
extern const char payload[];
const char *get(void) { return payload; }
C
  ccthin -c blob.c
  link_both -r blob.o
  expect_split 1
  llvm-readelf-19 -x .rodata.payload tf.out | grep -c 'thinfarm-incbin-' > /dev/null || fail "payload not in output"
  # The backend reads the file when it runs: a changed payload changes the output.
  printf 'thinfarm-incbin-payload-2\n' > payload.bin
  "$TFLD" -r blob.o -o tf2.out
  if cmp -s tf.out tf2.out; then fail "the .incbin file was not read by the backend"; fi
  ld.lld-19 -r blob.o -o stock2.out
  cmp stock2.out tf2.out || fail "outputs differ after the payload changed"
}

case_response_file() {
  mkdir -p "my dir"
  echo 'int r2(int); int r1(int x) { return r2(x) * 2; }' > "my dir/r1.c"
  echo 'int r2(int x) { return x + 5; }' > r2.c
  ccthin -c "my dir/r1.c" -o "my dir/r1.o" && ccthin -c r2.c
  printf "'my dir/r1.o'\n\"r2.o\"\n" > link.mod
  echo "-r @link.mod" > args.rsp
  link_both @args.rsp
  expect_split 2
  # The module list came from the response file, quoted path and all.
  grep -q '"ran":\["my dir/r1.o","r2.o"\]' log.jsonl || fail "modules not read from link.mod: $(cat log.jsonl)"
  # A response file that does not exist is an operand lld cannot open.
  link_same -r @missing.rsp r2.o
}

case_mllvm() {
  echo 'int g(int); int f(int x) { return g(x) + 1; } int h(int x) { return x; }' > f.c
  echo 'int g(int x) { return x * 2; }' > g.c
  ccthin -c f.c g.c
  link_both -r -mllvm -align-all-functions=6 f.o g.o
  expect_split 2
  llvm-readelf-19 -S tf.out | grep -E '\.text\.f ' | grep -Ec ' 64$' > /dev/null ||
    fail "-mllvm -align-all-functions=6 did not reach the backend: $(llvm-readelf-19 -S tf.out | grep text)"
  "$TFLD" -r f.o g.o -o plain.out
  if cmp -s plain.out tf.out; then fail "the -mllvm option changed nothing"; fi
  # --lto-O and -plugin-opt forms reach it too.
  link_both -r --lto-O1 -plugin-opt=-align-all-functions=5 f.o g.o
  expect_split 2
}

case_backend_error() {
  echo 'int g(void) { return 1; }' > good.c
  echo 'int bad(void) { __asm__("not_an_instruction %eax"); return 0; }' > bad.c
  ccthin -c good.c bad.c
  if "$TFLD" -r good.o bad.o -o tf.out 2> tf.err; then fail "a failing backend did not fail the link"; fi
  grep -q 'thinfarm-ld: error: backend of bad.o: ' tf.err || fail "error does not name bad.o: $(cat tf.err)"
  grep -q 'invalid instruction mnemonic' tf.err || fail "error does not carry LLVM's message: $(cat tf.err)"
  [ ! -e tf.out ] || fail "an output was left behind"
}

# Every one-byte corruption of a module: thinfarm-ld either links, or fails
# with exit status 1 and a message naming the module; it dies of a signal only
# where stock lld does too. Some corruptions reach the backend.
case_corrupt_bitcode() {
  echo 'int helper(int); int big(int x) { int s = 0; for (int i = 0; i < x; i++) s += helper(i) * i; return s; }' > a.c
  echo 'int helper(int x) { return x * 3 + 1; }' > b.c
  ccthin -c a.c b.c
  export LLVM_DISABLE_SYMBOLIZATION=1 # lld's crash dumps need no symbols here
  size=$(stat -c %s a.o)
  mkdir -p bad
  python3 - <<'PY'
d = open('a.o', 'rb').read()
for off in range(40, len(d), 40):
    e = bytearray(d); e[off] ^= 0xff
    open('bad/%d.o' % off, 'wb').write(e)
PY
  backend_errors=0 linked=0
  for ((off = 40; off < size; off += 40)); do
    cp "bad/$off.o" c.o
    rm -f tf.out
    set +e; "$TFLD" -r c.o b.o -o tf.out 2> tf.err; rc=$?; set -e
    if [ "$rc" -gt 128 ]; then
      set +e; ld.lld-19 -r c.o b.o -o stock.out 2>/dev/null; src=$?; set -e
      [ "$src" -gt 128 ] || fail "offset $off: thinfarm-ld died of signal $((rc - 128)), stock lld did not"
      continue
    fi
    if [ "$rc" = 0 ]; then
      ld.lld-19 -r c.o b.o -o stock.out 2>/dev/null || fail "offset $off: thinfarm-ld linked, stock lld did not"
      cmp stock.out tf.out || fail "offset $off: outputs differ"
      linked=$((linked + 1))
    fi
    if [ "$rc" = 1 ]; then
      # Either lld's own diagnostics (thinfarm read no further) or a backend
      # error naming the module; either way stock lld fails too.
      set +e; ld.lld-19 -r c.o b.o -o stock.out 2> stock.err; src=$?; set -e
      [ "$src" != 0 ] || fail "offset $off: thinfarm-ld failed, stock lld linked: $(cat tf.err)"
      cmp -s stock.err tf.err || grep -q 'c\.o' tf.err ||
        fail "offset $off: neither lld's diagnostics nor naming c.o: $(cat tf.err)"
      [ ! -e tf.out ] || fail "offset $off: an output was left behind"
      if grep -q 'error: backend of c.o' tf.err; then backend_errors=$((backend_errors + 1)); fi
    fi
  done
  [ "$backend_errors" -gt 0 ] || fail "no corruption reached the backend"
  # Some corruptions (in names, metadata) still link: those outputs were compared.
  [ "$linked" -gt 0 ] || fail "no corruption linked, so no output was compared with stock"
  echo "corruptions that failed in the backend: $backend_errors; linked and identical: $linked"
}

case_non_lto() {
  echo 'int n(void) { return 1; }' > n.c
  ccnative -c n.c
  link_both -r n.o
  [ ! -e log.jsonl ] || fail "a non-LTO link was logged as a ThinLTO link"
  [ "$("$TFLD" --version)" = "$(ld.lld-19 --version)" ] || fail "--version differs"
  "$TFLD" --version | grep -c 'LLD 19' > /dev/null || fail "--version does not say LLD 19"
}

case_fallback() {
  echo 'int f(void) { return 1; }' > f.c
  ccthin -c f.c
  link_both -r f.o -Map out.map
  grep -q 'thinfarm-ld: note: option -Map is not supported by the split link; linking with ld.lld-19 instead' tf.err ||
    fail "no fall-back notice: $(cat tf.err)"
  [ "$(wc -l < tf.err)" = 1 ] || fail "the notice is not one line"
  grep -q '"fallback"' log.jsonl || fail "fall-back not logged"
}

case_full_lto() {
  echo 'int g(int); int f(int x) { return g(x); }' > f.c
  echo 'int g(int x) { return x + 1; }' > g.c
  clang-19 -O2 -flto=full -c f.c g.c
  link_both -r f.o g.o
  [ ! -s tf.err ] || fail "full LTO printed something: $(cat tf.err)"
  [ ! -e log.jsonl ] || fail "full LTO was logged as split"
}

case_missing_input() {
  echo 'int f(void) { return 1; }' > f.c
  ccthin -c f.c
  if "$TFLD" -r f.o nothere.o -o tf.out 2> tf.err; then fail "linked with a missing input"; fi
  grep -q "nothere.o" tf.err || fail "error does not name the missing file: $(cat tf.err)"
}

# lld ANDs the GNU property feature bits (x86 IBT, SHSTK) over the ELF objects
# it links, which in the reassembly include the shims: they must not clear a
# bit, nor draw a -z cet-report warning of their own.
case_ibt() {
  echo 'int b(int); int a(int x) { return b(x) + 1; }' > a.c
  echo 'int b(int x) { return x * 3; }' > b.c
  echo 'int n(int x) { return x - 1; }' > n.c
  clang-19 -O2 -flto=thin -fcf-protection=branch -fPIC -c a.c b.c
  clang-19 -O2 -fcf-protection=full -fPIC -c n.c
  link_both -r a.o b.o
  expect_split 2
  llvm-readelf-19 -n tf.out | grep -c 'x86 feature: IBT' > /dev/null || fail "-r output lost the IBT property"
  link_both -shared a.o n.o b.o
  expect_split 2
  llvm-readelf-19 -n tf.out | grep -c 'x86 feature: IBT' > /dev/null || fail "-shared output lost the IBT property"
  link_same -shared a.o b.o -z cet-report=warning
  grep -c 'cet-report: file does not have GNU_PROPERTY_X86_FEATURE_1_SHSTK' tf.err > /dev/null ||
    fail "no cet-report warning: $(cat tf.err)"
  link_same -shared -z force-ibt -z shstk a.o n.o b.o
  # Full protection everywhere: the output has SHSTK too.
  clang-19 -O2 -flto=thin -fcf-protection=full -fPIC -c a.c b.c
  link_both -shared a.o n.o b.o
  llvm-readelf-19 -n tf.out | grep -c 'x86 feature: IBT, SHSTK' > /dev/null || fail "SHSTK lost"
}

# Symbols lld defines when they are in its symbol table, which the bitcode's
# undefined references put there even when LTO drops every one of them.
case_linker_defined() {
  cat > s.ll <<'LL'
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-unknown-linux-gnu"
@foo = hidden global i32 42, section "foo_section"
@__start_foo_section = external global i32
@__stop_no_such_section = external global i32
@_end = external global i32
@my_provided = external global i32
@not_provided = external global i32
define hidden ptr @get() {
  ret ptr @__start_foo_section
}
define hidden ptr @get2() {
  ret ptr @__stop_no_such_section
}
define hidden ptr @get3() {
  ret ptr @_end
}
define hidden ptr @get4() {
  ret ptr @my_provided
}
define hidden ptr @get5() {
  ret ptr @not_provided
}
define void @_start() {
  ret void
}
LL
  opt-19 -module-summary s.ll -o s.o
  echo 'SECTIONS { PROVIDE(my_provided = 0x1234); } INSERT AFTER .text;' > script.ld
  for kind in -shared -pie -static; do
    link_both $kind s.o
    expect_split 1
    llvm-nm-19 tf.out | grep -c ' __start_foo_section$' > /dev/null || fail "$kind: __start_foo_section missing"
    llvm-nm-19 tf.out | grep -c ' _end$' > /dev/null || fail "$kind: _end missing"
    if llvm-nm-19 tf.out | grep -c '__stop_no_such_section' > /dev/null; then
      fail "$kind: __stop_no_such_section is in the output"
    fi
    link_both $kind s.o -T script.ld
    llvm-nm-19 tf.out | grep -c ' my_provided$' > /dev/null || fail "$kind: my_provided missing"
    if llvm-nm-19 tf.out | grep -c 'not_provided' > /dev/null; then fail "$kind: not_provided is in the output"; fi
  done
  llvm-nm-19 -D "$W/tf.out" > /dev/null
  link_both -shared s.o
  llvm-nm-19 -D tf.out | grep -c ' __start_foo_section$' > /dev/null || fail "__start_foo_section not exported"
}

# --icf reads each ELF object's address-significance table; a file without
# one has every symbol address-significant, which would keep the shims'
# functions apart.
case_icf() {
  cat > f.c <<'C'
#define F(n) __attribute__((visibility("hidden"), noinline)) int n(int x) { return x * 7 + 3; }
F(f1) F(f2) F(f3)
C
  cat > g.c <<'C'
#define D(n) __attribute__((visibility("hidden"))) int n(int);
D(f1) D(f2) D(f3)
int (*keep)(int) = f3;
int use(int x) { return f1(x) + f2(x); }
C
  clang-19 -O1 -flto=thin -fPIC -ffunction-sections -c f.c g.c
  for icf in all safe; do
    link_both -shared --icf=$icf f.o g.o
    expect_split 2
  done
  # f1 and f2 folded into one address, as in stock.
  [ "$(llvm-nm-19 tf.out | grep -E ' t f[12]$' | cut -d' ' -f1 | sort -u | wc -l)" = 1 ] ||
    fail "--icf=safe did not fold f1 and f2: $(llvm-nm-19 tf.out)"
}

# Bitcode without a current IR symbol table (llvm-as, older clang) is read by
# rebuilding the table, which parses its module asm with the target's parser.
case_old_bitcode() {
  cat > m.ll <<'LL'
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-unknown-linux-gnu"
module asm ".global foo"
module asm "foo: ret"
define i32 @bar() {
  ret i32 1
}
LL
  llvm-as-19 m.ll -o full.o # full LTO: lld's own
  link_same -r full.o
  [ ! -s tf.err ] || fail "printed: $(cat tf.err)"
  opt-19 -module-summary m.ll -o thin1.o
  llvm-as-19 m.ll -o m.bc
  echo 'int g(void) { return 2; }' > g.c
  ccthin -c g.c
  link_both -r thin1.o g.o
  expect_split 2
  llvm-nm-19 tf.out | grep -c ' T foo$' > /dev/null || fail "foo from module asm missing"
}

# Links thinfarm does not split reach lld untouched: the user reads lld's own
# diagnostics, all of them, and its exit status.
case_lld_diagnostics() {
  echo 'int f(void) { return 1; }' > f.c
  ccthin -c f.c
  printf 'BC\xc0\xde\x00\x01' > bad.o
  echo 'garbage' > junk.o
  link_same -r f.o --lto-O4
  grep -c 'invalid optimization level for LTO: 4' tf.err > /dev/null || fail "not lld's words: $(cat tf.err)"
  link_same -r f.o bad.o
  link_same -r f.o bad.o --lto-O9
  [ "$(wc -l < tf.err)" -ge 2 ] || fail "lld's errors not all listed: $(cat tf.err)"
  # Text is a linker script to lld; thinfarm does not split a link with one,
  # says so in one line, and lld reports the rest.
  set +e; ld.lld-19 -r f.o junk.o -o stock.out 2> stock.err; src=$?
  "$TFLD" -r f.o junk.o -o tf.out 2> tf.err; trc=$?; set -e
  [ "$src" = "$trc" ] || fail "junk.o: exit status: stock $src, thinfarm-ld $trc"
  diff stock.err <(grep -v '^thinfarm-ld: note: ' tf.err) || fail "junk.o: lld's diagnostics differ"
  link_same -r f.o --plugin-opt=O7
  link_same -r f.o -z no-such-keyword
  clang-19 -O2 -flto=full -c f.c -o full.o
  link_same -r full.o bad.o
  # Undefined symbols are found after LTO, so the reassembly fails; stock lld
  # then gets the link, after a notice, and reports them its own way.
  link_same f.o -e nosuch --no-undefined -u missing_sym
  echo 'int g(void); int _start(void) { return g(); }' > u.c
  ccthin -c u.c
  set +e; ld.lld-19 u.o -o out 2> stock.err; src=$?
  "$TFLD" u.o -o out 2> tf.err; trc=$?; set -e
  [ "$src" = 1 ] || fail "stock linked u.o"
  [ "$src" = "$trc" ] || fail "undefined: exit status: stock $src, thinfarm-ld $trc"
  grep -c '^thinfarm-ld: note: the reassembly link failed' tf.err > /dev/null || fail "no notice: $(cat tf.err)"
  diff stock.err <(grep -v '^thinfarm-ld: note: ' tf.err) || fail "undefined: lld's diagnostics differ"
}

# Symbol versions (.symver in module asm, a version script): lld names the
# base version definition after the output when there is no -soname.
case_symbol_versions() {
  cat > v.c <<'C'
__asm__(".symver foo_v1, foo@V1");
__asm__(".symver foo_v2, foo@@V2");
int foo_v1(void) { return 1; }
int foo_v2(void) { return 2; }
__thread int tlsvar = 3;
int bar(void);
int use(void) { return foo_v2() + tlsvar + bar(); }
C
  echo 'int bar(void) { return 4; }' > w.c
  printf 'V1 { global: foo; };\nV2 { global: foo; use; bar; local: *; };\n' > vs.map
  clang-19 -O2 -flto=thin -fPIC -c v.c w.c
  link_same -shared v.o w.o --version-script vs.map
  expect_split 2
  llvm-readelf-19 -V tf.out | grep -c 'Name: out$' > /dev/null || fail "base version not named after the output"
  llvm-readelf-19 --dyn-syms tf.out | grep -c 'foo@V1' > /dev/null || fail "foo@V1 missing"
  link_same -shared v.o w.o --version-script vs.map -soname libv.so.1
  # Symbol traces print to stdout what lld meets in each file: not split.
  ld.lld-19 -shared v.o w.o --version-script vs.map -y bar -o out > stock.trace
  "$TFLD" -shared v.o w.o --version-script vs.map -y bar -o out > tf.trace 2> tf.err
  diff stock.trace tf.trace || fail "-y traces differ"
  grep -c 'note: option -y is not supported by the split link' tf.err > /dev/null || fail "no notice: $(cat tf.err)"
}

# A -fPIE executable whose module references another module's variable and
# function without importing them: lld's in-process backends see in the
# combined index that both are final in the executable (dso_local) and
# address them directly; a job's index shard must say so too (shard.cpp),
# or the backend goes through the GOT.
case_dso_local() {
  cat > n.c <<'C'
int counter;
int table[4] = {1, 2, 3, 4};
__attribute__((noinline)) void bump(int x) { counter += table[x & 3]; }
__attribute__((weak)) int hook(void) { return 7; }
C
  cat > m.c <<'C'
extern int counter;
void bump(int);
int hook(void);
int compute(int x) { bump(x); return counter + hook(); }
C
  write_start
  clang-19 -O2 -flto=thin -fPIE -ffreestanding -fno-plt -c n.c m.c start.c
  link_both -pie --no-dynamic-linker -e _start start.o m.o n.o
  expect_split 3
  link_both -e _start -static start.o m.o n.o
  expect_split 3
  # -shared: stock rejects the direct references (the code is -fPIE); so does
  # the reassembly, and the link goes to stock lld, which says so itself.
  set +e
  ld.lld-19 -shared --threads=1 m.o n.o -o out 2> stock.err; local src=$?
  "$TFLD" -shared --threads=1 m.o n.o -o out 2> tf.err; local trc=$?
  set -e
  [ "$src" = 1 ] && [ "$trc" = 1 ] || fail "exit status: stock $src, thinfarm-ld $trc"
  grep -q "relocation R_X86_64_PC32 cannot be used against symbol 'counter'" stock.err ||
    fail "stock did not reject the link: $(cat stock.err)"
  diff stock.err <(grep -v '^thinfarm-ld: note:' tf.err) || fail "stderr differs (above)"
  # Stock addresses counter directly: no GOT for it in the executable.
  link_both -pie --no-dynamic-linker -e _start start.o m.o n.o
  ! llvm-readelf-19 -S tf.out | grep -q ' \.got ' || fail "the PIE has a .got: $(llvm-readelf-19 -S tf.out)"
}

# The same question at --lto-O0, where the thin link does not propagate
# dso_local: a C++ inline function's static variable has a copy in each
# module; lld resolves a copy as final only in modules it adds before the
# prevailing one, so the combined index answers "not dso_local" and lld's
# backend goes through the GOT, while the prevailing module's shard holds
# only its own copy, which says "yes" (shard.cpp gives it the combined answer).
case_dso_local_O0() {
  cat > a.cc <<'C'
inline int &counter() { static int c; return c; }
extern "C" int fa(int x) { return counter() += x; }
C
  cat > b.cc <<'C'
inline int &counter() { static int c; return c; }
extern "C" int fb(int x) { return counter() += 2 * x; }
C
  cat > start.c <<'C'
int fa(int), fb(int);
int sink;
void _start(void) { sink = fa(1) + fb(2); }
C
  clang-19 -O2 -flto=thin -fPIC -ffreestanding -fno-exceptions -c a.cc b.cc start.c
  for o in O0 O2; do
    link_both -pie --no-dynamic-linker --lto-$o -e _start start.o a.o b.o
    expect_split 3
    link_both -pie --no-dynamic-linker --lto-$o -e _start start.o b.o a.o
    expect_split 3
  done
}

# A weak or COMDAT definition in bitcode and again in a native object that
# comes later: lld keeps the bitcode's copy (read first). The reassembly
# would keep the native's: not split, with a notice.
case_weak_then_native() {
  echo '__attribute__((weak)) int shared_value(void) { return 1; } int use(void) { return shared_value(); }' > b.c
  echo '__attribute__((weak)) int shared_value(void) { return 2; } int other(void) { return 3; }' > n.c
  ccthin -c b.c
  ccnative -c n.c
  link_both -r b.o n.o
  grep -q 'note: bitcode and the native object n.o both define the weak symbol shared_value' tf.err ||
    fail "no notice: $(cat tf.err)"
  # The native object first: its copy prevails in both, and the link is split.
  link_both -r n.o b.o
  expect_split 1
  cat > c.cc <<'C'
inline int twice(int x) { return 2 * x; }
int use(int x) { return twice(x); }
C
  cat > d.cc <<'C'
inline int twice(int x) { return 2 * x; }
int (*p)(int) = twice;
C
  clang-19 -O0 -flto=thin -c c.cc
  clang-19 -O0 -c d.cc
  link_both -r c.o d.o
  grep -q 'both define the weak symbol _Z5twicei\|both have the COMDAT group _Z5twicei' tf.err ||
    fail "no notice for the COMDAT: $(cat tf.err)"
  # A common symbol of one size in both: lld keeps the first copy (the
  # bitcode's), which decides where the hidden symbol sits in .symtab.
  echo '__attribute__((visibility("hidden"))) int cm[4]; int use(void) { return cm[1]; }' > cb.c
  echo '__attribute__((visibility("hidden"))) int cm[4]; static int loc; int other(void) { return cm[2] + loc++; }' > cn.c
  ccthin -fcommon -c cb.c
  ccnative -fcommon -c cn.c
  link_both -e use cb.o cn.o
  grep -q 'note: bitcode and the native object cn.o both have the common symbol cm of size 16' tf.err ||
    fail "no notice for the common: $(cat tf.err)"
  # A smaller native copy: the LTO object's is larger and wins in both.
  echo '__attribute__((visibility("hidden"))) int cm[2]; static int loc; int other(void) { return cm[1] + loc++; }' > cn.c
  ccnative -fcommon -c cn.c
  link_both -e use cb.o cn.o
  expect_split 1
}

# --defsym and linker script assignments: lld declares their symbols after
# every input and before its LTO objects, so names only the LTO objects
# bring (a promoted local, name.llvm.N) follow them in the symbol table.
case_defsym_order() {
  cat > n.c <<'C'
static int hits;
int get(void) { return ++hits; }
C
  echo 'int get(void); int twice(void) { return get() + get(); }' > m.c
  ccthin -c n.c m.c
  printf 'script_sym = 0x1000;\nHIDDEN(script_hidden = 0x2000);\nPROVIDE(script_provided = 0x3000);\n' > a.lds
  link_both -r m.o n.o --defsym=alias_of_get=get --defsym=fixed=0x42
  expect_split 2
  llvm-nm-19 tf.out | grep -q 'hits.llvm.' || fail "no promoted local in the output: $(llvm-nm-19 tf.out)"
  link_both -r m.o n.o -T a.lds --defsym=late=0x10
  expect_split 2
  link_same -shared m.o n.o -T a.lds --defsym=alias_of_get=get
  expect_split 2
}

# A fall-back decided after the thin link (here: the reassembly fails as
# stock lld's own link does) prints the thin link's warnings once: stock lld
# prints them itself.
case_warnings_once() {
  echo 'int cm; int f(void) { return cm; }' > a.c
  echo 'int cm; int g(void) { return cm; }' > b.c
  echo 'int h(void) { return 1; }' > n.c
  ccthin -fcommon -fcf-protection=branch -c a.c b.c
  ccnative -c n.c
  set +e
  ld.lld-19 -r --warn-common -z cet-report=error a.o b.o n.o -o out 2> stock.err
  "$TFLD" -r --warn-common -z cet-report=error a.o b.o n.o -o out 2> tf.err
  set -e
  grep -q 'multiple common of cm' stock.err || fail "stock printed no warning: $(cat stock.err)"
  diff stock.err <(grep -v '^thinfarm-ld: note:' tf.err) || fail "stderr differs (above)"
}

# Archives with bitcode inside --start-group, as a kernel without modules
# links vmlinux.o (--start-group lib/lib.a arch/x86/lib/lib.a --end-group):
# lld resolves against every archive wherever it is, so the reassembly links
# without the group.
case_group_archive() {
  echo 'int lib_a(int x); int lib_b(int x); int core(int x) { return lib_a(x) + 1; }' > core.c
  echo 'int lib_b(int x); int lib_a(int x) { return lib_b(x) * 2; }' > a.c
  echo 'int lib_a(int x); int lib_b(int x) { return x > 0 ? lib_a(x - 1) : 3; }' > b.c
  echo 'int unused(int x) { return x; }' > u.c
  echo 'int lib_n(int x) { return x - 4; }' > n.c
  ccthin -c core.c a.c b.c u.c
  ccnative -c n.c
  llvm-ar-19 rcs built-in.a core.o
  llvm-ar-19 rcs lib1.a a.o u.o
  llvm-ar-19 rcs lib2.a b.o n.o
  link_both -r --whole-archive built-in.a --no-whole-archive --start-group lib1.a lib2.a --end-group
  expect_split 3
  llvm-nm-19 tf.out | grep -q ' T lib_b$' || fail "lib_b missing: $(llvm-nm-19 tf.out)"
  ! llvm-nm-19 tf.out | grep -q 'unused\|lib_n' || fail "an unreferenced member was loaded"
}

# What lld says about a native member of an archive that also has bitcode
# names it "archive(member)", thin archive or regular, lazy or under
# --whole-archive: the reassembly links the member under a scratch name that
# the diagnostics turn back into that (a thin member's own path would show).
case_member_names() {
  mkdir -p sub
  echo 'int lib_n(int x) { return x - 4; }' > sub/n.c
  echo 'int lib_n(int x); int lib_b(int x) { return lib_n(x) * 2; }' > b.c
  echo 'int lib_b(int x); int core(int x) { return lib_b(x) + 1; }' > core.c
  ccthin -fcf-protection=branch -c b.c core.c
  ccnative -c sub/n.c -o sub/n.o
  for kind in rcs rcsT; do
    rm -f lib.a
    llvm-ar-19 $kind lib.a b.o sub/n.o
    link_same -r -z force-ibt core.o lib.a
    expect_split 2
    grep -q 'lib.a(.*n.o): -z force-ibt: file does not have' stock.err || fail "no warning: $(cat stock.err)"
    link_same -r -z force-ibt --whole-archive lib.a --no-whole-archive core.o
    expect_split 2
    grep -q 'lib.a(.*n.o): -z force-ibt' stock.err || fail "no warning: $(cat stock.err)"
    # A versioned -shared output holds its own name, so the reassembly runs
    # twice (the second time under the final name), members and all.
    printf 'V1 { global: core; local: *; };\n' > v.map
    link_same -shared --version-script=v.map --whole-archive lib.a --no-whole-archive core.o
    expect_split 2
  done
}

# A lazy bitcode member lld loads only for a library call its LTO may emit
# (memcpy for a struct copy): lld loads it after every input, so its shim goes
# there, and at the archive's place only its defined names, as lld's lazy symbols.
case_libcall_member() {
  cat > m.c <<'C'
struct big { int v[64]; };
struct big src, dst;
int compute(int x) { src.v[x & 63] = x; dst = src; return dst.v[3]; }
C
  cat > mem.c <<'C'
typedef __SIZE_TYPE__ size_t;
void *memcpy(void *d, const void *s, size_t n) { char *a = d; const char *b = s; while (n--) *a++ = *b++; return d; }
void *memset(void *d, int c, size_t n) { char *a = d; while (n--) *a++ = (char)c; return d; }
C
  write_start
  ccthin -c m.c start.c
  ccthin -fno-builtin -c mem.c
  llvm-ar-19 rcs libmem.a mem.o
  link_both -e _start start.o m.o libmem.a
  expect_split 3
  llvm-nm-19 tf.out | grep -q ' T memcpy$' || fail "memcpy missing: $(llvm-nm-19 tf.out)"
  link_both -r m.o libmem.a
  expect_split 2
}

# A version script naming a symbol the bitcode defines and LTO drops: stock
# lld assigned the version before LTO; the reassembly finds no definition and
# must not call that an error.
case_version_script_dropped() {
  echo 'int keep(int x) { return x + 1; }' > k.c
  echo 'static int helper(int x) { return x * 3; } int dropped(int x) { return helper(x); }' > d.c
  printf 'V1 { global: keep; };\nV2 { global: dropped; local: *; };\n' > vs.map
  ccthin -c k.c d.c
  # An executable exports nothing: LTO drops the unused dropped().
  link_same -e keep k.o d.o --version-script vs.map
  expect_split 2
  ! llvm-nm-19 tf.out | grep -q dropped || fail "dropped() is in the output"
}

# Lazy bitcode loaded by an input that comes after it (lld reads archives
# wherever they are): its shim goes right after that input, and at its own
# place only its defined names.
case_late_reference() {
  echo 'int helper(int x) { return x * 5; } int other(int x) { return x; }' > h.c
  echo 'int helper2(int x) { return x * 6; }' > h2.c
  echo 'int helper(int); int helper2(int); int compute(int x) { return helper(x) + helper2(x); }' > m.c
  write_start
  ccthin -c h.c h2.c m.c start.c
  llvm-ar-19 rcs libh.a h.o
  link_both -e _start libh.a --start-lib h2.o --end-lib start.o m.o
  expect_split 4
  link_both -r libh.a m.o
  expect_split 2
}

# lld reads a bitcode file's names one at a time and loads a lazy file the
# moment a name resolves to it, so the loaded file's new names come before
# the module's later ones; a shim (an ELF object) would insert all its names
# first. Shims are cut after each name that loaded something: a native
# --start-lib file, an archive's native member, and lazy bitcode loaded late.
case_load_order() {
  cat > a.c <<'C'
int nat(void);
int later(void);
int a(void) { return nat() + later(); }
C
  echo 'int nref(void); int nat(void) { return nref() * 2; }' > n.c
  echo 'int later(void) { return 5; } int nref(void) { return 7; }' > b.c
  echo 'int lref(void); int lazy_bc(void) { return lref() + 1; }' > l.c
  cat > c.c <<'C'
int lazy_bc(void);
int tail_name(void);
int c(void) { return lazy_bc() + tail_name(); }
C
  echo 'int lref(void) { return 3; } int tail_name(void) { return 4; }' > d.c
  ccthin -c a.c b.c l.c c.c d.c
  ccnative -c n.c
  link_both -r --start-lib n.o --end-lib a.o b.o
  expect_split 2
  link_both -e a --start-lib n.o --end-lib a.o b.o
  expect_split 2
  llvm-ar-19 rcs libn.a n.o
  link_both -e a libn.a a.o b.o
  expect_split 2
  # Lazy bitcode loaded by a later module: its shim follows the name that loaded it.
  link_both -r --start-lib l.o --end-lib c.o d.o
  expect_split 3
}

"case_$CASE"
echo "ok: $CASE"

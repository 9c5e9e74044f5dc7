#!/usr/bin/env bash
# Writes the committed seed corpora, tests/fuzz/corpus/<target>/, from real
# inputs: real encoded messages (thinfarm-fuzz-seeds), real lld command lines
# and response files (clang-19's own link command for a ThinLTO program),
# real archives of bitcode (llvm-ar-19: regular, with long names, thin), real
# keys (thinfarm-keygen). Run it after a format changes; the regression seeds
# (a finding's input, named finding-*) are kept.
# usage: make-seeds.sh FUZZ_BUILD_DIR
set -euo pipefail
build=$(realpath "${1:?usage: make-seeds.sh FUZZ_BUILD_DIR}")
here=$(cd "$(dirname "$0")" && pwd)
corpus=$here/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for t in wire_codec wire_frame blob_chunk link_args response_file archive config allow_list; do
  mkdir -p "$corpus/$t"
  find "$corpus/$t" -type f ! -name 'finding-*' -delete
done

"$build/bin/thinfarm-fuzz-seeds" "$corpus"

# Bitcode: two modules, one with a name too long for an ar header.
cd "$tmp"
printf 'int helper(int x) { return x * 3; }\n' > a.c
printf 'int helper(int);\nint main(void) { return helper(2); }\n' > b.c
clang-19 -O2 -flto=thin -c a.c -o a.o
clang-19 -O2 -flto=thin -c b.c -o b.bc
cp a.o a_module_with_a_long_name.o
llvm-ar-19 rc regular.a a.o b.bc
llvm-ar-19 rc longnames.a a_module_with_a_long_name.o b.bc
llvm-ar-19 rcT thin.a a.o b.bc
llvm-ar-19 rcS nosymtab.a a.o
cp regular.a longnames.a thin.a nosymtab.a "$corpus/archive/"

# The link command clang-19 runs for a ThinLTO program, as lld gets it.
args=()
while IFS= read -r word; do args+=("$word"); done < <(
  clang-19 -### -flto=thin -fuse-ld=lld a.o b.bc -o prog 2>&1 | tail -1 |
    python3 -c 'import shlex, sys; [print(w) for w in shlex.split(sys.stdin.read())[1:]]')
args+=(--lto-O2 --thinlto-jobs=2 -mllvm -import-instr-limit=5 --plugin-opt=mcpu=x86-64-v2
       -T vmlinux.lds --defsym=jiffies=jiffies_64 -L. -lc --start-lib x.o --end-lib)
printf '%s\0' "${args[@]}" > "$corpus/link_args/clang-thinlto"
# The same with its inputs in a response file (GNU quoting, as written by
# build systems): a.rsp is what follows \x01.
{ printf '%s\0' -o prog @a.rsp; printf '\x01'; printf '%q ' "${args[@]}"; } > "$corpus/link_args/with-rsp"
{ printf '%s\0' -r -o built-in.a @objs.rsp --whole-archive; } > "$corpus/link_args/kernel-r"
printf '%q\n' "${args[@]}" > "$corpus/response_file/clang-thinlto"
printf '%s\n' "-o 'out dir/vmlinux.o'" '"quoted \"inner\" arg"' 'back\\slash\ space' \
  '--defsym=a=b # not a comment' "" "@nested.rsp" > "$corpus/response_file/quoting"

# Config files as users write them.
printf '# thinfarm\ncoordinator = tcp://farm.example:7070\nkey = ~/.config/thinfarm/laptop.key\ncoordinator-key = ~/.config/thinfarm/farm.pub\n' \
  > "$corpus/config/laptop"
printf 'coordinator=tcp://127.0.0.1:7070   # local\r\n\tkey\t=\t/etc/thinfarm/ci.key\n' > "$corpus/config/ci"

# An allow-list of real keys, one per role.
for who in laptop:client build-3:worker ops:admin; do
  "$build/bin/thinfarm-keygen" --out "$tmp/${who%%:*}.key" --name "${who%%:*}" --role "${who#*:}" > /dev/null
done
{
  echo "# thinfarm allow-list: ROLE PUBLIC-KEY NAME"
  for who in laptop:client build-3:worker ops:admin; do
    echo "${who#*:} $(awk '/^public/ {print $2}' "$tmp/${who%%:*}.pub") ${who%%:*}"
  done
} > "$corpus/allow_list/three-roles"
ls "$corpus"/* | wc -l

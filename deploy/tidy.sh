#!/usr/bin/env bash
# clang-tidy-19 with the repository's .clang-tidy (every finding an error) over
# thinfarm's own sources: base lto wire storage coordinator worker client and
# their tools/, not tests/. Needs a built tree, for compile_commands.json and
# the generated headers (deploy/build.sh).
#   deploy/tidy.sh [BUILD_DIR]     default: build
# Prints the findings and a closing summary line; exits non-zero on any.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
if [ ! -f "$dir/compile_commands.json" ]; then
  echo "tidy: no $dir/compile_commands.json: build first (deploy/build.sh)" >&2
  exit 2
fi

# The sources, as absolute paths under this checkout (regex-escaped).
root=$(printf '%s' "$PWD" | sed 's/[][\.*^$+?(){}|]/\\&/g')
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$SECONDS
# Leaves out clang's "N warnings generated." lines: those count what the header
# filter suppressed (LLVM's headers), not findings.
set +e
run-clang-tidy-19 -p "$dir" -j"$(nproc)" -quiet -clang-tidy-binary clang-tidy-19 \
    "^$root/(base|lto|wire|storage|coordinator|worker|client)/" 2>&1 |
  tee "$log" | grep --line-buffered -Ev '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$'
status=${PIPESTATUS[0]}
set -e

count() { grep -E "$1" "$log" | sort -u | wc -l || true; }
files=$(count '^\[ *[0-9]+/[0-9]+\]\[')
findings=$(count '^[^ ]+:[0-9]+:[0-9]+: (warning|error): ')
failed=$(count '^Error while processing ')
elapsed=$((SECONDS - start))
if [ "$status" -eq 0 ] && [ "$findings" -eq 0 ]; then
  echo "tidy: clean: $files files, ${elapsed}s"
else
  unparsed=""
  [ "$failed" -eq 0 ] || unparsed=" ($failed did not compile)"
  echo "tidy: FAILED: $findings findings in $files files$unparsed, ${elapsed}s"
  exit 1
fi

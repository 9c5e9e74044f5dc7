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
status=0
# Leaves out clang's "N warnings generated." lines: those count what the header
# filter suppressed (LLVM's headers), not findings.
run-clang-tidy-19 -p "$dir" -j"$(nproc)" -quiet -clang-tidy-binary clang-tidy-19 \
    "^$root/(base|lto|wire|storage|coordinator|worker|client)/" 2>&1 |
  tee "$log" | grep --line-buffered -Ev '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$' ||
  status=$?

files=$(grep -cE '^\[ *[0-9]+/[0-9]+\]\[' "$log" || true)
findings=$(grep -E '^[^ ]+:[0-9]+:[0-9]+: (warning|error): ' "$log" | sort -u | wc -l)
failed=$(grep -cE '^Error while processing ' "$log" || true)
elapsed=$((SECONDS - start))
if [ "$status" -eq 0 ] && [ "$findings" -eq 0 ]; then
  echo "tidy: clean: $files files in ${elapsed}s"
else
  echo "tidy: FAILED: $findings findings, $failed of $files files with errors, in ${elapsed}s"
  exit 1
fi

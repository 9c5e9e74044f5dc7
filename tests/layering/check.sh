#!/usr/bin/env bash
# The dependency graph (ARCHITECTURE.md): which directories each layer's code
# may include from. CMake enforces the same graph at link time (each layer
# links only the libraries below it, third-party ones PRIVATE); this check
# catches a header-only reach across it, which would compile and link.
# usage: check.sh [SOURCE_DIR]   exit status 1 and one line per violation
set -euo pipefail
cd "${1:-$(dirname "$0")/../..}"
declare -A allowed=(
  [base]="base"
  [wire]="base wire"
  [storage]="base storage"
  [client]="base wire client"
  [worker]="base wire storage worker"
  [coordinator]="base wire storage coordinator"
  [coordinator/tools]="base wire storage client worker coordinator"
  [worker/tools]="base wire storage worker"
  [lto]="base wire client lto"
  [lto/tools]="base lto"
)
bad=0
for dir in "${!allowed[@]}"; do
  while IFS= read -r line; do
    file=${line%%:*}
    # tools/ directories are checked against their own entry.
    if [ "$dir" = "${dir%/tools}" ] && [[ "$file" == "$dir/tools/"* ]]; then continue; fi
    inc=$(sed -E 's/.*#include "([a-z_]+)\/.*/\1/' <<< "${line#*:}")
    if ! grep -qw "$inc" <<< "${allowed[$dir]}"; then
      echo "layering: $file includes from $inc/, which $dir/ may not use (allowed: ${allowed[$dir]})"
      bad=1
    fi
  done < <(grep -rHE '^#include "[a-z_]+/' "$dir" --include='*.cpp' --include='*.h' || true)
done
[ $bad = 0 ] && echo "layering: every include follows the graph"
exit $bad

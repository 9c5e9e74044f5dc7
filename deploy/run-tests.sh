#!/usr/bin/env bash
# The test suite on a fresh machine (what CI runs): install what is missing,
# build thinfarm, then two streams at once:
#   kernel  the kernel tests (ctest -L '^kernel$') in the release build: the
#           test kernel built once, relinked many ways and booted; long, and
#           partly serial (unpacking, modpost, kallsyms, qemu), so a second
#           stream uses the idle core. (A second kernel, 6.12 with IBT, is
#           bench/kernel-variant.sh: another ~20 minutes of compiling.)
#   checks  clang-tidy (deploy/tidy.sh, clean); the release build's unit and
#           differential tests; AddressSanitizer + UBSan over the unit tests
#           and the link cases (tests/integration/cases.sh); ThreadSanitizer
#           over the unit and farm tests (the daemons)
#           (tests/tsan.supp: the uninstrumented libraries, each justified);
#           the libFuzzer targets (tests/fuzz, clang + ASan + UBSan), each
#           for $THINFARM_FUZZ_SECONDS (default 20) on its committed corpus
# Each stream's lines are prefixed with its name; the run fails if either does.
#   deploy/run-tests.sh            everything
#   deploy/run-tests.sh -L unit    ctest arguments select a subset (release build only)
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
deploy/build.sh
if [ $# -gt 0 ]; then
  (cd build && ctest --output-on-failure -j"$(nproc)" "$@")
  exit
fi
jobs=$(nproc)
root=$PWD

phase() { echo "== $1 (at $((SECONDS / 60)) min)"; }

kernel_stream() {
  phase "kernel tests, release build"
  (cd build && ctest --output-on-failure -L '^kernel$')
}

checks_stream() {
  phase "clang-tidy"
  local tidy=0
  deploy/tidy.sh build || tidy=1 # the tests below run either way; the stream fails at its end
  phase "unit and differential tests, release build"
  (cd build && ctest --output-on-failure -j"$jobs" -L 'unit|differential')
  phase "AddressSanitizer + UBSan build"
  THINFARM_BUILD_DIR=build-asan deploy/build.sh -DTHINFARM_ASAN=ON
  phase "unit tests and link cases under ASan + UBSan"
  export ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  (cd build-asan && ctest --output-on-failure -j"$jobs" -L unit)
  (cd build-asan && ctest --output-on-failure -j"$jobs" -R '^lto\.')
  phase "ThreadSanitizer build"
  THINFARM_BUILD_DIR=build-tsan deploy/build.sh -DTHINFARM_TSAN=ON
  phase "unit and farm tests under TSan"
  export TSAN_OPTIONS="suppressions=$root/tests/tsan.supp"
  (cd build-tsan && ctest --output-on-failure -j"$jobs" -L unit)
  (cd build-tsan && ctest --output-on-failure -j"$jobs" -R '^farm\.')
  phase "libFuzzer targets (build and ${THINFARM_FUZZ_SECONDS:-20} s each)"
  unset ASAN_OPTIONS UBSAN_OPTIONS # run.sh sets its own (leaks are findings there)
  bench/fuzz.sh "${THINFARM_FUZZ_SECONDS:-20}"
  [ "$tidy" = 0 ] || { echo "clang-tidy had findings (above)"; return 1; }
}

# Runs a stream with its name before every line; its exit status goes to
# build/NAME.status.
stream() {
  local name=$1
  set +e
  ( set -e; "${name}_stream" ) 2>&1 | sed -u "s/^/[$name] /"
  echo "${PIPESTATUS[0]}" > "$root/build/$name.status"
}

rm -f build/kernel.status build/checks.status
stream kernel &
kernel=$!
stream checks &
checks=$!
wait "$kernel" "$checks"
status=0
for name in checks kernel; do
  rc=$(cat "build/$name.status" 2> /dev/null || echo 1)
  if [ "$rc" = 0 ]; then echo "run-tests: $name: passed"; else echo "run-tests: $name: FAILED ($rc)"; status=1; fi
done
echo "run-tests: $((SECONDS / 60)) min $((SECONDS % 60)) s"
exit $status

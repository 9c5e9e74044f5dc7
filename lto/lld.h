#pragma once

#include "base/result.h"

#include <string>
#include <vector>

namespace thinfarm {

// The stock linker thinfarm wraps: $THINFARM_LLD, else ld.lld-19 on PATH.
struct Toolchain {
  std::string lld = "ld.lld-19";
  static Toolchain fromEnvironment();
};

struct ProcessOutput {
  int exitCode = 0;
  std::string stderrText; // when captured
};

// Runs argv[0] (searched on PATH) with the given arguments and waits.
// When captureStderr is false the child writes to our stderr directly.
Result<ProcessOutput> runProcess(const std::vector<std::string> &argv, bool captureStderr);

// Replaces this process with stock lld running the original arguments.
[[noreturn]] void execLld(const Toolchain &tc, const std::vector<std::string> &args);

} // namespace thinfarm

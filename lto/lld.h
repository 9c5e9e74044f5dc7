#pragma once

#include "base/result.h"
#include "base/subprocess.h"

#include <string>
#include <sys/types.h>
#include <vector>

namespace thinfarm {

// The stock linker thinfarm wraps: $THINFARM_LLD, else ld.lld-19 on PATH.
struct Toolchain {
  std::string lld = "ld.lld-19";
  static Toolchain fromEnvironment();
};

// lld as a child: argv[0] searched on PATH, its stderr to a file, so a
// chatty child can never block on a full pipe.
Result<Subprocess> spawnLld(const std::vector<std::string> &argv, const std::string &stderrPath);

// Replaces this process with stock lld running the original arguments.
[[noreturn]] void execLld(const Toolchain &tc, const std::vector<std::string> &args);

} // namespace thinfarm

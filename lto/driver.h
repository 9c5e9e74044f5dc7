#pragma once

#include "lto/lld.h"

#include <string>
#include <vector>

namespace thinfarm {

// What the driver needs from its environment, read once in main().
struct DriverContext {
  Toolchain toolchain;
  std::string tempDir = "/tmp"; // scratch: $TMPDIR, else /dev/shm, else /tmp
  bool keepTemps = false;       // $THINFARM_KEEP_TEMPS: leave the scratch directory
  unsigned threads = 0;         // $THINFARM_JOBS; 0 = the command line's or one per core
  bool timing = false;          // $THINFARM_TIMING: print each stage's wall time
  std::string logPath;          // $THINFARM_LOG: one JSON line per ThinLTO link
  static DriverContext fromEnvironment();
};

// thinfarm-ld: links like ld.lld-19, splitting ThinLTO links into backend
// jobs. Returns the process exit code.
int linkerMain(const DriverContext &ctx, const std::vector<std::string> &args);

} // namespace thinfarm

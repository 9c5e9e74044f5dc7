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
  // $THINFARM_TRACE_COSTS: for the scale model (bench/scale-model.sh), each
  // backend run in this process appends "SECONDS COST MODULE" (CPU seconds of the backend thread,
  // the scheduling estimate job.h's cost(), lld's module name) to this file.
  std::string costTrace;
  // Where backends run: $THINFARM_COORDINATOR, else `coordinator = ADDRESS` in
  // the config file ($XDG_CONFIG_HOME/thinfarm/config, ~/.config/thinfarm/config);
  // empty: the embedded default, a local coordinator; "off": in this process.
  std::string coordinator;
  // A farm with keys (wire/keys.h): this user's key file ($THINFARM_KEY, else
  // `key = FILE` in the config file) and the farm's public key, pinned
  // ($THINFARM_COORDINATOR_KEY, else `coordinator-key = KEY|FILE`).
  std::string keyFile, coordinatorKey;
  std::string cacheDir;   // the embedded default's store: $THINFARM_CACHE_DIR, ~/.cache/thinfarm
  std::string cacheSize;  // its budget: $THINFARM_CACHE_SIZE (512M, 20G, ...); empty: the default
  std::string programDir; // where thinfarm-ld lives: its siblings are found there
  bool progress = false;  // stderr is a terminal: show a progress line
  static DriverContext fromEnvironment();
};

// thinfarm-ld: links like ld.lld-19, splitting ThinLTO links into backend
// jobs. Returns the process exit code.
int linkerMain(const DriverContext &ctx, const std::vector<std::string> &args);

} // namespace thinfarm

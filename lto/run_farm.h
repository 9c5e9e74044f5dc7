#pragma once

#include "lto/driver.h"
#include "lto/run.h"

#include <map>

namespace thinfarm {

struct RunResult {
  std::vector<NativeObject> natives; // one per job, in job order
  size_t local = 0, remote = 0, merged = 0;
  std::map<std::string, size_t> workers; // who ran how many jobs ("local": this process)
};

// Stage 5: runs the jobs where the context says (a farm, the embedded local
// coordinator, or this process) and keeps each output as it arrives.
Result<RunResult> runBackends(const DriverContext &ctx, const LinkCommand &cmd,
                              const std::vector<BackendJob> &jobs, unsigned threads,
                              const KeepOutput &keep);

} // namespace thinfarm

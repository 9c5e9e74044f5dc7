#pragma once

#include "lto/job.h"

namespace thinfarm {

// Process-wide LLVM state a backend needs: targets registered and the LLVM
// command-line options of the link parsed (lld parses -mllvm options into
// LLVM's global option registry; so must we, once per process and before any
// backend runs). One per process; every backend of a link shares it.
class BackendProcess {
public:
  static Result<BackendProcess> initialize(const BackendConfig &config);

  // Runs one ThinLTO backend, configured as lld 19 configures its in-process
  // ThinLTO. Thread-safe: jobs may run concurrently.
  Result<BackendOutput> run(const BackendJob &job) const;

  const BackendConfig &config() const { return config_; }

private:
  explicit BackendProcess(BackendConfig c) : config_(std::move(c)) {}
  BackendConfig config_;
};

} // namespace thinfarm

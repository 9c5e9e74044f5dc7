#pragma once

#include "lto/job.h"

namespace thinfarm {

// Whether a backend configuration may run on another machine's worker. LLVM
// options can read and write files there: a response file (@FILE, expanded
// by LLVM's parser, its text echoed in the error), or an option that names a
// file, directory or path (-info-output-file=, -sample-profile-file=,
// -cfg-dot-filename-prefix=, a value with a '/'). Such a link runs its
// backends on the client's own machine (the client checks first); a worker
// refuses the configuration, naming the option.
Status checkRemoteOptions(const BackendConfig &config);

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

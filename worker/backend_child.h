// A thinfarm-backend child process and the one job it runs at a time.
#pragma once

#include "base/subprocess.h"
#include "wire/frame.h"
#include "worker/sandbox.h"

#include <chrono>
#include <optional>
#include <string>
#include <sys/types.h>

namespace thinfarm {

class BackendChild {
public:
  // Starts `program` with its stderr appended to stderrPath, inside `sandbox`
  // seeing `view` when there is one (else unconfined). memoryLimit > 0 caps
  // the child's address space (RLIMIT_AS), so a runaway allocation in LLVM
  // fails that child, not the machine.
  static Result<BackendChild> spawn(const std::string &program, const std::string &stderrPath,
                                    uint64_t memoryLimit, const BackendConfig &config,
                                    const Sandbox *sandbox, const SandboxView &view);
  BackendChild(BackendChild &&) noexcept = default;
  BackendChild &operator=(BackendChild &&) noexcept = default;

  const BackendConfig &config() const { return config_; }

  // Sends the request and waits for the reply (the worker's control thread
  // heartbeats meanwhile). A child that dies is a Failed error carrying what
  // it printed (the crash line names the module); the child is then unusable.
  Result<wire::BackendReply> run(const wire::BackendRequest &req);

private:
  BackendChild() = default;
  std::string deathMessage(int status);
  std::optional<Subprocess> child_; // empty once it died
  std::string stderrPath_;
  BackendConfig config_;
};

} // namespace thinfarm

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
  pid_t pid() const { return child_ ? child_->pid() : -1; }
  // SIGKILLs the process `pid` (pidfd: its pidfd, or -1) and every process
  // below it: the sandbox's bwrap, its pid-namespace init, the backend. Killing
  // bwrap alone leaves its init running when bwrap had not yet armed
  // --die-with-parent (a child killed just after it started), and that init
  // keeps the pipes open. Each process is stopped before its children are
  // listed, so one forked during the kill is never missed.
  static void killTree(pid_t pid, int pidfd);

  // Sends the request and waits for the reply (the worker's control thread
  // heartbeats meanwhile); the child is unusable after it died. How it died
  // decides the error's kind (coordinator/job_policy.h acts on it):
  //  * exited, after printing what went wrong (crash.cpp catches SIGSEGV,
  //    SIGABRT, ... in LLVM and names the module): Failed, the backend's own
  //    message. A crash is the backend's failure: another worker runs the
  //    job before anyone believes it.
  //  * exited of an allocation failure under the memory limit: Disconnected
  //    (lost): the limit is this worker's, not the job's.
  //  * killed by a signal (SIGKILL: the OOM killer, a cgroup's limit; any
  //    signal sent from outside, since crash signals are caught):
  //    Disconnected (lost), the job runs again elsewhere.
  // testSignal: for tests only, the child is sent this signal with the request.
  Result<wire::BackendReply> run(const wire::BackendRequest &req, int testSignal = 0);

private:
  BackendChild() = default;
  Error death(int status, uint64_t stderrFrom);
  std::optional<Subprocess> child_; // empty once it died
  std::string stderrPath_;
  BackendConfig config_;
  uint64_t memoryLimit_ = 0;
};

} // namespace thinfarm

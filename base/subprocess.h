// Child processes, one way for every layer: argv, never a shell; every file
// descriptor this creates is O_CLOEXEC and closed on every path; a failed
// exec is reported to the parent (not as a mystery exit 127).
#pragma once

#include "base/result.h"

#include <cstdint>
#include <string>
#include <vector>

#include <sys/types.h>

namespace thinfarm {

struct SpawnOptions {
  bool searchPath = true;    // argv[0] looked up on PATH when it has no '/'
  bool pipeStdin = false;    // stdinFd() writes to the child
  bool pipeStdout = false;   // stdoutFd() reads from the child
  std::string stdinFile;     // else stdin from this file ("" = inherited)
  std::string stdoutFile;    // else stdout to this file ("" = inherited)
  std::string stderrFile;    // stderr to this file ("" = inherited)
  bool appendOutput = false; // open stdout/stderr files for appending
  uint64_t memoryLimit = 0;  // RLIMIT_AS in bytes; 0: none
  bool newSession = false;   // setsid(): no controlling terminal
};

class Subprocess {
public:
  static Result<Subprocess> spawn(const std::vector<std::string> &argv, const SpawnOptions &o = {});
  Subprocess(Subprocess &&o) noexcept;
  Subprocess &operator=(Subprocess &&o) noexcept;
  Subprocess(const Subprocess &) = delete;
  ~Subprocess(); // a child not waited for is killed and reaped

  int stdinFd() const { return in_; }
  int stdoutFd() const { return out_; }
  void closeStdin();
  pid_t pid() const { return pid_; }
  const std::string &name() const { return name_; }

  // The raw wait status (waitpid); EINTR retried.
  Result<int> waitStatus();
  // Exit status; 128 + signal number when a signal ended it.
  Result<int> wait();
  void kill(); // SIGKILL and reap

private:
  Subprocess() = default;
  void closeFds();
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1;
  std::string name_;
};

// Runs argv to completion; its stdout (trailing newlines dropped), or an
// error naming the program when it cannot start or exits non-zero.
Result<std::string> runCapturing(const std::vector<std::string> &argv);

// Starts argv as a daemon: its own session, stdin /dev/null, stdout and
// stderr appended to `log`, not a child of this process (double fork), so
// nothing here waits for it.
Status spawnDaemon(const std::vector<std::string> &argv, const std::string &log);

} // namespace thinfarm

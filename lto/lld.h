#pragma once

#include "base/result.h"

#include <string>
#include <sys/types.h>
#include <vector>

namespace thinfarm {

// The stock linker thinfarm wraps: $THINFARM_LLD, else ld.lld-19 on PATH.
struct Toolchain {
  std::string lld = "ld.lld-19";
  static Toolchain fromEnvironment();
};

// A child process (argv[0] searched on PATH). Its stderr goes to a file when
// one is named, so a chatty child can never block on a full pipe.
class Child {
public:
  static Result<Child> spawn(const std::vector<std::string> &argv, const std::string &stderrPath);
  Child(Child &&o) noexcept : pid_(o.pid_), name_(std::move(o.name_)) { o.pid_ = -1; }
  Child(const Child &) = delete;
  ~Child(); // kills and reaps a child that was not waited for
  // Exit status; 128 + signal number when a signal ended it.
  Result<int> wait();

private:
  Child(pid_t pid, std::string name) : pid_(pid), name_(std::move(name)) {}
  pid_t pid_;
  std::string name_;
};

// Replaces this process with stock lld running the original arguments.
[[noreturn]] void execLld(const Toolchain &tc, const std::vector<std::string> &args);

} // namespace thinfarm

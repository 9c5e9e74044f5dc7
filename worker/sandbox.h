// The sandbox each backend child runs in (bubblewrap), and the probe that
// says whether this machine can make one.
//
// A backend child compiles bitcode a client sent: LLVM reads every file its
// module asm names (`.incbin "/etc/shadow"`), and a bug in it is the
// client's to exploit. So the child sees only the read-only toolchain (/usr,
// the merged-/usr links, the directory of thinfarm-backend), its slot's input
// directory (read-only; the worker fills it with hard links to one job's
// files at a time) and its slot's output directory; no /etc, /home, /tmp or
// /var of the host, no network (new network namespace: lo only), no other
// process (new PID namespace), no capabilities, no terminal (new session),
// no environment but the sanitizers' options; it dies with the worker.
// Host paths keep their names inside, so the job's paths are the same with
// and without the sandbox.
#pragma once

#include "base/subprocess.h"

#include <string>
#include <vector>

namespace thinfarm {

// What one child may see beyond the toolchain; each at its host path.
struct SandboxView {
  std::vector<std::string> readOnly;
  std::vector<std::string> writable;
};

class Sandbox {
public:
  // The sandbox for `program` (its directory joins the toolchain when it is
  // not under /usr), checked once by running `program --identity` inside
  // one: an error says why bwrap is missing or cannot create namespaces,
  // or what the program printed when the sandbox hides part of it.
  static Result<Sandbox> probe(const std::string &program,
                               const std::string &bwrap = "/usr/bin/bwrap");

  // argv run inside a sandbox that sees `view` (argv[0] an absolute path).
  Result<Subprocess> spawn(const std::vector<std::string> &argv, const SandboxView &view,
                           SpawnOptions o) const;

  const std::string &bwrap() const { return bwrap_; }
  // What `program --identity` printed inside: the worker's toolchain.
  const std::string &identity() const { return identity_; }

private:
  std::vector<std::string> command(const std::vector<std::string> &argv,
                                   const SandboxView &view) const;
  std::string bwrap_;
  std::vector<std::string> toolchain_; // read-only, at their host paths
  std::string identity_;
};

} // namespace thinfarm

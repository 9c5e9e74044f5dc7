#pragma once

#include "lto/bitcode.h"
#include "lto/expand.h"
#include "lto/job.h"
#include "lto/lld.h"
#include "lto/thin_link.h"

namespace thinfarm {

struct AssembleInput {
  const LinkCommand &cmd;
  const Inputs &inputs;
  const ModuleFactsMap &facts;
  const ThinLinkResult &thin;
  const std::vector<BackendOutput> &natives; // one per thin-link module, task order
  std::string scratch;
};

// The reassembly command: the original arguments with every bitcode input
// replaced by its shim and the native objects appended. Writes the shims,
// natives and regular-archive members it names under scratch.
Result<std::vector<std::string>> reassemblyCommand(const Toolchain &tc, const AssembleInput &in);

// Stage 6: runs the reassembly link; lld writes the output atomically.
Status assemble(const Toolchain &tc, const AssembleInput &in);

} // namespace thinfarm

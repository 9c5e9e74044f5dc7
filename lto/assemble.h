#pragma once

#include "lto/bitcode.h"
#include "lto/expand.h"
#include "lto/extraction.h"
#include "lto/job.h"
#include "lto/lld.h"
#include "lto/thin_link.h"

namespace thinfarm {

struct AssembleInput {
  const LinkCommand &cmd;
  const Inputs &inputs;
  const ModuleFactsMap &facts;
  const ThinLinkResult &thin;
  const std::vector<NativeObject> &natives; // one per thin-link module, task order
  std::string scratch;
  LazyInputs &lazy;
};

// Writes a finished job's native object to scratch/native/<task>.o and reads
// its global symbols. Thread-safe.
Result<NativeObject> keepNative(const std::string &scratch, const BackendJob &job,
                                BackendOutput &&out);

// The reassembly command: the original arguments with every bitcode input
// replaced by its shim and the native objects appended. Writes the shims,
// natives and regular-archive members it names under scratch.
Result<std::vector<std::string>> reassemblyCommand(const Toolchain &tc, const AssembleInput &in);

// Stage 6: runs the reassembly link into a temporary file beside the output,
// checks that it loaded the same archive members as lld's own resolution, and
// renames it into place. A mismatch is Unimplemented: nothing is left behind
// and the caller links with stock lld.
// Returns what lld printed (and this printed on its behalf).
Result<std::string> assemble(const Toolchain &tc, const AssembleInput &in);

} // namespace thinfarm

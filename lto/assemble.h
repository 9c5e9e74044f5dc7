#pragma once

#include "lto/bitcode.h"
#include "lto/expand.h"
#include "lto/extraction.h"
#include "lto/job.h"
#include "lto/lld.h"
#include "lto/thin_link.h"

#include <functional>
#include <unordered_set>

namespace thinfarm {

struct AssembleInput {
  const LinkCommand &cmd;
  const Inputs &inputs;
  const ModuleFactsMap &facts;
  const ThinLinkResult &thin;
  const std::vector<NativeObject> &natives; // one per thin-link module, task order
  std::string scratch;
  LazyInputs &lazy;
  // Called after each step (the command and its shims, lld's link) with its
  // name, for $THINFARM_TIMING.
  std::function<void(const char *)> lap = [](const char *) {};
};

// Writes a finished job's native object to scratch/native/<task>.o and reads
// its global symbols. Thread-safe.
Result<NativeObject> keepNative(const std::string &scratch, const BackendJob &job,
                                BackendOutput &&out);

struct Reassembly {
  std::vector<std::string> argv;
  // Undefined names of the bitcode the shims list because lld may define
  // them (see assemble.cpp); the output says whether it did.
  std::unordered_set<std::string> guessed;
  // Scratch paths in the command and the names stock lld gives those files
  // in its diagnostics: a native object is lld's own LTO object
  // ("out.lto.fork.o"), a shim the bitcode file, a copied member its archive's.
  std::vector<std::pair<std::string, std::string>> names;
};

// The reassembly command: the original arguments with every bitcode input
// replaced by its shim and the native objects appended. Writes the shims,
// natives and regular-archive members it names under scratch. The names in
// `notDefinedByLld` are not guessed.
Result<Reassembly> reassemblyCommand(const Toolchain &tc, const AssembleInput &in,
                                     const std::unordered_set<std::string> &notDefinedByLld = {});

// Stage 7: runs the reassembly link into a temporary file beside the output,
// checks that it loaded the same archive members as lld's own resolution, and
// renames it into place. A mismatch is Unimplemented: nothing is left behind
// and the caller links with stock lld.
// Returns what lld printed (and this printed on its behalf).
Result<std::string> assemble(const Toolchain &tc, const AssembleInput &in);

} // namespace thinfarm

#pragma once

#include "lto/expand.h"
#include "lto/lld.h"

namespace thinfarm {

struct ThinModule {
  std::string identifier;
  Blob indexShard;                  // <identifier>.thinlto.bc
  std::vector<std::string> imports; // identifiers of the modules it imports from
};

struct ThinLinkResult {
  // The modules lld put into LTO, in its task order (the index list's order);
  // lazily-available bitcode that was not extracted is absent.
  std::vector<ThinModule> modules;
  std::string diagnostics; // what lld printed
};

// Stage 3: runs the thin link, lld with the original arguments plus
// --thinlto-index-only, writing index shards and import lists under scratch.
// On failure, names the first module whose summary does not read.
Result<ThinLinkResult> runThinLink(const Toolchain &tc, const LinkCommand &cmd,
                                   const std::map<std::string, Blob> &modules,
                                   const std::string &scratch);

} // namespace thinfarm

#pragma once

#include "lto/expand.h"
#include "lto/extraction.h"
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
  std::string diagnostics;             // what lld printed
  std::vector<Extraction> extractions; // what lld loaded lazily, in order
};

// Stage 4: runs the thin link, lld with the original arguments plus
// --thinlto-index-only, writing index shards and import lists under scratch.
// The thin link runs as a child process while the driver inspects modules.
class PendingThinLink {
public:
  // Starts lld on the original arguments plus the index-only options.
  static Result<PendingThinLink> start(const Toolchain &tc, const LinkCommand &cmd,
                                       const std::string &scratch);
  // Waits and reads the index list, shards and import lists. Nothing when lld
  // rejected the link (it exited non-zero): the link is then lld's to report.
  Result<std::optional<ThinLinkResult>> finish();

private:
  PendingThinLink(Subprocess c, std::string scratch, std::string lld)
      : child_(std::move(c)), scratch_(std::move(scratch)), lld_(std::move(lld)) {}
  Subprocess child_;
  std::string scratch_;
  std::string lld_;
};

} // namespace thinfarm

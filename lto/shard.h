#pragma once

#include "lto/bitcode.h"
#include "lto/thin_link.h"

namespace thinfarm {

// Stage 4b: adds to each index shard what its backend would read from the
// combined index about values its module neither defines nor imports (see
// shard.cpp). Rewrites only the shards that need it.
Status completeShards(ThinLinkResult &thin, const ModuleFactsMap &facts, unsigned threads);

} // namespace thinfarm

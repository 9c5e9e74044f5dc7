// The backend key: the action cache's name for one backend job.
#pragma once

#include "base/backend.h"
#include "base/result.h"
#include "base/digest.h"

#include <string>
#include <string_view>
#include <vector>

namespace thinfarm {

struct NamedDigest {
  std::string name; // a module identifier, or an .incbin path
  Digest digest;
};

// Everything a backend key is made of, by content. The client computes it from
// the link's own bytes; a worker's backend child computes it again from the
// inputs it was given, and only that second key is ever written to the cache.
struct BackendKeyInputs {
  std::string_view toolchain; // backendIdentity()
  const BackendConfig *config = nullptr;
  std::string_view moduleId;
  Digest module;
  std::string_view shard; // the index shard's bytes
  std::vector<NamedDigest> imports;
  std::vector<NamedDigest> incbins; // path relative to the build directory
};

// See backend_key.cpp for what goes in and why. Fails only on a shard that is
// not a well-formed bitstream.
Result<Digest> backendKey(const BackendKeyInputs &in);

} // namespace thinfarm

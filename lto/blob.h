// Blob: an immutable byte range with shared ownership.
//
// Inputs reach the backend as Blobs: a mapped file, a slice of a mapped
// archive (a regular archive member), or bytes produced in memory (an index
// shard, a native object). Slices share the mapping, so expanding a 100 MB
// archive into 600 members copies nothing.
#pragma once

#include "base/file.h"
#include "base/result.h"

#include <memory>
#include <string>
#include <string_view>

namespace thinfarm {

class Blob {
public:
  Blob() = default;
  static Blob fromString(std::string bytes);
  static Result<Blob> mapFile(const std::string &path);

  std::string_view bytes() const { return bytes_; }
  size_t size() const { return bytes_.size(); }
  bool empty() const { return bytes_.empty(); }
  // A sub-range sharing this blob's owner.
  Blob slice(size_t offset, size_t size) const;

private:
  std::shared_ptr<const void> owner_;
  std::string_view bytes_;
};

} // namespace thinfarm

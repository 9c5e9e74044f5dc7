#pragma once

#include "lto/blob.h"

#include <string>
#include <vector>

namespace thinfarm {

struct ArchiveMember {
  std::string name;    // as stored: a basename, or for thin archives a path
  std::string path;    // thin archive: the file the member names; else empty
  size_t headerOffset; // offset of the member's header in the archive file
  Blob bytes;          // the member's contents
};

struct Archive {
  bool thin = false;
  std::vector<ArchiveMember> members; // in archive order, symbol tables skipped
};

bool isArchive(std::string_view bytes);

// Reads a GNU/SysV archive (regular or thin). `path` is the archive's path as
// given on the command line: a thin archive's members are relative to its
// directory.
Result<Archive> readArchive(const std::string &path, const Blob &bytes);

} // namespace thinfarm

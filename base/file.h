// Whole files and whole writes, one way for every layer: EINTR and partial
// reads and writes handled, O_CLOEXEC, errors that name the file.
#pragma once

#include "base/result.h"

#include <string>
#include <string_view>

namespace thinfarm {

Result<std::string> readFile(const std::string &path);
// Creates or truncates path.
Status writeFile(const std::string &path, std::string_view bytes, unsigned mode = 0644);
// Writes a temporary beside path and renames it over path: readers see the
// old file or the new one, never a part.
Status writeFileAtomic(const std::string &path, std::string_view bytes, unsigned mode = 0644);

// All of bytes to fd / everything until end of file from fd.
Status writeAll(int fd, std::string_view bytes, const std::string &what);
Result<std::string> readAll(int fd, const std::string &what);
// n bytes from fd into p, fewer only at end of file; the count read.
Result<size_t> readUpTo(int fd, char *p, size_t n, const std::string &what);

} // namespace thinfarm

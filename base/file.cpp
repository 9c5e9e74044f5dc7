#include "base/file.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace thinfarm {

namespace {
std::string errnoText(const std::string &what) {
  return what + ": " + std::strerror(errno);
}
} // namespace

Status writeAll(int fd, std::string_view bytes, const std::string &what) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return failed("cannot write " + errnoText(what));
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return ok();
}

Result<size_t> readUpTo(int fd, char *p, size_t n, const std::string &what) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd, p + got, n - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return failed("cannot read " + errnoText(what));
    if (r == 0)
      break;
    got += static_cast<size_t>(r);
  }
  return got;
}

Result<std::string> readAll(int fd, const std::string &what) {
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return failed("cannot read " + errnoText(what));
    if (n == 0)
      return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

Result<std::string> readFile(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return failed("cannot open " + errnoText(path));
  auto text = readAll(fd, path);
  ::close(fd);
  return text;
}

Status writeFile(const std::string &path, std::string_view bytes, unsigned mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0)
    return failed("cannot create " + errnoText(path));
  Status st = writeAll(fd, bytes, path);
  if (::close(fd) != 0 && st.ok())
    return failed("cannot write " + errnoText(path));
  return st;
}

Status writeFileAtomic(const std::string &path, std::string_view bytes, unsigned mode) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  if (Status st = writeFile(tmp, bytes, mode); !st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Error e = failed("cannot rename " + tmp + " to " + errnoText(path));
    ::unlink(tmp.c_str());
    return e;
  }
  return ok();
}

} // namespace thinfarm

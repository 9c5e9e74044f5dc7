#include "lto/blob.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace thinfarm {

namespace {
struct Mapping {
  void *addr = nullptr;
  size_t len = 0;
  ~Mapping() {
    if (addr)
      munmap(addr, len);
  }
};

std::string errnoText(const std::string &path) {
  return path + ": " + std::strerror(errno);
}
} // namespace

Blob Blob::fromString(std::string bytes) {
  auto owner = std::make_shared<const std::string>(std::move(bytes));
  Blob b;
  b.bytes_ = *owner;
  b.owner_ = std::move(owner);
  return b;
}

Result<Blob> Blob::mapFile(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return failed("cannot open " + errnoText(path));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    return failed("cannot stat " + errnoText(path));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return failed(path + ": not a regular file");
  }
  Blob b;
  if (st.st_size == 0) {
    ::close(fd);
    b.owner_ = std::make_shared<const std::string>();
    return b;
  }
  void *addr = mmap(nullptr, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (addr == MAP_FAILED)
    return failed("cannot map " + errnoText(path));
  auto m = std::make_shared<Mapping>();
  m->addr = addr;
  m->len = st.st_size;
  b.bytes_ = std::string_view(static_cast<const char *>(addr), st.st_size);
  b.owner_ = std::move(m);
  return b;
}

Blob Blob::slice(size_t offset, size_t size) const {
  assert(offset + size <= bytes_.size());
  Blob b;
  b.owner_ = owner_;
  b.bytes_ = bytes_.substr(offset, size);
  return b;
}

} // namespace thinfarm

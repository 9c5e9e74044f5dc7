#include "lto/build_id.h"

#include <cstdio>
#include <cstring>
#include <vector>

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <unistd.h>

namespace thinfarm {

namespace {

// Scans a PT_NOTE segment's bytes for NT_GNU_BUILD_ID.
std::string buildIdInNotes(const char *p, const char *end) {
  while (p + sizeof(ElfW(Nhdr)) <= end) {
    ElfW(Nhdr) nh;
    std::memcpy(&nh, p, sizeof nh);
    const char *name = p + sizeof nh;
    const char *desc = name + ((nh.n_namesz + 3) & ~3u);
    if (desc > end || desc + nh.n_descsz > end)
      return "";
    if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0) {
      std::string hex;
      for (unsigned k = 0; k < nh.n_descsz; ++k) {
        char b[3];
        std::snprintf(b, sizeof b, "%02x", static_cast<unsigned char>(desc[k]));
        hex += b;
      }
      return hex;
    }
    p = desc + ((nh.n_descsz + 3) & ~3u);
  }
  return "";
}

} // namespace

std::string buildIdOfFile(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return "";
  std::string id;
  ElfW(Ehdr) eh;
  if (::pread(fd, &eh, sizeof eh, 0) == sizeof eh &&
      std::memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 && eh.e_phentsize == sizeof(ElfW(Phdr)) &&
      eh.e_phnum < 4096) {
    std::vector<ElfW(Phdr)> phs(eh.e_phnum);
    ssize_t want = static_cast<ssize_t>(phs.size() * sizeof(ElfW(Phdr)));
    if (::pread(fd, phs.data(), static_cast<size_t>(want), static_cast<off_t>(eh.e_phoff)) == want)
      for (const ElfW(Phdr) & ph : phs) {
        if (ph.p_type != PT_NOTE || ph.p_filesz > (1u << 20))
          continue;
        std::vector<char> notes(ph.p_filesz);
        if (::pread(fd, notes.data(), notes.size(), static_cast<off_t>(ph.p_offset)) !=
            static_cast<ssize_t>(notes.size()))
          continue;
        id = buildIdInNotes(notes.data(), notes.data() + notes.size());
        if (!id.empty())
          break;
      }
  }
  ::close(fd);
  return id;
}

std::string llvmBuildId() {
  std::string library;
  dl_iterate_phdr(
      [](dl_phdr_info *info, size_t, void *data) {
        if (info->dlpi_name && std::strstr(info->dlpi_name, "libLLVM")) {
          *static_cast<std::string *>(data) = info->dlpi_name;
          return 1;
        }
        return 0;
      },
      &library);
  std::string id = buildIdOfFile(library.empty() ? "/proc/self/exe" : library);
  return id.empty() ? "unknown" : id;
}

} // namespace thinfarm

// The ar format, as much of it as lld reads.
//
// "!<arch>\n" or "!<thin>\n", then 60-byte member headers (name[16] date[12]
// uid[6] gid[6] mode[8] size[10] "`\n"), each followed by its data padded to
// an even offset. Special members: "/" and "/SYM64/" (symbol tables, skipped),
// "//" (the long-name table; "/N" names its entry at offset N, ending in
// "/\n"). In a thin archive only the special members carry data; a member's
// bytes are the file its (long) name gives, relative to the archive's
// directory. lld identifies a bitcode member by the header's offset, so the
// offsets here are exactly the archive file's.
#include "lto/archive.h"

#include <charconv>

namespace thinfarm {

namespace {
constexpr size_t kHeaderSize = 60;

std::string_view trimRight(std::string_view s) {
  while (!s.empty() && s.back() == ' ')
    s.remove_suffix(1);
  return s;
}

std::string parentDir(const std::string &path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash + 1);
}
} // namespace

bool isArchive(std::string_view bytes) {
  return bytes.starts_with("!<arch>\n") || bytes.starts_with("!<thin>\n");
}

Result<Archive> readArchive(const std::string &path, const Blob &blob) {
  std::string_view b = blob.bytes();
  if (!isArchive(b))
    return failed(path + ": not an archive");
  Archive ar;
  ar.thin = b.starts_with("!<thin>");
  std::string_view longNames;
  size_t off = 8;
  while (off < b.size()) {
    if (b.size() - off < kHeaderSize)
      return failed(path + ": truncated member header at offset " + std::to_string(off));
    std::string_view hdr = b.substr(off, kHeaderSize);
    if (hdr.substr(58, 2) != "`\n")
      return failed(path + ": bad member header at offset " + std::to_string(off));
    std::string_view sizeField = trimRight(hdr.substr(48, 10));
    size_t size = 0;
    auto [p, ec] = std::from_chars(sizeField.data(), sizeField.data() + sizeField.size(), size);
    if (ec != std::errc() || p != sizeField.data() + sizeField.size())
      return failed(path + ": bad member size at offset " + std::to_string(off));
    std::string_view rawName = trimRight(hdr.substr(0, 16));
    size_t dataOff = off + kHeaderSize;
    bool special = rawName == "/" || rawName == "/SYM64/" || rawName == "//";
    // In a thin archive, only the special members store their data.
    bool hasData = !ar.thin || special;
    if (hasData && size > b.size() - dataOff)
      return failed(path + ": member at offset " + std::to_string(off) + " runs past the end");
    if (rawName == "//") {
      longNames = b.substr(dataOff, size);
    } else if (!special) {
      std::string name;
      if (rawName.size() > 1 && rawName[0] == '/') {
        size_t idx = 0;
        auto [q, ec2] = std::from_chars(rawName.data() + 1, rawName.data() + rawName.size(), idx);
        if (ec2 != std::errc() || idx >= longNames.size())
          return failed(path + ": bad long member name at offset " + std::to_string(off));
        size_t end = longNames.find('\n', idx);
        std::string_view n = longNames.substr(idx, end == std::string_view::npos ? end : end - idx);
        if (n.ends_with('/'))
          n.remove_suffix(1);
        name = std::string(n);
      } else if (rawName.starts_with("#1/")) {
        return failed(path + ": BSD archives are not supported");
      } else {
        std::string_view n = rawName;
        if (n.ends_with('/'))
          n.remove_suffix(1);
        name = std::string(n);
      }
      ArchiveMember m;
      m.name = name;
      m.headerOffset = off;
      if (ar.thin) {
        m.path = name.starts_with("/") ? name : parentDir(path) + name;
        auto mapped = Blob::mapFile(m.path);
        if (!mapped)
          return std::move(mapped).error().context(path);
        m.bytes = std::move(*mapped);
      } else {
        m.bytes = blob.slice(dataOff, size);
      }
      ar.members.push_back(std::move(m));
    }
    off = dataOff + (hasData ? size : 0);
    if (off % 2)
      ++off;
  }
  return ar;
}

} // namespace thinfarm

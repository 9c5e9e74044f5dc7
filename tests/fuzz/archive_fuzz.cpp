// Fuzzes the archive reader (lto/archive.cpp): every archive on a link's
// command line is read by it before anything else looks at it. The input is
// an archive's bytes, read as DIR/fuzz.a; a thin archive's members name
// files relative to DIR, where a.o and b.bc exist. Reading must end in an
// archive or an error, and an archive must be consistent: members in file
// order, each header inside the file and ending in "`\n", a regular
// member's bytes inside the file right after its header.
#include "lto/archive.h"
#include "tests/fuzz/fuzz.h"

using namespace thinfarm;

namespace {

const fuzz::ScratchDir &scratch() {
  static fuzz::ScratchDir dir;
  static bool filled = [] {
    dir.write("a.o", "\x7f" "ELF a member's bytes");
    dir.write("b.bc", "BC\xc0\xde another member");
    return true;
  }();
  (void)filled;
  return dir;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string path = scratch().path() + "/fuzz.a";
  Blob blob = Blob::fromString(std::string(fuzz::asText(data, size)));
  auto ar = readArchive(path, blob);
  if (!ar.ok()) {
    if (ar.error().message.empty())
      fuzz::fail("an error without a message");
    return 0;
  }
  std::string_view file = blob.bytes();
  if (ar->thin != file.starts_with("!<thin>\n"))
    fuzz::fail("thin or not, wrongly");
  size_t last = 0;
  for (const ArchiveMember &m : ar->members) {
    if (m.headerOffset < 8 || m.headerOffset <= last || m.headerOffset % 2 ||
        m.headerOffset > file.size() || file.size() - m.headerOffset < 60)
      fuzz::fail("a member header at offset " + std::to_string(m.headerOffset));
    last = m.headerOffset;
    if (file.substr(m.headerOffset + 58, 2) != "`\n")
      fuzz::fail("a member whose header does not end in `\\n");
    if (ar->thin) {
      if (m.path.empty())
        fuzz::fail("a thin member without a path");
      continue;
    }
    const char *begin = m.bytes.bytes().data(), *end = begin + m.bytes.size();
    if (m.bytes.size() &&
        (begin != file.data() + m.headerOffset + 60 || end > file.data() + file.size()))
      fuzz::fail("a member's bytes outside the file or not after its header");
  }
  return 0;
}

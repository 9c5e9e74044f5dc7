// Stage 2: expand archives.
//
// Archives stay as they are on disk; this stage only maps them. lld names a
// plain bitcode file's module by the path it was given, and an archive
// member's module "ARCHIVE(MEMBER-BASENAME at HEADER-OFFSET)". The backends
// must see those exact identifiers: they end up in section ordering and in
// the names of promoted local symbols, so a module presented under another
// name compiles to different bytes. A thin archive's member is the file it
// names; a regular archive's member is the slice after its header.
//
// -l is resolved the way lld does: each -L directory in order, lib<NAME>.so
// before lib<NAME>.a unless -Bstatic is in effect; -l:FILE names the file.
#include "lto/expand.h"

#include <sys/stat.h>

namespace thinfarm {

namespace {

bool fileExists(const std::string &p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Result<std::string> findLibrary(const LinkCommand &cmd, const std::string &name, bool isStatic) {
  for (const std::string &dir : cmd.libraryPaths) {
    std::string prefix = dir.empty() || dir.back() == '/' ? dir : dir + "/";
    if (name.starts_with(":")) {
      if (fileExists(prefix + name.substr(1)))
        return prefix + name.substr(1);
      continue;
    }
    if (!isStatic && fileExists(prefix + "lib" + name + ".so"))
      return prefix + "lib" + name + ".so";
    if (fileExists(prefix + "lib" + name + ".a"))
      return prefix + "lib" + name + ".a";
  }
  return failed("unable to find library -l" + name);
}

} // namespace

std::string baseName(const std::string &p) {
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

FileKind classify(std::string_view b) {
  if (b.starts_with("BC\xC0\xDE") || b.starts_with("\xDE\xC0\x17\x0B"))
    return FileKind::Bitcode;
  if (b.starts_with("\x7F"
                    "ELF"))
    return b.size() > 16 && b[16] == 3 /*ET_DYN*/ ? FileKind::SharedObject : FileKind::Elf;
  if (isArchive(b))
    return FileKind::Archive;
  return FileKind::Other;
}

Result<Inputs> expandInputs(const LinkCommand &cmd) {
  Inputs in;
  bool whole = false, lazy = false, isStatic = false;
  for (size_t i = 0; i < cmd.args.size(); ++i) {
    const Arg &arg = cmd.args[i];
    switch (arg.kind) {
    case Arg::Kind::WholeArchive:
      whole = true;
      continue;
    case Arg::Kind::NoWholeArchive:
      whole = false;
      continue;
    case Arg::Kind::StartLib:
      if (lazy)
        return unimplemented("nested --start-lib");
      lazy = true;
      continue;
    case Arg::Kind::EndLib:
      if (!lazy)
        return unimplemented("--end-lib without --start-lib");
      lazy = false;
      continue;
    case Arg::Kind::Static:
      isStatic = true;
      continue;
    case Arg::Kind::Dynamic:
      isStatic = false;
      continue;
    case Arg::Kind::Option:
      continue;
    case Arg::Kind::Input:
    case Arg::Kind::Library:
      break;
    }
    InputFile f;
    f.argIndex = i;
    f.lazy = lazy;
    f.wholeArchive = whole;
    if (arg.kind == Arg::Kind::Library) {
      TF_TRY(f.path, findLibrary(cmd, arg.value, isStatic));
    } else {
      f.path = arg.value;
    }
    TF_TRY(f.bytes, Blob::mapFile(f.path));
    f.kind = classify(f.bytes.bytes());
    if (f.kind == FileKind::Bitcode) {
      f.hasBitcode = true;
      in.modules.emplace(f.path, f.bytes);
    } else if (f.kind == FileKind::Archive) {
      TF_TRY(f.archive, readArchive(f.path, f.bytes));
      for (const ArchiveMember &m : f.archive.members) {
        ExpandedMember em{m, classify(m.bytes.bytes()), {}};
        if (em.kind == FileKind::Bitcode) {
          em.identifier = f.path + "(" + baseName(m.path.empty() ? m.name : m.path) + " at " +
                          std::to_string(m.headerOffset) + ")";
          in.modules.emplace(em.identifier, m.bytes);
          f.hasBitcode = true;
        }
        f.members.push_back(std::move(em));
      }
    }
    in.files.push_back(std::move(f));
  }
  if (lazy)
    return unimplemented("--start-lib without --end-lib");
  return in;
}

} // namespace thinfarm

#pragma once

#include "lto/archive.h"
#include "lto/link.h"

#include <map>
#include <optional>

namespace thinfarm {

enum class FileKind { Bitcode, Elf, SharedObject, Archive, Other };
FileKind classify(std::string_view bytes);
std::string baseName(const std::string &path); // the part after the last '/'

// One member of an archive the link reads, classified.
struct ExpandedMember {
  ArchiveMember member;
  FileKind kind;
  std::string identifier; // bitcode: lld's module identifier
};

// What one file operand (or -l) of the command line turned out to be.
struct InputFile {
  size_t argIndex;  // position in LinkCommand::args
  std::string path; // as lld opens it (after -l search)
  FileKind kind;
  Blob bytes;
  bool lazy = false; // inside --start-lib ... --end-lib
  bool wholeArchive = false;
  Archive archive; // kind == Archive
  std::vector<ExpandedMember> members;
  bool hasBitcode = false; // a bitcode file, or an archive with bitcode members
};

struct Inputs {
  std::vector<InputFile> files;
  // Every bitcode module the link could load, by lld's identifier.
  std::map<std::string, Blob> modules;
};

// Stage 2: opens every input, expands archives into their members and names
// each bitcode module exactly as lld will.
Result<Inputs> expandInputs(const LinkCommand &cmd);

} // namespace thinfarm

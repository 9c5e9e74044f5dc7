// A backend job: one module's ThinLTO backend as a self-contained value.
//
// Everything the backend reads is in the job, by content: the module's
// bitcode, its index shard, the bitcode of every module it imports from, and
// the files its module asm pulls in with .incbin (by their path relative to
// the build directory, which is how the assembler looks them up). With the
// backend configuration that is all a machine needs to produce the same
// native object as lld's in-process ThinLTO, so a job can run in this process,
// in a child, or on another machine.
#pragma once

#include "lto/link.h"

#include <cstdint>

namespace thinfarm {

struct IncbinFile {
  std::string path; // as written in the asm, relative to the build directory
  Blob bytes;
};

struct BackendJob {
  unsigned task = 0; // position in lld's task order; names the output
  Module module;
  Blob indexShard;
  std::vector<Module> imports;
  std::vector<IncbinFile> incbins;
  // Scheduling estimate: bitcode bytes of the module and its imports.
  uint64_t cost() const {
    uint64_t c = module.bitcode.size();
    for (const Module &m : imports)
      c += m.bitcode.size() / 8; // imports are read lazily, mostly skipped
    return c;
  }
};

struct BackendOutput {
  std::string object; // the native ELF object
  std::vector<Diagnostic> diagnostics;
};

// What the link keeps of a finished job: the native object, written to the
// scratch directory, and what the reassembly needs to know of it. Made on the
// worker thread as each job finishes, so it overlaps the remaining backends.
// What a native ELF object brings to lld's symbol table.
struct ElfSymbols {
  std::vector<std::string> globals;     // every global (non-local) symbol's name
  std::vector<std::string> weakDefined; // the weak definitions among them
  std::vector<std::string> comdats;     // the signatures of its COMDAT groups
  std::vector<std::pair<std::string, uint64_t>> commons; // common symbols, with their sizes
};

struct NativeObject {
  std::string path;
  ElfSymbols symbols;
  std::string elfHeader; // its first 64 bytes: the ELF identity shims copy
  std::vector<Diagnostic> diagnostics;
};

} // namespace thinfarm

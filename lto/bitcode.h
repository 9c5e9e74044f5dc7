#pragma once

#include "lto/job.h"
#include "lto/link.h"

#include <cstdint>
#include <map>
#include <unordered_set>

namespace thinfarm {

// A symbol of a module's IR symbol table, in the form lld sees it.
struct IRSymbol {
  std::string name;
  bool undefined = false;
  bool weak = false;
  bool tls = false;
  bool common = false;
  uint8_t visibility = 0; // ELF STV_*
};

struct ModuleFacts {
  bool thin = false;                // a ThinLTO module (has a summary, not regular LTO)
  std::vector<IRSymbol> symbols;    // in symbol-table order
  std::vector<std::string> incbins; // files its module-level asm pulls in
  // GUIDs of its non-local globals (definitions and declarations) that are
  // not dso_local: a backend marks them so when the combined index says
  // (shard.cpp).
  std::vector<uint64_t> notDsoLocal;
};

// Reads what the driver needs to know of one module without compiling it:
// its LTO kind, its IR symbol table, and the .incbin files of its module asm.
Result<ModuleFacts> inspectModule(const Module &m);

// Appends what the native ELF object `elf` has to `out`.
Status collectSymbols(std::string_view name, std::string_view elf, ElfSymbols &out);

// The global symbols an ELF file leaves undefined, in .symtab and .dynsym.
Result<std::vector<std::string>> undefinedSymbols(std::string_view name, std::string_view elf);

// Whether an ELF object's .note.gnu.property has a property of this type.
Result<bool> hasGnuProperty(std::string_view name, std::string_view elf, uint32_t type);

// Registers every LLVM target as lld does at start-up; before any module is read.
void initializeTargets();

// Parses the operands of .incbin directives in assembly text.
std::vector<std::string> parseIncbins(std::string_view asmText);

} // namespace thinfarm

namespace thinfarm {
struct Inputs;
using ModuleFactsMap = std::map<std::string, ModuleFacts>;
// inspectModule for every module the link could load, on `threads` threads.
Result<ModuleFactsMap> inspectModules(const std::map<std::string, Blob> &modules, unsigned threads);
} // namespace thinfarm

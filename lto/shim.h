#pragma once

#include "lto/bitcode.h"

#include <unordered_set>

namespace thinfarm {

struct ShimSymbol {
  std::string name;
  bool weak = false;
  bool tls = false;
  uint8_t visibility = 0; // STV_*
};

// The symbols a module's shim lists: its IR symbols, defined ones first,
// then undefined ones, each group in symbol-table order, each name once (the
// first occurrence gives the binding, the most constraining visibility wins),
// restricted to names in `live`.
std::vector<ShimSymbol> shimSymbols(const std::vector<IRSymbol> &irSymbols,
                                    const std::unordered_set<std::string> &live);

// What a link's shims carry besides their symbols. lld reads a few things
// from every ELF object it links, shims included, that it never reads from
// bitcode; a shim must be neutral in each (ARCHITECTURE.md lists them all).
struct ShimFormat {
  // A native object of the link: the shim copies its ELF identity (class,
  // data, machine, e_flags), which lld merges over its inputs. Its OS ABI is
  // the bitcode's as lld sees it: none.
  std::string_view like;
  // -r: lld copies SHF_EXCLUDE sections into a relocatable output, so a shim
  // of a -r link carries no .llvm_addrsig.
  bool relocatable = false;
};

// An ELF relocatable object whose only content is its symbol table, every
// symbol undefined, plus two sections lld consumes and never outputs:
//  - .note.gnu.property (x86-64, AArch64) with every FEATURE_1_AND bit set,
//    the identity of the AND lld takes over its ELF inputs (IBT, SHSTK, BTI,
//    PAC), so the shim neither clears a bit nor draws a -z *-report warning;
//  - an empty .llvm_addrsig (not with -r): no symbol of the shim is
//    address-significant for --icf, as none of the bitcode's is in stock lld.
Result<std::string> writeShim(const std::vector<ShimSymbol> &symbols, const ShimFormat &format);

} // namespace thinfarm

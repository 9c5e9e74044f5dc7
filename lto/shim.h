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

// An ELF relocatable object with no sections but its symbol table, every
// symbol undefined. `like` is a native object of the link whose ELF identity
// (class, data, machine, flags) the shim copies.
Result<std::string> writeShim(const std::vector<ShimSymbol> &symbols, std::string_view like);

} // namespace thinfarm

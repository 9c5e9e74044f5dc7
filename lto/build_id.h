// GNU build-ids: the identities of the programs whose code decides a link's
// output (the backend's LLVM, lld, thinfarm-ld itself). Two builds of one
// version, patched differently, have different build-ids.
#pragma once

#include <string>

namespace thinfarm {

// The hex build-id of an ELF file; "" when it has none or is not readable.
std::string buildIdOfFile(const std::string &path);

// The build-id of the LLVM library this process runs (of this program when
// LLVM is linked in statically).
std::string llvmBuildId();

} // namespace thinfarm

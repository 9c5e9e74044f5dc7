#pragma once

#include "lto/link.h"

namespace thinfarm {

// Expands @response files and classifies every argument. An option thinfarm
// does not know, or knows to be unsafe to split, is an Unimplemented error:
// the caller then runs stock ld.lld-19 on the original command.
Result<LinkCommand> parseCommandLine(const std::vector<std::string> &argv);

// GNU-style tokenization of a response file, as lld does on Unix.
std::vector<std::string> tokenizeResponseFile(std::string_view text);

} // namespace thinfarm

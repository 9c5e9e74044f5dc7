// Fuzzes the config-file parser (client/local_farm.cpp configValueIn: the
// user's ~/.config/thinfarm/config, "NAME = VALUE" lines): the input is the
// file's text. For each name thinfarm reads, the value must be a trimmed
// piece of one line without its comment, and must read back the same from
// a file holding just "NAME = VALUE".
#include "client/local_farm.h"
#include "tests/fuzz/fuzz.h"

using namespace thinfarm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view text = fuzz::asText(data, size);
  for (std::string_view name : {"coordinator", "key", "coordinator-key", ""}) {
    std::string value = configValueIn(text, name);
    if (value.empty())
      continue;
    if (text.find(value) == std::string_view::npos)
      fuzz::fail("a value that is not in the file");
    if (value.find_first_of("\n#") != std::string::npos)
      fuzz::fail("a value across lines or with its comment: " + value);
    if (value.front() == ' ' || value.front() == '\t' || value.back() == ' ' ||
        value.back() == '\t' || value.back() == '\r')
      fuzz::fail("a value not trimmed: '" + value + "'");
    std::string again = std::string(name) + " = " + value + "\n";
    if (configValueIn(again, name) != value)
      fuzz::fail("'" + value + "' reads back as '" + configValueIn(again, name) + "'");
  }
  return 0;
}

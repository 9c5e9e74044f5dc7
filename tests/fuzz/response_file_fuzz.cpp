// Fuzzes the response-file tokenizer (lto/parse.cpp tokenizeResponseFile,
// LLVM's GNU tokenizer as lld uses it): the input is a response file's text.
// Tokenizing must end; and the tokens, written back with every character
// escaped, must tokenize to the same tokens (what the memo and the thin
// link hand on must mean what the build's file meant). A word is a C string
// in LLVM's argv, as in lld's: it ends at a NUL byte.
#include "lto/parse.h"
#include "tests/fuzz/fuzz.h"

using namespace thinfarm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::vector<std::string> tokens = tokenizeResponseFile(fuzz::asText(data, size));
  std::string quoted;
  for (const std::string &t : tokens) {
    if (t.empty()) { // a word that began with a NUL byte: lld's argv ends it there too
      quoted += std::string("\\\0 ", 3);
      continue;
    }
    for (char c : t) {
      quoted += '\\';
      quoted += c;
    }
    quoted += ' ';
  }
  std::vector<std::string> again = tokenizeResponseFile(quoted);
  for (size_t i = 0; i < std::max(tokens.size(), again.size()); ++i)
    if (i >= tokens.size() || i >= again.size() || tokens[i] != again[i])
      fuzz::fail("escaped, token " + std::to_string(i) + " '" +
                 (i < tokens.size() ? tokens[i] : "(none)") + "' tokenizes as '" +
                 (i < again.size() ? again[i] : "(none)") + "'");
  return 0;
}

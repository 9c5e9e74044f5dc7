// Fuzzes the link command-line parser (lto/parse.cpp, stage 1 of every
// link): thinfarm-ld sees whatever command line a build gives $(LD).
//
// The input is NUL-separated arguments, optionally followed by '\x01' and the
// text of a response file `a.rsp` in the process's scratch directory (the
// working directory), which the arguments may name as @a.rsp (it may name
// itself: LLVM refuses the recursion). An '@' word naming a path with a
// slash is left out of the input: that would fuzz the file system
// (@/dev/zero never ends), not the parser. Parsing must end in a command or
// an error, and a command must be consistent: every argument spelled by one
// or two tokens, an input's value its token, optimization levels in 0..3.
#include "lto/parse.h"
#include "tests/fuzz/fuzz.h"

#include <unistd.h>

using namespace thinfarm;

namespace {

const fuzz::ScratchDir &scratch() {
  static fuzz::ScratchDir dir;
  static bool entered = [] {
    if (::chdir(dir.path().c_str()) != 0)
      fuzz::fail("cannot enter " + dir.path());
    // A second, fixed response file: the kind the kernel's build writes.
    dir.write("objs.rsp", "built-in.a\n--whole-archive vmlinux.a --no-whole-archive\n");
    return true;
  }();
  (void)entered;
  return dir;
}

// Whether an '@' in text starts a word that names a path with a slash.
bool namesPathFile(std::string_view text) {
  for (size_t at = text.find('@'); at != std::string_view::npos; at = text.find('@', at + 1))
    for (size_t i = at + 1; i < text.size(); ++i) {
      char c = text[i];
      if (c == '/')
        return true;
      if (c == '\0' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\x01')
        break;
    }
  return false;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const fuzz::ScratchDir &dir = scratch();
  std::string_view text = fuzz::asText(data, size);
  if (namesPathFile(text))
    return 0;
  std::string_view args = text, rsp;
  if (size_t split = text.find('\x01'); split != std::string_view::npos) {
    args = text.substr(0, split);
    rsp = text.substr(split + 1);
  }
  dir.write("a.rsp", rsp);
  std::vector<std::string> argv;
  while (!args.empty()) {
    size_t nul = args.find('\0');
    argv.emplace_back(args.substr(0, nul));
    args = nul == std::string_view::npos ? std::string_view() : args.substr(nul + 1);
  }
  auto cmd = parseCommandLine(argv);
  if (!cmd.ok()) {
    if (cmd.error().message.empty())
      fuzz::fail("an error without a message");
    return 0;
  }
  if (cmd->original != argv)
    fuzz::fail("the original command is not the one given");
  for (const Arg &a : cmd->args) {
    if (a.tokens.empty() || a.tokens.size() > 2)
      fuzz::fail("an argument of " + std::to_string(a.tokens.size()) + " tokens");
    if (a.kind == Arg::Kind::Input && a.value != a.tokens[0])
      fuzz::fail("an input named otherwise than spelled: " + a.tokens[0]);
  }
  const BackendConfig &b = cmd->backend;
  if (b.optLevel < 0 || b.optLevel > 3 || b.cgOptLevel < 0 || b.cgOptLevel > 3)
    fuzz::fail("an optimization level outside 0..3");
  return 0;
}

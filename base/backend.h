// What every layer knows of a ThinLTO backend without knowing LLVM: its
// configuration (from the link's command line) and the diagnostics it prints.
// The link driver fills them, the wire carries them, a worker hands them to
// its backend child.
#pragma once

#include <string>
#include <vector>

namespace thinfarm {

// Everything lld's createConfig() reads from the command line, so a backend
// configured from it produces what lld's in-process ThinLTO produces.
struct BackendConfig {
  int optLevel = 2;   // --lto-O, -plugin-opt=O
  int cgOptLevel = 2; // CodeGenOptLevel, derived from optLevel as lld does
  bool relocatable = false;
  bool pic = false;
  // LLVM command-line options in the order lld parses them: -plugin-opt=mcpu=,
  // then -plugin-opt=-X, then -mllvm X.
  std::vector<std::string> llvmOptions;
  std::vector<std::string> mllvm; // the -mllvm subset (lto::Config::MllvmArgs)

  friend bool operator==(const BackendConfig &, const BackendConfig &) = default;
};

enum class Severity { Error, Warning, Remark, Note };

struct Diagnostic {
  Severity severity = Severity::Note;
  std::string text;

  friend bool operator==(const Diagnostic &, const Diagnostic &) = default;
};

} // namespace thinfarm

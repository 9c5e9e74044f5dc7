// The model of one link that the driver's stages hand to each other.
//
// parse        argv                  -> LinkCommand (classified arguments)
// expand       LinkCommand           -> Inputs (every file and archive member, bitcode or native)
// thin link    LinkCommand, Inputs   -> ThinLinkResult (module list, index shards, import lists)
// plan         ThinLinkResult, ...   -> BackendJobs (self-contained values)
// run          BackendJobs           -> native objects
// assemble     everything above      -> the output file, written by ld.lld-19
#pragma once

#include "base/backend.h"
#include "lto/blob.h"

#include <optional>
#include <string>
#include <vector>

namespace thinfarm {

// One argument after response-file expansion, with its original spelling.
struct Arg {
  enum class Kind {
    Option,         // passed on as spelled
    Input,          // a file operand
    Library,        // -lNAME / -l:FILE, resolved against -L paths
    WholeArchive,   // --whole-archive
    NoWholeArchive, // --no-whole-archive
    StartLib,       // --start-lib
    EndLib,         // --end-lib
    Static,         // -Bstatic / -static: -l finds only archives
    Dynamic,        // -Bdynamic
  };
  Kind kind = Kind::Option;
  std::vector<std::string> tokens; // one or two tokens, as on the command line
  std::string value;               // Input: path; Library: NAME or :FILE; Option: its value
  std::string option;              // Option: its name in parse.cpp's table ("T", "threads")
};

struct LinkCommand {
  std::vector<std::string> original; // argv[1..] as given (response files unexpanded)
  std::vector<Arg> args;             // expanded and classified
  std::string output = "a.out";
  std::vector<std::string> libraryPaths; // -L, in order
  std::vector<std::string> scripts;      // -T/--script, as spelled
  // The -T scripts and --defsym values in command-line order, the order in
  // which lld declares the symbols they assign (assemble.cpp).
  struct Assigner {
    bool script; // a -T script (as spelled), or a --defsym NAME=EXPR
    std::string value;
  };
  std::vector<Assigner> assigners;
  bool undefinedSymbols = false; // -u, --undefined or --require-defined given
  // --version or --help: the command is lld's to answer (the rest of the
  // command line is not classified).
  bool informational = false;
  BackendConfig backend;
  unsigned threads = 0; // --thinlto-jobs, 0 = one per core
};

// A module of the link: a bitcode file or archive member under the exact
// identifier lld gives it.
struct Module {
  std::string identifier; // "init/main.o", "vmlinux.a(main.o at 208618)"
  Blob bitcode;
};

} // namespace thinfarm

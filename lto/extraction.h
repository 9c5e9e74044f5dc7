#pragma once

#include "lto/bitcode.h"
#include "lto/expand.h"

#include <map>
#include <set>

namespace thinfarm {

// One line of lld's --why-extract report.
struct Extraction {
  std::string reference; // the file (or <internal>, --entry) whose reference loaded it
  std::string extracted; // "archive(member)" or a --start-lib file
  std::string symbol;    // the name that loaded it (demangled, as lld prints it)
};

Result<std::vector<Extraction>> readWhyExtract(const std::string &path);

// Lazily loadable inputs (members of archives not under --whole-archive, and
// --start-lib files), with the names lld gives them in the thin link and in
// the reassembly link, where converted archives become --start-lib files.
class LazyInputs {
public:
  explicit LazyInputs(const Inputs &inputs);

  // Before the backends run: the reassembly puts the shim of a lazily loaded
  // bitcode module at the module's own position, which is where lld meets its
  // symbols only if lld loaded it while scanning that position, that is, for
  // a reference from an earlier input that was itself loaded on time. A
  // module loaded late, by a later input or for a library call its LTO may
  // emit (<libcall>, after every input), has its shim placed where lld loaded
  // it (see placedAfter). Any other is Unimplemented (the link falls back to
  // stock lld).
  Status checkBitcodePlacement(const std::vector<Extraction> &thin, bool hasUndefinedOption);

  // The lazily loaded bitcode modules (thin-link names) lld loaded while
  // reading the input `anchor` (a thin-link name; "" for after every input),
  // in lld's order: their shims go right after that input's file or shim. At
  // its own position such a module leaves only its defined names, as lld's
  // lazy symbols did.
  const std::vector<std::string> &placedAfter(const std::string &anchor) const;
  bool placedLate(const std::string &name) const { return late_.count(name) != 0; }

  // After the reassembly link: it must load the same native members, in the
  // same order, as the thin link did. A shim only references symbols, so a
  // symbol the bitcode defined could make lld load a member stock lld would
  // not; this catches that.
  Status checkSameNativeExtractions(const std::vector<Extraction> &thin,
                                    const std::vector<Extraction> &reassembly) const;

  // The name a converted regular archive's member gets in the reassembly.
  void setReassemblyName(const std::string &thinName, const std::string &path);

private:
  struct Lazy {
    std::pair<size_t, size_t> position; // (argument, member + 1), 0 for a file
    bool bitcode;
    std::string reassemblyName;
  };
  std::map<std::string, Lazy> lazy_;                       // by thin-link name
  std::map<std::string, std::pair<size_t, size_t>> eager_; // non-lazy inputs
  std::set<std::string> anchorable_; // inputs the reassembly names one by one
  std::map<std::string, std::vector<std::string>> placedAfter_; // anchor -> modules
  std::set<std::string> late_;
};

// lld's name for an archive member in diagnostics and --why-extract.
std::string memberName(const InputFile &archive, const ExpandedMember &m);

} // namespace thinfarm

// What lld loads lazily, and checks that the reassembly link loads the same.
//
// lld reads an archive member (or a --start-lib file) only when a symbol it
// defines is referenced; before that, its defined names sit in the symbol
// table as lazy symbols. The reassembly link replaces lazily loaded bitcode
// with eagerly loaded shims, which is exact only when lld loaded that bitcode
// at its own position. Both links report what they loaded (--why-extract):
// the thin link's report says whether the placement is exact, and comparing
// the two reports says whether the reassembly loaded the same native members.
#include "lto/extraction.h"

#include <algorithm>
#include <optional>
#include <sstream>

namespace thinfarm {

Result<std::vector<Extraction>> readWhyExtract(const std::string &path) {
  TF_TRY(std::string text, readFile(path));
  std::vector<Extraction> out;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line); // header: reference extracted symbol
  while (std::getline(in, line)) {
    size_t t1 = line.find('\t');
    size_t t2 = t1 == std::string::npos ? t1 : line.find('\t', t1 + 1);
    if (t2 == std::string::npos)
      return failed(path + ": malformed --why-extract line: " + line);
    out.push_back({line.substr(0, t1), line.substr(t1 + 1, t2 - t1 - 1), line.substr(t2 + 1)});
  }
  return out;
}

std::string memberName(const InputFile &archive, const ExpandedMember &m) {
  return archive.path + "(" + (m.member.path.empty() ? m.member.name : m.member.path) + ")";
}

LazyInputs::LazyInputs(const Inputs &inputs) {
  for (const InputFile &f : inputs.files) {
    std::pair<size_t, size_t> pos{f.argIndex, 0};
    if (f.kind != FileKind::Archive) {
      if (f.lazy)
        lazy_[f.path] = {pos, f.kind == FileKind::Bitcode, f.path};
      else
        eager_[f.path] = pos;
      if (!f.lazy || f.kind == FileKind::Bitcode)
        anchorable_.insert(f.path);
      continue;
    }
    for (size_t i = 0; i < f.members.size(); ++i) {
      const ExpandedMember &m = f.members[i];
      std::string name = memberName(f, m);
      std::pair<size_t, size_t> mpos{f.argIndex, i + 1};
      // The reassembly names each member of an archive with bitcode (see
      // assemble.cpp); native members of other archives it does not.
      if (f.hasBitcode && (f.wholeArchive || m.kind == FileKind::Bitcode))
        anchorable_.insert(name);
      if (f.wholeArchive) {
        eager_[name] = mpos;
        continue;
      }
      // An archive with bitcode becomes --start-lib files in the reassembly:
      // a thin archive's member under its path (regular ones: see
      // setReassemblyName); an archive without bitcode stays as it is.
      std::string reassembly = f.hasBitcode && !m.member.path.empty() ? m.member.path : name;
      lazy_[name] = {mpos, m.kind == FileKind::Bitcode, reassembly};
    }
  }
}

void LazyInputs::setReassemblyName(const std::string &thinName, const std::string &path) {
  auto it = lazy_.find(thinName);
  if (it != lazy_.end())
    it->second.reassemblyName = path;
}

const std::vector<std::string> &LazyInputs::placedAfter(const std::string &anchor) const {
  static const std::vector<std::string> kNone;
  auto it = placedAfter_.find(anchor);
  return it == placedAfter_.end() ? kNone : it->second;
}

Status LazyInputs::checkBitcodePlacement(const std::vector<Extraction> &thin,
                                         bool hasUndefinedOption) {
  // lld loads for --entry or --undefined-glob after every input and before
  // the library calls; the reassembly would load those after the shims.
  bool optionLoads = std::any_of(thin.begin(), thin.end(), [](const Extraction &e) {
    return e.reference.starts_with("--");
  });
  auto positionOf = [&](const std::string &name) -> std::optional<std::pair<size_t, size_t>> {
    if (auto r = eager_.find(name); r != eager_.end())
      return r->second;
    if (auto r = lazy_.find(name); r != lazy_.end())
      return r->second.position;
    return std::nullopt;
  };
  std::map<std::string, bool> onTime;
  placedAfter_.clear();
  late_.clear();
  for (const Extraction &e : thin) {
    auto x = lazy_.find(e.extracted);
    if (x == lazy_.end())
      continue; // e.g. a shared object's needed library
    const bool bitcode = x->second.bitcode;
    auto late = [&](const std::string &anchor) {
      placedAfter_[anchor].push_back(e.extracted);
      late_.insert(e.extracted);
      onTime[e.extracted] = false; // what it loads in turn is not loaded on time
    };
    auto r = positionOf(e.reference);
    // A native member that the input reading it loaded after a late module:
    // lld read it before that module, the reassembly after.
    if (!bitcode && r && !placedAfter(e.reference).empty() && x->second.position < *r)
      return unimplemented(e.extracted + " is loaded by " + e.reference +
                           " after a bitcode module the split places after it");
    bool ok = false;
    if (e.reference == "<internal>") {
      ok = hasUndefinedOption; // -u is resolved before any input is read
    } else if (r && eager_.count(e.reference)) { // r is set for every eager or lazy file
      ok = *r < x->second.position;
    } else if (r && lazy_.count(e.reference)) {
      ok = onTime[e.reference] && *r < x->second.position;
    } else if (e.reference == "<libcall>" && bitcode && !optionLoads) {
      late("");
      continue;
    }
    // Loaded late by an input the reassembly names on its own (an eager
    // file, or bitcode loaded on time): its shim goes right after that input.
    bool anchored = r && anchorable_.count(e.reference) &&
                    (eager_.count(e.reference) || onTime[e.reference]);
    if (!ok && bitcode && anchored) {
      late(e.reference);
      continue;
    }
    onTime[e.extracted] = ok;
    if (!ok && bitcode)
      return unimplemented(e.extracted + " is loaded by a later reference (from " + e.reference +
                           "), which the split cannot place where lld does");
  }
  return ok();
}

Status LazyInputs::checkSameNativeExtractions(const std::vector<Extraction> &thin,
                                              const std::vector<Extraction> &reassembly) const {
  std::vector<std::string> expected, actual;
  for (const Extraction &e : thin)
    if (auto x = lazy_.find(e.extracted); x != lazy_.end() && !x->second.bitcode)
      expected.push_back(x->second.reassemblyName);
  for (const Extraction &e : reassembly)
    actual.push_back(e.extracted);
  if (expected == actual)
    return ok();
  size_t i = 0;
  while (i < expected.size() && i < actual.size() && expected[i] == actual[i])
    ++i;
  std::string what = i < actual.size() ? "loaded " + actual[i] : "did not load " + expected[i];
  return unimplemented("the reassembly link " + what + " out of step with lld's own resolution");
}

} // namespace thinfarm

// Stage 6: assemble.
//
// The output must be the file stock lld writes for the original command, so
// lld writes it, from a command that differs from the original only where
// bitcode was:
//  - a bitcode file becomes its shim (see shim.cpp), at its own position;
//  - an archive with bitcode members becomes its members in order, native
//    members as they are (a thin archive's member is the file it names, a
//    regular archive's is copied out) and bitcode members by their shims.
//    Under --whole-archive the members are plain files. Otherwise they are
//    wrapped in --start-lib/--end-lib so native members stay lazy, and each
//    shim of a member that the thin link extracted stands outside, loaded;
//    members the thin link did not extract are left out.
//  - the native objects come after every input, in lld's task order, which is
//    where lld adds the objects its in-process LTO produces.
// lld's in-process LTO adds those objects after all inputs, so their sections
// land after every native input's in each output section, as here; the shims
// put each symbol into lld's symbol table where the bitcode would have.
#include "lto/assemble.h"

#include "lto/shim.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <sstream>
#include <unordered_set>

namespace thinfarm {


Result<NativeObject> keepNative(const std::string &scratch, const BackendJob &job,
                                BackendOutput &&out) {
  NativeObject n;
  n.path = scratch + "/native/" + std::to_string(job.task) + ".o";
  TF_CHECK(writeFile(n.path, out.object));
  TF_CHECK(collectGlobalSymbols(job.module.identifier, out.object, n.globals));
  n.elfHeader = out.object.substr(0, 64);
  n.diagnostics = std::move(out.diagnostics);
  return n;
}

Result<std::vector<std::string>> reassemblyCommand(const Toolchain &tc, const AssembleInput &in) {
  const std::string shimDir = in.scratch + "/shim";
  const std::string memberDir = in.scratch + "/member";

  // Names that reach lld's output: globals of every native object and input.
  std::unordered_set<std::string> live;
  std::vector<std::string> nativePaths;
  for (const NativeObject &n : in.natives) {
    live.insert(n.globals.begin(), n.globals.end());
    nativePaths.push_back(n.path);
  }
  // Only native inputs lld loads count: a lazy member or --start-lib file it
  // never loaded puts nothing into lld's output.
  std::unordered_set<std::string> loaded;
  for (const Extraction &e : in.thin.extractions)
    loaded.insert(e.extracted);
  std::vector<std::string> inputGlobals;
  for (const InputFile &f : in.inputs.files) {
    if (f.kind == FileKind::Elf && (!f.lazy || loaded.count(f.path)))
      TF_CHECK(collectGlobalSymbols(f.path, f.bytes.bytes(), inputGlobals));
    for (const ExpandedMember &m : f.members) {
      std::string name = memberName(f, m);
      if (m.kind == FileKind::Elf && (f.wholeArchive || loaded.count(name)))
        TF_CHECK(collectGlobalSymbols(name, m.member.bytes.bytes(), inputGlobals));
    }
  }
  live.insert(inputGlobals.begin(), inputGlobals.end());

  // One shim per module of the thin link.
  std::map<std::string, std::string> shimOf; // identifier -> path
  std::string_view like = in.natives.empty() ? std::string_view() : in.natives[0].elfHeader;
  for (size_t i = 0; i < in.thin.modules.size(); ++i) {
    const std::string &id = in.thin.modules[i].identifier;
    auto facts = in.facts.find(id);
    assert(facts != in.facts.end());
    TF_TRY(std::string shim, writeShim(shimSymbols(facts->second.symbols, live), like));
    std::string path = shimDir + "/" + std::to_string(i) + ".o";
    TF_CHECK(writeFile(path, shim));
    shimOf.emplace(id, std::move(path));
  }

  std::vector<std::string> argv{tc.lld};
  size_t nextFile = 0, memberCount = 0;
  for (size_t a = 0; a < in.cmd.args.size(); ++a) {
    const Arg &arg = in.cmd.args[a];
    const InputFile *f = nullptr;
    if (nextFile < in.inputs.files.size() && in.inputs.files[nextFile].argIndex == a)
      f = &in.inputs.files[nextFile++];
    if (!f || !f->hasBitcode) {
      argv.insert(argv.end(), arg.tokens.begin(), arg.tokens.end());
      continue;
    }
    // A lazy module the thin link did not load is left out; its defined names
    // then never enter lld's symbol table, which matters only if they reach
    // the output.
    auto leaveOut = [&](const std::string &id) -> Status {
      for (const IRSymbol &s : in.facts.at(id).symbols)
        if (!s.undefined && live.count(s.name))
          return unimplemented(id + " is not loaded but defines " + s.name +
                               ", which the output has");
      return ok();
    };
    if (f->kind == FileKind::Bitcode) {
      auto shim = shimOf.find(f->path);
      if (shim == shimOf.end()) {
        TF_CHECK(leaveOut(f->path));
        continue;
      }
      if (f->lazy)
        argv.insert(argv.end(), {"--end-lib", shim->second, "--start-lib"});
      else
        argv.push_back(shim->second);
      continue;
    }
    // An archive with bitcode members.
    if (f->lazy)
      return unimplemented(f->path + ": an archive with bitcode inside --start-lib");
    if (!f->wholeArchive)
      argv.push_back("--start-lib");
    for (const ExpandedMember &m : f->members) {
      if (m.kind == FileKind::Bitcode) {
        auto shim = shimOf.find(m.identifier);
        if (shim == shimOf.end()) {
          if (f->wholeArchive)
            return failed("the thin link did not load " + m.identifier + " from a --whole-archive");
          TF_CHECK(leaveOut(m.identifier));
          continue;
        }
        if (f->wholeArchive)
          argv.push_back(shim->second);
        else
          argv.insert(argv.end(), {"--end-lib", shim->second, "--start-lib"});
        continue;
      }
      if (!m.member.path.empty()) {
        argv.push_back(m.member.path);
        continue;
      }
      std::string path = memberDir + "/" + std::to_string(memberCount++) + "-" + m.member.name;
      TF_CHECK(writeFile(path, m.member.bytes.bytes()));
      in.lazy.setReassemblyName(memberName(*f, m), path);
      argv.push_back(std::move(path));
    }
    if (!f->wholeArchive)
      argv.push_back("--end-lib");
  }
  argv.insert(argv.end(), nativePaths.begin(), nativePaths.end());
  argv.push_back("--why-extract=" + in.scratch + "/reassembly.why");
  return argv;
}

Result<std::string> assemble(const Toolchain &tc, const AssembleInput &in) {
  TF_TRY(std::vector<std::string> argv, reassemblyCommand(tc, in));
  // The last -o wins: lld writes beside the output, which appears only once
  // the link is known to be right.
  const std::string tmpOutput = in.cmd.output + ".thinfarm-tmp";
  argv.insert(argv.end(), {"-o", tmpOutput});
  std::string errPath = in.scratch + "/reassembly.stderr";
  TF_TRY(Child child, Child::spawn(argv, errPath));
  TF_TRY(int exitCode, child.wait());
  TF_TRY(std::string errText, readFile(errPath));
  // The thin link already printed what lld says about the inputs; print only
  // what is new.
  std::istringstream lines(errText);
  std::string printed;
  for (std::string line; std::getline(lines, line);)
    if (in.thin.diagnostics.find(line) == std::string::npos)
      printed += line + "\n";
  std::fputs(printed.c_str(), stderr);
  if (exitCode != 0) {
    ::unlink(tmpOutput.c_str());
    return failed("reassembly link failed (" + tc.lld + " exited with " +
                  std::to_string(exitCode) + ")");
  }
  auto loaded = readWhyExtract(in.scratch + "/reassembly.why");
  Status same = loaded.ok() ? in.lazy.checkSameNativeExtractions(in.thin.extractions, *loaded)
                            : Status(std::move(loaded).error());
  if (!same.ok()) {
    ::unlink(tmpOutput.c_str());
    return std::move(same).error();
  }
  if (::rename(tmpOutput.c_str(), in.cmd.output.c_str()) != 0) {
    ::unlink(tmpOutput.c_str());
    return failed("cannot rename the output into place: " + in.cmd.output);
  }
  return printed;
}

} // namespace thinfarm

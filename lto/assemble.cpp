// Stage 7: assemble.
//
// The output must be the file stock lld writes for the original command, so
// lld writes it, from a command that differs from the original only where
// bitcode was:
//  - a bitcode file becomes its shim (see shim.cpp), at its own position;
//  - an archive with bitcode members becomes its members in order, native
//    members as they are (under scratch names that lld's diagnostics show
//    as "archive(member)": a link to the file a thin archive's member names,
//    a copy of a regular archive's) and bitcode members by their shims.
//    Under --whole-archive the members are plain files. Otherwise they are
//    wrapped in --start-lib/--end-lib so native members stay lazy, and each
//    shim of a member that the thin link extracted stands outside, loaded;
//    members the thin link did not extract are left out.
//  - the native objects come after every input, in lld's task order, which is
//    where lld adds the objects its in-process LTO produces.
// lld's in-process LTO adds those objects after all inputs, so their sections
// land after every native input's in each output section, as here; the shims
// put each symbol into lld's symbol table where the bitcode would have.
//
// Which names a shim lists: the names some native object or loaded native
// input has as a global (a name LTO dropped never reaches lld's output), and
// the undefined names of the bitcode that lld may define itself once they are
// in its symbol table, which in stock lld they are whatever LTO did with the
// references: __start_/__stop_ of a C-identifier section, lld's reserved
// symbols (_end, __ehdr_start, _GLOBAL_OFFSET_TABLE_, ...) and names a linker
// script assigns (PROVIDE). Whether lld defines such a name depends on the
// output (does section foo exist?), so these are a guess the output checks:
// a guessed name left undefined in the output is one stock lld would not have
// had at all, and the reassembly runs again without it.
#include "lto/assemble.h"

#include "lto/run.h"
#include "lto/shim.h"

#include <llvm/ADT/SmallString.h>
#include <llvm/Demangle/Demangle.h>
#include <llvm/Support/FileSystem.h>
#include <llvm/Support/Path.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

namespace thinfarm {

namespace {

bool isCIdentifier(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0])))
    return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_')
      return false;
  return true;
}

// lld 19's reserved symbols, defined when referenced (Writer.cpp:
// addReservedSymbols, addStartEndSymbols, addRelIpltSymbols; Target files).
bool isReservedName(std::string_view n) {
  static constexpr std::string_view kNames[] = {"_GLOBAL_OFFSET_TABLE_",
                                                "__ehdr_start",
                                                "__executable_start",
                                                "__dso_handle",
                                                "_end",
                                                "end",
                                                "_etext",
                                                "etext",
                                                "_edata",
                                                "edata",
                                                "__bss_start",
                                                "__global_pointer$",
                                                "_gp",
                                                "_gp_disp",
                                                "__gnu_local_gp",
                                                "_TLS_MODULE_BASE_",
                                                "__init_array_start",
                                                "__init_array_end",
                                                "__fini_array_start",
                                                "__fini_array_end",
                                                "__preinit_array_start",
                                                "__preinit_array_end",
                                                "__rela_iplt_start",
                                                "__rela_iplt_end",
                                                "__rel_iplt_start",
                                                "__rel_iplt_end",
                                                "_DYNAMIC",
                                                ".TOC.",
                                                "_SDA_BASE_",
                                                "_SDA2_BASE_",
                                                "__exidx_start",
                                                "__exidx_end",
                                                "__tls_get_addr"};
  for (std::string_view k : kNames)
    if (n == k)
      return true;
  return false;
}

bool isSymbolChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '$';
}

// Whether `name` appears as a whole word in linker script text.
bool mentions(std::string_view text, std::string_view name) {
  for (size_t pos = text.find(name); pos != std::string_view::npos;
       pos = text.find(name, pos + 1)) {
    bool before = pos == 0 || !isSymbolChar(text[pos - 1]);
    size_t end = pos + name.size();
    bool after = end >= text.size() || !isSymbolChar(text[end]);
    if (before && after)
      return true;
  }
  return false;
}

// A -T script's text, found as lld finds it (as given, else in the -L
// directories).
Result<std::string> readScript(const LinkCommand &cmd, const std::string &s) {
  auto t = readFile(s);
  for (size_t i = 0; !t && s.find('/') == std::string::npos && i < cmd.libraryPaths.size(); ++i)
    t = readFile(cmd.libraryPaths[i] + "/" + s);
  if (!t)
    return unimplemented("cannot read the linker script " + s);
  return std::move(*t);
}

// The text of every -T script.
Result<std::string> scriptText(const LinkCommand &cmd) {
  std::string text;
  for (const std::string &s : cmd.scripts) {
    TF_TRY(std::string t, readScript(cmd, s));
    text += t;
    text += '\n';
  }
  return text;
}

// The symbols a linker script's assignments declare, in order
// (LinkerScript::declareSymbols: assignments at the top level and in output
// section descriptions; PROVIDE only if something references the name, so
// never a name nobody mentions, and not listed here). An assignment is
// NAME op EXPR at the start of a statement: after the script's start, a
// newline, ';', '{', '}' or ')'. Nothing when the script uses what this
// reading does not follow (INCLUDE, OVERLAY, output section
// constraints).
std::optional<std::vector<std::string>> scriptAssignments(std::string text) {
  for (size_t a = text.find("/*"); a != std::string::npos; a = text.find("/*", a)) {
    size_t b = text.find("*/", a + 2);
    text.replace(a, (b == std::string::npos ? text.size() : b + 2) - a, " ");
  }
  for (std::string_view word : {"INCLUDE", "OVERLAY", "ONLY_IF_RO", "ONLY_IF_RW"})
    if (mentions(text, word))
      return std::nullopt;
  std::vector<std::string> out;
  auto ws = [&](size_t p) {
    while (p < text.size() && std::isspace(static_cast<unsigned char>(text[p])))
      ++p;
    return p;
  };
  for (size_t start = 0; start < text.size(); ++start) {
    if (start > 0 && !std::strchr("\n;{})", text[start - 1]))
      continue;
    size_t p = ws(start);
    bool provide = false;
    for (std::string_view kw : {"PROVIDE_HIDDEN", "PROVIDE", "HIDDEN"})
      if (text.compare(p, kw.size(), kw) == 0 && ws(p + kw.size()) < text.size() &&
          text[ws(p + kw.size())] == '(') {
        provide = kw != "HIDDEN";
        p = ws(ws(p + kw.size()) + 1);
        break;
      }
    std::string name;
    if (p < text.size() && text[p] == '"') {
      size_t q = text.find('"', p + 1);
      if (q == std::string::npos)
        break;
      name = text.substr(p + 1, q - p - 1);
      p = q + 1;
    } else {
      while (p < text.size() && isSymbolChar(text[p]))
        name += text[p++];
    }
    p = ws(p);
    if (name.empty() || name == "." || p >= text.size())
      continue;
    size_t op = 0;
    for (std::string_view o : {"<<=", ">>=", "+=", "-=", "*=", "/=", "&=", "|=", "^=", "="})
      if (text.compare(p, o.size(), o) == 0) {
        op = o.size();
        break;
      }
    if (op == 0 || (op == 1 && p + 1 < text.size() && text[p + 1] == '='))
      continue;
    if (!provide)
      out.push_back(std::move(name));
  }
  return out;
}

// The names lld adds to its symbol table after every input and before the
// objects its LTO makes: the symbols --defsym and -T script assignments
// declare that no input mentions. In the reassembly the natives are inputs,
// so a name only they bring would come before these, and the symbol table's
// order would differ; a shim just before the natives lists these names, in
// lld's order, which puts them back in front. Empty when nothing is assigned
// (the kernel's scripts place sections only), or when the natives bring no
// name of their own (then nothing comes between). `mentioned` is every name
// an input brings, lazily or not; asked for only when something is assigned.
Result<std::vector<std::string>>
declaredBeforeLto(const AssembleInput &in,
                  const std::function<Result<std::unordered_set<std::string>>()> &mentioned) {
  std::vector<std::string> assigned;
  for (const LinkCommand::Assigner &a : in.cmd.assigners) {
    if (!a.script) {
      assigned.push_back(a.value.substr(0, a.value.find('=')));
      continue;
    }
    TF_TRY(std::string text, readScript(in.cmd, a.value));
    auto names = scriptAssignments(std::move(text));
    if (!names)
      return unimplemented("the symbol order of the linker script " + a.value +
                           "'s assignments (it uses INCLUDE, OVERLAY or a section constraint)");
    assigned.insert(assigned.end(), names->begin(), names->end());
  }
  std::vector<std::string> out;
  if (assigned.empty())
    return out;
  TF_TRY(std::unordered_set<std::string> known, mentioned());
  bool newNames = false;
  for (const NativeObject &n : in.natives)
    for (const std::string &g : n.symbols.globals)
      newNames = newNames || !known.count(g);
  if (!newNames)
    return out;
  std::unordered_set<std::string> seen;
  for (std::string &n : assigned)
    if (!known.count(n) && seen.insert(n).second)
      out.push_back(std::move(n));
  return out;
}

// The guessed names (see the top of this file): undefined names of the bitcode
// outside `live` that lld may define.
Result<std::unordered_set<std::string>>
mayBeLinkerDefined(const AssembleInput &in, const std::unordered_set<std::string> &live) {
  std::unordered_set<std::string> out;
  if (in.cmd.backend.relocatable) // lld -r defines none of them
    return out;
  TF_TRY(std::string script, scriptText(in.cmd));
  for (const ThinModule &m : in.thin.modules)
    for (const IRSymbol &s : in.facts.at(m.identifier).symbols) {
      if (!s.undefined || live.count(s.name))
        continue;
      std::string_view n = s.name;
      bool startStop = (n.starts_with("__start_") && isCIdentifier(n.substr(8))) ||
                       (n.starts_with("__stop_") && isCIdentifier(n.substr(7)));
      if (startStop || isReservedName(n) || (!script.empty() && mentions(script, n)))
        out.insert(s.name);
    }
  return out;
}

// The name lld 19 gives the object its in-process LTO made of a module
// (BitcodeCompiler::compile): path/to/x.o in a link -o out is
// path/to/out.lto.x.o; an archive member's identifier keeps its file name.
std::string lldLtoObjectName(const std::string &output, const std::string &identifier) {
  namespace path = llvm::sys::path;
  llvm::StringRef id = identifier;
  llvm::StringRef base = id.ends_with(")") ? path::filename(id) : path::stem(id);
  llvm::SmallString<256> name;
  path::append(name, path::parent_path(id), path::filename(output) + ".lto." + base + ".o");
  path::remove_dots(name, /*remove_dot_dot=*/true);
  return name.str().str();
}

// A symbolic link at `link` to `target` (made absolute: the link lives in
// scratch), replacing the one a previous reassembly command made.
Status symlinkTo(const std::string &target, const std::string &link) {
  llvm::SmallString<256> abs(target);
  if (std::error_code ec = llvm::sys::fs::make_absolute(abs))
    return failed(target + ": " + ec.message());
  if (std::error_code ec = llvm::sys::fs::remove(link))
    return failed("cannot remove " + link + ": " + ec.message());
  if (std::error_code ec = llvm::sys::fs::create_link(abs, link))
    return failed("cannot link " + link + " to " + target + ": " + ec.message());
  return ok();
}

// Whether a symbol's name is the one --why-extract printed (demangled by
// default).
bool sameSymbol(const std::string &name, const std::string &printed) {
  return name == printed || llvm::demangle(name) == printed;
}

// Puts back the names stock lld would print for the files the reassembly
// links under scratch paths.
std::string renameScratchFiles(std::string text, const Reassembly &r) {
  for (const auto &[from, to] : r.names)
    for (size_t pos = text.find(from); pos != std::string::npos;
         pos = text.find(from, pos + to.size()))
      text.replace(pos, from.size(), to);
  return text;
}

// The shims' format, from the natives (lld reads it from the ELF objects).
Result<ShimFormat> shimFormat(const AssembleInput &in) {
  ShimFormat f;
  f.relocatable = in.cmd.backend.relocatable;
  if (in.natives.empty())
    return f;
  f.like = in.natives[0].elfHeader;
  uint16_t machine = 0;
  if (f.like.size() >= 20)
    std::memcpy(&machine, f.like.data() + 18, 2);
  // AArch64 PAuth core info must agree over all ELF objects lld links; a shim
  // cannot know which value a native carries: not split.
  if (machine == 183 /*EM_AARCH64*/)
    for (const NativeObject &n : in.natives) {
      TF_TRY(Blob bytes, Blob::mapFile(n.path));
      TF_TRY(bool pauth, hasGnuProperty(n.path, bytes.bytes(), 0xc0000001 /*FEATURE_PAUTH*/));
      if (pauth)
        return unimplemented("AArch64 PAuth core info in the LTO objects");
    }
  return f;
}

// A weak definition or COMDAT group that both a native input and an LTO
// object have. In stock lld the first copy lld read prevails; when the
// bitcode came first, that is the LTO object's (lld puts it in the bitcode's
// place in the symbol table), and only then does the LTO object still have
// it (a copy the native input beat is dropped by LTO). In the reassembly the
// native input comes first and would win: not split.
// Commons are the same question: lld moves a common symbol to a larger copy
// only, so of two copies of one size the first stays (and with it the
// symbol's place in .symtab and .bss). When the LTO object has a common of
// the size a native input has, the bitcode's copy came first in stock lld.
Status checkFirstDefinitions(const std::vector<NativeObject> &natives,
                             const std::vector<std::pair<std::string, ElfSymbols>> &inputs) {
  std::unordered_map<std::string, std::string> weak, comdats; // name -> native input
  std::map<std::pair<std::string, uint64_t>, std::string> commons;
  for (const auto &[file, symbols] : inputs) {
    for (const std::string &n : symbols.weakDefined)
      weak.emplace(n, file);
    for (const std::string &n : symbols.comdats)
      comdats.emplace(n, file);
    for (const auto &c : symbols.commons)
      commons.emplace(c, file);
  }
  if (weak.empty() && comdats.empty() && commons.empty())
    return ok();
  for (const NativeObject &n : natives) {
    for (const auto &c : n.symbols.commons)
      if (auto it = commons.find(c); it != commons.end())
        return unimplemented("bitcode and the native object " + it->second +
                             " both have the common symbol " + c.first + " of size " +
                             std::to_string(c.second));
    for (const std::string &s : n.symbols.weakDefined)
      if (auto it = weak.find(s); it != weak.end())
        return unimplemented("bitcode and the native object " + it->second +
                             " both define the weak symbol " + s);
    for (const std::string &s : n.symbols.comdats)
      if (auto it = comdats.find(s); it != comdats.end())
        return unimplemented("bitcode and the native object " + it->second +
                             " both have the COMDAT group " + s);
  }
  return ok();
}

} // namespace

Result<NativeObject> keepNative(const std::string &scratch, const BackendJob &job,
                                BackendOutput &&out) {
  NativeObject n;
  n.path = scratch + "/native/" + std::to_string(job.task) + ".o";
  // lld marks its output ELFOSABI_GNU when an input object is (MC marks one
  // with IFUNCs so), but never for its own LTO objects; natives stand for
  // those, so their OS ABI byte is cleared in the reassembly's copy.
  if (out.object.size() > 7)
    out.object[7] = 0; // EI_OSABI = ELFOSABI_NONE
  TF_CHECK(writeFile(n.path, out.object));
  TF_CHECK(collectSymbols(job.module.identifier, out.object, n.symbols));
  n.elfHeader = out.object.substr(0, 64);
  n.diagnostics = std::move(out.diagnostics);
  return n;
}

// lld reads a bitcode file's names one at a time (BitcodeFile::parse:
// insert, resolve), and loads a lazy file the moment one of them resolves to
// it, so the names of what it loaded come between the module's own. An ELF
// object, as a shim is, has all its names inserted before any is resolved.
// So a shim is cut after each name that loaded something in the thin link
// (`loading`, as --why-extract printed them): part by part, the names enter
// lld's table in the order the bitcode's did.
namespace {
std::vector<std::vector<ShimSymbol>> shimParts(std::vector<ShimSymbol> symbols,
                                               const std::vector<std::string> &loading) {
  std::vector<std::vector<ShimSymbol>> parts(1);
  for (size_t i = 0; i < symbols.size(); ++i) {
    bool loads = std::any_of(loading.begin(), loading.end(),
                             [&](const std::string &l) { return sameSymbol(symbols[i].name, l); });
    parts.back().push_back(std::move(symbols[i]));
    if (loads && i + 1 < symbols.size())
      parts.emplace_back();
  }
  return parts;
}
} // namespace

Result<Reassembly> reassemblyCommand(const Toolchain &tc, const AssembleInput &in,
                                     const std::unordered_set<std::string> &notDefinedByLld) {
  const std::string shimDir = in.scratch + "/shim";
  const std::string memberDir = in.scratch + "/member";

  // Names that reach lld's output: globals of every native object and input.
  std::unordered_set<std::string> live;
  std::vector<std::string> nativePaths;
  Reassembly r;
  for (size_t i = 0; i < in.natives.size(); ++i) {
    const NativeObject &n = in.natives[i];
    live.insert(n.symbols.globals.begin(), n.symbols.globals.end());
    nativePaths.push_back(n.path);
    r.names.emplace_back(n.path, lldLtoObjectName(in.cmd.output, in.thin.modules[i].identifier));
  }
  // Only native inputs lld loads count: a lazy member or --start-lib file it
  // never loaded puts nothing into lld's output.
  std::unordered_set<std::string> loaded;
  for (const Extraction &e : in.thin.extractions)
    loaded.insert(e.extracted);
  auto fileLoaded = [&](const InputFile &f) { return !f.lazy || loaded.count(f.path) != 0; };
  auto memberLoaded = [&](const InputFile &f, const std::string &name) {
    return f.wholeArchive || loaded.count(name) != 0;
  };
  std::vector<std::pair<std::string, ElfSymbols>> inputs; // loaded native inputs
  for (const InputFile &f : in.inputs.files) {
    if (f.kind == FileKind::Elf && fileLoaded(f))
      TF_CHECK(collectSymbols(f.path, f.bytes.bytes(),
                              inputs.emplace_back(f.path, ElfSymbols()).second));
    for (const ExpandedMember &m : f.members) {
      std::string name = memberName(f, m);
      if (m.kind == FileKind::Elf && memberLoaded(f, name))
        TF_CHECK(collectSymbols(name, m.member.bytes.bytes(),
                                inputs.emplace_back(name, ElfSymbols()).second));
    }
  }
  for (const auto &[name, symbols] : inputs)
    live.insert(symbols.globals.begin(), symbols.globals.end());
  TF_CHECK(checkFirstDefinitions(in.natives, inputs));
  TF_TRY(r.guessed, mayBeLinkerDefined(in, live));
  for (const std::string &n : notDefinedByLld)
    r.guessed.erase(n);
  std::unordered_set<std::string> listed = live;
  listed.insert(r.guessed.begin(), r.guessed.end());
  auto mentioned = [&]() -> Result<std::unordered_set<std::string>> {
    std::unordered_set<std::string> names;
    for (const auto &[id, f] : in.facts)
      for (const IRSymbol &s : f.symbols)
        names.insert(s.name);
    for (const auto &[name, symbols] : inputs) // read above
      names.insert(symbols.globals.begin(), symbols.globals.end());
    ElfSymbols lazy; // the native inputs lld left lazy: their names are in its table too
    for (const InputFile &f : in.inputs.files) {
      if (f.kind == FileKind::Elf && !fileLoaded(f))
        TF_CHECK(collectSymbols(f.path, f.bytes.bytes(), lazy));
      for (const ExpandedMember &m : f.members)
        if (m.kind == FileKind::Elf && !memberLoaded(f, memberName(f, m)))
          TF_CHECK(collectSymbols(memberName(f, m), m.member.bytes.bytes(), lazy));
    }
    names.insert(lazy.globals.begin(), lazy.globals.end());
    return names;
  };
  TF_TRY(std::vector<std::string> declared, declaredBeforeLto(in, mentioned));

  // The name lld gives each module (a file's path, "archive(member)"), and
  // what each one's references loaded, in lld's order.
  std::unordered_map<std::string, std::string> lldName; // identifier -> name
  for (const InputFile &f : in.inputs.files) {
    if (f.kind == FileKind::Bitcode)
      lldName.emplace(f.path, f.path);
    for (const ExpandedMember &m : f.members)
      if (m.kind == FileKind::Bitcode)
        lldName.emplace(m.identifier, memberName(f, m));
  }
  std::unordered_map<std::string, std::vector<const Extraction *>> loadsOf; // by reference
  for (const Extraction &e : in.thin.extractions)
    loadsOf[e.reference].push_back(&e);

  // One shim per module of the thin link, cut into parts (see shimParts).
  struct ShimPart {
    std::string path;
    std::string loads; // the name it ends with, which loaded a file; or empty
  };
  std::map<std::string, std::string> shimOf;            // identifier -> first part
  std::map<std::string, std::vector<ShimPart>> partsOf; // first part -> its parts
  TF_TRY(ShimFormat format, shimFormat(in));
  {
    // Written in parallel: a kernel's vmlinux.o has thousands.
    const size_t n = in.thin.modules.size();
    std::vector<std::vector<ShimPart>> parts(n);
    std::vector<size_t> order(n);
    for (size_t i = 0; i < n; ++i)
      order[i] = i;
    TF_CHECK(parallelForAll(order, defaultThreads(), [&](size_t i) -> Status {
      const std::string &id = in.thin.modules[i].identifier;
      auto facts = in.facts.find(id);
      assert(facts != in.facts.end());
      std::vector<std::string> loading;
      if (auto name = lldName.find(id); name != lldName.end())
        if (auto l = loadsOf.find(name->second); l != loadsOf.end())
          for (const Extraction *e : l->second)
            loading.push_back(e->symbol);
      std::vector<std::vector<ShimSymbol>> cut =
          shimParts(shimSymbols(facts->second.symbols, listed), loading);
      for (size_t p = 0; p < cut.size(); ++p) {
        std::string path =
            shimDir + "/" + std::to_string(i) + (p ? ".p" + std::to_string(p) : "") + ".o";
        TF_TRY(std::string shim, writeShim(cut[p], format));
        TF_CHECK(writeFile(path, shim));
        parts[i].push_back({path, p + 1 < cut.size() && !cut[p].empty() ? cut[p].back().name : ""});
      }
      return ok();
    }));
    for (size_t i = 0; i < n; ++i) {
      const std::string &id = in.thin.modules[i].identifier;
      for (const ShimPart &p : parts[i])
        r.names.emplace_back(p.path, id);
      shimOf.emplace(id, parts[i].front().path);
      partsOf.emplace(parts[i].front().path, std::move(parts[i]));
    }
  }

  // Lazy bitcode lld loaded late (extraction.h: by a later input, or for a
  // library call): at its own position a shim of its defined names only, as
  // weak references (they insert the names, they load nothing), where lld put
  // its lazy symbols; its own shim right after the input that loaded it.
  std::map<std::string, std::string> lateShim; // thin-link name -> its shim
  // A module's shim parts; after each part that ends with a name that loaded
  // lazy bitcode late, that bitcode's shim (lld read it right then).
  std::unordered_set<std::string> placedEarly; // late modules placed so
  auto allParts = [&](const std::string &shim, std::vector<std::string> &out) {
    for (const ShimPart &p : partsOf.at(shim))
      out.push_back(p.path);
  };
  auto placeShim = [&](const std::string &anchor, const std::string &shim,
                       std::vector<std::string> &out) {
    for (const ShimPart &p : partsOf.at(shim)) {
      out.push_back(p.path);
      if (p.loads.empty())
        continue;
      auto l = loadsOf.find(anchor);
      for (const std::string &name : in.lazy.placedAfter(anchor))
        if (auto late = lateShim.find(name); late != lateShim.end() && !placedEarly.count(name))
          for (const Extraction *e :
               l == loadsOf.end() ? std::vector<const Extraction *>{} : l->second)
            if (e->extracted == name && sameSymbol(p.loads, e->symbol)) {
              allParts(late->second, out);
              placedEarly.insert(name);
              break;
            }
    }
  };
  auto lazyNames = [&](const std::string &name, const std::string &id,
                       const std::string &shim) -> Result<std::string> {
    std::vector<IRSymbol> defined;
    for (const IRSymbol &s : in.facts.at(id).symbols)
      if (!s.undefined) {
        defined.push_back(s);
        defined.back().weak = true;
      }
    TF_TRY(std::string bytes, writeShim(shimSymbols(defined, listed), format));
    std::string path = shim + ".lazy.o";
    TF_CHECK(writeFile(path, bytes));
    r.names.emplace_back(path, id);
    lateShim[name] = shim;
    return path;
  };
  // The shim (or lazy-names shim) of a bitcode module at its own position.
  auto ownPosition = [&](const std::string &name, const std::string &id, const std::string &shim,
                         std::vector<std::string> &out) -> Status {
    if (in.lazy.placedLate(name)) {
      TF_TRY(std::string path, lazyNames(name, id, shim));
      out.push_back(std::move(path));
    } else {
      placeShim(name, shim, out);
    }
    return ok();
  };
  // Then the shims of the modules lld loaded while reading it.
  auto loadedBy = [&](const std::string &anchor, std::vector<std::string> &out) -> Status {
    for (const std::string &name : in.lazy.placedAfter(anchor)) {
      if (placedEarly.count(name))
        continue;
      auto shim = lateShim.find(name);
      if (shim == lateShim.end())
        return failed("the thin link loaded " + name + " (for " +
                      (anchor.empty() ? "a library call" : anchor) + ") out of the inputs' order");
      allParts(shim->second, out);
    }
    return ok();
  };
  // A version script may name a symbol the bitcode defined and LTO dropped:
  // stock lld assigned its version before LTO, the reassembly finds no
  // definition. Any name no input defines made the thin link fail already.
  std::vector<std::string> argv{tc.lld, "--undefined-version"};
  size_t nextFile = 0, memberCount = 0;
  for (size_t a = 0; a < in.cmd.args.size(); ++a) {
    const Arg &arg = in.cmd.args[a];
    // lld resolves against every archive whatever its position, so a group
    // changes nothing but --warn-backrefs (which is not split); and lld
    // refuses --start-lib inside one. The reassembly leaves groups out.
    if (arg.kind == Arg::Kind::Option && (arg.option == "start-group" || arg.option == "(" ||
                                          arg.option == "end-group" || arg.option == ")"))
      continue;
    const InputFile *f = nullptr;
    if (nextFile < in.inputs.files.size() && in.inputs.files[nextFile].argIndex == a)
      f = &in.inputs.files[nextFile++];
    if (!f || !f->hasBitcode) {
      argv.insert(argv.end(), arg.tokens.begin(), arg.tokens.end());
      // A native file that loaded lazy bitcode late is eager (a lazy one is
      // no anchor: extraction.cpp), so the shims simply follow it.
      if (f && f->kind != FileKind::Archive) {
        std::vector<std::string> late;
        TF_CHECK(loadedBy(f->path, late));
        argv.insert(argv.end(), late.begin(), late.end());
      }
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
      std::vector<std::string> here;
      TF_CHECK(ownPosition(f->path, f->path, shim->second, here));
      TF_CHECK(loadedBy(f->path, here));
      if (f->lazy)
        argv.push_back("--end-lib");
      argv.insert(argv.end(), here.begin(), here.end());
      if (f->lazy)
        argv.push_back("--start-lib");
      continue;
    }
    // An archive with bitcode members.
    if (f->lazy)
      return unimplemented(f->path + ": an archive with bitcode inside --start-lib");
    if (!f->wholeArchive)
      argv.push_back("--start-lib");
    for (const ExpandedMember &m : f->members) {
      const std::string name = memberName(*f, m);
      std::vector<std::string> here;
      if (m.kind == FileKind::Bitcode) {
        auto shim = shimOf.find(m.identifier);
        if (shim == shimOf.end()) {
          if (f->wholeArchive)
            return failed("the thin link did not load " + m.identifier + " from a --whole-archive");
          TF_CHECK(leaveOut(m.identifier));
          continue;
        }
        TF_CHECK(ownPosition(name, m.identifier, shim->second, here));
      } else {
        // A native member goes in under a scratch name of its own, which the
        // diagnostics turn back into lld's "archive(member)": a regular
        // archive's copied out, a thin archive's as a symbolic link to the
        // file it names (lld would otherwise print that file's path).
        std::string path = memberDir + "/" + std::to_string(memberCount++) + "-" +
                           llvm::sys::path::filename(m.member.name).str();
        if (m.member.path.empty())
          TF_CHECK(writeFile(path, m.member.bytes.bytes()));
        else
          TF_CHECK(symlinkTo(m.member.path, path));
        in.lazy.setReassemblyName(name, path);
        r.names.emplace_back(path, name);
        argv.push_back(std::move(path));
        if (!f->wholeArchive)
          continue;
      }
      TF_CHECK(loadedBy(name, here));
      if (here.empty())
        continue;
      if (!f->wholeArchive)
        argv.push_back("--end-lib");
      argv.insert(argv.end(), here.begin(), here.end());
      if (!f->wholeArchive)
        argv.push_back("--start-lib");
    }
    if (!f->wholeArchive)
      argv.push_back("--end-lib");
  }
  std::vector<std::string> libcalls;
  TF_CHECK(loadedBy("", libcalls));
  argv.insert(argv.end(), libcalls.begin(), libcalls.end());
  if (!declared.empty()) {
    std::vector<ShimSymbol> symbols;
    symbols.reserve(declared.size());
    for (std::string &n : declared)
      symbols.push_back({std::move(n)});
    TF_TRY(std::string shim, writeShim(symbols, format));
    std::string path = shimDir + "/declared.o";
    TF_CHECK(writeFile(path, shim));
    argv.push_back(path);
  }
  argv.insert(argv.end(), nativePaths.begin(), nativePaths.end());
  argv.push_back("--why-extract=" + in.scratch + "/reassembly.why");
  r.argv = std::move(argv);
  return r;
}

namespace {

// Runs one reassembly link into `outPath`; returns what lld printed that the
// thin link did not.
Result<std::string> reassemble(const Toolchain &tc, const AssembleInput &in, const Reassembly &r,
                               const std::string &outPath) {
  std::vector<std::string> argv = r.argv;
  argv.insert(argv.end(), {"-o", outPath}); // the last -o wins
  std::string errPath = in.scratch + "/reassembly.stderr";
  TF_TRY(Subprocess child, spawnLld(argv, errPath));
  TF_TRY(int exitCode, child.wait());
  TF_TRY(std::string errText, readFile(errPath));
  errText = renameScratchFiles(std::move(errText), r);
  // The thin link already printed what lld says about the inputs; print only
  // what is new.
  std::istringstream lines(errText);
  std::string printed;
  for (std::string line; std::getline(lines, line);)
    if (in.thin.diagnostics.find(line) == std::string::npos)
      printed += line + "\n";
  if (exitCode != 0) {
    // Stock lld either links where the reassembly did not, or says why not
    // in its own words: the link is lld's.
    ::unlink(outPath.c_str());
    std::string first = printed.substr(0, printed.find('\n'));
    return unimplemented("the reassembly link failed (" + tc.lld + " exited with " +
                         std::to_string(exitCode) + (first.empty() ? "" : ": " + first) + ")");
  }
  return printed;
}

// Checks the reassembly's output and moves it into place; returns what its
// link printed.
Result<std::string> finish(const AssembleInput &in, std::string printed,
                           const std::string &outPath) {
  auto loaded = readWhyExtract(in.scratch + "/reassembly.why");
  Status same = loaded.ok() ? in.lazy.checkSameNativeExtractions(in.thin.extractions, *loaded)
                            : Status(std::move(loaded).error());
  if (!same.ok()) {
    ::unlink(outPath.c_str());
    return std::move(same).error();
  }
  if (outPath != in.cmd.output && ::rename(outPath.c_str(), in.cmd.output.c_str()) != 0) {
    ::unlink(outPath.c_str());
    return failed("cannot rename the output into place: " + in.cmd.output);
  }
  return printed;
}

} // namespace

// lld writes the output beside the final name, which appears only once the
// link is known to be right. Two things can make it link again:
//  - lld wrote the output's own name into it (the base version definition of
//    a link with symbol versions and no -soname): then it links under the
//    final name, as stock lld does;
//  - guessed linker-defined names it left undefined (see the top of this
//    file): then it links without them; a second round suffices unless
//    dropping one changes what lld defines of the others.
Result<std::string> assemble(const Toolchain &tc, const AssembleInput &in) {
  std::unordered_set<std::string> notDefined;
  std::string outPath = in.cmd.output + ".thinfarm-tmp";
  for (int round = 0;; ++round) {
    if (round == 4) {
      ::unlink(outPath.c_str());
      return unimplemented("the reassembly's output does not settle");
    }
    TF_TRY(Reassembly r, reassemblyCommand(tc, in, notDefined));
    in.lap("shims");
    TF_TRY(std::string printed, reassemble(tc, in, r, outPath));
    in.lap("reassembly");
    TF_TRY(Blob output, Blob::mapFile(outPath));
    if (outPath != in.cmd.output && output.bytes().find(outPath) != std::string_view::npos) {
      ::unlink(outPath.c_str());
      outPath = in.cmd.output;
      continue;
    }
    if (r.guessed.empty())
      return finish(in, std::move(printed), outPath);
    TF_TRY(std::vector<std::string> undefined, undefinedSymbols(in.cmd.output, output.bytes()));
    size_t before = notDefined.size();
    for (const std::string &n : undefined)
      if (r.guessed.count(n))
        notDefined.insert(n);
    if (notDefined.size() == before)
      return finish(in, std::move(printed), outPath);
  }
}

} // namespace thinfarm

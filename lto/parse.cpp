// Stage 1: parse the command line into a model.
//
// lld's option grammar: a multi-letter option may start with "-" or "--" and
// take its value as "--opt=value", "--opt value" or "-opt value"; a
// single-letter option also takes it joined ("-ofile", "-lc"). Response files
// (@file) expand in place, recursively, with GNU quoting.
//
// Every option falls in one of three groups, listed in the table below:
//  - ones that change no backend and survive the reassembly link unchanged
//    (they are passed on as spelled);
//  - ones that feed lld's createConfig() (the LTO backend configuration) and
//    are recorded in BackendConfig;
//  - ones whose effect on the split is not modelled (save-temps, emitting
//    LLVM IR or assembly, wrapping, maps naming intermediate files, ...).
// The last group and any option not in the table make the whole link fall
// back to stock ld.lld-19. Guessing is never an option: a wrong guess is a
// wrong kernel.
#include "lto/parse.h"

#include <llvm/ADT/SmallVector.h>
#include <llvm/Support/Allocator.h>
#include <llvm/Support/CommandLine.h>
#include <llvm/Support/StringSaver.h>

#include <algorithm>
#include <charconv>

namespace thinfarm {

namespace {

enum class Form {
  Flag,   // no value
  Value,  // value separate or after '='
  Joined, // value only after '=' (the name in the table ends in '=')
};

enum class Effect {
  Pass,   // no effect on backends; kept as spelled
  Unsafe, // known, not modelled: fall back
  Output,
  Relocatable,
  Pie,
  NoPie,
  Shared,
  LibraryPath,
  Library,
  WholeArchive,
  NoWholeArchive,
  StartLib,
  EndLib,
  Static,
  Dynamic,
  Mllvm,
  PluginOpt,
  LtoO,
  LtoCGO,
  ThinLtoJobs,
  Script,    // kept as spelled; its symbols matter to the reassembly (assemble.cpp)
  Defsym,    // kept as spelled; so does its symbol
  Undefined, // -u, --undefined, --require-defined: kept; lld loads for them before any input
};

struct Spec {
  std::string_view name;
  Form form;
  Effect effect;
};

constexpr Spec kOptions[] = {
    // Output and link kind.
    {"o", Form::Value, Effect::Output},
    {"output", Form::Value, Effect::Output},
    {"r", Form::Flag, Effect::Relocatable},
    {"relocatable", Form::Flag, Effect::Relocatable},
    {"pie", Form::Flag, Effect::Pie},
    {"pic-executable", Form::Flag, Effect::Pie},
    {"no-pie", Form::Flag, Effect::NoPie},
    {"no-pic-executable", Form::Flag, Effect::NoPie},
    {"shared", Form::Flag, Effect::Shared},
    {"Bshareable", Form::Flag, Effect::Shared},
    // Inputs and how they are read.
    {"L", Form::Value, Effect::LibraryPath},
    {"library-path", Form::Value, Effect::LibraryPath},
    {"l", Form::Value, Effect::Library},
    {"library", Form::Value, Effect::Library},
    {"whole-archive", Form::Flag, Effect::WholeArchive},
    {"no-whole-archive", Form::Flag, Effect::NoWholeArchive},
    {"start-lib", Form::Flag, Effect::StartLib},
    {"end-lib", Form::Flag, Effect::EndLib},
    {"start-group", Form::Flag, Effect::Pass},
    {"(", Form::Flag, Effect::Pass},
    {"end-group", Form::Flag, Effect::Pass},
    {")", Form::Flag, Effect::Pass},
    {"Bstatic", Form::Flag, Effect::Static},
    {"static", Form::Flag, Effect::Static},
    {"dn", Form::Flag, Effect::Static},
    {"non_shared", Form::Flag, Effect::Static},
    {"Bdynamic", Form::Flag, Effect::Dynamic},
    {"dy", Form::Flag, Effect::Dynamic},
    {"call_shared", Form::Flag, Effect::Dynamic},
    {"as-needed", Form::Flag, Effect::Pass},
    {"no-as-needed", Form::Flag, Effect::Pass},
    {"T", Form::Value, Effect::Script},
    {"script", Form::Value, Effect::Script},
    {"sysroot", Form::Value, Effect::Pass},
    // LTO configuration (lld's createConfig).
    {"mllvm", Form::Value, Effect::Mllvm},
    {"plugin-opt", Form::Value, Effect::PluginOpt},
    {"plugin", Form::Value, Effect::Pass},
    {"lto-O", Form::Flag, Effect::LtoO}, // matched as a prefix: --lto-O2
    {"lto-CGO", Form::Flag, Effect::LtoCGO},
    {"thinlto-jobs=", Form::Joined, Effect::ThinLtoJobs},
    {"thinlto-cache-dir=", Form::Joined, Effect::Pass},
    {"thinlto-cache-policy=", Form::Joined, Effect::Pass},
    {"thinlto-cache-policy", Form::Value, Effect::Pass},
    {"disable-verify", Form::Flag, Effect::Unsafe},
    {"save-temps", Form::Flag, Effect::Unsafe},
    {"save-temps=", Form::Joined, Effect::Unsafe},
    {"lto-emit-asm", Form::Flag, Effect::Unsafe},
    {"lto-obj-path=", Form::Joined, Effect::Unsafe},
    {"lto-newpm-passes=", Form::Joined, Effect::Unsafe},
    {"lto-aa-pipeline=", Form::Joined, Effect::Unsafe},
    {"lto-sample-profile=", Form::Joined, Effect::Unsafe},
    {"lto-cs-profile-file=", Form::Joined, Effect::Unsafe},
    {"lto-cs-profile-generate", Form::Flag, Effect::Unsafe},
    {"lto-whole-program-visibility", Form::Flag, Effect::Unsafe},
    {"lto-basic-block-sections=", Form::Joined, Effect::Unsafe},
    {"lto-debug-pass-manager", Form::Flag, Effect::Unsafe},
    {"lto-partitions=", Form::Joined, Effect::Pass}, // regular LTO only
    {"load-pass-plugin", Form::Value, Effect::Unsafe},
    {"load-pass-plugin=", Form::Joined, Effect::Unsafe},
    {"thinlto-index-only", Form::Flag, Effect::Unsafe},
    {"thinlto-index-only=", Form::Joined, Effect::Unsafe},
    {"thinlto-emit-imports-files", Form::Flag, Effect::Unsafe},
    {"thinlto-emit-index-files", Form::Flag, Effect::Unsafe},
    {"thinlto-prefix-replace=", Form::Joined, Effect::Unsafe},
    {"thinlto-object-suffix-replace=", Form::Joined, Effect::Unsafe},
    {"thinlto-single-module=", Form::Joined, Effect::Unsafe},
    {"opt-remarks-filename", Form::Value, Effect::Unsafe},
    {"time-trace", Form::Flag, Effect::Unsafe},
    {"wrap", Form::Value, Effect::Unsafe},
    {"Map", Form::Value, Effect::Unsafe},
    {"M", Form::Flag, Effect::Unsafe},
    {"print-map", Form::Flag, Effect::Unsafe},
    {"reproduce", Form::Value, Effect::Unsafe},
    {"dependency-file", Form::Value, Effect::Unsafe},
    // Options that change no backend and mean the same on the native objects.
    {"m", Form::Value, Effect::Pass},
    {"z", Form::Value, Effect::Pass},
    {"e", Form::Value, Effect::Pass},
    {"entry", Form::Value, Effect::Pass},
    {"u", Form::Value, Effect::Undefined},
    {"undefined", Form::Value, Effect::Undefined},
    {"require-defined", Form::Value, Effect::Undefined},
    // Symbol traces go to stdout, from both links, naming shims and natives.
    {"y", Form::Value, Effect::Unsafe},
    {"trace-symbol", Form::Value, Effect::Unsafe},
    {"h", Form::Value, Effect::Pass},
    {"soname", Form::Value, Effect::Pass},
    {"rpath", Form::Value, Effect::Pass},
    {"version-script", Form::Value, Effect::Pass},
    {"dynamic-list", Form::Value, Effect::Pass},
    {"dynamic-linker", Form::Value, Effect::Pass},
    {"no-dynamic-linker", Form::Flag, Effect::Pass},
    {"hash-style", Form::Value, Effect::Pass},
    {"build-id", Form::Flag, Effect::Pass},
    {"build-id=", Form::Joined, Effect::Pass},
    {"no-undefined", Form::Flag, Effect::Pass},
    {"allow-shlib-undefined", Form::Flag, Effect::Pass},
    {"no-allow-shlib-undefined", Form::Flag, Effect::Pass},
    {"unresolved-symbols", Form::Value, Effect::Pass},
    {"gc-sections", Form::Flag, Effect::Pass},
    {"no-gc-sections", Form::Flag, Effect::Pass},
    {"export-dynamic", Form::Flag, Effect::Pass},
    {"E", Form::Flag, Effect::Pass},
    {"no-export-dynamic", Form::Flag, Effect::Pass},
    {"Bsymbolic", Form::Flag, Effect::Pass},
    {"Bsymbolic-functions", Form::Flag, Effect::Pass},
    {"Bno-symbolic", Form::Flag, Effect::Pass},
    {"s", Form::Flag, Effect::Pass},
    {"strip-all", Form::Flag, Effect::Pass},
    {"S", Form::Flag, Effect::Pass},
    {"strip-debug", Form::Flag, Effect::Pass},
    {"x", Form::Flag, Effect::Pass},
    {"discard-all", Form::Flag, Effect::Pass},
    {"X", Form::Flag, Effect::Pass},
    {"discard-locals", Form::Flag, Effect::Pass},
    {"discard-none", Form::Flag, Effect::Pass},
    {"eh-frame-hdr", Form::Flag, Effect::Pass},
    {"no-eh-frame-hdr", Form::Flag, Effect::Pass},
    {"emit-relocs", Form::Flag, Effect::Pass},
    {"q", Form::Flag, Effect::Pass},
    {"fatal-warnings", Form::Flag, Effect::Pass},
    {"no-fatal-warnings", Form::Flag, Effect::Pass},
    {"warn-common", Form::Flag, Effect::Pass},
    {"no-warn-rwx-segments", Form::Flag, Effect::Pass},
    {"warn-rwx-segments", Form::Flag, Effect::Pass},
    {"color-diagnostics", Form::Flag, Effect::Pass},
    {"color-diagnostics=", Form::Joined, Effect::Pass},
    {"no-color-diagnostics", Form::Flag, Effect::Pass},
    {"error-limit", Form::Value, Effect::Pass},
    {"threads", Form::Value, Effect::Pass},
    {"nostdlib", Form::Flag, Effect::Pass},
    {"pack-dyn-relocs", Form::Value, Effect::Pass},
    {"orphan-handling", Form::Value, Effect::Pass},
    {"sort-section", Form::Value, Effect::Pass},
    {"icf", Form::Value, Effect::Pass},
    {"Ttext", Form::Value, Effect::Pass},
    {"Tdata", Form::Value, Effect::Pass},
    {"Tbss", Form::Value, Effect::Pass},
    {"section-start", Form::Value, Effect::Pass},
    {"image-base", Form::Value, Effect::Pass},
    {"defsym", Form::Value, Effect::Defsym},
    {"init", Form::Value, Effect::Pass},
    {"fini", Form::Value, Effect::Pass},
    {"no-relax", Form::Flag, Effect::Pass},
    {"noinhibit-exec", Form::Flag, Effect::Pass},
    {"N", Form::Flag, Effect::Pass},
    {"omagic", Form::Flag, Effect::Pass},
    {"n", Form::Flag, Effect::Pass},
    {"nmagic", Form::Flag, Effect::Pass},
    {"no-rosegment", Form::Flag, Effect::Pass},
    {"apply-dynamic-relocs", Form::Flag, Effect::Pass},
    {"compress-debug-sections", Form::Value, Effect::Pass},
    {"undefined-version", Form::Flag, Effect::Pass},
    {"no-undefined-version", Form::Flag, Effect::Pass},
    {"warn-unresolved-symbols", Form::Flag, Effect::Pass},
    {"error-unresolved-symbols", Form::Flag, Effect::Pass},
    {"O", Form::Value, Effect::Pass}, // linker -O1: string merging, not LTO
    {"EL", Form::Flag, Effect::Pass},
    {"why-extract", Form::Value, Effect::Unsafe}, // the split uses it itself
};

bool isMultiLetter(std::string_view name) {
  return name.size() > 1;
}

struct Match {
  const Spec *spec = nullptr;
  std::optional<std::string> joined; // value given in the same token
};

// Finds the option spelled by token (which starts with '-').
Match matchOption(std::string_view token) {
  std::string_view body = token.substr(1);
  bool dashdash = false;
  if (!body.empty() && body[0] == '-') {
    body = body.substr(1);
    dashdash = true;
  }
  // Exact name or name=value for multi-letter options.
  for (const Spec &s : kOptions) {
    if (s.form == Form::Joined) {
      if (body.starts_with(s.name))
        return {&s, std::string(body.substr(s.name.size()))};
      continue;
    }
    if (s.effect == Effect::LtoO || s.effect == Effect::LtoCGO) {
      if (body.starts_with(s.name))
        return {&s, std::string(body.substr(s.name.size()))};
      continue;
    }
    if (body == s.name && (isMultiLetter(s.name) || !dashdash))
      return {&s, std::nullopt};
    if (s.form == Form::Value && body.starts_with(s.name) && body.size() > s.name.size() &&
        body[s.name.size()] == '=' && isMultiLetter(s.name))
      return {&s, std::string(body.substr(s.name.size() + 1))};
  }
  // Single-letter options with a joined value: -ofile, -lc, -Lpath, -Tx.
  if (!dashdash && body.size() > 1) {
    for (const Spec &s : kOptions)
      if (s.form == Form::Value && s.name.size() == 1 && body[0] == s.name[0])
        return {&s, std::string(body.substr(1))};
  }
  // -plugin-opt=X
  if (body.starts_with("plugin-opt="))
    for (const Spec &s : kOptions)
      if (s.effect == Effect::PluginOpt)
        return {&s, std::string(body.substr(11))};
  return {};
}

// @FILE arguments expanded as lld expands them (cl::ExpandResponseFiles with
// the GNU tokenizer, nested files included).
Status expandResponseFiles(const std::vector<std::string> &in, std::vector<std::string> &out) {
  llvm::BumpPtrAllocator alloc;
  llvm::StringSaver saver(alloc);
  llvm::SmallVector<const char *, 256> argv;
  for (const std::string &a : in)
    argv.push_back(a.c_str()); // in outlives argv; the expansion's words live in saver
  if (!llvm::cl::ExpandResponseFiles(saver, llvm::cl::TokenizeGNUCommandLine, argv))
    return failed("cannot expand the response files");
  out.assign(argv.begin(), argv.end());
  return ok();
}

Result<int> parseOptLevel(std::string_view v, std::string_view what) {
  int n = -1;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size() || n < 0 || n > 3)
    return failed("invalid optimization level for " + std::string(what) + ": " + std::string(v));
  return n;
}

} // namespace

std::vector<std::string> tokenizeResponseFile(std::string_view text) {
  // lld's own tokenizer (GNU quoting, its default --rsp-quoting).
  llvm::BumpPtrAllocator alloc;
  llvm::StringSaver saver(alloc);
  llvm::SmallVector<const char *, 64> argv;
  llvm::cl::TokenizeGNUCommandLine(llvm::StringRef(text.data(), text.size()), saver, argv);
  return std::vector<std::string>(argv.begin(), argv.end());
}

Result<LinkCommand> parseCommandLine(const std::vector<std::string> &argv) {
  LinkCommand cmd;
  cmd.original = argv;
  std::vector<std::string> toks;
  TF_CHECK(expandResponseFiles(argv, toks));

  std::optional<std::string> mcpu;
  std::vector<std::string> pluginMinus;
  std::optional<int> cgo;
  bool pie = false, shared = false;

  for (size_t i = 0; i < toks.size(); ++i) {
    const std::string &tok = toks[i];
    Arg arg;
    arg.tokens.push_back(tok);
    if (tok.size() < 2 || tok[0] != '-') {
      if (tok == "-")
        return unimplemented("input - (standard input)");
      arg.kind = Arg::Kind::Input;
      arg.value = tok;
      cmd.args.push_back(std::move(arg));
      continue;
    }
    if (tok == "--version" || tok == "-version" || tok == "--help" || tok == "-help") {
      cmd.informational = true;
      return cmd;
    }
    if (tok == "-v" || tok == "-V") // lld prints its version, then links
      return unimplemented("option " + tok);
    Match m = matchOption(tok);
    if (!m.spec)
      return unimplemented("unsupported option " + tok);
    std::string value;
    if (m.spec->form == Form::Value && !m.joined) {
      if (i + 1 >= toks.size())
        return failed("missing argument to " + tok);
      value = toks[++i];
      arg.tokens.push_back(value);
    } else if (m.joined) {
      value = *m.joined;
    }
    // Classified here, once: the driver, the memo and the reassembly read
    // the name and value, never the spelling.
    arg.option = std::string(m.spec->name);
    if (arg.option.ends_with('=')) // a joined-only entry: "thinlto-jobs="
      arg.option.pop_back();
    arg.value = value;
    switch (m.spec->effect) {
    case Effect::Unsafe:
      return unimplemented("option " + tok + " is not supported by the split link");
    case Effect::Pass:
      break;
    case Effect::Script:
      cmd.scripts.push_back(value);
      cmd.assigners.push_back({true, value});
      break;
    case Effect::Defsym:
      cmd.assigners.push_back({false, value});
      break;
    case Effect::Undefined:
      cmd.undefinedSymbols = true;
      break;
    case Effect::Output:
      cmd.output = value;
      break;
    case Effect::Relocatable:
      cmd.backend.relocatable = true;
      break;
    case Effect::Pie:
      pie = true;
      break;
    case Effect::NoPie:
      pie = false;
      break;
    case Effect::Shared:
      shared = true;
      break;
    case Effect::LibraryPath:
      cmd.libraryPaths.push_back(value);
      break;
    case Effect::Library:
      arg.kind = Arg::Kind::Library;
      arg.value = value;
      break;
    case Effect::WholeArchive:
      arg.kind = Arg::Kind::WholeArchive;
      break;
    case Effect::NoWholeArchive:
      arg.kind = Arg::Kind::NoWholeArchive;
      break;
    case Effect::StartLib:
      arg.kind = Arg::Kind::StartLib;
      break;
    case Effect::EndLib:
      arg.kind = Arg::Kind::EndLib;
      break;
    case Effect::Static:
      arg.kind = Arg::Kind::Static;
      break;
    case Effect::Dynamic:
      arg.kind = Arg::Kind::Dynamic;
      break;
    case Effect::Mllvm:
      cmd.backend.mllvm.push_back(value);
      break;
    case Effect::PluginOpt: {
      std::string_view v = value;
      if (v.starts_with("-")) {
        pluginMinus.push_back(std::string(v));
      } else if (v.starts_with("mcpu=")) {
        mcpu = std::string(v.substr(5));
      } else if (v.starts_with("O")) {
        auto level = parseOptLevel(v.substr(1), tok);
        if (!level)
          return std::move(level).error();
        cmd.backend.optLevel = *level;
      } else if (v.starts_with("jobs=")) {
        unsigned n = 0;
        std::from_chars(v.data() + 5, v.data() + v.size(), n);
        cmd.threads = n;
      } else if (v == "thinlto" || v.ends_with("LLVMgold.so") || v.ends_with("lto-wrapper")) {
        // Ignored by lld as well.
      } else {
        return unimplemented("option " + tok + " is not supported by the split link");
      }
      break;
    }
    case Effect::LtoO: {
      TF_TRY(cmd.backend.optLevel, parseOptLevel(value, tok));
      break;
    }
    case Effect::LtoCGO: {
      TF_TRY(int level, parseOptLevel(value, tok));
      cgo = level;
      break;
    }
    case Effect::ThinLtoJobs: {
      unsigned n = 0;
      std::from_chars(value.data(), value.data() + value.size(), n);
      cmd.threads = n;
      break;
    }
    }
    cmd.args.push_back(std::move(arg));
  }

  // lld: CodeGenOptLevel is --lto-CGO if given, else derived from --lto-O,
  // clamped to [2, 3] (args::getCGOptLevel).
  cmd.backend.cgOptLevel = cgo ? *cgo : std::clamp(cmd.backend.optLevel, 2, 3);
  cmd.backend.pic = pie || shared;
  // lld parses LLVM options in this order (Driver.cpp, readConfigs).
  if (mcpu)
    cmd.backend.llvmOptions.push_back("-mcpu=" + *mcpu);
  for (std::string &o : pluginMinus)
    cmd.backend.llvmOptions.push_back(std::move(o));
  for (const std::string &o : cmd.backend.mllvm)
    cmd.backend.llvmOptions.push_back(o);
  return cmd;
}

} // namespace thinfarm

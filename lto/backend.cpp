// Running one ThinLTO backend in this process, as lld 19 does.
//
// lld's in-process ThinLTO (InProcessThinBackend in llvm/lib/LTO/LTO.cpp)
// parses the module in a fresh LTOLLVMContext and calls lto::thinBackend with
// the combined index, the module's import list and its defined summaries,
// loading imported modules from a map of identifier -> BitcodeModule. A job
// brings the module's index shard instead of the combined index; a shard
// holds every summary the backend reads (it is what distributed ThinLTO
// hands to clang -fthinlto-index), so the import list and the summaries come
// out of it, as clang's runThinLTOBackend takes them. The lto::Config below
// is lld's createConfig() (lld/ELF/LTO.cpp), field by field, for the options
// the parse stage accepts; the options it refuses are the ones that would
// change a field not set here.
#include "lto/backend.h"

#include "lto/crash.h"

#include <llvm/ADT/StringRef.h>
#include <llvm/Bitcode/BitcodeReader.h>
#include <llvm/CodeGen/CommandFlags.h>
#include <llvm/IR/DiagnosticInfo.h>
#include <llvm/IR/DiagnosticPrinter.h>
#include <llvm/IR/ModuleSummaryIndex.h>
#include <llvm/LTO/Config.h>
#include <llvm/LTO/LTOBackend.h>
#include <llvm/Support/Caching.h>
#include <llvm/Support/CommandLine.h>
#include <llvm/Support/ErrorHandling.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/TargetParser/Triple.h>
#include <llvm/Transforms/IPO/FunctionImport.h>

#include <algorithm>
#include <cstdio>

namespace thinfarm {

namespace {

std::string message(llvm::Error e) {
  return llvm::toString(std::move(e));
}

llvm::MemoryBufferRef bufferOf(const Blob &b, const std::string &identifier) {
  return llvm::MemoryBufferRef(llvm::StringRef(b.bytes()), identifier);
}

// The module a backend compiles: bitcode files here hold exactly one (the
// expand stage refuses split LTO units).
llvm::Expected<llvm::BitcodeModule> singleModule(llvm::MemoryBufferRef ref) {
  auto list = llvm::getBitcodeModuleList(ref);
  if (!list)
    return list.takeError();
  if (list->size() != 1)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "expected one module in the bitcode file");
  return (*list)[0];
}

// lld::diagnosticHandler: the text lld prints for a backend diagnostic.
Diagnostic toDiagnostic(const llvm::DiagnosticInfo &di) {
  std::string s;
  llvm::raw_string_ostream os(s);
  llvm::DiagnosticPrinterRawOStream dp(os);
  if (auto *dism = llvm::dyn_cast<llvm::DiagnosticInfoSrcMgr>(&di))
    if (dism->isInlineAsmDiag())
      os << dism->getModuleName() << ' ';
  di.print(dp);
  os.flush();
  Severity sev = Severity::Note;
  switch (di.getSeverity()) {
  case llvm::DS_Error:
    sev = Severity::Error;
    break;
  case llvm::DS_Warning:
    sev = Severity::Warning;
    break;
  case llvm::DS_Remark:
    sev = Severity::Remark;
    break;
  case llvm::DS_Note:
    sev = Severity::Note;
    break;
  }
  return {sev, std::move(s)};
}

llvm::lto::Config createConfig(const BackendConfig &cfg) {
  llvm::lto::Config c;
  c.Options = llvm::codegen::InitTargetOptionsFromCodeGenFlags(llvm::Triple());
  c.Options.EmitAddrsig = true;
  c.MllvmArgs = cfg.mllvm;
  c.Options.FunctionSections = true;
  c.Options.DataSections = true;
  c.Options.BBAddrMap = false;
  c.Options.UniqueBasicBlockSectionNames = false;
  if (auto rm = llvm::codegen::getExplicitRelocModel())
    c.RelocModel = rm;
  else if (cfg.relocatable)
    c.RelocModel = std::nullopt;
  else if (cfg.pic)
    c.RelocModel = llvm::Reloc::PIC_;
  else
    c.RelocModel = llvm::Reloc::Static;
  c.CodeModel = llvm::codegen::getExplicitCodeModel();
  c.DisableVerify = false;
  c.OptLevel = static_cast<unsigned>(cfg.optLevel);
  c.CPU = llvm::codegen::getCPUStr();
  c.MAttrs = llvm::codegen::getMAttrs();
  if (auto level = llvm::CodeGenOpt::getLevel(cfg.cgOptLevel)) // initialize() checked it
    c.CGOptLevel = *level;
  c.PTO.LoopVectorization = c.OptLevel > 1;
  c.PTO.SLPVectorization = c.OptLevel > 1;
  c.HasWholeProgramVisibility = false;
  c.ValidateAllVtablesHaveTypeInfos = false;
  c.AllVtablesHaveTypeInfos = false;
  c.AlwaysEmitRegularLTOObj = false;
  c.PGOWarnMismatch = true;
  return c;
}

} // namespace

Status checkRemoteOptions(const BackendConfig &config) {
  static constexpr std::string_view kNamesFiles[] = {"file", "output", "dir",     "path",   "prefix",
                                                     "view", "dot",    "profile", "remark", "sample"};
  for (const std::string &opt : config.llvmOptions) {
    if (opt.starts_with("@"))
      return failed("the LLVM option '" + opt + "' is a response file");
    std::string_view name = opt, value;
    while (name.starts_with("-"))
      name.remove_prefix(1);
    if (size_t eq = name.find('='); eq != std::string_view::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    for (std::string_view word : kNamesFiles)
      if (llvm::StringRef(name).contains_insensitive(word))
        return failed("the LLVM option '" + opt + "' may name a file");
    if (value.find('/') != std::string_view::npos || value.starts_with("@"))
      return failed("the LLVM option '" + opt + "' has a path for its value");
  }
  return ok();
}

Result<BackendProcess> BackendProcess::initialize(const BackendConfig &config) {
  // lld's createConfig refuses a level LLVM does not know; parse() never makes
  // one, but a config that came over the wire was not parsed here.
  if (!llvm::CodeGenOpt::getLevel(config.cgOptLevel))
    return failed("invalid codegen optimization level for LTO: " +
                  std::to_string(config.cgOptLevel));
  // Registers the codegen options (-mcpu, -mattr, -relocation-model, ...)
  // that InitTargetOptionsFromCodeGenFlags reads, as lld does at start-up.
  static llvm::codegen::RegisterCodeGenFlags
      registerFlags; // LLVM's option registry is process-wide
  llvm::install_fatal_error_handler([](void *, const char *reason, bool) { reportFatal(reason); },
                                    nullptr);
  llvm::InitializeAllTargets();
  llvm::InitializeAllTargetMCs();
  llvm::InitializeAllAsmPrinters();
  llvm::InitializeAllAsmParsers();
  // lld parses each option on its own (parseClangOption), in command-line order.
  for (const std::string &opt : config.llvmOptions) {
    std::string err;
    llvm::raw_string_ostream os(err);
    const char *argv[] = {"ld.lld", opt.c_str()};
    if (!llvm::cl::ParseCommandLineOptions(2, argv, "", &os)) {
      os.flush();
      return failed("invalid LLVM option " + opt + ": " + err);
    }
  }
  return BackendProcess(config);
}

Result<BackendOutput> BackendProcess::run(const BackendJob &job) const {
  BackendOutput out;
  llvm::lto::Config conf = createConfig(config_);
  conf.DiagHandler = [&out](const llvm::DiagnosticInfo &di) {
    out.diagnostics.push_back(toDiagnostic(di));
  };
  const std::string &id = job.module.identifier;
  CrashScope scope("compiling", id);
  auto fail = [&](const std::string &what) -> Error {
    return failed("backend of " + id + ": " + what);
  };

  llvm::lto::LTOLLVMContext ctx(conf);
  auto bm = singleModule(bufferOf(job.module.bitcode, id));
  if (!bm)
    return fail("invalid bitcode: " + message(bm.takeError()));

  std::string shardName = id + ".thinlto.bc";
  auto index = llvm::getModuleSummaryIndex(bufferOf(job.indexShard, shardName));
  if (!index)
    return fail("invalid index shard: " + message(index.takeError()));

  llvm::MapVector<llvm::StringRef, llvm::BitcodeModule> moduleMap;
  for (const Module &imp : job.imports) {
    auto ibm = singleModule(bufferOf(imp.bitcode, imp.identifier));
    if (!ibm)
      return fail("invalid bitcode in imported module " + imp.identifier + ": " +
                  message(ibm.takeError()));
    moduleMap.insert({imp.identifier, *ibm});
  }

  auto mod = bm->parseModule(ctx);
  if (!mod)
    return fail("invalid bitcode: " + message(mod.takeError()));

  llvm::FunctionImporter::ImportMapTy importList;
  if (!llvm::lto::initImportList(**mod, **index, importList))
    return fail("the index shard marks the module as not to be compiled");
  // Summaries of values imported as declarations import nothing; a module
  // that has only those (shard.cpp adds them for their dso_local flag) is
  // not one to load.
  for (auto it = importList.begin(); it != importList.end();) {
    auto cur = it++;
    if (!moduleMap.count(cur->first) &&
        std::all_of(cur->second.begin(), cur->second.end(), [](const auto &e) {
          return e.second == llvm::GlobalValueSummary::Declaration;
        }))
      importList.erase(cur);
  }
  for (const auto &entry : importList)
    if (!moduleMap.count(entry.first))
      return fail("imports from " + entry.first.str() + ", which the job does not carry");

  llvm::DenseMap<llvm::StringRef, llvm::GVSummaryMapTy> definedPerModule;
  (*index)->collectDefinedGVSummariesPerModule(definedPerModule);

  llvm::SmallString<0> object;
  auto addStream =
      [&](unsigned,
          const llvm::Twine &) -> llvm::Expected<std::unique_ptr<llvm::CachedFileStream>> {
    return std::make_unique<llvm::CachedFileStream>(
        std::make_unique<llvm::raw_svector_ostream>(object));
  };
  if (llvm::Error e =
          llvm::lto::thinBackend(conf, job.task, addStream, **mod, **index, importList,
                                 definedPerModule[(*mod)->getModuleIdentifier()], &moduleMap))
    return fail(message(std::move(e)));

  for (const Diagnostic &d : out.diagnostics)
    if (d.severity == Severity::Error)
      return fail(d.text);
  out.object.assign(object.begin(), object.end());
  if (out.object.empty())
    return fail("produced no object");
  return out;
}

} // namespace thinfarm

// Stage 3: inspect. Reads bitcode modules and native objects without
// compiling anything.
//
// The IR symbol table (lto::InputFile) is what lld resolves symbols against;
// it is stored in the bitcode, so reading it costs no IR parsing. Module asm
// is only reachable through the module itself: a lazily loaded module reads
// global declarations and the asm string, not function bodies.
#include "lto/bitcode.h"

#include "lto/crash.h"
#include "lto/run.h"

#include <cstring>

#include <llvm/Bitcode/BitcodeReader.h>
#include <llvm/IR/GlobalValue.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/ModuleSummaryIndex.h>
#include <llvm/LTO/LTO.h>
#include <llvm/Object/ELFObjectFile.h>
#include <llvm/Object/ObjectFile.h>
#include <llvm/Support/Error.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/TargetSelect.h>

namespace thinfarm {

namespace {
std::string message(llvm::Error e) {
  return llvm::toString(std::move(e));
}

uint8_t elfVisibility(llvm::GlobalValue::VisibilityTypes v) {
  switch (v) {
  case llvm::GlobalValue::DefaultVisibility:
    return 0; // STV_DEFAULT
  case llvm::GlobalValue::HiddenVisibility:
    return 2; // STV_HIDDEN
  case llvm::GlobalValue::ProtectedVisibility:
    return 3; // STV_PROTECTED
  }
  return 0;
}
} // namespace

std::vector<std::string> parseIncbins(std::string_view text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = text.find(".incbin", pos)) != std::string_view::npos) {
    pos += 7;
    if (pos < text.size() && text[pos] != ' ' && text[pos] != '\t')
      continue;
    while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t'))
      ++pos;
    std::string file;
    if (pos < text.size() && text[pos] == '"') {
      for (++pos; pos < text.size() && text[pos] != '"'; ++pos) {
        if (text[pos] == '\\' && pos + 1 < text.size())
          ++pos;
        file += text[pos];
      }
    } else {
      while (pos < text.size() && text[pos] != ',' && text[pos] != '\n' && text[pos] != ';' &&
             text[pos] != ' ' && text[pos] != '\t')
        file += text[pos++];
    }
    if (!file.empty())
      out.push_back(std::move(file));
  }
  return out;
}

Result<ModuleFacts> inspectModule(const Module &m) {
  CrashScope scope("reading", m.identifier);
  llvm::MemoryBufferRef ref(llvm::StringRef(m.bitcode.bytes()), m.identifier);
  auto list = llvm::getBitcodeModuleList(ref);
  if (!list)
    return failed(m.identifier + ": invalid bitcode: " + message(list.takeError()));
  if (list->size() != 1)
    return unimplemented(m.identifier + ": bitcode holds " + std::to_string(list->size()) +
                         " modules (split LTO unit)");
  llvm::BitcodeModule &bm = (*list)[0];
  auto info = bm.getLTOInfo();
  if (!info)
    return failed(m.identifier + ": invalid bitcode: " + message(info.takeError()));

  ModuleFacts facts;
  facts.thin = info->IsThinLTO;

  auto input = llvm::lto::InputFile::create(ref);
  if (!input)
    return failed(m.identifier + ": invalid bitcode: " + message(input.takeError()));
  for (const llvm::lto::InputFile::Symbol &s : (*input)->symbols()) {
    IRSymbol sym;
    sym.name = s.getName().str();
    sym.undefined = s.isUndefined();
    sym.weak = s.isWeak();
    sym.tls = s.isTLS();
    sym.common = s.isCommon();
    sym.visibility = elfVisibility(s.getVisibility());
    facts.symbols.push_back(std::move(sym));
  }

  llvm::LLVMContext ctx;
  auto lazy = bm.getLazyModule(ctx, /*ShouldLazyLoadMetadata=*/true, /*IsImporting=*/false);
  if (!lazy)
    return failed(m.identifier + ": invalid bitcode: " + message(lazy.takeError()));
  const std::string &asmText = (*lazy)->getModuleInlineAsm();
  if (asmText.find(".incbin") != std::string::npos)
    facts.incbins = parseIncbins(asmText);
  for (const llvm::GlobalValue &gv : (*lazy)->global_values())
    if (gv.hasName() && !gv.hasLocalLinkage() && !gv.isDSOLocal() && !gv.isImplicitDSOLocal() &&
        !gv.getName().starts_with("llvm.")) // intrinsics: no module defines them
      facts.notDsoLocal.push_back(gv.getGUID());
  return facts;
}

void initializeTargets() {
  // What lld registers at start-up. Reading a module whose bitcode has no
  // current IR symbol table rebuilds it, which parses the module's asm with
  // the target's asm parser.
  llvm::InitializeAllTargetInfos();
  llvm::InitializeAllTargets();
  llvm::InitializeAllTargetMCs();
  llvm::InitializeAllAsmParsers();
  llvm::InitializeAllAsmPrinters();
}

namespace {
// An ELF object file read in place; an error names it.
Result<std::unique_ptr<llvm::object::ELFObjectFileBase>> openElf(std::string_view name,
                                                                 std::string_view elf) {
  llvm::MemoryBufferRef ref(llvm::StringRef(elf.data(), elf.size()),
                            llvm::StringRef(name.data(), name.size()));
  auto obj = llvm::object::ObjectFile::createELFObjectFile(ref);
  if (!obj)
    return failed(std::string(name) + ": invalid ELF object: " + message(obj.takeError()));
  if (!llvm::isa<llvm::object::ELFObjectFileBase>(obj->get()))
    return failed(std::string(name) + ": not an ELF object");
  return std::unique_ptr<llvm::object::ELFObjectFileBase>(
      llvm::cast<llvm::object::ELFObjectFileBase>(obj->release()));
}
} // namespace

namespace {
// The signatures of an object's COMDAT groups (lld keeps the first group of
// each signature and discards the others with everything in them).
template <class ELFT>
Status collectComdats(std::string_view name, const llvm::object::ELFFile<ELFT> &file,
                      std::vector<std::string> &out) {
  auto bad = [&](llvm::Error e) {
    return failed(std::string(name) + ": bad section group: " + message(std::move(e)));
  };
  auto sections = file.sections();
  if (!sections)
    return bad(sections.takeError());
  for (const auto &sec : *sections) {
    if (sec.sh_type != llvm::ELF::SHT_GROUP)
      continue;
    auto words = file.template getSectionContentsAsArray<typename ELFT::Word>(sec);
    if (!words)
      return bad(words.takeError());
    if (words->empty() || !((*words)[0] & llvm::ELF::GRP_COMDAT))
      continue;
    auto symtab = file.getSection(sec.sh_link);
    if (!symtab)
      return bad(symtab.takeError());
    auto sym = file.getSymbol(*symtab, sec.sh_info);
    if (!sym)
      return bad(sym.takeError());
    auto strtab = file.getStringTableForSymtab(**symtab);
    if (!strtab)
      return bad(strtab.takeError());
    auto signature = (*sym)->getName(*strtab);
    if (!signature)
      return bad(signature.takeError());
    out.push_back(signature->str());
  }
  return ok();
}
} // namespace

Status collectSymbols(std::string_view name, std::string_view elf, ElfSymbols &out) {
  TF_TRY(auto owned, openElf(name, elf));
  llvm::object::ELFObjectFileBase *elfObj = owned.get();
  for (const llvm::object::ELFSymbolRef &sym : elfObj->symbols()) {
    if (sym.getBinding() == llvm::ELF::STB_LOCAL)
      continue;
    auto symName = sym.getName();
    if (!symName)
      return failed(std::string(name) + ": bad symbol name: " + message(symName.takeError()));
    out.globals.push_back(symName->str());
    auto section = sym.getSection();
    if (!section)
      return failed(std::string(name) + ": bad symbol: " + message(section.takeError()));
    if (sym.getBinding() == llvm::ELF::STB_WEAK && *section != elfObj->section_end())
      out.weakDefined.push_back(symName->str());
    auto flags = sym.getFlags();
    if (!flags)
      return failed(std::string(name) + ": bad symbol: " + message(flags.takeError()));
    if (*flags & llvm::object::SymbolRef::SF_Common)
      out.commons.emplace_back(symName->str(), sym.getSize());
  }
  using namespace llvm::object;
  if (auto *o = llvm::dyn_cast<ELF64LEObjectFile>(elfObj))
    return collectComdats(name, o->getELFFile(), out.comdats);
  if (auto *o = llvm::dyn_cast<ELF64BEObjectFile>(elfObj))
    return collectComdats(name, o->getELFFile(), out.comdats);
  if (auto *o = llvm::dyn_cast<ELF32LEObjectFile>(elfObj))
    return collectComdats(name, o->getELFFile(), out.comdats);
  if (auto *o = llvm::dyn_cast<ELF32BEObjectFile>(elfObj))
    return collectComdats(name, o->getELFFile(), out.comdats);
  return ok();
}

Result<std::vector<std::string>> undefinedSymbols(std::string_view name, std::string_view elf) {
  TF_TRY(auto owned, openElf(name, elf));
  llvm::object::ELFObjectFileBase *elfObj = owned.get();
  std::vector<std::string> out;
  auto scan = [&](auto symbols) -> Status {
    for (const llvm::object::ELFSymbolRef &sym : symbols) {
      auto section = sym.getSection();
      if (!section)
        return failed(std::string(name) + ": bad symbol: " + message(section.takeError()));
      if (*section != elfObj->section_end() || sym.getBinding() == 0 /*STB_LOCAL*/)
        continue;
      auto flags = sym.getFlags();
      if (!flags || !(*flags & llvm::object::BasicSymbolRef::SF_Undefined))
        continue;
      auto symName = sym.getName();
      if (!symName)
        return failed(std::string(name) + ": bad symbol name: " + message(symName.takeError()));
      if (!symName->empty())
        out.push_back(symName->str());
    }
    return ok();
  };
  TF_CHECK(scan(elfObj->symbols()));
  TF_CHECK(scan(elfObj->getDynamicSymbolIterators()));
  return out;
}

Result<bool> hasGnuProperty(std::string_view name, std::string_view elf, uint32_t type) {
  TF_TRY(auto obj, openElf(name, elf));
  for (const llvm::object::SectionRef &sec : obj->sections()) {
    auto secName = sec.getName();
    if (!secName || *secName != ".note.gnu.property")
      continue;
    auto contents = sec.getContents();
    if (!contents)
      return failed(std::string(name) + ": bad .note.gnu.property");
    // Notes of ELF64: namesz, descsz, type, "GNU\0", then properties of
    // (type, datasz, data padded to 8).
    std::string_view d(contents->data(), contents->size());
    auto u32 = [&](size_t off) {
      uint32_t v = 0;
      if (off + 4 <= d.size())
        std::memcpy(&v, d.data() + off, 4);
      return v;
    };
    size_t pos = 0;
    while (pos + 12 <= d.size()) {
      uint32_t namesz = u32(pos), descsz = u32(pos + 4);
      size_t desc = pos + 12 + ((namesz + 7) & ~size_t(7));
      for (size_t p = desc; p + 8 <= desc + descsz && p + 8 <= d.size();
           p += 8 + ((u32(p + 4) + 7) & ~size_t(7)))
        if (u32(p) == type)
          return true;
      pos = desc + ((descsz + 7) & ~size_t(7));
    }
  }
  return false;
}

Result<ModuleFactsMap> inspectModules(const std::map<std::string, Blob> &modules,
                                      unsigned threads) {
  std::vector<const std::pair<const std::string, Blob> *> list;
  list.reserve(modules.size());
  for (const auto &entry : modules)
    list.push_back(&entry);
  std::vector<ModuleFacts> facts(list.size());
  std::vector<size_t> order(list.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  TF_CHECK(parallelForAll(order, threads, [&](size_t i) -> Status {
    TF_TRY(facts[i], inspectModule(Module{list[i]->first, list[i]->second}));
    return ok();
  }));
  ModuleFactsMap out;
  for (size_t i = 0; i < list.size(); ++i)
    out.emplace(list[i]->first, std::move(facts[i]));
  return out;
}

} // namespace thinfarm

// Stage 4b: complete the index shards.
//
// lld's in-process backends read the combined index; a job reads its module's
// shard, which lld cuts from it with the summaries of the module's own values
// and of those it imports. The backend asks the index about one more kind of
// value: FunctionImportGlobalProcessing marks a global dso_local when every
// summary the index has of it is dso_local, and the thin link made them so
// from lld's resolution (a definition final in the linkage unit: every global
// of an executable). A module that references another module's global
// without importing it has no summary of it in its shard, so a -fPIE
// executable would reach the variable through the GOT where lld's own link
// addresses it directly: different code.
//
// So a shard gets, for each global that its module or a module it imports
// has as not dso_local (a declaration, or a definition the import turns into
// one), which the combined index has as dso_local and the shard has no
// summary of, the defining modules' summaries of it, copied from their own
// shards (the thin link wrote the same summaries there), under one made-up
// module path. They are marked as declarations (ImportKind::Declaration),
// which the backend drops from its import list, so they change nothing but
// the dso_local answer. A shard that has some copies of such a global but
// answers otherwise than the combined index (--lto-O0 skips the propagation
// that makes all copies agree) gets the combined answer on its copies. Builds whose
// globals are all dso_local already (-fno-pic code such as the kernel) have
// no candidates and read no shard here.
#include "lto/shard.h"

#include "lto/run.h"

#include <llvm/Bitcode/BitcodeReader.h>
#include <llvm/Bitcode/BitcodeWriter.h>
#include <llvm/IR/GlobalValue.h>
#include <llvm/IR/ModuleSummaryIndex.h>
#include <llvm/Support/raw_ostream.h>

#include <map>
#include <optional>
#include <unordered_map>
#include <unordered_set>

namespace thinfarm {

namespace {

using Guid = llvm::GlobalValue::GUID;

// The module path of the summaries added here. Not the defining module's: a
// job's key names every module path by the content of a module the job
// carries (backend_key.cpp), and the defining module is not among them. The
// backend reads only the flags of these summaries, never their module.
constexpr const char *kDeclarations = "<thinfarm: values neither defined nor imported>";

Result<std::unique_ptr<llvm::ModuleSummaryIndex>> readShard(const ThinModule &m) {
  llvm::MemoryBufferRef ref(llvm::StringRef(m.indexShard.bytes()), m.identifier + ".thinlto.bc");
  auto index = llvm::getModuleSummaryIndex(ref);
  if (!index)
    return failed("index shard of " + m.identifier + ": " + llvm::toString(index.takeError()));
  return std::move(*index);
}

bool hasSummary(const llvm::ModuleSummaryIndex &index, Guid g) {
  llvm::ValueInfo vi = index.getValueInfo(g);
  return vi && !vi.getSummaryList().empty();
}

// What the combined index knows of one global: its defining modules'
// summaries (empty when no bitcode module defines it).
struct Defined {
  struct Copy {
    size_t module; // task index
    llvm::GlobalValueSummary::GVFlags flags;
    bool variable;
  };
  std::vector<Copy> copies;
  // ValueInfo::isDSOLocal over the combined index, whose summary list is in
  // task order (the order lld added the modules). After propagation (the
  // thin link ran it unless --lto-O0) every live copy carries the same flag
  // and the first one answers; without it, every copy must be dso_local.
  bool dsoLocal(bool propagated) const {
    if (copies.empty())
      return false;
    if (propagated)
      return copies.front().flags.DSOLocal;
    for (const Copy &c : copies)
      if (!c.flags.DSOLocal)
        return false;
    return true;
  }
};

} // namespace

Status completeShards(ThinLinkResult &thin, const ModuleFactsMap &facts, unsigned threads) {
  const size_t n = thin.modules.size();
  std::unordered_map<std::string, size_t> task;
  for (size_t i = 0; i < n; ++i)
    task.emplace(thin.modules[i].identifier, i);

  // Candidates per module: not dso_local in its IR or in an imported module's.
  std::vector<std::vector<Guid>> candidates(n);
  std::unordered_set<Guid> wanted;
  for (size_t i = 0; i < n; ++i) {
    std::unordered_set<Guid> c;
    auto add = [&](const std::string &id) {
      auto f = facts.find(id);
      if (f != facts.end())
        c.insert(f->second.notDsoLocal.begin(), f->second.notDsoLocal.end());
    };
    add(thin.modules[i].identifier);
    for (const std::string &imp : thin.modules[i].imports)
      add(imp);
    candidates[i].assign(c.begin(), c.end());
    wanted.insert(c.begin(), c.end());
  }
  if (wanted.empty())
    return ok();

  // Which modules define each wanted global (by their IR symbol tables).
  std::unordered_map<Guid, std::vector<size_t>> definers;
  for (size_t i = 0; i < n; ++i) {
    auto f = facts.find(thin.modules[i].identifier);
    if (f == facts.end())
      continue;
    for (const IRSymbol &s : f->second.symbols)
      if (!s.undefined)
        if (Guid g = llvm::GlobalValue::getGUID(s.name); wanted.count(g))
          definers[g].push_back(i);
  }

  // Every shard that has a candidate or defines one is read once.
  std::vector<std::unique_ptr<llvm::ModuleSummaryIndex>> shards(n);
  auto readShards = [&](const std::vector<size_t> &which) {
    return parallelForAll(which, threads, [&](size_t i) -> Status {
      TF_TRY(shards[i], readShard(thin.modules[i]));
      return ok();
    });
  };
  std::vector<char> needed(n, 0);
  for (size_t i = 0; i < n; ++i)
    needed[i] = !candidates[i].empty();
  for (const auto &[g, mods] : definers)
    for (size_t m : mods)
      needed[m] = 1;
  std::vector<size_t> toRead;
  for (size_t i = 0; i < n; ++i)
    if (needed[i])
      toRead.push_back(i);
  TF_CHECK(readShards(toRead));

  // The index writer needs every alias's aliasee summary, which a shard lacks
  // when the aliasee is neither imported nor the module's own; it is in the
  // alias's module's shard (an alias and its aliasee share a module). Each
  // shard's orphan aliases, with their module's task index:
  struct Orphan {
    llvm::AliasSummary *alias;
    size_t module;
  };
  std::vector<std::vector<Orphan>> orphans(n);
  toRead.clear();
  for (size_t i = 0; i < n; ++i)
    if (!candidates[i].empty())
      for (const auto &entry : *shards[i])
        for (const auto &sum : entry.second.SummaryList)
          if (auto *a = llvm::dyn_cast<llvm::AliasSummary>(sum.get()); a && !a->hasAliasee()) {
            auto t = task.find(a->modulePath().str());
            if (t == task.end())
              return failed("index shard of " + thin.modules[i].identifier +
                            ": an alias of unknown module " + a->modulePath().str());
            orphans[i].push_back({a, t->second});
            if (!needed[t->second]) {
              needed[t->second] = 1;
              toRead.push_back(t->second);
            }
          }
  TF_CHECK(readShards(toRead));

  // The combined index's summaries of each wanted global.
  std::unordered_map<Guid, Defined> defined;
  auto copyOf = [&](size_t m, Guid g) -> std::optional<Defined::Copy> {
    const llvm::ModuleSummaryIndex &index = *shards[m];
    llvm::ValueInfo vi = index.getValueInfo(g);
    if (vi)
      if (llvm::GlobalValueSummary *s = index.findSummaryInModule(vi, thin.modules[m].identifier))
        return Defined::Copy{m, s->flags(), llvm::isa<llvm::GlobalVarSummary>(s)};
    return std::nullopt;
  };
  for (const auto &[g, mods] : definers) {
    Defined &d = defined[g];
    for (size_t m : mods)
      if (auto c = copyOf(m, g))
        d.copies.push_back(*c);
  }
  // The aliasees: their summaries as the alias's module's shard has them.
  std::map<std::pair<size_t, Guid>, std::optional<Defined::Copy>> aliasees;
  for (const std::vector<Orphan> &list : orphans)
    for (const Orphan &o : list) {
      Guid g = o.alias->getAliaseeVI().getGUID();
      aliasees.emplace(std::make_pair(o.module, g), copyOf(o.module, g));
    }

  // A summary the shard did not have, of a value the backend will not import.
  auto addDeclaration = [&](llvm::ModuleSummaryIndex &index, llvm::ValueInfo vi,
                            const Defined::Copy &c) {
    auto *mod = index.addModule(kDeclarations); // or the one it has
    llvm::GlobalValueSummary::GVFlags flags = c.flags;
    std::unique_ptr<llvm::GlobalValueSummary> s;
    if (c.variable)
      s = std::make_unique<llvm::GlobalVarSummary>(
          flags,
          llvm::GlobalVarSummary::GVarFlags(false, false, false,
                                            llvm::GlobalObject::VCallVisibilityPublic),
          std::vector<llvm::ValueInfo>{});
    else
      s = std::make_unique<llvm::FunctionSummary>(
          llvm::FunctionSummary::makeDummyFunctionSummary({}));
    s->setLinkage(static_cast<llvm::GlobalValue::LinkageTypes>(flags.Linkage));
    s->setVisibility(static_cast<llvm::GlobalValue::VisibilityTypes>(flags.Visibility));
    s->setLive(flags.Live);
    s->setDSOLocal(flags.DSOLocal);
    s->setCanAutoHide(flags.CanAutoHide);
    s->setImportKind(llvm::GlobalValueSummary::Declaration);
    s->setModulePath(mod->first());
    llvm::GlobalValueSummary *added = s.get();
    index.addGlobalValueSummary(vi, std::move(s));
    return added;
  };

  // Each shard that lacks a dso_local answer gets it, and is written again.
  std::vector<size_t> rewrite;
  for (size_t i = 0; i < n; ++i)
    if (!candidates[i].empty())
      rewrite.push_back(i);
  return parallelForAll(rewrite, threads, [&](size_t i) -> Status {
    llvm::ModuleSummaryIndex &index = *shards[i];
    bool changed = false;
    const bool propagated = index.withDSOLocalPropagation();
    for (Guid g : candidates[i]) {
      auto d = defined.find(g);
      if (d == defined.end())
        continue;
      const bool want = d->second.dsoLocal(propagated);
      if (!hasSummary(index, g)) {
        if (!want)
          continue; // no summary answers "not dso_local" already
        llvm::ValueInfo vi = index.getOrInsertValueInfo(g);
        for (const Defined::Copy &c : d->second.copies)
          addDeclaration(index, vi, c);
        changed = true;
        continue;
      }
      // The shard has some of the copies but not all: without propagation
      // (--lto-O0) a copy elsewhere that lld did not resolve as final (one in
      // a module added after the prevailing one) makes the combined answer
      // "no" where the shard's own copy says "yes". The shard's copies are
      // then given the combined answer, so that they agree with it.
      llvm::ValueInfo vi = index.getValueInfo(g);
      if (vi.isDSOLocal(propagated) == want)
        continue;
      for (const auto &s : vi.getSummaryList())
        s->setDSOLocal(want);
      changed = true;
    }
    if (!changed)
      return ok();
    // Aliases whose aliasee the shard lacks get it, as a declaration too.
    for (const Orphan &o : orphans[i]) {
      llvm::ValueInfo vi = o.alias->getAliaseeVI();
      const auto &c = aliasees.at({o.module, vi.getGUID()});
      if (!c)
        return unimplemented("index shard of " + thin.modules[i].identifier +
                             ": an alias whose aliasee has no summary");
      llvm::ValueInfo own = index.getOrInsertValueInfo(vi.getGUID());
      o.alias->setAliasee(own, addDeclaration(index, own, *c));
    }
    // The writer takes the declaration marks from this set, not the flags.
    llvm::GVSummaryPtrSet declarations;
    for (const auto &entry : index)
      for (const auto &sum : entry.second.SummaryList)
        if (sum->shouldImportAsDecl())
          declarations.insert(sum.get());
    std::string bytes;
    llvm::raw_string_ostream os(bytes);
    llvm::writeIndexToFile(index, os, nullptr, &declarations);
    os.flush();
    thin.modules[i].indexShard = Blob::fromString(std::move(bytes));
    return ok();
  });
}

} // namespace thinfarm

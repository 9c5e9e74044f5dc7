// Stage 5: plan the backend jobs.
//
// A job carries, by content, everything its backend reads: the module, its
// index shard, every module named in its import list (under lld's
// identifier, which the shard uses as the module path), and the files its
// module asm pulls in with .incbin, read relative to the build directory as
// the assembler reads them (its own and its imports': importing a function
// can bring its module's asm along). A .incbin file that does not exist is left out:
// the asm may never be assembled, and if it is, the backend reports the
// missing file itself.
#include "lto/plan.h"

#include <set>

namespace thinfarm {

Result<std::vector<BackendJob>> planJobs(const ThinLinkResult &thin, const Inputs &inputs,
                                         const ModuleFactsMap &facts) {
  std::vector<BackendJob> jobs;
  jobs.reserve(thin.modules.size());
  auto moduleOf = [&](const std::string &id) -> Result<Module> {
    auto it = inputs.modules.find(id);
    if (it == inputs.modules.end())
      return failed("the thin link names module " + id + ", which is not among the inputs");
    return Module{id, it->second};
  };
  for (const ThinModule &tm : thin.modules) {
    BackendJob job;
    job.task = static_cast<unsigned>(jobs.size());
    TF_TRY(job.module, moduleOf(tm.identifier));
    job.indexShard = tm.indexShard;
    for (const std::string &imp : tm.imports) {
      TF_TRY(Module m, moduleOf(imp));
      job.imports.push_back(std::move(m));
    }
    // The .incbin files of the module and of every module it imports from:
    // importing a function can bring its module's asm along, which the
    // backend then assembles (and a changed file changes the object).
    std::set<std::string> paths;
    std::vector<const std::string *> ids{&tm.identifier};
    for (const std::string &imp : tm.imports)
      ids.push_back(&imp);
    for (const std::string *id : ids) {
      auto f = facts.find(*id);
      if (f == facts.end())
        return failed("no symbol table read for module " + *id);
      paths.insert(f->second.incbins.begin(), f->second.incbins.end());
    }
    for (const std::string &path : paths) {
      auto bytes = Blob::mapFile(path);
      if (bytes)
        job.incbins.push_back({path, std::move(*bytes)});
    }
    jobs.push_back(std::move(job));
  }
  return jobs;
}

} // namespace thinfarm

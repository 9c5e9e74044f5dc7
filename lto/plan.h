#pragma once

#include "lto/bitcode.h"
#include "lto/expand.h"
#include "lto/job.h"
#include "lto/thin_link.h"

namespace thinfarm {

// Stage 5: one self-contained job per module of the thin link, in lld's task
// order (jobs[i].task == i).
Result<std::vector<BackendJob>> planJobs(const ThinLinkResult &thin, const Inputs &inputs,
                                         const ModuleFactsMap &facts);

} // namespace thinfarm

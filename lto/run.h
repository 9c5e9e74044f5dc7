#pragma once

#include "lto/backend.h"

#include <functional>

namespace thinfarm {

// Threads to use when the command line does not say: one per core.
unsigned defaultThreads();

// Calls fn(i) for every i in order[0..n) on `threads` threads; indices are
// taken in the order given, so callers put the costliest first.
void parallelFor(const std::vector<size_t> &order, unsigned threads,
                 const std::function<void(size_t)> &fn);

// parallelFor for work that can fail: every fn(i) runs; the error returned is
// that of the first failing index in `order`, whatever the threads' timing.
Status parallelForAll(const std::vector<size_t> &order, unsigned threads,
                      const std::function<Status(size_t)> &fn);

// Keeps a finished job's output; runs on the worker thread that ran the job.
using KeepOutput = std::function<Result<NativeObject>(const BackendJob &, BackendOutput &&)>;

// Stage 6: runs every job on a local thread pool, longest first so the last
// job to start is a short one. Returns one NativeObject per job, in job
// order, or an error naming every module whose backend failed. `seconds`, if
// given, gets each job's backend CPU time, in job order (the cost trace).
Result<std::vector<NativeObject>> runJobs(const BackendProcess &backend,
                                          const std::vector<BackendJob> &jobs, unsigned threads,
                                          const KeepOutput &keep,
                                          std::vector<double> *seconds = nullptr);

} // namespace thinfarm

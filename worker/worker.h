// A worker: runs ThinLTO backend jobs for a coordinator.
//
// A control connection (a DEALER socket) and its thread register the worker
// with its slot count, heartbeat twice a second, take jobs and send results:
// the coordinator sends no more jobs than there are slots (plus one that
// waits while plenty are pending), so the control thread only queues them
// for the slot threads. A job the coordinator cancels
// (another run of it won) leaves the queue, or its backend child is killed
// (through a pidfd: never another process that took its pid); it sends nothing. Each slot thread runs one job
// at a time through a plain sequence: fetch the inputs its store lacks (over
// the slot's own data connection, so transfers never hold up the control
// traffic), lay them out as files, run the backend in the slot's
// thinfarm-backend child, report with the native object (inline, or
// uploaded first when larger than a chunk). Its store holds inputs only: the
// natives are the coordinator's to keep.
//
// Scratch layout: blobs/<digest> (Staging: every job's files, read-only);
// per slot slotN/in, filled for one job at a time with hard links to that
// job's files (<digest>, and work/<path> for .incbin files, the backend's
// working directory) and emptied after it; slotN/out, where the backend
// writes the object; slotN.stderr. A sandboxed child sees slotN/in
// read-only and slotN/out, nothing else of the scratch directory.
#pragma once

#include "storage/store.h"
#include "wire/transport.h"
#include "worker/sandbox.h"

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <optional>
#include <thread>
#include <vector>

namespace thinfarm {

struct WorkerOptions {
  std::string coordinator; // endpoint
  std::optional<wire::ClientCurve> curve; // CURVE keys for it (wire/keys.h), if any
  unsigned slots = 1;
  std::string name;           // shown in logs and THINFARM_LOG's workers
  std::string backendProgram; // thinfarm-backend
  std::string toolchain;      // its identity (thinfarm-backend --identity)
  std::string scratch;        // staging directory, created and owned
  std::optional<Sandbox> sandbox; // each backend child's (sandbox.h); none: unconfined
  uint64_t memoryLimit = 0;   // per backend child, 0 = none
  uint64_t stagingBudget = 2ull << 30;
  // Tests of the coordinator's verification: a worker that alters every Nth
  // native object it returns (0: never), as a broken or hostile one would.
  unsigned corruptEvery = 0;
  // Tests of the coordinator's retry policy (coordinator/job_policy.h): the
  // backend child of every Nth job is killed (SIGKILL, as the OOM killer
  // would), or every Nth job fails as if its backend had (0: never).
  unsigned killEvery = 0;
  unsigned failEvery = 0;
  // Tests of stragglers: each job waits this long in its slot before it runs.
  std::chrono::milliseconds testDelay{0};
  // Benchmarks only (the load generator, bench/scale-model.sh): no backend
  // child, no inputs fetched. `noop`: each slot answers a job at once with
  // kSimulatedObject. `simulatedSeconds` (not empty): each slot sleeps for
  // the job's measured cost, looked up by module name, then answers the same.
  // The answer goes through the normal result path but carries no backend
  // key, so no coordinator caches it.
  bool noop = false;
  std::shared_ptr<const std::unordered_map<std::string, double>> simulatedSeconds;
};

// The native object a no-op or simulated job returns: tiny, fixed, not ELF.
inline constexpr std::string_view kSimulatedObject = "thinfarm simulated native object\n";

// A cost table (bench/data/vmlinux-o-costs.txt): "SECONDS COST MODULE" lines,
// the module name being the rest of the line; '#' starts a comment line.
Result<std::unordered_map<std::string, double>> readCostTable(const std::string &path);

// Fills the toolchain (the backend program's identity, from the sandbox's
// probe if there is one) and, if unset, the name (host-pid).
Result<WorkerOptions> completeOptions(WorkerOptions o);

class Worker {
public:
  Worker(wire::Context &ctx, Store &store, WorkerOptions options);
  ~Worker(); // stops and joins

  // Starts the slots and waits until the coordinator acknowledged each, or
  // fails with a one-line reason after `timeout`.
  Status start(std::chrono::milliseconds timeout);
  void stop();

private:
  struct Slot;
  struct Queues;
  void control(wire::Socket sock);
  wire::Context &ctx_;
  Store &store_;
  WorkerOptions options_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> registered_{false};
  std::atomic<uint64_t> objects_{0}; // native objects made (corruptEvery)
  std::atomic<uint64_t> runs_{0};    // backends started (killEvery, failEvery)
  std::vector<std::thread> threads_;
  std::unique_ptr<class Staging> staging_;
  std::unique_ptr<Queues> queues_;
};

} // namespace thinfarm

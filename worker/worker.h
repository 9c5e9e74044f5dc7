// A worker: runs ThinLTO backend jobs for a coordinator.
//
// One connection (a DEALER socket) per slot, each driven by its own thread
// through a plain loop: register, then take one job at a time (fetch the
// inputs its store lacks, lay them out as files, run the backend in a
// thinfarm-backend child, store and upload the native object, report). The
// coordinator sees each slot as a peer with one free place, which keeps its
// scheduling simple and makes a slot's heartbeat stop exactly when that slot
// stops. The thread sends a heartbeat every second, also while its child
// compiles, so a worker is declared lost only when it is.
#pragma once

#include "storage/store.h"
#include "wire/transport.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace thinfarm {

struct WorkerOptions {
  std::string coordinator;    // endpoint
  unsigned slots = 1;
  std::string name;           // shown in logs and THINFARM_LOG's workers
  std::string backendProgram; // thinfarm-backend
  std::string toolchain;      // its identity (thinfarm-backend --identity)
  std::string scratch;        // staging directory, created and owned
  uint64_t memoryLimit = 0;   // per backend child, 0 = none
  uint64_t stagingBudget = 2ull << 30;
  unsigned cores = 0;
  uint64_t memoryBytes = 0;
};

// Fills toolchain, cores and memory from the machine and the backend program.
Result<WorkerOptions> completeOptions(WorkerOptions o);

class Worker {
public:
  Worker(wire::Context &ctx, Store &store, WorkerOptions options);
  ~Worker(); // stops and joins

  // Starts the slots and waits until the coordinator acknowledged each, or
  // fails with a one-line reason after `timeout`.
  Status start(std::chrono::milliseconds timeout);
  void stop();
  const WorkerOptions &options() const { return options_; }

private:
  struct Slot;
  wire::Context &ctx_;
  Store &store_;
  WorkerOptions options_;
  std::atomic<bool> stop_{false};
  std::atomic<unsigned> registered_{0};
  std::vector<std::thread> threads_;
  std::unique_ptr<class Staging> staging_;
};

} // namespace thinfarm

// The coordinator daemon: one thread, one ROUTER socket, one event loop.
//
// Every message is routed by kind: blob traffic to the BlobService, the
// action cache and the link memo to the CacheService (a session's cached jobs
// are answered before the rest reach the scheduler), sessions,
// registrations and results to the Scheduler; what they answer goes out
// before the next message is read. Timeouts and progress run from the same
// loop a few times a second. The program that runs it may put a worker pool
// beside it (thinfarm-coordinator --local-slots) that reaches it over
// inproc:// and shares its store(): RocksDB allows one writing process per
// database, so on one machine the coordinator owns the store and its pool
// never copies a blob.
#pragma once

#include "coordinator/blob_service.h"
#include "coordinator/cache_service.h"
#include "coordinator/scheduler.h"
#include "wire/authenticator.h"

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace thinfarm {

struct CoordinatorOptions {
  std::vector<std::string> listen; // endpoints to bind
  std::string storeDir;
  uint64_t storeBudget = 0;         // bytes; 0: unlimited
  std::chrono::seconds idleExit{0}; // 0: run until stopped
  bool verbose = false;
  // CURVE (wire/keys.h): the coordinator's keypair and its allow-list. Every
  // connection then authenticates, and every message is checked against its
  // sender's role. Without them the coordinator admits whoever reaches it
  // (its program allows that on loopback, ipc:// and inproc:// only).
  std::optional<wire::KeyPair> keys;
  std::string allowList;
  SchedulerOptions scheduling; // caps, deadlines, verification (scheduler.h, verification.h)
  // Bounds per peer (the program's flags): connections, messages, handshakes
  // and heartbeats (wire/transport.h); blob sizes and uploads in flight
  // (coordinator/blob_service.h).
  wire::TransportLimits transport;
  BlobLimits blobs;
};

class Coordinator {
public:
  static Result<std::unique_ptr<Coordinator>> create(wire::Context &ctx, CoordinatorOptions o);
  ~Coordinator();

  // Serves until `stop` is set or, with idleExit, no client has been heard
  // from for that long. `ready` is called once it can take sessions (at once).
  Status run(const std::atomic<bool> &stop, const std::function<void()> &ready = {});

  // For a worker pool in the same process (see the top of this file).
  Store &store() { return store_; }
  // Large uploads not finished yet (tests).
  size_t uploadsInFlight() const { return blobs_.uploadsInFlight(); }
  // Re-read the allow-list (SIGHUP), from any thread: the loop does it,
  // and ends the sessions and drops the workers whose keys it no longer lists.
  void reloadAccess() { reload_ = true; }

private:
  Coordinator(CoordinatorOptions o, Store store, wire::Socket sock,
              std::unique_ptr<wire::Authenticator> auth);
  void handle(wire::Received &&r, Clock::time_point now);
  void guardedHandle(wire::Received &&r, Clock::time_point now);
  bool admit(const wire::Received &r, std::string &name);
  void applyReload();
  void act(Scheduler::Events &&e);
  void flush();
  bool keepInlineNative(wire::JobResult &r);

  CoordinatorOptions options_;
  Store store_;
  // null: no CURVE. Declared before the socket, so that it outlives it: with
  // no ZAP handler bound, libzmq would admit every handshake.
  std::unique_ptr<wire::Authenticator> auth_;
  wire::Socket sock_;
  Scheduler scheduler_;
  BlobService blobs_;
  CacheService cache_;
  Outbox out_;
  Clock::time_point lastClient_;
  std::atomic<bool> reload_{false};
  // With CURVE: the key behind each worker connection and session client,
  // checked again on a reload.
  std::unordered_map<wire::PeerId, std::string> peerKeys_;
};

} // namespace thinfarm

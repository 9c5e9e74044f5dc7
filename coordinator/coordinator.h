// The coordinator daemon: one ROUTER socket, one event loop, and the store's
// lanes beside it (store_lanes.h).
//
// Every message is routed by kind: blob traffic to the BlobService, the
// action cache and the link memo to the CacheService (a session's cached jobs
// are answered before the rest reach the scheduler), sessions,
// registrations and results to the Scheduler. Whatever touches the store
// (blob chunks, presence checks, cache hits read back and hashed, memo
// lookups and records, a result's inline native, the cache's writes, the
// statistics) runs on a store lane, and the loop goes on serving; the
// scheduler sees each peer's messages in the order the peer sent them (a
// message behind store work of its peer waits for it). What the loop has to
// send goes out once per turn. Timeouts and progress run from the same loop a
// few times a second. The program that runs it may put a worker pool
// beside it (thinfarm-coordinator --local-slots) that reaches it over
// inproc:// and shares its store(): RocksDB allows one writing process per
// database, so on one machine the coordinator owns the store and its pool
// never copies a blob.
#pragma once

#include "coordinator/blob_service.h"
#include "coordinator/cache_service.h"
#include "coordinator/scheduler.h"
#include "coordinator/store_lanes.h"
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
  size_t storeLanes = 4; // threads doing the store's work (store_lanes.h)
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
  // Re-read the allow-list (SIGHUP), from any thread: the loop has a store
  // lane read it, then ends the sessions and drops the workers whose keys it
  // no longer lists.
  void reloadAccess() { reload_ = true; }

private:
  Coordinator(CoordinatorOptions o, Store store, wire::Socket sock,
              std::unique_ptr<wire::Authenticator> auth);
  void handle(wire::Received &&r, Clock::time_point now);
  void guardedHandle(wire::Received &&r, Clock::time_point now);
  bool admit(const wire::Received &r, std::string &name);
  void applyReload();
  void act(Scheduler::Events &&e, Outbox &&produced);
  void queue(Outbox &&messages); // to go out with this turn's
  void flush();
  bool keepInlineNative(wire::JobResult &r);
  // Store work for a message of peer's (on its lane, in the peer's order) and
  // what follows on the loop; an exception in either fails the message.
  void onStore(const wire::PeerId &peer, uint64_t id, StoreLanes::Work work, uint64_t bytes = 0);
  // A request answered from the store alone: what work puts in the outbox
  // goes to the peer. Over the peer's share of the lanes: Overloaded.
  void storeRequest(const wire::PeerId &peer, uint64_t id, std::function<void(Outbox &)> work,
                    uint64_t bytes = 0);
  // Over the peer's share of the lanes: its request is answered Overloaded.
  bool refusedBusy(const wire::PeerId &peer, uint64_t id);
  // The loop's part of a message, after the peer's store work queued before it.
  template <class F> void then(const wire::PeerId &peer, uint64_t id, F &&done);
  StoreLanes::Done guarded(const wire::PeerId &peer, uint64_t id, StoreLanes::Done done);
  void couldNotHandle(const wire::PeerId &peer, uint64_t id, const std::string &why);
  // A peer whose connection closed or whose key went: its uploads, jobs and sessions.
  void forgetPeer(const wire::PeerId &peer, const std::string &why);

  CoordinatorOptions options_;
  Store store_;
  // null: no CURVE. Declared before the socket, so that it outlives it: with
  // no ZAP handler bound, libzmq would admit every handshake.
  std::unique_ptr<wire::Authenticator> auth_;
  wire::Socket sock_;
  Scheduler scheduler_;
  std::vector<BlobService> blobs_; // one per lane: a peer's uploads are its lane's alone
  CacheService cache_;
  Outbox out_;
  Clock::time_point lastClient_;
  std::atomic<bool> reload_{false};
  // With CURVE: the key behind each worker connection and session client,
  // checked again on a reload.
  std::unordered_map<wire::PeerId, std::string> peerKeys_;
  // Last: its threads stop before what their work uses goes.
  StoreLanes lanes_;
};

} // namespace thinfarm

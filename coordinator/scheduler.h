// The coordinator's bookkeeping: sessions, jobs, worker slots, and which job
// runs where. Pure logic: every event returns the messages to send, so the
// scheduling rules are tested without sockets.
//
// Rules:
//  * Longest first. Pending jobs are ordered by cost (bitcode bytes of the
//    module and its imports, known before anything runs), largest first, so
//    the last job to start is a short one (LPT).
//  * Slots. A worker connection registers with its slot count and gets that
//    many jobs at once, plus one that waits on the worker while plenty of
//    jobs are pending (so a slot that finishes starts the next job without a
//    round trip). Near the end nothing waits on a worker: the last jobs go
//    to whichever slot is free first.
//  * Locality. A free slot takes, among the first few pending jobs it can
//    run, one whose module its worker already holds; else the largest.
//  * Toolchains. A job runs only on a slot whose backend identity equals the
//    session's; a session no registered slot can serve is refused
//    (unimplemented: the client links locally).
//  * Merging. Identical jobs (same toolchain, backend config and inputs, the
//    task number aside) from different sessions in flight at once run once;
//    every waiting session gets the result, the later ones marked merged.
//  * Failures. A job whose backend failed (bad bitcode) is answered with the
//    failure. A job lost with its worker, or failed for an infrastructure
//    reason, is queued again, up to kAttempts times, then answered with
//    disconnected (the client runs it locally).
#pragma once

#include "wire/transport.h"

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace thinfarm {

using Clock = std::chrono::steady_clock;
using Outbox = std::vector<std::pair<wire::PeerId, wire::Message>>;

class Scheduler {
public:
  static constexpr int kAttempts = 3;
  static constexpr auto kWorkerTimeout = std::chrono::seconds(5);
  static constexpr auto kClientTimeout = std::chrono::seconds(30);

  void onRegister(const wire::PeerId &peer, const wire::RegisterWorker &r, uint64_t requestId,
                  Clock::time_point now, Outbox &out);
  void onHeartbeat(const wire::PeerId &peer, Clock::time_point now, Outbox &out);
  void onSubmit(const wire::PeerId &peer, wire::Session &&s, uint64_t requestId,
                Clock::time_point now, Outbox &out);
  void onEndSession(const wire::PeerId &peer, uint64_t sessionId);
  // True when the result answered a job this worker connection was running
  // (not a stale or unsolicited one) and was not an infrastructure failure.
  bool onJobResult(const wire::PeerId &peer, wire::JobResult &&r, Clock::time_point now,
                   Outbox &out);
  // A worker connection is gone (or no longer admitted): its jobs run elsewhere.
  void dropWorker(const wire::PeerId &peer, const std::string &why, Outbox &out);
  // A client is no longer admitted: its sessions end.
  void dropClient(const wire::PeerId &peer);
  // The registered workers, one entry per name (a worker's connections summed).
  std::vector<wire::WorkerStats> workerStats() const;
  // The worker connections and session clients it holds state for.
  std::set<wire::PeerId> peers() const;
  // Timeouts and progress reports; call a few times a second.
  void tick(Clock::time_point now, Outbox &out);

  bool idle() const { return sessions_.empty(); }
  size_t workers() const { return conns_.size(); }
  size_t sessions() const { return sessions_.size(); }
  size_t pending() const { return pending_.size(); }

private:
  struct Waiter {
    uint64_t session;
    uint32_t task;
  };
  struct Job {
    uint64_t id = 0;
    Digest key;
    std::string toolchain;
    std::shared_ptr<const BackendConfig> config;
    wire::JobSpec spec;
    std::vector<Waiter> waiters;
    wire::PeerId conn; // empty while pending
    int attempts = 0;
  };
  // A worker's connection and the jobs it runs.
  struct Conn {
    std::string name, toolchain;
    unsigned capacity = 1;       // its slots
    std::set<uint64_t> running;  // job ids
    Clock::time_point lastSeen;
    uint64_t done = 0;           // results accepted
  };
  struct Session {
    uint64_t id = 0;
    wire::PeerId client;
    std::string toolchain;
    std::shared_ptr<const BackendConfig> config;
    uint32_t total = 0, done = 0, merged = 0;
    Clock::time_point lastSeen, lastProgress;
  };
  // Pending order: largest cost first, then oldest.
  using PendingKey = std::pair<uint64_t, uint64_t>; // {~cost, job id}

  void enqueue(Job &job);
  void dispatch(Outbox &out);
  void answer(Job &job, const wire::JobResult &r, Outbox &out);
  void requeueOrGiveUp(Job &job, const std::string &why, Outbox &out);
  void release(Job &job); // off its connection's running set
  size_t prefetch() const; // jobs a connection may hold beyond its slots
  void dropJob(uint64_t id);
  void progress(Session &s, Clock::time_point now, Outbox &out);
  bool canServe(const std::string &toolchain) const;

  uint64_t nextJob_ = 1;
  std::unordered_map<uint64_t, Job> jobs_;
  std::map<Digest, uint64_t> inFlight_; // job key -> job id (merging)
  std::set<PendingKey> pending_;
  std::map<wire::PeerId, Conn> conns_;
  std::set<wire::PeerId> free_; // connections with a free slot
  std::map<uint64_t, Session> sessions_;
  // Module digests each worker (by name) has compiled: where inputs already are.
  std::map<std::string, std::set<Digest>> held_;
};

} // namespace thinfarm

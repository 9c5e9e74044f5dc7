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
//  * Failures and losses (job_policy.h, the one policy). A backend failure
//    runs again on a worker of another name; failed on two, it is answered
//    with the backend's message. A job lost (its backend child killed by a
//    signal or a memory limit, its worker gone or in trouble) is queued
//    again, on another worker when there is one, up to kAttempts runs, then
//    answered with disconnected (the client runs it locally).
//  * Keys. A result counts only from the worker connection the job was
//    dispatched to, and only if the key its backend computed from the inputs
//    is the key the job was dispatched with; another key is refused, logged,
//    and the job runs on another worker. The action cache is written under
//    that key, by the coordinator, from the events below.
//  * Deadlines. A job running longer than its deadline (--job-deadline, else
//    60 s plus a second per 64 KiB of its cost) runs again on another
//    worker; past a second deadline the client runs it. The worker that
//    overran keeps the slot counted busy until it answers (late, ignored).
//  * Restarts. Job ids start from the wall clock (ns), so a late result a
//    worker ran for the coordinator's previous run never passes for one of
//    this run's jobs. For SchedulerOptions::workerGrace after the start, a
//    session may come before the workers re-register: it waits for them.
//  * Stragglers. When nothing is pending and a slot is free, a job running
//    for longer than kStragglerAge (longest first) runs again on a worker of
//    another name. The first result wins and is the job's only answer (the
//    other run is cancelled: cancelJob, its backend killed, and counts for
//    nothing, verification included); a run that fails or is lost leaves
//    the job to the other.
//  * Caps. A client (its allow-list name; without keys, its connection) has
//    at most maxSessions sessions open and maxQueuedJobs jobs submitted and
//    unanswered; over either the session is refused (overloaded: the client
//    backs off, then links locally; a session larger than the cap on its
//    own: exceeded, the client links locally at once).
//  * Verification (verification.h). A result may be held until a worker of
//    another name returns the same object, or checked after delivery; the
//    job then runs again, never on a worker that already answered it. A
//    quarantined worker's connections get no jobs; what they ran is requeued.
#pragma once

#include "coordinator/job_policy.h"
#include "coordinator/verification.h"
#include "wire/transport.h"

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace thinfarm {

using Clock = std::chrono::steady_clock;
using Outbox = std::vector<std::pair<wire::PeerId, wire::Message>>;

struct SchedulerOptions {
  VerifyOptions verify;
  std::chrono::seconds jobDeadline{0}; // 0: from each job's cost
  uint32_t maxSessions = 256;          // per client
  uint64_t maxQueuedJobs = 100000;     // per client
  // For this long after it starts, a session no registered worker can serve
  // waits for one instead of being refused: a restarted coordinator's
  // workers come back within a heartbeat, its clients' sessions may be first.
  Clock::duration workerGrace{0};
  bool stragglers = true; // run stragglers again on idle slots (see the rules)
};

class Scheduler {
public:
  static constexpr int kAttempts = kJobAttempts;
  // A worker heartbeats twice a second: silence this long (frozen, cut off)
  // loses it and its jobs (a closed connection loses it at once).
  static constexpr auto kWorkerTimeout = std::chrono::seconds(2);
  // Each running session hears from the coordinator this often (progress):
  // its client calls it gone after 1.5 s without a word (client/client.cpp).
  static constexpr auto kProgressEvery = std::chrono::milliseconds(500);
  static constexpr auto kClientTimeout = std::chrono::seconds(30);
  static constexpr auto kStragglerAge = std::chrono::seconds(2);

  explicit Scheduler(SchedulerOptions o = {});

  // What results led to beyond the messages, for the coordinator to act on.
  struct Events {
    std::vector<wire::JobResult> cache;   // delivered results to record, under their key
    std::vector<Digest> uncache;          // keys whose record turned out wrong
    std::vector<std::string> quarantined; // workers whose records to drop
    std::vector<std::string> log;         // lines for the coordinator's log
  };
  Events takeEvents() { return std::exchange(events_, {}); }

  // trusted: the coordinator's own worker pool, never on probation.
  void onRegister(const wire::PeerId &peer, const wire::RegisterWorker &r, uint64_t requestId,
                  Clock::time_point now, Outbox &out, bool trusted = false);
  void onHeartbeat(const wire::PeerId &peer, Clock::time_point now, Outbox &out);
  // owner: whom the caps count it against (the allow-list name; else the peer).
  void onSubmit(const wire::PeerId &peer, wire::Session &&s, uint64_t requestId,
                Clock::time_point now, Outbox &out, const std::string &owner = {});
  void onEndSession(const wire::PeerId &peer, uint64_t sessionId);
  // A worker's result. Counted only for a job this connection was running;
  // `stored`: its native object is in the store (it may be cached).
  void onJobResult(const wire::PeerId &peer, wire::JobResult &&r, Clock::time_point now,
                   Outbox &out, bool stored = true);
  // A worker connection is gone (or no longer admitted): its jobs run elsewhere.
  void dropWorker(const wire::PeerId &peer, const std::string &why, Outbox &out);
  // A client is no longer admitted, or its connection closed: its sessions end.
  void dropClient(const wire::PeerId &peer);
  // An admin's drain (no new jobs for the worker of this name; its running
  // ones finish) or its end. False: no such worker is registered.
  bool drain(const std::string &worker, bool drain, Outbox &out);
  // The workers, one entry per name (a worker's connections summed), with
  // the quarantined ones that left.
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
  // A worker's answer to a job, kept while it is verified.
  struct Returned {
    Answer answer;
    wire::JobResult result;
    bool stored = false;
  };
  struct Job {
    uint64_t id = 0;
    Digest key;
    std::string toolchain;
    std::shared_ptr<const BackendConfig> config;
    wire::JobSpec spec;
    std::vector<Waiter> waiters;
    wire::PeerId conn;  // empty while pending
    wire::PeerId spare; // a second run of a straggler, on another worker; empty: none
    bool spared = false; // it had one (a job gets one at most)
    int attempts = 0;
    std::vector<Returned> returned; // answers held for comparison
    std::set<std::string> excluded; // workers that may not run it (again)
    bool delivered = false;         // answered; it runs again only as a check
    Clock::time_point started;      // dispatched
    int overran = 0;                // deadlines it ran past
    std::set<std::string> failedOn; // workers whose backend failed it
  };
  // A worker's connection and the jobs it runs.
  struct Conn {
    std::string name, toolchain;
    unsigned capacity = 1;       // its slots
    std::set<uint64_t> running;  // job ids
    Clock::time_point lastSeen;
    uint64_t done = 0;           // results accepted
    bool quarantined = false;    // gets no jobs
    bool draining = false;       // gets no new jobs (an admin's drain)
    unsigned overrunning = 0;    // jobs taken away at their deadline, still busy there
  };
  struct Session {
    uint64_t id = 0;
    wire::PeerId client;
    std::string toolchain, owner;
    std::shared_ptr<const BackendConfig> config;
    uint32_t total = 0, done = 0, merged = 0;
    Clock::time_point lastSeen, lastProgress;
    // The jobs it waits for (some may be gone): its end and its progress
    // visit these, not every job of every session.
    std::vector<uint64_t> jobIds;
  };
  // Pending order: largest cost first, then oldest.
  using PendingKey = std::pair<uint64_t, uint64_t>; // {~cost, job id}

  void enqueue(Job &job);
  PendingKey pendingKey(const Job &job) const;
  // Verification: what the answers so far mean for the job.
  void settle(Job &job, Outbox &out);
  void deliver(Job &job, const Returned &r, Outbox &out);
  bool canRunElsewhere(const Job &job) const;
  void settleStranded(Outbox &out);
  Clock::duration deadlineOf(const Job &job) const;
  void enforceDeadlines(Clock::time_point now, Outbox &out);
  void quarantine(const std::string &worker, const std::string &why, Outbox &out);
  void dispatch(Outbox &out);
  void answer(Job &job, const wire::JobResult &r, Outbox &out);
  // A run that ended without a result: job_policy.h decides what follows.
  // worker: whose run it was, kept off the job while another can take it.
  void requeueOrGiveUp(Job &job, const std::string &why, Outbox &out,
                       RunEnd end = RunEnd::Lost, const std::string &worker = {});
  void backendFailed(Job &job, Conn &conn, wire::JobResult &&r, Outbox &out);
  void release(Job &job); // off its connection's running set
  // Stragglers: with nothing pending, idle slots run the longest-running jobs again.
  void speculate(Outbox &out);
  // The run on `peer` becomes job.conn (a spare's result is handled as the job's).
  static void runOn(Job &job, const wire::PeerId &peer);
  // The job's run on job.conn ended without a result; its other run goes on.
  bool handOver(Job &job);
  void cancelSpare(Job &job, Outbox &out);
  size_t prefetch() const; // jobs a connection may hold beyond its slots
  void dropJob(uint64_t id);
  void progress(Session &s, Clock::time_point now, Outbox &out);
  bool canServe(const std::string &toolchain) const;
  bool inGrace(Clock::time_point now) const { return now - start_ < options_.workerGrace; }

  SchedulerOptions options_;
  Clock::time_point now_; // of the latest event that had a time
  Clock::time_point start_;
  uint64_t nextJob_; // never one an earlier run of the coordinator gave out
  std::unordered_map<uint64_t, Job> jobs_;
  // Hashed, not ordered: looked up for every job submitted, scanned and
  // answered (ordered sets of 64 Ki digests were a tenth of the loop's time).
  struct DigestHash {
    size_t operator()(const Digest &d) const {
      size_t h;
      std::memcpy(&h, d.sha256.data(), sizeof h); // SHA-256 bits are uniform
      return h;
    }
  };
  std::unordered_map<Digest, uint64_t, DigestHash> inFlight_; // job key -> job id (merging)
  std::set<PendingKey> pending_;
  std::map<wire::PeerId, Conn> conns_;
  std::set<wire::PeerId> free_; // connections with a free slot
  std::map<uint64_t, Session> sessions_;
  // Module digests each worker (by name) has compiled: where inputs already are.
  std::map<std::string, std::unordered_set<Digest, DigestHash>> held_;
  Verifier verifier_;
  std::set<std::string> unchecked_; // workers the log said run unchecked (alone)
  std::set<std::string> drained_;   // by an admin, until resumed
  Events events_;
};

} // namespace thinfarm

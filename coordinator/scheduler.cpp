#include "coordinator/scheduler.h"

#include <algorithm>
#include <cassert>

namespace thinfarm {

namespace {

// Identical jobs: same toolchain, configuration and inputs. The task number
// only names the output within a link, so it is left out.
Digest jobKey(const std::string &toolchain, const BackendConfig &config, const wire::JobSpec &spec) {
  wire::RunJob canonical{0, config, spec};
  canonical.spec.task = 0;
  canonical.spec.cost = 0;
  DigestBuilder b;
  b.update(toolchain);
  b.update(std::string_view("\0", 1));
  b.update(wire::encode(wire::Message{0, std::move(canonical)}));
  return b.finish();
}

constexpr size_t kLocalityWindow = 8;   // pending jobs a slot considers for locality
constexpr size_t kToolchainWindow = 256; // pending jobs scanned for a matching toolchain
constexpr size_t kHeldLimit = 1 << 16;   // module digests remembered per worker

} // namespace

Scheduler::Scheduler(SchedulerOptions o)
    : options_(o), start_(Clock::now()),
      nextJob_(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count())),
      verifier_(o.verify) {}

bool Scheduler::canServe(const std::string &toolchain) const {
  for (const auto &[peer, conn] : conns_)
    if (conn.toolchain == toolchain)
      return true;
  return false;
}

void Scheduler::onRegister(const wire::PeerId &peer, const wire::RegisterWorker &r,
                           uint64_t requestId, Clock::time_point now, Outbox &out, bool trusted) {
  now_ = now;
  auto [it, fresh] = conns_.try_emplace(peer);
  for (uint64_t id : std::set<uint64_t>(it->second.running)) {
    Job &job = jobs_.at(id);
    runOn(job, peer);
    requeueOrGiveUp(job, "its worker registered again", out);
  }
  it->second = Conn{r.name, r.toolchain, std::max(1u, r.slots), {}, now};
  verifier_.met(r.name, trusted);
  // A quarantined worker stays connected (its heartbeats are answered) but idle.
  it->second.quarantined = verifier_.quarantined(r.name);
  it->second.draining = drained_.count(r.name) > 0;
  if (!it->second.quarantined && !it->second.draining)
    free_.insert(peer);
  out.push_back({peer, wire::Message{requestId, wire::Registered{it->second.capacity}}});
  dispatch(out);
}

void Scheduler::onHeartbeat(const wire::PeerId &peer, Clock::time_point now, Outbox &out) {
  if (auto it = conns_.find(peer); it != conns_.end()) {
    it->second.lastSeen = now;
    return;
  }
  bool client = false;
  for (auto &[id, s] : sessions_)
    if (s.client == peer) {
      s.lastSeen = now;
      client = true;
    }
  if (!client)
    out.push_back({peer, wire::errorReply(0, ErrorKind::Disconnected,
                                          "unknown peer: register or submit again")});
}

void Scheduler::onSubmit(const wire::PeerId &peer, wire::Session &&s, uint64_t requestId,
                         Clock::time_point now, Outbox &out, const std::string &owner) {
  now_ = now;
  const std::string who = owner.empty() ? peer : owner;
  uint32_t open = 0;
  uint64_t queued = 0;
  for (const auto &[id, other] : sessions_)
    if (other.owner == who) {
      open++;
      queued += other.total - other.done;
    }
  auto refuse = [&](const std::string &why) {
    // More jobs than one client may ever queue cannot wait its turn: the client runs them.
    ErrorKind kind = s.jobs.size() > options_.maxQueuedJobs ? ErrorKind::Exceeded
                                                            : ErrorKind::Overloaded;
    out.push_back({peer, wire::errorReply(requestId, kind, why)});
  };
  auto existing = sessions_.find(s.sessionId);
  if (s.part > 0 && (existing == sessions_.end() || existing->second.client != peer)) {
    // Its first part was refused, or went to a coordinator that has since
    // restarted: the client submits the whole session again.
    out.push_back({peer, wire::errorReply(requestId, ErrorKind::Disconnected,
                                          "part " + std::to_string(s.part) + " of session " +
                                              std::to_string(s.sessionId) +
                                              ", which is not open here: submit again")});
    return;
  }
  if (s.part == 0 && open >= options_.maxSessions)
    return refuse("client " + who + " has " + std::to_string(open) +
                  " sessions open, the most one client may (--max-sessions)");
  if (queued + s.jobs.size() > options_.maxQueuedJobs)
    return refuse("client " + who + " has " + std::to_string(queued) + " jobs queued; " +
                  std::to_string(s.jobs.size()) + " more would pass " +
                  std::to_string(options_.maxQueuedJobs) + ", the most one client may (--max-queued-jobs)");
  if (s.part == 0 && existing != sessions_.end()) {
    out.push_back({peer, wire::errorReply(requestId, ErrorKind::Failed,
                                          "session " + std::to_string(s.sessionId) +
                                              " exists already")});
    return;
  }
  // A session the action cache answered whole needs no worker.
  if (!s.jobs.empty() && !canServe(s.toolchain) && !inGrace(now)) {
    out.push_back({peer, wire::errorReply(requestId, ErrorKind::Unimplemented,
                                          "no worker runs backend " + s.toolchain)});
    return;
  }
  Session &sess = sessions_[s.sessionId];
  if (s.part == 0) {
    sess.id = s.sessionId;
    sess.client = peer;
    sess.owner = who;
    sess.toolchain = s.toolchain;
    sess.config = std::make_shared<const BackendConfig>(std::move(s.config));
  } // (a later part's toolchain and config are its first's)
  sess.total += static_cast<uint32_t>(s.jobs.size());
  sess.lastSeen = now;
  for (wire::JobSpec &spec : s.jobs) {
    Digest key = jobKey(sess.toolchain, *sess.config, spec);
    if (auto it = inFlight_.find(key); it != inFlight_.end()) {
      jobs_.at(it->second).waiters.push_back({sess.id, spec.task});
      sess.jobIds.push_back(it->second);
      continue;
    }
    Job &job = jobs_[nextJob_];
    job.id = nextJob_++;
    job.key = key;
    job.toolchain = sess.toolchain;
    job.config = sess.config;
    job.waiters.push_back({sess.id, spec.task});
    sess.jobIds.push_back(job.id);
    job.spec = std::move(spec);
    inFlight_[key] = job.id;
    enqueue(job);
  }
  progress(sess, now, out);
  dispatch(out);
}

void Scheduler::onEndSession(const wire::PeerId &peer, uint64_t sessionId) {
  auto it = sessions_.find(sessionId);
  if (it == sessions_.end() || it->second.client != peer)
    return;
  std::vector<uint64_t> ids = std::move(it->second.jobIds);
  sessions_.erase(it);
  // Jobs nobody waits for any more: pending ones go; running ones finish and
  // their answer is dropped.
  std::vector<uint64_t> orphans;
  for (uint64_t id : ids) {
    auto jit = jobs_.find(id);
    if (jit == jobs_.end())
      continue;
    Job &job = jit->second;
    std::erase_if(job.waiters, [&](const Waiter &w) { return w.session == sessionId; });
    if (job.waiters.empty() && job.conn.empty() && !job.delivered) // (checks run on)
      orphans.push_back(id);
  }
  for (uint64_t id : orphans)
    dropJob(id);
}

void Scheduler::onJobResult(const wire::PeerId &peer, wire::JobResult &&r, Clock::time_point now,
                            Outbox &out, bool stored) {
  now_ = now;
  auto cit = conns_.find(peer);
  if (cit == conns_.end())
    return; // a connection we gave up on: its answer is stale
  if (!cit->second.running.count(r.jobId)) { // a job we no longer have: its answer is stale
    if (cit->second.overrunning > 0) { // (one taken away at its deadline: its slot is free again)
      cit->second.overrunning--;
      free_.insert(peer);
      dispatch(out);
    }
    return;
  }
  Conn &conn = cit->second;
  conn.lastSeen = now;
  auto jit = jobs_.find(r.jobId);
  if (jit != jobs_.end()) {
    Job &job = jit->second;
    runOn(job, peer);
    if (r.error && r.error->kind != ErrorKind::Failed) {
      const bool tooLarge = r.error->kind == ErrorKind::Exceeded;
      events_.log.push_back(job.spec.module.identifier +
                            (tooLarge ? " cannot come back from worker " : " was lost on worker ") +
                            conn.name + ": " + r.error->message);
      requeueOrGiveUp(job, r.error->message + " (on " + conn.name + ")", out,
                      tooLarge ? RunEnd::TooLarge : RunEnd::Lost, conn.name);
    } else if (r.error && job.returned.empty() && !job.delivered) {
      backendFailed(job, conn, std::move(r), out);
    } else if (r.error) {
      // A second opinion that could not be had: the checker's backend failed
      // where another worker's succeeded. Never a verdict on either.
      conn.done++;
      job.excluded.insert(conn.name);
      if (!handOver(job))
        release(job);
      events_.log.push_back("the backend of " + job.spec.module.identifier + " failed on worker " +
                            conn.name + " while checking another worker's result: " +
                            r.error->message);
      if (!job.conn.empty()) {
        // its other run goes on
      } else if (job.delivered) {
        dropJob(job.id);
      } else if (canRunElsewhere(job)) {
        enqueue(job);
      } else {
        settle(job, out);
      }
    } else if (!r.error && job.spec.key.size != 0 && r.key != job.spec.key) {
      // Not the job it was given, whatever it says: never delivered or cached.
      events_.log.push_back("refused a result from worker " + conn.name + " for " +
                            job.spec.module.identifier + ": its key " + r.key.text() +
                            " is not the key the job was dispatched with, " +
                            job.spec.key.text());
      job.excluded.insert(conn.name); // never again there, even with no other worker
      requeueOrGiveUp(job, "worker " + conn.name + " answered with another key", out,
                      RunEnd::WrongKey);
    } else {
      conn.done++;
      if (!r.error) {
        auto &held = held_[conn.name];
        if (held.size() > kHeldLimit)
          held.clear();
        held.insert(job.spec.module.bitcode);
      }
      cancelSpare(job, out); // the first result wins
      release(job);
      job.excluded.insert(conn.name);
      Answer a{conn.name, r.error.has_value(), r.native};
      job.returned.push_back(Returned{std::move(a), std::move(r), stored});
      settle(job, out);
    }
  }
  dispatch(out);
}

// A backend failure is believed once a worker of another name repeats it
// (a worker's own trouble, its memory or a flipped bit, must not fail the link).
void Scheduler::backendFailed(Job &job, Conn &conn, wire::JobResult &&r, Outbox &out) {
  conn.done++;
  job.excluded.insert(conn.name);
  job.failedOn.insert(conn.name);
  const std::string why = r.error ? r.error->message : std::string("no message");
  if (handOver(job)) {
    events_.log.push_back("the backend of " + job.spec.module.identifier + " failed on worker " +
                          conn.name + " (" + why + "): its other run decides");
    return;
  }
  release(job);
  JobHistory h;
  h.attempts = job.attempts;
  h.overran = job.overran;
  h.failedWorkers = static_cast<int>(job.failedOn.size());
  h.otherWorker = canRunElsewhere(job);
  if (nextRun(RunEnd::BackendFailed, h) == JobNext::RunElsewhere) {
    events_.log.push_back("the backend of " + job.spec.module.identifier + " failed on worker " +
                          conn.name + " (" + why + "): it runs on another worker");
    enqueue(job);
    return;
  }
  if (job.failedOn.size() > 1) {
    std::string names;
    for (const std::string &n : job.failedOn)
      names += (names.empty() ? "" : " and ") + n;
    events_.log.push_back("the backend of " + job.spec.module.identifier + " failed on workers " +
                          names + ": " + why);
  }
  answer(job, r, out);
  dropJob(job.id);
}

// The answers so far: hold the first for a second opinion, deliver it (and
// maybe check it after), or, with two or three, let the majority decide.
void Scheduler::settle(Job &job, Outbox &out) {
  const bool other = canRunElsewhere(job);
  const std::string &module = job.spec.module.identifier;
  if (job.returned.size() == 1) {
    const Returned &first = job.returned.front();
    const std::string &worker = first.answer.worker;
    if (job.spec.noop || job.delivered) { // nothing to forge / a check nobody can run
      if (!job.delivered)
        deliver(job, first, out);
      dropJob(job.id);
      return;
    }
    if (verifier_.probationLeft(worker) > 0) {
      if (other) {
        enqueue(job); // held: a worker of another name runs it too
        return;
      }
      if (unchecked_.insert(worker).second)
        events_.log.push_back("worker " + worker + " is the only worker that can run " +
                              job.toolchain + " jobs: its results are delivered unchecked");
    }
    deliver(job, first, out);
    if (verifier_.probationLeft(worker) == 0 && !first.answer.failed && other &&
        verifier_.sample()) {
      // Checked after delivery, at the back of the queue.
      job.waiters.clear();
      if (auto k = inFlight_.find(job.key); k != inFlight_.end() && k->second == job.id)
        inFlight_.erase(k);
      enqueue(job);
      return;
    }
    dropJob(job.id);
    return;
  }
  std::vector<Answer> answers;
  answers.reserve(job.returned.size());
  for (const Returned &r : job.returned)
    answers.push_back(r.answer);
  Verifier::Verdict v = verifier_.judge(answers, job.returned.size() == 2 && other);
  if (v.needThird) {
    events_.log.push_back("workers " + answers[0].worker + " and " + answers[1].worker +
                          " returned different objects for " + module + ": a third decides");
    enqueue(job);
    return;
  }
  verifier_.credit(answers, v);
  std::string names;
  for (const Answer &a : answers)
    names += (names.empty() ? "" : ", ") + a.worker;
  for (const std::string &loser : v.losers)
    quarantine(loser, "its object for " + module + " differs from that of " +
                          (v.winner ? v.winner->worker : std::string("others")), out);
  if (v.winner) {
    auto win = std::find_if(job.returned.begin(), job.returned.end(),
                            [&](const Returned &r) { return r.answer == *v.winner; });
    assert(win != job.returned.end()); // the winner is one of the answers
    if (!job.delivered) {
      deliver(job, *win, out);
    } else if (!(job.returned.front().answer == *v.winner)) {
      events_.log.push_back("the object delivered for " + module + " from worker " +
                            job.returned.front().answer.worker + " was wrong");
      events_.uncache.push_back(job.spec.key);
      deliver(job, *win, out); // into the cache; nobody waits any more
    }
  } else if (!job.delivered) {
    events_.log.push_back("workers " + names + " returned different objects for " + module +
                          ": none is believed; the client runs it");
    wire::JobResult r;
    r.task = job.spec.task;
    r.error = wire::ErrorMsg{ErrorKind::Disconnected,
                             "workers " + names + " disagree on " + module};
    answer(job, r, out);
  } else {
    events_.log.push_back("workers " + names + " returned different objects for " + module +
                          " after it was delivered from " + job.returned.front().answer.worker +
                          ": its cache record is dropped");
    events_.uncache.push_back(job.spec.key);
  }
  dropJob(job.id);
}

void Scheduler::deliver(Job &job, const Returned &r, Outbox &out) {
  answer(job, r.result, out);
  job.delivered = true;
  if (r.stored && !r.answer.failed && job.spec.key.size != 0 && r.result.key == job.spec.key)
    events_.cache.push_back(r.result);
}

bool Scheduler::canRunElsewhere(const Job &job) const {
  for (const auto &[peer, conn] : conns_)
    if (!conn.quarantined && !conn.draining && conn.toolchain == job.toolchain &&
        !job.excluded.count(conn.name))
      return true;
  return false;
}

// Pending jobs no admitted worker may run any more (the others left, or were
// quarantined): settle them with what they have.
void Scheduler::settleStranded(Outbox &out) {
  std::vector<uint64_t> stranded;
  for (const auto &[k, id] : pending_) {
    const Job &job = jobs_.at(id);
    if (!job.excluded.empty() && !canRunElsewhere(job))
      stranded.push_back(id);
  }
  for (uint64_t id : stranded) {
    Job &job = jobs_.at(id);
    pending_.erase(pendingKey(job));
    if (job.returned.empty()) {
      job.attempts = kAttempts;
      requeueOrGiveUp(job, "no other worker may run it", out);
    } else {
      settle(job, out);
    }
  }
}

void Scheduler::quarantine(const std::string &worker, const std::string &why, Outbox &out) {
  if (verifier_.quarantined(worker))
    return;
  verifier_.quarantine(worker);
  events_.quarantined.push_back(worker);
  events_.log.push_back("quarantined worker " + worker + ": " + why +
                        "; it gets no more jobs and the results it cached are dropped");
  std::vector<std::pair<wire::PeerId, uint64_t>> lost;
  for (auto &[peer, conn] : conns_) {
    if (conn.name != worker)
      continue;
    conn.quarantined = true;
    free_.erase(peer);
    for (uint64_t id : conn.running)
      lost.push_back({peer, id});
  }
  for (const auto &[peer, id] : lost) {
    Job &job = jobs_.at(id);
    runOn(job, peer);
    job.excluded.insert(worker);
    requeueOrGiveUp(job, "worker " + worker + " was quarantined", out);
  }
}

void Scheduler::dropWorker(const wire::PeerId &peer, const std::string &why, Outbox &out) {
  auto it = conns_.find(peer);
  if (it == conns_.end())
    return;
  std::set<uint64_t> lost = std::move(it->second.running);
  std::string name = it->second.name;
  free_.erase(peer);
  conns_.erase(it);
  if (!lost.empty())
    events_.log.push_back("worker " + name + " " + why + ": its " + std::to_string(lost.size()) +
                          " running job" + (lost.size() == 1 ? "" : "s") + " run again");
  for (uint64_t id : lost) {
    Job &job = jobs_.at(id);
    runOn(job, peer);
    requeueOrGiveUp(job, "worker " + name + " " + why, out, RunEnd::Lost, name);
  }
}

void Scheduler::dropClient(const wire::PeerId &peer) {
  std::vector<uint64_t> ids;
  for (const auto &[id, s] : sessions_)
    if (s.client == peer)
      ids.push_back(id);
  for (uint64_t id : ids)
    onEndSession(peer, id);
}

bool Scheduler::drain(const std::string &worker, bool drain, Outbox &out) {
  bool known = false;
  for (auto &[peer, conn] : conns_) {
    if (conn.name != worker)
      continue;
    known = true;
    conn.draining = drain;
    if (drain)
      free_.erase(peer);
    else
      free_.insert(peer);
  }
  if (!known && !drained_.count(worker))
    return false;
  if (drain)
    drained_.insert(worker);
  else
    drained_.erase(worker);
  dispatch(out);
  return true;
}

std::vector<wire::WorkerStats> Scheduler::workerStats() const {
  std::map<std::string, wire::WorkerStats> byName;
  for (const auto &[peer, conn] : conns_) {
    wire::WorkerStats &w = byName[conn.name];
    w.name = conn.name;
    w.slots += conn.capacity;
    w.running += static_cast<uint32_t>(conn.running.size());
    w.done += conn.done;
    w.draining = conn.draining;
  }
  for (const auto &[name, standing] : verifier_.standing()) {
    if (!standing.second && !byName.count(name))
      continue; // gone, and nothing to say of it
    wire::WorkerStats &w = byName[name];
    w.name = name;
    w.probation = standing.first;
    w.quarantined = standing.second;
  }
  std::vector<wire::WorkerStats> all;
  all.reserve(byName.size());
  for (auto &[name, w] : byName)
    all.push_back(std::move(w));
  return all;
}

std::set<wire::PeerId> Scheduler::peers() const {
  std::set<wire::PeerId> all;
  for (const auto &[peer, conn] : conns_)
    all.insert(peer);
  for (const auto &[id, s] : sessions_)
    all.insert(s.client);
  return all;
}

Clock::duration Scheduler::deadlineOf(const Job &job) const {
  if (options_.jobDeadline.count() > 0)
    return options_.jobDeadline;
  return std::chrono::seconds(60 + job.spec.cost / (64 << 10));
}

// Jobs past their deadline run elsewhere; the second time, the client runs them.
void Scheduler::enforceDeadlines(Clock::time_point now, Outbox &out) {
  std::vector<std::pair<wire::PeerId, uint64_t>> late;
  for (const auto &[peer, conn] : conns_)
    for (uint64_t id : conn.running)
      if (const Job &job = jobs_.at(id); now - job.started > deadlineOf(job))
        late.push_back({peer, id});
  for (const auto &[peer, id] : late) {
    Conn &conn = conns_.at(peer);
    Job &job = jobs_.at(id);
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(deadlineOf(job)).count();
    events_.log.push_back(job.spec.module.identifier + " ran past its deadline of " +
                          std::to_string(secs) + " s on worker " + conn.name);
    conn.running.erase(id);
    conn.overrunning++; // busy until it answers
    runOn(job, peer);
    if (!job.spare.empty()) { // its other run goes on
      job.conn = std::exchange(job.spare, {});
      job.excluded.insert(conn.name);
      continue;
    }
    job.conn.clear();
    job.excluded.insert(conn.name);
    JobHistory h;
    h.overran = ++job.overran;
    if (nextRun(RunEnd::Overran, h) == JobNext::RunElsewhere &&
        (job.delivered || !job.waiters.empty())) {
      enqueue(job);
      continue;
    }
    if (!job.delivered) {
      wire::JobResult r;
      r.task = job.spec.task;
      r.error = wire::ErrorMsg{ErrorKind::Disconnected,
                               job.spec.module.identifier + " ran past its deadline of " +
                                   std::to_string(secs) + " s on two workers"};
      answer(job, r, out);
    }
    dropJob(id);
  }
}

void Scheduler::tick(Clock::time_point now, Outbox &out) {
  now_ = now;
  enforceDeadlines(now, out);
  std::vector<wire::PeerId> silent;
  for (const auto &[peer, conn] : conns_)
    if (now - conn.lastSeen > kWorkerTimeout)
      silent.push_back(peer);
  for (const wire::PeerId &peer : silent)
    dropWorker(peer, "stopped answering", out);
  std::vector<std::pair<wire::PeerId, uint64_t>> gone;
  for (auto &[id, s] : sessions_) {
    if (now - s.lastSeen > kClientTimeout) {
      gone.push_back({s.client, id});
      continue;
    }
    if (s.done < s.total && !canServe(s.toolchain) && !inGrace(now)) {
      out.push_back({s.client, wire::errorReply(0, ErrorKind::Disconnected,
                                                "no worker left that runs backend " + s.toolchain)});
      gone.push_back({s.client, id});
      continue;
    }
    if (now - s.lastProgress >= kProgressEvery)
      progress(s, now, out);
  }
  for (auto &[peer, id] : gone)
    onEndSession(peer, id);
  settleStranded(out);
  dispatch(out);
}

void Scheduler::enqueue(Job &job) {
  job.conn.clear();
  pending_.insert(pendingKey(job));
}

// Largest first; a check of a delivered result after everything else.
Scheduler::PendingKey Scheduler::pendingKey(const Job &job) const {
  return {job.delivered ? ~uint64_t(0) : ~job.spec.cost, job.id};
}

void Scheduler::dispatch(Outbox &out) {
  for (auto fit = free_.begin(); fit != free_.end() && !pending_.empty();) {
    const wire::PeerId &peer = *fit;
    Conn &conn = conns_.at(peer);
    if (conn.quarantined || conn.draining ||
        conn.running.size() + conn.overrunning >= conn.capacity + prefetch()) {
      fit = free_.erase(fit); // full now that less work is pending
      continue;
    }
    const auto &held = held_[conn.name];
    auto choice = pending_.end();
    size_t matches = 0, scanned = 0;
    for (auto it = pending_.begin(); it != pending_.end() && matches < kLocalityWindow &&
                                      scanned < kToolchainWindow;
         ++it, ++scanned) {
      const Job &job = jobs_.at(it->second);
      if (job.toolchain != conn.toolchain || (!job.excluded.empty() && job.excluded.count(conn.name)))
        continue;
      if (matches++ == 0)
        choice = it;
      if (held.count(job.spec.module.bitcode)) {
        choice = it;
        break;
      }
    }
    if (choice == pending_.end()) {
      ++fit;
      continue;
    }
    Job &job = jobs_.at(choice->second);
    pending_.erase(choice);
    job.conn = peer;
    job.started = now_;
    conn.running.insert(job.id);
    out.push_back({peer, wire::Message{job.id, wire::RunJob{job.id, *job.config, job.spec}}});
    if (conn.running.size() + conn.overrunning >= conn.capacity + prefetch())
      fit = free_.erase(fit); // else the same connection takes another
  }
  speculate(out);
}

void Scheduler::speculate(Outbox &out) {
  if (!options_.stragglers || !pending_.empty() || free_.empty())
    return;
  std::vector<std::pair<Clock::time_point, uint64_t>> stragglers;
  for (const auto &[peer, conn] : conns_)
    for (uint64_t id : conn.running) {
      const Job &job = jobs_.at(id);
      if (job.conn == peer && !job.spared && !job.delivered && !job.waiters.empty() &&
          !job.spec.noop && now_ - job.started >= kStragglerAge)
        stragglers.push_back({job.started, id});
    }
  std::sort(stragglers.begin(), stragglers.end()); // longest running first
  for (const auto &[started, id] : stragglers) {
    Job &job = jobs_.at(id);
    const std::string &runner = conns_.at(job.conn).name;
    for (auto fit = free_.begin(); fit != free_.end(); ++fit) {
      Conn &c = conns_.at(*fit);
      if (c.quarantined || c.draining || c.toolchain != job.toolchain || c.name == runner ||
          job.excluded.count(c.name) || c.running.size() + c.overrunning >= c.capacity)
        continue;
      events_.log.push_back(job.spec.module.identifier + " straggles on worker " + runner +
                            ": it runs on worker " + c.name + " too");
      job.spare = *fit;
      job.spared = true;
      c.running.insert(id);
      out.push_back({*fit, wire::Message{id, wire::RunJob{id, *job.config, job.spec}}});
      if (c.running.size() + c.overrunning >= c.capacity)
        free_.erase(fit);
      break;
    }
    if (free_.empty())
      return;
  }
}

void Scheduler::runOn(Job &job, const wire::PeerId &peer) {
  if (!job.spare.empty() && job.spare == peer)
    std::swap(job.conn, job.spare);
}

bool Scheduler::handOver(Job &job) {
  if (job.spare.empty())
    return false;
  if (auto it = conns_.find(job.conn); it != conns_.end() && it->second.running.erase(job.id))
    free_.insert(it->first);
  job.conn = std::exchange(job.spare, {});
  return true;
}

void Scheduler::cancelSpare(Job &job, Outbox &out) {
  if (job.spare.empty())
    return;
  if (auto it = conns_.find(job.spare); it != conns_.end() && it->second.running.erase(job.id)) {
    free_.insert(it->first);
    out.push_back({it->first, wire::Message{0, wire::CancelJob{job.id}}});
  }
  job.spare.clear();
}

size_t Scheduler::prefetch() const {
  return pending_.size() >= 2 * conns_.size() ? 1 : 0;
}

void Scheduler::release(Job &job) {
  auto it = conns_.find(job.conn);
  if (it != conns_.end() && it->second.running.erase(job.id))
    free_.insert(it->first);
  job.conn.clear();
}

void Scheduler::answer(Job &job, const wire::JobResult &r, Outbox &out) {
  bool first = true;
  for (const Waiter &w : job.waiters) {
    auto sit = sessions_.find(w.session);
    if (sit == sessions_.end())
      continue;
    Session &s = sit->second;
    wire::JobResult res = r;
    res.sessionId = s.id;
    res.jobId = 0;
    res.task = w.task;
    res.merged = !first;
    first = false;
    s.done++;
    s.merged += res.merged;
    out.push_back({s.client, wire::Message{0, std::move(res)}});
  }
}

void Scheduler::requeueOrGiveUp(Job &job, const std::string &why, Outbox &out, RunEnd end,
                                const std::string &worker) {
  if (handOver(job)) { // its other run goes on
    if (!worker.empty())
      job.excluded.insert(worker);
    return;
  }
  release(job);
  if (job.waiters.empty() && !job.delivered) { // every session that wanted it has ended
    dropJob(job.id);
    return;
  }
  // Another worker, when one can take it; else this one again.
  if (!worker.empty() && job.excluded.insert(worker).second && !canRunElsewhere(job))
    job.excluded.erase(worker);
  JobHistory h;
  h.attempts = ++job.attempts;
  h.overran = job.overran;
  h.failedWorkers = static_cast<int>(job.failedOn.size());
  if (nextRun(end, h) == JobNext::RunElsewhere) {
    enqueue(job);
    return;
  }
  if (job.returned.size() == 1 && !job.delivered) {
    // A second opinion that could not be had: the one answer stands alone.
    events_.log.push_back("no second worker could check " + job.spec.module.identifier +
                          ": the result of worker " + job.returned.front().answer.worker +
                          " is delivered unchecked");
    deliver(job, job.returned.front(), out);
    dropJob(job.id);
    return;
  }
  if (job.delivered) { // a check that could not run: nobody waits for it
    dropJob(job.id);
    return;
  }
  wire::JobResult r;
  r.task = job.spec.task;
  r.error = wire::ErrorMsg{ErrorKind::Disconnected,
                           end == RunEnd::TooLarge
                               ? why
                               : "gave up on " + job.spec.module.identifier + " after " +
                                     std::to_string(kAttempts) + " attempts: " + why};
  answer(job, r, out);
  dropJob(job.id);
}

void Scheduler::dropJob(uint64_t id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end())
    return;
  pending_.erase(pendingKey(it->second));
  if (auto k = inFlight_.find(it->second.key); k != inFlight_.end() && k->second == id)
    inFlight_.erase(k);
  jobs_.erase(it);
}

void Scheduler::progress(Session &s, Clock::time_point now, Outbox &out) {
  s.lastProgress = now;
  wire::Progress p;
  p.sessionId = s.id;
  p.done = s.done;
  p.merged = s.merged;
  for (uint64_t id : s.jobIds) {
    auto jit = jobs_.find(id);
    if (jit == jobs_.end())
      continue;
    const Job &job = jit->second;
    bool mine = false;
    for (const Waiter &w : job.waiters)
      mine |= w.session == s.id;
    if (mine)
      (job.conn.empty() ? p.queued : p.running)++;
  }
  std::set<std::string> names;
  for (const auto &[peer, conn] : conns_)
    if (conn.toolchain == s.toolchain)
      names.insert(conn.name);
  p.workers = static_cast<uint32_t>(names.size());
  out.push_back({s.client, wire::Message{0, p}});
}

} // namespace thinfarm

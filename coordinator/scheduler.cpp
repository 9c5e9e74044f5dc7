#include "coordinator/scheduler.h"

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

bool Scheduler::canServe(const std::string &toolchain) const {
  for (const auto &[peer, conn] : conns_)
    if (conn.toolchain == toolchain)
      return true;
  return false;
}

void Scheduler::onRegister(const wire::PeerId &peer, const wire::RegisterWorker &r,
                           uint64_t requestId, Clock::time_point now, Outbox &out) {
  auto [it, fresh] = conns_.try_emplace(peer);
  for (uint64_t id : std::set<uint64_t>(it->second.running))
    requeueOrGiveUp(jobs_.at(id), "its worker registered again", out);
  it->second = Conn{r.name, r.toolchain, std::max(1u, r.slots), {}, now};
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
                         Clock::time_point now, Outbox &out) {
  if (sessions_.count(s.sessionId)) {
    out.push_back({peer, wire::errorReply(requestId, ErrorKind::Failed,
                                          "session " + std::to_string(s.sessionId) +
                                              " exists already")});
    return;
  }
  // A session the action cache answered whole needs no worker.
  if (!s.jobs.empty() && !canServe(s.toolchain)) {
    out.push_back({peer, wire::errorReply(requestId, ErrorKind::Unimplemented,
                                          "no worker runs backend " + s.toolchain)});
    return;
  }
  Session &sess = sessions_[s.sessionId];
  sess.id = s.sessionId;
  sess.client = peer;
  sess.toolchain = s.toolchain;
  sess.config = std::make_shared<const BackendConfig>(std::move(s.config));
  sess.total = static_cast<uint32_t>(s.jobs.size());
  sess.lastSeen = now;
  for (wire::JobSpec &spec : s.jobs) {
    Digest key = jobKey(sess.toolchain, *sess.config, spec);
    if (auto it = inFlight_.find(key); it != inFlight_.end()) {
      jobs_.at(it->second).waiters.push_back({sess.id, spec.task});
      continue;
    }
    Job &job = jobs_[nextJob_];
    job.id = nextJob_++;
    job.key = key;
    job.toolchain = sess.toolchain;
    job.config = sess.config;
    job.waiters.push_back({sess.id, spec.task});
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
  sessions_.erase(it);
  // Jobs nobody waits for any more: pending ones go; running ones finish and
  // their answer is dropped.
  std::vector<uint64_t> orphans;
  for (auto &[id, job] : jobs_) {
    std::erase_if(job.waiters, [&](const Waiter &w) { return w.session == sessionId; });
    if (job.waiters.empty() && job.conn.empty())
      orphans.push_back(id);
  }
  for (uint64_t id : orphans)
    dropJob(id);
}

bool Scheduler::onJobResult(const wire::PeerId &peer, wire::JobResult &&r, Clock::time_point now,
                            Outbox &out) {
  auto cit = conns_.find(peer);
  if (cit == conns_.end() || !cit->second.running.count(r.jobId))
    return false; // a connection we gave up on, or a job we no longer have: its answer is stale
  bool accepted = false;
  Conn &conn = cit->second;
  conn.lastSeen = now;
  auto jit = jobs_.find(r.jobId);
  if (jit != jobs_.end()) {
    Job &job = jit->second;
    if (r.error && r.error->kind != ErrorKind::Failed) {
      requeueOrGiveUp(job, r.error->message + " (on " + conn.name + ")", out);
    } else {
      accepted = true;
      conn.done++;
      if (!r.error) {
        auto &held = held_[conn.name];
        if (held.size() > kHeldLimit)
          held.clear();
        held.insert(job.spec.module.bitcode);
      }
      release(job);
      answer(job, r, out);
      dropJob(job.id);
    }
  }
  dispatch(out);
  return accepted;
}

void Scheduler::dropWorker(const wire::PeerId &peer, const std::string &why, Outbox &out) {
  auto it = conns_.find(peer);
  if (it == conns_.end())
    return;
  std::set<uint64_t> lost = std::move(it->second.running);
  std::string name = it->second.name;
  free_.erase(peer);
  conns_.erase(it);
  for (uint64_t id : lost)
    requeueOrGiveUp(jobs_.at(id), "worker " + name + " " + why, out);
}

void Scheduler::dropClient(const wire::PeerId &peer) {
  std::vector<uint64_t> ids;
  for (const auto &[id, s] : sessions_)
    if (s.client == peer)
      ids.push_back(id);
  for (uint64_t id : ids)
    onEndSession(peer, id);
}

std::vector<wire::WorkerStats> Scheduler::workerStats() const {
  std::map<std::string, wire::WorkerStats> byName;
  for (const auto &[peer, conn] : conns_) {
    wire::WorkerStats &w = byName[conn.name];
    w.name = conn.name;
    w.slots += conn.capacity;
    w.running += static_cast<uint32_t>(conn.running.size());
    w.done += conn.done;
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

void Scheduler::tick(Clock::time_point now, Outbox &out) {
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
    if (s.done < s.total && !canServe(s.toolchain)) {
      out.push_back({s.client, wire::errorReply(0, ErrorKind::Disconnected,
                                                "no worker left that runs backend " + s.toolchain)});
      gone.push_back({s.client, id});
      continue;
    }
    if (now - s.lastProgress >= std::chrono::seconds(1))
      progress(s, now, out);
  }
  for (auto &[peer, id] : gone)
    onEndSession(peer, id);
  dispatch(out);
}

void Scheduler::enqueue(Job &job) {
  job.conn.clear();
  pending_.insert({~job.spec.cost, job.id});
}

void Scheduler::dispatch(Outbox &out) {
  for (auto fit = free_.begin(); fit != free_.end() && !pending_.empty();) {
    const wire::PeerId &peer = *fit;
    Conn &conn = conns_.at(peer);
    if (conn.running.size() >= conn.capacity + prefetch()) {
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
      if (job.toolchain != conn.toolchain)
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
    conn.running.insert(job.id);
    out.push_back({peer, wire::Message{job.id, wire::RunJob{job.id, *job.config, job.spec}}});
    if (conn.running.size() >= conn.capacity + prefetch())
      fit = free_.erase(fit); // else the same connection takes another
  }
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

void Scheduler::requeueOrGiveUp(Job &job, const std::string &why, Outbox &out) {
  release(job);
  if (job.waiters.empty()) { // every session that wanted it has ended
    dropJob(job.id);
    return;
  }
  if (++job.attempts < kAttempts) {
    enqueue(job);
    return;
  }
  wire::JobResult r;
  r.task = job.spec.task;
  r.error = wire::ErrorMsg{ErrorKind::Disconnected,
                           "gave up on " + job.spec.module.identifier + " after " +
                               std::to_string(kAttempts) + " attempts: " + why};
  answer(job, r, out);
  dropJob(job.id);
}

void Scheduler::dropJob(uint64_t id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end())
    return;
  pending_.erase({~it->second.spec.cost, id});
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
  for (const auto &[id, job] : jobs_) {
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

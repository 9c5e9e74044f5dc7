#include "client/client.h"

#include "client/retry.h"

#include <random>
#include <thread>

namespace thinfarm {

using namespace std::chrono_literals;

namespace {
using Clock = std::chrono::steady_clock;
// The coordinator reports progress every second; this much silence means it is gone.
constexpr auto kSilence = 10s;
} // namespace

Status FarmClient::attempt(wire::Socket &sock, const FarmSubmission &sub, std::vector<bool> &done,
                           const TakeResult &take, const ShowProgress &progress,
                           FarmOutcome &outcome) {
  // Results that arrive while a transfer is under way wait here.
  std::vector<wire::Message> queued;
  auto other = [&](wire::Message &&m) { queued.push_back(std::move(m)); };

  std::vector<Digest> digests;
  digests.reserve(sub.blobs.size());
  for (const wire::BlobRef &b : sub.blobs)
    digests.push_back(b.digest);
  TF_TRY(std::vector<Digest> missing, wire::findMissing(sock, digests, other));
  if (!missing.empty()) {
    std::sort(missing.begin(), missing.end());
    std::vector<wire::BlobRef> up;
    for (const wire::BlobRef &b : sub.blobs)
      if (std::binary_search(missing.begin(), missing.end(), b.digest))
        up.push_back(b);
    TF_CHECK(wire::upload(sock, up, other));
  }

  wire::Session session;
  session.sessionId = std::random_device{}() | static_cast<uint64_t>(std::random_device{}()) << 32;
  session.toolchain = sub.toolchain;
  session.output = sub.output;
  session.config = sub.config;
  for (const wire::JobSpec &j : sub.jobs)
    if (!done[j.task])
      session.jobs.push_back(j);
  size_t remaining = session.jobs.size();
  if (remaining == 0)
    return ok();
  uint64_t submitId = sock.newRequestId();
  TF_CHECK(sock.send(wire::Message{submitId, session}));
  struct End {
    wire::Socket &sock;
    uint64_t id;
    ~End() { (void)sock.send(wire::Message{0, wire::EndSession{id}}); }
  } end{sock, session.sessionId};

  auto lastHeard = Clock::now();
  auto lastBeat = Clock::now();
  uint32_t cachedSeen = 0;
  while (remaining > 0) {
    if (queued.empty()) {
      auto r = sock.receive(1s);
      auto now = Clock::now();
      if (now - lastBeat >= 1s) {
        lastBeat = now;
        (void)sock.send(wire::Message{0, wire::Heartbeat{}});
      }
      if (!r) {
        if (now - lastHeard > kSilence)
          return Error{ErrorKind::Disconnected,
                       "the coordinator at " + endpoint_ + " stopped answering"};
        continue;
      }
      lastHeard = now;
      if (!r->message.ok())
        return std::move(r->message).error();
      queued.push_back(std::move(*r->message));
    }
    wire::Message m = std::move(queued.front());
    queued.erase(queued.begin());
    if (auto *e = m.get<wire::ErrorMsg>())
      return Error{e->kind, e->message};
    if (auto *p = m.get<wire::Progress>()) {
      if (p->sessionId == session.sessionId && progress) {
        p->done += cachedSeen; // the scheduler counts only the jobs it ran
        progress(*p);
      }
      continue;
    }
    auto *res = m.get<wire::JobResult>();
    if (!res || res->sessionId != session.sessionId || res->task >= done.size() || done[res->task])
      continue;
    if (res->error) {
      if (res->error->kind == ErrorKind::Failed) {
        outcome.backendFailure = res->error->message;
        return failed(res->error->message);
      }
      // Lost on the farm: this one finishes locally.
      done[res->task] = true;
      outcome.unfinished.push_back(res->task);
      outcome.why = res->error->message;
      --remaining;
      continue;
    }
    FarmResult fr;
    fr.task = res->task;
    fr.diagnostics = std::move(res->diagnostics);
    fr.worker = std::move(res->worker);
    fr.merged = res->merged;
    fr.cached = res->cached;
    cachedSeen += fr.cached;
    if (!res->nativeBytes.empty() || res->native.size == 0) {
      if (Digest::of(res->nativeBytes) != res->native)
        return Error{ErrorKind::Disconnected, "the native object of task " +
                                                  std::to_string(res->task) +
                                                  " does not match its digest"};
      fr.native = std::move(res->nativeBytes);
    } else {
      TF_CHECK(wire::download(
          sock, std::span<const Digest>(&res->native, 1),
          [&](const Digest &, std::string &&bytes) {
            fr.native = std::move(bytes);
            return ok();
          },
          other));
    }
    lastHeard = Clock::now();
    outcome.merged += fr.merged;
    done[fr.task] = true;
    --remaining;
    TF_CHECK(take(std::move(fr)));
  }
  return ok();
}

Result<wire::Socket *> FarmClient::socket() {
  if (!sock_) {
    TF_TRY(wire::Socket s, wire::Socket::connect(ctx_, endpoint_, curve_));
    sock_.emplace(std::move(s));
  }
  return &*sock_;
}

Result<std::optional<wire::LinkMemo>> FarmClient::lookupLink(const Digest &key) {
  TF_TRY(wire::Socket * s, socket());
  TF_TRY(wire::Message m, wire::call(*s, wire::LookupLink{key}));
  auto *memo = m.get<wire::LinkMemo>();
  if (!memo)
    return failed(std::string("protocol error: expected linkMemo, got ") + wire::kindName(m.body));
  if (!memo->found)
    return std::optional<wire::LinkMemo>();
  return std::optional<wire::LinkMemo>(std::move(*memo));
}

Status FarmClient::recordLink(const wire::RecordLink &memo, std::string_view output) {
  TF_TRY(wire::Socket * s, socket());
  TF_TRY(std::vector<Digest> missing, wire::findMissing(*s, std::span<const Digest>(&memo.output, 1)));
  if (!missing.empty()) {
    wire::BlobRef blob{memo.output, output};
    TF_CHECK(wire::upload(*s, std::span<const wire::BlobRef>(&blob, 1)));
  }
  TF_TRY(wire::Message m, wire::call(*s, memo));
  if (!m.get<wire::LinkMemo>())
    return failed(std::string("protocol error: expected linkMemo, got ") + wire::kindName(m.body));
  return ok();
}

Result<std::string> FarmClient::fetch(const Digest &digest) {
  TF_TRY(wire::Socket * s, socket());
  std::string out;
  TF_CHECK(wire::download(*s, std::span<const Digest>(&digest, 1),
                          [&](const Digest &, std::string &&bytes) {
                            out = std::move(bytes);
                            return ok();
                          }));
  return out;
}

Result<wire::StoreStats> FarmClient::stats() {
  return askStats(wire::GetStats{});
}

Result<wire::StoreStats> FarmClient::drain(const std::string &worker, bool drain) {
  return askStats(wire::DrainWorker{worker, drain});
}

Result<wire::StoreStats> FarmClient::askStats(wire::Body &&request) {
  TF_TRY(wire::Socket * s, socket());
  TF_TRY(wire::Message m, wire::call(*s, std::move(request)));
  auto *st = m.get<wire::StoreStats>();
  if (!st)
    return failed(std::string("protocol error: expected storeStats, got ") + wire::kindName(m.body));
  return *st;
}

Result<FarmOutcome> FarmClient::run(const FarmSubmission &sub, const TakeResult &take,
                                    const ShowProgress &progress) {
  FarmOutcome outcome;
  uint32_t tasks = 0;
  for (const wire::JobSpec &j : sub.jobs)
    tasks = std::max(tasks, j.task + 1);
  std::vector<bool> done(tasks, false);
  int overloaded = 0, disconnected = 0;
  for (;;) {
    TF_TRY(wire::Socket sock, wire::Socket::connect(ctx_, endpoint_, curve_));
    Status st = attempt(sock, sub, done, take, progress, outcome);
    if (st.ok())
      return outcome;
    const Error &e = st.error();
    int &count = e.kind == ErrorKind::Overloaded ? overloaded : disconnected;
    Next next = nextStep(e.kind, count++);
    if (next == Next::GiveUp && !outcome.backendFailure.empty())
      return failed(outcome.backendFailure); // the link fails, as it would locally
    if (next == Next::BackOff) {
      std::this_thread::sleep_for(backOffDelay(count));
      continue;
    }
    if (next == Next::Reconnect)
      continue;
    // The farm cannot finish the link (GiveUp on an infrastructure error
    // included: asking again gives the same answer): this machine does.
    for (const wire::JobSpec &j : sub.jobs)
      if (!done[j.task])
        outcome.unfinished.push_back(j.task);
    outcome.why = e.message;
    return outcome;
  }
}

} // namespace thinfarm

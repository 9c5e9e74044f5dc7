#include "client/client.h"

#include "client/retry.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <thread>

namespace thinfarm {

using namespace std::chrono_literals;

namespace {
using Clock = std::chrono::steady_clock;
// How a lost coordinator is noticed (issue #13: within 2 s, the link finished
// locally within 3 s of the loss). A closed connection (the coordinator's
// process gone, its machine rebooted) shows at once as a loss on the socket.
// A silent one (frozen, or the network cut) takes kSilence: the coordinator
// reports each session's progress twice a second.
constexpr auto kSilence = 1500ms;
// A new connection must complete its handshake within kConnectWithin at the
// start of a link (a coordinator that is down, or not the one whose key is
// pinned, costs no more). After a loss the coordinator may be restarting: a
// new connection may take until kGiveUpAfter past the last word heard from
// it (1.25 s after a silence, up to 2.75 s after a closed connection), at
// least kReconnectAtLeast.
constexpr auto kConnectWithin = 3s;
constexpr auto kGiveUpAfter = 2750ms;
constexpr auto kReconnectAtLeast = 500ms;
// Which of `blobs` the coordinator's store lacks, in their order.
Result<std::vector<wire::BlobRef>> lacking(wire::Socket &sock, std::span<const wire::BlobRef> blobs,
                                           const wire::OtherMessage &other,
                                           std::chrono::milliseconds silence) {
  std::vector<Digest> digests;
  digests.reserve(blobs.size());
  for (const wire::BlobRef &b : blobs)
    digests.push_back(b.digest);
  TF_TRY(std::vector<Digest> missing, wire::findMissing(sock, digests, other, silence));
  std::sort(missing.begin(), missing.end());
  std::vector<wire::BlobRef> out;
  for (const wire::BlobRef &b : blobs)
    if (std::binary_search(missing.begin(), missing.end(), b.digest))
      out.push_back(b);
  return out;
}
} // namespace

Status FarmClient::attempt(wire::Socket &sock, const FarmSubmission &sub, std::vector<bool> &done,
                           const TakeResult &take, const ShowProgress &progress,
                           FarmOutcome &outcome) {
  // Results that arrive while a transfer is under way wait here.
  std::vector<wire::Message> queued;
  auto other = [&](wire::Message &&m) { queued.push_back(std::move(m)); };
  const uint64_t since = sock.disconnects();

  TF_TRY(std::vector<wire::BlobRef> up, lacking(sock, sub.blobs, other, wire::kAnswerTimeout));
  if (!up.empty())
    TF_CHECK(wire::upload(sock, up, other));

  wire::Session session;
  session.sessionId = std::random_device{}() | static_cast<uint64_t>(std::random_device{}()) << 32;
  session.toolchain = sub.toolchain;
  session.output = sub.output;
  session.config = sub.config;
  size_t remaining = 0;
  for (const wire::JobSpec &j : sub.jobs)
    remaining += !done[j.task];
  if (remaining == 0)
    return ok();
  TF_CHECK(submit(sock, session, sub.jobs, done));
  struct End {
    wire::Socket &sock;
    uint64_t id;
    ~End() { (void)sock.send(wire::Message{0, wire::EndSession{id}}); }
  } end{sock, session.sessionId};

  auto &lastHeard = lastHeard_;
  lastHeard = Clock::now();
  auto lastBeat = Clock::now();
  uint32_t cachedSeen = 0;
  while (remaining > 0) {
    if (queued.empty()) {
      auto r = sock.receive(250ms);
      auto now = Clock::now();
      if (now - lastBeat >= 1s) {
        lastBeat = now;
        (void)sock.send(wire::Message{0, wire::Heartbeat{}});
      }
      if (!r) {
        if (sock.disconnects() != since)
          return Error{ErrorKind::Disconnected,
                       "the connection to the coordinator at " + endpoint_ + " was lost"};
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

namespace {
// What a job adds to a session's frame, from above: Cap'n Proto spends a
// few words on each struct and pointer beside the text and digests.
size_t encodedBound(const wire::JobSpec &j) {
  size_t n = 256 + j.module.identifier.size();
  for (const wire::ModuleRef &m : j.imports)
    n += 96 + m.identifier.size();
  for (const wire::FileRef &f : j.incbins)
    n += 96 + f.path.size();
  return n;
}
} // namespace

// The unfinished jobs go in parts of at most half a frame each (by the bound
// above), so a link of any size fits the wire. A part that still comes out
// over the limit is an Exceeded error from send(): the link runs locally.
Status FarmClient::submit(wire::Socket &sock, wire::Session &session,
                          const std::vector<wire::JobSpec> &jobs, const std::vector<bool> &done) {
  constexpr size_t kPartBytes = wire::kMaxFrame / 2;
  size_t bytes = 0;
  auto sendPart = [&]() -> Status {
    TF_CHECK(sock.send(wire::Message{sock.newRequestId(), session}));
    session.jobs.clear();
    session.part++;
    bytes = 0;
    return ok();
  };
  for (const wire::JobSpec &j : jobs) {
    if (done[j.task])
      continue;
    size_t size = encodedBound(j);
    if (!session.jobs.empty() && bytes + size > kPartBytes)
      TF_CHECK(sendPart());
    bytes += size;
    session.jobs.push_back(j);
  }
  return session.jobs.empty() ? ok() : sendPart();
}

// The thread that sends ahead owns sock_ until finishAhead() joins it. It
// sends in groups of kAheadGroup blobs, so stopping (a link that goes to lld
// after all) waits for one group at most. A coordinator that goes silent
// (kSilence) or drops the connection meanwhile ends it, and run() starts as
// after a loss: one connection more, within kGiveUpAfter of the last word.
struct FarmClient::Ahead {
  std::atomic<bool> stop{false};
  std::thread thread;
  std::optional<Error> lost;           // set by the thread, read after the join
  Clock::time_point heard = Clock::now();
};

namespace {
constexpr size_t kAheadGroup = 64;
} // namespace

void FarmClient::sendAhead(std::vector<std::string_view> blobs) {
  finishAhead();
  ahead_ = std::make_unique<Ahead>();
  ahead_->thread = std::thread([this, blobs = std::move(blobs), &a = *ahead_] {
    auto loss = [&](const Error &e) {
      if (e.kind == ErrorKind::Disconnected)
        a.lost = e;
    };
    try {
      std::vector<wire::BlobRef> refs;
      for (std::string_view b : blobs)
        refs.push_back({Digest::of(b), b});
      auto s = socket();
      if (!s.ok())
        return;
      if (Status st = wire::awaitConnection(**s, kConnectWithin); !st.ok())
        return loss(st.error());
      auto up = lacking(**s, refs, {}, kSilence);
      if (!up.ok())
        return loss(up.error());
      a.heard = Clock::now();
      for (size_t i = 0; i < up->size() && !a.stop.load(); i += kAheadGroup) {
        size_t n = std::min(kAheadGroup, up->size() - i);
        Status st = wire::upload(**s, std::span<const wire::BlobRef>(up->data() + i, n), {}, kSilence);
        if (!st.ok())
          return loss(st.error());
        a.heard = Clock::now();
      }
    } catch (const std::exception &e) { // (memory): run() sends what is missing
      std::fprintf(stderr, "thinfarm-ld: warning: sending the bitcode ahead stopped: %s\n", e.what());
    }
  });
}

std::optional<Error> FarmClient::finishAhead() {
  if (!ahead_)
    return std::nullopt;
  ahead_->thread.join();
  std::optional<Error> lost = std::move(ahead_->lost);
  if (lost) {
    lastHeard_ = ahead_->heard;
    sock_.reset(); // a new connection for what comes next
  }
  ahead_.reset();
  return lost;
}

FarmClient::FarmClient(wire::Context &ctx, std::string endpoint,
                       std::optional<wire::ClientCurve> curve)
    : ctx_(ctx), endpoint_(std::move(endpoint)), curve_(std::move(curve)) {}

FarmClient::~FarmClient() {
  if (ahead_)
    ahead_->stop = true;
  finishAhead();
}

Result<wire::Socket *> FarmClient::socket() {
  if (!sock_) {
    TF_TRY(wire::Socket s, wire::Socket::connect(ctx_, endpoint_, curve_));
    sock_.emplace(std::move(s));
  }
  return &*sock_;
}

Result<std::optional<wire::LinkMemo>> FarmClient::lookupLink(const Digest &key) {
  finishAhead();
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
  finishAhead();
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
  finishAhead();
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
  finishAhead();
  TF_TRY(wire::Socket * s, socket());
  TF_TRY(wire::Message m, wire::call(*s, std::move(request)));
  auto *st = m.get<wire::StoreStats>();
  if (!st)
    return failed(std::string("protocol error: expected storeStats, got ") + wire::kindName(m.body));
  return *st;
}

Result<FarmOutcome> FarmClient::run(const FarmSubmission &sub, const TakeResult &take,
                                    const ShowProgress &progress) {
  std::optional<Error> aheadLost = finishAhead();
  FarmOutcome outcome;
  uint32_t tasks = 0;
  for (const wire::JobSpec &j : sub.jobs)
    tasks = std::max(tasks, j.task + 1);
  std::vector<bool> done(tasks, false);
  bool lost = aheadLost.has_value(); // the last attempt (or sendAhead) lost its connection
  int overloaded = 0, disconnected = lost ? 1 : 0; // (sendAhead's loss was the first)
  std::string firstLoss = lost ? aheadLost->message : ""; // why, before the reconnect
  for (;;) {
    TF_TRY(wire::Socket sock, wire::Socket::connect(ctx_, endpoint_, curve_));
    const auto within =
        lost ? std::max<std::chrono::milliseconds>(
                   kReconnectAtLeast, std::chrono::duration_cast<std::chrono::milliseconds>(
                                          lastHeard_ + kGiveUpAfter - Clock::now()))
             : std::chrono::milliseconds(kConnectWithin);
    Status st = wire::awaitConnection(sock, within);
    if (st.ok())
      st = attempt(sock, sub, done, take, progress, outcome);
    lost = !st.ok() && st.error().kind == ErrorKind::Disconnected;
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
    if (next == Next::Reconnect) {
      firstLoss = e.message;
      continue;
    }
    // The farm cannot finish the link (GiveUp on an infrastructure error
    // included: asking again gives the same answer): this machine does.
    for (const wire::JobSpec &j : sub.jobs)
      if (!done[j.task])
        outcome.unfinished.push_back(j.task);
    // The loss itself first (the reconnect's failure alone would hide it).
    outcome.why = firstLoss.empty() ? e.message : firstLoss + ", then " + e.message;
    outcome.farmLost = e.kind == ErrorKind::Disconnected;
    return outcome;
  }
}

} // namespace thinfarm

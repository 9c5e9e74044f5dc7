#include "coordinator/coordinator.h"

#include <unordered_map>
#include <cstdio>
#include <thread>

namespace thinfarm {

using namespace std::chrono_literals;

Result<std::unique_ptr<Coordinator>> Coordinator::create(wire::Context &ctx, CoordinatorOptions o) {
  StoreOptions so;
  so.budgetBytes = o.storeBudget;
  TF_TRY(Store store, Store::open(o.storeDir, so));
  TF_TRY(wire::Socket sock, wire::Socket::listen(ctx, o.listen));
  return std::unique_ptr<Coordinator>(
      new Coordinator(ctx, std::move(o), std::move(store), std::move(sock)));
}

Coordinator::Coordinator(wire::Context &ctx, CoordinatorOptions o, Store store, wire::Socket sock)
    : ctx_(ctx), options_(std::move(o)), store_(std::move(store)), sock_(std::move(sock)),
      blobs_(store_), cache_(store_), lastClient_(Clock::now()) {}

Coordinator::~Coordinator() = default;

void Coordinator::flush() {
  // One batch per peer: after a burst, a worker gets its jobs and a client
  // its results in as few frames as fit.
  std::vector<std::pair<wire::PeerId, std::vector<wire::Message>>> byPeer;
  std::unordered_map<wire::PeerId, size_t> index;
  for (auto &[peer, msg] : out_) {
    auto [it, fresh] = index.try_emplace(peer, byPeer.size());
    if (fresh)
      byPeer.push_back({peer, {}});
    byPeer[it->second].second.push_back(std::move(msg));
  }
  out_.clear();
  for (auto &[peer, msgs] : byPeer) {
    Status st = sock_.sendAll(peer, std::move(msgs));
    if (!st.ok() && options_.verbose)
      std::fprintf(stderr, "thinfarm-coordinator: cannot send to a peer: %s\n",
                   st.error().message.c_str());
  }
}

// A native object that came inline with its result goes into the store, as
// an uploaded one would. One that does not match its digest turns the result
// into an error the scheduler retries elsewhere (the worker sent something
// other than what it ran). One the store cannot take (a full disk) still goes
// to the client inline; only the action cache misses out. Returns whether the
// native is in the store.
bool Coordinator::keepInlineNative(wire::JobResult &r) {
  if (r.error || r.nativeBytes.empty()) // failed, no-op, or uploaded on its own
    return true;
  Status st = store_.put(r.native, r.nativeBytes); // checks the digest as it stores
  if (st.ok())
    return true;
  // Only on failure is the content hashed a second time, to tell the cases apart.
  if (Digest::of(r.nativeBytes) != r.native)
    r.error = wire::ErrorMsg{ErrorKind::Disconnected,
                             "the native object from " + r.worker + " does not match its digest"};
  else
    std::fprintf(stderr, "thinfarm-coordinator: warning: not cached: %s\n", st.error().message.c_str());
  return false;
}

void Coordinator::handle(wire::Received &&r, Clock::time_point now) {
  if (!r.message.ok()) {
    // A malformed frame: say so to the sender and go on serving.
    std::fprintf(stderr, "thinfarm-coordinator: warning: %s\n", r.message.error().message.c_str());
    out_.push_back({r.peer, wire::errorReply(0, ErrorKind::Failed, r.message.error().message)});
    return;
  }
  wire::Message &m = *r.message;
  uint64_t id = m.requestId;
  const wire::PeerId &peer = r.peer;
  std::visit(
      [&](auto &body) { // m.body is ours (r came as an rvalue) to move from
        using T = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<T, wire::RegisterWorker>) {
          if (options_.verbose)
            std::fprintf(stderr, "thinfarm-coordinator: worker %s registered a slot (%s)\n",
                         body.name.c_str(), body.toolchain.c_str());
          scheduler_.onRegister(peer, body, id, now, out_);
        } else if constexpr (std::is_same_v<T, wire::Heartbeat>) {
          scheduler_.onHeartbeat(peer, now, out_);
        } else if constexpr (std::is_same_v<T, wire::JobResult>) {
          bool stored = keepInlineNative(body);
          auto cacheable = stored ? CacheService::cacheable(body) : std::nullopt;
          if (scheduler_.onJobResult(peer, std::move(body), now, out_) && cacheable)
            cache_.record(*cacheable);
        } else {
          lastClient_ = now;
          if constexpr (std::is_same_v<T, wire::Session>) {
            cache_.answerHits(peer, body, out_);
            scheduler_.onSubmit(peer, std::move(body), id, now, out_);
          } else if constexpr (std::is_same_v<T, wire::LookupLink>)
            cache_.onLookupLink(peer, id, body, out_);
          else if constexpr (std::is_same_v<T, wire::RecordLink>)
            cache_.onRecordLink(peer, id, body, out_);
          else if constexpr (std::is_same_v<T, wire::GetStats>)
            cache_.onGetStats(peer, id, out_);
          else if constexpr (std::is_same_v<T, wire::EndSession>)
            scheduler_.onEndSession(peer, body.sessionId);
          else if constexpr (std::is_same_v<T, wire::FindMissing>)
            blobs_.onFindMissing(peer, id, body, out_);
          else if constexpr (std::is_same_v<T, wire::PutChunk>)
            blobs_.onPutChunk(peer, id, std::move(body), out_);
          else if constexpr (std::is_same_v<T, wire::GetChunk>)
            blobs_.onGetChunk(peer, id, body, out_);
          else
            out_.push_back({peer, wire::errorReply(id, ErrorKind::Failed,
                                                   std::string("the coordinator does not take ") +
                                                       wire::kindName(m.body) + " messages")});
        }
      },
      m.body);
}

Status Coordinator::run(const std::atomic<bool> &stop, const std::function<void()> &ready) {
  bool announced = false;
  auto announce = [&] {
    if (!announced && (!options_.readyWithWorker || scheduler_.workers() > 0)) {
      announced = true;
      if (ready)
        ready();
    }
  };
  announce();
  auto lastTick = Clock::now();
  while (!stop.load()) {
    auto r = sock_.receive(100ms);
    auto now = Clock::now();
    if (r) {
      handle(std::move(*r), now);
      // Drain what is queued before acting on timers.
      for (int i = 0; i < 256; ++i) {
        auto more = sock_.receive(std::chrono::milliseconds(0));
        if (!more)
          break;
        handle(std::move(*more), now);
      }
      flush();
      announce();
    }
    if (now - lastTick >= 200ms) {
      lastTick = now;
      scheduler_.tick(now, out_);
      blobs_.forgetIdle(now);
      (void)store_.flushStats();
      flush();
      if (options_.idleExit.count() > 0 && scheduler_.idle() && now - lastClient_ > options_.idleExit)
        break;
    }
  }
  return ok();
}

} // namespace thinfarm

#include "coordinator/coordinator.h"

#include <cstdio>
#include <set>
#include <thread>
#include <unordered_map>

namespace thinfarm {

using namespace std::chrono_literals;

Result<std::unique_ptr<Coordinator>> Coordinator::create(wire::Context &ctx, CoordinatorOptions o) {
  StoreOptions so;
  so.budgetBytes = o.storeBudget;
  TF_TRY(Store store, Store::open(o.storeDir, so));
  std::unique_ptr<wire::Authenticator> auth;
  if (o.keys) {
    if (o.allowList.empty())
      return failed("a coordinator with keys needs its allow-list (--allow)");
    TF_TRY(auth, wire::Authenticator::start(ctx, o.allowList)); // before the socket listens
  }
  TF_TRY(wire::Socket sock, wire::Socket::listen(ctx, o.listen, o.keys, o.transport));
  if (auth)
    auth->setLimiter(sock.limiter());
  return std::unique_ptr<Coordinator>(
      new Coordinator(std::move(o), std::move(store), std::move(sock), std::move(auth)));
}

Coordinator::Coordinator(CoordinatorOptions o, Store store, wire::Socket sock,
                         std::unique_ptr<wire::Authenticator> auth)
    : options_(std::move(o)), store_(std::move(store)), auth_(std::move(auth)),
      sock_(std::move(sock)), scheduler_(options_.scheduling), blobs_(store_, options_.blobs),
      cache_(store_), lastClient_(Clock::now()) {}

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

namespace {

// Who may send what (wire/keys.h): workers register and return results;
// clients submit sessions and use the link memo; admins read statistics;
// both of the first beat, and move blobs (uploads; inputs and natives).
constexpr unsigned bit(wire::Role r) { return 1u << static_cast<unsigned>(r); }

unsigned rolesFor(const wire::Body &body) {
  using wire::Role;
  return std::visit(
      [](const auto &b) -> unsigned {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, wire::RegisterWorker> || std::is_same_v<T, wire::JobResult>)
          return bit(Role::Worker);
        else if constexpr (std::is_same_v<T, wire::Session> || std::is_same_v<T, wire::EndSession> ||
                           std::is_same_v<T, wire::LookupLink> ||
                           std::is_same_v<T, wire::RecordLink>)
          return bit(Role::Client);
        else if constexpr (std::is_same_v<T, wire::GetStats> || std::is_same_v<T, wire::DrainWorker>)
          return bit(Role::Admin);
        else if constexpr (std::is_same_v<T, wire::Heartbeat> || std::is_same_v<T, wire::FindMissing> ||
                           std::is_same_v<T, wire::PutChunk> || std::is_same_v<T, wire::GetChunk>)
          return bit(Role::Client) | bit(Role::Worker);
        else
          return 0; // answered as a message the coordinator does not take
      },
      body);
}

} // namespace

// With CURVE, whether the sender's key is (still) listed with a role that may
// send this message; if not, it is told why and the message goes no further.
// name gets the member's name. Without a User-Id the sender is this process's
// own worker pool (inproc:// has no handshake).
bool Coordinator::admit(const wire::Received &r, std::string &name) {
  if (!auth_ || r.user.empty())
    return true;
  const wire::Body &body = r.message->body;
  std::optional<wire::Member> m = auth_->member(r.user);
  std::string why;
  if (!m) {
    why = "the key " + r.user + " is no longer on the allow-list";
  } else if (unsigned roles = rolesFor(body); roles != 0 && !(roles & bit(m->role))) {
    why = std::string(wire::roleName(m->role)) + " " + m->name + " may not send " +
          wire::kindName(body) + " messages";
  } else {
    name = m->name;
    return true;
  }
  std::fprintf(stderr, "thinfarm-coordinator: refused: %s\n", why.c_str());
  out_.push_back({r.peer, wire::errorReply(r.message->requestId, ErrorKind::Denied,
                                           "the coordinator refused this: " + why)});
  return false;
}

// A reload that drops a member drops what it holds: a worker's jobs run
// elsewhere, a client's sessions end.
void Coordinator::applyReload() {
  auto n = auth_->reload();
  if (!n.ok()) {
    std::fprintf(stderr, "thinfarm-coordinator: error: the allow-list was not reloaded: %s\n",
                 n.error().message.c_str());
    return;
  }
  std::fprintf(stderr, "thinfarm-coordinator: allow-list reloaded: %zu keys\n", *n);
  for (auto it = peerKeys_.begin(); it != peerKeys_.end();) {
    if (auth_->member(it->second)) {
      ++it;
      continue;
    }
    scheduler_.dropWorker(it->first, "lost its key", out_);
    scheduler_.dropClient(it->first);
    it = peerKeys_.erase(it);
  }
  act(scheduler_.takeEvents());
  flush();
}

// What the scheduler's verdicts ask of the store and the log. Quarantines
// first: a record a wrong worker wrote goes before the right one is written.
void Coordinator::act(Scheduler::Events &&e) {
  for (const std::string &line : e.log)
    std::fprintf(stderr, "thinfarm-coordinator: %s\n", line.c_str());
  for (const std::string &worker : e.quarantined)
    if (auto n = cache_.dropResultsOf(worker); n.ok())
      std::fprintf(stderr, "thinfarm-coordinator: dropped %zu cached results of worker %s\n", *n,
                   worker.c_str());
    else
      std::fprintf(stderr, "thinfarm-coordinator: error: cannot drop the results of worker %s: %s\n",
                   worker.c_str(), n.error().message.c_str());
  for (const Digest &key : e.uncache)
    cache_.forget(key);
  for (const wire::JobResult &r : e.cache)
    if (auto kept = CacheService::cacheable(r))
      cache_.record(*kept);
}

void Coordinator::handle(wire::Received &&r, Clock::time_point now) {
  if (!r.message.ok()) {
    // A malformed or oversized message: say so to the sender and go on serving.
    std::fprintf(stderr, "thinfarm-coordinator: warning: %s\n", r.message.error().message.c_str());
    out_.push_back({r.peer, wire::errorReply(0, r.message.error().kind, r.message.error().message)});
    return;
  }
  std::string name; // the sender's name on the allow-list
  if (!admit(r, name))
    return;
  if (!name.empty() && (r.message->get<wire::RegisterWorker>() || r.message->get<wire::Session>()))
    peerKeys_[r.peer] = r.user;
  wire::Message &m = *r.message;
  uint64_t id = m.requestId;
  const wire::PeerId &peer = r.peer;
  std::visit(
      [&](auto &body) { // m.body is ours (r came as an rvalue) to move from
        using T = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<T, wire::RegisterWorker>) {
          if (!name.empty())
            body.name = name; // what the logs and statistics call it: the allow-list's name
          if (options_.verbose)
            std::fprintf(stderr, "thinfarm-coordinator: worker %s registered a slot (%s)\n",
                         body.name.c_str(), body.toolchain.c_str());
          scheduler_.onRegister(peer, body, id, now, out_, /*trusted=*/auth_ && r.user.empty());
        } else if constexpr (std::is_same_v<T, wire::Heartbeat>) {
          scheduler_.onHeartbeat(peer, now, out_);
        } else if constexpr (std::is_same_v<T, wire::JobResult>) {
          if (!name.empty())
            body.worker = name;
          bool stored = keepInlineNative(body);
          scheduler_.onJobResult(peer, std::move(body), now, out_, stored);
          act(scheduler_.takeEvents());
        } else {
          lastClient_ = now;
          if constexpr (std::is_same_v<T, wire::Session>) {
            cache_.answerHits(peer, body, out_);
            scheduler_.onSubmit(peer, std::move(body), id, now, out_, name);
          } else if constexpr (std::is_same_v<T, wire::LookupLink>)
            cache_.onLookupLink(peer, id, body, name, out_);
          else if constexpr (std::is_same_v<T, wire::RecordLink>)
            cache_.onRecordLink(peer, id, body, name, out_);
          else if constexpr (std::is_same_v<T, wire::GetStats>)
            cache_.onGetStats(peer, id, scheduler_.workerStats(), out_);
          else if constexpr (std::is_same_v<T, wire::DrainWorker>) {
            if (!scheduler_.drain(body.name, body.drain, out_)) {
              out_.push_back({peer, wire::errorReply(id, ErrorKind::Failed,
                                                     "no worker named " + body.name + " is registered")});
            } else {
              std::fprintf(stderr, "thinfarm-coordinator: %s %s worker %s\n", name.empty() ? "an admin" : name.c_str(),
                           body.drain ? "drained" : "resumed", body.name.c_str());
              cache_.onGetStats(peer, id, scheduler_.workerStats(), out_);
            }
          }
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

// One message; an exception while handling it (memory for what a peer
// declared, a library's throw) fails that message for its sender, logged,
// and the loop serves on.
void Coordinator::guardedHandle(wire::Received &&r, Clock::time_point now) {
  wire::PeerId peer = r.peer;
  uint64_t id = r.message.ok() ? r.message->requestId : 0;
  try {
    handle(std::move(r), now);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "thinfarm-coordinator: error: a message could not be handled: %s\n",
                 e.what());
    out_.push_back({peer, wire::errorReply(id, ErrorKind::Failed,
                                           std::string("the coordinator could not handle this: ") +
                                               e.what())});
  }
}

Status Coordinator::run(const std::atomic<bool> &stop, const std::function<void()> &ready) {
  if (ready)
    ready();
  auto lastTick = Clock::now();
  while (!stop.load()) {
    if (auth_ && reload_.exchange(false))
      applyReload();
    auto r = sock_.receive(100ms);
    auto now = Clock::now();
    if (r) {
      guardedHandle(std::move(*r), now);
      // Drain what is queued before acting on timers.
      for (int i = 0; i < 256; ++i) {
        auto more = sock_.receive(std::chrono::milliseconds(0));
        if (!more)
          break;
        guardedHandle(std::move(*more), now);
      }
      flush();
    }
    if (now - lastTick >= 200ms) {
      lastTick = now;
      // Connections closed: their uploads end with them; a worker's jobs run
      // elsewhere at once (a killed worker, not 2 s of silence later: the
      // tick below dispatches them); a client's sessions end (it resubmits on
      // a new connection).
      for (const wire::PeerId &gone : sock_.takeGone()) {
        blobs_.forgetPeer(gone);
        scheduler_.dropWorker(gone, "closed its connection", out_);
        scheduler_.dropClient(gone);
      }
      scheduler_.tick(now, out_);
      act(scheduler_.takeEvents());
      if (peerKeys_.size() > 64 + 2 * (scheduler_.workers() + scheduler_.sessions())) {
        std::set<wire::PeerId> live = scheduler_.peers(); // forget the peers that left
        std::erase_if(peerKeys_, [&](const auto &e) { return !live.count(e.first); });
      }
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

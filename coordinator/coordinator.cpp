#include "coordinator/coordinator.h"

#include <cstdio>
#include <iterator>
#include <poll.h>
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
      sock_(std::move(sock)), scheduler_(options_.scheduling), cache_(store_),
      lastClient_(Clock::now()), lanes_(std::max<size_t>(1, options_.storeLanes)) {
  blobs_.reserve(lanes_.lanes());
  for (size_t i = 0; i < lanes_.lanes(); ++i)
    blobs_.emplace_back(store_, options_.blobs);
}

Coordinator::~Coordinator() = default;

void Coordinator::queue(Outbox &&messages) {
  out_.insert(out_.end(), std::make_move_iterator(messages.begin()),
              std::make_move_iterator(messages.end()));
}

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
// elsewhere, a client's sessions end. The list is a file: read on lane 0.
void Coordinator::applyReload() {
  lanes_.post(0, [this]() -> StoreLanes::Done {
    return [this, n = auth_->reload()] {
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
        forgetPeer(it->first, "lost its key");
        it = peerKeys_.erase(it);
      }
    };
  });
}

// What the scheduler's verdicts ask of the store and the log, and what it
// produced to send. The store's part runs on lane 0, in order: quarantines
// first, so a record a wrong worker wrote goes before the right one is
// written. The results among `produced` go out once it is done: a client
// that has a result finds it cached in its next session, whatever lane that
// session's lookups run on.
void Coordinator::act(Scheduler::Events &&e, Outbox &&produced) {
  for (const std::string &line : e.log)
    std::fprintf(stderr, "thinfarm-coordinator: %s\n", line.c_str());
  Outbox held;
  for (auto &m : produced)
    if (!e.cache.empty() && m.second.get<wire::JobResult>())
      held.push_back(std::move(m));
    else
      out_.push_back(std::move(m));
  if (e.quarantined.empty() && e.uncache.empty() && e.cache.empty())
    return;
  lanes_.post(0, [this, quarantined = std::move(e.quarantined), uncache = std::move(e.uncache),
                  cache = std::move(e.cache), held = std::move(held)]() mutable -> StoreLanes::Done {
    for (const std::string &worker : quarantined)
      if (auto n = cache_.dropResultsOf(worker); n.ok())
        std::fprintf(stderr, "thinfarm-coordinator: dropped %zu cached results of worker %s\n", *n,
                     worker.c_str());
      else
        std::fprintf(stderr,
                     "thinfarm-coordinator: error: cannot drop the results of worker %s: %s\n",
                     worker.c_str(), n.error().message.c_str());
    for (const Digest &key : uncache)
      cache_.forget(key);
    for (const wire::JobResult &r : cache)
      if (auto kept = CacheService::cacheable(r))
        cache_.record(*kept);
    if (held.empty())
      return {};
    return [this, held = std::move(held)]() mutable { queue(std::move(held)); };
  });
}

void Coordinator::couldNotHandle(const wire::PeerId &peer, uint64_t id, const std::string &why) {
  std::fprintf(stderr, "thinfarm-coordinator: error: a message could not be handled: %s\n",
               why.c_str());
  out_.push_back({peer, wire::errorReply(id, ErrorKind::Failed,
                                         "the coordinator could not handle this: " + why)});
}

StoreLanes::Done Coordinator::guarded(const wire::PeerId &peer, uint64_t id,
                                      StoreLanes::Done done) {
  if (!done)
    return {};
  return [this, peer, id, done = std::move(done)] {
    try {
      done();
    } catch (const std::exception &e) {
      couldNotHandle(peer, id, e.what());
    }
  };
}


void Coordinator::onStore(const wire::PeerId &peer, uint64_t id, StoreLanes::Work work,
                          uint64_t bytes) {
  lanes_.submit(
      peer,
      [this, peer, id, work = std::move(work)]() -> StoreLanes::Done {
        try {
          return guarded(peer, id, work());
        } catch (const std::exception &e) { // on the lane: the loop reports it
          return [this, peer, id, why = std::string(e.what())] { couldNotHandle(peer, id, why); };
        }
      },
      bytes);
}

bool Coordinator::refusedBusy(const wire::PeerId &peer, uint64_t id) {
  if (!lanes_.busy(peer))
    return false;
  out_.push_back({peer, wire::errorReply(id, ErrorKind::Overloaded,
                                         "the coordinator holds " +
                                             std::to_string(StoreLanes::kMaxPerPeer) +
                                             " of this connection's requests for its store already")});
  return true;
}

void Coordinator::storeRequest(const wire::PeerId &peer, uint64_t id,
                               std::function<void(Outbox &)> work, uint64_t bytes) {
  if (refusedBusy(peer, id))
    return;
  onStore(
      peer, id,
      [this, work = std::move(work)]() -> StoreLanes::Done {
        Outbox replies;
        work(replies);
        if (replies.empty())
          return {};
        return [this, replies = std::move(replies)]() mutable { queue(std::move(replies)); };
      },
      bytes);
}

// Its uploads end (on its lane, after its chunks queued there); then a
// worker's jobs run elsewhere and a client's sessions end (it resubmits on
// a new connection).
void Coordinator::forgetPeer(const wire::PeerId &peer, const std::string &why) {
  BlobService &blobs = blobs_[lanes_.laneOf(peer)];
  onStore(peer, 0, [this, &blobs, peer, why]() -> StoreLanes::Done {
    blobs.forgetPeer(peer);
    return [this, peer, why] {
      Outbox produced;
      scheduler_.dropWorker(peer, why, produced);
      scheduler_.dropClient(peer);
      act(scheduler_.takeEvents(), std::move(produced));
    };
  });
}

// In line when the peer has no store work queued (most messages: no
// std::function is made; guardedHandle catches what it throws), else as a
// continuation behind that work.
template <class F> void Coordinator::then(const wire::PeerId &peer, uint64_t id, F &&done) {
  if (!lanes_.holds(peer))
    return done();
  lanes_.after(peer, guarded(peer, id, std::forward<F>(done)));
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
  const uint64_t id = m.requestId;
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
          bool trusted = auth_ && r.user.empty();
          then(peer, id, [this, peer, id, trusted, body = std::move(body)] {
            scheduler_.onRegister(peer, body, id, Clock::now(), out_, trusted);
          });
        } else if constexpr (std::is_same_v<T, wire::Heartbeat>) {
          then(peer, id, [this, peer] { scheduler_.onHeartbeat(peer, Clock::now(), out_); });
        } else if constexpr (std::is_same_v<T, wire::JobResult>) {
          if (!name.empty())
            body.worker = name;
          auto deliver = [this, peer](wire::JobResult &result, bool stored) {
            Outbox produced;
            scheduler_.onJobResult(peer, std::move(result), Clock::now(), produced, stored);
            act(scheduler_.takeEvents(), std::move(produced));
          };
          if (body.error || body.nativeBytes.empty()) { // nothing to store
            then(peer, id, [deliver, result = std::move(body)]() mutable { deliver(result, true); });
          } else {
            uint64_t bytes = body.nativeBytes.size();
            onStore(
                peer, id,
                [this, deliver, result = std::move(body)]() mutable -> StoreLanes::Done {
                  bool stored = keepInlineNative(result);
                  return [deliver, stored, result = std::move(result)]() mutable {
                    deliver(result, stored);
                  };
                },
                bytes);
          }
        } else {
          lastClient_ = now;
          if constexpr (std::is_same_v<T, wire::Session>) {
            auto submit = [this, peer, id, name](wire::Session &s) {
              scheduler_.onSubmit(peer, std::move(s), id, Clock::now(), out_, name);
            };
            if (!CacheService::mayHit(body)) {
              then(peer, id, [submit, s = std::move(body)]() mutable { submit(s); });
            } else if (!refusedBusy(peer, id)) {
              // Its cached jobs are answered from the store; the rest go on.
              onStore(peer, id, [this, peer, submit, s = std::move(body)]() mutable -> StoreLanes::Done {
                Outbox hits;
                cache_.answerHits(peer, s, hits);
                return [this, submit, hits = std::move(hits), s = std::move(s)]() mutable {
                  queue(std::move(hits));
                  submit(s);
                };
              });
            }
          } else if constexpr (std::is_same_v<T, wire::LookupLink>) {
            storeRequest(peer, id, [this, peer, id, name, body](Outbox &o) {
              cache_.onLookupLink(peer, id, body, name, o);
            });
          } else if constexpr (std::is_same_v<T, wire::RecordLink>) {
            storeRequest(peer, id, [this, peer, id, name, body](Outbox &o) {
              cache_.onRecordLink(peer, id, body, name, o);
            });
          } else if constexpr (std::is_same_v<T, wire::GetStats>) {
            then(peer, id, [this, peer, id] {
              cache_.onGetStats(peer, id, scheduler_.workerStats(), out_);
            });
          } else if constexpr (std::is_same_v<T, wire::DrainWorker>) {
            then(peer, id, [this, peer, id, name, body] {
              if (!scheduler_.drain(body.name, body.drain, out_)) {
                out_.push_back({peer, wire::errorReply(id, ErrorKind::Failed,
                                                       "no worker named " + body.name +
                                                           " is registered")});
                return;
              }
              std::fprintf(stderr, "thinfarm-coordinator: %s %s worker %s\n",
                           name.empty() ? "an admin" : name.c_str(),
                           body.drain ? "drained" : "resumed", body.name.c_str());
              cache_.onGetStats(peer, id, scheduler_.workerStats(), out_);
            });
          } else if constexpr (std::is_same_v<T, wire::EndSession>) {
            then(peer, id, [this, peer, session = body.sessionId] {
              scheduler_.onEndSession(peer, session);
            });
          } else if constexpr (std::is_same_v<T, wire::FindMissing>) {
            BlobService &blobs = blobs_[lanes_.laneOf(peer)];
            storeRequest(peer, id, [&blobs, peer, id, body = std::move(body)](Outbox &o) {
              blobs.onFindMissing(peer, id, body, o);
            });
          } else if constexpr (std::is_same_v<T, wire::PutChunk>) {
            BlobService &blobs = blobs_[lanes_.laneOf(peer)];
            uint64_t bytes = body.bytes.size();
            storeRequest(
                peer, id,
                [&blobs, peer, id, body = std::move(body)](Outbox &o) mutable {
                  blobs.onPutChunk(peer, id, std::move(body), o);
                },
                bytes);
          } else if constexpr (std::is_same_v<T, wire::GetChunk>) {
            BlobService &blobs = blobs_[lanes_.laneOf(peer)];
            storeRequest(
                peer, id, [&blobs, peer, id, body](Outbox &o) { blobs.onGetChunk(peer, id, body, o); },
                wire::kChunk);
          } else {
            out_.push_back({peer, wire::errorReply(id, ErrorKind::Failed,
                                                   std::string("the coordinator does not take ") +
                                                       wire::kindName(m.body) + " messages")});
          }
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
    couldNotHandle(peer, id, e.what());
  }
}

// Each turn: wait for a message or for store work handed back (not for
// messages while the lanes are full: back-pressure), run what came back,
// read a burst of messages, send what the turn produced; a few times a
// second, timers.
Status Coordinator::run(const std::atomic<bool> &stop, const std::function<void()> &ready) {
  if (ready)
    ready();
  auto lastTick = Clock::now();
  while (!stop.load()) {
    if (auth_ && reload_.exchange(false))
      applyReload();
    bool reading = !lanes_.full();
    bool messages = reading && sock_.buffered();
    if (!messages && reading) {
      messages = wire::poll(sock_, lanes_.fd(), 100ms).first;
    } else if (!messages) {
      pollfd p{lanes_.fd(), POLLIN, 0};
      (void)::poll(&p, 1, 100);
    }
    auto now = Clock::now();
    lanes_.runDone();
    for (int i = 0; messages && i < 256 && !lanes_.full(); ++i) {
      auto r = sock_.receive(std::chrono::milliseconds(0));
      if (!r)
        break;
      guardedHandle(std::move(*r), now);
    }
    flush();
    if (now - lastTick >= 200ms) {
      lastTick = now;
      const bool quiet = lanes_.empty(); // before this tick's own store work
      // Connections closed: their uploads end with them; a worker's jobs run
      // elsewhere at once (a killed worker, not 2 s of silence later); a
      // client's sessions end (it resubmits on a new connection).
      for (const wire::PeerId &gone : sock_.takeGone())
        forgetPeer(gone, "closed its connection");
      Outbox produced;
      scheduler_.tick(now, produced);
      act(scheduler_.takeEvents(), std::move(produced));
      if (peerKeys_.size() > 64 + 2 * (scheduler_.workers() + scheduler_.sessions())) {
        std::set<wire::PeerId> live = scheduler_.peers(); // forget the peers that left
        std::erase_if(peerKeys_, [&](const auto &e) { return !live.count(e.first); });
      }
      for (size_t lane = 0; lane < lanes_.lanes(); ++lane)
        lanes_.post(lane, [&blobs = blobs_[lane], now]() -> StoreLanes::Done {
          blobs.forgetIdle(now);
          return {};
        });
      lanes_.post(0, [this]() -> StoreLanes::Done {
        (void)store_.flushStats(); // only when they changed
        return {};
      });
      flush();
      if (options_.idleExit.count() > 0 && scheduler_.idle() && quiet &&
          now - lastClient_ > options_.idleExit)
        break;
    }
  }
  // What the lanes hold is finished (an upload's last chunk, a memo record,
  // the cache's writes) and answered before the loop ends.
  lanes_.drain();
  flush();
  return ok();
}

} // namespace thinfarm

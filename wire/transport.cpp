#include "wire/transport.h"

#include <zmq.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>

namespace thinfarm::wire {

namespace {

constexpr int kHighWaterMark = 4096; // messages queued per peer before Overloaded
constexpr int kSendTimeoutMs = 2000;

Error zmqError(const std::string &what) {
  return failed(what + ": " + zmq_strerror(zmq_errno()));
}

void setInt(void *s, int option, int value) {
  zmq_setsockopt(s, option, &value, sizeof value);
}

void configure(void *s, const TransportLimits &limits) {
  setInt(s, ZMQ_SNDHWM, kHighWaterMark);
  setInt(s, ZMQ_RCVHWM, kHighWaterMark);
  setInt(s, ZMQ_SNDTIMEO, kSendTimeoutMs);
  setInt(s, ZMQ_LINGER, 1000);
  int64_t maxSize = static_cast<int64_t>(limits.maxMessageBytes);
  zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxSize, sizeof maxSize);
  // A connection that has not completed its handshake by then is closed; one
  // whose peer stops answering PINGs for five intervals is dropped (and the
  // peer is told to do the same: TTL).
  auto ms = [](std::chrono::milliseconds d) {
    return static_cast<int>(std::clamp<int64_t>(d.count(), 0, 6553500));
  };
  setInt(s, ZMQ_HANDSHAKE_IVL, ms(limits.handshake));
  if (limits.heartbeat.count() > 0) {
    setInt(s, ZMQ_HEARTBEAT_IVL, ms(limits.heartbeat));
    setInt(s, ZMQ_HEARTBEAT_TIMEOUT, ms(limits.heartbeat * 5));
    setInt(s, ZMQ_HEARTBEAT_TTL, ms(limits.heartbeat * 5));
  }
  // Reconnect quickly: a restarted coordinator is found again within a second.
  setInt(s, ZMQ_RECONNECT_IVL, 100);
  setInt(s, ZMQ_RECONNECT_IVL_MAX, 1000);
}

// A monitor's events reach the returned PAIR socket. libzmq's I/O thread
// sends each event with a blocking send: were the reader's queue bounded, an
// idle socket's unread events would one day stop that thread (and every
// connection it serves), so the reader's queue is unbounded (RCVHWM 0, which
// makes the inproc pipe's limit none; an event is a few dozen bytes). The
// reader is closed only after the monitor is stopped (Socket::release): a
// send to a PAIR with no peer waits forever.
Result<void *> watch(Context &ctx, void *s, int events) {
  char monitor[64];
  std::snprintf(monitor, sizeof monitor, "inproc://thinfarm-monitor-%llu",
                static_cast<unsigned long long>(ctx.nextMonitor()));
  if (zmq_socket_monitor(s, monitor, events) != 0)
    return zmqError("cannot watch the socket");
  void *pair = zmq_socket(ctx.raw(), ZMQ_PAIR);
  if (!pair)
    return zmqError("cannot watch the socket");
  setInt(pair, ZMQ_RCVHWM, 0);
  if (zmq_connect(pair, monitor) != 0) {
    zmq_close(pair);
    return zmqError("cannot watch the socket");
  }
  return pair;
}

} // namespace

std::string ConnectionLimiter::admit(const std::string &key) {
  std::lock_guard lock(mutex_);
  if (open_.size() > maxTotal_)
    return "the coordinator has " + std::to_string(open_.size()) +
           " connections open; its cap is --max-connections " + std::to_string(maxTotal_);
  size_t &n = perKey_[key];
  if (n >= maxPerKey_)
    return "this key has " + std::to_string(n) +
           " connections open; the cap is --max-connections-per-key " + std::to_string(maxPerKey_);
  ++n;
  admitted_.push_back(key);
  if (admitted_.size() > maxTotal_ + 1) { // handshakes that never completed
    if (size_t &k = perKey_[admitted_.front()]; k > 0)
      --k;
    admitted_.pop_front();
  }
  return "";
}

size_t ConnectionLimiter::open() const {
  std::lock_guard lock(mutex_);
  return open_.size();
}

bool ConnectionLimiter::opened(int fd) {
  std::lock_guard lock(mutex_);
  open_.insert(fd);
  return open_.size() <= maxTotal_;
}

void ConnectionLimiter::closed(int fd) {
  std::lock_guard lock(mutex_);
  open_.erase(fd);
  auto release = [&](const std::string &key) {
    if (auto k = perKey_.find(key); k != perKey_.end() && --k->second == 0)
      perKey_.erase(k);
  };
  if (auto it = keyOf_.find(fd); it != keyOf_.end()) {
    release(it->second);
    keyOf_.erase(it);
  } else if (!admitted_.empty()) {
    // A connection that never sent a message: most likely the oldest one
    // admitted and silent since (the events do not say which key it had).
    release(admitted_.front());
    admitted_.pop_front();
  }
}

bool ConnectionLimiter::attribute(int fd, const std::string &key) {
  std::lock_guard lock(mutex_);
  auto [it, fresh] = keyOf_.try_emplace(fd, key);
  if (!fresh && it->second == key)
    return true;
  if (!fresh) { // the handshake order guessed wrong: move the count
    if (auto k = perKey_.find(it->second); k != perKey_.end() && k->second > 0)
      --k->second;
    it->second = key;
  } else if (auto a = std::find(admitted_.begin(), admitted_.end(), key); a != admitted_.end()) {
    // The first message of a connection admitted (and counted) at its handshake.
    admitted_.erase(a);
    return perKey_[key] <= maxPerKey_;
  }
  return ++perKey_[key] <= maxPerKey_;
}

// Every connecting socket has a monitor (a second socket): a process with
// hundreds of clients (thinfarm-loadgen) or slots would pass libzmq's default
// of 1023 sockets.
Context::Context() : ctx_(zmq_ctx_new()) { zmq_ctx_set(ctx_, ZMQ_MAX_SOCKETS, 8192); }
Context::~Context() {
  zmq_ctx_term(ctx_);
}

Status checkEndpoint(const std::string &e) {
  auto rest = [&](std::string_view scheme) -> std::optional<std::string_view> {
    if (e.rfind(scheme, 0) == 0)
      return std::string_view(e).substr(scheme.size());
    return std::nullopt;
  };
  if (auto r = rest("tcp://")) {
    size_t colon = r->rfind(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == r->size())
      return failed("bad address " + e + ": expected tcp://HOST:PORT");
    for (char c : r->substr(colon + 1))
      if ((c < '0' || c > '9') && !(c == '*' && r->size() - colon == 2))
        return failed("bad address " + e + ": the port is not a number");
    return ok();
  }
  if (auto r = rest("ipc://"); r && !r->empty())
    return ok();
  if (auto r = rest("inproc://"); r && !r->empty())
    return ok();
  return failed("bad address " + e + ": expected tcp://HOST:PORT, ipc://PATH or inproc://NAME");
}

Result<Socket> Socket::listen(Context &ctx, const std::vector<std::string> &endpoints,
                              const std::optional<KeyPair> &keys, const TransportLimits &limits) {
  void *s = zmq_socket(ctx.raw(), ZMQ_ROUTER);
  if (!s)
    return zmqError("cannot create a socket");
  configure(s, limits);
  setInt(s, ZMQ_ROUTER_MANDATORY, 1);
  // A long accept queue (the kernel caps it at net.core.somaxconn): under a
  // flood of connections, an honest one waits in it instead of having its
  // SYN dropped and retried seconds later; over the cap, connections are
  // accepted and shut at once, which is what keeps the queue moving.
  setInt(s, ZMQ_BACKLOG, 4096);
  Socket sock(s, true, endpoints.empty() ? std::string() : endpoints.front());
  sock.limiter_ =
      std::make_shared<ConnectionLimiter>(limits.maxConnections, limits.maxConnectionsPerKey);
  TF_TRY(sock.monitor_, watch(ctx, s, ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED));
  // The monitor is read on the guard's thread from here on (see
  // unread_guard.h): over the cap, a new connection is shut at once.
  auto limiter = sock.limiter_;
  sock.guard_ = std::make_unique<UnreadGuard>(
      UnreadGuard::Events{sock.monitor_,
                          [limiter](int fd) {
                            if (!limiter->opened(fd))
                              limiter->shut(fd, "over the cap of " +
                                                    std::to_string(limiter->maxTotal_) +
                                                    " connections (--max-connections)");
                          },
                          [limiter](int fd) { limiter->closed(fd); }},
      limits.maxUnread, limits.unreadCheck, [limiter](int fd) { return describe(*limiter, fd); });
  if (keys) {
    setInt(s, ZMQ_CURVE_SERVER, 1);
    if (zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, keys->secretKey.c_str(), keys->secretKey.size()) !=
        0)
      return zmqError("cannot use the CURVE key");
    // libzmq asks the context's ZAP handler (the Authenticator) about every
    // handshake; the Coordinator keeps it running for as long as this socket.
    zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, "thinfarm", 8);
  }
  for (const std::string &e : endpoints) {
    TF_CHECK(checkEndpoint(e));
    if (zmq_bind(s, e.c_str()) != 0)
      return zmqError("cannot listen on " + e);
  }
  return sock;
}

Result<Socket> Socket::connect(Context &ctx, const std::string &endpoint,
                               const std::optional<ClientCurve> &curve,
                               const TransportLimits &limits) {
  TF_CHECK(checkEndpoint(endpoint));
  void *s = zmq_socket(ctx.raw(), ZMQ_DEALER);
  if (!s)
    return zmqError("cannot create a socket");
  configure(s, limits);
  Socket sock(s, false, endpoint);
  sock.curve_ = curve.has_value();
  if (curve) {
    const std::string *keys[] = {&curve->serverKey, &curve->own.publicKey, &curve->own.secretKey};
    const int options[] = {ZMQ_CURVE_SERVERKEY, ZMQ_CURVE_PUBLICKEY, ZMQ_CURVE_SECRETKEY};
    for (int i = 0; i < 3; ++i)
      if (zmq_setsockopt(s, options[i], keys[i]->c_str(), keys[i]->size()) != 0)
        return zmqError("cannot use the CURVE keys");
  }
  // Every connecting socket is watched: its handshakes (refused ones come
  // out of receive() as errors) and its connection's losses (disconnects()).
  TF_TRY(sock.monitor_,
         watch(ctx, s,
               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                   ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                   ZMQ_EVENT_DISCONNECTED));
  // Messages wait for the connection instead of being dropped.
  setInt(s, ZMQ_IMMEDIATE, 0);
  if (zmq_connect(s, endpoint.c_str()) != 0)
    return zmqError("cannot connect to " + endpoint);
  return sock;
}

Socket::Socket(Socket &&o) noexcept
    : sock_(o.sock_), monitor_(o.monitor_), disconnects_(o.disconnects_),
      connected_(o.connected_), refused_(std::move(o.refused_)),
      refusedForGood_(o.refusedForGood_), curve_(o.curve_), limiter_(std::move(o.limiter_)),
      peersOn_(std::move(o.peersOn_)), gone_(std::move(o.gone_)), guard_(std::move(o.guard_)),
      router_(o.router_), endpoint_(std::move(o.endpoint_)), nextRequestId_(o.nextRequestId_),
      unbatched_(std::move(o.unbatched_)) {
  o.sock_ = nullptr;
  o.monitor_ = nullptr;
}

Socket &Socket::operator=(Socket &&o) noexcept {
  if (this != &o) {
    release();
    sock_ = o.sock_;
    monitor_ = o.monitor_;
    o.monitor_ = nullptr;
    disconnects_ = o.disconnects_;
    connected_ = o.connected_;
    refused_ = std::move(o.refused_);
    refusedForGood_ = o.refusedForGood_;
    curve_ = o.curve_;
    limiter_ = std::move(o.limiter_);
    peersOn_ = std::move(o.peersOn_);
    gone_ = std::move(o.gone_);
    guard_ = std::move(o.guard_);
    router_ = o.router_;
    endpoint_ = std::move(o.endpoint_);
    nextRequestId_ = o.nextRequestId_;
    unbatched_ = std::move(o.unbatched_);
    o.sock_ = nullptr;
  }
  return *this;
}

Socket::~Socket() {
  release();
}

void Socket::release() {
  if (sock_ && monitor_)
    zmq_socket_monitor(sock_, nullptr, 0); // no event after this (see watch())
  guard_.reset(); // its thread reads the monitor and watches the socket's descriptors
  if (monitor_)
    zmq_close(monitor_);
  if (sock_)
    zmq_close(sock_);
  monitor_ = sock_ = nullptr;
}

// A connecting socket's monitor events queued so far (each two frames: the
// event, a 16-bit id and a 32-bit value, and the endpoint): the connection
// made or lost, counted; a refused handshake kept for receive() to report
// (until a later handshake succeeds: a connection shut during its handshake,
// by a cap or the peer's restart, fails one too).
void Socket::connectionState() {
  uint16_t id = 0;
  uint32_t value = 0;
  while (monitor_ && nextMonitorEvent(monitor_, id, value)) {
    if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
      connected_ = true;
      refused_.reset();
      refusedForGood_ = false;
    } else if (id == ZMQ_EVENT_DISCONNECTED) {
      connected_ = false;
      ++disconnects_;
    } else if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) { // the Authenticator's verdict
      refusedForGood_ = true;
      refused_ = value == 500 ? Error{ErrorKind::Overloaded,
                                      "the coordinator at " + endpoint_ +
                                          " refused the connection: it has as many as its cap "
                                          "allows (see its log)"}
                              : Error{ErrorKind::Denied, "the coordinator at " + endpoint_ +
                                                             " refused this key (not on its "
                                                             "allow-list)"};
    } else if (id != 0 && curve_) {
      refused_ = Error{ErrorKind::Denied,
                       "the CURVE handshake with " + endpoint_ +
                           " failed (it is not the coordinator whose key is pinned, or it runs "
                           "without keys)"};
    } else if (id != 0) {
      refused_ = Error{ErrorKind::Denied,
                       "the handshake with " + endpoint_ +
                           " failed (it runs with keys: give this side its key file and the "
                           "coordinator's public key, see README)"};
    }
  }
}

uint64_t Socket::disconnects() {
  if (!router_)
    connectionState();
  return disconnects_;
}

bool Socket::waitConnected(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (router_ || !monitor_ || endpoint_.starts_with("inproc://")) // (no handshake, no events)
      return true;
    connectionState();
    if (connected_ || refusedForGood_)
      return connected_;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    zmq_pollitem_t item{monitor_, 0, ZMQ_POLLIN, 0};
    if (left.count() <= 0 || zmq_poll(&item, 1, static_cast<long>(left.count())) <= 0)
      return connected_;
  }
}

// The listening socket's connections closed (the guard's thread saw them
// and released their counts): the peers seen on one are gone.
void Socket::connectionEvents() {
  for (int fd : guard_->takeClosed())
    if (auto it = peersOn_.find(fd); it != peersOn_.end()) {
      gone_.insert(gone_.end(), it->second.begin(), it->second.end());
      peersOn_.erase(it);
    }
}

// Shuts a connection libzmq owns: it sees the end of the stream and closes
// it itself (the descriptor stays libzmq's to close). Logged once per 1000.
void ConnectionLimiter::shut(int fd, const std::string &why) {
  ::shutdown(fd, SHUT_RDWR);
  uint64_t n = ++shut_;
  if (n % 1000 == 1)
    std::fprintf(stderr, "thinfarm-coordinator: refused a connection %s (%llu so far)\n",
                 why.c_str(), static_cast<unsigned long long>(n));
}

// A connection for the log: its address, and its key once a message named it.
std::string Socket::describe(const ConnectionLimiter &limiter, int fd) {
  std::string who = "descriptor " + std::to_string(fd);
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  char host[INET6_ADDRSTRLEN] = "";
  if (::getpeername(fd, reinterpret_cast<sockaddr *>(&a), &len) == 0) {
    if (a.ss_family == AF_INET) {
      const auto *in = reinterpret_cast<const sockaddr_in *>(&a);
      ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
      who += " (" + std::string(host) + ":" + std::to_string(ntohs(in->sin_port)) + ")";
    } else if (a.ss_family == AF_INET6) {
      const auto *in = reinterpret_cast<const sockaddr_in6 *>(&a);
      ::inet_ntop(AF_INET6, &in->sin6_addr, host, sizeof host);
      who += " ([" + std::string(host) + "]:" + std::to_string(ntohs(in->sin6_port)) + ")";
    }
  }
  std::lock_guard lock(limiter.mutex_);
  if (auto k = limiter.keyOf_.find(fd); k != limiter.keyOf_.end())
    who += " key " + k->second;
  return who;
}

std::vector<PeerId> Socket::takeGone() {
  if (guard_)
    connectionEvents();
  return std::exchange(gone_, {});
}

Status Socket::send(const PeerId &peer, const Message &m) {
  std::string frame = encode(m);
  // Checked here, not left to the receiver: its ZMQ_MAXMSGSIZE would drop
  // the connection with the message unread, and the sender would learn
  // nothing but silence.
  if (frame.size() > kMaxFrame)
    return Error{ErrorKind::Exceeded, std::string("a ") + kindName(m.body) + " message of " +
                                          std::to_string(frame.size()) +
                                          " bytes is over the wire's limit of " +
                                          std::to_string(kMaxFrame) + " bytes per message"};
  if (router_ && zmq_send(sock_, peer.data(), peer.size(), ZMQ_SNDMORE) < 0) {
    if (zmq_errno() == EHOSTUNREACH)
      return Error{ErrorKind::Disconnected, "the peer is gone"};
    return Error{ErrorKind::Overloaded, std::string("cannot send: ") + zmq_strerror(zmq_errno())};
  }
  if (zmq_send(sock_, frame.data(), frame.size(), 0) < 0) {
    int err = zmq_errno();
    if (err == EAGAIN)
      return Error{ErrorKind::Overloaded, "the peer's queue is full"};
    if (err == EHOSTUNREACH)
      return Error{ErrorKind::Disconnected, "the peer is gone"};
    return Error{ErrorKind::Disconnected, std::string("cannot send: ") + zmq_strerror(err)};
  }
  return ok();
}

std::optional<Received> Socket::receive(std::chrono::milliseconds timeout) {
  if (!unbatched_.empty()) {
    Received r = std::move(unbatched_.front());
    unbatched_.pop_front();
    return r;
  }
  Received r{PeerId(), failed("no message"), {}};
  zmq_msg_t part;
  size_t frames = 0; // of this message, the routing id included
  uint64_t bytes = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (frames == 0 && guard_)
      connectionEvents();
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, sock_, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&part);
      if (frames > 0) { // cannot happen: ZeroMQ delivers all of a message's frames or none
        r.message = failed("malformed message: its last frame is missing");
        break;
      }
      if (monitor_ && !router_) {
        const uint64_t lost = disconnects_;
        connectionState();
        if (refused_) {
          Received refusal{PeerId(), std::move(*refused_), {}};
          refused_.reset();
          refusedForGood_ = false;
          return refusal;
        }
        if (disconnects_ != lost)
          return std::nullopt; // the caller decides what the loss costs it (disconnects())
      }
      // Nothing queued: wait for what is left of the timeout (trying first
      // saves a poll per message when a burst is being drained). A
      // connecting socket wakes for its connection's events too (a listening
      // one's monitor is the guard's); a wake with no message waits on.
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      zmq_pollitem_t items[2] = {{sock_, 0, ZMQ_POLLIN, 0}, {monitor_, 0, ZMQ_POLLIN, 0}};
      if (left.count() <= 0 ||
          zmq_poll(items, monitor_ && !router_ ? 2 : 1, static_cast<long>(left.count())) <= 0)
        return std::nullopt;
      continue;
    }
    const char *data = static_cast<const char *>(zmq_msg_data(&part));
    size_t size = zmq_msg_size(&part);
    ++frames;
    if (zmq_msg_more(&part)) {
      // Only the routing id is kept: any other frame before the last is one
      // too many, counted and let go as it is taken.
      if (frames == 1 && router_)
        r.peer.assign(data, size);
      else
        bytes += size;
      zmq_msg_close(&part);
      continue;
    }
    bytes += size;
    // The last frame is the message: decoded straight from ZeroMQ's buffer,
    // so a blob chunk is copied once on its way out, not twice.
    if (const char *user = zmq_msg_gets(&part, "User-Id"))
      r.user = user;
    size_t want = router_ ? 2 : 1;
    int fd = guard_ ? zmq_msg_get(&part, ZMQ_SRCFD) : -1;
    if (frames != want) {
      r.message =
          Error{ErrorKind::Exceeded,
                "message refused: " + std::to_string(frames - (router_ ? 1 : 0)) + " frames, " +
                    std::to_string(bytes) + " bytes; the limit is one frame (of at most " +
                    std::to_string(kMaxFrame) + " bytes)"};
    } else if (fd >= 0 && !r.user.empty() && !limiter_->attribute(fd, r.user)) {
      limiter_->shut(fd, "from " + r.user + ": over the cap of " +
                             std::to_string(limiter_->maxPerKey_) +
                             " connections per key (--max-connections-per-key)");
      r.message = Error{ErrorKind::Overloaded,
                        "this key has more connections than the coordinator's cap of " +
                            std::to_string(limiter_->maxPerKey_) + " (--max-connections-per-key)"};
    } else {
      r.message = decode(std::string_view(data, size));
    }
    if (fd >= 0 && guard_)
      guard_->delivered(fd, bytes, frames - (router_ ? 1 : 0));
    if (fd >= 0 && !r.peer.empty()) {
      std::vector<PeerId> &on = peersOn_[fd];
      if (std::find(on.begin(), on.end(), r.peer) == on.end())
        on.push_back(r.peer);
    }
    zmq_msg_close(&part);
    break;
  }
  if (r.message.ok())
    if (auto *batch = r.message->get<Batch>()) {
      std::vector<Message> ms = std::move(batch->messages);
      if (ms.empty())
        return std::nullopt;
      for (size_t i = 1; i < ms.size(); ++i)
        unbatched_.push_back(Received{r.peer, std::move(ms[i]), r.user});
      r.message = std::move(ms[0]);
    }
  return r;
}

Status Socket::sendAll(const PeerId &peer, std::vector<Message> &&ms) {
  constexpr size_t kMaxBatch = 256;
  Batch batch;
  size_t bytes = 0; // the bulk of what batch holds
  // A batch whose frame comes out over the limit after all (the estimate
  // below counts bulk bytes only: a job with thousands of imports is large
  // too) goes again as two halves; a single message too large is an error.
  std::function<Status(std::vector<Message> &&)> sendBatch = [&](std::vector<Message> &&part) -> Status {
    if (part.size() == 1)
      return send(peer, part[0]);
    Message m{0, Batch{std::move(part)}};
    Status st = send(peer, m);
    if (st.ok() || st.error().kind != ErrorKind::Exceeded)
      return st;
    std::vector<Message> all = std::move(std::get<Batch>(m.body).messages);
    std::vector<Message> second(std::make_move_iterator(all.begin() + all.size() / 2),
                                std::make_move_iterator(all.end()));
    all.resize(all.size() / 2);
    TF_CHECK(sendBatch(std::move(all)));
    return sendBatch(std::move(second));
  };
  auto flush = [&]() -> Status {
    Status st = ok();
    if (!batch.messages.empty())
      st = sendBatch(std::move(batch.messages));
    batch.messages.clear();
    bytes = 0;
    return st;
  };
  // Bulk bytes a message carries: a batch stays well inside kMaxFrame.
  auto bulk = [](const Message &m) -> size_t {
    if (const auto *r = m.get<JobResult>())
      return r->nativeBytes.size() + 1024;
    if (const auto *l = m.get<LinkMemo>())
      return l->transcript.size() + 1024;
    return 1024;
  };
  for (Message &m : ms) {
    if (m.get<Chunk>() || m.get<PutChunk>()) {
      TF_CHECK(flush());
      TF_CHECK(send(peer, m));
      continue;
    }
    size_t size = bulk(m);
    if (!batch.messages.empty() && bytes + size > kMaxFrame / 2)
      TF_CHECK(flush());
    bytes += size;
    batch.messages.push_back(std::move(m));
    if (batch.messages.size() == kMaxBatch)
      TF_CHECK(flush());
  }
  return flush();
}

std::pair<bool, bool> poll(Socket &s, int fd, std::chrono::milliseconds timeout) {
  zmq_pollitem_t items[2] = {{s.raw(), 0, ZMQ_POLLIN, 0}, {nullptr, fd, ZMQ_POLLIN, 0}};
  int n = zmq_poll(items, fd >= 0 ? 2 : 1, static_cast<long>(timeout.count()));
  if (n <= 0)
    return {false, false};
  return {(items[0].revents & ZMQ_POLLIN) != 0,
          fd >= 0 && (items[1].revents & (ZMQ_POLLIN | ZMQ_POLLERR)) != 0};
}

} // namespace thinfarm::wire

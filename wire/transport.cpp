#include "wire/transport.h"

#include <zmq.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace thinfarm::wire {

namespace {

constexpr int kHighWaterMark = 4096;  // messages queued per peer before Overloaded
constexpr int kSendTimeoutMs = 2000;

Error zmqError(const std::string &what) {
  return failed(what + ": " + zmq_strerror(zmq_errno()));
}

void setInt(void *s, int option, int value) { zmq_setsockopt(s, option, &value, sizeof value); }

void configure(void *s) {
  setInt(s, ZMQ_SNDHWM, kHighWaterMark);
  setInt(s, ZMQ_RCVHWM, kHighWaterMark);
  setInt(s, ZMQ_SNDTIMEO, kSendTimeoutMs);
  setInt(s, ZMQ_LINGER, 1000);
  int64_t maxSize = static_cast<int64_t>(kMaxFrame) + 4096;
  zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxSize, sizeof maxSize);
  // Reconnect quickly: a restarted coordinator is found again within a second.
  setInt(s, ZMQ_RECONNECT_IVL, 100);
  setInt(s, ZMQ_RECONNECT_IVL_MAX, 1000);
}

} // namespace

Context::Context() : ctx_(zmq_ctx_new()) {}
Context::~Context() { zmq_ctx_term(ctx_); }

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
                              const std::optional<KeyPair> &keys) {
  void *s = zmq_socket(ctx.raw(), ZMQ_ROUTER);
  if (!s)
    return zmqError("cannot create a socket");
  configure(s);
  setInt(s, ZMQ_ROUTER_MANDATORY, 1);
  Socket sock(s, true, endpoints.empty() ? std::string() : endpoints.front());
  if (keys) {
    setInt(s, ZMQ_CURVE_SERVER, 1);
    if (zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, keys->secretKey.c_str(), keys->secretKey.size()) != 0)
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
                               const std::optional<ClientCurve> &curve) {
  TF_CHECK(checkEndpoint(endpoint));
  void *s = zmq_socket(ctx.raw(), ZMQ_DEALER);
  if (!s)
    return zmqError("cannot create a socket");
  configure(s);
  Socket sock(s, false, endpoint);
  if (curve) {
    const std::string *keys[] = {&curve->serverKey, &curve->own.publicKey, &curve->own.secretKey};
    const int options[] = {ZMQ_CURVE_SERVERKEY, ZMQ_CURVE_PUBLICKEY, ZMQ_CURVE_SECRETKEY};
    for (int i = 0; i < 3; ++i)
      if (zmq_setsockopt(s, options[i], keys[i]->c_str(), keys[i]->size()) != 0)
        return zmqError("cannot use the CURVE keys");
    char monitor[64];
    std::snprintf(monitor, sizeof monitor, "inproc://thinfarm-handshake-%p", s);
    if (zmq_socket_monitor(s, monitor,
                           ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0)
      return zmqError("cannot watch the handshake");
    sock.monitor_ = zmq_socket(ctx.raw(), ZMQ_PAIR);
    if (!sock.monitor_ || zmq_connect(sock.monitor_, monitor) != 0)
      return zmqError("cannot watch the handshake");
  }
  // Messages wait for the connection instead of being dropped.
  setInt(s, ZMQ_IMMEDIATE, 0);
  if (zmq_connect(s, endpoint.c_str()) != 0)
    return zmqError("cannot connect to " + endpoint);
  return sock;
}

Socket::Socket(Socket &&o) noexcept
    : sock_(o.sock_), monitor_(o.monitor_), router_(o.router_), endpoint_(std::move(o.endpoint_)),
      nextRequestId_(o.nextRequestId_), unbatched_(std::move(o.unbatched_)) {
  o.sock_ = nullptr;
  o.monitor_ = nullptr;
}

Socket &Socket::operator=(Socket &&o) noexcept {
  if (this != &o) {
    if (monitor_)
      zmq_close(monitor_);
    if (sock_)
      zmq_close(sock_);
    sock_ = o.sock_;
    monitor_ = o.monitor_;
    o.monitor_ = nullptr;
    router_ = o.router_;
    endpoint_ = std::move(o.endpoint_);
    nextRequestId_ = o.nextRequestId_;
    unbatched_ = std::move(o.unbatched_);
    o.sock_ = nullptr;
  }
  return *this;
}

Socket::~Socket() {
  if (monitor_)
    zmq_close(monitor_);
  if (sock_)
    zmq_close(sock_);
}

// A handshake event from the monitor, if one is queued: two frames, the
// event (16-bit id, 32-bit value) and the endpoint.
std::optional<Error> Socket::handshakeFailure() {
  std::optional<Error> failure;
  for (;;) {
    zmq_msg_t event;
    zmq_msg_init(&event);
    if (zmq_msg_recv(&event, monitor_, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&event);
      return failure;
    }
    uint16_t id = 0;
    if (zmq_msg_size(&event) >= 6)
      std::memcpy(&id, zmq_msg_data(&event), sizeof id);
    bool more = zmq_msg_more(&event);
    zmq_msg_close(&event);
    while (more) { // the endpoint frame
      zmq_msg_t rest;
      zmq_msg_init(&rest);
      bool got = zmq_msg_recv(&rest, monitor_, ZMQ_DONTWAIT) >= 0;
      more = got && zmq_msg_more(&rest);
      zmq_msg_close(&rest);
    }
    if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
      failure = Error{ErrorKind::Denied, "the coordinator at " + endpoint_ +
                                             " refused this key (not on its allow-list)"};
    else if (id != 0)
      failure = Error{ErrorKind::Denied,
                      "the CURVE handshake with " + endpoint_ +
                          " failed (it is not the coordinator whose key is pinned, or it runs "
                          "without keys)"};
  }
}

Status Socket::send(const PeerId &peer, const Message &m) {
  std::string frame = encode(m);
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
  std::vector<std::string> parts;
  bool polled = false;
  for (;;) {
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, sock_, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&part);
      if (!parts.empty()) { // cannot happen: ZeroMQ delivers all of a message's frames or none
        r.message = failed("malformed message: its last frame is missing");
        break;
      }
      if (monitor_)
        if (auto refused = handshakeFailure())
          return Received{PeerId(), std::move(*refused), {}};
      // Nothing queued: wait once (trying first saves a poll per message
      // when a burst is being drained).
      zmq_pollitem_t items[2] = {{sock_, 0, ZMQ_POLLIN, 0}, {monitor_, 0, ZMQ_POLLIN, 0}};
      if (polled || timeout.count() <= 0 ||
          zmq_poll(items, monitor_ ? 2 : 1, static_cast<long>(timeout.count())) <= 0)
        return std::nullopt;
      polled = true;
      continue;
    }
    const char *data = static_cast<const char *>(zmq_msg_data(&part));
    size_t size = zmq_msg_size(&part);
    if (zmq_msg_more(&part)) {
      parts.emplace_back(data, size);
      zmq_msg_close(&part);
      continue;
    }
    // The last frame is the message: decoded straight from ZeroMQ's buffer,
    // so a blob chunk is copied once on its way out, not twice.
    if (const char *user = zmq_msg_gets(&part, "User-Id"))
      r.user = user;
    size_t frames = parts.size() + 1, want = router_ ? 2 : 1;
    if (router_ && !parts.empty())
      r.peer = parts[0];
    if (frames != want)
      r.message = failed("malformed message: " + std::to_string(frames - (router_ ? 1 : 0)) +
                         " frames (expected one)");
    else
      r.message = decode(std::string_view(data, size));
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
  auto flush = [&]() -> Status {
    Status st = ok();
    if (batch.messages.size() == 1)
      st = send(peer, batch.messages[0]);
    else if (!batch.messages.empty())
      st = send(peer, Message{0, Batch{std::move(batch.messages)}});
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

// The farm's transport: ZeroMQ sockets that carry wire Messages.
//
// The coordinator binds one ROUTER socket (it may listen on several
// endpoints: tcp:// for other machines, ipc:// for clients on its own
// machine, inproc:// for an embedded worker pool); every client and worker
// slot connects one DEALER. A frame is one encoded Message, refused by
// ZeroMQ itself when larger than kMaxFrame + slack, so an oversized frame
// never reaches memory. Sends never block for long: a peer whose queue is full
// (high-water mark) gets an Overloaded error back at the sender, a vanished
// peer a Disconnected one, instead of a silent drop.
//
// Bounds (TransportLimits; the coordinator's flags): every socket sets
// ZMQ_MAXMSGSIZE (a larger frame disconnects its sender unread), a handshake
// timeout (a connection that does not complete its handshake in time is
// closed) and ZeroMQ heartbeats (a peer that stops answering PINGs is
// dropped, on both sides). A wire message is one frame: receive() counts a
// message's frames and bytes as it takes them from ZeroMQ, keeps none beyond
// the first it needs, and turns an oversized message into an Exceeded error
// for that peer. (libzmq itself holds a multipart message until its last
// frame is in; each frame is bounded by ZMQ_MAXMSGSIZE, their number by
// nothing.) So a listening socket also compares, per TCP connection, the
// bytes the kernel received with those of the messages receive() delivered,
// and shuts a connection more than maxUnread behind: an unfinished multipart
// message, or a backlog of complete ones (UnreadGuard, on a thread of its
// own, every unreadCheck; ipc:// and inproc:// are not watched, see
// unread_guard.h). A listening socket watches its connections
// (a socket monitor's ACCEPTED/DISCONNECTED events): beyond maxConnections a
// new connection is shut at once, and the ZAP handler refuses handshakes
// over the total and over maxConnectionsPerKey (ConnectionLimiter). It also
// notices when a peer's connection is gone (takeGone()), so that what the
// peer held can be let go.
#pragma once

#include "wire/keys.h"
#include "wire/messages.h"
#include "wire/unread_guard.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace thinfarm::wire {

// The ZeroMQ context: one per process, passed to every socket; sockets that
// talk over inproc:// must share it.
class Context {
public:
  Context();
  ~Context();
  Context(const Context &) = delete;
  Context &operator=(const Context &) = delete;
  void *raw() const { return ctx_; }
  // A name no other monitor of this context has had: a closed socket's
  // monitor endpoint may still be bound while a new socket gets the address.
  uint64_t nextMonitor() { return ++monitors_; }

private:
  void *ctx_;
  std::atomic<uint64_t> monitors_{0};
};

// A ROUTER socket's name for one connected peer.
using PeerId = std::string;

struct TransportLimits {
  uint64_t maxMessageBytes = kMaxFrame + 4096; // one frame: ZMQ_MAXMSGSIZE
  std::chrono::milliseconds handshake{5000};   // ZMQ_HANDSHAKE_IVL
  std::chrono::milliseconds heartbeat{2000};   // ZMQ_HEARTBEAT_IVL; silent 5x as long: gone
  size_t maxConnections = 1024;                // listening socket: open connections, total
  size_t maxConnectionsPerKey = 64;            // ... and per CURVE key (ZAP handler)
  // Listening socket: bytes one TCP connection may have sent that are not yet
  // messages the application received (UnreadGuard); over it, it is shut. An
  // honest peer stays far below: a blob transfer's window (kWindow x kChunk),
  // a worker's batch of results, what the kernel buffers. 0: not checked.
  uint64_t maxUnread = 64ull << 20;
  std::chrono::milliseconds unreadCheck{50}; // how often (its own thread)
};

// The connections a listening socket has open, for refusing more: its
// monitor counts them (on the socket's thread), the ZAP handler asks
// (on its own). Per key: from the handshake on (idle connections count too),
// checked again by every message's User-Id.
class ConnectionLimiter {
public:
  ConnectionLimiter(size_t maxTotal, size_t maxPerKey) : maxTotal_(maxTotal), maxPerKey_(maxPerKey) {}
  // Why a new handshake with `key` must be refused now; "" admits it (and
  // counts it against the key until a message attributes it to a connection).
  std::string admit(const std::string &key);
  size_t open() const;

private:
  friend class Socket;
  // The socket's side: a connection opened or closed, a message seen on one.
  bool opened(int fd); // false: over the total cap
  void closed(int fd);
  bool attribute(int fd, const std::string &key); // a message's User-Id; false: over the cap
  void shut(int fd, const std::string &why);       // a connection over a cap (logged)

  const size_t maxTotal_, maxPerKey_;
  mutable std::mutex mutex_;
  std::unordered_set<int> open_;
  std::unordered_map<int, std::string> keyOf_;     // fd -> key
  std::unordered_map<std::string, size_t> perKey_; // connections per key, with admitted_
  // Keys the ZAP handler admitted (and counted) whose connection has sent
  // nothing yet, oldest first: a message moves its key to keyOf_, a
  // connection closed silent releases the oldest (the monitor's events name
  // the fd only, the ZAP request the key only).
  std::deque<std::string> admitted_;
  std::atomic<uint64_t> shut_{0};
};

struct Received {
  PeerId peer;             // empty on a DEALER socket
  Result<Message> message; // a malformed frame is an error naming the problem
  std::string user;        // CURVE: the sender's public key, as the
                           // Authenticator admitted it; "" without CURVE
};


class Socket {
public:
  // ROUTER bound to every endpoint given ("tcp://0.0.0.0:7700", "ipc:///run/x").
  // With keys, a CURVE server: every connection is encrypted and must pass
  // the context's Authenticator, which must be running already. (inproc://
  // peers are in this process and skip the handshake: their user is "".)
  static Result<Socket> listen(Context &ctx, const std::vector<std::string> &endpoints,
                               const std::optional<KeyPair> &keys = std::nullopt,
                               const TransportLimits &limits = {});
  // DEALER connected to one endpoint; connection happens in the background.
  // With CURVE, a handshake the coordinator refuses (this key is not on its
  // allow-list, or it is not the coordinator whose key is pinned) comes out
  // of receive() as a Denied error at once, not as silence.
  static Result<Socket> connect(Context &ctx, const std::string &endpoint,
                                const std::optional<ClientCurve> &curve = std::nullopt,
                                const TransportLimits &limits = {});

  Socket(Socket &&) noexcept;
  Socket &operator=(Socket &&) noexcept;
  ~Socket();

  // ROUTER: to one peer. DEALER: peer is ignored.
  Status send(const PeerId &peer, const Message &m);
  Status send(const Message &m) { return send(PeerId(), m); }
  // Several messages for one peer, in order, batched into as few frames as
  // they fit (blob chunks go alone).
  Status sendAll(const PeerId &peer, std::vector<Message> &&ms);

  // Waits up to `timeout` for one message; nullopt when none came. A batch
  // comes out one message at a time.
  std::optional<Received> receive(std::chrono::milliseconds timeout);

  // The socket's handle, for zmq_poll together with other descriptors.
  void *raw() const { return sock_; }
  // Messages of a batch received already: receive() has them though the
  // socket's handle polls empty.
  bool buffered() const { return !unbatched_.empty(); }
  const std::string &endpoint() const { return endpoint_; }
  // A request id unique on this socket, for matching answers to requests.
  uint64_t newRequestId() { return nextRequestId_++; }

  // DEALER: how many times its connection was lost so far. A request sent
  // before a loss may never be answered, so whoever waits for an answer
  // compares this with its value from before the request (a loss while
  // nothing was outstanding costs nothing: the socket reconnects by itself).
  // receive() returns early when a loss is seen.
  uint64_t disconnects();
  // DEALER: waits up to `timeout` for a completed handshake with the peer
  // (or returns at once when the connection is up); false when none came.
  bool waitConnected(std::chrono::milliseconds timeout);

  // A listening socket's connection counts, for its ZAP handler.
  std::shared_ptr<ConnectionLimiter> limiter() const { return limiter_; }
  // ROUTER: the peers whose connection closed since the last call.
  std::vector<PeerId> takeGone();
  // ROUTER: connections shut for being over a cap, so far.
  uint64_t shutConnections() const {
    return guard_ ? limiter_->shut_.load() + guard_->shutCount() : 0;
  }

private:
  Socket(void *sock, bool router, std::string endpoint)
      : sock_(sock), router_(router), endpoint_(std::move(endpoint)) {}
  void connectionState();
  void connectionEvents();
  void release(); // the monitor stopped, the guard joined, both sockets closed
  void *sock_ = nullptr;
  void *monitor_ = nullptr; // PAIR: the DEALER's handshakes and losses, the
                            // ROUTER's connections opened and closed
  uint64_t disconnects_ = 0; // DEALER
  bool connected_ = false;   // DEALER: a handshake completed since the last loss
  std::optional<Error> refused_; // DEALER: a refused handshake receive() has yet to report
  bool refusedForGood_ = false;  // ... by the coordinator's verdict, not a connection shut
  bool curve_ = false;           // DEALER: a CURVE client
  std::shared_ptr<ConnectionLimiter> limiter_;           // ROUTER
  std::unordered_map<int, std::vector<PeerId>> peersOn_; // ROUTER: fd -> peers seen on it
  std::vector<PeerId> gone_;
  std::unique_ptr<UnreadGuard> guard_; // ROUTER: reads monitor_ (and checks, unless maxUnread is 0)
  static std::string describe(const ConnectionLimiter &limiter, int fd); // for the log
  bool router_ = false;
  std::string endpoint_;
  uint64_t nextRequestId_ = 1;
  std::deque<Received> unbatched_; // the rest of a batch received
};

// Waits until the socket has a message or fd is readable (or timeout); fd -1
// waits on the socket alone. Returns {socketReady, fdReady}.
std::pair<bool, bool> poll(Socket &s, int fd, std::chrono::milliseconds timeout);

// "tcp://host:port" / "ipc:///path" / "inproc://name": checked before use so
// a typo is a one-line error, not a silent hang.
Status checkEndpoint(const std::string &endpoint);

} // namespace thinfarm::wire

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
#pragma once

#include "wire/keys.h"
#include "wire/messages.h"

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
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

private:
  void *ctx_;
};

// A ROUTER socket's name for one connected peer.
using PeerId = std::string;

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
                               const std::optional<KeyPair> &keys = std::nullopt);
  // DEALER connected to one endpoint; connection happens in the background.
  // With CURVE, a handshake the coordinator refuses (this key is not on its
  // allow-list, or it is not the coordinator whose key is pinned) comes out
  // of receive() as a Denied error at once, not as silence.
  static Result<Socket> connect(Context &ctx, const std::string &endpoint,
                                const std::optional<ClientCurve> &curve = std::nullopt);

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
  const std::string &endpoint() const { return endpoint_; }
  // A request id unique on this socket, for matching answers to requests.
  uint64_t newRequestId() { return nextRequestId_++; }

private:
  Socket(void *sock, bool router, std::string endpoint)
      : sock_(sock), router_(router), endpoint_(std::move(endpoint)) {}
  std::optional<Error> handshakeFailure();
  void *sock_ = nullptr;
  void *monitor_ = nullptr; // PAIR: the DEALER's handshake events (CURVE only)
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

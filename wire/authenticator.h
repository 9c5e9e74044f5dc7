// The coordinator's door: libzmq's ZAP handler (RFC 27) answered from the
// allow-list (wire/keys.h).
//
// A CURVE handshake on the coordinator's socket asks this handler, on a thread
// of its own, whether the client's public key may connect; a listed key is
// admitted with the key as its ZeroMQ User-Id, which every message from that
// connection then carries (Received::user). The allow-list is looked up again
// for every message, so a reload that drops a key refuses that peer's next
// message without a reconnect. reload() is what SIGHUP calls: a list that
// does not parse is reported and the old one stays. With the listening
// socket's ConnectionLimiter (setLimiter), a listed key is still refused
// (status 500, which the client reads as Overloaded) while the coordinator
// has its cap of connections open, or that key has its own.
#pragma once

#include "wire/keys.h"
#include "wire/transport.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace thinfarm::wire {

class Authenticator {
public:
  // Binds the handler in ctx; must come before the socket it guards listens.
  static Result<std::unique_ptr<Authenticator>> start(Context &ctx, std::string allowListPath);
  ~Authenticator();
  Authenticator(const Authenticator &) = delete;
  Authenticator &operator=(const Authenticator &) = delete;

  // Re-reads the allow-list; the number of members on success.
  Result<size_t> reload();
  // The member a public key belongs to now, if it is listed.
  std::optional<Member> member(const std::string &publicKey) const;
  // Handshakes refused so far (for the log).
  uint64_t refused() const { return refused_.load(); }
  // The connection caps to apply to every handshake from now on.
  void setLimiter(std::shared_ptr<ConnectionLimiter> limiter);

private:
  Authenticator(void *rep, std::string path, AllowList list);
  void serve();

  void *rep_;
  std::string path_;
  mutable std::mutex mutex_;
  std::shared_ptr<const AllowList> list_;
  std::shared_ptr<ConnectionLimiter> limiter_; // under mutex_
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> refused_{0};
  std::thread thread_;
};

} // namespace thinfarm::wire

// The bound on what a connection has sent that the application has not yet
// received as messages (issue #12, item 4: the multipart bomb).
//
// libzmq keeps every frame of a multipart message in its pipe until the last
// one arrives, and nothing in its API bounds their number: a peer that sends
// frames and never the last one grows the process without end. Outside
// libzmq we can still see both sides of it: the kernel counts the bytes a TCP
// connection received (TCP_INFO tcpi_bytes_received, Linux >= 4.1) and the
// Socket counts the bytes of the messages it handed to the application from
// that connection (ZMQ_SRCFD). The difference is what sits, unread, in the
// kernel's receive buffer and in libzmq: complete messages queued, and the
// frames of unfinished ones. Over `maxUnread` (plus a small credit for
// framing, handshake and heartbeats) the connection is shut with
// shutdown(2); libzmq sees its end, closes it, and frees the partial message.
//
// Checked from the Socket's receive(): on every call at most once per
// interval/5, and at least every interval while it waits, so a bomb grows the
// process by at most maxUnread + link rate x interval (or x the time the
// application spends on one message). One getsockopt per TCP connection per
// check. ipc:// connections (a 0700 directory: the local user only) and
// inproc:// (this process) are not watched: AF_UNIX sockets count no bytes.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace thinfarm::wire {

class UnreadGuard {
public:
  using Clock = std::chrono::steady_clock;
  // Framing per frame (ZMTP header, CURVE's MESSAGE box) and per second of a
  // connection's life (PINGs and PONGs, at most one of each per second, each
  // under 64 bytes), credited on top of maxUnread.
  static constexpr uint64_t kFrameOverhead = 64;
  static constexpr uint64_t kIdleCreditPerSecond = 128;

  UnreadGuard(uint64_t maxUnread, std::chrono::milliseconds interval)
      : maxUnread_(maxUnread), interval_(interval) {}
  bool enabled() const { return maxUnread_ > 0; }
  std::chrono::milliseconds interval() const { return interval_; }

  // A connection accepted (watched only if it is TCP) or closed.
  void opened(int fd, Clock::time_point now);
  void closed(int fd) { conns_.erase(fd); }
  // A message taken from fd: `bytes` in `frames` frames (routing id excluded).
  void delivered(int fd, uint64_t bytes, uint64_t frames);

  // One check of every watched connection, unless one ran within interval/5.
  // Shuts those over the bound; `describe(fd)` names the peer for the log.
  template <class Describe> void check(Clock::time_point now, const Describe &describe) {
    if (maxUnread_ == 0 || conns_.empty() || now - last_ < interval_ / 5)
      return;
    last_ = now;
    for (auto &[fd, c] : conns_)
      if (uint64_t unread = 0; over(fd, c, now, unread))
        shut(fd, c, unread, describe(fd));
  }
  // Connections shut so far.
  uint64_t shutCount() const { return shut_; }
  size_t watched() const { return conns_.size(); }

private:
  struct Conn {
    uint64_t delivered = 0; // message bytes + framing credit
    uint64_t seen = 0;      // tcpi_bytes_received at the last check
    Clock::time_point since;
    bool shut = false;
  };
  bool over(int fd, Conn &c, Clock::time_point now, uint64_t &unread);
  void shut(int fd, Conn &c, uint64_t unread, const std::string &who);

  uint64_t maxUnread_;
  std::chrono::milliseconds interval_;
  std::unordered_map<int, Conn> conns_;
  Clock::time_point last_{};
  uint64_t shut_ = 0;
};

} // namespace thinfarm::wire

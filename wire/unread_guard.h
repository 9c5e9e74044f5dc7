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
// Checked on a thread of its own every `interval` (50 ms), not from the
// application's receive loop, which may be busy with one message for longer:
// a bomb grows the process by at most maxUnread + link rate x interval on
// the wire. The same thread reads the listening socket's monitor (its
// ACCEPTED and DISCONNECTED events) as they come, so a connection is watched
// from its first milliseconds however busy the application is (read from
// the receive loop, an event waited behind a long message, and a bomb ran
// on unwatched: measured up to +50 MiB over the bound); it tells the
// application's side through callbacks on this thread and takeClosed(). One
// getsockopt per check for each TCP connection that received bytes since the
// last (an epoll set of its own, edge-triggered, says which): idle ones cost
// nothing. The Socket reports the messages delivered; the descriptors stay
// libzmq's. (A number libzmq closed and the kernel reused before the monitor
// reported the close is checked against the old connection's credit for
// those few milliseconds: a new connection would have to receive maxUnread
// bytes in them to be shut.)
//
// Limits. Memory is not wire bytes: a 4 MiB frame costs libzmq its size, an
// empty one (2 bytes on the wire) a 64-byte zmq_msg_t in its pipe, so a bomb
// of empty frames still reaches ~32 x maxUnread before it is shut (measured:
// +2.0 GiB at 64 MiB; without the guard it grows without end). The credit of
// 128 bytes per second of a connection's life lets a partial message grow by
// that much too. ipc:// connections (a 0700 directory: the local user only)
// and inproc:// (this process) are not watched: AF_UNIX sockets count no
// bytes.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace thinfarm::wire {

// One event of a ZeroMQ socket monitor (a PAIR socket): its 16-bit id and
// 32-bit value (an fd for connection events); false when none is queued.
bool nextMonitorEvent(void *monitor, uint16_t &id, uint32_t &value);

class UnreadGuard {
public:
  // The listening socket's monitor, read on the guard's thread only (the
  // caller closes it after the guard is gone), and what to do there when a
  // connection opens or closes.
  struct Events {
    void *monitor = nullptr;
    std::function<void(int)> opened, closed;
  };

  using Clock = std::chrono::steady_clock;
  // Framing per frame (ZMTP header, CURVE's MESSAGE box) and per second of a
  // connection's life (PINGs and PONGs, at most one of each per second, each
  // under 64 bytes), credited on top of maxUnread.
  static constexpr uint64_t kFrameOverhead = 64;
  static constexpr uint64_t kIdleCreditPerSecond = 128;

  // Starts the thread; `describe(fd)` names a connection for the log (called
  // on that thread). maxUnread 0: connection events only, no checks.
  UnreadGuard(Events events, uint64_t maxUnread, std::chrono::milliseconds interval,
              std::function<std::string(int)> describe);
  ~UnreadGuard(); // stops and joins the thread
  UnreadGuard(const UnreadGuard &) = delete;
  UnreadGuard &operator=(const UnreadGuard &) = delete;

  // The connections closed since the last call, in the order they closed.
  std::vector<int> takeClosed();
  // A message taken from fd: `bytes` in `frames` frames (routing id excluded).
  void delivered(int fd, uint64_t bytes, uint64_t frames);
  // Connections shut so far.
  uint64_t shutCount() const;

private:
  struct Conn {
    uint64_t delivered = 0; // message bytes + framing credit
    uint64_t seen = 0;      // tcpi_bytes_received at the last check
    Clock::time_point since;
    bool shut = false;
  };
  void run();
  void events();
  void opened(int fd); // watched only if it is TCP
  void closed(int fd);
  void check(Clock::time_point now);
  bool over(int fd, Conn &c, Clock::time_point now, uint64_t &unread);
  void shut(int fd, Conn &c, uint64_t unread);

  const Events events_;
  const uint64_t maxUnread_;
  const std::chrono::milliseconds interval_;
  const std::function<std::string(int)> describe_;
  mutable std::mutex mutex_;
  int stop_ = -1; // an eventfd: written to stop the thread
  std::vector<int> closed_;
  std::unordered_map<int, Conn> conns_;
  uint64_t shut_ = 0;
  int epoll_ = -1; // the watched descriptors, edge-triggered: which received bytes
  std::thread thread_; // last: started once the rest is
};

} // namespace thinfarm::wire

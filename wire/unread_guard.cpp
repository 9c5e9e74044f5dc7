// UnreadGuard: the kernel's byte count of a TCP connection against the bytes
// of the messages delivered from it (see unread_guard.h). Its own file
// because it reads <linux/tcp.h>'s tcp_info (glibc's lacks the byte counts),
// which cannot be included beside <netinet/tcp.h>.
#include "wire/unread_guard.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <exception>

namespace thinfarm::wire {

namespace {

// tcpi_bytes_received of a TCP socket; false for any other descriptor (or a
// kernel older than 4.1, whose tcp_info ends before it).
bool bytesReceived(int fd, uint64_t &bytes) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 ||
      len < offsetof(tcp_info, tcpi_bytes_received) + sizeof info.tcpi_bytes_received)
    return false;
  bytes = info.tcpi_bytes_received;
  return true;
}

} // namespace

UnreadGuard::UnreadGuard(uint64_t maxUnread, std::chrono::milliseconds interval,
                         std::function<std::string(int)> describe)
    : maxUnread_(maxUnread), interval_(std::max(interval, std::chrono::milliseconds(1))),
      describe_(std::move(describe)), epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      thread_([this] { run(); }) {}

UnreadGuard::~UnreadGuard() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
  if (epoll_ >= 0)
    ::close(epoll_);
}

void UnreadGuard::opened(int fd) {
  uint64_t bytes = 0;
  std::lock_guard lock(mutex_);
  if (!bytesReceived(fd, bytes)) {
    conns_.erase(fd); // ipc://: not watched
    return;
  }
  // Counted from the connection's first byte: the greeting and handshake are
  // in the credit, and a bomb that started before this event is not missed.
  conns_[fd] = Conn{0, 0, Clock::now(), false};
  // Edge-triggered: the descriptor is reported once per check in which bytes
  // arrived on it, so idle connections cost nothing (libzmq's own epoll set
  // is not disturbed; a closed descriptor leaves this set by itself).
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLET;
  ev.data.fd = fd;
  if (epoll_ >= 0 && ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST)
    (void)::epoll_ctl(epoll_, EPOLL_CTL_MOD, fd, &ev);
}

void UnreadGuard::closed(int fd) {
  std::lock_guard lock(mutex_);
  conns_.erase(fd); // (its epoll entry went with the descriptor's close)
}

void UnreadGuard::delivered(int fd, uint64_t bytes, uint64_t frames) {
  std::lock_guard lock(mutex_);
  if (auto it = conns_.find(fd); it != conns_.end())
    it->second.delivered += bytes + frames * kFrameOverhead;
}

uint64_t UnreadGuard::shutCount() const {
  std::lock_guard lock(mutex_);
  return shut_;
}

void UnreadGuard::run() {
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, interval_, [&] { return stop_; })) {
    try {
      check(Clock::now());
    } catch (const std::exception &e) { // (memory for a log line): the next check retries
      std::fprintf(stderr, "thinfarm-coordinator: warning: the unread check failed: %s\n",
                   e.what());
    }
  }
}

// With the lock held: one getsockopt per connection that received bytes
// since the last check (every watched one, without epoll).
void UnreadGuard::check(Clock::time_point now) {
  auto one = [&](int fd) {
    if (auto it = conns_.find(fd); it != conns_.end())
      if (uint64_t unread = 0; over(fd, it->second, now, unread))
        shut(fd, it->second, unread);
  };
  if (epoll_ < 0) {
    for (auto &[fd, c] : conns_)
      one(fd);
    return;
  }
  constexpr int kBatch = 256;
  epoll_event ready[kBatch];
  for (int n = kBatch; n == kBatch;) {
    n = ::epoll_wait(epoll_, ready, kBatch, 0);
    for (int i = 0; i < n; ++i)
      one(ready[i].data.fd);
  }
}

bool UnreadGuard::over(int fd, Conn &c, Clock::time_point now, uint64_t &unread) {
  uint64_t received = 0;
  if (c.shut || !bytesReceived(fd, received) || received == c.seen)
    return false; // nothing moved since the last check
  c.seen = received;
  auto alive = std::chrono::duration_cast<std::chrono::seconds>(now - c.since).count() + 1;
  uint64_t credit = c.delivered + static_cast<uint64_t>(alive) * kIdleCreditPerSecond;
  unread = received > credit ? received - credit : 0;
  return unread > maxUnread_;
}

void UnreadGuard::shut(int fd, Conn &c, uint64_t unread) {
  c.shut = true;
  ::shutdown(fd, SHUT_RDWR);
  ++shut_;
  std::fprintf(stderr,
               "thinfarm-coordinator: shut the connection of %s: %llu bytes received on it, "
               "%llu delivered as messages, %llu over the credit (an unfinished multipart "
               "message?); the cap is --max-unread %llu (%llu shut so far)\n",
               describe_(fd).c_str(), static_cast<unsigned long long>(c.seen),
               static_cast<unsigned long long>(c.delivered),
               static_cast<unsigned long long>(unread),
               static_cast<unsigned long long>(maxUnread_),
               static_cast<unsigned long long>(shut_));
}

} // namespace thinfarm::wire

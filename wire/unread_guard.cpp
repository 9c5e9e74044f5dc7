// UnreadGuard: the kernel's byte count of a TCP connection against the bytes
// of the messages delivered from it (see unread_guard.h). Its own file
// because it reads <linux/tcp.h>'s tcp_info (glibc's lacks the byte counts),
// which cannot be included beside <netinet/tcp.h>.
#include "wire/unread_guard.h"

#include <zmq.h>

#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <utility>

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

bool nextMonitorEvent(void *monitor, uint16_t &id, uint32_t &value) {
  zmq_msg_t event;
  zmq_msg_init(&event);
  if (zmq_msg_recv(&event, monitor, ZMQ_DONTWAIT) < 0) {
    zmq_msg_close(&event);
    return false;
  }
  id = 0;
  value = 0;
  if (zmq_msg_size(&event) >= 6) {
    std::memcpy(&id, zmq_msg_data(&event), sizeof id);
    std::memcpy(&value, static_cast<const char *>(zmq_msg_data(&event)) + 2, sizeof value);
  }
  bool more = zmq_msg_more(&event);
  zmq_msg_close(&event);
  while (more) { // the endpoint frame
    zmq_msg_t rest;
    zmq_msg_init(&rest);
    bool got = zmq_msg_recv(&rest, monitor, ZMQ_DONTWAIT) >= 0;
    more = got && zmq_msg_more(&rest);
    zmq_msg_close(&rest);
  }
  return true;
}

UnreadGuard::UnreadGuard(Events events, uint64_t maxUnread, std::chrono::milliseconds interval,
                         std::function<std::string(int)> describe)
    : events_(std::move(events)), maxUnread_(maxUnread),
      interval_(std::max(interval, std::chrono::milliseconds(1))), describe_(std::move(describe)),
      stop_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      thread_([this] { run(); }) {}

UnreadGuard::~UnreadGuard() {
  uint64_t one = 1;
  if (stop_ < 0 || ::write(stop_, &one, sizeof one) != sizeof one)
    std::abort(); // the thread could not be stopped: nothing sane is left to do
  thread_.join();
  ::close(stop_);
  if (epoll_ >= 0)
    ::close(epoll_);
}

std::vector<int> UnreadGuard::takeClosed() {
  std::lock_guard lock(mutex_);
  return std::exchange(closed_, {});
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
  closed_.push_back(fd);
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

// Waits for monitor events or the next check, whichever comes first.
void UnreadGuard::run() {
  auto next = Clock::now() + interval_;
  for (;;) {
    // Rounded up: a wait cut down to 0 ms would spin through the last
    // millisecond of every interval (measured: ~400 polls a second, 1.5% of a
    // core through a whole link).
    auto wait = std::chrono::ceil<std::chrono::milliseconds>(next - Clock::now());
    zmq_pollitem_t items[2] = {{nullptr, stop_, ZMQ_POLLIN, 0},
                               {events_.monitor, 0, ZMQ_POLLIN, 0}};
    if (zmq_poll(items, events_.monitor ? 2 : 1, std::max<long>(wait.count(), 0)) > 0 &&
        (items[0].revents & ZMQ_POLLIN))
      return;
    try {
      events();
      if (auto now = Clock::now(); now >= next) {
        next = now + interval_;
        if (maxUnread_ > 0) {
          std::lock_guard lock(mutex_);
          check(now);
        }
      }
    } catch (const std::exception &e) { // (memory for a log line): the next round retries
      std::fprintf(stderr, "thinfarm-coordinator: warning: the unread check failed: %s\n",
                   e.what());
    }
  }
}

// The monitor's events queued so far, in order.
void UnreadGuard::events() {
  uint16_t id = 0;
  uint32_t value = 0;
  while (events_.monitor && nextMonitorEvent(events_.monitor, id, value)) {
    int fd = static_cast<int>(value);
    if (id == ZMQ_EVENT_ACCEPTED) {
      if (maxUnread_ > 0)
        opened(fd);
      if (events_.opened)
        events_.opened(fd);
    } else if (id == ZMQ_EVENT_DISCONNECTED) {
      closed(fd);
      if (events_.closed)
        events_.closed(fd);
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
               static_cast<unsigned long long>(unread), static_cast<unsigned long long>(maxUnread_),
               static_cast<unsigned long long>(shut_));
}

} // namespace thinfarm::wire

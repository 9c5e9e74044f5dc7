#include "coordinator/store_lanes.h"

#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <poll.h>
#include <pthread.h>
#include <string>
#include <sys/eventfd.h>
#include <unistd.h>

namespace thinfarm {

StoreLanes::StoreLanes(size_t lanes) {
  assert(lanes > 0);
  wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_ < 0) { // descriptors exhausted at start: nothing sensible to serve with
    std::perror("thinfarm-coordinator: eventfd");
    std::abort();
  }
  for (size_t i = 0; i < lanes; ++i) {
    lanes_.push_back(std::make_unique<Lane>());
    Lane &lane = *lanes_.back();
    lane.thread = std::thread([this, &lane, i] {
      ::pthread_setname_np(::pthread_self(), ("tf-store" + std::to_string(i)).c_str());
      serve(lane);
    });
  }
}

StoreLanes::~StoreLanes() {
  for (auto &lane : lanes_) {
    {
      std::lock_guard<std::mutex> lock(lane->mu);
      lane->stop = true;
    }
    lane->cv.notify_one();
  }
  for (auto &lane : lanes_)
    lane->thread.join();
  ::close(wake_);
}

// Lane 0 is for work of no peer (the action cache's writes); peers share the
// rest, unless there is only one.
size_t StoreLanes::laneOf(const wire::PeerId &peer) const {
  if (lanes_.size() == 1)
    return 0;
  return 1 + std::hash<wire::PeerId>{}(peer) % (lanes_.size() - 1);
}

bool StoreLanes::busy(const wire::PeerId &peer) const {
  auto it = perPeer_.find(peer);
  return it != perPeer_.end() && it->second >= kMaxPerPeer;
}

void StoreLanes::enqueue(size_t lane, Task task) {
  ++tasks_;
  bytes_ += task.bytes;
  if (!task.peer.empty())
    ++perPeer_[task.peer];
  Lane &l = *lanes_[lane];
  {
    std::lock_guard<std::mutex> lock(l.mu);
    l.queue.push_back(std::move(task));
  }
  l.cv.notify_one();
}

void StoreLanes::submit(const wire::PeerId &peer, Work work, uint64_t bytes) {
  assert(!peer.empty());
  enqueue(laneOf(peer), Task{peer, bytes, std::move(work), {}});
}

void StoreLanes::after(const wire::PeerId &peer, Done then) {
  if (!holds(peer)) {
    then();
    return;
  }
  submit(peer, [then = std::move(then)] { return then; });
}

void StoreLanes::post(size_t lane, Work work) {
  enqueue(lane % lanes_.size(), Task{{}, 0, std::move(work), {}});
}

// A lane: each task's work in turn, its continuation handed back. Work does
// not throw (the coordinator wraps what may); one that does anyway is a bug,
// logged, and its continuation is none.
void StoreLanes::serve(Lane &lane) {
  for (;;) {
    Task task;
    {
      std::unique_lock<std::mutex> lock(lane.mu);
      lane.cv.wait(lock, [&] { return lane.stop || !lane.queue.empty(); });
      if (lane.queue.empty())
        return; // stopped, and nothing left
      task = std::move(lane.queue.front());
      lane.queue.pop_front();
    }
    try {
      task.done = task.work();
    } catch (const std::exception &e) {
      std::fprintf(stderr, "thinfarm-coordinator: error: store work failed: %s\n", e.what());
    }
    task.work = nullptr; // what it captured goes now, on this thread
    {
      std::lock_guard<std::mutex> lock(doneMu_);
      done_.push_back(std::move(task));
    }
    uint64_t one = 1;
    (void)!::write(wake_, &one, sizeof one);
  }
}

size_t StoreLanes::runDone() {
  uint64_t n;
  (void)!::read(wake_, &n, sizeof n); // reset before taking, so a later hand-back wakes again
  std::deque<Task> done;
  {
    std::lock_guard<std::mutex> lock(doneMu_);
    done.swap(done_);
  }
  for (Task &t : done) {
    --tasks_;
    bytes_ -= t.bytes;
    if (!t.peer.empty()) {
      auto it = perPeer_.find(t.peer);
      if (--it->second == 0)
        perPeer_.erase(it);
    }
    if (t.done)
      t.done();
  }
  return done.size();
}

void StoreLanes::drain() {
  while (!empty()) {
    pollfd p{wake_, POLLIN, 0};
    (void)::poll(&p, 1, 100);
    runDone();
  }
}

} // namespace thinfarm

// The coordinator's store work, off its event loop: the loop never waits on
// disk (RocksDB reads and writes, hashing a native read back).
//
// Algorithm: a few lanes, each a thread with a FIFO of tasks. A task belongs
// to a peer, and every task of one peer goes to the same lane (by a hash of
// its routing id), so a peer's tasks run in the order its messages came. A
// task's work runs on its lane and returns a continuation, which the lane
// hands back to the loop through one completion queue (an eventfd the loop
// polls beside its socket says there is something in it); a lane hands back
// in its own order, so a peer's continuations run in order too. A message
// that needs no store but comes after some of its peer's that are still
// queued (an EndSession behind a session part whose cached jobs are being
// read, a worker's heartbeat behind its result) goes the same way as an empty
// task (after()): the scheduler sees each peer's messages in the order the
// peer sent them, as when the loop did all of it. Work of no peer (the action
// cache's writes, the statistics) runs on lane 0, which no peer shares (when
// there is more than one lane), in the order given: a quarantined worker's
// records are dropped before the right ones are written, and a cache write
// waits behind no session's lookups.
//
// Why lanes, not one store thread: a warm vmlinux.o session reads and hashes
// every cached native (~0.1 s); with one thread every other peer's uploads
// and downloads would wait behind it, as they did behind the loop. Why not a
// pool: a peer's order.
//
// Bounds: a task counts from submit() until its continuation has run, in
// total and per peer, with the bytes it carries. Over kMaxTasks or kMaxBytes
// in total the loop stops reading its socket until they drain (full()):
// ZeroMQ's and TCP's buffers hold the rest, and the senders slow down. A peer
// with kMaxPerPeer tasks queued has its next request answered Overloaded by
// the coordinator (busy()), which the client's retry policy backs off from.
#pragma once

#include "wire/transport.h"

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace thinfarm {

class StoreLanes {
public:
  using Done = std::function<void()>; // on the loop
  using Work = std::function<Done()>; // on a lane; returns what the loop does next (may be empty)

  static constexpr size_t kMaxTasks = 4096;
  static constexpr uint64_t kMaxBytes = uint64_t(256) << 20;
  static constexpr size_t kMaxPerPeer = 64;

  explicit StoreLanes(size_t lanes);
  // Lets every lane finish the work it holds, then joins them; continuations
  // not yet run are dropped (drain() first to run them).
  ~StoreLanes();
  StoreLanes(const StoreLanes &) = delete;
  StoreLanes &operator=(const StoreLanes &) = delete;

  size_t lanes() const { return lanes_.size(); }
  size_t laneOf(const wire::PeerId &peer) const;

  // work on peer's lane, after the peer's earlier tasks; bytes: what it holds.
  void submit(const wire::PeerId &peer, Work work, uint64_t bytes = 0);
  // Whether peer has tasks queued (submitted, continuation not yet run).
  bool holds(const wire::PeerId &peer) const { return perPeer_.count(peer) != 0; }
  // then on the loop: now, when peer has nothing queued; else after it.
  void after(const wire::PeerId &peer, Done then);
  // work of no peer, on the given lane, after what that lane holds.
  void post(size_t lane, Work work);

  bool full() const { return tasks_ >= kMaxTasks || bytes_ >= kMaxBytes; }
  bool busy(const wire::PeerId &peer) const;
  bool empty() const { return tasks_ == 0; }

  // Readable while continuations wait to run.
  int fd() const { return wake_; }
  // Runs the continuations handed back so far, in order; returns how many.
  size_t runDone();
  // Until every task submitted, and every task their continuations submit,
  // has run with its continuation (at stop).
  void drain();

private:
  struct Task {
    wire::PeerId peer; // empty: no peer
    uint64_t bytes = 0;
    Work work;
    Done done;
  };
  struct Lane {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Task> queue;
    bool stop = false;
    std::thread thread;
  };
  void enqueue(size_t lane, Task task);
  void serve(Lane &lane);

  std::vector<std::unique_ptr<Lane>> lanes_;
  int wake_ = -1; // eventfd

  std::mutex doneMu_;
  std::deque<Task> done_; // work run; done set

  // The loop's own: what is queued (submitted, continuation not run yet).
  size_t tasks_ = 0;
  uint64_t bytes_ = 0;
  std::unordered_map<wire::PeerId, size_t> perPeer_;
};

} // namespace thinfarm

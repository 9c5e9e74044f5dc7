// The coordinator's store lanes (coordinator/store_lanes.h), on their real
// threads: a peer's work and what follows it stay in the peer's order, other
// peers are not held behind it, and the bounds say full and busy when they
// should. The work here waits on the test (a gate) where the coordinator's
// would wait on RocksDB.
#include "coordinator/store_lanes.h"

#include <gtest/gtest.h>

#include <future>
#include <poll.h>
#include <string>
#include <vector>

namespace thinfarm {
namespace {

using namespace std::chrono_literals;

// Runs what the lanes hand back until `until` holds (or 5 s pass).
template <class F> bool runUntil(StoreLanes &lanes, F until) {
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!until()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    pollfd p{lanes.fd(), POLLIN, 0};
    (void)::poll(&p, 1, 50);
    lanes.runDone();
  }
  return true;
}

TEST(StoreLanes, APeersMessagesStayInOrderBehindItsStoreWork) {
  StoreLanes lanes(4);
  std::promise<void> gate;
  std::shared_future<void> open = gate.get_future().share();
  std::vector<std::string> seen;
  // Peer a's first message waits on the store; its next needs none, but must
  // not overtake it. Peer b, meanwhile, is served at once.
  lanes.submit("a", [&, open]() -> StoreLanes::Done {
    open.wait();
    return [&] { seen.push_back("a: store work done"); };
  });
  lanes.after("a", [&] { seen.push_back("a: next message"); });
  lanes.after("b", [&] { seen.push_back("b: served"); });
  EXPECT_EQ(seen, std::vector<std::string>{"b: served"}) << "b waited behind a's store work";
  EXPECT_FALSE(lanes.empty());
  gate.set_value();
  ASSERT_TRUE(runUntil(lanes, [&] { return lanes.empty(); }));
  EXPECT_EQ(seen, (std::vector<std::string>{"b: served", "a: store work done", "a: next message"}));
  // With nothing queued, a message needs no trip through a lane.
  lanes.after("a", [&] { seen.push_back("a: direct"); });
  EXPECT_EQ(seen.back(), "a: direct");
}

TEST(StoreLanes, ABlockedLaneHoldsOnlyItsOwnPeers) {
  StoreLanes lanes(3); // lane 0 for work of no peer, two for peers
  std::string slow = "slow", other;
  for (int i = 0; other.empty() && i < 1000; ++i)
    if (auto p = "peer" + std::to_string(i); lanes.laneOf(p) != lanes.laneOf(slow))
      other = p;
  ASSERT_FALSE(other.empty());
  EXPECT_NE(lanes.laneOf(slow), 0u);
  std::promise<void> gate;
  std::shared_future<void> open = gate.get_future().share();
  bool slowDone = false, otherDone = false, cacheDone = false;
  lanes.submit(slow, [&, open]() -> StoreLanes::Done {
    open.wait();
    return [&] { slowDone = true; };
  });
  lanes.submit(other, [&]() -> StoreLanes::Done { return [&] { otherDone = true; }; });
  lanes.post(0, [&]() -> StoreLanes::Done { return [&] { cacheDone = true; }; });
  EXPECT_TRUE(runUntil(lanes, [&] { return otherDone && cacheDone; }));
  EXPECT_FALSE(slowDone);
  gate.set_value();
  EXPECT_TRUE(runUntil(lanes, [&] { return slowDone; }));
}

TEST(StoreLanes, BoundsInTotalAndPerPeer) {
  StoreLanes lanes(2);
  std::promise<void> gate;
  std::shared_future<void> open = gate.get_future().share();
  auto wait = [open]() -> StoreLanes::Done {
    open.wait();
    return {};
  };
  for (size_t i = 0; i < StoreLanes::kMaxPerPeer; ++i) {
    EXPECT_FALSE(lanes.busy("flood"));
    lanes.submit("flood", wait);
  }
  EXPECT_TRUE(lanes.busy("flood"));
  EXPECT_FALSE(lanes.busy("quiet"));
  EXPECT_FALSE(lanes.full());
  // Bytes carried count too: a few uploads' chunks fill the lanes.
  lanes.submit("big", wait, StoreLanes::kMaxBytes);
  EXPECT_TRUE(lanes.full());
  gate.set_value();
  ASSERT_TRUE(runUntil(lanes, [&] { return lanes.empty(); }));
  EXPECT_FALSE(lanes.full());
  EXPECT_FALSE(lanes.busy("flood"));
}

// Work that throws is a bug in the coordinator (it wraps what may throw):
// the lane logs it and serves on.
TEST(StoreLanes, AThrowingWorkDoesNotStopItsLane) {
  StoreLanes lanes(1);
  bool after = false;
  lanes.submit("p", []() -> StoreLanes::Done { throw std::runtime_error("boom"); });
  lanes.submit("p", [&]() -> StoreLanes::Done { return [&] { after = true; }; });
  EXPECT_TRUE(runUntil(lanes, [&] { return after && lanes.empty(); }));
}

} // namespace
} // namespace thinfarm

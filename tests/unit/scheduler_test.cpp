// The coordinator's scheduling rules, driven event by event without sockets:
// peers are plain names, and what the scheduler sends is read off the Outbox.
#include "coordinator/scheduler.h"

#include <gtest/gtest.h>

namespace thinfarm {
namespace {

using namespace std::chrono_literals;

template <class T> std::vector<std::pair<wire::PeerId, T>> only(const Outbox &out) {
  std::vector<std::pair<wire::PeerId, T>> v;
  for (const auto &[peer, m] : out)
    if (const T *body = std::get_if<T>(&m.body))
      v.push_back({peer, *body});
  return v;
}

wire::JobSpec job(const std::string &module, uint64_t cost, uint32_t task = 0) {
  wire::JobSpec j;
  j.task = task;
  j.module = {module + ".o", Digest::of(module)};
  j.shard = Digest::of(module + ".shard");
  j.cost = cost;
  return j;
}

wire::JobResult result(uint64_t jobId, std::optional<wire::ErrorMsg> error = std::nullopt) {
  wire::JobResult r;
  r.jobId = jobId;
  r.error = std::move(error);
  if (!r.error)
    r.native = Digest::of("native of job " + std::to_string(jobId));
  r.worker = "box";
  return r;
}

class SchedulerTest : public ::testing::Test {
protected:
  void addSlot(const wire::PeerId &peer, const std::string &toolchain = "T", uint32_t slots = 1) {
    s_.onRegister(peer, wire::RegisterWorker{"box-" + peer, toolchain, slots}, 1, t0_,
                  out_);
  }
  void submit(const wire::PeerId &client, uint64_t session, std::vector<wire::JobSpec> jobs,
              const std::string &toolchain = "T") {
    s_.onSubmit(client, wire::Session{session, toolchain, "out", BackendConfig{}, std::move(jobs)},
                session * 10, t0_, out_);
  }
  void finish(const wire::PeerId &slot, wire::JobResult r, Clock::duration after = 1s) {
    s_.onJobResult(slot, std::move(r), t0_ + after, out_);
  }
  Outbox take() { return std::exchange(out_, {}); }

  Scheduler s_;
  Outbox out_;
  Clock::time_point t0_ = Clock::now();
};

// A worker connection gets as many jobs at once as it has slots, no more.
TEST_F(SchedulerTest, AConnectionTakesAJobPerSlot) {
  addSlot("w1", "T", 2);
  take();
  submit("c1", 1, {job("a", 10, 0), job("b", 30, 1), job("c", 20, 2)});
  auto runs = only<wire::RunJob>(take());
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].second.spec.cost, 30u);
  EXPECT_EQ(runs[1].second.spec.cost, 20u);
  EXPECT_EQ(s_.pending(), 1u);
  finish("w1", result(runs[1].second.jobId));
  runs = only<wire::RunJob>(take());
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].second.spec.cost, 10u);
}

// While plenty of jobs are pending, one more waits on each worker so a slot
// never idles for a round trip; near the end nothing waits.
TEST_F(SchedulerTest, OneJobWaitsOnAWorkerOnlyWhileWorkIsPlenty) {
  addSlot("w1");
  take();
  submit("c1", 1, {job("a", 40, 0), job("b", 30, 1), job("c", 20, 2), job("d", 10, 3)});
  auto runs = only<wire::RunJob>(take());
  ASSERT_EQ(runs.size(), 2u); // a runs, b waits: c and d still pending
  EXPECT_EQ(runs[1].second.spec.cost, 30u);
  finish("w1", result(runs[0].second.jobId)); // c, d pending: c waits behind b
  auto next = only<wire::RunJob>(take());
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].second.spec.cost, 20u);
  finish("w1", result(runs[1].second.jobId)); // only d pending: it does not wait
  EXPECT_TRUE(only<wire::RunJob>(take()).empty());
  finish("w1", result(next[0].second.jobId));
  next = only<wire::RunJob>(take());
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].second.spec.cost, 10u);
}

TEST_F(SchedulerTest, LongestJobsFirst) {
  addSlot("w1");
  addSlot("w2");
  auto acks = only<wire::Registered>(take());
  ASSERT_EQ(acks.size(), 2u); // each registration is acknowledged, with its slots
  EXPECT_EQ(acks[0].second.slots, 1u);
  EXPECT_EQ(acks[0].first, "w1");
  EXPECT_EQ(s_.workers(), 2u);

  submit("c1", 1, {job("a", 10, 0), job("b", 30, 1), job("c", 20, 2)});
  auto runs = only<wire::RunJob>(take());
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].second.spec.cost, 30u);
  EXPECT_EQ(runs[0].second.spec.module.bitcode, Digest::of("b"));
  EXPECT_EQ(runs[1].second.spec.cost, 20u);
  EXPECT_NE(runs[0].first, runs[1].first);
  EXPECT_EQ(s_.pending(), 1u);

  finish(runs[0].first, result(runs[0].second.jobId));
  Outbox out = take();
  auto results = only<wire::JobResult>(out);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].first, "c1");
  EXPECT_EQ(results[0].second.sessionId, 1u);
  EXPECT_EQ(results[0].second.task, 1u);
  EXPECT_FALSE(results[0].second.error.has_value());
  EXPECT_EQ(results[0].second.native, result(runs[0].second.jobId).native);
  auto third = only<wire::RunJob>(out);
  ASSERT_EQ(third.size(), 1u);
  EXPECT_EQ(third[0].first, runs[0].first); // the slot just freed
  EXPECT_EQ(third[0].second.spec.cost, 10u);
  EXPECT_EQ(third[0].second.spec.task, 0u);
  EXPECT_EQ(s_.pending(), 0u);
}

TEST_F(SchedulerTest, UnservedToolchainIsUnimplemented) {
  addSlot("w1", "T");
  take();
  submit("c1", 1, {job("a", 10)}, "U");
  Outbox out = take();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].first, "c1");
  EXPECT_EQ(out[0].second.requestId, 10u);
  const auto *e = out[0].second.get<wire::ErrorMsg>();
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->kind, ErrorKind::Unimplemented);
  EXPECT_NE(e->message.find("U"), std::string::npos) << e->message;
  EXPECT_TRUE(s_.idle());
}

TEST_F(SchedulerTest, IdenticalJobsOfTwoSessionsRunOnce) {
  addSlot("w1");
  addSlot("w2");
  submit("c1", 1, {job("x", 10, 0)});
  submit("c2", 2, {job("x", 10, 5), job("y", 10, 6)});
  auto runs = only<wire::RunJob>(take());
  ASSERT_EQ(runs.size(), 2u); // x once, and y
  ASSERT_EQ(runs[0].second.spec.module.bitcode, Digest::of("x"));
  EXPECT_EQ(runs[1].second.spec.module.bitcode, Digest::of("y"));
  EXPECT_EQ(s_.pending(), 0u);

  finish(runs[0].first, result(runs[0].second.jobId));
  Outbox out = take();
  EXPECT_TRUE(only<wire::RunJob>(out).empty());
  auto results = only<wire::JobResult>(out);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].first, "c1");
  EXPECT_EQ(results[0].second.sessionId, 1u);
  EXPECT_EQ(results[0].second.task, 0u);
  EXPECT_FALSE(results[0].second.merged);
  EXPECT_EQ(results[1].first, "c2");
  EXPECT_EQ(results[1].second.sessionId, 2u);
  EXPECT_EQ(results[1].second.task, 5u);
  EXPECT_TRUE(results[1].second.merged);
  EXPECT_EQ(results[1].second.native, results[0].second.native);
}

TEST_F(SchedulerTest, LostJobsAreRetriedThenGivenUp) {
  addSlot("w1");
  submit("c1", 1, {job("a", 10, 3)});
  auto runs = only<wire::RunJob>(take());
  ASSERT_EQ(runs.size(), 1u);
  uint64_t id = runs[0].second.jobId;
  for (int attempt = 1; attempt < Scheduler::kAttempts; ++attempt) {
    finish("w1", result(id, wire::ErrorMsg{ErrorKind::Disconnected, "backend crashed"}));
    Outbox out = take();
    EXPECT_TRUE(only<wire::JobResult>(out).empty()) << "attempt " << attempt;
    auto again = only<wire::RunJob>(out);
    ASSERT_EQ(again.size(), 1u) << "attempt " << attempt;
    EXPECT_EQ(again[0].second.spec.module.bitcode, Digest::of("a"));
    id = again[0].second.jobId;
  }
  finish("w1", result(id, wire::ErrorMsg{ErrorKind::Disconnected, "backend crashed"}));
  Outbox out = take();
  EXPECT_TRUE(only<wire::RunJob>(out).empty());
  auto results = only<wire::JobResult>(out);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].first, "c1");
  EXPECT_EQ(results[0].second.task, 3u);
  ASSERT_TRUE(results[0].second.error.has_value());
  EXPECT_EQ(results[0].second.error->kind, ErrorKind::Disconnected);
  EXPECT_NE(results[0].second.error->message.find("after 3 attempts"), std::string::npos)
      << results[0].second.error->message;
}

TEST_F(SchedulerTest, BackendFailureGoesStraightToTheClient) {
  addSlot("w1");
  submit("c1", 1, {job("bad", 10, 4), job("good", 5, 8)});
  auto runs = only<wire::RunJob>(take());
  ASSERT_EQ(runs.size(), 1u);
  finish("w1", result(runs[0].second.jobId, wire::ErrorMsg{ErrorKind::Failed, "bad bitcode"}));
  Outbox out = take();
  auto results = only<wire::JobResult>(out);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].second.task, 4u);
  ASSERT_TRUE(results[0].second.error.has_value());
  EXPECT_EQ(results[0].second.error->kind, ErrorKind::Failed);
  EXPECT_EQ(results[0].second.error->message, "bad bitcode");
  auto next = only<wire::RunJob>(out); // the slot moves on to the next job
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].second.spec.module.bitcode, Digest::of("good"));
}

TEST_F(SchedulerTest, SilentSlotLosesItsJob) {
  addSlot("w1");
  addSlot("w2");
  submit("c1", 1, {job("a", 10, 2)});
  auto runs = only<wire::RunJob>(take());
  ASSERT_EQ(runs.size(), 1u);
  wire::PeerId silent = runs[0].first, alive = silent == "w1" ? "w2" : "w1";

  s_.onHeartbeat(alive, t0_ + 3s, out_);
  s_.tick(t0_ + 4s, out_);
  EXPECT_TRUE(only<wire::RunJob>(take()).empty()) << "a slot silent for 4 s is not lost yet";
  s_.tick(t0_ + Scheduler::kWorkerTimeout + 1s, out_);
  auto moved = only<wire::RunJob>(take());
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(moved[0].first, alive);
  EXPECT_EQ(moved[0].second.spec.module.bitcode, Digest::of("a"));
  EXPECT_EQ(s_.workers(), 1u);

  // The silent slot's late answer is stale; the live slot's is delivered.
  finish(silent, result(runs[0].second.jobId), 7s);
  EXPECT_TRUE(take().empty());
  finish(alive, result(moved[0].second.jobId), 7s);
  auto results = only<wire::JobResult>(take());
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].second.task, 2u);
  EXPECT_FALSE(results[0].second.error.has_value());
}

} // namespace
} // namespace thinfarm

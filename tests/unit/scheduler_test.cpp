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

  Scheduler s_{SchedulerOptions{.verify = {0, 0, 1}}}; // no verification: the rules above alone
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

// A result too large for any message (its diagnostics alone over the limit)
// would be as large on every worker: the client runs the job, at once.
TEST_F(SchedulerTest, AResultTooLargeForTheWireGoesToTheClientAtOnce) {
  addSlot("w1");
  addSlot("w2");
  submit("c1", 1, {job("a", 10, 3)});
  auto runs = only<wire::RunJob>(take());
  ASSERT_EQ(runs.size(), 1u);
  finish(runs[0].first, result(runs[0].second.jobId,
                               wire::ErrorMsg{ErrorKind::Exceeded, "the backend's diagnostics "
                                                                   "are more than one message carries"}));
  Outbox out = take();
  EXPECT_TRUE(only<wire::RunJob>(out).empty()) << "it would not fit from another worker either";
  auto results = only<wire::JobResult>(out);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].first, "c1");
  ASSERT_TRUE(results[0].second.error.has_value());
  EXPECT_EQ(results[0].second.error->kind, ErrorKind::Disconnected) << "the client runs it";
  EXPECT_NE(results[0].second.error->message.find("more than one message carries"), std::string::npos)
      << results[0].second.error->message;
}

// With one worker there is no second opinion: its backend failure is the answer.
TEST_F(SchedulerTest, ABackendFailureOnTheOnlyWorkerGoesToTheClient) {
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

// A backend failure is believed only when a worker of another name repeats
// it; a failure on one worker that another does not repeat costs nothing.
TEST_F(SchedulerTest, ABackendFailureFailsTheLinkOnlyWhenASecondWorkerRepeatsIt) {
  addSlot("w1");
  addSlot("w2");
  take();
  submit("c1", 1, {job("bad", 10, 4)});
  auto runs = only<wire::RunJob>(take());
  ASSERT_EQ(runs.size(), 1u);
  const wire::PeerId first = runs[0].first;
  finish(first, result(runs[0].second.jobId, wire::ErrorMsg{ErrorKind::Failed, "bad bitcode"}));
  Outbox out = take();
  EXPECT_TRUE(only<wire::JobResult>(out).empty()) << "one worker's failure is not believed";
  auto again = only<wire::RunJob>(out);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_NE(again[0].first, first);
  finish(again[0].first,
         result(again[0].second.jobId, wire::ErrorMsg{ErrorKind::Failed, "bad bitcode"}));
  out = take();
  EXPECT_TRUE(only<wire::RunJob>(out).empty());
  auto results = only<wire::JobResult>(out);
  ASSERT_EQ(results.size(), 1u);
  ASSERT_TRUE(results[0].second.error.has_value());
  EXPECT_EQ(results[0].second.error->kind, ErrorKind::Failed);
  EXPECT_EQ(results[0].second.error->message, "bad bitcode");

  // Failed on one worker, fine on the other: the result is delivered.
  submit("c1", 2, {job("flaky", 10, 5)});
  runs = only<wire::RunJob>(take());
  ASSERT_EQ(runs.size(), 1u);
  finish(runs[0].first, result(runs[0].second.jobId, wire::ErrorMsg{ErrorKind::Failed, "crashed"}));
  again = only<wire::RunJob>(take());
  ASSERT_EQ(again.size(), 1u);
  EXPECT_NE(again[0].first, runs[0].first);
  finish(again[0].first, result(again[0].second.jobId));
  results = only<wire::JobResult>(take());
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].second.task, 5u);
  EXPECT_FALSE(results[0].second.error.has_value());
}

// A lost job (its backend child killed: the worker says disconnected) runs
// again on another worker, not on the one that lost it.
TEST_F(SchedulerTest, ALostJobRunsAgainOnAnotherWorker) {
  addSlot("w1");
  addSlot("w2");
  take();
  submit("c1", 1, {job("big", 10, 1)});
  auto runs = only<wire::RunJob>(take());
  ASSERT_EQ(runs.size(), 1u);
  const wire::PeerId first = runs[0].first;
  finish(first, result(runs[0].second.jobId,
                       wire::ErrorMsg{ErrorKind::Disconnected, "the backend was killed (SIGKILL)"}));
  Outbox out = take();
  EXPECT_TRUE(only<wire::JobResult>(out).empty());
  auto again = only<wire::RunJob>(out);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_NE(again[0].first, first);
  // Lost there too: with no third worker it may run on either again.
  finish(again[0].first, result(again[0].second.jobId,
                                wire::ErrorMsg{ErrorKind::Disconnected, "killed again"}));
  auto third = only<wire::RunJob>(take());
  ASSERT_EQ(third.size(), 1u);
  finish(third[0].first, result(third[0].second.jobId,
                                wire::ErrorMsg{ErrorKind::Disconnected, "killed a third time"}));
  auto results = only<wire::JobResult>(take());
  ASSERT_EQ(results.size(), 1u);
  ASSERT_TRUE(results[0].second.error.has_value());
  EXPECT_EQ(results[0].second.error->kind, ErrorKind::Disconnected) << "the client runs it";
}

// Stragglers: with nothing pending, an idle slot of another worker runs the
// longest-running job again; the first result is the job's only answer and
// the other run is cancelled (its late answer counts for nothing).
TEST_F(SchedulerTest, AStragglerRunsAgainOnAnIdleSlotAndTheFirstResultWins) {
  addSlot("w1");
  addSlot("w2");
  take();
  submit("c1", 1, {job("slow", 20, 1), job("quick", 10, 2)});
  auto runs = only<wire::RunJob>(take());
  ASSERT_EQ(runs.size(), 2u);
  const wire::PeerId slow = runs[0].first, quick = runs[1].first;
  const uint64_t slowId = runs[0].second.jobId;
  finish(quick, result(runs[1].second.jobId), 500ms);
  EXPECT_EQ(only<wire::JobResult>(take()).size(), 1u);
  s_.onHeartbeat("w1", t0_ + 1s, out_);
  s_.onHeartbeat("w2", t0_ + 1s, out_);
  s_.tick(t0_ + 1s, out_);
  EXPECT_TRUE(only<wire::RunJob>(take()).empty()) << "running 1 s is no straggler yet";
  s_.onHeartbeat("w1", t0_ + 3s, out_);
  s_.onHeartbeat("w2", t0_ + 3s, out_);
  s_.tick(t0_ + 3s, out_);
  auto spare = only<wire::RunJob>(take());
  ASSERT_EQ(spare.size(), 1u);
  EXPECT_EQ(spare[0].first, quick);
  EXPECT_EQ(spare[0].second.jobId, slowId);
  s_.tick(t0_ + 3500ms, out_);
  EXPECT_TRUE(only<wire::RunJob>(take()).empty()) << "a job runs at most twice";
  // The spare answers first: delivered once, the slow run cancelled.
  finish(quick, result(slowId), 4s);
  Outbox out = take();
  auto results = only<wire::JobResult>(out);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].second.task, 1u);
  auto cancels = only<wire::CancelJob>(out);
  ASSERT_EQ(cancels.size(), 1u);
  EXPECT_EQ(cancels[0].first, slow);
  EXPECT_EQ(cancels[0].second.jobId, slowId);
  // The cancelled run's answer, should it come anyway, is stale.
  finish(slow, result(slowId), 5s);
  EXPECT_TRUE(take().empty());
  // Both slots are free again.
  submit("c1", 2, {job("x", 5, 1), job("y", 4, 2)});
  EXPECT_EQ(only<wire::RunJob>(take()).size(), 2u);
}

// A straggler's run that fails leaves the job to its other run.
TEST_F(SchedulerTest, AStragglersLostRunLeavesTheJobToTheOther) {
  addSlot("w1");
  addSlot("w2");
  take();
  submit("c1", 1, {job("slow", 20, 1)});
  auto runs = only<wire::RunJob>(take());
  ASSERT_EQ(runs.size(), 1u);
  const wire::PeerId first = runs[0].first;
  const uint64_t id = runs[0].second.jobId;
  s_.onHeartbeat("w1", t0_ + 3s, out_);
  s_.onHeartbeat("w2", t0_ + 3s, out_);
  s_.tick(t0_ + 3s, out_);
  auto spare = only<wire::RunJob>(take());
  ASSERT_EQ(spare.size(), 1u);
  finish(spare[0].first, result(id, wire::ErrorMsg{ErrorKind::Disconnected, "killed"}), 4s);
  Outbox out = take();
  EXPECT_TRUE(only<wire::RunJob>(out).empty()) << "not queued again: its first run goes on";
  EXPECT_TRUE(only<wire::JobResult>(out).empty());
  finish(first, result(id), 5s);
  auto results = only<wire::JobResult>(take());
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].second.error.has_value());
}

TEST_F(SchedulerTest, SilentSlotLosesItsJob) {
  s_ = Scheduler(SchedulerOptions{.verify = {0, 0, 1}, .stragglers = false});
  addSlot("w1");
  addSlot("w2");
  submit("c1", 1, {job("a", 10, 2)});
  auto runs = only<wire::RunJob>(take());
  ASSERT_EQ(runs.size(), 1u);
  wire::PeerId silent = runs[0].first, alive = silent == "w1" ? "w2" : "w1";

  const auto almost = Scheduler::kWorkerTimeout - 500ms;
  s_.onHeartbeat(alive, t0_ + almost, out_);
  s_.tick(t0_ + almost, out_);
  EXPECT_TRUE(only<wire::RunJob>(take()).empty()) << "a slot silent for less than the timeout is not lost yet";
  s_.tick(t0_ + Scheduler::kWorkerTimeout + 500ms, out_);
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

// A job past its deadline runs on another worker; the worker that overran
// counts as busy until it answers; past a second deadline the client runs it.
TEST_F(SchedulerTest, AJobPastItsDeadlineRunsElsewhereThenOnTheClient) {
  s_ = Scheduler(SchedulerOptions{.verify = {0, 0, 1}, .jobDeadline = 10s, .stragglers = false});
  addSlot("w1");
  addSlot("w2");
  addSlot("w3");
  take();
  auto beat = [&](Clock::time_point t) {
    for (const char *w : {"w1", "w2", "w3"})
      s_.onHeartbeat(w, t, out_);
  };
  submit("c1", 1, {job("slow", 10, 6)});
  auto runs = only<wire::RunJob>(take());
  ASSERT_EQ(runs.size(), 1u);
  const wire::PeerId first = runs[0].first;
  beat(t0_ + 9s);
  s_.tick(t0_ + 9s, out_);
  EXPECT_TRUE(only<wire::RunJob>(take()).empty()) << "not yet";
  beat(t0_ + 11s);
  s_.tick(t0_ + 11s, out_);
  auto moved = only<wire::RunJob>(take());
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_NE(moved[0].first, first);
  auto e = s_.takeEvents();
  ASSERT_EQ(e.log.size(), 1u);
  EXPECT_NE(e.log[0].find("slow.o ran past its deadline of 10 s on worker box-" + first),
            std::string::npos);
  // The first worker's slot is still busy: a new job goes elsewhere.
  submit("c1", 2, {job("other", 5, 1)});
  auto other = only<wire::RunJob>(take());
  ASSERT_EQ(other.size(), 1u);
  EXPECT_NE(other[0].first, first);
  EXPECT_NE(other[0].first, moved[0].first);
  // Overrun again: the client runs it.
  beat(t0_ + 22s);
  s_.tick(t0_ + 22s, out_);
  auto results = only<wire::JobResult>(take());
  ASSERT_EQ(results.size(), 1u) << "slow.o overran twice (other.o once: it runs elsewhere)";
  bool gaveUp = false;
  for (auto &[peer, r] : results)
    if (r.task == 6) {
      ASSERT_TRUE(r.error);
      EXPECT_EQ(r.error->kind, ErrorKind::Disconnected);
      gaveUp = true;
    }
  EXPECT_TRUE(gaveUp);
}

// One client's sessions and queued jobs are capped; over a cap it is told
// to back off, and another client is served.
TEST_F(SchedulerTest, AClientsSessionsAndQueuedJobsAreCapped) {
  s_ = Scheduler(SchedulerOptions{.verify = {0, 0, 1}, .maxSessions = 2, .maxQueuedJobs = 5});
  addSlot("w1");
  take();
  submit("c1", 1, {job("a", 1, 0), job("b", 1, 1)});
  submit("c1", 2, {job("c", 1, 0)});
  auto errors = only<wire::ErrorMsg>(take());
  EXPECT_TRUE(errors.empty());
  submit("c1", 3, {job("d", 1, 0)});
  errors = only<wire::ErrorMsg>(take());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].second.kind, ErrorKind::Overloaded);
  EXPECT_NE(errors[0].second.message.find("2 sessions open"), std::string::npos);
  s_.onEndSession("c1", 2);
  submit("c1", 4, {job("e", 1, 0), job("f", 1, 1), job("g", 1, 2)}); // 2 + 3 > 5? no: 5
  EXPECT_TRUE(only<wire::ErrorMsg>(take()).empty());
  s_.onEndSession("c1", 4);
  submit("c1", 5, {job("e", 1, 0), job("f", 1, 1), job("g", 1, 2), job("h", 1, 3)});
  errors = only<wire::ErrorMsg>(take());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].second.message.find("2 jobs queued; 4 more would pass 5"), std::string::npos);
  submit("c2", 6, {job("x", 1, 0), job("y", 1, 1), job("z", 1, 2)});
  EXPECT_TRUE(only<wire::ErrorMsg>(take()).empty()) << "another client is not affected";
}

// An admin drains a worker: its running job finishes, it gets no new ones,
// and the statistics say so; resumed, it gets jobs again.
TEST_F(SchedulerTest, ADrainedWorkerFinishesItsJobsAndGetsNoNewOnes) {
  addSlot("w1");
  addSlot("w2");
  take();
  submit("c1", 1, {job("a", 10, 0), job("b", 9, 1), job("c", 8, 2), job("d", 7, 3)});
  auto runs = only<wire::RunJob>(take());
  std::optional<wire::RunJob> onW1;
  for (auto &[peer, run] : runs)
    if (peer == "w1" && !onW1)
      onW1 = run;
  ASSERT_TRUE(onW1);
  EXPECT_FALSE(s_.drain("box-nobody", true, out_));
  ASSERT_TRUE(s_.drain("box-w1", true, out_));
  finish("w1", result(onW1->jobId));
  Outbox out = take();
  EXPECT_EQ(only<wire::JobResult>(out).size(), 1u) << "its running job is delivered";
  for (auto &[peer, run] : only<wire::RunJob>(out))
    EXPECT_NE(peer, "w1") << "a drained worker got a job";
  for (const wire::WorkerStats &w : s_.workerStats())
    EXPECT_EQ(w.draining, w.name == "box-w1") << w.name;
  addSlot("w1"); // registering again does not end a drain
  EXPECT_TRUE(only<wire::RunJob>(take()).empty());
  ASSERT_TRUE(s_.drain("box-w1", false, out_));
  auto resumed = only<wire::RunJob>(take());
  ASSERT_FALSE(resumed.empty());
  EXPECT_EQ(resumed[0].first, "w1");
}

// Verification (verification.h), two results of probation and no sampling
// unless a test asks: what each worker answers is set per test.
class VerificationTest : public SchedulerTest {
protected:
  VerificationTest() { s_ = Scheduler(SchedulerOptions{.verify = {2, 0, 1}}); }

  static wire::JobSpec keyed(const std::string &module, uint64_t cost, uint32_t task) {
    wire::JobSpec j = job(module, cost, task);
    j.key = Digest::of("key of " + module);
    return j;
  }
  // The RunJob sent to someone since the last take(), and whom.
  std::pair<wire::PeerId, wire::RunJob> dispatched() {
    auto runs = only<wire::RunJob>(take());
    EXPECT_EQ(runs.size(), 1u);
    return runs.empty() ? std::pair<wire::PeerId, wire::RunJob>{} : runs[0];
  }
  // peer answers the job with an object named `object`, under the job's key.
  void answer(const std::pair<wire::PeerId, wire::RunJob> &run, const std::string &object,
              std::optional<Digest> key = std::nullopt) {
    wire::JobResult r;
    r.jobId = run.second.jobId;
    r.native = Digest::of(object);
    r.key = key ? *key : run.second.spec.key;
    r.worker = "box-" + run.first;
    s_.onJobResult(run.first, std::move(r), t0_ + 1s, out_);
  }
  std::vector<wire::JobResult> delivered() {
    std::vector<wire::JobResult> v;
    for (auto &[peer, r] : only<wire::JobResult>(out_))
      v.push_back(r);
    std::erase_if(out_, [](const auto &e) { return std::holds_alternative<wire::JobResult>(e.second.body); });
    return v;
  }
};

// A worker on probation: its result is held until a worker of another name
// returns the same object; both agreements count, and after probation its
// results go straight to the client.
TEST_F(VerificationTest, ProbationHoldsAResultUntilASecondWorkerAgrees) {
  addSlot("w1");
  addSlot("w2");
  take();
  for (int round = 0; round < 2; ++round) {
    submit("c1", 1 + round, {keyed("a" + std::to_string(round), 10, 3)});
    auto first = dispatched();
    answer(first, "obj");
    EXPECT_TRUE(delivered().empty()) << "held until checked";
    auto second = dispatched();
    EXPECT_NE(second.first, first.first) << "checked on the other worker";
    answer(second, "obj");
    auto got = delivered();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].native, Digest::of("obj"));
    EXPECT_EQ(got[0].task, 3u);
    auto e = s_.takeEvents();
    ASSERT_EQ(e.cache.size(), 1u); // cached once, under the dispatched key
    EXPECT_EQ(e.cache[0].key, Digest::of("key of a" + std::to_string(round)));
    EXPECT_TRUE(e.quarantined.empty());
    take();
  }
  for (const wire::WorkerStats &w : s_.workerStats())
    EXPECT_EQ(w.probation, 0u) << w.name;
  submit("c1", 9, {keyed("b", 10, 4)});
  answer(dispatched(), "obj-b");
  EXPECT_EQ(delivered().size(), 1u) << "past probation: delivered at once";
  EXPECT_TRUE(only<wire::RunJob>(take()).empty()) << "and not run again (fraction 0)";
}

// Two workers disagree: a third decides, the odd one out is quarantined, its
// running jobs move, it gets no more, and the statistics say so.
TEST_F(VerificationTest, ADisagreementIsDecidedByAThirdWorkerAndTheLiarQuarantined) {
  addSlot("w1");
  addSlot("w2");
  addSlot("w3");
  take();
  submit("c1", 1, {keyed("a", 10, 0)});
  auto first = dispatched();
  answer(first, "forged");
  auto second = dispatched();
  answer(second, "honest");
  EXPECT_TRUE(delivered().empty());
  auto third = dispatched();
  EXPECT_NE(third.first, first.first);
  EXPECT_NE(third.first, second.first);
  answer(third, "honest");
  auto got = delivered();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].native, Digest::of("honest"));
  auto e = s_.takeEvents();
  EXPECT_EQ(e.quarantined, std::vector<std::string>{"box-" + first.first});
  ASSERT_EQ(e.cache.size(), 1u);
  EXPECT_EQ(e.cache[0].native, Digest::of("honest"));
  take();
  // No more jobs for it, however many are pending.
  submit("c1", 2, {keyed("b", 9, 1), keyed("c", 8, 2), keyed("d", 7, 3), keyed("e", 6, 4)});
  for (auto &[peer, run] : only<wire::RunJob>(take()))
    EXPECT_NE(peer, first.first);
  bool listed = false;
  for (const wire::WorkerStats &w : s_.workerStats())
    if (w.name == "box-" + first.first)
      listed = w.quarantined;
  EXPECT_TRUE(listed);
}

// With two workers on probation that disagree and no third, nobody is
// believed: the client runs the job itself; nobody is quarantined.
TEST_F(VerificationTest, TwoOnProbationWhoDisagreeDecideNothing) {
  addSlot("w1");
  addSlot("w2");
  take();
  submit("c1", 1, {keyed("a", 10, 5)});
  answer(dispatched(), "x");
  answer(dispatched(), "y");
  auto got = delivered();
  ASSERT_EQ(got.size(), 1u);
  ASSERT_TRUE(got[0].error);
  EXPECT_EQ(got[0].error->kind, ErrorKind::Disconnected);
  auto e = s_.takeEvents();
  EXPECT_TRUE(e.quarantined.empty());
  EXPECT_TRUE(e.cache.empty());
}

// A result under another key than the job was dispatched with is refused:
// not delivered, not cached; the job runs on another worker.
TEST_F(VerificationTest, AResultUnderAnotherKeyIsRefused) {
  addSlot("w1");
  addSlot("w2");
  take();
  submit("c1", 1, {keyed("a", 10, 0)});
  auto first = dispatched();
  answer(first, "obj", Digest::of("key of something else"));
  EXPECT_TRUE(delivered().empty());
  auto e = s_.takeEvents();
  EXPECT_TRUE(e.cache.empty());
  ASSERT_EQ(e.log.size(), 1u);
  EXPECT_NE(e.log[0].find("refused a result from worker box-" + first.first), std::string::npos);
  auto again = dispatched();
  EXPECT_NE(again.first, first.first);
}

// Alone, a worker on probation is not checked: its results are delivered,
// and the log says so once.
TEST_F(VerificationTest, ASingleWorkerIsDeliveredUncheckedAndTheLogSaysSoOnce) {
  addSlot("w1");
  take();
  for (uint64_t i = 1; i <= 3; ++i) {
    submit("c1", i, {keyed("m" + std::to_string(i), 10, 0)});
    answer(dispatched(), "obj" + std::to_string(i));
    EXPECT_EQ(delivered().size(), 1u);
  }
  auto e = s_.takeEvents();
  EXPECT_EQ(e.cache.size(), 3u);
  ASSERT_EQ(e.log.size(), 1u);
  EXPECT_NE(e.log[0].find("only worker"), std::string::npos);
}

// After probation, a sampled result is delivered at once and checked after;
// when the check shows it was wrong, its record goes and its worker too.
TEST_F(VerificationTest, ASampleCheckedAfterDeliveryUndoesAWrongResult) {
  s_ = Scheduler(SchedulerOptions{.verify = {0, 1.0, 1}}); // every result sampled
  addSlot("w1");
  addSlot("w2");
  addSlot("w3");
  take();
  submit("c1", 1, {keyed("a", 10, 0)});
  auto first = dispatched();
  answer(first, "wrong");
  auto got = delivered();
  ASSERT_EQ(got.size(), 1u) << "delivered before the check";
  auto e = s_.takeEvents();
  ASSERT_EQ(e.cache.size(), 1u);
  auto check = dispatched();
  answer(check, "right");
  auto tie = dispatched();
  answer(tie, "right");
  EXPECT_TRUE(delivered().empty()) << "nobody waits for a check";
  e = s_.takeEvents();
  EXPECT_EQ(e.quarantined, std::vector<std::string>{"box-" + first.first});
  EXPECT_EQ(e.uncache, std::vector<Digest>{Digest::of("key of a")});
  ASSERT_EQ(e.cache.size(), 1u);
  EXPECT_EQ(e.cache[0].native, Digest::of("right"));
}

} // namespace
} // namespace thinfarm

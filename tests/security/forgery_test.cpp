// Attacks on results, against a real coordinator (ZeroMQ over ipc, RocksDB in
// a scratch directory) with peers that speak the wire themselves: a worker
// that answers a job it was not given, and one that takes a job and never
// answers while it keeps beating. Neither gets anything wrong delivered or
// cached, and the honest worker's object is what the client gets.
// (A client sending results, and a result under another key:
// tests/unit/cache_service_test.cpp; a worker that lies about objects:
// the farm_verify integration case and the kernel farm test.)
#include "../unit/farm_fixture.h"

#include <gtest/gtest.h>

namespace thinfarm {
namespace {

using namespace std::chrono_literals;

class ForgeryTest : public ::testing::Test {
protected:
  void SetUp() override { ASSERT_TRUE(coordinator_.running()); }

  wire::Socket connect() {
    auto s = wire::Socket::connect(ctx_, coordinator_.endpoint());
    EXPECT_TRUE(s.ok());
    return std::move(*s);
  }
  wire::Socket worker(const std::string &name) {
    wire::Socket w = connect();
    EXPECT_TRUE(w.send(wire::Message{1, wire::RegisterWorker{name, "T", 1}}).ok());
    EXPECT_TRUE(next(w).get<wire::Registered>());
    return w;
  }
  // The next message that is not progress, or an ErrorMsg saying none came.
  static wire::Message next(wire::Socket &s, std::chrono::milliseconds wait = 5s) {
    for (;;) {
      auto r = s.receive(wait);
      if (!r || !r->message.ok())
        return wire::errorReply(0, ErrorKind::Disconnected, "nothing received");
      if (!r->message->get<wire::Progress>())
        return std::move(*r->message);
    }
  }
  // Whether nothing but progress arrives on s for `wait`.
  static bool quiet(wire::Socket &s, std::chrono::milliseconds wait) {
    const auto end = Clock::now() + wait;
    while (Clock::now() < end) {
      auto r = s.receive(std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()));
      if (r && !(r->message.ok() && r->message->get<wire::Progress>()))
        return false;
    }
    return true;
  }
  static wire::Session session(uint64_t id) {
    wire::JobSpec spec;
    spec.task = 3;
    spec.module = {"m.o", Digest::of("bitcode")};
    spec.shard = Digest::of("shard");
    spec.cost = 1;
    spec.key = Digest::of("the job's key");
    return wire::Session{id, "T", "out", BackendConfig{}, {spec}};
  }
  static wire::JobResult result(const wire::RunJob &run, const std::string &object,
                                const std::string &worker) {
    wire::JobResult r;
    r.jobId = run.jobId;
    r.task = run.spec.task;
    r.key = run.spec.key;
    r.native = Digest::of(object);
    r.nativeBytes = object;
    r.worker = worker;
    return r;
  }

  test::ScratchDir dir_;
  wire::Context ctx_;
  test::InProcessCoordinator coordinator_{ctx_, dir_, "c", [](CoordinatorOptions &o) {
                                            o.scheduling.verify = {0, 0, 1}; // past probation
                                            o.scheduling.jobDeadline = 1s;
                                          }};
};

// A worker answers the job another worker runs (job ids are easy to guess):
// the answer is stale, nothing is delivered or cached from it.
TEST_F(ForgeryTest, AResultForAJobGivenToAnotherWorkerIsIgnored) {
  wire::Socket honest = worker("honest");
  wire::Socket client = connect();
  ASSERT_TRUE(client.send(wire::Message{10, session(1)}).ok());
  wire::Message run = next(honest);
  ASSERT_TRUE(run.get<wire::RunJob>()) << wire::kindName(run.body);
  wire::Socket hostile = worker("hostile");
  ASSERT_TRUE(hostile.send(wire::Message{0, result(*run.get<wire::RunJob>(), "forged", "hostile")}).ok());
  EXPECT_TRUE(quiet(client, 300ms)) << "something was delivered for the forgery";
  ASSERT_TRUE(honest.send(wire::Message{0, result(*run.get<wire::RunJob>(), "honest", "honest")}).ok());
  wire::Message got = next(client);
  ASSERT_TRUE(got.get<wire::JobResult>()) << wire::kindName(got.body);
  EXPECT_EQ(got.get<wire::JobResult>()->nativeBytes, "honest");
  ASSERT_TRUE(client.send(wire::Message{0, wire::EndSession{1}}).ok());
  // The cache answers the honest object.
  ASSERT_TRUE(client.send(wire::Message{11, session(2)}).ok());
  got = next(client);
  ASSERT_TRUE(got.get<wire::JobResult>()) << wire::kindName(got.body);
  EXPECT_TRUE(got.get<wire::JobResult>()->cached);
  EXPECT_EQ(got.get<wire::JobResult>()->nativeBytes, "honest");
}

// A worker takes a job and never answers, though it keeps beating: past
// the job's deadline (1 s here) the job runs on another worker.
TEST_F(ForgeryTest, AWorkerThatHoldsAJobLosesItAtItsDeadline) {
  wire::Socket hog = worker("hog");
  wire::Socket client = connect();
  ASSERT_TRUE(client.send(wire::Message{10, session(1)}).ok());
  wire::Message held = next(hog);
  ASSERT_TRUE(held.get<wire::RunJob>()) << wire::kindName(held.body);
  wire::Socket honest = worker("honest");
  const auto t0 = Clock::now();
  std::optional<wire::RunJob> moved;
  while (!moved && Clock::now() - t0 < 5s) {
    ASSERT_TRUE(hog.send(wire::Message{0, wire::Heartbeat{}}).ok());
    ASSERT_TRUE(honest.send(wire::Message{0, wire::Heartbeat{}}).ok());
    if (auto r = honest.receive(200ms); r && r->message.ok())
      if (auto *j = r->message->get<wire::RunJob>())
        moved = *j;
  }
  ASSERT_TRUE(moved) << "the held job never moved";
  EXPECT_LT(Clock::now() - t0, 3s);
  ASSERT_TRUE(honest.send(wire::Message{0, result(*moved, "honest", "honest")}).ok());
  wire::Message got = next(client);
  ASSERT_TRUE(got.get<wire::JobResult>()) << wire::kindName(got.body);
  EXPECT_EQ(got.get<wire::JobResult>()->nativeBytes, "honest");
  EXPECT_EQ(got.get<wire::JobResult>()->worker, "honest");
  // The hog's late answer changes nothing.
  ASSERT_TRUE(hog.send(wire::Message{0, result(*held.get<wire::RunJob>(), "late", "hog")}).ok());
  EXPECT_TRUE(quiet(client, 300ms));
}

} // namespace
} // namespace thinfarm

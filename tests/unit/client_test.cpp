// The farm client's retry and fall-back paths (client/retry.h) against a real
// thinfarm-coordinator process that is not there, frozen (SIGSTOP), killed
// (SIGKILL), or killed and started again on the same store. The worker here
// is a bare wire socket that registers and holds the jobs it is given, so the
// session is under way when the coordinator goes; in the restart case it
// registers again and answers the job the client resubmitted.
#include "base/subprocess.h"
#include "farm_fixture.h"

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <future>
#include <thread>

namespace thinfarm {
namespace {

using namespace std::chrono_literals;

class ClientTest : public ::testing::Test {
protected:
  void SetUp() override { endpoint_ = "ipc://" + dir_.file("c.sock"); }

  // Starts thinfarm-coordinator on endpoint_ and the store in the scratch
  // dir; returns once it is ready (its lock file holds its pid).
  void startCoordinator() {
    std::string lock = dir_.file("lock");
    ::unlink(lock.c_str());
    SpawnOptions o;
    o.stderrFile = dir_.file("coordinator.log");
    o.appendOutput = true;
    auto p = Subprocess::spawn({THINFARM_COORDINATOR_PROGRAM, "--listen", endpoint_, "--store",
                                dir_.file("store"), "--lock", lock},
                               o);
    ASSERT_TRUE(p.ok()) << p.error().message;
    coordinator_.emplace(std::move(*p));
    for (int i = 0; i < 200 && test::readAll(lock).empty(); ++i)
      std::this_thread::sleep_for(50ms);
    ASSERT_FALSE(test::readAll(lock).empty())
        << "the coordinator never got ready: " << test::readAll(dir_.file("coordinator.log"));
  }

  // A worker that registers and returns the next job it is sent.
  wire::Socket registerWorker() {
    auto s = wire::Socket::connect(ctx_, endpoint_);
    EXPECT_TRUE(s.ok());
    EXPECT_TRUE(s->send(wire::Message{1, wire::RegisterWorker{"held", "T", 1}}).ok());
    return std::move(*s);
  }
  static std::optional<wire::RunJob> nextJob(wire::Socket &w, std::chrono::seconds within) {
    auto until = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < until) {
      auto r = w.receive(200ms);
      if (r && r->message.ok())
        if (auto *job = r->message->get<wire::RunJob>())
          return *job;
    }
    return std::nullopt;
  }

  // What the held worker answers a job with: "native of task N".
  static wire::JobResult answer(const wire::RunJob &job) {
    std::string native = "native of task " + std::to_string(job.spec.task);
    wire::JobResult r;
    r.jobId = job.jobId;
    r.task = job.spec.task;
    r.native = Digest::of(native);
    r.nativeBytes = native;
    r.worker = "held";
    return r;
  }

  // Two jobs (tasks 0 and 1) with made-up blobs: only the worker here reads them.
  static FarmSubmission submission() {
    static const std::string a = "module a", b = "module b", shard = "shard";
    FarmSubmission sub;
    sub.toolchain = "T";
    sub.output = "out.o";
    for (uint32_t t = 0; t < 2; ++t) {
      wire::JobSpec spec;
      spec.task = t;
      spec.module = {t ? "b.o" : "a.o", Digest::of(t ? b : a)};
      spec.shard = Digest::of(shard);
      spec.cost = 1;
      sub.jobs.push_back(spec);
    }
    sub.blobs = {{Digest::of(a), a}, {Digest::of(b), b}, {Digest::of(shard), shard}};
    return sub;
  }

  // Runs the client on a thread of its own; the results it took go to results_.
  std::future<Result<FarmOutcome>> runClient() {
    return std::async(std::launch::async,
                      [this] { return test::runFarmClient(ctx_, endpoint_, submission(), results_); });
  }

  test::ScratchDir dir_;
  wire::Context ctx_;
  std::string endpoint_;
  std::optional<Subprocess> coordinator_;
  std::vector<FarmResult> results_;
};

// Every task comes back unfinished, to be run locally, with the reason.
void expectAllLocal(const Result<FarmOutcome> &outcome, const std::string &why) {
  ASSERT_TRUE(outcome.ok()) << "the link failed: " << outcome.error().message;
  EXPECT_EQ(outcome->unfinished, (std::vector<uint32_t>{0, 1}));
  EXPECT_NE(outcome->why.find(why), std::string::npos) << outcome->why;
}

// How long the client may take to give a lost farm's jobs back (issue #13:
// 3 s; measured by bench/detection.sh), with room for a loaded machine: the
// old client took 20 s.
constexpr auto kGivesUpWithin = 6s;

TEST_F(ClientTest, NoCoordinatorMeansEveryJobRunsLocally) {
  auto start = std::chrono::steady_clock::now();
  auto outcome = runClient().get();
  expectAllLocal(outcome, "no connection to the coordinator at " + endpoint_);
  EXPECT_TRUE(results_.empty());
  EXPECT_LT(std::chrono::steady_clock::now() - start, kGivesUpWithin);
}

TEST_F(ClientTest, FrozenCoordinatorMeansEveryJobRunsLocally) {
  startCoordinator();
  wire::Socket worker = registerWorker();
  auto client = runClient();
  ASSERT_TRUE(nextJob(worker, 10s)) << "the session never reached the worker";
  ::kill(coordinator_->pid(), SIGSTOP);
  auto lost = std::chrono::steady_clock::now();
  auto outcome = client.get();
  auto noticed = std::chrono::steady_clock::now();
  ::kill(coordinator_->pid(), SIGCONT);
  expectAllLocal(outcome, endpoint_);
  EXPECT_TRUE(results_.empty());
  EXPECT_LT(noticed - lost, kGivesUpWithin);
}

TEST_F(ClientTest, KilledCoordinatorMeansEveryJobRunsLocally) {
  startCoordinator();
  wire::Socket worker = registerWorker();
  auto client = runClient();
  ASSERT_TRUE(nextJob(worker, 10s)) << "the session never reached the worker";
  coordinator_->kill();
  auto lost = std::chrono::steady_clock::now();
  expectAllLocal(client.get(), endpoint_);
  EXPECT_TRUE(results_.empty());
  EXPECT_LT(std::chrono::steady_clock::now() - lost, kGivesUpWithin);
}

// A link with more jobs than one frame holds (a defconfig vmlinux.o has
// thousands of modules, each naming its imports) is submitted in parts and
// finished on the farm, every job once.
TEST_F(ClientTest, ASessionLargerThanAFrameGoesInParts) {
  startCoordinator();
  static const std::string shard = "shard";
  FarmSubmission sub;
  sub.toolchain = "T";
  sub.output = "vmlinux.o";
  for (uint32_t t = 0; t < 3000; ++t) {
    wire::JobSpec spec;
    spec.task = t;
    spec.module = {"drivers/a/long/enough/path/module-" + std::to_string(t) + ".o",
                   Digest::of("module " + std::to_string(t))};
    spec.shard = Digest::of(shard);
    for (uint32_t i = 0; i < 20; ++i)
      spec.imports.push_back({"drivers/a/long/enough/path/module-" + std::to_string((t + i) % 3000) + ".o",
                              Digest::of("module " + std::to_string((t + i) % 3000))});
    spec.cost = 1;
    sub.jobs.push_back(spec);
  }
  sub.blobs = {{Digest::of(shard), shard}};
  wire::Session whole;
  whole.jobs = sub.jobs;
  ASSERT_GT(wire::encode(wire::Message{1, whole}).size(), wire::kMaxFrame);

  auto w = wire::Socket::connect(ctx_, endpoint_);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->send(wire::Message{1, wire::RegisterWorker{"held", "T", 64}}).ok());
  std::atomic<bool> stop{false};
  std::thread worker([&] {
    while (!stop.load()) {
      auto r = w->receive(100ms);
      if (!r || !r->message.ok())
        continue;
      if (auto *job = r->message->get<wire::RunJob>())
        (void)w->send(wire::Message{0, answer(*job)});
    }
  });
  auto outcome = test::runFarmClient(ctx_, endpoint_, sub, results_);
  stop = true;
  worker.join();
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  EXPECT_TRUE(outcome->unfinished.empty()) << outcome->why;
  ASSERT_EQ(results_.size(), 3000u);
  std::vector<bool> seen(3000);
  for (const FarmResult &r : results_) {
    EXPECT_FALSE(seen[r.task]) << "task " << r.task << " came back twice";
    seen[r.task] = true;
    EXPECT_EQ(r.native, "native of task " + std::to_string(r.task));
  }
}

// A connection lost while the client's memo socket was idle (the coordinator
// restarted between two links of a build) costs its next request nothing.
TEST_F(ClientTest, AnIdleSocketsLostConnectionCostsTheNextRequestNothing) {
  startCoordinator();
  FarmClient client(ctx_, endpoint_);
  auto before = client.lookupLink(Digest::of("no such link"));
  ASSERT_TRUE(before.ok()) << before.error().message;
  EXPECT_FALSE(before->has_value());
  coordinator_->kill();
  startCoordinator();
  auto after = client.lookupLink(Digest::of("no such link"));
  ASSERT_TRUE(after.ok()) << after.error().message;
  EXPECT_FALSE(after->has_value());
}

// Blobs sent ahead (a link's bitcode, during its thin link) are in the
// coordinator's store once any later call of the client returns, each once.
TEST_F(ClientTest, BlobsSentAheadAreStoredBeforeTheNextCall) {
  startCoordinator();
  std::vector<std::string> blobs;
  for (int i = 0; i < 150; ++i) // more than one of sendAhead's groups
    blobs.push_back(std::string(20000 + static_cast<size_t>(i), static_cast<char>('a' + i % 26)));
  std::vector<std::string_view> views(blobs.begin(), blobs.end());
  FarmClient client(ctx_, endpoint_);
  ASSERT_TRUE(client.lookupLink(Digest::of("no such link")).ok());
  client.sendAhead(views);
  auto stats = client.stats(); // waits for what was sent ahead
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  uint64_t bytes = 0;
  std::vector<Digest> digests;
  for (const std::string &b : blobs) {
    bytes += b.size();
    digests.push_back(Digest::of(b));
  }
  EXPECT_EQ(stats->bytesStored, bytes);
  auto s = wire::Socket::connect(ctx_, endpoint_);
  ASSERT_TRUE(s.ok());
  auto missing = wire::findMissing(*s, digests);
  ASSERT_TRUE(missing.ok()) << missing.error().message;
  EXPECT_TRUE(missing->empty()) << missing->size() << " blobs sent ahead are not in the store";
}

// A coordinator that freezes while blobs go ahead costs the link no more
// than a loss during its session: the session's jobs come back to run
// locally within the same bound.
TEST_F(ClientTest, AFarmFrozenWhileSendingAheadGivesTheJobsBackInTime) {
  startCoordinator();
  wire::Socket worker = registerWorker();
  std::vector<std::string> blobs(96, std::string(1u << 20, 'x'));
  for (size_t i = 0; i < blobs.size(); ++i)
    blobs[i][0] = static_cast<char>(i);
  std::vector<std::string_view> views(blobs.begin(), blobs.end());
  FarmClient client(ctx_, endpoint_);
  ASSERT_TRUE(client.lookupLink(Digest::of("no such link")).ok());
  client.sendAhead(views);
  std::this_thread::sleep_for(30ms);
  ::kill(coordinator_->pid(), SIGSTOP);
  auto lost = std::chrono::steady_clock::now();
  auto outcome = client.run(submission(), [](FarmResult &&) { return ok(); }, {});
  auto noticed = std::chrono::steady_clock::now();
  ::kill(coordinator_->pid(), SIGCONT);
  expectAllLocal(outcome, endpoint_);
  EXPECT_LT(noticed - lost, kGivesUpWithin);
}

TEST_F(ClientTest, RestartedCoordinatorGetsTheUnfinishedJobsAgain) {
  startCoordinator();
  std::optional<wire::Socket> worker = registerWorker();
  auto client = runClient();
  ASSERT_TRUE(nextJob(*worker, 10s)) << "the session never reached the worker";
  coordinator_->kill();
  worker.reset();
  startCoordinator();
  worker = registerWorker();
  // The client notices the silence, reconnects and resubmits: the worker
  // gets the jobs again and answers them.
  for (int answered = 0; answered < 2; ++answered) {
    auto job = nextJob(*worker, 30s);
    ASSERT_TRUE(job) << "the client did not resubmit its unfinished jobs";
    ASSERT_TRUE(worker->send(wire::Message{0, answer(*job)}).ok());
  }
  auto outcome = client.get();
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  EXPECT_TRUE(outcome->unfinished.empty()) << outcome->why;
  ASSERT_EQ(results_.size(), 2u);
  for (const FarmResult &r : results_)
    EXPECT_EQ(r.native, "native of task " + std::to_string(r.task));
}

} // namespace
} // namespace thinfarm

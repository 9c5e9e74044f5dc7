// The action cache through a real coordinator (ZeroMQ over ipc, RocksDB in a
// temporary directory): only a registered worker's result for a job it ran
// is cached, and only when the key its backend computed is the key the job
// was dispatched with; a client can upload blobs and send whatever it likes,
// but never makes the cache answer a job.
#include "farm_fixture.h"
#include "wire/blob_transfer.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <thread>

namespace thinfarm {
namespace {

using namespace std::chrono_literals;

class CacheServiceTest : public ::testing::Test {
protected:
  void SetUp() override { ASSERT_TRUE(coordinator_.running()); }

  wire::Socket connect() {
    auto s = wire::Socket::connect(ctx_, coordinator_.endpoint());
    EXPECT_TRUE(s.ok());
    return std::move(*s);
  }

  // The next message on s that is not progress, or an ErrorMsg saying none came.
  static wire::Message next(wire::Socket &s) {
    for (;;) {
      auto r = s.receive(5s);
      if (!r || !r->message.ok())
        return wire::errorReply(0, ErrorKind::Disconnected, "nothing received");
      if (!r->message->get<wire::Progress>())
        return std::move(*r->message);
    }
  }

  static wire::Session session(uint64_t id, const Digest &key) {
    wire::JobSpec spec;
    spec.task = 7;
    spec.module = {"m.o", Digest::of("bitcode")};
    spec.shard = Digest::of("shard");
    spec.cost = 1;
    spec.key = key;
    return wire::Session{id, "T", "out", BackendConfig{}, {spec}};
  }

  test::ScratchDir dir_;
  wire::Context ctx_;
  test::InProcessCoordinator coordinator_{ctx_, dir_, "k"};
};

TEST_F(CacheServiceTest, OnlyTheDispatchedKeyIsCachedAndOnlyWhenTheWorkerAgrees) {
  const std::string native = "native object bytes";
  const Digest n = Digest::of(native);
  const Digest claimed = Digest::of("client's key"), computed = Digest::of("worker's key");

  // A client uploads a blob and sends a result of its own making.
  wire::Socket client = connect();
  wire::BlobRef blob{n, native};
  ASSERT_TRUE(wire::upload(client, std::span<const wire::BlobRef>(&blob, 1)).ok());
  wire::JobResult forged;
  forged.jobId = 1;
  forged.key = claimed;
  forged.native = n;
  forged.nativeBytes = native;
  ASSERT_TRUE(client.send(wire::Message{0, forged}).ok());
  // Its job is not answered from the cache: with no worker it is refused.
  ASSERT_TRUE(client.send(wire::Message{11, session(1, claimed)}).ok());
  wire::Message m = next(client);
  ASSERT_TRUE(m.get<wire::ErrorMsg>()) << wire::kindName(m.body);
  EXPECT_EQ(m.get<wire::ErrorMsg>()->kind, ErrorKind::Unimplemented);

  // A worker runs it and reports that the inputs have another key: refused,
  // neither delivered nor cached; with no other worker, the client runs it.
  wire::Socket worker = connect();
  ASSERT_TRUE(worker.send(wire::Message{1, wire::RegisterWorker{"w", "T", 1}}).ok());
  ASSERT_TRUE(next(worker).get<wire::Registered>());
  auto runOnce = [&](uint64_t session, const Digest &reported) {
    wire::Message run = next(worker);
    EXPECT_TRUE(run.get<wire::RunJob>()) << wire::kindName(run.body);
    if (!run.get<wire::RunJob>())
      return;
    wire::JobResult done;
    done.jobId = run.get<wire::RunJob>()->jobId;
    done.sessionId = session;
    done.task = 7;
    done.key = reported;
    done.native = n;
    done.nativeBytes = native;
    done.diagnostics = {{Severity::Warning, "stack frame size (1032) exceeds limit (1024)"}};
    done.worker = "w";
    EXPECT_TRUE(worker.send(wire::Message{0, done}).ok());
  };
  const Digest other = Digest::of("yet another key");
  uint64_t id = 2;
  for (const Digest &key : {claimed, computed, claimed}) { // no key hits: the job runs
    ASSERT_TRUE(client.send(wire::Message{10 + id, session(id, key)}).ok());
    runOnce(id, key == computed ? other : computed);
    m = next(client);
    ASSERT_TRUE(m.get<wire::JobResult>()) << wire::kindName(m.body);
    ASSERT_TRUE(m.get<wire::JobResult>()->error);
    EXPECT_EQ(m.get<wire::JobResult>()->error->kind, ErrorKind::Disconnected);
    ASSERT_TRUE(client.send(wire::Message{0, wire::EndSession{id++}}).ok());
  }

  // Reported under the key it was dispatched with, the result is delivered
  // and cached: that key hits, with the object and the diagnostics.
  ASSERT_TRUE(client.send(wire::Message{14, session(id, claimed)}).ok());
  runOnce(id, claimed);
  m = next(client);
  ASSERT_TRUE(m.get<wire::JobResult>()) << wire::kindName(m.body);
  EXPECT_FALSE(m.get<wire::JobResult>()->error);
  EXPECT_FALSE(m.get<wire::JobResult>()->cached);
  ASSERT_TRUE(client.send(wire::Message{0, wire::EndSession{id++}}).ok());
  ASSERT_TRUE(client.send(wire::Message{15, session(id, claimed)}).ok());
  m = next(client);
  ASSERT_TRUE(m.get<wire::JobResult>()) << wire::kindName(m.body);
  const wire::JobResult &hit = *m.get<wire::JobResult>();
  EXPECT_TRUE(hit.cached);
  EXPECT_EQ(hit.task, 7u);
  EXPECT_EQ(hit.nativeBytes, native);
  EXPECT_EQ(hit.diagnostics[0].text, "stack frame size (1032) exceeds limit (1024)");

  auto stats = wire::call(client, wire::GetStats{});
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  EXPECT_EQ(stats->get<wire::StoreStats>()->actionHits, 1u);
}

// The link memo is per client (the allow-list's name) and written once: one
// member's entry never answers another's link, and a second record under a
// key does not replace the first.
TEST(LinkMemo, PerClientAndWrittenOnce) {
  test::ScratchDir dir;
  auto store = Store::open(dir.file("store"));
  ASSERT_TRUE(store.ok()) << store.error().message;
  CacheService cache(*store);
  const std::string first = "output one", second = "output two";
  for (const std::string *b : {&first, &second})
    ASSERT_TRUE(store->put(Digest::of(*b), *b).ok());
  wire::RecordLink r;
  r.key = Digest::of("a link's inputs");
  r.output = Digest::of(first);
  Outbox out;
  auto lookup = [&](const std::string &client) -> std::optional<Digest> {
    out.clear();
    cache.onLookupLink("peer", 1, wire::LookupLink{r.key}, client, out);
    EXPECT_EQ(out.size(), 1u);
    const auto *memo = out.empty() ? nullptr : out[0].second.get<wire::LinkMemo>();
    EXPECT_TRUE(memo);
    if (!memo || !memo->found)
      return std::nullopt;
    return memo->output;
  };
  cache.onRecordLink("peer", 1, r, "alice", out);
  ASSERT_TRUE(out.back().second.get<wire::LinkMemo>()) << wire::kindName(out.back().second.body);
  EXPECT_EQ(lookup("alice"), Digest::of(first));
  EXPECT_EQ(lookup("bob"), std::nullopt);
  EXPECT_EQ(lookup(""), std::nullopt); // no keys: a namespace of its own too
  r.output = Digest::of(second);
  cache.onRecordLink("peer", 2, r, "alice", out);
  EXPECT_EQ(lookup("alice"), Digest::of(first)) << "a memo entry was overwritten";
  cache.onRecordLink("peer", 3, r, "bob", out);
  EXPECT_EQ(lookup("bob"), Digest::of(second));
}

// The loop never waits on disk: while one client's session has its cached
// jobs read back from the store and hashed (here 32 natives of 4 MiB), the
// coordinator answers another peer at once. Before the store lanes, the
// other peer's answer came after the whole session's.
TEST(CoordinatorLoop, ServesOthersWhileASessionsCachedJobsAreReadBack) {
  test::ScratchDir dir;
  constexpr int kJobs = 32;
  constexpr size_t kNative = 4 << 20;
  std::vector<Digest> keys;
  {
    auto store = Store::open(dir.file("k-store"));
    ASSERT_TRUE(store.ok()) << store.error().message;
    CacheService cache(*store);
    std::string native(kNative, '\0');
    for (int i = 0; i < kJobs; ++i) {
      for (size_t at = 0; at < native.size(); at += 4096)
        native[at] = static_cast<char>(static_cast<size_t>(i) * 31 + at / 4096); // distinct blobs
      wire::JobResult r;
      r.key = Digest::of("key " + std::to_string(i));
      r.native = Digest::of(native);
      r.worker = "w";
      ASSERT_TRUE(store->put(r.native, native).ok());
      cache.record(r);
      keys.push_back(r.key);
    }
  }
  wire::Context ctx;
  test::InProcessCoordinator coordinator(ctx, dir, "k");
  ASSERT_TRUE(coordinator.running());
  auto a = wire::Socket::connect(ctx, coordinator.endpoint());
  auto b = wire::Socket::connect(ctx, coordinator.endpoint());
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(b->waitConnected(5s) && a->waitConnected(5s));

  wire::Session s{1, "T", "out", BackendConfig{}, {}};
  for (int i = 0; i < kJobs; ++i) {
    wire::JobSpec spec;
    spec.task = static_cast<uint32_t>(i);
    spec.module = {"m" + std::to_string(i) + ".o", Digest::of("bitcode " + std::to_string(i))};
    spec.shard = Digest::of("shard");
    spec.cost = 1;
    spec.key = keys[i];
    s.jobs.push_back(spec);
  }
  // a's answers are taken on a thread of their own, so each side's time is
  // when it arrived, not when the test got round to reading it.
  using Steady = std::chrono::steady_clock;
  const auto start = Steady::now();
  ASSERT_TRUE(a->send(wire::Message{1, s}).ok());
  int hits = 0;
  Steady::time_point firstHit;
  std::thread session([&] {
    while (hits < kJobs) {
      auto r = a->receive(60s); // sanitizers read slowly
      if (!r || !r->message.ok())
        return;
      if (const auto *res = r->message->get<wire::JobResult>()) {
        EXPECT_TRUE(res->cached);
        EXPECT_FALSE(res->error);
        if (hits++ == 0)
          firstHit = Steady::now();
      }
    }
  });
  std::this_thread::sleep_for(20ms); // the session is being read back by now
  auto stats = wire::call(*b, wire::GetStats{});
  const auto answered = Steady::now();
  session.join();
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  ASSERT_TRUE(stats->get<wire::StoreStats>());
  ASSERT_EQ(hits, kJobs) << "the session's cached jobs did not all come";
  const auto other = answered - start, reading = firstHit - start;
  std::printf("other peer answered at %lld ms; the session's first hit at %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(other).count()),
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(reading).count()));
  // Answered while the reading went on (it takes ~0.15 s; sanitizers, longer).
  EXPECT_LT(other, reading / 2) << "the other peer waited behind the session's store reads";
}

} // namespace
} // namespace thinfarm

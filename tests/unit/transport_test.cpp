// The ZeroMQ transport and blob transfer over real sockets: a DEALER talks to
// a ROUTER served by a thread that answers from a BlobService over a real
// Store in a temporary directory.
#include "coordinator/blob_service.h"
#include "wire/blob_transfer.h"
#include "wire/keys.h"
#include "wire/unread_guard.h"
#include "scratch_dir.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include <sys/resource.h>

namespace thinfarm::wire {
namespace {

using namespace std::chrono_literals;

bool contains(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

using test::pattern;

TEST(Transport, RouterAndDealerTalkBothWays) {
  test::ScratchDir dir;
  Context ctx;
  std::string endpoint = "ipc://" + dir.file("s");
  auto router = Socket::listen(ctx, {endpoint, "inproc://both-ways"});
  ASSERT_TRUE(router.ok()) << router.error().message;
  for (const std::string &e : {endpoint, std::string("inproc://both-ways")}) {
    auto dealer = Socket::connect(ctx, e);
    ASSERT_TRUE(dealer.ok()) << dealer.error().message;
    EXPECT_FALSE(dealer->receive(10ms).has_value()); // nothing yet
    ASSERT_TRUE(dealer->send(Message{7, RegisterWorker{"box", "T", 2}}).ok());

    auto in = router->receive(2s);
    ASSERT_TRUE(in.has_value());
    EXPECT_FALSE(in->peer.empty());
    ASSERT_TRUE(in->message.ok()) << in->message.error().message;
    EXPECT_EQ(in->message->requestId, 7u);
    ASSERT_NE(in->message->get<RegisterWorker>(), nullptr);
    EXPECT_EQ(in->message->get<RegisterWorker>()->name, "box");

    ASSERT_TRUE(router->send(in->peer, Message{7, Registered{5}}).ok());
    auto back = dealer->receive(2s);
    ASSERT_TRUE(back.has_value());
    EXPECT_TRUE(back->peer.empty());
    ASSERT_TRUE(back->message.ok()) << back->message.error().message;
    EXPECT_EQ(back->message->requestId, 7u);
    ASSERT_NE(back->message->get<Registered>(), nullptr);
    EXPECT_EQ(back->message->get<Registered>()->slots, 5u);
  }
  Status gone = router->send("no such peer", Message{1, Heartbeat{}});
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().kind, ErrorKind::Disconnected);
}

// Closing a watched socket must not stop libzmq's I/O thread: a socket
// lingers after it is closed (a message still to deliver), goes on
// connecting, and its monitor goes on reporting; were the reader closed
// before the monitor stopped, the I/O thread would block for good in the
// event's send, and every connection it serves with it (found as a client
// whose reconnect to a restarted coordinator stalled, then gave up). Here
// clients pinned to the wrong coordinator key fail their handshakes while
// they linger; a fresh pair on the same context must still talk at once.
TEST(Transport, ClosingWatchedSocketsLeavesTheIoThreadFree) {
  test::ScratchDir dir;
  Context ctx;
  auto server = generateKeyPair(), impostor = generateKeyPair(), client = generateKeyPair();
  ASSERT_TRUE(server.ok() && impostor.ok() && client.ok());
  std::string curved = "ipc://" + dir.file("curved");
  auto router = Socket::listen(ctx, {curved}, *server);
  ASSERT_TRUE(router.ok()) << router.error().message;
  for (int i = 0; i < 4; ++i) {
    auto wrong = Socket::connect(ctx, curved, ClientCurve{*client, impostor->publicKey});
    ASSERT_TRUE(wrong.ok()) << wrong.error().message;
    ASSERT_TRUE(wrong->send(Message{1, Heartbeat{}}).ok()); // undeliverable: it lingers
    std::this_thread::sleep_for(20ms);
  }
  std::this_thread::sleep_for(300ms); // their handshakes fail again, closed
  std::string plain = "ipc://" + dir.file("plain");
  auto other = Socket::listen(ctx, {plain});
  ASSERT_TRUE(other.ok()) << other.error().message;
  auto dealer = Socket::connect(ctx, plain);
  ASSERT_TRUE(dealer.ok()) << dealer.error().message;
  ASSERT_TRUE(dealer->send(Message{1, Heartbeat{}}).ok());
  auto in = other->receive(2s);
  ASSERT_TRUE(in.has_value()) << "libzmq's I/O thread is stuck";
  ASSERT_TRUE(other->send(in->peer, Message{1, Heartbeat{}}).ok());
  EXPECT_TRUE(dealer->receive(2s).has_value()) << "libzmq's I/O thread is stuck";
}

// The unread guard sleeps between its checks: with nothing to watch, a
// second of it at a 2 ms interval costs next to no CPU. (Its wait was once
// cut down to whole milliseconds and spun through the last one of every
// interval: half of a core here, 1.5% at the daemons' 50 ms, through a link.)
TEST(Transport, TheUnreadGuardSleepsBetweenChecks) {
  auto cpu = [] {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  };
  double before = cpu();
  {
    UnreadGuard guard({}, 64u << 20, 2ms, [](int) { return std::string(); });
    std::this_thread::sleep_for(1s);
  }
  double used = cpu() - before;
  EXPECT_LT(used, 0.1) << "an idle unread guard used " << used << " s of CPU in a second";
}

// sendAll batches small messages into one frame and sends chunks alone; the
// receiver gets them one by one, in order, as if sent singly.
// A job naming this many imports of long names: a few dozen of them
// outgrow one frame together.
RunJob jobWithImports(uint64_t id, size_t imports) {
  RunJob j;
  j.jobId = id;
  j.spec.module = {"drivers/some/rather/long/path/module.o", Digest::of("m")};
  for (size_t i = 0; i < imports; ++i)
    j.spec.imports.push_back({"drivers/another/long/path/import-" + std::to_string(i) + ".o",
                              Digest::of(std::to_string(i))});
  return j;
}

// What does not fit one frame is refused by the sender, by name and size,
// and the connection carries on; a batch too large for a frame (its
// messages' bulk does not show it: jobs with many imports) goes in pieces.
TEST(Transport, OversizedMessagesAreRefusedAtTheSenderAndBatchesSplit) {
  test::ScratchDir dir;
  Context ctx;
  std::string endpoint = "ipc://" + dir.file("s");
  auto router = Socket::listen(ctx, {endpoint});
  ASSERT_TRUE(router.ok()) << router.error().message;
  auto dealer = Socket::connect(ctx, endpoint);
  ASSERT_TRUE(dealer.ok());
  ASSERT_TRUE(dealer->send(Message{1, Heartbeat{}}).ok());
  auto hello = router->receive(2s);
  ASSERT_TRUE(hello.has_value());

  Message huge{2, jobWithImports(1, 60000)};
  ASSERT_GT(encode(huge).size(), kMaxFrame);
  Status st = dealer->send(huge);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().kind, ErrorKind::Exceeded);
  EXPECT_NE(st.error().message.find("runJob message of"), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("over the wire's limit"), std::string::npos);
  ASSERT_TRUE(dealer->send(Message{3, Heartbeat{}}).ok()); // the connection is still up
  auto after = router->receive(2s);
  ASSERT_TRUE(after.has_value());
  ASSERT_TRUE(after->message.ok()) << after->message.error().message;
  EXPECT_EQ(after->message->requestId, 3u);

  std::vector<Message> jobs;
  for (uint64_t i = 0; i < 200; ++i)
    jobs.push_back(Message{i + 1, jobWithImports(i, 500)});
  size_t total = 0;
  for (const Message &m : jobs)
    total += encode(m).size();
  ASSERT_GT(total, 2 * kMaxFrame); // one batch (by bulk: 200 KiB) would be refused
  ASSERT_TRUE(router->sendAll(hello->peer, std::move(jobs)).ok());
  for (uint64_t i = 0; i < 200; ++i) {
    auto r = dealer->receive(2s);
    ASSERT_TRUE(r.has_value()) << "job " << i;
    ASSERT_TRUE(r->message.ok()) << r->message.error().message;
    ASSERT_NE(r->message->get<RunJob>(), nullptr);
    EXPECT_EQ(r->message->get<RunJob>()->jobId, i);
    EXPECT_EQ(r->message->get<RunJob>()->spec.imports.size(), 500u);
  }
}

// A connecting socket counts the losses of its connection, and a wait for an
// answer that was lost with it ends at once, not after kAnswerTimeout; a
// loss while nothing was asked costs the next request nothing.
TEST(Transport, LostConnectionsEndTheWaitForAnAnswer) {
  test::ScratchDir dir;
  Context ctx;
  std::string endpoint = "ipc://" + dir.file("s");
  auto listen = [&] {
    auto l = Socket::listen(ctx, {endpoint});
    EXPECT_TRUE(l.ok());
    return std::move(*l);
  };
  std::optional<Socket> router(listen());
  auto dealer = Socket::connect(ctx, endpoint);
  ASSERT_TRUE(dealer.ok());
  ASSERT_TRUE(dealer->waitConnected(2s));
  EXPECT_EQ(dealer->disconnects(), 0u);

  // Lost while idle: the socket reconnects by itself; a call then works.
  router.reset();
  for (int i = 0; i < 100 && dealer->disconnects() == 0; ++i)
    std::this_thread::sleep_for(20ms);
  EXPECT_EQ(dealer->disconnects(), 1u);
  router.emplace(listen());
  std::thread answer([&] {
    auto q = router->receive(5s);
    if (q && q->message.ok())
      (void)router->send(q->peer, Message{q->message->requestId, Missing{}});
  });
  auto missing = findMissing(*dealer, std::vector<Digest>{Digest::of("x")});
  answer.join();
  EXPECT_TRUE(missing.ok()) << missing.error().message;

  // Lost while a call waits: the call ends with the loss, at once.
  std::thread drop([&] {
    auto q = router->receive(5s); // the request, never answered
    router.reset();
  });
  auto start = std::chrono::steady_clock::now();
  auto lost = call(*dealer, FindMissing{{Digest::of("y")}});
  drop.join();
  ASSERT_FALSE(lost.ok());
  EXPECT_EQ(lost.error().kind, ErrorKind::Disconnected);
  EXPECT_NE(lost.error().message.find("was lost"), std::string::npos) << lost.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, kAnswerTimeout / 2);
}

// Each connecting socket has a monitor beside it: a process with 600 of them
// (thinfarm-loadgen's clients, a big worker's slots) holds 1200 sockets,
// past libzmq's default cap of 1023 per context.
TEST(Transport, AContextHoldsHundredsOfConnectingSockets) {
  test::ScratchDir dir;
  Context ctx;
  std::vector<Socket> socks;
  for (int i = 0; i < 600; ++i) {
    auto s = Socket::connect(ctx, "inproc://nobody-" + std::to_string(i));
    ASSERT_TRUE(s.ok()) << "socket " << i << ": " << s.error().message;
    socks.push_back(std::move(*s));
  }
}

TEST(Transport, BatchesArriveInOrder) {
  Context ctx;
  auto router = Socket::listen(ctx, {"inproc://batches"});
  ASSERT_TRUE(router.ok());
  auto dealer = Socket::connect(ctx, "inproc://batches");
  ASSERT_TRUE(dealer.ok());
  ASSERT_TRUE(dealer->send(Message{1, Heartbeat{}}).ok());
  auto hello = router->receive(2s);
  ASSERT_TRUE(hello.has_value());
  std::vector<Message> ms;
  for (uint32_t i = 0; i < 600; ++i) {
    if (i == 300) {
      Chunk c;
      c.digest = Digest::of("x");
      c.bytes = "x";
      ms.push_back(Message{1000, c});
    }
    ms.push_back(Message{i + 1, Registered{i}});
  }
  ASSERT_TRUE(router->sendAll(hello->peer, std::move(ms)).ok());
  for (uint32_t i = 0; i < 601; ++i) {
    auto r = dealer->receive(2s);
    ASSERT_TRUE(r.has_value()) << "message " << i;
    ASSERT_TRUE(r->message.ok()) << r->message.error().message;
    if (i == 300) {
      ASSERT_NE(r->message->get<Chunk>(), nullptr);
      continue;
    }
    uint32_t want = i < 300 ? i : i - 1;
    ASSERT_NE(r->message->get<Registered>(), nullptr) << "message " << i;
    EXPECT_EQ(r->message->get<Registered>()->slots, want);
    EXPECT_EQ(r->message->requestId, want + 1);
  }
  EXPECT_FALSE(dealer->receive(10ms).has_value());
}

TEST(Transport, BadEndpointsAreRefused) {
  Context ctx;
  auto l = Socket::listen(ctx, {"tcp://nowhere"});
  ASSERT_FALSE(l.ok());
  EXPECT_TRUE(contains(l.error().message, "bad address tcp://nowhere")) << l.error().message;
  auto c = Socket::connect(ctx, "tcp://h:abc");
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(contains(c.error().message, "port is not a number")) << c.error().message;
}

// A coordinator's blob side: one thread owns the ROUTER and a BlobService
// over a real Store. Every findMissing is preceded by an unsolicited
// progress message (request id 0), which the caller's `other` must get.
class BlobServer {
public:
  BlobServer(Socket sock, Store store)
      : thread_([this, sock = std::move(sock), store = std::move(store)]() mutable {
          serve(sock, store);
        }) {}
  ~BlobServer() {
    stop_ = true;
    thread_.join();
  }

private:
  void serve(Socket &sock, Store &store) {
    BlobService blobs(store);
    while (!stop_) {
      auto r = sock.receive(50ms);
      if (!r || !r->message.ok())
        continue;
      Message &m = *r->message;
      Outbox out;
      if (auto *f = m.get<FindMissing>()) {
        out.push_back({r->peer, Message{0, Progress{1, 2, 3, 4, 5, 6}}});
        blobs.onFindMissing(r->peer, m.requestId, *f, out);
      } else if (auto *p = m.get<PutChunk>()) {
        blobs.onPutChunk(r->peer, m.requestId, std::move(*p), out);
      } else if (auto *g = m.get<GetChunk>()) {
        blobs.onGetChunk(r->peer, m.requestId, *g, out);
      }
      for (auto &[peer, msg] : out)
        (void)sock.send(peer, msg);
    }
  }

  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class TransportBlobs : public ::testing::Test {
protected:
  void SetUp() override {
    auto store = Store::open(dir_.file("store"));
    ASSERT_TRUE(store.ok()) << store.error().message;
    auto router = Socket::listen(ctx_, {"ipc://" + dir_.file("s")});
    ASSERT_TRUE(router.ok()) << router.error().message;
    server_.emplace(std::move(*router), std::move(*store));
    auto dealer = Socket::connect(ctx_, "ipc://" + dir_.file("s"));
    ASSERT_TRUE(dealer.ok()) << dealer.error().message;
    client_.emplace(std::move(*dealer));
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
  }

  test::ScratchDir dir_;
  Context ctx_;
  std::optional<BlobServer> server_;
  std::optional<Socket> client_;
};

// A chunk is served only at an offset inside its blob: 2^32 chunks in used
// to wrap to chunk 0, served under the offset asked for (found by
// tests/fuzz/blob_chunk_fuzz).
TEST(BlobServiceChunks, OnlyInsideTheBlob) {
  test::ScratchDir dir;
  auto store = Store::open(dir.file("store"));
  ASSERT_TRUE(store.ok()) << store.error().message;
  std::string big = pattern(kChunk + 10, 2);
  Digest d = Digest::of(big);
  ASSERT_TRUE(store->put(d, big).ok());
  BlobService blobs(*store);
  for (uint64_t offset : {uint64_t(0), uint64_t(kChunk), uint64_t(2 * kChunk),
                          (uint64_t(1) << 32) * kChunk, (uint64_t(1) << 32) * kChunk + kChunk}) {
    Outbox out;
    blobs.onGetChunk("peer", 1, GetChunk{{d, offset}}, out);
    ASSERT_EQ(out.size(), 1u);
    const Chunk *c = out[0].second.get<Chunk>();
    if (offset < d.size) {
      ASSERT_TRUE(c) << offset;
      EXPECT_TRUE(c->bytes == big.substr(offset, kChunk)) << offset;
    } else {
      EXPECT_FALSE(c) << offset;
      EXPECT_TRUE(out[0].second.get<ErrorMsg>()) << offset;
    }
  }
}

TEST_F(TransportBlobs, UploadsAndDownloadsBlobs) {
  std::string small = "native object", big = pattern(3 * kChunk + kChunk / 2, 1), empty;
  std::vector<Digest> all{Digest::of(small), Digest::of(big), Digest::of(empty)};
  int progress = 0;
  auto other = [&](Message &&m) { progress += m.get<Progress>() != nullptr; };

  auto missing = findMissing(*client_, all, other);
  ASSERT_TRUE(missing.ok()) << missing.error().message;
  EXPECT_EQ(*missing, all);
  EXPECT_EQ(progress, 1);

  std::vector<BlobRef> blobs{{all[0], small}, {all[1], big}, {all[2], empty}};
  Status up = upload(*client_, blobs);
  ASSERT_TRUE(up.ok()) << up.error().message;
  missing = findMissing(*client_, all, other);
  ASSERT_TRUE(missing.ok()) << missing.error().message;
  EXPECT_TRUE(missing->empty());
  EXPECT_EQ(progress, 2);
  // Uploading what the store holds already is acknowledged again.
  ASSERT_TRUE(upload(*client_, blobs).ok());

  std::map<Digest, std::string> got;
  Status down = download(*client_, all, [&](const Digest &d, std::string &&bytes) {
    got[d] = std::move(bytes);
    return ok();
  });
  ASSERT_TRUE(down.ok()) << down.error().message;
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[all[0]], small);
  EXPECT_TRUE(got[all[1]] == big) << "the 3.5 MiB blob came back different";
  EXPECT_EQ(got[all[2]], empty);
}

TEST_F(TransportBlobs, DownloadOfAbsentBlobFails) {
  Digest absent = Digest::of("absent");
  int taken = 0;
  Status s = download(*client_, std::span(&absent, 1), [&](const Digest &, std::string &&) {
    ++taken;
    return ok();
  });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().kind, ErrorKind::Failed);
  EXPECT_TRUE(contains(s.error().message, "downloading " + absent.text())) << s.error().message;
  EXPECT_TRUE(contains(s.error().message, "not in the coordinator's store")) << s.error().message;
  EXPECT_EQ(taken, 0);
}

TEST_F(TransportBlobs, UploadOfWrongBytesFailsNamingTheDigest) {
  // Small: one chunk, refused by the store's digest check.
  Digest claimed = Digest::of("what was promised!");
  BlobRef small{claimed, "what was delivered"};
  ASSERT_EQ(claimed.size, small.bytes.size());
  Status s = upload(*client_, std::span(&small, 1));
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error().message, "uploading " + claimed.text())) << s.error().message;
  EXPECT_TRUE(contains(s.error().message, "refused")) << s.error().message;

  // Large: assembled chunk by chunk, refused when the writer finishes.
  std::string big = pattern(2 * kChunk + 10, 2), wrong = big;
  wrong[kChunk + 3] ^= 1;
  BlobRef large{Digest::of(big), wrong};
  s = upload(*client_, std::span(&large, 1));
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error().message, "uploading " + large.digest.text())) << s.error().message;

  // Neither was stored; the right bytes still go through afterwards.
  auto missing = findMissing(*client_, std::vector<Digest>{claimed, large.digest});
  ASSERT_TRUE(missing.ok()) << missing.error().message;
  EXPECT_EQ(missing->size(), 2u);
  BlobRef right{large.digest, big};
  Status again = upload(*client_, std::span(&right, 1));
  EXPECT_TRUE(again.ok()) << again.error().message;
}

// A large blob's chunks must come in order; a gap is refused naming both offsets.
TEST_F(TransportBlobs, OutOfOrderChunkIsRefused) {
  std::string big = pattern(2 * kChunk + 10, 3);
  PutChunk c;
  c.digest = Digest::of(big);
  c.bytes = big.substr(0, kChunk);
  ASSERT_TRUE(client_->send(Message{1, c}).ok());
  c.offset = 2 * kChunk;
  c.bytes = big.substr(2 * kChunk);
  ASSERT_TRUE(client_->send(Message{2, c}).ok());
  for (uint64_t id : {1, 2}) {
    auto r = client_->receive(2s);
    ASSERT_TRUE(r.has_value());
    ASSERT_TRUE(r->message.ok()) << r->message.error().message;
    EXPECT_EQ(r->message->requestId, id);
    const auto *e = r->message->get<ErrorMsg>();
    if (id == 1) {
      EXPECT_NE(r->message->get<PutAck>(), nullptr);
    } else {
      ASSERT_NE(e, nullptr);
      EXPECT_EQ(e->message, "blob " + c.digest.text() + ": chunk at " + std::to_string(2 * kChunk) +
                                " out of order (expected " + std::to_string(kChunk) + ")");
    }
  }
}

} // namespace
} // namespace thinfarm::wire

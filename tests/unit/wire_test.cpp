// The wire codec and the pipe framing: every message kind survives a round
// trip, and no malformed frame gets past decode() as anything but an error.
#include "wire/frame.h"
#include "wire/transport.h"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <unistd.h>

namespace thinfarm::wire {
namespace {

bool contains(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

Message roundTrip(const Message &m) {
  std::string frame = encode(m);
  auto back = decode(frame);
  EXPECT_TRUE(back.ok()) << back.error().message;
  if (!back.ok())
    return {};
  EXPECT_EQ(back->requestId, m.requestId);
  EXPECT_EQ(back->body.index(), m.body.index()) << kindName(m.body);
  EXPECT_EQ(encode(*back), frame) << kindName(m.body); // nothing lost or added
  return std::move(*back);
}

template <class T> T roundTrip(uint64_t requestId, const T &body) {
  Message back = roundTrip(Message{requestId, body});
  const T *got = back.get<T>();
  return got ? *got : T{};
}

BackendConfig config() {
  BackendConfig c;
  c.optLevel = 3;
  c.cgOptLevel = 1;
  c.relocatable = true;
  c.pic = true;
  c.llvmOptions = {"-mcpu=znver3", "-x86-pad-for-align=false", ""};
  c.mllvm = {"-x86-pad-for-align=false"};
  return c;
}

JobSpec spec() {
  JobSpec j;
  j.task = 7;
  j.module = {"vmlinux.a(main.o at 208618)", Digest::of("main")};
  j.shard = Digest::of("shard");
  j.imports = {{"a.o", Digest::of("a")}, {"b.o", Digest::of("b")}};
  j.incbins = {{"firmware/x.bin", Digest::of("x")}};
  j.cost = 123456789;
  j.noop = true;
  return j;
}

void expectSame(const JobSpec &a, const JobSpec &b) {
  EXPECT_EQ(a.task, b.task);
  EXPECT_EQ(a.module.identifier, b.module.identifier);
  EXPECT_EQ(a.module.bitcode, b.module.bitcode);
  EXPECT_EQ(a.shard, b.shard);
  ASSERT_EQ(a.imports.size(), b.imports.size());
  for (size_t i = 0; i < a.imports.size(); ++i) {
    EXPECT_EQ(a.imports[i].identifier, b.imports[i].identifier);
    EXPECT_EQ(a.imports[i].bitcode, b.imports[i].bitcode);
  }
  ASSERT_EQ(a.incbins.size(), b.incbins.size());
  for (size_t i = 0; i < a.incbins.size(); ++i) {
    EXPECT_EQ(a.incbins[i].path, b.incbins[i].path);
    EXPECT_EQ(a.incbins[i].content, b.incbins[i].content);
  }
  EXPECT_EQ(a.cost, b.cost);
  EXPECT_EQ(a.noop, b.noop);
}

const std::vector<Diagnostic> kDiagnostics{{Severity::Error, "e"}, {Severity::Warning, "w"},
                                           {Severity::Remark, "r"}, {Severity::Note, "n"}};

TEST(WireCodec, RoundTripsControlMessages) {
  for (ErrorKind k : {ErrorKind::Failed, ErrorKind::Overloaded, ErrorKind::Disconnected,
                      ErrorKind::Unimplemented, ErrorKind::Denied}) {
    ErrorMsg e = roundTrip(9, ErrorMsg{k, "no such blob"});
    EXPECT_EQ(e.kind, k);
    EXPECT_EQ(e.message, "no such blob");
  }
  RegisterWorker r = roundTrip(1, RegisterWorker{"box", "llvm-19.1.7", 48});
  EXPECT_EQ(r.name, "box");
  EXPECT_EQ(r.toolchain, "llvm-19.1.7");
  EXPECT_EQ(r.slots, 48u);
  EXPECT_EQ(roundTrip(1, Registered{48}).slots, 48u);
  for (bool drain : {true, false}) {
    DrainWorker d = roundTrip(3, DrainWorker{"w7", drain});
    EXPECT_EQ(d.name, "w7");
    EXPECT_EQ(d.drain, drain);
  }
  roundTrip(0, Heartbeat{});
  EXPECT_EQ(roundTrip(0, CancelJob{~0ull - 1}).jobId, ~0ull - 1);
  EXPECT_EQ(roundTrip(0, EndSession{~0ull}).sessionId, ~0ull);
  Progress p = roundTrip(0, Progress{42, 1, 2, 3, 4, 5});
  EXPECT_EQ(std::vector<uint32_t>({p.done, p.merged, p.running, p.queued, p.workers}),
            std::vector<uint32_t>({1, 2, 3, 4, 5}));
  EXPECT_EQ(p.sessionId, 42u);
}

TEST(WireCodec, RoundTripsBlobMessages) {
  std::vector<Digest> ds{Digest::of("a"), Digest::of(std::string(5000, 'b'))};
  EXPECT_EQ(roundTrip(4, FindMissing{ds}).digests, ds);
  EXPECT_EQ(roundTrip(4, Missing{ds}).digests, ds);
  EXPECT_TRUE(roundTrip(4, Missing{}).digests.empty());

  std::string bytes(1000, '\0');
  bytes[17] = '\xff';
  PutChunk put;
  put.digest = {Digest::of("x").sha256, 5000};
  put.offset = 4000;
  put.bytes = bytes;
  PutChunk put2 = roundTrip(5, put);
  EXPECT_EQ(put2.digest, put.digest);
  EXPECT_EQ(put2.offset, 4000u);
  EXPECT_EQ(put2.bytes, bytes);
  Chunk chunk;
  static_cast<BlobChunk &>(chunk) = put;
  Chunk chunk2 = roundTrip(6, chunk);
  EXPECT_EQ(chunk2.digest, put.digest);
  EXPECT_EQ(chunk2.bytes, bytes);

  PutAck ack;
  ack.digest = ds[1];
  ack.offset = 1 << 20;
  PutAck ack2 = roundTrip(7, ack);
  EXPECT_EQ(ack2.digest, ds[1]);
  EXPECT_EQ(ack2.offset, 1u << 20);
  GetChunk get;
  static_cast<ChunkRef &>(get) = ack;
  GetChunk get2 = roundTrip(8, get);
  EXPECT_EQ(get2.digest, ds[1]);
  EXPECT_EQ(get2.offset, 1u << 20);
}

TEST(WireCodec, RoundTripsSessionsAndJobs) {
  Session s{77, "llvm-19", "vmlinux.o", config(), {spec(), JobSpec{}}};
  Session s2 = roundTrip(2, s);
  EXPECT_EQ(s2.sessionId, 77u);
  EXPECT_EQ(s2.toolchain, "llvm-19");
  EXPECT_EQ(s2.output, "vmlinux.o");
  EXPECT_EQ(s2.config, config());
  ASSERT_EQ(s2.jobs.size(), 2u);
  expectSame(s2.jobs[0], spec());
  expectSame(s2.jobs[1], JobSpec{});

  RunJob run = roundTrip(3, RunJob{99, config(), spec()});
  EXPECT_EQ(run.jobId, 99u);
  EXPECT_EQ(run.config, config());
  expectSame(run.spec, spec());
}

TEST(WireCodec, RoundTripsJobResultsWithAndWithoutError) {
  JobResult ok;
  ok.sessionId = 1;
  ok.jobId = 2;
  ok.task = 3;
  ok.native = Digest::of("native");
  ok.diagnostics = kDiagnostics;
  ok.seconds = 1.25;
  ok.worker = "box";
  ok.merged = true;
  ok.nativeBytes = std::string("native\0\xff", 8);
  JobResult ok2 = roundTrip(0, ok);
  EXPECT_FALSE(ok2.error.has_value());
  EXPECT_EQ(ok2.sessionId, 1u);
  EXPECT_EQ(ok2.jobId, 2u);
  EXPECT_EQ(ok2.task, 3u);
  EXPECT_EQ(ok2.native, ok.native);
  EXPECT_EQ(ok2.diagnostics, kDiagnostics);
  EXPECT_EQ(ok2.seconds, 1.25);
  EXPECT_EQ(ok2.worker, "box");
  EXPECT_TRUE(ok2.merged);
  EXPECT_EQ(ok2.nativeBytes, ok.nativeBytes);

  JobResult bad = ok;
  bad.error = ErrorMsg{ErrorKind::Disconnected, "worker lost"};
  bad.merged = false;
  JobResult bad2 = roundTrip(0, bad);
  ASSERT_TRUE(bad2.error.has_value());
  EXPECT_EQ(bad2.error->kind, ErrorKind::Disconnected);
  EXPECT_EQ(bad2.error->message, "worker lost");
  EXPECT_FALSE(bad2.merged);
}

TEST(WireCodec, RoundTripsBackendMessages) {
  BackendRequest req{config(), "main.o", "/s/m.bc", "/s/m.shard", {"a.o", "b.o"},
                     {"/s/a.bc", "/s/b.bc"}, "/s/work", "/s/out.o", 12, Digest::of("m"),
                     {Digest::of("a"), Digest::of("b")}, {{"kernel/config_data.gz", Digest::of("c")}}};
  BackendRequest req2 = roundTrip(0, req);
  EXPECT_EQ(req2.moduleDigest, Digest::of("m"));
  EXPECT_EQ(req2.importDigests, req.importDigests);
  ASSERT_EQ(req2.incbins.size(), 1u);
  EXPECT_EQ(req2.incbins[0].path, "kernel/config_data.gz");
  EXPECT_EQ(req2.incbins[0].content, Digest::of("c"));
  BackendRequest unpaired = req;
  unpaired.importDigests.pop_back();
  auto bad = decode(encode(Message{0, unpaired}));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("import digests"), std::string::npos);
  EXPECT_EQ(req2.config, config());
  EXPECT_EQ(req2.module, "main.o");
  EXPECT_EQ(req2.modulePath, "/s/m.bc");
  EXPECT_EQ(req2.shardPath, "/s/m.shard");
  EXPECT_EQ(req2.importIds, req.importIds);
  EXPECT_EQ(req2.importPaths, req.importPaths);
  EXPECT_EQ(req2.workDir, "/s/work");
  EXPECT_EQ(req2.outputPath, "/s/out.o");
  EXPECT_EQ(req2.task, 12u);

  BackendReply rep = roundTrip(0, BackendReply{true, "bad bitcode", kDiagnostics, 0.5, Digest::of("k")});
  EXPECT_EQ(rep.key, Digest::of("k"));
  EXPECT_TRUE(rep.failed);
  EXPECT_EQ(rep.message, "bad bitcode");
  EXPECT_EQ(rep.diagnostics, kDiagnostics);
  EXPECT_EQ(rep.seconds, 0.5);
}

TEST(WireCodec, RoundTripsCacheMessages) {
  LinkMemo memo;
  memo.key = Digest::of("key");
  memo.found = true;
  memo.output = Digest::of("vmlinux.o");
  memo.incbins = {{"kernel/config_data.gz", Digest{}}};
  memo.transcript = "ld.lld-19: warning: stack frame size exceeds limit\n";
  memo.mode = 0755;
  LinkMemo back = roundTrip(3, memo);
  EXPECT_EQ(back.key, memo.key);
  EXPECT_TRUE(back.found);
  EXPECT_EQ(back.output, memo.output);
  ASSERT_EQ(back.incbins.size(), 1u);
  EXPECT_EQ(back.incbins[0].content, Digest{});
  EXPECT_EQ(back.transcript, memo.transcript);
  EXPECT_EQ(back.mode, 0755u);
  StoreStats st;
  st.actionHits = 7;
  st.corrupt = 2;
  st.workers = {{"w1", 16, 3, 1200}, {"w2", 8, 0, 7, 12, false, true}, {"w3", 1, 0, 9, 0, true, false}};
  StoreStats st2 = roundTrip(4, st);
  EXPECT_EQ(st2.actionHits, 7u);
  EXPECT_EQ(st2.corrupt, 2u);
  EXPECT_EQ(st2.workers, st.workers);
  JobResult r;
  r.key = Digest::of("backend key");
  r.cached = true;
  JobResult r2 = roundTrip(5, r);
  EXPECT_EQ(r2.key, r.key);
  EXPECT_TRUE(r2.cached);
}

// Every kind has a name and survives a round trip, so a kind added to Body
// without codec support fails here.
TEST(WireCodec, EveryKindRoundTrips) {
  std::set<std::string> names;
  auto each = [&]<size_t... I>(std::index_sequence<I...>) {
    (names.insert(kindName(roundTrip(Message{1, Body(std::in_place_index<I>)}).body)), ...);
  };
  each(std::make_index_sequence<std::variant_size_v<Body>>());
  EXPECT_EQ(names.size(), std::variant_size_v<Body>);
}

void expectMalformed(std::string_view frame, const std::string &what) {
  auto m = decode(frame);
  ASSERT_FALSE(m.ok()) << "decoded " << kindName(m->body);
  EXPECT_TRUE(contains(m.error().message, "malformed message")) << m.error().message;
  EXPECT_TRUE(contains(m.error().message, what)) << m.error().message;
}

TEST(WireCodec, BatchesRoundTripButDoNotNest) {
  Batch b;
  b.messages.push_back(Message{3, Registered{1}});
  b.messages.push_back(Message{4, EndSession{9}});
  auto m = decode(encode(Message{0, b}));
  ASSERT_TRUE(m.ok()) << m.error().message;
  const Batch *got = m->get<Batch>();
  ASSERT_NE(got, nullptr);
  ASSERT_EQ(got->messages.size(), 2u);
  EXPECT_EQ(got->messages[1].requestId, 4u);
  ASSERT_NE(got->messages[1].get<EndSession>(), nullptr);
  EXPECT_EQ(got->messages[1].get<EndSession>()->sessionId, 9u);

  Batch outer;
  outer.messages.push_back(Message{0, b});
  auto nested = decode(encode(Message{0, outer}));
  ASSERT_FALSE(nested.ok());
  EXPECT_NE(nested.error().message.find("a batch inside a batch"), std::string::npos);
}

TEST(WireCodec, MalformedFramesAreErrors) {
  expectMalformed("", "0 bytes");
  expectMalformed(std::string(kMaxFrame + 8, '\0'), "at most " + std::to_string(kMaxFrame));
  std::string frame = encode(Message{1, Session{77, "llvm-19", "vmlinux.o", config(), {spec()}}});
  expectMalformed(std::string_view(frame).substr(0, frame.size() - 1), "not a Cap'n Proto");
  expectMalformed(std::string_view(frame).substr(0, frame.size() - 8), "");
  expectMalformed(std::string_view(frame).substr(0, 8), "");
  std::mt19937_64 rng(1);
  for (size_t size : {8, 64, 4096}) {
    std::string garbage(size, '\0');
    for (char &c : garbage)
      c = static_cast<char>(rng());
    expectMalformed(garbage, "");
  }
}

// A digest's sha256 of 31 bytes: patch the Data list pointer (element size
// byte, count 32) in an encoded FindMissing to count 31.
TEST(WireCodec, RefusesShortDigest) {
  std::string frame = encode(Message{1, FindMissing{{Digest::of("a")}}});
  const std::string count32("\x02\x01\x00\x00", 4); // (32 << 3) | byte-sized
  size_t patched = 0;
  for (size_t w = 8; w + 8 <= frame.size(); w += 8)
    if ((frame[w] & 3) == 1 && frame.compare(w + 4, 4, count32) == 0) {
      frame[w + 4] = static_cast<char>(31 << 3 | 2);
      frame[w + 5] = 0;
      ++patched;
    }
  ASSERT_EQ(patched, 1u);
  expectMalformed(frame, "a digest of 31 bytes (expected 32)");
}

TEST(WireCodec, RefusesOversizedChunk) {
  PutChunk c;
  c.digest = {Digest::of("x").sha256, 2 * kChunk};
  c.bytes.assign(kChunk + 1, 'x');
  expectMalformed(encode(Message{1, c}), "a chunk of " + std::to_string(kChunk + 1) + " bytes");
  c.bytes.assign(kChunk, 'x');
  c.offset = kChunk + 1; // ends one byte beyond the blob
  expectMalformed(encode(Message{1, c}), "a chunk beyond the end of blob");
}

// Every single-byte corruption of small frames decodes or is refused; none
// crashes or asserts.
TEST(WireCodec, CorruptedFramesNeverCrash) {
  PutChunk c;
  c.digest = Digest::of("hello");
  c.bytes = "hello";
  for (const Message &m : {Message{3, c}, Message{4, JobResult{1, 2, 3, ErrorMsg{ErrorKind::Failed, "x"},
                                                              Digest::of("n"), kDiagnostics, 1, "w", true, "n", {}, false}}}) {
    std::string frame = encode(m);
    size_t refused = 0;
    for (size_t i = 0; i < frame.size(); ++i)
      for (unsigned char flip : {0x01, 0x80, 0xff}) {
        std::string bad = frame;
        bad[i] = static_cast<char>(bad[i] ^ flip);
        auto d = decode(bad);
        if (!d.ok()) {
          EXPECT_TRUE(contains(d.error().message, "malformed message")) << d.error().message;
          ++refused;
        }
      }
    EXPECT_GT(refused, 0u);
  }
}

class WirePipe : public ::testing::Test {
protected:
  void SetUp() override { ASSERT_EQ(pipe(fds_), 0); }
  void TearDown() override {
    for (int fd : fds_)
      if (fd >= 0)
        close(fd);
  }
  void closeWriter() {
    close(fds_[1]);
    fds_[1] = -1;
  }
  int fds_[2] = {-1, -1};
};

TEST_F(WirePipe, FramesRoundTrip) {
  ASSERT_TRUE(writeFrame(fds_[1], Message{5, Registered{2}}).ok());
  ASSERT_TRUE(writeFrame(fds_[1], Message{6, BackendReply{false, "done", kDiagnostics, 2, {}}}).ok());
  closeWriter();
  auto a = readFrame(fds_[0]);
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->requestId, 5u);
  ASSERT_NE(a->get<Registered>(), nullptr);
  EXPECT_EQ(a->get<Registered>()->slots, 2u);
  auto b = readFrame(fds_[0]);
  ASSERT_TRUE(b.ok()) << b.error().message;
  ASSERT_NE(b->get<BackendReply>(), nullptr);
  EXPECT_EQ(b->get<BackendReply>()->message, "done");
  EXPECT_EQ(b->get<BackendReply>()->diagnostics, kDiagnostics);
  auto eof = readFrame(fds_[0]);
  ASSERT_FALSE(eof.ok());
  EXPECT_EQ(eof.error().kind, ErrorKind::Disconnected);
}

TEST_F(WirePipe, TruncatedFrameIsAnError) {
  const char len[4] = {100, 0, 0, 0};
  ASSERT_EQ(write(fds_[1], len, 4), 4);
  ASSERT_EQ(write(fds_[1], "0123456789", 10), 10);
  closeWriter();
  auto m = readFrame(fds_[0]);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().kind, ErrorKind::Failed);
  EXPECT_TRUE(contains(m.error().message, "truncated frame (10 of 100 bytes)")) << m.error().message;
}

TEST_F(WirePipe, TruncatedLengthAndOversizedFrameAreErrors) {
  ASSERT_EQ(write(fds_[1], "\x10\x00", 2), 2);
  closeWriter();
  auto m = readFrame(fds_[0]);
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(contains(m.error().message, "truncated frame length")) << m.error().message;

  int p[2];
  ASSERT_EQ(pipe(p), 0);
  const unsigned char huge[4] = {0xff, 0xff, 0xff, 0x7f};
  ASSERT_EQ(write(p[1], huge, 4), 4);
  auto big = readFrame(p[0]); // refused before reading (or allocating) the body
  close(p[0]);
  close(p[1]);
  ASSERT_FALSE(big.ok());
  EXPECT_TRUE(contains(big.error().message, "at most")) << big.error().message;
}

TEST(WireEndpoint, ChecksAddresses) {
  for (const char *good : {"tcp://127.0.0.1:7700", "tcp://*:7700", "ipc:///tmp/x", "inproc://a"})
    EXPECT_TRUE(checkEndpoint(good).ok()) << good;
  for (const char *bad : {"tcp://host", "foo", "tcp://h:abc", "tcp://h:", "ipc://", "inproc://", ""}) {
    Status s = checkEndpoint(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_TRUE(contains(s.error().message, std::string("bad address ") + bad)) << s.error().message;
  }
}

} // namespace
} // namespace thinfarm::wire

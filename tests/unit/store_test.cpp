// The content-addressed store on a real RocksDB in a temporary directory.
#include "storage/store.h"
#include "scratch_dir.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <csignal>
#include <filesystem>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

namespace thinfarm {
namespace {

using test::pattern;

TEST(Digest, Sha256AndSize) {
  Digest d = Digest::of("abc");
  EXPECT_EQ(d.text(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad-3");
  auto back = Digest::parse(d.text());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, d);
  for (const char *bad : {"", "xyz", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                          "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD-3",
                          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad-3x"}) {
    auto p = Digest::parse(bad);
    ASSERT_FALSE(p.ok()) << bad;
    EXPECT_NE(p.error().message.find("malformed digest"), std::string::npos);
  }
}

TEST(Digest, IncrementalEqualsWhole) {
  std::string data = pattern(3 << 20, 7);
  DigestBuilder b;
  for (size_t off = 0; off < data.size(); off += 100000)
    b.update(std::string_view(data).substr(off, 100000));
  EXPECT_EQ(b.finish(), Digest::of(data));
}

class StoreTest : public ::testing::Test {
protected:
  test::ScratchDir dir_;
  std::string path() const { return dir_.file("store"); }
};

TEST_F(StoreTest, PutGetFindMissingAcrossReopen) {
  std::string small = "native object bytes", big = pattern(3 * Store::kChunkSize + 12345, 1);
  Digest ds = Digest::of(small), db = Digest::of(big), absent = Digest::of("absent");
  {
    auto store = Store::open(path());
    ASSERT_TRUE(store.ok()) << store.error().message;
    std::vector<Digest> all{ds, db, absent};
    EXPECT_EQ(*store->findMissing(all), all);
    std::vector<std::pair<Digest, std::string_view>> batch{{ds, small}, {db, big}};
    ASSERT_TRUE(store->putBatch(batch).ok());
    EXPECT_EQ(*store->findMissing(all), std::vector<Digest>{absent});
  }
  auto store = Store::open(path());
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(**store->get(ds), small);
  EXPECT_EQ(**store->get(db), big);
  EXPECT_FALSE(store->get(absent)->has_value());
  size_t chunks = 0;
  ASSERT_TRUE(store->read(db, [&](std::string_view c) {
    EXPECT_LE(c.size(), Store::kChunkSize);
    ++chunks;
    return ok();
  }).ok());
  EXPECT_EQ(chunks, 4u);
}

TEST_F(StoreTest, RefusesContentThatDoesNotMatchItsDigest) {
  auto store = Store::open(path());
  Digest claimed = Digest::of("what the client said");
  Status s = store->put(claimed, "what the client sent");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("blob " + claimed.text() + ": refused"), std::string::npos)
      << s.error().message;
  EXPECT_FALSE(store->get(claimed)->has_value());
}

TEST_F(StoreTest, StreamingWriterChecksSizeAndContent) {
  auto store = Store::open(path());
  std::string big = pattern(2 * Store::kChunkSize + 99, 3);
  Digest d = Digest::of(big);
  {
    auto w = store->write(d);
    ASSERT_TRUE(w->append(std::string_view(big).substr(0, 1500000)).ok());
    Status s = w->finish(); // truncated
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("truncated"), std::string::npos);
  }
  EXPECT_FALSE(store->get(d)->has_value());
  {
    std::string wrong = big;
    wrong[Store::kChunkSize + 5] ^= 1;
    auto w = store->write(d);
    ASSERT_TRUE(w->append(wrong).ok());
    ASSERT_FALSE(w->finish().ok());
  }
  EXPECT_FALSE(store->get(d)->has_value());
  {
    auto w = store->write(d);
    for (size_t off = 0; off < big.size(); off += 300000)
      ASSERT_TRUE(w->append(std::string_view(big).substr(off, 300000)).ok());
    EXPECT_FALSE(w->append("x").ok()); // past its size
    ASSERT_TRUE(w->finish().ok());
  }
  EXPECT_EQ(**store->get(d), big);
  { // an abandoned writer leaves nothing readable
    std::string other = pattern(2 * Store::kChunkSize, 9);
    auto w = store->write(Digest::of(other));
    ASSERT_TRUE(w->append(std::string_view(other).substr(0, Store::kChunkSize + 1)).ok());
  }
  EXPECT_FALSE(store->get(Digest::of(pattern(2 * Store::kChunkSize, 9)))->has_value());
}

// Writers of one large blob share its chunk keys and check bytes only at
// finish (found by tests/fuzz/blob_chunk_fuzz): a second writer's spoiled
// chunk used to land in the blob the first one finished. One writer at a
// time: a second write() is Overloaded, a put() waits for the first.
TEST_F(StoreTest, OneWriterOfALargeBlobAtATime) {
  auto store = Store::open(path());
  std::string big = pattern(2 * Store::kChunkSize + 7, 5), spoiled = big;
  spoiled[10] ^= 1;
  Digest d = Digest::of(big);
  {
    auto honest = store->write(d);
    ASSERT_TRUE(honest.ok());
    auto other = store->write(d);
    ASSERT_FALSE(other.ok());
    EXPECT_EQ(other.error().kind, ErrorKind::Overloaded);
    EXPECT_NE(other.error().message.find("another upload"), std::string::npos);
    ASSERT_TRUE(honest->append(big).ok());
    ASSERT_TRUE(honest->finish().ok());
  }
  ASSERT_EQ(**store->get(d), big);
  EXPECT_EQ(store->stats().corrupt, 0u);

  std::string big2 = pattern(2 * Store::kChunkSize + 8, 6);
  Digest d2 = Digest::of(big2);
  std::atomic<bool> put{false};
  std::thread putter;
  {
    auto w = store->write(d2);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w->append(std::string_view(big2).substr(0, Store::kChunkSize + 1)).ok());
    putter = std::thread([&] {
      EXPECT_TRUE(store->put(d2, big2).ok());
      put = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_FALSE(put) << "put() wrote beside an open writer";
  } // abandoned: its chunks dropped, then the put writes the blob
  putter.join();
  EXPECT_TRUE(put);
  EXPECT_EQ(**store->get(d2), big2);
  EXPECT_TRUE(store->write(d2).ok()); // nobody writes it now
}

// Corrupt a stored value behind the store's back (through RocksDB, using the
// key grammar documented in storage/store.h): the read fails naming the blob,
// the entry is dropped, and a fresh put restores it.
TEST_F(StoreTest, CorruptionIsDetectedNamedAndDropped) {
  std::string blob = "index shard";
  Digest d = Digest::of(blob);
  {
    auto store = Store::open(path());
    ASSERT_TRUE(store->put(d, blob).ok());
  }
  {
    rocksdb::DB *raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), path(), &raw).ok());
    std::string key(1, 'b');
    key.append(reinterpret_cast<const char *>(d.sha256.data()), 32);
    for (int i = 7; i >= 0; --i)
      key.push_back(static_cast<char>((d.size >> (8 * i)) & 0xff));
    std::string value;
    ASSERT_TRUE(raw->Get(rocksdb::ReadOptions(), key, &value).ok()) << "key grammar changed";
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), key, "index shard, flipped").ok());
    delete raw;
  }
  auto store = Store::open(path());
  auto got = store->get(d);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message.find("blob " + d.text() + " is corrupt"), std::string::npos)
      << got.error().message;
  EXPECT_FALSE(store->get(d)->has_value()); // dropped
  ASSERT_TRUE(store->put(d, blob).ok());
  EXPECT_EQ(**store->get(d), blob);
}

// Raw access to the database behind the store, for what the store never does
// on its own: damage, inspection of key kinds.
struct RawDb {
  explicit RawDb(const std::string &path) {
    rocksdb::DB *raw = nullptr;
    rocksdb::Options o;
    o.create_if_missing = true;
    EXPECT_TRUE(rocksdb::DB::Open(o, path, &raw).ok());
    db.reset(raw);
  }
  size_t count(char tag) {
    size_t n = 0;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(std::string(1, tag)); it->Valid() && it->key()[0] == tag; it->Next())
      ++n;
    return n;
  }
  std::unique_ptr<rocksdb::DB> db;
};

std::string smallBlob(int i) { return pattern(1000, static_cast<unsigned>(i + 1) << 13); }

TEST_F(StoreTest, EvictsLeastRecentlyUsedBeyondTheBudget) {
  StoreOptions o;
  o.budgetBytes = 10 * 1000;
  o.touchInterval = 0;
  std::string big = pattern(3 * Store::kChunkSize, 77);
  {
    StoreOptions unlimited = o;
    unlimited.budgetBytes = 0;
    auto store = Store::open(path(), unlimited);
    ASSERT_TRUE(store->put(Digest::of(big), big).ok());
  }
  {
    RawDb raw(path());
    EXPECT_EQ(raw.count('c'), 3u);
  }
  // Reopened with a budget the large blob alone exceeds: it goes first.
  auto store = Store::open(path(), o);
  ASSERT_TRUE(store.ok()) << store.error().message;
  EXPECT_FALSE(store->get(Digest::of(big))->has_value());
  for (int i = 0; i < 9; ++i) {
    ASSERT_TRUE(store->put(Digest::of(smallBlob(i)), smallBlob(i)).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(i == 0 ? 1100 : 0));
  }
  // Blob 0 is the oldest written, but read now: blobs 1.. go before it.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  ASSERT_TRUE(store->get(Digest::of(smallBlob(0)))->has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  for (int i = 9; i < 12; ++i)
    ASSERT_TRUE(store->put(Digest::of(smallBlob(i)), smallBlob(i)).ok());
  StoreStats st = store->stats();
  EXPECT_LE(st.bytes, o.budgetBytes) << st.entries << " entries";
  EXPECT_GE(st.evictions, 3u); // the large blob and at least two small ones
  EXPECT_GE(st.evictedBytes, big.size());
  // Blobs 1..8 share their last use (one second): two of them went; blob 0
  // (read later) and the newest did not.
  EXPECT_EQ(st.evictions, 3u);
  EXPECT_TRUE(store->get(Digest::of(smallBlob(0)))->has_value());
  int left = 0;
  for (int i = 1; i <= 8; ++i)
    left += store->get(Digest::of(smallBlob(i)))->has_value();
  EXPECT_EQ(left, 6);
  for (int i = 9; i < 12; ++i)
    EXPECT_TRUE(store->get(Digest::of(smallBlob(i)))->has_value());
  store = Result<Store>(failed("closed"));
  RawDb raw(path());
  EXPECT_EQ(raw.count('c'), 0u) << "the evicted large blob left chunks";
  EXPECT_EQ(raw.count('m'), 0u);
}

TEST_F(StoreTest, RecordsLiveWithTheirBlobAndDamagedOnesAreDropped) {
  std::string native = "native object";
  Digest n = Digest::of(native), k = Digest::of("backend key"), k2 = Digest::of("other key");
  {
    auto store = Store::open(path());
    EXPECT_FALSE(store->getRecord(RecordKind::Action, k)->has_value());
    ASSERT_TRUE(store->put(n, native).ok());
    ASSERT_TRUE(store->putRecord(RecordKind::Action, k, "payload", n).ok());
    ASSERT_TRUE(store->putRecord(RecordKind::Action, k2, "payload 2", n).ok());
    EXPECT_EQ(**store->getRecord(RecordKind::Action, k), "payload");
    EXPECT_FALSE(store->getRecord(RecordKind::LinkMemo, k)->has_value()); // kinds apart
    // A record whose blob is absent is worthless: dropped.
    Digest gone = Digest::of("never stored");
    ASSERT_TRUE(store->putRecord(RecordKind::LinkMemo, k, "memo", gone).ok());
    EXPECT_FALSE(store->getRecord(RecordKind::LinkMemo, k)->has_value());
    StoreStats st = store->stats();
    EXPECT_EQ(st.actionHits, 1u);
    EXPECT_EQ(st.actionMisses, 1u);
    EXPECT_EQ(st.memoMisses, 2u);
  }
  {
    RawDb raw(path());
    std::string key(1, 'a');
    key.append(reinterpret_cast<const char *>(k.sha256.data()), 32);
    for (int i = 7; i >= 0; --i)
      key.push_back(static_cast<char>((k.size >> (8 * i)) & 0xff));
    std::string value;
    ASSERT_TRUE(raw.db->Get(rocksdb::ReadOptions(), key, &value).ok()) << "key grammar changed";
    value.back() ^= 1; // the payload, behind the check
    ASSERT_TRUE(raw.db->Put(rocksdb::WriteOptions(), key, value).ok());
  }
  auto store = Store::open(path());
  EXPECT_FALSE(store->getRecord(RecordKind::Action, k)->has_value());
  EXPECT_EQ(store->stats().corrupt, 1u);
  EXPECT_EQ(**store->getRecord(RecordKind::Action, k2), "payload 2");
}

TEST_F(StoreTest, StatisticsPersistAndReadWhileAnotherProcessHoldsTheStore) {
  {
    auto store = Store::open(path());
    ASSERT_TRUE(store->put(Digest::of("x"), "x").ok());
    EXPECT_FALSE(store->getRecord(RecordKind::LinkMemo, Digest::of("k"))->has_value());
  }
  auto store = Store::open(path());
  ASSERT_TRUE(store->get(Digest::of("x"))->has_value());
  ASSERT_TRUE(store->flushStats().ok());
  StoreStats st = store->stats();
  EXPECT_EQ(st.memoMisses, 1u);
  EXPECT_EQ(st.bytesStored, 1u);
  EXPECT_EQ(st.bytesServed, 1u);
  EXPECT_EQ(st.entries, 1u);
  auto ro = Store::readStats(path()); // the DB is open read-write above
  ASSERT_TRUE(ro.ok()) << ro.error().message;
  EXPECT_EQ(ro->memoMisses, 1u);
  EXPECT_EQ(ro->bytesServed, 1u);
  EXPECT_EQ(ro->entries, 1u);
  EXPECT_EQ(ro->bytes, 1u);
}

// An idle owner writes nothing: flushStats persists the counters only when
// they changed (the coordinator calls it every 200 ms). Seen in the
// write-ahead log, where every Put lands at once.
TEST_F(StoreTest, StatisticsAreWrittenOnlyWhenTheyChange) {
  auto store = Store::open(path());
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto wal = [&] {
    uint64_t bytes = 0;
    for (const auto &e : std::filesystem::directory_iterator(path()))
      if (e.path().extension() == ".log")
        bytes += e.file_size();
    return bytes;
  };
  ASSERT_TRUE(store->flushStats().ok());
  uint64_t before = wal();
  for (int i = 0; i < 50; ++i)
    ASSERT_TRUE(store->flushStats().ok());
  EXPECT_EQ(wal(), before) << "unchanged statistics were written again";
  EXPECT_FALSE(store->getRecord(RecordKind::LinkMemo, Digest::of("k"))->has_value()); // a miss
  ASSERT_TRUE(store->flushStats().ok());
  EXPECT_GT(wal(), before) << "changed statistics were not written";
}

TEST_F(StoreTest, OlderFormatIsEmptiedNewerIsRefused) {
  {
    RawDb raw(path());
    std::string k(41, 'b');
    ASSERT_TRUE(raw.db->Put(rocksdb::WriteOptions(), k, "old").ok());
  }
  {
    auto store = Store::open(path());
    ASSERT_TRUE(store.ok()) << store.error().message;
    EXPECT_EQ(store->stats().entries, 0u);
  }
  {
    RawDb raw(path());
    EXPECT_EQ(raw.count('b'), 0u);
    ASSERT_TRUE(raw.db->Put(rocksdb::WriteOptions(), "V", std::string("\0\0\0\x63", 4)).ok());
  }
  auto store = Store::open(path());
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("format version 99"), std::string::npos)
      << store.error().message;
}

// The writer of SurvivesKillDuringWrites, in a process of its own: started by
// that test (a fresh exec of this binary, not a bare fork of a process whose
// RocksDB threads may hold locks), idle otherwise. It puts blobs into the store
// at $THINFARM_TEST_STORE for ever, writing each acknowledged digest to the
// pipe $THINFARM_TEST_ACK_FD.
TEST(StoreWriter, PutsUntilKilled) {
  const char *dir = std::getenv("THINFARM_TEST_STORE");
  const char *fd = std::getenv("THINFARM_TEST_ACK_FD");
  if (!dir || !fd)
    GTEST_SKIP() << "started only by StoreTest.SurvivesKillDuringWrites";
  const int ack = std::atoi(fd);
  const unsigned round = static_cast<unsigned>(std::atoi(std::getenv("THINFARM_TEST_ROUND")));
  auto store = Store::open(dir);
  if (!store.ok())
    _exit(3);
  for (unsigned i = 0;; ++i) {
    std::string blob = pattern(i % 3 == 0 ? 3 * Store::kChunkSize + i : 5000 + i, i * 31 + round);
    Digest d = Digest::of(blob);
    if (!store->put(d, blob).ok())
      _exit(4);
    std::string line = d.text() + "\n";
    if (write(ack, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
      _exit(5);
  }
}

// kill -9 during heavy writes: the store reopens, every acknowledged blob is
// there and intact, and no chunk is left without its manifest.
TEST_F(StoreTest, SurvivesKillDuringWrites) {
  for (int round = 0; round < 3; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    // Everything the child needs is made before fork: it only execs.
    std::vector<std::string> env{"THINFARM_TEST_STORE=" + path(),
                                 "THINFARM_TEST_ACK_FD=" + std::to_string(fds[1]),
                                 "THINFARM_TEST_ROUND=" + std::to_string(round)};
    std::vector<char *> envp;
    for (std::string &e : env)
      envp.push_back(e.data());
    for (char **e = environ; *e; ++e)
      envp.push_back(*e);
    envp.push_back(nullptr);
    char arg0[] = "thinfarm_unit_tests", arg1[] = "--gtest_filter=StoreWriter.PutsUntilKilled";
    char *argv[] = {arg0, arg1, nullptr};
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      execve("/proc/self/exe", argv, envp.data());
      _exit(6);
    }
    close(fds[1]);
    std::vector<Digest> acked;
    std::string buf;
    char c;
    while (acked.size() < static_cast<size_t>(5 + 7 * round) && read(fds[0], &c, 1) == 1) {
      if (c != '\n') {
        buf += c;
        continue;
      }
      acked.push_back(*Digest::parse(buf));
      buf.clear();
    }
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    close(fds[0]);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the writer exited with " << WEXITSTATUS(status);
    {
      auto store = Store::open(path());
      ASSERT_TRUE(store.ok()) << store.error().message;
      for (const Digest &d : acked) {
        auto got = store->get(d);
        ASSERT_TRUE(got.ok()) << got.error().message;
        ASSERT_TRUE(got->has_value()) << "acknowledged blob lost: " << d.text();
      }
      EXPECT_EQ(store->stats().corrupt, 0u);
    }
    RawDb raw(path());
    // Every chunk belongs to a blob with a manifest.
    std::unique_ptr<rocksdb::Iterator> it(raw.db->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek("c"); it->Valid() && it->key()[0] == 'c'; it->Next()) {
      std::string m = "m" + it->key().ToString().substr(1, 40), v;
      EXPECT_TRUE(raw.db->Get(rocksdb::ReadOptions(), m, &v).ok()) << "an orphan chunk";
    }
    EXPECT_EQ(raw.count('p'), 0u);
  }
}

} // namespace
} // namespace thinfarm

// The content-addressed store on a real RocksDB in a temporary directory.
#include "storage/store.h"
#include "scratch_dir.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

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

} // namespace
} // namespace thinfarm

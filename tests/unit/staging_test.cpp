// The worker's staging of input files: many slots needing the same blobs at
// once must each see complete files, written once.
#include "worker/staging.h"
#include "scratch_dir.h"

#include <gtest/gtest.h>

#include <thread>

namespace thinfarm {
namespace {

TEST(Staging, ConcurrentSlotsSeeCompleteFiles) {
  test::ScratchDir dir;
  auto store = Store::open(dir.file("store"));
  ASSERT_TRUE(store.ok()) << store.error().message;
  std::vector<Digest> digests;
  std::vector<std::string> blobs;
  for (int i = 0; i < 6; ++i) {
    std::string b(300000 + i * 777777, static_cast<char>('a' + i)); // two of them chunked
    b[i] = 'x';
    digests.push_back(Digest::of(b));
    blobs.push_back(b);
    ASSERT_TRUE(store->put(digests.back(), b).ok());
  }
  std::filesystem::create_directories(dir.file("staging"));
  for (int round = 0; round < 5; ++round) {
    Staging staging(dir.file("staging"), 1ull << 30);
    std::vector<std::thread> slots;
    std::atomic<int> bad{0};
    for (int t = 0; t < 8; ++t)
      slots.emplace_back([&] {
        auto paths = staging.acquire(*store, digests);
        if (!paths.ok()) {
          bad++;
          return;
        }
        for (size_t i = 0; i < digests.size(); ++i)
          if (test::readAll((*paths)[i]) != blobs[i])
            bad++;
        staging.release(digests);
      });
    for (auto &t : slots)
      t.join();
    EXPECT_EQ(bad.load(), 0) << "round " << round;
    std::filesystem::remove_all(dir.file("staging"));
    std::filesystem::create_directories(dir.file("staging"));
  }
}

TEST(Staging, EvictsLeastRecentlyUsedUnpinnedFiles) {
  test::ScratchDir dir;
  auto store = Store::open(dir.file("store"));
  ASSERT_TRUE(store.ok());
  std::vector<Digest> d;
  for (char c : {'a', 'b', 'c'}) {
    std::string b(1000, c);
    d.push_back(Digest::of(b));
    ASSERT_TRUE(store->put(d.back(), b).ok());
  }
  std::filesystem::create_directories(dir.file("staging"));
  Staging staging(dir.file("staging"), 2000); // room for two
  auto a = staging.acquire(*store, {d[0]});
  auto b = staging.acquire(*store, {d[1]});
  ASSERT_TRUE(a.ok() && b.ok());
  staging.release({d[0]});
  auto c = staging.acquire(*store, {d[2]}); // over budget: a (unpinned, oldest) goes
  ASSERT_TRUE(c.ok());
  staging.release({d[2]});
  EXPECT_FALSE(std::filesystem::exists((*a)[0]));
  EXPECT_TRUE(std::filesystem::exists((*b)[0])); // pinned
  EXPECT_EQ(test::readAll((*b)[0]), std::string(1000, 'b'));
}

} // namespace
} // namespace thinfarm

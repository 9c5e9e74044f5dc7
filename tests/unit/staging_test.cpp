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

// Links planted at a staged file's name or its temporary name (by anyone
// who could write the directory) are replaced, never followed; the file is
// read-only.
TEST(Staging, FilesAreNewAndReadOnly) {
  test::ScratchDir dir;
  auto store = Store::open(dir.file("store"));
  ASSERT_TRUE(store.ok());
  std::string bytes(5000, 'z');
  Digest d = Digest::of(bytes);
  ASSERT_TRUE(store->put(d, bytes).ok());
  std::filesystem::create_directories(dir.file("staging"));
  std::string victim = dir.write("victim", "unchanged");
  std::filesystem::create_symlink(victim, dir.file("staging/" + d.text()));
  std::filesystem::create_symlink(victim, dir.file("staging/" + d.text() + ".part"));
  Staging staging(dir.file("staging"), 1ull << 30);
  auto paths = staging.acquire(*store, {d});
  ASSERT_TRUE(paths.ok()) << paths.error().message;
  EXPECT_EQ(test::readAll(victim), "unchanged");
  EXPECT_FALSE(std::filesystem::is_symlink((*paths)[0]));
  EXPECT_EQ(test::readAll((*paths)[0]), bytes);
  EXPECT_EQ(std::filesystem::status((*paths)[0]).permissions(), std::filesystem::perms(0444));
  EXPECT_FALSE(std::filesystem::exists(dir.file("staging/" + d.text() + ".part")));
  staging.release({d});
}

TEST(Staging, ScratchDirectoriesAreNewAndPrivate) {
  test::ScratchDir dir;
  auto a = makeScratchDir(dir.file("w-"));
  auto b = makeScratchDir(dir.file("w-"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_EQ(std::filesystem::status(*a).permissions(), std::filesystem::perms::owner_all);
  auto bad = makeScratchDir(dir.file("missing/w-"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("missing/w-"), std::string::npos) << bad.error().message;
}

} // namespace
} // namespace thinfarm

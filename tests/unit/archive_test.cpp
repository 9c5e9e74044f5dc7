// The archive reader against archives made by llvm-ar-19, and its module
// identifiers against the ones ld.lld-19 writes in a thin link's index list.
#include "lto/expand.h"
#include "lto/parse.h"
#include "scratch_dir.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

namespace thinfarm {
namespace {

class ArchiveTest : public ::testing::Test {
protected:
  void SetUp() override {
    // Two bitcode members, one with a name too long for the ar header, and a
    // native one.
    dir_.write("a.c", "int a(void) { return 1; }\n");
    dir_.write("a_member_with_a_long_name.c", "int b(void) { return 2; }\n");
    dir_.write("n.c", "int n(void) { return 3; }\n");
    std::string cd = "cd " + dir_.path() + " && ";
    ASSERT_EQ(test::run(cd + "clang-19 -O2 -flto=thin -c a.c a_member_with_a_long_name.c && "
                             "clang-19 -O2 -c n.c && mkdir -p sub && cp a.o sub/a.o && "
                             "llvm-ar-19 rcs reg.a a.o a_member_with_a_long_name.o n.o && "
                             "llvm-ar-19 rcsT thin.a sub/a.o a_member_with_a_long_name.o n.o"),
              "");
  }

  // The identifiers ld.lld-19 gives the bitcode modules of `archive`.
  std::vector<std::string> lldIdentifiers(const std::string &archive) {
    std::string cd = "cd " + dir_.path() + " && ";
    std::string out =
        test::run(cd + "rm -rf idx && ld.lld-19 -r -o x.o --whole-archive " + archive +
                  " --thinlto-index-only=list --thinlto-prefix-replace=';idx/' && cat list");
    std::vector<std::string> ids;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);)
      ids.push_back(line.substr(4)); // strip "idx/"
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  std::vector<std::string> ourIdentifiers(const std::string &archive) {
    auto cmd = parseCommandLine({"-r", "--whole-archive", dir_.file(archive)});
    EXPECT_TRUE(cmd.ok());
    auto in = expandInputs(*cmd);
    EXPECT_TRUE(in.ok()) << in.error().message;
    std::vector<std::string> ids;
    for (const auto &[id, blob] : in->modules)
      ids.push_back(id.substr(dir_.path().size() + 1));
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  test::ScratchDir dir_;
};

TEST_F(ArchiveTest, RegularArchiveMembers) {
  auto blob = Blob::mapFile(dir_.file("reg.a"));
  ASSERT_TRUE(blob.ok());
  auto ar = readArchive(dir_.file("reg.a"), *blob);
  ASSERT_TRUE(ar.ok()) << ar.error().message;
  EXPECT_FALSE(ar->thin);
  ASSERT_EQ(ar->members.size(), 3u);
  EXPECT_EQ(ar->members[0].name, "a.o");
  EXPECT_EQ(ar->members[1].name, "a_member_with_a_long_name.o");
  EXPECT_EQ(ar->members[2].name, "n.o");
  auto n = Blob::mapFile(dir_.file("n.o"));
  EXPECT_EQ(ar->members[2].bytes.bytes(), n->bytes());
  EXPECT_EQ(classify(ar->members[0].bytes.bytes()), FileKind::Bitcode);
  EXPECT_EQ(classify(ar->members[2].bytes.bytes()), FileKind::Elf);
}

TEST_F(ArchiveTest, ThinArchiveMembersAreTheFilesTheyName) {
  auto blob = Blob::mapFile(dir_.file("thin.a"));
  auto ar = readArchive(dir_.file("thin.a"), *blob);
  ASSERT_TRUE(ar.ok()) << ar.error().message;
  EXPECT_TRUE(ar->thin);
  ASSERT_EQ(ar->members.size(), 3u);
  EXPECT_EQ(ar->members[0].path, dir_.file("sub/a.o"));
  EXPECT_EQ(ar->members[0].bytes.bytes(), Blob::mapFile(dir_.file("a.o"))->bytes());
}

TEST_F(ArchiveTest, IdentifiersMatchLld) {
  for (const char *archive : {"reg.a", "thin.a"}) {
    auto ours = ourIdentifiers(archive);
    auto lld = lldIdentifiers(dir_.file(archive));
    ASSERT_EQ(ours.size(), 2u) << archive;
    for (auto &id : lld)
      id = id.substr(dir_.path().size() + 1);
    EXPECT_EQ(ours, lld) << archive;
  }
}

TEST_F(ArchiveTest, TruncatedArchiveNamesTheOffset) {
  auto blob = Blob::mapFile(dir_.file("reg.a"));
  std::string bytes(blob->bytes().substr(0, blob->size() - 100));
  auto ar = readArchive("cut.a", Blob::fromString(bytes));
  ASSERT_FALSE(ar.ok());
  EXPECT_NE(ar.error().message.find("cut.a: member at offset"), std::string::npos)
      << ar.error().message;
}

TEST_F(ArchiveTest, CorruptHeaderIsAnError) {
  auto blob = Blob::mapFile(dir_.file("reg.a"));
  std::string bytes(blob->bytes());
  bytes[8 + 58] = 'X'; // the first header's terminator
  auto ar = readArchive("bad.a", Blob::fromString(bytes));
  ASSERT_FALSE(ar.ok());
  EXPECT_NE(ar.error().message.find("bad member header at offset 8"), std::string::npos)
      << ar.error().message;
}

} // namespace
} // namespace thinfarm

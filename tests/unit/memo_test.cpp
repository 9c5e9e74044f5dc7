// The link memo's key (lto/memo.cpp) over real files: it must change with
// anything that changes the output, and only with that.
#include "lto/expand.h"
#include "lto/memo.h"
#include "lto/parse.h"
#include "scratch_dir.h"

#include <gtest/gtest.h>

#include <unistd.h>

namespace thinfarm {
namespace {

class MemoKeyTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_EQ(::getcwd(cwd_, sizeof cwd_), cwd_);
    ASSERT_EQ(::chdir(dir_.path().c_str()), 0); // the key covers the directory too
    dir_.write("a.o", "not bitcode, but bytes the key covers");
    dir_.write("b.o", "more bytes");
    dir_.write("link.lds", "SECTIONS { .text : { *(.text) } }\n");
  }
  void TearDown() override { ASSERT_EQ(::chdir(cwd_), 0); }

  Digest key(const std::vector<std::string> &args, const std::string &secret = "s") {
    auto cmd = parseCommandLine(args);
    EXPECT_TRUE(cmd.ok()) << cmd.error().message;
    auto inputs = expandInputs(*cmd);
    EXPECT_TRUE(inputs.ok()) << inputs.error().message;
    auto k = memoKey(MemoIdentity{secret, "toolchain"}, *cmd, *inputs, 1);
    EXPECT_TRUE(k.ok()) << k.error().message;
    EXPECT_TRUE(k->has_value());
    return (*k)->key;
  }

  test::ScratchDir dir_;
  char cwd_[4096];
};

TEST_F(MemoKeyTest, SameLinkSameKey) {
  EXPECT_EQ(key({"-r", "a.o", "b.o", "-o", "out"}), key({"-r", "a.o", "b.o", "-o", "out"}));
}

TEST_F(MemoKeyTest, ChangesWithAnInputsBytes) {
  Digest before = key({"-r", "a.o", "b.o", "-o", "out"});
  dir_.write("b.o", "more bytes!");
  EXPECT_NE(key({"-r", "a.o", "b.o", "-o", "out"}), before);
}

TEST_F(MemoKeyTest, ChangesWithOptionsOrderAndScripts) {
  Digest base = key({"-r", "a.o", "b.o", "-T", "link.lds", "-o", "out"});
  EXPECT_NE(key({"-r", "b.o", "a.o", "-T", "link.lds", "-o", "out"}), base);
  EXPECT_NE(key({"-r", "a.o", "b.o", "-T", "link.lds", "-o", "out", "--gc-sections"}), base);
  EXPECT_NE(key({"-r", "a.o", "b.o", "-T", "link.lds", "-o", "out2"}), base);
  dir_.write("link.lds", "SECTIONS { .text : { *(.text*) } }\n");
  EXPECT_NE(key({"-r", "a.o", "b.o", "-T", "link.lds", "-o", "out"}), base)
      << "a linker script's contents are an input";
}

TEST_F(MemoKeyTest, ChangesWithTheClient) {
  EXPECT_NE(key({"-r", "a.o", "-o", "out"}, "one"), key({"-r", "a.o", "-o", "out"}, "other"));
}

TEST_F(MemoKeyTest, NotWithThreadCounts) {
  Digest base = key({"-r", "a.o", "b.o", "-o", "out"});
  EXPECT_EQ(key({"-r", "a.o", "b.o", "-o", "out", "--threads=3"}), base);
  EXPECT_EQ(key({"-r", "a.o", "b.o", "-o", "out", "--thinlto-jobs=7"}), base);
}

} // namespace
} // namespace thinfarm

// The backend key on real index shards: clang-19 bitcode, ld.lld-19's thin
// link writing the shards, in two directories whose paths differ.
#include "lto/backend_key.h"
#include "scratch_dir.h"

#include <gtest/gtest.h>

namespace thinfarm {
namespace {

class BackendKeyTest : public ::testing::Test {
protected:
  void SetUp() override {
    // a imports helper() from b; b's static counter is promoted for it.
    dir_.write("a.c", "int helper(int); int big(int x) { int s = 0; for (int i = 0; i < x; i++) "
                      "s += helper(i) * i; return s; }\n");
    dir_.write("b.c", "static int calls; int helper(int x) { calls++; return x * 3 + calls; }\n");
    ASSERT_EQ(test::run("cd " + dir_.path() + " && clang-19 -O2 -flto=thin -c a.c b.c"), "");
    for (const char *d : {"one", "a-much-longer-directory-name/two"})
      ASSERT_EQ(test::run("cd " + dir_.path() + " && mkdir -p " + d + " && cp a.o b.o " + d), "");
  }

  // The thin link in `dir` with absolute input paths; the key of a.o there.
  Digest keyIn(const std::string &dir, const BackendConfig &config = {},
               std::vector<NamedDigest> incbins = {}) {
    std::string abs = dir_.file(dir);
    std::string out =
        test::run("cd " + abs + " && ld.lld-19 -r --thinlto-index-only " +
                  "--thinlto-emit-imports-files " + abs + "/a.o " + abs + "/b.o -o out.o");
    EXPECT_EQ(out, "");
    shards_.push_back(test::readAll(abs + "/a.o.thinlto.bc"));
    EXPECT_NE(test::readAll(abs + "/a.o.imports").find(abs + "/b.o"), std::string::npos);
    BackendKeyInputs in;
    in.toolchain = "LLVM 19 test";
    in.config = &config;
    std::string moduleId = abs + "/a.o";
    in.moduleId = moduleId;
    in.module = Digest::of(test::readAll(abs + "/a.o"));
    in.shard = shards_.back();
    in.imports.push_back({abs + "/b.o", Digest::of(test::readAll(abs + "/b.o"))});
    in.incbins = std::move(incbins);
    auto key = backendKey(in);
    EXPECT_TRUE(key.ok()) << key.error().message;
    return key.ok() ? *key : Digest{};
  }

  test::ScratchDir dir_;
  std::vector<std::string> shards_;
};

TEST_F(BackendKeyTest, SameTreeInAnotherDirectoryHasTheSameKey) {
  Digest one = keyIn("one");
  Digest two = keyIn("a-much-longer-directory-name/two");
  // The shards name the modules by path, so their bytes differ...
  ASSERT_NE(shards_[0], shards_[1]);
  // ...and the keys, which leave paths out, do not.
  EXPECT_EQ(one, two);
}

TEST_F(BackendKeyTest, EverythingThatDecidesTheObjectIsInTheKey) {
  Digest base = keyIn("one");
  BackendConfig o3;
  o3.optLevel = 3;
  EXPECT_NE(keyIn("one", o3), base);
  BackendConfig mllvm;
  mllvm.llvmOptions = {"-x86-asm-syntax=intel"};
  EXPECT_NE(keyIn("one", mllvm), base);
  Digest withData = keyIn("one", {}, {{"data/config.gz", Digest::of("first")}});
  EXPECT_NE(withData, base);
  // The .incbin file's content, not only its name: the stale-config case.
  EXPECT_NE(keyIn("one", {}, {{"data/config.gz", Digest::of("second")}}), withData);
  EXPECT_EQ(keyIn("one", {}, {{"data/config.gz", Digest::of("first")}}), withData);
  // An imported module's new code changes the key of the module importing it.
  ASSERT_EQ(test::run("cd " + dir_.path() +
                      " && sed -i 's/x \\* 3/x * 5/' b.c && "
                      "clang-19 -O2 -flto=thin -c b.c -o one/b.o"),
            "");
  EXPECT_NE(keyIn("one"), base);
}

TEST_F(BackendKeyTest, MalformedShardIsAnErrorNamingTheModule) {
  BackendConfig config;
  BackendKeyInputs in;
  in.toolchain = "LLVM 19 test";
  in.config = &config;
  in.moduleId = "m.o";
  in.shard = "this is not bitcode";
  auto key = backendKey(in);
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.error().message.find("index shard of m.o"), std::string::npos)
      << key.error().message;
  keyIn("one");
  in.shard = std::string_view(shards_[0]).substr(0, shards_[0].size() / 2);
  EXPECT_FALSE(backendKey(in).ok());
}

} // namespace
} // namespace thinfarm

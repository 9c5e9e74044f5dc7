// The extraction check (lto/extraction.cpp) against what ld.lld-19's own
// --why-extract reports for real archives: which lazily loaded bitcode the
// split can place where lld loaded it, which it must refuse, and the
// comparison of the native members two links loaded.
#include "lto/expand.h"
#include "lto/extraction.h"
#include "lto/parse.h"
#include "scratch_dir.h"

#include <gtest/gtest.h>

namespace thinfarm {
namespace {

class ExtractionTest : public ::testing::Test {
protected:
  void SetUp() override {
    // main.o (bitcode) calls f, defined in the archive's bitcode member f.o;
    // f calls g, in the native member g.o; late.o (bitcode, after the archive)
    // calls h, in the bitcode member h.o; k.o (native) calls f.
    dir_.write("main.c", "int f(void); int _start(void) { return f(); }\n");
    dir_.write("f.c", "int g(void); int f(void) { return g(); }\n");
    dir_.write("g.c", "int g(void) { return 7; }\n");
    dir_.write("h.c", "int h(void) { return 8; }\n");
    dir_.write("late.c", "int h(void); int late(void) { return h(); }\n");
    dir_.write("k.c", "int f(void); int k(void) { return f(); }\n");
    ASSERT_EQ(test::run("cd " + dir_.path() +
                        " && clang-19 -O2 -flto=thin -c main.c f.c h.c late.c"
                        " && clang-19 -O2 -c g.c k.c && llvm-ar-19 rcs lib.a f.o g.o h.o"),
              "");
  }

  // lld's own --why-extract report for the link `args` (in the scratch dir).
  std::vector<Extraction> lldExtractions(const std::string &args) {
    std::string out = test::run("cd " + dir_.path() + " && ld.lld-19 -r -o out.o " + args +
                                " --why-extract=why.txt");
    EXPECT_EQ(out, "");
    auto why = readWhyExtract(dir_.file("why.txt"));
    EXPECT_TRUE(why.ok()) << why.error().message;
    return why.ok() ? *why : std::vector<Extraction>{};
  }

  // The inputs of the link `args`, with their paths in the scratch dir.
  Inputs inputs(const std::vector<std::string> &args) {
    std::vector<std::string> argv;
    for (const std::string &a : args)
      argv.push_back(a.starts_with("-") ? a : dir_.file(a));
    auto cmd = parseCommandLine(argv);
    EXPECT_TRUE(cmd.ok());
    auto in = expandInputs(*cmd);
    EXPECT_TRUE(in.ok()) << in.error().message;
    return std::move(*in);
  }

  test::ScratchDir dir_;
};

TEST_F(ExtractionTest, ReadsLldsReport) {
  auto why = lldExtractions("main.o lib.a");
  ASSERT_EQ(why.size(), 2u);
  EXPECT_EQ(why[0].reference, "main.o");
  EXPECT_EQ(why[0].extracted, "lib.a(f.o)");
  EXPECT_EQ(why[0].symbol, "f");
  EXPECT_EQ(why[1].reference, "lib.a(f.o)");
  EXPECT_EQ(why[1].extracted, "lib.a(g.o)");
}

TEST_F(ExtractionTest, MalformedReportIsAnErrorNamingTheLine) {
  dir_.write("bad.why", "reference\textracted\tsymbol\nmain.o lib.a(f.o)\n");
  auto why = readWhyExtract(dir_.file("bad.why"));
  ASSERT_FALSE(why.ok());
  EXPECT_NE(why.error().message.find("main.o lib.a(f.o)"), std::string::npos);
  EXPECT_FALSE(readWhyExtract(dir_.file("missing.why")).ok());
}

// The paths in lld's report are relative (the link ran in the scratch dir);
// LazyInputs names inputs as the command line did (absolute here).
std::vector<Extraction> absolute(std::vector<Extraction> why, const std::string &dir) {
  auto fix = [&](std::string &s) {
    if (!s.starts_with("<") && !s.starts_with("--"))
      s = dir + "/" + s;
  };
  for (Extraction &e : why) {
    fix(e.reference);
    fix(e.extracted);
  }
  return why;
}

TEST_F(ExtractionTest, BitcodeLoadedAtItsOwnPositionNeedsNoPlacement) {
  Inputs in = inputs({"main.o", "lib.a"});
  LazyInputs lazy(in);
  auto why = absolute(lldExtractions("main.o lib.a"), dir_.path());
  Status placed = lazy.checkBitcodePlacement(why, false);
  ASSERT_TRUE(placed.ok()) << placed.error().message;
  EXPECT_FALSE(lazy.placedLate(dir_.file("lib.a") + "(f.o)"));
  EXPECT_TRUE(lazy.placedAfter(dir_.file("main.o")).empty());
}

TEST_F(ExtractionTest, BitcodeLoadedByALaterInputGoesRightAfterIt) {
  // h.o is loaded by late.o, which comes after the archive: lld loaded it
  // while reading late.o, so its shim goes right after late.o.
  Inputs in = inputs({"main.o", "lib.a", "late.o"});
  LazyInputs lazy(in);
  auto why = absolute(lldExtractions("main.o lib.a late.o"), dir_.path());
  Status placed = lazy.checkBitcodePlacement(why, false);
  ASSERT_TRUE(placed.ok()) << placed.error().message;
  std::string h = dir_.file("lib.a") + "(h.o)";
  EXPECT_TRUE(lazy.placedLate(h));
  EXPECT_EQ(lazy.placedAfter(dir_.file("late.o")), std::vector<std::string>{h});
  EXPECT_FALSE(lazy.placedLate(dir_.file("lib.a") + "(f.o)"));
}

TEST_F(ExtractionTest, BitcodeLoadedLateByALazyNativeFileIsRefused) {
  // k.o is a --start-lib file after the archive, loaded by -u k; it loads f.o
  // from the archive before it: lld's order, which no shim placement gives.
  Inputs in = inputs({"lib.a", "--start-lib", "k.o", "--end-lib", "main.o"});
  LazyInputs lazy(in);
  auto why = absolute(lldExtractions("lib.a --start-lib k.o --end-lib main.o -u k"), dir_.path());
  ASSERT_FALSE(why.empty());
  Status placed = lazy.checkBitcodePlacement(why, true);
  ASSERT_FALSE(placed.ok());
  EXPECT_EQ(placed.error().kind, ErrorKind::Unimplemented);
  EXPECT_NE(placed.error().message.find("(f.o)"), std::string::npos) << placed.error().message;
}

TEST_F(ExtractionTest, SameNativeMembersOrElseTheFirstDifferenceIsNamed) {
  Inputs in = inputs({"main.o", "lib.a"});
  LazyInputs lazy(in);
  auto thin = absolute(lldExtractions("main.o lib.a"), dir_.path());
  ASSERT_TRUE(lazy.checkBitcodePlacement(thin, false).ok());
  // The reassembly of a regular archive with bitcode loads its native member
  // under the name the split gave it.
  lazy.setReassemblyName(dir_.file("lib.a") + "(g.o)", "scratch/g.o");
  std::vector<Extraction> same{{"scratch/f.o", "scratch/g.o", "g"}};
  Status ok = lazy.checkSameNativeExtractions(thin, same);
  EXPECT_TRUE(ok.ok()) << ok.error().message;

  Status none = lazy.checkSameNativeExtractions(thin, {});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().kind, ErrorKind::Unimplemented);
  EXPECT_NE(none.error().message.find("did not load scratch/g.o"), std::string::npos);

  std::vector<Extraction> extra = same;
  extra.push_back({"scratch/g.o", "other.o", "x"});
  Status more = lazy.checkSameNativeExtractions(thin, extra);
  ASSERT_FALSE(more.ok());
  EXPECT_NE(more.error().message.find("loaded other.o"), std::string::npos);
}

} // namespace
} // namespace thinfarm

// Shims, checked with llvm-readelf-19: only a symbol table, in lld's order.
#include "lto/shim.h"
#include "scratch_dir.h"

#include <gtest/gtest.h>

namespace thinfarm {
namespace {

IRSymbol sym(std::string name, bool undefined, bool weak = false, uint8_t vis = 0) {
  IRSymbol s;
  s.name = std::move(name);
  s.undefined = undefined;
  s.weak = weak;
  s.visibility = vis;
  return s;
}

TEST(ShimSymbols, DefinedFirstThenUndefinedEachOnce) {
  std::vector<IRSymbol> ir{sym("u1", true), sym("d1", false), sym("dead", false),
                           sym("u2", true, true), sym("d2", false, true, 2), sym("d1", false, false, 3),
                           sym("u1", true, false, 2)};
  std::unordered_set<std::string> live{"u1", "d1", "u2", "d2"};
  auto out = shimSymbols(ir, live);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].name, "d1");
  EXPECT_EQ(out[0].visibility, 3); // protected, from the second occurrence
  EXPECT_EQ(out[1].name, "d2");
  EXPECT_TRUE(out[1].weak);
  EXPECT_EQ(out[1].visibility, 2);
  EXPECT_EQ(out[2].name, "u1");
  EXPECT_EQ(out[2].visibility, 2); // hidden beats default
  EXPECT_EQ(out[3].name, "u2");
  EXPECT_TRUE(out[3].weak);
}

TEST(ShimSymbols, HiddenBeatsProtected) {
  auto out = shimSymbols({sym("x", false, false, 3), sym("x", true, false, 2)}, {"x"});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].visibility, 2);
}

TEST(WriteShim, OnlyASymbolTableReadableByLlvm) {
  test::ScratchDir dir;
  dir.write("n.c", "int n(void) { return 3; }\n");
  ASSERT_EQ(test::run("cd " + dir.path() + " && clang-19 -c n.c"), "");
  auto like = Blob::mapFile(dir.file("n.o"));
  std::vector<ShimSymbol> syms{{"first", false, false, 0}, {"weak_one", true, false, 2},
                               {"tls_var", false, true, 3}};
  auto shim = writeShim(syms, ShimFormat{like->bytes()});
  ASSERT_TRUE(shim.ok());
  std::string path = dir.write("shim.o", *shim);

  std::string sections = test::run("llvm-readelf-19 -S " + path);
  EXPECT_EQ(sections.find("<exit"), std::string::npos) << sections;
  EXPECT_NE(sections.find(".symtab"), std::string::npos);
  EXPECT_EQ(sections.find(".text"), std::string::npos) << sections;
  EXPECT_EQ(sections.find(".data"), std::string::npos);
  EXPECT_EQ(sections.find(".bss"), std::string::npos);
  EXPECT_NE(sections.find("There are 6 section headers"), std::string::npos) << sections;
  EXPECT_NE(sections.find(".llvm_addrsig     LLVM_ADDRSIG"), std::string::npos) << sections;

  // The feature bits lld ANDs over its ELF inputs: all set, so none is cleared.
  std::string notes = test::run("llvm-readelf-19 -n " + path);
  EXPECT_NE(notes.find("x86 feature: IBT, SHSTK"), std::string::npos) << notes;

  std::string symbols = test::run("llvm-readelf-19 -s " + path);
  // Num: Value Size Type Bind Vis Ndx Name
  EXPECT_NE(symbols.find("NOTYPE  GLOBAL DEFAULT   UND first"), std::string::npos) << symbols;
  EXPECT_NE(symbols.find("NOTYPE  WEAK   HIDDEN    UND weak_one"), std::string::npos) << symbols;
  EXPECT_NE(symbols.find("TLS     GLOBAL PROTECTED UND tls_var"), std::string::npos) << symbols;
  EXPECT_LT(symbols.find("first"), symbols.find("weak_one"));
  EXPECT_LT(symbols.find("weak_one"), symbols.find("tls_var"));

  std::string header = test::run("llvm-readelf-19 -h " + path);
  EXPECT_NE(header.find("REL (Relocatable file)"), std::string::npos);
  EXPECT_NE(header.find("Advanced Micro Devices X86-64"), std::string::npos);
}

TEST(WriteShim, NoAddrsigInARelocatableLink) {
  // lld -r copies SHF_EXCLUDE sections into its output.
  test::ScratchDir dir;
  dir.write("n.c", "int n(void) { return 3; }\n");
  ASSERT_EQ(test::run("cd " + dir.path() + " && clang-19 -c n.c"), "");
  auto like = Blob::mapFile(dir.file("n.o"));
  auto shim = writeShim({{"n", false, false, 0}}, ShimFormat{like->bytes(), /*relocatable=*/true});
  ASSERT_TRUE(shim.ok());
  std::string sections = test::run("llvm-readelf-19 -S " + dir.write("shim.o", *shim));
  EXPECT_EQ(sections.find(".llvm_addrsig"), std::string::npos) << sections;
  EXPECT_NE(sections.find(".note.gnu.property"), std::string::npos) << sections;
}

TEST(WriteShim, RefusesNonElf64) {
  std::string notElf(64, '\0');
  auto shim = writeShim({}, ShimFormat{notElf});
  ASSERT_FALSE(shim.ok());
  EXPECT_EQ(shim.error().kind, ErrorKind::Unimplemented);
}

} // namespace
} // namespace thinfarm

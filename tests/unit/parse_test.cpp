#include "lto/parse.h"
#include "scratch_dir.h"

#include <gtest/gtest.h>

namespace thinfarm {
namespace {

using Kind = Arg::Kind;

TEST(Tokenize, GnuQuotingAsLld) {
  auto t = tokenizeResponseFile("a.o  'b c.o'\n\"d\\\"e.o\" f\\ g.o\t-r");
  ASSERT_EQ(t.size(), 5u);
  EXPECT_EQ(t[0], "a.o");
  EXPECT_EQ(t[1], "b c.o");
  EXPECT_EQ(t[2], "d\"e.o");
  EXPECT_EQ(t[3], "f g.o");
  EXPECT_EQ(t[4], "-r");
}

TEST(Parse, KernelVmlinuxLink) {
  auto cmd =
      parseCommandLine({"-m", "elf_x86_64", "-mllvm", "-import-instr-limit=5", "-z", "noexecstack",
                        "-r", "-o", "vmlinux.o", "-T", ".tmp_initcalls.lds", "--whole-archive",
                        "vmlinux.a", "--no-whole-archive", "--start-group", "--end-group"});
  ASSERT_TRUE(cmd.ok()) << cmd.error().message;
  EXPECT_EQ(cmd->output, "vmlinux.o");
  EXPECT_TRUE(cmd->backend.relocatable);
  EXPECT_FALSE(cmd->backend.pic);
  EXPECT_EQ(cmd->backend.optLevel, 2);
  EXPECT_EQ(cmd->backend.cgOptLevel, 2);
  ASSERT_EQ(cmd->backend.llvmOptions, std::vector<std::string>{"-import-instr-limit=5"});
  std::vector<Kind> kinds;
  for (const Arg &a : cmd->args)
    kinds.push_back(a.kind);
  EXPECT_EQ(kinds, (std::vector<Kind>{Kind::Option, Kind::Option, Kind::Option, Kind::Option,
                                      Kind::Option, Kind::Option, Kind::WholeArchive, Kind::Input,
                                      Kind::NoWholeArchive, Kind::Option, Kind::Option}));
  EXPECT_EQ(cmd->args[7].value, "vmlinux.a");
  EXPECT_EQ(cmd->args[5].tokens, (std::vector<std::string>{"-T", ".tmp_initcalls.lds"}));
}

TEST(Parse, ResponseFilesExpandInPlace) {
  test::ScratchDir dir;
  dir.write("inner.rsp", "c.o 'd e.o'");
  dir.write("outer.rsp", "b.o @" + dir.file("inner.rsp") + " f.o");
  auto cmd = parseCommandLine({"-r", "a.o", "@" + dir.file("outer.rsp"), "-o", "x.o"});
  ASSERT_TRUE(cmd.ok()) << cmd.error().message;
  std::vector<std::string> inputs;
  for (const Arg &a : cmd->args)
    if (a.kind == Kind::Input)
      inputs.push_back(a.value);
  EXPECT_EQ(inputs, (std::vector<std::string>{"a.o", "b.o", "c.o", "d e.o", "f.o"}));
  EXPECT_EQ(cmd->original[2], "@" + dir.file("outer.rsp"));
}

// As in lld (cl::ExpandResponseFiles): a response file that does not exist
// stays an operand, which lld then cannot open and says so itself.
TEST(Parse, MissingResponseFileStaysAnOperand) {
  auto cmd = parseCommandLine({"@/nonexistent/thinfarm.rsp"});
  ASSERT_TRUE(cmd.ok()) << cmd.error().message;
  ASSERT_EQ(cmd->args.size(), 1u);
  EXPECT_EQ(cmd->args[0].kind, Arg::Kind::Input);
  EXPECT_EQ(cmd->args[0].value, "@/nonexistent/thinfarm.rsp");
}

TEST(Parse, JoinedAndEqualsForms) {
  auto cmd = parseCommandLine({"-ofoo", "--output=bar", "-Lx", "-lc", "--library=m",
                               "--script=s.lds", "--entry=main", "-zrelro"});
  ASSERT_TRUE(cmd.ok()) << cmd.error().message;
  EXPECT_EQ(cmd->output, "bar");
  EXPECT_EQ(cmd->libraryPaths, std::vector<std::string>{"x"});
  EXPECT_EQ(cmd->args[3].kind, Kind::Library);
  EXPECT_EQ(cmd->args[3].value, "c");
  EXPECT_EQ(cmd->args[4].value, "m");
}

TEST(Parse, LlvmOptionsInLldOrder) {
  // lld parses -plugin-opt=mcpu= first, then -plugin-opt=-X, then -mllvm.
  auto cmd = parseCommandLine({"-mllvm", "-a=1", "-plugin-opt=-b=2", "--plugin-opt=mcpu=znver2",
                               "-plugin-opt", "-c=3", "-mllvm=-d=4"});
  ASSERT_TRUE(cmd.ok()) << cmd.error().message;
  EXPECT_EQ(cmd->backend.llvmOptions,
            (std::vector<std::string>{"-mcpu=znver2", "-b=2", "-c=3", "-a=1", "-d=4"}));
  EXPECT_EQ(cmd->backend.mllvm, (std::vector<std::string>{"-a=1", "-d=4"}));
}

TEST(Parse, OptimizationLevels) {
  auto o3 = parseCommandLine({"--lto-O3"});
  ASSERT_TRUE(o3.ok());
  EXPECT_EQ(o3->backend.optLevel, 3);
  EXPECT_EQ(o3->backend.cgOptLevel, 3);
  auto o1 = parseCommandLine({"-plugin-opt=O1"});
  ASSERT_TRUE(o1.ok());
  EXPECT_EQ(o1->backend.optLevel, 1);
  EXPECT_EQ(o1->backend.cgOptLevel, 2); // lld clamps the derived level to [2, 3]
  auto cgo = parseCommandLine({"--lto-O1", "--lto-CGO0"});
  ASSERT_TRUE(cgo.ok());
  EXPECT_EQ(cgo->backend.cgOptLevel, 0);
  auto bad = parseCommandLine({"--lto-O9"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().kind, ErrorKind::Failed);
}

TEST(Parse, PicFromPieOrShared) {
  EXPECT_TRUE(parseCommandLine({"-pie"})->backend.pic);
  EXPECT_TRUE(parseCommandLine({"-shared"})->backend.pic);
  EXPECT_FALSE(parseCommandLine({"-pie", "--no-pie"})->backend.pic);
}

TEST(Parse, UnknownAndUnmodelledOptionsFallBack) {
  for (std::vector<std::string> args : {std::vector<std::string>{"--frobnicate"},
                                        {"--save-temps"},
                                        {"-Map", "x.map"},
                                        {"--wrap", "malloc"},
                                        {"--lto-emit-asm"},
                                        {"-plugin-opt=emit-llvm"},
                                        {"--thinlto-index-only=x"},
                                        {"-v"},
                                        {"-"}}) {
    auto cmd = parseCommandLine(args);
    ASSERT_FALSE(cmd.ok()) << args[0];
    EXPECT_EQ(cmd.error().kind, ErrorKind::Unimplemented) << args[0];
    EXPECT_NE(cmd.error().message.find(args[0]), std::string::npos) << cmd.error().message;
  }
}

// lld answers these itself: the command is passed through, not a case
// thinfarm fails to handle (no notice, no fall-back line in THINFARM_LOG).
TEST(Parse, InformationalOptionsAreLldsToAnswer) {
  for (const char *opt : {"--version", "-version", "--help", "-help"}) {
    auto cmd = parseCommandLine({"-r", opt, "a.o"});
    ASSERT_TRUE(cmd.ok()) << opt << ": " << cmd.error().message;
    EXPECT_TRUE(cmd->informational) << opt;
  }
  EXPECT_FALSE(parseCommandLine({"-r", "a.o"})->informational);
}

TEST(Parse, MissingOptionArgument) {
  auto cmd = parseCommandLine({"-r", "-o"});
  ASSERT_FALSE(cmd.ok());
  EXPECT_EQ(cmd.error().kind, ErrorKind::Failed);
  EXPECT_NE(cmd.error().message.find("missing argument to -o"), std::string::npos);
}

} // namespace
} // namespace thinfarm

namespace thinfarm {
namespace {

// Options are classified once, in parse.cpp: consumers read the option's
// name and value, never its spelling. --undefined-version and
// --unresolved-symbols once passed a prefix test for -u.
TEST(Parse, UndefinedSymbolOptionsByName) {
  for (std::vector<std::string> args : {std::vector<std::string>{"-u", "f", "a.o"},
                                        {"--undefined=f", "a.o"},
                                        {"-uf", "a.o"},
                                        {"--require-defined", "f", "a.o"}}) {
    auto cmd = parseCommandLine(args);
    ASSERT_TRUE(cmd.ok()) << cmd.error().message;
    EXPECT_TRUE(cmd->undefinedSymbols) << args[0];
  }
  for (std::vector<std::string> args : {std::vector<std::string>{"--undefined-version", "a.o"},
                                        {"--unresolved-symbols=ignore-all", "a.o"},
                                        {"a.o"}}) {
    auto cmd = parseCommandLine(args);
    ASSERT_TRUE(cmd.ok()) << cmd.error().message;
    EXPECT_FALSE(cmd->undefinedSymbols) << args[0];
  }
}

TEST(Parse, OptionNameAndValueWhateverTheSpelling) {
  auto cmd =
      parseCommandLine({"-Tlink.lds", "--script=b.lds", "-T", "c.lds", "-Ttext=0x1000",
                        "--start-group", "-(", "a.o", "-)", "--threads=2", "--thinlto-jobs=3"});
  ASSERT_TRUE(cmd.ok()) << cmd.error().message;
  std::vector<std::pair<std::string, std::string>> got;
  for (const Arg &a : cmd->args)
    if (a.kind == Arg::Kind::Option)
      got.emplace_back(a.option, a.value);
  std::vector<std::pair<std::string, std::string>> want = {
      {"T", "link.lds"},   {"script", "b.lds"}, {"T", "c.lds"},
      {"Ttext", "0x1000"}, {"start-group", ""}, {"(", ""},
      {")", ""},           {"threads", "2"},    {"thinlto-jobs", "3"}};
  EXPECT_EQ(got, want);
}

} // namespace
} // namespace thinfarm

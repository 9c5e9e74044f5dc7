// base/: child processes and whole files, with real processes and files.
#include "base/file.h"
#include "base/subprocess.h"
#include "scratch_dir.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace thinfarm {
namespace {

// File descriptors this process has open, to catch leaks.
size_t openFds() {
  size_t n = 0;
  for ([[maybe_unused]] const auto &e : std::filesystem::directory_iterator("/proc/self/fd"))
    ++n;
  return n;
}

TEST(Subprocess, CapturesOutputAndExitStatus) {
  auto out = runCapturing({"printf", "a b\n\n"});
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(*out, "a b");
  auto bad = runCapturing({"sh", "-c", "exit 3"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("exited with status 3"), std::string::npos);
}

TEST(Subprocess, ArgumentsAreNotParsedByAShell) {
  // A quote in an argument reaches the program as it is.
  auto out = runCapturing({"printf", "%s", "it's \"quoted\" $HOME"});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "it's \"quoted\" $HOME");
}

TEST(Subprocess, AMissingProgramIsAnErrorNamingIt) {
  size_t before = openFds();
  auto p = Subprocess::spawn({"/nonexistent/thinfarm-no-such-program"});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("cannot run /nonexistent/thinfarm-no-such-program"),
            std::string::npos)
      << p.error().message;
  EXPECT_EQ(openFds(), before) << "a failed spawn leaked descriptors";
}

TEST(Subprocess, PipesAndStderrFile) {
  test::ScratchDir dir;
  SpawnOptions o;
  o.pipeStdin = o.pipeStdout = true;
  o.stderrFile = dir.file("err");
  size_t before = openFds();
  {
    auto p = Subprocess::spawn({"sh", "-c", "cat; echo oops >&2"}, o);
    ASSERT_TRUE(p.ok()) << p.error().message;
    ASSERT_TRUE(writeAll(p->stdinFd(), "hello", "pipe").ok());
    p->closeStdin();
    auto out = readAll(p->stdoutFd(), "pipe");
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(*out, "hello");
    auto rc = p->wait();
    ASSERT_TRUE(rc.ok());
    EXPECT_EQ(*rc, 0);
  }
  EXPECT_EQ(openFds(), before) << "pipes leaked";
  auto err = readFile(dir.file("err"));
  ASSERT_TRUE(err.ok());
  EXPECT_EQ(*err, "oops\n");
}

TEST(Subprocess, AnAbandonedChildIsKilledAndReaped) {
  pid_t pid;
  {
    auto p = Subprocess::spawn({"sleep", "100"});
    ASSERT_TRUE(p.ok());
    pid = p->pid();
  }
  EXPECT_NE(::kill(pid, 0), 0) << "the child outlived its Subprocess";
}

TEST(Subprocess, SignalsAre128PlusTheSignal) {
  auto p = Subprocess::spawn({"sh", "-c", "kill -9 $$"});
  ASSERT_TRUE(p.ok());
  auto rc = p->wait();
  ASSERT_TRUE(rc.ok());
  EXPECT_EQ(*rc, 128 + 9);
}

TEST(Subprocess, ADaemonIsNotOurChild) {
  test::ScratchDir dir;
  ASSERT_TRUE(
      spawnDaemon({"/bin/sh", "-c", "echo $PPID > " + dir.file("ppid")}, dir.file("log")).ok());
  for (int i = 0; i < 200 && !std::filesystem::exists(dir.file("ppid")); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  auto ppid = readFile(dir.file("ppid"));
  ASSERT_TRUE(ppid.ok());
  EXPECT_NE(std::stoi(*ppid), ::getpid());
  auto missing = spawnDaemon({"/nonexistent/daemon"}, dir.file("log"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("cannot run /nonexistent/daemon"), std::string::npos);
}

TEST(File, WriteReadAndAtomicReplace) {
  test::ScratchDir dir;
  std::string big(3 << 20, 'x'); // more than one read or write call
  ASSERT_TRUE(writeFile(dir.file("a"), big, 0600).ok());
  struct stat st {};
  ASSERT_EQ(::stat(dir.file("a").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto back = readFile(dir.file("a"));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, big);
  ASSERT_TRUE(writeFileAtomic(dir.file("a"), "new").ok());
  EXPECT_EQ(*readFile(dir.file("a")), "new");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1)
      << "a temporary was left behind";
  auto missing = readFile(dir.file("nope"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find(dir.file("nope")), std::string::npos);
  EXPECT_FALSE(writeFile(dir.file("no/such/dir"), "x").ok());
}

} // namespace
} // namespace thinfarm

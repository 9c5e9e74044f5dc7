// The sandbox a worker runs each backend child in (worker/sandbox.h), probed
// from inside: a shell started through the very code that starts backends
// must see no network but lo, no /etc, no /home, none of the host's /tmp, a
// read-only input directory and no capabilities; and the start-up probe must
// say why when bubblewrap is missing or cannot make a sandbox. Each check
// fails when the sandbox is taken away (a shell then sees all of it).
#include "base/file.h"
#include "scratch_dir.h"
#include "worker/backend_child.h"
#include "worker/sandbox.h"

#include <gtest/gtest.h>

#include <filesystem>

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

namespace thinfarm {
namespace {

class SandboxTest : public ::testing::Test {
protected:
  void SetUp() override {
    auto s = Sandbox::probe(THINFARM_BACKEND_PROGRAM);
    ASSERT_TRUE(s.ok()) << s.error().message;
    sandbox_.emplace(std::move(*s));
    std::filesystem::create_directories(in_);
    std::filesystem::create_directories(out_);
    dir_.write("in/input", "the job's input\n");
    ::chmod(dir_.file("in/input").c_str(), 0444);
  }

  struct Run {
    int status = -1;
    std::string out;
  };
  // `script` run by /bin/sh inside a sandbox that sees in_ (read-only) and out_.
  Run inside(const std::string &script) {
    SpawnOptions o;
    o.pipeStdout = true;
    o.stderrFile = dir_.file("stderr");
    auto child = sandbox_->spawn({"/bin/sh", "-c", script}, SandboxView{{in_}, {out_}}, o);
    EXPECT_TRUE(child.ok()) << child.error().message;
    if (!child.ok())
      return {};
    Run r;
    auto out = readAll(child->stdoutFd(), "the shell's output");
    r.out = out.ok() ? *out : "";
    auto st = child->wait();
    r.status = st.ok() ? *st : -1;
    return r;
  }

  test::ScratchDir dir_; // in the host's /tmp
  std::string in_ = dir_.file("in"), out_ = dir_.file("out");
  std::optional<Sandbox> sandbox_;
};

TEST_F(SandboxTest, RunsAndSeesItsInputs) {
  Run r = inside("cat " + in_ + "/input && echo made > " + out_ + "/object");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "the job's input\n");
  EXPECT_EQ(test::readAll(dir_.file("out/object")), "made\n");
}

TEST_F(SandboxTest, NoNetworkButLoopback) {
  std::string hostNet = std::filesystem::read_symlink("/proc/self/ns/net").string();
  Run r = inside("readlink /proc/self/ns/net; sed -n '3,$p' /proc/net/dev | cut -d: -f1 | tr -d ' '");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out, "net:[" + r.out.substr(5, r.out.find(']') - 5) + "]\nlo\n");
  EXPECT_NE(r.out.substr(0, r.out.find('\n')), hostNet) << "the host's network namespace";
}

TEST_F(SandboxTest, NoEtcHomeOrHostTmp) {
  dir_.write("secret", "the host's /tmp\n");
  for (const std::string &path : {std::string("/etc/passwd"), std::string("/etc/hostname"),
                                  dir_.file("secret")}) {
    ASSERT_FALSE(test::readAll(path).empty()) << path << " is not readable here";
    Run r = inside("cat " + path);
    EXPECT_NE(r.status, 0) << path;
    EXPECT_EQ(r.out, "") << path;
  }
  // Of the host's temporary directory, only the way to the job's directories.
  std::filesystem::path tmp(dir_.path());
  Run r = inside("for d in /etc /home /root /var /run /srv /opt /mnt; do test -e $d && echo $d;"
                 " done; ls -A /dev/shm " + tmp.parent_path().string() + " " + dir_.path());
  EXPECT_EQ(r.out, "/dev/shm:\n\n" + tmp.parent_path().string() + ":\n" +
                       tmp.filename().string() + "\n\n" + dir_.path() + ":\nin\nout\n");
}

TEST_F(SandboxTest, InputsAreReadOnly) {
  Run r = inside("touch " + in_ + "/new; echo changed >> " + in_ + "/input; rm -f " + in_ +
                 "/input; chmod 666 " + in_ + "/input; ln " + in_ + "/input " + out_ + "/link; echo done");
  EXPECT_EQ(r.out, "done\n");
  EXPECT_FALSE(std::filesystem::exists(dir_.file("in/new")));
  EXPECT_EQ(test::readAll(dir_.file("in/input")), "the job's input\n");
  struct stat st;
  ASSERT_EQ(::stat(dir_.file("in/input").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0444u);
  EXPECT_FALSE(std::filesystem::exists(dir_.file("out/link")));
}

TEST_F(SandboxTest, NoCapabilitiesNoOtherProcesses) {
  Run r = inside("grep CapEff /proc/self/status; cat /proc/1/comm; ls /proc | grep -c '^[0-9]'");
  // Process 1 is bwrap itself; besides it the shell, ls and grep.
  EXPECT_EQ(r.out, "CapEff:\t0000000000000000\nbwrap\n4\n");
}

// killTree at any moment of a sandbox's start-up leaves nothing running:
// not bwrap, not its pid-namespace init, not the command. A survivor would
// hold the output pipe open and answer ("alive"), as a backend killed just
// after it started once answered a job it had been killed for.
TEST_F(SandboxTest, KillTreeAtAnyMomentOfStartUpLeavesNothing) {
  int survivors = 0;
  for (int i = 0; i < 200; ++i) {
    SpawnOptions o;
    o.pipeStdout = true;
    o.stderrFile = dir_.file("stderr");
    auto child =
        sandbox_->spawn({"/bin/sh", "-c", "sleep 0.2; echo alive"}, SandboxView{{in_}, {out_}}, o);
    ASSERT_TRUE(child.ok()) << child.error().message;
    // From at once to well after bwrap has made its namespaces (~2-10 ms).
    ::usleep(static_cast<useconds_t>((i % 20) * 500));
    BackendChild::killTree(child->pid(), -1);
    // End of file at once: nothing holds the pipe. A survivor either
    // answers or, stranded half-started, holds it open for good.
    pollfd p{child->stdoutFd(), POLLIN, 0};
    char byte;
    bool eof = ::poll(&p, 1, 3000) == 1 && ::read(child->stdoutFd(), &byte, 1) == 0;
    survivors += !eof;
    if (!eof)
      BackendChild::killTree(child->pid(), -1); // a hung one, before it is waited for
    (void)child->wait();
  }
  EXPECT_EQ(survivors, 0);
}

// The start-up probe: what is wrong, in one line.
TEST(SandboxProbe, SaysWhyThereIsNone) {
  test::ScratchDir dir;
  auto missing = Sandbox::probe(THINFARM_BACKEND_PROGRAM, dir.file("no-bwrap"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("install bubblewrap"), std::string::npos)
      << missing.error().message;

  // A bwrap that cannot create namespaces (as in a container without user namespaces).
  std::string fake = dir.write("bwrap", "#!/bin/sh\necho 'bwrap: No permissions to create new"
                                        " namespace' >&2\nexit 1\n");
  ::chmod(fake.c_str(), 0755);
  auto refused = Sandbox::probe(THINFARM_BACKEND_PROGRAM, fake);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("cannot make a sandbox here (bwrap: No permissions to "
                                         "create new namespace)"),
            std::string::npos)
      << refused.error().message;

  // The real one runs thinfarm-backend inside and keeps what it printed.
  auto real = Sandbox::probe(THINFARM_BACKEND_PROGRAM);
  ASSERT_TRUE(real.ok()) << real.error().message;
  EXPECT_EQ(real->identity().rfind("LLVM ", 0), 0u) << real->identity();
}

} // namespace
} // namespace thinfarm

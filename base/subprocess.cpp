// One fork/exec for every child: the child reports a failed exec through a
// close-on-exec pipe (the parent reads EOF on success, errno otherwise), and
// only async-signal-safe calls run between fork and exec.
#include "base/subprocess.h"

#include "base/file.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>
#include <utility>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace thinfarm {

namespace {

struct Fds { // closed on every path unless released
  std::vector<int> fds;
  ~Fds() {
    for (int fd : fds)
      if (fd >= 0)
        ::close(fd);
  }
  int add(int fd) {
    fds.push_back(fd);
    return fd;
  }
  void release(int fd) {
    for (int &f : fds)
      if (f == fd)
        f = -1;
  }
};

int openFor(const std::string &path, bool output, bool append) {
  int flags = output ? O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC) : O_RDONLY;
  return ::open(path.c_str(), flags | O_CLOEXEC, 0644);
}

// argv as exec wants it, built before fork (the child may not allocate).
std::vector<char *> execArgv(const std::vector<std::string> &argv) {
  std::vector<char *> cargv;
  cargv.reserve(argv.size() + 1);
  for (const std::string &a : argv)
    cargv.push_back(const_cast<char *>(a.c_str()));
  cargv.push_back(nullptr);
  return cargv;
}

// In the child: exec, or report errno through the close-on-exec pipe.
[[noreturn]] void execOrReport(char *const *argv, bool searchPath, int reportFd) {
  ::signal(SIGPIPE, SIG_DFL);
  if (searchPath)
    ::execvp(argv[0], argv);
  else
    ::execv(argv[0], argv);
  int e = errno;
  (void)!::write(reportFd, &e, sizeof e);
  ::_exit(127);
}

// In the parent: closes its write end of the pipe and reads what the child
// reported: nothing once it exec'ed, its errno if exec failed.
std::optional<int> execFailure(Fds &fds, const int report[2]) {
  ::close(report[1]);
  fds.release(report[1]);
  int childErrno = 0;
  ssize_t n;
  do
    n = ::read(report[0], &childErrno, sizeof childErrno);
  while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof childErrno))
    return childErrno;
  return std::nullopt;
}

void reap(pid_t pid, int &status) {
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

} // namespace

Result<Subprocess> Subprocess::spawn(const std::vector<std::string> &argv, const SpawnOptions &o) {
  if (argv.empty())
    return failed("spawn: no program");
  Fds fds;
  int in[2] = {-1, -1}, out[2] = {-1, -1}, report[2] = {-1, -1};
  if ((o.pipeStdin && ::pipe2(in, O_CLOEXEC) != 0) ||
      (o.pipeStdout && ::pipe2(out, O_CLOEXEC) != 0) || ::pipe2(report, O_CLOEXEC) != 0)
    return failed(std::string("pipe: ") + std::strerror(errno));
  for (int fd : {in[0], in[1], out[0], out[1], report[0], report[1]})
    fds.add(fd);
  int inFile = -1, outFile = -1, errFile = -1;
  auto open = [&](const std::string &path, bool output, int &fd) -> Status {
    if (path.empty())
      return ok();
    fd = fds.add(openFor(path, output, o.appendOutput));
    if (fd < 0)
      return failed("cannot open " + path + ": " + std::strerror(errno));
    return ok();
  };
  TF_CHECK(open(o.stdinFile, false, inFile));
  TF_CHECK(open(o.stdoutFile, true, outFile));
  TF_CHECK(open(o.stderrFile, true, errFile));

  std::vector<char *> cargv = execArgv(argv);
  pid_t pid = ::fork();
  if (pid < 0)
    return failed(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    // The child: async-signal-safe calls only, until exec.
    int stdinFd = o.pipeStdin ? in[0] : inFile, stdoutFd = o.pipeStdout ? out[1] : outFile;
    if (stdinFd >= 0)
      ::dup2(stdinFd, 0);
    if (stdoutFd >= 0)
      ::dup2(stdoutFd, 1);
    if (errFile >= 0)
      ::dup2(errFile, 2);
    if (o.newSession)
      ::setsid();
    if (o.memoryLimit > 0) {
      struct rlimit rl {
        o.memoryLimit, o.memoryLimit
      };
      ::setrlimit(RLIMIT_AS, &rl);
    }
    execOrReport(cargv.data(), o.searchPath, report[1]);
  }
  if (auto e = execFailure(fds, report)) {
    int status;
    reap(pid, status);
    return failed("cannot run " + argv[0] + ": " + std::strerror(*e));
  }
  Subprocess p;
  p.pid_ = pid;
  p.name_ = argv[0];
  if (o.pipeStdin) {
    p.in_ = in[1];
    fds.release(in[1]);
  }
  if (o.pipeStdout) {
    p.out_ = out[0];
    fds.release(out[0]);
  }
  return p;
}

Subprocess::Subprocess(Subprocess &&o) noexcept {
  *this = std::move(o);
}

Subprocess &Subprocess::operator=(Subprocess &&o) noexcept {
  if (this != &o) {
    kill();
    pid_ = std::exchange(o.pid_, -1);
    in_ = std::exchange(o.in_, -1);
    out_ = std::exchange(o.out_, -1);
    name_ = std::move(o.name_);
  }
  return *this;
}

Subprocess::~Subprocess() {
  kill();
}

void Subprocess::closeFds() {
  closeStdin();
  if (out_ >= 0)
    ::close(out_);
  out_ = -1;
}

void Subprocess::closeStdin() {
  if (in_ >= 0)
    ::close(in_);
  in_ = -1;
}

Result<int> Subprocess::waitStatus() {
  if (pid_ < 0)
    return failed(name_ + ": already waited for");
  closeStdin();
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) {
      pid_ = -1;
      return failed("waiting for " + name_ + ": " + std::strerror(errno));
    }
  }
  pid_ = -1;
  return status;
}

Result<int> Subprocess::wait() {
  TF_TRY(int status, waitStatus());
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

void Subprocess::kill() {
  closeFds();
  if (pid_ > 0) {
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == 0) {
      ::kill(pid_, SIGKILL);
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }
  pid_ = -1;
}

Result<std::string> runCapturing(const std::vector<std::string> &argv) {
  SpawnOptions o;
  o.pipeStdout = true;
  TF_TRY(Subprocess p, Subprocess::spawn(argv, o));
  auto out = readAll(p.stdoutFd(), argv[0]);
  TF_TRY(int rc, p.wait());
  if (!out.ok())
    return out.error();
  if (rc != 0)
    return failed(argv[0] + " exited with status " + std::to_string(rc));
  std::string text = std::move(*out);
  while (!text.empty() && text.back() == '\n')
    text.pop_back();
  return text;
}

Status spawnDaemon(const std::vector<std::string> &argv, const std::string &log) {
  // fork, setsid, fork again: the middle process exits at once and the
  // daemon is reparented, so nobody here waits for it. Everything is
  // prepared before the first fork; the children make async-signal-safe
  // calls only. The daemon reports a failed exec through the pipe.
  if (argv.empty())
    return failed("spawn: no program");
  Fds fds;
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0)
    return failed(std::string("pipe: ") + std::strerror(errno));
  fds.add(report[0]);
  fds.add(report[1]);
  int null = fds.add(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  int out = fds.add(openFor(log, true, true));
  if (null < 0 || out < 0)
    return failed("cannot open " + log + ": " + std::strerror(errno));
  std::vector<char *> cargv = execArgv(argv);
  pid_t middle = ::fork();
  if (middle < 0)
    return failed(std::string("fork: ") + std::strerror(errno));
  if (middle == 0) {
    ::setsid();
    if (::fork() != 0)
      ::_exit(0);
    ::dup2(null, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    execOrReport(cargv.data(), false, report[1]);
  }
  int status = 0;
  reap(middle, status);
  if (auto e = execFailure(fds, report))
    return failed("cannot run " + argv[0] + ": " + std::strerror(*e));
  return ok();
}

} // namespace thinfarm

#include "worker/backend_child.h"

#include "base/file.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <vector>

#include <sys/syscall.h>
#include <unistd.h>

#include <sys/wait.h>

namespace thinfarm {

Result<BackendChild> BackendChild::spawn(const std::string &program, const std::string &stderrPath,
                                         uint64_t memoryLimit, const BackendConfig &config,
                                         const Sandbox *sandbox, const SandboxView &view) {
  SpawnOptions o;
  o.searchPath = false;
  o.pipeStdin = o.pipeStdout = true;
  o.stderrFile = stderrPath;
  o.memoryLimit = memoryLimit;
  std::optional<Subprocess> child;
  if (sandbox) {
    std::error_code ec;
    std::string real = std::filesystem::canonical(program, ec).string(); // its path inside
    if (ec)
      return failed("cannot find the backend program " + program + ": " + ec.message());
    TF_TRY(Subprocess c, sandbox->spawn({real}, view, o));
    child.emplace(std::move(c));
  } else {
    TF_TRY(Subprocess c, Subprocess::spawn({program}, o));
    child.emplace(std::move(c));
  }
  BackendChild c;
  c.child_ = std::move(child);
  c.stderrPath_ = stderrPath;
  c.config_ = config;
  c.memoryLimit_ = memoryLimit;
  return c;
}

Error BackendChild::death(int status, uint64_t stderrFrom) {
  auto read = readFile(stderrPath_);
  std::string text = read.ok() ? std::move(*read) : std::string();
  // What this child printed for this job (the file is the slot's, appended to).
  std::string job = stderrFrom < text.size() ? text.substr(stderrFrom) : std::string();
  while (!text.empty() && text.back() == '\n')
    text.pop_back();
  // The child's own last line says it best ("... crashed (SIGSEGV) while compiling M").
  if (auto nl = text.rfind('\n'); nl != std::string::npos)
    text = text.substr(nl + 1);
  const std::string prefix = "thinfarm-backend: error: ";
  if (text.rfind(prefix, 0) == 0)
    text = text.substr(prefix.size());
  // bwrap reports a child killed by signal N as exit status 128 + N; the
  // backend itself exits 0 or 1.
  int signal = WIFSIGNALED(status)                                 ? WTERMSIG(status)
               : WIFEXITED(status) && WEXITSTATUS(status) > 128 ? WEXITSTATUS(status) - 128
                                                                  : 0;
  if (signal != 0) {
    std::string how = signal == SIGKILL
                          ? "the backend was killed (SIGKILL: out of memory?)"
                          : std::string("the backend was killed by signal ") + strsignal(signal);
    return Error{ErrorKind::Disconnected, how};
  }
  // LLVM's allocation failure ("LLVM ERROR: out of memory") under our limit.
  if (memoryLimit_ > 0 && job.find("out of memory") != std::string::npos)
    return Error{ErrorKind::Disconnected,
                 "the backend ran out of memory under this worker's limit of " +
                     std::to_string(memoryLimit_ >> 20) + " MiB" +
                     (text.empty() ? std::string() : ": " + text)};
  std::string how = "the backend exited with status " + std::to_string(WEXITSTATUS(status));
  return failed(text.empty() ? how : text);
}

namespace {
std::vector<pid_t> children(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    auto kids = readFile(it->path().string() + "/children");
    if (!kids.ok())
      continue;
    std::istringstream in(*kids);
    for (pid_t kid; in >> kid;)
      out.push_back(kid);
  }
  return out;
}

// Whether `pid` has stopped (or died): it then forks no more.
bool settled(pid_t pid) {
  auto stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat.ok())
    return true; // gone
  size_t paren = stat->rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat->size())
    return true;
  char state = (*stat)[paren + 2];
  return state == 'T' || state == 't' || state == 'Z' || state == 'X' || state == 'x';
}
} // namespace

// Stop, list, then kill. A process listed while it runs may be in the
// middle of a fork whose child is not listed yet; bwrap forks its
// pid-namespace init that way, and an init forked after the list and before
// the kill, with --die-with-parent not yet armed, outlives the kill holding
// the pipes (and runs the job it was killed for, or hangs). A stopped
// process forks no more: its list of children is final. Each level is
// stopped before its children are listed (SIGSTOP reaches a namespace's
// init from outside), then all are killed through pidfds, so a reused pid
// is never signalled.
void BackendChild::killTree(pid_t pid, int pidfd) {
  const int own = pidfd >= 0 ? -1 : static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  const int root = pidfd >= 0 ? pidfd : own;
  if (root < 0 || ::syscall(SYS_pidfd_send_signal, root, 0, nullptr, 0) != 0) {
    if (own >= 0)
      ::close(own);
    return;
  }
  std::vector<std::pair<pid_t, int>> tree{{pid, root}};
  for (size_t i = 0; i < tree.size(); ++i) {
    auto [p, fd] = tree[i];
    (void)::syscall(SYS_pidfd_send_signal, fd, SIGSTOP, nullptr, 0);
    // A process in an uninterruptible sleep stops when it leaves it; after
    // 200 ms it is listed as it is.
    for (int k = 0; k < 2000 && !settled(p); ++k)
      ::usleep(100);
    for (pid_t kid : children(p))
      if (int kfd = static_cast<int>(::syscall(SYS_pidfd_open, kid, 0)); kfd >= 0)
        tree.push_back({kid, kfd});
  }
  for (auto [p, fd] : tree) {
    (void)::syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0);
    if (fd != root)
      ::close(fd);
  }
  if (own >= 0)
    ::close(own);
}

Result<wire::BackendReply> BackendChild::run(const wire::BackendRequest &req, int testSignal) {
  if (!child_)
    return failed("the backend child is gone");
  std::error_code ec;
  uint64_t from = std::filesystem::file_size(stderrPath_, ec);
  if (ec)
    from = 0;
  auto dead = [&]() -> Error {
    auto status = child_->waitStatus();
    child_.reset();
    return status.ok() ? death(*status, from) : failed(status.error().message);
  };
  // SIGPIPE is ignored: a write to a child that died fails with EPIPE.
  if (!wire::writeFrame(child_->stdinFd(), wire::Message{0, req}).ok())
    return dead();
  if (testSignal == SIGKILL)
    killTree(child_->pid(), -1);
  else if (testSignal != 0)
    ::kill(child_->pid(), testSignal);
  auto reply = wire::readFrame(child_->stdoutFd());
  if (!reply.ok())
    return dead();
  auto *r = reply->get<wire::BackendReply>();
  if (!r)
    return failed("the backend child answered with a " + std::string(wire::kindName(reply->body)));
  return std::move(*r);
}

} // namespace thinfarm

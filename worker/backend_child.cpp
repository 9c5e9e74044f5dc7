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
void descendants(pid_t pid, std::vector<pid_t> &out) {
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    auto kids = readFile(it->path().string() + "/children");
    if (!kids.ok())
      continue;
    std::istringstream in(*kids);
    for (pid_t kid; in >> kid;) {
      out.push_back(kid);
      descendants(kid, out);
    }
  }
}
} // namespace

void BackendChild::killTree(pid_t pid, int pidfd) {
  const int own = pidfd >= 0 ? -1 : static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  const int root = pidfd >= 0 ? pidfd : own;
  // The root is alive (and not reaped) while its children are listed: they
  // are its tree. Each is signalled through a pidfd of its own.
  if (root < 0 || ::syscall(SYS_pidfd_send_signal, root, 0, nullptr, 0) != 0) {
    if (own >= 0)
      ::close(own);
    return;
  }
  std::vector<pid_t> tree;
  descendants(pid, tree);
  std::vector<int> fds;
  for (pid_t p : tree)
    if (int fd = static_cast<int>(::syscall(SYS_pidfd_open, p, 0)); fd >= 0)
      fds.push_back(fd);
  (void)::syscall(SYS_pidfd_send_signal, root, SIGKILL, nullptr, 0);
  for (int fd : fds) {
    (void)::syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0);
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

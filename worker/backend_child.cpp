#include "worker/backend_child.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace thinfarm {

Result<BackendChild> BackendChild::spawn(const std::string &program, const std::string &stderrPath,
                                         uint64_t memoryLimit, const BackendConfig &config) {
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0)
    return failed(std::string("pipe: ") + std::strerror(errno));
  int err = ::open(stderrPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (err < 0)
    return failed("cannot create " + stderrPath + ": " + std::strerror(errno));
  const char *argv[] = {program.c_str(), nullptr};
  pid_t pid = ::fork();
  if (pid < 0)
    return failed(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    // Only async-signal-safe calls until exec.
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err, 2);
    if (memoryLimit > 0) {
      struct rlimit rl {memoryLimit, memoryLimit};
      ::setrlimit(RLIMIT_AS, &rl);
    }
    ::execv(program.c_str(), const_cast<char *const *>(argv));
    const char msg[] = "thinfarm-backend: error: cannot execute the backend program\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err);
  BackendChild c;
  c.pid_ = pid;
  c.toChild_ = in[1];
  c.fromChild_ = out[0];
  c.stderrPath_ = stderrPath;
  c.config_ = config;
  return c;
}

BackendChild::BackendChild(BackendChild &&o) noexcept { *this = std::move(o); }

BackendChild &BackendChild::operator=(BackendChild &&o) noexcept {
  if (this != &o) {
    kill();
    pid_ = std::exchange(o.pid_, -1);
    toChild_ = std::exchange(o.toChild_, -1);
    fromChild_ = std::exchange(o.fromChild_, -1);
    stderrPath_ = std::move(o.stderrPath_);
    config_ = std::move(o.config_);
  }
  return *this;
}

BackendChild::~BackendChild() { kill(); }

void BackendChild::kill() {
  if (toChild_ >= 0)
    ::close(toChild_); // end of input: an idle child exits by itself
  if (fromChild_ >= 0)
    ::close(fromChild_);
  toChild_ = fromChild_ = -1;
  if (pid_ > 0) {
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
  }
  pid_ = -1;
}

std::string BackendChild::deathMessage(int status) {
  std::ifstream f(stderrPath_);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string text = ss.str();
  while (!text.empty() && text.back() == '\n')
    text.pop_back();
  // The child's own last line says it best ("... crashed (SIGSEGV) while compiling M").
  if (auto nl = text.rfind('\n'); nl != std::string::npos)
    text = text.substr(nl + 1);
  const std::string prefix = "thinfarm-backend: error: ";
  if (text.rfind(prefix, 0) == 0)
    text = text.substr(prefix.size());
  std::string how;
  if (WIFSIGNALED(status))
    how = WTERMSIG(status) == SIGKILL ? "the backend was killed (SIGKILL: out of memory?)"
                                      : std::string("the backend died of signal ") +
                                            strsignal(WTERMSIG(status));
  else
    how = "the backend exited with status " + std::to_string(WEXITSTATUS(status));
  return text.empty() ? how : text;
}

Result<wire::BackendReply> BackendChild::run(const wire::BackendRequest &req,
                                             const std::function<void()> &tick) {
  if (pid_ < 0)
    return failed("the backend child is gone");
  auto dead = [&]() -> Error {
    int status = 0;
    ::close(toChild_);
    toChild_ = -1;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return failed(deathMessage(status));
  };
  // Ignore SIGPIPE from a child that died: the write fails with EPIPE instead.
  if (!wire::writeFrame(toChild_, wire::Message{0, req}).ok())
    return dead();
  for (;;) {
    struct pollfd p {fromChild_, POLLIN, 0};
    int n = ::poll(&p, 1, 1000);
    if (n < 0 && errno == EINTR)
      continue;
    if (n == 0) {
      tick();
      continue;
    }
    break;
  }
  auto reply = wire::readFrame(fromChild_);
  if (!reply.ok())
    return dead();
  auto *r = reply->get<wire::BackendReply>();
  if (!r)
    return failed("the backend child answered with a " + std::string(wire::kindName(reply->body)));
  return std::move(*r);
}

} // namespace thinfarm

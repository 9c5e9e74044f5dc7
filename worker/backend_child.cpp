#include "worker/backend_child.h"

#include "base/file.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>

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
  return c;
}

std::string BackendChild::deathMessage(int status) {
  auto read = readFile(stderrPath_);
  std::string text = read.ok() ? std::move(*read) : std::string();
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
    how = WTERMSIG(status) == SIGKILL
              ? "the backend was killed (SIGKILL: out of memory?)"
              : std::string("the backend died of signal ") + strsignal(WTERMSIG(status));
  else
    how = "the backend exited with status " + std::to_string(WEXITSTATUS(status));
  return text.empty() ? how : text;
}

Result<wire::BackendReply> BackendChild::run(const wire::BackendRequest &req) {
  if (!child_)
    return failed("the backend child is gone");
  auto dead = [&]() -> Error {
    auto status = child_->waitStatus();
    child_.reset();
    return failed(status.ok() ? deathMessage(*status) : status.error().message);
  };
  // SIGPIPE is ignored: a write to a child that died fails with EPIPE.
  if (!wire::writeFrame(child_->stdinFd(), wire::Message{0, req}).ok())
    return dead();
  auto reply = wire::readFrame(child_->stdoutFd());
  if (!reply.ok())
    return dead();
  auto *r = reply->get<wire::BackendReply>();
  if (!r)
    return failed("the backend child answered with a " + std::string(wire::kindName(reply->body)));
  return std::move(*r);
}

} // namespace thinfarm

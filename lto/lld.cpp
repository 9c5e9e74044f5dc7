#include "lto/lld.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

namespace thinfarm {

Toolchain Toolchain::fromEnvironment() {
  Toolchain tc;
  if (const char *lld = std::getenv("THINFARM_LLD"); lld && *lld)
    tc.lld = lld;
  return tc;
}

Result<ProcessOutput> runProcess(const std::vector<std::string> &argv, bool captureStderr) {
  std::vector<char *> cargv;
  for (const std::string &a : argv)
    cargv.push_back(const_cast<char *>(a.c_str()));
  cargv.push_back(nullptr);

  int pipefd[2] = {-1, -1};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (captureStderr) {
    if (pipe2(pipefd, O_CLOEXEC) != 0)
      return failed(std::string("pipe: ") + std::strerror(errno));
    posix_spawn_file_actions_adddup2(&actions, pipefd[1], 2);
  }
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, cargv[0], &actions, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (captureStderr)
    ::close(pipefd[1]);
  if (rc != 0) {
    if (captureStderr)
      ::close(pipefd[0]);
    return failed("cannot run " + argv[0] + ": " + std::strerror(rc));
  }
  ProcessOutput out;
  if (captureStderr) {
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(pipefd[0], buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      out.stderrText.append(buf, static_cast<size_t>(n));
    }
    ::close(pipefd[0]);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      return failed("waitpid: " + std::string(std::strerror(errno)));
  }
  if (WIFEXITED(status))
    out.exitCode = WEXITSTATUS(status);
  else
    out.exitCode = 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  return out;
}

void execLld(const Toolchain &tc, const std::vector<std::string> &args) {
  std::vector<char *> cargv;
  cargv.push_back(const_cast<char *>(tc.lld.c_str()));
  for (const std::string &a : args)
    cargv.push_back(const_cast<char *>(a.c_str()));
  cargv.push_back(nullptr);
  execvp(cargv[0], cargv.data());
  std::fprintf(stderr, "thinfarm-ld: cannot run %s: %s\n", tc.lld.c_str(), std::strerror(errno));
  std::_Exit(127);
}

} // namespace thinfarm

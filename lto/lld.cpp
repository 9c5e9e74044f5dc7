#include "lto/lld.h"

#include <cerrno>
#include <csignal>
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

Result<Child> Child::spawn(const std::vector<std::string> &argv, const std::string &stderrPath) {
  std::vector<char *> cargv;
  for (const std::string &a : argv)
    cargv.push_back(const_cast<char *>(a.c_str()));
  cargv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!stderrPath.empty())
    posix_spawn_file_actions_addopen(&actions, 2, stderrPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, cargv[0], &actions, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0)
    return failed("cannot run " + argv[0] + ": " + std::strerror(rc));
  return Child(pid, argv[0]);
}

Result<int> Child::wait() {
  if (pid_ < 0)
    return failed(name_ + ": already waited for");
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) {
      pid_ = -1;
      return failed("waiting for " + name_ + ": " + std::strerror(errno));
    }
  }
  pid_ = -1;
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

Child::~Child() {
  if (pid_ >= 0) { // abandoned: its result is not wanted
    ::kill(pid_, SIGKILL);
    (void)wait();
  }
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

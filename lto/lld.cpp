#include "lto/lld.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

namespace thinfarm {

Toolchain Toolchain::fromEnvironment() {
  Toolchain tc;
  if (const char *lld = std::getenv("THINFARM_LLD"); lld && *lld)
    tc.lld = lld;
  return tc;
}

Result<Subprocess> spawnLld(const std::vector<std::string> &argv, const std::string &stderrPath) {
  SpawnOptions o;
  o.stderrFile = stderrPath;
  return Subprocess::spawn(argv, o);
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

// thinfarm-backend: the child process a worker runs ThinLTO backends in.
// `thinfarm-backend --identity` prints the toolchain identity workers register.
#include "lto/backend_server.h"
#include "lto/crash.h"

#include <cstdio>
#include <cstring>

int main(int argc, char **argv) {
  if (argc == 2 && std::strcmp(argv[1], "--identity") == 0) {
    std::printf("%s\n", thinfarm::backendIdentity().c_str());
    return 0;
  }
  if (argc != 1) {
    std::fprintf(stderr, "thinfarm-backend: error: unexpected argument %s (this program is run "
                         "by thinfarm-worker)\n", argv[1]);
    return 2;
  }
  thinfarm::installCrashHandlers("thinfarm-backend");
  return thinfarm::backendServerMain();
}

// thinfarm-ld: a drop-in LD for kbuild (make LLVM=-19 LD=thinfarm-ld).
#include "lto/crash.h"
#include "lto/driver.h"

int main(int argc, char **argv) {
  thinfarm::installCrashHandlers("thinfarm-ld");
  return thinfarm::linkerMain(thinfarm::DriverContext::fromEnvironment(),
                              std::vector<std::string>(argv + 1, argv + argc));
}

// thinfarm-ld: a drop-in LD for kbuild (make LLVM=-19 LD=thinfarm-ld).
#include "lto/crash.h"
#include "lto/driver.h"

int main(int argc, char **argv) {
  thinfarm::installCrashHandlers("thinfarm-ld");
  auto ctx = thinfarm::DriverContext::fromEnvironment();
  // A crash while reading the inputs hands the original command to stock lld.
  std::vector<char *> lldArgv{const_cast<char *>(ctx.toolchain.lld.c_str())};
  lldArgv.insert(lldArgv.end(), argv + 1, argv + argc);
  lldArgv.push_back(nullptr);
  thinfarm::fallBackOnCrashWhileReading(lldArgv.data());
  return thinfarm::linkerMain(ctx, std::vector<std::string>(argv + 1, argv + argc));
}

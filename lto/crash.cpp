#include "lto/crash.h"

#include <csignal>
#include <cstring>
#include <unistd.h>

namespace thinfarm {

namespace {
thread_local const char *tlsActivity = nullptr;
thread_local const std::string *tlsModule = nullptr;
const char *gProgram = "thinfarm-ld"; // set once in main, before any thread starts

void say(const char *s) {
  size_t n = std::strlen(s);
  while (n > 0) {
    ssize_t w = ::write(2, s, n);
    if (w <= 0)
      return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

void describe(const char *what) {
  say(gProgram);
  say(": error: ");
  say(what);
  if (tlsActivity && tlsModule) {
    say(" while ");
    say(tlsActivity);
    say(" ");
    say(tlsModule->c_str());
  }
  say("\n");
}

void onSignal(int sig) {
  const char *name = sig == SIGSEGV ? "crashed (SIGSEGV)"
                     : sig == SIGBUS ? "crashed (SIGBUS)"
                     : sig == SIGILL ? "crashed (SIGILL)"
                     : sig == SIGFPE ? "crashed (SIGFPE)"
                                     : "aborted (SIGABRT)";
  describe(name);
  _exit(1);
}
} // namespace

CrashScope::CrashScope(const char *activity, const std::string &module)
    : prevActivity_(tlsActivity), prevModule_(tlsModule) {
  tlsActivity = activity;
  tlsModule = &module;
}

CrashScope::~CrashScope() {
  tlsActivity = prevActivity_;
  tlsModule = prevModule_;
}

void installCrashHandlers(const char *program) {
  gProgram = program;
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT})
    sigaction(sig, &sa, nullptr);
}

void reportFatal(const char *reason) {
  std::string what = std::string("LLVM fatal error: ") + reason;
  describe(what.c_str());
  _exit(1);
}

} // namespace thinfarm

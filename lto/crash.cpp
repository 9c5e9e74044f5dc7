#include "lto/crash.h"

#include <csignal>
#include <cstring>
#include <unistd.h>

namespace thinfarm {

namespace {
thread_local const char *tlsActivity = nullptr;
thread_local const std::string *tlsModule = nullptr;
const char *gProgram = "thinfarm-ld";    // set once in main, before any thread starts
char *const *gReadingFallback = nullptr; // likewise: stock lld's argv, see crash.h

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

// A crash while reading inputs, before the link was split: stock lld gets the
// original command and says what it makes of the inputs.
void fallBack(const char *what) {
  if (!gReadingFallback || !tlsActivity || std::strcmp(tlsActivity, "reading") != 0)
    return;
  say(gProgram);
  say(": note: ");
  say(what);
  say(" while reading ");
  say(tlsModule ? tlsModule->c_str() : "an input");
  say("; linking with ");
  say(gReadingFallback[0]);
  say(" instead\n");
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_UNBLOCK, &all, nullptr);
  execvp(gReadingFallback[0], gReadingFallback);
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
  const char *name = sig == SIGSEGV  ? "crashed (SIGSEGV)"
                     : sig == SIGBUS ? "crashed (SIGBUS)"
                     : sig == SIGILL ? "crashed (SIGILL)"
                     : sig == SIGFPE ? "crashed (SIGFPE)"
                                     : "aborted (SIGABRT)";
  fallBack(name);
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

void fallBackOnCrashWhileReading(char *const *lldArgv) {
  gReadingFallback = lldArgv;
}

void reportFatal(const char *reason) {
  std::string what = std::string("LLVM fatal error: ") + reason;
  fallBack(what.c_str());
  describe(what.c_str());
  _exit(1);
}

} // namespace thinfarm

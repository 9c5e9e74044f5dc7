#pragma once

#include <string>

namespace thinfarm {

// Names what the current thread is doing with which module, so that a crash
// inside LLVM (a fault on malformed bitcode, an abort, report_fatal_error)
// ends the link with a message naming the module instead of a bare signal.
// A signal handler cannot be handed a context, so the scope is thread-local
// state: the one place this code base keeps any.
class CrashScope {
public:
  CrashScope(const char *activity, const std::string &module);
  ~CrashScope();
  CrashScope(const CrashScope &) = delete;
  CrashScope &operator=(const CrashScope &) = delete;

private:
  const char *prevActivity_;
  const std::string *prevModule_;
};

// Installs handlers for SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT that print
// "thinfarm-ld: error: crashed (<signal>) while <activity> <module>" and exit
// with status 1. The output file is never half-written: lld writes it last,
// atomically.
void installCrashHandlers(const char *program);

// From then on, a crash (or LLVM fatal error) inside a "reading" scope, that
// is while the driver reads the inputs before it splits the link, runs stock
// lld on `lldArgv` (the original command) after a one-line notice: an input
// thinfarm cannot read is one lld may still link. The array must outlive the
// process; set it in main, before any thread starts.
void fallBackOnCrashWhileReading(char *const *lldArgv);

// Reports an LLVM fatal error the same way; called by LLVM's handler.
[[noreturn]] void reportFatal(const char *reason);

} // namespace thinfarm

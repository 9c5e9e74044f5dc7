// What a program's main() needs from its process: where its sibling
// programs are, and a clean way to stop on SIGINT/SIGTERM.
#pragma once

#include <csignal>
#include <filesystem>
#include <string>

#include <pthread.h>

namespace thinfarm {

// The directory of this program's executable (symlinks resolved): thinfarm's
// programs are installed side by side and find each other there.
inline std::string programDir() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : self.parent_path().string();
}

// SIGINT, SIGTERM and SIGHUP, blocked in every thread started after
// construction, so that wait() alone receives them (and returns which came).
// SIGPIPE is ignored: a peer that went away is an error value, not a signal.
class StopSignals {
public:
  StopSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
  }
  int wait() const {
    int sig = 0;
    sigwait(&set_, &sig);
    return sig;
  }

private:
  sigset_t set_;
};

} // namespace thinfarm

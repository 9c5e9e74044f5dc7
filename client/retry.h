// What the farm client does after an error: the one place the retry policy
// lives. The error's kind decides; nothing else does.
#pragma once

#include "base/result.h"

#include <chrono>

namespace thinfarm {

enum class Next {
  GiveUp,           // Failed: the answer would be the same; report it
  BackOff,          // Overloaded: wait delay(attempt), then try again
  Reconnect,        // Disconnected: reconnect and redo what is unfinished, once
  RunLocally,       // Unimplemented, Denied, Exceeded, or Disconnected again: finish on this machine
};

inline Next nextStep(ErrorKind kind, int attempt) {
  switch (kind) {
  case ErrorKind::Failed: return Next::GiveUp;
  case ErrorKind::Overloaded: return attempt < 5 ? Next::BackOff : Next::RunLocally;
  case ErrorKind::Disconnected: return attempt < 1 ? Next::Reconnect : Next::RunLocally;
  case ErrorKind::Unimplemented:
  case ErrorKind::Denied:
  // A permanent cap of the farm (its maximum blob size): the same request is
  // refused again, but the work itself is fine, so it runs here.
  case ErrorKind::Exceeded: return Next::RunLocally;
  }
  return Next::GiveUp;
}

inline std::chrono::milliseconds backOffDelay(int attempt) {
  return std::chrono::milliseconds(100) * (1 << attempt);
}

} // namespace thinfarm

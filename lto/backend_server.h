#pragma once

#include <string>

namespace thinfarm {

// The backend's identity: LLVM's version and target, and a digest of the
// backend's own sources. Jobs run only where it equals the client's: another
// LLVM, or another thinfarm backend, could compile a module differently.
std::string backendIdentity();

// thinfarm-backend: serves backend requests on stdin/stdout (wire frames) for
// a worker, one at a time, until end of input. Returns the exit status.
int backendServerMain();

} // namespace thinfarm

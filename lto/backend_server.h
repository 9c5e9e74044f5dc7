#pragma once

#include <string>

namespace thinfarm {

// The backend's identity: jobs run only where it is equal to the client's,
// because a different LLVM can compile the same module differently.
std::string backendIdentity();

// thinfarm-backend: serves backend requests on stdin/stdout (wire frames) for
// a worker, one at a time, until end of input. Returns the exit status.
int backendServerMain();

} // namespace thinfarm

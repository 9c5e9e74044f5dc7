// Cap'n Proto before 1.0.1 compares `const char *` with kj::StringPtr in
// capnp/blob.h in a way clang 17+ rejects under C++20 (capnproto#1622), so
// neither codec.cpp nor the generated thinfarm.capnp.c++ compiled with clang
// (the fuzz build, clang-tidy). The overloads kj leaves out in C++20, declared
// before capnp/blob.h: codec.cpp includes this first, and wire/CMakeLists.txt
// force-includes it into the generated file.
#pragma once

#include <capnp/common.h>
#include <kj/string.h>

#if defined(__clang__) && CAPNP_VERSION < 1000001
namespace kj {
inline bool operator==(const char *a, const StringPtr &b) { return b == StringPtr(a); }
inline bool operator!=(const char *a, const StringPtr &b) { return b != StringPtr(a); }
} // namespace kj
#endif

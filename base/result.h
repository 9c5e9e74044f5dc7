// Expected failures as values.
//
// Every operation that can fail for a reason outside the program's control
// (a missing file, a malformed input, a tool that exited non-zero) returns a
// Result<T>: either a T or an Error that says what failed and why. Bugs are
// assertions, not Errors. The Error's kind decides what a caller may do next;
// the retry policy that acts on it lives in one place (the farm client, in a
// later layer), never at the call site.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace thinfarm {

enum class ErrorKind {
  Failed,        // deterministic failure: retrying gives the same answer
  Overloaded,    // the other side is busy: back off, then retry
  Disconnected,  // the other side went away: reconnect and redo
  Unimplemented, // a case thinfarm does not handle: fall back to stock lld
  Denied,        // the farm refused this peer (its key, or its role): do not retry
  Exceeded,      // over one of the farm's fixed limits (a blob larger than its maximum,
                 // a message with too many parts): asking again gives the same answer,
                 // so the client runs that work on this machine; never fails a link
};

struct Error {
  ErrorKind kind = ErrorKind::Failed;
  std::string message;

  // Prefixes context, outermost last: err.context("vmlinux.o") -> "vmlinux.o: <msg>".
  Error context(const std::string &what) && {
    message = what + ": " + message;
    return std::move(*this);
  }
};

inline Error failed(std::string msg) { return {ErrorKind::Failed, std::move(msg)}; }
inline Error unimplemented(std::string msg) {
  return {ErrorKind::Unimplemented, std::move(msg)};
}

template <class T> class [[nodiscard]] Result {
public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T &value() & { assert(ok()); return std::get<0>(v_); }
  const T &value() const & { assert(ok()); return std::get<0>(v_); }
  T &&value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T &operator*() & { return value(); }
  const T &operator*() const & { return value(); }
  T *operator->() { return &value(); }
  const T *operator->() const { return &value(); }

  const Error &error() const & { assert(!ok()); return std::get<1>(v_); }
  Error &&error() && { assert(!ok()); return std::get<1>(std::move(v_)); }

private:
  std::variant<T, Error> v_;
};

// Result<void>: success carries nothing.
struct Ok {};
using Status = Result<Ok>;
inline Status ok() { return Ok{}; }

} // namespace thinfarm

// Propagates an Error out of the enclosing function; binds the value otherwise.
#define TF_CONCAT_(a, b) a##b
#define TF_CONCAT(a, b) TF_CONCAT_(a, b)
// NOLINTBEGIN(bugprone-macro-parentheses): decl is a declaration ("auto x")
// and tmp a generated identifier; neither can be parenthesized.
#define TF_TRY_IMPL(tmp, decl, expr)                                           \
  auto tmp = (expr);                                                           \
  if (!tmp.ok())                                                               \
    return std::move(tmp).error();                                             \
  decl = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)
#define TF_TRY(decl, expr) TF_TRY_IMPL(TF_CONCAT(tf_try_, __LINE__), decl, expr)
#define TF_CHECK(expr)                                                         \
  do {                                                                         \
    auto tf_status_ = (expr);                                                  \
    if (!tf_status_.ok())                                                      \
      return std::move(tf_status_).error();                                    \
  } while (0)

// Content digests: what the store keys blobs by.
#pragma once

#include "base/result.h"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace thinfarm {

// SHA-256 of a blob plus its size. The size travels with the hash so that a
// reader can reserve, and refuse an oversized blob, before reading it.
struct Digest {
  std::array<uint8_t, 32> sha256{};
  uint64_t size = 0;

  static Digest of(std::string_view bytes);
  // "<64 hex digits>-<size>", the text form used in keys, logs and messages.
  std::string text() const;
  static Result<Digest> parse(std::string_view text);

  friend bool operator==(const Digest &, const Digest &) = default;
  friend auto operator<=>(const Digest &, const Digest &) = default;
};

// Incremental SHA-256 for blobs that arrive in chunks.
class DigestBuilder {
public:
  DigestBuilder();
  ~DigestBuilder();
  DigestBuilder(const DigestBuilder &) = delete;
  DigestBuilder &operator=(const DigestBuilder &) = delete;
  void update(std::string_view bytes);
  // Framed pieces, for keys hashed from several fields: no two sequences of
  // fields hash the same bytes.
  void updateU64(uint64_t v) {
    char buf[8];
    for (int i = 0; i < 8; ++i)
      buf[i] = static_cast<char>(v >> (8 * i));
    update(std::string_view(buf, 8));
  }
  void updateText(std::string_view s) {
    updateU64(s.size());
    update(s);
  }
  void updateDigest(const Digest &d) {
    update(std::string_view(reinterpret_cast<const char *>(d.sha256.data()), d.sha256.size()));
    updateU64(d.size);
  }
  Digest finish();

private:
  void *ctx_; // EVP_MD_CTX, kept out of this header: OpenSSL is storage's own
  uint64_t size_ = 0;
};

} // namespace thinfarm

#include "base/digest.h"

#include <openssl/evp.h>

#include <cassert>

namespace thinfarm {

DigestBuilder::DigestBuilder() : ctx_(EVP_MD_CTX_new()) {
  [[maybe_unused]] int ok = EVP_DigestInit_ex(static_cast<EVP_MD_CTX *>(ctx_), EVP_sha256(), nullptr);
  assert(ok == 1);
}

DigestBuilder::~DigestBuilder() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX *>(ctx_)); }

void DigestBuilder::update(std::string_view bytes) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX *>(ctx_), bytes.data(), bytes.size());
  size_ += bytes.size();
}

Digest DigestBuilder::finish() {
  Digest d;
  unsigned len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX *>(ctx_), d.sha256.data(), &len);
  assert(len == d.sha256.size());
  d.size = size_;
  return d;
}

Digest Digest::of(std::string_view bytes) {
  DigestBuilder b;
  b.update(bytes);
  return b.finish();
}

std::string Digest::text() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(80);
  for (uint8_t byte : sha256) {
    s += kHex[byte >> 4];
    s += kHex[byte & 15];
  }
  return s + "-" + std::to_string(size);
}

Result<Digest> Digest::parse(std::string_view text) {
  auto bad = [&] { return failed("malformed digest '" + std::string(text) + "'"); };
  if (text.size() < 66 || text[64] != '-')
    return bad();
  Digest d;
  for (size_t i = 0; i < 32; ++i) {
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    int hi = nibble(text[2 * i]), lo = nibble(text[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return bad();
    d.sha256[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  uint64_t size = 0;
  for (char c : text.substr(65)) {
    if (c < '0' || c > '9' || size > (UINT64_MAX - 9) / 10)
      return bad();
    size = size * 10 + static_cast<uint64_t>(c - '0');
  }
  d.size = size;
  return d;
}

} // namespace thinfarm

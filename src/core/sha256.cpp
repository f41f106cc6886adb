// The low-level SHA256_* functions are deprecated in OpenSSL 3 but remain the fastest way to
// hash short keys: EVP_sha256() fetches the algorithm on every call. They are used only here.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "shardd/sha256.hpp"

#include <openssl/sha.h>

#include <cstring>

namespace shardd {

static_assert(sizeof(SHA256_CTX) <= 128, "sha256_builder storage too small");

digest256 sha256(std::string_view data) noexcept {
  digest256 out;
  SHA256_CTX ctx;
  SHA256_Init(&ctx);
  SHA256_Update(&ctx, data.data(), data.size());
  SHA256_Final(out.data(), &ctx);
  return out;
}

sha256_builder::sha256_builder() noexcept { SHA256_Init(reinterpret_cast<SHA256_CTX*>(ctx_)); }

sha256_builder& sha256_builder::update(std::string_view data) noexcept {
  SHA256_Update(reinterpret_cast<SHA256_CTX*>(ctx_), data.data(), data.size());
  return *this;
}

digest256 sha256_builder::finish() noexcept {
  digest256 out;
  SHA256_Final(out.data(), reinterpret_cast<SHA256_CTX*>(ctx_));
  return out;
}

std::string to_hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.resize(bytes.size() * 2);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    auto b = static_cast<unsigned char>(bytes[i]);
    out[2 * i] = digits[b >> 4];
    out[2 * i + 1] = digits[b & 0xf];
  }
  return out;
}

}  // namespace shardd

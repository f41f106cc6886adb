#pragma once
// SHA-256 and the token function: the only hash that decides placement.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace shardd {

using digest256 = std::array<std::uint8_t, 32>;

/// SHA-256 of `data`. Uses OpenSSL's low-level one-shot context on the stack: no algorithm
/// fetch per call (EVP_sha256() costs ~500 ns per call in OpenSSL 3, this ~70 ns for a short
/// key). Thread-safe, allocation-free.
digest256 sha256(std::string_view data) noexcept;

/// Incremental SHA-256 for data in several pieces (a record digest over key and value).
class sha256_builder {
 public:
  sha256_builder() noexcept;
  sha256_builder& update(std::string_view data) noexcept;
  digest256 finish() noexcept;

 private:
  // Storage for OpenSSL's SHA256_CTX (112 bytes), kept opaque so this header stays light.
  alignas(8) unsigned char ctx_[128];
};

/// First 8 bytes of a digest as a big-endian unsigned integer.
inline std::uint64_t leading_u64(const digest256& d) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | d[static_cast<std::size_t>(i)];
  return v;
}

/// token = first 8 bytes of SHA-256(routing key), big-endian: a point on the ring.
inline std::uint64_t token_of(std::string_view routing_key) noexcept {
  return leading_u64(sha256(routing_key));
}

/// Lower-case hex of a byte string.
std::string to_hex(std::string_view bytes);
inline std::string to_hex(const digest256& d) {
  return to_hex(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

}  // namespace shardd

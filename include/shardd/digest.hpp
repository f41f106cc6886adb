#pragma once
// An order-independent digest of a set of records: count + sum of per-record SHA-256.

#include "shardd/sha256.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace shardd {

/// Digest of a key range: the number of records and the sum, modulo 2^256, of
/// SHA-256(u32 key length ‖ key ‖ value) over every record. Addition is commutative, so two
/// nodes holding the same records in any order (or built in any order) get the same digest;
/// unlike XOR, a record present twice does not cancel out. Pure value type.
class range_digest {
 public:
  void add(std::string_view key, std::string_view value) noexcept;
  /// Takes a record out again: the digest of the set without it (the record must be in it).
  void remove(std::string_view key, std::string_view value) noexcept;
  void merge(const range_digest& other) noexcept;
  /// The digest of this set without `other`, a subset of it.
  void subtract(const range_digest& other) noexcept;

  std::uint64_t count() const noexcept { return count_; }
  /// The sum as 64 hex digits, most significant first.
  std::string sum_hex() const;
  friend bool operator==(const range_digest&, const range_digest&) = default;

  /// Raw limbs for the wire: four u64, least significant first.
  const std::array<std::uint64_t, 4>& limbs() const noexcept { return sum_; }
  static range_digest from(std::uint64_t count, const std::array<std::uint64_t, 4>& limbs) noexcept;

 private:
  static std::array<std::uint64_t, 4> limbs_of(const digest256& d) noexcept;
  void add_limbs(const std::array<std::uint64_t, 4>& v) noexcept;
  void sub_limbs(const std::array<std::uint64_t, 4>& v) noexcept;
  std::uint64_t count_ = 0;
  std::array<std::uint64_t, 4> sum_{};
};

}  // namespace shardd

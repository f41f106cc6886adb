#include "shardd/digest.hpp"

#include "shardd/key_codec.hpp"

namespace shardd {

void range_digest::add(std::string_view key, std::string_view value) noexcept {
  std::string len;
  append_u32be(len, static_cast<std::uint32_t>(key.size()));
  sha256_builder b;
  b.update(len).update(key).update(value);
  add_digest(b.finish());
  ++count_;
}

void range_digest::add_digest(const digest256& d) noexcept {
  // The digest as a 256-bit big-endian number, added limb by limb with carry.
  unsigned __int128 carry = 0;
  for (int limb = 0; limb < 4; ++limb) {
    std::uint64_t v = 0;
    for (int b = 0; b < 8; ++b) v = (v << 8) | d[static_cast<std::size_t>(31 - (limb * 8 + (7 - b)))];
    unsigned __int128 s = static_cast<unsigned __int128>(sum_[static_cast<std::size_t>(limb)]) + v + carry;
    sum_[static_cast<std::size_t>(limb)] = static_cast<std::uint64_t>(s);
    carry = s >> 64;
  }
}

void range_digest::merge(const range_digest& other) noexcept {
  unsigned __int128 carry = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    unsigned __int128 s = static_cast<unsigned __int128>(sum_[i]) + other.sum_[i] + carry;
    sum_[i] = static_cast<std::uint64_t>(s);
    carry = s >> 64;
  }
  count_ += other.count_;
}

std::string range_digest::sum_hex() const {
  std::string bytes;
  for (int i = 3; i >= 0; --i) append_u64be(bytes, sum_[static_cast<std::size_t>(i)]);
  return to_hex(bytes);
}

range_digest range_digest::from(std::uint64_t count, const std::array<std::uint64_t, 4>& limbs) noexcept {
  range_digest d;
  d.count_ = count;
  d.sum_ = limbs;
  return d;
}

}  // namespace shardd

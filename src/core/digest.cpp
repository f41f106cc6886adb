#include "shardd/digest.hpp"

#include "shardd/key_codec.hpp"

namespace shardd {

namespace {

digest256 record_hash(std::string_view key, std::string_view value) noexcept {
  char len[4];
  const auto n = static_cast<std::uint32_t>(key.size());
  len[0] = static_cast<char>(n >> 24);
  len[1] = static_cast<char>(n >> 16);
  len[2] = static_cast<char>(n >> 8);
  len[3] = static_cast<char>(n);
  sha256_builder b;
  b.update(std::string_view(len, 4)).update(key).update(value);
  return b.finish();
}

}  // namespace

std::array<std::uint64_t, 4> range_digest::limbs_of(const digest256& d) noexcept {
  // The digest as a 256-bit big-endian number, least significant limb first.
  std::array<std::uint64_t, 4> out{};
  for (std::size_t limb = 0; limb < 4; ++limb) {
    std::uint64_t v = 0;
    for (std::size_t b = 0; b < 8; ++b) v = (v << 8) | d[31 - (limb * 8 + (7 - b))];
    out[limb] = v;
  }
  return out;
}

void range_digest::add_limbs(const std::array<std::uint64_t, 4>& v) noexcept {
  unsigned __int128 carry = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    unsigned __int128 s = static_cast<unsigned __int128>(sum_[i]) + v[i] + carry;
    sum_[i] = static_cast<std::uint64_t>(s);
    carry = s >> 64;
  }
}

void range_digest::sub_limbs(const std::array<std::uint64_t, 4>& v) noexcept {
  // Modulo 2^256: borrow limb by limb.
  std::uint64_t borrow = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    const std::uint64_t a = sum_[i];
    const std::uint64_t d = a - v[i] - borrow;
    borrow = (a < v[i] || (a == v[i] && borrow)) ? 1 : 0;
    sum_[i] = d;
  }
}

void range_digest::add(std::string_view key, std::string_view value) noexcept {
  add_limbs(limbs_of(record_hash(key, value)));
  ++count_;
}

void range_digest::remove(std::string_view key, std::string_view value) noexcept {
  sub_limbs(limbs_of(record_hash(key, value)));
  --count_;
}

void range_digest::merge(const range_digest& other) noexcept {
  add_limbs(other.sum_);
  count_ += other.count_;
}

void range_digest::subtract(const range_digest& other) noexcept {
  sub_limbs(other.sum_);
  count_ -= other.count_;
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

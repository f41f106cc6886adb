#pragma once
// The consistent-hashing ring (DESIGN §3): sorted virtual-node tokens of all member nodes.

#include "shardd/error.hpp"

#include <bit>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace shardd {

/// A consistent-hashing ring with weighted virtual nodes.
///
/// Node `n` with weight `w` has `w * vnodes_per_weight` virtual nodes at tokens
/// token_of(n + "#" + i). `lookup(token)` returns the owner of the first virtual node at or
/// after `token`, wrapping around. Members are kept sorted by id and ties between equal vnode
/// tokens break by node id, so the same members always give the same ring whatever order they
/// were added in.
///
/// Layout for speed: vnode tokens and owners are two flat arrays (structure of arrays), and a
/// table of 64-byte buckets indexed by the top bits of a token holds, for each slice of the
/// token space, the first vnode index of the slice and the next 16 bits and the owner of
/// every vnode token in it (a slice holds 2 to 4 on average; up to 13 fit). A lookup reads one bucket, one
/// cache line, and is decided there unless the 16 bits tie or the slice overflows, when it
/// falls back to the token array. One cache miss instead of three keeps a 1000-node ring,
/// whose arrays exceed the L2 cache, within reach of the hash that precedes the lookup.
///
/// Pure value type: no I/O, no clocks, no locks. Not thread-safe for mutation; share it as an
/// immutable snapshot.
class ring {
 public:
  static constexpr std::uint32_t default_vnodes_per_weight = 128;
  static constexpr std::uint32_t max_weight = 1000;
  static constexpr std::size_t max_nodes = 65535;  ///< owners are stored as 16-bit ordinals

  explicit ring(std::uint32_t vnodes_per_weight = default_vnodes_per_weight);

  struct member {
    std::string id;
    std::uint32_t weight = 1;
  };
  /// Builds a ring of these members at once (one sort, instead of one per add).
  [[nodiscard]] static result<ring> build(std::vector<member> members,
                                          std::uint32_t vnodes_per_weight = default_vnodes_per_weight);

  [[nodiscard]] result<void> add(std::string_view node_id, std::uint32_t weight);
  [[nodiscard]] result<void> remove(std::string_view node_id);
  [[nodiscard]] result<void> set_weight(std::string_view node_id, std::uint32_t weight);

  bool empty() const noexcept { return tokens_.empty(); }
  std::size_t vnode_count() const noexcept { return tokens_.size(); }
  std::size_t node_count() const noexcept { return nodes_.size(); }
  std::uint32_t vnodes_per_weight() const noexcept { return vnodes_per_weight_; }

  /// Member ids in ordinal order (sorted by id).
  const std::vector<std::string>& nodes() const noexcept { return nodes_; }
  const std::vector<std::uint32_t>& weights() const noexcept { return weights_; }
  /// Ordinal of a member, or -1.
  int ordinal(std::string_view node_id) const noexcept;

  /// Index of the first vnode with token >= `token` (wrapping to 0). Needs a non-empty ring.
  std::size_t lookup_vnode(std::uint64_t token) const noexcept {
    const std::size_t k = static_cast<std::size_t>(token >> bucket_shift_);
    const int s = slot(buckets_[k], token);
    if (s < 0) return lookup_vnode_exact(k, token);
    return wrap(bases_[k] + static_cast<std::size_t>(s));
  }

  /// Ordinal of the node owning `token`. Needs a non-empty ring.
  std::uint32_t lookup_ordinal(std::uint64_t token) const noexcept {
    const std::size_t k = static_cast<std::size_t>(token >> bucket_shift_);
    const bucket& b = buckets_[k];
    const int s = slot(b, token);
    if (s < 0) return owners_[lookup_vnode_exact(k, token)];
    return b.owner[s];  // owner[count] is the owner of the first vnode after the slice
  }

  /// Id of the node owning `token`. Needs a non-empty ring.
  const std::string& lookup(std::uint64_t token) const noexcept { return nodes_[lookup_ordinal(token)]; }

  /// Rebuilds the bucket table with 2^bits buckets (1..24) instead of the size chosen from the
  /// vnode count, so tests can force overflowing and empty buckets. Lookups stay exact.
  void set_table_bits(unsigned bits);
  unsigned table_bits() const noexcept { return 64 - bucket_shift_; }

  /// Plain binary search lookup, for tests and to measure what the table buys.
  std::size_t lookup_vnode_binary(std::uint64_t token) const noexcept;

  std::uint64_t vnode_token(std::size_t i) const noexcept { return tokens_[i]; }
  std::uint32_t vnode_owner(std::size_t i) const noexcept { return owners_[i]; }

  /// Share of the token space (by arc length) each node owns, by ordinal. Sums to 1.
  std::vector<double> ownership() const;

  /// Bytes of heap this ring holds (arrays, table, node ids).
  std::size_t memory_bytes() const noexcept;

 private:
  // A bucket is one cache line: the next 16 bits of up to 13 vnode tokens of its slice, biased
  // by 0x8000 so SSE2's signed compare orders them as unsigned, padded to 16 with 0x7FFF (the
  // biased maximum); then up to 14 owners, owner[count] being the owner of the first vnode
  // after the slice; then the count.
  static constexpr int bucket_slots = 13;
  static constexpr std::uint16_t bucket_overflow = 0xFFFF;
  struct alignas(64) bucket {
    std::int16_t low[16];       ///< biased 16 token bits below the slice's prefix; 0x7FFF if unused
    std::uint16_t owner[14];    ///< owners of those vnodes, then of the next vnode after the slice
    std::uint16_t count;        ///< vnodes in the slice, or bucket_overflow
    std::uint16_t unused;
  };
  static_assert(sizeof(bucket) == 64);

  /// Slot of the first vnode >= token in the bucket (count if none), or -1 when the stored
  /// bits cannot decide (a 16-bit tie, or an overflowing bucket). Branch-free on SSE2.
  int slot(const bucket& b, std::uint64_t token) const noexcept;
  std::size_t wrap(std::size_t v) const noexcept { return v == tokens_.size() ? 0 : v; }
  std::size_t lookup_vnode_exact(std::size_t bucket_index, std::uint64_t token) const noexcept;
  void rebuild();
  void build_table(unsigned bits);
  std::vector<std::uint64_t> vnode_tokens(std::string_view node_id, std::uint32_t weight) const;

  std::uint32_t vnodes_per_weight_;
  std::vector<std::string> nodes_;                     // sorted by id; index = ordinal
  std::vector<std::uint32_t> weights_;                 // by ordinal
  std::vector<std::vector<std::uint64_t>> own_tokens_; // by ordinal: that node's vnode tokens
  std::vector<std::uint64_t> tokens_;                  // all vnode tokens, sorted
  std::vector<std::uint16_t> owners_;                  // ordinal of the owner of tokens_[i]
  std::vector<bucket> buckets_;                        // 2^bits buckets, one per slice of the token space
  std::vector<std::uint32_t> bases_;                   // by bucket: index of the slice's first vnode
  unsigned bucket_shift_ = 63;                         // 64 - bits
  unsigned low_shift_ = 47;                            // bucket_shift_ - 16
};

inline int ring::slot(const bucket& b, std::uint64_t token) const noexcept {
  const auto q = static_cast<std::int16_t>(static_cast<std::uint16_t>(token >> low_shift_) ^ 0x8000u);
#if defined(__SSE2__)
  const __m128i qv = _mm_set1_epi16(q);
  const __m128i lo = _mm_load_si128(reinterpret_cast<const __m128i*>(b.low));
  const __m128i hi = _mm_load_si128(reinterpret_cast<const __m128i*>(b.low + 8));
  const unsigned below = static_cast<unsigned>(
      _mm_movemask_epi8(_mm_packs_epi16(_mm_cmplt_epi16(lo, qv), _mm_cmplt_epi16(hi, qv))));
  const unsigned tie = static_cast<unsigned>(
      _mm_movemask_epi8(_mm_packs_epi16(_mm_cmpeq_epi16(lo, qv), _mm_cmpeq_epi16(hi, qv))));
  if ((tie | (b.count == bucket_overflow)) != 0) return -1;
  return std::popcount(below);
#else
  int below = 0;
  bool tie = false;
  for (int i = 0; i < 16; ++i) {
    below += b.low[i] < q;
    tie |= b.low[i] == q;
  }
  return (tie || b.count == bucket_overflow) ? -1 : below;
#endif
}

}  // namespace shardd

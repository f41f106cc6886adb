#pragma once
// The consistent-hashing ring (DESIGN §3): sorted virtual-node tokens of all member nodes.

#include "shardd/error.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shardd {

/// A consistent-hashing ring with weighted virtual nodes.
///
/// Node `n` with weight `w` has `w * vnodes_per_weight` virtual nodes at tokens
/// token_of(n + "#" + i). `lookup(token)` returns the owner of the first virtual node at or
/// after `token`, wrapping around. Members are kept sorted by id and ties between equal vnode
/// tokens break by node id, so the same members always give the same ring whatever order they
/// were added in.
///
/// Layout for speed: vnode tokens and owners are two flat arrays (structure of arrays), and an
/// acceleration table indexed by the top `accel_bits_` bits of a token gives the first vnode of
/// that slice, so a lookup touches the table and one or two token cache lines.
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
    const std::size_t slice = static_cast<std::size_t>(token >> accel_shift_);
    std::size_t lo = accel_[slice];
    const std::size_t hi = accel_[slice + 1];
    // Slices hold about half a vnode on average; a short linear scan beats a binary search.
    while (lo < hi && tokens_[lo] < token) ++lo;
    return lo == tokens_.size() ? 0 : lo;
  }

  /// Ordinal of the node owning `token`. Needs a non-empty ring.
  std::uint32_t lookup_ordinal(std::uint64_t token) const noexcept { return owners_[lookup_vnode(token)]; }

  /// Id of the node owning `token`. Needs a non-empty ring.
  const std::string& lookup(std::uint64_t token) const noexcept { return nodes_[lookup_ordinal(token)]; }

  /// Plain binary search lookup, for tests and to measure what the table buys.
  std::size_t lookup_vnode_binary(std::uint64_t token) const noexcept;

  std::uint64_t vnode_token(std::size_t i) const noexcept { return tokens_[i]; }
  std::uint32_t vnode_owner(std::size_t i) const noexcept { return owners_[i]; }

  /// Share of the token space (by arc length) each node owns, by ordinal. Sums to 1.
  std::vector<double> ownership() const;

  /// Bytes of heap this ring holds (arrays, table, node ids).
  std::size_t memory_bytes() const noexcept;

 private:
  void rebuild();
  std::vector<std::uint64_t> vnode_tokens(std::string_view node_id, std::uint32_t weight) const;

  std::uint32_t vnodes_per_weight_;
  std::vector<std::string> nodes_;                     // sorted by id; index = ordinal
  std::vector<std::uint32_t> weights_;                 // by ordinal
  std::vector<std::vector<std::uint64_t>> own_tokens_; // by ordinal: that node's vnode tokens
  std::vector<std::uint64_t> tokens_;                  // all vnode tokens, sorted
  std::vector<std::uint16_t> owners_;                  // ordinal of the owner of tokens_[i]
  std::vector<std::uint32_t> accel_;                   // 2^bits + 1 entries: first vnode of each slice
  unsigned accel_shift_ = 63;
};

}  // namespace shardd

#pragma once
// Shard placement: the desired owner of every shard of an index.

#include "shardd/ring.hpp"

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace shardd {

/// Ring token where the walk for shard `shard_id` of `index` starts: token_of(index + "/" + n).
std::uint64_t shard_token(std::string_view index, std::uint32_t shard_id);

/// Per-node caps of consistent hashing with bounded loads: cap = ceil((1 + eps) * shards * w / W),
/// by ring ordinal. Nodes of weight 0 get cap 0.
std::vector<std::uint32_t> bounded_load_caps(const ring& r, std::size_t shards, double epsilon);

/// Desired owners (ring ordinals) of the given shards of `index` by consistent hashing with
/// bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018):
///
///   1. caps = bounded_load_caps(ring, shards, eps);
///   2. for each shard in the order given: walk the ring clockwise from shard_token(index, n)
///      and take the first node whose count is below its cap.
///
/// The sum of caps is at least (1 + eps) * shards, so every walk ends within one turn of the
/// ring. Deterministic for the same ring, index and shard ids. Needs a non-empty ring.
std::vector<std::uint32_t> place_bounded(const ring& r, std::string_view index,
                                         std::span<const std::uint32_t> shard_ids, double epsilon);

/// Desired owners by the plain ring (no load bound): ring.lookup(shard_token(index, n)).
std::vector<std::uint32_t> place_ring_only(const ring& r, std::string_view index,
                                           std::span<const std::uint32_t> shard_ids);

}  // namespace shardd

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

/// Like place_bounded, but starting from where the shards are now, moving only what must
/// move. `current[i]` is the ring ordinal of shard i's owner, or -1 if it has none on this
/// ring (its node left, is down or draining). The outline:
///
///   1. every shard stays with its current owner;
///   2. shed: a node above its cap gives up shards until it is at its cap: first shards natural
///      (their ring walk starts at one of its vnodes) to a node below its fair share
///      floor(S·w/W), then shards not natural to it, highest shard id first;
///   3. every shard without an owner goes home if its natural node is below its fair share,
///      else to the node below its fair share with the most natural shards held elsewhere
///      (up to its gap), then the furthest below;
///   4. pull: in shard order, a node below its fair share takes back each of its natural
///      shards held elsewhere (first from holders that stay at their fair share), repeated
///      until nothing moves;
///   5. any shard still without an owner walks the ring to the first node below its cap.
///
/// Shards that must move (shed or orphaned) fill the gaps before any shard that could stay
/// is pulled, so a join moves about S/(n+1) shards even when the cap falls by one.
/// Caps are never exceeded. A placement made by place_bounded on the same ring is a fixed
/// point (a natural shard sits elsewhere only when its node was full), and so is any output of
/// this function: planning twice moves nothing the second time.
std::vector<std::uint32_t> place_bounded_sticky(const ring& r, std::string_view index,
                                                std::span<const std::uint32_t> shard_ids,
                                                std::span<const int> current, double epsilon);

/// Desired owners by the plain ring (no load bound): ring.lookup(shard_token(index, n)).
std::vector<std::uint32_t> place_ring_only(const ring& r, std::string_view index,
                                           std::span<const std::uint32_t> shard_ids);

}  // namespace shardd

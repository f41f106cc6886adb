#include "shardd/placement.hpp"

#include "shardd/sha256.hpp"

#include <cmath>
#include <numeric>
#include <string>

namespace shardd {

std::uint64_t shard_token(std::string_view index, std::uint32_t shard_id) {
  std::string name;
  name.reserve(index.size() + 12);
  name.append(index).append("/").append(std::to_string(shard_id));
  return token_of(name);
}

std::vector<std::uint32_t> bounded_load_caps(const ring& r, std::size_t shards, double epsilon) {
  const auto& w = r.weights();
  const double total = static_cast<double>(std::accumulate(w.begin(), w.end(), std::uint64_t{0}));
  std::vector<std::uint32_t> caps(w.size(), 0);
  if (total == 0) return caps;
  for (std::size_t i = 0; i < w.size(); ++i) {
    // A tiny tolerance keeps exact products (like 1.1 * 10 * 1 / 1 = 11.000000000000002) from
    // rounding up to the next integer.
    double c = (1.0 + epsilon) * static_cast<double>(shards) * w[i] / total;
    caps[i] = static_cast<std::uint32_t>(std::ceil(c - 1e-9));
  }
  return caps;
}

std::vector<std::uint32_t> place_bounded(const ring& r, std::string_view index,
                                         std::span<const std::uint32_t> shard_ids, double epsilon) {
  std::vector<std::uint32_t> owners;
  owners.reserve(shard_ids.size());
  if (r.empty()) return owners;
  const auto caps = bounded_load_caps(r, shard_ids.size(), epsilon);
  std::vector<std::uint32_t> counts(caps.size(), 0);
  const std::size_t n = r.vnode_count();
  for (auto id : shard_ids) {
    std::size_t v = r.lookup_vnode(shard_token(index, id));
    std::uint32_t chosen = r.vnode_owner(v);
    for (std::size_t step = 0; step < n; ++step, v = (v + 1 == n ? 0 : v + 1)) {
      const std::uint32_t o = r.vnode_owner(v);
      if (counts[o] < caps[o]) {
        chosen = o;
        break;
      }
    }
    ++counts[chosen];
    owners.push_back(chosen);
  }
  return owners;
}

std::vector<std::uint32_t> place_ring_only(const ring& r, std::string_view index,
                                           std::span<const std::uint32_t> shard_ids) {
  std::vector<std::uint32_t> owners;
  owners.reserve(shard_ids.size());
  if (r.empty()) return owners;
  for (auto id : shard_ids) owners.push_back(r.lookup_ordinal(shard_token(index, id)));
  return owners;
}

}  // namespace shardd

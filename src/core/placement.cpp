#include "shardd/placement.hpp"

#include "shardd/sha256.hpp"

#include <algorithm>
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

namespace {

/// Walks the ring clockwise from `token` to the first node whose load is below its cap. The
/// caps sum to more than the shards, so a walk always ends within one turn.
std::uint32_t walk_to_capacity(const ring& r, std::uint64_t token, const std::vector<std::uint32_t>& load,
                               const std::vector<std::uint32_t>& caps) {
  const std::size_t n = r.vnode_count();
  std::size_t v = r.lookup_vnode(token);
  const std::uint32_t first = r.vnode_owner(v);
  for (std::size_t step = 0; step < n; ++step, v = (v + 1 == n ? 0 : v + 1)) {
    const std::uint32_t o = r.vnode_owner(v);
    if (load[o] < caps[o]) return o;
  }
  return first;
}

}  // namespace

std::vector<std::uint32_t> place_bounded(const ring& r, std::string_view index,
                                         std::span<const std::uint32_t> shard_ids, double epsilon) {
  std::vector<std::uint32_t> owners;
  owners.reserve(shard_ids.size());
  if (r.empty()) return owners;
  const auto caps = bounded_load_caps(r, shard_ids.size(), epsilon);
  std::vector<std::uint32_t> counts(caps.size(), 0);
  for (auto id : shard_ids) {
    const auto chosen = walk_to_capacity(r, shard_token(index, id), counts, caps);
    ++counts[chosen];
    owners.push_back(chosen);
  }
  return owners;
}

std::vector<std::uint32_t> place_bounded_sticky(const ring& r, std::string_view index,
                                                std::span<const std::uint32_t> shard_ids,
                                                std::span<const int> current, double epsilon) {
  const std::size_t count = shard_ids.size();
  std::vector<std::uint32_t> result;
  if (r.empty() || current.size() != count) return result;
  const auto caps = bounded_load_caps(r, count, epsilon);
  const auto& w = r.weights();
  const double total = static_cast<double>(std::accumulate(w.begin(), w.end(), std::uint64_t{0}));
  std::vector<std::uint32_t> fair(w.size());
  for (std::size_t i = 0; i < w.size(); ++i)
    fair[i] = static_cast<std::uint32_t>(std::floor(static_cast<double>(count) * w[i] / total + 1e-9));

  const int nodes = static_cast<int>(r.node_count());
  std::vector<int> owner(count, -1);
  std::vector<std::uint32_t> natural(count), load(w.size(), 0);
  for (std::size_t i = 0; i < count; ++i) {
    natural[i] = r.lookup_ordinal(shard_token(index, shard_ids[i]));
    // 1. Stay.
    if (current[i] >= 0 && current[i] < nodes && w[static_cast<std::size_t>(current[i])] > 0) {
      owner[i] = current[i];
      ++load[static_cast<std::size_t>(current[i])];
    }
  }
  // 2. Shed above the cap. Shards that would go home anyway (natural to a node below its fair
  //    share) go first, then shards not natural to the node, then by id, highest first.
  auto below_fair = [&](std::uint32_t n) { return load[n] < fair[n]; };
  for (std::uint32_t n = 0; n < w.size(); ++n) {
    if (load[n] <= caps[n]) continue;
    std::vector<std::size_t> held;
    for (std::size_t i = 0; i < count; ++i)
      if (owner[i] == static_cast<int>(n)) held.push_back(i);
    auto rank = [&](std::size_t i) { return natural[i] != n && below_fair(natural[i]) ? 0 : natural[i] != n ? 1 : 2; };
    std::sort(held.begin(), held.end(), [&](std::size_t a, std::size_t b) {
      const int ra = rank(a), rb = rank(b);
      if (ra != rb) return ra < rb;
      return shard_ids[a] > shard_ids[b];
    });
    for (std::size_t k = 0; load[n] > caps[n]; ++k) {
      owner[held[k]] = -1;
      --load[n];
    }
  }
  // 3. Shards without an owner go home if their natural node is below its fair share. The
  //    rest move anyway, so they fill gaps that pulls would otherwise fill with shards that
  //    could have stayed: each goes to the node with the most such gap (below its fair share,
  //    counting only its natural shards held elsewhere), then to the node furthest below its
  //    fair share, lowest ordinal on a tie. A joining node, above all, takes them first.
  for (std::size_t i = 0; i < count; ++i) {
    if (owner[i] >= 0 || !below_fair(natural[i])) continue;
    owner[i] = static_cast<int>(natural[i]);
    ++load[natural[i]];
  }
  std::vector<std::int64_t> away(w.size(), 0);  // natural shards held by another node
  for (std::size_t i = 0; i < count; ++i)
    if (owner[i] >= 0 && owner[i] != static_cast<int>(natural[i])) ++away[natural[i]];
  for (std::size_t i = 0; i < count; ++i) {
    if (owner[i] >= 0) continue;
    std::int64_t best_pullable = -1, best_gap = 0;
    int best = -1;
    for (std::uint32_t n = 0; n < w.size(); ++n) {
      const std::int64_t gap = static_cast<std::int64_t>(fair[n]) - static_cast<std::int64_t>(load[n]);
      if (gap <= 0) continue;
      const std::int64_t pullable = std::min(gap, away[n]);
      if (pullable > best_pullable || (pullable == best_pullable && gap > best_gap))
        best_pullable = pullable, best_gap = gap, best = static_cast<int>(n);
    }
    if (best < 0) break;  // nobody is below the fair share: the rest walk the ring (step 5)
    owner[i] = best;
    ++load[static_cast<std::size_t>(best)];
  }
  // 4. Pull natural shards home to nodes still below their fair share. A pull can drop the
  //    node it takes from below its own fair share, so repeat until nothing moves; a shard
  //    pulled home is never pulled again, so this ends after at most one pass per shard.
  //    Shards whose holder stays at or above its own fair share are pulled first, so a pull
  //    rarely starts a cascade.
  for (bool pulled = true, gentle = true; pulled || gentle;) {
    if (!pulled) gentle = false;
    pulled = false;
    for (std::size_t i = 0; i < count; ++i) {
      const auto home = natural[i];
      if (owner[i] == static_cast<int>(home) || !below_fair(home)) continue;
      if (gentle && owner[i] >= 0 && load[static_cast<std::size_t>(owner[i])] <= fair[static_cast<std::size_t>(owner[i])])
        continue;
      if (owner[i] >= 0) --load[static_cast<std::size_t>(owner[i])];
      owner[i] = static_cast<int>(home);
      ++load[home];
      pulled = true;
    }
  }
  // 5. Place the rest by walking the ring (only when every node is at its fair share).
  for (std::size_t i = 0; i < count; ++i) {
    if (owner[i] >= 0) continue;
    const auto chosen = walk_to_capacity(r, shard_token(index, shard_ids[i]), load, caps);
    owner[i] = static_cast<int>(chosen);
    ++load[chosen];
  }
  result.assign(owner.begin(), owner.end());
  return result;
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

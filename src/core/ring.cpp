#include "shardd/ring.hpp"

#include "shardd/sha256.hpp"

#include <algorithm>
#include <bit>
#include <numeric>
#include <tuple>

namespace shardd {

ring::ring(std::uint32_t vnodes_per_weight) : vnodes_per_weight_(vnodes_per_weight == 0 ? 1 : vnodes_per_weight) {
  rebuild();
}

int ring::ordinal(std::string_view node_id) const noexcept {
  auto it = std::lower_bound(nodes_.begin(), nodes_.end(), node_id);
  if (it == nodes_.end() || *it != node_id) return -1;
  return static_cast<int>(it - nodes_.begin());
}

std::vector<std::uint64_t> ring::vnode_tokens(std::string_view node_id, std::uint32_t weight) const {
  std::vector<std::uint64_t> out;
  const std::uint32_t count = weight * vnodes_per_weight_;
  out.reserve(count);
  std::string name;
  for (std::uint32_t i = 0; i < count; ++i) {
    name.assign(node_id).append("#").append(std::to_string(i));
    out.push_back(token_of(name));
  }
  return out;
}

result<ring> ring::build(std::vector<member> members, std::uint32_t vnodes_per_weight) {
  ring r(vnodes_per_weight);
  std::sort(members.begin(), members.end(), [](const member& a, const member& b) { return a.id < b.id; });
  if (members.size() > max_nodes) return make_error(errc::invalid_argument, "more than 65535 nodes");
  for (std::size_t i = 0; i < members.size(); ++i) {
    const auto& m = members[i];
    if (m.id.empty()) return make_error(errc::invalid_argument, "node id must not be empty");
    if (i > 0 && members[i - 1].id == m.id)
      return make_error(errc::already_exists, "node '" + m.id + "' is listed twice");
    if (m.weight > max_weight) return make_error(errc::invalid_argument, "weight above " + std::to_string(max_weight));
    r.nodes_.push_back(m.id);
    r.weights_.push_back(m.weight);
    r.own_tokens_.push_back(r.vnode_tokens(m.id, m.weight));
  }
  r.rebuild();
  return r;
}

result<void> ring::add(std::string_view node_id, std::uint32_t weight) {
  if (node_id.empty()) return make_error(errc::invalid_argument, "node id must not be empty");
  if (weight > max_weight) return make_error(errc::invalid_argument, "weight above " + std::to_string(max_weight));
  if (nodes_.size() >= max_nodes) return make_error(errc::invalid_argument, "more than 65535 nodes");
  auto it = std::lower_bound(nodes_.begin(), nodes_.end(), node_id);
  if (it != nodes_.end() && *it == node_id)
    return make_error(errc::already_exists, "node '" + std::string(node_id) + "' is already on the ring");
  auto pos = it - nodes_.begin();
  nodes_.insert(it, std::string(node_id));
  weights_.insert(weights_.begin() + pos, weight);
  own_tokens_.insert(own_tokens_.begin() + pos, vnode_tokens(node_id, weight));
  rebuild();
  return {};
}

result<void> ring::remove(std::string_view node_id) {
  int o = ordinal(node_id);
  if (o < 0) return make_error(errc::not_found, "node '" + std::string(node_id) + "' is not on the ring");
  nodes_.erase(nodes_.begin() + o);
  weights_.erase(weights_.begin() + o);
  own_tokens_.erase(own_tokens_.begin() + o);
  rebuild();
  return {};
}

result<void> ring::set_weight(std::string_view node_id, std::uint32_t weight) {
  int o = ordinal(node_id);
  if (o < 0) return make_error(errc::not_found, "node '" + std::string(node_id) + "' is not on the ring");
  if (weight > max_weight) return make_error(errc::invalid_argument, "weight above " + std::to_string(max_weight));
  weights_[static_cast<std::size_t>(o)] = weight;
  own_tokens_[static_cast<std::size_t>(o)] = vnode_tokens(node_id, weight);
  rebuild();
  return {};
}

void ring::rebuild() {
  // A node's vnode tokens do not depend on other members, so the ring of a member set is
  // always the same; ties on equal tokens break by ordinal, which follows id order.
  struct vnode {
    std::uint64_t token;
    std::uint16_t owner;
  };
  std::vector<vnode> all;
  std::size_t total = 0;
  for (const auto& t : own_tokens_) total += t.size();
  all.reserve(total);
  for (std::size_t o = 0; o < own_tokens_.size(); ++o)
    for (auto t : own_tokens_[o]) all.push_back({t, static_cast<std::uint16_t>(o)});
  std::sort(all.begin(), all.end(),
            [](const vnode& a, const vnode& b) { return std::tie(a.token, a.owner) < std::tie(b.token, b.owner); });
  tokens_.resize(all.size());
  owners_.resize(all.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    tokens_[i] = all[i].token;
    owners_[i] = all[i].owner;
  }
  tokens_.shrink_to_fit();
  owners_.shrink_to_fit();

  // Two to four vnodes per bucket: at most 13 fit, so overflow is rare (about 1e-4 of the
  // buckets), and the table is 17 to 34 bytes per vnode.
  const auto n = all.size();
  build_table(std::clamp(n < 4 ? 1u : static_cast<unsigned>(std::bit_width(n)) - 2, 1u, 24u));
}

void ring::set_table_bits(unsigned bits) { build_table(std::clamp(bits, 1u, 24u)); }

void ring::build_table(unsigned bits) {
  bucket_shift_ = 64 - bits;
  low_shift_ = bucket_shift_ - 16;
  const std::size_t count = std::size_t{1} << bits;
  buckets_.assign(count, bucket{});
  buckets_.shrink_to_fit();
  bases_.assign(count, 0);
  bases_.shrink_to_fit();
  std::size_t v = 0;
  for (std::size_t s = 0; s < count; ++s) {
    bucket& b = buckets_[s];
    std::fill(std::begin(b.low), std::end(b.low), std::int16_t{0x7FFF});
    const std::size_t first = v;
    while (v < tokens_.size() && (tokens_[v] >> bucket_shift_) == s) ++v;
    bases_[s] = static_cast<std::uint32_t>(first);
    if (tokens_.empty()) continue;
    const std::size_t in = v - first;
    if (in > static_cast<std::size_t>(bucket_slots)) {
      b.count = bucket_overflow;
      continue;
    }
    b.count = static_cast<std::uint16_t>(in);
    for (std::size_t i = 0; i < in; ++i) {
      b.low[i] = static_cast<std::int16_t>(static_cast<std::uint16_t>(tokens_[first + i] >> low_shift_) ^ 0x8000u);
      b.owner[i] = owners_[first + i];
    }
    b.owner[in] = owners_[wrap(v)];
  }
}

std::size_t ring::lookup_vnode_exact(std::size_t bucket_index, std::uint64_t token) const noexcept {
  // Every vnode before the slice has a smaller token, so the answer is at or after its first.
  auto it = std::lower_bound(tokens_.begin() + bases_[bucket_index], tokens_.end(), token);
  return wrap(static_cast<std::size_t>(it - tokens_.begin()));
}

std::size_t ring::lookup_vnode_binary(std::uint64_t token) const noexcept {
  auto it = std::lower_bound(tokens_.begin(), tokens_.end(), token);
  return it == tokens_.end() ? 0 : static_cast<std::size_t>(it - tokens_.begin());
}

std::vector<double> ring::ownership() const {
  std::vector<double> share(nodes_.size(), 0.0);
  if (tokens_.empty()) return share;
  constexpr double space = 18446744073709551616.0;  // 2^64
  // vnode i owns the arc (tokens_[i-1], tokens_[i]]; vnode 0 also owns the wrap-around arc.
  for (std::size_t i = 0; i < tokens_.size(); ++i) {
    std::uint64_t prev = i == 0 ? tokens_.back() : tokens_[i - 1];
    std::uint64_t arc = tokens_[i] - prev;  // unsigned wrap gives the wrap-around arc for i == 0
    double len = (i == 0 && tokens_.size() == 1) ? space : static_cast<double>(arc);
    share[owners_[i]] += len / space;
  }
  return share;
}

std::size_t ring::memory_bytes() const noexcept {
  std::size_t b = tokens_.capacity() * sizeof(std::uint64_t) + owners_.capacity() * sizeof(std::uint16_t) +
                  buckets_.capacity() * sizeof(bucket) + bases_.capacity() * sizeof(std::uint32_t) + weights_.capacity() * sizeof(std::uint32_t) +
                  nodes_.capacity() * sizeof(std::string);
  for (const auto& t : own_tokens_) b += t.capacity() * sizeof(std::uint64_t);
  for (const auto& n : nodes_) b += n.capacity() > 15 ? n.capacity() + 1 : 0;
  return b;
}

}  // namespace shardd

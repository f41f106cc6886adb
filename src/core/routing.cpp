#include "shardd/routing.hpp"

#include "shardd/sha256.hpp"

#include <algorithm>

namespace shardd {

std::size_t shard_position(const index_entry& ix, std::string_view partition_key) noexcept {
  // First shard whose start is greater than the key, minus one. The first shard starts at the
  // beginning of the space, so the result is never negative.
  auto it = std::upper_bound(ix.shards.begin(), ix.shards.end(), partition_key,
                             [](std::string_view k, const shard_entry& s) { return k < s.start; });
  return static_cast<std::size_t>(it - ix.shards.begin()) - 1;
}

std::optional<std::size_t> shard_of_storage_key(const index_entry& ix, std::string_view storage_key) noexcept {
  auto d = decode_storage_key(storage_key, ix.strategy);
  if (!d || d->index_id != ix.id) return std::nullopt;
  return shard_position(ix, d->partition_key);
}

std::string_view user_key_of(const index_entry& ix, std::string_view storage_key) noexcept {
  auto d = decode_storage_key(storage_key, ix.strategy);
  return d ? d->user_key : std::string_view();
}

route route_key(const index_entry& ix, std::string_view key, std::optional<std::string_view> routing) {
  route r;
  if (ix.strategy == partitioning::hash) {
    r.token = token_of(routing ? *routing : key);
    r.storage_key = storage_key_hash(ix.id, r.token, key);
    r.shard_pos = shard_position(ix, std::string_view(r.storage_key).substr(index_prefix_bytes, token_bytes));
  } else {
    r.storage_key = storage_key_range(ix.id, key);
    r.shard_pos = shard_position(ix, key);
  }
  return r;
}

key_range shard_storage_range(const index_entry& ix, const shard_entry& s) {
  return storage_range(ix.id, s.start, s.end);
}

key_range index_storage_range(const index_entry& ix) {
  return key_range{index_prefix(ix.id), index_upper_bound(ix.id)};
}

}  // namespace shardd

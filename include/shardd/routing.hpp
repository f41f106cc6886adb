#pragma once
// Key routing (DESIGN §3, §7): (index, key, routing?) → shard → node, and the inverse.

#include "shardd/key_codec.hpp"
#include "shardd/partition_map.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shardd {

/// Where a record lives.
struct route {
  std::size_t shard_pos = 0;  ///< position in index_entry::shards
  std::uint64_t token = 0;    ///< hash indexes: token of the routing key
  std::string storage_key;    ///< the record's key in the node's store
};

/// Position of the shard whose range holds `partition_key` (binary search over shard starts).
/// Needs an index that passed validate().
std::size_t shard_position(const index_entry& ix, std::string_view partition_key) noexcept;

/// Position of the shard of `ix` that holds a storage key, or nullopt if the key is not one of
/// `ix`'s (another index id, or too short to hold the index prefix and, for hash indexes, a
/// token). For keys that come from the network.
std::optional<std::size_t> shard_of_storage_key(const index_entry& ix, std::string_view storage_key) noexcept;

/// The user key inside a storage key of `ix` (empty if it is not one).
std::string_view user_key_of(const index_entry& ix, std::string_view storage_key) noexcept;

/// Routes a record key. Hash: the token of `routing` if given, else of `key`, picks the shard.
/// Range: the key itself picks the shard (a routing value does not change key order; it is
/// ignored for range indexes so that scans stay in key order).
route route_key(const index_entry& ix, std::string_view key, std::optional<std::string_view> routing = std::nullopt);

/// The storage key range [begin, end) that holds exactly the records of a shard.
key_range shard_storage_range(const index_entry& ix, const shard_entry& s);

/// The storage key range of a whole index.
key_range index_storage_range(const index_entry& ix);

}  // namespace shardd

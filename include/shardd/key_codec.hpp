#pragma once
// Storage key layout (DESIGN §3). Every shard is one contiguous range of storage keys:
//   hash index:  [index_id u32 BE][token u64 BE][user key]
//   range index: [index_id u32 BE][user key]
// The part after the index id is the record's *partition key*: the point in the index's
// partition space that shard boundaries are expressed in (the 8 token bytes for hash indexes,
// the user key for range indexes).

#include "shardd/error.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shardd {

enum class partitioning : std::uint8_t { hash, range };

constexpr std::size_t max_key_bytes = 1024;
constexpr std::size_t index_prefix_bytes = 4;
constexpr std::size_t token_bytes = 8;

void append_u32be(std::string& out, std::uint32_t v);
void append_u64be(std::string& out, std::uint64_t v);
std::uint32_t read_u32be(std::string_view in) noexcept;  ///< needs in.size() >= 4
std::uint64_t read_u64be(std::string_view in) noexcept;  ///< needs in.size() >= 8

/// 8-byte big-endian form of a token: byte order equals numeric order.
std::string token_key(std::uint64_t token);

/// [index_id u32 BE]: the first storage key of an index.
std::string index_prefix(std::uint32_t index_id);

/// The first storage key after every key of an index (the prefix of index_id + 1).
std::string index_upper_bound(std::uint32_t index_id);

/// Storage key of a record of a hash index.
std::string storage_key_hash(std::uint32_t index_id, std::uint64_t token, std::string_view key);

/// Storage key of a record of a range index.
std::string storage_key_range(std::uint32_t index_id, std::string_view key);

/// A storage key taken apart. `user_key` views into the input.
struct decoded_key {
  std::uint32_t index_id = 0;
  std::optional<std::uint64_t> token;  ///< set for hash indexes
  std::string_view partition_key;       ///< token bytes (hash) or user key (range)
  std::string_view user_key;
};

[[nodiscard]] result<decoded_key> decode_storage_key(std::string_view storage_key, partitioning p);

/// The half-open storage key range [begin, end) of a partition-space interval of one index.
/// `end` of nullopt means the end of the index's space.
struct key_range {
  std::string begin;
  std::string end;

  bool contains(std::string_view k) const noexcept { return k >= begin && k < end; }
  friend bool operator==(const key_range&, const key_range&) = default;
};
key_range storage_range(std::uint32_t index_id, std::string_view start,
                        const std::optional<std::string>& end);

/// Smallest string greater than every string that starts with `prefix`; nullopt if none
/// (the prefix is all 0xff bytes or empty).
std::optional<std::string> prefix_successor(std::string_view prefix);

/// Index names: [a-z0-9_-]{1,64}.
[[nodiscard]] result<void> validate_index_name(std::string_view name);

/// Record keys: valid UTF-8, 1..1024 bytes.
[[nodiscard]] result<void> validate_key(std::string_view key);

/// Strict UTF-8 check (no overlongs, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view s) noexcept;

}  // namespace shardd

#pragma once
// The rebalancer's settings (strategy, threshold, anti-thrash rules): cluster-wide, they travel
// with the partition map. The planner is in rebalance.hpp.

#include "shardd/error.hpp"
#include "shardd/json_fields.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shardd {

/// What a shard weighs: one function each (`shard_weight`), chosen in the settings.
enum class rebalance_strategy : std::uint8_t {
  shards,    ///< every shard weighs 1: equal shard counts per unit of node weight
  bytes,     ///< the shard's bytes
  records,   ///< the shard's records
  load,      ///< the shard's requests per second (reads + writes)
  weighted,  ///< a blend: each component as a share of the cluster's total, by the settings' weights
};
std::string_view to_string(rebalance_strategy s) noexcept;
std::optional<rebalance_strategy> parse_rebalance_strategy(std::string_view s) noexcept;

/// auto: the controller plans and starts moves by itself; plan_only: it plans (explain, the
/// plan endpoint, apply) but starts nothing unasked; off: no plans, no automatic moves (drains
/// still move shards: an operator asked for them).
enum class rebalance_mode : std::uint8_t { automatic, plan_only, off };
std::string_view to_string(rebalance_mode m) noexcept;
std::optional<rebalance_mode> parse_rebalance_mode(std::string_view s) noexcept;

/// A disk watermark: a share of the data disk in use (as "85%"), or a number of bytes that
/// must stay free (as "500mb"). A node is above it when more than that share is used, or less
/// than that is free.
struct disk_watermark {
  double used_share = 0;       ///< above this share in use; 0: the watermark is `min_free`
  std::uint64_t min_free = 0;  ///< below this many bytes free
  friend bool operator==(const disk_watermark&, const disk_watermark&) = default;
};
std::string to_string(const disk_watermark& w);
/// "85%" / "85.5%" (0-100], or bytes free "500mb", "2gb", "1048576b" (b, kb, mb, gb, tb; 1024-based).
std::optional<disk_watermark> parse_disk_watermark(std::string_view s);
[[nodiscard]] bool above(const disk_watermark& w, std::uint64_t used, std::uint64_t total) noexcept;
/// The bytes in use at which a disk of `total` bytes reaches `w`.
[[nodiscard]] std::uint64_t used_at(const disk_watermark& w, std::uint64_t total) noexcept;

/// Where a node's data disk stands. low: no new shard goes there; high: the planner moves
/// shards away; flood: writes to its shards are refused (507) until it is under high.
enum class disk_level : std::uint8_t { ok, low, high, flood };
std::string_view to_string(disk_level l) noexcept;

struct disk_watermarks {
  disk_watermark low{0.85, 0}, high{0.90, 0}, flood{0.95, 0};
  friend bool operator==(const disk_watermarks&, const disk_watermarks&) = default;
};
/// The level of a disk with `used` of `total` bytes in use (total 0: unknown, ok). Flood holds
/// until the disk is under high (`previous` is the level last found).
[[nodiscard]] disk_level level_of(const disk_watermarks& w, std::uint64_t used, std::uint64_t total,
                                  disk_level previous) noexcept;

/// Hot shards: a shard that carries at least `share` of its node's requests per second (and at
/// least `min_rate` of them), on a node whose load is above the threshold, for `after_ms` in a
/// row is split in two (hash: at its middle token; range: at its median key), then balanced as
/// two shards. A shard whose hottest key carries half its requests or more is not split (a
/// split cannot divide one key), nor one of an index at its shard limit. After a split, both
/// halves wait `after_ms` before their clock starts again.
struct hot_split_settings {
  bool enabled = true;
  double share = 0.5;
  double min_rate = 1000;  ///< requests (reads + writes) per second
  std::uint64_t after_ms = 60'000;
  friend bool operator==(const hot_split_settings&, const hot_split_settings&) = default;
};

/// The rebalancer's settings: cluster-wide, they travel with the map.
struct rebalance_settings {
  /// auto: the rebalancer makes every automatic move (joins, weight changes, drains, skew).
  rebalance_mode mode = rebalance_mode::automatic;
  rebalance_strategy strategy = rebalance_strategy::weighted;
  /// Start when some node's score is more than `threshold` above (or below) its share of the
  /// total (1 = its weight's share); stop once every node is within threshold / 2.
  double threshold = 0.10;
  /// The blend of `weighted` (each component is a share of the cluster's total of it).
  double weight_shards = 1, weight_bytes = 1, weight_records = 0, weight_load = 1;
  std::uint64_t interval_ms = 10'000;   ///< how often the controller plans (and on events)
  std::uint64_t cooldown_ms = 600'000;  ///< a shard moved (for any reason) is not moved again for this long
  std::uint64_t window_ms = 600'000;    ///< the move budget's window
  std::uint32_t max_moves_per_window = 64;
  std::uint64_t max_bytes_per_window = 0;  ///< 0: no byte budget
  /// The net-benefit test: a move must remove at least this share of the cluster's score from
  /// outside the band per share of the cluster's data it moves (bytes, each shard counted at
  /// 1 MiB at least). A shard moved from a node above the band to one below removes twice its
  /// share: the benefit of a plain bytes move is 1 to 2.
  double min_benefit = 0.10;
  disk_watermarks disk;
  /// Predictive mode: when the present needs no move, plan on the forecast `horizon_ms` ahead
  /// (each shard's bytes and each node's disk grown by their measured trend) and make those
  /// moves now, at low priority (reason predictive).
  bool predictive = false;
  std::uint64_t horizon_ms = 3'600'000;
  hot_split_settings hot;
  friend bool operator==(const rebalance_settings&, const rebalance_settings&) = default;
};

/// The settings as a JSON object, and read back from one: fields absent keep their value in
/// `s`; unknown fields, wrong types and values out of range are errors naming the field.
boost::json::object to_json_object(const rebalance_settings& s);
[[nodiscard]] result<void> read_rebalance_settings(json_fields& f, rebalance_settings& s);

}  // namespace shardd

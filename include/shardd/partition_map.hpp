#pragma once
// The partition map (DESIGN §2, §3): versioned and authoritative; indexes → shards → nodes.

#include "shardd/error.hpp"
#include "shardd/key_codec.hpp"
#include "shardd/rebalance_settings.hpp"
#include "shardd/ring.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shardd {

enum class node_state : std::uint8_t { up, down, draining, left };
enum class shard_state : std::uint8_t { active, migrating, importing, offline };

std::string_view to_string(node_state s) noexcept;
std::string_view to_string(shard_state s) noexcept;
std::string_view to_string(partitioning p) noexcept;
std::optional<node_state> parse_node_state(std::string_view s) noexcept;
std::optional<shard_state> parse_shard_state(std::string_view s) noexcept;
std::optional<partitioning> parse_partitioning(std::string_view s) noexcept;

struct node_entry {
  std::string id;
  std::string rest_address;  ///< host:port of the HTTPS REST listener
  std::string peer_address;  ///< host:port of the mutual-TLS peer listener
  std::uint32_t weight = 1;
  node_state state = node_state::up;

  /// Up, not draining, weight above zero: counts for placement.
  bool accepts_shards() const noexcept { return state == node_state::up && weight > 0; }
  friend bool operator==(const node_entry&, const node_entry&) = default;
};

/// One shard: the half-open interval [start, end) of its index's partition space.
/// Bounds are partition keys: 8 big-endian token bytes (hash) or user keys (range).
struct shard_entry {
  std::uint32_t id = 0;  ///< the shard number; stable for the shard's life, never reused
  std::string start;
  std::optional<std::string> end;  ///< nullopt: the end of the partition space
  std::string owner;
  shard_state state = shard_state::active;
  std::string target;  ///< the node receiving the shard while state is `migrating`

  friend bool operator==(const shard_entry&, const shard_entry&) = default;
};

struct index_entry {
  std::string name;
  std::uint32_t id = 0;  ///< storage prefix; never reused after a drop
  partitioning strategy = partitioning::hash;
  std::vector<shard_entry> shards;  ///< sorted by start; they cover the space exactly
  std::uint32_t next_shard_id = 0;

  const shard_entry* find_shard(std::uint32_t shard_id) const noexcept;
  friend bool operator==(const index_entry&, const index_entry&) = default;
};

/// Cluster-wide settings that travel with the map, so every node applies the same ones.
struct cluster_settings {
  std::uint64_t migration_bytes_per_sec = 0;  ///< per-node cap on outgoing migration traffic; 0: none
  std::uint32_t max_outgoing = 2;             ///< concurrent migrations a node sends
  std::uint32_t max_incoming = 2;             ///< concurrent migrations a node receives
  /// The adaptive throttle: lower a node's outgoing migration rate while its foreground p99
  /// (from the monitor) is above the bound, down to the floor; raise it when it falls.
  bool migration_adaptive = false;
  double adaptive_p99_ms = 50;  ///< fractions allowed (0.5 = 500 µs)
  std::uint64_t adaptive_min_bytes_per_sec = 1 << 20;
  rebalance_settings rebalance;               ///< the rebalancer's strategy, threshold and rules
  friend bool operator==(const cluster_settings&, const cluster_settings&) = default;
};

/// An immutable snapshot of the cluster's layout. Changed only through the functions below,
/// each of which returns the next version and leaves its input untouched (copy-on-write).
/// Shared between threads as `std::shared_ptr<const partition_map>`.
struct partition_map {
  std::uint64_t version = 0;
  std::string cluster_id;
  std::string controller;  ///< node id of the controller
  std::map<std::string, node_entry, std::less<>> nodes;
  std::map<std::string, index_entry, std::less<>> indexes;
  std::uint32_t next_index_id = 1;
  cluster_settings settings;

  const index_entry* find_index(std::string_view name) const noexcept;
  const node_entry* find_node(std::string_view id) const noexcept;
  friend bool operator==(const partition_map&, const partition_map&) = default;
};

constexpr std::uint32_t max_shards_per_index = 4096;
constexpr std::uint32_t default_shards = 32;

/// What `PUT /v1/indexes/{name}` asks for.
struct index_spec {
  partitioning strategy = partitioning::hash;
  std::uint32_t shards = default_shards;  ///< hash: number of equal token ranges
  std::vector<std::string> split_points;  ///< range: sorted, distinct keys; one more shard than points
};

/// The ring of the nodes that accept shards (up, not draining, weight > 0).
ring build_ring(const partition_map& m, std::uint32_t vnodes_per_weight = ring::default_vnodes_per_weight);

// --- copy-on-write changes; each returns a map with version + 1, validated --------------------

/// Adds a node, or updates the addresses and weight of a known one (a node that re-registers).
[[nodiscard]] result<partition_map> upsert_node(const partition_map& m, const node_entry& n);
[[nodiscard]] result<partition_map> set_node_state(const partition_map& m, std::string_view node, node_state s);
[[nodiscard]] result<partition_map> set_node_weight(const partition_map& m, std::string_view node, std::uint32_t weight);
[[nodiscard]] result<partition_map> set_settings(const partition_map& m, const cluster_settings& s);

/// A shard that a forced removal gives to another node, empty: its records lived only on the
/// removed node.
struct recreated_shard {
  std::string index;
  std::uint32_t shard = 0;
  std::string owner;  ///< the node that now holds it, empty
};
struct node_removal {
  partition_map map;
  std::vector<recreated_shard> recreated;
};
/// Removes a node from the map, so its id can join again as a new member. Allowed for a node
/// that `left`, and for a `down` one that owns no shard; a `down` node with shards needs
/// `force`, and each of its shards is then given, empty, to the up node with the fewest shards
/// (its data is lost: the error without `force` lists the shards). Never the controller, never
/// a node that is up or draining, never one a shard is moving to or from.
[[nodiscard]] result<node_removal> remove_node(const partition_map& m, std::string_view node, bool force);

/// Creates an index. Hash: `shards` equal token ranges; range: one shard per interval between
/// split points. Owners come from bounded-load placement on `placement_ring` with `epsilon`.
[[nodiscard]] result<partition_map> create_index(const partition_map& m, std::string_view name,
                                                 const index_spec& spec, const ring& placement_ring,
                                                 double epsilon);
[[nodiscard]] result<partition_map> drop_index(const partition_map& m, std::string_view name);
[[nodiscard]] result<partition_map> set_shard_owner(const partition_map& m, std::string_view index,
                                                    std::uint32_t shard, std::string_view node);
[[nodiscard]] result<partition_map> set_shard_state(const partition_map& m, std::string_view index,
                                                    std::uint32_t shard, shard_state s);

/// Marks an active shard `migrating` toward `target`.
[[nodiscard]] result<partition_map> begin_migration(const partition_map& m, std::string_view index,
                                                    std::uint32_t shard, std::string_view target);
/// The target becomes the owner; the shard is active again.
[[nodiscard]] result<partition_map> commit_migration(const partition_map& m, std::string_view index,
                                                     std::uint32_t shard);
/// The shard stays with its owner and is active again.
[[nodiscard]] result<partition_map> abort_migration(const partition_map& m, std::string_view index,
                                                    std::uint32_t shard);

/// Splits an active shard in two; the upper half gets a new shard id and the same owner.
/// Hash: at the middle token (`at` must be empty). Range: at key `at`, strictly inside the shard.
[[nodiscard]] result<partition_map> split_shard(const partition_map& m, std::string_view index,
                                                std::uint32_t shard, std::optional<std::string> at);

/// Checks every invariant: shards of each index sorted, covering the space with no gap or
/// overlap, bounds well formed, ids unique, owners and targets members, ids below their
/// counters. The error names the first violation.
[[nodiscard]] result<void> validate(const partition_map& m);

/// Stable JSON form: the same map always gives the same bytes.
std::string to_json(const partition_map& m);
[[nodiscard]] result<partition_map> from_json(std::string_view text);

/// One difference between two versions of a map.
struct map_change {
  enum class kind : std::uint8_t {
    node_added, node_removed, node_state, node_weight, node_address,
    index_created, index_dropped,
    shard_added, shard_removed, shard_moved, shard_state, shard_range,
  };
  kind what;
  std::string subject;  ///< node id or index name
  std::uint32_t shard = 0;
  std::string from;     ///< previous owner / state / weight, as text
  std::string to;
  friend bool operator==(const map_change&, const map_change&) = default;
};
std::string_view to_string(map_change::kind k) noexcept;

/// What changed from `a` to `b`, in a deterministic order (nodes, then indexes by name, then
/// shards by id).
std::vector<map_change> diff(const partition_map& a, const partition_map& b);

/// Text forms of shard bounds: hex of the 8 token bytes (hash) or the key itself (range).
std::string bound_to_text(partitioning p, std::string_view bound);
[[nodiscard]] result<std::string> bound_from_text(partitioning p, std::string_view text);

}  // namespace shardd

#pragma once
// The controller's decisions and a node's storage-layout plan, as pure functions: maps,
// migration records and times in, decisions out. No I/O, no clocks (the caller passes `now`).
// The controller actor (src/node/controller.*) only carries out what these return.

#include "shardd/migration.hpp"
#include "shardd/partition_map.hpp"
#include "shardd/ring.hpp"
#include "shardd/routing.hpp"

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shardd {

/// The controller's migration records by id.
using migration_table = std::map<std::string, migration_record, std::less<>>;

/// A shard move the controller plans: shard `shard` of `index` to node `target`.
struct planned_move {
  std::string index;
  std::uint32_t shard = 0;
  std::string target;
  friend bool operator==(const planned_move&, const planned_move&) = default;
};

/// A migration that moves data (copying, catching up, verifying or cutting over): what the
/// per-node limits max_outgoing / max_incoming count. A retiring one only waits.
[[nodiscard]] bool transferring(const migration_record& r) noexcept;

/// A migration that holds its shard: not final and not retiring (a move waiting out its undo
/// window is over as far as the shard goes; it may move again, back for instance).
[[nodiscard]] bool holds_shard(const migration_record& r) noexcept;

/// Whether any record in `t` holds shard `shard` of `index`.
[[nodiscard]] bool shard_busy(const migration_table& t, std::string_view index, std::uint32_t shard) noexcept;

/// The numeric part of a migration id ("m12" -> 12); 0 for anything else. Ids sort by it.
[[nodiscard]] std::uint64_t migration_number(std::string_view id) noexcept;

/// Record ids in creation order (m2 before m10).
[[nodiscard]] std::vector<std::string> ids_in_order(const migration_table& t);

// --- placement -------------------------------------------------------------------------------

/// The desired owner (node id) of every shard of `ix`, in shard order, by sticky bounded-load
/// placement on `placement` starting from the current owners: where the ring would put them
/// (`/v1/ring/lookup`'s `desired_owner`); the rebalancer balances by its own strategy instead.
/// Empty when the ring is empty. The one place that calls place_bounded_sticky.
[[nodiscard]] std::vector<std::string> desired_owners(const index_entry& ix, const ring& placement, double epsilon);

/// Draining nodes that hold nothing any more (no shard owned or incoming, no open migration
/// from them): they can be marked `left`.
[[nodiscard]] std::vector<std::string> drained_nodes(const partition_map& m, const migration_table& t);

// --- migrations ------------------------------------------------------------------------------

/// What `POST /v1/shards/{index}/{n}/migrate` asks for.
struct migrate_request {
  std::string index;
  std::uint32_t shard = 0;
  std::string target;
  migration_priority priority = migration_priority::normal;
  std::uint64_t max_bytes_per_sec = 0;
};

/// Checks a move against the map and the records: the index and shard exist, the shard is
/// active and not moving, the target is another member that is up and takes shards, the
/// source is not down. The error says which (not_found, invalid_argument or conflict).
[[nodiscard]] result<void> check_move(const partition_map& m, const migration_table& t, const migrate_request& q);

/// Which queued migrations to start now, and which to fail.
struct start_plan {
  std::vector<std::string> start;  ///< in start order: highest priority first, then oldest
  std::vector<std::pair<std::string, std::string>> fail;  ///< id, why
  friend bool operator==(const start_plan&, const start_plan&) = default;
};

/// Plans starts: queued, unpaused records not in `starting` (those are being started and
/// hold their slots), highest priority first, then the oldest, each started while its source
/// sends fewer than `max_outgoing` and its target receives fewer than `max_incoming`. A record
/// whose shard is gone, moved meanwhile, or whose target left fails; one whose target is not
/// up or whose source is neither up nor draining waits.
[[nodiscard]] start_plan plan_starts(const partition_map& m, const migration_table& t, const std::set<std::string>& starting);

/// Finished records (done, failed, cancelled, rolled back) to delete: those last updated more
/// than `keep_ms` before `now_ms`, and the oldest beyond the newest `keep_count`.
[[nodiscard]] std::vector<std::string> prunable_migrations(const migration_table& t, std::uint64_t now_ms,
                                                           std::uint64_t keep_ms, std::size_t keep_count);

// --- liveness --------------------------------------------------------------------------------

/// When the controller last heard from each member, in milliseconds of a steady clock.
using lease_table = std::map<std::string, std::int64_t, std::less<>>;

struct liveness_plan {
  std::vector<std::string> down;       ///< up members whose lease ran out: mark them down
  std::vector<std::string> new_lease;  ///< members without a lease yet: start one at `now`
  friend bool operator==(const liveness_plan&, const liveness_plan&) = default;
};

/// Members of `m` other than `self` that are `up`: those with no lease get one; those last
/// heard more than `limit_ms` before `now_ms` go down.
[[nodiscard]] liveness_plan plan_liveness(const partition_map& m, const lease_table& leases, std::int64_t now_ms,
                                          std::int64_t limit_ms, std::string_view self);

/// Marks `nodes` down in one new version.
[[nodiscard]] result<partition_map> mark_down(const partition_map& m, const std::vector<std::string>& nodes);

// --- a node's storage layout -----------------------------------------------------------------

/// A shard's storage range, as a node's store knows it.
struct shard_range {
  std::uint32_t index_id = 0;
  std::uint32_t shard_id = 0;
  key_range range;
  friend bool operator==(const shard_range&, const shard_range&) = default;
};

/// A split of one of this node's shards: the upper half, from `at`, becomes `new_shard_id`.
struct layout_split {
  std::uint32_t index_id = 0, shard_id = 0, new_shard_id = 0;
  std::string at;  ///< storage key where the upper half starts
  friend bool operator==(const layout_split&, const layout_split&) = default;
};

/// What a node's store must do when its map goes from one version to another.
struct layout_plan {
  std::vector<shard_range> add;             ///< new empty stats slots (new shards, imports that start)
  std::vector<std::uint32_t> drop_indexes;  ///< indexes gone from the map: all their data goes
  std::vector<layout_split> splits;
  /// Shards no longer held here: their stats slots go; the data stays (a migration's source
  /// deletes it after the undo window).
  std::vector<std::pair<std::uint32_t, std::uint32_t>> remove;
  std::vector<key_range> drop_ranges;  ///< data to delete: imports called off, stale copies under a new import
  friend bool operator==(const layout_plan&, const layout_plan&) = default;
};

/// The layout change for node `self` from map `from` to map `to`.
[[nodiscard]] layout_plan plan_layout(const partition_map& from, const partition_map& to, std::string_view self);

/// The storage ranges of the shards `node` owns in `m`, and (unless `owned_only`) of those
/// moving to it.
[[nodiscard]] std::vector<shard_range> local_ranges(const partition_map& m, std::string_view node, bool owned_only = false);

/// What a controller that (re)starts must put right between the map and its migration records
/// (the map change that starts a move and the record's new phase are two writes; the process
/// can die between them).
struct reconcile_plan {
  /// Queued records whose move the map shows begun (source = owner, target = the map's): the
  /// source may or may not have heard `migrate_start`, which it takes twice harmlessly.
  std::vector<std::string> resend_start;
  /// Shards the map shows moving that no live record moves: their move is aborted.
  std::vector<planned_move> abort;
  friend bool operator==(const reconcile_plan&, const reconcile_plan&) = default;
};
[[nodiscard]] reconcile_plan plan_reconcile(const partition_map& m, const migration_table& t);

/// The entry of a node that joins: as it asks (addresses, weight, `up`) when it is new; a known
/// member keeps the weight and the `draining` state the controller holds (a restart does not
/// undo `PUT weight` or a decommission), and takes its new addresses. A `down` one is `up` again.
[[nodiscard]] node_entry joining_entry(const node_entry* known, node_entry asked);

// --- a target's imports ---------------------------------------------------------------------

/// A shard `node` imports: the map says it is moving there from `source`.
struct import_grant {
  std::uint32_t index_id = 0;
  std::uint32_t shard_id = 0;
  std::string source;
  key_range range;  ///< the shard's storage range: the only keys the import may write or drop
  friend bool operator==(const import_grant&, const import_grant&) = default;
};

/// Whether `node` takes data for shard `shard_id` of index `index_id` from `from`: the map
/// must show that shard migrating to `node` with `from` as its owner. `unavailable` when the
/// shard is not (yet) moving here (the sender's map may be newer: it retries), `forbidden`
/// when it is but `from` is not its source.
[[nodiscard]] result<import_grant> check_import(const partition_map& m, std::string_view node, std::string_view from,
                                                std::uint32_t index_id, std::uint32_t shard_id);
/// The same for the shard that holds `storage_key` (a data batch names its shard by its keys).
[[nodiscard]] result<import_grant> check_import_key(const partition_map& m, std::string_view node, std::string_view from,
                                                    std::string_view storage_key);
/// Whether every key of a batch lies in `range`, and (for a copy batch, `sorted`) in strictly
/// increasing order. `forbidden` names the first key that does not.
[[nodiscard]] result<void> check_batch_keys(const key_range& range, std::span<const std::string_view> keys, bool sorted);

// --- cluster health -------------------------------------------------------------------------

/// The cluster's colour, as Elasticsearch shows it: `red` when some shard's owner is not up
/// (its records cannot be read or written), `yellow` when all are served but the cluster is
/// changing or something is wrong (migrations running, a node draining or down without
/// shards, an anomaly open), `green` otherwise. `reasons` says why, one line each.
struct cluster_health {
  std::string status = "green";
  std::vector<std::string> reasons;
};
[[nodiscard]] cluster_health assess_health(const partition_map& m, std::size_t migrations_running,
                                           std::size_t anomalies_open);

/// What one map version changed from the one before, for the event journal: one line per
/// change ("node node-3: up -> down", "shard demo/4: owner node-1 -> node-2"), at most `max`
/// lines (then a last "... and N more"). `nodes` gets each node whose state changed or that
/// came or went, as (id, from, to) with "" for absent.
struct map_diff {
  std::vector<std::string> lines;
  std::vector<std::array<std::string, 3>> nodes;
};
[[nodiscard]] map_diff describe_change(const partition_map& before, const partition_map& after, std::size_t max = 50);

}  // namespace shardd

#pragma once
// The rebalancer's planner: one pure function from a snapshot of the cluster (map, per-shard
// load, migrations in flight, settings, now) to a plan of moves, with every node's score before
// and after and, for every rule that held a move back, which rule and why. No I/O, no clocks.
// The controller's rebalancer (src/node/controller_rebalance.cpp) only carries plans out.

#include "shardd/cluster_plan.hpp"
#include "shardd/json_fields.hpp"
#include "shardd/migration.hpp"
#include "shardd/partition_map.hpp"
#include "shardd/rebalance_settings.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace shardd {

/// A shard's measured size and load, as the monitor's load table has it.
struct shard_metrics {
  std::uint64_t bytes = 0;
  std::uint64_t records = 0;
  double reads_per_sec = 0;
  double writes_per_sec = 0;
  double bytes_per_sec_trend = 0;  ///< how fast its bytes grow (a fitted trend; 0: none known)
  double top_key_share = 0;  ///< the share of its sampled requests its hottest key had (0: unknown)
};

/// Key of a shard in `rebalance_input::metrics`.
constexpr std::uint64_t shard_key(std::uint32_t index_id, std::uint32_t shard_id) noexcept {
  return (std::uint64_t{index_id} << 32) | shard_id;
}

/// A node's data disk as its last heartbeat had it, and the level the controller found.
struct node_disk {
  std::uint64_t used = 0, total = 0;  ///< total 0: unknown
  disk_level level = disk_level::ok;
  double used_per_sec_trend = 0;  ///< how fast its use grows (a fitted trend; 0: none known)
};

/// The controller's memory of each shard's load across a change of owner. A shard that has
/// just moved is missing from the load table until its new owner's monitor has sampled it and
/// heartbeated, and then shows only the rates since the cutover (a fence and the clients'
/// retries in them); planned on that, the new owner looks idle and takes one hot shard after
/// another. So for `settle_ms` after the reporter of a shard changes, its rates are the larger
/// of the new report and the last one from before the change, and a shard no member reports
/// keeps its last known load for `keep_ms`.
class load_memory {
 public:
  static constexpr std::int64_t settle_ms = 10'000;
  static constexpr std::int64_t keep_ms = 30'000;

  /// `metrics` holds what the members reported, `reporter` who reported each key. Shards of
  /// `m` are filled in or raised as above; keys no longer in `m` are forgotten.
  void apply(const partition_map& m, std::unordered_map<std::uint64_t, shard_metrics>& metrics,
             const std::unordered_map<std::uint64_t, std::string>& reporter, std::int64_t now_ms);

  /// Shard `from` was just split, its upper half became `to`: for `settle_ms` each half counts
  /// half of what `from` last had (its owner's reports still cover the time before the split).
  void split(std::uint64_t from, std::uint64_t to, std::int64_t now_ms);

 private:
  struct entry {
    shard_metrics last;    ///< the newest report
    std::string reporter;  ///< who sent it
    std::int64_t seen_ms = 0;
    shard_metrics before;  ///< the last report of the previous reporter
    std::optional<std::int64_t> changed_ms;  ///< when the reporter last changed (or the shard split)
    bool halved = false;  ///< split: while settling, `before` replaces the reports
  };
  std::unordered_map<std::uint64_t, entry> entries_;
};

/// A shard the hot-split rule found hot (see hot_split_settings).
struct hot_shard {
  std::string index;
  std::uint32_t index_id = 0, shard = 0;
  std::string node;
  double rate = 0;       ///< its requests per second (reads + writes)
  double share = 0;      ///< of its node's requests per second
  double node_ratio = 0;  ///< its node's load over the node's share of the cluster's load
  double top_key_share = 0;
  std::uint64_t hot_for_ms = 0;  ///< how long it has been hot without a break
  friend bool operator==(const hot_shard&, const hot_shard&) = default;
};

/// Keeps, for each shard, since when it has been hot: the time part of the hot-split rule. A
/// shard that cools down, changes owner or range starts again; after a split both halves wait
/// `after_ms` before their clock starts.
class hot_tracker {
 public:
  /// The shards of `m` hot now under `s.hot`, by `metrics` (requests per second per shard),
  /// each with how long it has been so. Nothing when the rule is off.
  std::vector<hot_shard> observe(const partition_map& m, const std::unordered_map<std::uint64_t, shard_metrics>& metrics,
                                 const rebalance_settings& s, std::int64_t now_ms);
  /// Shard `from` was split into `from` and `to` at `now_ms`.
  void split(std::uint64_t from, std::uint64_t to, std::int64_t now_ms, std::uint64_t after_ms);

 private:
  struct entry {
    std::string node, start;
    std::optional<std::string> end;
    std::int64_t since_ms = 0;
  };
  std::unordered_map<std::uint64_t, entry> hot_;
  std::unordered_map<std::uint64_t, std::int64_t> quiet_until_;
};

/// Everything the planner reads. Pointers must outlive the call.
struct rebalance_input {
  const partition_map* map = nullptr;
  const migration_table* migrations = nullptr;
  std::unordered_map<std::uint64_t, shard_metrics> metrics;  ///< by shard_key; absent: unmeasured
  /// Up members whose load the controller has not heard yet: strategies other than `shards`
  /// do not plan without it (their shards would look empty).
  std::set<std::string, std::less<>> unreported;
  rebalance_settings settings;
  std::uint64_t now_ms = 0;  ///< wall clock, as migration records' times
  /// A rebalance begun earlier has not reached threshold / 2 yet: continue below the threshold.
  bool continuing = false;
  /// Bytes per second a move has reached lately (for the ETA when no cap is set); 0: unknown.
  std::uint64_t observed_bytes_per_sec = 0;
  std::size_t max_held = 50;  ///< at most this many held-back entries are listed
  /// Each node's disk (absent: unknown, ok). A node at low or above takes no shard; one at
  /// high or above sheds shards until its disk is predicted under high.
  std::map<std::string, node_disk, std::less<>> disks;
  /// Shards hot now (from a hot_tracker): those hot for `settings.hot.after_ms` are split.
  std::vector<hot_shard> hot;
};

struct rebalance_move {
  std::string index;
  std::uint32_t index_id = 0;
  std::uint32_t shard = 0;
  std::string source, target;
  std::string reason;  ///< drain, disk (a node above its high watermark sheds), balance or predictive
  std::string detail;  ///< why, in words
  migration_priority priority = migration_priority::low;
  std::uint64_t bytes = 0, records = 0;
  double score = 0;  ///< the shard's weight under the strategy
  friend bool operator==(const rebalance_move&, const rebalance_move&) = default;
};

struct node_score {
  std::string node;
  std::string state;
  std::uint32_t weight = 0;
  double share = 0;  ///< the score the node should hold: the total times its weight's share
  double before = 0, after = 0;  ///< its score (moves in flight counted as done), before and after the plan
  double ratio_before = 0, ratio_after = 0;  ///< score / share (1 = balanced; draining: share 0, ratio 0)
  std::uint32_t shards_before = 0, shards_after = 0;
  std::uint64_t bytes_before = 0, bytes_after = 0;
  std::string disk_level = "ok";  ///< ok, low, high or flood; "unknown" when no heartbeat said
  std::uint64_t disk_used = 0, disk_total = 0;
  friend bool operator==(const node_score&, const node_score&) = default;
};

/// A hot shard the plan splits in two (then balances as two shards, in a later plan).
struct rebalance_split {
  hot_shard shard;
  std::string detail;  ///< why, in words
  friend bool operator==(const rebalance_split&, const rebalance_split&) = default;
};

/// A move a rule held back (or a node a rule left alone): which rule and why.
struct held_move {
  /// in_flight, cooldown, budget, benefit, raises_max, source_down, no_destination, no_load_data,
  /// disk_low, present_balance, split_first (balance waits for a split), hot (a shard hot, not
  /// for long enough yet), hot_key (one key carries it), max_shards (its index has the most shards)
  std::string rule;
  std::string index;  ///< empty when the rule is about a node or the whole plan
  std::uint32_t shard = 0;
  std::string source, target;
  std::string why;
  friend bool operator==(const held_move&, const held_move&) = default;
};

struct rebalance_plan {
  std::uint64_t map_version = 0;
  rebalance_strategy strategy = rebalance_strategy::weighted;
  double threshold = 0;
  bool triggered = false;  ///< some node was beyond the threshold (or a drain, or continuing)
  bool converged = false;  ///< after the plan every node is within threshold / 2 and nothing drains
  /// Planned on the forecast (predictive mode): the present needed nothing, the cluster
  /// `horizon_ms` ahead does; scores and bytes are the forecast's.
  bool predictive = false;
  std::string summary;     ///< one line: why it plans what it plans
  std::vector<rebalance_move> moves;
  std::vector<rebalance_split> splits;  ///< hot shards split before any balance move
  std::vector<node_score> nodes;  ///< by node id
  double max_ratio_before = 0, max_ratio_after = 0;  ///< the largest score / share (the mean is 1)
  double min_ratio_before = 0, min_ratio_after = 0;
  /// Share of the cluster's score outside the band [1 - t/2, 1 + t/2] of the shares.
  double skew_before = 0, skew_after = 0;
  std::uint64_t bytes_to_move = 0, records_to_move = 0;
  std::optional<std::uint64_t> eta_ms;  ///< at the bandwidth cap (or the observed rate); none when unknown
  std::vector<held_move> held;
  friend bool operator==(const rebalance_plan&, const rebalance_plan&) = default;
};

/// Plans. Deterministic: the same input gives the same plan. Moves in flight (records that
/// hold their shard) count as done, so planning again right after starting a plan's moves
/// gives an empty plan. Rules, in order:
///  - a draining node's shards all move (reason drain, priority normal), to the up node of
///    weight > 0 whose score over share stays lowest, whatever the other rules say;
///  - no shard goes to a node whose disk is at its low watermark or above; a node at high or
///    above sheds its largest shards (reason disk, priority high) until its disk is predicted
///    under high, to nodes that stay under low, whatever cooldown and budget say;
///  - balancing starts when some node's ratio (score / share) is above 1 + threshold or below
///    1 - threshold (or `continuing`), and each move must bring the cluster's score outside
///    the band [1 - t/2, 1 + t/2] down (so the plan ends once all are inside it);
///  - a move never raises the largest ratio: the target after it stays below the source before;
///  - a shard moves at most once per plan, not within `cooldown_ms` of its last move, not
///    while a migration holds it, not from a node that is down;
///  - at most the moves and bytes left in the budget window (moves made by the rebalancer in
///    the last `window_ms`, from the records' reasons drain/balance);
///  - each move passes the net-benefit test.
/// Among the moves allowed, the planner takes the one with most skew removed per byte moved,
/// from the most loaded nodes to the least, until none is left.
/// Hot shards: each shard of `in.hot` hot for `hot.after_ms` is split unless its hottest key
/// carries half its requests (hot_key), its index has the most shards (max_shards) or a
/// migration holds it (in_flight); the others are listed as held (hot). A plan that splits
/// makes no balance move (split_first): the halves' load decides the next plan's moves; drains
/// and disk sheds still move.
/// Predictive mode: when the present plan has no move and nothing triggered it, the cluster is
/// planned again with every shard's bytes and every node's disk grown by its trend over
/// `horizon_ms` (watermark levels found again); that plan's moves are made now, each at low
/// priority with reason predictive, and the plan says `predictive`. Only as many balance moves
/// as keep the present untriggered (with them in flight) are kept, the rest held
/// (present_balance), so the next present plan does not undo them; disk sheds are all kept.
[[nodiscard]] rebalance_plan plan_rebalance(const rebalance_input& in);

/// A move as the queued migration record it becomes (reason, bytes, times), named `id`.
[[nodiscard]] migration_record queued_record(const rebalance_move& mv, std::string id, std::uint64_t now_ms);

/// JSON of a plan (without an id: the caller adds it).
boost::json::object to_json_object(const rebalance_plan& p);

/// A what-if for `POST /v1/simulate`: changes to a copy of the cluster, planned by the same
/// planner.
struct simulation {
  struct added_node {
    std::string id;
    std::uint32_t weight = 1;
    std::uint64_t disk_total = 0;  ///< 0: unknown (no watermark applies)
  };
  struct load_change {
    std::string index;
    std::optional<std::uint32_t> shard;  ///< none: every shard of the index
    double factor = 1;                   ///< multiplies reads and writes per second
    std::optional<double> reads_per_sec, writes_per_sec;  ///< or sets them
    std::optional<std::uint64_t> bytes;                   ///< sets the shard's bytes
  };
  std::vector<added_node> add;
  std::vector<std::string> remove;  ///< decommissioned: every shard drains
  std::vector<std::string> fail;    ///< down: their shards stay where they are, unavailable
  std::map<std::string, std::uint32_t, std::less<>> weights;
  std::vector<load_change> load;
  std::optional<rebalance_settings> settings;  ///< the settings to plan with (default: the cluster's)
};

/// Reads a what-if (fields: add, remove, fail, weights, load, settings; `settings` is read onto
/// `current`). Unknown fields, wrong types and values out of range are errors naming the field.
[[nodiscard]] result<simulation> read_simulation(const boost::json::object& o, const rebalance_settings& current);

/// Applies `s` to `map` (a copy the caller owns; `in.map` must point to it) and to `in`'s
/// metrics, settings and disks. Errors name what does not exist or cannot change (an unknown
/// node or index, a node added twice).
[[nodiscard]] result<void> apply_simulation(const simulation& s, partition_map& map, rebalance_input& in);

}  // namespace shardd

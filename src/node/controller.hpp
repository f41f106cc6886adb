#pragma once
// The controller: membership, liveness and every change of the partition map.

#include "node/actor.hpp"
#include "node/control_plane.hpp"
#include "node/controller_meta.hpp"
#include "node/controller_slot.hpp"
#include "node/event_journal.hpp"
#include "shardd/cluster_plan.hpp"
#include "shardd/forecast.hpp"
#include "shardd/migration.hpp"
#include "shardd/peer_messages.hpp"
#include "shardd/rebalance.hpp"
#include "storage/store.hpp"

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <map>
#include <set>
#include <unordered_map>
#include <variant>

namespace shardd {

/// What the controller knows of a member beyond the map: its lease and last reported totals.
struct member_status {
  std::string node_id;
  std::optional<std::chrono::milliseconds> since_heartbeat;  ///< nullopt: none since the controller started
  std::uint32_t shards = 0;
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  /// The load of each shard the member owns, as its last heartbeat carried it (only shards
  /// the map gives it); `load_age` since then. The rebalancer reads this table.
  std::vector<peer::shard_load> load;
  std::optional<std::chrono::milliseconds> load_age;
  std::uint32_t anomalies_open = 0;  ///< on the member, as its last heartbeat said
  std::uint64_t disk_used = 0, disk_total = 0;  ///< its data disk (total 0: not reported)
  disk_level disk = disk_level::ok;             ///< against the map's disk watermarks
};

struct join_msg {
  peer::join_request request;
  reply_to<map_result> reply;
};
struct heartbeat_msg {
  peer::heartbeat beat;
  reply_to<map_result> reply;
};
struct create_index_msg {
  std::string name;
  index_spec spec;
  reply_to<map_result> reply;
};
struct drop_index_msg {
  std::string name;
  reply_to<map_result> reply;
};
struct set_weight_msg {
  std::string node;
  std::uint32_t weight;
  reply_to<map_result> reply;
};
struct members_msg {
  reply_to<result<std::vector<member_status>>> reply;
};
struct tick_msg {};
/// A page of the event journal.
struct events_page {
  std::vector<event> events;
  std::uint64_t first_id = 0;  ///< the oldest kept
  std::uint64_t last_id = 0;   ///< the newest recorded
};
struct events_msg {
  std::uint64_t since = 0;
  std::vector<std::string> types;
  std::size_t limit = 100;
  reply_to<result<events_page>> reply;
};

using migration_result = result<migration_record>;
using migrations_result = result<std::vector<migration_record>>;

struct migrate_msg {
  migrate_request request;
  reply_to<migration_result> reply;
};
struct migrations_msg {
  std::optional<std::string> id;
  reply_to<migrations_result> reply;
};
struct migration_control_msg {
  std::string id;
  std::string command;  ///< pause, resume, cancel
  reply_to<migration_result> reply;
};
struct migration_report_msg {
  migration_record report;
  std::string from;  ///< the sender (its certificate's CN): must be the record's source
  reply_to<migration_result> reply;
};
struct migration_commit_msg {
  std::string id;
  std::string from;  ///< the sender: must be the record's source
  reply_to<result<bool>> reply;
};
struct split_msg {
  std::string index;
  std::uint32_t shard = 0;
  reply_to<map_result> reply;
};
struct decommission_msg {
  std::string node;
  reply_to<migrations_result> reply;
};
/// What `DELETE /v1/cluster/nodes/{id}` did.
struct node_removed {
  std::string was;  ///< the node's state before: left or down
  std::vector<recreated_shard> recreated;
  std::uint64_t map_version = 0;
};
struct remove_node_msg {
  std::string node;
  bool force = false;
  reply_to<result<node_removed>> reply;
};
struct settings_msg {
  cluster_settings settings;
  reply_to<map_result> reply;
};
// Results of network calls the controller spawned: they come back through the mailbox, so no
// message ever waits behind a peer that is slow to answer.
struct start_done_msg {  ///< the source's answer to migrate_start
  std::string id;
  result<bool> outcome;
};
struct control_done_msg {  ///< the source's answer to migrate_control
  std::string id;
  std::string command;
  result<bool> outcome;
  reply_to<migration_result> reply;
};
struct median_done_msg {  ///< the owner's median key of a range shard to split
  std::string index;
  std::uint32_t index_id = 0;
  std::uint32_t shard = 0;
  result<std::string> median;
  reply_to<map_result> reply;
  std::string why;  ///< the journal's reason (empty: the API asked)
};
/// A rebalance plan the controller made, by id.
struct rebalance_run {
  std::string id;  ///< "p" and a number
  std::int64_t created_ms = 0;
  rebalance_plan plan;
};
struct rebalance_plan_msg {
  bool keep = true;  ///< keep it as the plan `apply` takes and record it in the journal (false: explain)
  std::optional<simulation> what_if;  ///< plan a changed copy of the cluster instead (never kept)
  reply_to<result<rebalance_run>> reply;
};
/// What applying a plan did: `stale` when the map is no longer the plan's (412).
struct rebalance_applied {
  bool stale = false;
  std::uint64_t map_version = 0;
  std::vector<migration_record> started;
  std::vector<std::string> skipped;  ///< moves refused meanwhile, with why
  std::vector<std::string> split;    ///< hot shards split (range shards: asked of their owner), "index/shard"
};
struct rebalance_apply_msg {
  std::string id;
  std::optional<std::uint64_t> if_match;
  reply_to<result<rebalance_applied>> reply;
};
using controller_message =
    std::variant<std::monostate, join_msg, heartbeat_msg, create_index_msg, drop_index_msg, set_weight_msg, members_msg,
                 tick_msg, migrate_msg, migrations_msg, migration_control_msg, migration_report_msg, migration_commit_msg,
                 split_msg, decommission_msg, settings_msg, start_done_msg, control_done_msg, median_done_msg, events_msg,
                 rebalance_plan_msg, rebalance_apply_msg, remove_node_msg>;

class peers;

/// Runs on the controller node only. Every change follows one pattern: load the current map
/// from the control plane, compute the next version with the pure core, compare-and-set it
/// (which persists and pushes it). Messages are handled one at a time, so changes never
/// race.
///
/// Liveness: every heartbeat interval a tick marks `down` each member whose last heartbeat
/// is older than heartbeat_miss_limit intervals; a heartbeat from a `down` member marks it
/// `up`. At start every member gets a fresh lease (a controller restart does not mark the
/// cluster down).
///
/// Migrations: the controller keeps every migration's record (meta `migration/rec/<id>`),
/// starts queued ones in priority order within each node's limits (settings max_outgoing,
/// max_incoming) by marking the shard `migrating` and telling the source, applies the
/// source's progress reports, commits the new owner when the source asks, and aborts the move
/// in the map when a migration ends otherwise. Decommission and the rebalancer queue
/// migrations planned by the core's planner (plan_rebalance). Finished records are deleted after
/// `migration.keep_finished_ms`, or beyond the newest `migration.keep_finished`.
///
/// Thin by design: every decision (which migrations start, rebalance and drain plans,
/// liveness, pruning, whether a move is allowed) is a pure function of
/// `shardd/cluster_plan.hpp` and `shardd/rebalance.hpp`; the handlers load the map, call the core and carry out the
/// result. Calls to other nodes (migrate_start, migrate_control, a range shard's median) are
/// spawned off the mailbox loop and their results come back as messages, so heartbeats and
/// ticks never wait behind a slow peer. The map writes themselves go through the control
/// plane's compare-and-set (the embedded plane pushes to the members that are up, a second at
/// most, all at once).
///
/// Strand: its own. Owned by the node.
class controller final : public actor<controller_message> {
 public:
  /// `meta` keeps migration records, the journal and plan numbers (null: `store`'s meta column
  /// family); `p` reaches the sources (store and p may be null in tests without a cluster:
  /// migrations are then refused).
  controller(asio::any_io_executor ex, const node_config& cfg, control_plane& plane, storage::store* store = nullptr,
             peers* p = nullptr, controller_meta* meta = nullptr);

  /// Starts the actor and its liveness ticks.
  void begin();
  void end();

  asio::awaitable<map_result> join(peer::join_request r);
  asio::awaitable<map_result> heartbeat(peer::heartbeat b);
  asio::awaitable<map_result> create_index(std::string name, index_spec spec);
  asio::awaitable<map_result> drop_index(std::string name);
  asio::awaitable<map_result> set_weight(std::string node, std::uint32_t weight);
  asio::awaitable<result<std::vector<member_status>>> members();
  /// Events after `since`, of `types` (empty: all), at most `limit`, oldest first.
  asio::awaitable<result<events_page>> events(std::uint64_t since, std::vector<std::string> types, std::size_t limit);
  /// Where the controller's own node's load comes from (its monitor); it sends no heartbeat.
  void set_local_load(control_plane::load_source f) { local_load_ = std::move(f); }
  /// The controller node's own data disk (members report theirs with heartbeats).
  void set_local_disk(const disk_guard* d) { local_disk_ = d; }
  /// Where the controller's own node's journal events come from (it sends no heartbeat).
  void set_local_events(control_plane::event_source s) { local_events_ = std::move(s); }

  asio::awaitable<migration_result> migrate(migrate_request r);
  asio::awaitable<migrations_result> migrations(std::optional<std::string> id);
  asio::awaitable<migration_result> control_migration(std::string id, std::string command);
  /// A source's progress report; `from` is the sender, which must be the record's source.
  asio::awaitable<migration_result> report(migration_record r, std::string from);
  /// A source's request to commit: only its source, and only while the record is in
  /// `cutover` (a record that is `retiring` already answers as committed).
  asio::awaitable<result<bool>> commit(std::string id, std::string from);
  asio::awaitable<map_result> split(std::string index, std::uint32_t shard);
  asio::awaitable<migrations_result> decommission(std::string node);
  /// Takes a node that left (or is down: `force` for one that owns shards) out of the map.
  asio::awaitable<result<node_removed>> remove_node(std::string node, bool force);
  asio::awaitable<map_result> set_settings(cluster_settings s);
  /// A rebalance plan of the current map (`keep`: the plan apply takes, journaled).
  asio::awaitable<result<rebalance_run>> rebalance_plan(bool keep);
  /// The plan of a copy of the cluster changed by `what_if` (POST /v1/simulate): not kept.
  asio::awaitable<result<rebalance_run>> simulate(simulation what_if);
  /// Queues the moves of plan `id` if the map is still the one it was made for (and
  /// `if_match`, when given, names that version).
  asio::awaitable<result<rebalance_applied>> rebalance_apply(std::string id, std::optional<std::uint64_t> if_match);

 private:
  asio::awaitable<void> handle(controller_message m) override;
  asio::awaitable<void> tick_loop();

  // One handler per message; `on(std::monostate)` ignores the empty message a closed
  // mailbox delivers.
  asio::awaitable<void> on(std::monostate&) { co_return; }
  asio::awaitable<void> on(join_msg& m);
  asio::awaitable<void> on(heartbeat_msg& m);
  asio::awaitable<void> on(create_index_msg& m);
  asio::awaitable<void> on(drop_index_msg& m);
  asio::awaitable<void> on(set_weight_msg& m);
  asio::awaitable<void> on(members_msg& m);
  asio::awaitable<void> on(events_msg& m);
  asio::awaitable<void> on(tick_msg& m);
  asio::awaitable<void> on(migrate_msg& m);
  asio::awaitable<void> on(migrations_msg& m);
  asio::awaitable<void> on(migration_control_msg& m);
  asio::awaitable<void> on(migration_report_msg& m);
  /// Sends migrate_start for a record the map shows begun; the answer comes back as start_done.
  void send_start(const migration_record& r, std::uint64_t version);
  /// After a (re)start: puts right what a death between a map change and a record write left
  /// (plan_reconcile): starts sent again, orphaned moves aborted.
  asio::awaitable<void> reconcile();
  asio::awaitable<void> on(migration_commit_msg& m);
  asio::awaitable<void> on(split_msg& m);
  asio::awaitable<void> on(decommission_msg& m);
  asio::awaitable<void> on(remove_node_msg& m);
  asio::awaitable<void> on(settings_msg& m);
  asio::awaitable<void> on(start_done_msg& m);
  asio::awaitable<void> on(control_done_msg& m);
  asio::awaitable<void> on(median_done_msg& m);
  /// Splits a hash shard at its middle token in a new map version (journaled with `why`).
  asio::awaitable<map_result> split_hash(std::string index, std::uint32_t index_id, std::uint32_t shard, std::string why);
  /// Asks `owner` for the median key of a range shard (off the loop); the split follows as
  /// median_done_msg, journaled with `why` (empty: the API asked).
  void split_at_median(std::string owner, std::string index, std::uint32_t index_id, std::uint32_t shard,
                       reply_to<map_result> reply, std::string why);
  asio::awaitable<void> on(rebalance_plan_msg& m);
  asio::awaitable<void> on(rebalance_apply_msg& m);
  /// The planner's input from the map (which must outlive it), the members' load and disks,
  /// and the migration records; and the plan of it.
  rebalance_input make_input(const partition_map& m);
  rebalance_run make_plan(const partition_map& m);
  asio::awaitable<rebalance_applied> apply_plan(const rebalance_run& run);
  /// Plan ids ("p" and a number) go on across restarts: the next number is kept in the store.
  asio::awaitable<void> load_plan_number();
  /// Writes to the controller's metadata (logs `what` when it fails).
  asio::awaitable<bool> write_meta(std::vector<storage::write_op> ops, const char* what);
  asio::awaitable<std::string> new_plan_id();
  /// In auto mode, every rebalance.interval_ms: plan and queue the moves.
  asio::awaitable<void> rebalance_tick();

  /// Load the map, compute the next one with `f` (pure), compare-and-set it.
  /// `why` goes to the event journal with what the new version changed.
  asio::awaitable<map_result> change(std::string why, const std::function<result<partition_map>(const cluster_snapshot&)>& f);
  asio::awaitable<void> record(event e);
  /// Records a member's events it has not recorded yet (by seq, per incarnation).
  asio::awaitable<void> journal_member_events(const std::string& node, std::uint64_t incarnation,
                                              const std::vector<peer::member_event>& events);
  asio::awaitable<void> journal_map(std::shared_ptr<const partition_map> before, std::shared_ptr<const partition_map> after,
                                    std::string why);
  /// Runs `call` (a network call) apart from the mailbox loop; `done(result)` becomes the
  /// message sent back when it completes.
  template <class Call, class Done>
  void spawn_call(Call call, Done done);

  /// The record of migration `id`, or null after answering `reply` with not_found.
  template <class T>
  migration_record* record_or_reply(const std::string& id, reply_to<T>& reply);

  asio::awaitable<void> load_migrations();
  asio::awaitable<void> save(const migration_record& r);
  asio::awaitable<void> forget(const std::vector<std::string>& ids);
  asio::awaitable<migration_result> create(migrate_request r, std::string reason, std::string plan = {});
  asio::awaitable<void> schedule();
  asio::awaitable<void> watch_ring();
  /// Each member's data disk (the controller's own from its guard) with its level under `w`.
  std::map<std::string, node_disk, std::less<>> disks(const disk_watermarks& w);
  /// Journals a node's disk level change (members' from heartbeats, the controller's own from
  /// its guard at each tick); at high or above the rebalancer plans at the next tick.
  asio::awaitable<void> disk_level_changed(const std::string& node, disk_level was, disk_level now, std::uint64_t used,
                                           std::uint64_t total);
  disk_level own_disk_ = disk_level::ok;  ///< the controller's own level, as last journaled
  asio::awaitable<void> finish_decommissions();
  asio::awaitable<void> abort_in_map(const migration_record& r);
  asio::awaitable<void> after_phase_change();

  const node_config& cfg_;
  control_plane& plane_;
  struct lease {
    std::chrono::steady_clock::time_point last_seen;
    bool heard = false;  // a heartbeat arrived since the controller started
    std::uint32_t shards = 0;
    std::uint64_t records = 0, bytes = 0;
    std::vector<peer::shard_load> load;
    std::optional<std::chrono::steady_clock::time_point> load_at;
    std::uint32_t anomalies_open = 0;
    std::uint64_t disk_used = 0, disk_total = 0;  ///< from the last heartbeat (total 0: none)
    disk_level disk = disk_level::ok;             ///< under the map's watermarks, flood held until under high
  };
  std::map<std::string, lease, std::less<>> leases_;
  /// When the last tick ended: a longer gap to the next one is time the controller did not
  /// take heartbeats (it waited on its control plane), and no member is blamed for it.
  std::optional<std::chrono::steady_clock::time_point> last_tick_end_;
  control_plane::load_source local_load_;
  const disk_guard* local_disk_ = nullptr;
  control_plane::event_source local_events_;  ///< the controller's own monitor's events
  struct event_seq {
    std::uint64_t incarnation = 0;  ///< of the node's events
    std::uint64_t last = 0;         ///< the last of them recorded
  };
  std::map<std::string, event_seq, std::less<>> event_seqs_;  ///< per node
  event_journal journal_;
  std::map<std::string, migration_phase> journaled_phase_;  ///< each migration's phase the journal last recorded
  std::shared_ptr<asio::steady_timer> ticker_;
  std::atomic<bool> stopping_{false};
  storage::store* store_;
  peers* peers_;
  std::unique_ptr<controller_meta> own_meta_;  ///< the store's, when none was given
  controller_meta* meta_ = nullptr;            ///< null: nothing is kept
  migration_table migrations_;
  std::set<std::string> starting_;  ///< begun in the map, migrate_start not answered yet
  /// Test fault kill_after_begin (node/faults.hpp): SIGKILL right after a move is begun in the map.
  bool faults_kill_after_begin_ = false;
  std::string faults_kill_in_phase_;  ///< kill_in_phase: SIGKILL as a report records this phase
  std::uint64_t next_migration_ = 1;
  bool migrations_loaded_ = false;
  // The placement ring's members when the rebalancer last looked: a change (a join, a node
  // back up, a weight) makes auto mode plan at the next tick.
  std::optional<std::vector<ring::member>> planned_for_;
  // Rebalancer: the last plan kept (what apply takes), whether a rebalance is under way (it
  // goes on below the threshold until within threshold / 2), and when auto mode last planned.
  std::optional<rebalance_run> last_plan_;
  std::uint64_t next_plan_ = 1;
  bool rebalance_continuing_ = false;
  std::chrono::steady_clock::time_point last_rebalance_{};
  /// Predictive mode's trends: each shard's bytes and each node's disk use, one point a
  /// second at most, the last `growth_points` of them (steady clock, seconds).
  void track_growth(rebalance_input& in);
  load_memory load_memory_;  ///< shards' load across a change of owner
  hot_tracker hot_tracker_;  ///< since when each shard has been hot
  /// After shard `shard` of index `index_id` split (its upper half is `new_id`): the halves
  /// share its remembered load, and their hot clocks wait.
  void after_split(std::uint32_t index_id, std::uint32_t shard, std::uint32_t new_id, std::uint64_t hot_after_ms);
  /// Splits the plan's hot shards (range shards at their owner's median: asked off the loop);
  /// returns "index/shard" of each split made or asked for, and adds refusals to `skipped`.
  asio::awaitable<std::vector<std::string>> split_hot(const rebalance_run& run, std::vector<std::string>& skipped);
  std::unordered_map<std::uint64_t, std::deque<trend_point>> shard_growth_;
  std::map<std::string, std::deque<trend_point>, std::less<>> disk_growth_;
  std::chrono::steady_clock::time_point growth_at_{};
};

}  // namespace shardd

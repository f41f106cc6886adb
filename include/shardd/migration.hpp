#pragma once
// Live shard migration: the record the controller keeps, and the sans-I/O state machine the
// source node runs (DESIGN §8). Pure: events in, actions out; no I/O, no clocks.

#include "shardd/error.hpp"
#include "shardd/throttle.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shardd {

enum class migration_phase : std::uint8_t {
  queued,       ///< accepted, waiting for a slot (priority order)
  copying,      ///< streaming a snapshot of the shard's range to the target
  catching_up,  ///< shipping writes made since the snapshot
  verifying,    ///< comparing digests of the range on both sides
  cutover,      ///< writes fenced; last tail shipped; the controller commits the new owner
  retiring,     ///< committed; the source keeps its copy for the undo window
  done,
  failed,       ///< could not finish nor roll back cleanly; see error
  cancelled,    ///< stopped by an operator; rolled back
  rolled_back,  ///< stopped by a failure; the shard stayed where it was; see error
};
std::string_view to_string(migration_phase p) noexcept;
std::optional<migration_phase> parse_phase(std::string_view s) noexcept;
/// done, failed, cancelled or rolled_back.
bool is_final(migration_phase p) noexcept;
/// Before the cutover commit: a failure here rolls back.
bool before_commit(migration_phase p) noexcept;

/// What the controller records of a migration, and what the API shows.
struct migration_record {
  std::string id;
  std::string index;
  std::uint32_t index_id = 0;
  std::uint32_t shard = 0;
  std::string source;
  std::string target;
  migration_priority priority = migration_priority::normal;
  std::uint64_t max_bytes_per_sec = 0;  ///< 0: only the node cap applies
  migration_phase phase = migration_phase::queued;
  bool paused = false;
  std::uint64_t bytes_done = 0, records_done = 0;
  std::uint64_t bytes_total = 0, records_total = 0;  ///< estimates from the shard's stats at start
  std::uint64_t rate_bytes_per_sec = 0;
  std::string rate_limited_by = "none";  ///< the limit holding it back: none, move_cap, node_cap, adaptive
  std::uint64_t fence_ms = 0;       ///< how long writes were fenced at cutover
  std::uint32_t recopies = 0;       ///< copies restarted after a digest mismatch
  std::uint32_t resumes = 0;        ///< restarts continued from the persisted cursor
  std::string reason;               ///< why it was made: "api", "decommission", "convergence", "balance", "drain"
  std::string plan;                 ///< the rebalance plan that made it ("p3"), if one did
  std::string error;                ///< why it stopped, for failed / rolled_back / cancelled
  std::uint64_t created_ms = 0, updated_ms = 0;  ///< wall clock, for display

  friend bool operator==(const migration_record&, const migration_record&) = default;
};
std::string to_json(const migration_record& m);

/// How far a migration got, from 0 to 1: bytes done over bytes total, and 1 once the data
/// is across (verifying, cutover, retiring, done), also for an empty shard. A migration that
/// stopped (failed, cancelled, rolled back) shows how far it got.
[[nodiscard]] double migration_progress(const migration_record& m) noexcept;
[[nodiscard]] result<migration_record> migration_from_json(std::string_view text);

/// The source's state machine. Each event returns the actions to carry out, in order. The
/// state it keeps (phase, cursors, counters) is what the source persists, so a restarted
/// source rebuilds the machine and continues with `recovered`.
class migration_fsm {
 public:
  struct limits {
    std::uint32_t max_recopies = 3;      ///< digest mismatches before giving up
    std::uint32_t max_peer_failures = 8; ///< lost connections / timeouts in a row before giving up
    std::uint64_t small_tail_ops = 2000; ///< a catch-up round this small leads to verification
    std::uint32_t max_catchup_rounds = 50;
  };

  enum class event_kind : std::uint8_t {
    start,            ///< a slot is free: begin
    batch_acked,      ///< the target applied a batch (copy or tail)
    copy_finished,    ///< the snapshot is exhausted
    tail_round,       ///< a catch-up round ended; `ops` writes were shipped
    verified,         ///< digests compared; `match`
    fence_ready,      ///< writes fenced and the last tail shipped
    committed,        ///< the controller made the target the owner
    commit_refused,   ///< the controller refused (for example: cancelled meanwhile)
    retired,          ///< the undo window passed and the source range was deleted
    peer_failed,      ///< the target or controller could not be reached, or timed out
    checksum_failed,  ///< the target refused a batch whose checksum did not match
    cancel,
    pause,
    resume,
    recovered,        ///< the source restarted and loaded this state
  };
  struct event {
    event_kind kind = event_kind::start;
    std::uint64_t bytes = 0, records = 0, ops = 0;
    std::string cursor;  ///< batch_acked: last key applied
    std::uint64_t seq = 0;  ///< batch_acked of a tail: last WAL sequence applied
    bool match = false;
    std::string reason;
  };

  enum class action_kind : std::uint8_t {
    copy_from_cursor,  ///< (re)open a snapshot and stream the range after `cursor`
    copy_from_start,   ///< drop what the target imported and copy everything again
    send_next,         ///< keep streaming (after an ack)
    tail,              ///< ship WAL entries after `seq`
    verify,            ///< compute both digests at a common sequence
    fence,             ///< fence writes, ship the last tail
    commit,            ///< ask the controller to commit the new owner
    unfence,           ///< release the fence without a move
    rollback,          ///< abort in the map; the target drops its import
    retire,            ///< wait out the undo window, then delete the source's range
    stop_sending,      ///< paused
    persist,           ///< save the state (phase change or progress checkpoint)
  };
  struct action {
    action(action_kind k, std::string c = {}, std::uint64_t s = 0) : kind(k), cursor(std::move(c)), seq(s) {}
    action_kind kind;
    std::string cursor;
    std::uint64_t seq = 0;
    friend bool operator==(const action&, const action&) = default;
  };

  struct state {
    migration_phase phase = migration_phase::queued;
    bool paused = false;
    std::string cursor;           ///< last key the target acknowledged in the copy
    std::uint64_t snapshot_seq = 0;  ///< sequence of the copy's snapshot: the tail starts after it
    std::uint64_t tail_seq = 0;   ///< last WAL sequence the target acknowledged
    std::uint64_t bytes_done = 0, records_done = 0;
    std::uint32_t recopies = 0, resumes = 0, peer_failures = 0, catchup_rounds = 0;
    std::string error;
    friend bool operator==(const state&, const state&) = default;
  };

  migration_fsm() = default;
  migration_fsm(state s, limits l) : s_(std::move(s)), limits_(l) {}

  [[nodiscard]] std::vector<action> on(const event& e);
  const state& current() const noexcept { return s_; }
  /// Called once the copy's snapshot is opened (its sequence starts the tail).
  void set_snapshot_seq(std::uint64_t seq) noexcept { s_.snapshot_seq = s_.tail_seq = seq; }

 private:
  std::vector<action> fail(migration_phase to, std::string why);
  std::vector<action> retry_or_fail(const std::string& why);
  state s_;
  limits limits_;
};

std::string_view to_string(migration_fsm::event_kind k) noexcept;
std::string_view to_string(migration_fsm::action_kind k) noexcept;

/// The fsm state as JSON (what the source persists) and back.
std::string to_json(const migration_fsm::state& s);
[[nodiscard]] result<migration_fsm::state> fsm_state_from_json(std::string_view text);

/// What a migration's source persists (meta `migration/out/<id>`): its record and its state
/// machine, as `{"record":{...},"fsm":{...}}`.
struct outgoing_state {
  migration_record record;
  migration_fsm::state fsm;
  friend bool operator==(const outgoing_state&, const outgoing_state&) = default;
};
std::string to_json(const outgoing_state& s);
/// Never throws: text that is not such an object is an error naming what is wrong.
[[nodiscard]] result<outgoing_state> outgoing_state_from_json(std::string_view text);

}  // namespace shardd

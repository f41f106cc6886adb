#pragma once
// The migrator: moves shards this node owns to other nodes, and takes in shards moving here.

#include "common/config.hpp"
#include "node/peers.hpp"
#include "node/ring_actor.hpp"
#include "shardd/buffer_pool.hpp"
#include "shardd/cluster_plan.hpp"
#include "shardd/migration.hpp"
#include "shardd/peer_messages.hpp"
#include "shardd/throttle.hpp"
#include "storage/store.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <functional>

#include <map>
#include <memory>
#include <utility>

namespace shardd {

/// The faults a test can inject into migrations (see node/faults.hpp): `corrupt_batch` and
/// `digest_mismatch`. Empty in production.
struct migration_faults {
  std::uint32_t corrupt_batch = 0;
  std::uint32_t digest_mismatch = 0;
  std::uint32_t lose_commit_answer = 0;  ///< the first N commit answers are dropped, as if lost on the way
  std::uint32_t kill_after_commit = 0;   ///< SIGKILL itself right after the N-th commit is answered
  std::string kill_in_phase;             ///< SIGKILL itself when a move reaches this phase
  std::uint32_t partition_after_commit = 0;  ///< ms without peer traffic to the controller once the commit and its answer have passed
  std::uint32_t fail_copy_build = 0;  ///< the target's N-th copy batch file fails (a full disk) after it was written
  static migration_faults from_env();
};

/// Source side: each outgoing migration runs `migration_fsm` on its own strand — snapshot copy
/// in checksummed batches, catch-up from the write-ahead log, digest verification, a fenced
/// cutover, retirement after the undo window — persisting the machine's state at every
/// checkpoint (meta key `migration/out/<id>`), so a restarted node resumes each migration and
/// says so. Progress goes to the controller at most twice a second and on every phase change;
/// the controller's answer can cancel. Sends are throttled by the node's cap (shared between
/// priorities by weight) and the migration's own cap.
///
/// Target side: one `import` actor per shard moving here, created when the map says the shard
/// moves here from the sender and dropped when the map no longer does. It applies data batches
/// (only keys of its shard), answers digests and drops the range for a copy that starts again,
/// one request at a time, so a reset never races a batch of the copy it replaces. What the
/// target holds of a shard it imports is created and removed by the map (see ring_actor).
///
/// Threads: the migrator is a parent actor whose table of outgoing migrations, bandwidth
/// shares, node cap and imports live on its strand (`strand_`); callers reach them through
/// `run_on(strand_, ...)` or a post. Each outgoing migration's state is touched on its own
/// strand only (its drive coroutine, bound to a cancellation slot that `stop()` fires); each
/// import's on its own. No locks. Owned by the node.
class migrator {
 public:
  migrator(boost::asio::any_io_executor ex, const node_config& cfg, storage::store& store, ring_actor& ring, peers& p,
           boost::asio::thread_pool& pool, boost::asio::thread_pool& high_pool);
  ~migrator();

  /// Loads the persisted outgoing migrations and fences the range of each that was cutting
  /// over or had committed (its new owner may be missing from the stored map). Call before
  /// the node serves anything.
  boost::asio::awaitable<void> prepare();
  /// Resumes what prepare() loaded: if a range is fenced, first fetches the controller's map
  /// (as long as it takes), lifts the fences, then decides each migration from that map.
  void recover();
  /// Stops every outgoing migration: no new step starts, and each drive is cancelled (the
  /// sleep, timer or peer call it waits on ends at once). Waits at most `limit` for them to
  /// end; their persisted state resumes them after a restart. Imports stop taking requests.
  boost::asio::awaitable<void> stop(std::chrono::milliseconds limit);

  /// The foreground's latency, read once per monitor sample by the adaptive throttle
  /// (`migration_adaptive`): {samples taken, p99 in µs or 0}. Set once, before start; starts the
  /// throttle's loop.
  using foreground_fn = std::function<std::pair<std::uint64_t, std::uint64_t>()>;
  void set_foreground(foreground_fn fn);

  // Controller → source.
  boost::asio::awaitable<result<void>> start(migration_record rec);
  boost::asio::awaitable<result<void>> control(std::string id, std::string command);

  // Source → target; `from` is the sender's node id (its certificate's CN).
  /// Applies a data_batch payload (decoded in place; the payload is kept for the ingest).
  /// `high_priority`: the frame came flagged so (a move of priority high); its work takes the
  /// high-priority pool. `unchecked_crc`: the frame's checksum, which the network thread left
  /// for the pool to check (a large batch); a mismatch is `corrupt` and nothing is applied.
  /// `compressed`: the payload is the batch compressed (flag_compressed), expanded on the pool
  /// (after the checksum) to at most the largest frame's size.
  boost::asio::awaitable<result<void>> apply_batch(std::string from, std::string payload, bool high_priority,
                                                   std::optional<std::uint32_t> unchecked_crc = std::nullopt,
                                                   bool compressed = false);
  boost::asio::awaitable<result<peer::digest_reply>> digest(std::string from, peer::import_range r);
  boost::asio::awaitable<result<void>> reset(std::string from, peer::import_range r);

  /// A copy batch decoded, checked against its grant and written to its SST file, waiting for
  /// its turn to be ingested (migrator_target.cpp).
  struct built_copy;

 private:
  struct outgoing;
  class import;
  friend class import;
  boost::asio::awaitable<void> recover_all();
  boost::asio::awaitable<void> drive(std::shared_ptr<outgoing> m, std::vector<migration_fsm::action> actions);
  boost::asio::awaitable<result<void>> persist(outgoing& m);
  boost::asio::awaitable<void> report(outgoing& m, bool force);
  /// `checksum`: the batch's CRC32C when the caller computed it (see peer::frame::checksum).
  /// `compressed`: the payload is the batch compressed (peer::compress_batch).
  boost::asio::awaitable<result<peer::frame>> send_batch(outgoing& m, std::string payload, std::uint64_t bytes,
                                                         std::optional<std::uint32_t> checksum = std::nullopt,
                                                         bool compressed = false);
  boost::asio::awaitable<void> throttle(outgoing& m, std::uint64_t bytes);
  /// The adaptive throttle's loop (on strand_): one step of `adaptive_` per monitor sample
  /// while moves are sending, and the node-wide bucket set to its limit.
  boost::asio::awaitable<void> adapt_loop();
  /// Bytes per copy batch: large when uncapped, an eighth of a second of the cap otherwise.
  boost::asio::awaitable<std::size_t> copy_batch_bytes(const outgoing& m);
  boost::asio::awaitable<migration_fsm::event> copy_step(outgoing& m);
  boost::asio::awaitable<migration_fsm::event> tail_round(outgoing& m);
  boost::asio::awaitable<result<std::uint64_t>> ship_tail(outgoing& m, std::uint64_t until);
  boost::asio::awaitable<migration_fsm::event> verify(outgoing& m);
  boost::asio::awaitable<migration_fsm::event> fence(outgoing& m);
  boost::asio::awaitable<migration_fsm::event> commit(outgoing& m);
  /// After the controller committed: waits for the map that shows the new owner, then lifts
  /// the fence.
  boost::asio::awaitable<migration_fsm::event> committed(outgoing& m);
  enum class outcome { committed, not_committed, stopping };
  /// Asks the controller (through a report) whether the move committed, until it answers.
  boost::asio::awaitable<outcome> ask_outcome(outgoing& m);
  /// Waits until this node's map no longer has it own the shard, fetching the map from the
  /// controller when the push is late. False if the node stops first.
  boost::asio::awaitable<bool> await_new_owner(outgoing& m);
  boost::asio::awaitable<migration_fsm::event> retire(outgoing& m);
  boost::asio::awaitable<result<void>> layout(storage::layout_change change);
  /// On strand_: checks a start and launches it.
  result<void> begin(migration_record rec);
  /// On strand_: enters m in the table and starts its drive on m's strand.
  void launch(std::shared_ptr<outgoing> m, std::vector<migration_fsm::action> actions);
  /// On m's strand: runs drive() with m's cancellation slot bound, counting it in drives_.
  void spawn_drive(std::shared_ptr<outgoing> m, std::vector<migration_fsm::action> actions);
  /// Takes a finished migration out of the table (posts to strand_).
  void finish(const std::string& id);

  // Target side (migrator_target.cpp).
  /// The import actor for a shard the map moves here from `from` (created on first use).
  boost::asio::awaitable<result<std::shared_ptr<import>>> import_for(std::string from, std::uint32_t index_id,
                                                                     std::uint32_t shard_id);
  /// On strand_: stops the imports `snap` no longer grants (or every import).
  void prune_imports(const snapshot_ptr& snap, bool all = false);
  /// Decodes a copy batch, checks its keys against `range` and writes its file (blocking: on
  /// the migration pool, several at once).
  result<built_copy> build_copy(const key_range& range, std::string payload);
  /// Ingests a built copy batch and adds what it changed to the shard's stats (the import's
  /// line: one at a time).
  boost::asio::awaitable<result<void>> import_copy(const import_grant& g, result<built_copy> built, bool high_priority);
  /// Applies a tail batch through the writer (the import's line).
  boost::asio::awaitable<result<void>> import_batch(const import_grant& g, std::string payload, bool high_priority);
  boost::asio::awaitable<result<peer::digest_reply>> import_digest(const import_grant& g);
  boost::asio::awaitable<result<void>> import_reset(const import_grant& g);
  /// The fault kill_in_phase (node/faults.hpp) on the target side.
  void fault_in_phase(std::string_view phase) const;

  boost::asio::any_io_executor ex_;
  const node_config& cfg_;
  storage::store& store_;
  ring_actor& ring_;
  peers& peers_;
  boost::asio::thread_pool& pool_;
  /// The same work for moves of priority high (migration.high_priority_nice): a disk evacuation
  /// must go on when requests take the cores, where the other pool's nice 19 gets little.
  boost::asio::thread_pool& high_pool_;
  boost::asio::thread_pool& pool_for(migration_priority p) noexcept { return p == migration_priority::high ? high_pool_ : pool_; }
  migration_faults faults_;
  std::atomic<std::uint32_t> batches_sent_{0};
  std::atomic<std::uint32_t> digests_compared_{0};
  std::atomic<std::uint32_t> commits_lost_{0};
  std::atomic<std::uint32_t> commits_answered_{0};
  std::atomic<std::uint32_t> copies_built_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<int> drives_{0};  ///< drive coroutines running
  /// Buffers that compressed copy batches expand into, given back after the batch's ingest
  /// and freed when no import is left (any thread).
  buffer_pool expand_buffers_{4, 1u << 20, 16u << 20};

  boost::asio::strand<boost::asio::any_io_executor> strand_;
  // On strand_ only:
  std::map<std::string, std::shared_ptr<outgoing>> running_;
  priority_shares shares_;
  std::uint64_t node_rate_ = 0;
  foreground_fn foreground_;
  adaptive_rate adaptive_;
  token_bucket adaptive_bucket_;            ///< every move's sends, at adaptive_'s limit (0: none)
  std::uint64_t adaptive_sent_ = 0;         ///< bytes sent since the last step
  std::uint64_t adaptive_samples_ = 0;      ///< the monitor's sample count at the last step
  std::chrono::steady_clock::time_point adaptive_at_{};
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::shared_ptr<import>> imports_;  ///< by (index id, shard id)
  std::vector<outgoing_state> recovered_;  ///< loaded by prepare(), resumed by recover()
  std::vector<key_range> unsettled_;       ///< ranges prepare() fenced
};

}  // namespace shardd

#pragma once
// The migrator: moves shards this node owns to other nodes, and takes in shards moving here.

#include "common/config.hpp"
#include "node/peers.hpp"
#include "node/ring_actor.hpp"
#include "shardd/migration.hpp"
#include "shardd/peer_messages.hpp"
#include "shardd/throttle.hpp"
#include "storage/store.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>

#include <map>
#include <memory>
#include <mutex>

namespace shardd {

/// The faults a test can inject into migrations (see node/faults.hpp): `corrupt_batch` and
/// `digest_mismatch`. Empty in production.
struct migration_faults {
  std::uint32_t corrupt_batch = 0;
  std::uint32_t digest_mismatch = 0;
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
/// Target side: applies data batches (records and the import position in one atomic write),
/// answers digests, drops a range for a copy that starts again. What the target holds of a
/// shard it imports is created and removed by the map (see ring_actor).
///
/// Threads: each outgoing migration's state is touched on its own strand only (its drive
/// coroutine, bound to a cancellation slot that `stop()` fires); the table of running
/// migrations and the node's bandwidth shares are still guarded by a mutex, and the target side
/// runs on the calling peer connection's strand. Owned by the node.
class migrator {
 public:
  migrator(boost::asio::any_io_executor ex, const node_config& cfg, storage::store& store, ring_actor& ring, peers& p,
           boost::asio::thread_pool& pool);

  /// Loads persisted outgoing migrations and resumes them. Call once the node serves.
  void recover();
  /// Stops every outgoing migration: no new step starts, and each drive is cancelled (the
  /// sleep, timer or peer call it waits on ends at once). Waits at most `limit` for them to
  /// end; their persisted state resumes them after a restart.
  boost::asio::awaitable<void> stop(std::chrono::milliseconds limit);

  // Controller → source.
  boost::asio::awaitable<result<void>> start(migration_record rec);
  boost::asio::awaitable<result<void>> control(std::string id, std::string command);

  // Source → target.
  /// Applies a data_batch payload (decoded in place; the payload is kept for the ingest).
  boost::asio::awaitable<result<void>> apply_batch(std::string payload);
  boost::asio::awaitable<result<peer::digest_reply>> digest(peer::import_range r);
  boost::asio::awaitable<result<void>> reset(peer::import_range r);

  /// Number of outgoing migrations this node runs now.
  std::size_t running() const;

 private:
  struct outgoing;
  boost::asio::awaitable<void> drive(std::shared_ptr<outgoing> m, std::vector<migration_fsm::action> actions);
  boost::asio::awaitable<result<void>> persist(outgoing& m);
  boost::asio::awaitable<void> report(outgoing& m, bool force);
  boost::asio::awaitable<result<peer::frame>> send_batch(outgoing& m, std::string payload, std::uint64_t bytes);
  boost::asio::awaitable<void> throttle(outgoing& m, std::uint64_t bytes);
  /// Bytes per copy batch: large when uncapped, an eighth of a second of the cap otherwise.
  std::size_t copy_batch_bytes(const outgoing& m) const;
  boost::asio::awaitable<migration_fsm::event> copy_step(outgoing& m);
  boost::asio::awaitable<migration_fsm::event> tail_round(outgoing& m);
  boost::asio::awaitable<result<std::uint64_t>> ship_tail(outgoing& m, std::uint64_t until);
  boost::asio::awaitable<migration_fsm::event> verify(outgoing& m);
  boost::asio::awaitable<migration_fsm::event> fence(outgoing& m);
  boost::asio::awaitable<migration_fsm::event> commit(outgoing& m);
  boost::asio::awaitable<migration_fsm::event> retire(outgoing& m);
  boost::asio::awaitable<result<void>> layout(storage::layout_change change);
  void launch(std::shared_ptr<outgoing> m, std::vector<migration_fsm::action> actions);
  /// On m's strand: runs drive() with m's cancellation slot bound, counting it in drives_.
  void spawn_drive(std::shared_ptr<outgoing> m, std::vector<migration_fsm::action> actions);
  void finish(const std::string& id);

  boost::asio::any_io_executor ex_;
  const node_config& cfg_;
  storage::store& store_;
  ring_actor& ring_;
  peers& peers_;
  boost::asio::thread_pool& pool_;
  migration_faults faults_;
  std::atomic<std::uint32_t> batches_sent_{0};
  std::atomic<std::uint32_t> digests_compared_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<int> drives_{0};  ///< drive coroutines running

  mutable std::mutex mutex_;  // guards running_, shares_ and node_rate_
  std::map<std::string, std::shared_ptr<outgoing>> running_;
  priority_shares shares_;
  std::uint64_t node_rate_ = 0;
};

}  // namespace shardd

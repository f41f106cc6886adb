#pragma once
// Work on the shards this node holds, for the REST layer and for the peer protocol alike.

#include "common/config.hpp"
#include "node/ring_actor.hpp"
#include "shardd/peer_messages.hpp"
#include "storage/store.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <vector>

namespace shardd {

/// Reads and writes of local shards: scans of one shard's range, the stats of the shards this
/// node owns, the median key of a range shard, and group-committed writes. Blocking reads run
/// on the read pool, writes on the store's writer thread; nothing here blocks a network strand.
/// Stateless; safe from any strand. Owned by the node; both `rest_api` and `peer_service` call
/// it, so neither depends on the other for local work.
class disk_guard;
class shard_service {
 public:
  /// Keys and values one shard returns per scan request at most: a page of large documents
  /// ends early (with a cursor) instead of making a reply too large for a peer frame.
  static constexpr std::size_t max_scan_bytes = 16u << 20;

  /// `standalone`: no cluster (unit tests): every shard counts as local.
  /// `disk`: puts are refused (insufficient_storage) while it is at its flood watermark.
  /// `bulk`: where a full check scans (null: the read pool).
  shard_service(const node_config& cfg, storage::store& store, ring_actor& ring, boost::asio::thread_pool& read_pool,
                bool standalone, const disk_guard* disk = nullptr, boost::asio::thread_pool* bulk = nullptr)
      : cfg_(cfg), store_(store), ring_(ring), read_pool_(read_pool), standalone_(standalone), disk_(disk),
        bulk_pool_(bulk ? *bulk : read_pool) {}

  /// One page of a scan of shard `q.shard`, which this node must own.
  boost::asio::awaitable<result<peer::scan_reply>> scan(peer::scan_request q);
  /// Records and bytes of every shard this node owns (not of those it imports).
  result<peer::stats_reply> stats() const;
  /// The median user key of a local range shard, for a split.
  boost::asio::awaitable<result<peer::median_reply>> median(peer::median_request q);
  /// A full check of a local shard: its kept stats and digest (what every write updates, what
  /// a migration compares) beside a scan of every record at the same sequence. They differ
  /// only if the data changed behind the store's back (a disk, a bug, a hand). One at a time
  /// per node (a second gets `conflict`), on the bulk pool.
  struct full_check {
    storage::shard_stats kept;
    storage::shard_stats scanned;
    std::uint64_t seq = 0;
    bool match() const noexcept { return kept.bytes == scanned.bytes && kept.digest() == scanned.digest(); }
  };
  boost::asio::awaitable<result<full_check>> verify(const index_entry& ix, const shard_entry& s);
  /// Writes; the store refuses keys outside the shards this node holds (`no_shard`), so a
  /// sender with a stale map cannot write where it should not.
  boost::asio::awaitable<result<std::vector<storage::op_status>>> write(std::vector<storage::write_op> ops);

  storage::store& store() const noexcept { return store_; }
  boost::asio::thread_pool& read_pool() const noexcept { return read_pool_; }

 private:
  const node_config& cfg_;
  storage::store& store_;
  ring_actor& ring_;
  boost::asio::thread_pool& read_pool_;
  bool standalone_;
  const disk_guard* disk_;
  boost::asio::thread_pool& bulk_pool_;
  std::atomic<bool> verifying_{false};
};

}  // namespace shardd

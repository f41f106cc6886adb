#pragma once
// The node's storage: one RocksDB with a records column family and a meta column family.

#include "shardd/cluster_plan.hpp"
#include "shardd/digest.hpp"
#include "shardd/error.hpp"
#include "shardd/key_codec.hpp"
#include "storage/unique_function.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class Cache;
class TableFactory;
}  // namespace rocksdb

namespace shardd::storage {

/// How an acknowledged write is made durable.
enum class durability : std::uint8_t {
  fsync,  ///< default: the WAL is fsynced before the write is acknowledged (group commit)
  async,  ///< opt-in: the WAL is written to the OS but not fsynced; survives a process crash
          ///< (SIGKILL) but not a power loss or kernel crash
};

struct store_options {
  std::string path;
  durability mode = durability::fsync;
  std::size_t block_cache_bytes = 256u << 20;
  std::size_t write_buffer_bytes = 64u << 20;
  std::size_t max_group_ops = 50000;  ///< ops merged into one commit at most
  /// Archived write-ahead log kept for migration catch-up (tailing from a sequence number).
  std::uint64_t wal_archive_ttl_seconds = 6 * 3600;
  std::uint64_t wal_archive_limit_mb = 4096;
};

enum class op_kind : std::uint8_t {
  put,
  del,
  meta_put,  ///< metadata written atomically with the record ops of the same request
  meta_del,
};

struct write_op {
  op_kind kind = op_kind::put;
  std::string key;    ///< storage key
  std::string value;  ///< the document (put only)
};

enum class op_status : std::uint8_t {
  created,    ///< put of a key that did not exist
  updated,    ///< put over an existing key
  deleted,    ///< delete of an existing key
  not_found,  ///< delete of a missing key (nothing written)
  no_shard,   ///< the key is in no shard this node holds (dropped index, or the shard moved)
  fenced,     ///< the shard is fenced for a migration cutover: retry with the next map
};

/// Records and bytes (key + value) of one shard, exact, and the digest of its records
/// (range_digest: `records` is its count, `sum` its sum), kept up to date by every write,
/// ingest, split and drop, so that a migration compares two numbers instead of scanning.
struct shard_stats {
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  std::array<std::uint64_t, 4> sum{};

  range_digest digest() const noexcept { return range_digest::from(records, sum); }
  /// Records and sum from `d` (bytes are kept apart).
  void set_digest(const range_digest& d) noexcept {
    records = d.count();
    sum = d.limbs();
  }
  void add(std::string_view key, std::string_view value) noexcept;
  void remove(std::string_view key, std::string_view value) noexcept;
};

/// What an ingest changed in its range: the records it wrote and those it replaced.
struct ingest_delta {
  range_digest added, replaced;
  std::uint64_t added_bytes = 0, replaced_bytes = 0;
};

/// An SST file written for an ingest (`store::build_ingest`) and not yet part of the store:
/// what it adds (`delta.replaced` is found when it is ingested) and how many records it holds.
/// Move-only; dropping it removes the file.
class ingest_file {
 public:
  ingest_file() = default;
  ingest_file(ingest_file&& o) noexcept { *this = std::move(o); }
  ingest_file& operator=(ingest_file&& o) noexcept;
  ingest_file(const ingest_file&) = delete;
  ingest_file& operator=(const ingest_file&) = delete;
  ~ingest_file() { discard(); }

  std::string path;
  ingest_delta delta;
  std::size_t records = 0;

 private:
  void discard() noexcept;
};

/// A shard's storage range, announced by the node when its partition map changes.
using shardd::shard_range;

/// A change of layout, applied atomically with the new partition map.
struct layout_change {
  std::optional<std::string> map_json;        ///< new partition map to persist
  std::vector<shard_range> add;                ///< new empty shards (a new index)
  std::vector<std::uint32_t> drop_indexes;     ///< delete all data and stats of these indexes
  using split = layout_split;
  std::vector<split> splits;
  /// Shards no longer held here: their stats slots go, their data stays (a migration's
  /// source deletes it after the undo window).
  std::vector<std::pair<std::uint32_t, std::uint32_t>> remove;
  std::vector<key_range> drop_ranges;  ///< delete the data of these ranges
  std::vector<key_range> fence;        ///< refuse writes to these ranges (status fenced) until unfenced
  std::vector<key_range> unfence;
  struct stats_update {
    std::uint32_t index_id, shard_id;
    shard_stats stats;
  };
  std::vector<stats_update> set_stats;  ///< exact stats learned by a full scan (imports)
  struct stats_adjustment {
    std::uint32_t index_id, shard_id;
    ingest_delta delta;
  };
  std::vector<stats_adjustment> adjust_stats;  ///< what ingests added to shards
  /// Sync the change to disk whatever the durability mode (false: as writes are).
  bool durable = true;
};

/// One record read by a scan.
struct record {
  std::string key;  ///< storage key
  std::string value;
};

/// A consistent read view at one sequence number; released when the last copy goes.
struct snapshot {
  std::uint64_t seq = 0;
  std::shared_ptr<const void> handle;
};

/// One change to a record, read back from the write-ahead log.
struct change {
  std::uint64_t seq = 0;
  bool deleted = false;
  std::string key;
  std::string value;
};

struct change_page {
  std::vector<change> changes;
  std::uint64_t last_seq = 0;  ///< every change up to here in the range is in `changes` or earlier pages
  std::uint64_t bytes = 0;
};

struct scan_result {
  std::vector<record> records;
  std::optional<std::string> resume_after;  ///< storage key to continue after, if the range has more
  std::size_t examined = 0;                  ///< keys looked at, kept or not
};

/// The node's storage engine.
///
/// Threads: writes and layout changes go through one queue to a dedicated writer thread,
/// which group-commits everything queued into one RocksDB write (one fsync for many
/// requests) and keeps exact per-shard record and byte counts in the same atomic batch.
/// Reads (`get`, `scan`) are thread-safe and run on the caller's thread: callers on network
/// strands use `get_cached`, which never touches the disk, and send the rest to a pool.
/// Callbacks run on the writer thread and must only hand the result over (post it).
class store {
 public:
  using write_callback = unique_function<void(result<std::vector<op_status>>)>;
  using layout_callback = unique_function<void(result<void>)>;

  [[nodiscard]] static result<std::unique_ptr<store>> open(const store_options& opts);
  /// One meta value of the store at `path`, opened read-only (it may be open in a running
  /// node; nothing is written or locked). nullopt when there is no store there or no such key.
  [[nodiscard]] static result<std::optional<std::string>> peek_meta(const std::string& path, std::string_view key);
  ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  /// Queues writes for the next group commit. `done` gets one status per op, in order.
  void submit(std::vector<write_op> ops, write_callback done);

  /// Queues a layout change (new index, dropped index, split, new map), ordered with writes.
  void submit(layout_change change, layout_callback done);

  enum class read_status : std::uint8_t { found, not_found, would_block };
  /// Point read that only looks at memtables and the block cache; never blocks on disk.
  read_status get_cached(std::string_view key, std::string& value) const;
  /// Point read; may read from disk.
  [[nodiscard]] result<std::optional<std::string>> get(std::string_view key) const;

  /// Reads up to `limit` records of [range.begin, range.end), starting after `after` if given,
  /// keeping those `keep` accepts; examines at most `max_examined` keys and keeps about
  /// `max_bytes` of keys and values (then stops early and reports where to resume).
  [[nodiscard]] result<scan_result> scan(const key_range& range, const std::optional<std::string>& after,
                                         std::size_t limit, const std::function<bool(std::string_view)>& keep = {},
                                         std::size_t max_examined = SIZE_MAX, std::size_t max_bytes = SIZE_MAX) const;

  /// A snapshot of the whole store at the latest sequence number.
  [[nodiscard]] result<snapshot> take_snapshot() const;
  /// What scan_snapshot_visit went through.
  struct visit_result {
    std::size_t records = 0;
    std::uint64_t bytes = 0;  ///< sum of key and value sizes
    std::string last_key;     ///< the last key visited; empty if none
    bool more = false;        ///< the range has records after last_key
  };
  /// Hands up to `max_records` records or about `max_bytes` bytes of `range` in `snap`, after
  /// `after` if given, to `fn` as views into the iterator, valid during the call only (a
  /// migration encodes them straight into its batch, without copying them first).
  [[nodiscard]] result<visit_result> scan_snapshot_visit(
      const snapshot& snap, const key_range& range, const std::optional<std::string>& after, std::size_t max_records,
      std::size_t max_bytes, const std::function<void(std::string_view key, std::string_view value)>& fn) const;
  /// Digest of every record of `range`, in `snap` or at the latest state; `bytes` gets the
  /// sum of key and value sizes if given.
  [[nodiscard]] result<range_digest> digest(const key_range& range, const snapshot* snap = nullptr,
                                            std::uint64_t* bytes = nullptr) const;

  /// Writes sorted, distinct records into an SST file and ingests it: no write-ahead log, no
  /// memtable, no compaction (the file lands at the lowest level its keys allow). Durable when
  /// it returns. Bypasses the writer, so the stats of the range are not updated: the answer
  /// says what the file added and which records already there it replaced (their digests,
  /// computed as the file is written and from the few records found in its key span), for
  /// the caller to apply (adjust_stats). Nothing else may write the span meanwhile.
  /// Blocking: call it off the network threads.
  [[nodiscard]] result<ingest_delta> ingest(std::span<const std::pair<std::string_view, std::string_view>> sorted);
  /// The two steps of `ingest`, for a caller that writes several files at once and ingests
  /// them one at a time. Writing the file (and its fsync) reads nothing of the store and may
  /// run on any number of threads; ingesting it finds the records it replaces and must not
  /// overlap another write of its span; `sorted` are the records the file was built from.
  [[nodiscard]] result<ingest_file> build_ingest(std::span<const std::pair<std::string_view, std::string_view>> sorted);
  [[nodiscard]] result<ingest_delta> ingest(ingest_file file,
                                            std::span<const std::pair<std::string_view, std::string_view>> sorted);

  /// A shard's kept stats (digest included) together with the sequence number they are exact
  /// at, read in one step with respect to writes and ingests; `snap`, if given, gets a
  /// snapshot at that sequence (for a full scan to compare with).
  struct stats_at {
    shard_stats stats;
    std::uint64_t seq = 0;
  };
  [[nodiscard]] std::optional<stats_at> stats_now(std::uint32_t index_id, std::uint32_t shard_id,
                                                  std::optional<snapshot>* snap = nullptr) const;

  /// Compacts the records of `range` through every level (flushing the memtable if it holds
  /// any): deleted data and its tombstones are gone afterwards. Blocking: off the network threads.
  [[nodiscard]] result<void> compact(const key_range& range);
  /// Writes to `range` after sequence `after_seq`, read from the archived write-ahead log, up
  /// to `until_seq` (inclusive; 0: the latest) and about `max_bytes`. Fails if the log since
  /// `after_seq` is no longer kept, or if a range deletion touched `range`. Sequence numbers
  /// that ingested files took (they are not in the log) are skipped; any other gap fails.
  [[nodiscard]] result<change_page> changes_since(std::uint64_t after_seq, const key_range& range,
                                                  std::size_t max_bytes, std::uint64_t until_seq = 0) const;
  std::uint64_t latest_sequence() const;
  /// Meta keys starting with `prefix`, with their values.
  [[nodiscard]] result<std::vector<std::pair<std::string, std::string>>> scan_meta(std::string_view prefix) const;

  /// Whether writes to `key` are fenced now (a cutover is under way). Thread-safe.
  bool is_fenced(std::string_view key) const;

  /// Tracks the last sequence number written into `range` (a shard being moved), so that a
  /// catch-up can skip reading the log when nothing was written. Thread-safe.
  void watch(const key_range& range);
  void unwatch(const key_range& range);
  /// At least the sequence number of the last write into a watched range (possibly more:
  /// it is raised before each write); the latest sequence if `range` is not watched.
  std::uint64_t last_write(const key_range& range) const;

  /// Exact stats of a shard known to the store.
  std::optional<shard_stats> stats(std::uint32_t index_id, std::uint32_t shard_id) const;

  /// Loads shard ranges at start-up, with the stats persisted for them (stats persisted
  /// before digests were kept are counted again by a scan, once).
  [[nodiscard]] result<void> load_ranges(const std::vector<shard_range>& ranges);

  [[nodiscard]] result<std::optional<std::string>> get_meta(std::string_view key) const;

  /// Stops the writer after it drains its queue, then closes RocksDB cleanly.
  void close();

  durability mode() const noexcept { return opts_.mode; }

  /// What RocksDB reports about itself, for the monitor. Thread-safe; zeros once closed.
  struct engine_figures {
    std::uint64_t pending_compaction_bytes = 0;  ///< estimate of bytes compaction must rewrite
    std::uint64_t l0_files = 0;                  ///< level-0 files of the records family
    std::uint64_t memtable_bytes = 0;            ///< memtables of every family
    std::uint64_t sst_bytes = 0;                 ///< live table files of every family
  };
  engine_figures figures() const;

  /// Group commits done and ops written (for metrics and benchmarks).
  std::uint64_t commits() const noexcept { return commits_.load(std::memory_order_relaxed); }

 private:
  explicit store(store_options opts);
  struct queued;
  struct slot;
  void writer_loop();
  void commit_writes(std::vector<queued>& group);
  void apply_layout(queued& item);
  slot* find_slot(std::string_view key);
  void wake(queued item);

  store_options opts_;
  rocksdb::DB* db_ = nullptr;
  /// Snapshots handed out and not yet released. A snapshot may outlive the store (held by a
  /// migration abandoned at shutdown): close() releases what is left, and a later release
  /// does nothing.
  struct snapshot_registry;
  std::shared_ptr<snapshot_registry> snapshots_;
  rocksdb::ColumnFamilyHandle* records_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  std::shared_ptr<rocksdb::Cache> cache_;
  std::shared_ptr<rocksdb::TableFactory> table_;  // the records family's (imports use it too)

  std::mutex mutex_;  // guards queue_ and stopping_ only
  std::condition_variable cv_;
  std::deque<queued> queue_;
  bool stopping_ = false;
  std::thread writer_;

  // Written only on the writer thread; read by stats() under stats_mutex_.
  mutable std::mutex stats_mutex_;
  std::vector<slot> slots_;  // sorted by range.begin
  mutable std::mutex fence_mutex_;  // guards fences_ and watches_
  std::vector<key_range> fences_;
  struct watched {
    key_range range;
    std::uint64_t last_seq;
    unsigned users;
  };
  std::vector<watched> watches_;
  std::atomic<std::uint64_t> ingest_files_{0};
  // An ingested file takes sequence numbers that the write-ahead log never sees. The writer's
  // writes and ingests take seq_mutex_ around their sequence numbers, so each ingest knows
  // exactly which it took; a reader of the log skips those gaps and no other.
  mutable std::mutex seq_mutex_;
  std::deque<std::pair<std::uint64_t, std::uint64_t>> ingest_gaps_;  ///< [first, last], ascending, merged
  static constexpr std::size_t max_ingest_gaps = 65536;
  /// The end of the ingest gap that holds `seq`, if one does.
  std::optional<std::uint64_t> ingest_gap_end(std::uint64_t seq) const;
  std::atomic<std::uint64_t> commits_{0};
};

/// Meta key under which the partition map is kept.
inline constexpr std::string_view meta_partition_map = "partition_map";

}  // namespace shardd::storage

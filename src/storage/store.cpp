#include "storage/store.hpp"

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/perf_level.h>
#include <rocksdb/slice.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>
#include <rocksdb/transaction_log.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <unordered_map>
#include <variant>

namespace shardd::storage {

struct store::snapshot_registry {
  std::mutex mutex;
  rocksdb::DB* db = nullptr;  ///< null once the store closed
  std::set<const rocksdb::Snapshot*> live;
};


namespace {

constexpr std::string_view stats_prefix = "stats/";

std::string stats_key(std::uint32_t index_id, std::uint32_t shard_id) {
  std::string k(stats_prefix);
  append_u32be(k, index_id);
  append_u32be(k, shard_id);
  return k;
}

// records, bytes and the digest's four limbs, all u64 big-endian (16 bytes: stats written
// before digests were kept, without them).
std::string encode_stats(const shard_stats& s) {
  std::string v;
  append_u64be(v, s.records);
  append_u64be(v, s.bytes);
  for (auto limb : s.sum) append_u64be(v, limb);
  return v;
}

std::optional<shard_stats> decode_stats(std::string_view v) {
  if (v.size() != 48) return std::nullopt;
  shard_stats s;
  s.records = read_u64be(v);
  s.bytes = read_u64be(v.substr(8));
  for (std::size_t i = 0; i < 4; ++i) s.sum[i] = read_u64be(v.substr(16 + 8 * i));
  return s;
}

rocksdb::Slice slice(std::string_view s) { return {s.data(), s.size()}; }

// Scans that read a whole range (migration copies, digests) read files ahead in large steps.
constexpr std::size_t bulk_readahead = 2u << 20;

error io_error(std::string_view what, const rocksdb::Status& st) {
  return make_error(errc::internal, std::string(what) + ": " + st.ToString());
}

}  // namespace

void shard_stats::add(std::string_view key, std::string_view value) noexcept {
  auto d = digest();
  d.add(key, value);
  set_digest(d);
  bytes += key.size() + value.size();
}

void shard_stats::remove(std::string_view key, std::string_view value) noexcept {
  auto d = digest();
  d.remove(key, value);
  set_digest(d);
  bytes -= key.size() + value.size();
}

struct store::slot {
  std::uint32_t index_id;
  std::uint32_t shard_id;
  key_range range;
  shard_stats stats;
};

struct store::queued {
  std::variant<std::vector<write_op>, layout_change> work;
  write_callback on_write;
  layout_callback on_layout;
};

namespace {
constexpr rocksdb::CompressionType records_compression = rocksdb::kLZ4Compression;
}  // namespace

store::store(store_options opts) : opts_(std::move(opts)) {}

namespace {

/// RocksDB keeps per-thread perf counters (perf_context, iostats_context) at kEnableCount by
/// default; shardd never reads them, and each count is a thread-local access into the shared
/// library (__tls_get_addr). Turned off once on every thread that calls the store.
void perf_counters_off() noexcept {
  static thread_local const bool off = [] {
    rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
    return true;
  }();
  (void)off;
}

}  // namespace

result<std::unique_ptr<store>> store::open(const store_options& opts) {
  std::unique_ptr<store> s(new store(opts));
  rocksdb::Options options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  options.IncreaseParallelism(2);
  options.max_background_jobs = 2;
  options.write_buffer_size = opts.write_buffer_bytes;
  options.max_total_wal_size = 4 * opts.write_buffer_bytes;
  options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  options.keep_log_file_num = 3;
  // One writer thread does every write, so the memtable needs no concurrent-insert support.
  options.allow_concurrent_memtable_write = false;
  // Keep the write-ahead log archived for a while: a migration catches up by reading it from
  // the sequence number of its snapshot.
  options.WAL_ttl_seconds = opts.wal_archive_ttl_seconds;
  options.WAL_size_limit_MB = opts.wal_archive_limit_mb;

  s->cache_ = rocksdb::NewLRUCache(opts.block_cache_bytes);
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = s->cache_;
  // Bloom filters make the existence check of a new key (exact counts) cheap.
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10, false));
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  // Index and filter in 4 KiB partitions under a small top level (pinned). A whole-file index
  // grows with the file's data blocks: documents that compress 30x put ~800 MB in one 21 MB
  // file whose index is ~4 MB, more than a block-cache shard holds (the cache is split in 64),
  // so it never stayed cached and every point read decompressed it again: GETs fell from
  // 29,000 to 1,800 per second. Partitions are cached like data blocks.
  table.index_type = rocksdb::BlockBasedTableOptions::IndexType::kTwoLevelIndexSearch;
  table.partition_filters = true;
  table.metadata_block_size = 4096;
  // Data blocks of 16 KiB (RocksDB's default is 4 KiB): a scan (a move's copy, a digest)
  // costs per block a cache lookup and the insert and erase of a placeholder that charges the
  // cache even when it is not filled, a decompression call and a compressor's state; a move
  // of 1 KiB documents spent 20 % of its source's CPU in the cache's hash table alone. With 16
  // KiB blocks a move's CPU per MiB fell 20 % (1 KiB documents 3.1-3.3 -> 2.5-2.6 ms) and
  // point reads of records in SST files did not change (30,000 GETs/s with the cache holding
  // them, ~20,000 with a 16 MB cache: docs/benchmarks.md).
  table.block_size = 16 * 1024;
  table.pin_top_level_index_and_filter = true;
  s->table_.reset(rocksdb::NewBlockBasedTableFactory(table));
  rocksdb::ColumnFamilyOptions cf(options);
  cf.table_factory = s->table_;
  // LZ4 decompresses several times faster than the default Snappy at a similar ratio: scans
  // (migrations, digests) and cache misses are cheaper.
  cf.compression = records_compression;

  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, cf},
      {"meta", rocksdb::ColumnFamilyOptions()},
  };
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  auto st = rocksdb::DB::Open(rocksdb::DBOptions(options), opts.path, families, &handles, &db);
  if (!st.ok()) return io_error("cannot open the store at " + opts.path, st);
  s->db_ = db;
  s->snapshots_ = std::make_shared<snapshot_registry>();
  s->snapshots_->db = db;
  s->records_ = handles[0];
  s->meta_ = handles[1];
  {
    // Import files written but not ingested when the process last ended (a SIGKILL while a
    // move's batches were in flight): nothing in the store refers to them, and their names
    // are used again from 0. An ingested file was moved into the store already. Only now,
    // with the store's lock held: another process may be using a directory opened by mistake.
    std::error_code ec;
    std::filesystem::remove_all(std::filesystem::path(opts.path) / "import", ec);
    if (ec) return make_error(errc::internal, "cannot clear " + opts.path + "/import: " + ec.message());
  }
  s->writer_ = std::thread([p = s.get()] { p->writer_loop(); });
  return s;
}

store::~store() { close(); }

void store::close() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !writer_.joinable() && !db_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (snapshots_) {
    std::lock_guard lock(snapshots_->mutex);
    for (const auto* s : snapshots_->live) snapshots_->db->ReleaseSnapshot(s);
    snapshots_->live.clear();
    snapshots_->db = nullptr;
  }
  if (db_) {
    (void)db_->FlushWAL(true);
    (void)db_->DestroyColumnFamilyHandle(records_);
    (void)db_->DestroyColumnFamilyHandle(meta_);
    (void)db_->Close();
    delete db_;
    db_ = nullptr;
  }
}

void store::wake(queued item) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      queue_.push_back(std::move(item));
      item.on_write = {};
      item.on_layout = {};
    }
  }
  // A store that is closing refuses new work; the caller hears so at once.
  if (item.on_write) item.on_write(make_error(errc::unavailable, "the store is closing"));
  if (item.on_layout) item.on_layout(make_error(errc::unavailable, "the store is closing"));
  cv_.notify_one();
}

void store::submit(std::vector<write_op> ops, write_callback done) {
  queued q;
  q.work = std::move(ops);
  q.on_write = std::move(done);
  wake(std::move(q));
}

void store::submit(layout_change change, layout_callback done) {
  queued q;
  q.work = std::move(change);
  q.on_layout = std::move(done);
  wake(std::move(q));
}

void store::writer_loop() {
  perf_counters_off();
  std::vector<queued> group;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      // Take every queued write up to the group limit; a layout change is applied alone, in
      // queue order, so writes before it land before it and writes after it see it.
      if (std::holds_alternative<layout_change>(queue_.front().work)) {
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      } else {
        std::size_t ops = 0;
        while (!queue_.empty() && std::holds_alternative<std::vector<write_op>>(queue_.front().work) &&
               ops < opts_.max_group_ops) {
          ops += std::get<std::vector<write_op>>(queue_.front().work).size();
          group.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
    }
    if (std::holds_alternative<layout_change>(group.front().work))
      apply_layout(group.front());
    else
      commit_writes(group);
    group.clear();
  }
}

store::slot* store::find_slot(std::string_view key) {
  auto it = std::upper_bound(slots_.begin(), slots_.end(), key,
                             [](std::string_view k, const slot& s) { return k < s.range.begin; });
  if (it == slots_.begin()) return nullptr;
  --it;
  return it->range.contains(key) ? &*it : nullptr;
}

void store::commit_writes(std::vector<queued>& group) {
  // 1. Order the group's ops by key (stable, so each key's ops keep their order; ops on
  //    different keys commute). Sorted input lets the memtable skiplist reuse its search
  //    position from one insert to the next, and MultiGet skip its own sort.
  // 2. Learn which keys exist (one MultiGet for the group), so counts stay exact.
  // 3. Build one batch with every op and the new stats of every shard touched.
  // 4. One write (one fsync in fsync mode), then complete every request.
  struct op_ref {
    std::uint32_t request;
    std::uint32_t index;
    write_op* op;
  };
  std::vector<op_ref> order;
  std::vector<std::vector<op_status>> outcomes(group.size());
  std::vector<op_ref> meta_ops;  // written after the records, in request order
  for (std::uint32_t g = 0; g < group.size(); ++g) {
    auto& ops = std::get<std::vector<write_op>>(group[g].work);
    outcomes[g].resize(ops.size(), op_status::no_shard);
    for (std::uint32_t i = 0; i < ops.size(); ++i) {
      if (ops[i].kind == op_kind::meta_put || ops[i].kind == op_kind::meta_del)
        meta_ops.push_back({g, i, &ops[i]});
      else
        order.push_back({g, i, &ops[i]});
    }
  }
  std::stable_sort(order.begin(), order.end(), [](const op_ref& a, const op_ref& b) { return a.op->key < b.op->key; });

  std::vector<rocksdb::Slice> lookup;
  lookup.reserve(order.size());
  for (std::size_t i = 0; i < order.size(); ++i)
    if (i == 0 || order[i].op->key != order[i - 1].op->key) lookup.push_back(slice(order[i].op->key));
  std::vector<rocksdb::PinnableSlice> values(lookup.size());
  std::vector<rocksdb::Status> statuses(lookup.size());
  if (!lookup.empty())
    db_->MultiGet(rocksdb::ReadOptions(), records_, lookup.size(), lookup.data(), values.data(), statuses.data(),
                  /*sorted_input=*/true);
  std::optional<error> failure;
  for (std::size_t i = 0; i < lookup.size() && !failure; ++i)
    if (!statuses[i].ok() && !statuses[i].IsNotFound()) failure = io_error("read before write", statuses[i]);

  rocksdb::WriteBatch batch;
  // New stats of the shards this group touches; published only once the write is durable.
  std::unordered_map<slot*, shard_stats> working;
  slot* s = nullptr;
  bool present = false;    // the current key exists before this op
  std::string_view prev;   // and has this value (in `values` or an earlier op of the group)
  std::size_t key_no = 0;
  for (std::size_t i = 0; i < order.size() && !failure; ++i) {
    const write_op& op = *order[i].op;
    if (i == 0 || op.key != order[i - 1].op->key) {
      if (i > 0) ++key_no;
      present = statuses[key_no].ok();
      prev = present ? std::string_view(values[key_no].data(), values[key_no].size()) : std::string_view();
      if (!s || !s->range.contains(op.key)) s = find_slot(op.key);
    }
    op_status& out = outcomes[order[i].request][order[i].index];
    if (!s) {
      out = op_status::no_shard;
      continue;
    }
    if (!fences_.empty() && std::any_of(fences_.begin(), fences_.end(), [&](const key_range& f) { return f.contains(op.key); })) {
      out = op_status::fenced;
      continue;
    }
    auto& st = working.try_emplace(s, s->stats).first->second;
    if (op.kind == op_kind::put) {
      batch.Put(records_, slice(op.key), slice(op.value));
      if (present) st.remove(op.key, prev);
      st.add(op.key, op.value);
      out = present ? op_status::updated : op_status::created;
      present = true;
      prev = op.value;
    } else if (present) {
      batch.Delete(records_, slice(op.key));
      st.remove(op.key, prev);
      present = false;
      out = op_status::deleted;
    } else {
      out = op_status::not_found;
    }
  }
  for (auto& [sl, st] : working) batch.Put(meta_, stats_key(sl->index_id, sl->shard_id), encode_stats(st));
  for (const auto& m : meta_ops) {
    if (m.op->kind == op_kind::meta_put) {
      batch.Put(meta_, slice(m.op->key), slice(m.op->value));
      outcomes[m.request][m.index] = op_status::created;
    } else {
      batch.Delete(meta_, slice(m.op->key));
      outcomes[m.request][m.index] = op_status::deleted;
    }
  }

  if (!failure && batch.Count() > 0) {
    std::lock_guard seq_lock(seq_mutex_);  // no ingest takes sequence numbers meanwhile
    {
      // Raise the watermark of watched ranges before the write: this thread is the only
      // writer, so the batch takes the next batch.Count() sequence numbers.
      std::lock_guard lock(fence_mutex_);
      if (!watches_.empty()) {
        const auto seq = db_->GetLatestSequenceNumber() + batch.Count();
        for (const auto& o : order)
          for (auto& w : watches_)
            if (w.range.contains(o.op->key)) w.last_seq = std::max(w.last_seq, seq);
      }
    }
    rocksdb::WriteOptions wo;
    wo.sync = opts_.mode == durability::fsync;
    auto st = db_->Write(wo, &batch);
    if (!st.ok()) failure = io_error("write", st);
    // Published before the sequence lock goes: stats_now reads stats and sequence together.
    if (!failure && !working.empty()) {
      std::lock_guard lock(stats_mutex_);
      for (auto& [sl, st] : working) sl->stats = st;
    }
  }
  commits_.fetch_add(1, std::memory_order_relaxed);
  for (std::size_t g = 0; g < group.size(); ++g) {
    if (failure)
      group[g].on_write(*failure);
    else
      group[g].on_write(std::move(outcomes[g]));
  }
}

void store::apply_layout(queued& item) {
  auto& change = std::get<layout_change>(item.work);
  rocksdb::WriteBatch batch;
  std::vector<slot> next = slots_;
  auto fail = [&](error e) { item.on_layout(std::move(e)); };

  for (auto id : change.drop_indexes) {
    auto r = key_range{index_prefix(id), index_upper_bound(id)};
    batch.DeleteRange(records_, slice(r.begin), slice(r.end));
    for (const auto& s : next)
      if (s.index_id == id) batch.Delete(meta_, stats_key(s.index_id, s.shard_id));
    std::erase_if(next, [&](const slot& s) { return s.index_id == id; });
  }
  for (const auto& sp : change.splits) {
    auto it = std::find_if(next.begin(), next.end(),
                           [&](const slot& s) { return s.index_id == sp.index_id && s.shard_id == sp.shard_id; });
    if (it == next.end()) return fail(make_error(errc::not_found, "split of a shard the store does not know"));
    if (!it->range.contains(sp.at) || sp.at == it->range.begin)
      return fail(make_error(errc::invalid_argument, "split point outside the shard"));
    // Count the upper half; the lower half keeps the rest. The writer is blocked meanwhile,
    // which keeps the counts exact.
    shard_stats upper;
    rocksdb::ReadOptions ro;
    rocksdb::Slice hi = slice(it->range.end);
    ro.iterate_upper_bound = &hi;
    std::unique_ptr<rocksdb::Iterator> iter(db_->NewIterator(ro, records_));
    for (iter->Seek(slice(sp.at)); iter->Valid(); iter->Next())
      upper.add(std::string_view(iter->key().data(), iter->key().size()),
                std::string_view(iter->value().data(), iter->value().size()));
    if (!iter->status().ok()) return fail(io_error("split scan", iter->status()));
    slot up{sp.index_id, sp.new_shard_id, key_range{sp.at, it->range.end}, upper};
    it->range.end = sp.at;
    auto lower = it->stats.digest();
    lower.subtract(upper.digest());
    it->stats.set_digest(lower);
    it->stats.bytes -= upper.bytes;
    batch.Put(meta_, stats_key(it->index_id, it->shard_id), encode_stats(it->stats));
    batch.Put(meta_, stats_key(up.index_id, up.shard_id), encode_stats(up.stats));
    next.push_back(std::move(up));
  }
  for (const auto& gone : change.remove) {
    std::erase_if(next, [&](const slot& s) { return s.index_id == gone.first && s.shard_id == gone.second; });
    batch.Delete(meta_, stats_key(gone.first, gone.second));
  }
  for (const auto& r : change.drop_ranges) batch.DeleteRange(records_, slice(r.begin), slice(r.end));
  for (const auto& u : change.set_stats)
    for (auto& sl : next)
      if (sl.index_id == u.index_id && sl.shard_id == u.shard_id) {
        sl.stats = u.stats;
        batch.Put(meta_, stats_key(u.index_id, u.shard_id), encode_stats(u.stats));
      }
  for (const auto& a : change.adjust_stats)
    for (auto& sl : next)
      if (sl.index_id == a.index_id && sl.shard_id == a.shard_id) {
        auto d = sl.stats.digest();
        d.merge(a.delta.added);
        d.subtract(a.delta.replaced);
        sl.stats.set_digest(d);
        sl.stats.bytes = sl.stats.bytes + a.delta.added_bytes - a.delta.replaced_bytes;
        batch.Put(meta_, stats_key(a.index_id, a.shard_id), encode_stats(sl.stats));
      }
  for (const auto& a : change.add) {
    // A shard may come back (a move that was rolled back): it starts from the stats of what
    // the range holds now, which a drop in the same change has emptied.
    std::erase_if(next, [&](const slot& s) { return s.index_id == a.index_id && s.shard_id == a.shard_id; });
    next.push_back(slot{a.index_id, a.shard_id, a.range, {}});
    batch.Put(meta_, stats_key(a.index_id, a.shard_id), encode_stats({}));
  }
  std::sort(next.begin(), next.end(), [](const slot& a, const slot& b) { return a.range.begin < b.range.begin; });
  for (std::size_t i = 1; i < next.size(); ++i)
    if (next[i].range.begin < next[i - 1].range.end)
      return fail(make_error(errc::internal, "layout change makes shard ranges overlap"));
  if (change.map_json) batch.Put(meta_, slice(meta_partition_map), slice(*change.map_json));

  rocksdb::WriteOptions wo;
  wo.sync = change.durable || opts_.mode == durability::fsync;  // layout changes are rare and durable
  {
    std::lock_guard seq_lock(seq_mutex_);
    auto st = db_->Write(wo, &batch);
    if (!st.ok()) return fail(io_error("layout write", st));
    std::lock_guard lock(stats_mutex_);  // under the sequence lock, as a write's stats
    slots_ = std::move(next);
  }
  // The deletions are durable; files wholly inside a dropped range can go at once, which
  // frees their space now and lets a later import of the range be ingested at the bottom
  // level instead of on top of the old data. (Readers that started before keep the files
  // they use alive.)
  std::vector<key_range> dropped = change.drop_ranges;
  for (auto id : change.drop_indexes) dropped.push_back(key_range{index_prefix(id), index_upper_bound(id)});
  for (const auto& r : dropped) {
    rocksdb::Slice lo = slice(r.begin), hi = slice(r.end);
    (void)rocksdb::DeleteFilesInRange(db_, records_, &lo, &hi, false);  // the tombstone covers what stays
  }
  // Fences take effect for every write after this change: the writer applies changes and
  // writes in queue order, so writes queued before it were applied before it.
  if (!change.unfence.empty() || !change.fence.empty()) {
    std::lock_guard lock(fence_mutex_);
    for (const auto& r : change.unfence) std::erase(fences_, r);
    for (const auto& r : change.fence) fences_.push_back(r);
  }
  item.on_layout(result<void>{});
}

result<void> store::load_ranges(const std::vector<shard_range>& ranges) {
  std::vector<slot> next;
  rocksdb::WriteBatch recounted;
  for (const auto& r : ranges) {
    slot s{r.index_id, r.shard_id, r.range, {}};
    std::string v;
    auto st = db_->Get(rocksdb::ReadOptions(), meta_, stats_key(r.index_id, r.shard_id), &v);
    if (!st.ok() && !st.IsNotFound()) return io_error("load stats", st);
    if (st.ok()) {
      if (auto decoded = decode_stats(v)) {
        s.stats = *decoded;
      } else {
        // Stats without a digest (or unreadable): count the shard again, once.
        auto d = digest(r.range, nullptr, &s.stats.bytes);
        if (!d) return d.error();
        s.stats.set_digest(*d);
        recounted.Put(meta_, stats_key(r.index_id, r.shard_id), encode_stats(s.stats));
      }
    }
    next.push_back(std::move(s));
  }
  if (recounted.Count() > 0) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    auto st = db_->Write(wo, &recounted);
    if (!st.ok()) return io_error("write recounted stats", st);
  }
  std::sort(next.begin(), next.end(), [](const slot& a, const slot& b) { return a.range.begin < b.range.begin; });
  std::lock_guard lock(stats_mutex_);
  slots_ = std::move(next);
  return {};
}

std::optional<store::stats_at> store::stats_now(std::uint32_t index_id, std::uint32_t shard_id,
                                               std::optional<snapshot>* snap) const {
  std::lock_guard seq_lock(seq_mutex_);  // no write, layout change or ingest meanwhile
  stats_at out;
  {
    std::lock_guard lock(stats_mutex_);
    auto it = std::find_if(slots_.begin(), slots_.end(),
                           [&](const slot& s) { return s.index_id == index_id && s.shard_id == shard_id; });
    if (it == slots_.end()) return std::nullopt;
    out.stats = it->stats;
  }
  out.seq = db_->GetLatestSequenceNumber();
  if (snap) {
    auto taken = take_snapshot();
    if (taken) *snap = std::move(*taken);
  }
  return out;
}

std::optional<shard_stats> store::stats(std::uint32_t index_id, std::uint32_t shard_id) const {
  std::lock_guard lock(stats_mutex_);
  for (const auto& s : slots_)
    if (s.index_id == index_id && s.shard_id == shard_id) return s.stats;
  return std::nullopt;
}

store::engine_figures store::figures() const {
  engine_figures f;
  if (!db_) return f;
  auto both = [&](const std::string& name) {
    std::uint64_t a = 0, b = 0;
    (void)db_->GetIntProperty(records_, name, &a);
    (void)db_->GetIntProperty(meta_, name, &b);
    return a + b;
  };
  f.pending_compaction_bytes = both(rocksdb::DB::Properties::kEstimatePendingCompactionBytes);
  f.memtable_bytes = both(rocksdb::DB::Properties::kCurSizeAllMemTables);
  f.sst_bytes = both(rocksdb::DB::Properties::kLiveSstFilesSize);
  std::string l0;
  if (db_->GetProperty(records_, rocksdb::DB::Properties::kNumFilesAtLevelPrefix + std::string("0"), &l0))
    f.l0_files = std::strtoull(l0.c_str(), nullptr, 10);
  return f;
}

store::read_status store::get_cached(std::string_view key, std::string& value) const {
  perf_counters_off();
  rocksdb::ReadOptions ro;
  ro.read_tier = rocksdb::kBlockCacheTier;
  auto st = db_->Get(ro, records_, slice(key), &value);
  if (st.ok()) return read_status::found;
  if (st.IsNotFound()) return read_status::not_found;
  return read_status::would_block;  // Incomplete: the data is not in memory
}

result<std::optional<std::string>> store::get(std::string_view key) const {
  perf_counters_off();
  std::string value;
  auto st = db_->Get(rocksdb::ReadOptions(), records_, slice(key), &value);
  if (st.ok()) return std::optional<std::string>(std::move(value));
  if (st.IsNotFound()) return std::optional<std::string>{};
  return io_error("get", st);
}

namespace {
/// Positions `it` at the first key of `range` after `after` (or at the range's start).
void seek_past(rocksdb::Iterator& it, const key_range& range, const std::optional<std::string>& after) {
  if (after && *after >= range.begin) {
    it.Seek(slice(*after));
    if (it.Valid() && it.key() == slice(*after)) it.Next();
  } else {
    it.Seek(slice(range.begin));
  }
}
}  // namespace

result<scan_result> store::scan(const key_range& range, const std::optional<std::string>& after, std::size_t limit,
                                const std::function<bool(std::string_view)>& keep, std::size_t max_examined,
                                std::size_t max_bytes) const {
  perf_counters_off();
  scan_result out;
  std::size_t bytes = 0;
  rocksdb::ReadOptions ro;
  rocksdb::Slice hi = slice(range.end);
  ro.iterate_upper_bound = &hi;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, records_));
  seek_past(*it, range, after);
  std::size_t examined = 0;
  std::string last;  // last key examined: where to resume when stopping early
  for (; it->Valid(); it->Next()) {
    if (out.records.size() >= limit || examined >= max_examined || bytes >= max_bytes) {
      out.resume_after = last;
      break;
    }
    std::string_view k(it->key().data(), it->key().size());
    ++examined;
    last.assign(k);
    if (keep && !keep(k)) continue;
    out.records.push_back(record{std::string(k), std::string(it->value().data(), it->value().size())});
    bytes += k.size() + it->value().size();
  }
  if (!it->status().ok()) return io_error("scan", it->status());
  out.examined = examined;
  return out;
}

result<snapshot> store::take_snapshot() const {
  const rocksdb::Snapshot* snap = db_->GetSnapshot();
  if (!snap) return make_error(errc::internal, "cannot take a snapshot");
  snapshot out;
  out.seq = snap->GetSequenceNumber();
  {
    std::lock_guard lock(snapshots_->mutex);
    snapshots_->live.insert(snap);
  }
  out.handle = std::shared_ptr<const void>(snap, [reg = snapshots_](const void* p) {
    const auto* s = static_cast<const rocksdb::Snapshot*>(p);
    std::lock_guard lock(reg->mutex);
    if (reg->db && reg->live.erase(s)) reg->db->ReleaseSnapshot(s);
  });
  return out;
}

result<store::visit_result> store::scan_snapshot_visit(
    const snapshot& snap, const key_range& range, const std::optional<std::string>& after, std::size_t max_records,
    std::size_t max_bytes, const std::function<void(std::string_view, std::string_view)>& fn) const {
  perf_counters_off();
  visit_result out;
  rocksdb::ReadOptions ro;
  ro.snapshot = static_cast<const rocksdb::Snapshot*>(snap.handle.get());
  ro.fill_cache = false;  // a bulk copy should not evict the working set
  ro.readahead_size = bulk_readahead;
  rocksdb::Slice hi = slice(range.end);
  ro.iterate_upper_bound = &hi;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, records_));
  seek_past(*it, range, after);
  for (; it->Valid(); it->Next()) {
    if (out.records >= max_records || out.bytes >= max_bytes) {
      out.more = true;
      break;
    }
    const rocksdb::Slice k = it->key(), v = it->value();
    fn(std::string_view(k.data(), k.size()), std::string_view(v.data(), v.size()));
    ++out.records;
    out.bytes += k.size() + v.size();
    out.last_key.assign(k.data(), k.size());  // reuses its buffer: no allocation per record
  }
  if (!it->status().ok()) return io_error("snapshot scan", it->status());
  return out;
}

result<range_digest> store::digest(const key_range& range, const snapshot* snap, std::uint64_t* bytes) const {
  perf_counters_off();
  range_digest d;
  std::uint64_t total = 0;
  rocksdb::ReadOptions ro;
  if (snap) ro.snapshot = static_cast<const rocksdb::Snapshot*>(snap->handle.get());
  ro.fill_cache = false;
  ro.readahead_size = bulk_readahead;
  rocksdb::Slice hi = slice(range.end);
  ro.iterate_upper_bound = &hi;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, records_));
  for (it->Seek(slice(range.begin)); it->Valid(); it->Next()) {
    d.add(std::string_view(it->key().data(), it->key().size()), std::string_view(it->value().data(), it->value().size()));
    total += it->key().size() + it->value().size();
  }
  if (!it->status().ok()) return io_error("digest scan", it->status());
  if (bytes) *bytes = total;
  return d;
}

std::uint64_t store::latest_sequence() const { return db_->GetLatestSequenceNumber(); }

ingest_file& ingest_file::operator=(ingest_file&& o) noexcept {
  if (this != &o) {
    discard();
    path = std::exchange(o.path, {});
    delta = o.delta;
    records = std::exchange(o.records, 0);
  }
  return *this;
}

void ingest_file::discard() noexcept {
  if (path.empty()) return;
  std::error_code ec;
  std::filesystem::remove(path, ec);  // moved into the store already, or never ingested
  path.clear();
}

result<ingest_delta> store::ingest(std::span<const std::pair<std::string_view, std::string_view>> sorted) {
  if (sorted.empty()) return ingest_delta{};
  auto file = build_ingest(sorted);
  if (!file) return file.error();
  return ingest(std::move(*file), sorted);
}

result<ingest_file> store::build_ingest(std::span<const std::pair<std::string_view, std::string_view>> sorted) {
  perf_counters_off();
  ingest_file out;
  if (sorted.empty()) return out;
  const auto dir = std::filesystem::path(opts_.path) / "import";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  out.path = (dir / ("batch-" + std::to_string(ingest_files_.fetch_add(1)) + ".sst")).string();
  // The records family's table format and compression: imported files get Bloom filters too.
  rocksdb::Options options;
  options.table_factory = table_;
  options.compression = records_compression;
  rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), options, records_);
  auto st = writer.Open(out.path);
  if (!st.ok()) return io_error("import file", st);
  for (const auto& [k, v] : sorted) {
    st = writer.Put(slice(k), slice(v));
    if (!st.ok()) return io_error("import file (keys must be sorted and distinct)", st);
    out.delta.added.add(k, v);
    out.delta.added_bytes += k.size() + v.size();
  }
  out.records = sorted.size();
  st = writer.Finish();  // and syncs the file
  if (!st.ok()) return io_error("import file", st);
  return out;
}

result<ingest_delta> store::ingest(ingest_file file, std::span<const std::pair<std::string_view, std::string_view>> sorted) {
  perf_counters_off();
  if (file.path.empty() || sorted.empty()) return ingest_delta{};
  if (sorted.size() != file.records)
    return make_error(errc::internal, "ingest: " + std::to_string(sorted.size()) + " records given for a file of " +
                                          std::to_string(file.records));
  ingest_delta delta = file.delta;
  // The records already in the file's key span that it replaces (none in a first copy, which
  // starts from an emptied range; those a copy resumed after a failure sends again).
  {
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;
    const std::string end = std::string(sorted.back().first) + '\0';
    rocksdb::Slice hi = slice(end);
    ro.iterate_upper_bound = &hi;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, records_));
    std::size_t i = 0;
    for (it->Seek(slice(sorted.front().first)); it->Valid(); it->Next()) {
      const std::string_view k(it->key().data(), it->key().size());
      while (i < sorted.size() && sorted[i].first < k) ++i;
      if (i == sorted.size()) break;
      if (sorted[i].first != k) continue;
      const std::string_view v(it->value().data(), it->value().size());
      delta.replaced.add(k, v);
      delta.replaced_bytes += k.size() + v.size();
    }
    if (!it->status().ok()) return io_error("import span scan", it->status());
  }
  rocksdb::IngestExternalFileOptions io;
  io.move_files = true;  // the file becomes part of the store; nothing is copied
  rocksdb::Status st;
  {
    std::lock_guard seq_lock(seq_mutex_);
    const auto before = db_->GetLatestSequenceNumber();
    st = db_->IngestExternalFile(records_, {file.path}, io);
    const auto after = db_->GetLatestSequenceNumber();
    if (after > before) {
      if (!ingest_gaps_.empty() && ingest_gaps_.back().second + 1 == before + 1) ingest_gaps_.back().second = after;
      else ingest_gaps_.emplace_back(before + 1, after);
      if (ingest_gaps_.size() > max_ingest_gaps) ingest_gaps_.pop_front();
    }
  }
  if (!st.ok()) return io_error("ingest", st);
  return delta;
}

result<void> store::compact(const key_range& range) {
  rocksdb::CompactRangeOptions o;
  o.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
  o.exclusive_manual_compaction = false;  // background compactions carry on meanwhile
  rocksdb::Slice lo = slice(range.begin), hi = slice(range.end);
  auto st = db_->CompactRange(o, records_, &lo, &hi);
  if (!st.ok()) return io_error("compact", st);
  return {};
}

void store::watch(const key_range& range) {
  std::lock_guard lock(fence_mutex_);
  for (auto& w : watches_)
    if (w.range == range) {
      ++w.users;
      return;
    }
  watches_.push_back({range, db_->GetLatestSequenceNumber(), 1});
}

void store::unwatch(const key_range& range) {
  std::lock_guard lock(fence_mutex_);
  for (auto it = watches_.begin(); it != watches_.end(); ++it)
    if (it->range == range && --it->users == 0) {
      watches_.erase(it);
      return;
    }
}

std::uint64_t store::last_write(const key_range& range) const {
  std::lock_guard lock(fence_mutex_);
  for (const auto& w : watches_)
    if (w.range == range) return w.last_seq;
  return db_->GetLatestSequenceNumber();
}

bool store::is_fenced(std::string_view key) const {
  std::lock_guard lock(fence_mutex_);
  return std::any_of(fences_.begin(), fences_.end(), [&](const key_range& f) { return f.contains(key); });
}

namespace {

/// Collects the record writes of one WAL batch that fall in a range.
class range_collector final : public rocksdb::WriteBatch::Handler {
 public:
  range_collector(std::uint32_t records_cf, const key_range& range, std::uint64_t first_seq, std::uint64_t after_seq,
                  std::vector<change>& out, std::uint64_t& bytes)
      : cf_(records_cf), range_(range), seq_(first_seq), after_(after_seq), out_(out), bytes_(bytes) {}

  rocksdb::Status PutCF(std::uint32_t cf, const rocksdb::Slice& key, const rocksdb::Slice& value) override {
    take(cf, key, &value);
    return rocksdb::Status::OK();
  }
  rocksdb::Status DeleteCF(std::uint32_t cf, const rocksdb::Slice& key) override {
    take(cf, key, nullptr);
    return rocksdb::Status::OK();
  }
  rocksdb::Status SingleDeleteCF(std::uint32_t cf, const rocksdb::Slice& key) override {
    take(cf, key, nullptr);
    return rocksdb::Status::OK();
  }
  rocksdb::Status DeleteRangeCF(std::uint32_t cf, const rocksdb::Slice& begin, const rocksdb::Slice& end) override {
    if (cf == cf_ && begin.ToString() < range_.end && range_.begin < end.ToString()) range_deleted = true;
    ++seq_;
    return rocksdb::Status::OK();
  }
  rocksdb::Status MergeCF(std::uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
    ++seq_;
    return rocksdb::Status::OK();
  }
  bool range_deleted = false;

 private:
  void take(std::uint32_t cf, const rocksdb::Slice& key, const rocksdb::Slice* value) {
    const auto seq = seq_++;
    if (cf != cf_ || seq <= after_) return;
    std::string_view k(key.data(), key.size());
    if (!range_.contains(k)) return;
    change c{seq, value == nullptr, std::string(k), value ? value->ToString() : std::string()};
    bytes_ += c.key.size() + c.value.size();
    out_.push_back(std::move(c));
  }
  std::uint32_t cf_;
  const key_range& range_;
  std::uint64_t seq_;
  std::uint64_t after_;
  std::vector<change>& out_;
  std::uint64_t& bytes_;
};

}  // namespace

std::optional<std::uint64_t> store::ingest_gap_end(std::uint64_t seq) const {
  std::lock_guard lock(seq_mutex_);
  auto it = std::upper_bound(ingest_gaps_.begin(), ingest_gaps_.end(), seq,
                             [](std::uint64_t s, const std::pair<std::uint64_t, std::uint64_t>& g) { return s < g.first; });
  if (it == ingest_gaps_.begin()) return std::nullopt;
  --it;
  if (seq >= it->first && seq <= it->second) return it->second;
  return std::nullopt;
}

result<change_page> store::changes_since(std::uint64_t after_seq, const key_range& range, std::size_t max_bytes,
                                         std::uint64_t until_seq) const {
  perf_counters_off();
  change_page page;
  page.last_seq = after_seq;
  const std::uint64_t latest = db_->GetLatestSequenceNumber();
  const std::uint64_t until = until_seq == 0 ? latest : std::min(until_seq, latest);
  if (after_seq >= until) return page;
  std::uint64_t expected = after_seq + 1;  // sequence numbers run through the log but for ingests'
  // Past the sequence numbers ingests took (no write of them is in the log): covered.
  auto skip_ingests = [&] {
    while (auto end = ingest_gap_end(expected)) expected = *end + 1;
    if (expected - 1 > page.last_seq) page.last_seq = std::min(expected - 1, until);
  };
  skip_ingests();
  while (expected <= until) {
    std::unique_ptr<rocksdb::TransactionLogIterator> it;
    auto st = db_->GetUpdatesSince(expected, &it);
    if (!st.ok()) return make_error(errc::unavailable, "write-ahead log since sequence " + std::to_string(expected - 1) +
                                                           " is no longer available: " + st.ToString());
    bool done = false;
    for (; it->Valid(); it->Next()) {
      auto batch = it->GetBatch();
      const std::uint64_t first = batch.sequence;
      const std::uint64_t last = first + batch.writeBatchPtr->Count() - 1;
      if (first > until) {
        done = true;
        break;
      }
      if (last < expected) continue;  // read before a reopen
      if (first > expected) {
        skip_ingests();
        if (first > expected)
          return make_error(errc::unavailable, "write-ahead log has a gap after sequence " + std::to_string(expected - 1));
      }
      range_collector collect(records_->GetID(), range, first, after_seq, page.changes, page.bytes);
      auto ist = batch.writeBatchPtr->Iterate(&collect);
      if (!ist.ok()) return io_error("reading the write-ahead log", ist);
      if (collect.range_deleted)
        return make_error(errc::conflict, "the range was deleted while it was being moved (its index was dropped?)");
      // A batch straddling `until` is taken whole: its later changes are newer writes of the
      // same range, harmless to apply in order.
      page.last_seq = std::max(page.last_seq, last);
      expected = last + 1;
      if (page.bytes >= max_bytes || page.last_seq >= until) {
        done = true;
        break;
      }
    }
    if (done) break;
    // RocksDB's iterator stops at a gap in the sequence numbers ("Gap in sequence numbers"),
    // and the log may end in one: past an ingest's gap, read on; any other stops here.
    const auto before = expected;
    skip_ingests();
    if (expected != before) continue;
    if (!it->status().ok() && page.last_seq < until) return io_error("reading the write-ahead log", it->status());
    break;
  }
  return page;
}

result<std::vector<std::pair<std::string, std::string>>> store::scan_meta(std::string_view prefix) const {
  std::vector<std::pair<std::string, std::string>> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
  for (it->Seek(slice(prefix)); it->Valid() && it->key().starts_with(slice(prefix)); it->Next())
    out.emplace_back(it->key().ToString(), it->value().ToString());
  if (!it->status().ok()) return io_error("meta scan", it->status());
  return out;
}

result<std::optional<std::string>> store::peek_meta(const std::string& path, std::string_view key) {
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::path(path) / "CURRENT", ec)) return std::optional<std::string>{};
  rocksdb::Options options;
  options.info_log_level = rocksdb::InfoLogLevel::ERROR_LEVEL;
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {"meta", rocksdb::ColumnFamilyOptions()},
  };
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  auto st = rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(options), path, families, &handles, &raw);
  if (!st.ok()) return io_error("cannot open the store at " + path + " to read it", st);
  std::unique_ptr<rocksdb::DB> db(raw);
  std::string value;
  st = db->Get(rocksdb::ReadOptions(), handles[1], slice(key), &value);
  for (auto* h : handles) (void)db->DestroyColumnFamilyHandle(h);
  if (st.IsNotFound()) return std::optional<std::string>{};
  if (!st.ok()) return io_error("get meta", st);
  return std::optional<std::string>(std::move(value));
}

result<std::optional<std::string>> store::get_meta(std::string_view key) const {
  std::string value;
  auto st = db_->Get(rocksdb::ReadOptions(), meta_, slice(key), &value);
  if (st.ok()) return std::optional<std::string>(std::move(value));
  if (st.IsNotFound()) return std::optional<std::string>{};
  return io_error("get meta", st);
}

}  // namespace shardd::storage

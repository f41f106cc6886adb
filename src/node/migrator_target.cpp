// The migrator's target side: one import actor per shard moving here, which applies the
// batches, answers the digests and carries out the resets its source sends, one at a time.
#include "node/actor.hpp"
#include "node/faults.hpp"
#include "node/migrator.hpp"
#include "node/store_ops.hpp"
#include "shardd/batch_codec.hpp"
#include "shardd/digest.hpp"
#include "shardd/key_codec.hpp"

#include <boost/asio/detached.hpp>

#include <variant>

namespace shardd {

using boost::asio::awaitable;

struct migrator::built_copy {
  std::unique_ptr<std::string> payload;  ///< the batch as received; `sorted` views into it
  std::vector<std::pair<std::string_view, std::string_view>> sorted;
  storage::ingest_file file;
};

namespace {

/// Whether every key of a decoded batch lies in the import's range (and, for a copy batch,
/// ascends strictly): a source sends only the shard it was granted.
result<void> check_keys(const key_range& range, const peer::data_batch_view& batch, bool sorted) {
  std::vector<std::string_view> keys;
  keys.reserve(batch.ops.size());
  for (const auto& op : batch.ops) keys.push_back(op.key);
  return check_batch_keys(range, keys, sorted);
}

/// Where a copy batch's file build answers the import that ingests it.
using built_channel = asio::experimental::concurrent_channel<void(boost::system::error_code, result<migrator::built_copy>)>;

/// A tail batch (catch-up or cutover): decoded and applied by the import, in order.
struct batch_msg {
  std::string payload;
  bool high_priority = false;  ///< the frame's flag: a move of priority high
  reply_to<result<void>> reply;
};
/// A copy batch: written to its file as it arrives (`built`), ingested by the import in order.
struct copy_msg {
  std::shared_ptr<built_channel> built;
  bool high_priority = false;
  reply_to<result<void>> reply;
};
struct digest_msg {
  reply_to<result<peer::digest_reply>> reply;
};
struct reset_msg {
  reply_to<result<void>> reply;
};
using import_msg = std::variant<std::monostate, batch_msg, copy_msg, digest_msg, reset_msg>;  // monostate: what a closed mailbox yields

/// Requests waiting for one import: the source keeps at most a few batches in flight.
constexpr std::size_t import_mailbox = 8;
/// Tail batches up to this size are decoded on the import's own thread rather than the pool.
constexpr std::size_t inline_tail_bytes = 64 * 1024;

/// Runs `f` right here or on `pool`, and answers what it returns.
template <class F>
awaitable<std::invoke_result_t<F>> here_or_on(bool here, boost::asio::thread_pool& pool, F f) {
  if (here) co_return f();
  co_return co_await on_pool(pool, std::move(f));
}

}  // namespace

/// One shard moving here: what the map granted (source, range) and a mailbox that puts the
/// source's requests in a line.
class migrator::import final : public actor<import_msg>, public std::enable_shared_from_this<migrator::import> {
 public:
  import(asio::any_io_executor ex, migrator& parent, import_grant g)
      : actor(std::move(ex), import_mailbox, "import " + std::to_string(g.index_id) + "/" + std::to_string(g.shard_id)),
        parent_(parent), grant_(std::move(g)) {}
  const import_grant& grant() const noexcept { return grant_; }

 protected:
  awaitable<void> handle(import_msg m) override {
    co_await std::visit([this](auto& msg) { return on(msg); }, m);
  }

 private:
  awaitable<void> on(std::monostate&) { co_return; }
  awaitable<void> on(batch_msg& m) {
    // A tail batch before the digest (catch-up) or after it (the cutover's).
    parent_.fault_in_phase(digested_ ? "cutover" : "catching_up");
    m.reply.send(co_await parent_.import_batch(grant_, std::move(m.payload), m.high_priority));
  }
  awaitable<void> on(copy_msg& m) {
    parent_.fault_in_phase("copying");
    auto [ec, built] = co_await m.built->async_receive(asio::as_tuple(asio::use_awaitable));
    if (ec) built = make_error(errc::unavailable, "the copy batch's file was not written: " + ec.message());
    m.reply.send(co_await parent_.import_copy(grant_, std::move(built), m.high_priority));
  }
  awaitable<void> on(digest_msg& m) {
    parent_.fault_in_phase("verifying");
    digested_ = true;
    m.reply.send(co_await parent_.import_digest(grant_));
  }
  awaitable<void> on(reset_msg& m) { m.reply.send(co_await parent_.import_reset(grant_)); }

  migrator& parent_;
  import_grant grant_;
  bool digested_ = false;  ///< for the fault kill_in_phase only
};

void migrator::fault_in_phase(std::string_view phase) const {
  if (!faults_.kill_in_phase.empty() && faults_.kill_in_phase == phase) kill_for_fault("kill_in_phase", "target");
}

awaitable<result<std::shared_ptr<migrator::import>>> migrator::import_for(std::string from, std::uint32_t index_id,
                                                                        std::uint32_t shard_id) {
  // Checked on the strand against the newest map: an import is never created after the map
  // that ends it has been seen (prune_imports runs on the same strand for every new map).
  auto find = [this, from = std::move(from), index_id, shard_id]() -> result<std::shared_ptr<import>> {
    if (stopping_) return make_error(errc::unavailable, "node " + cfg_.node_id + " is stopping");
    auto g = check_import(*ring_.snapshot()->map, cfg_.node_id, from, index_id, shard_id);
    if (!g) return g.error();
    auto& slot = imports_[{g->index_id, g->shard_id}];
    if (slot && slot->grant() == *g) return slot;
    if (slot) slot->stop();  // the map moved the shard again: a new source or range
    slot = std::make_shared<import>(ex_, *this, std::move(*g));
    slot->start(slot);
    return slot;
  };
  co_return co_await run_on(strand_, std::move(find));
}

void migrator::prune_imports(const snapshot_ptr& snap, bool all) {
  for (auto it = imports_.begin(); it != imports_.end();) {
    const auto& g = it->second->grant();
    const bool keep = !all && snap && [&] {
      auto now = check_import(*snap->map, cfg_.node_id, g.source, g.index_id, g.shard_id);
      return now && *now == g;
    }();
    if (keep) {
      ++it;
      continue;
    }
    if (snap) {
      // The move committed: this node owns the shard now.
      const index_entry* ix = nullptr;
      for (const auto& [name, e] : snap->map->indexes)
        if (e.id == g.index_id) ix = &e;
      const auto* s = ix ? ix->find_shard(g.shard_id) : nullptr;
      if (s && s->owner == cfg_.node_id) fault_in_phase("retiring");
    }
    it->second->stop();  // requests still queued answer `unavailable`
    it = imports_.erase(it);
  }
  if (imports_.empty()) expand_buffers_.clear();  // no batch is expected before the next import
}

awaitable<result<void>> migrator::apply_batch(std::string from, std::string payload, bool high_priority,
                                              std::optional<std::uint32_t> unchecked_crc, bool compressed) {
  if (unchecked_crc || compressed) {
    // A large batch's checksum, left by the network thread for the pool, is checked before
    // anything of the payload is read; a compressed batch is expanded there after it.
    auto prepare = [&payload, unchecked_crc, compressed, &buffers = expand_buffers_]() -> result<std::string> {
      if (unchecked_crc && peer::crc32c(payload) != *unchecked_crc)
        return make_error(errc::corrupt, "checksum mismatch in data_batch frame: nothing of it was applied");
      if (!compressed) return std::move(payload);
      // Into a buffer an ingested batch gave back: no fresh pages to fault in and zero.
      std::string out = buffers.take();
      if (auto ok = peer::expand_batch_into(payload, peer::default_max_frame_bytes, out); !ok) return ok.error();
      return out;
    };
    auto ready = co_await on_pool(high_priority ? high_pool_ : pool_, std::move(prepare));
    if (!ready) {
      if (ready.error().code == errc::corrupt) SHARDD_LOG(warn, "peer_checksum_mismatch", "peer", from, "frame", "data_batch");
      co_return ready.error();
    }
    payload = std::move(*ready);
  }
  // The shard is named by the first key; the import checks every key against its range.
  // Only the head is read here, on a network thread: a batch of 100-byte records holds about
  // 36,000 of them, decoded and checked on the migration pool.
  std::string first;
  bool copy = false;
  {
    auto head = peer::peek_data_batch(payload);
    if (!head) co_return head.error();
    if (head->count == 0) co_return result<void>{};
    first = head->first_key;
    copy = head->kind == 0;
  }
  const auto shard = check_import_key(*ring_.snapshot()->map, cfg_.node_id, from, first);
  if (!shard) co_return shard.error();
  auto imp = co_await import_for(std::move(from), shard->index_id, shard->shard_id);
  if (!imp) co_return imp.error();
  ring_.loads().node().migration_bytes_in.fetch_add(payload.size(), std::memory_order_relaxed);
  if (!copy) {
    auto make = [&](reply_to<result<void>> r) {
      batch_msg m{std::move(payload), high_priority, std::move(r)};
      return import_msg(std::move(m));
    };
    co_return co_await (*imp)->ask<result<void>>(std::move(make));
  }
  // A copy batch's file is written now, on the migration pool, beside the files of the other
  // batches the source has in flight (its CPU work and its fsync overlap theirs); the import
  // ingests it when its turn in the line comes, so batches, digests and resets still apply in
  // the order they arrived.
  auto built = std::make_shared<built_channel>(ex_, 1);
  auto build = [this, range = (*imp)->grant().range, payload = std::move(payload), built]() mutable -> awaitable<void> {
    auto b = build_copy(range, std::move(payload));
    (void)built->try_send(boost::system::error_code{}, std::move(b));
    co_return;
  };
  asio::co_spawn(high_priority ? high_pool_ : pool_, std::move(build), asio::detached);
  auto make = [&](reply_to<result<void>> r) {
    copy_msg m{std::move(built), high_priority, std::move(r)};
    return import_msg(std::move(m));
  };
  co_return co_await (*imp)->ask<result<void>>(std::move(make));
}

namespace {

/// The range a digest or reset names must be the one the map gives the shard.
result<void> same_range(const import_grant& g, const peer::import_range& r) {
  if (r.begin != g.range.begin || r.end != g.range.end)
    return make_error(errc::forbidden, "the range named is not that of shard " + std::to_string(g.shard_id));
  return {};
}

}  // namespace

awaitable<result<peer::digest_reply>> migrator::digest(std::string from, peer::import_range r) {
  auto imp = co_await import_for(std::move(from), r.index_id, r.shard_id);
  if (!imp) co_return imp.error();
  if (auto ok = same_range((*imp)->grant(), r); !ok) co_return ok.error();
  auto make = [](reply_to<result<peer::digest_reply>> reply) {
    digest_msg m{std::move(reply)};
    return import_msg(std::move(m));
  };
  co_return co_await (*imp)->ask<result<peer::digest_reply>>(std::move(make));
}

awaitable<result<void>> migrator::reset(std::string from, peer::import_range r) {
  auto imp = co_await import_for(std::move(from), r.index_id, r.shard_id);
  if (!imp) co_return imp.error();
  if (auto ok = same_range((*imp)->grant(), r); !ok) co_return ok.error();
  auto make = [](reply_to<result<void>> reply) {
    reset_msg m{std::move(reply)};
    return import_msg(std::move(m));
  };
  co_return co_await (*imp)->ask<result<void>>(std::move(make));
}

// --- the work, on the import's strand, one request at a time ------------------------------------

result<migrator::built_copy> migrator::build_copy(const key_range& range, std::string payload) {
  // A copy batch holds sorted, distinct keys of one snapshot: it becomes an SST file that is
  // ingested whole — no log, no memtable, no compaction. Its records are hashed as the file is
  // written; the shard's stats and digest take what it added and replaced, so the
  // verification compares kept digests instead of reading the range back.
  built_copy out;
  out.payload = std::make_unique<std::string>(std::move(payload));
  auto decoded = peer::decode_data_batch_view(*out.payload);  // views into the payload, kept with it
  if (!decoded) return decoded.error();
  const auto& batch = *decoded;
  if (batch.kind != 0) return make_error(errc::invalid_argument, "a copy batch holds only copied records");
  if (auto ok = check_keys(range, batch, true); !ok) return ok.error();
  out.sorted.reserve(batch.ops.size());
  for (const auto& op : batch.ops) out.sorted.emplace_back(op.key, op.value);
  auto file = store_.build_ingest(out.sorted);
  if (!file) return file.error();
  if (faults_.fail_copy_build > 0 && ++copies_built_ == faults_.fail_copy_build) {
    SHARDD_LOG(warn, "fault_injected", "fault", "fail_copy_build", "file", file->path);
    return make_error(errc::internal, "import file: no space left on device (injected)");  // the file goes with `file`
  }
  out.file = std::move(*file);
  return out;
}

awaitable<result<void>> migrator::import_copy(const import_grant& g, result<built_copy> built, bool high_priority) {
  if (!built) co_return built.error();
  // The span scan and the ingest, one batch at a time (the import's line): the scan sees every
  // batch ingested before, so what this one replaces is counted exactly once.
  auto ingest = [&store = store_, &b = *built] { return store.ingest(std::move(b.file), b.sorted); };
  auto delta = co_await on_pool(high_priority ? high_pool_ : pool_, std::move(ingest));
  expand_buffers_.give(std::move(*built->payload));  // nothing reads the batch any more
  if (!delta) co_return delta.error();
  if (delta->added.count() == 0 && delta->replaced.count() == 0) co_return result<void>{};
  storage::layout_change c;
  c.adjust_stats.push_back({g.index_id, g.shard_id, *delta});
  c.durable = false;  // lost only with the machine: the digests then differ and the copy starts again
  co_return co_await layout(std::move(c));
}

awaitable<result<void>> migrator::import_batch(const import_grant& g, std::string payload, bool high_priority) {
  // A tail batch's writes go through the writer, in order. A small one is decoded right here:
  // a hop to the pool could queue it behind another import's file build. Most of a catch-up's
  // and a cutover's batches are this small; the cutover's last one may not be (up to 2,000
  // changes), and then takes the pool.
  auto prepare = [&range = g.range, &payload]() -> result<std::vector<storage::write_op>> {
    auto decoded = peer::decode_data_batch_view(payload);  // views into `payload`
    if (!decoded) return decoded.error();
    const auto& batch = *decoded;
    if (batch.kind == 0) return make_error(errc::invalid_argument, "a tail batch holds only changes");
    if (auto ok = check_keys(range, batch, false); !ok) return ok.error();
    std::vector<storage::write_op> ops;
    ops.reserve(batch.ops.size());
    for (const auto& op : batch.ops)
      ops.push_back({op.kind == 0 ? storage::op_kind::put : storage::op_kind::del, std::string(op.key), std::string(op.value)});
    return ops;
  };
  const bool here = payload.size() <= inline_tail_bytes;
  auto ops = co_await here_or_on(here, high_priority ? high_pool_ : pool_, std::move(prepare));
  if (!ops) co_return ops.error();
  if (ops->empty()) co_return result<void>{};
  // The target keeps no import position of its own: the source's persisted cursor (moved
  // only by acknowledgments of durable batches) is where a resumed copy or tail continues.
  auto r = co_await async_write(store_, std::move(*ops));
  if (!r) co_return r.error();
  for (std::size_t i = 0; i < r->size(); ++i)
    if ((*r)[i] == storage::op_status::no_shard)
      co_return make_error(errc::unavailable, "node " + cfg_.node_id + " does not hold the importing shard yet; retry");
  co_return result<void>{};
}

awaitable<result<peer::digest_reply>> migrator::import_digest(const import_grant& g) {
  // Every batch before this request is applied and counted (the import takes one request at
  // a time): the shard's kept digest is that of what it holds.
  auto kept = store_.stats(g.index_id, g.shard_id);
  if (!kept) co_return make_error(errc::unavailable, "node " + cfg_.node_id + " does not hold the importing shard yet; retry");
  const range_digest d = kept->digest();
  peer::digest_reply out;
  out.count = d.count();
  out.sum = d.limbs();
  co_return out;
}

awaitable<result<void>> migrator::import_reset(const import_grant& g) {
  storage::layout_change c;
  c.drop_ranges.push_back(g.range);
  // The shard's stats start again from zero with the range emptied.
  c.add.push_back({g.index_id, g.shard_id, g.range});
  if (auto l = co_await layout(std::move(c)); !l) co_return l.error();
  // Files wholly inside the range went with the drop; compacting the rest of it away (what
  // shared files with neighbours, the deletion itself) lets the imported files be ingested at
  // the bottom level instead of on top of the deleted data, where compactions would redo them.
  auto compact = [&store = store_, range = g.range] { return store.compact(range); };
  co_return co_await on_pool(pool_, std::move(compact));
}

}  // namespace shardd

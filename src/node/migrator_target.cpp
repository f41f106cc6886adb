// The migrator's target side: batches, digests and resets from a migration's source.
#include "node/migrator.hpp"

#include "node/store_ops.hpp"
#include "shardd/digest.hpp"
#include "shardd/key_codec.hpp"
#include "shardd/routing.hpp"

namespace shardd {

using boost::asio::awaitable;

// --- target side --------------------------------------------------------------------------------

awaitable<result<void>> migrator::apply_batch(std::string payload) {
  auto decoded = peer::decode_data_batch_view(payload);  // views into `payload`, kept alive here
  if (!decoded) co_return decoded.error();
  auto& batch = *decoded;
  if (batch.ops.empty()) co_return result<void>{};
  // Only a shard the map says is moving here takes imported data.
  {
    const auto snap = ring_.snapshot();
    const auto& key = batch.ops.front().key;
    const std::uint32_t index_id = key.size() >= index_prefix_bytes ? read_u32be(key) : 0;
    const index_entry* ix = nullptr;
    for (const auto& [name, e] : snap->map->indexes)
      if (e.id == index_id) ix = &e;
    bool here = false;
    if (ix) {
      if (const auto pos = shard_of_storage_key(*ix, key)) {
        const auto& sh = ix->shards[*pos];
        here = sh.state == shard_state::migrating && sh.target == cfg_.node_id;
      }
    }
    if (!here) co_return make_error(errc::unavailable, "node " + cfg_.node_id + " is not importing that shard (yet); retry");
  }
  if (batch.kind == 0) {
    // A copy batch holds sorted, distinct keys of one snapshot: it becomes an SST file that
    // is ingested whole — no log, no memtable, no compaction. The shard's exact stats come
    // from the verification scan.
    std::vector<std::pair<std::string_view, std::string_view>> sorted;
    sorted.reserve(batch.ops.size());
    for (const auto& op : batch.ops) sorted.emplace_back(op.key, op.value);
    auto ingest = [&store = store_, &sorted] { return store.ingest(sorted); };
    auto r = co_await on_pool(pool_, std::move(ingest));
    if (!r) co_return r.error();
    co_return result<void>{};
  }
  // The target keeps no import position of its own: the source's persisted cursor (moved
  // only by acknowledgments of durable batches) is where a resumed copy or tail continues.
  if (batch.ops.empty()) co_return result<void>{};
  std::vector<storage::write_op> ops;
  ops.reserve(batch.ops.size());
  for (const auto& op : batch.ops)
    ops.push_back({op.kind == 0 ? storage::op_kind::put : storage::op_kind::del, std::string(op.key), std::string(op.value)});
  auto r = co_await async_write(store_, std::move(ops));
  if (!r) co_return r.error();
  for (std::size_t i = 0; i < r->size(); ++i)
    if ((*r)[i] == storage::op_status::no_shard)
      co_return make_error(errc::unavailable, "node " + cfg_.node_id + " does not hold the importing shard yet; retry");
  co_return result<void>{};
}

awaitable<result<peer::digest_reply>> migrator::digest(peer::import_range r) {
  struct scanned {
    range_digest digest;
    std::uint64_t bytes = 0;
  };
  auto work = [&store = store_, range = key_range{r.begin, r.end}]() -> result<scanned> {
    scanned out;
    auto d = store.digest(range, nullptr, &out.bytes);
    if (!d) return d.error();
    out.digest = *d;
    return out;
  };
  auto d = co_await on_pool(pool_, std::move(work));
  if (!d) co_return d.error();
  // The scan saw every record of the import: its counts become the shard's exact stats.
  // The source sends nothing else while it waits for this answer, and later tail batches are
  // counted by the writer from here on.
  storage::layout_change stats;
  stats.set_stats.push_back({r.index_id, r.shard_id, storage::shard_stats{d->digest.count(), d->bytes}});
  if (auto l = co_await layout(std::move(stats)); !l) co_return l.error();
  peer::digest_reply out;
  out.count = d->digest.count();
  out.sum = d->digest.limbs();
  co_return out;
}

awaitable<result<void>> migrator::reset(peer::import_range r) {
  storage::layout_change c;
  key_range range{r.begin, r.end};
  c.drop_ranges.push_back(range);
  // The shard's stats start again from zero with the range emptied.
  c.add.push_back({r.index_id, r.shard_id, range});
  if (auto l = co_await layout(std::move(c)); !l) co_return l.error();
  // Files wholly inside the range went with the drop; compacting the rest of it away (what
  // shared files with neighbours, the deletion itself) lets the imported files be ingested at
  // the bottom level instead of on top of the deleted data, where compactions would redo them.
  auto compact = [&store = store_, range] { return store.compact(range); };
  co_return co_await on_pool(pool_, std::move(compact));
}

}  // namespace shardd

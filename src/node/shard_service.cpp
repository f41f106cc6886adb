#include "node/shard_service.hpp"

#include "node/disk_guard.hpp"

#include "node/faults.hpp"
#include "node/store_ops.hpp"
#include "shardd/key_codec.hpp"
#include "shardd/routing.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <functional>

namespace shardd {

namespace asio = boost::asio;
using asio::awaitable;

awaitable<result<peer::scan_reply>> shard_service::scan(peer::scan_request q) {
  const auto snap = ring_.snapshot();
  const auto* ix = snap->map->find_index(q.index);
  if (!ix) co_return make_error(errc::not_found, "index '" + q.index + "' does not exist");
  const auto* s = ix->find_shard(q.shard);
  if (!s || (!standalone_ && s->owner != cfg_.node_id))
    co_return make_error(errc::conflict, "shard " + std::to_string(q.shard) + " of '" + q.index + "' is not on node '" +
                                             cfg_.node_id + "'");
  const auto sr = shard_storage_range(*ix, *s);
  if (q.begin < sr.begin || q.end > sr.end || !(q.begin < q.end))
    co_return make_error(errc::invalid_argument, "scan range outside shard " + std::to_string(q.shard));
  // A cutover is moving the shard: the new owner may take writes before this node learns of
  // it, so a scan waits for the new map like a point read (the caller retries with it).
  if (store_.is_fenced(sr.begin))
    co_return make_error(errc::conflict, "shard " + std::to_string(q.shard) + " of '" + q.index + "' is being cut over on '" +
                                             cfg_.node_id + "'; retry with the next map");
  // Hash indexes store keys in token order: bounds and prefix are a filter on the user key.
  std::function<bool(std::string_view)> keep;
  if (ix->strategy == partitioning::hash && (q.key_start || q.key_end || q.key_prefix)) {
    keep = [ix, start = q.key_start, end = q.key_end, prefix = q.key_prefix](std::string_view k) {
      const auto user = user_key_of(*ix, k);  // ix: in `snap`, alive until this coroutine ends
      if (start && user < *start) return false;
      if (end && user >= *end) return false;
      if (prefix && !user.starts_with(*prefix)) return false;
      return true;
    };
  }
  auto* counters = snap->load ? snap->load->find(ix->id, s->id) : nullptr;  // alive while `snap` is
  const auto started = std::chrono::steady_clock::now();
  auto work = [&store = store_, q = std::move(q), keep = std::move(keep)]() -> result<peer::scan_reply> {
    auto got = store.scan(key_range{q.begin, q.end}, q.after, q.limit, keep, std::max<std::size_t>(q.max_examined, 1),
                          max_scan_bytes);
    if (!got) return got.error();
    peer::scan_reply out;
    out.records.reserve(got->records.size());
    for (auto& r : got->records) out.records.emplace_back(std::move(r.key), std::move(r.value));
    out.resume_after = std::move(got->resume_after);
    out.examined = static_cast<std::uint32_t>(got->examined);
    return out;
  };
  auto page = co_await on_pool(read_pool_, std::move(work));
  if (counters) {
    counters->add(counters->scans);
    if (page) {
      std::uint64_t bytes = 0;
      for (const auto& [k, v] : page->records) bytes += k.size() + v.size();
      counters->add(counters->scanned, page->records.size());
      counters->add(counters->bytes_out, bytes);
    } else if (page.error().code == errc::internal || page.error().code == errc::corrupt) {
      counters->add(counters->errors);
    }
    counters->time(load_op::scan, std::chrono::steady_clock::now() - started);
  }
  co_return page;
}

result<peer::stats_reply> shard_service::stats() const {
  peer::stats_reply out;
  const auto snap = ring_.snapshot();
  // Owned shards only: a shard being imported here is counted by its owner until the commit.
  for (const auto& r : local_ranges(*snap->map, cfg_.node_id, true))
    if (auto st = store_.stats(r.index_id, r.shard_id)) out.shards.push_back({r.index_id, r.shard_id, st->records, st->bytes});
  return out;
}

awaitable<result<peer::median_reply>> shard_service::median(peer::median_request q) {
  const auto snap = ring_.snapshot();
  const auto* ix = snap->map->find_index(q.index);
  const auto* sh = ix ? ix->find_shard(q.shard) : nullptr;
  if (!sh || sh->owner != cfg_.node_id)
    co_return make_error(errc::conflict, "shard " + std::to_string(q.shard) + " of '" + q.index + "' is not on this node");
  const auto range = shard_storage_range(*ix, *sh);
  const auto total = store_.stats(ix->id, sh->id).value_or(storage::shard_stats{}).records;
  if (static const std::uint32_t delay_ms = test_fault("median_delay_ms"); delay_ms > 0) {
    asio::steady_timer t(co_await asio::this_coro::executor);  // a shard slow to walk, for tests
    t.expires_after(std::chrono::milliseconds(delay_ms));
    (void)co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  auto work = [&store = store_, range, total, ix]() -> result<peer::median_reply> {
    peer::median_reply out;
    out.records = total;
    if (total < 2) return out;
    // Walk to the middle record; its key starts the upper half.
    std::uint64_t seen = 0;
    std::optional<std::string> after;
    while (seen <= total / 2) {
      auto page = store.scan(range, after, std::min<std::uint64_t>(10000, total / 2 - seen + 1));
      if (!page) return page.error();
      if (page->records.empty()) break;
      seen += page->records.size();
      if (seen > total / 2) {
        out.key = user_key_of(*ix, page->records.back().key);
        break;
      }
      after = page->records.back().key;
    }
    return out;
  };
  co_return co_await on_pool(read_pool_, std::move(work));
}

awaitable<result<shard_service::full_check>> shard_service::verify(const index_entry& ix, const shard_entry& s) {
  // One at a time: a full check reads the whole shard.
  if (verifying_.exchange(true))
    co_return make_error(errc::conflict, "a full check of a shard runs on " + cfg_.node_id + " already; retry when it ends");
  struct clear {
    std::atomic<bool>& flag;
    ~clear() { flag = false; }
  } clear_on_exit{verifying_};
  if (static const std::uint32_t delay_ms = test_fault("verify_delay_ms"); delay_ms > 0) {
    asio::steady_timer t(co_await asio::this_coro::executor);  // a large shard, for tests
    t.expires_after(std::chrono::milliseconds(delay_ms));
    (void)co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  // The kept stats and a snapshot at the same sequence, then a scan of the snapshot, which
  // must agree. All of it on the bulk pool: stats_now waits for the writer's sequence lock.
  auto work = [&store = store_, &node = cfg_.node_id, ix_id = ix.id, s_id = s.id, name = ix.name,
               range = shard_storage_range(ix, s)]() -> result<full_check> {
    std::optional<storage::snapshot> snap;
    const auto at = store.stats_now(ix_id, s_id, &snap);
    if (!at) return make_error(errc::conflict, "shard " + std::to_string(s_id) + " of '" + name + "' is not on " + node);
    if (!snap) return make_error(errc::internal, "cannot take a snapshot");
    storage::shard_stats scanned;
    auto d = store.digest(range, &*snap, &scanned.bytes);
    if (!d) return d.error();
    scanned.set_digest(*d);
    return full_check{at->stats, scanned, at->seq};
  };
  co_return co_await on_pool(bulk_pool_, std::move(work));
}

awaitable<result<std::vector<storage::op_status>>> shard_service::write(std::vector<storage::write_op> ops) {
  if (disk_)
    if (auto full = disk_->refuse_puts())
      for (const auto& op : ops)
        if (op.kind == storage::op_kind::put) co_return *full;  // deletes free space: they pass
  // Which shard each op writes, for the monitor: ops of a bulk come from one index, in runs
  // of the same shard more often than not.
  const auto snap = ring_.snapshot();
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::pair<shard_counters*, std::uint64_t>> target(ops.size(), {nullptr, 0});  // counters, bytes
  if (snap->load) {
    const index_entry* ix = nullptr;
    for (std::size_t i = 0; i < ops.size(); ++i) {
      const auto& op = ops[i];
      if ((op.kind != storage::op_kind::put && op.kind != storage::op_kind::del) || op.key.size() < 4) continue;
      const auto id = read_u32be(op.key);
      if (!ix || ix->id != id) {
        ix = nullptr;
        for (const auto& [name, e] : snap->map->indexes)
          if (e.id == id) ix = &e;
        if (!ix) continue;
      }
      const auto pos = shard_of_storage_key(*ix, op.key);
      if (!pos) continue;
      auto* sc = snap->load->find(id, ix->shards[*pos].id);
      target[i] = {sc, op.key.size() + op.value.size()};
      if (sc && sc->hot.due())
        if (auto d = decode_storage_key(op.key, ix->strategy)) sc->hot.offer(d->user_key);
    }
  }
  auto r = co_await async_write(store_, std::move(ops));
  shard_counters* last = nullptr;
  const auto took = std::chrono::steady_clock::now() - started;
  for (std::size_t i = 0; i < target.size(); ++i) {
    auto* sc = target[i].first;
    if (!sc) continue;
    if (!r) {
      sc->add(sc->errors);
      continue;
    }
    const auto st = (*r)[i];
    if (st == storage::op_status::created || st == storage::op_status::updated) {
      sc->add(sc->writes);
      sc->add(sc->bytes_in, target[i].second);
    } else if (st == storage::op_status::deleted) {
      sc->add(sc->deletes);
    }
    if (sc != last) sc->time(load_op::bulk, took);  // once per run of one shard's ops
    last = sc;
  }
  co_return r;
}

}  // namespace shardd

#include "node/migrator.hpp"
#include "node/migrator_outgoing.hpp"

#include "node/actor.hpp"
#include "node/faults.hpp"
#include "common/log.hpp"
#include "node/store_ops.hpp"
#include "shardd/batch_codec.hpp"
#include "shardd/key_codec.hpp"
#include "shardd/routing.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdlib>
#include <deque>

namespace shardd {

using namespace migrator_detail;

migration_faults migration_faults::from_env() {
  return migration_faults{test_fault("corrupt_batch"), test_fault("digest_mismatch"), test_fault("lose_commit_answer"),
                          test_fault("kill_after_commit"), test_fault_text("kill_in_phase"),
                          test_fault("partition_after_commit"), test_fault("fail_copy_build")};
}


migrator::migrator(asio::any_io_executor ex, const node_config& cfg, storage::store& store, ring_actor& ring, peers& p,
                   asio::thread_pool& pool, asio::thread_pool& high_pool)
    : ex_(std::move(ex)), cfg_(cfg), store_(store), ring_(ring), peers_(p), pool_(pool), high_pool_(high_pool),
      faults_(migration_faults::from_env()), strand_(asio::make_strand(ex_)) {
  node_rate_ = ring_.snapshot()->map->settings.migration_bytes_per_sec;
  shares_.set_node_rate(node_rate_, clock_type::now());
  // The node's cap comes with the map (every node applies the cluster's setting), and so do
  // the imports it allows.
  ring_.on_install([this](const snapshot_ptr& snap) {
    asio::post(strand_, [this, snap] {
      if (snap->map->settings.migration_bytes_per_sec != node_rate_) {
        node_rate_ = snap->map->settings.migration_bytes_per_sec;
        shares_.set_node_rate(node_rate_, clock_type::now());
      }
      prune_imports(snap);
    });
  });
}

migrator::~migrator() = default;

awaitable<void> migrator::stop(std::chrono::milliseconds limit) {
  stopping_ = true;
  auto take_all = [this] {
    std::vector<std::shared_ptr<outgoing>> out;
    for (const auto& [id, m] : running_) out.push_back(m);
    prune_imports(nullptr, true);
    return out;
  };
  auto all = co_await run_on(strand_, std::move(take_all));
  // Each drive is cancelled on its own strand (a cancellation_signal is not thread-safe).
  for (auto& m : all) asio::post(m->strand, [m] { m->cancel.emit(asio::cancellation_type::terminal); });
  asio::steady_timer t(co_await asio::this_coro::executor);
  const auto until = clock_type::now() + limit;
  while (drives_ > 0 && clock_type::now() < until) {
    t.expires_after(std::chrono::milliseconds(5));
    (void)co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  if (drives_ > 0) SHARDD_LOG(warn, "migrations_not_stopped", "count", drives_.load());
}

void migrator::spawn_drive(std::shared_ptr<outgoing> m, std::vector<migration_fsm::action> actions) {
  ++drives_;
  auto done = [this, id = m->rec.id](std::exception_ptr e) {
    --drives_;
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const boost::system::system_error& ex) {
      if (ex.code() == asio::error::operation_aborted && stopping_) {
        SHARDD_LOG(info, "migration_stopped", "migration", id);  // resumes from its persisted state after a restart
        return;
      }
      SHARDD_LOG(err, "migration_crashed", "migration", id, "error", ex.what());
    } catch (const std::exception& ex) {
      SHARDD_LOG(err, "migration_crashed", "migration", id, "error", ex.what());
    }
  };
  auto slot = m->cancel.slot();
  asio::co_spawn(m->strand, drive(m, std::move(actions)), asio::bind_cancellation_slot(slot, std::move(done)));
}

void migrator::launch(std::shared_ptr<outgoing> m, std::vector<migration_fsm::action> actions) {
  running_[m->rec.id] = m;
  shares_.activate(m->rec.priority, clock_type::now());
  m->bucket = token_bucket(m->rec.max_bytes_per_sec, std::max<std::uint64_t>(m->rec.max_bytes_per_sec / 4, 64 * 1024));
  if (!m->range.begin.empty()) store_.watch(m->range);
  m->driving = true;
  asio::post(m->strand, [this, m, actions = std::move(actions)]() mutable { spawn_drive(std::move(m), std::move(actions)); });
}

void migrator::finish(const std::string& id) {
  asio::post(strand_, [this, id] {
    auto it = running_.find(id);
    if (it == running_.end()) return;
    if (!it->second->range.begin.empty()) store_.unwatch(it->second->range);
    shares_.deactivate(it->second->rec.priority, clock_type::now());
    running_.erase(it);
  });
}

awaitable<result<void>> migrator::start(migration_record rec) {
  // The check and the entry in the table happen in one step on the strand: a start repeated
  // while the first is on its way launches one migration.
  auto check_and_launch = [this, rec = std::move(rec)]() mutable { return begin(std::move(rec)); };
  co_return co_await run_on(strand_, std::move(check_and_launch));
}

result<void> migrator::begin(migration_record rec) {
  if (running_.contains(rec.id)) return {};  // a repeated start
  const auto snap = ring_.snapshot();
  const auto* ix = snap->map->find_index(rec.index);
  const auto* s = ix ? ix->find_shard(rec.shard) : nullptr;
  if (!s) return make_error(errc::not_found, "shard " + std::to_string(rec.shard) + " of " + rec.index + " is gone");
  if (s->owner != cfg_.node_id)
    return make_error(errc::conflict, "shard " + std::to_string(rec.shard) + " of " + rec.index + " is not on " + cfg_.node_id);
  auto m = std::make_shared<outgoing>(ex_);
  m->rec = std::move(rec);
  m->range = shard_storage_range(*ix, *s);
  // Totals for progress and ETA: the shard's exact stats now (writes during the move add a
  // little to what is actually sent).
  if (auto st = store_.stats(ix->id, s->id)) {
    m->rec.bytes_total = st->bytes;
    m->rec.records_total = st->records;
  }
  auto actions = m->fsm.on(make_event(E::start));
  m->rec.phase = m->fsm.current().phase;
  SHARDD_LOG(info, "migration_started", "migration", m->rec.id, "index", m->rec.index, "shard", m->rec.shard, "target",
             m->rec.target, "priority", to_string(m->rec.priority));
  launch(std::move(m), std::move(actions));
  return {};
}

awaitable<result<void>> migrator::control(std::string id, std::string command) {
  auto find = [this, &id] {
    auto it = running_.find(id);
    return it == running_.end() ? std::shared_ptr<outgoing>() : it->second;
  };
  auto m = co_await run_on(strand_, std::move(find));
  if (!m) co_return make_error(errc::not_found, "migration '" + id + "' does not run on " + cfg_.node_id);
  if (command != "pause" && command != "resume" && command != "cancel")
    co_return make_error(errc::invalid_argument, "unknown command '" + command + "'");
  asio::post(m->strand, [this, m, command] {
    if (m->driving) {
      m->control = command;  // picked up between two steps
      return;
    }
    // Paused (not driving): resume and cancel start a drive of their own.
    auto actions = m->fsm.on(make_event(command == "resume" ? E::resume : command == "cancel" ? E::cancel : E::pause));
    if (actions.empty()) return;
    m->driving = true;
    spawn_drive(m, std::move(actions));
  });
  co_return result<void>{};
}

awaitable<void> migrator::prepare() {
  auto stored = store_.scan_meta(out_prefix);
  if (!stored) {
    SHARDD_LOG(err, "migration_recovery_failed", "error", stored.error().detail);
    co_return;
  }
  const auto snap = ring_.snapshot();
  storage::layout_change fence;
  for (const auto& [key, value] : *stored) {
    // A state that does not read back is skipped and logged, never fatal to start-up.
    auto persisted = outgoing_state_from_json(value);
    if (!persisted) {
      SHARDD_LOG(err, "migration_state_unreadable", "key", key, "error", persisted.error().detail);
      continue;
    }
    // A move that was cutting over or had committed may have a new owner that this node's
    // stored map does not show yet: its range takes no write until the map is current.
    const auto phase = persisted->fsm.phase;
    if (phase == migration_phase::cutover || phase == migration_phase::retiring) {
      const auto* ix = snap->map->find_index(persisted->record.index);
      const auto* s = ix ? ix->find_shard(persisted->record.shard) : nullptr;
      if (s && s->owner == cfg_.node_id) {
        fence.fence.push_back(shard_storage_range(*ix, *s));
        SHARDD_LOG(info, "migration_fenced_until_map", "migration", persisted->record.id, "phase", to_string(phase));
      }
    }
    recovered_.push_back(std::move(*persisted));
  }
  if (fence.fence.empty()) co_return;
  unsettled_ = fence.fence;
  if (auto r = co_await layout(std::move(fence)); !r) SHARDD_LOG(err, "migration_fence_failed", "error", r.error().detail);
}

void migrator::recover() {
  auto run = [this]() -> awaitable<void> { co_await recover_all(); };
  asio::co_spawn(strand_, std::move(run), asio::detached);
}

awaitable<void> migrator::recover_all() {
  if (!unsettled_.empty()) {
    // Decide from the controller's map, not the one on disk: fetch it (as long as it takes).
    for (int i = 0; !stopping_; ++i) {
      const auto snap = ring_.snapshot();
      if (snap->map->controller == cfg_.node_id) break;  // this node's map is the cluster's
      auto f = make_frame(peer::frame_type::map_get, {}, snap->map->version);
      if (auto r = co_await peers_.call(snap->map->controller, std::move(f), peer_timeout); r) {
        auto fetched = from_json(r->payload);
        if (fetched && fetched->controller == r->sender) {
          (void)co_await ring_.install(std::move(*fetched));  // or ours is as new already
          break;
        }
      } else if (i == 0 || i % 30 == 0) {
        SHARDD_LOG(warn, "migration_recovery_waits", "for", "the controller's map", "error", r.error().detail);
      }
      co_await sleep_for(std::chrono::seconds(1));
    }
    if (stopping_) co_return;
    storage::layout_change u;
    u.unfence = std::move(unsettled_);
    (void)co_await layout(std::move(u));
  }
  for (auto& persisted : recovered_) {
    const auto* st = &persisted.fsm;
    auto m = std::make_shared<outgoing>(ex_);
    m->rec = std::move(persisted.record);
    m->fsm = migration_fsm(*st, {});
    const auto snap = ring_.snapshot();
    const auto* ix = snap->map->find_index(m->rec.index);
    const auto* s = ix ? ix->find_shard(m->rec.shard) : nullptr;
    if (!s && !is_final(st->phase)) {
      SHARDD_LOG(warn, "migration_abandoned", "migration", m->rec.id, "reason", "the shard is gone from the map");
      continue;
    }
    if (s) m->range = shard_storage_range(*ix, *s);
    std::vector<migration_fsm::action> actions;
    if (is_final(st->phase)) {
      actions.push_back(migration_fsm::action(A::persist));  // its final report may not have reached the controller
    } else {
      migration_fsm::event e = make_event(E::recovered);
      e.match = s && s->owner == m->rec.target;  // committed while we were down
      actions = m->fsm.on(e);
      SHARDD_LOG(info, "migration_resumed", "migration", m->rec.id, "phase", to_string(m->fsm.current().phase), "resumes",
                 m->fsm.current().resumes);
    }
    launch(std::move(m), std::move(actions));
  }
  recovered_.clear();
}

awaitable<result<void>> migrator::layout(storage::layout_change change) {
  co_return co_await async_layout(store_, std::move(change));
}

awaitable<result<void>> migrator::persist(outgoing& m) {
  const auto& st = m.fsm.current();
  m.rec.phase = st.phase;
  m.rec.paused = st.paused;
  m.rec.bytes_done = st.bytes_done;
  m.rec.records_done = st.records_done;
  m.rec.recopies = st.recopies;
  m.rec.resumes = st.resumes;
  if (!st.error.empty()) m.rec.error = st.error;
  m.rec.updated_ms = wall_ms();
  std::vector<storage::write_op> ops;
  ops.push_back({storage::op_kind::meta_put, out_prefix + m.rec.id, to_json(outgoing_state{m.rec, st})});
  auto r = co_await async_write(store_, std::move(ops));
  if (!r) co_return r.error();
  if (!faults_.kill_in_phase.empty() && faults_.kill_in_phase == to_string(st.phase)) kill_for_fault("kill_in_phase", "source");
  co_return result<void>{};
}

awaitable<void> migrator::report(outgoing& m, bool force) {
  const auto now = clock_type::now();
  const bool phase_changed = m.rec.phase != m.reported_phase;
  if (!force && !phase_changed && now - m.last_report < report_every) co_return;
  const double secs = std::chrono::duration<double>(now - m.rate_since).count();
  if (secs >= 1.0) {
    m.rec.rate_bytes_per_sec = static_cast<std::uint64_t>(static_cast<double>(m.rate_bytes) / secs);
    m.rate_bytes = 0;
    m.rate_since = now;
  }
  auto limits = [this, p = m.rec.priority, cap = m.rec.max_bytes_per_sec] {
    return std::string(to_string(binding_limit(cap, shares_.rate_of(p), adaptive_.limit(),
                                               static_cast<std::uint32_t>(running_.size()))));
  };
  m.rec.rate_limited_by = co_await run_on(strand_, std::move(limits));
  m.last_report = now;
  m.controller_phase.reset();
  const auto snap = ring_.snapshot();
  auto f = make_frame(peer::frame_type::migrate_report, to_json(m.rec), snap->map->version);
  auto r = co_await peers_.call(snap->map->controller, std::move(f), peer_timeout);
  if (!r) {
    SHARDD_LOG(debug, "migration_report_failed", "migration", m.rec.id, "error", r.error().detail);
    co_return;
  }
  m.reported_phase = m.rec.phase;
  // The controller's record is authoritative: an operator may have cancelled meanwhile.
  auto theirs = migration_from_json(r->payload);
  if (!theirs) co_return;
  m.controller_phase = theirs->phase;
  if (theirs->phase == migration_phase::cancelled && !is_final(m.fsm.current().phase)) m.control = "cancel";
}

awaitable<void> migrator::throttle(outgoing& m, std::uint64_t bytes) {
  auto take = [this, p = m.rec.priority, bytes] {
    const auto now = clock_type::now();
    adaptive_sent_ += bytes;
    return std::max(shares_.take(p, bytes, now), adaptive_bucket_.take(bytes, now));
  };
  auto wait = co_await run_on(strand_, std::move(take));
  wait = std::max(wait, m.bucket.take(bytes, clock_type::now()));
  co_await sleep_for(wait);
}

void migrator::set_foreground(foreground_fn fn) {
  foreground_ = std::move(fn);
  asio::co_spawn(strand_, adapt_loop(), asio::detached);
}

awaitable<void> migrator::adapt_loop() {
  asio::steady_timer t(strand_);
  while (!stopping_) {
    t.expires_after(std::chrono::milliseconds(100));
    (void)co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    const auto now = clock_type::now();
    const auto& st = ring_.snapshot()->map->settings;
    if (!st.migration_adaptive || running_.empty()) {
      // Off, or nothing sending (a slow foreground is then not the moves' doing).
      if (adaptive_.limit()) {
        SHARDD_LOG(info, "migration_rate_adapted", "limit", 0, "why", st.migration_adaptive ? "no moves" : "adaptive off");
        adaptive_.reset();
        adaptive_bucket_.set_rate(0, 0, now);
      }
      adaptive_sent_ = 0;
      adaptive_at_ = now;
      adaptive_samples_ = foreground_().first;
      continue;
    }
    const auto fg = foreground_();
    const std::uint64_t samples = fg.first, p99_us = fg.second;
    if (samples == adaptive_samples_) continue;  // one step per monitor sample
    adaptive_samples_ = samples;
    const double secs = std::max(1e-3, std::chrono::duration<double>(now - adaptive_at_).count());
    const auto observed = static_cast<std::uint64_t>(static_cast<double>(adaptive_sent_) / secs);
    adaptive_sent_ = 0;
    adaptive_at_ = now;
    const auto before = adaptive_.limit();
    const auto limit = adaptive_.update(p99_us ? std::optional<std::uint64_t>(p99_us) : std::nullopt,
                                        static_cast<std::uint64_t>(st.adaptive_p99_ms * 1000), st.adaptive_min_bytes_per_sec,
                                        node_rate_, observed);
    if (limit != before) {
      adaptive_bucket_.set_rate(limit, std::max<std::uint64_t>(limit / 4, 64 * 1024), now);
      SHARDD_LOG(info, "migration_rate_adapted", "limit", limit, "p99_us", p99_us, "bound_ms", st.adaptive_p99_ms,
                 "observed", observed);
    }
  }
}

awaitable<std::size_t> migrator::copy_batch_bytes(const outgoing& m) {
  std::uint64_t rate = m.rec.max_bytes_per_sec;
  auto read = [this] {
    const auto a = adaptive_.limit();
    return a > 0 && (node_rate_ == 0 || a < node_rate_) ? a : node_rate_;
  };
  const auto node_rate = co_await run_on(strand_, std::move(read));
  if (node_rate > 0 && (rate == 0 || node_rate < rate)) rate = node_rate;
  if (rate == 0) co_return m.compressing ? copy_batch_compressed_max : copy_batch_max;
  co_return static_cast<std::size_t>(std::clamp<std::uint64_t>(rate / 8, copy_batch_min, copy_batch_max));
}

awaitable<result<peer::frame>> migrator::send_batch(outgoing& m, std::string payload, std::uint64_t bytes,
                                                    std::optional<std::uint32_t> checksum, bool compressed) {
  co_await throttle(m, bytes);
  auto f = make_frame(peer::frame_type::data_batch, std::move(payload), ring_.snapshot()->map->version);
  f.header.flags = peer::flag_checksummed;
  if (compressed) f.header.flags |= peer::flag_compressed;
  // A high-priority move's batches are decoded and ingested on the target's high-priority pool.
  if (m.rec.priority == migration_priority::high) f.header.flags |= peer::flag_high_priority;
  f.header_room = true;  // the batch was written after room for the header (no copy to frame it)
  f.checksum = checksum;
  if (faults_.corrupt_batch > 0 && ++batches_sent_ == faults_.corrupt_batch) {
    f.corrupt_after_checksum = true;
    SHARDD_LOG(warn, "fault_injected", "migration", m.rec.id, "fault", "corrupt_batch");
  }
  auto r = co_await peers_.call(m.rec.target, std::move(f), peer_timeout, net::peer_lane::bulk);
  if (r) {
    m.rate_bytes += bytes;
    ring_.loads().node().migration_bytes_out.fetch_add(bytes, std::memory_order_relaxed);
  }
  co_return r;
}

awaitable<migration_fsm::event> migrator::copy_step(outgoing& m) {
  if (!m.snap) co_return failed(E::peer_failed, "no snapshot");
  // Keep the window full: read ahead of the acknowledged cursor and send.
  const auto limit = co_await copy_batch_bytes(m);
  const std::size_t window = limit < copy_batch_max ? copy_window_capped : copy_window;
  while (m.inflight.size() < window && !m.read_done) {
    std::optional<std::string> after;
    if (!m.read_cursor.empty()) after = m.read_cursor;
    // Records go from the snapshot's iterator straight into the batch's payload.
    struct page {
      std::string payload;
      storage::store::visit_result seen;
      std::uint32_t checksum = 0;
      bool compressed = false;
      std::size_t saved = 0;  // bytes compression kept off the wire
    };
    auto read = [&store = store_, snap = *m.snap, range = m.range, after, limit, id = m.rec.id,
                 min_ratio = cfg_.migration_compress_min_ratio]() -> result<page> {
      peer::data_batch_writer w(id, 0, limit + limit / 8, true);
      auto seen = store.scan_snapshot_visit(snap, range, after, batch_records, limit,
                                            [&w](std::string_view k, std::string_view v) { w.add(0, k, v); });
      if (!seen) return seen.error();
      if (seen->records == 0) return page{};
      std::string payload = w.finish(seen->last_key, 0);
      // Compressed here, on the pool, if it compresses well enough to pay for it.
      bool compressed = false;
      std::size_t saved = 0;
      if (auto c = peer::compress_batch(payload, peer::header_bytes, min_ratio)) {
        saved = payload.size() - c->size();
        payload = std::move(*c);
        compressed = true;
      }
      // The frame's checksum, here while the batch is in this core's cache rather than on the
      // network thread that sends it.
      const auto checksum = peer::crc32c(std::string_view(payload).substr(peer::header_bytes));
      return page{std::move(payload), std::move(*seen), checksum, compressed, saved};
    };
    auto read_page = co_await on_pool(pool_for(m.rec.priority), std::move(read));
    if (!read_page) co_return failed(E::peer_failed, "reading the snapshot: " + read_page.error().detail);
    if (read_page->seen.records == 0) {
      m.read_done = true;
      break;
    }
    m.compressing = read_page->compressed;
    const std::uint64_t bytes = read_page->seen.bytes;
    outgoing::flight f{std::make_shared<send_channel>(m.strand, 1), read_page->seen.last_key, bytes,
                       read_page->seen.records};
    m.read_cursor = f.cursor;
    // The send owns a reference: an abandoned send may finish after the migration has.
    auto send = [this, mp = m.shared_from_this(), payload = std::move(read_page->payload), bytes,
                 checksum = read_page->checksum, compressed = read_page->compressed, saved = read_page->saved,
                 done = f.done]() mutable -> awaitable<void> {
      auto r = co_await send_batch(*mp, std::move(payload), bytes, checksum, compressed);
      if (r && saved > 0) ring_.loads().node().migration_wire_saved.fetch_add(saved, std::memory_order_relaxed);
      (void)done->try_send(boost::system::error_code{}, std::move(r));
    };
    asio::co_spawn(m.strand, std::move(send), asio::detached);
    m.inflight.push_back(std::move(f));
  }
  if (m.inflight.empty()) {
    // Let the snapshot go: it pins every version of the range it saw, which would keep
    // deleted data alive (and in the way of a later import here) until the migration ends.
    m.snap.reset();
    co_return make_event(E::copy_finished);
  }
  auto f = std::move(m.inflight.front());
  m.inflight.pop_front();
  auto [ec, r] = co_await f.done->async_receive(asio::as_tuple(asio::use_awaitable));
  if (ec || !r) {
    // Abandon the window; the next copy starts again after the last acknowledged key (what
    // was applied beyond it is applied again, harmlessly).
    m.inflight.clear();
    m.read_done = false;
    m.read_cursor = m.fsm.current().cursor;
    co_return ec ? failed(E::peer_failed, ec.message()) : from_send_error(r.error());
  }
  migration_fsm::event e = make_event(E::batch_acked);
  e.cursor = f.cursor;
  e.bytes = f.bytes;
  e.records = f.records;
  co_return e;
}

awaitable<result<std::uint64_t>> migrator::ship_tail(outgoing& m, std::uint64_t until) {
  std::uint64_t shipped = 0;
  for (;;) {
    const auto from = m.fsm.current().tail_seq;
    if (from >= until) co_return shipped;
    if (store_.last_write(m.range) <= from) co_return shipped;  // nothing written since: no log to read
    auto read = [&store = store_, range = m.range, from, until] { return store.changes_since(from, range, batch_bytes, until); };
    auto page = co_await on_pool(pool_for(m.rec.priority), std::move(read));
    if (!page) co_return page.error();
    if (page->last_seq <= from) co_return shipped;  // nothing more in the log yet
    migration_fsm::event ack = make_event(E::batch_acked);
    ack.seq = page->last_seq;
    if (!page->changes.empty()) {
      std::uint64_t bytes = 0;
      for (const auto& c : page->changes) bytes += c.key.size() + c.value.size();
      peer::data_batch_writer w(m.rec.id, 1, bytes + 9 * page->changes.size(), true);
      for (const auto& c : page->changes) w.add(c.deleted ? 1 : 0, c.key, c.value);
      shipped += w.count();
      ack.bytes = bytes;
      ack.records = w.count();
      auto r = co_await send_batch(m, w.finish("", page->last_seq), bytes);
      if (!r) co_return r.error();
    }
    // Record the position; a checkpoint action is persisted right away.
    for (const auto& a : m.fsm.on(ack))
      if (a.kind == A::persist) (void)co_await persist(m);
  }
}

awaitable<migration_fsm::event> migrator::tail_round(outgoing& m) {
  const auto until = store_.latest_sequence();
  auto shipped = co_await ship_tail(m, until);
  if (!shipped) {
    if (shipped.error().code == errc::conflict) co_return failed(E::commit_refused, shipped.error().detail);
    co_return from_send_error(shipped.error());
  }
  migration_fsm::event e = make_event(E::tail_round);
  e.ops = *shipped;
  co_return e;
}

awaitable<migration_fsm::event> migrator::verify(outgoing& m) {
  const auto map = ring_.snapshot();
  const auto* ix = map->map->find_index(m.rec.index);
  if (!ix) co_return failed(E::peer_failed, "index " + m.rec.index + " is gone");
  // The shard's digest is kept by the store with every write: read it with the sequence it is
  // exact at, bring the target exactly to that sequence, and compare it with the target's,
  // kept the same way over what it ingested and applied. No side reads the range again.
  // On the pool: stats_now waits for the writer's sequence lock, held across a write's fsync
  // and an ingest.
  auto read_kept = [&store = store_, index_id = ix->id, shard = m.rec.shard] { return store.stats_now(index_id, shard); };
  const auto at = co_await on_pool(pool_for(m.rec.priority), std::move(read_kept));
  if (!at) co_return failed(E::peer_failed, "the shard is no longer held here");
  auto shipped = co_await ship_tail(m, at->seq);
  if (!shipped) co_return from_send_error(shipped.error());
  peer::import_range req{m.rec.id, ix->id, m.rec.shard, m.range.begin, m.range.end};
  auto f = make_frame(peer::frame_type::import_digest, peer::encode(req), map->map->version);
  auto r = co_await peers_.call(m.rec.target, std::move(f), std::chrono::seconds(120));
  if (!r) co_return failed(E::peer_failed, "target digest: " + r.error().detail);
  auto theirs = peer::decode_digest_reply(r->payload);
  if (!theirs) co_return failed(E::peer_failed, "unreadable digest");
  const auto remote = range_digest::from(theirs->count, theirs->sum);
  const auto local = at->stats.digest();
  bool match = remote == local;
  if (faults_.digest_mismatch > 0 && ++digests_compared_ <= faults_.digest_mismatch) {
    SHARDD_LOG(warn, "fault_injected", "migration", m.rec.id, "fault", "digest_mismatch");
    match = false;
  }
  SHARDD_LOG(info, "migration_verified", "migration", m.rec.id, "records", local.count(), "match", match ? "yes" : "no");
  if (!match)
    SHARDD_LOG(warn, "migration_digest_mismatch", "migration", m.rec.id, "local_records", local.count(), "target_records",
               remote.count());
  migration_fsm::event e = make_event(E::verified);
  e.match = match;
  co_return e;
}

awaitable<void> migrator::drive(std::shared_ptr<outgoing> m, std::vector<migration_fsm::action> first) {
  std::deque<migration_fsm::action> todo(first.begin(), first.end());
  while (!todo.empty() && !stopping_) {
    if (!m->control.empty()) {
      // A command from the controller, between two steps.
      const auto cmd = std::exchange(m->control, {});
      auto e = make_event(cmd == "cancel" ? E::cancel : cmd == "pause" ? E::pause : E::resume);
      e.reason = cmd == "cancel" ? "cancelled by operator" : "";
      auto more = m->fsm.on(e);
      if (!more.empty()) todo.assign(more.begin(), more.end());
      continue;
    }
    const auto a = todo.front();
    todo.pop_front();
    std::optional<migration_fsm::event> ev;
    switch (a.kind) {
      case A::persist:
        if (auto r = co_await persist(*m); !r) SHARDD_LOG(err, "migration_persist_failed", "migration", m->rec.id, "error", r.error().detail);
        co_await report(*m, false);
        break;
      case A::copy_from_start:
      case A::copy_from_cursor: {
        if (a.kind == A::copy_from_start) {
          // Copy from the start: the target first drops whatever it holds of the range (an
          // earlier import, or a copy it kept after moving the shard away) and compacts it out.
          const auto& ix = *ring_.snapshot()->map->find_index(m->rec.index);
          peer::import_range req{m->rec.id, ix.id, m->rec.shard, m->range.begin, m->range.end};
          auto f = make_frame(peer::frame_type::import_reset, peer::encode(req), ring_.snapshot()->map->version);
          if (auto r = co_await peers_.call(m->rec.target, std::move(f), std::chrono::seconds(120)); !r) {
            ev = failed(E::peer_failed, "reset: " + r.error().detail);
            break;
          }
        }
        auto snap = store_.take_snapshot();
        if (!snap) {
          ev = failed(E::peer_failed, snap.error().detail);
          break;
        }
        m->snap = std::move(*snap);
        m->inflight.clear();
        m->read_done = false;
        m->read_cursor = a.kind == A::copy_from_start ? std::string() : m->fsm.current().cursor;
        // A fresh copy's tail starts at its snapshot. A resumed copy keeps the first
        // snapshot's sequence: changes to keys copied before the restart are in the log
        // from there on, and replaying them in order ends with the current values.
        if (a.cursor.empty() && m->fsm.current().cursor.empty()) m->fsm.set_snapshot_seq(m->snap->seq);
        ev = co_await copy_step(*m);
        break;
      }
      case A::send_next:
        if (m->fsm.current().phase == migration_phase::copying) ev = co_await copy_step(*m);
        break;
      case A::tail: ev = co_await tail_round(*m); break;
      case A::verify: ev = co_await verify(*m); break;
      case A::fence: ev = co_await fence(*m); break;
      case A::commit: ev = co_await commit(*m); break;
      case A::unfence: {
        // Leaving a cutover without a commit (rolled back or cancelled): the fence stays until
        // the controller has taken the final phase, after which no commit can happen. If it
        // says the move committed after all, the move is retiring instead.
        m->rec.phase = m->fsm.current().phase;
        m->rec.error = m->fsm.current().error;
        const auto settled = co_await ask_outcome(*m);
        if (settled == outcome::stopping) {
          todo.clear();  // the fence goes with the process; the restart decides from the map
          break;
        }
        if (settled == outcome::committed) {
          SHARDD_LOG(warn, "migration_committed_after_all", "migration", m->rec.id, "was", to_string(m->fsm.current().phase));
          auto st = m->fsm.current();
          st.phase = migration_phase::cutover;  // back to where the commit was asked for; `committed` moves it on
          st.error.clear();
          st.peer_failures = 0;
          m->fsm = migration_fsm(st, {});
          m->rec.error.clear();
          todo.clear();  // no rollback
          ev = co_await committed(*m);
          break;
        }
        storage::layout_change u;
        u.unfence.push_back(m->range);
        (void)co_await layout(std::move(u));
        break;
      }
      case A::rollback:
        // The controller aborts the move in the map when it hears the final phase (the persist
        // that follows reports it); the target then drops what it imported.
        SHARDD_LOG(warn, "migration_rolled_back", "migration", m->rec.id, "phase", to_string(m->fsm.current().phase), "error",
                   m->fsm.current().error);
        break;
      case A::retire: ev = co_await retire(*m); break;
      case A::stop_sending: todo.clear(); break;
    }
    if (ev) {
      if (ev->kind == E::peer_failed || ev->kind == E::checksum_failed) {
        SHARDD_LOG(warn, "migration_step_failed", "migration", m->rec.id, "phase", to_string(m->fsm.current().phase), "error",
                   ev->reason);
        co_await sleep_for(std::chrono::milliseconds(std::min<std::uint32_t>(200u << std::min<std::uint32_t>(m->fsm.current().peer_failures, 4), 3000)));
      }
      auto more = m->fsm.on(*ev);
      todo.insert(todo.end(), more.begin(), more.end());
    }
  }
  m->driving = false;
  if (stopping_) {
    // Stopped between two steps (a stop inside one ends in spawn_drive's handler).
    SHARDD_LOG(info, "migration_stopped", "migration", m->rec.id);  // resumes from its persisted state after a restart
    co_return;
  }
  if (is_final(m->fsm.current().phase)) {
    // The final report must reach the controller (it aborts a rolled-back move in the map).
    for (int i = 0; i < 60 && !stopping_; ++i) {
      m->reported_phase = migration_phase::queued;  // force
      co_await report(*m, true);
      if (m->reported_phase == m->fsm.current().phase) break;
      co_await sleep_for(std::chrono::seconds(1));
    }
    SHARDD_LOG(info, "migration_finished", "migration", m->rec.id, "phase", to_string(m->fsm.current().phase), "bytes",
               m->fsm.current().bytes_done, "records", m->fsm.current().records_done);
    std::vector<storage::write_op> ops;
    ops.push_back({storage::op_kind::meta_del, out_prefix + m->rec.id, {}});
    (void)co_await async_write(store_, std::move(ops));
    finish(m->rec.id);
  }
}

}  // namespace shardd

#include "node/controller.hpp"

#include "node/disk_guard.hpp"

#include "common/log.hpp"
#include "node/faults.hpp"
#include "node/peers.hpp"
#include "node/store_ops.hpp"
#include "shardd/routing.hpp"

#include <boost/asio/co_spawn.hpp>
#include <chrono>

#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/parse.hpp>

namespace shardd {

using asio::awaitable;

controller::controller(asio::any_io_executor ex, const node_config& cfg, control_plane& plane, storage::store* store,
                       peers* p, controller_meta* meta)
    : actor(ex, 1024, "controller"), cfg_(cfg), plane_(plane), ticker_(std::make_shared<asio::steady_timer>(ex)),
      store_(store), peers_(p), meta_(meta), faults_kill_after_begin_(test_fault("kill_after_begin") > 0),
      faults_kill_in_phase_(test_fault_text("kill_in_phase")) {
  if (!meta_ && store_) {
    own_meta_ = std::make_unique<store_meta>(*store_);
    meta_ = own_meta_.get();
  }
}

awaitable<bool> controller::write_meta(std::vector<storage::write_op> ops, const char* what) {
  if (!meta_ || ops.empty()) co_return true;
  // etcd takes at most 128 operations in one transaction (its default --max-txn-ops).
  constexpr std::size_t chunk = 100;
  for (std::size_t at = 0; at < ops.size(); at += chunk) {
    std::vector<storage::write_op> part(std::make_move_iterator(ops.begin() + static_cast<std::ptrdiff_t>(at)),
                                        std::make_move_iterator(ops.begin() + static_cast<std::ptrdiff_t>(std::min(ops.size(), at + chunk))));
    if (auto w = co_await meta_->write(std::move(part)); !w) {
      SHARDD_LOG(err, what, "error", w.error().detail);
      co_return false;
    }
  }
  co_return true;
}

void controller::begin() {
  start();
  asio::co_spawn(strand_, tick_loop(), asio::detached);
}

void controller::end() {
  stopping_ = true;
  asio::post(strand_, [t = ticker_] { t->cancel(); });
  stop();
}

awaitable<void> controller::tick_loop() {
  while (!stopping_) {
    ticker_->expires_after(std::chrono::milliseconds(cfg_.heartbeat_interval_ms));
    co_await ticker_->async_wait(asio::as_tuple(asio::use_awaitable));
    if (stopping_) break;
    controller_message tick = tick_msg{};  // named: see the note on asks below
    co_await tell(std::move(tick));
  }
}

awaitable<map_result> controller::change(std::string why, const std::function<result<partition_map>(const cluster_snapshot&)>& f) {
  auto snap = co_await plane_.load();
  if (!snap) co_return snap.error();
  auto next = f(**snap);
  if (!next) co_return next.error();
  const auto expected = (*snap)->map->version;
  auto res = co_await plane_.compare_and_set(expected, std::move(*next));
  if (res) co_await journal_map((*snap)->map, (*res)->map, std::move(why));
  co_return res;
}

awaitable<void> controller::record(event e) {
  auto ops = journal_.append(std::move(e));
  co_await write_meta(std::move(ops), "event_not_saved");
}

awaitable<void> controller::journal_map(std::shared_ptr<const partition_map> before, std::shared_ptr<const partition_map> after,
                                        std::string why) {
  auto diff = describe_change(*before, *after);
  const auto version = static_cast<std::int64_t>(after->version);
  event m;
  m.type = "map";
  m.summary = "map version " + std::to_string(after->version) + ": " + why;
  m.fields = {{"map_version", version}, {"reason", why}};
  m.changes = diff.lines;
  co_await record(std::move(m));
  for (const auto& [id, from, to] : diff.nodes) {
    event n;
    n.type = "node";
    n.summary = "node " + id + ": " + (from.empty() ? std::string("joined") : from) + " -> " + (to.empty() ? std::string("removed") : to) +
                " (" + why + ")";
    n.fields = {{"node", id}, {"from", from}, {"to", to}, {"map_version", version}, {"reason", why}};
    co_await record(std::move(n));
  }
  if (before->settings != after->settings) {
    event st;
    st.type = "settings";
    st.summary = "cluster settings changed (" + why + ")";
    st.fields = {{"map_version", version}, {"reason", why}};
    for (const auto& l : diff.lines)
      if (l.rfind("setting ", 0) == 0) st.changes.push_back(l);
    co_await record(std::move(st));
  }
}


namespace {

std::uint64_t wall_ms() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

std::int64_t steady_ms(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

error no_such_migration(const std::string& id) {
  return make_error(errc::not_found, "migration '" + id + "' does not exist");
}

const std::string rec_prefix = "migration/rec/";
constexpr auto control_timeout = std::chrono::seconds(3);
constexpr auto median_timeout = std::chrono::seconds(60);

}  // namespace

template <class Call, class Done>
void controller::spawn_call(Call call, Done done) {
  // The call runs on the strand's executor but outside the mailbox loop: while it waits, the
  // loop goes on with other messages. Its completion is one more message.
  auto run = [this, call = std::move(call), done = std::move(done)]() mutable -> awaitable<void> {
    auto r = co_await call();
    controller_message m = done(std::move(r));
    co_await tell(std::move(m));
  };
  asio::co_spawn(strand_, std::move(run), [name = name()](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      SHARDD_LOG(err, "controller_call_failed", "actor", name, "error", ex.what());
    }
  });
}

template <class T>
migration_record* controller::record_or_reply(const std::string& id, reply_to<T>& reply) {
  auto it = migrations_.find(id);
  if (it != migrations_.end()) return &it->second;
  reply.send(no_such_migration(id));
  return nullptr;
}

awaitable<void> controller::load_migrations() {
  migrations_loaded_ = true;
  if (!meta_) co_return;
  if (auto events = co_await meta_->scan(std::string(event_prefix)); events)
    journal_.load(*events);
  else
    SHARDD_LOG(err, "events_unreadable", "error", events.error().detail);
  auto stored = co_await meta_->scan(rec_prefix);
  if (!stored) {
    SHARDD_LOG(err, "migration_records_unreadable", "error", stored.error().detail);
    co_return;
  }
  for (const auto& [key, value] : *stored) {
    auto r = migration_from_json(value);
    if (!r) {
      SHARDD_LOG(err, "migration_record_unreadable", "key", key, "error", r.error().detail);
      continue;
    }
    next_migration_ = std::max<std::uint64_t>(next_migration_, migration_number(r->id) + 1);
    migrations_[r->id] = std::move(*r);
  }
}

awaitable<void> controller::save(const migration_record& r) {
  // The journal hears of each phase once (again after a restart: the phase a migration resumes in).
  if (auto it = journaled_phase_.find(r.id); it == journaled_phase_.end() || it->second != r.phase) {
    journaled_phase_[r.id] = r.phase;
    event e;
    e.type = "migration";
    e.summary = "migration " + r.id + " " + r.index + "/" + std::to_string(r.shard) + " " + r.source + " -> " + r.target + ": " +
                std::string(to_string(r.phase)) + (r.error.empty() ? std::string() : " (" + r.error + ")");
    e.fields = {{"migration", r.id}, {"index", r.index},    {"shard", static_cast<std::int64_t>(r.shard)},
                {"source", r.source}, {"target", r.target}, {"phase", std::string(to_string(r.phase))},
                {"reason", r.reason}};
    if (!r.error.empty()) e.fields.emplace_back("error", r.error);
    if (!r.plan.empty()) e.fields.emplace_back("plan", r.plan);
    if (r.phase == migration_phase::done) e.fields.emplace_back("fence_ms", static_cast<std::int64_t>(r.fence_ms));
    co_await record(std::move(e));
  }
  std::vector<storage::write_op> ops;
  ops.push_back({storage::op_kind::meta_put, rec_prefix + r.id, to_json(r)});
  co_await write_meta(std::move(ops), "migration_record_not_saved");
}

awaitable<void> controller::forget(const std::vector<std::string>& ids) {
  if (ids.empty()) co_return;
  std::vector<storage::write_op> ops;
  for (const auto& id : ids) {
    migrations_.erase(id);
    journaled_phase_.erase(id);
    ops.push_back({storage::op_kind::meta_del, rec_prefix + id, {}});
  }
  if (!meta_) co_return;
  if (!co_await write_meta(std::move(ops), "migration_records_not_deleted"))
    SHARDD_LOG(err, "migration_records_not_deleted", "count", ids.size());
  else
    SHARDD_LOG(info, "migration_records_pruned", "count", ids.size(), "first", ids.front(), "last", ids.back());
}

awaitable<void> controller::abort_in_map(const migration_record& r) {
  auto res = co_await change("migration " + r.id + " ended: the shard stays on " + r.source, [&](const cluster_snapshot& s) -> result<partition_map> {
    const auto* ix = s.map->find_index(r.index);
    const auto* sh = ix ? ix->find_shard(r.shard) : nullptr;
    if (!sh || sh->state != shard_state::migrating || sh->target != r.target)
      return make_error(errc::already_exists, "nothing to abort");
    return abort_migration(*s.map, r.index, r.shard);
  });
  if (res) SHARDD_LOG(info, "migration_aborted", "migration", r.id, "map_version", (*res)->map->version);
}

awaitable<migration_result> controller::create(migrate_request q, std::string reason, std::string plan) {
  if (!store_ || !peers_) co_return make_error(errc::unavailable, "migrations need a cluster");
  auto snap = co_await plane_.load();
  if (!snap) co_return snap.error();
  const auto& m = *(*snap)->map;
  if (auto ok = check_move(m, migrations_, q); !ok) co_return ok.error();
  {
    const auto d = disks(m.settings.rebalance.disk);
    if (auto it = d.find(q.target); it != d.end() && it->second.level != disk_level::ok)
      co_return make_error(errc::conflict, "node " + q.target + "'s data disk is at its " +
                                               std::string(to_string(it->second.level)) + " watermark (" +
                                               std::to_string(it->second.used) + " of " + std::to_string(it->second.total) +
                                               " bytes used; low " + to_string(m.settings.rebalance.disk.low) +
                                               "): it takes no shard");
  }
  const auto* ix = m.find_index(q.index);
  migration_record r;
  r.id = "m" + std::to_string(next_migration_++);
  r.index = q.index;
  r.index_id = ix->id;
  r.shard = q.shard;
  r.source = ix->find_shard(q.shard)->owner;
  r.target = q.target;
  r.priority = q.priority;
  r.max_bytes_per_sec = q.max_bytes_per_sec;
  r.reason = std::move(reason);
  r.plan = std::move(plan);
  r.created_ms = r.updated_ms = wall_ms();
  migrations_[r.id] = r;
  co_await save(r);
  SHARDD_LOG(info, "migration_queued", "migration", r.id, "index", r.index, "shard", r.shard, "source", r.source, "target",
             r.target, "priority", to_string(r.priority), "reason", r.reason);
  co_await schedule();
  co_return migrations_[r.id];
}

awaitable<void> controller::disk_level_changed(const std::string& node, disk_level was, disk_level now, std::uint64_t used,
                                               std::uint64_t total) {
  if (now == was) co_return;
  event e;
  e.type = "node";
  e.summary = "node " + node + ": disk " + std::string(to_string(was)) + " -> " + std::string(to_string(now));
  e.fields = {{"node", node},
              {"disk_level", std::string(to_string(now))},
              {"disk_used", static_cast<std::int64_t>(used)},
              {"disk_total", static_cast<std::int64_t>(total)}};
  co_await record(std::move(e));
  SHARDD_LOG(warn, "node_disk_level", "peer", node, "from", to_string(was), "to", to_string(now), "used", used, "total", total);
  if (now >= disk_level::high) last_rebalance_ = {};  // shed at the next tick
}

std::map<std::string, node_disk, std::less<>> controller::disks(const disk_watermarks& w) {
  std::map<std::string, node_disk, std::less<>> out;
  for (const auto& [id, l] : leases_)
    if (l.disk_total > 0) out[id] = {l.disk_used, l.disk_total, l.disk};
  if (local_disk_) {
    const auto u = local_disk_->usage();
    if (u.total > 0) out[cfg_.node_id] = {u.used, u.total, level_of(w, u.used, u.total, local_disk_->level())};
  }
  return out;
}

awaitable<void> controller::schedule() {
  if (!peers_) co_return;
  auto snap = co_await plane_.load();
  if (!snap) co_return;
  const auto plan = plan_starts(*(*snap)->map, migrations_, starting_);
  for (const auto& [id, why] : plan.fail) {
    auto& r = migrations_[id];
    r.phase = migration_phase::failed;
    r.error = why;
    r.updated_ms = wall_ms();
    co_await save(r);
    SHARDD_LOG(warn, "migration_failed", "migration", id, "error", why);
  }
  for (const auto& id : plan.start) {
    auto it = migrations_.find(id);
    if (it == migrations_.end()) continue;
    auto& r = it->second;
    auto begun = co_await change("migration " + r.id + " started (" + r.reason + ")", [&](const cluster_snapshot& s) { return begin_migration(*s.map, r.index, r.shard, r.target); });
    if (!begun) {
      r.error = "cannot start: " + begun.error().detail;
      co_await save(r);
      continue;
    }
    if (faults_kill_after_begin_) kill_for_fault("kill_after_begin", "controller");
    send_start(r, (*begun)->map->version);
  }
}

void controller::send_start(const migration_record& r, std::uint64_t version) {
  starting_.insert(r.id);
  auto call = [p = peers_, record = r, version]() -> awaitable<result<bool>> {  // a copy: the table may change meanwhile
    auto f = make_frame(peer::frame_type::migrate_start, to_json(record), version);
    auto sent = co_await p->call(record.source, std::move(f), control_timeout);
    if (!sent) co_return sent.error();
    co_return true;
  };
  spawn_call(std::move(call), [id = r.id](result<bool> res) { return controller_message(start_done_msg{id, std::move(res)}); });
}

awaitable<void> controller::reconcile() {
  if (!peers_) co_return;
  auto snap = co_await plane_.load();
  if (!snap) co_return;
  const auto plan = plan_reconcile(*(*snap)->map, migrations_);
  for (const auto& mv : plan.abort) {
    migration_record r;
    r.id = "(none)";
    r.index = mv.index;
    r.shard = mv.shard;
    r.target = mv.target;
    SHARDD_LOG(warn, "migration_orphan_aborted", "index", mv.index, "shard", mv.shard, "target", mv.target);
    co_await abort_in_map(r);
  }
  for (const auto& id : plan.resend_start) {
    SHARDD_LOG(info, "migration_start_resent", "migration", id);
    send_start(migrations_[id], (*snap)->map->version);
  }
}

awaitable<void> controller::watch_ring() {
  // When the placement ring changes (a node joins or comes back, a weight changes), auto mode
  // plans at the next tick instead of its next interval.
  auto snap = co_await plane_.load();
  if (!snap) co_return;
  const auto& now_ring = *(*snap)->placement;
  std::vector<ring::member> members;
  for (std::size_t i = 0; i < now_ring.node_count(); ++i) members.push_back({now_ring.nodes()[i], now_ring.weights()[i]});
  const auto same = [](const std::vector<ring::member>& a, const std::vector<ring::member>& b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](const ring::member& x, const ring::member& y) {
             return x.id == y.id && x.weight == y.weight;
           });
  };
  if (!planned_for_) {
    planned_for_ = std::move(members);  // the ring as the controller found it
  } else if (!same(*planned_for_, members)) {
    planned_for_ = std::move(members);
    last_rebalance_ = {};
    SHARDD_LOG(info, "ring_changed", "members", planned_for_->size(), "map_version", (*snap)->map->version);
  }
}

awaitable<void> controller::finish_decommissions() {
  auto snap = co_await plane_.load();
  if (!snap) co_return;
  for (const auto& id : drained_nodes(*(*snap)->map, migrations_)) {
    auto res = co_await change("node " + id + " drained (decommission)", [&](const cluster_snapshot& s) { return set_node_state(*s.map, id, node_state::left); });
    if (res) SHARDD_LOG(info, "node_left", "peer", id, "map_version", (*res)->map->version);
  }
}

awaitable<void> controller::after_phase_change() {
  // A slot frees as soon as the data is across: start the next ones without waiting a tick.
  co_await schedule();
  co_await watch_ring();
}

awaitable<void> controller::handle(controller_message m) {
  if (leases_.empty()) {
    // First message: give every member a fresh lease.
    const auto now = std::chrono::steady_clock::now();
    auto snap = co_await plane_.load();
    if (snap)
      for (const auto& [id, n] : (*snap)->map->nodes) leases_[id].last_seen = now;
  }
  if (!migrations_loaded_) {
    co_await load_plan_number();
    co_await load_migrations();
    co_await reconcile();
  }
  co_await std::visit([this](auto& msg) { return on(msg); }, m);
}

awaitable<void> controller::on(join_msg& j) {
  const auto& r = j.request;
  auto& l = leases_[r.node_id];
  l.last_seen = std::chrono::steady_clock::now();
  l.heard = true;
  auto res = co_await change("node " + r.node_id + " joined", [&](const cluster_snapshot& s) -> result<partition_map> {
    const auto* known = s.map->find_node(r.node_id);
    if (known && known->state == node_state::left)
      return make_error(errc::conflict, "node '" + r.node_id + "' left the cluster; use a new node id");
    const auto entry = joining_entry(known, node_entry{r.node_id, r.rest_address, r.peer_address, r.weight, node_state::up});
    if (known && *known == entry) return make_error(errc::already_exists, "unchanged");
    return upsert_node(*s.map, entry);
  });
  if (!res && res.error().code == errc::already_exists) res = co_await plane_.load();  // nothing to change
  if (res) SHARDD_LOG(info, "node_joined", "peer", r.node_id, "rest", r.rest_address, "map_version", (*res)->map->version);
  j.reply.send(std::move(res));
  co_await watch_ring();  // a new member: the rebalancer plans at the next tick
}

awaitable<void> controller::on(heartbeat_msg& h) {
  auto snap = co_await plane_.load();
  if (!snap) {
    h.reply.send(snap.error());
    co_return;
  }
  const auto* n = (*snap)->map->find_node(h.beat.node_id);
  if (!n || n->state == node_state::left) {
    h.reply.send(make_error(errc::not_found, "node '" + h.beat.node_id + "' is not a member; join first"));
    co_return;
  }
  auto& l = leases_[h.beat.node_id];
  l.last_seen = std::chrono::steady_clock::now();
  l.heard = true;
  l.shards = h.beat.shards;
  l.records = h.beat.records;
  l.bytes = h.beat.bytes;
  if (!h.beat.events.empty()) co_await journal_member_events(h.beat.node_id, h.beat.incarnation, h.beat.events);
  l.anomalies_open = h.beat.anomalies_open;
  l.disk_used = h.beat.disk_used;
  l.disk_total = h.beat.disk_total;
  {
    const auto was = l.disk;
    l.disk = level_of((*snap)->map->settings.rebalance.disk, l.disk_used, l.disk_total, was);
    co_await disk_level_changed(h.beat.node_id, was, l.disk, l.disk_used, l.disk_total);
  }
  if (!h.beat.load.empty()) {
    // A member speaks for its own shards only: entries for shards the map gives another node
    // are dropped, not stored.
    l.load.clear();
    for (const auto& e : h.beat.load) {
      const index_entry* ix = nullptr;
      for (const auto& [name, cand] : (*snap)->map->indexes)
        if (cand.id == e.index_id) ix = &cand;
      const auto* sh = ix ? ix->find_shard(e.shard_id) : nullptr;
      if (sh && sh->owner == h.beat.node_id) l.load.push_back(e);
    }
    l.load_at = l.last_seen;
  }
  if (n->state == node_state::down) {
    auto res = co_await change("heartbeat from " + h.beat.node_id + ", which was down", [&](const cluster_snapshot& s) { return set_node_state(*s.map, h.beat.node_id, node_state::up); });
    if (res) SHARDD_LOG(info, "node_up", "peer", h.beat.node_id, "map_version", (*res)->map->version);
    snap = std::move(res);
  }
  h.reply.send(std::move(snap));
}

awaitable<void> controller::on(create_index_msg& c) {
  auto res = co_await change("API: create index " + c.name, [&](const cluster_snapshot& s) -> result<partition_map> {
    // No shard goes to a node whose disk is at its low watermark or above.
    const auto d = disks(s.map->settings.rebalance.disk);
    std::vector<ring::member> room;
    const auto& pl = *s.placement;
    for (std::size_t i = 0; i < pl.node_count(); ++i) {
      auto it = d.find(pl.nodes()[i]);
      if (it == d.end() || it->second.level == disk_level::ok) room.push_back({pl.nodes()[i], pl.weights()[i]});
    }
    if (room.size() == pl.node_count()) return shardd::create_index(*s.map, c.name, c.spec, pl, cfg_.placement_epsilon);
    if (room.empty())
      return make_error(errc::insufficient_storage, "every node's data disk is at its low watermark or above (" +
                                                        to_string(s.map->settings.rebalance.disk.low) +
                                                        "): no node takes a new shard");
    auto ring_with_room = ring::build(room, pl.vnodes_per_weight());
    if (!ring_with_room) return ring_with_room.error();
    return shardd::create_index(*s.map, c.name, c.spec, *ring_with_room, cfg_.placement_epsilon);
  });
  if (res)
    SHARDD_LOG(info, "index_created", "index", c.name, "partitioning", to_string(c.spec.strategy), "shards",
               (*res)->map->find_index(c.name)->shards.size(), "map_version", (*res)->map->version);
  c.reply.send(std::move(res));
}

awaitable<void> controller::on(drop_index_msg& d) {
  auto res = co_await change("API: drop index " + d.name, [&](const cluster_snapshot& s) { return shardd::drop_index(*s.map, d.name); });
  if (res) SHARDD_LOG(info, "index_dropped", "index", d.name, "map_version", (*res)->map->version);
  d.reply.send(std::move(res));
}

awaitable<void> controller::on(set_weight_msg& w) {
  auto res = co_await change("API: weight of node " + w.node, [&](const cluster_snapshot& s) { return set_node_weight(*s.map, w.node, w.weight); });
  if (res) SHARDD_LOG(info, "node_weight", "peer", w.node, "weight", w.weight, "map_version", (*res)->map->version);
  w.reply.send(std::move(res));
  co_await watch_ring();
}

awaitable<void> controller::on(members_msg& q) {
  const auto now = std::chrono::steady_clock::now();
  std::vector<member_status> out;
  for (const auto& [id, l] : leases_) {
    member_status st{id, std::nullopt, l.shards, l.records, l.bytes, l.load, std::nullopt, l.anomalies_open, l.disk_used, l.disk_total, l.disk};
    if (l.heard) st.since_heartbeat = std::chrono::duration_cast<std::chrono::milliseconds>(now - l.last_seen);
    if (l.load_at) st.load_age = std::chrono::duration_cast<std::chrono::milliseconds>(now - *l.load_at);
    if (id == cfg_.node_id && local_disk_) {
      st.disk_used = local_disk_->usage().used;
      st.disk_total = local_disk_->usage().total;
      st.disk = local_disk_->level();
    }
    if (id == cfg_.node_id && local_load_)
      if (auto mine = local_load_()) {
        st.load = mine->shards;
        st.load_age = std::chrono::milliseconds(0);
        st.anomalies_open = mine->anomalies_open;
      }
    out.push_back(std::move(st));
  }
  if (!leases_.count(cfg_.node_id) && local_load_) {
    member_status self{cfg_.node_id, std::chrono::milliseconds(0), 0, 0, 0, {}, std::nullopt, 0};
    if (local_disk_) {
      self.disk_used = local_disk_->usage().used;
      self.disk_total = local_disk_->usage().total;
      self.disk = local_disk_->level();
    }
    if (auto mine = local_load_()) {
      self.load = mine->shards;
      self.load_age = std::chrono::milliseconds(0);
      self.anomalies_open = mine->anomalies_open;
    }
    out.push_back(std::move(self));
  }
  q.reply.send(std::move(out));
  co_return;
}

awaitable<void> controller::journal_member_events(const std::string& node, std::uint64_t incarnation,
                                                   const std::vector<peer::member_event>& events) {
  auto& l = event_seqs_[node];
  if (l.incarnation != incarnation) {  // the node restarted: its seqs start again
    l.incarnation = incarnation;
    l.last = 0;
  }
  for (const auto& me : events) {
    if (me.seq <= l.last) continue;  // recorded already (an answer it did not get)
    l.last = me.seq;
    // Input from the network: only the member's own kinds, and its fields as plain values.
    if (me.type != "anomaly" && me.type != "monitor" && me.type != "forecast") {
      SHARDD_LOG(warn, "member_event_refused", "peer", node, "type", me.type);
      continue;
    }
    event e;
    e.type = me.type;
    e.summary = "node " + node + ": " + me.summary;
    e.fields.emplace_back("node", node);
    boost::system::error_code ec;
    auto v = boost::json::parse(me.fields_json, ec);
    if (!ec && v.is_object())
      for (const auto& [k, val] : v.get_object()) {
        if (k == "id" || k == "type" || k == "summary" || k == "node" || k == "unix_ms" || k == "changes") continue;
        if (val.is_string()) e.fields.emplace_back(std::string(k), std::string(val.get_string()));
        else if (val.is_int64()) e.fields.emplace_back(std::string(k), val.get_int64());
        else if (val.is_uint64()) e.fields.emplace_back(std::string(k), static_cast<std::int64_t>(val.get_uint64()));
        else if (val.is_double()) e.fields.emplace_back(std::string(k), val.get_double());
      }
    co_await record(std::move(e));
  }
}

awaitable<void> controller::on(events_msg& q) {
  events_page page;
  page.events = journal_.list(q.since, q.types, q.limit);
  page.first_id = journal_.first_id();
  page.last_id = journal_.last_id();
  q.reply.send(std::move(page));
  co_return;
}

awaitable<void> controller::on(tick_msg&) {
  const auto now = std::chrono::steady_clock::now();
  if (local_events_.pending)
    if (auto mine = local_events_.pending(peer::max_heartbeat_events); !mine.empty()) {
      co_await journal_member_events(cfg_.node_id, local_events_.incarnation, mine);
      local_events_.acknowledge(mine.back().seq);
    }
  const auto limit = std::int64_t(cfg_.heartbeat_interval_ms) * cfg_.heartbeat_miss_limit;
  const auto interval = std::chrono::milliseconds(cfg_.heartbeat_interval_ms);
  if (last_tick_end_ && now - *last_tick_end_ > 2 * interval) {
    // The controller was stalled (a map write waiting out an etcd leader election, say): the
    // heartbeats sent meanwhile wait in its mailbox behind this tick. The stall is not silence.
    const auto stalled = now - *last_tick_end_ - interval;
    for (auto& [id, l] : leases_) l.last_seen = std::min(now, l.last_seen + stalled);
    SHARDD_LOG(info, "controller_stalled", "ms", std::chrono::duration_cast<std::chrono::milliseconds>(stalled).count());
  }
  if (auto snap = co_await plane_.load(); snap) {
    lease_table seen;
    for (const auto& [id, l] : leases_) seen[id] = steady_ms(l.last_seen);
    const auto plan = plan_liveness(*(*snap)->map, seen, steady_ms(now), limit, cfg_.node_id);
    for (const auto& id : plan.new_lease) leases_[id].last_seen = now;  // not seen yet: its lease starts now
    if (!plan.down.empty()) {
      auto res = co_await change("heartbeats missed: lease expired", [&](const cluster_snapshot& s) { return mark_down(*s.map, plan.down); });
      if (!res) {
        SHARDD_LOG(err, "liveness_change_failed", "error", res.error().detail);
      } else {
        for (const auto& id : plan.down)
          SHARDD_LOG(warn, "node_down", "peer", id, "missed_ms", steady_ms(now) - seen[id], "map_version",
                     (*res)->map->version);
      }
    }
  }
  if (local_disk_)
    if (const auto u = local_disk_->usage(); u.total > 0) {
      const auto now_level = local_disk_->level();
      co_await disk_level_changed(cfg_.node_id, own_disk_, now_level, u.used, u.total);
      own_disk_ = now_level;
    }
  co_await schedule();
  co_await watch_ring();
  co_await rebalance_tick();
  co_await finish_decommissions();
  const auto old = prunable_migrations(migrations_, wall_ms(), cfg_.migration_keep_finished_ms, cfg_.migration_keep_finished);
  co_await forget(old);
  last_tick_end_ = std::chrono::steady_clock::now();
}

awaitable<void> controller::on(migrate_msg& mg) {
  auto r = co_await create(std::move(mg.request), "api");
  mg.reply.send(std::move(r));
}

awaitable<void> controller::on(migrations_msg& q) {
  std::vector<migration_record> out;
  if (q.id) {
    auto it = migrations_.find(*q.id);
    if (it == migrations_.end()) {
      q.reply.send(no_such_migration(*q.id));
      co_return;
    }
    out.push_back(it->second);
  } else {
    for (const auto& id : ids_in_order(migrations_)) out.push_back(migrations_.find(id)->second);
  }
  q.reply.send(std::move(out));
}

awaitable<void> controller::on(migration_control_msg& mc) {
  auto* found = record_or_reply(mc.id, mc.reply);
  if (!found) co_return;
  auto& r = *found;
  if (is_final(r.phase)) {
    mc.reply.send(make_error(errc::conflict, "migration '" + r.id + "' is " + std::string(to_string(r.phase))));
    co_return;
  }
  if (r.phase == migration_phase::queued && starting_.contains(r.id) && mc.command != "cancel") {
    // migrate_start is on its way to the source: a pause noted here would be lost when the
    // source starts unpaused, and the source cannot be told before it knows the migration.
    mc.reply.send(make_error(errc::unavailable, "migration '" + r.id + "' is being started; retry in a moment"));
    co_return;
  }
  if (r.phase == migration_phase::queued) {
    if (mc.command == "cancel") {
      r.phase = migration_phase::cancelled;
      r.error = "cancelled by operator before it started";
    } else {
      r.paused = mc.command == "pause";
    }
    r.updated_ms = wall_ms();
    co_await save(r);
    mc.reply.send(r);
    co_return;
  }
  if (mc.command == "cancel" && r.phase == migration_phase::retiring) {
    mc.reply.send(make_error(errc::conflict, "migration '" + r.id + "' committed already; it is too late to cancel"));
    co_return;
  }
  if (!peers_) {
    mc.reply.send(make_error(errc::unavailable, "no cluster"));
    co_return;
  }
  auto call = [p = peers_, source = r.source, id = r.id, command = mc.command]() -> awaitable<result<bool>> {
    auto f = make_frame(peer::frame_type::migrate_control, peer::encode(peer::migrate_control{id, command}), 0);
    auto sent = co_await p->call(source, std::move(f), control_timeout);
    if (!sent) co_return sent.error();
    co_return true;
  };
  auto done = [id = mc.id, command = mc.command, reply = std::move(mc.reply)](result<bool> r) mutable {
    return controller_message(control_done_msg{std::move(id), std::move(command), std::move(r), std::move(reply)});
  };
  spawn_call(std::move(call), std::move(done));
}

awaitable<void> controller::on(control_done_msg& d) {
  auto* found = record_or_reply(d.id, d.reply);
  if (!found) co_return;
  auto& r = *found;
  if (!d.outcome) {
    if (d.command == "cancel" && !is_final(r.phase) && r.phase != migration_phase::retiring) {
      // The source cannot be told now; it hears it when it reports again.
      r.phase = migration_phase::cancelled;
      r.error = "cancelled by operator (source unreachable: " + d.outcome.error().detail + ")";
      r.updated_ms = wall_ms();
      co_await abort_in_map(r);
      co_await save(r);
      d.reply.send(r);
    } else {
      d.reply.send(make_error(errc::unavailable, "source '" + r.source + "' did not answer: " + d.outcome.error().detail));
    }
    co_return;
  }
  if (d.command != "cancel" && !is_final(r.phase)) r.paused = d.command == "pause";
  r.updated_ms = wall_ms();
  co_await save(r);
  d.reply.send(r);
}

awaitable<void> controller::on(start_done_msg& d) {
  starting_.erase(d.id);
  auto it = migrations_.find(d.id);
  if (it == migrations_.end()) co_return;
  auto& r = it->second;
  if (r.phase == migration_phase::cancelled) {
    // Cancelled while it was being started: undo the start in the map; if the source did
    // start, its next report learns it was called off.
    co_await abort_in_map(r);
    co_return;
  }
  if (r.phase != migration_phase::queued) co_return;  // the source reported already
  if (!d.outcome) {
    // Leave it queued; the next tick tries again.
    r.error = "source did not start it: " + d.outcome.error().detail;
    co_await abort_in_map(r);
    co_await save(r);
    co_return;
  }
  r.phase = migration_phase::copying;
  r.error.clear();
  r.updated_ms = wall_ms();
  co_await save(r);
  if (faults_kill_in_phase_ == "copying") kill_for_fault("kill_in_phase", "controller");
}

awaitable<void> controller::on(migration_report_msg& rep) {
  auto* found = record_or_reply(rep.report.id, rep.reply);
  if (!found) co_return;
  auto& r = *found;
  if (r.source != rep.from) {
    rep.reply.send(make_error(errc::forbidden, "migration '" + r.id + "' is reported by its source '" + r.source + "', not by '" +
                                                   rep.from + "'"));
    co_return;
  }
  if (r.phase == migration_phase::cancelled || r.phase == migration_phase::failed) {
    rep.reply.send(r);  // the source learns it was called off
    co_return;
  }
  // A committed move stays committed: a source that lost the commit's answer and reports an
  // earlier or a rolled-back phase learns from this answer that it committed.
  const bool committed = r.phase == migration_phase::retiring || r.phase == migration_phase::done;
  if (committed && rep.report.phase != migration_phase::retiring && rep.report.phase != migration_phase::done) {
    rep.reply.send(r);
    co_return;
  }
  const auto before = r.phase;
  const auto& in = rep.report;
  r.phase = in.phase;
  r.paused = in.paused;
  r.bytes_done = in.bytes_done;
  r.records_done = in.records_done;
  if (in.bytes_total) r.bytes_total = in.bytes_total;
  if (in.records_total) r.records_total = in.records_total;
  r.rate_bytes_per_sec = in.rate_bytes_per_sec;
  r.rate_limited_by = in.rate_limited_by;
  r.fence_ms = in.fence_ms;
  r.recopies = in.recopies;
  r.resumes = in.resumes;
  if (!in.error.empty()) r.error = in.error;
  r.updated_ms = wall_ms();
  if (is_final(r.phase) && r.phase != migration_phase::done) co_await abort_in_map(r);
  if (r.phase != before) {
    co_await save(r);
    SHARDD_LOG(info, "migration_phase", "migration", r.id, "phase", to_string(r.phase), "bytes", r.bytes_done);
    if (faults_kill_in_phase_ == to_string(r.phase)) kill_for_fault("kill_in_phase", "controller");
  }
  auto copy = r;
  rep.reply.send(std::move(copy));
  if (r.phase != before && !transferring(r)) co_await after_phase_change();
}

awaitable<void> controller::on(migration_commit_msg& cm) {
  auto* found = record_or_reply(cm.id, cm.reply);
  if (!found) co_return;
  auto& r = *found;
  if (r.source != cm.from) {
    cm.reply.send(make_error(errc::forbidden, "migration '" + r.id + "' is committed by its source '" + r.source + "', not by '" +
                                                  cm.from + "'"));
    co_return;
  }
  if (r.phase == migration_phase::retiring || r.phase == migration_phase::done) {
    cm.reply.send(true);  // a repeated commit whose first answer was lost
    co_return;
  }
  if (r.phase != migration_phase::cutover || r.paused) {
    cm.reply.send(make_error(errc::conflict, "migration '" + r.id + "' is " + std::string(to_string(r.phase)) +
                                                 (r.paused ? " (paused)" : "") + ", not in cutover: it cannot commit"));
    co_return;
  }
  auto res = co_await change("migration " + r.id + " committed (" + r.reason + ")", [&](const cluster_snapshot& s) -> result<partition_map> {
    const auto* ix = s.map->find_index(r.index);
    const auto* sh = ix ? ix->find_shard(r.shard) : nullptr;
    if (sh && sh->owner == r.target && sh->state == shard_state::active)
      return make_error(errc::already_exists, "committed already");
    if (!sh || sh->state != shard_state::migrating || sh->target != r.target)
      return make_error(errc::conflict, "shard " + std::to_string(r.shard) + " of '" + r.index + "' is not moving to '" + r.target + "'");
    return commit_migration(*s.map, r.index, r.shard);
  });
  if (!res && res.error().code != errc::already_exists) {
    cm.reply.send(res.error());
    co_return;
  }
  r.phase = migration_phase::retiring;
  r.updated_ms = wall_ms();
  co_await save(r);
  if (faults_kill_in_phase_ == "retiring") kill_for_fault("kill_in_phase", "controller");
  cm.reply.send(true);
  co_await after_phase_change();
}

awaitable<void> controller::on(split_msg& sp) {
  auto snap = co_await plane_.load();
  if (!snap) {
    sp.reply.send(snap.error());
    co_return;
  }
  const auto* ix = (*snap)->map->find_index(sp.index);
  const auto* sh = ix ? ix->find_shard(sp.shard) : nullptr;
  if (!sh) {
    sp.reply.send(make_error(errc::not_found, "index '" + sp.index + "' has no shard " + std::to_string(sp.shard)));
    co_return;
  }
  if (ix->strategy == partitioning::hash) {
    auto why = "API: split shard " + sp.index + "/" + std::to_string(sp.shard);
    sp.reply.send(co_await split_hash(sp.index, ix->id, sp.shard, std::move(why)));
    co_return;
  }
  // Range: the median key of the data, from the shard's owner, which may take a while on a
  // large shard: asked off the mailbox loop, the answer comes back as median_done_msg.
  split_at_median(sh->owner, sp.index, ix->id, sp.shard, std::move(sp.reply), {});
}

awaitable<map_result> controller::split_hash(std::string index, std::uint32_t index_id, std::uint32_t shard, std::string why) {
  std::uint32_t new_id = 0;
  auto res = co_await change(std::move(why), [&](const cluster_snapshot& s) -> result<partition_map> {
    const auto* ix = s.map->find_index(index);
    if (!ix || ix->id != index_id) return make_error(errc::not_found, "index '" + index + "' was dropped meanwhile");
    new_id = ix->next_shard_id;
    return split_shard(*s.map, index, shard, std::nullopt);
  });
  if (res) {
    after_split(index_id, shard, new_id, (*res)->map->settings.rebalance.hot.after_ms);
    SHARDD_LOG(info, "shard_split", "index", index, "shard", shard, "map_version", (*res)->map->version);
  }
  co_return res;
}

void controller::split_at_median(std::string owner, std::string index, std::uint32_t index_id, std::uint32_t shard,
                                 reply_to<map_result> reply, std::string why) {
  if (!peers_) {
    reply.send(make_error(errc::unavailable, "no cluster"));
    return;
  }
  auto call = [p = peers_, owner = std::move(owner), index, shard]() -> awaitable<result<std::string>> {
    auto f = make_frame(peer::frame_type::shard_median, peer::encode(peer::median_request{index, shard}), 0);
    auto r = co_await p->call(owner, std::move(f), median_timeout);
    if (!r) co_return make_error(errc::unavailable, "the shard's node '" + owner + "' did not answer: " + r.error().detail);
    auto med = peer::decode_median_reply(r->payload);
    if (!med) co_return make_error(errc::internal, "the shard's node '" + owner + "' sent a bad median: " + med.error().detail);
    co_return std::string(med->key);
  };
  auto done = [index = std::move(index), index_id, shard, reply = std::move(reply), why = std::move(why)](result<std::string> r) mutable {
    return controller_message(median_done_msg{std::move(index), index_id, shard, std::move(r), std::move(reply), std::move(why)});
  };
  spawn_call(std::move(call), std::move(done));
}

awaitable<void> controller::on(median_done_msg& d) {
  if (!d.median) {
    d.reply.send(d.median.error());
    co_return;
  }
  if (d.median->empty()) {
    d.reply.send(make_error(errc::conflict, "shard " + std::to_string(d.shard) + " of '" + d.index +
                                                "' holds too few records to split by its median"));
    co_return;
  }
  std::uint32_t new_id = 0;
  auto why = d.why.empty() ? "API: split shard " + d.index + "/" + std::to_string(d.shard) + " at its median" : d.why;
  auto res = co_await change(std::move(why), [&](const cluster_snapshot& s) -> result<partition_map> {
    const auto* ix = s.map->find_index(d.index);
    if (!ix || ix->id != d.index_id) return make_error(errc::not_found, "index '" + d.index + "' was dropped meanwhile");
    new_id = ix->next_shard_id;
    return split_shard(*s.map, d.index, d.shard, *d.median);
  });
  if (res) {
    after_split(d.index_id, d.shard, new_id, (*res)->map->settings.rebalance.hot.after_ms);
    SHARDD_LOG(info, "shard_split", "index", d.index, "shard", d.shard, "map_version", (*res)->map->version);
  } else if (!d.why.empty()) {
    SHARDD_LOG(warn, "hot_split_failed", "index", d.index, "shard", d.shard, "error", res.error().detail);
  }
  d.reply.send(std::move(res));
}

awaitable<void> controller::on(decommission_msg& dc) {
  auto snap = co_await plane_.load();
  if (!snap) {
    dc.reply.send(snap.error());
    co_return;
  }
  const auto* n = (*snap)->map->find_node(dc.node);
  if (!n) {
    dc.reply.send(make_error(errc::not_found, "node '" + dc.node + "' is not a member"));
    co_return;
  }
  if (dc.node == (*snap)->map->controller) {
    dc.reply.send(make_error(errc::conflict, "the controller cannot be decommissioned"));
    co_return;
  }
  if (n->state == node_state::left || n->state == node_state::down) {
    dc.reply.send(make_error(errc::conflict, "node '" + dc.node + "' is " + std::string(to_string(n->state))));
    co_return;
  }
  if (n->state != node_state::draining) {
    auto res = co_await change("API: decommission node " + dc.node, [&](const cluster_snapshot& s) { return set_node_state(*s.map, dc.node, node_state::draining); });
    if (!res) {
      dc.reply.send(res.error());
      co_return;
    }
    snap = std::move(res);
    SHARDD_LOG(info, "node_draining", "peer", dc.node, "map_version", (*snap)->map->version);
  }
  // The planner's drain moves for this node (heaviest first, each to the node whose score
  // stays lowest), whatever the rebalancer's mode: an operator asked for them.
  std::vector<migration_record> created;
  auto run = make_plan(*(*snap)->map);
  for (auto& mv : run.plan.moves) {
    if (mv.reason != "drain" || mv.source != dc.node) continue;
    migrate_request q{std::move(mv.index), mv.shard, std::move(mv.target), migration_priority::normal, 0};
    auto r = co_await create(std::move(q), "decommission");
    if (r) created.push_back(*r);
  }
  dc.reply.send(std::move(created));
}

awaitable<void> controller::on(remove_node_msg& rm) {
  // A migration record not yet in the map (queued) names the node too: those hold it as well.
  for (const auto& [id, r] : migrations_)
    if (!is_final(r.phase) && (r.source == rm.node || r.target == rm.node)) {
      rm.reply.send(make_error(errc::conflict, "migration " + id + " of shard " + r.index + "/" + std::to_string(r.shard) +
                                                   " involves node '" + rm.node + "'; cancel it first"));
      co_return;
    }
  node_removed out;
  auto res = co_await change("API: remove node " + rm.node + (rm.force ? " (forced)" : ""), [&](const cluster_snapshot& s) -> result<partition_map> {
    const auto* n = s.map->find_node(rm.node);
    out.was = n ? std::string(to_string(n->state)) : std::string();
    auto r = shardd::remove_node(*s.map, rm.node, rm.force);
    if (!r) return r.error();
    out.recreated = std::move(r->recreated);
    return std::move(r->map);
  });
  if (!res) {
    rm.reply.send(res.error());
    co_return;
  }
  leases_.erase(rm.node);
  out.map_version = (*res)->map->version;
  SHARDD_LOG(warn, "node_removed", "peer", rm.node, "was", out.was, "shards_recreated_empty", out.recreated.size(),
             "map_version", out.map_version);
  rm.reply.send(std::move(out));
  co_await watch_ring();
}

awaitable<void> controller::on(settings_msg& st) {
  auto res = co_await change("API: cluster settings", [&](const cluster_snapshot& s) { return shardd::set_settings(*s.map, st.settings); });
  if (res) SHARDD_LOG(info, "settings_changed", "map_version", (*res)->map->version);
  st.reply.send(std::move(res));
}

}  // namespace shardd

namespace shardd {

controller_slot::controller_slot() = default;
controller_slot::~controller_slot() = default;

controller* controller_slot::install(std::unique_ptr<controller> c) {
  std::lock_guard lock(mu_);
  auto* raw = c.get();
  kept_.push_back(std::move(c));
  last_.store(raw, std::memory_order_release);
  current_.store(raw, std::memory_order_release);
  return raw;
}

}  // namespace shardd

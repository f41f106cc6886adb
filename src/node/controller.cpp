#include "node/controller.hpp"

#include "node/log.hpp"
#include "node/peers.hpp"
#include "node/store_ops.hpp"
#include "shardd/placement.hpp"
#include "shardd/routing.hpp"

#include <boost/asio/co_spawn.hpp>
#include <chrono>

#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>

namespace shardd {

using asio::awaitable;

controller::controller(asio::any_io_executor ex, const node_config& cfg, control_plane& plane, storage::store* store,
                       peers* p)
    : actor(ex, 1024, "controller"), cfg_(cfg), plane_(plane), ticker_(std::make_shared<asio::steady_timer>(ex)),
      store_(store), peers_(p) {}

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

// Each ask builds its message as a named local: GCC 12 destroys temporaries inside a
// co_await operand twice.
awaitable<map_result> controller::join(peer::join_request r) {
  auto make = [&](reply_to<map_result> reply) { return controller_message(join_msg{std::move(r), std::move(reply)}); };
  co_return co_await ask<map_result>(std::move(make));
}
awaitable<map_result> controller::heartbeat(peer::heartbeat b) {
  auto make = [&](reply_to<map_result> reply) { return controller_message(heartbeat_msg{std::move(b), std::move(reply)}); };
  co_return co_await ask<map_result>(std::move(make));
}
awaitable<map_result> controller::create_index(std::string name, index_spec spec) {
  auto make = [&](reply_to<map_result> reply) {
    return controller_message(create_index_msg{std::move(name), std::move(spec), std::move(reply)});
  };
  co_return co_await ask<map_result>(std::move(make));
}
awaitable<map_result> controller::drop_index(std::string name) {
  auto make = [&](reply_to<map_result> reply) { return controller_message(drop_index_msg{std::move(name), std::move(reply)}); };
  co_return co_await ask<map_result>(std::move(make));
}
awaitable<map_result> controller::set_weight(std::string node, std::uint32_t weight) {
  auto make = [&](reply_to<map_result> reply) {
    return controller_message(set_weight_msg{std::move(node), weight, std::move(reply)});
  };
  co_return co_await ask<map_result>(std::move(make));
}
awaitable<result<std::vector<member_status>>> controller::members() {
  using R = result<std::vector<member_status>>;
  auto make = [&](reply_to<R> reply) { return controller_message(members_msg{std::move(reply)}); };
  co_return co_await ask<R>(std::move(make));
}

awaitable<migration_result> controller::migrate(migrate_request r) {
  auto make = [&](reply_to<migration_result> reply) { return controller_message(migrate_msg{std::move(r), std::move(reply)}); };
  co_return co_await ask<migration_result>(std::move(make));
}
awaitable<migrations_result> controller::migrations(std::optional<std::string> id) {
  auto make = [&](reply_to<migrations_result> reply) { return controller_message(migrations_msg{std::move(id), std::move(reply)}); };
  co_return co_await ask<migrations_result>(std::move(make));
}
awaitable<migration_result> controller::control_migration(std::string id, std::string command) {
  auto make = [&](reply_to<migration_result> reply) {
    return controller_message(migration_control_msg{std::move(id), std::move(command), std::move(reply)});
  };
  co_return co_await ask<migration_result>(std::move(make));
}
awaitable<migration_result> controller::report(migration_record r) {
  auto make = [&](reply_to<migration_result> reply) { return controller_message(migration_report_msg{std::move(r), std::move(reply)}); };
  co_return co_await ask<migration_result>(std::move(make));
}
awaitable<result<bool>> controller::commit(std::string id) {
  auto make = [&](reply_to<result<bool>> reply) { return controller_message(migration_commit_msg{std::move(id), std::move(reply)}); };
  co_return co_await ask<result<bool>>(std::move(make));
}
awaitable<map_result> controller::split(std::string index, std::uint32_t shard) {
  auto make = [&](reply_to<map_result> reply) { return controller_message(split_msg{std::move(index), shard, std::move(reply)}); };
  co_return co_await ask<map_result>(std::move(make));
}
awaitable<migrations_result> controller::decommission(std::string node) {
  auto make = [&](reply_to<migrations_result> reply) { return controller_message(decommission_msg{std::move(node), std::move(reply)}); };
  co_return co_await ask<migrations_result>(std::move(make));
}
awaitable<map_result> controller::set_settings(cluster_settings st) {
  auto make = [&](reply_to<map_result> reply) { return controller_message(settings_msg{st, std::move(reply)}); };
  co_return co_await ask<map_result>(std::move(make));
}

awaitable<map_result> controller::change(const std::function<result<partition_map>(const cluster_snapshot&)>& f) {
  auto snap = co_await plane_.load();
  if (!snap) co_return snap.error();
  auto next = f(**snap);
  if (!next) co_return next.error();
  const auto expected = (*snap)->map->version;
  co_return co_await plane_.compare_and_set(expected, std::move(*next));
}


namespace {

std::uint64_t wall_ms() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

error no_such_migration(const std::string& id) {
  return make_error(errc::not_found, "migration '" + id + "' does not exist");
}

const std::string rec_prefix = "migration/rec/";
constexpr auto control_timeout = std::chrono::seconds(3);


/// Moving data: what the per-node limits count. A retiring migration only waits out its undo
/// window and holds no slot.
bool transferring(const migration_record& r) {
  return r.phase == migration_phase::copying || r.phase == migration_phase::catching_up ||
         r.phase == migration_phase::verifying || r.phase == migration_phase::cutover;
}

}  // namespace

awaitable<void> controller::load_migrations() {
  migrations_loaded_ = true;
  if (!store_) co_return;
  auto stored = store_->scan_meta(rec_prefix);
  if (!stored) {
    SHARDD_LOG(err, "migration_records_unreadable", "error", stored.error().detail);
    co_return;
  }
  for (const auto& [key, value] : *stored) {
    auto r = migration_from_json(value);
    if (!r) continue;
    const auto n = std::strtoull(r->id.c_str() + 1, nullptr, 10);
    next_migration_ = std::max<std::uint64_t>(next_migration_, n + 1);
    migrations_[r->id] = std::move(*r);
  }
}

awaitable<void> controller::save(const migration_record& r) {
  if (!store_) co_return;
  std::vector<storage::write_op> ops;
  ops.push_back({storage::op_kind::meta_put, rec_prefix + r.id, to_json(r)});
  if (auto w = co_await async_write(*store_, std::move(ops)); !w)
    SHARDD_LOG(err, "migration_record_not_saved", "migration", r.id, "error", w.error().detail);
}

bool controller::busy(const std::string& index, std::uint32_t shard) const {
  // A move waiting out its undo window is over as far as the shard goes: it may move again
  // (back, say); the old source deletes its copy only if the shard is not back by then.
  for (const auto& [id, r] : migrations_)
    if (!is_final(r.phase) && r.phase != migration_phase::retiring && r.index == index && r.shard == shard) return true;
  return false;
}

awaitable<void> controller::abort_in_map(const migration_record& r) {
  auto res = co_await change([&](const cluster_snapshot& s) -> result<partition_map> {
    const auto* ix = s.map->find_index(r.index);
    const auto* sh = ix ? ix->find_shard(r.shard) : nullptr;
    if (!sh || sh->state != shard_state::migrating || sh->target != r.target)
      return make_error(errc::already_exists, "nothing to abort");
    return abort_migration(*s.map, r.index, r.shard);
  });
  if (res) SHARDD_LOG(info, "migration_aborted", "migration", r.id, "map_version", (*res)->map->version);
}

awaitable<migration_result> controller::create(migrate_request q, std::string reason) {
  if (!store_ || !peers_) co_return make_error(errc::unavailable, "migrations need a cluster");
  auto snap = co_await plane_.load();
  if (!snap) co_return snap.error();
  const auto& m = *(*snap)->map;
  const auto* ix = m.find_index(q.index);
  if (!ix) co_return make_error(errc::not_found, "index '" + q.index + "' does not exist");
  const auto* sh = ix->find_shard(q.shard);
  if (!sh) co_return make_error(errc::not_found, "index '" + q.index + "' has no shard " + std::to_string(q.shard));
  if (sh->state != shard_state::active || busy(q.index, q.shard))
    co_return make_error(errc::conflict, "shard " + std::to_string(q.shard) + " of '" + q.index + "' is already moving");
  const auto* target = m.find_node(q.target);
  if (!target) co_return make_error(errc::invalid_argument, "target node '" + q.target + "' is not a member");
  if (q.target == sh->owner)
    co_return make_error(errc::invalid_argument, "shard " + std::to_string(q.shard) + " of '" + q.index + "' is already on '" + q.target + "'");
  if (target->state != node_state::up)
    co_return make_error(errc::conflict, "target node '" + q.target + "' is " + std::string(to_string(target->state)));
  if (target->weight == 0) co_return make_error(errc::conflict, "target node '" + q.target + "' has weight 0 and takes no shards");
  const auto* source = m.find_node(sh->owner);
  if (!source || source->state == node_state::down)
    co_return make_error(errc::conflict, "the shard's node '" + sh->owner + "' is down; it cannot send the shard");
  migration_record r;
  r.id = "m" + std::to_string(next_migration_++);
  r.index = q.index;
  r.index_id = ix->id;
  r.shard = q.shard;
  r.source = sh->owner;
  r.target = q.target;
  r.priority = q.priority;
  r.max_bytes_per_sec = q.max_bytes_per_sec;
  r.reason = std::move(reason);
  r.created_ms = r.updated_ms = wall_ms();
  migrations_[r.id] = r;
  co_await save(r);
  SHARDD_LOG(info, "migration_queued", "migration", r.id, "index", r.index, "shard", r.shard, "source", r.source, "target",
             r.target, "priority", to_string(r.priority), "reason", r.reason);
  co_await schedule();
  co_return migrations_[r.id];
}

awaitable<void> controller::schedule() {
  if (!peers_) co_return;
  auto snap = co_await plane_.load();
  if (!snap) co_return;
  const auto& settings = (*snap)->map->settings;
  std::map<std::string, std::uint32_t> outgoing, incoming;
  std::vector<migration_record*> queued;
  for (auto& [id, r] : migrations_) {
    if (transferring(r)) {
      ++outgoing[r.source];
      ++incoming[r.target];
    } else if (r.phase == migration_phase::queued && !r.paused) {
      queued.push_back(&r);
    }
  }
  // Highest priority first, then the oldest.
  std::sort(queued.begin(), queued.end(), [](const migration_record* a, const migration_record* b) {
    if (weight_of(a->priority) != weight_of(b->priority)) return weight_of(a->priority) > weight_of(b->priority);
    return a->created_ms != b->created_ms ? a->created_ms < b->created_ms : a->id < b->id;
  });
  for (auto* r : queued) {
    if (outgoing[r->source] >= settings.max_outgoing || incoming[r->target] >= settings.max_incoming) continue;
    const auto now = co_await plane_.load();
    if (!now) co_return;
    const auto& m = *(*now)->map;
    const auto* ix = m.find_index(r->index);
    const auto* sh = ix && ix->id == r->index_id ? ix->find_shard(r->shard) : nullptr;
    const auto* target = m.find_node(r->target);
    const auto* source = m.find_node(r->source);
    std::string invalid;
    if (!sh) invalid = "the shard no longer exists";
    else if (sh->owner != r->source) invalid = "the shard moved meanwhile";
    else if (!target || target->state == node_state::left) invalid = "the target left the cluster";
    if (!invalid.empty()) {
      r->phase = migration_phase::failed;
      r->error = invalid;
      co_await save(*r);
      continue;
    }
    // A draining source still sends (that is how it empties); a down one cannot.
    const bool source_ok = source && (source->state == node_state::up || source->state == node_state::draining);
    if (target->state != node_state::up || !source_ok) continue;  // wait
    auto begun = co_await change([&](const cluster_snapshot& s) { return begin_migration(*s.map, r->index, r->shard, r->target); });
    if (!begun) {
      r->error = "cannot start: " + begun.error().detail;
      co_await save(*r);
      continue;
    }
    auto f = make_frame(peer::frame_type::migrate_start, to_json(*r), (*begun)->map->version);
    auto sent = co_await peers_->call(r->source, std::move(f), control_timeout);
    if (!sent) {
      // Leave it queued; the next tick tries again.
      r->error = "source did not start it: " + sent.error().detail;
      co_await abort_in_map(*r);
      co_await save(*r);
      continue;
    }
    r->phase = migration_phase::copying;
    r->error.clear();
    r->updated_ms = wall_ms();
    co_await save(*r);
    ++outgoing[r->source];
    ++incoming[r->target];
  }
}

awaitable<void> controller::converge() {
  // When the placement ring changes (a node joins or comes back, a weight changes), move the
  // shards whose desired owner changed: those where sticky placement on the old ring kept
  // them where they are and sticky placement on the new ring does not. A shard an operator
  // moved is never moved back, and nothing moves while the ring stays the same.
  if (!peers_) co_return;
  auto snap = co_await plane_.load();
  if (!snap) co_return;
  const auto& m = *(*snap)->map;
  const auto& now_ring = *(*snap)->placement;
  std::vector<ring::member> members;
  for (std::size_t i = 0; i < now_ring.node_count(); ++i) members.push_back({now_ring.nodes()[i], now_ring.weights()[i]});
  const auto same = [](const std::vector<ring::member>& a, const std::vector<ring::member>& b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](const ring::member& x, const ring::member& y) {
             return x.id == y.id && x.weight == y.weight;
           });
  };
  if (!planned_for_) {
    planned_for_ = members;  // the ring as the controller found it: nothing to catch up on
  } else if (!same(*planned_for_, members)) {
    auto old_ring = ring::build(*planned_for_, now_ring.vnodes_per_weight());
    planned_for_ = members;
    convergence_plan_.clear();
    if (m.settings.convergence && old_ring && !now_ring.empty()) {
      for (const auto& [name, ix] : m.indexes) {
        std::vector<std::uint32_t> ids;
        std::vector<int> on_old, on_new;
        for (const auto& sh : ix.shards) {
          ids.push_back(sh.id);
          on_old.push_back(old_ring->empty() ? -1 : old_ring->ordinal(sh.owner));
          on_new.push_back(now_ring.ordinal(sh.owner));
        }
        std::vector<std::uint32_t> before;
        if (!old_ring->empty()) before = place_bounded_sticky(*old_ring, name, ids, on_old, cfg_.placement_epsilon);
        auto after = place_bounded_sticky(now_ring, name, ids, on_new, cfg_.placement_epsilon);
        for (std::size_t i = 0; i < ix.shards.size(); ++i) {
          const auto& sh = ix.shards[i];
          const bool settled = before.empty() || old_ring->nodes()[before[i]] == sh.owner;
          const auto& want = now_ring.nodes()[after[i]];
          if (settled && want != sh.owner) convergence_plan_.push_back({name, sh.id, want, migration_priority::low, 0});
        }
      }
      if (!convergence_plan_.empty())
        SHARDD_LOG(info, "convergence_planned", "moves", convergence_plan_.size(), "map_version", m.version);
    }
  }
  if (!m.settings.convergence) {
    convergence_plan_.clear();
    co_return;
  }
  std::uint32_t pending = 0;
  for (const auto& [id, r] : migrations_)
    if ((r.phase == migration_phase::queued || transferring(r)) && r.reason == "convergence") ++pending;
  while (pending < m.settings.convergence_batch && !convergence_plan_.empty()) {
    auto q = std::move(convergence_plan_.front());
    convergence_plan_.pop_front();
    const auto* ix = m.find_index(q.index);
    const auto* sh = ix ? ix->find_shard(q.shard) : nullptr;
    const auto* owner = sh ? m.find_node(sh->owner) : nullptr;
    if (!sh || sh->state != shard_state::active || sh->owner == q.target || !owner || owner->state != node_state::up ||
        busy(q.index, q.shard))
      continue;
    if (auto r = co_await create(std::move(q), "convergence"); r) ++pending;
  }
}

awaitable<void> controller::finish_decommissions() {
  auto snap = co_await plane_.load();
  if (!snap) co_return;
  for (const auto& entry : (*snap)->map->nodes) {
    const std::string& id = entry.first;  // a plain name: clang 14 cannot capture structured bindings
    if (entry.second.state != node_state::draining) continue;
    bool holds = false;
    for (const auto& [name, ix] : (*snap)->map->indexes)
      for (const auto& sh : ix.shards) holds = holds || sh.owner == id || (sh.state == shard_state::migrating && sh.target == id);
    for (const auto& [mid, r] : migrations_) holds = holds || (!is_final(r.phase) && r.source == id);
    if (holds) continue;
    auto res = co_await change([&](const cluster_snapshot& s) { return set_node_state(*s.map, id, node_state::left); });
    if (res) SHARDD_LOG(info, "node_left", "peer", id, "map_version", (*res)->map->version);
  }
}

awaitable<void> controller::handle(controller_message m) {
  const auto now = std::chrono::steady_clock::now();
  if (leases_.empty()) {
    // First message: give every member a fresh lease.
    auto snap = co_await plane_.load();
    if (snap)
      for (const auto& [id, n] : (*snap)->map->nodes) leases_[id].last_seen = now;
  }
  if (!migrations_loaded_) co_await load_migrations();

  if (auto* j = std::get_if<join_msg>(&m)) {
    const auto& r = j->request;
    node_entry entry{r.node_id, r.rest_address, r.peer_address, r.weight, node_state::up};
    auto& l = leases_[r.node_id];
    l.last_seen = now;
    l.heard = true;
    auto res = co_await change([&](const cluster_snapshot& s) -> result<partition_map> {
      const auto* known = s.map->find_node(r.node_id);
      if (known && *known == entry) return make_error(errc::already_exists, "unchanged");
      if (known && known->state == node_state::left)
        return make_error(errc::conflict, "node '" + r.node_id + "' left the cluster; use a new node id");
      return upsert_node(*s.map, entry);
    });
    if (!res && res.error().code == errc::already_exists) res = co_await plane_.load();  // nothing to change
    if (res) SHARDD_LOG(info, "node_joined", "peer", r.node_id, "rest", r.rest_address, "map_version", (*res)->map->version);
    j->reply.send(std::move(res));
    co_await converge();  // a new member: plan the moves now rather than at the next tick
  } else if (auto* h = std::get_if<heartbeat_msg>(&m)) {
    auto snap = co_await plane_.load();
    if (!snap) {
      h->reply.send(snap.error());
      co_return;
    }
    const auto* n = (*snap)->map->find_node(h->beat.node_id);
    if (!n || n->state == node_state::left) {
      h->reply.send(make_error(errc::not_found, "node '" + h->beat.node_id + "' is not a member; join first"));
      co_return;
    }
    auto& l = leases_[h->beat.node_id];
    l.last_seen = now;
    l.heard = true;
    l.shards = h->beat.shards;
    l.records = h->beat.records;
    l.bytes = h->beat.bytes;
    if (n->state == node_state::down) {
      auto res = co_await change([&](const cluster_snapshot& s) { return set_node_state(*s.map, h->beat.node_id, node_state::up); });
      if (res) SHARDD_LOG(info, "node_up", "peer", h->beat.node_id, "map_version", (*res)->map->version);
      snap = std::move(res);
    }
    h->reply.send(std::move(snap));
  } else if (auto* c = std::get_if<create_index_msg>(&m)) {
    auto res = co_await change([&](const cluster_snapshot& s) {
      return shardd::create_index(*s.map, c->name, c->spec, *s.placement, cfg_.placement_epsilon);
    });
    if (res)
      SHARDD_LOG(info, "index_created", "index", c->name, "partitioning", to_string(c->spec.strategy), "shards",
                 (*res)->map->find_index(c->name)->shards.size(), "map_version", (*res)->map->version);
    c->reply.send(std::move(res));
  } else if (auto* d = std::get_if<drop_index_msg>(&m)) {
    auto res = co_await change([&](const cluster_snapshot& s) { return shardd::drop_index(*s.map, d->name); });
    if (res) SHARDD_LOG(info, "index_dropped", "index", d->name, "map_version", (*res)->map->version);
    d->reply.send(std::move(res));
  } else if (auto* w = std::get_if<set_weight_msg>(&m)) {
    auto res = co_await change([&](const cluster_snapshot& s) { return set_node_weight(*s.map, w->node, w->weight); });
    if (res) SHARDD_LOG(info, "node_weight", "peer", w->node, "weight", w->weight, "map_version", (*res)->map->version);
    w->reply.send(std::move(res));
    co_await converge();
  } else if (auto* q = std::get_if<members_msg>(&m)) {
    std::vector<member_status> out;
    for (const auto& [id, l] : leases_) {
      member_status st{id, std::nullopt, l.shards, l.records, l.bytes};
      if (l.heard) st.since_heartbeat = std::chrono::duration_cast<std::chrono::milliseconds>(now - l.last_seen);
      out.push_back(std::move(st));
    }
    q->reply.send(std::move(out));
  } else if (auto* mg = std::get_if<migrate_msg>(&m)) {
    auto r = co_await create(std::move(mg->request), "api");
    mg->reply.send(std::move(r));
  } else if (auto* q2 = std::get_if<migrations_msg>(&m)) {
    std::vector<migration_record> out;
    if (q2->id) {
      auto it = migrations_.find(*q2->id);
      if (it == migrations_.end()) {
        q2->reply.send(no_such_migration(*q2->id));
        co_return;
      }
      out.push_back(it->second);
    } else {
      for (const auto& [id, r] : migrations_) out.push_back(r);
    }
    q2->reply.send(std::move(out));
  } else if (auto* mc = std::get_if<migration_control_msg>(&m)) {
    auto it = migrations_.find(mc->id);
    if (it == migrations_.end()) {
      mc->reply.send(no_such_migration(mc->id));
      co_return;
    }
    auto& r = it->second;
    if (is_final(r.phase)) {
      mc->reply.send(make_error(errc::conflict, "migration '" + r.id + "' is " + std::string(to_string(r.phase))));
      co_return;
    }
    if (r.phase == migration_phase::queued) {
      if (mc->command == "cancel") {
        r.phase = migration_phase::cancelled;
        r.error = "cancelled by operator before it started";
      } else {
        r.paused = mc->command == "pause";
      }
      r.updated_ms = wall_ms();
      co_await save(r);
      mc->reply.send(r);
      co_return;
    }
    if (mc->command == "cancel" && r.phase == migration_phase::retiring) {
      mc->reply.send(make_error(errc::conflict, "migration '" + r.id + "' committed already; it is too late to cancel"));
      co_return;
    }
    auto f = make_frame(peer::frame_type::migrate_control, peer::encode(peer::migrate_control{r.id, mc->command}), 0);
    result<peer::frame> sent = make_error(errc::unavailable, "no cluster");
    if (peers_) sent = co_await peers_->call(r.source, std::move(f), control_timeout);
    if (!sent) {
      if (mc->command == "cancel") {
        // The source cannot be told now; it hears it when it reports again.
        r.phase = migration_phase::cancelled;
        r.error = "cancelled by operator (source unreachable: " + sent.error().detail + ")";
        co_await abort_in_map(r);
        co_await save(r);
        mc->reply.send(r);
      } else {
        mc->reply.send(make_error(errc::unavailable, "source '" + r.source + "' did not answer: " + sent.error().detail));
      }
      co_return;
    }
    if (mc->command != "cancel") r.paused = mc->command == "pause";
    r.updated_ms = wall_ms();
    co_await save(r);
    mc->reply.send(r);
  } else if (auto* rep = std::get_if<migration_report_msg>(&m)) {
    auto it = migrations_.find(rep->report.id);
    if (it == migrations_.end()) {
      rep->reply.send(no_such_migration(rep->report.id));
      co_return;
    }
    auto& r = it->second;
    if (r.phase == migration_phase::cancelled || r.phase == migration_phase::failed) {
      rep->reply.send(r);  // the source learns it was called off
      co_return;
    }
    const auto before = r.phase;
    const auto& in = rep->report;
    r.phase = in.phase;
    r.paused = in.paused;
    r.bytes_done = in.bytes_done;
    r.records_done = in.records_done;
    if (in.bytes_total) r.bytes_total = in.bytes_total;
    if (in.records_total) r.records_total = in.records_total;
    r.rate_bytes_per_sec = in.rate_bytes_per_sec;
    r.fence_ms = in.fence_ms;
    r.recopies = in.recopies;
    r.resumes = in.resumes;
    if (!in.error.empty()) r.error = in.error;
    r.updated_ms = wall_ms();
    if (is_final(r.phase) && r.phase != migration_phase::done) co_await abort_in_map(r);
    if (r.phase != before) {
      co_await save(r);
      SHARDD_LOG(info, "migration_phase", "migration", r.id, "phase", to_string(r.phase), "bytes", r.bytes_done);
    }
    auto copy = r;
    rep->reply.send(std::move(copy));
    // A slot frees as soon as the data is across: start the next ones without waiting a tick.
    if (r.phase != before && !transferring(r)) {
      co_await schedule();
      co_await converge();
    }
  } else if (auto* cm = std::get_if<migration_commit_msg>(&m)) {
    auto it = migrations_.find(cm->id);
    if (it == migrations_.end()) {
      cm->reply.send(no_such_migration(cm->id));
      co_return;
    }
    auto& r = it->second;
    if (r.phase == migration_phase::cancelled || r.phase == migration_phase::failed) {
      cm->reply.send(make_error(errc::conflict, "migration '" + r.id + "' was " + std::string(to_string(r.phase))));
      co_return;
    }
    auto res = co_await change([&](const cluster_snapshot& s) -> result<partition_map> {
      const auto* ix = s.map->find_index(r.index);
      const auto* sh = ix ? ix->find_shard(r.shard) : nullptr;
      if (sh && sh->owner == r.target && sh->state == shard_state::active)
        return make_error(errc::already_exists, "committed already");
      if (!sh || sh->state != shard_state::migrating || sh->target != r.target)
        return make_error(errc::conflict, "shard " + std::to_string(r.shard) + " of '" + r.index + "' is not moving to '" + r.target + "'");
      return commit_migration(*s.map, r.index, r.shard);
    });
    if (!res && res.error().code != errc::already_exists) {
      cm->reply.send(res.error());
      co_return;
    }
    r.phase = migration_phase::retiring;
    r.updated_ms = wall_ms();
    co_await save(r);
    cm->reply.send(true);
    co_await schedule();
    co_await converge();
  } else if (auto* sp = std::get_if<split_msg>(&m)) {
    auto snap = co_await plane_.load();
    if (!snap) {
      sp->reply.send(snap.error());
      co_return;
    }
    const auto* ix = (*snap)->map->find_index(sp->index);
    const auto* sh = ix ? ix->find_shard(sp->shard) : nullptr;
    if (!sh) {
      sp->reply.send(make_error(errc::not_found, "index '" + sp->index + "' has no shard " + std::to_string(sp->shard)));
      co_return;
    }
    std::optional<std::string> at;
    if (ix->strategy == partitioning::range) {
      // The median key of the data, from the shard's owner.
      if (!peers_) {
        sp->reply.send(make_error(errc::unavailable, "no cluster"));
        co_return;
      }
      auto f = make_frame(peer::frame_type::shard_median, peer::encode(peer::median_request{sp->index, sp->shard}), 0);
      auto r = co_await peers_->call(sh->owner, std::move(f), std::chrono::seconds(60));
      if (!r) {
        sp->reply.send(make_error(errc::unavailable, "the shard's node '" + sh->owner + "' did not answer: " + r.error().detail));
        co_return;
      }
      auto med = peer::decode_median_reply(r->payload);
      if (!med || med->key.empty()) {
        sp->reply.send(make_error(errc::conflict, "shard " + std::to_string(sp->shard) + " of '" + sp->index +
                                                      "' holds too few records to split by its median"));
        co_return;
      }
      at = med->key;
    }
    auto res = co_await change([&](const cluster_snapshot& s) { return split_shard(*s.map, sp->index, sp->shard, at); });
    if (res) SHARDD_LOG(info, "shard_split", "index", sp->index, "shard", sp->shard, "map_version", (*res)->map->version);
    sp->reply.send(std::move(res));
  } else if (auto* dc = std::get_if<decommission_msg>(&m)) {
    auto snap = co_await plane_.load();
    if (!snap) {
      dc->reply.send(snap.error());
      co_return;
    }
    const auto* n = (*snap)->map->find_node(dc->node);
    if (!n) {
      dc->reply.send(make_error(errc::not_found, "node '" + dc->node + "' is not a member"));
      co_return;
    }
    if (dc->node == (*snap)->map->controller) {
      dc->reply.send(make_error(errc::conflict, "the controller cannot be decommissioned"));
      co_return;
    }
    if (n->state == node_state::left || n->state == node_state::down) {
      dc->reply.send(make_error(errc::conflict, "node '" + dc->node + "' is " + std::string(to_string(n->state))));
      co_return;
    }
    if (n->state != node_state::draining) {
      auto res = co_await change([&](const cluster_snapshot& s) { return set_node_state(*s.map, dc->node, node_state::draining); });
      if (!res) {
        dc->reply.send(res.error());
        co_return;
      }
      snap = std::move(res);
      SHARDD_LOG(info, "node_draining", "peer", dc->node, "map_version", (*snap)->map->version);
    }
    // Every shard of the node goes where sticky bounded-load placement puts it on the other
    // nodes.
    const auto& ring = *(*snap)->placement;
    std::vector<migrate_request> moves;
    if (!ring.empty()) {
      for (const auto& [name, ix] : (*snap)->map->indexes) {
        std::vector<std::uint32_t> ids;
        std::vector<int> current;
        for (const auto& sh : ix.shards) {
          ids.push_back(sh.id);
          current.push_back(ring.ordinal(sh.owner));
        }
        auto desired = place_bounded_sticky(ring, name, ids, current, cfg_.placement_epsilon);
        for (std::size_t i = 0; i < ix.shards.size(); ++i)
          if (ix.shards[i].owner == dc->node && !busy(name, ix.shards[i].id))
            moves.push_back({name, ix.shards[i].id, ring.nodes()[desired[i]], migration_priority::normal, 0});
      }
    }
    std::vector<migration_record> created;
    for (auto& q : moves) {
      auto r = co_await create(std::move(q), "decommission");
      if (r) created.push_back(*r);
    }
    dc->reply.send(std::move(created));
  } else if (auto* st = std::get_if<settings_msg>(&m)) {
    auto res = co_await change([&](const cluster_snapshot& s) { return shardd::set_settings(*s.map, st->settings); });
    if (res) SHARDD_LOG(info, "settings_changed", "map_version", (*res)->map->version);
    st->reply.send(std::move(res));
  } else if (std::holds_alternative<tick_msg>(m)) {
    const auto limit = std::chrono::milliseconds(cfg_.heartbeat_interval_ms) * cfg_.heartbeat_miss_limit;
    auto res = co_await change([&](const cluster_snapshot& s) -> result<partition_map> {
      partition_map next = *s.map;
      std::vector<std::string> gone;
      for (const auto& [id, n] : s.map->nodes) {
        if (id == cfg_.node_id || n.state != node_state::up) continue;
        auto it = leases_.find(id);
        if (it == leases_.end()) {
          leases_[id].last_seen = now;  // a member we have not seen yet: start its lease now
          continue;
        }
        if (now - it->second.last_seen > limit) gone.push_back(id);
      }
      if (gone.empty()) return make_error(errc::already_exists, "nothing to change");
      for (const auto& id : gone) {
        auto r = set_node_state(next, id, node_state::down);
        if (!r) return r.error();
        next = std::move(*r);
        SHARDD_LOG(warn, "node_down", "peer", id, "missed_ms",
                   std::chrono::duration_cast<std::chrono::milliseconds>(now - leases_[id].last_seen).count());
      }
      next.version = s.map->version + 1;  // one version for all of them
      return next;
    });
    if (!res && res.error().code != errc::already_exists)
      SHARDD_LOG(err, "liveness_change_failed", "error", res.error().detail);
    co_await schedule();
    co_await converge();
    co_await finish_decommissions();
  }
}

}  // namespace shardd

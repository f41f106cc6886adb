#include "node/controller.hpp"

#include "node/log.hpp"

#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>

namespace shardd {

using asio::awaitable;

controller::controller(asio::any_io_executor ex, const node_config& cfg, control_plane& plane)
    : actor(ex, 1024, "controller"), cfg_(cfg), plane_(plane), ticker_(std::make_shared<asio::steady_timer>(ex)) {}

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

awaitable<map_result> controller::change(const std::function<result<partition_map>(const cluster_snapshot&)>& f) {
  auto snap = co_await plane_.load();
  if (!snap) co_return snap.error();
  auto next = f(**snap);
  if (!next) co_return next.error();
  const auto expected = (*snap)->map->version;
  co_return co_await plane_.compare_and_set(expected, std::move(*next));
}

awaitable<void> controller::handle(controller_message m) {
  const auto now = std::chrono::steady_clock::now();
  if (leases_.empty()) {
    // First message: give every member a fresh lease.
    auto snap = co_await plane_.load();
    if (snap)
      for (const auto& [id, n] : (*snap)->map->nodes) leases_[id].last_seen = now;
  }

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
  } else if (auto* q = std::get_if<members_msg>(&m)) {
    std::vector<member_status> out;
    for (const auto& [id, l] : leases_) {
      member_status st{id, std::nullopt, l.shards, l.records, l.bytes};
      if (l.heard) st.since_heartbeat = std::chrono::duration_cast<std::chrono::milliseconds>(now - l.last_seen);
      out.push_back(std::move(st));
    }
    q->reply.send(std::move(out));
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
  }
}

}  // namespace shardd

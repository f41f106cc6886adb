#include "node/ring_actor.hpp"

#include "node/faults.hpp"
#include "node/store_ops.hpp"
#include "shardd/routing.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <future>

namespace shardd {

ring_actor::ring_actor(asio::any_io_executor ex, const node_config& cfg, storage::store& store)
    : actor(std::move(ex), 64, "ring"), cfg_(cfg), store_(store), loads_(cfg.node_id) {
  publish(partition_map{});
}

void ring_actor::publish(partition_map m) {
  auto snap = std::make_shared<cluster_snapshot>();
  auto map = std::make_shared<const partition_map>(std::move(m));
  snap->placement = std::make_shared<const ring>(build_ring(*map, cfg_.vnodes_per_weight));
  snap->load = loads_.table_for(*map);
  snap->map = std::move(map);
  snapshot_ptr published = std::move(snap);
  current_.store(published, std::memory_order_release);
  for (auto& f : listeners_) f(published);
}

result<partition_map> founding_map(const node_config& cfg) {
  partition_map m;
  m.cluster_id = cfg.cluster_id;
  m.controller = cfg.node_id;
  m.settings.migration_bytes_per_sec = cfg.migration_bytes_per_sec;
  m.settings.max_outgoing = cfg.migration_max_outgoing;
  m.settings.max_incoming = cfg.migration_max_incoming;
  m.settings.migration_adaptive = cfg.migration_adaptive;
  m.settings.adaptive_p99_ms = cfg.migration_adaptive_p99_ms;
  m.settings.adaptive_min_bytes_per_sec = cfg.migration_adaptive_min_bytes_per_sec;
  m.settings.rebalance = cfg.rebalance;
  node_entry self{cfg.node_id, cfg.rest_listen.to_string(), cfg.peer_listen.to_string(), cfg.weight, node_state::up};
  return upsert_node(m, self);
}

result<bool> ring_actor::load() {
  auto stored = store_.get_meta(storage::meta_partition_map);
  if (!stored) return stored.error();
  partition_map m;
  if (*stored) {
    auto parsed = from_json(**stored);
    if (!parsed) return make_error(errc::internal, "stored partition map is unreadable: " + parsed.error().detail);
    m = std::move(*parsed);
    if (m.cluster_id != cfg_.cluster_id)
      return make_error(errc::invalid_argument, "cluster_id: the data dir belongs to cluster '" + m.cluster_id +
                                                    "', not '" + cfg_.cluster_id + "'");
    if (!m.find_node(cfg_.node_id))
      return make_error(errc::invalid_argument,
                        "node_id: the data dir's map has no node '" + cfg_.node_id + "'; was it started with another id?");
  } else if (cfg_.join || cfg_.etcd.enabled()) {
    // A new member (or any node on etcd): it serves no map until the cluster gives it one.
    return false;
  } else if (!cfg_.bootstrap) {
    // Never found a cluster by accident (a mistyped data dir, a lost --join).
    return make_error(errc::invalid_argument, "cluster.bootstrap: the data dir " + cfg_.data_dir +
                                                  " holds no cluster; start with --bootstrap to found a new one, or "
                                                  "with --join HOST:PORT to join one");
  } else {
    // A new cluster: this node is its controller and only member.
    auto founded = founding_map(cfg_);
    if (!founded) return founded.error();
    m = std::move(*founded);
    std::promise<result<void>> done;
    auto fut = done.get_future();
    storage::layout_change change;
    change.map_json = to_json(m);
    store_.submit(std::move(change), [&done](result<void> r) { done.set_value(std::move(r)); });
    if (auto r = fut.get(); !r) return r.error();
  }
  if (auto r = store_.load_ranges(local_ranges(m, cfg_.node_id)); !r) return r.error();
  SHARDD_LOG(info, "map_loaded", "map_version", m.version, "indexes", m.indexes.size(), "nodes", m.nodes.size());
  const bool found = static_cast<bool>(*stored);
  publish(std::move(m));
  return found;
}

asio::awaitable<map_result> ring_actor::install(partition_map m) {
  auto make = [&](reply_to<map_result> r) {
    install_map_cmd cmd{std::move(m), std::move(r)};
    return ring_message(std::move(cmd));
  };
  co_return co_await ask<map_result>(std::move(make));
}

asio::awaitable<map_result> ring_actor::install_from_controller(partition_map m) {
  static const std::uint32_t delay_ms = test_fault("map_delay_ms");
  if (delay_ms == 0) co_return co_await install(std::move(m));
  auto later = [this, m = std::move(m)]() mutable -> asio::awaitable<void> {
    asio::steady_timer t(co_await asio::this_coro::executor);
    t.expires_after(std::chrono::milliseconds(delay_ms));
    (void)co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)co_await install(std::move(m));
  };
  asio::co_spawn(co_await asio::this_coro::executor, std::move(later), asio::detached);
  co_return snapshot();
}

asio::awaitable<void> ring_actor::handle(ring_message m) {
  auto* c = std::get_if<install_map_cmd>(&m);
  if (!c) co_return;
  const auto snap = snapshot();
  if (c->map.version <= snap->map->version) {
    c->reply.send(snap);
    co_return;
  }
  if (auto v = validate(c->map); !v) {
    c->reply.send(v.error());
    co_return;
  }
  if (c->map.cluster_id != cfg_.cluster_id) {
    c->reply.send(make_error(errc::invalid_argument, "map of cluster '" + c->map.cluster_id + "'"));
    co_return;
  }
  auto plan = plan_layout(*snap->map, c->map, cfg_.node_id);
  storage::layout_change change;
  change.add = std::move(plan.add);
  change.drop_indexes = std::move(plan.drop_indexes);
  change.splits = std::move(plan.splits);
  change.remove = std::move(plan.remove);
  change.drop_ranges = std::move(plan.drop_ranges);
  change.map_json = to_json(c->map);
  auto persisted = co_await async_layout(store_, std::move(change));
  if (!persisted) {
    SHARDD_LOG(err, "map_install_failed", "map_version", c->map.version, "error", persisted.error().detail);
    c->reply.send(persisted.error());
    co_return;
  }
  const auto version = c->map.version;
  publish(std::move(c->map));
  SHARDD_LOG(debug, "map_installed", "map_version", version);
  c->reply.send(snapshot());
}

}  // namespace shardd

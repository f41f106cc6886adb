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
#include <set>

namespace shardd {

std::vector<storage::shard_range> local_ranges(const partition_map& m, std::string_view node, bool owned_only) {
  std::vector<storage::shard_range> out;
  for (const auto& [name, ix] : m.indexes)
    for (const auto& s : ix.shards)
      if (s.owner == node || (!owned_only && s.state == shard_state::migrating && s.target == node))
        out.push_back({ix.id, s.id, shard_storage_range(ix, s)});
  return out;
}

ring_actor::ring_actor(asio::any_io_executor ex, const node_config& cfg, storage::store& store)
    : actor(std::move(ex), 64, "ring"), cfg_(cfg), store_(store) {
  publish(partition_map{});
}

void ring_actor::publish(partition_map m) {
  auto snap = std::make_shared<cluster_snapshot>();
  auto map = std::make_shared<const partition_map>(std::move(m));
  snap->placement = std::make_shared<const ring>(build_ring(*map, cfg_.vnodes_per_weight));
  snap->map = std::move(map);
  snapshot_ptr published = std::move(snap);
  current_.store(published, std::memory_order_release);
  for (auto& f : listeners_) f(published);
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
  } else if (cfg_.join) {
    // A new member: it serves no map until the controller gives it one.
    return false;
  } else {
    // A new cluster: this node is its controller and only member.
    m.cluster_id = cfg_.cluster_id;
    m.controller = cfg_.node_id;
    m.settings.migration_bytes_per_sec = cfg_.migration_bytes_per_sec;
    m.settings.max_outgoing = cfg_.migration_max_outgoing;
    m.settings.max_incoming = cfg_.migration_max_incoming;
    m.settings.convergence = cfg_.migration_convergence;
    m.settings.convergence_batch = cfg_.migration_convergence_batch;
    node_entry self{cfg_.node_id, cfg_.rest_listen.to_string(), cfg_.peer_listen.to_string(), cfg_.weight, node_state::up};
    auto next = upsert_node(m, self);
    if (!next) return next.error();
    m = std::move(*next);
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

storage::layout_change ring_actor::layout_for(const partition_map& from, const partition_map& to) const {
  storage::layout_change change;
  const std::string& self = cfg_.node_id;
  // Indexes gone from the map (by id: a name may come back with a new id) lose their data.
  std::set<std::uint32_t> kept;
  for (const auto& [name, ix] : to.indexes) kept.insert(ix.id);
  for (const auto& [name, ix] : from.indexes)
    if (!kept.contains(ix.id)) change.drop_indexes.push_back(ix.id);

  for (const auto& [name, ix] : to.indexes) {
    const auto* old_ix = from.find_index(name);
    if (old_ix && old_ix->id != ix.id) old_ix = nullptr;
    for (const auto& s : ix.shards) {
      const shard_entry* old = old_ix ? old_ix->find_shard(s.id) : nullptr;
      const bool here_now = s.owner == self || (s.state == shard_state::migrating && s.target == self);
      const bool owned_before = old && old->owner == self;
      const bool importing_before = old && old->state == shard_state::migrating && old->target == self;
      const auto range = shard_storage_range(ix, s);
      if (!old && old_ix && here_now) {
        // A new shard of an existing index: a split of one of ours (its stats are divided
        // exactly), or a brand new shard.
        const shard_entry* parent = nullptr;
        for (const auto& p : old_ix->shards)
          if (p.owner == self && shard_storage_range(*old_ix, p).contains(range.begin)) parent = &p;
        if (parent)
          change.splits.push_back({ix.id, parent->id, s.id, range.begin});
        else
          change.add.push_back({ix.id, s.id, range});
        continue;
      }
      if (here_now && !owned_before && !importing_before) {
        change.add.push_back({ix.id, s.id, range});  // new index, or an import that starts
        // An import starts from nothing: a copy this node kept after moving the shard away
        // (its undo window) would otherwise mix stale records into the new one.
        if (s.owner != self) change.drop_ranges.push_back(range);
        continue;
      }
      if (!here_now && owned_before) {
        change.remove.push_back({ix.id, s.id});  // moved away: the source's migrator retires the data
        continue;
      }
      if (!here_now && importing_before) {
        // The move here was called off: drop what was imported.
        change.remove.push_back({ix.id, s.id});
        change.drop_ranges.push_back(range);
      }
    }
  }
  return change;
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
  auto change = layout_for(*snap->map, c->map);
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

#include "node/ring_actor.hpp"

#include "node/store_ops.hpp"
#include "shardd/routing.hpp"

#include <future>

namespace shardd {

ring_actor::ring_actor(asio::any_io_executor ex, const node_config& cfg, storage::store& store)
    : actor(std::move(ex), 64, "ring"), cfg_(cfg), store_(store) {
  publish(partition_map{});
}

void ring_actor::publish(partition_map m) {
  auto snap = std::make_shared<cluster_snapshot>();
  auto map = std::make_shared<const partition_map>(std::move(m));
  snap->placement = std::make_shared<const ring>(build_ring(*map, cfg_.vnodes_per_weight));
  snap->map = std::move(map);
  current_.store(std::move(snap), std::memory_order_release);
}

std::vector<storage::shard_range> ring_actor::local_ranges(const index_entry& ix) const {
  std::vector<storage::shard_range> out;
  for (const auto& s : ix.shards)
    if (s.owner == cfg_.node_id) out.push_back({ix.id, s.id, shard_storage_range(ix, s)});
  return out;
}

result<void> ring_actor::load() {
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
  } else if (cfg_.bootstrap || !cfg_.join) {
    // A new cluster: this node is its controller and only member.
    m.cluster_id = cfg_.cluster_id;
    m.controller = cfg_.node_id;
  } else {
    return make_error(errc::invalid_argument, "joining a cluster is not supported by this build yet");
  }

  // Register this node, or refresh its addresses and weight if the config changed them.
  node_entry self{cfg_.node_id, cfg_.rest_listen.to_string(), cfg_.peer_listen.to_string(), cfg_.weight, node_state::up};
  const node_entry* known = m.find_node(cfg_.node_id);
  if (!known || *known != self) {
    auto next = upsert_node(m, self);
    if (!next) return next.error();
    m = std::move(*next);
  }

  std::vector<storage::shard_range> ranges;
  for (const auto& [name, ix] : m.indexes) {
    auto r = local_ranges(ix);
    ranges.insert(ranges.end(), r.begin(), r.end());
  }
  if (auto r = store_.load_ranges(ranges); !r) return r.error();
  if (!*stored || !known || *known != self) {
    // Persist synchronously: nothing runs yet, and a node must not serve a map it has not kept.
    std::promise<result<void>> done;
    auto fut = done.get_future();
    storage::layout_change change;
    change.map_json = to_json(m);
    store_.submit(std::move(change), [&done](result<void> r) { done.set_value(std::move(r)); });
    if (auto r = fut.get(); !r) return r.error();
  }
  SHARDD_LOG(info, "map_loaded", "map_version", m.version, "indexes", m.indexes.size(), "nodes", m.nodes.size());
  publish(std::move(m));
  return {};
}

asio::awaitable<map_result> ring_actor::create_index(std::string name, index_spec spec) {
  auto make = [&](reply_to<map_result> r) {
    create_index_cmd cmd{std::move(name), std::move(spec), std::move(r)};
    return ring_message(std::move(cmd));
  };
  co_return co_await ask<map_result>(std::move(make));
}

asio::awaitable<map_result> ring_actor::drop_index(std::string name) {
  auto make = [&](reply_to<map_result> r) {
    drop_index_cmd cmd{std::move(name), std::move(r)};
    return ring_message(std::move(cmd));
  };
  co_return co_await ask<map_result>(std::move(make));
}

asio::awaitable<map_result> ring_actor::commit(partition_map next, storage::layout_change change) {
  change.map_json = to_json(next);
  auto persisted = co_await async_layout(store_, std::move(change));
  if (!persisted) co_return persisted.error();
  publish(std::move(next));
  co_return snapshot();
}

asio::awaitable<void> ring_actor::handle(ring_message m) {
  const auto snap = snapshot();
  if (auto* c = std::get_if<create_index_cmd>(&m)) {
    auto next = shardd::create_index(*snap->map, c->name, c->spec, *snap->placement, cfg_.placement_epsilon);
    if (!next) {
      c->reply.send(next.error());
      co_return;
    }
    storage::layout_change change;
    change.add = local_ranges(*next->find_index(c->name));
    auto r = co_await commit(std::move(*next), std::move(change));
    if (r)
      SHARDD_LOG(info, "index_created", "index", c->name, "partitioning", to_string(c->spec.strategy), "shards",
                 (*r)->map->find_index(c->name)->shards.size(), "map_version", (*r)->map->version);
    c->reply.send(std::move(r));
  } else if (auto* d = std::get_if<drop_index_cmd>(&m)) {
    const auto* ix = snap->map->find_index(d->name);
    auto next = shardd::drop_index(*snap->map, d->name);
    if (!next) {
      d->reply.send(next.error());
      co_return;
    }
    storage::layout_change change;
    change.drop_indexes.push_back(ix->id);
    auto r = co_await commit(std::move(*next), std::move(change));
    if (r) SHARDD_LOG(info, "index_dropped", "index", d->name, "map_version", (*r)->map->version);
    d->reply.send(std::move(r));
  }
}

}  // namespace shardd

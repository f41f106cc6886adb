// REST: health, the cluster and its nodes, the ring, the partition map.
#include "node/disk_guard.hpp"
#include "node/control_plane.hpp"
#include "node/controller.hpp"
#include "node/monitor.hpp"
#include "node/rest_internal.hpp"
#include "shardd/cluster_plan.hpp"
#include "shardd/json_fields.hpp"
#include "shardd/routing.hpp"
#include "shardd/text.hpp"

#include <boost/json/serialize.hpp>

namespace shardd {

// --- health ---------------------------------------------------------------------------------

http_response rest_api::health(call& c) {
  json::object o;
  const bool stopping = ctx_.stopping.load();
  o["status"] = stopping ? "stopping" : "ok";
  o["node"] = ctx_.config.node_id;
  o["cluster"] = ctx_.config.cluster_id;
  o["role"] = ctx_.ctl ? "controller" : "member";
  o["map_version"] = c.snap->map->version;
  o["version"] = SHARDD_VERSION;
  return json_response(stopping ? 503 : 200, json::serialize(o));
}

awaitable<http_response> rest_api::health_ready(call& c) {
  // Whether a load balancer should send this node requests: each check that fails is a reason.
  json::array reasons;
  const auto& map = *c.snap->map;
  const auto* self = map.find_node(ctx_.config.node_id);
  if (map.version == 0 || !self) reasons.push_back("no partition map loaded yet");
  if (auto meta = ctx_.store.get_meta(storage::meta_partition_map); !meta)
    reasons.push_back(json::value("storage is not readable: " + meta.error().detail));
  if (ctx_.stopping.load()) reasons.push_back("the node is stopping");
  if (self && self->state == node_state::draining) reasons.push_back("the node is draining");
  if (self && (self->state == node_state::down || self->state == node_state::left))
    reasons.push_back(json::value("the map says this node is " + std::string(to_string(self->state))));
  if (!ctx_.ctl && ctx_.plane && !ctx_.plane->controller_reachable())
    reasons.push_back(json::value("the controller '" + map.controller + "' is unreachable"));
  json::object o;
  o["ready"] = reasons.empty();
  o["node"] = ctx_.config.node_id;
  o["map_version"] = map.version;
  o["reasons"] = std::move(reasons);
  co_return json_response(o["ready"].as_bool() ? 200 : 503, json::serialize(o));
}

awaitable<http_response> rest_api::cluster_health(call& c) {
  if (!ctx_.ctl && ctx_.peer && ctx_.plane && !c.forwarded) {
    // Migrations are the controller's: ask it; fall back to what this node's map shows.
    auto res = co_await forward(c, ctx_.plane->elect_controller());
    if (res.status == 200) co_return res;
  }
  std::size_t running = 0;
  std::size_t anomalies = 0;
  if (ctx_.ctl) {
    if (auto ms = co_await ctx_.ctl->migrations(std::nullopt); ms)
      for (const auto& mr : *ms) running += is_final(mr.phase) ? 0 : 1;
    if (auto m = co_await ctx_.ctl->members(); m)
      for (const auto& st : *m) anomalies += st.anomalies_open;
  } else {
    anomalies = ctx_.mon ? ctx_.mon->anomalies_open() : 0;
    for (const auto& [name, ix] : c.snap->map->indexes)
      for (const auto& s : ix.shards) running += s.state == shard_state::migrating ? 1 : 0;
  }
  const auto h = assess_health(*c.snap->map, running, anomalies);
  if (c.text()) {
    std::vector<std::vector<std::string>> rows;
    if (h.reasons.empty()) rows.push_back({h.status, "-"});
    for (const auto& r : h.reasons) rows.push_back({h.status, r});
    co_return text_response(render_table({"status", "reason"}, rows));
  }
  json::object o;
  o["status"] = h.status;
  json::array reasons;
  for (const auto& r : h.reasons) reasons.push_back(json::value(r));
  o["reasons"] = std::move(reasons);
  o["nodes"] = c.snap->map->nodes.size();
  o["migrations_running"] = running;
  o["map_version"] = c.snap->map->version;
  co_return json_response(200, json::serialize(o));
}

// --- cluster, ring, partition map ----------------------------------------------------------

awaitable<http_response> rest_api::get_cluster(call& c) {
  bool reachable = true;
  if (!ctx_.ctl && ctx_.peer && ctx_.plane && !c.forwarded) {
    // The controller knows the leases; ask it, and fall back to what this node knows.
    const auto controller_id = ctx_.plane->elect_controller();
    auto res = co_await forward(c, controller_id);
    if (res.status == 200) co_return res;
    reachable = false;
  }
  std::map<std::string, member_status> members;
  std::map<std::string, std::uint32_t> moving_out, moving_in;
  if (ctx_.ctl) {
    auto m = co_await ctx_.ctl->members();
    if (m)
      for (auto& st : *m) members[st.node_id] = st;
    if (auto ms = co_await ctx_.ctl->migrations(std::nullopt); ms)
      for (const auto& mr : *ms)
        if (!is_final(mr.phase)) {
          ++moving_out[mr.source];
          ++moving_in[mr.target];
        }
  }
  const auto& map = *c.snap->map;
  std::map<std::string, std::uint32_t> shard_counts;
  for (const auto& [name, ix] : map.indexes)
    for (const auto& s : ix.shards) ++shard_counts[s.owner];
  std::uint64_t self_records = 0, self_bytes = 0;
  if (auto st = shards_.stats(); st)
    for (const auto& s : st->shards) {
      self_records += s.records;
      self_bytes += s.bytes;
    }
  json::array nodes;
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> disk_reasons;
  bool disk_flood = false;
  for (const auto& [id, n] : map.nodes) {
    json::object o;
    o["id"] = id;
    o["rest_address"] = n.rest_address;
    o["peer_address"] = n.peer_address;
    o["state"] = to_string(n.state);
    o["weight"] = n.weight;
    o["shards"] = shard_counts[id];
    o["controller"] = id == map.controller;
    o["migrations_out"] = moving_out[id];  // shards queued or moving off this node (draining: what is left)
    o["migrations_in"] = moving_in[id];
    std::optional<std::uint64_t> records, bytes;
    std::optional<std::int64_t> heartbeat;
    if (auto it = members.find(id); it != members.end()) o["anomalies_open"] = it->second.anomalies_open;
    else if (id == ctx_.config.node_id && ctx_.mon) o["anomalies_open"] = ctx_.mon->anomalies_open();
    else o["anomalies_open"] = nullptr;
    if (id == ctx_.config.node_id) {
      records = self_records;
      bytes = self_bytes;
      heartbeat = 0;
    } else if (auto it = members.find(id); it != members.end()) {
      if (it->second.since_heartbeat) {
        records = it->second.records;
        bytes = it->second.bytes;
        heartbeat = it->second.since_heartbeat->count();
      }
    }
    if (records) o["records"] = *records; else o["records"] = nullptr;
    if (bytes) o["bytes"] = *bytes; else o["bytes"] = nullptr;
    if (heartbeat) o["last_heartbeat_ms"] = *heartbeat; else o["last_heartbeat_ms"] = nullptr;
    // The data disk, as the controller last heard it (this node's own: measured here).
    std::string disk_text = "-";
    std::optional<member_status> disk_of;
    if (auto it = members.find(id); it != members.end() && it->second.disk_total > 0) disk_of = it->second;
    if (!disk_of && id == ctx_.config.node_id && ctx_.disk && ctx_.disk->usage().total > 0) {
      member_status self;
      self.disk_used = ctx_.disk->usage().used;
      self.disk_total = ctx_.disk->usage().total;
      self.disk = ctx_.disk->level();
      disk_of = self;
    }
    if (disk_of && n.state != node_state::left) {
      o["disk_used"] = disk_of->disk_used;
      o["disk_total"] = disk_of->disk_total;
      o["disk_level"] = to_string(disk_of->disk);
      char pct[32];
      std::snprintf(pct, sizeof pct, "%.1f%%", 100.0 * static_cast<double>(disk_of->disk_used) / static_cast<double>(disk_of->disk_total));
      disk_text = std::string(pct) + " " + std::string(to_string(disk_of->disk));
      if (disk_of->disk != disk_level::ok) {
        disk_reasons.push_back("node " + id + "'s data disk is at its " + std::string(to_string(disk_of->disk)) +
                               " watermark (" + pct + " used)");
        disk_flood = disk_flood || disk_of->disk == disk_level::flood;
      }
    } else {
      o["disk_used"] = nullptr;
      o["disk_total"] = nullptr;
      o["disk_level"] = nullptr;
    }
    rows.push_back({id, std::string(to_string(n.state)), std::to_string(n.weight), std::to_string(shard_counts[id]),
                    records ? std::to_string(*records) : "-", bytes ? std::to_string(*bytes) : "-", disk_text,
                    heartbeat ? std::to_string(*heartbeat) : "-", n.rest_address, n.peer_address,
                    id == map.controller ? "*" : ""});
    nodes.push_back(std::move(o));
  }
  if (c.text())
    co_return text_response(render_table(
        {"node", "state", "weight", "shards", "records", "bytes", "disk", "heartbeat_ms", "rest", "peer", "controller"}, rows));
  json::object o;
  o["cluster_id"] = map.cluster_id;
  std::size_t running = 0;
  for (const auto& [id, n] : moving_out) running += n;
  std::size_t anomalies = 0;
  if (ctx_.ctl)
    for (const auto& [id, st] : members) anomalies += st.anomalies_open;
  else if (ctx_.mon)
    anomalies = ctx_.mon->anomalies_open();
  auto h = assess_health(map, running, anomalies);
  // Disks: flood refuses writes (red); low and high stop placements or shed shards (yellow).
  if (disk_flood) h.status = "red";
  else if (!disk_reasons.empty() && h.status == "green") h.status = "yellow";
  o["status"] = h.status;
  json::array reasons;
  for (const auto& r : h.reasons) reasons.push_back(json::value(r));
  for (const auto& r : disk_reasons) reasons.push_back(json::value(r));
  o["status_reasons"] = std::move(reasons);
  o["controller"] = map.controller;
  o["controller_reachable"] = reachable;
  o["map_version"] = map.version;
  o["answered_by"] = ctx_.config.node_id;
  o["nodes"] = std::move(nodes);
  co_return json_response(200, json::serialize(o));
}

awaitable<http_response> rest_api::set_node(call& c, const std::string& id) {
  auto parsed = parse_json(c.req.body, "request body");
  if (!parsed) co_return c.fail(parsed.error());
  if (!parsed->is_object()) co_return c.fail(400, "invalid-argument", "node settings must be a JSON object");
  json_fields f(parsed->get_object(), "");
  if (!f.find("weight")) co_return c.fail(400, "invalid-argument", "weight: is required");
  auto weight = f.opt_u64("weight", 1, 0, ring::max_weight);
  if (!weight) co_return c.fail(weight.error());
  if (auto fin = f.finish(); !fin) co_return c.fail(fin.error());
  auto r = co_await ctx_.ctl->set_weight(id, static_cast<std::uint32_t>(*weight));
  if (!r) co_return c.fail(r.error());
  c.snap = *r;
  const auto* n = c.snap->map->find_node(id);
  json::object o;
  o["id"] = id;
  o["weight"] = n->weight;
  o["state"] = to_string(n->state);
  o["map_version"] = c.snap->map->version;
  co_return json_response(200, json::serialize(o));
}

http_response rest_api::get_ring(call& c) {
  const auto& r = *c.snap->placement;
  const auto shares = r.ownership();
  json::array nodes;
  std::vector<std::vector<std::string>> rows;
  for (std::size_t o = 0; o < r.node_count(); ++o) {
    json::object n;
    n["id"] = r.nodes()[o];
    n["weight"] = r.weights()[o];
    n["vnodes"] = static_cast<std::uint64_t>(r.weights()[o]) * r.vnodes_per_weight();
    n["ownership"] = shares[o];
    char share[32];
    std::snprintf(share, sizeof share, "%.4f", shares[o]);
    rows.push_back({r.nodes()[o], std::to_string(r.weights()[o]),
                    std::to_string(static_cast<std::uint64_t>(r.weights()[o]) * r.vnodes_per_weight()), share});
    nodes.push_back(std::move(n));
  }
  if (c.text()) return text_response(render_table({"node", "weight", "vnodes", "ownership"}, rows));
  json::object out;
  out["vnodes_per_weight"] = r.vnodes_per_weight();
  out["vnode_count"] = r.vnode_count();
  out["memory_bytes"] = r.memory_bytes();
  out["nodes"] = std::move(nodes);
  out["map_version"] = c.snap->map->version;
  return json_response(200, json::serialize(out));
}

http_response rest_api::ring_lookup(call& c) {
  const auto* index = c.param("index");
  const auto* key = c.param("key");
  if (!index || !key) return c.fail(400, "invalid-argument", "index and key are required");
  if (auto v = validate_index_name(*index); !v) return c.fail(v.error());
  if (auto v = validate_key(*key); !v) return c.fail(v.error());
  const auto* ix = c.snap->map->find_index(*index);
  if (!ix) return c.fail(404, "not-found", "index " + quoted(*index) + " does not exist");
  const auto rt = route_key(*ix, *key, c.routing());
  const auto& s = ix->shards[rt.shard_pos];
  json::object o;
  o["index"] = ix->name;
  o["key"] = *key;
  o["partitioning"] = to_string(ix->strategy);
  if (ix->strategy == partitioning::hash) {
    o["token"] = to_hex(token_key(rt.token));
    if (!c.snap->placement->empty()) o["ring_node"] = c.snap->placement->lookup(rt.token);
  }
  o["shard"] = s.id;
  o["start"] = bound_to_text(ix->strategy, s.start);
  if (s.end) o["end"] = bound_to_text(ix->strategy, *s.end); else o["end"] = nullptr;
  o["owner"] = s.owner;
  const auto* n = c.snap->map->find_node(s.owner);
  o["owner_state"] = n ? to_string(n->state) : "unknown";
  if (!c.snap->placement->empty()) {
    // Where the ring would put it: sticky placement from the current owners.
    auto desired = desired_owners(*ix, *c.snap->placement, ctx_.config.placement_epsilon);
    o["desired_owner"] = desired[rt.shard_pos];
  }
  o["map_version"] = c.snap->map->version;
  return json_response(200, json::serialize(o));
}

http_response rest_api::get_partition_map(call& c) {
  const std::string etag = "\"" + std::to_string(c.snap->map->version) + "\"";
  http_response r;
  if (c.req.if_none_match == etag) {
    r.status = 304;
  } else {
    r.body = to_json(*c.snap->map);
  }
  r.set_header("ETag", etag);
  return r;
}

}  // namespace shardd

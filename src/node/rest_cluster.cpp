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

#include <cmath>

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
  return json_response(stopping ? 503 : 200, to_json_text(o));
}

std::string_view openapi_json();  // docs/openapi.json, compiled in (scripts/embed-file.py)
std::string_view ui_index_html();  // src/ui/, compiled in the same way
std::string_view ui_app_js();
std::string_view ui_app_css();

http_response rest_api::openapi(call&) { return json_response(200, std::string(openapi_json())); }

http_response rest_api::ui_file(call& c) {
  http_response r;
  if (c.path == "/ui") {
    r.content_type = "text/html; charset=utf-8";
    r.body = std::string(ui_index_html());
  } else if (c.path == "/ui/app.js") {
    r.content_type = "text/javascript; charset=utf-8";
    r.body = std::string(ui_app_js());
  } else {
    r.content_type = "text/css; charset=utf-8";
    r.body = std::string(ui_app_css());
  }
  // The page loads nothing but its own files and talks to nothing but this node.
  r.set_header("Content-Security-Policy",
               "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
  r.set_header("X-Content-Type-Options", "nosniff");
  r.set_header("Referrer-Policy", "no-referrer");
  r.set_header("Cache-Control", "no-cache");
  return r;
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
  co_return json_response(o["ready"].as_bool() ? 200 : 503, to_json_text(o));
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
    co_return c.table({{{"status", text_col, "green, yellow or red"},
                        {"reason", text_col, "why the status is not green (one row per reason)"}},
                       std::move(rows)});
  }
  json::object o;
  o["status"] = h.status;
  json::array reasons;
  for (const auto& r : h.reasons) reasons.push_back(json::value(r));
  o["reasons"] = std::move(reasons);
  o["nodes"] = c.snap->map->nodes.size();
  o["migrations_running"] = running;
  o["map_version"] = c.snap->map->version;
  co_return json_response(200, to_json_text(o));
}

// --- cluster, ring, partition map ----------------------------------------------------------

/// What the cluster and node views are built from: the controller's leases and migrations (on
/// the controller; empty elsewhere) and the map's shard counts.
struct cluster_facts {
  std::map<std::string, member_status> members;
  std::vector<migration_record> migrations;  ///< all, finished ones included
  std::map<std::string, std::uint32_t> moving_out, moving_in, drained, shard_counts;
  std::uint64_t self_records = 0, self_bytes = 0;
};

namespace {

/// One node's entry of the cluster view; `row` gets its text-table cells, `disk_reason` is set
/// when its disk is past a watermark.
json::object node_json(const cluster_facts& f, const partition_map& map, const std::string& id, const node_entry& n,
                       const node_config& cfg, const disk_guard* own_disk, const monitor* mon, std::vector<std::string>& row,
                       std::optional<std::pair<std::string, bool>>& disk_reason) {
  auto count = [](const std::map<std::string, std::uint32_t>& m, const std::string& k) -> std::uint32_t {
    auto it = m.find(k);
    return it == m.end() ? 0 : it->second;
  };
  json::object o;
  o["id"] = id;
  o["rest_address"] = n.rest_address;
  o["peer_address"] = n.peer_address;
  o["state"] = to_string(n.state);
  o["weight"] = n.weight;
  o["shards"] = count(f.shard_counts, id);
  o["controller"] = id == map.controller;
  o["migrations_out"] = count(f.moving_out, id);  // shards queued or moving off this node (draining: what is left)
  o["migrations_in"] = count(f.moving_in, id);
  std::optional<std::uint64_t> records, bytes;
  std::optional<std::int64_t> heartbeat;
  const auto member = f.members.find(id);
  if (member != f.members.end()) o["anomalies_open"] = member->second.anomalies_open;
  else if (id == cfg.node_id && mon) o["anomalies_open"] = mon->anomalies_open();
  else o["anomalies_open"] = nullptr;
  if (id == cfg.node_id) {
    records = f.self_records;
    bytes = f.self_bytes;
    heartbeat = 0;
  } else if (member != f.members.end() && member->second.since_heartbeat) {
    records = member->second.records;
    bytes = member->second.bytes;
    heartbeat = member->second.since_heartbeat->count();
  }
  if (records) o["records"] = *records; else o["records"] = nullptr;
  if (bytes) o["bytes"] = *bytes; else o["bytes"] = nullptr;
  if (heartbeat) o["last_heartbeat_ms"] = *heartbeat; else o["last_heartbeat_ms"] = nullptr;
  // The data disk, as the controller last heard it (this node's own: measured here).
  std::string disk_text = "-";
  std::optional<member_status> disk_of;
  if (member != f.members.end() && member->second.disk_total > 0) disk_of = member->second;
  if (!disk_of && id == cfg.node_id && own_disk && own_disk->usage().total > 0) {
    member_status self;
    self.disk_used = own_disk->usage().used;
    self.disk_total = own_disk->usage().total;
    self.disk = own_disk->level();
    disk_of = self;
  }
  if (disk_of && n.state != node_state::left) {
    o["disk_used"] = disk_of->disk_used;
    o["disk_total"] = disk_of->disk_total;
    o["disk_level"] = to_string(disk_of->disk);
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.1f%%", 100.0 * static_cast<double>(disk_of->disk_used) / static_cast<double>(disk_of->disk_total));
    disk_text = std::string(pct) + " " + std::string(to_string(disk_of->disk));
    if (disk_of->disk != disk_level::ok)
      disk_reason.emplace("node " + id + "'s data disk is at its " + std::string(to_string(disk_of->disk)) + " watermark (" +
                              pct + " used)",
                          disk_of->disk == disk_level::flood);
  } else {
    o["disk_used"] = nullptr;
    o["disk_total"] = nullptr;
    o["disk_level"] = nullptr;
  }
  // A draining node: shards moved off by the drain so far, of those it had when it began
  // (moved + still here). Counted from the controller's migration records.
  std::string drain_text = "-";
  const auto drained = count(f.drained, id);
  if (n.state == node_state::draining || (n.state == node_state::left && drained > 0)) {
    json::object d;
    d["shards_moved"] = drained;
    d["shards_left"] = count(f.shard_counts, id);
    o["drain"] = std::move(d);
    drain_text = std::to_string(drained) + "/" + std::to_string(drained + count(f.shard_counts, id));
  } else {
    o["drain"] = nullptr;
  }
  row = {id, std::string(to_string(n.state)), std::to_string(n.weight), std::to_string(count(f.shard_counts, id)),
         records ? std::to_string(*records) : "-", bytes ? std::to_string(*bytes) : "-", disk_text,
         std::to_string(count(f.moving_in, id)), std::to_string(count(f.moving_out, id)), drain_text,
         heartbeat ? std::to_string(*heartbeat) : "-", n.rest_address, n.peer_address, id == map.controller ? "*" : ""};
  return o;
}

}  // namespace

awaitable<cluster_facts> rest_api::gather_cluster(call& c) {
  cluster_facts f;
  if (ctx_.ctl) {
    if (auto m = co_await ctx_.ctl->members(); m)
      for (auto& st : *m) f.members[st.node_id] = st;
    if (auto ms = co_await ctx_.ctl->migrations(std::nullopt); ms) f.migrations = std::move(*ms);
    for (const auto& mr : f.migrations) {
      if (!is_final(mr.phase)) {
        ++f.moving_out[mr.source];
        ++f.moving_in[mr.target];
      }
      // Committed (the map gives the shard to the target): moved off, retiring or done.
      if ((mr.phase == migration_phase::done || mr.phase == migration_phase::retiring) &&
          (mr.reason == "decommission" || mr.reason == "drain"))
        ++f.drained[mr.source];
    }
    // The map as of those records or newer (a commit changes both in one controller step), so
    // a drain's moved + left adds up.
    if (ctx_.plane)
      if (auto fresh = co_await ctx_.plane->load(); fresh && (*fresh)->map->version > c.snap->map->version) c.snap = *fresh;
  }
  for (const auto& [name, ix] : c.snap->map->indexes)
    for (const auto& s : ix.shards) ++f.shard_counts[s.owner];
  if (auto st = shards_.stats(); st)
    for (const auto& s : st->shards) {
      f.self_records += s.records;
      f.self_bytes += s.bytes;
    }
  co_return f;
}

awaitable<http_response> rest_api::get_cluster(call& c) {
  bool reachable = true;
  if (!ctx_.ctl && ctx_.peer && ctx_.plane && !c.forwarded) {
    // The controller knows the leases; ask it, and fall back to what this node knows.
    const auto controller_id = ctx_.plane->elect_controller();
    auto res = co_await forward(c, controller_id);
    if (res.status == 200) co_return res;
    reachable = false;
  }
  const auto f = co_await gather_cluster(c);
  const auto& map = *c.snap->map;
  json::array nodes;
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> disk_reasons;
  bool disk_flood = false;
  for (const auto& [id, n] : map.nodes) {
    std::vector<std::string> row;
    std::optional<std::pair<std::string, bool>> disk_reason;
    nodes.push_back(node_json(f, map, id, n, ctx_.config, ctx_.disk, ctx_.mon, row, disk_reason));
    rows.push_back(std::move(row));
    if (disk_reason) {
      disk_reasons.push_back(disk_reason->first);
      disk_flood = disk_flood || disk_reason->second;
    }
  }
  if (c.text())
    co_return c.table({{{"node", text_col, "node id"},
                        {"state", text_col, "up, down, draining or left"},
                        {"weight", num_col, "the node's weight"},
                        {"shards", num_col, "shards it owns"},
                        {"records", num_col, "records in them (- when unknown)"},
                        {"bytes", bytes_col, "bytes in them (- when unknown)"},
                        {"disk", text_col, "data disk used and its watermark level"},
                        {"mig_in", num_col, "migrations queued or running onto the node"},
                        {"mig_out", num_col, "migrations queued or running off the node"},
                        {"drain", text_col, "a drain's progress: shards moved off / shards it had (- when not draining)"},
                        {"heartbeat_ms", num_col, "since its last heartbeat reached the controller"},
                        {"rest", text_col, "REST address"},
                        {"peer", text_col, "peer address"},
                        {"controller", text_col, "* on the controller"}},
                       std::move(rows)});
  json::object o;
  o["cluster_id"] = map.cluster_id;
  std::size_t running = 0;
  for (const auto& [id, n] : f.moving_out) running += n;
  std::size_t anomalies = 0;
  if (ctx_.ctl)
    for (const auto& [id, st] : f.members) anomalies += st.anomalies_open;
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
  co_return json_response(200, to_json_text(o));
}

awaitable<http_response> rest_api::get_node(call& c, const std::string& id) {
  const auto& map = *c.snap->map;
  const auto* n = map.find_node(id);
  if (!n) co_return c.fail(404, "not-found", "node " + quoted(id) + " is not a member");
  const auto f = co_await gather_cluster(c);
  std::vector<std::string> row;
  std::optional<std::pair<std::string, bool>> disk_reason;
  auto o = node_json(f, map, id, *n, ctx_.config, ctx_.disk, ctx_.mon, row, disk_reason);
  json::array shards;
  for (const auto& [name, ix] : map.indexes)
    for (const auto& s : ix.shards) {
      if (s.owner != id && !(s.state == shard_state::migrating && s.target == id)) continue;
      json::object e;
      e["index"] = name;
      e["shard"] = s.id;
      e["state"] = to_string(s.state);
      if (s.owner != id) e["importing_from"] = s.owner;
      shards.push_back(std::move(e));
    }
  o["shard_list"] = std::move(shards);
  json::array in, out;
  for (const auto& mr : f.migrations) {
    if (is_final(mr.phase)) continue;
    if (mr.target == id) in.push_back(json::value(mr.id));
    if (mr.source == id) out.push_back(json::value(mr.id));
  }
  o["migration_ids_in"] = std::move(in);
  o["migration_ids_out"] = std::move(out);
  if (auto m = f.members.find(id); m != f.members.end()) {
    double reads = 0, writes = 0;
    for (const auto& l : m->second.load) {
      reads += l.reads_per_sec;
      writes += l.writes_per_sec;
    }
    o["reads_per_sec"] = std::round(reads * 1000) / 1000;
    o["writes_per_sec"] = std::round(writes * 1000) / 1000;
  }
  o["map_version"] = map.version;
  co_return json_response(200, to_json_text(o));
}

awaitable<http_response> rest_api::remove_node(call& c, const std::string& id) {
  bool force = false;
  if (auto v = c.param("force")) {
    if (*v != "true" && *v != "false") co_return c.fail(400, "invalid-argument", "force must be true or false");
    force = *v == "true";
  }
  if (!c.req.body.empty()) co_return c.fail(400, "invalid-argument", "DELETE /v1/cluster/nodes/{node} takes no body");
  auto r = co_await ctx_.ctl->remove_node(id, force);
  if (!r) co_return c.fail(r.error());
  json::object o;
  o["removed"] = id;
  o["was"] = r->was;
  json::array lost;
  for (const auto& l : r->recreated) {
    json::object e;
    e["index"] = l.index;
    e["shard"] = l.shard;
    e["new_owner"] = l.owner;
    lost.push_back(std::move(e));
  }
  o["shards_recreated_empty"] = std::move(lost);
  o["map_version"] = r->map_version;
  co_return json_response(200, to_json_text(o));
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
  co_return json_response(200, to_json_text(o));
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
  if (c.text())
    return c.table({{{"node", text_col, "node id"},
                     {"weight", num_col, "the node's weight"},
                     {"vnodes", num_col, "its virtual nodes on the ring"},
                     {"ownership", num_col, "the share of the token space it owns (0 to 1)"}},
                    std::move(rows)});
  json::object out;
  out["vnodes_per_weight"] = r.vnodes_per_weight();
  out["vnode_count"] = r.vnode_count();
  out["memory_bytes"] = r.memory_bytes();
  if (const auto* v = c.param("vnodes"); v && *v == "true") {
    // Every vnode's token (16 hex digits) and its owner's ordinal in `nodes`, in ring order:
    // what the dashboard draws.
    json::array tokens, owners;
    tokens.reserve(r.vnode_count());
    owners.reserve(r.vnode_count());
    for (std::size_t i = 0; i < r.vnode_count(); ++i) {
      tokens.emplace_back(to_hex(token_key(r.vnode_token(i))));
      owners.emplace_back(r.vnode_owner(i));
    }
    out["tokens"] = std::move(tokens);
    out["owners"] = std::move(owners);
  }
  out["nodes"] = std::move(nodes);
  out["map_version"] = c.snap->map->version;
  return json_response(200, to_json_text(out));
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
  return json_response(200, to_json_text(o));
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

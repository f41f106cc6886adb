#include "shardd/partition_map.hpp"

#include "shardd/json_fields.hpp"
#include "shardd/placement.hpp"
#include "shardd/sha256.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <set>

namespace shardd {

namespace json = boost::json;

std::string_view to_string(node_state s) noexcept {
  switch (s) {
    case node_state::up: return "up";
    case node_state::down: return "down";
    case node_state::draining: return "draining";
    case node_state::left: return "left";
  }
  return "?";
}

std::string_view to_string(shard_state s) noexcept {
  switch (s) {
    case shard_state::active: return "active";
    case shard_state::migrating: return "migrating";
    case shard_state::importing: return "importing";
    case shard_state::offline: return "offline";
  }
  return "?";
}

std::string_view to_string(partitioning p) noexcept { return p == partitioning::hash ? "hash" : "range"; }

std::optional<node_state> parse_node_state(std::string_view s) noexcept {
  for (auto v : {node_state::up, node_state::down, node_state::draining, node_state::left})
    if (to_string(v) == s) return v;
  return std::nullopt;
}

std::optional<shard_state> parse_shard_state(std::string_view s) noexcept {
  for (auto v : {shard_state::active, shard_state::migrating, shard_state::importing, shard_state::offline})
    if (to_string(v) == s) return v;
  return std::nullopt;
}

std::optional<partitioning> parse_partitioning(std::string_view s) noexcept {
  if (s == "hash") return partitioning::hash;
  if (s == "range") return partitioning::range;
  return std::nullopt;
}

const shard_entry* index_entry::find_shard(std::uint32_t shard_id) const noexcept {
  for (const auto& s : shards)
    if (s.id == shard_id) return &s;
  return nullptr;
}

const index_entry* partition_map::find_index(std::string_view name) const noexcept {
  auto it = indexes.find(name);
  return it == indexes.end() ? nullptr : &it->second;
}

const node_entry* partition_map::find_node(std::string_view id) const noexcept {
  auto it = nodes.find(id);
  return it == nodes.end() ? nullptr : &it->second;
}

ring build_ring(const partition_map& m, std::uint32_t vnodes_per_weight) {
  std::vector<ring::member> members;
  for (const auto& [id, n] : m.nodes)
    if (n.accepts_shards()) members.push_back({id, n.weight});
  auto r = ring::build(std::move(members), vnodes_per_weight);
  // A validated map has unique ids and weights in range, so build() cannot fail.
  return r ? std::move(*r) : ring(vnodes_per_weight);
}

namespace {

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

result<partition_map> next_version(partition_map m) {
  ++m.version;
  if (auto v = validate(m); !v) return v.error();
  return m;
}

result<index_entry*> mutable_index(partition_map& m, std::string_view name) {
  auto it = m.indexes.find(name);
  if (it == m.indexes.end()) return make_error(errc::not_found, "index " + quoted(name) + " does not exist");
  return &it->second;
}

result<shard_entry*> mutable_shard(partition_map& m, std::string_view index, std::uint32_t shard) {
  auto ix = mutable_index(m, index);
  if (!ix) return ix.error();
  for (auto& s : (*ix)->shards)
    if (s.id == shard) return &s;
  return make_error(errc::not_found, "index " + quoted(index) + " has no shard " + std::to_string(shard));
}

result<node_entry*> mutable_node(partition_map& m, std::string_view node) {
  auto it = m.nodes.find(node);
  if (it == m.nodes.end()) return make_error(errc::not_found, "node " + quoted(node) + " is not a member");
  return &it->second;
}

const std::string hash_space_start = std::string(token_bytes, '\0');

}  // namespace

result<partition_map> upsert_node(const partition_map& m, const node_entry& n) {
  if (n.id.empty()) return make_error(errc::invalid_argument, "node id must not be empty");
  if (n.weight > ring::max_weight)
    return make_error(errc::invalid_argument, "weight must be at most " + std::to_string(ring::max_weight));
  partition_map next = m;
  next.nodes[n.id] = n;
  return next_version(std::move(next));
}

result<partition_map> set_node_state(const partition_map& m, std::string_view node, node_state s) {
  partition_map next = m;
  auto n = mutable_node(next, node);
  if (!n) return n.error();
  (*n)->state = s;
  return next_version(std::move(next));
}

result<partition_map> set_node_weight(const partition_map& m, std::string_view node, std::uint32_t weight) {
  if (weight > ring::max_weight)
    return make_error(errc::invalid_argument, "weight must be at most " + std::to_string(ring::max_weight));
  partition_map next = m;
  auto n = mutable_node(next, node);
  if (!n) return n.error();
  (*n)->weight = weight;
  return next_version(std::move(next));
}

result<node_removal> remove_node(const partition_map& m, std::string_view node, bool force) {
  const auto it = m.nodes.find(std::string(node));
  if (it == m.nodes.end()) return make_error(errc::not_found, "node '" + std::string(node) + "' is not a member");
  const auto& n = it->second;
  if (n.id == m.controller) return make_error(errc::conflict, "node '" + n.id + "' is the controller");
  if (n.state == node_state::up || n.state == node_state::draining)
    return make_error(errc::conflict, "node '" + n.id + "' is " + std::string(to_string(n.state)) +
                                          "; decommission it (it leaves once drained) or stop it and wait until it is down");
  std::vector<std::pair<std::string, std::uint32_t>> owned;
  for (const auto& [name, ix] : m.indexes)
    for (const auto& s : ix.shards) {
      if (s.state == shard_state::migrating && (s.owner == n.id || s.target == n.id))
        return make_error(errc::conflict, "shard " + name + "/" + std::to_string(s.id) + " is moving " +
                                              (s.owner == n.id ? "off" : "onto") + " node '" + n.id +
                                              "'; cancel its migration first");
      if (s.owner == n.id) owned.emplace_back(name, s.id);
    }
  if (!owned.empty() && !force) {
    std::string list;
    for (const auto& [name, id] : owned) list.append(list.empty() ? "" : ", ").append(name + "/" + std::to_string(id));
    return make_error(errc::conflict, "node '" + n.id + "' is down and the only holder of " + std::to_string(owned.size()) +
                                          " shard(s): " + list +
                                          "; removing it with force=true recreates them empty on other nodes (their "
                                          "records are lost)");
  }
  node_removal out;
  out.map = m;
  out.map.nodes.erase(n.id);
  if (!owned.empty()) {
    std::map<std::string, std::size_t> load;
    for (const auto& [id, other] : out.map.nodes)
      if (other.accepts_shards()) load[id] = 0;
    if (load.empty()) return make_error(errc::unavailable, "no node accepts shards: the removed node's shards would have no owner");
    for (const auto& [name, ix] : out.map.indexes)
      for (const auto& s : ix.shards)
        if (auto l = load.find(s.owner); l != load.end()) ++l->second;
    for (const auto& [name, id] : owned) {
      auto least = std::min_element(load.begin(), load.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
      auto& ix = out.map.indexes.at(name);
      for (auto& s : ix.shards)
        if (s.id == id) s.owner = least->first;
      ++least->second;
      out.recreated.push_back({name, id, least->first});
    }
  }
  auto next = next_version(std::move(out.map));
  if (!next) return next.error();
  out.map = std::move(*next);
  return out;
}

result<partition_map> set_settings(const partition_map& m, const cluster_settings& s) {
  if (s.max_outgoing < 1 || s.max_incoming < 1)
    return make_error(errc::invalid_argument, "max_outgoing and max_incoming must be at least 1");
  partition_map next = m;
  next.settings = s;
  return next_version(std::move(next));
}

result<partition_map> create_index(const partition_map& m, std::string_view name, const index_spec& spec,
                                   const ring& placement_ring, double epsilon) {
  if (auto v = validate_index_name(name); !v) return v.error();
  if (m.indexes.contains(name)) return make_error(errc::already_exists, "index " + quoted(name) + " already exists");
  if (m.next_index_id == UINT32_MAX) return make_error(errc::internal, "index ids are exhausted");
  if (placement_ring.empty())
    return make_error(errc::unavailable, "no node accepts shards (all are down, draining or of weight 0)");

  index_entry ix;
  ix.name = std::string(name);
  ix.id = m.next_index_id;
  ix.strategy = spec.strategy;
  if (spec.strategy == partitioning::hash) {
    if (!spec.split_points.empty())
      return make_error(errc::invalid_argument, "split_points apply to range partitioning only");
    if (spec.shards < 1 || spec.shards > max_shards_per_index)
      return make_error(errc::invalid_argument,
                        "shards must be between 1 and " + std::to_string(max_shards_per_index));
    for (std::uint32_t i = 0; i < spec.shards; ++i) {
      shard_entry s;
      s.id = i;
      auto lo = static_cast<std::uint64_t>((static_cast<unsigned __int128>(i) << 64) / spec.shards);
      s.start = token_key(lo);
      if (i + 1 < spec.shards)
        s.end = token_key(static_cast<std::uint64_t>((static_cast<unsigned __int128>(i + 1) << 64) / spec.shards));
      ix.shards.push_back(std::move(s));
    }
  } else {
    if (spec.split_points.size() + 1 > max_shards_per_index)
      return make_error(errc::invalid_argument,
                        "at most " + std::to_string(max_shards_per_index - 1) + " split points");
    for (std::size_t i = 0; i < spec.split_points.size(); ++i) {
      const auto& p = spec.split_points[i];
      if (auto v = validate_key(p); !v)
        return make_error(errc::invalid_argument, "split_points[" + std::to_string(i) + "]: " + v.error().detail);
      if (i > 0 && !(spec.split_points[i - 1] < p))
        return make_error(errc::invalid_argument, "split_points must be sorted and distinct (byte order)");
    }
    std::string start;
    for (std::uint32_t i = 0; i <= spec.split_points.size(); ++i) {
      shard_entry s;
      s.id = i;
      s.start = start;
      if (i < spec.split_points.size()) {
        s.end = spec.split_points[i];
        start = spec.split_points[i];
      }
      ix.shards.push_back(std::move(s));
    }
  }
  ix.next_shard_id = static_cast<std::uint32_t>(ix.shards.size());

  std::vector<std::uint32_t> ids;
  for (const auto& s : ix.shards) ids.push_back(s.id);
  auto owners = place_bounded(placement_ring, name, ids, epsilon);
  for (std::size_t i = 0; i < ix.shards.size(); ++i) ix.shards[i].owner = placement_ring.nodes()[owners[i]];

  partition_map next = m;
  ++next.next_index_id;
  next.indexes.emplace(ix.name, std::move(ix));
  return next_version(std::move(next));
}

result<partition_map> drop_index(const partition_map& m, std::string_view name) {
  if (!m.indexes.contains(name)) return make_error(errc::not_found, "index " + quoted(name) + " does not exist");
  partition_map next = m;
  next.indexes.erase(next.indexes.find(name));
  return next_version(std::move(next));
}

result<partition_map> set_shard_owner(const partition_map& m, std::string_view index, std::uint32_t shard,
                                      std::string_view node) {
  partition_map next = m;
  auto s = mutable_shard(next, index, shard);
  if (!s) return s.error();
  if (!next.nodes.contains(node)) return make_error(errc::not_found, "node " + quoted(node) + " is not a member");
  if ((*s)->state == shard_state::migrating)
    return make_error(errc::conflict, "shard " + std::to_string(shard) + " of " + quoted(index) + " is migrating");
  (*s)->owner = std::string(node);
  return next_version(std::move(next));
}

result<partition_map> set_shard_state(const partition_map& m, std::string_view index, std::uint32_t shard,
                                      shard_state st) {
  if (st == shard_state::migrating)
    return make_error(errc::invalid_argument, "use begin_migration to mark a shard migrating");
  partition_map next = m;
  auto s = mutable_shard(next, index, shard);
  if (!s) return s.error();
  if ((*s)->state == shard_state::migrating)
    return make_error(errc::conflict, "shard " + std::to_string(shard) + " of " + quoted(index) + " is migrating");
  (*s)->state = st;
  return next_version(std::move(next));
}

result<partition_map> begin_migration(const partition_map& m, std::string_view index, std::uint32_t shard,
                                      std::string_view target) {
  partition_map next = m;
  auto s = mutable_shard(next, index, shard);
  if (!s) return s.error();
  const auto* t = next.find_node(target);
  if (!t) return make_error(errc::not_found, "target node " + quoted(target) + " is not a member");
  if ((*s)->state != shard_state::active)
    return make_error(errc::conflict, "shard " + std::to_string(shard) + " of " + quoted(index) + " is " +
                                          std::string(to_string((*s)->state)) + ", not active");
  if ((*s)->owner == target)
    return make_error(errc::invalid_argument, "shard " + std::to_string(shard) + " of " + quoted(index) +
                                                  " is already on " + quoted(target));
  if (!t->accepts_shards())
    return make_error(errc::conflict, "target node " + quoted(target) + " is " + std::string(to_string(t->state)) +
                                          (t->weight == 0 ? " with weight 0" : "") + " and accepts no shards");
  (*s)->state = shard_state::migrating;
  (*s)->target = std::string(target);
  return next_version(std::move(next));
}

result<partition_map> commit_migration(const partition_map& m, std::string_view index, std::uint32_t shard) {
  partition_map next = m;
  auto s = mutable_shard(next, index, shard);
  if (!s) return s.error();
  if ((*s)->state != shard_state::migrating)
    return make_error(errc::conflict, "shard " + std::to_string(shard) + " of " + quoted(index) + " is not migrating");
  (*s)->owner = std::move((*s)->target);
  (*s)->target.clear();
  (*s)->state = shard_state::active;
  return next_version(std::move(next));
}

result<partition_map> abort_migration(const partition_map& m, std::string_view index, std::uint32_t shard) {
  partition_map next = m;
  auto s = mutable_shard(next, index, shard);
  if (!s) return s.error();
  if ((*s)->state != shard_state::migrating)
    return make_error(errc::conflict, "shard " + std::to_string(shard) + " of " + quoted(index) + " is not migrating");
  (*s)->target.clear();
  (*s)->state = shard_state::active;
  return next_version(std::move(next));
}

result<partition_map> split_shard(const partition_map& m, std::string_view index, std::uint32_t shard,
                                  std::optional<std::string> at) {
  partition_map next = m;
  auto ixr = mutable_index(next, index);
  if (!ixr) return ixr.error();
  index_entry& ix = **ixr;
  auto it = std::find_if(ix.shards.begin(), ix.shards.end(), [&](const shard_entry& s) { return s.id == shard; });
  if (it == ix.shards.end())
    return make_error(errc::not_found, "index " + quoted(index) + " has no shard " + std::to_string(shard));
  if (it->state != shard_state::active)
    return make_error(errc::conflict, "shard " + std::to_string(shard) + " of " + quoted(index) + " is " +
                                          std::string(to_string(it->state)) + "; only active shards split");
  if (ix.shards.size() >= max_shards_per_index)
    return make_error(errc::conflict, "index " + quoted(index) + " already has the maximum number of shards");

  std::string middle;
  if (ix.strategy == partitioning::hash) {
    if (at) return make_error(errc::invalid_argument, "hash shards split at their middle token; give no key");
    const unsigned __int128 lo = read_u64be(it->start);
    const unsigned __int128 hi = it->end ? static_cast<unsigned __int128>(read_u64be(*it->end))
                                         : (static_cast<unsigned __int128>(1) << 64);
    if (hi - lo < 2) return make_error(errc::conflict, "shard covers a single token and cannot split");
    middle = token_key(static_cast<std::uint64_t>(lo + (hi - lo) / 2));
  } else {
    if (!at || at->empty()) return make_error(errc::invalid_argument, "range shards need a split key");
    if (auto v = validate_key(*at); !v) return make_error(errc::invalid_argument, "split key: " + v.error().detail);
    if (!(*at > it->start) || (it->end && !(*at < *it->end)))
      return make_error(errc::invalid_argument, "split key must lie strictly inside the shard's range");
    middle = std::move(*at);
  }
  shard_entry upper = *it;
  upper.id = ix.next_shard_id++;
  upper.start = middle;
  it->end = middle;
  ix.shards.insert(it + 1, std::move(upper));
  return next_version(std::move(next));
}

result<void> validate(const partition_map& m) {
  auto bad = [](std::string what) { return make_error(errc::invalid_argument, std::move(what)); };
  for (const auto& [id, n] : m.nodes) {
    if (id.empty() || id != n.id) return bad("node key " + quoted(id) + " does not match its id " + quoted(n.id));
    if (n.weight > ring::max_weight) return bad("node " + quoted(id) + " has weight above the maximum");
  }
  if (!m.controller.empty() && !m.nodes.contains(m.controller))
    return bad("controller " + quoted(m.controller) + " is not a member");
  std::set<std::uint32_t> index_ids;
  for (const auto& [name, ix] : m.indexes) {
    const std::string where = "index " + quoted(name);
    if (name != ix.name) return bad("index key " + quoted(name) + " does not match its name " + quoted(ix.name));
    if (auto v = validate_index_name(name); !v) return bad(where + ": " + v.error().detail);
    if (ix.id == 0 || ix.id >= m.next_index_id) return bad(where + ": id " + std::to_string(ix.id) + " is not below next_index_id");
    if (!index_ids.insert(ix.id).second) return bad(where + ": id " + std::to_string(ix.id) + " is used twice");
    if (ix.shards.empty()) return bad(where + ": has no shards");
    if (ix.shards.size() > max_shards_per_index) return bad(where + ": too many shards");
    std::set<std::uint32_t> shard_ids;
    for (std::size_t i = 0; i < ix.shards.size(); ++i) {
      const auto& s = ix.shards[i];
      const std::string sw = where + " shard " + std::to_string(s.id);
      if (s.id >= ix.next_shard_id) return bad(sw + ": id is not below next_shard_id");
      if (!shard_ids.insert(s.id).second) return bad(sw + ": id is used twice");
      if (ix.strategy == partitioning::hash) {
        if (s.start.size() != token_bytes || (s.end && s.end->size() != token_bytes))
          return bad(sw + ": hash bounds must be 8-byte tokens");
      }
      if (i == 0) {
        const std::string& first = ix.strategy == partitioning::hash ? hash_space_start : std::string();
        if (s.start != first) return bad(sw + ": the first shard must start at the beginning of the space (gap)");
      } else {
        const auto& prev = ix.shards[i - 1];
        if (!prev.end || *prev.end != s.start)
          return bad(sw + ": does not start where shard " + std::to_string(prev.id) + " ends (gap or overlap)");
      }
      if (s.end && !(s.start < *s.end)) return bad(sw + ": is empty or reversed");
      if (i + 1 == ix.shards.size() && s.end) return bad(sw + ": the last shard must reach the end of the space (gap)");
      if (i + 1 < ix.shards.size() && !s.end) return bad(sw + ": only the last shard may reach the end of the space (overlap)");
      if (!m.nodes.contains(s.owner)) return bad(sw + ": owner " + quoted(s.owner) + " is not a member");
      if (s.state == shard_state::migrating) {
        if (!m.nodes.contains(s.target)) return bad(sw + ": migration target " + quoted(s.target) + " is not a member");
        if (s.target == s.owner) return bad(sw + ": migration target is the owner");
      } else if (!s.target.empty()) {
        return bad(sw + ": has a migration target but is not migrating");
      }
    }
  }
  return {};
}

// --- JSON -------------------------------------------------------------------------------------

std::string bound_to_text(partitioning p, std::string_view bound) {
  return p == partitioning::hash ? to_hex(bound) : std::string(bound);
}

result<std::string> bound_from_text(partitioning p, std::string_view text) {
  if (p == partitioning::range) return std::string(text);
  if (text.size() != 2 * token_bytes) return make_error(errc::invalid_argument, "hash bound must be 16 hex digits");
  std::string out;
  for (std::size_t i = 0; i < text.size(); i += 2) {
    auto nib = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    int hi = nib(text[i]), lo = nib(text[i + 1]);
    if (hi < 0 || lo < 0) return make_error(errc::invalid_argument, "hash bound must be 16 lower-case hex digits");
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

std::string to_json(const partition_map& m) {
  // Objects keep insertion order, and nodes and indexes iterate in key order, so equal maps
  // serialize to equal bytes.
  json::object root;
  root["version"] = m.version;
  root["cluster_id"] = m.cluster_id;
  root["controller"] = m.controller;
  root["next_index_id"] = m.next_index_id;
  json::array nodes;
  for (const auto& [id, n] : m.nodes) {
    json::object o;
    o["id"] = n.id;
    o["rest_address"] = n.rest_address;
    o["peer_address"] = n.peer_address;
    o["weight"] = n.weight;
    o["state"] = to_string(n.state);
    nodes.push_back(std::move(o));
  }
  root["nodes"] = std::move(nodes);
  json::array indexes;
  for (const auto& [name, ix] : m.indexes) {
    json::object o;
    o["name"] = ix.name;
    o["id"] = ix.id;
    o["partitioning"] = to_string(ix.strategy);
    o["next_shard_id"] = ix.next_shard_id;
    json::array shards;
    for (const auto& s : ix.shards) {
      json::object so;
      so["id"] = s.id;
      so["start"] = bound_to_text(ix.strategy, s.start);
      if (s.end)
        so["end"] = bound_to_text(ix.strategy, *s.end);
      else
        so["end"] = nullptr;
      so["owner"] = s.owner;
      so["state"] = to_string(s.state);
      if (!s.target.empty()) so["target"] = s.target;
      shards.push_back(std::move(so));
    }
    o["shards"] = std::move(shards);
    indexes.push_back(std::move(o));
  }
  root["indexes"] = std::move(indexes);
  json::object settings;
  settings["migration_bytes_per_sec"] = m.settings.migration_bytes_per_sec;
  settings["max_outgoing"] = m.settings.max_outgoing;
  settings["max_incoming"] = m.settings.max_incoming;
  settings["migration_adaptive"] = m.settings.migration_adaptive;
  settings["adaptive_p99_ms"] = m.settings.adaptive_p99_ms;
  settings["adaptive_min_bytes_per_sec"] = m.settings.adaptive_min_bytes_per_sec;
  settings["rebalance"] = to_json_object(m.settings.rebalance);
  root["settings"] = std::move(settings);
  return to_json_text(root);
}

namespace {

template <class T>
result<T> narrow_u32(result<std::uint64_t> v, const json_fields& f, std::string_view key) {
  if (!v) return v.error();
  if (*v > UINT32_MAX) return f.fail(key, "is too large");
  return static_cast<T>(*v);
}

}  // namespace

result<partition_map> from_json(std::string_view text) {
  auto parsed = parse_json(text, "partition map");
  if (!parsed) return parsed.error();
  if (!parsed->is_object()) return make_error(errc::invalid_argument, "partition map: expected an object");
  partition_map m;
  json_fields root(parsed->get_object(), "");
  auto version = root.req_u64("version");
  if (!version) return version.error();
  m.version = *version;
  auto cid = root.req_string("cluster_id");
  if (!cid) return cid.error();
  m.cluster_id = *cid;
  auto ctl = root.req_string("controller");
  if (!ctl) return ctl.error();
  m.controller = *ctl;
  auto nid = narrow_u32<std::uint32_t>(root.req_u64("next_index_id"), root, "next_index_id");
  if (!nid) return nid.error();
  m.next_index_id = *nid;

  auto nodes = root.opt_array("nodes");
  if (!nodes) return nodes.error();
  if (*nodes) {
    for (std::size_t i = 0; i < (*nodes)->size(); ++i) {
      const auto& v = (**nodes)[i];
      const std::string path = "nodes[" + std::to_string(i) + "]";
      if (!v.is_object()) return make_error(errc::invalid_argument, path + ": expected an object");
      json_fields f(v.get_object(), path);
      node_entry n;
      auto id = f.req_string("id");
      if (!id) return id.error();
      n.id = *id;
      auto ra = f.req_string("rest_address");
      if (!ra) return ra.error();
      n.rest_address = *ra;
      auto pa = f.req_string("peer_address");
      if (!pa) return pa.error();
      n.peer_address = *pa;
      auto w = narrow_u32<std::uint32_t>(f.req_u64("weight"), f, "weight");
      if (!w) return w.error();
      n.weight = *w;
      auto st = f.req_string("state");
      if (!st) return st.error();
      auto ps = parse_node_state(*st);
      if (!ps) return f.fail("state", "unknown node state '" + *st + "'");
      n.state = *ps;
      if (auto fin = f.finish(); !fin) return fin.error();
      if (m.nodes.contains(n.id)) return make_error(errc::invalid_argument, path + ": node '" + n.id + "' is listed twice");
      m.nodes.emplace(n.id, std::move(n));
    }
  }

  auto indexes = root.opt_array("indexes");
  if (!indexes) return indexes.error();
  if (*indexes) {
    for (std::size_t i = 0; i < (*indexes)->size(); ++i) {
      const auto& v = (**indexes)[i];
      const std::string path = "indexes[" + std::to_string(i) + "]";
      if (!v.is_object()) return make_error(errc::invalid_argument, path + ": expected an object");
      json_fields f(v.get_object(), path);
      index_entry ix;
      auto name = f.req_string("name");
      if (!name) return name.error();
      ix.name = *name;
      auto id = narrow_u32<std::uint32_t>(f.req_u64("id"), f, "id");
      if (!id) return id.error();
      ix.id = *id;
      auto ps = f.req_string("partitioning");
      if (!ps) return ps.error();
      auto p = parse_partitioning(*ps);
      if (!p) return f.fail("partitioning", "must be \"hash\" or \"range\"");
      ix.strategy = *p;
      auto nsid = narrow_u32<std::uint32_t>(f.req_u64("next_shard_id"), f, "next_shard_id");
      if (!nsid) return nsid.error();
      ix.next_shard_id = *nsid;
      auto shards = f.opt_array("shards");
      if (!shards) return shards.error();
      if (!*shards) return f.fail("shards", "is required");
      for (std::size_t j = 0; j < (*shards)->size(); ++j) {
        const auto& sv = (**shards)[j];
        const std::string spath = path + ".shards[" + std::to_string(j) + "]";
        if (!sv.is_object()) return make_error(errc::invalid_argument, spath + ": expected an object");
        json_fields sf(sv.get_object(), spath);
        shard_entry s;
        auto sid = narrow_u32<std::uint32_t>(sf.req_u64("id"), sf, "id");
        if (!sid) return sid.error();
        s.id = *sid;
        auto start = sf.req_string("start");
        if (!start) return start.error();
        auto sb = bound_from_text(ix.strategy, *start);
        if (!sb) return sf.fail("start", sb.error().detail);
        s.start = *sb;
        auto end = sf.opt_string("end");
        if (!end) return end.error();
        if (*end) {
          auto eb = bound_from_text(ix.strategy, **end);
          if (!eb) return sf.fail("end", eb.error().detail);
          s.end = *eb;
        }
        auto owner = sf.req_string("owner");
        if (!owner) return owner.error();
        s.owner = *owner;
        auto st = sf.req_string("state");
        if (!st) return st.error();
        auto pst = parse_shard_state(*st);
        if (!pst) return sf.fail("state", "unknown shard state '" + *st + "'");
        s.state = *pst;
        auto target = sf.opt_string("target");
        if (!target) return target.error();
        if (*target) s.target = **target;
        if (auto fin = sf.finish(); !fin) return fin.error();
        ix.shards.push_back(std::move(s));
      }
      if (auto fin = f.finish(); !fin) return fin.error();
      if (m.indexes.contains(ix.name))
        return make_error(errc::invalid_argument, path + ": index '" + ix.name + "' is listed twice");
      m.indexes.emplace(ix.name, std::move(ix));
    }
  }
  auto settings = root.opt_object("settings");
  if (!settings) return settings.error();
  if (*settings) {
    json_fields sf(**settings, "settings");
    SHARDD_READ(m.settings.migration_bytes_per_sec, sf.opt_u64("migration_bytes_per_sec", 0));
    SHARDD_READ(m.settings.max_outgoing, sf.opt_u64("max_outgoing", 2, 1, 1000));
    SHARDD_READ(m.settings.max_incoming, sf.opt_u64("max_incoming", 2, 1, 1000));
    SHARDD_READ(m.settings.migration_adaptive, sf.opt_bool("migration_adaptive", false));
    SHARDD_READ(m.settings.adaptive_p99_ms, sf.opt_double("adaptive_p99_ms", 50, 0.001, 60000));
    SHARDD_READ(m.settings.adaptive_min_bytes_per_sec,
                sf.opt_u64("adaptive_min_bytes_per_sec", 1 << 20, 4096, UINT64_MAX));
    // A map written before the rebalancer took over joins: `convergence` false meant no
    // automatic moves, which is mode off now; `convergence_batch` has no successor.
    auto legacy = sf.opt_bool("convergence", true);
    if (!legacy) return legacy.error();
    (void)sf.find("convergence_batch");
    auto rb = sf.opt_object("rebalance");
    if (!rb) return rb.error();
    if (!*rb && !*legacy) m.settings.rebalance.mode = rebalance_mode::off;
    if (*rb) {
      json_fields rf(**rb, sf.child_path("rebalance"));
      if (auto r = read_rebalance_settings(rf, m.settings.rebalance); !r) return r.error();
    }
    if (auto fin = sf.finish(); !fin) return fin.error();
  }
  if (auto fin = root.finish(); !fin) return fin.error();
  if (auto v = validate(m); !v) return v.error();
  return m;
}

// --- diff -------------------------------------------------------------------------------------

std::string_view to_string(map_change::kind k) noexcept {
  using K = map_change::kind;
  switch (k) {
    case K::node_added: return "node_added";
    case K::node_removed: return "node_removed";
    case K::node_state: return "node_state";
    case K::node_weight: return "node_weight";
    case K::node_address: return "node_address";
    case K::index_created: return "index_created";
    case K::index_dropped: return "index_dropped";
    case K::shard_added: return "shard_added";
    case K::shard_removed: return "shard_removed";
    case K::shard_moved: return "shard_moved";
    case K::shard_state: return "shard_state";
    case K::shard_range: return "shard_range";
  }
  return "?";
}

std::vector<map_change> diff(const partition_map& a, const partition_map& b) {
  using K = map_change::kind;
  std::vector<map_change> out;
  for (const auto& [id, n] : a.nodes) {
    const auto* nb = b.find_node(id);
    if (!nb) {
      out.push_back({K::node_removed, id, 0, std::string(to_string(n.state)), ""});
      continue;
    }
    if (nb->state != n.state)
      out.push_back({K::node_state, id, 0, std::string(to_string(n.state)), std::string(to_string(nb->state))});
    if (nb->weight != n.weight)
      out.push_back({K::node_weight, id, 0, std::to_string(n.weight), std::to_string(nb->weight)});
    if (nb->rest_address != n.rest_address || nb->peer_address != n.peer_address)
      out.push_back({K::node_address, id, 0, n.rest_address + " " + n.peer_address,
                     nb->rest_address + " " + nb->peer_address});
  }
  for (const auto& [id, n] : b.nodes)
    if (!a.nodes.contains(id)) out.push_back({K::node_added, id, 0, "", std::string(to_string(n.state))});

  for (const auto& [name, ia] : a.indexes) {
    const auto* ib = b.find_index(name);
    if (!ib || ib->id != ia.id) {
      out.push_back({K::index_dropped, name, 0, std::to_string(ia.id), ""});
      if (ib) out.push_back({K::index_created, name, 0, "", std::to_string(ib->id)});
      continue;
    }
    for (const auto& sa : ia.shards) {
      const auto* sb = ib->find_shard(sa.id);
      if (!sb) {
        out.push_back({K::shard_removed, name, sa.id, sa.owner, ""});
        continue;
      }
      if (sb->owner != sa.owner) out.push_back({K::shard_moved, name, sa.id, sa.owner, sb->owner});
      if (sb->state != sa.state)
        out.push_back({K::shard_state, name, sa.id, std::string(to_string(sa.state)), std::string(to_string(sb->state))});
      if (sb->start != sa.start || sb->end != sa.end)
        out.push_back({K::shard_range, name, sa.id, bound_to_text(ia.strategy, sa.start) + ".." +
                                                        (sa.end ? bound_to_text(ia.strategy, *sa.end) : ""),
                       bound_to_text(ib->strategy, sb->start) + ".." + (sb->end ? bound_to_text(ib->strategy, *sb->end) : "")});
    }
    for (const auto& sb : ib->shards)
      if (!ia.find_shard(sb.id)) out.push_back({K::shard_added, name, sb.id, "", sb.owner});
  }
  for (const auto& [name, ib] : b.indexes) {
    const auto* ia = a.find_index(name);
    if (!ia) out.push_back({K::index_created, name, 0, "", std::to_string(ib.id)});
  }
  return out;
}

}  // namespace shardd

#include "shardd/cluster_plan.hpp"

#include "shardd/placement.hpp"
#include "shardd/sha256.hpp"

#include <algorithm>
#include <charconv>

namespace shardd {

bool transferring(const migration_record& r) noexcept {
  return r.phase == migration_phase::copying || r.phase == migration_phase::catching_up ||
         r.phase == migration_phase::verifying || r.phase == migration_phase::cutover;
}

bool holds_shard(const migration_record& r) noexcept { return !is_final(r.phase) && r.phase != migration_phase::retiring; }

bool shard_busy(const migration_table& t, std::string_view index, std::uint32_t shard) noexcept {
  for (const auto& [id, r] : t)
    if (holds_shard(r) && r.index == index && r.shard == shard) return true;
  return false;
}

std::uint64_t migration_number(std::string_view id) noexcept {
  if (id.size() < 2 || id[0] != 'm') return 0;
  std::uint64_t n = 0;
  auto [p, ec] = std::from_chars(id.data() + 1, id.data() + id.size(), n);
  if (ec != std::errc{} || p != id.data() + id.size()) return 0;
  return n;
}

std::vector<std::string> ids_in_order(const migration_table& t) {
  std::vector<std::string> ids;
  ids.reserve(t.size());
  for (const auto& [id, r] : t) ids.push_back(id);
  std::stable_sort(ids.begin(), ids.end(), [](const std::string& a, const std::string& b) {
    const auto na = migration_number(a), nb = migration_number(b);
    return na != nb ? na < nb : a < b;
  });
  return ids;
}

// --- placement -------------------------------------------------------------------------------

namespace {

/// Sticky placement of `ix` on `r` from the owners it has: ring ordinals, in shard order.
std::vector<std::uint32_t> sticky(const index_entry& ix, const ring& r, double epsilon) {
  std::vector<std::uint32_t> ids;
  std::vector<int> current;
  ids.reserve(ix.shards.size());
  current.reserve(ix.shards.size());
  for (const auto& sh : ix.shards) {
    ids.push_back(sh.id);
    current.push_back(r.ordinal(sh.owner));
  }
  return place_bounded_sticky(r, ix.name, ids, current, epsilon);
}

}  // namespace

std::vector<std::string> desired_owners(const index_entry& ix, const ring& placement, double epsilon) {
  std::vector<std::string> out;
  if (placement.empty()) return out;
  const auto at = sticky(ix, placement, epsilon);
  out.reserve(at.size());
  for (auto o : at) out.push_back(placement.nodes()[o]);
  return out;
}

std::vector<std::string> drained_nodes(const partition_map& m, const migration_table& t) {
  std::vector<std::string> out;
  for (const auto& [id, n] : m.nodes) {
    if (n.state != node_state::draining) continue;
    bool holds = false;
    for (const auto& [name, ix] : m.indexes)
      for (const auto& sh : ix.shards) holds = holds || sh.owner == id || (sh.state == shard_state::migrating && sh.target == id);
    for (const auto& [mid, r] : t) holds = holds || (!is_final(r.phase) && r.source == id);
    if (!holds) out.push_back(id);
  }
  return out;
}

// --- migrations ------------------------------------------------------------------------------

result<void> check_move(const partition_map& m, const migration_table& t, const migrate_request& q) {
  const auto* ix = m.find_index(q.index);
  if (!ix) return make_error(errc::not_found, "index '" + q.index + "' does not exist");
  const auto* sh = ix->find_shard(q.shard);
  const auto shard = "shard " + std::to_string(q.shard) + " of '" + q.index + "'";
  if (!sh) return make_error(errc::not_found, "index '" + q.index + "' has no shard " + std::to_string(q.shard));
  if (sh->state != shard_state::active || shard_busy(t, q.index, q.shard))
    return make_error(errc::conflict, shard + " is already moving");
  const auto* target = m.find_node(q.target);
  if (!target) return make_error(errc::invalid_argument, "target node '" + q.target + "' is not a member");
  if (q.target == sh->owner) return make_error(errc::invalid_argument, shard + " is already on '" + q.target + "'");
  if (target->state != node_state::up)
    return make_error(errc::conflict, "target node '" + q.target + "' is " + std::string(to_string(target->state)));
  if (target->weight == 0) return make_error(errc::conflict, "target node '" + q.target + "' has weight 0 and takes no shards");
  const auto* source = m.find_node(sh->owner);
  if (!source || source->state == node_state::down)
    return make_error(errc::conflict, "the shard's node '" + sh->owner + "' is down; it cannot send the shard");
  return {};
}

start_plan plan_starts(const partition_map& m, const migration_table& t, const std::set<std::string>& starting) {
  start_plan plan;
  std::map<std::string, std::uint32_t, std::less<>> outgoing, incoming;
  std::vector<const migration_record*> queued;
  for (const auto& [id, r] : t) {
    if (transferring(r) || (r.phase == migration_phase::queued && starting.contains(id))) {
      ++outgoing[r.source];
      ++incoming[r.target];
    } else if (r.phase == migration_phase::queued && !r.paused) {
      queued.push_back(&r);
    }
  }
  std::sort(queued.begin(), queued.end(), [](const migration_record* a, const migration_record* b) {
    if (weight_of(a->priority) != weight_of(b->priority)) return weight_of(a->priority) > weight_of(b->priority);
    if (a->created_ms != b->created_ms) return a->created_ms < b->created_ms;
    const auto na = migration_number(a->id), nb = migration_number(b->id);
    return na != nb ? na < nb : a->id < b->id;
  });
  for (const auto* r : queued) {
    const auto* ix = m.find_index(r->index);
    const auto* sh = ix && ix->id == r->index_id ? ix->find_shard(r->shard) : nullptr;
    const auto* target = m.find_node(r->target);
    const auto* source = m.find_node(r->source);
    if (!sh) {
      plan.fail.emplace_back(r->id, "the shard no longer exists");
      continue;
    }
    if (sh->owner != r->source) {
      plan.fail.emplace_back(r->id, "the shard moved meanwhile");
      continue;
    }
    if (!target || target->state == node_state::left) {
      plan.fail.emplace_back(r->id, "the target left the cluster");
      continue;
    }
    if (outgoing[r->source] >= m.settings.max_outgoing || incoming[r->target] >= m.settings.max_incoming) continue;
    // A draining source still sends (that is how it empties); a down one cannot.
    const bool source_ok = source && (source->state == node_state::up || source->state == node_state::draining);
    if (target->state != node_state::up || !source_ok) continue;  // wait
    if (sh->state != shard_state::active) continue;  // the map still shows an earlier move of it
    plan.start.push_back(r->id);
    ++outgoing[r->source];
    ++incoming[r->target];
  }
  return plan;
}

std::vector<std::string> prunable_migrations(const migration_table& t, std::uint64_t now_ms, std::uint64_t keep_ms,
                                             std::size_t keep_count) {
  std::vector<const migration_record*> finished;
  for (const auto& [id, r] : t)
    if (is_final(r.phase)) finished.push_back(&r);
  // Newest first: by last update, then by id number.
  std::sort(finished.begin(), finished.end(), [](const migration_record* a, const migration_record* b) {
    if (a->updated_ms != b->updated_ms) return a->updated_ms > b->updated_ms;
    return migration_number(a->id) > migration_number(b->id);
  });
  std::vector<std::string> out;
  for (std::size_t i = 0; i < finished.size(); ++i) {
    const auto* r = finished[i];
    const bool old = now_ms > r->updated_ms && now_ms - r->updated_ms > keep_ms;
    if (i >= keep_count || old) out.push_back(r->id);
  }
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    return migration_number(a) != migration_number(b) ? migration_number(a) < migration_number(b) : a < b;
  });
  return out;
}

// --- liveness --------------------------------------------------------------------------------

liveness_plan plan_liveness(const partition_map& m, const lease_table& leases, std::int64_t now_ms, std::int64_t limit_ms,
                            std::string_view self) {
  liveness_plan p;
  for (const auto& [id, n] : m.nodes) {
    if (id == self || n.state != node_state::up) continue;
    auto it = leases.find(id);
    if (it == leases.end())
      p.new_lease.push_back(id);
    else if (now_ms - it->second > limit_ms)
      p.down.push_back(id);
  }
  return p;
}

result<partition_map> mark_down(const partition_map& m, const std::vector<std::string>& nodes) {
  if (nodes.empty()) return make_error(errc::invalid_argument, "no node to mark down");
  partition_map next = m;
  for (const auto& id : nodes) {
    auto r = set_node_state(next, id, node_state::down);
    if (!r) return r.error();
    next = std::move(*r);
  }
  next.version = m.version + 1;  // one version for all of them
  return next;
}

// --- a node's storage layout -----------------------------------------------------------------

layout_plan plan_layout(const partition_map& from, const partition_map& to, std::string_view self) {
  layout_plan plan;
  // Indexes gone from the map (by id: a name may come back with a new id) lose their data.
  std::set<std::uint32_t> kept;
  for (const auto& [name, ix] : to.indexes) kept.insert(ix.id);
  for (const auto& [name, ix] : from.indexes)
    if (!kept.contains(ix.id)) plan.drop_indexes.push_back(ix.id);

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
          plan.splits.push_back({ix.id, parent->id, s.id, range.begin});
        else
          plan.add.push_back({ix.id, s.id, range});
        continue;
      }
      if (here_now && !owned_before && !importing_before) {
        plan.add.push_back({ix.id, s.id, range});  // new index, or an import that starts
        // An import starts from nothing: a copy this node kept after moving the shard away
        // (its undo window) would otherwise mix stale records into the new one. So does a
        // shard given to this node without a move (its owner removed by force: recreated
        // empty).
        if (s.owner != self || old) plan.drop_ranges.push_back(range);
        continue;
      }
      if (!here_now && owned_before) {
        plan.remove.emplace_back(ix.id, s.id);  // moved away: the source's migrator retires the data
        continue;
      }
      if (!here_now && importing_before) {
        // The move here was called off: drop what was imported.
        plan.remove.emplace_back(ix.id, s.id);
        plan.drop_ranges.push_back(range);
      }
    }
  }
  return plan;
}

std::vector<shard_range> local_ranges(const partition_map& m, std::string_view node, bool owned_only) {
  std::vector<shard_range> out;
  for (const auto& [name, ix] : m.indexes)
    for (const auto& s : ix.shards)
      if (s.owner == node || (!owned_only && s.state == shard_state::migrating && s.target == node))
        out.push_back({ix.id, s.id, shard_storage_range(ix, s)});
  return out;
}

reconcile_plan plan_reconcile(const partition_map& m, const migration_table& t) {
  reconcile_plan plan;
  for (const auto& [name, ix] : m.indexes) {
    for (const auto& sh : ix.shards) {
      if (sh.state != shard_state::migrating) continue;
      const migration_record* live = nullptr;
      for (const auto& [id, r] : t)
        if (holds_shard(r) && r.index == name && r.index_id == ix.id && r.shard == sh.id && r.target == sh.target &&
            r.source == sh.owner)
          live = &r;
      if (!live) {
        plan.abort.push_back({name, sh.id, sh.target});
      } else if (live->phase == migration_phase::queued) {
        plan.resend_start.push_back(live->id);
      }
    }
  }
  return plan;
}

node_entry joining_entry(const node_entry* known, node_entry asked) {
  asked.state = node_state::up;
  if (!known) return asked;
  asked.weight = known->weight;
  if (known->state == node_state::draining || known->state == node_state::left) asked.state = known->state;
  return asked;
}

// --- a target's imports ---------------------------------------------------------------------

result<import_grant> check_import(const partition_map& m, std::string_view node, std::string_view from,
                                  std::uint32_t index_id, std::uint32_t shard_id) {
  const index_entry* ix = nullptr;
  for (const auto& [name, e] : m.indexes)
    if (e.id == index_id) ix = &e;
  const auto* s = ix ? ix->find_shard(shard_id) : nullptr;
  const auto which = [&] { return "shard " + std::to_string(shard_id) + " of index #" + std::to_string(index_id); };
  if (!s || s->state != shard_state::migrating || s->target != node)
    return make_error(errc::unavailable, "node " + std::string(node) + " is not importing " + which() + " (yet); retry");
  if (s->owner != from)
    return make_error(errc::forbidden, which() + " moves here from '" + s->owner + "', not from '" + std::string(from) + "'");
  return import_grant{ix->id, s->id, s->owner, shard_storage_range(*ix, *s)};
}

result<import_grant> check_import_key(const partition_map& m, std::string_view node, std::string_view from,
                                      std::string_view storage_key) {
  const std::uint32_t index_id = storage_key.size() >= index_prefix_bytes ? read_u32be(storage_key) : 0;
  for (const auto& [name, e] : m.indexes) {
    if (e.id != index_id) continue;
    const auto pos = shard_of_storage_key(e, storage_key);
    if (!pos) break;
    return check_import(m, node, from, e.id, e.shards[*pos].id);
  }
  return make_error(errc::unavailable, "node " + std::string(node) + " is not importing the shard of key " +
                                           to_hex(storage_key.substr(0, 16)) + " (yet); retry");
}

result<void> check_batch_keys(const key_range& range, std::span<const std::string_view> keys, bool sorted) {
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (!range.contains(keys[i]))
      return make_error(errc::forbidden, "key " + to_hex(keys[i].substr(0, 16)) + " is outside the importing shard");
    if (sorted && i > 0 && !(keys[i - 1] < keys[i]))
      return make_error(errc::invalid_argument, "copy batch keys are not sorted and distinct at record " + std::to_string(i));
  }
  return {};
}

// --- cluster health -------------------------------------------------------------------------

cluster_health assess_health(const partition_map& m, std::size_t migrations_running, std::size_t anomalies_open) {
  cluster_health h;
  std::map<std::string, std::size_t, std::less<>> unserved;  // owner not up -> shards
  for (const auto& [name, ix] : m.indexes)
    for (const auto& s : ix.shards) {
      const auto* n = m.find_node(s.owner);
      if (!n || n->state == node_state::down || n->state == node_state::left) ++unserved[s.owner];
    }
  for (const auto& [owner, count] : unserved) {
    const auto* n = m.find_node(owner);
    h.reasons.push_back(std::to_string(count) + (count == 1 ? " shard is" : " shards are") + " on node '" + owner +
                        "', which is " + (n ? std::string(to_string(n->state)) : std::string("unknown")));
  }
  if (!unserved.empty()) h.status = "red";
  bool changing = false;
  if (migrations_running > 0) {
    h.reasons.push_back(std::to_string(migrations_running) + (migrations_running == 1 ? " migration is" : " migrations are") +
                        " running");
    changing = true;
  }
  for (const auto& [id, n] : m.nodes) {
    if (n.state == node_state::draining) {
      h.reasons.push_back("node '" + id + "' is draining");
      changing = true;
    } else if (n.state == node_state::down && !unserved.count(id)) {
      h.reasons.push_back("node '" + id + "' is down");
      changing = true;
    }
  }
  if (anomalies_open > 0) {
    h.reasons.push_back(std::to_string(anomalies_open) + (anomalies_open == 1 ? " anomaly is" : " anomalies are") + " open");
    changing = true;
  }
  if (changing && h.status == "green") h.status = "yellow";
  return h;
}

}  // namespace shardd

namespace shardd {

map_diff describe_change(const partition_map& before, const partition_map& after, std::size_t max) {
  map_diff out;
  std::size_t more = 0;
  auto line = [&](std::string l) {
    if (out.lines.size() < max) out.lines.push_back(std::move(l));
    else ++more;
  };
  for (const auto& [id, n] : after.nodes) {
    const auto* was = before.find_node(id);
    if (!was) {
      line("node " + id + " joined (" + std::string(to_string(n.state)) + ", weight " + std::to_string(n.weight) + ")");
      out.nodes.push_back({id, "", std::string(to_string(n.state))});
      continue;
    }
    if (was->state != n.state) {
      line("node " + id + ": " + std::string(to_string(was->state)) + " -> " + std::string(to_string(n.state)));
      out.nodes.push_back({id, std::string(to_string(was->state)), std::string(to_string(n.state))});
    }
    if (was->weight != n.weight)
      line("node " + id + ": weight " + std::to_string(was->weight) + " -> " + std::to_string(n.weight));
    if (was->rest_address != n.rest_address || was->peer_address != n.peer_address)
      line("node " + id + ": addresses " + n.rest_address + ", " + n.peer_address);
  }
  for (const auto& [id, n] : before.nodes)
    if (!after.find_node(id)) {
      line("node " + id + " removed");
      out.nodes.push_back({id, std::string(to_string(n.state)), ""});
    }
  if (before.controller != after.controller) line("controller: " + before.controller + " -> " + after.controller);
  for (const auto& [name, ix] : after.indexes) {
    const auto* was = before.find_index(name);
    if (!was || was->id != ix.id) {
      line("index " + name + " created (" + std::string(to_string(ix.strategy)) + ", " + std::to_string(ix.shards.size()) +
           " shards)");
      continue;
    }
    for (const auto& s : ix.shards) {
      const std::string sh = "shard " + name + "/" + std::to_string(s.id);
      const auto* ws = was->find_shard(s.id);
      if (!ws) {
        line(sh + " created (on " + s.owner + ")");
        continue;
      }
      if (ws->owner != s.owner) line(sh + ": owner " + ws->owner + " -> " + s.owner);
      if (ws->state != s.state)
        line(sh + ": " + std::string(to_string(ws->state)) + " -> " + std::string(to_string(s.state)) +
             (s.target.empty() ? std::string() : " (target " + s.target + ")"));
      if (ws->start != s.start || ws->end != s.end) line(sh + ": range changed");
    }
    for (const auto& s : was->shards)
      if (!ix.find_shard(s.id)) line("shard " + name + "/" + std::to_string(s.id) + " removed");
  }
  for (const auto& [name, ix] : before.indexes) {
    const auto* now = after.find_index(name);
    if (!now || now->id != ix.id) line("index " + name + " dropped");
  }
  const auto& a = before.settings;
  const auto& b = after.settings;
  auto setting = [&](const char* name, auto x, auto y) {
    if (x != y) line(std::string("setting ") + name + ": " + std::to_string(x) + " -> " + std::to_string(y));
  };
  setting("max_bytes_per_sec", a.migration_bytes_per_sec, b.migration_bytes_per_sec);
  setting("max_outgoing", a.max_outgoing, b.max_outgoing);
  setting("max_incoming", a.max_incoming, b.max_incoming);
  if (a.rebalance != b.rebalance) line("rebalance settings changed");
  if (more) out.lines.push_back("... and " + std::to_string(more) + " more");
  return out;
}

}  // namespace shardd

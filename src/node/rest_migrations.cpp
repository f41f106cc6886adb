// REST: shard moves and splits, migrations, their settings, decommission.
#include "node/controller.hpp"
#include "node/rest_internal.hpp"
#include "shardd/json_fields.hpp"
#include "shardd/text.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace shardd {

// --- migrations -------------------------------------------------------------------------------

namespace {

json::object migration_json(const migration_record& r) {
  auto v = json::parse(to_json(r)).as_object();
  // Progress and time left, from the bytes moved and the current rate.
  v["progress"] = migration_progress(r);
  if (r.rate_bytes_per_sec > 0 && r.bytes_total > r.bytes_done && !is_final(r.phase))
    v["eta_seconds"] = static_cast<double>(r.bytes_total - r.bytes_done) / static_cast<double>(r.rate_bytes_per_sec);
  else
    v["eta_seconds"] = nullptr;
  return v;
}

}  // namespace

awaitable<http_response> rest_api::migrate_shard(call& c, const std::string& index, std::uint32_t shard) {
  auto parsed = parse_json(c.req.body, "request body");
  if (!parsed) co_return c.fail(parsed.error());
  if (!parsed->is_object()) co_return c.fail(400, "invalid-argument", "migration settings must be a JSON object");
  json_fields f(parsed->get_object(), "");
  migrate_request q;
  q.index = index;
  q.shard = shard;
  auto target = f.req_string("target");
  if (!target) co_return c.fail(target.error());
  q.target = *target;
  auto pr = f.opt_string("priority");
  if (!pr) co_return c.fail(pr.error());
  if (*pr) {
    auto p = parse_priority(**pr);
    if (!p) co_return c.fail(400, "invalid-argument", "priority: must be \"high\", \"normal\" or \"low\"");
    q.priority = *p;
  }
  auto bps = f.opt_u64("max_bytes_per_sec", 0);
  if (!bps) co_return c.fail(bps.error());
  q.max_bytes_per_sec = *bps;
  if (auto fin = f.finish(); !fin) co_return c.fail(fin.error());
  auto r = co_await ctx_.ctl->migrate(std::move(q));
  if (!r) co_return c.fail(r.error());
  auto res = json_response(202, to_json_text(migration_json(*r)));
  res.set_header("Location", "/v1/migrations/" + r->id);
  co_return res;
}

awaitable<http_response> rest_api::split_shard(call& c, const std::string& index, std::uint32_t shard) {
  auto r = co_await ctx_.ctl->split(index, shard);
  if (!r) co_return c.fail(r.error());
  c.snap = *r;
  const auto* ix = c.snap->map->find_index(index);
  json::object o;
  o["index"] = index;
  o["split"] = shard;
  const shard_entry* upper = nullptr;
  for (const auto& sh : ix->shards)
    if (sh.id + 1 == ix->next_shard_id) upper = &sh;
  json::array halves;
  for (const auto* sh : {ix->find_shard(shard), upper})
    if (sh) halves.push_back(shard_json(*ix, *sh, nullptr));
  o["shards"] = std::move(halves);
  o["map_version"] = c.snap->map->version;
  co_return json_response(200, to_json_text(o));
}

awaitable<http_response> rest_api::list_migrations(call& c, const std::string* id) {
  // A named local: GCC 12 miscompiles a conditional expression inside a co_await operand.
  std::optional<std::string> which;
  if (id) which = *id;
  auto r = co_await ctx_.ctl->migrations(std::move(which));
  if (!r) co_return c.fail(r.error());
  if (id) co_return json_response(200, to_json_text(migration_json(r->front())));
  const std::string* state = c.param("state");
  if (state && *state != "active" && *state != "finished" && !parse_phase(*state))
    co_return c.fail(400, "invalid-argument", "state must be a phase, \"active\" or \"finished\"");
  json::array list;
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : *r) {
    if (state) {
      if (*state == "active" && is_final(m.phase)) continue;
      if (*state == "finished" && !is_final(m.phase)) continue;
      if (*state != "active" && *state != "finished" && to_string(m.phase) != *state) continue;
    }
    char pct[16];
    std::snprintf(pct, sizeof pct, "%.0f%%", 100.0 * migration_progress(m));
    rows.push_back({m.id, m.index, std::to_string(m.shard), m.source, m.target, std::string(to_string(m.phase)) + (m.paused ? " (paused)" : ""),
                    pct, std::to_string(m.records_done), std::to_string(m.bytes_done), std::to_string(m.rate_bytes_per_sec),
                    std::string(to_string(m.priority)), m.reason, m.error.empty() ? "-" : m.error});
    list.push_back(migration_json(m));
  }
  if (c.text())
    co_return c.table({{{"id", text_col, "migration id"},
                        {"index", text_col, "index name"},
                        {"shard", num_col, "shard number"},
                        {"from", text_col, "source node"},
                        {"to", text_col, "target node"},
                        {"phase", text_col, "queued, copying, catching_up, verifying, cutover, retiring, done, failed, cancelled or rolled_back; (paused) when paused"},
                        {"progress", num_col, "share of the copy done"},
                        {"records", num_col, "records copied"},
                        {"bytes", bytes_col, "bytes copied"},
                        {"rate_bps", bytes_col, "copy rate, bytes per second"},
                        {"priority", text_col, "high, normal or low"},
                        {"reason", text_col, "why it was made: api, decommission, convergence, balance, drain"},
                        {"error", text_col, "why it stopped (- when it did not)"}},
                       std::move(rows)});
  json::object o;
  o["migrations"] = std::move(list);
  co_return json_response(200, to_json_text(o));
}

awaitable<http_response> rest_api::control_migration(call& c, const std::string& id, const std::string& command) {
  auto r = co_await ctx_.ctl->control_migration(id, command);
  if (!r) co_return c.fail(r.error());
  co_return json_response(202, to_json_text(migration_json(*r)));
}

awaitable<http_response> rest_api::migration_settings(call& c) {
  const auto& cur = c.snap->map->settings;
  auto render = [](const cluster_settings& st, std::uint64_t version) {
    json::object o;
    o["max_bytes_per_sec"] = st.migration_bytes_per_sec;
    o["max_outgoing"] = st.max_outgoing;
    o["max_incoming"] = st.max_incoming;
    o["adaptive"] = st.migration_adaptive;
    o["adaptive_p99_ms"] = st.adaptive_p99_ms;
    o["adaptive_min_bytes_per_sec"] = st.adaptive_min_bytes_per_sec;
    o["map_version"] = version;
    return to_json_text(o);
  };
  if (c.req.method == http_method::get) co_return json_response(200, render(cur, c.snap->map->version));
  auto parsed = parse_json(c.req.body, "request body");
  if (!parsed) co_return c.fail(parsed.error());
  if (!parsed->is_object()) co_return c.fail(400, "invalid-argument", "settings must be a JSON object");
  json_fields f(parsed->get_object(), "");
  cluster_settings next = cur;
  auto bps = f.opt_u64("max_bytes_per_sec", cur.migration_bytes_per_sec);
  if (!bps) co_return c.fail(bps.error());
  next.migration_bytes_per_sec = *bps;
  auto out = f.opt_u64("max_outgoing", cur.max_outgoing, 1, 1000);
  if (!out) co_return c.fail(out.error());
  next.max_outgoing = static_cast<std::uint32_t>(*out);
  auto in = f.opt_u64("max_incoming", cur.max_incoming, 1, 1000);
  if (!in) co_return c.fail(in.error());
  next.max_incoming = static_cast<std::uint32_t>(*in);
  auto adaptive = f.opt_bool("adaptive", cur.migration_adaptive);
  if (!adaptive) co_return c.fail(adaptive.error());
  next.migration_adaptive = *adaptive;
  auto bound = f.opt_double("adaptive_p99_ms", cur.adaptive_p99_ms, 0.001, 60000);
  if (!bound) co_return c.fail(bound.error());
  next.adaptive_p99_ms = *bound;
  auto floor = f.opt_u64("adaptive_min_bytes_per_sec", cur.adaptive_min_bytes_per_sec, 4096, UINT64_MAX);
  if (!floor) co_return c.fail(floor.error());
  next.adaptive_min_bytes_per_sec = *floor;
  for (const char* gone : {"convergence", "convergence_batch"})
    if (f.find(gone))
      co_return c.fail(f.fail(gone, "the rebalancer makes every automatic move now: PUT /v1/rebalance/settings "
                                    "{\"mode\":\"off\"} (or plan-only) stops them"));
  if (auto fin = f.finish(); !fin) co_return c.fail(fin.error());
  auto r = co_await ctx_.ctl->set_settings(next);
  if (!r) co_return c.fail(r.error());
  c.snap = *r;
  co_return json_response(200, render(c.snap->map->settings, c.snap->map->version));
}

awaitable<http_response> rest_api::decommission(call& c, const std::string& id) {
  auto r = co_await ctx_.ctl->decommission(id);
  if (!r) co_return c.fail(r.error());
  json::object o;
  o["node"] = id;
  o["state"] = "draining";
  json::array ms;
  for (const auto& m : *r) ms.push_back(json::value(m.id));
  o["migrations"] = std::move(ms);
  co_return json_response(202, to_json_text(o));
}

}  // namespace shardd

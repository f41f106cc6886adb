// REST: the rebalancer's plans, explain, apply and settings.
#include "node/controller.hpp"
#include "node/rest_internal.hpp"
#include "shardd/json_fields.hpp"
#include "shardd/text.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cstdio>
#include <set>

namespace shardd {

namespace {

json::object run_json(const rebalance_run& run, const rebalance_settings& st) {
  auto o = to_json_object(run.plan);
  if (!run.id.empty()) o["id"] = run.id;
  o["created_ms"] = run.created_ms;
  o["settings"] = to_json_object(st);
  return o;
}

std::string two(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

}  // namespace

awaitable<http_response> rest_api::rebalance_plan(call& c) {
  if (!c.req.body.empty()) co_return c.fail(400, "invalid-argument", "POST /v1/rebalance/plan takes no body");
  auto r = co_await ctx_.ctl->rebalance_plan(true);
  if (!r) co_return c.fail(r.error());
  auto res = json_response(200, to_json_text(run_json(*r, c.snap->map->settings.rebalance)));
  // The plan's map version, for the apply's If-Match.
  res.set_header("ETag", "\"" + std::to_string(r->plan.map_version) + "\"");
  co_return res;
}

awaitable<http_response> rest_api::rebalance_explain(call& c) {
  auto r = co_await ctx_.ctl->rebalance_plan(false);
  if (!r) co_return c.fail(r.error());
  const auto& p = r->plan;
  if (c.text()) {
    // Three tables: the _cat parameters choose and sort the nodes table's columns; the rules and
    // splits tables follow it with the header and byte settings only.
    auto o = parse_cat_options(c.cat());
    if (!o) co_return c.fail(o.error());
    cat_table nodes{{{"node", text_col, "node id"},
                     {"state", text_col, "up, down, draining or left"},
                     {"weight", num_col, "the node's weight"},
                     {"share", num_col, "its share of the cluster's total weight"},
                     {"score", num_col, "its load under the strategy now"},
                     {"ratio", num_col, "score over its weighted fair share (1 is balanced)"},
                     {"score_after", num_col, "its score once the plan's moves are done"},
                     {"ratio_after", num_col, "its ratio once the plan's moves are done"},
                     {"shards", text_col, "shards now -> after the plan"}},
                    {}};
    for (const auto& n : p.nodes)
      nodes.rows.push_back({n.node, n.state, std::to_string(n.weight), two(n.share), two(n.before), two(n.ratio_before),
                            two(n.after), two(n.ratio_after),
                            std::to_string(n.shards_before) + "->" + std::to_string(n.shards_after)});
    auto first = render_cat(nodes, *o);
    if (!first) co_return c.fail(first.error());
    if (o->help) co_return text_response(std::move(*first));
    std::string out = p.summary + "\n\n" + *first;
    cat_options plain;
    plain.header = o->header;
    plain.bytes = o->bytes;
    cat_table held{{{"rule", text_col, ""}, {"shard", text_col, ""}, {"source", text_col, ""}, {"target", text_col, ""},
                    {"why", text_col, ""}},
                   {}};
    for (const auto& h : p.held)
      held.rows.push_back({h.rule, h.index.empty() ? "-" : h.index + "/" + std::to_string(h.shard),
                           h.source.empty() ? "-" : h.source, h.target.empty() ? "-" : h.target, h.why});
    if (!held.rows.empty()) out += "\n" + render_cat(held, plain).value();
    cat_table splits{{{"shard", text_col, ""}, {"node", text_col, ""}, {"requests_per_sec", num_col, ""},
                      {"share_of_node", num_col, ""}, {"hot_s", num_col, ""}},
                     {}};
    for (const auto& sp : p.splits)
      splits.rows.push_back({sp.shard.index + "/" + std::to_string(sp.shard.shard), sp.shard.node, two(sp.shard.rate),
                             two(sp.shard.share), std::to_string(sp.shard.hot_for_ms / 1000)});
    if (!splits.rows.empty()) out += "\nsplits\n" + render_cat(splits, plain).value();
    co_return text_response(std::move(out));
  }
  co_return json_response(200, to_json_text(run_json(*r, c.snap->map->settings.rebalance)));
}

awaitable<http_response> rest_api::rebalance_apply(call& c, const std::string& id) {
  std::optional<std::uint64_t> if_match;
  std::string tag = c.req.if_match;
  if (auto q = c.param("if_match")) tag = std::string(*q);
  if (!tag.empty()) {
    if_match = parse_version_tag(tag);
    if (!if_match)
      co_return c.fail(400, "invalid-argument", "If-Match must be the plan's map version, as \"12\" (got " + quoted(tag) + ")");
  }
  auto r = co_await ctx_.ctl->rebalance_apply(id, if_match);
  if (!r) co_return c.fail(r.error());
  if (r->stale)
    co_return c.fail(412, "precondition-failed",
                     "the map is at version " + std::to_string(r->map_version) +
                         ", not the plan's (or If-Match's): make a new plan with POST /v1/rebalance/plan");
  json::object o;
  o["plan"] = id;
  o["map_version"] = r->map_version;
  json::array ms;
  for (const auto& m : r->started) ms.push_back(json::parse(to_json(m)));  // the records as queued
  o["migrations"] = std::move(ms);
  json::array skipped;
  for (const auto& s : r->skipped) skipped.push_back(json::value(s));
  o["skipped"] = std::move(skipped);
  json::array split;
  for (const auto& s : r->split) split.push_back(json::value(s));
  o["split"] = std::move(split);
  co_return json_response(202, to_json_text(o));
}

awaitable<http_response> rest_api::simulate(call& c) {
  auto parsed = parse_json(c.req.body, "request body");
  if (!parsed) co_return c.fail(parsed.error());
  if (!parsed->is_object()) co_return c.fail(400, "invalid-argument", "a simulation must be a JSON object");
  auto sim = read_simulation(parsed->get_object(), c.snap->map->settings.rebalance);
  if (!sim) co_return c.fail(sim.error());
  const auto settings = sim->settings.value_or(c.snap->map->settings.rebalance);
  std::set<std::string> failed(sim->fail.begin(), sim->fail.end());
  auto r = co_await ctx_.ctl->simulate(*sim);
  if (!r) co_return c.fail(r.error());
  auto o = run_json(*r, settings);
  // What the failed nodes leave without an owner that serves them.
  std::uint64_t unavailable = 0;
  for (const auto& [name, ix] : c.snap->map->indexes)
    for (const auto& sh : ix.shards) {
      const auto* n = c.snap->map->find_node(sh.owner);
      if (failed.contains(sh.owner) || (n && n->state == node_state::down)) ++unavailable;
    }
  o["unavailable_shards"] = unavailable;
  o["simulated"] = *parsed;
  co_return json_response(200, to_json_text(o));
}

awaitable<http_response> rest_api::rebalance_settings_endpoint(call& c) {
  const auto& cur = c.snap->map->settings;
  auto render = [](const cluster_settings& st, std::uint64_t version) {
    auto o = to_json_object(st.rebalance);
    o["map_version"] = version;
    return to_json_text(o);
  };
  if (c.req.method == http_method::get) co_return json_response(200, render(cur, c.snap->map->version));
  auto parsed = parse_json(c.req.body, "request body");
  if (!parsed) co_return c.fail(parsed.error());
  if (!parsed->is_object()) co_return c.fail(400, "invalid-argument", "rebalance settings must be a JSON object");
  json_fields f(parsed->get_object(), "");
  cluster_settings next = cur;
  if (auto ok = read_rebalance_settings(f, next.rebalance); !ok) co_return c.fail(ok.error());
  auto r = co_await ctx_.ctl->set_settings(next);
  if (!r) co_return c.fail(r.error());
  c.snap = *r;
  co_return json_response(200, render(c.snap->map->settings, c.snap->map->version));
}

}  // namespace shardd

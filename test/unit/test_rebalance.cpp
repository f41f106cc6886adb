// The rebalancer's planner: rules one by one on small clusters, then a simulator over 1,000
// random clusters.
#include "shardd/rebalance.hpp"

#include "support/catch_result.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

using namespace shardd;

namespace {

/// A map of `weights.size()` nodes (node-0, node-1, ...) and one index "ix" (id 1) whose shard
/// i is on node owners[i]. Bounds are left empty: the planner does not read them.
partition_map cluster_of(const std::vector<std::uint32_t>& weights, const std::vector<int>& owners) {
  partition_map m;
  m.version = 7;
  m.cluster_id = "sim";
  for (std::size_t i = 0; i < weights.size(); ++i) {
    node_entry n;
    n.id = "node-" + std::to_string(i);
    n.weight = weights[i];
    m.nodes.emplace(n.id, n);
  }
  index_entry ix;
  ix.name = "ix";
  ix.id = 1;
  for (std::size_t s = 0; s < owners.size(); ++s) {
    shard_entry sh;
    sh.id = static_cast<std::uint32_t>(s);
    sh.owner = "node-" + std::to_string(owners[s]);
    ix.shards.push_back(sh);
  }
  ix.next_shard_id = static_cast<std::uint32_t>(owners.size());
  m.indexes.emplace("ix", std::move(ix));
  m.next_index_id = 2;
  return m;
}

rebalance_input input_for(const partition_map& m, const migration_table& t, rebalance_strategy strategy) {
  rebalance_input in;
  in.map = &m;
  in.migrations = &t;
  in.settings.strategy = strategy;
  in.now_ms = 10'000'000;
  return in;
}

std::map<std::string, std::uint32_t> shards_after(const rebalance_plan& p) {
  std::map<std::string, std::uint32_t> out;
  for (const auto& n : p.nodes) out[n.node] = n.shards_after;
  return out;
}

/// The map with every move of `p` made.
partition_map applied(partition_map m, const rebalance_plan& p) {
  for (const auto& mv : p.moves) {
    auto& ix = m.indexes.at(mv.index);
    for (auto& sh : ix.shards)
      if (sh.id == mv.shard) {
        REQUIRE(sh.owner == mv.source);
        sh.owner = mv.target;
      }
  }
  return m;
}

/// The moves of `p` as queued migration records made at `now`.
migration_table queued(const rebalance_plan& p, std::uint64_t now) {
  migration_table t;
  int n = 1;
  for (const auto& mv : p.moves) {
    auto r = queued_record(mv, "m" + std::to_string(n++), now);
    t[r.id] = r;
  }
  return t;
}

const held_move* held_by(const rebalance_plan& p, std::string_view rule) {
  for (const auto& h : p.held)
    if (h.rule == rule) return &h;
  return nullptr;
}

}  // namespace

TEST_CASE("12 shards on three equal nodes placed 3 / 5 / 4 end 4 / 4 / 4, and planning again gives nothing") {
  auto m = cluster_of({1, 1, 1}, {0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2});
  migration_table none;
  auto p = plan_rebalance(input_for(m, none, rebalance_strategy::shards));
  CHECK(p.triggered);
  CHECK(p.converged);
  REQUIRE(p.moves.size() == 1);
  CHECK(p.moves[0].source == "node-1");
  CHECK(p.moves[0].target == "node-0");
  CHECK(p.moves[0].reason == "balance");
  CHECK(p.moves[0].priority == migration_priority::low);
  CHECK(shards_after(p) == std::map<std::string, std::uint32_t>{{"node-0", 4}, {"node-1", 4}, {"node-2", 4}});
  CHECK(p.max_ratio_before == Approx(5.0 / 4));
  CHECK(p.max_ratio_after == Approx(1.0));

  // Moves in flight count as done: the same snapshot with the move queued plans nothing.
  auto t = queued(p, 10'000'000);
  auto again = plan_rebalance(input_for(m, t, rebalance_strategy::shards));
  CHECK(again.moves.empty());
  REQUIRE(again.nodes.size() == p.nodes.size());
  for (std::size_t i = 0; i < p.nodes.size(); ++i)  // the queued move counted where it goes
    CHECK(again.nodes[i].before == Approx(p.nodes[i].after));
  // And once made, the map is balanced: nothing triggers.
  auto m2 = applied(m, p);
  auto after = plan_rebalance(input_for(m2, none, rebalance_strategy::shards));
  CHECK_FALSE(after.triggered);
  CHECK(after.moves.empty());
}

TEST_CASE("shards on their way count where they go, do not move again, and explain names them") {
  // node-0 owns shard 0; shards 1-3 are moving to it from node-1: node-0 counts 4, node-1 0.
  auto m = cluster_of({1, 1}, {0, 1, 1, 1});
  migration_table t;
  for (std::uint32_t s = 1; s <= 3; ++s) {
    migration_record r;
    r.id = "m" + std::to_string(s);
    r.index = "ix";
    r.index_id = 1;
    r.shard = s;
    r.source = "node-1";
    r.target = "node-0";
    r.phase = migration_phase::copying;
    r.reason = "api";
    t[r.id] = r;
  }
  auto p = plan_rebalance(input_for(m, t, rebalance_strategy::shards));
  CHECK(p.nodes[0].before == 4);
  REQUIRE(p.moves.size() == 1);
  CHECK(p.moves[0].shard == 0);
  const auto* h = held_by(p, "in_flight");
  REQUIRE(h);
  CHECK(h->shard >= 1);
}

TEST_CASE("a node that joins receives its share from the fullest nodes, each shard moved once") {
  std::vector<int> owners;
  for (int i = 0; i < 30; ++i) owners.push_back(i % 3);
  auto m = cluster_of({1, 1, 1, 1}, owners);  // node-3 has just joined: empty
  migration_table none;
  auto p = plan_rebalance(input_for(m, none, rebalance_strategy::shards));
  auto after = shards_after(p);
  CHECK(after["node-3"] >= 7);
  CHECK(after["node-3"] <= 8);
  std::set<std::uint32_t> moved;
  for (const auto& mv : p.moves) {
    CHECK(mv.target == "node-3");
    CHECK(moved.insert(mv.shard).second);
  }
  CHECK(p.max_ratio_after <= 1.1 + 1e-9);  // 7.5 shards a node: 8 is as close as it gets
}

TEST_CASE("a weight of 3 among nodes of weight 1 draws three times the shards") {
  std::vector<int> owners;
  for (int i = 0; i < 60; ++i) owners.push_back(i % 3);
  auto m = cluster_of({1, 1, 3}, owners);
  migration_table none;
  auto p = plan_rebalance(input_for(m, none, rebalance_strategy::shards));
  auto after = shards_after(p);
  CHECK(after["node-2"] >= 35);
  CHECK(after["node-2"] <= 37);
  CHECK(p.converged);
}

TEST_CASE("a draining node's shards all go, at normal priority, whatever the budget and cooldown say") {
  auto m = cluster_of({1, 1, 1}, {0, 0, 1, 1, 2, 2, 2, 2});
  m.nodes.at("node-2").state = node_state::draining;
  migration_table t;
  // Shard 4 moved a minute ago: the cooldown does not hold a drain back.
  migration_record done;
  done.id = "m1";
  done.index = "ix";
  done.index_id = 1;
  done.shard = 4;
  done.phase = migration_phase::done;
  done.reason = "balance";
  done.created_ms = done.updated_ms = 10'000'000 - 60'000;
  t["m1"] = done;
  auto in = input_for(m, t, rebalance_strategy::shards);
  in.settings.max_moves_per_window = 1;
  auto p = plan_rebalance(in);
  CHECK(p.triggered);
  std::size_t drains = 0;
  for (const auto& mv : p.moves)
    if (mv.reason == "drain") {
      ++drains;
      CHECK(mv.source == "node-2");
      CHECK(mv.priority == migration_priority::normal);
    }
  CHECK(drains == 4);
  auto after = shards_after(p);
  CHECK(after["node-2"] == 0);
  CHECK(after["node-0"] == 4);
  CHECK(after["node-1"] == 4);
}

TEST_CASE("a shard in its cooldown stays and explain says so; others move instead") {
  auto m = cluster_of({1, 1}, {0, 0, 0, 0, 0, 0});
  migration_table t;
  for (std::uint32_t s = 0; s < 5; ++s) {  // shards 0-4 moved a minute ago: only shard 5 may go
    migration_record r;
    r.id = "m" + std::to_string(s + 1);
    r.index = "ix";
    r.index_id = 1;
    r.shard = s;
    r.phase = migration_phase::done;
    r.reason = "api";
    r.created_ms = r.updated_ms = 10'000'000 - 60'000;
    t[r.id] = r;
  }
  auto p = plan_rebalance(input_for(m, t, rebalance_strategy::shards));
  REQUIRE(p.moves.size() == 1);
  CHECK(p.moves[0].shard == 5);
  const auto* h = held_by(p, "cooldown");
  REQUIRE(h);
  CHECK(h->why.find("60 s ago") != std::string::npos);
  CHECK_FALSE(p.converged);
  // Past the cooldown they move.
  auto in = input_for(m, t, rebalance_strategy::shards);
  in.now_ms += 600'000;
  CHECK(plan_rebalance(in).moves.size() == 3);
}

TEST_CASE("the move budget caps a plan, counting the window's earlier balance moves") {
  std::vector<int> owners(20, 0);
  auto m = cluster_of({1, 1}, owners);
  migration_table t;
  migration_record earlier;
  earlier.id = "m1";
  earlier.index = "other";
  earlier.index_id = 9;
  earlier.phase = migration_phase::done;
  earlier.reason = "balance";
  earlier.created_ms = earlier.updated_ms = 10'000'000 - 1000;
  t["m1"] = earlier;
  auto in = input_for(m, t, rebalance_strategy::shards);
  in.settings.max_moves_per_window = 4;
  auto p = plan_rebalance(in);
  CHECK(p.moves.size() == 3);  // 4 per window, one spent
  REQUIRE(held_by(p, "budget"));
  CHECK_FALSE(p.converged);
  // The next window (the earlier move out of it), continuing below the threshold.
  in.now_ms += in.settings.window_ms;
  auto t2 = queued(p, in.now_ms - in.settings.window_ms);
  in.migrations = &t2;
  CHECK(plan_rebalance(in).moves.size() == 4);
}

TEST_CASE("bytes: one shard bigger than the gap is held back rather than raise the max") {
  auto m = cluster_of({1, 1}, {0, 0, 1});
  migration_table none;
  auto in = input_for(m, none, rebalance_strategy::bytes);
  in.metrics[shard_key(1, 0)] = {600, 6, 0, 0};
  in.metrics[shard_key(1, 1)] = {500, 5, 0, 0};
  in.metrics[shard_key(1, 2)] = {400, 4, 0, 0};
  auto p = plan_rebalance(in);
  // node-0 holds 1100 of 1500 (share 750). Moving the 500 leaves 600 / 900; moving the 600
  // leaves 500 / 1000, further from the band: the 500 moves.
  REQUIRE(p.moves.size() == 1);
  CHECK(p.moves[0].shard == 1);
  CHECK(p.max_ratio_after < p.max_ratio_before);

  // Two nodes, one shard of 1000 and one of 10: nothing can move without raising the max.
  auto m2 = cluster_of({1, 1}, {0, 1});
  auto in2 = input_for(m2, none, rebalance_strategy::bytes);
  in2.metrics[shard_key(1, 0)] = {1000, 1, 0, 0};
  in2.metrics[shard_key(1, 1)] = {10, 1, 0, 0};
  auto p2 = plan_rebalance(in2);
  CHECK(p2.triggered);
  CHECK(p2.moves.empty());
  REQUIRE(held_by(p2, "raises_max"));
  CHECK(p2.summary.find("raises_max") != std::string::npos);
}

TEST_CASE("the net-benefit test holds back a big, cold shard under the load strategy; small hot ones move") {
  auto m = cluster_of({1, 1}, {0, 0, 0, 1});
  migration_table none;
  auto in = input_for(m, none, rebalance_strategy::load);
  in.metrics[shard_key(1, 0)] = {100ull << 30, 1, 10, 0};  // 100 GiB, some load
  in.metrics[shard_key(1, 1)] = {1 << 20, 1, 0, 10};       // 1 MiB, as busy
  in.metrics[shard_key(1, 2)] = {1 << 20, 1, 10, 0};
  in.metrics[shard_key(1, 3)] = {1 << 20, 1, 0, 0};
  in.settings.min_benefit = 0.5;
  auto p = plan_rebalance(in);
  // node-0 serves 30 of 30 req/s: a small busy shard moves (most skew removed per byte).
  REQUIRE(p.moves.size() == 1);
  CHECK(p.moves[0].shard == 1);
  // Two 100 GiB shards carry node-0's load; moving one removes about 38% of the skew for half
  // the data (benefit 0.76): allowed at 0.5, held back at 1.
  auto m2 = cluster_of({1, 1, 1}, {0, 0, 1, 2});
  auto in2 = input_for(m2, none, rebalance_strategy::load);
  in2.metrics[shard_key(1, 0)] = {100ull << 30, 1, 5, 0};
  in2.metrics[shard_key(1, 1)] = {100ull << 30, 1, 5, 0};
  in2.metrics[shard_key(1, 2)] = {1 << 20, 1, 2, 0};
  in2.metrics[shard_key(1, 3)] = {1 << 20, 1, 2, 0};
  in2.settings.min_benefit = 0.5;
  auto allowed = plan_rebalance(in2);
  REQUIRE_FALSE(allowed.moves.empty());
  CHECK(allowed.moves[0].shard <= 1);
  in2.settings.min_benefit = 1.0;
  auto p2 = plan_rebalance(in2);
  CHECK(p2.moves.empty());
  const auto* h = held_by(p2, "benefit");
  REQUIRE(h);
  CHECK(h->why.find("benefit 0.7") != std::string::npos);
}

TEST_CASE("load memory: a shard that just moved keeps its load until its new owner has measured it, so no node takes one hot shard after another") {
  // Node-0 serves 400 writes/s (shards 0 and 1 at 100, 2 to 5 at 50); node-1 and node-2 100
  // each (shards 6 and 7).
  auto m = cluster_of({1, 1, 1}, {0, 0, 0, 0, 0, 0, 1, 2});
  auto rate_of = [](std::uint32_t s) { return s >= 2 && s <= 5 ? 50.0 : 100.0; };
  migration_table none;
  load_memory mem;
  auto reports = [&](const partition_map& map, std::int64_t now, const std::set<std::uint32_t>& silent,
                     std::map<std::uint32_t, double> rates = {}) {
    std::unordered_map<std::uint64_t, shard_metrics> metrics;
    std::unordered_map<std::uint64_t, std::string> from;
    for (const auto& sh : map.indexes.at("ix").shards) {
      if (silent.contains(sh.id)) continue;
      metrics[shard_key(1, sh.id)] = {1000, 10, 0, rates.contains(sh.id) ? rates[sh.id] : rate_of(sh.id)};
      from[shard_key(1, sh.id)] = sh.owner;
    }
    mem.apply(map, metrics, from, now);
    return metrics;
  };
  auto first = reports(m, 0, {});
  CHECK(first.size() == 8);
  CHECK(first.at(shard_key(1, 0)).writes_per_sec == 100.0);
  // Shards 0 and 1 moved to node-1 and node-2; neither new owner has reported them yet.
  m.indexes.at("ix").shards[0].owner = "node-1";
  m.indexes.at("ix").shards[1].owner = "node-2";
  auto raw_in = input_for(m, none, rebalance_strategy::load);
  for (std::uint32_t s = 2; s < 8; ++s) raw_in.metrics[shard_key(1, s)] = {1000, 10, 0, rate_of(s)};
  // Planned on the raw table, node-0 (200 of 400) looks 50% above its share and sheds again.
  CHECK_FALSE(plan_rebalance(raw_in).moves.empty());
  auto in = input_for(m, none, rebalance_strategy::load);
  in.metrics = reports(m, 1000, {0, 1});
  REQUIRE(in.metrics.size() == 8);
  CHECK(in.metrics.at(shard_key(1, 0)).writes_per_sec == 100.0);
  // Remembered, every node carries 200 of 600: nothing to do.
  CHECK(plan_rebalance(in).moves.empty());
  // The new owners' first reports cover the seconds since the cutover: raised to the old load.
  auto second = reports(m, 2000, {}, {{0, 20.0}, {1, 150.0}});
  CHECK(second.at(shard_key(1, 0)).writes_per_sec == 100.0);
  CHECK(second.at(shard_key(1, 1)).writes_per_sec == 150.0);  // more than before counts as it is
  // Once the new owner has settled, its own figure stands.
  auto settled = reports(m, 2000 + load_memory::settle_ms, {}, {{0, 20.0}});
  CHECK(settled.at(shard_key(1, 0)).writes_per_sec == 20.0);
  // A shard no member reports keeps its last load for keep_ms, then counts as unmeasured.
  const auto last = 2000 + load_memory::settle_ms;
  CHECK(reports(m, last + load_memory::keep_ms - 1, {7}).contains(shard_key(1, 7)));
  CHECK_FALSE(reports(m, last + load_memory::keep_ms + 1, {7}).contains(shard_key(1, 7)));
  // A shard dropped from the map is forgotten.
  CHECK(reports(m, last + load_memory::keep_ms + 2, {}).contains(shard_key(1, 7)));
  m.indexes.at("ix").shards.pop_back();
  reports(m, last + load_memory::keep_ms + 2, {});
  m.indexes.at("ix").shards.push_back(shard_entry{7, "", std::nullopt, "node-2", shard_state::active, ""});
  CHECK_FALSE(reports(m, last + load_memory::keep_ms + 3, {7}).contains(shard_key(1, 7)));
}

namespace {

/// Per-shard request rates (writes per second) of index "ix" as metrics, with the hottest key's share.
std::unordered_map<std::uint64_t, shard_metrics> rates_of(const std::map<std::uint32_t, double>& writes,
                                                          double top_key_share = 0.01) {
  std::unordered_map<std::uint64_t, shard_metrics> out;
  for (const auto& [shard, w] : writes) out[shard_key(1, shard)] = {1 << 20, 1000, 0, w, 0, top_key_share};
  return out;
}

}  // namespace

TEST_CASE("hot shards: one carrying most of a loaded node's requests long enough is split, then balanced") {
  // Node-0 holds shards 0 to 3, shard 0 at 3,000 writes/s of node-0's 3,300; node-1 and
  // node-2 hold four shards at 100/s each. No move can balance that: shard 0 alone is more
  // than a node's share (4,100 / 3).
  auto m = cluster_of({1, 1, 1}, {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2});
  std::map<std::uint32_t, double> w;
  for (std::uint32_t s = 0; s < 12; ++s) w[s] = s == 0 ? 3000.0 : 100.0;
  const auto metrics = rates_of(w);
  rebalance_settings st;
  st.strategy = rebalance_strategy::load;
  st.hot.after_ms = 60'000;
  hot_tracker tr;
  auto hot = tr.observe(m, metrics, st, 1'000'000);
  REQUIRE(hot.size() == 1);
  CHECK(hot[0].index == "ix");
  CHECK(hot[0].shard == 0);
  CHECK(hot[0].node == "node-0");
  CHECK(hot[0].hot_for_ms == 0);
  CHECK(hot[0].share == Approx(3000.0 / 3300.0));
  CHECK(hot[0].node_ratio == Approx(3300.0 / (4100.0 / 3)));
  migration_table none;
  auto in = input_for(m, none, rebalance_strategy::load);
  in.settings = st;
  in.metrics = metrics;
  in.hot = hot;
  // Not hot for long enough: explain says so; the planner balances what it can meanwhile.
  auto early = plan_rebalance(in);
  CHECK(early.splits.empty());
  const auto* waiting = held_by(early, "hot");
  REQUIRE(waiting);
  CHECK(waiting->shard == 0);
  CHECK(waiting->why.find("0 s of the 60 s") != std::string::npos);
  // 60 s later, still hot: split, and no balance move in the same plan.
  in.hot = tr.observe(m, metrics, st, 1'060'000);
  REQUIRE(in.hot.size() == 1);
  CHECK(in.hot[0].hot_for_ms == 60'000);
  auto due = plan_rebalance(in);
  REQUIRE(due.splits.size() == 1);
  CHECK(due.splits[0].shard.shard == 0);
  CHECK(due.moves.empty());
  CHECK(held_by(due, "split_first"));
  CHECK(due.summary.starts_with("1 hot shard(s) split first"));
  auto j = to_json_object(due);
  REQUIRE(j.at("splits").as_array().size() == 1);
  CHECK(j.at("splits").as_array()[0].as_object().at("shard").to_number<int>() == 0);
  // Split: the halves (0 and the new 12) each carry half; their clocks wait after_ms.
  m.indexes.at("ix").shards.push_back(shard_entry{12, "", std::nullopt, "node-0", shard_state::active, ""});
  m.indexes.at("ix").next_shard_id = 13;
  tr.split(shard_key(1, 0), shard_key(1, 12), 1'060'000, st.hot.after_ms);
  w[0] = 1500;
  w[12] = 1500;
  auto halves = rates_of(w);
  CHECK(tr.observe(m, halves, st, 1'061'000).empty());
  // After the quiet time, neither half carries half its node's load: nothing is hot, and the
  // planner balances the halves like any shard.
  CHECK(tr.observe(m, halves, st, 1'200'000).empty());
  auto after = input_for(m, none, rebalance_strategy::load);
  after.settings = st;
  after.metrics = halves;
  auto bal = plan_rebalance(after);
  CHECK(bal.splits.empty());
  REQUIRE_FALSE(bal.moves.empty());
  INFO(bal.summary);
  CHECK(std::any_of(bal.moves.begin(), bal.moves.end(), [](const rebalance_move& mv) {
    return mv.source == "node-0" && (mv.shard == 0 || mv.shard == 12);
  }));
  CHECK(bal.max_ratio_after < bal.max_ratio_before);
}

TEST_CASE("hot shards: the clock restarts when a shard cools or moves; one hot key, a quiet node or a low rate never split") {
  auto m = cluster_of({1, 1, 1}, {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2});
  std::map<std::uint32_t, double> w;
  for (std::uint32_t s = 0; s < 12; ++s) w[s] = s == 0 ? 3000.0 : 100.0;
  rebalance_settings st;
  st.hot.after_ms = 10'000;
  hot_tracker tr;
  REQUIRE(tr.observe(m, rates_of(w), st, 0).size() == 1);
  CHECK(tr.observe(m, rates_of(w), st, 5'000)[0].hot_for_ms == 5'000);
  // A sample in which it is not hot: the clock starts again.
  auto cool = w;
  cool[0] = 200;
  CHECK(tr.observe(m, rates_of(cool), st, 6'000).empty());
  CHECK(tr.observe(m, rates_of(w), st, 7'000)[0].hot_for_ms == 0);
  // A new owner: again.
  CHECK(tr.observe(m, rates_of(w), st, 9'000)[0].hot_for_ms == 2'000);
  m.indexes.at("ix").shards[0].owner = "node-1";
  CHECK(tr.observe(m, rates_of(w), st, 10'000)[0].hot_for_ms == 0);
  m.indexes.at("ix").shards[0].owner = "node-0";
  // Below min_rate: not hot, whatever its share.
  st.hot.min_rate = 5000;
  CHECK(tr.observe(m, rates_of(w), st, 11'000).empty());
  st.hot.min_rate = 1000;
  // Off: nothing.
  st.hot.enabled = false;
  CHECK(tr.observe(m, rates_of(w), st, 12'000).empty());
  st.hot.enabled = true;
  // A node within the threshold of its share is not hot, even if one shard carries it: every
  // node carries 3,300/s, each through one big shard.
  auto even = w;
  even[4] = 3000;
  even[8] = 3000;
  CHECK(tr.observe(m, rates_of(even), st, 13'000).empty());
  // One key carries it: held (hot_key), not split.
  migration_table none;
  auto in = input_for(m, none, rebalance_strategy::load);
  in.settings = st;
  in.metrics = rates_of(w, 0.9);
  tr.observe(m, in.metrics, st, 20'000);
  in.hot = tr.observe(m, in.metrics, st, 40'000);
  REQUIRE(in.hot.size() == 1);
  CHECK(in.hot[0].top_key_share == 0.9);
  auto p = plan_rebalance(in);
  CHECK(p.splits.empty());
  const auto* one_key = held_by(p, "hot_key");
  REQUIRE(one_key);
  CHECK(one_key->why.find("90.0%") != std::string::npos);
  // A migration holds it: held (in_flight) until the move ends.
  in.metrics = rates_of(w);
  in.hot = tr.observe(m, in.metrics, st, 41'000);
  REQUIRE(in.hot.size() == 1);
  auto moving = m;
  moving.indexes.at("ix").shards[0].state = shard_state::migrating;
  moving.indexes.at("ix").shards[0].target = "node-1";
  in.map = &moving;
  auto q = plan_rebalance(in);
  CHECK(q.splits.empty());
  CHECK(held_by(q, "in_flight"));
  in.map = &m;
  CHECK(plan_rebalance(in).splits.size() == 1);
}

TEST_CASE("load memory: after a split each half counts half the shard's load until the owner's reports cover the halves") {
  auto m = cluster_of({1, 1}, {0, 1});
  load_memory mem;
  std::unordered_map<std::uint64_t, std::string> from{{shard_key(1, 0), "node-0"}, {shard_key(1, 1), "node-1"}};
  auto metrics = rates_of({{0, 1000.0}, {1, 100.0}});
  mem.apply(m, metrics, from, 0);
  m.indexes.at("ix").shards.push_back(shard_entry{2, "", std::nullopt, "node-0", shard_state::active, ""});
  mem.split(shard_key(1, 0), shard_key(1, 2), 1000);
  // The owner still reports the whole shard's rate for shard 0 and nothing for the new one.
  auto after = rates_of({{0, 1000.0}, {1, 100.0}});
  mem.apply(m, after, from, 2000);
  CHECK(after.at(shard_key(1, 0)).writes_per_sec == 500.0);
  REQUIRE(after.contains(shard_key(1, 2)));
  CHECK(after.at(shard_key(1, 2)).writes_per_sec == 500.0);
  CHECK(after.at(shard_key(1, 2)).bytes == (1u << 20) / 2);
  // Once settled, the reports stand.
  from[shard_key(1, 2)] = "node-0";
  auto later = rates_of({{0, 700.0}, {1, 100.0}, {2, 300.0}});
  mem.apply(m, later, from, 1000 + load_memory::settle_ms);
  CHECK(later.at(shard_key(1, 0)).writes_per_sec == 700.0);
  CHECK(later.at(shard_key(1, 2)).writes_per_sec == 300.0);
}

TEST_CASE("without every node's load, strategies that need it wait; the shard count does not") {
  auto m = cluster_of({1, 1}, {0, 0, 0, 0});
  migration_table none;
  auto in = input_for(m, none, rebalance_strategy::bytes);
  in.unreported.insert("node-1");
  auto p = plan_rebalance(in);
  CHECK(p.moves.empty());
  REQUIRE(held_by(p, "no_load_data"));
  in.settings.strategy = rebalance_strategy::shards;
  CHECK(plan_rebalance(in).moves.size() == 2);
}

TEST_CASE("the threshold starts a rebalance, threshold / 2 ends it; continuing goes on below the threshold") {
  // 100 shards, 2 nodes: 54 / 46 is 8% above the share: inside 10%, nothing starts.
  std::vector<int> owners;
  for (int i = 0; i < 100; ++i) owners.push_back(i < 54 ? 0 : 1);
  auto m = cluster_of({1, 1}, owners);
  migration_table none;
  auto in = input_for(m, none, rebalance_strategy::shards);
  auto p = plan_rebalance(in);
  CHECK_FALSE(p.triggered);
  CHECK(p.moves.empty());
  CHECK(p.summary.find("within") != std::string::npos);
  in.continuing = true;
  auto c = plan_rebalance(in);
  REQUIRE(c.moves.size() == 2);  // 52 / 48: within 5%
  CHECK(c.converged);
  // 56 / 44 (12%) starts, and stops at 52 / 48, not 50 / 50.
  owners.assign(100, 1);
  std::fill(owners.begin(), owners.begin() + 56, 0);
  auto m2 = cluster_of({1, 1}, owners);
  auto p2 = plan_rebalance(input_for(m2, none, rebalance_strategy::shards));
  CHECK(p2.moves.size() == 4);
  CHECK(p2.converged);
}

TEST_CASE("a node that is down keeps its shards out of the plan; the plan says why") {
  auto m = cluster_of({1, 1, 1}, {0, 0, 0, 0, 1, 2});
  m.nodes.at("node-0").state = node_state::down;
  migration_table none;
  auto p = plan_rebalance(input_for(m, none, rebalance_strategy::shards));
  CHECK(p.moves.empty());
  REQUIRE(held_by(p, "source_down"));
}

namespace {

/// Settings read from `text` onto the defaults, and the error ("" when none).
std::pair<rebalance_settings, std::string> read_settings(const char* text) {
  auto v = parse_json(text, "t");
  REQUIRE(v);
  rebalance_settings r;
  json_fields f(v->as_object(), "rebalance");
  auto res = read_rebalance_settings(f, r);
  return {r, res ? std::string() : res.error().detail};
}

}  // namespace

TEST_CASE("settings read back from JSON, and bad ones are refused naming the field") {
  rebalance_settings s;
  s.mode = rebalance_mode::plan_only;
  s.strategy = rebalance_strategy::bytes;
  s.threshold = 0.2;
  s.weight_load = 3;
  s.predictive = true;
  s.horizon_ms = 7'200'000;
  s.hot = {false, 0.4, 250, 5000};
  auto o = to_json_object(s);
  rebalance_settings back;
  json_fields f(o, "rebalance");
  REQUIRE(read_rebalance_settings(f, back));
  CHECK(back == s);
  auto bad = [](const char* text) {
    auto [r, error] = read_settings(text);
    REQUIRE_FALSE(error.empty());
    return error;
  };
  CHECK(bad(R"({"mode":"sometimes"})").starts_with("rebalance.mode:"));
  CHECK(bad(R"({"strategy":"vibes"})").starts_with("rebalance.strategy:"));
  CHECK(bad(R"({"threshold":0})").starts_with("rebalance.threshold:"));
  CHECK(bad(R"({"weights":{"shards":0,"bytes":0,"records":0,"load":0}})").starts_with("rebalance.weights:"));
  CHECK(bad(R"({"weights":{"cpu":1}})").starts_with("rebalance.weights"));
  CHECK(bad(R"({"treshold":0.1})").find("treshold") != std::string::npos);
  CHECK(bad(R"({"predictive":"soon"})").starts_with("rebalance.predictive:"));
  CHECK(bad(R"({"horizon_ms":10})").starts_with("rebalance.horizon_ms:"));
  CHECK(bad(R"({"hot_split":{"share":0}})").starts_with("rebalance.hot_split.share:"));
  CHECK(bad(R"({"hot_split":{"share":1.5}})").starts_with("rebalance.hot_split.share:"));
  CHECK(bad(R"({"hot_split":{"min_rate":-1}})").starts_with("rebalance.hot_split.min_rate:"));
  CHECK(bad(R"({"hot_split":{"after":1}})").find("after") != std::string::npos);
  CHECK(bad(R"({"hot_split":true})").starts_with("rebalance.hot_split:"));
  auto [partial, none] = read_settings(R"({"hot_split":{"after_ms":3000}})");
  CHECK(none.empty());
  CHECK(partial.hot.after_ms == 3000);
  CHECK(partial.hot.enabled);  // fields left out keep their value
  CHECK(partial.hot.share == 0.5);
}

TEST_CASE("disk watermarks parse as shares or bytes free, print back, and refuse mixed or unordered sets") {
  CHECK(parse_disk_watermark("85%") == disk_watermark{0.85, 0});
  CHECK(parse_disk_watermark("87.5%") == disk_watermark{0.875, 0});
  CHECK(parse_disk_watermark("500mb") == disk_watermark{0, 500ull << 20});
  CHECK(parse_disk_watermark("2GB") == disk_watermark{0, 2ull << 30});
  CHECK(parse_disk_watermark("4096") == disk_watermark{0, 4096});
  for (const char* bad : {"", "%", "0%", "101%", "-5%", "85 %", "1e3%", "0mb", "5pb", "mb", "12.5gb", "99999999999999999999"})
    CHECK_FALSE(parse_disk_watermark(bad));
  CHECK(to_string(disk_watermark{0.9, 0}) == "90%");
  CHECK(to_string(disk_watermark{0, 3ull << 30}) == "3gb");
  CHECK(to_string(disk_watermark{0, 1000}) == "1000b");
  // Above a share: more than it in use; above bytes: less than them free. Unknown: never.
  CHECK(above(disk_watermark{0.85, 0}, 86, 100));
  CHECK_FALSE(above(disk_watermark{0.85, 0}, 85, 100));
  CHECK(above(disk_watermark{0, 20}, 81, 100));
  CHECK_FALSE(above(disk_watermark{0, 20}, 80, 100));
  CHECK_FALSE(above(disk_watermark{0.01, 0}, 50, 0));
  CHECK(used_at(disk_watermark{0, 20}, 100) == 80);

  const auto read = read_settings;
  auto [bytes, ok] = read(R"({"disk_watermarks":{"low":"3gb","high":"2gb","flood":"1gb"}})");
  CHECK(ok.empty());
  CHECK(bytes.disk.high == disk_watermark{0, 2ull << 30});
  auto o = to_json_object(bytes);
  CHECK(o.at("disk_watermarks").at("low").as_string() == "3gb");
  CHECK(read(R"({"disk_watermarks":{"low":"80%"}})").second.empty());  // the others keep 90% and 95%
  CHECK(read(R"({"disk_watermarks":{"low":"95%"}})").second.starts_with("rebalance.disk_watermarks: each must be"));
  CHECK(read(R"({"disk_watermarks":{"low":"1gb"}})").second.find("all be shares") != std::string::npos);
  CHECK(read(R"({"disk_watermarks":{"low":"1gb","high":"2gb","flood":"1gb"}})").second.find("at least as strict") != std::string::npos);
  CHECK(read(R"({"disk_watermarks":{"high":"lots"}})").second.starts_with("rebalance.disk_watermarks.high:"));
  CHECK(read(R"({"disk_watermarks":{"high":90}})").second.starts_with("rebalance.disk_watermarks.high:"));
  CHECK(read(R"({"disk_watermarks":{"extreme":"99%"}})").second.find("extreme") != std::string::npos);
}

TEST_CASE("disk levels: low, high and flood by the watermarks; flood holds until the disk is under high") {
  const disk_watermarks w;  // 85%, 90%, 95%
  CHECK(level_of(w, 50, 100, disk_level::ok) == disk_level::ok);
  CHECK(level_of(w, 86, 100, disk_level::ok) == disk_level::low);
  CHECK(level_of(w, 91, 100, disk_level::low) == disk_level::high);
  CHECK(level_of(w, 96, 100, disk_level::high) == disk_level::flood);
  CHECK(level_of(w, 93, 100, disk_level::flood) == disk_level::flood);  // not yet under high
  CHECK(level_of(w, 90, 100, disk_level::flood) == disk_level::low);    // under high: writes again
  CHECK(level_of(w, 93, 100, disk_level::high) == disk_level::high);
  CHECK(level_of(w, 99, 0, disk_level::flood) == disk_level::ok);  // unknown disk
}

TEST_CASE("a node at its low watermark takes no shard; one at high sheds its largest shards to nodes that stay under low") {
  // Six shards: node-0 holds 0-3 (400, 300, 200, 100 MiB), node-1 holds 4, node-2 holds 5.
  auto m = cluster_of({1, 1, 1}, {0, 0, 0, 0, 1, 2});
  migration_table t;
  auto in = input_for(m, t, rebalance_strategy::shards);
  const std::uint64_t mib = 1ull << 20;
  const std::uint64_t sizes[] = {400, 300, 200, 100, 10, 10};
  for (std::uint32_t s = 0; s < 6; ++s) in.metrics[shard_key(1, s)] = {sizes[s] * mib, 1000, 0, 0};
  // Without disks: node-0 gives two shards away, to node-1 and node-2.
  auto plain = plan_rebalance(in);
  REQUIRE(plain.moves.size() == 2);
  // node-2 at low: everything node-0 sheds goes to node-1, and explain says why.
  in.disks["node-2"] = {880 * mib, 1000 * mib, disk_level::low};
  auto low = plan_rebalance(in);
  for (const auto& mv : low.moves) CHECK(mv.target == "node-1");
  CHECK(std::any_of(low.held.begin(), low.held.end(), [](const held_move& h) { return h.rule == "disk_low" && h.target == "node-2"; }));
  CHECK(std::find_if(low.nodes.begin(), low.nodes.end(), [](const node_score& n) { return n.node == "node-2"; })->disk_level == "low");
  // node-0 at high (920 of 1000 MiB, high 90%): it sheds its largest shards, first of all and
  // at high priority, until it is predicted under 900 MiB: the 400 MiB shard is enough.
  in.disks.erase("node-2");
  in.disks["node-0"] = {920 * mib, 1000 * mib, disk_level::high};
  in.disks["node-1"] = {100 * mib, 1000 * mib, disk_level::ok};
  in.disks["node-2"] = {100 * mib, 1000 * mib, disk_level::ok};
  auto high = plan_rebalance(in);
  REQUIRE_FALSE(high.moves.empty());
  CHECK(high.moves[0].reason == "disk");
  CHECK(high.moves[0].shard == 0);
  CHECK(high.moves[0].priority == migration_priority::high);
  CHECK(high.moves[0].detail.find("high watermark 90%") != std::string::npos);
  CHECK(std::count_if(high.moves.begin(), high.moves.end(), [](const rebalance_move& mv) { return mv.reason == "disk"; }) == 1);
  // At flood, where no node has room for the 400 MiB shard under its low watermark (850 MiB):
  // it stays, and the next one down, which fits, goes instead.
  in.disks["node-0"] = {990 * mib, 1000 * mib, disk_level::flood};
  in.disks["node-1"] = {800 * mib, 1000 * mib, disk_level::ok};
  in.disks["node-2"] = {500 * mib, 1000 * mib, disk_level::ok};
  auto flood = plan_rebalance(in);
  std::vector<std::uint32_t> shed;
  for (const auto& mv : flood.moves)
    if (mv.reason == "disk") {
      shed.push_back(mv.shard);
      CHECK(mv.target == "node-2");
    }
  CHECK(shed == std::vector<std::uint32_t>{1});
  CHECK(std::any_of(flood.held.begin(), flood.held.end(), [](const held_move& h) {
    return h.rule == "no_destination" && h.why.find("low watermark") != std::string::npos;
  }));
  // Moves in flight count as done: planning again with them queued sheds nothing more.
  auto t2 = queued(high, in.now_ms);
  in.disks["node-0"] = {920 * mib, 1000 * mib, disk_level::high};
  in.disks["node-1"] = {100 * mib, 1000 * mib, disk_level::ok};
  in.disks["node-2"] = {100 * mib, 1000 * mib, disk_level::ok};
  auto again = plan_rebalance([&] {
    auto i2 = in;
    i2.migrations = &t2;
    return i2;
  }());
  for (const auto& mv : again.moves) CHECK(mv.reason != "disk");
  // Committed: the map has the shard on its new owner, the source keeps its data through the
  // undo window (retiring) and its disk report still shows it: nothing more is shed; nor for a
  // while after the move is done, while the report catches up.
  auto moved = applied(m, high);
  for (auto& [id, r] : t2) {
    r.phase = migration_phase::retiring;
    r.updated_ms = in.now_ms;
  }
  auto retiring_in = in;
  retiring_in.map = &moved;
  retiring_in.migrations = &t2;
  for (const auto& mv : plan_rebalance(retiring_in).moves) CHECK(mv.reason != "disk");
  for (auto& [id, r] : t2) r.phase = migration_phase::done;
  retiring_in.now_ms = in.now_ms + 30'000;
  for (const auto& mv : plan_rebalance(retiring_in).moves) CHECK(mv.reason != "disk");
  // Long after, a disk still above high is what it says: it sheds again.
  retiring_in.now_ms = in.now_ms + 120'000;
  auto later = plan_rebalance(retiring_in);
  CHECK(std::any_of(later.moves.begin(), later.moves.end(), [](const rebalance_move& mv) { return mv.reason == "disk"; }));
}

TEST_CASE("predictive: where the trends say a node passes the threshold or a watermark within the horizon, moves start now at low priority") {
  // Bytes: sixty shards of 5 MiB, twenty per node; node-0's shard 0 grows by 40 KiB/s
  // (+140 MiB an hour: node-0 at 1.6 of its share then).
  std::vector<int> owners_of(60);
  for (int s = 0; s < 60; ++s) owners_of[static_cast<std::size_t>(s)] = s / 20;
  auto m = cluster_of({1, 1, 1}, owners_of);
  migration_table t;
  auto in = input_for(m, t, rebalance_strategy::bytes);
  const std::uint64_t mib = 1ull << 20;
  for (std::uint32_t s = 0; s < 60; ++s) {
    shard_metrics mt{5 * mib, 1000, 0, 0};
    if (s == 0) mt.bytes_per_sec_trend = 40 * 1024;
    in.metrics[shard_key(1, s)] = mt;
  }
  auto now = plan_rebalance(in);
  CHECK(now.moves.empty());  // predictive off: the present is balanced
  CHECK_FALSE(now.predictive);
  in.settings.predictive = true;
  in.settings.horizon_ms = 3'600'000;
  auto ahead = plan_rebalance(in);
  INFO(ahead.summary << " / held: " << (ahead.held.empty() ? std::string() : ahead.held.front().rule + " " + ahead.held.front().why));
  REQUIRE_FALSE(ahead.moves.empty());
  CHECK(ahead.predictive);
  CHECK(ahead.summary.rfind("forecast in 1h: ", 0) == 0);
  for (const auto& mv : ahead.moves) {
    CHECK(mv.reason == "predictive");
    CHECK(mv.priority == migration_priority::low);
    CHECK(mv.source == "node-0");
    CHECK(mv.shard != 0);  // the growing shard would only take the problem along
  }
  // Only as many as keep the present within the threshold (the next tick would undo more),
  // and the rest is said to wait.
  CHECK(ahead.moves.size() <= 3);  // 5 MiB each of 100 per node: 10% is two, maybe three
  CHECK(std::any_of(ahead.held.begin(), ahead.held.end(), [](const held_move& h) { return h.rule == "present_balance"; }));
  // Started, they count as done: planning again gives nothing, and the present is not triggered.
  auto t2 = queued(ahead, in.now_ms);
  auto again = in;
  again.migrations = &t2;
  const auto second = plan_rebalance(again);
  CHECK(second.moves.empty());
  CHECK_FALSE(second.triggered);
  // A short horizon sees no trouble, and the summary says what it looked at.
  in.settings.horizon_ms = 300'000;  // +12 MiB: node-0 at 1.07
  auto soon = plan_rebalance(in);
  CHECK(soon.moves.empty());
  CHECK(soon.summary.find("forecast in 5m: ") != std::string::npos);

  // Disk: shard counts are even, node-0's disk is at 80% and grows 0.05 MiB/s: at flood (95%)
  // within the hour, so it sheds now (the present sheds nothing: it is under high).
  auto m2 = cluster_of({1, 1, 1}, {0, 0, 1, 1, 2, 2});
  auto in2 = input_for(m2, t, rebalance_strategy::shards);
  for (std::uint32_t s = 0; s < 6; ++s) in2.metrics[shard_key(1, s)] = {(s == 0 ? 150 : 50) * mib, 1000, 0, 0};
  in2.disks["node-0"] = {800 * mib, 1000 * mib, disk_level::ok, 0.05 * static_cast<double>(mib)};
  in2.disks["node-1"] = {100 * mib, 1000 * mib, disk_level::ok};
  in2.disks["node-2"] = {100 * mib, 1000 * mib, disk_level::ok};
  CHECK(plan_rebalance(in2).moves.empty());
  in2.settings.predictive = true;
  auto shed = plan_rebalance(in2);
  REQUIRE_FALSE(shed.moves.empty());
  CHECK(shed.moves[0].source == "node-0");
  CHECK(shed.moves[0].shard == 0);  // the largest first
  CHECK(shed.moves[0].reason == "predictive");
  CHECK(shed.moves[0].priority == migration_priority::low);
  CHECK(shed.moves[0].detail.find("forecast in 1h") != std::string::npos);
  // A trend that does not rise predicts nothing.
  in2.disks["node-0"].used_per_sec_trend = 0;
  CHECK(plan_rebalance(in2).moves.empty());
}

TEST_CASE("what-if: an added node draws its share, a removed one drains, a failed one keeps its shards, load moves the plan") {
  auto m = cluster_of({1, 1, 1}, {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2});
  migration_table t;
  auto base = input_for(m, t, rebalance_strategy::shards);
  CHECK(plan_rebalance(base).moves.empty());  // balanced as it is
  auto run = [&](const char* text) {
    auto v = parse_json(text, "t");
    REQUIRE(v);
    auto sim = read_simulation(v->as_object(), base.settings);
    INFO(text << ": " << (sim ? std::string() : sim.error().detail));
    REQUIRE(sim);
    partition_map copy = m;
    auto in = base;
    auto ok = apply_simulation(*sim, copy, in);
    INFO((ok ? std::string() : ok.error().detail));
    REQUIRE(ok);
    return plan_rebalance(in);
  };
  auto added = run(R"({"add":[{"id":"node-9"}]})");
  CHECK(shards_after(added)["node-9"] == 3);
  for (const auto& mv : added.moves) CHECK(mv.target == "node-9");
  auto heavy = run(R"({"add":[{"id":"node-9","weight":2}]})");
  CHECK(shards_after(heavy)["node-9"] == 5);  // 12 x 2/5 = 4.8
  auto removed = run(R"({"remove":["node-0"]})");
  CHECK(shards_after(removed)["node-0"] == 0);
  for (const auto& mv : removed.moves) CHECK(mv.reason == "drain");
  auto failed = run(R"({"fail":["node-2"]})");
  for (const auto& mv : failed.moves) CHECK(mv.source != "node-2");
  CHECK(std::any_of(failed.held.begin(), failed.held.end(), [](const held_move& h) { return h.rule == "source_down"; }));
  auto weighted = run(R"({"weights":{"node-1":3}})");
  CHECK(shards_after(weighted)["node-1"] >= 7);
  // The original is untouched.
  CHECK(m.nodes.size() == 3);
  CHECK(m.nodes.at("node-1").weight == 1);
  // Load: shards 0 and 1 get hot under the load strategy; the plan spreads them.
  for (std::uint32_t s = 0; s < 12; ++s) base.metrics[shard_key(1, s)] = {1000, 10, 10, 10};
  auto hot = run(R"({"load":[{"index":"ix","shard":0,"factor":50},{"index":"ix","shard":1,"reads_per_sec":1000}],
                     "settings":{"strategy":"load"}})");
  REQUIRE_FALSE(hot.moves.empty());
  CHECK(hot.strategy == rebalance_strategy::load);
  CHECK(std::none_of(hot.moves.begin(), hot.moves.end(), [](const rebalance_move& mv) { return mv.target == "node-0"; }));

  // Bad what-ifs name the field or what does not exist.
  auto bad = [&](const char* text) {
    auto v = parse_json(text, "t");
    REQUIRE(v);
    auto sim = read_simulation(v->as_object(), base.settings);
    if (!sim) return sim.error().detail;
    partition_map copy = m;
    auto in = base;
    auto ok = apply_simulation(*sim, copy, in);
    REQUIRE_FALSE(ok);
    return ok.error().detail;
  };
  CHECK(bad("{}").find("at least one of") != std::string::npos);
  CHECK(bad(R"({"add":[{"id":"node-1"}]})") == "add: node 'node-1' exists already");
  CHECK(bad(R"({"add":[{"weight":2}]})").starts_with("add[0].id:"));
  CHECK(bad(R"({"remove":["node-7"]})").find("node-7") != std::string::npos);
  CHECK(bad(R"({"fail":[3]})").starts_with("fail:"));
  CHECK(bad(R"({"weights":{"node-1":1001}})").starts_with("weights.node-1:"));
  CHECK(bad(R"({"load":[{"index":"nope","factor":2}]})").find("nope") != std::string::npos);
  CHECK(bad(R"({"load":[{"index":"ix","shard":99}]})").find("no shard 99") != std::string::npos);
  CHECK(bad(R"({"load":[{"index":"ix","factor":-1}]})").starts_with("load[0].factor:"));
  CHECK(bad(R"({"settings":{"threshold":0}})").starts_with("settings.threshold:"));
  CHECK(bad(R"({"explode":true})").find("explode") != std::string::npos);
}

// --- the simulator --------------------------------------------------------------------------

namespace {

/// A value in 1..n drawn with P(k) ∝ k^-s.
struct zipf {
  std::vector<double> cdf;
  zipf(int n, double s) {
    double sum = 0;
    for (int k = 1; k <= n; ++k) cdf.push_back(sum += std::pow(k, -s));
    for (auto& c : cdf) c /= sum;
  }
  int operator()(std::mt19937_64& rng) const {
    double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return static_cast<int>(std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin()) + 1;
  }
};

}  // namespace

TEST_CASE("simulator: 1,000 random clusters end within the threshold, near the fewest bytes, never raising the max") {
  const zipf sizes(100, 1.2), loads(100, 1.1);
  std::mt19937_64 rng(20261203);
  const rebalance_strategy strategies[] = {rebalance_strategy::bytes, rebalance_strategy::shards, rebalance_strategy::load,
                                           rebalance_strategy::records, rebalance_strategy::weighted};
  int within = 0, triggered = 0;
  double worst_ratio = 0;  // bytes moved over the lower bound, bytes strategy
  for (int c = 0; c < 1000; ++c) {
    const int n = std::uniform_int_distribution<int>(3, 100)(rng);
    std::vector<std::uint32_t> weights;
    for (int i = 0; i < n; ++i) weights.push_back(std::uniform_int_distribution<std::uint32_t>(1, 4)(rng));
    // Shards land skewed: a node's pull is its weight times a log-normal factor.
    std::vector<double> pull;
    std::lognormal_distribution<double> skew(0, 0.6);
    for (int i = 0; i < n; ++i) pull.push_back(weights[static_cast<std::size_t>(i)] * skew(rng));
    std::discrete_distribution<int> where(pull.begin(), pull.end());
    // 20 to 40 shards per unit of weight: a node of weight 1 holds as many shards as an
    // Elasticsearch node typically does, the heaviest node four times that.
    const int total_weight = std::accumulate(weights.begin(), weights.end(), 0);
    const int shards = total_weight * std::uniform_int_distribution<int>(20, 40)(rng);
    std::vector<int> owners;
    for (int s = 0; s < shards; ++s) owners.push_back(where(rng));
    auto m = cluster_of(weights, owners);
    migration_table none;
    const auto strategy = strategies[c % 5];
    auto in = input_for(m, none, strategy);
    in.settings.max_moves_per_window = 1'000'000;
    for (int s = 0; s < shards; ++s) {
      const auto size = static_cast<std::uint64_t>(sizes(rng)) << 20;
      in.metrics[shard_key(1, static_cast<std::uint32_t>(s))] = {size, size / 1024, double(loads(rng)), double(loads(rng))};
    }
    INFO("cluster " << c << ": " << n << " nodes, " << shards << " shards, " << to_string(strategy));
    auto p = plan_rebalance(in);
    INFO(p.summary << (p.held.empty() ? std::string() : " / " + p.held.back().rule + ": " + p.held.back().why));
    if (p.triggered) ++triggered;
    // Within the threshold at the end.
    CHECK(p.max_ratio_after <= 1 + in.settings.threshold + 1e-9);
    CHECK(p.min_ratio_after >= 1 - in.settings.threshold - 1e-9);
    if (p.max_ratio_after <= 1 + in.settings.threshold / 2 + 1e-9 && p.min_ratio_after >= 1 - in.settings.threshold / 2 - 1e-9)
      ++within;
    else
      CHECK_FALSE(p.held.empty());  // short of threshold / 2, the plan says what held it back
    // No move raises the max: replay them one by one.
    std::map<std::string, double> score, share;
    for (const auto& ns : p.nodes) score[ns.node] = ns.before, share[ns.node] = ns.share;
    auto max_ratio = [&] {
      double mx = 0;
      for (const auto& [id, s] : score) mx = std::max(mx, s / share[id]);
      return mx;
    };
    std::set<std::uint32_t> moved;
    double mx = max_ratio();
    for (const auto& mv : p.moves) {
      score[mv.source] -= mv.score;
      score[mv.target] += mv.score;
      const double now = max_ratio();
      CHECK(now <= mx + 1e-9);
      mx = now;
      CHECK(moved.insert(mv.shard).second);  // no shard twice
    }
    // The bytes strategy moves near the fewest bytes: every node's excess above the band must
    // leave it and every deficit below it must be filled, so the larger sum is a lower bound.
    if (strategy == rebalance_strategy::bytes && p.triggered) {
      double over = 0, under = 0;
      const double hi = 1 + in.settings.threshold / 2, lo = 1 - in.settings.threshold / 2;
      for (const auto& ns : p.nodes) {
        over += std::max(0.0, ns.before - hi * ns.share);
        under += std::max(0.0, lo * ns.share - ns.before);
      }
      double moved_score = 0;
      for (const auto& mv : p.moves) moved_score += mv.score;
      const double bound = std::max(over, under);
      if (bound > 0) {
        CHECK(moved_score <= 1.3 * bound);
        worst_ratio = std::max(worst_ratio, moved_score / bound);
      }
    }
    // A second plan right after this one is empty: with its moves in flight, and once made.
    auto t = queued(p, in.now_ms);
    auto in2 = in;
    in2.migrations = &t;
    in2.continuing = true;
    CHECK(plan_rebalance(in2).moves.empty());
    auto m2 = applied(m, p);
    auto in3 = in;
    in3.map = &m2;
    CHECK(plan_rebalance(in3).moves.empty());
  }
  INFO("triggered " << triggered << ", within threshold/2 " << within << ", worst bytes/lower bound " << worst_ratio);
  CHECK(triggered > 900);
  CHECK(within > 0);
}

// The rebalancer's planner: how long a plan takes, and how much it moves against a lower bound.
//   rebalance_bench [--quick]
// 1. plan time at 1,000 nodes x 100,000 shards (skewed placement, Zipf sizes), beside the time
//    to write the same map as JSON (which the controller does for every map version): the anchor;
// 2. bytes moved to converge after a node joins a balanced cluster, and after a skewed load,
//    against the lower bound (what must leave the nodes above the band, or fill those below it).
// Prints figures, asserts nothing.

#include "shardd/rebalance.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

using namespace shardd;
using clock_type = std::chrono::steady_clock;

namespace {

double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

partition_map cluster_of(int nodes, const std::vector<int>& owners) {
  partition_map m;
  m.version = 1;
  m.cluster_id = "bench";
  for (int i = 0; i < nodes; ++i) {
    node_entry n;
    n.id = "node-" + std::to_string(i);
    n.rest_address = "127.0.0.1:1";
    n.peer_address = "127.0.0.1:2";
    m.nodes.emplace(n.id, n);
  }
  index_entry ix;
  ix.name = "ix";
  ix.id = 1;
  for (std::size_t s = 0; s < owners.size(); ++s) {
    shard_entry sh;
    sh.id = static_cast<std::uint32_t>(s);
    char start[17];
    std::snprintf(start, sizeof start, "%016zx", s);
    sh.start = start;
    sh.owner = "node-" + std::to_string(owners[s]);
    ix.shards.push_back(sh);
  }
  ix.next_shard_id = static_cast<std::uint32_t>(owners.size());
  m.indexes.emplace("ix", std::move(ix));
  return m;
}

/// max(bytes above the band, bytes below it): what any plan must move at least.
double lower_bound(const rebalance_plan& p) {
  double over = 0, under = 0;
  const double hi = 1 + p.threshold / 2, lo = 1 - p.threshold / 2;
  for (const auto& n : p.nodes) {
    over += std::max(0.0, n.before - hi * n.share);
    under += std::max(0.0, lo * n.share - n.before);
  }
  return std::max(over, under);
}

double moved(const rebalance_plan& p) {
  double s = 0;
  for (const auto& mv : p.moves) s += mv.score;
  return s;
}

std::uint64_t zipf_mib(std::mt19937_64& rng) {
  // P(k) ~ k^-1.2 over 1..100 MiB, by inversion of a precomputed CDF.
  static std::vector<double> cdf = [] {
    std::vector<double> c;
    double sum = 0;
    for (int k = 1; k <= 100; ++k) c.push_back(sum += std::pow(k, -1.2));
    for (auto& x : c) x /= sum;
    return c;
  }();
  const double u = std::uniform_real_distribution<double>(0, 1)(rng);
  return static_cast<std::uint64_t>(std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin() + 1) << 20;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const int nodes = quick ? 100 : 1000;
  const int shards = quick ? 10'000 : 100'000;
  std::mt19937_64 rng(42);

  // 1. Plan time.
  {
    std::lognormal_distribution<double> skew(0, 0.5);
    std::vector<double> pull;
    for (int i = 0; i < nodes; ++i) pull.push_back(skew(rng));
    std::discrete_distribution<int> where(pull.begin(), pull.end());
    std::vector<int> owners;
    for (int s = 0; s < shards; ++s) owners.push_back(where(rng));
    auto m = cluster_of(nodes, owners);
    migration_table none;
    rebalance_input in;
    in.map = &m;
    in.migrations = &none;
    in.settings.strategy = rebalance_strategy::bytes;
    in.settings.max_moves_per_window = 1'000'000;
    for (int s = 0; s < shards; ++s) {
      const auto b = zipf_mib(rng);
      in.metrics[shard_key(1, static_cast<std::uint32_t>(s))] = {b, b / 1024, 1, 1};
    }
    auto t0 = clock_type::now();
    auto json = to_json(m);
    const double json_ms = ms_since(t0);
    t0 = clock_type::now();
    auto p = plan_rebalance(in);
    const double plan_ms = ms_since(t0);
    std::printf("plan: %d nodes x %d shards, bytes strategy: %.1f ms (map to JSON %.1f ms, %zu bytes: ratio %.2f)\n",
                nodes, shards, plan_ms, json_ms, json.size(), plan_ms / json_ms);
    std::printf("      %zu moves, max ratio %.2f -> %.3f, moved %.0f MiB vs lower bound %.0f MiB (%.3fx)\n",
                p.moves.size(), p.max_ratio_before, p.max_ratio_after, moved(p) / (1 << 20), lower_bound(p) / (1 << 20),
                moved(p) / lower_bound(p));
    in.settings.strategy = rebalance_strategy::weighted;
    t0 = clock_type::now();
    auto pw = plan_rebalance(in);
    const double w_ms = ms_since(t0);
    std::printf("      weighted strategy: %.1f ms (ratio to JSON %.2f), %zu moves\n", w_ms, w_ms / json_ms, pw.moves.size());
  }

  // 2. A join: n balanced nodes, then one more (count strategy and bytes strategy).
  for (auto strategy : {rebalance_strategy::shards, rebalance_strategy::bytes}) {
    const int n = quick ? 20 : 100, per = 40;
    std::vector<int> owners;
    for (int s = 0; s < n * per; ++s) owners.push_back(s % n);
    auto m = cluster_of(n + 1, owners);  // node-n has just joined
    migration_table none;
    rebalance_input in;
    in.map = &m;
    in.migrations = &none;
    in.settings.strategy = strategy;
    in.settings.max_moves_per_window = 1'000'000;
    for (int s = 0; s < n * per; ++s) {
      const auto b = std::uint64_t{64} << 20;
      in.metrics[shard_key(1, static_cast<std::uint32_t>(s))] = {b, b / 1024, 1, 1};
    }
    auto p = plan_rebalance(in);
    const double optimal = static_cast<double>(n * per) / (n + 1);
    std::printf("join: %d -> %d nodes, %d shards, %s: %zu moves (S/(n+1) = %.1f: %.2fx), moved %.2f x lower bound\n", n,
                n + 1, n * per, std::string(to_string(strategy)).c_str(), p.moves.size(), optimal,
                static_cast<double>(p.moves.size()) / optimal, moved(p) / std::max(lower_bound(p), 1e-9));
  }

  // 3. A skewed load: equal counts, but writes pile into node-0's shards (load strategy).
  {
    const int n = quick ? 10 : 50, per = 40;
    std::vector<int> owners;
    for (int s = 0; s < n * per; ++s) owners.push_back(s % n);
    auto m = cluster_of(n, owners);
    migration_table none;
    rebalance_input in;
    in.map = &m;
    in.migrations = &none;
    in.settings.strategy = rebalance_strategy::load;
    in.settings.max_moves_per_window = 1'000'000;
    for (int s = 0; s < n * per; ++s) {
      const double w = s % n == 0 ? 50.0 : 10.0;  // node-0's shards take five times the writes
      in.metrics[shard_key(1, static_cast<std::uint32_t>(s))] = {std::uint64_t{64} << 20, 65536, 10, w};
    }
    auto p = plan_rebalance(in);
    std::printf("skewed load: %d nodes, node-0 at %.2f of its share: %zu moves, max ratio -> %.3f, moved %.2f x lower bound\n",
                n, p.max_ratio_before, p.moves.size(), p.max_ratio_after, moved(p) / std::max(lower_bound(p), 1e-9));
  }
  return 0;
}

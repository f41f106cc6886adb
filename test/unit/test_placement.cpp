#include "shardd/placement.hpp"

#include "support/catch_result.hpp"

#include <algorithm>
#include <numeric>
#include <random>

using namespace shardd;

namespace {

std::vector<std::uint32_t> ids_upto(std::uint32_t n) {
  std::vector<std::uint32_t> v(n);
  std::iota(v.begin(), v.end(), 0u);
  return v;
}

/// A ring of `nodes` members of weight 1 at 128 vnodes, named after the seed.
ring seeded_ring(const std::string& prefix, unsigned seed, int nodes) {
  ring r(128);
  for (int i = 0; i < nodes; ++i) REQUIRE(r.add(prefix + std::to_string(seed) + "n" + std::to_string(i), 1));
  return r;
}

}  // namespace

TEST_CASE("caps are ceil((1 + eps) * shards * w / W)") {
  ring r(8);
  REQUIRE(r.add("a", 1));
  REQUIRE(r.add("b", 3));
  auto caps = bounded_load_caps(r, 40, 0.1);
  CHECK(caps[0] == 11);  // 1.1 * 40 * 1/4 = 11 exactly
  CHECK(caps[1] == 33);  // 1.1 * 40 * 3/4 = 33 exactly
  auto caps2 = bounded_load_caps(r, 10, 0.25);
  CHECK(caps2[0] == 4);  // 3.125 -> 4
  CHECK(caps2[1] == 10); // 9.375 -> 10
}

TEST_CASE("bounded-load placement never puts a node above its cap") {
  for (unsigned seed = 1; seed <= 200; ++seed) {
    std::mt19937_64 rng(seed);
    ring r(16 + static_cast<std::uint32_t>(rng() % 128));
    const int nodes = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < nodes; ++i)
      REQUIRE(r.add("n" + std::to_string(seed) + "-" + std::to_string(i), static_cast<std::uint32_t>(rng() % 4)));
    if (r.empty()) continue;
    const auto shards = 1 + static_cast<std::uint32_t>(rng() % 600);
    const double eps = 0.01 * static_cast<double>(rng() % 50);
    auto ids = ids_upto(shards);
    auto owners = place_bounded(r, "idx" + std::to_string(seed), ids, eps);
    REQUIRE(owners.size() == shards);
    auto caps = bounded_load_caps(r, shards, eps);
    std::vector<std::uint32_t> counts(r.node_count(), 0);
    for (auto o : owners) {
      REQUIRE(o < r.node_count());
      CHECK(r.weights()[o] > 0);
      ++counts[o];
    }
    for (std::size_t o = 0; o < counts.size(); ++o) CHECK(counts[o] <= caps[o]);
  }
}

TEST_CASE("placement is deterministic for the same ring, index and shards") {
  ring r(64);
  for (int i = 0; i < 7; ++i) REQUIRE(r.add("node-" + std::to_string(i), 1 + i % 2));
  auto ids = ids_upto(100);
  auto a = place_bounded(r, "users", ids, 0.1);
  ring r2 = r;
  auto b = place_bounded(r2, "users", ids, 0.1);
  CHECK(a == b);
  CHECK(place_bounded(r, "orders", ids, 0.1) != a);
}

TEST_CASE("with a loose bound, placement equals plain ring placement") {
  ring r(64);
  for (int i = 0; i < 5; ++i) REQUIRE(r.add("node-" + std::to_string(i), 1));
  auto ids = ids_upto(50);
  CHECK(place_bounded(r, "x", ids, 100.0) == place_ring_only(r, "x", ids));
}

TEST_CASE("nodes of weight 0 receive no shards") {
  ring r(32);
  REQUIRE(r.add("a", 1));
  REQUIRE(r.add("b", 0));
  REQUIRE(r.add("c", 2));
  auto owners = place_bounded(r, "i", ids_upto(300), 0.1);
  for (auto o : owners) CHECK(r.nodes()[o] != "b");
}

TEST_CASE("a join moves a bounded number of shards, on average near the optimum") {
  // Optimal movement for a join to n nodes is shards / (n + 1). Bounded-load placement also
  // moves some shards for capacity; the design target is at most 1.3x optimal on average.
  double moved_total = 0, optimal_total = 0;
  for (unsigned seed = 1; seed <= 40; ++seed) {
    ring r = seeded_ring("s", seed, 10);
    auto ids = ids_upto(256);
    const std::string index = "index-" + std::to_string(seed);
    auto before = place_bounded(r, index, ids, 0.1);
    std::vector<std::string> before_ids;
    for (auto o : before) before_ids.push_back(r.nodes()[o]);
    REQUIRE(r.add("joiner-" + std::to_string(seed), 1));
    auto after = place_bounded(r, index, ids, 0.1);
    int moved = 0;
    for (std::size_t i = 0; i < ids.size(); ++i) moved += before_ids[i] != r.nodes()[after[i]];
    moved_total += moved;
    optimal_total += 256.0 / 11.0;
  }
  CHECK(moved_total / optimal_total <= 1.3);
}

namespace {

std::vector<int> as_current(const std::vector<std::uint32_t>& owners) { return {owners.begin(), owners.end()}; }

// Ordinals of `owners` on ring `from`, translated to ordinals on ring `to` (-1 if absent).
std::vector<int> translate(const ring& from, const ring& to, const std::vector<std::uint32_t>& owners) {
  std::vector<int> out;
  for (auto o : owners) out.push_back(to.ordinal(from.nodes()[o]));
  return out;
}

}  // namespace

TEST_CASE("sticky placement of a from-scratch placement moves nothing, and is idempotent") {
  for (unsigned seed = 1; seed <= 60; ++seed) {
    std::mt19937_64 rng(seed);
    ring r(32 + static_cast<std::uint32_t>(rng() % 96));
    const int nodes = 2 + static_cast<int>(rng() % 30);
    for (int i = 0; i < nodes; ++i) REQUIRE(r.add("n" + std::to_string(seed) + "-" + std::to_string(i), 1 + static_cast<std::uint32_t>(rng() % 3)));
    auto ids = ids_upto(10 + static_cast<std::uint32_t>(rng() % 500));
    const std::string index = "i" + std::to_string(seed);
    auto scratch = place_bounded(r, index, ids, 0.1);
    CHECK(place_bounded_sticky(r, index, ids, as_current(scratch), 0.1) == scratch);
    // From an arbitrary (even over-cap) start, the result is a fixed point.
    std::vector<int> arbitrary(ids.size());
    for (auto& a : arbitrary) a = static_cast<int>(rng() % r.node_count());
    auto once = place_bounded_sticky(r, index, ids, arbitrary, 0.1);
    CHECK(place_bounded_sticky(r, index, ids, as_current(once), 0.1) == once);
  }
}

TEST_CASE("sticky placement never exceeds a cap and places orphans") {
  for (unsigned seed = 1; seed <= 100; ++seed) {
    std::mt19937_64 rng(seed * 7);
    ring r(64);
    const int nodes = 1 + static_cast<int>(rng() % 20);
    for (int i = 0; i < nodes; ++i) REQUIRE(r.add("n" + std::to_string(i), static_cast<std::uint32_t>(rng() % 3)));
    if (r.empty()) continue;
    auto ids = ids_upto(1 + static_cast<std::uint32_t>(rng() % 300));
    std::vector<int> current(ids.size());
    for (auto& c : current) c = static_cast<int>(rng() % (r.node_count() + 2)) - 1;  // some -1, some unknown
    for (auto& c : current)
      if (c >= static_cast<int>(r.node_count())) c = -1;
    auto owners = place_bounded_sticky(r, "x", ids, current, 0.1);
    REQUIRE(owners.size() == ids.size());
    auto caps = bounded_load_caps(r, ids.size(), 0.1);
    std::vector<std::uint32_t> counts(r.node_count(), 0);
    for (auto o : owners) {
      REQUIRE(o < r.node_count());
      CHECK(r.weights()[o] > 0);
      ++counts[o];
    }
    for (std::size_t o = 0; o < counts.size(); ++o) CHECK(counts[o] <= caps[o]);
  }
}

TEST_CASE("after a join, sticky placement moves close to the optimum and feeds the new node") {
  double moved_total = 0, optimal_total = 0;
  for (unsigned seed = 1; seed <= 40; ++seed) {
    ring before = seeded_ring("s", seed, 10);
    auto ids = ids_upto(250);
    const std::string index = "index-" + std::to_string(seed);
    auto placed = place_bounded(before, index, ids, 0.1);
    ring after = before;
    REQUIRE(after.add("joiner", 1));
    auto current = translate(before, after, placed);
    auto next = place_bounded_sticky(after, index, ids, current, 0.1);
    int moved = 0, on_joiner = 0, natural_to_joiner = 0;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      moved += current[i] != static_cast<int>(next[i]);
      on_joiner += after.nodes()[next[i]] == "joiner";
      natural_to_joiner += after.lookup(shard_token(index, ids[i])) == "joiner";
    }
    // The joiner takes every shard natural to it, up to its fair share.
    CHECK(on_joiner >= std::min(natural_to_joiner, 250 / 11));
    moved_total += moved;
    optimal_total += 250.0 / 11.0;
  }
  CHECK(moved_total / optimal_total <= 1.15);
}

TEST_CASE("when a join lowers every cap, the shards shed fill the new node instead of moving twice") {
  // 40 -> 41 nodes with 1024 shards: the cap falls from 29 to 28, so every node at 29 must
  // shed one. Those shards go to the joiner first; only then does it pull its natural shards.
  double moved_total = 0, optimal_total = 0;
  for (unsigned seed = 1; seed <= 6; ++seed) {
    ring before = seeded_ring("c", seed, 40);
    auto ids = ids_upto(1024);
    const std::string index = "capdrop-" + std::to_string(seed);
    auto placed = place_bounded(before, index, ids, 0.1);
    REQUIRE(bounded_load_caps(before, 1024, 0.1)[0] == 29);
    ring after = before;
    REQUIRE(after.add("joiner", 1));
    const auto caps = bounded_load_caps(after, 1024, 0.1);
    REQUIRE(caps[0] == 28);
    auto current = translate(before, after, placed);
    int at_old_cap = 0;
    {
      std::vector<int> load(after.node_count(), 0);
      for (int o : current) ++load[static_cast<std::size_t>(o)];
      for (int l : load) at_old_cap += l == 29;
    }
    REQUIRE(at_old_cap > 0);  // the case this test is about
    auto next = place_bounded_sticky(after, index, ids, current, 0.1);
    std::vector<std::uint32_t> load(after.node_count(), 0);
    int moved = 0;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      ++load[next[i]];
      if (current[i] != static_cast<int>(next[i])) {
        ++moved;
        CHECK(after.nodes()[next[i]] == "joiner");  // every move feeds the joiner
      }
    }
    for (std::size_t n = 0; n < load.size(); ++n) CHECK(load[n] <= caps[n]);
    moved_total += moved;
    optimal_total += 1024.0 / 41.0;
  }
  CHECK(moved_total / optimal_total <= 1.1);
}

TEST_CASE("when a node leaves, only its shards move") {
  ring r(64);
  for (int i = 0; i < 8; ++i) REQUIRE(r.add("n" + std::to_string(i), 1));
  auto ids = ids_upto(200);
  auto placed = place_bounded(r, "x", ids, 0.25);
  ring smaller = r;
  REQUIRE(smaller.remove("n3"));
  auto next = place_bounded_sticky(smaller, "x", ids, translate(r, smaller, placed), 0.25);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (r.nodes()[placed[i]] != "n3") CHECK(smaller.nodes()[next[i]] == r.nodes()[placed[i]]);
    CHECK(smaller.nodes()[next[i]] != "n3");
  }
}

TEST_CASE("with eps 0 (the default) a new index is even on equal nodes: 12 shards on 3 nodes are 4/4/4") {
  for (unsigned seed = 0; seed < 50; ++seed) {
    const auto r = seeded_ring("even", seed, 3);
    const auto owners = place_bounded(r, "sample" + std::to_string(seed), ids_upto(12), 0.0);
    std::vector<int> count(3, 0);
    for (auto o : owners) ++count.at(o);
    INFO("seed " << seed);
    CHECK(count == std::vector<int>{4, 4, 4});
  }
}

#include "shardd/ring.hpp"
#include "shardd/sha256.hpp"

#include "support/catch_result.hpp"

#include <algorithm>
#include <numeric>
#include <random>

using namespace shardd;

namespace {

ring make_ring(int nodes, std::uint32_t vnodes = 128, std::uint32_t weight = 1, std::string prefix = "node-") {
  ring r(vnodes);
  for (int i = 0; i < nodes; ++i) REQUIRE(r.add(prefix + std::to_string(i), weight));
  return r;
}

// Reference: the owner of the first vnode token >= t, wrapping.
std::uint32_t reference_owner(const ring& r, std::uint64_t t) {
  for (std::size_t i = 0; i < r.vnode_count(); ++i)
    if (r.vnode_token(i) >= t) return r.vnode_owner(i);
  return r.vnode_owner(0);
}

}  // namespace

TEST_CASE("a node has weight times vnodes_per_weight virtual nodes at sha256(id#i)") {
  ring r(4);
  REQUIRE(r.add("a", 2));
  REQUIRE(r.vnode_count() == 8);
  std::vector<std::uint64_t> expected;
  for (int i = 0; i < 8; ++i) expected.push_back(token_of("a#" + std::to_string(i)));
  std::sort(expected.begin(), expected.end());
  for (std::size_t i = 0; i < 8; ++i) CHECK(r.vnode_token(i) == expected[i]);
}

TEST_CASE("lookup with the bucket table agrees with a linear reference") {
  for (int nodes : {1, 3, 10, 100}) {
    auto r = make_ring(nodes, nodes >= 100 ? 16 : 128);
    std::mt19937_64 rng(static_cast<unsigned>(nodes));
    for (int i = 0; i < 2000; ++i) {
      std::uint64_t t = rng();
      CHECK(r.lookup_ordinal(t) == reference_owner(r, t));
      CHECK(r.lookup_vnode(t) == r.lookup_vnode_binary(t));
    }
    // Edges: exact vnode tokens, their neighbours, the ends of the space.
    for (std::size_t v = 0; v < r.vnode_count(); v += 7) {
      std::uint64_t t = r.vnode_token(v);
      CHECK(r.lookup_vnode(t) == r.lookup_vnode_binary(t));
      CHECK(r.lookup_vnode(t + 1) == r.lookup_vnode_binary(t + 1));
      CHECK(r.lookup_vnode(t - 1) == r.lookup_vnode_binary(t - 1));
    }
    CHECK(r.lookup_vnode(0) == r.lookup_vnode_binary(0));
    CHECK(r.lookup_vnode(UINT64_MAX) == r.lookup_vnode_binary(UINT64_MAX));
  }
}

TEST_CASE("lookup stays exact with overflowing buckets, empty buckets and 16-bit ties") {
  auto r = make_ring(20, 64);  // 1280 vnodes
  std::mt19937_64 rng(7);
  auto check_all = [&] {
    for (int i = 0; i < 3000; ++i) {
      const std::uint64_t t = rng();
      CHECK(r.lookup_vnode(t) == r.lookup_vnode_binary(t));
      CHECK(r.lookup_ordinal(t) == reference_owner(r, t));
    }
    for (std::size_t v = 0; v < r.vnode_count(); ++v) {
      // Queries that share a vnode's top bits and its next 16 bits: the table cannot decide
      // them and must fall back to the token array.
      const std::uint64_t t = r.vnode_token(v);
      for (std::uint64_t d : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{1000}}) {
        CHECK(r.lookup_vnode(t + d) == r.lookup_vnode_binary(t + d));
        CHECK(r.lookup_vnode(t - d) == r.lookup_vnode_binary(t - d));
        CHECK(r.lookup_ordinal(t - d) == reference_owner(r, t - d));
      }
    }
    CHECK(r.lookup_vnode(0) == r.lookup_vnode_binary(0));
    CHECK(r.lookup_vnode(UINT64_MAX) == r.lookup_vnode_binary(UINT64_MAX));
    CHECK(r.lookup_ordinal(UINT64_MAX) == reference_owner(r, UINT64_MAX));
  };
  const unsigned chosen = r.table_bits();
  CHECK(chosen == 9);  // bit_width(1280) - 2: 2.5 vnodes per bucket
  for (unsigned bits : {1u, 4u, chosen, 16u, 24u}) {  // 640 per bucket ... mostly empty buckets
    INFO("table bits " << bits);
    r.set_table_bits(bits);
    REQUIRE(r.table_bits() == bits);
    check_all();
  }
  // A ring of one vnode: every bucket answers that vnode.
  ring one(1);
  REQUIRE(one.add("solo", 1));
  for (unsigned bits : {1u, 8u}) {
    one.set_table_bits(bits);
    for (int i = 0; i < 100; ++i) {
      const std::uint64_t t = rng();
      CHECK(one.lookup_vnode(t) == 0);
      CHECK(one.lookup(t) == "solo");
    }
  }
}

TEST_CASE("the same members give the same ring whatever the order of joins") {
  std::mt19937 rng(1);
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) ids.push_back("n" + std::to_string(i * 37 % 101));
  ring a(32);
  for (const auto& id : ids) REQUIRE(a.add(id, 1 + static_cast<std::uint32_t>(id.size() % 3)));
  for (int seed = 0; seed < 10; ++seed) {
    std::shuffle(ids.begin(), ids.end(), rng);
    ring b(32);
    for (const auto& id : ids) REQUIRE(b.add(id, 1 + static_cast<std::uint32_t>(id.size() % 3)));
    REQUIRE(a.vnode_count() == b.vnode_count());
    for (std::size_t i = 0; i < a.vnode_count(); ++i) {
      CHECK(a.vnode_token(i) == b.vnode_token(i));
      CHECK(a.nodes()[a.vnode_owner(i)] == b.nodes()[b.vnode_owner(i)]);
    }
  }
}

TEST_CASE("adding a node moves tokens only toward the new node") {
  for (unsigned seed = 1; seed <= 20; ++seed) {
    std::mt19937_64 rng(seed);
    const int n = 2 + static_cast<int>(rng() % 30);
    auto before = make_ring(n, 64, 1, "s" + std::to_string(seed) + "-");
    ring after = before;
    REQUIRE(after.add("joiner", 1 + static_cast<std::uint32_t>(rng() % 3)));
    int moved = 0;
    for (int i = 0; i < 3000; ++i) {
      std::uint64_t t = rng();
      const auto& b = before.lookup(t);
      const auto& a = after.lookup(t);
      if (a != b) {
        CHECK(a == "joiner");
        ++moved;
      }
    }
    CHECK(moved > 0);
  }
}

TEST_CASE("removing a node moves only the tokens it owned") {
  auto before = make_ring(12, 64);
  ring after = before;
  REQUIRE(after.remove("node-5"));
  std::mt19937_64 rng(5);
  for (int i = 0; i < 5000; ++i) {
    std::uint64_t t = rng();
    if (before.lookup(t) != "node-5") CHECK(after.lookup(t) == before.lookup(t));
    CHECK(after.lookup(t) != "node-5");
  }
}

TEST_CASE("owned shares follow weights at 128 vnodes per weight and 10 nodes") {
  // A node's share is a sum of k random arcs, so its relative spread is about 1/sqrt(k), 8.8%
  // at k = 128: a single node cannot be held to 10% of its weight share. Weights are respected
  // when each weight class together owns its weight share within 10%; each node is held to
  // 3 percentage points of absolute share. Over 30 node sets. (Ignoring weights would put the
  // weight-3 class 36% below its share.)
  for (unsigned seed = 1; seed <= 30; ++seed) {
    ring r(128);
    for (int i = 0; i < 10; ++i)
      REQUIRE(r.add("set" + std::to_string(seed) + "-node" + std::to_string(i), 1 + static_cast<std::uint32_t>(i % 3)));
    auto share = r.ownership();
    const double total_w = std::accumulate(r.weights().begin(), r.weights().end(), 0.0);
    CHECK(std::accumulate(share.begin(), share.end(), 0.0) == Approx(1.0).epsilon(1e-9));
    double class_share[4] = {0, 0, 0, 0}, class_weight[4] = {0, 0, 0, 0};
    for (std::size_t o = 0; o < share.size(); ++o) {
      const double expected = r.weights()[o] / total_w;
      CHECK(std::abs(share[o] - expected) <= 0.03);
      class_share[r.weights()[o]] += share[o];
      class_weight[r.weights()[o]] += expected;
    }
    for (int c = 1; c <= 3; ++c) CHECK(std::abs(class_share[c] - class_weight[c]) <= 0.10 * class_weight[c]);
  }
}

TEST_CASE("weight changes, removal of unknown nodes and duplicates are reported") {
  ring r(8);
  REQUIRE(r.add("a", 1));
  CHECK(r.add("a", 1).error().code == errc::already_exists);
  CHECK(r.remove("zz").error().code == errc::not_found);
  CHECK(r.set_weight("zz", 2).error().code == errc::not_found);
  CHECK(r.add("b", ring::max_weight + 1).error().code == errc::invalid_argument);
  REQUIRE(r.set_weight("a", 3));
  CHECK(r.vnode_count() == 24);
  REQUIRE(r.set_weight("a", 0));
  CHECK(r.empty());
  CHECK(r.memory_bytes() > 0);
}

TEST_CASE("building a ring at once equals adding its members one by one") {
  std::vector<ring::member> members;
  ring one_by_one(16);
  for (int i = 0; i < 25; ++i) {
    members.push_back({"m" + std::to_string((i * 7) % 25), 1 + static_cast<std::uint32_t>(i % 4)});
    REQUIRE(one_by_one.add(members.back().id, members.back().weight));
  }
  auto built = ring::build(members, 16);
  REQUIRE(built);
  REQUIRE(built->vnode_count() == one_by_one.vnode_count());
  for (std::size_t i = 0; i < built->vnode_count(); ++i) {
    CHECK(built->vnode_token(i) == one_by_one.vnode_token(i));
    CHECK(built->vnode_owner(i) == one_by_one.vnode_owner(i));
  }
  members.push_back(members.front());
  CHECK(ring::build(members, 16).error().code == errc::already_exists);
}

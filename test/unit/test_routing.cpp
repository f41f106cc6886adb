#include "shardd/routing.hpp"

#include "support/catch_result.hpp"

#include <random>
#include <set>

using namespace shardd;

namespace {

partition_map cluster_with(const std::string& name, index_spec spec) {
  partition_map m;
  for (int i = 0; i < 3; ++i) {
    auto next = upsert_node(m, node_entry{"n" + std::to_string(i), "r", "p", 1, node_state::up});
    REQUIRE(next);
    m = *next;
  }
  auto next = create_index(m, name, spec, build_ring(m), 0.1);
  REQUIRE(next);
  return *next;
}

std::string random_key(std::mt19937_64& rng) {
  std::string k(1 + rng() % 30, 'a');
  for (auto& c : k) c = static_cast<char>('!' + rng() % 90);
  return k;
}

}  // namespace

TEST_CASE("routing agrees with the storage key ranges of the shards") {
  for (auto spec : {index_spec{partitioning::hash, 1, {}}, index_spec{partitioning::hash, 7, {}},
                    index_spec{partitioning::hash, 64, {}}, index_spec{partitioning::range, 0, {"F", "P", "e", "x"}}}) {
    auto m = cluster_with("idx", spec);
    // Splits make shard ids and positions differ, which routing must not confuse.
    if (spec.strategy == partitioning::hash) {
      auto s = split_shard(m, "idx", 0, std::nullopt);
      REQUIRE(s);
      m = *s;
    }
    const auto& ix = *m.find_index("idx");
    std::mt19937_64 rng(ix.shards.size());
    for (int i = 0; i < 3000; ++i) {
      auto key = random_key(rng);
      auto r = route_key(ix, key);
      REQUIRE(r.shard_pos < ix.shards.size());
      for (std::size_t p = 0; p < ix.shards.size(); ++p)
        CHECK(shard_storage_range(ix, ix.shards[p]).contains(r.storage_key) == (p == r.shard_pos));
      CHECK(index_storage_range(ix).contains(r.storage_key));
    }
  }
}

TEST_CASE("range routing preserves key order across shards") {
  auto m = cluster_with("r", {partitioning::range, 0, {"c", "k", "s"}});
  const auto& ix = *m.find_index("r");
  CHECK(route_key(ix, "a").shard_pos == 0);
  CHECK(route_key(ix, "c").shard_pos == 1);
  CHECK(route_key(ix, "jzz").shard_pos == 1);
  CHECK(route_key(ix, "k").shard_pos == 2);
  CHECK(route_key(ix, "zzz").shard_pos == 3);
  std::mt19937_64 rng(3);
  for (int i = 0; i < 2000; ++i) {
    auto a = random_key(rng), b = random_key(rng);
    if (a < b) CHECK(route_key(ix, a).shard_pos <= route_key(ix, b).shard_pos);
  }
}

TEST_CASE("a routing value places different keys together") {
  auto m = cluster_with("h", {partitioning::hash, 32, {}});
  const auto& ix = *m.find_index("h");
  auto first = route_key(ix, "order-1", std::string_view("tenant-42"));
  for (int i = 2; i < 100; ++i) {
    auto r = route_key(ix, "order-" + std::to_string(i), std::string_view("tenant-42"));
    CHECK(r.shard_pos == first.shard_pos);
    CHECK(r.token == first.token);
  }
  // Without routing, the keys spread.
  std::set<std::size_t> spread;
  for (int i = 0; i < 100; ++i) spread.insert(route_key(ix, "order-" + std::to_string(i)).shard_pos);
  CHECK(spread.size() > 10);
}

TEST_CASE("a storage key from the network maps to its shard only if it is a well-formed key of that index") {
  auto m = cluster_with("h", {partitioning::hash, 8, {}});
  const auto& ix = *m.find_index("h");
  for (const std::string& key : {std::string("a"), std::string("user-17"), std::string(300, 'z')}) {
    const auto rt = route_key(ix, key);
    INFO(key);
    CHECK(shard_of_storage_key(ix, rt.storage_key) == rt.shard_pos);
    CHECK(user_key_of(ix, rt.storage_key) == key);
  }
  const auto good = route_key(ix, "k").storage_key;
  // Index prefix but no whole token (4-11 bytes): refused, never a position past the end.
  for (std::size_t n = 0; n < index_prefix_bytes + token_bytes; ++n) {
    INFO(n);
    CHECK_FALSE(shard_of_storage_key(ix, good.substr(0, n)));
  }
  CHECK(shard_of_storage_key(ix, good.substr(0, index_prefix_bytes + token_bytes)));  // empty user key, whole token
  auto other = good;
  other[3] = static_cast<char>(other[3] + 1);  // another index id
  CHECK_FALSE(shard_of_storage_key(ix, other));
  CHECK(user_key_of(ix, "ab").empty());

  auto r = cluster_with("r", {partitioning::range, 0, {"m"}});
  const auto& rix = *r.find_index("r");
  CHECK(shard_of_storage_key(rix, storage_key_range(rix.id, "a")) == 0u);
  CHECK(shard_of_storage_key(rix, storage_key_range(rix.id, "z")) == 1u);
  CHECK(user_key_of(rix, storage_key_range(rix.id, "zed")) == "zed");
  CHECK_FALSE(shard_of_storage_key(rix, "abc"));
}

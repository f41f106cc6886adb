#include "shardd/partition_map.hpp"

#include "support/catch_result.hpp"

#include <random>

using namespace shardd;

namespace {

partition_map with_nodes(int n) {
  partition_map m;
  m.cluster_id = "test";
  for (int i = 0; i < n; ++i) {
    node_entry e;
    e.id = "node-" + std::to_string(i);
    e.rest_address = "127.0.0.1:" + std::to_string(8000 + i);
    e.peer_address = "127.0.0.1:" + std::to_string(9000 + i);
    auto next = upsert_node(m, e);
    REQUIRE(next);
    m = *next;
  }
  m.controller = "node-0";
  return m;
}

partition_map create(const partition_map& m, const std::string& name, index_spec spec) {
  auto r = create_index(m, name, spec, build_ring(m), 0.1);
  INFO(name);
  REQUIRE(r);
  return *r;
}

}  // namespace

TEST_CASE("a hash index gets equal token ranges covering the space") {
  auto m = create(with_nodes(3), "users", {partitioning::hash, 4, {}});
  const auto& ix = *m.find_index("users");
  REQUIRE(ix.shards.size() == 4);
  CHECK(ix.shards[0].start == token_key(0));
  CHECK(*ix.shards[0].end == token_key(0x4000000000000000ULL));
  CHECK(ix.shards[1].start == token_key(0x4000000000000000ULL));
  CHECK(ix.shards[2].start == token_key(0x8000000000000000ULL));
  CHECK(ix.shards[3].start == token_key(0xc000000000000000ULL));
  CHECK(!ix.shards[3].end);
  CHECK(ix.id == 1);
  CHECK(m.next_index_id == 2);
  for (const auto& s : ix.shards) CHECK(m.nodes.contains(s.owner));
}

TEST_CASE("a range index gets one shard per interval between split points") {
  auto m = create(with_nodes(2), "events", {partitioning::range, 0, {"g", "p"}});
  const auto& ix = *m.find_index("events");
  REQUIRE(ix.shards.size() == 3);
  CHECK(ix.shards[0].start.empty());
  CHECK(*ix.shards[0].end == "g");
  CHECK(ix.shards[1].start == "g");
  CHECK(*ix.shards[1].end == "p");
  CHECK(ix.shards[2].start == "p");
  CHECK(!ix.shards[2].end);
  auto one = create(with_nodes(1), "single", {partitioning::range, 0, {}});
  CHECK(one.find_index("single")->shards.size() == 1);
}

TEST_CASE("bad index specs are refused with a reason") {
  auto m = with_nodes(2);
  auto ring = build_ring(m);
  CHECK(create_index(m, "Bad", {}, ring, 0.1).error().code == errc::invalid_argument);
  CHECK(create_index(m, "x", {partitioning::hash, 0, {}}, ring, 0.1).error().code == errc::invalid_argument);
  CHECK(create_index(m, "x", {partitioning::hash, max_shards_per_index + 1, {}}, ring, 0.1).error().code ==
        errc::invalid_argument);
  CHECK(create_index(m, "x", {partitioning::range, 0, {"b", "a"}}, ring, 0.1).error().detail.find("sorted") !=
        std::string::npos);
  CHECK(create_index(m, "x", {partitioning::range, 0, {"a", "a"}}, ring, 0.1).error().code == errc::invalid_argument);
  CHECK(create_index(m, "x", {partitioning::range, 0, {""}}, ring, 0.1).error().code == errc::invalid_argument);
  CHECK(create_index(m, "x", {partitioning::hash, 4, {"a"}}, ring, 0.1).error().code == errc::invalid_argument);
  auto m2 = create(m, "x", {});
  CHECK(create_index(m2, "x", {}, ring, 0.1).error().code == errc::already_exists);
  CHECK(create_index(partition_map{}, "y", {}, ::shardd::ring{}, 0.1).error().code == errc::unavailable);
}

TEST_CASE("changes are copy-on-write and bump the version by one") {
  auto m = with_nodes(2);
  const auto before = m;
  auto next = create_index(m, "a", {}, build_ring(m), 0.1);
  REQUIRE(next);
  CHECK(m == before);
  CHECK(next->version == m.version + 1);
  auto dropped = drop_index(*next, "a");
  REQUIRE(dropped);
  CHECK(dropped->version == next->version + 1);
  CHECK(!dropped->find_index("a"));
  CHECK(dropped->next_index_id == 2);  // ids are never reused
  CHECK(drop_index(*dropped, "a").error().code == errc::not_found);
}

TEST_CASE("migrations move through begin, commit and abort") {
  auto m = create(with_nodes(3), "i", {partitioning::hash, 2, {}});
  const auto& s0 = m.find_index("i")->shards[0];
  const std::string owner = s0.owner;
  const std::string target = owner == "node-1" ? "node-2" : "node-1";
  auto begun = begin_migration(m, "i", 0, target);
  REQUIRE(begun);
  CHECK(begun->find_index("i")->shards[0].state == shard_state::migrating);
  CHECK(begin_migration(*begun, "i", 0, target).error().code == errc::conflict);
  CHECK(split_shard(*begun, "i", 0, std::nullopt).error().code == errc::conflict);
  auto committed = commit_migration(*begun, "i", 0);
  REQUIRE(committed);
  CHECK(committed->find_index("i")->shards[0].owner == target);
  CHECK(committed->find_index("i")->shards[0].state == shard_state::active);
  auto aborted = abort_migration(*begun, "i", 0);
  REQUIRE(aborted);
  CHECK(aborted->find_index("i")->shards[0].owner == owner);
  CHECK(commit_migration(m, "i", 0).error().code == errc::conflict);
  CHECK(begin_migration(m, "i", 0, owner).error().code == errc::invalid_argument);
  CHECK(begin_migration(m, "i", 0, "ghost").error().code == errc::not_found);
  auto draining = set_node_state(m, target, node_state::draining);
  REQUIRE(draining);
  CHECK(begin_migration(*draining, "i", 0, target).error().code == errc::conflict);
}

TEST_CASE("split halves a hash shard at its middle token and a range shard at a key") {
  auto m = create(with_nodes(1), "h", {partitioning::hash, 1, {}});
  auto s = split_shard(m, "h", 0, std::nullopt);
  REQUIRE(s);
  const auto& ix = *s->find_index("h");
  REQUIRE(ix.shards.size() == 2);
  CHECK(*ix.shards[0].end == token_key(0x8000000000000000ULL));
  CHECK(ix.shards[1].id == 1);
  CHECK(ix.next_shard_id == 2);

  auto r = create(with_nodes(1), "r", {partitioning::range, 0, {"m"}});
  CHECK(split_shard(r, "r", 0, std::string("m")).error().code == errc::invalid_argument);  // not inside
  CHECK(split_shard(r, "r", 0, std::string("")).error().code == errc::invalid_argument);
  CHECK(split_shard(r, "r", 0, std::nullopt).error().code == errc::invalid_argument);
  auto rs = split_shard(r, "r", 1, std::string("t"));
  REQUIRE(rs);
  const auto& rix = *rs->find_index("r");
  REQUIRE(rix.shards.size() == 3);
  CHECK(rix.shards[1].start == "m");
  CHECK(*rix.shards[1].end == "t");
  CHECK(rix.shards[2].start == "t");
  CHECK(rix.shards[2].id == 2);
}

TEST_CASE("any random sequence of changes keeps the map valid and its JSON round-trips") {
  for (unsigned seed = 1; seed <= 60; ++seed) {
    std::mt19937_64 rng(seed);
    auto m = with_nodes(1 + static_cast<int>(rng() % 6));
    int applied = 0;
    for (int step = 0; step < 80; ++step) {
      result<partition_map> next = make_error(errc::internal, "none");
      const auto pick_index = [&]() -> const index_entry* {
        if (m.indexes.empty()) return nullptr;
        auto it = m.indexes.begin();
        std::advance(it, static_cast<long>(rng() % m.indexes.size()));
        return &it->second;
      };
      const auto pick_node = [&]() {
        auto it = m.nodes.begin();
        std::advance(it, static_cast<long>(rng() % m.nodes.size()));
        return it->first;
      };
      switch (rng() % 8) {
        case 0: {
          index_spec spec;
          if (rng() % 2) {
            spec.strategy = partitioning::range;
            for (int k = 0; k < static_cast<int>(rng() % 5); ++k) spec.split_points.push_back(std::string(1, static_cast<char>('b' + k * 3)));
          } else {
            spec.shards = 1 + static_cast<std::uint32_t>(rng() % 40);
          }
          next = create_index(m, "i" + std::to_string(rng() % 10), spec, build_ring(m), 0.1);
          break;
        }
        case 1:
          if (auto ix = pick_index()) next = drop_index(m, ix->name);
          break;
        case 2:
          if (auto ix = pick_index()) {
            const auto& s = ix->shards[rng() % ix->shards.size()];
            std::optional<std::string> at;
            if (ix->strategy == partitioning::range) at = s.start + std::string(1, static_cast<char>('a' + rng() % 26));
            next = split_shard(m, ix->name, s.id, at);
          }
          break;
        case 3:
          if (auto ix = pick_index()) next = begin_migration(m, ix->name, ix->shards[rng() % ix->shards.size()].id, pick_node());
          break;
        case 4:
          if (auto ix = pick_index()) next = commit_migration(m, ix->name, ix->shards[rng() % ix->shards.size()].id);
          break;
        case 5:
          if (auto ix = pick_index()) next = abort_migration(m, ix->name, ix->shards[rng() % ix->shards.size()].id);
          break;
        case 6:
          next = set_node_state(m, pick_node(), rng() % 3 ? node_state::up : node_state::down);
          break;
        case 7:
          if (auto ix = pick_index()) next = set_shard_owner(m, ix->name, ix->shards[rng() % ix->shards.size()].id, pick_node());
          break;
      }
      if (!next) continue;  // refused changes leave the map as it was
      REQUIRE(next->version == m.version + 1);
      m = std::move(*next);
      ++applied;
      REQUIRE(validate(m));
      auto text = to_json(m);
      auto back = from_json(text);
      INFO(text);
      REQUIRE(back);
      REQUIRE(*back == m);
      REQUIRE(to_json(*back) == text);  // stable bytes
    }
    CHECK(applied > 10);
  }
}

TEST_CASE("a map written before the rebalancer keeps its meaning: convergence off becomes rebalance mode off") {
  auto m = create(with_nodes(2), "users", {partitioning::hash, 4, {}});
  CHECK(m.settings.rebalance.mode == rebalance_mode::automatic);  // the default
  const std::string now = to_json(m);
  const auto at = now.find("\"rebalance\":");
  REQUIRE(at != std::string::npos);
  const std::string old_off = now.substr(0, at) + "\"convergence\":false,\"convergence_batch\":4}}";
  auto off = from_json(old_off);
  REQUIRE(off);
  CHECK(off->settings.rebalance.mode == rebalance_mode::off);
  const std::string old_on = now.substr(0, at) + "\"convergence\":true,\"convergence_batch\":4}}";
  auto on = from_json(old_on);
  REQUIRE(on);
  CHECK(on->settings.rebalance.mode == rebalance_mode::automatic);
  // Written again, the old fields are gone and the mode is kept.
  CHECK(to_json(*off).find("convergence") == std::string::npos);
  CHECK(from_json(to_json(*off))->settings.rebalance.mode == rebalance_mode::off);
}

TEST_CASE("the adaptive throttle's settings travel with the map; an older map gets the defaults") {
  auto m = create(with_nodes(2), "users", {partitioning::hash, 4, {}});
  CHECK_FALSE(m.settings.migration_adaptive);
  CHECK(m.settings.adaptive_p99_ms == 50);
  m.settings.migration_adaptive = true;
  m.settings.adaptive_p99_ms = 2.5;
  m.settings.adaptive_min_bytes_per_sec = 65536;
  auto back = from_json(to_json(m));
  REQUIRE(back);
  CHECK(back->settings == m.settings);
  std::string older = to_json(m);
  for (const std::string field : {"\"migration_adaptive\":true,", "\"adaptive_p99_ms\":2.5,", "\"adaptive_min_bytes_per_sec\":65536,"}) {
    const auto at = older.find(field);
    INFO(field << " in " << older);
    REQUIRE(at != std::string::npos);
    older.erase(at, field.size());
  }
  auto old = from_json(older);
  REQUIRE(old);
  CHECK_FALSE(old->settings.migration_adaptive);
  CHECK(old->settings.adaptive_min_bytes_per_sec == 1u << 20);
  std::string bad = to_json(m);
  bad.replace(bad.find("\"adaptive_p99_ms\":2.5"), 21, "\"adaptive_p99_ms\":0");
  CHECK_FALSE(from_json(bad));  // a bound of 0 is out of range
}

TEST_CASE("bad JSON maps are rejected with a reason") {
  auto m = create(with_nodes(2), "users", {partitioning::hash, 4, {}});
  const std::string good = to_json(m);
  REQUIRE(from_json(good));
  auto rejects = [&](std::string text, std::string needle) {
    auto r = from_json(text);
    INFO(text);
    REQUIRE(!r);
    INFO(r.error().detail);
    CHECK(r.error().detail.find(needle) != std::string::npos);
  };
  auto replace = [&](std::string from, std::string to) {
    auto s = good;
    auto pos = s.find(from);
    REQUIRE(pos != std::string::npos);
    return s.replace(pos, from.size(), to);
  };
  rejects("{", "not valid JSON");
  rejects("[]", "expected an object");
  rejects(replace("\"version\":", "\"versio\":"), "version: is required");
  rejects(replace("\"cluster_id\":\"test\"", "\"cluster_id\":5"), "cluster_id: expected a string");
  rejects(replace("\"state\":\"up\"", "\"state\":\"sleepy\""), "unknown node state");
  rejects(replace("\"owner\":\"", "\"owner\":\"ghost"), "not a member");
  rejects(replace("\"start\":\"4000000000000000\"", "\"start\":\"4000000000000001\""), "gap or overlap");
  rejects(replace("\"end\":\"4000000000000000\"", "\"end\":\"3000000000000000\""), "gap or overlap");
  rejects(replace("\"start\":\"0000000000000000\"", "\"start\":\"0000000000000001\""), "beginning of the space");
  rejects(replace("\"end\":null", "\"end\":\"ffffffffffffffff\""), "end of the space");
  rejects(replace("\"start\":\"4000000000000000\"", "\"start\":\"40000000000000zz\""), "hex");
  rejects(replace("\"next_index_id\":2", "\"next_index_id\":1"), "next_index_id");
  rejects(replace("\"weight\":1", "\"weight\":1,\"colour\":\"red\""), "colour: unknown field");
  rejects(replace("\"partitioning\":\"hash\"", "\"partitioning\":\"zigzag\""), "partitioning");
}

TEST_CASE("diff lists moves, splits, new and dropped indexes and node changes") {
  auto m = create(with_nodes(3), "a", {partitioning::hash, 4, {}});
  const auto& s1 = m.find_index("a")->shards[1];
  const std::string target = s1.owner == "node-2" ? "node-0" : "node-2";
  auto b1 = begin_migration(m, "a", 1, target);
  REQUIRE(b1);
  auto c1 = commit_migration(*b1, "a", 1);
  REQUIRE(c1);
  auto sp = split_shard(*c1, "a", 2, std::nullopt);
  REQUIRE(sp);
  auto down = set_node_state(*sp, "node-1", node_state::down);
  REQUIRE(down);
  auto created = create(*down, "b", {partitioning::hash, 2, {}});
  auto d = diff(m, created);
  auto has = [&](map_change::kind k, std::string subject, std::uint32_t shard = 0) {
    for (const auto& c : d)
      if (c.what == k && c.subject == subject && c.shard == shard) return &c;
    return static_cast<const map_change*>(nullptr);
  };
  REQUIRE(has(map_change::kind::shard_moved, "a", 1));
  CHECK(has(map_change::kind::shard_moved, "a", 1)->to == target);
  CHECK(has(map_change::kind::shard_added, "a", 4));
  CHECK(has(map_change::kind::shard_range, "a", 2));
  CHECK(has(map_change::kind::node_state, "node-1"));
  CHECK(has(map_change::kind::index_created, "b"));
  CHECK(diff(m, m).empty());
  auto dropped = drop_index(created, "a");
  REQUIRE(dropped);
  CHECK(diff(created, *dropped).size() == 1);
  CHECK(diff(created, *dropped)[0].what == map_change::kind::index_dropped);
}

TEST_CASE("removing a node: only when it left or is down; a down owner's shards need force and start again empty") {
  auto m = create(with_nodes(4), "r", {partitioning::hash, 12, {}});
  std::size_t on3 = 0;
  for (const auto& s : m.find_index("r")->shards) on3 += s.owner == "node-3";
  REQUIRE(on3 > 0);
  CHECK(remove_node(m, "node-9", false).error().code == errc::not_found);
  CHECK(remove_node(m, "node-0", true).error().code == errc::conflict);  // the controller
  auto up = remove_node(m, "node-3", true);
  REQUIRE(!up);
  CHECK(up.error().detail.find("is up") != std::string::npos);

  auto down = *set_node_state(m, "node-3", node_state::down);
  auto refused = remove_node(down, "node-3", false);
  REQUIRE(!refused);
  CHECK(refused.error().code == errc::conflict);
  CHECK(refused.error().detail.find(std::to_string(on3) + " shard(s): r/") != std::string::npos);

  // Node-2 draining does not take shards: they go to node-0 and node-1, evened out by count.
  auto draining = *set_node_state(down, "node-2", node_state::draining);
  auto forced = remove_node(draining, "node-3", true);
  REQUIRE(forced);
  CHECK(forced->map.version == draining.version + 1);
  CHECK(!forced->map.find_node("node-3"));
  CHECK(forced->recreated.size() == on3);
  std::map<std::string, int> count;
  for (const auto& s : forced->map.find_index("r")->shards) {
    CHECK(s.owner != "node-3");
    ++count[s.owner];
  }
  for (const auto& r : forced->recreated) {
    CHECK((r.owner == "node-0" || r.owner == "node-1"));
    CHECK(forced->map.find_index("r")->find_shard(r.shard)->owner == r.owner);
  }
  CHECK(std::abs(count["node-0"] - count["node-1"]) <= 1);

  // A node that owns nothing (left, or down and empty) goes without force.
  partition_map empty_down = *set_node_state(with_nodes(3), "node-2", node_state::down);
  CHECK(remove_node(empty_down, "node-2", false));
  auto left = *set_node_state(with_nodes(3), "node-2", node_state::left);
  auto gone = remove_node(left, "node-2", false);
  REQUIRE(gone);
  CHECK(gone->recreated.empty());
  CHECK(gone->map.nodes.size() == 2);
}

TEST_CASE("a node a shard is moving to or from cannot be removed, forced or not") {
  auto m = create(with_nodes(3), "mv", {partitioning::hash, 6, {}});
  const auto& s = m.find_index("mv")->shards[0];
  const std::string other = s.owner == "node-1" ? "node-2" : "node-1";
  auto moving = *begin_migration(m, "mv", s.id, other);
  auto down = *set_node_state(moving, other, node_state::down);
  auto r = remove_node(down, other, true);
  REQUIRE(!r);
  CHECK(r.error().detail.find("cancel its migration") != std::string::npos);
}

// The controller's decisions and the storage-layout plan, without sockets or clocks.
#include "shardd/cluster_plan.hpp"

#include "shardd/placement.hpp"
#include "support/catch_result.hpp"

#include <algorithm>
#include <map>

using namespace shardd;

namespace {

node_entry node(const std::string& id, std::uint32_t weight = 1, node_state st = node_state::up) {
  return {id, "127.0.0.1:1", "127.0.0.1:2", weight, st};
}

partition_map with_nodes(int n) {
  partition_map m;
  m.cluster_id = "test";
  for (int i = 0; i < n; ++i) {
    auto next = upsert_node(m, node("node-" + std::to_string(i)));
    REQUIRE(next);
    m = *next;
  }
  m.controller = "node-0";
  return m;
}

partition_map with_index(const partition_map& m, const std::string& name, std::uint32_t shards) {
  auto r = create_index(m, name, {partitioning::hash, shards, {}}, build_ring(m), 0.1);
  REQUIRE(r);
  return *r;
}

partition_map add_node(const partition_map& m, const std::string& id, std::uint32_t weight = 1) {
  auto r = upsert_node(m, node(id, weight));
  REQUIRE(r);
  return *r;
}

migration_record record(std::string id, std::string index, std::uint32_t shard, std::string source, std::string target,
                        migration_phase phase = migration_phase::queued) {
  migration_record r;
  r.id = std::move(id);
  r.index = std::move(index);
  r.index_id = 1;
  r.shard = shard;
  r.source = std::move(source);
  r.target = std::move(target);
  r.phase = phase;
  return r;
}

migration_table table(std::initializer_list<migration_record> rs) {
  migration_table t;
  for (const auto& r : rs) t[r.id] = r;
  return t;
}

}  // namespace

// --- records ---------------------------------------------------------------------------------

TEST_CASE("only migrations that move data hold a slot, and retiring ones do not hold their shard") {
  using P = migration_phase;
  for (auto p : {P::copying, P::catching_up, P::verifying, P::cutover}) {
    CHECK(transferring(record("m1", "i", 0, "a", "b", p)));
    CHECK(holds_shard(record("m1", "i", 0, "a", "b", p)));
  }
  CHECK_FALSE(transferring(record("m1", "i", 0, "a", "b", P::queued)));
  CHECK(holds_shard(record("m1", "i", 0, "a", "b", P::queued)));
  CHECK_FALSE(transferring(record("m1", "i", 0, "a", "b", P::retiring)));
  CHECK_FALSE(holds_shard(record("m1", "i", 0, "a", "b", P::retiring)));
  for (auto p : {P::done, P::failed, P::cancelled, P::rolled_back}) {
    CHECK_FALSE(transferring(record("m1", "i", 0, "a", "b", p)));
    CHECK_FALSE(holds_shard(record("m1", "i", 0, "a", "b", p)));
  }
  auto t = table({record("m1", "i", 3, "a", "b", P::copying), record("m2", "i", 4, "a", "b", P::retiring)});
  CHECK(shard_busy(t, "i", 3));
  CHECK_FALSE(shard_busy(t, "i", 4));
  CHECK_FALSE(shard_busy(t, "j", 3));
}

TEST_CASE("migration ids sort by their number, not as strings") {
  CHECK(migration_number("m12") == 12);
  CHECK(migration_number("m0") == 0);
  CHECK(migration_number("x12") == 0);
  CHECK(migration_number("m12x") == 0);
  CHECK(migration_number("m") == 0);
  CHECK(migration_number("m+3") == 0);
  auto t = table({record("m10", "i", 0, "a", "b"), record("m2", "i", 1, "a", "b"), record("m1", "i", 2, "a", "b")});
  CHECK(ids_in_order(t) == std::vector<std::string>{"m1", "m2", "m10"});
}

// --- placement -------------------------------------------------------------------------------

TEST_CASE("desired owners are the sticky placement from the current owners") {
  auto m = with_index(with_nodes(3), "users", 12);
  const auto r = build_ring(m);
  const auto& ix = *m.find_index("users");
  auto want = desired_owners(ix, r, 0.1);
  REQUIRE(want.size() == 12);
  std::vector<std::uint32_t> ids;
  std::vector<int> current;
  for (const auto& sh : ix.shards) {
    ids.push_back(sh.id);
    current.push_back(r.ordinal(sh.owner));
  }
  auto expected = place_bounded_sticky(r, "users", ids, current, 0.1);
  for (std::size_t i = 0; i < want.size(); ++i) CHECK(want[i] == r.nodes()[expected[i]]);
  // A fresh placement is already where sticky placement wants it.
  for (std::size_t i = 0; i < want.size(); ++i) CHECK(want[i] == ix.shards[i].owner);
  CHECK(desired_owners(ix, ring{}, 0.1).empty());
}

TEST_CASE("a draining node is drained once it owns, receives and sends nothing") {
  auto m = with_index(with_nodes(3), "users", 6);
  auto d = set_node_state(m, "node-1", node_state::draining);
  REQUIRE(d);
  CHECK(drained_nodes(*d, {}).empty());  // it still owns shards
  partition_map empty = *d;
  for (const auto& sh : d->find_index("users")->shards)
    if (sh.owner == "node-1") empty = *set_shard_owner(empty, "users", sh.id, "node-0");
  CHECK(drained_nodes(empty, {}) == std::vector<std::string>{"node-1"});
  auto t = table({record("m1", "users", 0, "node-1", "node-0", migration_phase::retiring)});
  CHECK(drained_nodes(empty, t).empty());  // its move waits out the undo window
  t["m1"].phase = migration_phase::done;
  CHECK(drained_nodes(empty, t) == std::vector<std::string>{"node-1"});
}

// --- migrations ------------------------------------------------------------------------------

TEST_CASE("a move is checked against the map and the records") {
  auto m = with_index(with_nodes(3), "users", 4);
  const auto& sh = m.find_index("users")->shards[0];
  const std::string owner = sh.owner;
  const std::string other = owner == "node-1" ? "node-2" : "node-1";
  auto code = [&](const migrate_request& q, const migration_table& t = {}) {
    auto r = check_move(m, t, q);
    return r ? errc::ok : r.error().code;
  };
  CHECK(code({"users", 0, other}) == errc::ok);
  CHECK(code({"nope", 0, other}) == errc::not_found);
  CHECK(code({"users", 9, other}) == errc::not_found);
  CHECK(code({"users", 0, "node-9"}) == errc::invalid_argument);
  CHECK(code({"users", 0, owner}) == errc::invalid_argument);
  CHECK(code({"users", 0, other}, table({record("m1", "users", 0, owner, other, migration_phase::copying)})) ==
        errc::conflict);
  CHECK(code({"users", 0, other}, table({record("m1", "users", 0, owner, other, migration_phase::retiring)})) ==
        errc::ok);
  m = *set_node_state(m, other, node_state::draining);
  CHECK(code({"users", 0, other}) == errc::conflict);
  m = *set_node_state(m, other, node_state::up);
  m = *set_node_weight(m, other, 0);
  CHECK(code({"users", 0, other}) == errc::conflict);
  m = *set_node_weight(m, other, 1);
  m = *set_node_state(m, owner, node_state::down);
  CHECK(code({"users", 0, other}) == errc::conflict);
}

TEST_CASE("queued migrations start by priority, then age, within each node's limits") {
  // Given one source with max_outgoing 2, when four moves wait, then the high one and the
  // oldest normal one start; the low one and the younger normal one wait.
  auto m = with_index(with_nodes(3), "users", 16);
  m.settings.max_outgoing = 2;
  m.settings.max_incoming = 10;
  const auto& ix = *m.find_index("users");
  std::vector<std::uint32_t> from0;
  for (const auto& sh : ix.shards)
    if (sh.owner == "node-0") from0.push_back(sh.id);
  REQUIRE(from0.size() >= 4);
  auto a = record("m1", "users", from0[0], "node-0", "node-1");
  a.priority = migration_priority::low;
  a.created_ms = 1;
  auto b = record("m2", "users", from0[1], "node-0", "node-1");
  b.created_ms = 2;
  auto c = record("m3", "users", from0[2], "node-0", "node-2");
  c.created_ms = 3;
  auto d = record("m10", "users", from0[3], "node-0", "node-2");
  d.priority = migration_priority::high;
  d.created_ms = 4;
  auto t = table({a, b, c, d});
  auto plan = plan_starts(m, t, {});
  CHECK(plan.start == std::vector<std::string>{"m10", "m2"});
  CHECK(plan.fail.empty());

  // A move being started holds its slot: only one more starts.
  plan = plan_starts(m, t, {"m10"});
  CHECK(plan.start == std::vector<std::string>{"m2"});

  // A copying one holds a slot; a paused one never starts; a retiring one holds none.
  t["m10"].phase = migration_phase::copying;
  t["m2"].paused = true;
  t["m3"].phase = migration_phase::retiring;
  plan = plan_starts(m, t, {});
  CHECK(plan.start == std::vector<std::string>{"m1"});

  // The target's limit counts too.
  m.settings.max_incoming = 1;
  t["m3"].phase = migration_phase::copying;  // into node-2
  t["m1"].target = "node-2";
  CHECK(plan_starts(m, t, {}).start.empty());
}

TEST_CASE("a queued migration whose shard went, moved or whose target left fails; one whose nodes are down waits") {
  auto m = with_index(with_nodes(4), "users", 8);
  const auto& ix = *m.find_index("users");
  auto first_of = [&](const std::string& n) {
    for (const auto& sh : ix.shards)
      if (sh.owner == n) return sh.id;
    FAIL("no shard on " << n);
    return 0u;
  };
  const auto s0 = first_of("node-0");
  auto gone = record("m1", "users", 77, "node-0", "node-1");
  auto moved = record("m2", "users", s0, "node-3", "node-1");
  auto left = record("m3", "users", s0, "node-0", "node-2");
  auto wrong_index = record("m4", "users", s0, "node-0", "node-1");
  wrong_index.index_id = 42;  // an index of that name dropped and made again
  auto t = table({gone, moved, left, wrong_index});
  auto l = set_node_state(m, "node-2", node_state::left);
  REQUIRE(l);
  auto plan = plan_starts(*l, t, {});
  std::map<std::string, std::string> why(plan.fail.begin(), plan.fail.end());
  CHECK(why["m1"] == "the shard no longer exists");
  CHECK(why["m2"] == "the shard moved meanwhile");
  CHECK(why["m3"] == "the target left the cluster");
  CHECK(why["m4"] == "the shard no longer exists");
  CHECK(plan.start.empty());

  auto waiting = table({record("m5", "users", s0, "node-0", "node-1")});
  auto down = set_node_state(m, "node-1", node_state::down);
  REQUIRE(down);
  auto p2 = plan_starts(*down, waiting, {});
  CHECK(p2.start.empty());
  CHECK(p2.fail.empty());
  auto source_down = set_node_state(m, "node-0", node_state::down);
  CHECK(plan_starts(*source_down, waiting, {}).start.empty());
  auto source_draining = set_node_state(m, "node-0", node_state::draining);
  CHECK(plan_starts(*source_draining, waiting, {}).start == std::vector<std::string>{"m5"});
}

TEST_CASE("finished migration records are pruned by age and by count; open ones never") {
  using P = migration_phase;
  migration_table t;
  for (int i = 1; i <= 6; ++i) {
    auto r = record("m" + std::to_string(i), "users", i, "a", "b", i <= 4 ? P::done : P::copying);
    r.updated_ms = 1000 * i;
    if (i == 1) r.phase = P::rolled_back;
    if (i == 6) r.phase = P::queued;
    t[r.id] = r;
  }
  t["m5"].updated_ms = 0;  // open and old: kept
  CHECK(prunable_migrations(t, 5000, 100000, 10).empty());
  // Older than 2.5 s at t = 5 s: m1 (1 s) and m2 (2 s).
  CHECK(prunable_migrations(t, 5000, 2500, 10) == std::vector<std::string>{"m1", "m2"});
  // Keep the newest two finished ones: m3, m4.
  CHECK(prunable_migrations(t, 5000, 100000, 2) == std::vector<std::string>{"m1", "m2"});
  CHECK(prunable_migrations(t, 5000, 100000, 0) == std::vector<std::string>{"m1", "m2", "m3", "m4"});
  // A clock that went back prunes nothing by age.
  CHECK(prunable_migrations(t, 10, 0, 10).empty());
}

// --- liveness --------------------------------------------------------------------------------

TEST_CASE("members whose lease ran out go down; new ones get a lease; the controller and non-up ones are left alone") {
  auto m = with_nodes(5);
  m = *set_node_state(m, "node-4", node_state::draining);
  lease_table leases{{"node-0", 0}, {"node-1", 9000}, {"node-2", 5000}, {"node-4", 0}};
  auto p = plan_liveness(m, leases, 10000, 3000, "node-0");
  CHECK(p.down == std::vector<std::string>{"node-2"});
  CHECK(p.new_lease == std::vector<std::string>{"node-3"});
  // Exactly at the limit is still alive.
  CHECK(plan_liveness(m, leases, 8000, 3000, "node-0").down.empty());

  auto d = mark_down(m, {"node-1", "node-2"});
  REQUIRE(d);
  CHECK(d->version == m.version + 1);
  CHECK(d->find_node("node-1")->state == node_state::down);
  CHECK(d->find_node("node-2")->state == node_state::down);
  CHECK_FALSE(mark_down(m, {}));
  CHECK_FALSE(mark_down(m, {"node-9"}));
}

// --- storage layout --------------------------------------------------------------------------

TEST_CASE("a node's layout plan follows its shards through create, import, move, split, abort and drop") {
  auto m0 = with_nodes(2);
  auto m1 = with_index(m0, "users", 4);
  const auto& ix = *m1.find_index("users");
  std::vector<std::uint32_t> on1;
  for (const auto& sh : ix.shards)
    if (sh.owner == "node-1") on1.push_back(sh.id);
  REQUIRE(!on1.empty());

  // Created: node-1 adds a slot for each of its shards, nothing else.
  auto p = plan_layout(m0, m1, "node-1");
  CHECK(p.add.size() == on1.size());
  CHECK(p.drop_indexes.empty());
  CHECK(p.drop_ranges.empty());
  CHECK(local_ranges(m1, "node-1").size() == on1.size());

  // node-0 imports one of node-1's shards: a slot plus a drop of whatever it held there.
  const auto s = on1[0];
  auto m2 = *begin_migration(m1, "users", s, "node-0");
  p = plan_layout(m1, m2, "node-0");
  REQUIRE(p.add.size() == 1);
  CHECK(p.add[0].shard_id == s);
  REQUIRE(p.drop_ranges.size() == 1);
  CHECK(p.drop_ranges[0] == shard_storage_range(ix, *ix.find_shard(s)));
  CHECK(plan_layout(m1, m2, "node-1") == layout_plan{});  // the source changes nothing yet
  CHECK(local_ranges(m2, "node-0").size() == local_ranges(m1, "node-0").size() + 1);
  CHECK(local_ranges(m2, "node-0", true).size() == local_ranges(m1, "node-0").size());

  // A shard given to a node without a move (its down owner removed by force) starts empty
  // there: the node drops whatever it held in that range.
  {
    auto down = *set_node_state(m1, "node-1", node_state::down);
    auto removed = remove_node(down, "node-1", true);
    REQUIRE(removed);
    p = plan_layout(down, removed->map, "node-0");
    CHECK(p.add.size() == on1.size());
    CHECK(p.drop_ranges.size() == on1.size());
  }

  // Aborted: the target drops the slot and the data.
  auto aborted = *abort_migration(m2, "users", s);
  p = plan_layout(m2, aborted, "node-0");
  CHECK(p.remove == std::vector<std::pair<std::uint32_t, std::uint32_t>>{{ix.id, s}});
  CHECK(p.drop_ranges.size() == 1);

  // Committed: the source drops the slot and keeps the data (the undo window); the target
  // changes nothing.
  auto m3 = *commit_migration(m2, "users", s);
  p = plan_layout(m2, m3, "node-1");
  CHECK(p.remove == std::vector<std::pair<std::uint32_t, std::uint32_t>>{{ix.id, s}});
  CHECK(p.drop_ranges.empty());
  CHECK(plan_layout(m2, m3, "node-0") == layout_plan{});

  // Split of a node-0 shard: a store split, not a new empty shard.
  auto m4 = *split_shard(m3, "users", s, std::nullopt);
  p = plan_layout(m3, m4, "node-0");
  REQUIRE(p.splits.size() == 1);
  CHECK(p.splits[0].shard_id == s);
  CHECK(p.splits[0].new_shard_id == ix.next_shard_id);
  CHECK(p.add.empty());
  CHECK(plan_layout(m3, m4, "node-1") == layout_plan{});

  // Dropped: every node drops the index's data; one made again with the same name is new.
  auto m5 = *drop_index(m4, "users");
  p = plan_layout(m4, m5, "node-1");
  CHECK(p.drop_indexes == std::vector<std::uint32_t>{ix.id});
  auto m6 = with_index(m5, "users", 2);
  p = plan_layout(m4, m6, "node-0");
  CHECK(p.drop_indexes == std::vector<std::uint32_t>{ix.id});
  for (const auto& a : p.add) CHECK(a.index_id == m6.find_index("users")->id);
}

TEST_CASE("a target takes import data only for a shard moving to it, from its source, inside its range") {
  auto m0 = with_index(with_nodes(3), "users", 4);
  const auto& ix0 = *m0.find_index("users");
  const auto& s0 = ix0.shards[0];
  const std::string source = s0.owner;
  const std::string target = source == "node-1" ? "node-2" : "node-1";
  const std::string other = source != "node-0" && target != "node-0" ? "node-0" : "node-2";
  // Not moving yet: unavailable, which the source retries.
  auto before = check_import(m0, target, source, ix0.id, s0.id);
  REQUIRE(!before);
  CHECK(before.error().code == errc::unavailable);

  auto m1 = *begin_migration(m0, "users", s0.id, target);
  const auto& ix = *m1.find_index("users");
  const auto& s = *ix.find_shard(s0.id);
  auto g = check_import(m1, target, source, ix.id, s.id);
  REQUIRE(g);
  CHECK(g->source == source);
  CHECK(g->range == shard_storage_range(ix, s));
  // Another member may not send it; the source may not send it to a node that is not the target.
  auto wrong_sender = check_import(m1, target, other, ix.id, s.id);
  REQUIRE(!wrong_sender);
  CHECK(wrong_sender.error().code == errc::forbidden);
  CHECK(check_import(m1, other, source, ix.id, s.id).error().code == errc::unavailable);
  // Unknown index or shard.
  CHECK(check_import(m1, target, source, ix.id + 7, s.id).error().code == errc::unavailable);
  CHECK(check_import(m1, target, source, ix.id, 999).error().code == errc::unavailable);

  // By key: a key of the moving shard finds it; a key of another shard or index, or one too
  // short to hold a token, does not.
  const auto in_range = g->range.begin + std::string("\x01k", 2);
  auto by_key = check_import_key(m1, target, source, in_range);
  REQUIRE(by_key);
  CHECK(*by_key == *g);
  CHECK(check_import_key(m1, target, source, shard_storage_range(ix, ix.shards[1]).begin + "x").error().code ==
        errc::unavailable);
  CHECK(check_import_key(m1, target, source, std::string("\0\0", 2)).error().code == errc::unavailable);
  CHECK(check_import_key(m1, target, source, g->range.begin.substr(0, 6)).error().code == errc::unavailable);

  // Every key of a batch must be inside; a copy batch must also be strictly increasing.
  const std::string a = g->range.begin + "a", b = g->range.begin + "b";
  std::vector<std::string_view> ok{a, b}, unsorted{b, a}, repeated{a, a}, strays{a, g->range.end};
  CHECK(check_batch_keys(g->range, ok, true));
  CHECK(check_batch_keys(g->range, unsorted, false));
  CHECK(check_batch_keys(g->range, unsorted, true).error().code == errc::invalid_argument);
  CHECK(check_batch_keys(g->range, repeated, true).error().code == errc::invalid_argument);
  CHECK(check_batch_keys(g->range, strays, false).error().code == errc::forbidden);
}

TEST_CASE("a member that joins again keeps the weight and the draining state the controller holds") {
  const node_entry asked{"node-1", "127.0.0.1:10", "127.0.0.1:20", 1, node_state::up};
  // New: as asked.
  CHECK(joining_entry(nullptr, asked) == asked);
  // Known with weight 5 (PUT weight), draining: keeps both, takes the new addresses.
  const node_entry known{"node-1", "127.0.0.1:1", "127.0.0.1:2", 5, node_state::draining};
  const auto e = joining_entry(&known, asked);
  CHECK(e.weight == 5);
  CHECK(e.state == node_state::draining);
  CHECK(e.rest_address == "127.0.0.1:10");
  CHECK(e.peer_address == "127.0.0.1:20");
  // Down: up again.
  const node_entry down{"node-1", "127.0.0.1:1", "127.0.0.1:2", 3, node_state::down};
  CHECK(joining_entry(&down, asked).state == node_state::up);
  CHECK(joining_entry(&down, asked).weight == 3);
}

TEST_CASE("a restarted controller resends the start of a begun move and aborts a move no record holds") {
  auto m0 = with_index(with_nodes(3), "users", 4);
  const auto& ix = *m0.find_index("users");
  const auto s0 = ix.shards[0], s1 = ix.shards[1], s2 = ix.shards[2];
  const auto other = [](const std::string& n) { return n == "node-1" ? std::string("node-2") : std::string("node-1"); };
  auto m = *begin_migration(m0, "users", s0.id, other(s0.owner));
  m = *begin_migration(m, "users", s1.id, other(s1.owner));
  m = *begin_migration(m, "users", s2.id, other(s2.owner));
  auto queued = record("m1", "users", s0.id, s0.owner, other(s0.owner));
  queued.index_id = ix.id;
  auto copying = record("m2", "users", s1.id, s1.owner, other(s1.owner), migration_phase::copying);
  copying.index_id = ix.id;
  // s2 is migrating with no record (the record was never written): aborted. A final record of
  // s2 does not hold it.
  auto old = record("m3", "users", s2.id, s2.owner, other(s2.owner), migration_phase::rolled_back);
  old.index_id = ix.id;
  const auto plan = plan_reconcile(m, table({queued, copying, old}));
  CHECK(plan.resend_start == std::vector<std::string>{"m1"});
  REQUIRE(plan.abort.size() == 1);
  CHECK(plan.abort[0] == planned_move{"users", s2.id, other(s2.owner)});
  // Nothing migrating: nothing to do.
  CHECK(plan_reconcile(m0, table({queued, copying})) == reconcile_plan{});
}

TEST_CASE("the cluster is green when all is served and still, yellow while it changes, red when a shard's owner is down") {
  auto m = with_index(with_nodes(3), "a", 9);
  auto h = assess_health(m, 0, 0);
  CHECK(h.status == "green");
  CHECK(h.reasons.empty());

  h = assess_health(m, 2, 0);
  CHECK(h.status == "yellow");
  REQUIRE(h.reasons.size() == 1);
  CHECK(h.reasons[0] == "2 migrations are running");
  CHECK(assess_health(m, 0, 1).status == "yellow");

  auto draining = m;
  draining.nodes["node-1"].state = node_state::draining;
  CHECK(assess_health(draining, 0, 0).status == "yellow");

  // A down node that owns shards: red, with how many and where.
  auto down = m;
  down.nodes["node-2"].state = node_state::down;
  std::size_t owned = 0;
  for (const auto& s : down.indexes.at("a").shards) owned += s.owner == "node-2";
  REQUIRE(owned > 0);
  h = assess_health(down, 1, 0);
  CHECK(h.status == "red");
  REQUIRE(h.reasons.size() == 2);
  CHECK(h.reasons[0] == std::to_string(owned) + (owned == 1 ? " shard is" : " shards are") + " on node 'node-2', which is down");

  // A down node that owns nothing: the data is all served, but the cluster is not whole.
  auto idle = add_node(m, "node-9");
  idle.nodes["node-9"].state = node_state::down;
  h = assess_health(idle, 0, 0);
  CHECK(h.status == "yellow");
  CHECK(h.reasons == std::vector<std::string>{"node 'node-9' is down"});
}

TEST_CASE("a map change is described line by line for the event journal, nodes that changed state listed apart") {
  const auto m0 = with_index(with_nodes(2), "demo", 4);
  CHECK(describe_change(m0, m0).lines.empty());
  // A node joins, another goes down, an index is created, a shard starts moving, a setting changes.
  auto m1 = add_node(m0, "node-9", 2);
  auto down = set_node_state(m1, "node-1", node_state::down);
  REQUIRE(down);
  m1 = with_index(*down, "logs", 2);
  const auto& s0 = m1.indexes.at("demo").shards[0];
  auto moving = begin_migration(m1, "demo", s0.id, s0.owner == "node-0" ? "node-9" : "node-0");
  REQUIRE(moving);
  cluster_settings st = moving->settings;
  st.max_outgoing = 5;
  auto m2 = set_settings(*moving, st);
  REQUIRE(m2);
  const auto d = describe_change(m0, *m2);
  auto has = [&](const std::string& text) {
    for (const auto& l : d.lines)
      if (l.find(text) != std::string::npos) return true;
    return false;
  };
  INFO([&] { std::string all; for (const auto& l : d.lines) all += l + "\n"; return all; }());
  CHECK(has("node node-9 joined (up, weight 2)"));
  CHECK(has("node node-1: up -> down"));
  CHECK(has("index logs created (hash, 2 shards)"));
  CHECK(has("shard demo/" + std::to_string(s0.id) + ": active -> migrating (target "));
  CHECK(has("setting max_outgoing: 2 -> 5"));
  REQUIRE(d.nodes.size() == 2);
  CHECK(d.nodes[0] == std::array<std::string, 3>{"node-1", "up", "down"});
  CHECK(d.nodes[1] == std::array<std::string, 3>{"node-9", "", "up"});
  // Dropping an index and a bound on the lines.
  auto dropped = drop_index(*m2, "demo");
  REQUIRE(dropped);
  CHECK(describe_change(*m2, *dropped).lines == std::vector<std::string>{"index demo dropped"});
  const auto big = with_index(m0, "big", 64);
  const auto capped = describe_change(big, with_index(big, "big2", 8), 0);
  CHECK(capped.lines == std::vector<std::string>{"... and 1 more"});
}

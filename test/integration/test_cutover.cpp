// The cutover under faults: a move's commit and its aftermath when answers are lost and nodes
// die at the worst moment. Real processes, loopback, real mutual TLS; every case ends with a
// full count and content check of what was acknowledged.

#include "support/catch_result.hpp"
#include "support/cluster.hpp"
#include "support/json_body.hpp"
#include "support/migration_ops.hpp"

#include <thread>

using namespace shardd;
using namespace shardd::test;

namespace {

std::uint64_t version_on(shardd_process& n) {
  return static_cast<std::uint64_t>(body(n.client()->get("/v1/partition-map")).at("version").as_int64());
}

/// Waits until `n` holds the controller's map version (a node whose maps arrive late).
void wait_in_sync(cluster& cl, shardd_process& n) {
  const auto want = version_on(cl.node(1));
  for (int i = 0; i < 200 && version_on(n) < want; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(version_on(n) >= want);
}

}  // namespace

TEST_CASE("a commit whose answers are all lost is settled by asking the controller: the move commits, nothing rolls back") {
  cluster cl(3, {{2, {{"SHARDD_TEST_FAULTS", "lose_commit_answer=100"}}}});
  auto c1 = cl.node(1).client();
  std::map<std::string, std::int64_t> expected;
  const auto [shard, routing] = index_with_loaded_shard(*c1, "x", 6, "node-2", 3000, 100, expected);
  writer w(cl.node(1).client(), "x", "w", routing);
  const auto id = start_migration(*c1, "x", shard, "node-3");
  auto m = wait_migration(*c1, id, finished, std::chrono::seconds(90));
  w.finish(expected);
  CHECK(phase(m) == "done");
  CHECK(owners(*c1, "x")[shard] == "node-3");
  const auto log2 = cl.node(2).log();
  CHECK(log2.find("fault=lose_commit_answer") != std::string::npos);
  CHECK(log2.find("event=migration_rolled_back") == std::string::npos);
  CHECK(w.acked.size() > 0);
  verify(*c1, "x", expected);
}

TEST_CASE("the source killed right after the commit, before it has the new map, takes no write for the shard after its restart") {
  // node-2 installs the controller's maps 2 s late, so when it dies right after the commit is
  // answered, the map on its disk still says it owns the shard. Restarted with maps 4 s late,
  // it must not take writes for the shard on the strength of that map: it fences the range,
  // fetches the controller's map, and forwards to the new owner.
  cluster cl(3, {{2, {{"SHARDD_TEST_FAULTS", "kill_after_commit=1,map_delay_ms=2000"}}}});
  auto c1 = cl.node(1).client();
  REQUIRE(c1->put("/v1/indexes/y", R"({"shards":6})").status == 201);
  wait_in_sync(cl, cl.node(2));
  const auto shard = shard_on(*c1, "y", "node-2");
  const auto routing = routing_for(*c1, "y", shard);
  std::map<std::string, std::int64_t> expected;
  load(*c1, "y", "k", 3000, routing, 100, expected);
  const auto id = start_migration(*c1, "y", shard, "node-3");
  // The controller commits; node-2 dies on the answer.
  wait_migration(*c1, id, [](const json::object& m) { return phase(m) == "retiring" || finished(m); }, std::chrono::seconds(90));
  for (int i = 0; i < 100; ++i) {
    if (cl.node(2).log().find("fault=kill_after_commit") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(cl.node(2).log().find("fault=kill_after_commit") != std::string::npos);
  cl.node(2).kill9();  // reaps it
  cl.node(2).set_env({{"SHARDD_TEST_FAULTS", "map_delay_ms=4000"}});
  cl.node(2).start();
  // Writes through node-2 from the moment it serves again.
  {
    writer w(cl.node(2).client(), "y", "w", routing);
    std::this_thread::sleep_for(std::chrono::seconds(3));
    w.finish(expected);
    CHECK(w.acked.size() > 0);
  }
  CHECK(cl.node(2).log().find("event=migration_fenced_until_map") != std::string::npos);
  auto m = wait_migration(*c1, id, finished, std::chrono::seconds(60));
  CHECK(phase(m) == "done");
  CHECK(owners(*c1, "y")[shard] == "node-3");
  // Every write node-2 acknowledged is on the new owner, with its last value.
  verify(*cl.node(3).client(), "y", expected);
}

TEST_CASE("a scan on the old owner after the commit, before it has the new map, sees the new owner's writes") {
  // node-2 installs pushed maps 5 s late: after the commit its fence holds until it fetches
  // the map itself (a second). A record written on the new owner meanwhile must be in a scan
  // through node-2.
  cluster cl(3, {{2, {{"SHARDD_TEST_FAULTS", "map_delay_ms=5000"}}}});
  auto c1 = cl.node(1).client();
  REQUIRE(c1->put("/v1/indexes/z", R"({"shards":6})").status == 201);
  wait_in_sync(cl, cl.node(2));
  std::map<std::string, std::int64_t> expected;
  const auto shard = shard_on(*c1, "z", "node-2");
  const auto routing = routing_for(*c1, "z", shard);
  load(*c1, "z", "k", 2000, routing, 100, expected);
  const auto id = start_migration(*c1, "z", shard, "node-3");
  wait_migration(*c1, id, [](const json::object& m) { return phase(m) == "retiring" || finished(m); }, std::chrono::seconds(90));
  auto c3 = cl.node(3).client();
  REQUIRE(c3->put("/v1/indexes/z/records/after-commit?routing=" + routing, R"({"n":42})").status == 201);
  expected["after-commit"] = 42;
  const auto through2 = scan_all(*cl.node(2).client(), "z");
  CHECK(through2.count("after-commit") == 1);
  CHECK(through2.size() == expected.size());
  CHECK(phase(wait_migration(*c1, id, finished, std::chrono::seconds(60))) == "done");
}

TEST_CASE("a scan through the source cut off from the controller in its cutover waits for the new map, not a conflict") {
  // node-2 (the source) loses peer traffic with the controller for 4 s right after its commit:
  // it is fenced and has no map that settles the shard. A scan through it must wait for that
  // map (5 s at most) and read the shard at its new owner, or ask to be retried (503): a 409
  // says the request itself was wrong, and this one was not. One shard, so the scan meets
  // only the fenced one (node-1's shards would answer 503 while it is cut off).
  cluster cl(3, {{2, {{"SHARDD_TEST_FAULTS", "partition_after_commit=4000"}}}});
  auto c1 = cl.node(1).client();
  REQUIRE(c1->put("/v1/indexes/f", R"({"shards":1})").status == 201);
  wait_in_sync(cl, cl.node(2));
  if (owners(*c1, "f")[0] != "node-2")  // node-2 as the target: no commit of its own, no fault
    REQUIRE(phase(wait_migration(*c1, start_migration(*c1, "f", 0, "node-2"), finished, std::chrono::seconds(60))) == "done");
  std::map<std::string, std::int64_t> expected;
  load(*c1, "f", "k", 2000, routing_for(*c1, "f", 0), 100, expected);
  const auto id = start_migration(*c1, "f", 0, "node-3");
  for (int i = 0; i < 1800 && cl.node(2).log().find("fault=partition_after_commit") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(cl.node(2).log().find("fault=partition_after_commit") != std::string::npos);
  auto c2 = cl.node(2).client();
  const auto first = c2->get("/v1/indexes/f/records?limit=5000");
  INFO(first.body.substr(0, 500));
  CHECK((first.status == 200 || first.status == 503));
  if (first.status == 200) CHECK(json::parse(first.body).at("count").as_int64() == static_cast<std::int64_t>(expected.size()));
  CHECK(scan_all(*c2, "f").size() == expected.size());
  CHECK(phase(wait_migration(*c1, id, finished, std::chrono::seconds(60))) == "done");
}

TEST_CASE("a controller killed between beginning a move in the map and recording it finishes the move after its restart") {
  cluster cl(3, {{1, {{"SHARDD_TEST_FAULTS", "kill_after_begin=1"}}}});
  auto c1 = cl.node(1).client();
  std::map<std::string, std::int64_t> expected;
  const auto shard = index_with_loaded_shard(*c1, "b", 6, "node-2", 2000, 100, expected).shard;
  // The controller dies inside the request (after the map change, before the answer).
  CHECK_THROWS(c1->post("/v1/shards/b/" + std::to_string(shard) + "/migrate", R"({"target":"node-3"})"));
  for (int i = 0; i < 100 && cl.node(1).log().find("fault=kill_after_begin") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  cl.node(1).kill9();
  cl.node(1).set_env({});
  cl.node(1).start();
  c1 = cl.node(1).client();
  auto m = wait_migration(*c1, "m1", finished, std::chrono::seconds(60));
  CHECK(phase(m) == "done");
  CHECK(owners(*c1, "b")[shard] == "node-3");
  CHECK(cl.node(1).log().find("event=migration_start_resent") != std::string::npos);
  verify(*c1, "b", expected);
}

TEST_CASE("the source cut off from the controller right after the commit keeps its fence until the network heals") {
  // Given: node-2 (the source) loses all peer traffic with the controller for 4 s the moment
  // its commit is answered, so the new map cannot reach it by push, heartbeat or fetch.
  // Expected: it acknowledges no write for the shard in that time (its fence holds until it
  // has a map without itself as owner), nothing rolls back, and every write it or another
  // node acknowledged reads back from the new owner; reads never go back in time.
  cluster cl(3, {{2, {{"SHARDD_TEST_FAULTS", "partition_after_commit=4000"}}}});
  auto c1 = cl.node(1).client();
  std::map<std::string, std::int64_t> expected;
  const auto [shard, routing] = index_with_loaded_shard(*c1, "p", 9, "node-2", 3000, 100, expected);
  std::map<std::string, std::int64_t> acked;
  std::map<std::string, std::set<std::int64_t>> unknown;
  json::object m;
  {
    writer through_source(cl.node(2).client(), "p", "s", routing);
    writer through_controller(cl.node(1).client(), "p", "c", routing);
    clock_check clock(cl.node(2).client(), cl.node(3).client(), "p", routing);
    const auto id = start_migration(*c1, "p", shard, "node-3");
    m = wait_migration(*c1, id, finished, std::chrono::seconds(90));
    // The source installs the new map only once the partition is over: its fence lasts that long.
    for (int i = 0; i < 200 && cl.node(2).log().find("event=migration_committed") == std::string::npos; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // writes through node-2 after it knows
    through_source.finish(acked);
    through_controller.finish(acked);
    clock.finish(acked, unknown);
    for (auto* w : {&through_source, &through_controller})
      for (const auto& [k, v] : w->failed) unknown[k].insert(v.begin(), v.end());
    CHECK(clock.regressions == 0);
    CHECK(through_source.acked.size() > 0);
  }
  CHECK(phase(m) == "done");
  // (node-2 missed its heartbeats meanwhile: once back, the rebalancer may hand it a shard again,
  // this one included, so the owner now is not checked.)
  const auto log2 = cl.node(2).log();
  CHECK(log2.find("fault=partition_after_commit") != std::string::npos);
  CHECK(log2.find("event=fault_healed") != std::string::npos);
  CHECK(log2.find("event=migration_rolled_back") == std::string::npos);
  // The fence on node-2 held through the partition (the source's own record of it).
  const auto committed = log2.find("event=migration_committed");
  REQUIRE(committed != std::string::npos);
  const auto fence_at = log2.find("fence_ms=", committed);
  REQUIRE(fence_at != std::string::npos);
  CHECK(std::stol(log2.substr(fence_at + 9)) >= 3500);
  for (const auto& [k, v] : acked) expected[k] = v;
  verify_allowing(*cl.node(3).client(), "p", expected, unknown);
}

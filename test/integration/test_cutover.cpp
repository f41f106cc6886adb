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

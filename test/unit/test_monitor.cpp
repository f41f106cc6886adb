// The monitor without sockets: the per-shard counter registry, windows over sampled history,
// and the REST views of them (/v1/stats, /metrics) through rest_api.

#include "node/monitor.hpp"
#include "node/shard_load.hpp"
#include "shardd/cluster_plan.hpp"
#include "shardd/placement.hpp"
#include "support/api_fixture.hpp"
#include "support/catch_result.hpp"

#include <boost/json/parse.hpp>

#include <catch2/catch.hpp>

#include <thread>

using namespace shardd;
namespace json = boost::json;
using test::api_fixture;

namespace {

partition_map two_nodes_one_index() {
  partition_map m;
  m.cluster_id = "t";
  for (const char* id : {"n1", "n2"}) {
    auto next = upsert_node(m, node_entry{id, "127.0.0.1:1", "127.0.0.1:2", 1, node_state::up});
    REQUIRE(next);
    m = *next;
  }
  m.controller = "n1";
  auto r = create_index(m, "a", {partitioning::hash, 8, {}}, build_ring(m), 0.1);
  REQUIRE(r);
  return *r;
}

json::value get_json(api_fixture& f, const std::string& target) {
  auto r = f.get(target);
  INFO(target << " -> " << r.status << " " << r.body);
  REQUIRE(r.status == 200);
  return json::parse(r.body);
}

}  // namespace

TEST_CASE("the counter registry gives a table of this node's shards and carries their counts across map versions") {
  auto m = two_nodes_one_index();
  load_registry reg("n1");
  auto t1 = reg.table_for(m);
  const auto& ix = m.indexes.at("a");
  std::vector<std::uint32_t> mine, theirs;
  for (const auto& s : ix.shards) (s.owner == "n1" ? mine : theirs).push_back(s.id);
  REQUIRE(mine.size() >= 2);
  REQUIRE(!theirs.empty());
  CHECK(t1->all().size() == mine.size());
  for (auto id : theirs) CHECK(t1->find(ix.id, id) == nullptr);
  auto* kept = t1->find(ix.id, mine[0]);
  auto* moved = t1->find(ix.id, mine[1]);
  REQUIRE(kept);
  REQUIRE(moved);
  kept->add(kept->reads, 7);
  moved->add(moved->writes, 3);
  CHECK(t1->find(ix.id + 1, mine[0]) == nullptr);

  // The next map moves one shard away: the one that stays keeps its counts, the one that
  // left is gone from the new table but stays readable through the old one.
  auto m2 = m;
  m2.version += 1;
  for (auto& s : m2.indexes.at("a").shards)
    if (s.id == mine[1]) s.owner = "n2";
  auto t2 = reg.table_for(m2);
  CHECK(t2->all().size() == mine.size() - 1);
  REQUIRE(t2->find(ix.id, mine[0]) == kept);
  CHECK(kept->reads.load() == 7);
  CHECK(t2->find(ix.id, mine[1]) == nullptr);
  CHECK(t1->find(ix.id, mine[1])->writes.load() == 3);
  // It comes back: fresh counts.
  auto t3 = reg.table_for(m);
  REQUIRE(t3->find(ix.id, mine[1]));
  CHECK(t3->find(ix.id, mine[1])->writes.load() == 0);
}

TEST_CASE("a window is a number with a unit") {
  CHECK(parse_window("5m").value() == std::chrono::minutes(5));
  CHECK(parse_window("90s").value() == std::chrono::seconds(90));
  CHECK(parse_window("90").value() == std::chrono::seconds(90));
  CHECK(parse_window("250ms").value() == std::chrono::milliseconds(250));
  CHECK(parse_window("2h").value() == std::chrono::hours(2));
  for (const char* bad : {"", "m", "0s", "-5m", "5 m", "5d", "1.5h", "5mm", "99999999999s"}) {
    INFO(bad);
    CHECK_FALSE(parse_window(bad));
  }
}

TEST_CASE("writes and reads through the API show in the window of their shard, with latencies, and in /metrics") {
  api_fixture f(100);
  REQUIRE(f.put("/v1/indexes/w", R"({"shards":2})").status == 201);
  for (int i = 0; i < 30; ++i) REQUIRE(f.put("/v1/indexes/w/records/k" + std::to_string(i), R"({"n":1})").status == 201);
  for (int i = 0; i < 30; ++i) REQUIRE(f.get("/v1/indexes/w/records/k" + std::to_string(i)).status == 200);
  REQUIRE(f.get("/v1/indexes/w/records/missing").status == 404);
  REQUIRE(f.call(net::http_method::delete_, "/v1/indexes/w/records/k0").status == 200);
  REQUIRE(f.get("/v1/indexes/w/records?limit=5").status == 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(350));  // a few samples

  auto v = get_json(f, "/v1/stats?window=1h");
  std::int64_t reads = 0, writes = 0, deletes = 0, scans = 0, scanned = 0, latency_reads = 0;
  for (const auto& s : v.at("shards").as_array()) {
    CHECK(s.at("index") == "w");
    reads += s.at("reads").as_int64();
    writes += s.at("writes").as_int64();
    deletes += s.at("deletes").as_int64();
    scans += s.at("scans").as_int64();
    scanned += s.at("scanned").as_int64();
    if (const auto* r = s.at("latency_us").as_object().if_contains("read")) latency_reads += r->at("count").as_int64();
  }
  CHECK(reads == 31);  // a miss is a read too
  CHECK(writes == 30);
  CHECK(deletes == 1);
  CHECK(scans >= 1);
  CHECK(scanned == 5);
  CHECK(latency_reads == 31);
  CHECK(v.at("totals").at("latency_us").at("write").at("count").as_int64() == 30);
  CHECK(v.at("totals").at("requests").as_int64() >= 63);

  // A window shorter than what passed since the load holds none of it.
  std::this_thread::sleep_for(std::chrono::milliseconds(450));
  auto recent = get_json(f, "/v1/stats?window=100ms");
  for (const auto& s : recent.at("shards").as_array()) CHECK(s.at("writes").as_int64() == 0);
  CHECK(recent.at("window_seconds").to_number<double>() < 0.5);

  auto text = f.get("/v1/stats?format=text");
  REQUIRE(text.status == 200);
  CHECK(text.body.rfind("node ", 0) == 0);
  CHECK(text.body.find("\nn1 ") != std::string::npos);

  auto metrics = f.get("/metrics");
  REQUIRE(metrics.status == 200);
  CHECK(metrics.body.find("# TYPE shardd_shard_writes_total counter") != std::string::npos);
  CHECK(metrics.body.find("shardd_shard_request_duration_seconds_count{index=\"w\"") != std::string::npos);
  CHECK(metrics.body.find("shardd_shard_request_duration_seconds_bucket{index=\"w\"") != std::string::npos);
}

TEST_CASE("with the monitor off, requests are not counted per shard; on again, counting resumes") {
  api_fixture f(100);
  REQUIRE(f.put("/v1/indexes/o", R"({"shards":1})").status == 201);
  REQUIRE(f.put("/v1/monitor/settings", R"({"interval_ms":0})").status == 200);
  for (int i = 0; i < 10; ++i) REQUIRE(f.put("/v1/indexes/o/records/k" + std::to_string(i), "{}").status == 201);
  REQUIRE(f.put("/v1/monitor/settings", R"({"interval_ms":100})").status == 200);
  REQUIRE(f.put("/v1/indexes/o/records/after", "{}").status == 201);
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  auto v = get_json(f, "/v1/stats?window=1h");
  REQUIRE(v.at("shards").as_array().size() == 1);
  CHECK(v.at("shards").as_array()[0].at("writes").as_int64() == 1);
  CHECK(v.at("shards").as_array()[0].at("records").as_int64() == 11);  // the store's counts are exact regardless
}

// The rebalancer with real processes: plans, explain, apply with If-Match, settings, and the
// automatic mode converging a weight change under writes.

#include "support/catch_result.hpp"
#include "support/cluster.hpp"
#include "support/json_body.hpp"
#include "support/migration_ops.hpp"

#include <atomic>
#include <map>
#include <set>
#include <thread>

using namespace shardd;
using namespace shardd::test;
namespace json = boost::json;

namespace {

std::map<std::string, int> counts(net::https_client& c, const std::string& index) {
  std::map<std::string, int> out;
  for (const auto& [s, n] : owners(c, index)) ++out[n];
  return out;
}

/// Waits until no migration is queued or moving (and at least `min_done` have finished).
bool settle(net::https_client& c, std::size_t min_done, std::chrono::seconds limit = std::chrono::seconds(60)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const auto active = body(c.get("/v1/migrations?state=active")).at("migrations").as_array().size();
    const auto done = body(c.get("/v1/migrations?state=finished")).at("migrations").as_array().size();
    if (active == 0 && done >= min_done) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("plan-only: a weight of 3 gives a plan; a stale If-Match gets 412; applied, it converges and the next plan is empty") {
  cluster cl(3, {}, R"({"rebalance":{"mode":"plan-only"}})");
  auto c1 = cl.node(1).client();
  auto c2 = cl.node(2).client();
  REQUIRE(c1->put("/v1/indexes/r", R"({"shards":15})").status == 201);
  std::map<std::string, std::int64_t> expected;
  load(*c1, "r", "k", 3000, {}, 50, expected);

  // Settings: the bootstrap config's mode, a change through another node, and bad values.
  auto s = body(c1->get("/v1/rebalance/settings"));
  CHECK(s.at("mode") == "plan-only");
  CHECK(s.at("strategy") == "weighted");
  REQUIRE(c2->put("/v1/rebalance/settings", R"({"strategy":"shards","cooldown_ms":0})").status == 200);
  CHECK(body(c1->get("/v1/rebalance/settings")).at("strategy") == "shards");
  auto bad = c1->put("/v1/rebalance/settings", R"({"strategy":"random"})");
  CHECK(bad.status == 400);
  CHECK(bad.body.find("strategy") != std::string::npos);
  CHECK(c1->put("/v1/rebalance/settings", R"({"threshold":-1})").status == 400);
  CHECK(c1->put("/v1/rebalance/settings", R"({"mode":)").status == 400);
  CHECK(c1->put("/v1/rebalance/settings", R"({"speed":1})").status == 400);

  // A threshold no node passes: nothing to do, and the plan says why.
  REQUIRE(c1->put("/v1/rebalance/settings", R"({"threshold":5})").status == 200);
  auto quiet = body(c1->post("/v1/rebalance/plan", ""));
  CHECK(quiet.at("moves").as_array().empty());
  CHECK(quiet.at("triggered") == false);
  CHECK(std::string(quiet.at("summary").as_string()).find("within") != std::string::npos);
  REQUIRE(c1->put("/v1/rebalance/settings", R"({"threshold":0.1})").status == 200);

  REQUIRE(c1->put("/v1/cluster/nodes/node-3", R"({"weight":3})").status == 200);
  auto ex = c2->get("/v1/rebalance/explain?format=text");
  REQUIRE(ex.status == 200);
  CHECK(ex.body.find("node-3") != std::string::npos);
  CHECK(ex.body.find("ratio") != std::string::npos);

  auto with_body = c1->post("/v1/rebalance/plan", R"({"strategy":"bytes"})");  // settings go through PUT, not here
  CHECK(with_body.status == 400);
  CHECK(with_body.body.find("takes no body") != std::string::npos);
  auto pr = c2->post("/v1/rebalance/plan", "");
  REQUIRE(pr.status == 200);
  auto plan = body(pr);
  const std::string id(plan.at("id").as_string());
  const auto version = plan.at("map_version").as_int64();
  CHECK(pr.header("etag") == "\"" + std::to_string(version) + "\"");
  const auto& moves = plan.at("moves").as_array();
  REQUIRE(moves.size() >= 3);
  for (const auto& mv : moves) CHECK(mv.at("target") == "node-3");
  CHECK(plan.at("max_ratio_after").to_number<double>() < plan.at("max_ratio_before").to_number<double>());

  // A stale If-Match, an unknown plan, a bad tag.
  auto stale = c1->request("POST", "/v1/rebalance/plans/" + id + "/apply", "", {{"If-Match", "\"" + std::to_string(version - 1) + "\""}});
  CHECK(stale.status == 412);
  CHECK(stale.body.find("POST /v1/rebalance/plan") != std::string::npos);
  CHECK(c1->post("/v1/rebalance/plans/p999/apply", "").status == 404);
  CHECK(c1->request("POST", "/v1/rebalance/plans/" + id + "/apply", "", {{"If-Match", "yesterday"}}).status == 400);

  // Applied through a node that is not the controller (If-Match relayed).
  auto ap = c2->request("POST", "/v1/rebalance/plans/" + id + "/apply", "", {{"If-Match", "\"" + std::to_string(version) + "\""}});
  INFO(ap.body);
  REQUIRE(ap.status == 202);
  auto applied = body(ap);
  const auto& started = applied.at("migrations").as_array();
  CHECK(started.size() == moves.size());
  const std::string first(started.at(0).at("id").as_string());
  CHECK(migration(*c1, first).at("plan").as_string() == id);
  CHECK(migration(*c1, first).at("reason") == "balance");
  // Applied once only.
  CHECK(c1->post("/v1/rebalance/plans/" + id + "/apply", "").status == 404);

  // Planning again at once: the moves in flight count as done.
  CHECK(body(c1->post("/v1/rebalance/plan", "")).at("moves").as_array().empty());
  REQUIRE(settle(*c1, moves.size()));
  auto n = counts(*c1, "r");
  CHECK(n["node-3"] == 9);  // 15 x 3/5
  CHECK(body(c1->post("/v1/rebalance/plan", "")).at("moves").as_array().empty());
  verify(*c1, "r", expected);

  // What-ifs, through another node: the same planner on a changed copy; the map stays.
  const auto map_now = body(c1->get("/v1/cluster")).at("map_version").as_int64();
  auto sim = c2->post("/v1/simulate", R"({"add":[{"id":"node-9","weight":2}]})");
  REQUIRE(sim.status == 200);
  auto what = body(sim);
  REQUIRE_FALSE(what.at("moves").as_array().empty());
  for (const auto& mv : what.at("moves").as_array()) CHECK(mv.at("target") == "node-9");
  CHECK(what.at("simulated").at("add").as_array().size() == 1);
  CHECK(what.at("unavailable_shards").as_int64() == 0);
  CHECK(what.at("eta_ms").is_int64());
  auto failing = body(c1->post("/v1/simulate", R"({"fail":["node-3"],"remove":["node-2"]})"));
  CHECK(failing.at("unavailable_shards").as_int64() == n["node-3"]);
  for (const auto& mv : failing.at("moves").as_array()) {
    CHECK(mv.at("source") == "node-2");  // node-2 drains; node-3's shards cannot move
    CHECK(mv.at("target") == "node-1");
  }
  CHECK(c1->post("/v1/simulate", R"({"remove":["node-7"]})").status == 400);
  CHECK(c1->post("/v1/simulate", R"({})").status == 400);
  CHECK(c1->post("/v1/simulate", R"({"add":)").status == 400);
  CHECK(body(c1->get("/v1/cluster")).at("map_version").as_int64() == map_now);
  CHECK(owners(*c1, "r").size() == 15);

  // The journal has the plans and the moves with their plan id.
  auto ev = body(c1->get("/v1/events?type=rebalance"));
  CHECK(ev.at("events").as_array().size() >= 3);
  bool tagged = false;
  auto migration_events = body(c1->get("/v1/events?type=migration&limit=1000"));
  for (const auto& e : migration_events.at("events").as_array())
    if (e.as_object().if_contains("plan")) tagged = true;
  CHECK(tagged);

  // Plan ids go on across a restart of the controller: no two plans share an id.
  const std::string before_restart(body(c1->post("/v1/rebalance/plan", "")).at("id").as_string());
  REQUIRE(cl.node(1).terminate() == 0);
  cl.node(1).start();
  auto c1b = cl.node(1).client();
  const std::string after_restart(body(c1b->post("/v1/rebalance/plan", "")).at("id").as_string());
  INFO(before_restart << " then " << after_restart);
  CHECK(std::stoll(after_restart.substr(1)) > std::stoll(before_restart.substr(1)));
}

TEST_CASE("auto: a weight change converges through the rebalancer with no operator action, no acknowledged write lost") {
  cluster cl(3, {}, R"({"cluster":{"heartbeat_interval_ms":200}})");
  auto c1 = cl.node(1).client();
  REQUIRE(c1->put("/v1/indexes/a", R"({"shards":16})").status == 201);
  std::map<std::string, std::int64_t> expected;
  load(*c1, "a", "k", 3000, {}, 50, expected);
  CHECK(body(c1->get("/v1/rebalance/settings")).at("mode") == "auto");  // the default
  REQUIRE(c1->put("/v1/rebalance/settings", R"({"strategy":"shards","interval_ms":300})").status == 200);
  writer w(cl.node(2).client(), "a", "w");
  REQUIRE(c1->put("/v1/cluster/nodes/node-2", R"({"weight":3})").status == 200);
  bool converged = false;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!converged && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const auto active = body(c1->get("/v1/migrations?state=active")).at("migrations").as_array().size();
    converged = active == 0 && counts(*c1, "a")["node-2"] >= 9;  // 16 x 3/5 = 9.6
  }
  w.finish(expected);
  REQUIRE(converged);
  // Every move was the rebalancer's.
  auto finished_moves = body(c1->get("/v1/migrations?state=finished"));
  for (const auto& m : finished_moves.at("migrations").as_array()) {
    CHECK(m.at("reason") == "balance");
    CHECK(m.at("phase") == "done");
  }
  verify(*c1, "a", expected);
}

namespace {

json::object node_of(net::https_client& c, const std::string& id) {
  auto cl = body(c.get("/v1/cluster"));
  for (const auto& n : cl.at("nodes").as_array())
    if (n.at("id").as_string() == id) return n.as_object();
  FAIL("no node " << id);
  return {};
}

/// Polls `f` until it is true or `limit` passes.
template <class F>
bool eventually(F f, std::chrono::seconds limit = std::chrono::seconds(15)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return f();
}

}  // namespace

TEST_CASE("disk watermarks: flood refuses writes with 507 naming the node, low keeps new shards away, high plans moves off") {
  // node-3's data disk is a 64 MiB quota; node-1 and node-2 measure their real file system.
  cluster cl(2, {}, R"({"cluster":{"heartbeat_interval_ms":200},"rebalance":{"mode":"plan-only"}})");
  cl.config = R"({"cluster":{"heartbeat_interval_ms":200},"storage":{"capacity_bytes":67108864}})";
  cl.add();
  auto c1 = cl.node(1).client();
  auto c3 = cl.node(3).client();
  REQUIRE(c1->put("/v1/indexes/w", R"({"shards":6})").status == 201);
  std::map<std::string, std::int64_t> expected;
  load(*c1, "w", "k", 300, {}, 50, expected);
  REQUIRE(eventually([&] { return node_of(*c1, "node-3").at("disk_total").is_int64(); }));
  auto n3 = node_of(*c1, "node-3");
  CHECK(n3.at("disk_total").as_int64() == 67108864);
  CHECK(n3.at("disk_level") == "ok");
  const auto free_of = [](const json::object& n) { return n.at("disk_total").as_int64() - n.at("disk_used").as_int64(); };
  for (const char* other : {"node-1", "node-2"})
    if (free_of(node_of(*c1, other)) < (1ll << 30)) {
      WARN("skipped: " << other << " has under 1 GiB free, so watermarks in bytes cannot single out node-3");
      return;
    }
  const std::int64_t shard = shard_on(*c1, "w", "node-3");
  const auto routing = routing_for(*c1, "w", shard);

  // Keep 512 MiB free (low), 384 (high), 256 (flood): node-3, under 64 MiB free, is past all.
  REQUIRE(c1->put("/v1/rebalance/settings", R"({"disk_watermarks":{"low":"512mb","high":"384mb","flood":"256mb"}})").status == 200);
  CHECK(body(c1->get("/v1/rebalance/settings")).at("disk_watermarks").at("flood") == "256mb");
  const std::string target = "/v1/indexes/w/records/new?routing=" + routing;
  net::client_response refused;
  REQUIRE(eventually([&] {
    refused = c1->put(target, R"({"n":1})");  // through node-1: node-3's answer is relayed
    return refused.status == 507;
  }));
  auto problem = body(refused);
  CHECK(std::string(problem.at("type").as_string()).find("insufficient-storage") != std::string::npos);
  const std::string detail(problem.at("detail").as_string());
  CHECK(detail.find("node node-3") != std::string::npos);
  CHECK(detail.find("flood watermark") != std::string::npos);
  CHECK(c3->put(target, R"({"n":1})").status == 507);
  // A bulk line for node-3's shard fails with 507; a delete there still works.
  auto bulk = body(c1->post("/v1/indexes/w/bulk", R"({"op":"put","key":"b1","routing":")" + routing + R"(","doc":{"n":1}})" + "\n"));
  REQUIRE(bulk.at("errors").as_array().size() == 1);
  CHECK(bulk.at("errors").as_array()[0].at("status").as_int64() == 507);
  std::string a_key;
  for (const auto& [k, v] : expected)
    if (body(c1->get("/v1/ring/lookup?index=w&key=" + k)).at("owner") == "node-3") a_key = k;
  REQUIRE_FALSE(a_key.empty());
  CHECK(c1->del("/v1/indexes/w/records/" + a_key).status == 200);
  expected.erase(a_key);
  // The cluster is red and says why; node-3 shows flood.
  REQUIRE(eventually([&] { return node_of(*c1, "node-3").at("disk_level") == "flood"; }));
  auto status = body(c1->get("/v1/cluster"));
  CHECK(status.at("status") == "red");
  CHECK(json::serialize(status.at("status_reasons")).find("node-3's data disk") != std::string::npos);
  CHECK(c1->get("/v1/cluster?format=text").body.find("flood") != std::string::npos);

  // Low: a new index puts nothing on node-3, and a move there is refused.
  REQUIRE(c1->put("/v1/indexes/x", R"({"shards":6})").status == 201);
  CHECK(counts(*c1, "x")["node-3"] == 0);
  auto to3 = c1->post("/v1/shards/x/0/migrate", R"({"target":"node-3"})");
  CHECK(to3.status == 409);
  CHECK(to3.body.find("watermark") != std::string::npos);

  // High: the plan moves shards off node-3 first, at high priority, and says why.
  auto plan = body(c1->post("/v1/rebalance/plan", ""));
  const auto& moves = plan.at("moves").as_array();
  REQUIRE_FALSE(moves.empty());
  CHECK(moves[0].at("reason") == "disk");
  CHECK(moves[0].at("source") == "node-3");
  CHECK(moves[0].at("priority") == "high");
  for (const auto& mv : moves) CHECK(mv.at("target") != "node-3");
  bool listed = false;
  for (const auto& n : plan.at("nodes").as_array())
    if (n.at("node") == "node-3") listed = n.at("disk_level") == "flood";
  CHECK(listed);

  // Room again (1 MiB to keep free): writes to node-3's shards are accepted again.
  REQUIRE(c1->put("/v1/rebalance/settings", R"({"disk_watermarks":{"low":"2mb","high":"1mb","flood":"1mb"}})").status == 200);
  REQUIRE(eventually([&] {
    const auto st = c1->put(target, R"({"n":2})").status;
    return st == 200 || st == 201;  // created, or updated (a first try may have landed before the flood)
  }));
  expected["new"] = 2;
  CHECK(eventually([&] { return body(c1->get("/v1/cluster")).at("status") == "green"; }));
  // Bad watermarks are refused naming the field.
  auto bad = c1->put("/v1/rebalance/settings", R"({"disk_watermarks":{"low":"95%","high":"90%"}})");
  CHECK(bad.status == 400);
  CHECK(bad.body.find("disk_watermarks") != std::string::npos);
  CHECK(c1->put("/v1/rebalance/settings", R"({"disk_watermarks":{"flood":"lots"}})").status == 400);
}

TEST_CASE("disk watermarks: the controller's own disk level changes go into the journal like a member's") {
  cluster cl(1, {}, R"({"cluster":{"heartbeat_interval_ms":200},"storage":{"capacity_bytes":67108864},
                       "rebalance":{"mode":"plan-only"}})");
  auto c1 = cl.node(1).client();
  REQUIRE(eventually([&] { return node_of(*c1, "node-1").at("disk_total").is_int64(); }));
  CHECK(c1->get("/v1/events?type=node").body.find("disk ok -> flood") == std::string::npos);
  // Keep 512 MiB free (low), 384 (high), 256 (flood): a 64 MiB quota is past all of them.
  REQUIRE(c1->put("/v1/rebalance/settings", R"({"disk_watermarks":{"low":"512mb","high":"384mb","flood":"256mb"}})").status == 200);
  REQUIRE(eventually([&] { return c1->get("/v1/events?type=node").body.find("node node-1: disk ok -> flood") != std::string::npos; }));
  REQUIRE(c1->put("/v1/rebalance/settings", R"({"disk_watermarks":{"low":"2mb","high":"1mb","flood":"1mb"}})").status == 200);
  CHECK(eventually([&] { return c1->get("/v1/events?type=node").body.find("node node-1: disk flood -> ok") != std::string::npos; }));
}

TEST_CASE("auto, load strategy: writes piled onto one node's shards are spread with no operator action, no acknowledged write lost") {
  cluster cl(3, {}, R"({"cluster":{"heartbeat_interval_ms":200},"monitor":{"interval_ms":500},
                       "rebalance":{"mode":"plan-only","strategy":"load","threshold":0.25,"interval_ms":1000}})");
  auto c1 = cl.node(1).client();
  REQUIRE(c1->put("/v1/indexes/h", R"({"shards":12})").status == 201);
  // Six hot shards: every shard of node-1 first, then others, so node-1 carries most of the load.
  auto own = owners(*c1, "h");
  std::vector<std::int64_t> hot;
  for (const auto& [s, n] : own)
    if (n == "node-1" && hot.size() < 6) hot.push_back(s);
  for (const auto& [s, n] : own)
    if (n != "node-1" && hot.size() < 6) hot.push_back(s);
  REQUIRE(hot.size() == 6);
  auto hot_on = [&](const std::string& node) {
    int k = 0;
    const auto now = owners(*c1, "h");
    for (auto s : hot) k += now.at(s) == node;
    return k;
  };
  INFO("hot shards on node-1 at the start: " << hot_on("node-1"));
  REQUIRE(hot_on("node-1") >= 3);
  // Paced writers: 40 writes/s on each hot shard wherever it lives (an unpaced writer's rate
  // depends on whether its node forwards, so the load would change with every move).
  std::vector<std::unique_ptr<writer>> writers;
  for (std::size_t i = 0; i < hot.size(); ++i)
    writers.push_back(std::make_unique<writer>(cl.node(1 + static_cast<int>(i % 3)).client(), "h", "w" + std::to_string(i) + "-",
                                               routing_for(*c1, "h", hot[i]), std::chrono::milliseconds(25)));
  // Once the monitor has seen the load, the planner sees node-1 far above its share.
  bool seen = false;
  for (int i = 0; i < 50 && !seen; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    seen = body(c1->get("/v1/rebalance/explain")).at("triggered").as_bool();
  }
  REQUIRE(seen);
  REQUIRE(c1->put("/v1/rebalance/settings", R"({"mode":"auto"})").status == 200);
  bool spread = false;
  std::string last_explain;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (!spread && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const auto active = body(c1->get("/v1/migrations?state=active")).at("migrations").as_array().size();
    // Spread: node-1 keeps at most its third, every node carries some, and the planner sees
    // every node's load within the threshold (the writers' rates differ, so the hot shards
    // need not split exactly 2 / 2 / 2).
    const auto explain = c1->get("/v1/rebalance/explain?format=text");
    last_explain = explain.body;
    spread = active == 0 && hot_on("node-1") <= 2 && hot_on("node-2") >= 1 && hot_on("node-3") >= 1 &&
             !body(c1->get("/v1/rebalance/explain")).at("triggered").as_bool();
  }
  INFO("last explain:\n" << last_explain);
  std::map<std::string, std::int64_t> expected;
  for (auto& w : writers) w->finish(expected);
  INFO("hot shards per node: " << hot_on("node-1") << " / " << hot_on("node-2") << " / " << hot_on("node-3"));
  REQUIRE(spread);
  // Every move was the rebalancer's, and each hot shard moved at most once.
  std::map<std::int64_t, int> moved;
  auto finished_moves = body(c1->get("/v1/migrations?state=finished"));
  for (const auto& m : finished_moves.at("migrations").as_array()) {
    CHECK(m.at("reason") == "balance");
    CHECK(m.at("phase") == "done");
    ++moved[m.at("shard").as_int64()];
  }
  for (const auto& [s, k] : moved) CHECK(k == 1);
  for (const auto& w : writers) CHECK(w->acked.size() > 50);
  verify(*c1, "h", expected);
}

TEST_CASE("hot shard: one shard carrying its node's load is split, shown in explain and the journal, and a half moves away") {
  cluster cl(3, {}, R"({"cluster":{"heartbeat_interval_ms":200},"monitor":{"interval_ms":500},
                       "rebalance":{"mode":"plan-only","strategy":"load","threshold":0.25,"interval_ms":1000,
                                    "hot_split":{"share":0.5,"min_rate":100,"after_ms":3000}}})");
  auto c1 = cl.node(1).client();
  REQUIRE(c1->put("/v1/indexes/h", R"({"shards":6})").status == 201);
  const auto hot = shard_on(*c1, "h", "node-1");
  REQUIRE(hot >= 0);
  // Keys of that shard, spread over its hash range (no routing value: a routing value is one
  // token, which no split divides).
  std::vector<std::string> keys;
  for (int i = 0; i < 2000 && keys.size() < 80; ++i)
    if (body(c1->get("/v1/ring/lookup?index=h&key=hk" + std::to_string(i))).at("shard").as_int64() == hot)
      keys.push_back("hk" + std::to_string(i));
  REQUIRE(keys.size() >= 40);
  // Four paced writers: 160 writes/s on the shard, over the hot rule's 100/s; each half of it
  // carries 80/s, under it. Each writer has its own keys: two writers on one key would make its
  // last value depend on which of them wrote last, and on which writes failed.
  std::vector<std::unique_ptr<writer>> writers;
  std::vector<std::size_t> own_keys;
  for (std::size_t i = 0; i < 4; ++i) {
    std::vector<std::string> own;
    for (std::size_t j = i; j < keys.size(); j += 4) own.push_back(keys[j]);
    own_keys.push_back(own.size());
    writers.push_back(std::make_unique<writer>(cl.node(1 + static_cast<int>(i % 3)).client(), "h", "", "",
                                               std::chrono::milliseconds(25), std::move(own)));
  }
  // Plan-only: explain shows the shard hot, then due to split.
  bool due = false;
  std::string last;
  for (int i = 0; i < 100 && !due; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto e = body(c1->get("/v1/rebalance/explain"));
    last = json::serialize(e);
    for (const auto& sp : e.at("splits").as_array())
      if (sp.at("shard").as_int64() == hot && sp.at("node") == "node-1") due = true;
  }
  INFO("last explain: " << last);
  REQUIRE(due);
  CHECK(last.find("\"share_of_node\"") != std::string::npos);
  // Nothing split while plan-only.
  CHECK(owners(*c1, "h").size() == 6);
  REQUIRE(c1->put("/v1/rebalance/settings", R"({"mode":"auto"})").status == 200);
  // The shard splits; one half moves to another node.
  bool split = false, moved = false;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  std::set<std::int64_t> halves;
  while (!(split && moved) && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const auto own = owners(*c1, "h");
    split = own.size() >= 7;
    if (!split) continue;
    halves = {hot};
    for (const auto& [s, n] : own)
      if (s >= 6) halves.insert(s);
    const auto finished = body(c1->get("/v1/migrations?state=finished"));
    for (const auto& m : finished.at("migrations").as_array())
      if (halves.contains(m.at("shard").as_int64()) && m.at("source") == "node-1" && m.at("reason") == "balance" &&
          m.at("phase") == "done")
        moved = true;
  }
  std::map<std::string, std::int64_t> expected;
  std::map<std::string, std::set<std::int64_t>> failed;  // writes of unknown outcome
  for (auto& w : writers) {
    w->finish(expected);
    for (auto& [k, vs] : w->failed) failed[k].insert(vs.begin(), vs.end());
  }
  INFO("shards: " << owners(*c1, "h").size());
  REQUIRE(split);
  CHECK(moved);
  // The journal says why the map changed.
  auto events = c1->get("/v1/events?type=map");
  REQUIRE(events.status == 200);
  CHECK(events.body.find("hot shard h/" + std::to_string(hot)) != std::string::npos);
  // Each half at 80/s is under the rule's rate: no cascade of splits.
  CHECK(owners(*c1, "h").size() <= 8);
  // Every writer got each of its keys acknowledged at least once.
  for (std::size_t i = 0; i < writers.size(); ++i) CHECK(writers[i]->acked.size() == own_keys[i]);
  verify_allowing(*c1, "h", expected, failed);
}

TEST_CASE("predictive: a node whose shard grows fast sheds before it passes the threshold, at low priority, reason predictive") {
  cluster cl(3, {}, R"({"cluster":{"heartbeat_interval_ms":200},"monitor":{"interval_ms":200},
                       "rebalance":{"mode":"auto","strategy":"bytes","threshold":1.0,"interval_ms":500}})");
  auto c1 = cl.node(1).client();
  REQUIRE(c1->put("/v1/indexes/g", R"({"shards":6})").status == 201);
  const auto own = owners(*c1, "g");
  std::map<std::string, std::int64_t> expected;
  std::int64_t growing = -1;
  for (const auto& [s, n] : own) {
    load(*c1, "g", "s" + std::to_string(s) + "-", 1000, routing_for(*c1, "g", s), 1000, expected);  // ~1 MB each
    if (n == "node-1" && growing < 0) growing = s;
  }
  REQUIRE(growing >= 0);
  // One shard of node-1 grows by about 200 kB/s.
  const std::string routing = routing_for(*c1, "g", growing);
  std::atomic<bool> stop{false};
  std::map<std::string, std::int64_t> grown;  // written by the thread only; read after join
  std::thread grower([&] {
    auto c = cl.node(1).client();
    for (int from = 0; !stop; from += 50) {
      auto r = c->post("/v1/indexes/g/bulk", ndjson_puts(from, from + 50, "grow-", routing, 1000));
      if (r.status == 200 && body(r).at("error_count").as_int64() == 0)
        for (int i = from; i < from + 50; ++i) grown["grow-" + std::to_string(i)] = i;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  });
  // The present needs nothing: no node is twice its share.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  CHECK(body(c1->get("/v1/migrations")).at("migrations").as_array().empty());
  CHECK_FALSE(body(c1->get("/v1/rebalance/explain")).at("triggered").as_bool());
  // Predictive: the trend an hour ahead puts node-1 far above; it sheds now.
  REQUIRE(c1->put("/v1/rebalance/settings", R"({"predictive":true,"horizon_ms":3600000})").status == 200);
  json::object first;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(40);
  while (first.empty() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const auto list = body(c1->get("/v1/migrations")).at("migrations").as_array();
    if (!list.empty()) first = list.front().as_object();
  }
  stop = true;
  grower.join();
  INFO(json::serialize(first));
  REQUIRE_FALSE(first.empty());
  CHECK(first.at("reason") == "predictive");
  CHECK(first.at("priority") == "low");
  CHECK(first.at("source") == "node-1");
  CHECK(first.at("shard").as_int64() != growing);  // the growing shard would only move the problem
  CHECK(first.contains("plan"));
  REQUIRE(settle(*c1, 1));
  for (const auto& [k, v] : grown) expected[k] = v;
  verify(*c1, "g", expected);
}

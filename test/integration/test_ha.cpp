// The control plane on etcd with real processes: a three-member etcd on loopback, shardd nodes
// started with --meta etcd://..., the controller killed with SIGKILL again and again under a
// write load, and etcd itself killed.

#include "support/cluster.hpp"
#include "support/etcd.hpp"
#include "support/json_body.hpp"
#include "support/migration_ops.hpp"
#include "support/process.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <iostream>

using namespace shardd;
using namespace shardd::test;

namespace {

/// Heartbeats as in the other cluster tests; the controller's lease as short as etcd allows.
const std::string ha_config =
    R"({"cluster":{"heartbeat_interval_ms":200,"heartbeat_miss_limit":3},"migration":{"undo_window_ms":300},)"
    R"("etcd":{"election_ttl_s":2,"timeout_ms":1000}})";

/// Nodes that share one etcd; none bootstraps, none joins by address.
struct etcd_nodes {
  temp_dir dir;
  etcd_cluster& etcd;
  std::vector<std::unique_ptr<shardd_process>> nodes;
  std::string config;

  etcd_nodes(etcd_cluster& e, int n, std::string config_json = ha_config) : etcd(e), config(std::move(config_json)) {
    for (int i = 1; i <= n; ++i) add();
  }
  shardd_process& add() {
    node_options o;
    o.id = "node-" + std::to_string(nodes.size() + 1);
    o.data_dir = dir.sub(o.id);
    o.config_json = config;
    o.bootstrap = false;
    o.extra_args = {"--meta", "etcd://" + etcd.endpoints()};
    nodes.push_back(std::make_unique<shardd_process>(std::move(o)));
    nodes.back()->start();
    return *nodes.back();
  }
  shardd_process& node(int i) { return *nodes[static_cast<std::size_t>(i - 1)]; }
  int size() const { return static_cast<int>(nodes.size()); }

  /// The node whose /v1/health says it runs the controller (0: none found before the limit).
  int controller(std::chrono::milliseconds limit = std::chrono::seconds(15), int except = 0) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      for (int i = 1; i <= size(); ++i) {
        if (i == except || !node(i).running()) continue;
        try {
          auto r = node(i).client()->get("/v1/health");
          if (r.status == 200 && body(r).at("role") == "controller") return i;
        } catch (const std::exception&) {
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return 0;
  }

  /// Waits until node `via` sees every node in `want` state.
  void wait_all(const std::string& want, int via, std::chrono::seconds limit = std::chrono::seconds(20)) {
    const auto until = std::chrono::steady_clock::now() + limit;
    std::string seen;
    while (std::chrono::steady_clock::now() < until) {
      try {
        auto b = body(node(via).client()->get("/v1/cluster"));
        seen.clear();
        bool all = b.at("nodes").as_array().size() == nodes.size();
        for (const auto& n : b.at("nodes").as_array()) {
          seen += std::string(n.at("id").as_string()) + "=" + std::string(n.at("state").as_string()) + " ";
          if (n.at("state") != want.c_str()) all = false;
        }
        if (all) return;
      } catch (const std::exception&) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL("not every node became " << want << " as node-" << via << " sees them: " << seen);
  }
};

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(std::min<double>(static_cast<double>(v.size() - 1), p * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

}  // namespace

TEST_CASE("on etcd, a killed controller is replaced within 5 s, every time, and no acknowledged write or map change is lost") {
  etcd_cluster etcd(3);
  etcd_nodes c(etcd, 5);
  REQUIRE(c.controller() == 1);  // the first node founds the cluster in etcd
  c.wait_all("up", 1);
  auto admin = c.node(2).client();
  REQUIRE(admin->put("/v1/indexes/ha", R"({"shards":10})").status == 201);

  // One writer per node, each on its own keys: a killed node's writes fail (unknown outcome).
  std::vector<std::unique_ptr<writer>> writers;
  for (int i = 1; i <= c.size(); ++i)
    writers.push_back(std::make_unique<writer>(c.node(i).client(), "ha", "w" + std::to_string(i) + "-", std::string(),
                                               std::chrono::milliseconds(5)));

  int kills = 20;
  if (const char* k = std::getenv("SHARDD_HA_KILLS")) kills = std::max(1, std::atoi(k));
  std::vector<double> failover_ms;
  std::vector<std::string> created;
  for (int round = 1; round <= kills; ++round) {
    const int old = c.controller();
    REQUIRE(old != 0);
    c.node(old).kill9();
    const auto killed_at = std::chrono::steady_clock::now();
    const int next = c.controller(std::chrono::seconds(30), old);
    INFO("round " << round << ": node-" << old << " killed");
    REQUIRE(next != 0);
    REQUIRE(next != old);
    failover_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - killed_at).count());
    // The new controller changes the map: an index created through any survivor.
    int via = 1;
    while (via == old || via == next) ++via;
    const std::string name = "round-" + std::to_string(round);
    auto r = c.node(via).client()->put("/v1/indexes/" + name, R"({"shards":2})");
    for (int i = 0; i < 50 && r.status == 503; ++i) {  // the controller still starting: retried
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      r = c.node(via).client()->put("/v1/indexes/" + name, R"({"shards":2})");
    }
    INFO(r.body);
    REQUIRE(r.status == 201);
    created.push_back(name);
    c.node(old).start();
    c.wait_all("up", next);
  }

  std::map<std::string, std::int64_t> expected;
  std::map<std::string, std::set<std::int64_t>> failed;
  for (auto& w : writers) {
    w->finish(expected);
    for (auto& [k, vs] : w->failed) failed[k].insert(vs.begin(), vs.end());
  }
  INFO("acknowledged writes on " << expected.size() << " keys");
  CHECK(expected.size() > 100);
  auto reader = c.node(c.controller()).client();
  verify_allowing(*reader, "ha", expected, failed);
  // Every map change acknowledged is in the map: each round's index, with its shards.
  auto indexes = body(reader->get("/v1/indexes"));
  std::set<std::string> have;
  for (const auto& ix : indexes.at("indexes").as_array()) have.insert(std::string(ix.at("name").as_string()));
  for (const auto& n : created) CHECK(have.count(n) == 1);

  std::cout << "failover over " << failover_ms.size() << " SIGKILLs of the controller: p50 " << percentile(failover_ms, 0.5)
            << " ms, p99 " << percentile(failover_ms, 0.99) << " ms, max " << *std::max_element(failover_ms.begin(), failover_ms.end())
            << " ms\n";
  CHECK(percentile(failover_ms, 0.99) < 5000);
}

TEST_CASE("on etcd, a move in flight when the controller is killed is finished by the next controller, nothing lost") {
  etcd_cluster etcd(3);
  // The rebalancer off: the loaded shard must not be moved by anyone but the test.
  etcd_nodes c(etcd, 4,
               R"({"cluster":{"heartbeat_interval_ms":200,"heartbeat_miss_limit":3},"migration":{"undo_window_ms":300},)"
               R"("rebalance":{"mode":"off"},"etcd":{"election_ttl_s":2,"timeout_ms":1000}})");
  REQUIRE(c.controller() == 1);
  c.wait_all("up", 1);
  auto c4 = c.node(4).client();
  std::map<std::string, std::int64_t> expected;
  const auto loaded = index_with_loaded_shard(*c4, "mv", 8, "node-2", 20000, 200, expected);
  // About 4 MiB at 1 MiB/s: the copy is still running when the controller dies.
  const auto id = start_migration(*c4, "mv", loaded.shard, "node-3", 1 << 20);
  writer w(c.node(3).client(), "mv", "live-", loaded.routing, std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  REQUIRE(!finished(migration(*c4, id)));
  c.node(1).kill9();
  const int next = c.controller(std::chrono::seconds(30), 1);
  REQUIRE(next > 1);
  // The next controller read the record from etcd and carries the move to its end.
  auto m = wait_migration(*c4, id, finished, std::chrono::seconds(90));
  INFO(boost::json::serialize(m));
  CHECK(phase(m) == "done");
  w.finish(expected);
  // The killed node owns shards of the index too: back up before the full check.
  c.node(1).start();
  c.wait_all("up", next);
  verify_allowing(*c4, "mv", expected, w.failed);
  // The shard is where the move put it.
  for (const auto& [s, owner] : owners(*c4, "mv"))
    if (s == loaded.shard) CHECK(owner == "node-3");
}

TEST_CASE("on etcd, the etcd leader killed under map changes: every change goes through, no node is marked down") {
  etcd_cluster etcd(3);
  etcd_nodes c(etcd, 3);
  REQUIRE(c.controller() == 1);
  c.wait_all("up", 1);
  auto cl = c.node(2).client();
  for (int round = 0; round < 3; ++round) {
    int leader = -1;
    for (int i = 0; i < 50 && leader < 0; ++i) {
      leader = etcd.leader();
      if (leader < 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    REQUIRE(leader >= 0);
    etcd.kill9(static_cast<std::size_t>(leader));
    // At once, while etcd elects its next leader: the controller's map write waits it out, its
    // lease stays confirmed (or the relay asks the next controller), and the heartbeats that
    // queued meanwhile count.
    const auto t0 = std::chrono::steady_clock::now();
    const auto name = "lead" + std::to_string(round);
    auto r = cl->put("/v1/indexes/" + name, R"({"shards":2})");
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    INFO("round " << round << ", etcd member " << leader << " killed: " << r.body << " after " << ms << " ms");
    CHECK(r.status == 201);
    std::cout << "etcd leader killed: index create answered " << r.status << " in " << ms << " ms\n";
    etcd.restart({static_cast<std::size_t>(leader)});
    const int now_controller = c.controller();
    REQUIRE(now_controller > 0);
    auto b = body(c.node(now_controller).client()->get("/v1/cluster"));
    for (const auto& n : b.at("nodes").as_array()) {
      INFO(boost::json::serialize(n));
      CHECK(n.at("state").as_string() == "up");
    }
    CHECK(body(cl->get("/v1/indexes/" + name)).at("name").as_string() == name);
  }
}

TEST_CASE("on etcd, one etcd member killed changes nothing; all of etcd gone: records are served, map changes answer 503, and all resumes") {
  etcd_cluster etcd(3);
  etcd_nodes c(etcd, 3);
  REQUIRE(c.controller() == 1);
  c.wait_all("up", 1);
  auto cl = c.node(2).client();
  REQUIRE(cl->put("/v1/indexes/e", R"({"shards":6})").status == 201);

  etcd.kill9(0);
  {
    const auto t0 = std::chrono::steady_clock::now();
    auto r1 = cl->put("/v1/indexes/e1", R"({"shards":2})");
    INFO(r1.body << " after " << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count() << " ms");
    REQUIRE(r1.status == 201);
  }
  REQUIRE(cl->put("/v1/indexes/e/records/a", R"({"n":1})").status == 201);

  etcd.kill9(1);
  etcd.kill9(2);
  // Records: every node serves its shards and forwards to the others with the map it holds.
  for (int i = 0; i < 30; ++i) {
    auto w = c.node(1 + i % 3).client()->put("/v1/indexes/e/records/k" + std::to_string(i), R"({"n":)" + std::to_string(i) + "}");
    INFO(w.body);
    REQUIRE((w.status == 200 || w.status == 201));
  }
  auto g = cl->get("/v1/indexes/e/records/a");
  CHECK(g.status == 200);
  // The controller cannot renew its lease: it steps down before the lease could lapse.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  CHECK(c.controller(std::chrono::milliseconds(200)) == 0);
  // A map change cannot be made: 503, naming etcd.
  auto refused = cl->put("/v1/indexes/e2", R"({"shards":2})");
  INFO(refused.body);
  CHECK(refused.status == 503);
  CHECK(refused.body.find("etcd cannot be reached") != std::string::npos);

  etcd.restart({0, 1, 2});
  // The map changes again (the controller may have stepped down and been elected anew).
  auto r = cl->put("/v1/indexes/e2", R"({"shards":2})");
  for (int i = 0; i < 150 && r.status != 201; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    r = cl->put("/v1/indexes/e2", R"({"shards":2})");
  }
  INFO(r.body);
  CHECK(r.status == 201);
  for (int i = 0; i < 30; ++i) {
    auto back = get_settled(*cl, "/v1/indexes/e/records/k" + std::to_string(i));
    CHECK(body(back).at("doc").at("n").as_int64() == i);
  }
  c.wait_all("up", c.controller());
}

TEST_CASE("on etcd with its auth on: a node with the user's password runs, a wrong password stops start-up with exit code 2") {
  etcd_cluster etcd(1);
  const auto at = "--endpoints=http://" + etcd.endpoints();
  for (const auto& cmd : {"user add root:rootpw-0123", "user grant-role root root", "auth enable"}) {
    const auto line = "ETCDCTL_API=3 etcdctl " + at + " " + cmd + " > /dev/null";
    REQUIRE(std::system(line.c_str()) == 0);
  }
  const std::string with_user =
      R"({"cluster":{"heartbeat_interval_ms":200},"etcd":{"election_ttl_s":2,"timeout_ms":1000,"user":"root","password":"rootpw-0123"}})";
  etcd_nodes c(etcd, 2, with_user);
  REQUIRE(c.controller() == 1);
  c.wait_all("up", 1);
  auto cl = c.node(2).client();
  REQUIRE(cl->put("/v1/indexes/a", R"({"shards":2})").status == 201);
  // What shardd wrote, read back with etcd's own client as that user.
  const auto check = "ETCDCTL_API=3 etcdctl " + at + " --user root:rootpw-0123 get /shardd/shardd/controller --print-value-only | grep -qx node-1";
  CHECK(std::system(check.c_str()) == 0);

  node_options o;
  o.id = "node-3";
  o.data_dir = c.dir.sub("node-3");
  o.bootstrap = false;
  o.config_json = R"({"etcd":{"user":"root","password":"wrong-password"}})";
  o.extra_args = {"--meta", "etcd://" + etcd.endpoints()};
  shardd_process p(o);
  CHECK(p.start_and_wait_exit(std::chrono::seconds(20)) == 2);
  CHECK(p.log().find("etcd refused user 'root'") != std::string::npos);
}

TEST_CASE("moving from the embedded plane to etcd: the embedded controller seeds etcd with its map, a member never does") {
  etcd_cluster etcd(1);
  temp_dir dir;
  node_options o1;
  o1.id = "node-1";
  o1.data_dir = dir.sub("node-1");
  o1.config_json = ha_config;
  auto embedded1 = std::make_unique<shardd_process>(o1);
  embedded1->start();
  node_options o2;
  o2.id = "node-2";
  o2.data_dir = dir.sub("node-2");
  o2.config_json = ha_config;
  o2.bootstrap = false;
  o2.join = "127.0.0.1:" + std::to_string(embedded1->peer_port());
  auto embedded2 = std::make_unique<shardd_process>(o2);
  embedded2->start();
  REQUIRE(embedded1->client()->put("/v1/indexes/kept", R"({"shards":4})").status == 201);
  REQUIRE(embedded1->client()->put("/v1/indexes/kept/records/a", R"({"n":7})").status == 201);
  auto moved = [&](const shardd_process& p) {
    auto o = p.options();
    o.bootstrap = false;
    o.join.reset();
    o.extra_args = {"--meta", "etcd://" + etcd.endpoints()};
    return o;
  };
  const auto on_etcd1 = moved(*embedded1), on_etcd2 = moved(*embedded2);
  REQUIRE(embedded1->terminate() == 0);
  REQUIRE(embedded2->terminate() == 0);
  // The member first: its map names node-1 as controller, so it does not seed etcd.
  shardd_process member(on_etcd2);
  member.start();
  std::this_thread::sleep_for(std::chrono::seconds(3));
  CHECK(member.log().find("etcd_not_seeded") != std::string::npos);
  CHECK(body(member.client()->get("/v1/health")).at("role") == "member");
  // The old controller seeds etcd with its map: the index and its record are there, and it leads.
  shardd_process controller(on_etcd1);
  controller.start();
  auto c = controller.client();
  // It serves with its stored map at once, and leads once the member's failed term ends.
  for (int i = 0; i < 100 && body(c->get("/v1/health")).at("role") != "controller"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(controller.log().find("etcd_seeded") != std::string::npos);
  auto rec = get_settled(*c, "/v1/indexes/kept/records/a");
  CHECK(body(rec).at("doc").at("n").as_int64() == 7);
  CHECK(body(c->get("/v1/health")).at("role") == "controller");
  CHECK(member.client()->put("/v1/indexes/after", R"({"shards":2})").status == 201);
}

TEST_CASE("--meta etcd:// refuses --bootstrap and --join, and a bad etcd address, with exit code 2") {
  temp_dir dir;
  node_options o;
  o.data_dir = dir.sub("n");
  o.extra_args = {"--meta", "etcd://127.0.0.1:1"};
  o.bootstrap = true;
  shardd_process p(o);
  CHECK(p.start_and_wait_exit(std::chrono::seconds(10)) == 2);
  CHECK(p.log().find("cluster.bootstrap and cluster.join are for the embedded plane") != std::string::npos);
  node_options bad;
  bad.data_dir = dir.sub("m");
  bad.bootstrap = false;
  bad.extra_args = {"--meta", "etcd:/127.0.0.1:2379"};
  shardd_process q(bad);
  CHECK(q.start_and_wait_exit(std::chrono::seconds(10)) == 2);
  CHECK(q.log().find("--meta: must be \"embedded\" or etcd://") != std::string::npos);
}

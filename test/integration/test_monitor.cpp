// Integration tests of the monitor: real shardd processes under load, their statistics,
// Prometheus metrics, the controller's load table, readiness and the cluster's colour.

#include "support/cluster.hpp"
#include "support/json_body.hpp"
#include "support/migration_ops.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <csignal>
#include <fstream>
#include <thread>

using namespace shardd;
using namespace shardd::test;
namespace json = boost::json;

namespace {

constexpr int interval_ms = 300;

/// Fast heartbeats and a fast monitor.
const std::string monitor_config =
    R"({"cluster":{"heartbeat_interval_ms":200,"heartbeat_miss_limit":3},"migration":{"undo_window_ms":300},)"
    R"("monitor":{"interval_ms":300}})";

double number(const json::value& v) { return v.to_number<double>(); }

/// The shard entry of `index`/`shard` in a node's /v1/stats answer, or null.
const json::object* shard_in(const json::value& node_stats, const std::string& index, std::int64_t shard) {
  const auto* shards = node_stats.as_object().if_contains("shards");
  if (!shards) return nullptr;
  for (const auto& s : shards->as_array())
    if (s.at("index").as_string() == index && s.at("shard").as_int64() == shard) return &s.as_object();
  return nullptr;
}

/// Waits until `pred` holds, polling every 50 ms; returns how long it took, or nullopt.
template <class Pred>
std::optional<std::chrono::milliseconds> within(std::chrono::milliseconds limit, Pred pred) {
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < limit) {
    if (pred()) return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return std::nullopt;
}

/// Feeds `text` to `promtool check metrics`; returns its exit code and what it said.
std::pair<int, std::string> promtool_check(const std::string& text, const temp_dir& dir) {
  const auto file = dir.sub("metrics.txt");
  std::ofstream(file) << text;
  return run_command("promtool check metrics < " + file + " 2>&1");
}

/// A key of `index` whose shard `owner` owns, and that shard.
template <class Client>
std::pair<std::string, std::int64_t> key_owned_by(Client& c, const std::string& index, const std::string& owner) {
  for (int i = 0; i < 200; ++i) {
    const auto k = "key-" + std::to_string(i);
    auto r = body(c.get("/v1/ring/lookup?index=" + index + "&key=" + k));
    if (r.at("owner").as_string() == owner) return {k, r.at("shard").as_int64()};
  }
  FAIL("no key of " << index << " on " << owner);
  return {};
}

}  // namespace

TEST_CASE("a load aimed at one shard shows in /v1/stats, in /metrics and in the controller's load table within three "
          "intervals") {
  cluster cl(2, {}, monitor_config);
  auto n1 = cl.node(1).client(), n2 = cl.node(2).client();
  REQUIRE(n1->put("/v1/indexes/hot", R"({"shards":6})").status == 201);
  // A key whose shard node-2 owns: requests to node-1 are forwarded there.
  const auto found = key_owned_by(*n1, "hot", "node-2");  // not a structured binding: lambdas capture these
  const std::string key = found.first;
  const std::int64_t shard = found.second;
  REQUIRE(n1->put("/v1/indexes/hot/records/" + key, R"({"v":1})").status == 201);
  constexpr int reads = 400;
  for (int i = 0; i < reads; ++i) REQUIRE(n1->get("/v1/indexes/hot/records/" + key).status == 200);
  const auto load_done = std::chrono::steady_clock::now();

  // /v1/stats on node-1 over the cluster: node-2's row for that shard holds every read, and it
  // is the busiest shard of the cluster; node-1's own totals (from its own samples) count them
  // as forwarded.
  std::string last;
  auto seen_in_stats = within(std::chrono::milliseconds(3 * interval_ms + 1000), [&] {
    auto r = n1->get("/v1/stats?window=1m&scope=cluster");
    if (r.status != 200) return false;
    last = r.body;
    const auto b = body(r);
    bool owner = false, forwarder = false;
    for (const auto& n : b.at("nodes").as_array()) {
      if (n.at("node").as_string() == "node-1") forwarder = n.at("totals").at("forwarded").as_int64() >= reads;
      if (n.at("node").as_string() != "node-2") continue;
      const auto* s = shard_in(n, "hot", shard);
      owner = s && s->at("reads").as_int64() >= reads;
    }
    return owner && forwarder;
  });
  INFO(last);
  REQUIRE(seen_in_stats);
  {
    const auto b = body(n1->get("/v1/stats?window=1m&scope=cluster"));
    double busiest = 0;
    std::string busiest_at;
    for (const auto& n : b.at("nodes").as_array())
      for (const auto& s : n.at("shards").as_array())
        if (number(s.at("reads_per_sec")) > busiest) {
          busiest = number(s.at("reads_per_sec"));
          busiest_at = std::string(n.at("node").as_string()) + "/" + std::string(s.at("index").as_string()) + "/" +
                       std::to_string(s.at("shard").as_int64());
        }
    CHECK(busiest_at == "node-2/hot/" + std::to_string(shard));
    // node-1 forwarded them; its own totals say so.
    const auto& mine = b.at("nodes").as_array()[0];
    CHECK(mine.at("node").as_string() == "node-1");
    CHECK(mine.at("totals").at("forwarded").as_int64() >= reads);
    // node-2 timed them: a read latency with quantiles in order.
    const auto* s = shard_in(b.at("nodes").as_array()[1], "hot", shard);
    REQUIRE(s);
    const auto& lat = s->at("latency_us").at("read");
    CHECK(lat.at("count").as_int64() >= reads);
    CHECK(lat.at("p50").as_int64() <= lat.at("p99").as_int64());
    CHECK(lat.at("p99").as_int64() <= lat.at("max").as_int64());
  }
  const auto stats_after = std::chrono::steady_clock::now() - load_done;
  CHECK(stats_after < std::chrono::milliseconds(3 * interval_ms + 1000));

  // /metrics on node-2: the shard's read counter and histogram, in a format promtool accepts.
  auto m = n2->get("/metrics");
  REQUIRE(m.status == 200);
  CHECK(m.header("content-type").find("text/plain; version=0.0.4") == 0);
  const std::string series = "shardd_shard_reads_total{index=\"hot\",shard=\"" + std::to_string(shard) + "\",node=\"node-2\"} ";
  const auto at = m.body.find(series);
  REQUIRE(at != std::string::npos);
  CHECK(std::stoll(m.body.substr(at + series.size())) >= reads);
  CHECK(m.body.find("shardd_shard_request_duration_seconds_bucket{index=\"hot\",shard=\"" + std::to_string(shard) +
                    "\",node=\"node-2\",op=\"read\",le=\"+Inf\"}") != std::string::npos);
  auto [rc, said] = promtool_check(m.body, cl.dir);
  INFO(said);
  CHECK(rc == 0);
  auto [rc1, said1] = promtool_check(n1->get("/metrics").body, cl.dir);
  INFO(said1);
  CHECK(rc1 == 0);

  // The controller's load table (node-1) learned it from node-2's heartbeats.
  auto in_table = within(std::chrono::milliseconds(3 * interval_ms + 1000), [&] {
    auto r = n2->get("/v1/cluster/load");  // relayed to the controller
    if (r.status != 200) return false;
    last = r.body;
    const auto b = body(r);  // named: a range-for over a member of a temporary outlives it
    for (const auto& n : b.at("nodes").as_array()) {
      if (n.at("node").as_string() != "node-2") continue;
      for (const auto& s : n.at("shards").as_array())
        if (s.at("index").as_string() == "hot" && s.at("shard").as_int64() == shard) return true;
    }
    return false;
  });
  INFO(last);
  CHECK(in_table);
  // While reads go on, the table shows their rate on that shard.
  std::atomic<bool> stop{false};
  std::thread loader([&] {
    auto c = cl.node(2).client();
    while (!stop) (void)c->get("/v1/indexes/hot/records/" + key);
  });
  auto rate_seen = within(std::chrono::milliseconds(3 * interval_ms + 2000), [&] {
    auto r = n1->get("/v1/cluster/load");
    last = r.body;
    const auto b = body(r);
    for (const auto& n : b.at("nodes").as_array())
      for (const auto& s : n.at("shards").as_array())
        if (n.at("node").as_string() == "node-2" && s.at("shard").as_int64() == shard && s.at("index").as_string() == "hot")
          return number(s.at("reads_per_sec")) > 10;
    return false;
  });
  stop = true;
  loader.join();
  INFO(last);
  CHECK(rate_seen);
  auto text = n1->get("/v1/cluster/load?format=text");
  CHECK(text.status == 200);
  CHECK(text.body.find("node-2") != std::string::npos);
}

TEST_CASE("the monitor's settings change at run time, 0 turns sampling off, and bad values are refused") {
  cluster cl(1, {}, monitor_config);
  auto c = cl.node(1).client();
  auto samples = [&] { return body(c->get("/v1/stats?window=1h")).at("samples").as_int64(); };
  auto s = body(c->get("/v1/monitor/settings"));
  CHECK(s.at("interval_ms").as_int64() == interval_ms);
  CHECK(s.at("history_ms").as_int64() == 3600000);

  REQUIRE(c->put("/v1/monitor/settings", R"({"interval_ms":0})").status == 200);
  const auto off = samples();
  std::this_thread::sleep_for(std::chrono::milliseconds(4 * interval_ms));
  CHECK(samples() == off);  // off: no sample taken
  CHECK(body(c->get("/v1/monitor/settings")).at("sampling") == false);

  REQUIRE(c->put("/v1/monitor/settings", R"({"interval_ms":100})").status == 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  CHECK(samples() >= off + 5);  // on again, at the new pace

  // The history bounds what is kept: a window of the whole history covers at most it.
  REQUIRE(c->put("/v1/monitor/settings", R"({"history_ms":1000})").status == 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  CHECK(number(body(c->get("/v1/stats?window=1h")).at("window_seconds")) <= 1.3);

  for (const char* bad : {R"({"interval_ms":50})", R"({"interval_ms":"fast"})", R"({"interval_ms":-1})",
                          R"({"history_ms":10})", R"({"colour":"blue"})", R"([1])", "{not json"}) {
    auto r = c->put("/v1/monitor/settings", bad);
    INFO(bad);
    CHECK(r.status == 400);
    CHECK(r.header("content-type") == "application/problem+json");
  }
  for (const char* bad : {"/v1/stats?window=abc", "/v1/stats?window=0s", "/v1/stats?window=5d", "/v1/stats?window=9000h",
                          "/v1/stats?scope=planet", "/v1/stats?colour=blue"}) {
    INFO(bad);
    CHECK(c->get(bad).status == 400);
  }
  // Every monitor endpoint wants the token, except the probes.
  c->set_token("");
  CHECK(c->get("/v1/stats").status == 401);
  CHECK(c->get("/metrics").status == 401);
  CHECK(c->put("/v1/monitor/settings", R"({"interval_ms":0})").status == 401);
  CHECK(c->get("/v1/health/ready").status == 200);
}

TEST_CASE("monitor settings set with scope=cluster reach every node and survive a restart; a bad body changes none") {
  cluster cl(3, {}, monitor_config);
  auto c = cl.node(1).client();
  auto interval_on = [&](int i) {
    return body(cl.node(i).client()->get("/v1/monitor/settings")).at("interval_ms").as_int64();
  };
  auto r = c->put("/v1/monitor/settings?scope=cluster", R"({"interval_ms":200})");
  REQUIRE(r.status == 200);
  auto b = body(r);
  CHECK(b.at("complete") == true);
  REQUIRE(b.at("nodes").as_array().size() == 3);
  for (const auto& n : b.at("nodes").as_array()) {
    INFO(json::serialize(n));
    CHECK(n.at("interval_ms").as_int64() == 200);
    CHECK(n.at("history_ms").as_int64() == 3600000);  // as node-1 applied them: the field not sent kept its value
  }
  for (int i = 1; i <= 3; ++i) CHECK(interval_on(i) == 200);
  // A GET with scope=cluster lists them.
  auto g = body(c->get("/v1/monitor/settings?scope=cluster"));
  CHECK(g.at("nodes").as_array().size() == 3);
  // Refused on the node asked: nothing sent on, nothing changed anywhere.
  for (const char* bad : {R"({"interval_ms":50})", R"({"colour":"blue"})", "{not json"}) {
    INFO(bad);
    CHECK(c->put("/v1/monitor/settings?scope=cluster", bad).status == 400);
  }
  CHECK(c->put("/v1/monitor/settings?scope=planet", R"({"interval_ms":200})").status == 400);
  for (int i = 1; i <= 3; ++i) CHECK(interval_on(i) == 200);
  // Kept in the node's store: a restart takes them, not the config file's 300.
  REQUIRE(cl.node(2).terminate() == 0);
  cl.node(2).start();
  cl.wait_states({"up", "up", "up"});
  CHECK(interval_on(2) == 200);
  // A node that is down is listed with why, and the answer says it is not complete.
  cl.node(3).kill9();
  cl.wait_states({"up", "up", "down"});
  b = body(c->put("/v1/monitor/settings?scope=cluster", R"({"history_ms":60000})"));
  CHECK(b.at("complete") == false);
  int errors = 0;
  for (const auto& n : b.at("nodes").as_array())
    if (n.as_object().contains("error")) {
      ++errors;
      CHECK(n.at("node").as_string() == "node-3");
    } else {
      CHECK(n.at("history_ms").as_int64() == 60000);
    }
  CHECK(errors == 1);
}

TEST_CASE("every node measures its round trip to every other: in /v1/stats and /metrics, unreachable while a peer is "
          "stopped, back after") {
  // A long miss limit keeps a stopped node `up` in the map, so that it is still pinged.
  cluster cl(3, {},
             R"({"cluster":{"heartbeat_interval_ms":200,"heartbeat_miss_limit":100},"monitor":{"interval_ms":200}})");
  auto c = cl.node(1).client();
  auto peer = [&](const std::string& id) -> std::optional<json::object> {
    auto s = body(c->get("/v1/stats?window=1s"));
    for (const auto& p : s.at("peers").as_array())
      if (p.at("node").as_string() == id) return p.as_object();
    return std::nullopt;
  };
  REQUIRE(within(std::chrono::seconds(5), [&] {
    auto a = peer("node-2"), b = peer("node-3");
    return a && b && a->at("reachable") == true && b->at("reachable") == true && a->at("rtt_us").is_number();
  }));
  CHECK_FALSE(peer("node-1"));  // not itself
  auto p2 = *peer("node-2");
  CHECK(p2.at("rtt_us").to_number<std::int64_t>() > 0);
  CHECK(p2.at("rtt_us").to_number<std::int64_t>() < 1'000'000);  // answered within the ping's 1 s
  CHECK(p2.at("max_rtt_us").to_number<std::int64_t>() >= p2.at("rtt_us").to_number<std::int64_t>());
  // The whole matrix through one node: each node lists the two others (once it has pinged
  // them: a node pings those in its map when it samples).
  json::value all;
  CHECK(within(std::chrono::seconds(5), [&] {
    all = body(c->get("/v1/stats?window=1s&scope=cluster"));
    if (all.at("nodes").as_array().size() != 3) return false;
    for (const auto& n : all.at("nodes").as_array()) {
      const auto* peers = n.as_object().if_contains("peers");
      if (!peers || peers->as_array().size() != 2) return false;
      for (const auto& p : peers->as_array())
        if (p.at("reachable") != true || p.at("node") == n.at("node")) return false;
    }
    return true;
  }));
  INFO(json::serialize(all));
  temp_dir dir;
  auto metrics = c->get("/metrics").body;
  CHECK(metrics.find(R"(shardd_peer_rtt_seconds{node="node-1",peer="node-2"})") != std::string::npos);
  CHECK(metrics.find(R"(shardd_peer_reachable{node="node-1",peer="node-3"} 1)") != std::string::npos);
  auto [rc, said] = promtool_check(metrics, dir);
  CHECK(rc == 0);
  INFO(said);

  // node-3 stopped (SIGSTOP): its pings go unanswered.
  REQUIRE(::kill(cl.node(3).pid(), SIGSTOP) == 0);
  const auto unreachable = within(std::chrono::seconds(6), [&] {
    auto p = peer("node-3");
    return p && p->at("reachable") == false && p->contains("error");
  });
  const auto metric_zero = c->get("/metrics").body.find(R"(shardd_peer_reachable{node="node-1",peer="node-3"} 0)");
  REQUIRE(::kill(cl.node(3).pid(), SIGCONT) == 0);
  CHECK(unreachable);
  CHECK(metric_zero != std::string::npos);
  CHECK(peer("node-2")->at("reachable") == true);  // the others go on answering
  CHECK(within(std::chrono::seconds(6), [&] {
    auto p = peer("node-3");
    return p && p->at("reachable") == true;
  }));
}

TEST_CASE("readiness and the cluster's colour: 503 with the reason when the controller is gone, red when a shard's "
          "owner is down") {
  cluster cl(3, {}, monitor_config);
  auto n1 = cl.node(1).client(), n2 = cl.node(2).client();
  REQUIRE(n1->put("/v1/indexes/colours", R"({"shards":9})").status == 201);
  auto health = body(n1->get("/v1/cluster/health"));
  CHECK(health.at("status") == "green");
  CHECK(body(n1->get("/v1/cluster")).at("status") == "green");
  auto probe = cl.node(2).client();
  probe->set_token("");
  auto ready = probe->get("/v1/health/ready");
  CHECK(ready.status == 200);
  CHECK(body(ready).at("ready") == true);

  // node-3 dies: its shards are unserved, so the cluster is red, and says why.
  cl.node(3).kill9();
  cl.wait_states({"up", "up", "down"});
  auto red = body(n2->get("/v1/cluster/health"));  // relayed to the controller
  CHECK(red.at("status") == "red");
  REQUIRE(!red.at("reasons").as_array().empty());
  CHECK(std::string(red.at("reasons").as_array()[0].as_string()).find("node-3") != std::string::npos);
  CHECK(body(n1->get("/v1/cluster")).at("status") == "red");
  auto text = n1->get("/v1/cluster/health?format=text");
  CHECK(text.body.find("red") != std::string::npos);

  // The controller dies: node-2 serves what it owns but is not ready, and says why.
  cl.node(1).kill9();
  std::string last;
  auto not_ready = within(std::chrono::seconds(5), [&] {
    auto r = probe->get("/v1/health/ready");
    last = r.body;
    return r.status == 503;
  });
  INFO(last);
  REQUIRE(not_ready);
  const auto why = body(probe->get("/v1/health/ready"));
  CHECK(why.at("ready") == false);
  CHECK(std::string(why.at("reasons").as_array()[0].as_string()).find("controller") != std::string::npos);
  // Liveness is another matter: the process is fine.
  CHECK(probe->get("/v1/health").status == 200);
}

TEST_CASE("a sudden load on one shard is an anomaly within three intervals, cluster-wide, in /metrics and in the "
          "cluster's colour; its key leads the shard's hot keys") {
  constexpr int fast_ms = 100;
  cluster cl(2, {}, R"({"cluster":{"heartbeat_interval_ms":100,"heartbeat_miss_limit":5},"monitor":{"interval_ms":100}})");
  auto n1 = cl.node(1).client(), n2 = cl.node(2).client();
  REQUIRE(n1->put("/v1/indexes/hot", R"({"shards":4})").status == 201);
  const auto found = key_owned_by(*n1, "hot", "node-2");  // not a structured binding: lambdas capture these
  const std::string key = found.first;
  const std::int64_t shard = found.second;
  REQUIRE(n1->put("/v1/indexes/hot/records/" + key, R"({"v":1})").status == 201);
  std::this_thread::sleep_for(std::chrono::milliseconds(25 * fast_ms));  // baselines form (20 samples)
  CHECK(body(n1->get("/v1/cluster")).at("status") == "green");

  std::atomic<bool> stop{false};
  std::thread loader([&] {
    auto c = cl.node(1).client();  // through node-1: forwarded to the owner
    while (!stop) (void)c->get("/v1/indexes/hot/records/" + key);
  });
  const auto load_start = std::chrono::steady_clock::now();
  std::string last;
  auto opened = within(std::chrono::milliseconds(3 * fast_ms + 1000), [&] {
    auto r = n1->get("/v1/anomalies?scope=cluster&state=open");
    if (r.status != 200) return false;
    last = r.body;
    const auto b = body(r);
    for (const auto& n : b.at("nodes").as_array()) {
      if (n.at("node").as_string() != "node-2") continue;
      for (const auto& a : n.at("anomalies").as_array())
        if (a.at("series") == "read_rate" && a.at("index") == "hot" && a.at("shard").as_int64() == shard) return true;
    }
    return false;
  });
  INFO(last);
  CHECK(opened);
  const auto took = std::chrono::steady_clock::now() - load_start;
  CHECK(took < std::chrono::milliseconds(3 * fast_ms + 1000));
  // node-2's heartbeats tell the controller: the cluster turns yellow, and says why.
  auto yellow = within(std::chrono::milliseconds(2000), [&] {
    auto r = n2->get("/v1/cluster");
    last = r.body;
    return r.status == 200 && body(r).at("status") == "yellow";
  });
  INFO(last);
  CHECK(yellow);
  // /metrics on node-2 names it, and promtool still accepts the whole.
  auto m = n2->get("/metrics");
  CHECK(m.body.find("shardd_anomaly{series=\"read_rate\",index=\"hot\",shard=\"" + std::to_string(shard) + "\",node=\"node-2\"") !=
        std::string::npos);
  CHECK(m.body.find("shardd_anomalies_open{node=\"node-2\"} ") != std::string::npos);
  auto [rc, said] = promtool_check(m.body, cl.dir);
  INFO(said);
  CHECK(rc == 0);
  // The controller's journal has node-2's anomaly, from its heartbeats.
  auto journaled = within(std::chrono::milliseconds(2000), [&] {
    auto r = n1->get("/v1/events?type=anomaly");
    last = r.body;
    const auto b = body(r);
    for (const auto& e : b.at("events").as_array())
      if (e.at("node") == "node-2" && e.at("series") == "read_rate" && e.at("state") == "open" &&
          e.at("shard").as_int64() == shard)
        return true;
    return false;
  });
  INFO(last);
  CHECK(journaled);
  // The shard's hot keys, asked of node-1, come from node-2: the loaded key first.
  auto hk = n1->get("/v1/shards/hot/" + std::to_string(shard) + "/hot-keys?limit=3");
  INFO(hk.body);
  REQUIRE(hk.status == 200);
  const auto hb = body(hk);
  CHECK(hb.at("node") == "node-2");
  REQUIRE(!hb.at("keys").as_array().empty());
  CHECK(hb.at("keys").as_array()[0].at("key").as_string() == key);
  stop = true;
  loader.join();
  // The forecast answers for both nodes.
  auto fc = body(n1->get("/v1/forecast?scope=cluster&window=1m"));
  CHECK(fc.at("nodes").as_array().size() == 2);
  for (const auto& n : fc.at("nodes").as_array()) CHECK(n.as_object().contains("disk"));
}

TEST_CASE("the event journal records a move phase by phase, a node going down and why, and survives the controller's "
          "restart with its ids") {
  cluster cl(2, {}, monitor_config);
  auto n1 = cl.node(1).client(), n2 = cl.node(2).client();
  REQUIRE(n1->put("/v1/indexes/ev", R"({"shards":4})").status == 201);
  const auto shard = shard_on(*n1, "ev", "node-1");
  const auto id = start_migration(*n2, "ev", shard, "node-2");  // asked of a member: relayed to the controller
  wait_migration(*n1, id, [](const json::object& m) { return phase(m) == "done"; });

  auto events_of = [](net::https_client& c, const std::string& query) {
    auto r = c.get("/v1/events" + query);
    INFO(r.body);
    REQUIRE(r.status == 200);
    return body(r);
  };
  // The move, phase by phase, in order; the map versions it made say why.
  auto moves = events_of(*n2, "?type=migration");
  std::vector<std::string> phases;
  for (const auto& e : moves.at("events").as_array())
    if (e.at("migration").as_string() == id) phases.emplace_back(e.at("phase").as_string());
  INFO(json::serialize(moves));
  REQUIRE(!phases.empty());
  CHECK(phases.front() == "queued");
  CHECK(phases.back() == "done");
  CHECK(std::find(phases.begin(), phases.end(), "copying") != phases.end());
  auto maps = events_of(*n1, "?type=map");
  bool started = false, committed = false;
  for (const auto& e : maps.at("events").as_array()) {
    const std::string why(e.at("reason").as_string());
    started = started || why == "migration " + id + " started (api)";
    if (why == "migration " + id + " committed (api)") {
      committed = true;
      bool owner_line = false;
      for (const auto& l : e.at("changes").as_array())
        owner_line = owner_line || std::string(l.as_string()).find("owner node-1 -> node-2") != std::string::npos;
      CHECK(owner_line);
    }
  }
  CHECK(started);
  CHECK(committed);

  // node-2 dies: the controller records it down, and why.
  cl.node(2).kill9();
  cl.wait_states({"up", "down"});
  auto nodes = events_of(*n1, "?type=node");
  bool down = false;
  for (const auto& e : nodes.at("events").as_array())
    down = down || (e.at("node") == "node-2" && e.at("to") == "down" && e.at("reason") == "heartbeats missed: lease expired");
  INFO(json::serialize(nodes));
  CHECK(down);

  // The controller restarts: the journal is as it was, and new events take the next ids.
  const auto before = events_of(*n1, "?limit=1000");
  const auto last = before.at("last_id").as_int64();
  cl.node(1).kill9();
  cl.node(1).start();
  n1 = cl.node(1).client();
  const auto after = events_of(*n1, "?limit=1000");
  CHECK(after.at("first_id") == before.at("first_id"));
  REQUIRE(after.at("events").as_array().size() >= before.at("events").as_array().size());
  for (std::size_t i = 0; i < before.at("events").as_array().size(); ++i)
    CHECK(after.at("events").as_array()[i] == before.at("events").as_array()[i]);
  cl.node(2).start();
  cl.wait_states({"up", "up"});
  const auto later = events_of(*n1, "?since=" + std::to_string(last));
  REQUIRE(!later.at("events").as_array().empty());
  CHECK(later.at("events").as_array()[0].at("id").as_int64() == last + 1);
  auto text = n1->get("/v1/events?format=text&type=node");
  CHECK(text.body.find("node-2") != std::string::npos);
}

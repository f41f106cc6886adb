// The monitor without sockets: the per-shard counter registry, windows over sampled history,
// and the REST views of them (/v1/stats, /metrics) through rest_api.

#include "node/event_journal.hpp"
#include "node/monitor.hpp"
#include "node/shard_load.hpp"
#include "shardd/cluster_plan.hpp"
#include "shardd/placement.hpp"
#include "support/api_fixture.hpp"
#include "support/catch_result.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <catch2/catch.hpp>

#include <future>
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

TEST_CASE("GET /v1/stats/history: series per node and for the busiest shards that agree with /v1/stats; bounds refused") {
  api_fixture f(100);
  REQUIRE(f.put("/v1/indexes/h", R"({"shards":4})").status == 201);
  for (int i = 0; i < 40; ++i) REQUIRE(f.put("/v1/indexes/h/records/k" + std::to_string(i), R"({"n":1})").status == 201);
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  for (int i = 0; i < 60; ++i) REQUIRE(f.get("/v1/indexes/h/records/k7").status == 200);
  const auto hot = get_json(f, "/v1/indexes/h/records/k7").at("shard").as_int64();  // 61 reads
  std::this_thread::sleep_for(std::chrono::milliseconds(350));

  auto h = get_json(f, "/v1/stats/history?window=1h&points=500");
  auto st = get_json(f, "/v1/stats?window=1h");
  const auto& t = h.at("t").as_array();
  REQUIRE(t.size() >= 5);
  CHECK(t.size() <= 500);
  for (std::size_t i = 1; i < t.size(); ++i) CHECK(t[i].as_int64() > t[i - 1].as_int64());
  const auto& totals = h.at("totals").as_object();
  for (const char* k : {"requests_per_sec", "forwarded_per_sec", "p99_us", "data_bytes", "disk_used_bytes", "rss_bytes"}) {
    INFO(k);
    CHECK(totals.at(k).as_array().size() == t.size());
  }
  double peak = 0;
  bool some_p99 = false;
  for (const auto& v : totals.at("requests_per_sec").as_array()) peak = std::max(peak, v.to_number<double>());
  for (const auto& v : totals.at("p99_us").as_array()) some_p99 = some_p99 || !v.is_null();
  CHECK(peak > 0);
  CHECK(some_p99);
  CHECK(h.at("shards_total").as_int64() == 4);
  const auto& shards = h.at("shards").as_array();
  REQUIRE(shards.size() == 4);  // top 10 by default, four there are
  CHECK(shards[0].at("shard").as_int64() == hot);  // the busiest first
  for (std::size_t i = 1; i < shards.size(); ++i)
    CHECK(shards[i - 1].at("requests").as_int64() >= shards[i].at("requests").as_int64());
  // Each shard's requests over the window are /v1/stats' reads, writes, deletes and scans of it,
  // and its last bytes and records are what /v1/stats says it holds.
  for (const auto& s : shards) {
    const json::object* w = nullptr;
    for (const auto& x : st.at("shards").as_array())
      if (x.at("shard") == s.at("shard")) w = &x.as_object();
    REQUIRE(w);
    INFO("shard " << s.at("shard"));
    CHECK(s.at("requests").as_int64() ==
          w->at("reads").as_int64() + w->at("writes").as_int64() + w->at("deletes").as_int64() + w->at("scans").as_int64());
    CHECK(s.at("bytes").as_array().back() == w->at("bytes"));
    CHECK(s.at("records").as_array().back() == w->at("records"));
    for (const char* k : {"reads_per_sec", "writes_per_sec", "p99_us", "bytes", "records"}) CHECK(s.at(k).as_array().size() == t.size());
  }
  // The read rates of the hot shard add up to its reads: each point's rate times its length.
  double reads = 0;
  const auto& rr = shards[0].at("reads_per_sec").as_array();
  for (std::size_t i = 1; i < t.size(); ++i)
    if (!rr[i].is_null()) reads += rr[i].to_number<double>() * static_cast<double>(t[i].as_int64() - t[i - 1].as_int64()) / 1000.0;
  CHECK(reads == Approx(61).margin(0.5));  // all fell after the first point (three samples passed before them)

  // Fewer points: merged samples, the same totals.
  auto few = get_json(f, "/v1/stats/history?window=1h&points=3");
  CHECK(few.at("t").as_array().size() <= 3);
  CHECK(few.at("t").as_array().back().as_int64() >= t.back().as_int64());  // the last sample (or a newer one)
  CHECK(few.at("shards").as_array()[0].at("requests") == shards[0].at("requests"));
  // top, index and shard choose the shards.
  auto one = get_json(f, "/v1/stats/history?top=1");
  CHECK(one.at("shards").as_array().size() == 1);
  CHECK(one.at("shards_total").as_int64() == 4);
  auto only = get_json(f, "/v1/stats/history?index=h&shard=" + std::to_string(hot));
  REQUIRE(only.at("shards").as_array().size() == 1);
  CHECK(only.at("shards").as_array()[0].at("shard").as_int64() == hot);
  CHECK(get_json(f, "/v1/stats/history?top=0").at("shards").as_array().empty());
  for (const char* bad : {"/v1/stats/history?points=0", "/v1/stats/history?points=501", "/v1/stats/history?top=51",
                          "/v1/stats/history?window=abc", "/v1/stats/history?window=9000h", "/v1/stats/history?shard=1",
                          "/v1/stats/history?scope=planet", "/v1/stats/history?colour=blue",
                          "/v1/stats/history?scope=cluster&points=500&top=50"}) {
    INFO(bad);
    CHECK(f.get(bad).status == 400);
  }
  CHECK(f.get("/v1/stats/history?index=nope").status == 404);
  CHECK(f.get("/v1/stats/history?index=h&shard=99").status == 404);
  CHECK(f.get("/v1/stats/history?index=h&shard=x").status == 404);
}

TEST_CASE("the hot-key sampler takes one request in eight and finds the busiest keys; a rotation keeps the last sketch") {
  hot_key_sampler h;
  int due = 0;
  for (int i = 0; i < 800; ++i) due += h.due() ? 1 : 0;
  CHECK(due == 100);
  for (int i = 0; i < 500; ++i) h.offer("hot");
  for (int i = 0; i < 200; ++i) h.offer("warm");
  for (int i = 0; i < 1000; ++i) h.offer("cold-" + std::to_string(i));  // 1,000 keys seen once: more than the sketch holds
  const auto t0 = std::chrono::steady_clock::now();
  auto v = h.top(2, t0);
  REQUIRE(v.top.size() == 2);
  CHECK(v.top[0].key == "hot");
  CHECK(v.top[0].count - v.top[0].error <= 500);
  CHECK(v.top[0].count >= 500);
  CHECK(v.top[1].key == "warm");
  CHECK(v.sampled == 1700);
  // A rotation: the counts so far stay visible beside the new sketch's; a second drops them.
  h.rotate(t0 + hot_key_sampler::rotate_after + std::chrono::seconds(1));
  for (int i = 0; i < 300; ++i) h.offer("new");
  v = h.top(3, t0 + hot_key_sampler::rotate_after + std::chrono::seconds(2));
  CHECK(v.sampled == 2000);
  CHECK(v.top[0].key == "hot");
  h.rotate(t0 + 2 * hot_key_sampler::rotate_after + std::chrono::seconds(2));
  v = h.top(3, t0 + 2 * hot_key_sampler::rotate_after + std::chrono::seconds(3));
  CHECK(v.sampled == 300);
  REQUIRE(!v.top.empty());
  CHECK(v.top[0].key == "new");
}

TEST_CASE("hot keys of a shard through the API: the busiest key first; unknown shard, bad limit and monitor off refused") {
  api_fixture f(100);
  REQUIRE(f.put("/v1/indexes/h", R"({"shards":1})").status == 201);
  for (int i = 0; i < 20; ++i) REQUIRE(f.put("/v1/indexes/h/records/k" + std::to_string(i), "{}").status == 201);
  for (int i = 0; i < 800; ++i) REQUIRE(f.get("/v1/indexes/h/records/k7").status == 200);
  for (int i = 0; i < 200; ++i) REQUIRE(f.get("/v1/indexes/h/records/k" + std::to_string(i % 20)).status == 200);
  auto v = get_json(f, "/v1/shards/h/0/hot-keys?limit=3");
  CHECK(v.at("sample_every").as_int64() == 8);
  CHECK(v.at("sampled").as_int64() == (20 + 800 + 200) / 8 + 1);
  const auto& keys = v.at("keys").as_array();
  REQUIRE(keys.size() == 3);
  CHECK(keys[0].at("key") == "k7");
  CHECK(keys[0].at("estimated_requests").as_int64() >= 700);
  auto text = f.get("/v1/shards/h/0/hot-keys?format=text");
  REQUIRE(text.status == 200);
  CHECK(text.body.find("k7") != std::string::npos);
  CHECK(f.get("/v1/shards/nope/0/hot-keys").status == 404);
  CHECK(f.get("/v1/shards/h/9/hot-keys").status == 404);
  CHECK(f.get("/v1/shards/h/x/hot-keys").status == 400);
  CHECK(f.get("/v1/shards/h/0/hot-keys?limit=0").status == 400);
  CHECK(f.get("/v1/shards/h/0/hot-keys?limit=65").status == 400);
  REQUIRE(f.put("/v1/monitor/settings", R"({"interval_ms":0})").status == 200);
  CHECK(f.get("/v1/shards/h/0/hot-keys").status == 409);
}

TEST_CASE("a write load on an idle shard opens an anomaly, turns the cluster yellow and shows in /metrics; records "
          "growing at a steady pace are forecast to reach a limit") {
  api_fixture f(100);
  REQUIRE(f.put("/v1/indexes/a", R"({"shards":1})").status == 201);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // the baselines form (20 samples)
  CHECK(get_json(f, "/v1/anomalies").at("open").as_int64() == 0);
  CHECK(get_json(f, "/v1/cluster/health").at("status") == "green");
  // About 100 writes a second for 2 s, one every 10 ms.
  int n = 0;
  const auto start = std::chrono::steady_clock::now();
  bool seen_open = false, seen_yellow = false, seen_metric = false;
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(2000)) {
    REQUIRE(f.put("/v1/indexes/a/records/r" + std::to_string(n++), R"({"v":1})").status == 201);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (n % 20 == 0 && !seen_yellow) {
      auto v = get_json(f, "/v1/anomalies?state=open");
      for (const auto& a : v.at("anomalies").as_array())
        if (a.at("series") == "write_rate" && a.at("index") == "a" && a.at("shard").as_int64() == 0) seen_open = true;
      if (seen_open) {
        const auto h = get_json(f, "/v1/cluster/health");
        seen_yellow = h.at("status") == "yellow";
        seen_metric = f.get("/metrics").body.find("shardd_anomaly{series=\"write_rate\",index=\"a\",shard=\"0\",node=\"n1\"") !=
                      std::string::npos;
        INFO(json::serialize(h));
        CHECK(seen_yellow);
      }
    }
  }
  CHECK(seen_open);
  CHECK(seen_yellow);
  CHECK(seen_metric);
  auto all = get_json(f, "/v1/anomalies");
  REQUIRE(!all.at("anomalies").as_array().empty());
  const auto& a = all.at("anomalies").as_array()[0];
  CHECK(a.at("baseline").to_number<double>() < 5);
  // The sample that opened it was over the threshold (5 sigma, sigma at least 2 writes/s).
  CHECK(a.at("value").to_number<double>() > a.at("baseline").to_number<double>() + 5 * a.at("sigma").to_number<double>());
  CHECK(a.at("sigma").to_number<double>() >= 2);
  CHECK(a.at("score").to_number<double>() > 5);
  CHECK(f.get("/v1/anomalies?format=text").body.find("write_rate") != std::string::npos);

  // The records grew about linearly for 2 s: at that pace they reach n + 1000 in about 10 s.
  auto fc = get_json(f, "/v1/forecast?window=2s&shard_records_limit=" + std::to_string(n + 1000));
  REQUIRE(fc.at("shards").as_array().size() == 1);
  const auto& rec = fc.at("shards").as_array()[0].at("records");
  INFO(json::serialize(fc));
  CHECK(rec.at("now").to_number<double>() == Approx(n).margin(20));
  CHECK(rec.at("r2").to_number<double>() > 0.9);
  CHECK(rec.at("slope_per_hour").to_number<double>() > 3600 * 20);
  REQUIRE(rec.at("seconds_to_limit").is_number());
  CHECK(rec.at("seconds_to_limit").to_number<double>() > 2);
  CHECK(rec.at("seconds_to_limit").to_number<double>() < 60);
  CHECK(fc.at("disk").at("watermark_percent").as_int64() == 85);
  for (const char* bad : {"/v1/forecast?window=x", "/v1/forecast?disk_watermark_percent=0", "/v1/forecast?disk_watermark_percent=101",
                          "/v1/forecast?shard_bytes_limit=-1", "/v1/forecast?scope=moon", "/v1/anomalies?state=closed",
                          "/v1/anomalies?limit=1000"}) {
    INFO(bad);
    CHECK(f.get(bad).status == 400);
  }
  // Sampling off: what is open closes, with why.
  REQUIRE(f.put("/v1/monitor/settings", R"({"interval_ms":0})").status == 200);
  auto after = get_json(f, "/v1/anomalies");
  CHECK(after.at("open").as_int64() == 0);
  for (const auto& x : after.at("anomalies").as_array()) CHECK(x.at("state") == "closed");

  // The journal heard of it (the controller takes its own node's events at each tick): opened
  // with its figures, closed with why, and the settings change.
  bool opened = false, closed = false, settings = false;
  for (int i = 0; i < 40 && !(opened && closed && settings); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto ev = get_json(f, "/v1/events?type=anomaly,monitor");
    for (const auto& e : ev.at("events").as_array()) {
      if (e.at("type") == "monitor") settings = settings || (e.at("interval_ms").as_int64() == 0 && e.at("node") == "n1");
      if (e.at("type") != "anomaly" || e.at("series") != "write_rate") continue;
      CHECK(e.at("node") == "n1");
      CHECK(e.at("index") == "a");
      if (e.at("state") == "open") {
        opened = true;
        CHECK(e.at("score").to_number<double>() > 5);
      } else {
        closed = closed || e.at("closed_because") == "sampling was turned off";
      }
    }
  }
  CHECK(opened);
  CHECK(closed);
  CHECK(settings);
}

TEST_CASE("the event journal keeps the newest events in order, durably, with ids that go on increasing after a reopen") {
  temp_dir dir;
  auto opened = storage::store::open(storage::store_options{dir.sub("db")});
  REQUIRE(opened);
  auto store = std::move(*opened);
  auto add = [&](event_journal& j, const std::string& type, int n) {
    for (int i = 0; i < n; ++i) {
      event e;
      e.type = type;
      e.summary = type + " " + std::to_string(i);
      e.fields = {{"node", std::string("node-1")}, {"n", std::int64_t{i}}};
      e.changes = {"line " + std::to_string(i)};
      std::promise<bool> written;
      store->submit(j.append(std::move(e)), [&written](result<std::vector<storage::op_status>> r) { written.set_value(r.has_value()); });
      REQUIRE(written.get_future().get());
    }
  };
  {
    event_journal j(store.get(), 10);
    add(j, "map", 8);
    add(j, "node", 5);  // 13 in all: the 3 oldest go
    CHECK(j.first_id() == 4);
    CHECK(j.last_id() == 13);
    const auto all = j.list(0, {}, 100);
    REQUIRE(all.size() == 10);
    CHECK(all.front().id == 4);
    CHECK(all.back().id == 13);
    CHECK(j.list(10, {}, 100).size() == 3);
    CHECK(j.list(0, {"node"}, 100).size() == 5);
    CHECK(j.list(0, {"map"}, 2).size() == 2);
    CHECK(j.list(13, {}, 100).empty());
  }
  // Reopened over the same store: the same ten, and the next id follows the last.
  event_journal again(store.get(), 10);
  const auto kept = again.list(0, {}, 100);
  REQUIRE(kept.size() == 10);
  CHECK(kept.front().id == 4);
  CHECK(kept.front().summary == "map 3");
  CHECK(kept.front().changes == std::vector<std::string>{"line 3"});
  REQUIRE(kept.front().fields.size() == 2);
  CHECK(std::get<std::int64_t>(kept.front().fields[1].second) == 3);
  add(again, "anomaly", 1);
  CHECK(again.last_id() == 14);
  CHECK(again.list(13, {}, 10).front().type == "anomaly");
  CHECK(store->scan_meta("event/")->size() == 10);
  CHECK_FALSE(event_from_json("{\"type\":\"map\"}"));  // no id
  CHECK_FALSE(event_from_json("[]"));
  store->close();
}

TEST_CASE("GET /v1/events: map versions with what changed and why, filtered by type and id; bad parameters refused") {
  api_fixture f(100);
  REQUIRE(f.put("/v1/indexes/ev", R"({"shards":2})").status == 201);
  REQUIRE(f.put("/v1/migrations/settings", R"({"max_outgoing":3})").status == 200);
  auto v = get_json(f, "/v1/events");
  const auto& evs = v.at("events").as_array();
  REQUIRE(evs.size() >= 3);
  bool created = false, settings = false;
  std::int64_t prev = 0;
  for (const auto& e : evs) {
    CHECK(e.at("id").as_int64() > prev);
    prev = e.at("id").as_int64();
    if (e.at("type") == "map" && e.at("reason") == "API: create index ev") {
      const auto& ch = e.at("changes").as_array();
      REQUIRE(!ch.empty());
      CHECK(ch[0] == "index ev created (hash, 2 shards)");
      created = true;
    }
    if (e.at("type") == "settings") {
      CHECK(e.at("changes").as_array()[0] == "setting max_outgoing: 2 -> 3");
      settings = true;
    }
  }
  CHECK(created);
  CHECK(settings);
  CHECK(v.at("last_id").as_int64() == prev);
  auto only = get_json(f, "/v1/events?type=settings");
  CHECK(only.at("events").as_array().size() == 1);
  auto after = get_json(f, "/v1/events?since=" + std::to_string(prev));
  CHECK(after.at("events").as_array().empty());
  CHECK(get_json(f, "/v1/events?limit=1").at("events").as_array().size() == 1);
  auto text = f.get("/v1/events?format=text");
  REQUIRE(text.status == 200);
  CHECK(text.body.find("index ev created") != std::string::npos);
  for (const char* bad : {"/v1/events?since=x", "/v1/events?limit=0", "/v1/events?limit=1001", "/v1/events?type=weather",
                          "/v1/events?type=map,", "/v1/events?colour=1"}) {
    INFO(bad);
    CHECK(f.get(bad).status == 400);
  }
}

TEST_CASE("a shard growing steadily toward its size limit is a forecast event on the journal") {
  api_fixture f(100, [](node_config& c) {
    c.monitor_shard_bytes_limit = 50000;
    c.monitor_forecast_horizon_ms = 3600 * 1000;
  });
  REQUIRE(f.put("/v1/indexes/g", R"({"shards":1})").status == 201);
  const std::string doc = R"({"pad":")" + std::string(80, 'x') + R"("})";
  bool seen = false;
  std::string last;
  const auto start = std::chrono::steady_clock::now();
  for (int n = 0; !seen && std::chrono::steady_clock::now() - start < std::chrono::seconds(8); ++n) {
    REQUIRE(f.put("/v1/indexes/g/records/r" + std::to_string(n), doc).status == 201);  // ~100 bytes each, ~60 a second
    std::this_thread::sleep_for(std::chrono::milliseconds(15));
    if (n % 20) continue;
    auto ev = get_json(f, "/v1/events?type=forecast");
    last = json::serialize(ev);
    for (const auto& e : ev.at("events").as_array())
      if (e.at("series") == "shard_bytes" && e.at("index") == "g" && e.at("state") == "within_horizon") {
        seen = true;
        CHECK(e.at("limit").to_number<double>() == 50000);
        CHECK(e.at("seconds_to_limit").to_number<double>() > 0);
        CHECK(e.at("seconds_to_limit").to_number<double>() < 3600);
        CHECK(e.at("r2").to_number<double>() >= 0.5);
        CHECK(std::string(e.at("summary").as_string()).find("shard g/0 bytes reaches its limit of 50000") != std::string::npos);
      }
  }
  INFO(last);
  CHECK(seen);
  // /v1/forecast takes the configured limit as its default.
  auto fc = get_json(f, "/v1/forecast?window=1m");
  CHECK(fc.at("shards").as_array()[0].at("bytes").at("limit").to_number<double>() == 50000);
}

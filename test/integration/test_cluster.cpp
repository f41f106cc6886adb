// Integration tests of a cluster: real shardd processes on loopback, real mutual TLS.

#include "net/peer_transport.hpp"
#include "shardd/peer_messages.hpp"
#include "support/catch_result.hpp"
#include "support/json_body.hpp"
#include "support/peer_call.hpp"
#include "support/cluster.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>

#include <map>
#include <set>
#include <thread>

using namespace shardd;
using namespace shardd::test;
namespace json = boost::json;

namespace {

// One map_get to a peer address with the given identity; the refusal, if any.
result<peer::frame> call_as(const tls_config& tls, const net::peer_identity& who, std::uint16_t port) {
  peer::frame f;
  f.header.type = peer::frame_type::map_get;
  return call_peer(tls, who, port, std::move(f), std::chrono::seconds(3));
}

}  // namespace

TEST_CASE("three nodes: an index made through node 2, 10,000 records written through node 3, all read through node 1") {
  // The rebalancer stays off: the test checks every answer against the owners it read once.
  cluster cl(3, {}, R"({"rebalance":{"mode":"off"}})");
  auto n1 = cl.node(1).client(), n2 = cl.node(2).client(), n3 = cl.node(3).client();
  auto created = n2->put("/v1/indexes/users", R"({"shards":24})");
  REQUIRE(created.status == 201);
  // The change is known everywhere once it is acknowledged.
  CHECK(n3->get("/v1/indexes/users").status == 200);
  CHECK(n1->get("/v1/indexes/users").status == 200);

  auto own = owners(*n1, "users");
  std::set<std::string> holders;
  for (const auto& [s, n] : own) holders.insert(n);
  CHECK(holders.size() == 3);  // 24 shards spread over every node

  for (int from = 0; from < 10000; from += 2500) {
    auto r = n3->post("/v1/indexes/users/bulk", ndjson_puts(from, from + 2500));
    REQUIRE(r.status == 200);
    CHECK(body(r).at("created").as_int64() == 2500);
    CHECK(body(r).at("error_count").as_int64() == 0);
  }
  // Single writes through node 3 land on their owner, who answers.
  auto single = n3->put("/v1/indexes/users/records/k0", R"({"n":0,"again":true})");
  REQUIRE(single.status == 200);
  CHECK(single.header("x-shardd-node") == own[body(single).at("shard").as_int64()]);

  int answered_by_others = 0;
  for (int i = 0; i < 10000; ++i) {
    auto r = n1->get("/v1/indexes/users/records/k" + std::to_string(i));
    REQUIRE(r.status == 200);
    auto b = body(r);
    REQUIRE(b.at("doc").at("n").as_int64() == i);
    const auto owner = own[b.at("shard").as_int64()];
    REQUIRE(r.header("x-shardd-node") == owner);
    CHECK(!r.header("x-shardd-map-version").empty());
    answered_by_others += owner != "node-1";
  }
  CHECK(answered_by_others > 3000);  // most were forwarded

  // A forwarded request keeps its id: the answer and both nodes' access lines name it.
  std::string remote_key;
  for (int i = 0; i < 100 && remote_key.empty(); ++i)
    if (own[body(n1->get("/v1/ring/lookup?index=users&key=k" + std::to_string(i))).at("shard").as_int64()] == "node-2")
      remote_key = "k" + std::to_string(i);
  REQUIRE_FALSE(remote_key.empty());
  // ?pretty through a forward: indented once, the same value.
  auto pretty = n1->get("/v1/indexes/users/records/" + remote_key + "?pretty");
  REQUIRE(pretty.status == 200);
  CHECK(pretty.header("x-shardd-node") == "node-2");
  CHECK(pretty.body.find("\n  \"doc\": {\n    \"n\": ") != std::string::npos);
  CHECK(json::parse(pretty.body) == json::parse(n1->get("/v1/indexes/users/records/" + remote_key).body));
  auto traced = n1->request("GET", "/v1/indexes/users/records/" + remote_key, {}, {{"X-Request-Id", "fwd-trace-7"}});
  REQUIRE(traced.status == 200);
  CHECK(traced.header("x-request-id") == "fwd-trace-7");
  CHECK(traced.header("x-shardd-node") == "node-2");
  bool logged = false;
  for (int i = 0; i < 50 && !logged; ++i) {
    logged = cl.node(1).log().find("request_id=fwd-trace-7 forwarded_to=node-2") != std::string::npos &&
             cl.node(2).log().find("request_id=fwd-trace-7 forwarded_from=node-1") != std::string::npos;
    if (!logged) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(logged);

  // The global count is the sum of the shard counts, through any node.
  std::int64_t sum = 0;
  const auto shards = body(n2->get("/v1/shards?index=users"));
  for (const auto& s : shards.at("shards").as_array()) sum += s.at("records").as_int64();
  CHECK(sum == 10000);
  for (auto* c : {n1.get(), n2.get(), n3.get()}) CHECK(body(c->get("/v1/indexes/users/count")).at("count").as_int64() == 10000);
  CHECK(body(n1->get("/v1/indexes/users")).at("records").as_int64() == 10000);
}

TEST_CASE("a range scan through any node returns keys in order with no gap or duplicate") {
  cluster cl;
  auto n1 = cl.node(1).client();
  REQUIRE(n1->put("/v1/indexes/r", R"({"partitioning":"range","split_points":["b","d","f","h","k","n","q","t","w"]})").status == 201);
  std::vector<std::string> keys;
  std::string ndjson;
  for (char a = 'a'; a <= 'z'; ++a)
    for (int i = 0; i < 40; ++i) {
      std::string k = std::string(1, a) + (i < 10 ? "0" : "") + std::to_string(i);
      keys.push_back(k);
      ndjson += R"({"op":"put","key":")" + k + R"(","doc":1})" + "\n";
    }
  REQUIRE(body(cl.node(2).client()->post("/v1/indexes/r/bulk", ndjson)).at("created").as_int64() == 1040);
  std::set<std::string> holders;
  for (const auto& [s, n] : owners(*n1, "r")) holders.insert(n);
  CHECK(holders.size() >= 2);
  for (int via = 1; via <= 3; ++via) {
    auto c = cl.node(via).client();
    std::vector<std::string> seen;
    std::string cursor;
    for (int page = 0; page < 200; ++page) {
      auto b = body(c->get("/v1/indexes/r/records?limit=33" + (cursor.empty() ? "" : "&cursor=" + cursor)));
      for (const auto& rec : b.at("records").as_array()) seen.emplace_back(rec.at("key").as_string());
      if (b.at("next_cursor").is_null()) break;
      cursor = std::string(b.at("next_cursor").as_string());
    }
    INFO("via node " << via);
    CHECK(seen == keys);
    auto bounded = body(c->get("/v1/indexes/r/records?start=c05&end=m10&limit=1000"));
    std::vector<std::string> want(std::lower_bound(keys.begin(), keys.end(), "c05"), std::lower_bound(keys.begin(), keys.end(), "m10"));
    std::vector<std::string> got;
    for (const auto& rec : bounded.at("records").as_array()) got.emplace_back(rec.at("key").as_string());
    CHECK(got == want);
  }
}

TEST_CASE("a scan of large documents on another node comes in pages of bounded size, every record once") {
  cluster cl;
  auto n1 = cl.node(1).client();
  REQUIRE(n1->put("/v1/indexes/big", R"({"partitioning":"range","split_points":["m"]})").status == 201);
  // All the documents go into one shard held by another node: its scan replies cross the
  // peer protocol.
  const auto own = owners(*n1, "big");
  const std::string prefix = own.at(0) != "node-1" ? "a" : "z";
  REQUIRE(own.at(prefix == "a" ? 0 : 1) != "node-1");
  const std::string pad(900000, 'p');
  std::vector<std::string> keys;
  for (int i = 0; i < 40; ++i) {
    const std::string k = prefix + (i < 10 ? "0" : "") + std::to_string(i);
    keys.push_back(k);
    REQUIRE(n1->put("/v1/indexes/big/records/" + k, R"({"i":)" + std::to_string(i) + R"(,"pad":")" + pad + R"("})").status == 201);
  }
  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  std::size_t first_page = 0;
  for (; pages < 100; ++pages) {
    auto r = n1->get("/v1/indexes/big/records?limit=1000" + (cursor.empty() ? "" : "&cursor=" + cursor));
    REQUIRE(r.status == 200);
    auto b = body(r);
    const auto& recs = b.at("records").as_array();
    if (pages == 0) first_page = recs.size();
    for (const auto& rec : recs) {
      seen.emplace_back(rec.at("key").as_string());
      CHECK(rec.at("doc").at("pad").as_string().size() == pad.size());
      CHECK(rec.at("doc").at("i").as_int64() == static_cast<std::int64_t>(seen.size() - 1));
    }
    if (b.at("next_cursor").is_null()) break;
    cursor = std::string(b.at("next_cursor").as_string());
  }
  // 36 MB in one shard: a page stops at about 16 MiB instead of taking all 40.
  CHECK(first_page >= 10);
  CHECK(first_page < 40);
  CHECK(pages >= 2);
  CHECK(seen == keys);
  CHECK(body(n1->get("/v1/indexes/big/count")).at("count").as_int64() == 40);
}

TEST_CASE("a scan page over many shards ends at limits.max_scan_page_bytes with a cursor, every record once") {
  cluster cl(3, {}, R"({"cluster":{"heartbeat_interval_ms":200,"heartbeat_miss_limit":3},"limits":{"max_scan_page_bytes":1048576}})");
  auto n1 = cl.node(1).client();
  REQUIRE(n1->put("/v1/indexes/wide", R"({"shards":12})").status == 201);
  // 3 MB over 12 shards (about 250 KB each, on all three nodes): without the cap across
  // shards one page would take it all.
  std::set<std::string> keys;
  std::string lines;
  const std::string pad(50000, 'p');
  for (int i = 0; i < 60; ++i) {
    keys.insert("w" + std::to_string(i));
    lines += R"({"op":"put","key":"w)" + std::to_string(i) + R"(","doc":{"pad":")" + pad + "\"}}\n";
  }
  REQUIRE(n1->post("/v1/indexes/wide/bulk", lines).status == 200);
  std::set<std::string> seen;
  std::string cursor;
  int pages = 0;
  std::size_t largest = 0;
  for (; pages < 100; ++pages) {
    auto r = n1->get("/v1/indexes/wide/records?limit=1000" + (cursor.empty() ? "" : "&cursor=" + cursor));
    REQUIRE(r.status == 200);
    largest = std::max(largest, r.body.size());
    auto b = body(r);
    for (const auto& rec : b.at("records").as_array()) CHECK(seen.insert(std::string(rec.at("key").as_string())).second);
    if (b.at("next_cursor").is_null()) break;
    cursor = std::string(b.at("next_cursor").as_string());
  }
  CHECK(seen == keys);
  CHECK(pages >= 2);
  CHECK(largest < 1536 * 1024);  // the cap plus at most one shard's part
}

TEST_CASE("peers without a certificate from the cluster CA, or from another cluster, are refused") {
  cluster cl(1);
  const auto peer_port = cl.node(1).peer_port();
  // No client certificate: the TLS handshake fails.
  net::https_client plain("127.0.0.1", peer_port, test_certs().ca(), test_token);
  plain.set_timeout(std::chrono::seconds(3));
  CHECK_THROWS(plain.get("/v1/health"));

  // A certificate of another CA (it trusts our CA, so only the server side refuses).
  tls_config rogue{test_certs().rogue_dir + "/rogue.pem", test_certs().rogue_dir + "/rogue.key", test_certs().ca()};
  auto r = call_as(rogue, net::peer_identity{"shardd", "rogue"}, peer_port);
  REQUIRE(!r);
  CHECK(r.error().code == errc::unavailable);

  // The right CA but another cluster id: the handshake succeeds, the hello is refused.
  tls_config good{test_certs().cert("node-5"), test_certs().key("node-5"), test_certs().ca()};
  auto r2 = call_as(good, net::peer_identity{"another-cluster", "node-5"}, peer_port);
  REQUIRE(!r2);
  CHECK(r2.error().detail.find("cluster") != std::string::npos);

  // A node may not claim another node's id: the id must match its certificate.
  auto r3 = call_as(good, net::peer_identity{"shardd", "node-1"}, peer_port);
  REQUIRE(!r3);
  CHECK(r3.error().detail.find("common name") != std::string::npos);

  // With the right certificate and identity the handshake succeeds, but node-5 is not a
  // member: it may not read the map.
  auto outsider = call_as(good, net::peer_identity{"shardd", "node-5"}, peer_port);
  REQUIRE(outsider);
  CHECK(refusal(outsider) == errc::forbidden);
  // A member may.
  tls_config member{test_certs().cert("node-1"), test_certs().key("node-1"), test_certs().ca()};
  auto ok = call_as(member, net::peer_identity{"shardd", "node-1"}, peer_port);
  REQUIRE(ok);
  CHECK(ok->header.type == peer::frame_type::map_reply);

  const auto log = cl.node(1).log();
  CHECK(log.find("event=peer_refused") != std::string::npos);
  // The node still serves its real peers.
  CHECK(cl.node(1).client()->get("/v1/cluster").status == 200);
}

TEST_CASE("a node killed with SIGKILL is marked down quickly and its shards answer 503 at once") {
  cluster cl;
  auto n1 = cl.node(1).client();
  REQUIRE(n1->put("/v1/indexes/d", R"({"shards":12})").status == 201);
  REQUIRE(body(n1->post("/v1/indexes/d/bulk", ndjson_puts(0, 600))).at("error_count").as_int64() == 0);
  auto own = owners(*n1, "d");

  cl.node(3).kill9();
  const auto killed = std::chrono::steady_clock::now();
  cl.wait_states({"up", "up", "down"});
  const auto detected = std::chrono::steady_clock::now() - killed;
  CHECK(detected < std::chrono::seconds(3));  // 3 missed 200 ms heartbeats plus a tick

  // Every record answers: its owner's data, or a quick 503 naming the shard and owner.
  auto n2 = cl.node(2).client();
  int unavailable = 0;
  for (int i = 0; i < 600; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = n2->get("/v1/indexes/d/records/k" + std::to_string(i));
    const auto took = std::chrono::steady_clock::now() - t0;
    if (r.status == 503) {
      ++unavailable;
      CHECK(took < std::chrono::milliseconds(500));
      const std::string detail(body(r).at("detail").as_string());
      CHECK(detail.find("node-3") != std::string::npos);
      CHECK(detail.find("shard") != std::string::npos);
    } else {
      REQUIRE(r.status == 200);
      CHECK(own[body(r).at("shard").as_int64()] != "node-3");
    }
  }
  CHECK(unavailable > 0);
  CHECK(n2->get("/v1/indexes/d/count").status == 503);  // a count must be exact or nothing
  // Per-shard views answered by the owner (a full check, hot keys) say the owner is down.
  std::int64_t on3 = -1;
  for (const auto& [sh, n] : own)
    if (n == "node-3") on3 = sh;
  REQUIRE(on3 >= 0);
  for (auto r : {n2->post("/v1/shards/d/" + std::to_string(on3) + "/verify", ""),
                 n2->get("/v1/shards/d/" + std::to_string(on3) + "/hot-keys")}) {
    INFO(r.body);
    CHECK(r.status == 503);
    CHECK(std::string(body(r).at("detail").as_string()).find("node-3") != std::string::npos);
  }

  // Back up after a restart, with its records.
  cl.node(3).start();
  cl.wait_states({"up", "up", "up"});
  CHECK(body(n2->get("/v1/indexes/d/count")).at("count").as_int64() == 600);
}

TEST_CASE("a node's own view, and removing a down node: refused until forced, then its shards start again empty elsewhere") {
  cluster cl;
  auto n1 = cl.node(1).client();
  REQUIRE(n1->put("/v1/indexes/d", R"({"shards":12})").status == 201);
  REQUIRE(body(n1->post("/v1/indexes/d/bulk", ndjson_puts(0, 600))).at("error_count").as_int64() == 0);
  auto own = owners(*n1, "d");
  std::size_t on3 = 0;
  for (const auto& [s, n] : own) on3 += n == "node-3";
  REQUIRE(on3 > 0);

  auto n2 = cl.node(2).client();
  auto view = n2->get("/v1/cluster/nodes/node-3");  // relayed to the controller
  REQUIRE(view.status == 200);
  auto v = body(view);
  CHECK(v.at("state") == "up");
  CHECK(v.at("shards").as_int64() == static_cast<std::int64_t>(on3));
  CHECK(v.at("shard_list").as_array().size() == on3);
  CHECK(v.at("rest_address").as_string() == "127.0.0.1:" + std::to_string(cl.node(3).rest_port()));
  CHECK(v.at("migration_ids_in").as_array().empty());
  CHECK(v.at("drain").is_null());
  CHECK(n2->get("/v1/cluster/nodes/node-9").status == 404);

  // Up, the controller, unknown: refused.
  auto up = n1->del("/v1/cluster/nodes/node-2");
  CHECK(up.status == 409);
  CHECK(std::string(body(up).at("detail").as_string()).find("decommission") != std::string::npos);
  CHECK(n1->del("/v1/cluster/nodes/node-1").status == 409);
  CHECK(n1->del("/v1/cluster/nodes/node-9").status == 404);
  CHECK(n1->del("/v1/cluster/nodes/node-2?force=maybe").status == 400);

  cl.node(3).kill9();
  cl.wait_states({"up", "up", "down"});
  // Without force: which shards only it held, and nothing changes.
  auto refused = n1->del("/v1/cluster/nodes/node-3");
  CHECK(refused.status == 409);
  const std::string why(body(refused).at("detail").as_string());
  CHECK(why.find(std::to_string(on3) + " shard(s)") != std::string::npos);
  CHECK(why.find("force=true") != std::string::npos);
  CHECK(owners(*n1, "d") == own);

  auto forced = n1->del("/v1/cluster/nodes/node-3?force=true");
  INFO(forced.body);
  REQUIRE(forced.status == 200);
  auto f = body(forced);
  CHECK(f.at("was") == "down");
  CHECK(f.at("shards_recreated_empty").as_array().size() == on3);
  for (const auto& [s, n] : owners(*n1, "d")) CHECK(n != "node-3");
  CHECK(n1->get("/v1/cluster/nodes/node-3").status == 404);
  // Every record of the other shards is still there; the recreated shards take writes, empty.
  std::int64_t kept = 0;
  for (int i = 0; i < 600; ++i) {
    auto r = n2->get("/v1/indexes/d/records/k" + std::to_string(i));
    if (r.status == 200) {
      ++kept;
      CHECK(own[body(r).at("shard").as_int64()] != "node-3");
    } else {
      CHECK(r.status == 404);
    }
  }
  CHECK(kept > 0);
  CHECK(kept < 600);
  for (const auto& e : f.at("shards_recreated_empty").as_array()) {
    const auto shard = e.at("shard").as_int64();
    const auto routing = [&] {
      for (int i = 0;; ++i)
        if (body(n2->get("/v1/ring/lookup?index=d&key=r" + std::to_string(i))).at("shard").as_int64() == shard)
          return "r" + std::to_string(i);
    }();
    CHECK(n2->put("/v1/indexes/d/records/new-" + routing + "?routing=" + routing, "{}").status == 201);
  }
  CHECK(body(n2->get("/v1/indexes/d/count")).at("count").as_int64() == kept + static_cast<std::int64_t>(on3));
  const auto events = n1->get("/v1/events?type=map&format=text");
  CHECK(events.body.find("remove node node-3 (forced)") != std::string::npos);
}

TEST_CASE("with the controller killed, the others serve and forward among themselves; after its restart nothing is lost") {
  cluster cl;
  auto n2 = cl.node(2).client(), n3 = cl.node(3).client();
  REQUIRE(n2->put("/v1/indexes/c", R"({"shards":12})").status == 201);
  REQUIRE(body(n2->post("/v1/indexes/c/bulk", ndjson_puts(0, 900))).at("error_count").as_int64() == 0);
  auto own = owners(*n2, "c");
  const auto version_before = body(n2->get("/v1/partition-map")).at("version").as_int64();

  cl.node(1).kill9();
  // Members keep serving with the map they have: reads and writes of their shards, through
  // either of them; the controller's shards fail fast.
  int served = 0, refused = 0;
  for (int i = 0; i < 900; ++i) {
    auto& via = i % 2 ? n2 : n3;
    const auto key = "k" + std::to_string(i);
    auto r = via->put("/v1/indexes/c/records/" + key, R"({"n":)" + std::to_string(i) + R"(,"during":true})");
    if (r.status == 200) {
      ++served;
      CHECK(own[body(r).at("shard").as_int64()] != "node-1");
    } else {
      REQUIRE(r.status == 503);
      ++refused;
    }
  }
  CHECK(served > 0);
  CHECK(refused > 0);
  auto ddl = n2->put("/v1/indexes/new-index", "");
  CHECK(ddl.status == 503);
  CHECK(body(ddl).at("detail").as_string().find("controller") != std::string::npos);
  CHECK(body(n3->get("/v1/cluster")).at("controller_reachable") == false);

  cl.node(1).start();
  auto n1 = cl.node(1).client();
  // The controller comes back with exactly the map it had persisted: nothing changed while
  // it was down, and its members rejoin with the entries it knows.
  CHECK(body(n1->get("/v1/partition-map")).at("version").as_int64() == version_before);
  cl.wait_states({"up", "up", "up"});
  CHECK(body(n1->get("/v1/partition-map")).at("version").as_int64() == version_before);
  CHECK(body(n1->get("/v1/indexes/c/count")).at("count").as_int64() == 900);
  for (int i = 0; i < 900; ++i) {
    auto r = n1->get("/v1/indexes/c/records/k" + std::to_string(i));
    REQUIRE(r.status == 200);
    const bool moved_during = own[body(r).at("shard").as_int64()] != "node-1";
    CHECK(body(r).at("doc").as_object().contains("during") == moved_during);
  }
  CHECK(n2->put("/v1/indexes/new-index", "").status == 201);
}

TEST_CASE("weights, the ring, lookups and the versioned partition map") {
  cluster cl;
  auto n1 = cl.node(1).client(), n2 = cl.node(2).client();
  auto w = n2->put("/v1/cluster/nodes/node-3", R"({"weight":0})");
  REQUIRE(w.status == 200);
  CHECK(body(w).at("weight").as_int64() == 0);
  CHECK(n2->put("/v1/cluster/nodes/node-9", R"({"weight":1})").status == 404);
  CHECK(n2->put("/v1/cluster/nodes/node-3", R"({"weight":1001})").status == 400);
  CHECK(n2->put("/v1/cluster/nodes/node-3", R"({"wieght":1})").status == 400);

  auto ring = body(n1->get("/v1/ring"));
  CHECK(ring.at("nodes").as_array().size() == 2);  // node-3 has weight 0: not on the ring
  REQUIRE(n1->put("/v1/indexes/w", R"({"shards":30})").status == 201);
  for (const auto& [s, n] : owners(*n1, "w")) CHECK(n != "node-3");

  // A lookup names the shard and owner a write lands on.
  auto put = n2->put("/v1/indexes/w/records/alpha", "1");
  REQUIRE(put.status == 201);
  auto look = body(n1->get("/v1/ring/lookup?index=w&key=alpha"));
  CHECK(look.at("shard") == body(put).at("shard"));
  CHECK(look.at("owner").as_string() == put.header("x-shardd-node"));
  CHECK(n1->get("/v1/ring/lookup?index=w").status == 400);
  CHECK(n1->get("/v1/ring/lookup?index=nope&key=a").status == 404);

  auto map = n1->get("/v1/partition-map");
  REQUIRE(map.status == 200);
  const auto etag = map.header("etag");
  CHECK(etag == "\"" + std::to_string(body(map).at("version").as_int64()) + "\"");
  CHECK(n1->request("GET", "/v1/partition-map", "", {{"If-None-Match", etag}}).status == 304);
  // Every node serves the same map.
  CHECK(cl.node(3).client()->get("/v1/partition-map").body == map.body);
  auto text = n2->get("/v1/cluster?format=text");
  CHECK(text.body.starts_with("node "));
  CHECK(text.body.find("node-3") != std::string::npos);
}

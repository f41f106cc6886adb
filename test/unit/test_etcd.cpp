// The etcd JSON gateway codec against answers etcd 3.4 gave (captured with curl).

#include "shardd/etcd.hpp"

#include "support/catch_result.hpp"

#include <boost/json/parse.hpp>

#include <random>

using namespace shardd;
namespace json = boost::json;

TEST_CASE("etcd base64 is standard base64 with padding, round-trips any bytes and refuses what an encoder cannot write") {
  CHECK(etcd::base64_encode("") == "");
  CHECK(etcd::base64_encode("f") == "Zg==");
  CHECK(etcd::base64_encode("fo") == "Zm8=");
  CHECK(etcd::base64_encode("foo") == "Zm9v");
  CHECK(etcd::base64_encode("shardd/map") == "c2hhcmRkL21hcA==");
  CHECK(etcd::base64_encode("\xfb\xff") == "+/8=");
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    std::string s(rng() % 50, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    auto back = etcd::base64_decode(etcd::base64_encode(s));
    REQUIRE(back);
    CHECK(*back == s);
  }
  for (const char* bad : {"Zg=", "Zh==", "Zm9v!", "Z===", "Zm9v===="}) {
    INFO(bad);
    CHECK(!etcd::base64_decode(bad));
  }
}

TEST_CASE("etcd requests: paths and bodies as the gateway takes them") {
  auto r = etcd::range("shardd/map");
  CHECK(r.path == "/v3/kv/range");
  CHECK(json::parse(r.body) == json::parse(R"({"key":"c2hhcmRkL21hcA=="})"));
  auto p = etcd::range("shardd/nodes/", true, 10);
  auto pj = json::parse(p.body).as_object();
  CHECK(*etcd::base64_decode(pj.at("range_end").as_string()) == "shardd/nodes0");  // '/' + 1
  CHECK(pj.at("limit") == "10");
  auto put = etcd::put("k", "v", 42);
  CHECK(put.path == "/v3/kv/put");
  CHECK(json::parse(put.body) == json::parse(R"({"key":"aw==","value":"dg==","lease":"42"})"));
  auto cas = json::parse(etcd::put_if("k", "v", 7).body).as_object();
  CHECK(cas.at("compare").as_array()[0].at("mod_revision") == "7");
  CHECK(cas.at("compare").as_array()[0].at("target") == "MOD");
  CHECK(cas.at("success").as_array()[0].as_object().contains("request_put"));
  CHECK(cas.at("failure").as_array()[0].as_object().contains("request_range"));
  CHECK(etcd::put_if("k", "v", 0).path == "/v3/kv/txn");
  CHECK(json::parse(etcd::remove_if("k", 3).body).at("success").as_array()[0].as_object().contains("request_delete_range"));
  // A transaction: every condition, then every write (puts and deletes), else the reads.
  auto t = json::parse(etcd::txn({{"m", etcd::compare::target::mod, 4}, {"c", etcd::compare::target::create, 9}},
                                  {{"m", std::string("x"), 0}, {"e/1", std::nullopt, 0}, {"n", std::string("y"), 77}},
                                  {"m", "c"})
                           .body)
               .as_object();
  const auto& cmp = t.at("compare").as_array();
  REQUIRE(cmp.size() == 2);
  CHECK(cmp[0].at("target") == "MOD");
  CHECK(cmp[0].at("mod_revision") == "4");
  CHECK(cmp[1].at("target") == "CREATE");
  CHECK(cmp[1].at("create_revision") == "9");
  CHECK(*etcd::base64_decode(cmp[1].at("key").as_string()) == "c");
  const auto& ok = t.at("success").as_array();
  REQUIRE(ok.size() == 3);
  CHECK(ok[0].as_object().contains("request_put"));
  CHECK(ok[1].as_object().contains("request_delete_range"));
  CHECK(ok[2].at("request_put").at("lease") == "77");
  CHECK(t.at("failure").as_array().size() == 2);
  CHECK(json::parse(etcd::lease_grant(5).body) == json::parse(R"({"TTL":"5"})"));
  CHECK(etcd::lease_keepalive(9).path == "/v3/lease/keepalive");
  CHECK(etcd::lease_revoke(9).path == "/v3/lease/revoke");
  auto w = json::parse(etcd::watch("k", 12).body);
  CHECK(w.at("create_request").at("start_revision") == "12");
  // Every byte is fine in a key: the prefix of "\xff" runs to the end of the key space.
  auto all = json::parse(etcd::range("\xff", true).body).as_object();
  CHECK(*etcd::base64_decode(all.at("range_end").as_string()) == std::string(1, '\0'));
}

TEST_CASE("etcd answers: integers as strings, fields at their default left out") {
  auto r = etcd::parse_range(
      R"({"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"2","raft_term":"2"},"kvs":[{"key":"c2hhcmRkL21hcA==","create_revision":"2","mod_revision":"2","version":"1","value":"eyJ2IjoxfQ=="}],"count":"1"})");
  REQUIRE(r);
  CHECK(r->head.revision == 2);
  CHECK(r->head.cluster_id == 324952591200643719ull);
  CHECK(r->count == 1);
  REQUIRE(r->kvs.size() == 1);
  CHECK(r->kvs[0].key == "shardd/map");
  CHECK(r->kvs[0].value == R"({"v":1})");
  CHECK(r->kvs[0].mod_revision == 2);
  CHECK(r->kvs[0].lease == 0);
  // A key that does not exist: no kvs, no count.
  auto none = etcd::parse_range(R"({"header":{"revision":"5"}})");
  REQUIRE(none);
  CHECK(none->kvs.empty());
  CHECK(none->count == 0);

  // A put_if that failed: no "succeeded", the key as it is in the failure's range.
  auto failed = etcd::parse_txn(
      R"({"header":{"revision":"2"},"responses":[{"response_range":{"header":{"revision":"2"},"kvs":[{"key":"aw==","mod_revision":"2","value":"dg=="}],"count":"1"}}]})");
  REQUIRE(failed);
  CHECK(!failed->succeeded);
  REQUIRE(failed->current.size() == 1);
  CHECK(failed->current[0].mod_revision == 2);
  auto ok = etcd::parse_txn(R"({"header":{"revision":"3"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"3"}}}]})");
  REQUIRE(ok);
  CHECK(ok->succeeded);
  CHECK(ok->head.revision == 3);
  CHECK(ok->current.empty());

  auto grant = etcd::parse_lease(R"({"header":{"revision":"2"},"ID":"2324035802917760776","TTL":"5"})");
  REQUIRE(grant);
  CHECK(grant->id == 2324035802917760776);
  CHECK(grant->ttl == 5);
  auto alive = etcd::parse_lease(R"({"result":{"header":{"revision":"2"},"ID":"77","TTL":"4"}})");
  REQUIRE(alive);
  CHECK(alive->id == 77);
  CHECK(alive->ttl == 4);
  auto gone = etcd::parse_lease(R"({"result":{"header":{"revision":"2"},"ID":"77"}})");
  REQUIRE(gone);
  CHECK(gone->ttl == 0);  // TTL left out: the lease expired
}

TEST_CASE("etcd watch answers: created, events (puts and deletes), cancellation and compaction") {
  auto created = etcd::parse_watch(R"({"result":{"header":{"revision":"2"},"created":true}})");
  REQUIRE(created);
  CHECK(created->created);
  CHECK(created->events.empty());
  auto ev = etcd::parse_watch(
      R"({"result":{"header":{"revision":"4"},"events":[{"kv":{"key":"aw==","mod_revision":"3","value":"dg=="}},{"type":"DELETE","kv":{"key":"aw==","mod_revision":"4"}}]}})");
  REQUIRE(ev);
  REQUIRE(ev->events.size() == 2);
  CHECK(!ev->events[0].deleted);
  CHECK(ev->events[0].item.value == "v");
  CHECK(ev->events[1].deleted);
  CHECK(ev->events[1].item.mod_revision == 4);
  auto compacted = etcd::parse_watch(R"({"result":{"header":{"revision":"9"},"canceled":true,"compact_revision":"6","cancel_reason":"mvcc: required revision has been compacted"}})");
  REQUIRE(compacted);
  CHECK(compacted->canceled);
  CHECK(compacted->compact_revision == 6);
  CHECK(compacted->cancel_reason.find("compacted") != std::string::npos);
}

TEST_CASE("etcd answers that are errors or not answers are refused, not guessed at") {
  auto err = etcd::parse_range(R"({"error":"etcdserver: request timed out","code":14,"message":"etcdserver: request timed out"})");
  REQUIRE(!err);
  CHECK(err.error().code == errc::unavailable);
  CHECK(err.error().detail.find("timed out") != std::string::npos);
  for (const char* bad : {"", "[]", "{", R"({"header":{"revision":"x"}})", R"({"kvs":[{"key":"!!"}]})", R"({"kvs":{}})",
                          R"({"count":1.5})"}) {
    INFO(bad);
    auto r = etcd::parse_range(bad);
    REQUIRE(!r);
    CHECK(r.error().code == errc::corrupt);
  }
  CHECK(!etcd::parse_watch(R"({"header":{}})"));
  CHECK(!etcd::parse_txn(R"({"succeeded":"yes"})"));
}

// Integration tests of one shardd node: real process, loopback, real TLS.

#include "support/catch_result.hpp"
#include "support/json_body.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/threads.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

using namespace shardd;
using namespace shardd::test;
namespace json = boost::json;

namespace {

// Checks a problem+json answer: status, media type, and that `detail` mentions `needle`.
void check_problem(const net::client_response& r, unsigned status, const std::string& needle) {
  INFO(r.body);
  CHECK(r.status == status);
  CHECK(r.header("content-type") == "application/problem+json");
  auto b = body(r);
  CHECK(b.at("status").as_int64() == status);
  CHECK(std::string(b.at("type").as_string()).starts_with("urn:shardd:problem:"));
  CHECK(detail(r).find(needle) != std::string::npos);
}

struct single_node {
  temp_dir dir;
  shardd_process node{node_options{.data_dir = dir.sub("n1")}};
  std::unique_ptr<net::https_client> http;
  single_node() {
    node.start();
    http = node.client();
  }
};

}  // namespace

TEST_CASE("health answers without a token and names the node") {
  single_node s;
  s.http->set_token("");
  auto r = s.http->get("/v1/health");
  REQUIRE(r.status == 200);
  CHECK(body(r).at("status") == "ok");
  CHECK(body(r).at("node") == "node-1");
  CHECK(r.header("x-shardd-node") == "node-1");
  CHECK(!r.header("x-shardd-map-version").empty());
}

TEST_CASE("requests without a valid bearer token get 401 problem+json") {
  single_node s;
  s.http->set_token("");
  auto missing = s.http->get("/v1/indexes");
  check_problem(missing, 401, "missing Authorization");
  CHECK(missing.header("www-authenticate").starts_with("Bearer"));
  s.http->set_token("wrong-token-wrong-token-wrong");
  check_problem(s.http->get("/v1/indexes"), 401, "invalid bearer token");
  check_problem(s.http->put("/v1/indexes/x", ""), 401, "invalid bearer token");
  s.http->set_token("");
  check_problem(s.http->request("GET", "/v1/shards", "", {{"Authorization", "Basic dXNlcjpwYXNz"}}), 401, "invalid");
  // Nothing was created by the refused request.
  s.http->set_token(test_token);
  CHECK(s.http->get("/v1/indexes/x").status == 404);
}

TEST_CASE("index lifecycle: create, describe, list, delete") {
  single_node s;
  auto created = s.http->put("/v1/indexes/users", R"({"partitioning":"hash","shards":4})");
  REQUIRE(created.status == 201);
  CHECK(created.header("location") == "/v1/indexes/users");
  auto ix = body(created);
  CHECK(ix.at("shard_count").as_int64() == 4);
  CHECK(ix.at("shards").as_array().size() == 4);
  CHECK(ix.at("shards").as_array()[0].at("node") == "node-1");

  auto ranged = s.http->put("/v1/indexes/events", R"({"partitioning":"range","split_points":["g","p"]})");
  REQUIRE(ranged.status == 201);
  CHECK(body(ranged).at("shard_count").as_int64() == 3);

  auto defaults = s.http->put("/v1/indexes/plain", "");
  REQUIRE(defaults.status == 201);
  CHECK(body(defaults).at("shard_count").as_int64() == 32);

  auto list = s.http->get("/v1/indexes");
  REQUIRE(list.status == 200);
  CHECK(body(list).at("indexes").as_array().size() == 3);
  auto text = s.http->get("/v1/indexes?format=text");
  REQUIRE(text.status == 200);
  CHECK(text.header("content-type").starts_with("text/plain"));
  CHECK(text.body.starts_with("index "));
  CHECK(text.body.find("events") != std::string::npos);

  check_problem(s.http->put("/v1/indexes/users", ""), 409, "already exists");
  auto del = s.http->del("/v1/indexes/users");
  REQUIRE(del.status == 200);
  CHECK(body(del).at("acknowledged") == true);
  check_problem(s.http->get("/v1/indexes/users"), 404, "does not exist");
  check_problem(s.http->del("/v1/indexes/users"), 404, "does not exist");
  // The name is free again, and the new index starts empty.
  REQUIRE(s.http->put("/v1/indexes/users", R"({"shards":2})").status == 201);
  CHECK(body(s.http->get("/v1/indexes/users/count")).at("count").as_int64() == 0);
}

TEST_CASE("records: put, get, update, delete, percent-encoded keys and routing") {
  single_node s;
  REQUIRE(s.http->put("/v1/indexes/kv", R"({"shards":8})").status == 201);
  auto created = s.http->put("/v1/indexes/kv/records/alice", R"({"age": 30, "tags": ["a", "b"]})");
  REQUIRE(created.status == 201);
  CHECK(body(created).at("result") == "created");
  auto updated = s.http->put("/v1/indexes/kv/records/alice", R"({"age": 31})");
  REQUIRE(updated.status == 200);
  CHECK(body(updated).at("result") == "updated");
  auto got = s.http->get("/v1/indexes/kv/records/alice");
  REQUIRE(got.status == 200);
  CHECK(body(got).at("doc").at("age").as_int64() == 31);
  CHECK(body(got).at("key") == "alice");

  // Any JSON value is a document.
  for (std::string doc : {"42", "\"text\"", "null", "[1,2,3]", "true"}) {
    REQUIRE(s.http->put("/v1/indexes/kv/records/scalar", doc).status < 300);
    CHECK(json::serialize(body(s.http->get("/v1/indexes/kv/records/scalar")).at("doc")) == doc);
  }

  // Keys with slashes, spaces, unicode and percent signs, encoded or not.
  const std::string odd = "dir/sub file%\xc3\xa9?&#";
  REQUIRE(s.http->put("/v1/indexes/kv/records/" + net::url_encode(odd), "1").status == 201);
  auto odd_got = s.http->get("/v1/indexes/kv/records/" + net::url_encode(odd));
  REQUIRE(odd_got.status == 200);
  CHECK(body(odd_got).at("key").as_string() == odd);
  REQUIRE(s.http->put("/v1/indexes/kv/records/a/b/c", "2").status == 201);
  CHECK(body(s.http->get("/v1/indexes/kv/records/a%2Fb%2Fc")).at("doc").as_int64() == 2);

  // A routing value places records together and must be given again to find them.
  auto r1 = s.http->put("/v1/indexes/kv/records/order-1?routing=tenant-7", "1");
  auto r2 = s.http->put("/v1/indexes/kv/records/order-2?routing=tenant-7", "2");
  REQUIRE(r1.status == 201);
  REQUIRE(r2.status == 201);
  CHECK(body(r1).at("shard") == body(r2).at("shard"));
  CHECK(s.http->get("/v1/indexes/kv/records/order-1?routing=tenant-7").status == 200);

  auto gone = s.http->del("/v1/indexes/kv/records/alice");
  REQUIRE(gone.status == 200);
  CHECK(body(gone).at("result") == "deleted");
  check_problem(s.http->get("/v1/indexes/kv/records/alice"), 404, "not found");
  check_problem(s.http->del("/v1/indexes/kv/records/alice"), 404, "not found");
}

TEST_CASE("a bulk load of 10,000 records, then an exact count and 500 random reads") {
  single_node s;
  REQUIRE(s.http->put("/v1/indexes/bulk", R"({"shards":16})").status == 201);
  std::string ndjson;
  for (int i = 0; i < 10000; ++i)
    ndjson += R"({"op":"put","key":"k)" + std::to_string(i) + R"(","doc":{"n":)" + std::to_string(i) + R"(,"pad":"xxxxxxxxxxxxxxxxxxxxxxxx"}})" + "\n";
  auto r = s.http->request("POST", "/v1/indexes/bulk/bulk", ndjson, {{"Content-Type", "application/x-ndjson"}});
  REQUIRE(r.status == 200);
  auto b = body(r);
  CHECK(b.at("created").as_int64() == 10000);
  CHECK(b.at("error_count").as_int64() == 0);
  CHECK(body(s.http->get("/v1/indexes/bulk/count")).at("count").as_int64() == 10000);

  // Shard stats add up to the count.
  auto shards = body(s.http->get("/v1/shards?index=bulk")).at("shards").as_array();
  std::int64_t sum = 0;
  for (const auto& sh : shards) sum += sh.at("records").as_int64();
  CHECK(sum == 10000);
  CHECK(shards.size() == 16);

  std::mt19937 rng(11);
  for (int i = 0; i < 500; ++i) {
    int k = static_cast<int>(rng() % 10000);
    auto got = s.http->get("/v1/indexes/bulk/records/k" + std::to_string(k));
    REQUIRE(got.status == 200);
    CHECK(body(got).at("doc").at("n").as_int64() == k);
  }
}

TEST_CASE("bulk reports each bad line and applies the rest") {
  single_node s;
  REQUIRE(s.http->put("/v1/indexes/b", R"({"shards":2})").status == 201);
  std::string big(2 * 1024 * 1024, 'x');
  std::string ndjson =
      "{\"op\":\"put\",\"key\":\"good1\",\"doc\":1}\n"
      "not json\n"
      "\n"
      "{\"op\":\"upsert\",\"key\":\"x\",\"doc\":1}\n"
      "{\"op\":\"put\",\"doc\":1}\n"
      "{\"op\":\"put\",\"key\":\"" + std::string(1025, 'k') + "\",\"doc\":1}\n"
      "{\"op\":\"put\",\"key\":\"nodoc\"}\n"
      "[1,2]\n"
      "{\"op\":\"put\",\"key\":\"big\",\"doc\":\"" + big + "\"}\n"
      "{\"op\":\"delete\",\"key\":\"missing\"}\n"
      "{\"op\":\"put\",\"key\":\"good2\",\"doc\":{\"a\":1},\"extra\":true}\n"
      "{\"op\":\"put\",\"key\":\"good3\",\"doc\":{\"a\":1}}\r\n"
      "{\"op\":\"delete\",\"key\":\"good1\"}";
  auto r = s.http->post("/v1/indexes/b/bulk", ndjson);
  REQUIRE(r.status == 200);
  auto b = body(r);
  CHECK(b.at("created").as_int64() == 2);  // good1, good3
  CHECK(b.at("deleted").as_int64() == 1);  // good1
  CHECK(b.at("not_found").as_int64() == 1);
  CHECK(b.at("error_count").as_int64() == 8);
  std::set<std::int64_t> bad_lines;
  for (const auto& e : b.at("errors").as_array()) bad_lines.insert(e.at("line").as_int64());
  CHECK(bad_lines == std::set<std::int64_t>{2, 4, 5, 6, 7, 8, 9, 11});
  for (const auto& e : b.at("errors").as_array())
    if (e.at("line").as_int64() == 9) CHECK(e.at("status").as_int64() == 413);
  CHECK(s.http->get("/v1/indexes/b/records/good3").status == 200);
  CHECK(s.http->get("/v1/indexes/b/records/good1").status == 404);
  CHECK(body(s.http->get("/v1/indexes/b/count")).at("count").as_int64() == 1);
}

TEST_CASE("range scans return keys in order across shards with limit and cursor") {
  single_node s;
  REQUIRE(s.http->put("/v1/indexes/r", R"({"partitioning":"range","split_points":["d","m","t"]})").status == 201);
  std::string ndjson;
  std::vector<std::string> keys;
  for (char a = 'a'; a <= 'z'; ++a)
    for (char b = 'a'; b <= 'j'; ++b) {
      std::string k{a, b};
      keys.push_back(k);
      ndjson += R"({"op":"put","key":")" + k + R"(","doc":")" + k + "\"}\n";
    }
  REQUIRE(body(s.http->post("/v1/indexes/r/bulk", ndjson)).at("created").as_int64() == 260);

  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  for (;;) {
    auto r = s.http->get("/v1/indexes/r/records?limit=7" + (cursor.empty() ? "" : "&cursor=" + cursor));
    REQUIRE(r.status == 200);
    auto b = body(r);
    for (const auto& rec : b.at("records").as_array()) {
      seen.emplace_back(rec.at("key").as_string());
      CHECK(rec.at("doc") == rec.at("key"));
    }
    ++pages;
    if (b.at("next_cursor").is_null()) break;
    cursor = std::string(b.at("next_cursor").as_string());
    REQUIRE(pages < 100);
  }
  CHECK(seen == keys);  // in order, no gap, no duplicate
  CHECK(pages == 38);   // 260 / 7 rounded up: the last page carries no cursor

  auto bounded = body(s.http->get("/v1/indexes/r/records?start=cc&end=ce&limit=100"));
  REQUIRE(bounded.at("records").as_array().size() == 2);
  CHECK(bounded.at("records").as_array()[0].at("key") == "cc");
  auto prefixed = body(s.http->get("/v1/indexes/r/records?prefix=m&limit=100"));
  CHECK(prefixed.at("records").as_array().size() == 10);
  CHECK(prefixed.at("records").as_array()[0].at("key") == "ma");
  check_problem(s.http->get("/v1/indexes/r/records?cursor=!!!"), 400, "cursor");
  check_problem(s.http->get("/v1/indexes/r/records?limit=0"), 400, "limit");
  check_problem(s.http->get("/v1/indexes/r/records?limit=abc"), 400, "limit");
  check_problem(s.http->get("/v1/indexes/r/records?lmit=5"), 400, "unknown query parameter");
}

TEST_CASE("hash scans visit every record exactly once and filter by prefix") {
  single_node s;
  REQUIRE(s.http->put("/v1/indexes/h", R"({"shards":8})").status == 201);
  std::string ndjson;
  for (int i = 0; i < 500; ++i) ndjson += R"({"op":"put","key":")" + std::string(i % 2 ? "odd-" : "even-") + std::to_string(i) + R"(","doc":1})" + "\n";
  REQUIRE(body(s.http->post("/v1/indexes/h/bulk", ndjson)).at("created").as_int64() == 500);
  std::set<std::string> seen;
  std::string cursor;
  std::size_t total = 0;
  for (int page = 0; page < 100; ++page) {
    auto b = body(s.http->get("/v1/indexes/h/records?limit=64&prefix=odd-" + (cursor.empty() ? "" : "&cursor=" + cursor)));
    for (const auto& rec : b.at("records").as_array()) {
      seen.emplace(rec.at("key").as_string());
      ++total;
      CHECK(std::string(rec.at("key").as_string()).starts_with("odd-"));
    }
    if (b.at("next_cursor").is_null()) break;
    cursor = std::string(b.at("next_cursor").as_string());
  }
  CHECK(seen.size() == 250);
  CHECK(total == 250);
}

TEST_CASE("every error case answers with a clear problem and changes nothing") {
  single_node s;
  REQUIRE(s.http->put("/v1/indexes/e", R"({"shards":2})").status == 201);
  check_problem(s.http->put("/v1/indexes/e/records/k", "{bad json"), 400, "not valid JSON");
  check_problem(s.http->put("/v1/indexes/e/records/k", ""), 400, "empty");
  check_problem(s.http->put("/v1/indexes/e/records/k", "{} trailing"), 400, "not valid JSON");
  check_problem(s.http->put("/v1/indexes/Bad_Name", ""), 400, "[a-z0-9_-]");
  check_problem(s.http->get("/v1/indexes/" + std::string(65, 'a')), 400, "1 to 64");
  check_problem(s.http->put("/v1/indexes/e/records/" + std::string(1025, 'k'), "1"), 400, "1024");
  check_problem(s.http->put("/v1/indexes/e/records/%FF", "1"), 400, "UTF-8");
  check_problem(s.http->get("/v1/indexes/nope/records/k"), 404, "does not exist");
  check_problem(s.http->get("/v1/indexes/nope/count"), 404, "does not exist");
  check_problem(s.http->post("/v1/indexes/nope/bulk", "{}"), 404, "does not exist");
  check_problem(s.http->get("/v1/indexes/e/records/nope"), 404, "not found");
  check_problem(s.http->put("/v1/indexes/e", ""), 409, "already exists");
  check_problem(s.http->put("/v1/indexes/x", R"({"shards":0})"), 400, "shards");
  check_problem(s.http->put("/v1/indexes/x", R"({"shards":5000})"), 400, "shards");
  check_problem(s.http->put("/v1/indexes/x", R"({"partitioning":"zigzag"})"), 400, "partitioning");
  check_problem(s.http->put("/v1/indexes/x", R"({"shard":4})"), 400, "unknown field");
  check_problem(s.http->put("/v1/indexes/x", R"({"partitioning":"range","split_points":["b","a"]})"), 400, "sorted");
  check_problem(s.http->put("/v1/indexes/x", R"({"partitioning":"range","shards":4})"), 400, "split_points");
  check_problem(s.http->put("/v1/indexes/x", "[1]"), 400, "object");
  auto wrong = s.http->post("/v1/indexes/e/records/k", "1");
  check_problem(wrong, 405, "not allowed");
  CHECK(wrong.header("allow") == "GET, HEAD, PUT, DELETE");
  check_problem(s.http->del("/v1/indexes"), 405, "not allowed");
  check_problem(s.http->get("/v1/nothing"), 404, "unknown path");
  check_problem(s.http->get("/v2/indexes"), 404, "unknown path");
  check_problem(s.http->get("/"), 404, "unknown path");
  check_problem(s.http->get("/v1/shards?index=nope"), 404, "does not exist");
  // A document over the 1 MiB default limit.
  check_problem(s.http->put("/v1/indexes/e/records/big", "\"" + std::string(1100000, 'x') + "\""), 413, "limit");
  // Nothing above was created.
  auto list = body(s.http->get("/v1/indexes"));
  CHECK(list.at("indexes").as_array().size() == 1);
  CHECK(body(s.http->get("/v1/indexes/e/count")).at("count").as_int64() == 0);
}

TEST_CASE("a body over the configured limit gets 413 before it is read") {
  temp_dir dir;
  shardd_process node(node_options{.data_dir = dir.sub("n1"), .config_json = R"({"rest":{"max_body_bytes":65536},"limits":{"max_doc_bytes":16384}})"});
  node.start();
  auto http = node.client();
  REQUIRE(http->put("/v1/indexes/e", "").status == 201);
  auto r = http->post("/v1/indexes/e/bulk", std::string(70000, '\n'));
  check_problem(r, 413, "limit of 65536 bytes");
  // The server closed that connection; the client reconnects and the node still serves.
  CHECK(http->get("/v1/indexes/e/count").status == 200);
  check_problem(http->put("/v1/indexes/e/records/k", "\"" + std::string(20000, 'x') + "\""), 413, "16384");
}

TEST_CASE("malformed HTTP gets 400 and the node keeps serving") {
  single_node s;
  auto raw = s.http->raw_exchange("GARBAGE\r\n\r\n", std::chrono::milliseconds(3000));
  CHECK(raw.starts_with("HTTP/1.1 400"));
  CHECK(raw.find("application/problem+json") != std::string::npos);
  auto bad_len = s.http->raw_exchange("PUT /v1/indexes/x HTTP/1.1\r\nHost: a\r\nContent-Length: zz\r\n\r\n",
                                      std::chrono::milliseconds(3000));
  CHECK(bad_len.starts_with("HTTP/1.1 400"));
  auto huge_header = s.http->raw_exchange("GET /v1/health HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n",
                                          std::chrono::milliseconds(3000));
  CHECK(huge_header.starts_with("HTTP/1.1 431"));
  CHECK(s.http->get("/v1/health").status == 200);
}

TEST_CASE("acknowledged writes survive SIGKILL") {
  // Given writers that record every write the node acknowledged, when the node is killed
  // with SIGKILL mid-stream and restarted, then every acknowledged record is there and the
  // count equals the number acknowledged.
  temp_dir dir;
  shardd_process node(node_options{.data_dir = dir.sub("n1")});
  node.start();
  REQUIRE(node.client()->put("/v1/indexes/d", R"({"shards":8})").status == 201);

  std::mutex mu;
  std::vector<std::string> acked;
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < 8; ++w)
    writers.emplace_back([&, w] {
      auto http = node.client();
      for (int i = 0; !stop; ++i) {
        const auto key = "w" + std::to_string(w) + "-" + std::to_string(i);
        try {
          auto r = (i % 10 == 9) ? http->post("/v1/indexes/d/bulk", R"({"op":"put","key":")" + key + R"(","doc":{"i":1}})")
                                 : http->put("/v1/indexes/d/records/" + key, R"({"i":1})");
          if (r.status == 201 || (r.status == 200 && r.body.find("\"created\":1") != std::string::npos)) {
            std::lock_guard lock(mu);
            acked.push_back(key);
          }
        } catch (const std::exception&) {
          return;  // the node is gone
        }
      }
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  node.kill9();
  stop = true;
  for (auto& t : writers) t.join();
  REQUIRE(acked.size() > 100);

  node.start();
  auto http = node.client();
  for (const auto& k : acked) {
    auto r = http->get("/v1/indexes/d/records/" + k);
    INFO(k);
    REQUIRE(r.status == 200);
  }
  // Writes in flight at the kill may or may not have landed; acknowledged ones all did, and
  // the count matches the records actually present.
  auto count = body(http->get("/v1/indexes/d/count")).at("count").as_int64();
  CHECK(count >= static_cast<std::int64_t>(acked.size()));
  CHECK(count <= static_cast<std::int64_t>(acked.size()) + 8);
  std::int64_t scanned = 0;
  std::string cursor;
  for (;;) {
    auto b = body(http->get("/v1/indexes/d/records?limit=1000" + (cursor.empty() ? "" : "&cursor=" + cursor)));
    scanned += static_cast<std::int64_t>(b.at("records").as_array().size());
    if (b.at("next_cursor").is_null()) break;
    cursor = std::string(b.at("next_cursor").as_string());
  }
  CHECK(scanned == count);
}

TEST_CASE("SIGTERM finishes requests in flight, exits 0 and leaves a store that reopens") {
  temp_dir dir;
  shardd_process node(node_options{.data_dir = dir.sub("n1")});
  node.start();
  auto http = node.client();
  REQUIRE(http->put("/v1/indexes/t", R"({"shards":4})").status == 201);
  std::string ndjson;
  for (int i = 0; i < 20000; ++i) ndjson += R"({"op":"put","key":"k)" + std::to_string(i) + R"(","doc":{"v":"0123456789012345678901234567890123456789"}})" + "\n";
  // A large bulk in flight while the signal arrives must still be answered. The connection
  // is open (one request answered on it) before the bulk goes, so the bulk is in flight, not
  // a connection the server may refuse once it stops accepting.
  std::atomic<unsigned> status{0};
  std::atomic<bool> connected{false};
  std::thread t([&] {
    auto c = node.client();
    try {
      if (c->get("/v1/health").status != 200) return;
      connected = true;
      status = c->post("/v1/indexes/t/bulk", ndjson).status;
    } catch (const std::exception&) {
      status = 1;
    }
  });
  while (!connected) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  const int rc = node.terminate();
  t.join();
  CHECK(rc == 0);
  CHECK(node.log().find("event=node_stopped") != std::string::npos);
  node.start();
  auto count = body(node.client()->get("/v1/indexes/t/count")).at("count").as_int64();
  CHECK(status == 200);  // the request in flight was answered, not cut off
  CHECK(count == 20000);
}

TEST_CASE("a bad config or flag stops start-up with a message naming the field") {
  temp_dir dir;
  auto fails_with = [&](node_options o, const std::string& needle) {
    o.data_dir = dir.sub("bad" + std::to_string(std::rand()));
    shardd_process p(std::move(o));
    CHECK(p.start_and_wait_exit(std::chrono::seconds(10)) == 2);
    INFO(p.log());
    CHECK(p.log().find(needle) != std::string::npos);
  };
  fails_with(node_options{.config_json = R"({"rest":{"listen":"nowhere"}})"}, "rest.listen");
  fails_with(node_options{.config_json = R"({"storage":{"durability":"sometimes"}})"}, "storage.durability");
  fails_with(node_options{.config_json = R"({"cluster":{"vnodes_per_weight":0}})"}, "cluster.vnodes_per_weight");
  fails_with(node_options{.config_json = R"({"colour":"red"})"}, "colour: unknown field");
  fails_with(node_options{.config_json = R"({"rest": )"}, "not valid JSON");
  fails_with(node_options{.extra_args = {"--rest-listen", "127.0.0.1:99999"}}, "--rest-listen");
  fails_with(node_options{.extra_args = {"--no-such-flag"}}, "no-such-flag");
  // An empty data dir and neither --bootstrap nor --join: refused, not a new cluster.
  fails_with(node_options{.bootstrap = false}, "--bootstrap");
}

TEST_CASE("--check-config loads the TLS files, checks the data dir and binds the listen addresses; each problem names its field, exit 2") {
  temp_dir dir;
  const auto& c = test_certs();
  const auto rest = free_port(), peer = free_port();
  const auto shardd = [] { return std::string("SHARDD_TOKEN=") + test_token + " " + shardd_binary(); };
  struct tls_files {
    std::string cert, key, ca;
  };
  auto check = [&](const std::string& id, const tls_files& t, const std::string& data, const std::string& more = {}) {
    return run_command(shardd() + " --check-config --node-id " + id + " --data-dir " + data + " --rest-listen 127.0.0.1:" +
                       std::to_string(rest) + " --peer-listen 127.0.0.1:" + std::to_string(peer) + " --tls-cert " + t.cert +
                       " --tls-key " + t.key + " --tls-ca " + t.ca + " " + more);
  };
  const tls_files good{c.cert("node-1"), c.key("node-1"), c.ca()};
  const auto fresh = dir.sub("fresh");
  {
    auto [rc, out] = check("node-1", good, fresh, "--bootstrap");
    INFO(out);
    CHECK(rc == 0);
    CHECK(out.find("config ok") != std::string::npos);
  }
  auto expect = [&](std::pair<int, std::string> r, const std::string& needle) {
    INFO(r.second);
    CHECK(r.first == 2);
    CHECK(r.second.find(needle) != std::string::npos);
  };
  // The certificate of another node: its CN is not this node's id.
  expect(check("node-2", good, fresh, "--bootstrap"), "tls.cert: its common name is 'node-1', not the node id 'node-2'");
  // A key that is not the certificate's.
  expect(check("node-1", {c.cert("node-1"), c.key("node-2"), c.ca()}, fresh, "--bootstrap"), "tls.key: ");
  // A certificate from another CA.
  expect(check("node-1", {c.rogue_dir + "/node-1.pem", c.rogue_dir + "/node-1.key", c.ca()}, fresh, "--bootstrap"),
         "tls.ca: ");
  // Files that are not what they should be.
  expect(check("node-1", {c.key("node-1"), c.key("node-1"), c.ca()}, fresh, "--bootstrap"), "tls.cert: ");
  expect(check("node-1", {c.cert("node-1"), c.cert("node-1"), c.ca()}, fresh, "--bootstrap"), "tls.key: ");
  // An empty data dir without --bootstrap or --join.
  expect(check("node-1", good, fresh), "cluster.bootstrap");
  // Several problems at once: each on its own line.
  {
    auto [rc, out] = check("node-2", {c.cert("node-1"), c.key("node-2"), c.ca()}, fresh);
    CHECK(rc == 2);
    CHECK(out.find("tls.cert: its common name") != std::string::npos);
    CHECK(out.find("tls.key: ") != std::string::npos);
    CHECK(out.find("cluster.bootstrap") != std::string::npos);
  }

  // A data dir of a running node: its cluster and node are checked (read-only, while it runs),
  // and its ports are taken.
  shardd_process n(node_options{.data_dir = dir.sub("n1")});
  n.start();
  const auto data = dir.sub("n1") + "/data";
  {
    auto [rc, out] = run_command(shardd() + " --check-config --node-id node-1 --data-dir " + data +
                                 " --rest-listen 127.0.0.1:" + std::to_string(n.rest_port()) + " --peer-listen 127.0.0.1:" +
                                 std::to_string(peer) + " --tls-cert " + good.cert + " --tls-key " + good.key + " --tls-ca " +
                                 good.ca);
    INFO(out);
    CHECK(rc == 2);
    CHECK(out.find("rest.listen: cannot bind 127.0.0.1:" + std::to_string(n.rest_port())) != std::string::npos);
    CHECK(out.find("peer.listen") == std::string::npos);
    CHECK(out.find("data_dir") == std::string::npos);  // its own cluster and node: fine
  }
  expect(check("node-3", {c.cert("node-3"), c.key("node-3"), c.ca()}, data), "node_id: the data dir's map has no node 'node-3'");
  {
    const auto cfg = dir.sub("other.json");
    std::ofstream(cfg) << R"({"cluster_id":"other"})";
    expect(check("node-1", good, data, "--config " + cfg), "cluster_id: the data dir belongs to cluster 'shardd', not 'other'");
  }
  CHECK(n.terminate() == 0);

  // Start-up runs the same checks: a certificate of another node is exit 2, named, not exit 1.
  auto [rc, out] = run_command(shardd() + " --node-id node-2 --data-dir " + dir.sub("n2") + " --rest-listen 127.0.0.1:" +
                               std::to_string(rest) + " --peer-listen 127.0.0.1:" + std::to_string(peer) + " --tls-cert " +
                               good.cert + " --tls-key " + good.key + " --tls-ca " + good.ca + " --bootstrap");
  INFO(out);
  CHECK(rc == 2);
  CHECK(out.find("tls.cert: its common name is 'node-1'") != std::string::npos);
}

TEST_CASE("a node refuses to found a cluster unless told to bootstrap, then keeps its cluster without the flag") {
  // Given an empty data dir, when started without --bootstrap or --join, then it exits 2 and
  // the dir holds no cluster: a later start with --bootstrap founds one (map version 1), and a
  // start after that without the flag resumes it.
  temp_dir dir;
  node_options o{.data_dir = dir.sub("n1"), .bootstrap = false};
  {
    shardd_process p(o);
    CHECK(p.start_and_wait_exit(std::chrono::seconds(10)) == 2);
    CHECK(p.log().find("holds no cluster") != std::string::npos);
  }
  o.bootstrap = true;
  shardd_process p(o);
  p.start();
  auto c = p.client();
  REQUIRE(c->put("/v1/indexes/kept", R"({"shards":2})").status == 201);
  const auto version = body(c->get("/v1/partition-map")).at("version").as_int64();
  CHECK(version == 2);  // founded (1), then the index (2): nothing before
  REQUIRE(p.terminate() == 0);
  shardd_process again(node_options{.data_dir = o.data_dir, .rest_port = p.rest_port(), .peer_port = p.peer_port(),
                                    .bootstrap = false});
  again.start();
  auto c2 = again.client();
  CHECK(body(c2->get("/v1/partition-map")).at("version").as_int64() == version);
  CHECK(c2->get("/v1/indexes/kept").status == 200);
  CHECK(again.terminate() == 0);
}

TEST_CASE("curl habits work: Expect 100-continue, --data-binary @file, keep-alive") {
  single_node s;
  REQUIRE(s.http->put("/v1/indexes/c", R"({"shards":4})").status == 201);
  temp_dir files;
  const auto path = files.sub("load.ndjson");
  {
    std::ofstream out(path);
    for (int i = 0; i < 20000; ++i) out << R"({"op":"put","key":"c)" << i << R"(","doc":{"pad":"0123456789012345678901234567890123456789012345678901234567890123456789"}})" << "\n";
  }
  const std::string base = "curl -sS --cacert " + test_certs().ca() + " -H 'Authorization: Bearer " + test_token + "' ";
  // curl sends Expect: 100-continue for bodies over 1 MiB; a server that ignores it costs a
  // one-second stall.
  auto [rc, out] = run_command(base + "-w '\\n%{http_code} %{time_total}' -H 'Expect: 100-continue' -H 'Content-Type: application/x-ndjson' --data-binary @" +
                               path + " " + s.node.url() + "/v1/indexes/c/bulk");
  REQUIRE(rc == 0);
  auto last = out.substr(out.rfind('\n') + 1);
  CHECK(last.starts_with("200 "));
  CHECK(std::stod(last.substr(4)) < 0.9);
  CHECK(out.find("\"created\":20000") != std::string::npos);
  // Two requests in one curl run share one connection.
  auto [rc2, verbose] = run_command(base + "-v -o /dev/null -o /dev/null " + s.node.url() + "/v1/indexes/c/count " +
                                    s.node.url() + "/v1/health");
  REQUIRE(rc2 == 0);
  CHECK(verbose.find("Re-using existing connection") != std::string::npos);
  // Answers larger than a TLS record (a 1,000-record page is ~100 KiB) arrive whole, twice on
  // one connection, and a HEAD of one carries its length and no body.
  auto [rc6, big] = run_command(base + "-w '%{size_download} ' -o /dev/null -o /dev/null '" + s.node.url() +
                                "/v1/indexes/c/records?limit=1000' '" + s.node.url() + "/v1/indexes/c/records?limit=1000'");
  REQUIRE(rc6 == 0);
  std::istringstream sizes(big);
  std::size_t first = 0, second = 0;
  sizes >> first >> second;
  CHECK(first > 64 * 1024);
  CHECK(second == first);
  auto [rc7, head] = run_command(base + "-sI '" + s.node.url() + "/v1/indexes/c/records?limit=1000'");
  REQUIRE(rc7 == 0);
  CHECK(head.find("Content-Length: " + std::to_string(first)) != std::string::npos);
  // HTTP/1.0: answered in kind, closed after the answer unless the client asks to keep it;
  // an HTTP/1.1 client that asks to close is told so.
  auto lower = [](std::string t) {
    std::transform(t.begin(), t.end(), t.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    return t;
  };
  auto [rc3, old] = run_command(base + "--http1.0 -i " + s.node.url() + "/v1/indexes/c/count");
  REQUIRE(rc3 == 0);
  CHECK(lower(old).starts_with("http/1.0 200"));
  CHECK(lower(old).find("connection:") == std::string::npos);
  CHECK(old.find("\"count\":20000") != std::string::npos);
  auto [rc4, kept] = run_command(base + "--http1.0 -i -H 'Connection: keep-alive' " + s.node.url() + "/v1/health");
  REQUIRE(rc4 == 0);
  CHECK(lower(kept).find("connection: keep-alive") != std::string::npos);
  auto [rc5, closed] = run_command(base + "-i -H 'Connection: close' " + s.node.url() + "/v1/health");
  REQUIRE(rc5 == 0);
  CHECK(lower(closed).find("connection: close") != std::string::npos);
  CHECK(lower(closed).find("content-length: ") != std::string::npos);
}

TEST_CASE("request ids: taken from the client or made, returned, in problem bodies and in the access log; HEAD and Retry-After") {
  single_node s;
  REQUIRE(s.http->put("/v1/indexes/q", R"({"shards":2})").status == 201);
  // The client's id comes back, and the access log line carries it with the status and path.
  auto mine = s.http->request("GET", "/v1/indexes/q", {}, {{"X-Request-Id", "trace-abc-123"}});
  REQUIRE(mine.status == 200);
  CHECK(mine.header("x-request-id") == "trace-abc-123");
  // Without one (or with one unusable), the node makes one up: 16 hex digits.
  auto made = s.http->get("/v1/indexes/q");
  const auto id = made.header("x-request-id");
  CHECK(id.size() == 16);
  CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
  auto odd = s.http->request("GET", "/v1/indexes/q", {}, {{"X-Request-Id", "has space=and\"quote"}});
  CHECK(odd.header("x-request-id").size() == 16);
  // A problem body names the request id; so does a 401 decided from the header alone.
  auto missing = s.http->request("GET", "/v1/indexes/nope", {}, {{"X-Request-Id", "trace-404"}});
  CHECK(missing.status == 404);
  CHECK(body(missing).at("request_id") == "trace-404");
  net::https_client anon(s.node.url().substr(8, s.node.url().rfind(':') - 8),
                         static_cast<std::uint16_t>(s.node.rest_port()), test_certs().ca(), "");
  auto unauth = anon.get("/v1/indexes");
  CHECK(unauth.status == 401);
  CHECK(body(unauth).at("request_id").as_string().size() == 16);
  // One access line per request, the token nowhere in it.
  for (int i = 0; i < 50 && s.node.log().find("request_id=trace-404") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto log = s.node.log();
  const auto at = log.find("event=access method=GET target=/v1/indexes/nope status=404");
  REQUIRE(at != std::string::npos);
  CHECK(log.substr(at, log.find('\n', at) - at).find("request_id=trace-404") != std::string::npos);
  CHECK(log.find("request_id=trace-abc-123") != std::string::npos);
  CHECK(log.find(test_token) == std::string::npos);
  // HEAD: a GET's status and length, no body (curl -I).
  const std::string base = "curl -sS --cacert " + test_certs().ca() + " -H 'Authorization: Bearer " + test_token + "' ";
  auto [rc, head] = run_command(base + "-I " + s.node.url() + "/v1/indexes/q");
  REQUIRE(rc == 0);
  std::transform(head.begin(), head.end(), head.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  CHECK(head.starts_with("http/1.1 200"));
  const auto get_len = s.http->get("/v1/indexes/q").body.size();
  CHECK(head.find("content-length: " + std::to_string(get_len)) != std::string::npos);
  auto [rc404, head404] = run_command(base + "-I " + s.node.url() + "/v1/indexes/none");
  REQUIRE(rc404 == 0);
  CHECK(head404.starts_with("HTTP/1.1 404"));
  // Unknown query parameters list what the route takes.
  auto unknown = s.http->get("/v1/indexes?colour=red");
  CHECK(unknown.status == 400);
  CHECK(body(unknown).at("detail").as_string().find("it takes format") != std::string::npos);
}

TEST_CASE("the migration threads run below the network threads' priority") {
  // Each network thread alone serves the connections dealt to it: background work (a move's
  // SST files and imports) must yield the cores to it. Exactly the migration pool's threads
  // (2 by default) run `migration.nice` above the rest (19 by default; nice stops at 19), and
  // the pool for moves of priority high as many threads `migration.high_priority_nice` above
  // (0 by default: at the node's own). Relative to the node's own nice value: the suite may
  // itself run under nice.
  const auto check = [](int pid, int step, int high_step) {
    const auto by_nice = threads_by_nice(pid);
    const int base = by_nice.begin()->first;
    INFO("base nice " << base << ", step " << step << ", high-priority step " << high_step << ", distinct values "
                      << by_nice.size());
    REQUIRE(base < 19);
    const int pool = std::min(base + step, 19);
    REQUIRE(by_nice.count(pool) == 1);
    CHECK(by_nice.at(pool).threads == 2);
    if (high_step == 0) {
      CHECK(by_nice.at(base).threads >= 6);  // network threads, writer, read pool, RocksDB's, the high-priority pool
      CHECK(by_nice.size() == 2);
    } else {
      const int high = std::min(base + high_step, 19);
      REQUIRE(by_nice.count(high) == 1);
      CHECK(by_nice.at(high).threads == 2);
      CHECK(by_nice.at(base).threads >= 4);
      CHECK(by_nice.size() == 3);
    }
  };
  single_node s;
  REQUIRE(s.http->get("/v1/health").status == 200);
  check(s.node.pid(), 19, 0);

  temp_dir dir;
  shardd_process seven{node_options{.data_dir = dir.sub("n7"), .config_json = R"({"migration":{"nice":7,"high_priority_nice":3}})"}};
  seven.start();
  REQUIRE(seven.client()->get("/v1/health").status == 200);
  check(seven.pid(), 7, 3);
}

// Request handlers without sockets: a real store and ring actor on an io_context, requests
// handed straight to rest_api::handle.

#include "net/http_server.hpp"
#include "node/controller.hpp"
#include "node/rest_api.hpp"

#include "support/api_fixture.hpp"
#include "support/catch_result.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>

#include <thread>

using namespace shardd;
namespace asio = boost::asio;
namespace json = boost::json;

namespace {

using test::token;
using test::api_fixture;

std::string header(const net::http_response& r, const std::string& name) {
  for (const auto& [n, v] : r.headers)
    if (n == name) return v;
  return {};
}

json::value body(const net::http_response& r) {
  INFO(r.body);
  return json::parse(r.body);
}

}  // namespace

TEST_CASE("every answer names the node and the map version it used") {
  api_fixture f;
  auto r = f.get("/v1/indexes");
  CHECK(r.status == 200);
  CHECK(header(r, "X-Shardd-Node") == "n1");
  CHECK(header(r, "X-Shardd-Map-Version") == "1");
  auto created = f.put("/v1/indexes/a", "");
  CHECK(created.status == 201);
  CHECK(header(created, "X-Shardd-Map-Version") == "2");
}

TEST_CASE("the token is checked on everything but health") {
  api_fixture f;
  CHECK(f.call(net::http_method::get, "/v1/health", {}, false).status == 200);
  auto r = f.call(net::http_method::get, "/v1/shards", {}, false);
  CHECK(r.status == 401);
  CHECK(r.content_type == "application/problem+json");
  CHECK(header(r, "WWW-Authenticate") == "Bearer realm=\"shardd\"");
  net::http_request lower;
  lower.target = "/v1/shards";
  lower.authorization = std::string("bearer ") + token;  // the scheme is case-insensitive
  CHECK(asio::co_spawn(f.ioc, f.api->handle(std::move(lower)), asio::use_future).get().status == 200);
  net::http_request prefix;
  prefix.target = "/v1/shards";
  prefix.authorization = std::string("Bearer ") + std::string(token).substr(0, 10);
  CHECK(asio::co_spawn(f.ioc, f.api->handle(std::move(prefix)), asio::use_future).get().status == 401);
}

TEST_CASE("unknown paths, methods and query parameters are refused clearly") {
  api_fixture f;
  CHECK(f.get("/v1").status == 404);
  CHECK(f.get("/v1/indexes/a/b/c").status == 404);
  auto m = f.call(net::http_method::other, "/v1/indexes/a");
  CHECK(m.status == 405);
  CHECK(header(m, "Allow") == "GET, HEAD, PUT, DELETE");
  CHECK(body(m).at("detail").as_string().find("PATCH") != std::string::npos);
  auto q = f.get("/v1/indexes?fromat=text");
  CHECK(q.status == 400);
  CHECK(body(q).at("detail").as_string().find("fromat") != std::string::npos);
  // The 400 lists what the route takes.
  CHECK(body(q).at("detail").as_string().find("it takes format") != std::string::npos);
  CHECK(body(f.get("/v1/health?x=1")).at("detail").as_string().find("it takes pretty") != std::string::npos);
  // HEAD reaches the GET route (the server leaves the body out); not a route without GET.
  CHECK(f.call(net::http_method::head, "/v1/indexes").status == 200);
  CHECK(f.call(net::http_method::head, "/v1/indexes/nope").status == 404);
  CHECK(f.call(net::http_method::head, "/v1/simulate").status == 405);
  CHECK(f.get("/v1/indexes?format=yaml").status == 400);
  CHECK(f.get("/v1/indexes/%zz").status == 400);  // not valid percent-encoding
}

TEST_CASE("numbers in paths and queries are digits only: no sign, no space, no overflow") {
  api_fixture f;
  REQUIRE(f.put("/v1/indexes/a", R"({"shards":4})").status == 201);
  for (const std::string bad : {"%2B1", "%201", "1%20", "-1", "", "4294967296", "0x1", "1e2"}) {
    INFO(bad);
    auto r = f.call(net::http_method::post, "/v1/shards/a/" + bad + "/split", "");
    CHECK(r.status == 400);
    CHECK(body(r).at("detail").as_string().find("shard must be a shard number") != std::string::npos);
  }
  for (const std::string bad : {"%2B5", "%205", "5%20", "0", "-5", "5x", "99999999999999999999"}) {
    INFO(bad);
    auto r = f.get("/v1/indexes/a/records?limit=" + bad);
    CHECK(r.status == 400);
    CHECK(body(r).at("detail").as_string().find("limit must be an integer") != std::string::npos);
  }
  CHECK(f.get("/v1/indexes/a/records?limit=5").status == 200);
}

TEST_CASE("put then get returns the canonical document with its shard") {
  api_fixture f;
  REQUIRE(f.put("/v1/indexes/a", R"({"shards":4})").status == 201);
  auto w = f.put("/v1/indexes/a/records/k%201", R"(  { "b" : [ 1 , 2 ] }  )");
  REQUIRE(w.status == 201);
  auto r = f.get("/v1/indexes/a/records/k%201");
  REQUIRE(r.status == 200);
  CHECK(r.body.find(R"("doc":{"b":[1,2]})") != std::string::npos);
  CHECK(body(r).at("shard") == body(w).at("shard"));
  CHECK(body(r).at("key") == "k 1");
  auto big = f.put("/v1/indexes/a/records/big", "\"" + std::string(2000, 'x') + "\"");
  CHECK(big.status == 413);
}

TEST_CASE("numbers in documents and answers read as written: 9.99 stays 9.99, 1.0 stays a double, never 9.99E0") {
  api_fixture f;
  REQUIRE(f.put("/v1/indexes/n", R"({"shards":1})").status == 201);
  REQUIRE(f.put("/v1/indexes/n/records/p", R"({"price":9.99,"one":1.0,"n":7,"big":1e21,"tiny":-2.5e-7,"s":"1E5"})").status == 201);
  auto r = f.get("/v1/indexes/n/records/p");
  REQUIRE(r.status == 200);
  INFO(r.body);
  CHECK(r.body.find(R"("doc":{"price":9.99,"one":1.0,"n":7,"big":1e+21,"tiny":-2.5e-07,"s":"1E5"})") != std::string::npos);
  const auto doc = body(r).at("doc");
  CHECK(doc.at("one").is_double());
  CHECK(doc.at("n").is_int64());
  // ?pretty writes numbers the same way.
  auto pretty = f.get("/v1/indexes/n/records/p?pretty");
  CHECK(pretty.body.find("\"price\": 9.99") != std::string::npos);
  CHECK(pretty.body.find("9.99E0") == std::string::npos);
}

TEST_CASE("text format gives an aligned table with a header row") {
  api_fixture f;
  REQUIRE(f.put("/v1/indexes/a", R"({"shards":2})").status == 201);
  auto t = f.get("/v1/shards?format=text");
  REQUIRE(t.status == 200);
  CHECK(t.content_type.starts_with("text/plain"));
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (pos < t.body.size()) {
    auto nl = t.body.find('\n', pos);
    lines.push_back(t.body.substr(pos, nl - pos));
    pos = nl + 1;
  }
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].starts_with("index  shard"));
  // Numbers are right-aligned: each row's records cell ends where the header's does.
  const auto header_end = lines[0].find("records") + std::string("records").size();
  CHECK(lines[1].substr(header_end - 1, 1) == "0");
  CHECK(lines[1].size() == lines[2].size());
}

TEST_CASE("bulk accepts CRLF, blank lines and a last line without a newline") {
  api_fixture f;
  REQUIRE(f.put("/v1/indexes/a", "").status == 201);
  auto r = f.call(net::http_method::post, "/v1/indexes/a/bulk",
                  "\r\n{\"op\":\"put\",\"key\":\"x\",\"doc\":1}\r\n\n   \n{\"op\":\"put\",\"key\":\"y\",\"doc\":2}");
  REQUIRE(r.status == 200);
  CHECK(body(r).at("created").as_int64() == 2);
  CHECK(body(r).at("lines").as_int64() == 2);
  CHECK(body(r).at("error_count").as_int64() == 0);
  auto empty = f.call(net::http_method::post, "/v1/indexes/a/bulk", "");
  CHECK(empty.status == 200);
  CHECK(body(empty).at("lines").as_int64() == 0);
}

TEST_CASE("bulk applies lines in order, so later lines see earlier ones") {
  api_fixture f;
  REQUIRE(f.put("/v1/indexes/a", "").status == 201);
  auto r = f.call(net::http_method::post, "/v1/indexes/a/bulk",
                  "{\"op\":\"put\",\"key\":\"x\",\"doc\":1}\n"
                  "{\"op\":\"put\",\"key\":\"x\",\"doc\":2}\n"
                  "{\"op\":\"delete\",\"key\":\"x\"}\n"
                  "{\"op\":\"delete\",\"key\":\"x\"}\n"
                  "{\"op\":\"put\",\"key\":\"x\",\"doc\":3}\n");
  auto b = body(r);
  CHECK(b.at("created").as_int64() == 2);
  CHECK(b.at("updated").as_int64() == 1);
  CHECK(b.at("deleted").as_int64() == 1);
  CHECK(b.at("not_found").as_int64() == 1);
  CHECK(body(f.get("/v1/indexes/a/records/x")).at("doc").as_int64() == 3);
  CHECK(body(f.get("/v1/indexes/a/count")).at("count").as_int64() == 1);
}

TEST_CASE("a dropped index's records are gone and its name can be reused") {
  api_fixture f;
  REQUIRE(f.put("/v1/indexes/a", "").status == 201);
  REQUIRE(f.put("/v1/indexes/a/records/x", "1").status == 201);
  REQUIRE(f.call(net::http_method::delete_, "/v1/indexes/a").status == 200);
  REQUIRE(f.put("/v1/indexes/a", "").status == 201);
  CHECK(f.get("/v1/indexes/a/records/x").status == 404);
  CHECK(body(f.get("/v1/indexes/a")).at("id").as_int64() == 2);  // a new id: nothing old resurfaces
}

TEST_CASE("health reports stopping with 503 once shutdown began") {
  api_fixture f;
  f.stopping = true;
  auto r = f.call(net::http_method::get, "/v1/health", {}, false);
  CHECK(r.status == 503);
  CHECK(body(r).at("status") == "stopping");
}

TEST_CASE("a request target that is not UTF-8 gets a problem+json answer that is valid JSON") {
  api_fixture f;
  auto r = f.get("/\xff\xfe/v1/indexes");
  CHECK(r.status == 400);
  auto b = body(r);  // parses
  CHECK(std::string(b.at("detail").as_string()).find("\xEF\xBF\xBD") != std::string::npos);
}

TEST_CASE("every answer leaves with its request id; 503 and 429 with Retry-After; a 500 names the id, not the failure") {
  auto nf = net::problem(404, "not-found", "index 'x' does not exist", "/v1/indexes/x");
  net::finish_response(nf, "rid-1");
  CHECK(header(nf, "X-Request-Id") == "rid-1");
  CHECK(body(nf).at("request_id") == "rid-1");
  CHECK(body(nf).at("detail") == "index 'x' does not exist");
  CHECK(header(nf, "Retry-After").empty());
  auto busy = net::problem(503, "unavailable", "the controller is unreachable");
  net::finish_response(busy, "rid-2");
  CHECK(header(busy, "Retry-After") == "1");
  auto slow = net::problem(429, "too-many-requests", "slow down");
  slow.set_header("Retry-After", "7");
  net::finish_response(slow, "rid-3");
  CHECK(header(slow, "Retry-After") == "7");  // a handler's own value stays
  auto broken = net::problem(500, "internal", "std::bad_alloc in the scan path");
  net::finish_response(broken, "rid-4");
  const std::string detail(body(broken).at("detail").as_string());
  CHECK(detail.find("rid-4") != std::string::npos);
  CHECK(detail.find("bad_alloc") == std::string::npos);
  net::http_response ok;
  ok.body = R"({"a":1})";
  net::finish_response(ok, "rid-5");
  CHECK(ok.body == R"({"a":1})");
  CHECK(header(ok, "X-Request-Id") == "rid-5");
}

TEST_CASE("tables take Elasticsearch's _cat parameters: h, s, v, help, bytes; a _cat parameter alone asks for text") {
  api_fixture f;
  REQUIRE(f.put("/v1/indexes/small", R"({"shards":1})").status == 201);
  REQUIRE(f.put("/v1/indexes/big", R"({"shards":1})").status == 201);
  for (int i = 0; i < 200; ++i)
    REQUIRE(f.put("/v1/indexes/big/records/k" + std::to_string(i), R"({"pad":")" + std::string(100, 'x') + "\"}").status == 201);
  REQUIRE(f.put("/v1/indexes/small/records/only", "{}").status == 201);

  auto t = f.get("/v1/indexes?h=records,index&s=records:desc");
  REQUIRE(t.status == 200);
  CHECK(t.content_type.starts_with("text/plain"));
  CHECK(t.body ==
        "records  index\n"
        "    200  big\n"
        "      1  small\n");
  auto asc = f.get("/v1/indexes?format=text&h=index&s=records&v=false");
  CHECK(asc.body == "small\nbig\n");

  // Byte columns: human by default, whole units or raw bytes when asked.
  auto human = f.get("/v1/indexes?h=bytes&v=false&s=index");
  auto raw = f.get("/v1/indexes?h=bytes&v=false&s=index&bytes=b");
  REQUIRE(raw.status == 200);
  CHECK(raw.body.find("b\n") != std::string::npos);
  CHECK(human.body.find_first_of("km") != std::string::npos);  // big's bytes are over 1 KiB
  auto json_bytes = body(f.get("/v1/indexes")).at("indexes").as_array()[0].at("bytes").as_int64();
  CHECK(raw.body.substr(0, raw.body.find('\n')) == std::to_string(json_bytes) + "b");

  auto help = f.get("/v1/shards?help");
  REQUIRE(help.status == 200);
  for (const char* col : {"index", "shard", "start", "end", "node", "state", "records", "bytes"})
    CHECK(help.body.find(std::string("\n") + col + " ") != std::string::npos);

  auto unknown = f.get("/v1/shards?h=index,colour");
  CHECK(unknown.status == 400);
  CHECK(body(unknown).at("detail").as_string().find("index, shard, start, end, node, state, records, bytes") !=
        std::string::npos);
  CHECK(f.get("/v1/shards?s=bytes:sideways").status == 400);
  CHECK(f.get("/v1/shards?bytes=pb").status == 400);
  CHECK(f.get("/v1/shards?v=maybe").status == 400);
  auto json_and_cat = f.get("/v1/shards?format=json&h=index");
  CHECK(json_and_cat.status == 400);
  CHECK(body(json_and_cat).at("detail").as_string().find("format=json") != std::string::npos);
  // Routes without tables take none of them, and say what they take.
  auto no_table = f.get("/v1/indexes/big/count?h=index");
  CHECK(no_table.status == 400);
  CHECK(body(no_table).at("detail").as_string().find("it takes pretty") != std::string::npos);
}

TEST_CASE("?pretty indents any JSON answer, problems included, and leaves text alone") {
  api_fixture f;
  REQUIRE(f.put("/v1/indexes/p", R"({"shards":2})").status == 201);
  auto plain = f.get("/v1/indexes/p");
  auto pretty = f.get("/v1/indexes/p?pretty");
  REQUIRE(pretty.status == 200);
  CHECK(pretty.body.find("\n  \"name\": \"p\",\n") != std::string::npos);
  CHECK(json::parse(pretty.body) == json::parse(plain.body));
  CHECK(f.get("/v1/indexes/p?pretty=false").body == plain.body);
  auto problem = f.get("/v1/indexes/nope?pretty");
  CHECK(problem.status == 404);
  CHECK(problem.body.find("\n  \"status\": 404") != std::string::npos);
  auto text = f.get("/v1/indexes?format=text&pretty");
  CHECK(text.body.starts_with("index"));
}

TEST_CASE("+ in a query value is a plus, as in a path: key=a+b and records/a+b are one key") {
  api_fixture f;
  REQUIRE(f.put("/v1/indexes/plus", R"({"shards":8})").status == 201);
  auto w = f.put("/v1/indexes/plus/records/a+b", R"({"n":1})");
  REQUIRE(w.status == 201);
  CHECK(body(w).at("key").as_string() == "a+b");
  auto lookup = body(f.get("/v1/ring/lookup?index=plus&key=a+b"));
  CHECK(lookup.at("shard") == body(w).at("shard"));
  auto spaced = body(f.get("/v1/ring/lookup?index=plus&key=a%20b"));
  CHECK(spaced.at("key").as_string() == "a b");
  CHECK(lookup.at("key").as_string() == "a+b");
  // A routing value too: the record written with routing=x+y is read back with the same text.
  REQUIRE(f.put("/v1/indexes/plus/records/r?routing=x+y", R"({"n":2})").status == 201);
  auto routed = body(f.get("/v1/ring/lookup?index=plus&key=r&routing=x+y"));
  CHECK(body(f.get("/v1/indexes/plus/records/r?routing=x+y")).at("shard") == routed.at("shard"));
  CHECK(f.get("/v1/indexes/plus/records?prefix=a+&format=text&h=key&v=false").body == "a+b\n");
}

TEST_CASE("a node elected controller while a change waits for one makes the change itself") {
  api_fixture f;
  f.plane->handover = std::chrono::milliseconds(5000);
  // The map names this node, but its controller is not running yet: what a node sees between
  // installing the map its takeover wrote and starting its controller.
  REQUIRE(f.controllers.retire() == f.ctl);
  controller* next = nullptr;
  std::thread starts([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    next = f.controllers.install(std::make_unique<controller>(f.ioc.get_executor(), f.cfg, *f.plane));
    next->begin();
  });
  const auto t0 = std::chrono::steady_clock::now();
  auto r = f.put("/v1/indexes/late", R"({"shards":2})");
  const auto waited = std::chrono::steady_clock::now() - t0;
  starts.join();
  CHECK(r.status == 201);
  CHECK(waited >= std::chrono::milliseconds(250));
  CHECK(waited < std::chrono::milliseconds(4000));  // answered once the controller ran, not at the end of the wait
  CHECK(f.get("/v1/indexes/late").status == 200);
  next->end();
}

TEST_CASE("a change that finds no controller within the handover wait is refused with 503") {
  api_fixture f;
  f.plane->handover = std::chrono::milliseconds(300);
  REQUIRE(f.controllers.retire() == f.ctl);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = f.put("/v1/indexes/never", R"({"shards":2})");
  CHECK(r.status == 503);
  CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(250));
  // With no wait at all, at once.
  f.plane->handover = std::chrono::milliseconds(0);
  CHECK(f.put("/v1/indexes/never", R"({"shards":2})").status == 503);
}

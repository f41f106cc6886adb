// Request handlers without sockets: a real store and ring actor on an io_context, requests
// handed straight to rest_api::handle.

#include "node/controller.hpp"
#include "node/rest_api.hpp"

#include "support/catch_result.hpp"
#include "support/temp_dir.hpp"

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

constexpr const char* token = "unit-test-token-0123456789";

/// A control plane that keeps the map in this node only: the controller's changes are
/// installed in the ring actor and go nowhere else.
class local_plane final : public control_plane {
 public:
  explicit local_plane(ring_actor& r) : ring_(r) {}
  asio::awaitable<result<snapshot_ptr>> load() override { co_return ring_.snapshot(); }
  asio::awaitable<result<snapshot_ptr>> compare_and_set(std::uint64_t expected, partition_map next) override {
    if (ring_.snapshot()->map->version != expected) co_return make_error(errc::conflict, "stale");
    co_return co_await ring_.install(std::move(next));
  }
  void watch(std::function<void(const snapshot_ptr&)> f) override { ring_.on_install(std::move(f)); }
  asio::awaitable<result<void>> register_node(node_entry) override { co_return result<void>{}; }
  std::string elect_controller() override { return "n1"; }

 private:
  ring_actor& ring_;
};

struct api_fixture {
  temp_dir dir;
  node_config cfg;
  asio::io_context ioc;
  asio::executor_work_guard<asio::io_context::executor_type> work{ioc.get_executor()};
  asio::thread_pool pool{1};
  std::atomic<bool> stopping{false};
  std::unique_ptr<storage::store> store;
  std::unique_ptr<ring_actor> ring;
  std::unique_ptr<local_plane> plane;
  std::unique_ptr<controller> ctl;
  std::unique_ptr<rest_api> api;
  std::thread runner;

  api_fixture() {
    cfg.node_id = "n1";
    cfg.token = token;
    cfg.bootstrap = true;
    cfg.default_shards = 4;
    cfg.max_doc_bytes = 1000;
    auto s = storage::store::open(storage::store_options{dir.sub("db")});
    REQUIRE(s);
    store = std::move(*s);
    ring = std::make_unique<ring_actor>(ioc.get_executor(), cfg, *store);
    REQUIRE(ring->load());
    ring->start();
    plane = std::make_unique<local_plane>(*ring);
    ctl = std::make_unique<controller>(ioc.get_executor(), cfg, *plane);
    ctl->begin();
    api = std::make_unique<rest_api>(node_context{cfg, *store, *ring, pool, stopping, nullptr, plane.get(), ctl.get()});
    runner = std::thread([this] { ioc.run(); });
  }
  ~api_fixture() {
    ctl->end();
    ring->stop();
    work.reset();
    ioc.stop();
    runner.join();
    pool.join();
    store->close();
  }

  net::http_response call(net::http_method m, std::string target, std::string body = {}, bool auth = true) {
    net::http_request req;
    req.method = m;
    req.method_text = m == net::http_method::get ? "GET" : m == net::http_method::put ? "PUT" : m == net::http_method::post ? "POST" : m == net::http_method::delete_ ? "DELETE" : "PATCH";
    req.target = std::move(target);
    req.body = std::move(body);
    if (auth) req.authorization = std::string("Bearer ") + token;
    return asio::co_spawn(ioc, api->handle(std::move(req)), asio::use_future).get();
  }
  net::http_response get(std::string t) { return call(net::http_method::get, std::move(t)); }
  net::http_response put(std::string t, std::string b) { return call(net::http_method::put, std::move(t), std::move(b)); }
};

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
  CHECK(header(m, "Allow") == "GET, PUT, DELETE");
  CHECK(body(m).at("detail").as_string().find("PATCH") != std::string::npos);
  auto q = f.get("/v1/indexes?fromat=text");
  CHECK(q.status == 400);
  CHECK(body(q).at("detail").as_string().find("fromat") != std::string::npos);
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

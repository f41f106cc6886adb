// docs/openapi.json checked by a real OpenAPI validator, and answers of a live cluster checked
// against the schemas it declares for them (test/openapi/check.mjs: an OpenAPI 3.1 validator
// and Ajv, installed by scripts/setup.sh).

#include "support/cluster.hpp"
#include "support/json_body.hpp"
#include "support/process.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <fstream>

using namespace shardd;
using namespace shardd::test;
namespace json = boost::json;

namespace {

/// The answers collected for the checker: method, the document's path template, status,
/// media type and body.
struct samples {
  json::array list;
  void add(const std::string& method, const std::string& path, const net::client_response& r) {
    json::object o;
    o["method"] = method;
    o["path"] = path;
    o["status"] = r.status;
    o["content_type"] = r.header("content-type");
    o["body"] = r.body;
    list.push_back(std::move(o));
  }
  std::string write(const std::string& file) const {
    std::ofstream(file) << json::serialize(list);
    return file;
  }
};

std::pair<int, std::string> run_checker(const std::string& samples_file) {
  const auto root = source_root();
  return run_command("cd " + root + "/test/openapi && node check.mjs " + root + "/docs/openapi.json " + samples_file);
}

}  // namespace

TEST_CASE("docs/openapi.json is a valid OpenAPI 3.1 document, and a live cluster's answers match its schemas") {
  cluster cl(2);
  auto c1 = cl.node(1).client();
  auto c2 = cl.node(2).client();
  samples s;
  auto get = [&](net::https_client& c, const std::string& target, const std::string& path) {
    auto r = c.get(target);
    s.add("get", path, r);
    return r;
  };

  // The document as the node serves it is the repository's.
  auto served = get(*c1, "/v1/openapi.json", "/v1/openapi.json");
  REQUIRE(served.status == 200);
  CHECK(json::parse(served.body).at("openapi") == "3.1.0");

  auto created = c1->put("/v1/indexes/users", R"({"shards":4})");
  s.add("put", "/v1/indexes/{index}", created);
  REQUIRE(created.status == 201);
  s.add("put", "/v1/indexes/{index}", c1->put("/v1/indexes/users", ""));  // 409
  s.add("put", "/v1/indexes/{index}", c1->put("/v1/indexes/range", R"({"partitioning":"range","split_points":["m"]})"));
  for (int i = 0; i < 40; ++i)
    s.add("put", "/v1/indexes/{index}/records/{key}",
          c2->put("/v1/indexes/users/records/user-" + std::to_string(i), R"({"n":)" + std::to_string(i) + "}"));
  s.add("put", "/v1/indexes/{index}/records/{key}", c1->put("/v1/indexes/users/records/user-1", R"({"n":100})"));  // 200 replaced
  s.add("put", "/v1/indexes/{index}/records/{key}", c1->put("/v1/indexes/users/records/bad", R"({"n":)"));        // 400
  get(*c1, "/v1/indexes/users/records/user-3", "/v1/indexes/{index}/records/{key}");
  get(*c2, "/v1/indexes/users/records/nope", "/v1/indexes/{index}/records/{key}");
  s.add("delete", "/v1/indexes/{index}/records/{key}", c1->del("/v1/indexes/users/records/user-39"));
  s.add("post", "/v1/indexes/{index}/bulk",
        c1->post("/v1/indexes/users/bulk", "{\"op\":\"put\",\"key\":\"b1\",\"doc\":{}}\n{\"op\":\"nope\"}\n"));
  get(*c1, "/v1/indexes/users/records?limit=5", "/v1/indexes/{index}/records");
  get(*c1, "/v1/indexes/users/count", "/v1/indexes/{index}/count");
  get(*c1, "/v1/indexes", "/v1/indexes");
  get(*c1, "/v1/indexes/users", "/v1/indexes/{index}");
  get(*c1, "/v1/indexes/missing", "/v1/indexes/{index}");
  get(*c2, "/v1/shards", "/v1/shards");
  get(*c1, "/v1/shards?format=text", "/v1/shards");
  get(*c1, "/v1/cluster", "/v1/cluster");
  get(*c2, "/v1/cluster/health", "/v1/cluster/health");
  get(*c1, "/v1/cluster/load", "/v1/cluster/load");
  get(*c2, "/v1/cluster/nodes/node-2", "/v1/cluster/nodes/{node}");
  s.add("delete", "/v1/cluster/nodes/{node}", c1->del("/v1/cluster/nodes/node-2"));  // 409: up
  s.add("put", "/v1/cluster/nodes/{node}", c1->put("/v1/cluster/nodes/node-2", R"({"weight":2})"));
  get(*c1, "/v1/ring", "/v1/ring");
  get(*c1, "/v1/ring/lookup?index=users&key=a+b", "/v1/ring/lookup");
  get(*c1, "/v1/partition-map", "/v1/partition-map");
  get(*c1, "/v1/health", "/v1/health");
  get(*c2, "/v1/health/ready", "/v1/health/ready");
  get(*c1, "/v1/stats?window=1m", "/v1/stats");
  get(*c1, "/v1/stats?window=1m&scope=cluster", "/v1/stats");
  get(*c1, "/v1/events?limit=5", "/v1/events");
  get(*c1, "/v1/anomalies", "/v1/anomalies");
  get(*c1, "/v1/forecast", "/v1/forecast");
  get(*c1, "/v1/stats/history?window=1m&points=20", "/v1/stats/history");
  get(*c1, "/v1/stats/history?scope=cluster&top=2", "/v1/stats/history");
  get(*c1, "/v1/stats/history?index=nope", "/v1/stats/history");  // 404
  get(*c1, "/v1/monitor/settings", "/v1/monitor/settings");
  get(*c1, "/v1/monitor/settings?scope=cluster", "/v1/monitor/settings");
  get(*c1, "/metrics", "/metrics");
  get(*c1, "/v1/migrations/settings", "/v1/migrations/settings");
  get(*c1, "/v1/rebalance/settings", "/v1/rebalance/settings");
  get(*c1, "/v1/rebalance/explain", "/v1/rebalance/explain");
  s.add("post", "/v1/rebalance/plan", c1->post("/v1/rebalance/plan", ""));
  s.add("post", "/v1/simulate", c1->post("/v1/simulate", R"({"add":[{"id":"node-9"}]})"));
  s.add("post", "/v1/simulate", c1->post("/v1/simulate", R"({"colour":1})"));  // 400
  s.add("put", "/v1/rebalance/settings", c1->put("/v1/rebalance/settings", R"({"mode":"plan-only"})"));
  s.add("put", "/v1/migrations/settings", c1->put("/v1/migrations/settings", R"({"max_outgoing":3})"));
  const auto owners_now = owners(*c1, "users");
  const auto shard = owners_now.begin()->first;
  const auto target = owners_now.begin()->second == "node-1" ? "node-2" : "node-1";
  auto moved = c1->post("/v1/shards/users/" + std::to_string(shard) + "/migrate", std::string(R"({"target":")") + target + "\"}");
  s.add("post", "/v1/shards/{index}/{shard}/migrate", moved);
  REQUIRE(moved.status == 202);
  const std::string id(body(moved).at("id").as_string());
  get(*c1, "/v1/migrations/" + id, "/v1/migrations/{id}");
  get(*c1, "/v1/migrations", "/v1/migrations");
  get(*c1, "/v1/migrations/m999", "/v1/migrations/{id}");
  s.add("post", "/v1/shards/{index}/{shard}/split", c1->post("/v1/shards/users/" + std::to_string(owners_now.rbegin()->first) + "/split", ""));
  get(*c1, "/v1/shards/users/" + std::to_string(shard) + "/hot-keys", "/v1/shards/{index}/{shard}/hot-keys");
  s.add("delete", "/v1/indexes/{index}", c1->del("/v1/indexes/range"));
  // Problems: no token, bad parameter, wrong method.
  {
    auto anon = cl.node(1).client();
    anon->set_token("");
    s.add("get", "/v1/indexes", anon->get("/v1/indexes"));
  }
  get(*c1, "/v1/indexes?colour=red", "/v1/indexes");
  get(*c1, "/v1/shards?h=nope", "/v1/shards");

  auto [rc, out] = run_checker(s.write(cl.dir.sub("samples.json")));
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("document: valid OpenAPI 3.1") != std::string::npos);
  CHECK(out.find("samples: " + std::to_string(s.list.size()) + " of " + std::to_string(s.list.size())) != std::string::npos);

  // The checker fails on what does not match: an answer without the fields its schema
  // requires, a status the document does not list, and a document that is not OpenAPI.
  samples wrong;
  net::client_response fake;
  fake.status = 200;
  fake.headers = {{"content-type", "application/json"}};
  fake.body = R"({"status":"fine"})";
  wrong.add("get", "/v1/health", fake);
  fake.status = 418;
  wrong.add("get", "/v1/cluster", fake);
  auto [rc2, out2] = run_checker(wrong.write(cl.dir.sub("wrong.json")));
  INFO(out2);
  CHECK(rc2 == 1);
  CHECK(out2.find("samples: 0 of 2") != std::string::npos);
  std::ofstream(cl.dir.sub("not-openapi.json")) << R"({"openapi":"3.1.0","paths":{"/x":{"get":{"responses":"none"}}}})";
  auto [rc3, out3] = run_command("cd " + source_root() + "/test/openapi && node check.mjs " + cl.dir.sub("not-openapi.json"));
  INFO(out3);
  CHECK(rc3 == 1);
  CHECK(out3.find("not a valid OpenAPI document") != std::string::npos);
}

// docs/openapi.json against the route table, both ways: every route, method and query
// parameter the code has is in the document, and the document names none the code lacks.
// (test/integration/test_openapi.cpp validates the document and checks live answers.)

#include "node/rest_api.hpp"

#include "support/api_fixture.hpp"

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

using namespace shardd;
namespace json = boost::json;

namespace {

json::object load_document() {
  std::ifstream in(std::string(SHARDD_SOURCE_ROOT) + "/docs/openapi.json");
  REQUIRE(in);
  std::stringstream text;
  text << in.rdbuf();
  return json::parse(text.str()).as_object();
}

/// "/v1/indexes/{index}/records/{key*}" as the document writes it: "{key}".
std::string document_path(std::string_view pattern) {
  std::string p(pattern);
  for (auto at = p.find("*}"); at != std::string::npos; at = p.find("*}")) p.erase(at, 1);
  return p;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

/// Query parameters of an operation, its own and the shared ones it references.
std::set<std::string> query_parameters(const json::object& doc, const json::object& op) {
  std::set<std::string> out;
  if (!op.contains("parameters")) return out;
  for (const auto& p : op.at("parameters").as_array()) {
    const json::object* param = &p.as_object();
    if (param->contains("$ref")) {
      std::string ref(param->at("$ref").as_string());
      REQUIRE(ref.starts_with("#/components/parameters/"));
      param = &doc.at("components").at("parameters").at(ref.substr(std::string("#/components/parameters/").size())).as_object();
    }
    if (param->at("in") == "query") out.insert(std::string(param->at("name").as_string()));
  }
  return out;
}

}  // namespace

TEST_CASE("every route, method and query parameter of the code is in docs/openapi.json, and nothing else is") {
  const auto doc = load_document();
  const auto& paths = doc.at("paths").as_object();
  std::set<std::pair<std::string, std::string>> in_code;
  for (const auto& r : rest_api::routes()) {
    const auto path = document_path(r.pattern);
    const auto method = lower(net::method_name(r.method));
    INFO(method << " " << path);
    in_code.emplace(path, method);
    REQUIRE(paths.contains(path));
    const auto& item = paths.at(path).as_object();
    REQUIRE(item.contains(method));
    std::set<std::string> code_params;
    for (auto p : rest_api::query_params(r)) code_params.emplace(p);
    CHECK(query_parameters(doc, item.at(method).as_object()) == code_params);
    // Path arguments: one document parameter per {name} of the pattern.
    std::set<std::string> args, declared;
    for (std::size_t at = path.find('{'); at != std::string::npos; at = path.find('{', at + 1))
      args.insert(path.substr(at + 1, path.find('}', at) - at - 1));
    for (const auto& p : item.at(method).at("parameters").as_array()) {
      const json::object* param = &p.as_object();
      if (param->contains("$ref"))
        param = &doc.at("components").at("parameters").at(std::string(param->at("$ref").as_string()).substr(24)).as_object();
      if (param->at("in") == "path") declared.insert(std::string(param->at("name").as_string()));
    }
    CHECK(declared == args);
  }
  std::size_t documented = 0;
  for (const auto& [path, item] : paths)
    for (const auto& [method, op] : item.as_object()) {
      INFO(method << " " << path);
      ++documented;
      CHECK(in_code.count({std::string(path), std::string(method)}) == 1);
      CHECK(op.as_object().contains("operationId"));
      CHECK(op.as_object().contains("responses"));
    }
  CHECK(documented == in_code.size());
}

TEST_CASE("every problem type the code can answer with is in the document's Problem schema") {
  const auto doc = load_document();
  std::set<std::string> types;
  for (const auto& t : doc.at("components").at("schemas").at("Problem").at("properties").at("type").at("enum").as_array())
    types.insert(std::string(t.as_string()));
  for (auto e : {errc::invalid_argument, errc::not_found, errc::already_exists, errc::conflict, errc::unavailable, errc::too_large,
                 errc::internal, errc::corrupt, errc::forbidden, errc::insufficient_storage, errc::not_controller}) {
    std::string slug(to_string(e));
    std::replace(slug.begin(), slug.end(), '_', '-');
    CHECK(types.count("urn:shardd:problem:" + slug) == 1);
  }
  for (const char* slug : {"malformed-request", "unauthorized", "method-not-allowed", "precondition-failed", "payload-too-large",
                           "bad-gateway"})
    CHECK(types.count(std::string("urn:shardd:problem:") + slug) == 1);
}

TEST_CASE("GET /v1/openapi.json serves the document the repository keeps, byte for byte") {
  test::api_fixture f;
  auto r = f.get("/v1/openapi.json");
  REQUIRE(r.status == 200);
  CHECK(r.content_type == "application/json");
  std::ifstream in(std::string(SHARDD_SOURCE_ROOT) + "/docs/openapi.json");
  std::stringstream text;
  text << in.rdbuf();
  CHECK(r.body == text.str());
  CHECK(f.get("/v1/openapi.json?pretty").status == 200);
}

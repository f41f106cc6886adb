// libFuzzer target for the REST layer: request targets (paths, percent-encoding, query
// parameters, cursors) and bodies (JSON index specs and settings, documents, NDJSON bulk)
// against a real node without sockets (store, ring actor, controller; test/support/api_fixture).
// Properties besides "no crash, no sanitizer report": every answer has a status from 200 to
// 599, and every JSON answer (problem+json included) parses.
//   the fuzz build of scripts/test.sh; then
//   build-fuzz/test/fuzz/fuzz_rest -max_total_time=60 test/fuzz/rest_corpus
//
// Input: byte 0 picks the method, then the target up to the first newline, then the body.

#include "support/api_fixture.hpp"

#include <boost/json/parse.hpp>
#include <spdlog/spdlog.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

using namespace shardd;

namespace {

// Never destroyed at exit: the store's threads and RocksDB's statics would go in an order of
// their own. (Reachable from a global, so not a leak.)
test::api_fixture* fixture = nullptr;
int runs = 0;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  // A fresh node now and then, so that what earlier inputs created does not pile up.
  if (!fixture || ++runs % 5000 == 0) {
    delete fixture;
    fixture = new test::api_fixture();
  }
  static const net::http_method methods[] = {net::http_method::get, net::http_method::put, net::http_method::post,
                                             net::http_method::delete_, net::http_method::head, net::http_method::other};
  const auto method = methods[data[0] % 6];
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto nl = rest.find('\n');
  std::string target(rest.substr(0, nl));
  std::string body(nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1));
  if (target.empty() || target[0] != '/') target.insert(target.begin(), '/');
  const auto res = fixture->call(method, std::move(target), std::move(body));
  const auto fail = [&](const char* why) {
    std::fprintf(stderr, "fuzz_rest: %s: status %u, content type %s, body: %.300s\n", why, res.status, res.content_type.c_str(),
                 res.body.c_str());
    __builtin_trap();
  };
  if (res.status < 200 || res.status > 599) fail("status out of range");
  if (res.content_type.find("json") != std::string::npos && !res.body.empty()) {
    boost::system::error_code ec;
    (void)boost::json::parse(res.body, ec);
    if (ec) fail("an answer that says JSON does not parse");
  }
  return 0;
}

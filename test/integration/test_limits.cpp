// What a REST client can make a node hold: connections, slow headers, bodies without a token.
// Real processes on loopback; the misbehaving clients are test/integration/clients/raw_http.py.

#include "support/catch_result.hpp"
#include "support/cluster.hpp"
#include "support/json_body.hpp"

#include "net/http_server.hpp"
#include "net/https_client.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

using namespace shardd;
using namespace shardd::test;

namespace {

/// Runs one of the misbehaving clients in test/integration/clients and returns what it prints.
std::string run_client(const std::string& script, const std::string& args) {
  const char* root = std::getenv("SHARDD_SOURCE_ROOT");
  REQUIRE(root);
  auto [rc, out] = run_command("python3 " + std::string(root) + "/test/integration/clients/" + script + " " + args);
  INFO(out);
  REQUIRE(rc == 0);
  return out;
}

std::string raw_http(const std::string& args) { return run_client("raw_http.py", args); }

std::uint64_t rss_kib(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  return 0;
}

constexpr const char* limits_config =
    R"({"cluster":{"heartbeat_interval_ms":200,"heartbeat_miss_limit":3},)"
    R"("rest":{"header_timeout_ms":1500,"max_connections":200,"max_body_bytes":67108864}})";

}  // namespace

TEST_CASE("connections that never speak do not stop a normal client; beyond max_connections a client gets 503") {
  cluster cl(1, {}, limits_config);
  const auto port = std::to_string(cl.node(1).rest_port());
  const auto ca = test_certs().ca();
  // 150 silent connections, under the limit of 200: a normal request is served at once.
  auto ok = raw_http("idle " + port + " " + ca + " 150");
  CHECK(ok.rfind("HTTP/1.1 200", 0) == 0);
  // 205: over the limit, the next connection is told to come back. (Past 16 refusals at once
  // a node closes new connections without a word: a flood must not cost a handshake each.)
  auto full = raw_http("idle " + port + " " + ca + " 205");
  CHECK(full.rfind("HTTP/1.1 503", 0) == 0);
  CHECK(cl.node(1).log().find("event=rest_connection_refused") != std::string::npos);
  // Once they are gone, service is normal again.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(cl.node(1).client()->get("/v1/health").status == 200);
}

TEST_CASE("2,000 connections that never speak do not stop a normal client under the default limit") {
  cluster cl(1);
  auto out = raw_http("idle " + std::to_string(cl.node(1).rest_port()) + " " + test_certs().ca() + " 2000");
  CHECK(out.rfind("HTTP/1.1 200", 0) == 0);
  std::istringstream fields(out);
  std::string http, code, text;
  double seconds = 99;
  fields >> http >> code >> text >> seconds;
  CHECK(seconds < 5.0);
}

TEST_CASE("a client that sends its header a byte at a time is cut at the header deadline") {
  cluster cl(1, {}, limits_config);
  const auto out = raw_http("slow " + std::to_string(cl.node(1).rest_port()) + " " + test_certs().ca());
  const double seconds = std::stod(out);
  CHECK(seconds >= 1.2);
  CHECK(seconds < 5.0);  // header_timeout_ms 1500, not the 60 s idle timeout
  CHECK(cl.node(1).client()->get("/v1/health").status == 200);
}

TEST_CASE("a 64 MiB body without a token is refused from its header, before a byte of it is read") {
  cluster cl(1, {}, limits_config);
  const int pid = cl.node(1).pid();
  const auto before = rss_kib(pid);
  const auto out = raw_http("body " + std::to_string(cl.node(1).rest_port()) + " " + test_certs().ca() + " 67108864");
  // The answer comes although no body was sent: the server did not wait for it.
  CHECK(out.rfind("HTTP/1.1 401", 0) == 0);
  const auto after = rss_kib(pid);
  INFO("RSS before " << before << " KiB, after " << after << " KiB");
  CHECK(after < before + 16 * 1024);
  // With the token the same announcement is accepted for reading (and then found invalid JSON).
  auto c = cl.node(1).client();
  CHECK(c->put("/v1/indexes/big", "{not json").status == 400);
}

namespace {

std::string raw_peer(const std::string& mode, shardd_process& n, const std::string& extra = {}) {
  const auto& certs = test_certs();
  return run_client("raw_peer.py", mode + " " + std::to_string(n.peer_port()) + " " + certs.ca() + " " + certs.cert("node-2") +
                                       " " + certs.key("node-2") + " node-2 " + extra);
}

constexpr const char* peer_limits_config =
    R"({"cluster":{"heartbeat_interval_ms":200,"heartbeat_miss_limit":3},)"
    R"("peer":{"idle_timeout_ms":1000,"write_timeout_ms":1000}})";

}  // namespace

TEST_CASE("a peer connection that says hello and then nothing is closed at peer.idle_timeout_ms") {
  cluster cl(2, {}, peer_limits_config);
  const double seconds = std::stod(raw_peer("idle", cl.node(1)));
  CHECK(seconds >= 0.8);
  CHECK(seconds < 5.0);
  // The members' own connections come back as needed: the cluster still works.
  auto c2 = cl.node(2).client();
  REQUIRE(c2->put("/v1/indexes/after", R"({"shards":4})").status == 201);
  for (int i = 0; i < 20; ++i) CHECK(c2->put("/v1/indexes/after/records/k" + std::to_string(i), R"({"n":1})").status == 201);
  CHECK(body(cl.node(1).client()->get("/v1/indexes/after/count")).at("count").as_int64() == 20);
}

TEST_CASE("a peer that sends requests and never reads the replies is cut at peer.write_timeout_ms, and the node serves on") {
  cluster cl(2, {}, peer_limits_config);
  // 20,000 map_get requests: their replies (the map, each time) far exceed the socket buffers.
  CHECK(raw_peer("noread", cl.node(1), "20000").rfind("closed", 0) == 0);
  CHECK(cl.node(1).client()->get("/v1/health").status == 200);
  CHECK(cl.node(2).client()->put("/v1/indexes/still", R"({"shards":2})").status == 201);
}

TEST_CASE("the REST server deals connections out over its contexts, and each connection stays on one thread") {
  // The node runs one io_context per network thread and gives the server all of them: a
  // connection's requests must all run on the thread it was dealt to, and connections must
  // spread over every thread.
  const auto& c = test_certs();
  net::http_server_options o;
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts;
  for (int i = 0; i < 2; ++i) {
    contexts.push_back(std::make_unique<boost::asio::io_context>(1));
    o.session_contexts.push_back(contexts.back().get());
  }
  auto server = std::make_unique<net::http_server>(
      *contexts[0], tls_config{c.cert("node-1"), c.key("node-1"), c.ca()},
      [](net::http_request) -> boost::asio::awaitable<net::http_response> {
        std::ostringstream id;
        id << std::this_thread::get_id();
        net::http_response r;
        r.body = id.str();
        co_return r;
      },
      o);
  const auto port = free_port();
  server->start(host_port{"127.0.0.1", port});
  std::vector<std::thread> threads;
  for (auto& ctx : contexts) {
    threads.emplace_back([ctx = ctx.get()] {
      auto work = boost::asio::make_work_guard(*ctx);
      ctx->run();
    });
  }
  std::map<std::string, int> connections_per_thread;
  {
    std::vector<std::unique_ptr<net::https_client>> clients;
    for (int i = 0; i < 6; ++i) clients.push_back(std::make_unique<net::https_client>("127.0.0.1", port, c.ca()));
    for (auto& cl : clients) {
      std::set<std::string> seen;
      for (int r = 0; r < 5; ++r) {
        auto res = cl->get("/anything");
        REQUIRE(res.status == 200);
        seen.insert(res.body);
      }
      CHECK(seen.size() == 1);  // one thread for all of a connection's requests
      ++connections_per_thread[*seen.begin()];
    }
  }
  CHECK(connections_per_thread.size() == 2);  // both threads serve
  for (auto& [thread, n] : connections_per_thread) CHECK(n == 3);  // dealt out in turn
  for (auto& ctx : contexts) ctx->stop();
  for (auto& t : threads) t.join();
  // The server (its acceptor lives on the first context) goes before the contexts, and the
  // last context before the first: its parked connections hold the server's state, acceptor
  // included (the node shuts all its contexts down before destroying any).
  server.reset();
  while (!contexts.empty()) contexts.pop_back();
}

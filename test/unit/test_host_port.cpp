// HOST:PORT addresses, as the config and the peer transport read them.
#include "shardd/host_port.hpp"

#include "support/catch_result.hpp"

using namespace shardd;

TEST_CASE("names, IPv4 and bracketed IPv6 addresses with a port are read") {
  auto a = parse_host_port("127.0.0.1:8443");
  REQUIRE(a);
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == 8443);
  auto b = parse_host_port("[::1]:9443");
  REQUIRE(b);
  CHECK(b->host == "::1");
  CHECK(b->port == 9443);
  CHECK(b->to_string() == "[::1]:9443");
  auto c = parse_host_port("node-7.example:1");
  REQUIRE(c);
  CHECK(c->host == "node-7.example");
  CHECK(c->port == 1);
  CHECK(parse_host_port("[2001:db8::1]:65535")->to_string() == "[2001:db8::1]:65535");
}

TEST_CASE("addresses without a host or a valid port, or with more than host and port, are refused with a reason") {
  auto reason = [](std::string_view text) {
    auto r = parse_host_port(text);
    return r ? std::string("ok") : r.error().detail;
  };
  for (const char* bad : {"", "nowhere", ":8443", "host:", "user@host:80", "host:80/path", "[::1", "[::1]", "[::1]8443", "[vx.y]:1"}) {
    INFO(bad);
    CHECK(reason(bad).find("expected HOST:PORT") != std::string::npos);
  }
  for (const char* bad : {"host:0", "host:65536", "host:99999", "host:+80", "host:8o"}) {
    INFO(bad);
    const auto r = reason(bad);
    CHECK((r.find("port must be 1-65535") != std::string::npos || r.find("expected HOST:PORT") != std::string::npos));
    CHECK(r != "ok");
  }
  CHECK(reason("::1:8443").find("IPv6 addresses need brackets") != std::string::npos);
}

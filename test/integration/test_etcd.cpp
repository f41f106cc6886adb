// The etcd transport and codec against real etcd 3.4 processes on loopback: the operations the
// control plane is built from, a member killed, every member gone, TLS with client certificates.

#include "net/etcd_transport.hpp"
#include "shardd/etcd.hpp"

#include "support/catch_result.hpp"
#include "support/etcd.hpp"
#include "support/process.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

using namespace shardd;
using namespace shardd::test;
namespace asio = boost::asio;

namespace {

std::vector<host_port> endpoints_of(const etcd_cluster& e) {
  std::vector<host_port> out;
  for (const auto& m : e.members()) out.push_back({"127.0.0.1", m.client_port});
  return out;
}

/// A transport on its own io_context thread; `call` runs one request to completion.
struct client {
  asio::io_context ioc;
  std::unique_ptr<net::etcd_transport> t;
  explicit client(net::etcd_options o) : t(std::make_unique<net::etcd_transport>(ioc.get_executor(), std::move(o))) {}

  template <class T>
  T run(asio::awaitable<T> a) {
    auto f = asio::co_spawn(ioc, std::move(a), asio::use_future);
    ioc.restart();
    while (f.wait_for(std::chrono::seconds(0)) != std::future_status::ready) ioc.run_one_for(std::chrono::milliseconds(10));
    return f.get();
  }
  result<std::string> call(const etcd::request& r) { return run(t->post(r.path, r.body)); }
};

net::etcd_options plain(const etcd_cluster& e) {
  net::etcd_options o;
  o.endpoints = endpoints_of(e);
  o.timeout = std::chrono::milliseconds(1000);
  return o;
}

}  // namespace

TEST_CASE("etcd: range, put, compare-and-set on the mod revision, leases and a watch, against a real etcd") {
  etcd_cluster e(1);
  client c(plain(e));

  auto empty = etcd::parse_range(*c.call(etcd::range("shardd/map")));
  REQUIRE(empty);
  CHECK(empty->kvs.empty());
  // Created only if absent (mod revision 0), then only from the revision read.
  auto first = etcd::parse_txn(*c.call(etcd::put_if("shardd/map", "v1", 0)));
  REQUIRE(first);
  CHECK(first->succeeded);
  auto again = etcd::parse_txn(*c.call(etcd::put_if("shardd/map", "other", 0)));
  REQUIRE(again);
  CHECK(!again->succeeded);
  REQUIRE(again->current.size() == 1);
  CHECK(again->current[0].value == "v1");
  const auto rev = again->current[0].mod_revision;
  auto second = etcd::parse_txn(*c.call(etcd::put_if("shardd/map", "v2", rev)));
  REQUIRE(second);
  CHECK(second->succeeded);
  auto stale = etcd::parse_txn(*c.call(etcd::put_if("shardd/map", "v3", rev)));  // a writer that read before v2
  REQUIRE(stale);
  CHECK(!stale->succeeded);
  CHECK(stale->current[0].value == "v2");
  auto now = etcd::parse_range(*c.call(etcd::range("shardd/map")));
  CHECK(now->kvs[0].value == "v2");

  // Keys under a lease go with it.
  auto lease = etcd::parse_lease(*c.call(etcd::lease_grant(30)));
  REQUIRE(lease);
  CHECK(lease->ttl == 30);
  REQUIRE(c.call(etcd::put("shardd/nodes/node-1", "up", lease->id)));
  REQUIRE(c.call(etcd::put("shardd/nodes/node-2", "up")));
  auto alive = etcd::parse_lease(*c.call(etcd::lease_keepalive(lease->id)));
  REQUIRE(alive);
  CHECK(alive->ttl > 0);
  auto nodes = etcd::parse_range(*c.call(etcd::range("shardd/nodes/", true)));
  CHECK(nodes->kvs.size() == 2);
  REQUIRE(c.call(etcd::lease_revoke(lease->id)));
  nodes = etcd::parse_range(*c.call(etcd::range("shardd/nodes/", true)));
  REQUIRE(nodes->kvs.size() == 1);
  CHECK(nodes->kvs[0].key == "shardd/nodes/node-2");
  auto dead = etcd::parse_lease(*c.call(etcd::lease_keepalive(lease->id)));
  REQUIRE(dead);
  CHECK(dead->ttl <= 0);

  // A watch from a revision sees every later change in order, puts and deletes.
  const auto from = now->head.revision + 1;
  std::vector<etcd::watch_event> seen;
  std::atomic<bool> created{false};
  client watcher(plain(e));
  std::thread th([&] {
    auto r = watcher.run(watcher.t->stream(etcd::watch("shardd/map", from).path, etcd::watch("shardd/map", from).body,
                                           [&](std::string_view line) {
                                             auto w = etcd::parse_watch(line);
                                             if (!w) return false;
                                             if (w->created) created = true;
                                             for (auto& ev : w->events) seen.push_back(ev);
                                             return seen.size() < 3;
                                           }));
    CHECK(r);
  });
  for (int i = 0; i < 100 && !created; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(created);
  REQUIRE(c.call(etcd::put("shardd/map", "v4")));
  REQUIRE(c.call(etcd::put("shardd/other", "x")));  // not watched
  auto last = etcd::parse_range(*c.call(etcd::range("shardd/map")));
  REQUIRE(etcd::parse_txn(*c.call(etcd::remove_if("shardd/map", last->kvs[0].mod_revision)))->succeeded);
  REQUIRE(c.call(etcd::put("shardd/map", "v5")));
  th.join();
  REQUIRE(seen.size() == 3);
  CHECK(seen[0].item.value == "v4");
  CHECK(seen[1].deleted);
  CHECK(seen[2].item.value == "v5");
  CHECK(seen[0].item.mod_revision < seen[1].item.mod_revision);
}

TEST_CASE("etcd: three members, one killed: requests go on through the others; all gone: a quick, clear error") {
  etcd_cluster e(3);
  client c(plain(e));
  REQUIRE(c.call(etcd::put("k", "1")));
  e.kill9(0);  // the first endpoint the client tries
  const auto t0 = std::chrono::steady_clock::now();
  auto r = c.call(etcd::put("k", "2"));
  INFO((r ? std::string() : r.error().detail));
  REQUIRE(r);
  CHECK(etcd::parse_range(*c.call(etcd::range("k")))->kvs[0].value == "2");
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
  CHECK(c.t->current_endpoint() != "127.0.0.1:" + std::to_string(e.members()[0].client_port));
  e.kill9(1);
  e.kill9(2);
  const auto t1 = std::chrono::steady_clock::now();
  auto gone = c.call(etcd::range("k"));
  REQUIRE(!gone);
  CHECK(gone.error().code == errc::unavailable);
  CHECK(gone.error().detail.find("3 member(s) tried") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - t1 < std::chrono::seconds(4));  // 3 refused connections, no long wait
  // Back: answers again, with the data.
  e.restart({0, 1, 2});
  auto back = c.call(etcd::range("k"));
  REQUIRE(back);
  CHECK(etcd::parse_range(*back)->kvs[0].value == "2");
}

TEST_CASE("etcd over TLS with client certificates: verified both ways; a client without a certificate is refused") {
  etcd_cluster e(1, true);
  net::etcd_options o = plain(e);
  o.tls = true;
  o.ca = test_certs().ca();
  o.cert = test_certs().cert("node-1");
  o.key = test_certs().key("node-1");
  client c(o);
  REQUIRE(c.call(etcd::put("secure", "yes")));
  CHECK(etcd::parse_range(*c.call(etcd::range("secure")))->kvs[0].value == "yes");
  net::etcd_options anon = o;
  anon.cert.clear();
  anon.key.clear();
  client no_cert(anon);
  auto r = no_cert.call(etcd::range("secure"));
  CHECK(!r);
  net::etcd_options http_only = plain(e);
  client wrong_scheme(http_only);
  CHECK(!wrong_scheme.call(etcd::range("secure")));
  o.ca = test_certs().rogue_dir + "/ca.pem";  // a CA that did not sign the member's certificate
  client distrust(o);
  auto d = distrust.call(etcd::range("secure"));
  REQUIRE(!d);
  CHECK(d.error().detail.find("TLS") != std::string::npos);
}
